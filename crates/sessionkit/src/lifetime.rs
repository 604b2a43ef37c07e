//! Session lifetimes beyond Django's: an **idle timeout** and an **absolute lifetime** (OWASP ASVS V3.3), both
//! off by default, so that Django's behaviour is unchanged until one is set.
//!
//! - [`Settings::idle_timeout`] (`SESSION_IDLE_TIMEOUT`): a session without a request for that long has expired.
//!   Activity slides it: every save, and a request that only reads at most once per
//!   [touch interval](touch_interval) (a *touch*: [`SessionStore::touch`](crate::SessionStore::touch), an
//!   expiry-only write — `PEXPIREAT`, `UPDATE … expire_date`, a file's mtime — never a rewrite of the data).
//!   The last activity is not written into the session: the store's own expiry *is* the idle deadline.
//! - [`Settings::absolute_timeout`] (`SESSION_ABSOLUTE_TIMEOUT`): a session created or cycled
//!   ([`Session::cycle_key`](crate::Session::cycle_key), which Django's `login()` calls) that long ago has
//!   expired, whatever its activity. The start is kept in the session under [`CREATED_KEY`] (Unix seconds, an
//!   integer): Django's own engines carry unknown keys along untouched, so Django reading or writing such a
//!   session works as before (it just does not enforce the rule). A session stored before the rule was turned
//!   on gets the key at its next load (counted from then) and is saved once for it.
//!
//! Every save gives the store the earliest of Django's expiry, the idle deadline and the absolute deadline
//! ([`store_expiry`]), so an expired session still vanishes on its own (Redis TTL, `expire_date`,
//! `clearsessions`) and a Django engine reading the same store agrees. The cookie keeps Django's `Max-Age`
//! (`SESSION_COOKIE_AGE`): a touch does not re-send it, so keep the idle timeout shorter than the cookie age.
//!
//! A read-only request touches when the expiry it would give now is at least one touch interval later than the
//! stored one: so a session whose last request was between `idle − interval` and `idle` ago may have expired
//! up to one interval early (the price of not writing on every request), never late.
//!
//! Tests move time with a [`Clock`] instead of sleeping.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use crate::expiry::{clamp_storable, Expiry, EXPIRY_KEY};
use crate::{ConfigError, Settings};

/// Session key holding when the session was created or last cycled, in Unix seconds (an integer), for the
/// absolute lifetime. Written only while [`Settings::absolute_timeout`] is set.
pub const CREATED_KEY: &str = "_sessionkit_created";

/// The touch interval when `SESSION_TOUCH_INTERVAL` is not set and the idle timeout is at least twice as long.
pub const DEFAULT_TOUCH_INTERVAL: i64 = 60;

/// Which rule ended a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpiryRule {
    /// No request for [`Settings::idle_timeout`].
    Idle,
    /// [`Settings::absolute_timeout`] since the session was created or cycled.
    Absolute,
}

impl ExpiryRule {
    /// `idle` or `absolute`, for logs, metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryRule::Idle => "idle",
            ExpiryRule::Absolute => "absolute",
        }
    }
}

/// The time the lifetime rules go by: the real clock, or one a test sets.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<dyn Fn() -> OffsetDateTime + Send + Sync>>);

impl Clock {
    /// The real time (the default).
    pub fn real() -> Self {
        Clock(None)
    }

    /// A clock that reads `now` (a test's: a closure over a shared offset, say).
    pub fn from_fn(now: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        Clock(Some(Arc::new(now)))
    }

