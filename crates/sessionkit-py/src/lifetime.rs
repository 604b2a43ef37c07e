//! The lifetime rules of the core ([`sessionkit::lifetime`]: idle timeout, absolute lifetime, touch throttling) as
//! the Django engines apply them. The maths stays in the core; this module only carries the engines' settings to
//! it, judges a loaded session ([`judge`]), and holds the clock the rules go by: the real time, moved by an offset
//! that only tests set ([`_set_clock_offset`]).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;
use serde_json::{Map, Value};
use sessionkit::lifetime::{self, Clock, CREATED_KEY};
use sessionkit::store::user_index::{auth_user_id, session_id};
use sessionkit::{SessionKey, Settings};
use time::OffsetDateTime;

use crate::ConfigurationError;

/// Milliseconds added to the real time by the clock of every store's lifetime rules (tests only).
static CLOCK_OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// The clock of the lifetime rules: the real time plus the test offset (zero outside tests).
fn clock() -> Clock {
    Clock::from_fn(|| {
        let offset = CLOCK_OFFSET_MS.load(Ordering::Relaxed);
        let now = OffsetDateTime::now_utc();
        if offset == 0 {
            now
        } else {
            now.saturating_add(time::Duration::milliseconds(offset))
        }
    })
}

/// **Test-only.** Moves the clock of the lifetime rules (every store of the process) `seconds` ahead of the real
/// time (0: the real time again), so tests of idle and absolute timeouts need no sleeping. Redis' own expiry
/// still runs on the real time.
#[pyfunction]
pub(crate) fn _set_clock_offset(seconds: f64) -> PyResult<()> {
    if !seconds.is_finite() {
        return Err(pyo3::exceptions::PyValueError::new_err("the clock offset must be a finite number of seconds"));
    }
    CLOCK_OFFSET_MS.store((seconds * 1000.0).round() as i64, Ordering::Relaxed);
    Ok(())
}

/// The Settings the rules read: the three lifetime settings, `SESSION_COOKIE_AGE` and the clock. Contradicting
/// settings raise `ConfigurationError` with [`lifetime::check`]'s message.
pub(crate) fn settings(
    idle_timeout: Option<i64>,
    absolute_timeout: Option<i64>,
    touch_interval: Option<i64>,
    cookie_age: i64,
) -> PyResult<Arc<Settings>> {
    for (name, value) in [
        ("SESSION_IDLE_TIMEOUT", idle_timeout),
        ("SESSION_ABSOLUTE_TIMEOUT", absolute_timeout),
        ("SESSION_TOUCH_INTERVAL", touch_interval),
    ] {
        if value.is_some_and(|seconds| seconds <= 0) {
            return Err(ConfigurationError::new_err(format!("{name} must be a positive number of seconds")));
        }
    }
    let settings =
        Settings { idle_timeout, absolute_timeout, touch_interval, cookie_age, clock: clock(), ..Settings::default() };
    lifetime::check(&settings).map_err(|err| ConfigurationError::new_err(err.to_string()))?;
    Ok(Arc::new(settings))
}

/// What [`lifetime::check`] says of these settings: `None` when they agree, else its message (for Django's system
/// checks, so the rule lives in one place).
#[pyfunction]
#[pyo3(signature = (idle_timeout = None, absolute_timeout = None, touch_interval = None))]
pub(crate) fn check_lifetime(
    idle_timeout: Option<i64>,
    absolute_timeout: Option<i64>,
    touch_interval: Option<i64>,
) -> Option<String> {
    let settings = Settings { idle_timeout, absolute_timeout, touch_interval, ..Settings::default() };
    lifetime::check(&settings).err().map(|err| match err {
        sessionkit::ConfigError::ConflictingSettings(text) => text,
        other => other.to_string(),
    })
}

/// A session a lifetime rule has ended, as a load reports it (the engines send the `expired` signal with it).
#[pyclass(frozen, module = "sessionkit._native")]
pub struct Expired {
    /// `idle` or `absolute`.
    #[pyo3(get)]
    rule: &'static str,
    /// The session's id (`session_id(key)`), never its key.
    #[pyo3(get)]
    session: String,
    /// The user logged in to it (`_auth_user_id`), if any.
    #[pyo3(get)]
    user_id: Option<String>,
}

/// A loaded session under the lifetime rules.
pub(crate) enum Judged {
    /// Ended by a rule: the engine deletes it and starts a new session.
    Expired(Expired),
    /// Live. `created`: the session lacks [`CREATED_KEY`] and must get this value (and be saved once for it);
    /// `touch_due`: a touch is due at the end of the request.
    Live { created: Option<i64>, touch_due: bool },
}

/// Judges a session loaded with `data` and the store's expiry `stored_expiry`, now by the rules' clock. With both
/// rules off every session is live and nothing is due.
pub(crate) fn judge(
    settings: &Settings,
    key: &SessionKey,
    data: &Map<String, Value>,
    stored_expiry: Option<OffsetDateTime>,
) -> Judged {
    if !lifetime::rules_on(settings) {
        return Judged::Live { created: None, touch_due: false };
    }
    let now = settings.clock.now();
    if let Some(rule) = lifetime::expired_by(settings, data, stored_expiry, now) {
        return Judged::Expired(Expired { rule: rule.as_str(), session: session_id(key), user_id: auth_user_id(data) });
    }
    let created = lifetime::needs_created(settings, data).then(|| now.unix_timestamp());
    let touch_due = stored_expiry.is_some_and(|at| lifetime::touch_due(settings, data, at, now).is_some());
    Judged::Live { created, touch_due }
}

/// Starts the absolute lifetime of a session created (or cycled) now: writes [`CREATED_KEY`] into the Python dict
/// itself, so the dict and the stored data agree. Nothing without an absolute timeout.
pub(crate) fn start(settings: &Settings, data: &Bound<'_, PyAny>) -> PyResult<()> {
    if settings.absolute_timeout.is_some() {
        data.set_item(CREATED_KEY, settings.clock.now().unix_timestamp())?;
    }
    Ok(())
}