    /// The current time by this clock.
    pub fn now(&self) -> OffsetDateTime {
        match &self.0 {
            None => OffsetDateTime::now_utc(),
            Some(now) => now(),
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Clock(custom)" } else { "Clock(real)" })
    }
}

/// Two clocks are equal when both are real or both are the same custom clock.
impl PartialEq for Clock {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Clock {}

/// Refuses lifetime settings that contradict each other: a touch interval not shorter than the idle timeout
/// (a session read now and then would expire before its first touch), an absolute lifetime shorter than the
/// idle timeout (the idle timeout could never apply), or a touch interval without an idle timeout.
pub fn check(settings: &Settings) -> Result<(), ConfigError> {
    let conflict = |text: String| Err(ConfigError::ConflictingSettings(text));
    match (settings.idle_timeout, settings.touch_interval) {
        (Some(idle), Some(interval)) if interval >= idle => {
            return conflict(format!(
                "SESSION_TOUCH_INTERVAL ({interval} s) must be shorter than SESSION_IDLE_TIMEOUT ({idle} s): a \
                 session that is only read would expire before its expiry is moved; use at most half the idle \
                 timeout, or leave SESSION_TOUCH_INTERVAL unset"
            ))
        }
        (None, Some(interval)) => {
            return conflict(format!(
                "SESSION_TOUCH_INTERVAL ({interval} s) is set without SESSION_IDLE_TIMEOUT: touches only move an \
                 idle timeout; set SESSION_IDLE_TIMEOUT or remove SESSION_TOUCH_INTERVAL"
            ))
        }
        _ => {}
    }
    if let (Some(idle), Some(absolute)) = (settings.idle_timeout, settings.absolute_timeout) {
        if absolute < idle {
            return conflict(format!(
                "SESSION_ABSOLUTE_TIMEOUT ({absolute} s) is shorter than SESSION_IDLE_TIMEOUT ({idle} s): the idle \
                 timeout could never apply; raise SESSION_ABSOLUTE_TIMEOUT or lower SESSION_IDLE_TIMEOUT"
            ));
        }
    }
    Ok(())
}

/// True when either rule is on.
pub fn rules_on(settings: &Settings) -> bool {
    settings.idle_timeout.is_some() || settings.absolute_timeout.is_some()
}

/// The effective touch interval in seconds: `SESSION_TOUCH_INTERVAL`, else [`DEFAULT_TOUCH_INTERVAL`] or half
/// the idle timeout when that is shorter; never below one second nor at or above the idle timeout. `None`
/// without an idle timeout (nothing slides, nothing is touched).
pub fn touch_interval(settings: &Settings) -> Option<i64> {
    let idle = settings.idle_timeout?;
    let interval = settings.touch_interval.unwrap_or(DEFAULT_TOUCH_INTERVAL.min(idle / 2));
    Some(interval.min(idle - 1).max(1).min(idle))
}

/// When the session was created or last cycled ([`CREATED_KEY`]); `None` when the key is absent or unusable.
pub fn created_at(data: &Map<String, Value>) -> Option<OffsetDateTime> {
    let seconds = match data.get(CREATED_KEY)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))?,
        _ => return None,
    };
    OffsetDateTime::from_unix_timestamp(seconds).ok()
}

/// The value [`CREATED_KEY`] takes for a session created or cycled at `now`.
pub fn created_value(now: OffsetDateTime) -> Value {
    Value::from(now.unix_timestamp())
}

/// True when the session must carry [`CREATED_KEY`] and does not (a new session, or one stored before the
/// absolute lifetime was turned on).
pub fn needs_created(settings: &Settings, data: &Map<String, Value>) -> bool {
    settings.absolute_timeout.is_some() && created_at(data).is_none()
}

/// The absolute deadline of a session, when the rule is on and the session carries its start.
pub fn absolute_deadline(settings: &Settings, data: &Map<String, Value>) -> Option<OffsetDateTime> {
    let absolute = settings.absolute_timeout?;
    Some(created_at(data)?.saturating_add(Duration::seconds(absolute)))
}

/// The expiry a store should keep for a session saved (or touched) at `now`: the earliest of Django's
/// `get_expiry_date()` (from `_session_expiry` and `SESSION_COOKIE_AGE`), `now` + the idle timeout and the
/// absolute deadline, clamped to what every store can keep. With both rules off it is Django's expiry.
pub fn store_expiry(settings: &Settings, data: &Map<String, Value>, now: OffsetDateTime) -> OffsetDateTime {
    let mut at = Expiry::from_value(data.get(EXPIRY_KEY)).date(now, settings.cookie_age);
    if let Some(idle) = settings.idle_timeout {
        at = at.min(now.saturating_add(Duration::seconds(idle)));
    }
    if let Some(deadline) = absolute_deadline(settings, data) {
        at = at.min(deadline);
    }
    clamp_storable(at)
}

/// The rule that has ended a loaded session by `now`, if one has. Only the absolute rule can be read from the
/// data; an idle session is one the store has expired itself (its expiry is the idle deadline), so a store that
/// still returns it at `now` has moved it, except when `stored_expiry` (the expiry the load reported) has passed
/// by this clock.
pub fn expired_by(
    settings: &Settings,
    data: &Map<String, Value>,
    stored_expiry: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Option<ExpiryRule> {
    if absolute_deadline(settings, data).is_some_and(|deadline| deadline <= now) {
        return Some(ExpiryRule::Absolute);
    }
    if settings.idle_timeout.is_some() && stored_expiry.is_some_and(|at| at <= now) {
        return Some(ExpiryRule::Idle);
    }
    None
}

/// For a session that a request loaded (with the expiry the store reported) and did not change: the expiry a
/// touch should move it to now, or `None` when no touch is due (no idle timeout, or the move would be shorter
/// than the touch interval — including a session held at its absolute deadline, which cannot move).
pub fn touch_due(
    settings: &Settings,
    data: &Map<String, Value>,
    stored_expiry: OffsetDateTime,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    let interval = touch_interval(settings)?;
    let next = store_expiry(settings, data, now);
    (next - stored_expiry >= Duration::seconds(interval)).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn rules(idle: Option<i64>, absolute: Option<i64>) -> Settings {
        Settings { idle_timeout: idle, absolute_timeout: absolute, ..Settings::default() }
    }

    #[test]
    fn with_the_rules_off_the_expiry_is_djangos() {
        let data = Map::new();
        let settings = Settings::default();
        assert_eq!(store_expiry(&settings, &data, at(0)), at(1_209_600));
        assert_eq!(touch_due(&settings, &data, at(10), at(0)), None);
        assert_eq!(expired_by(&settings, &data, Some(at(-1)), at(0)), None);
        assert!(!needs_created(&settings, &data));
    }

    #[test]
    fn the_store_keeps_the_earliest_deadline() {
        let mut data = Map::new();
        data.insert(CREATED_KEY.into(), created_value(at(0)));
        let settings = rules(Some(1800), Some(43_200));
        assert_eq!(store_expiry(&settings, &data, at(100)), at(1900), "idle binds");
        assert_eq!(store_expiry(&settings, &data, at(42_000)), at(43_200), "absolute binds");
        data.insert(EXPIRY_KEY.into(), Value::from(300));
        assert_eq!(store_expiry(&settings, &data, at(100)), at(400), "Django's own expiry binds");
    }

    #[test]
    fn a_touch_is_due_once_per_interval_and_never_past_the_absolute_deadline() {
        let mut data = Map::new();
        data.insert(CREATED_KEY.into(), created_value(at(0)));
        let settings = Settings { touch_interval: Some(60), ..rules(Some(1800), Some(7200)) };
        // Saved at 0: stored expiry 1800.
        assert_eq!(touch_due(&settings, &data, at(1800), at(30)), None);
        assert_eq!(touch_due(&settings, &data, at(1800), at(59)), None);
        assert_eq!(touch_due(&settings, &data, at(1800), at(60)), Some(at(1860)));
        // Near the absolute deadline the expiry cannot move any more.
        assert_eq!(touch_due(&settings, &data, at(7200), at(6000)), None);
    }

    #[test]
    fn the_absolute_rule_is_read_from_the_data() {
        let mut data = Map::new();
        let settings = rules(None, Some(3600));
        assert!(needs_created(&settings, &data));
        assert_eq!(expired_by(&settings, &data, None, at(10_000)), None, "no start recorded: not expired");
        data.insert(CREATED_KEY.into(), created_value(at(0)));
        assert!(!needs_created(&settings, &data));
        assert_eq!(expired_by(&settings, &data, None, at(3599)), None);
        assert_eq!(expired_by(&settings, &data, None, at(3600)), Some(ExpiryRule::Absolute));
        data.insert(CREATED_KEY.into(), Value::from("garbage"));
        assert!(needs_created(&settings, &data), "an unusable start is replaced");
    }

    #[test]
    fn the_touch_interval_defaults_to_a_minute_or_half_the_idle_timeout() {
        assert_eq!(touch_interval(&rules(Some(1800), None)), Some(60));
        assert_eq!(touch_interval(&rules(Some(30), None)), Some(15));
        assert_eq!(touch_interval(&rules(Some(1), None)), Some(1));
        assert_eq!(touch_interval(&rules(None, Some(100))), None);
        let explicit = Settings { touch_interval: Some(300), ..rules(Some(1800), None) };
        assert_eq!(touch_interval(&explicit), Some(300));
        let too_long = Settings { touch_interval: Some(5000), ..rules(Some(1800), None) };
        assert!(check(&too_long).is_err());
        assert_eq!(touch_interval(&too_long), Some(1799), "built in code: kept below the idle timeout");
    }
}
