//! # sessionkit for Python
//!
//! The extension module `sessionkit._native` behind the Django engines `sessionkit.django.redis` and
//! `sessionkit.django.cached_db` (Python code in `python/sessionkit`). It exposes one class, [`Store`]: a
//! [`RedisStore`] (any layout, any topology, options in the URL) with the failure policy, whose calls take a
//! session dict, convert it to JSON under the GIL ([`convert`]), then release the GIL for encoding, compression
//! and the Redis round trip. The sync session calls (`load`, `create`, `save`, …) run on the calling thread's own
//! current-thread Tokio runtime and Redis connection ([`local`]), so a round trip involves no other thread; the
//! `a…` variants return asyncio futures completed from a process-wide multi-thread runtime ([`bridge`]), which
//! also runs the maintenance calls (counting, the per-user index). `run_cli` runs one `sessionkit` command line
//! (crates/sessionkit-cli, the code of the `sessionkit` binary) for `manage.py sessionkit`.
//!
//! Every store call is counted and traced as in Rust (`sessionkit::telemetry`); [`metrics::metrics`] hands the
//! counters to Python (`sessionkit.metrics()`).
//!
//! Errors: an unreachable store raises `StoreUnavailable`, a bad URL `ConfigurationError`, other store failures
//! `SessionkitError`; data that is not JSON raises `TypeError`/`ValueError` as `json.dumps` would. Nothing here
//! panics on outside data.

// No `unsafe` here: PyO3 0.27's macros need no `allow(unsafe_code)`, so the workspace's `deny` holds in this crate.

mod bridge;
mod convert;
mod lifetime;
mod local;
mod logbridge;
mod metrics;

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::{Map, Value};
use sessionkit::store::instrumented::Instrumented;
use sessionkit::store::redis::config::{RedisOptions, Topology};
use sessionkit::store::redis::RedisStore;
use sessionkit::store::Touched;
use sessionkit::store::{cached_db, Saved, SessionStore, TreatUnavailableAsEmpty, UserSessionIndex};
use sessionkit::telemetry::StoreKind;
use sessionkit::{ChangeSet, SaveMode, SessionKey, SessionRecord, Settings, StoreError, Version};
use time::OffsetDateTime;
use tokio::runtime::Runtime;

// Named `sessionkit.exceptions.*` (the Python module re-exports them), so they report that module and pickle by
// reference to it (Celery, Django's parallel test runner).
create_exception!(sessionkit.exceptions, SessionkitError, PyException, "Base class of sessionkit's errors.");
create_exception!(
    sessionkit.exceptions,
    StoreUnavailable,
    SessionkitError,
    "The session store could not be reached, or did not answer within its timeout."
);
create_exception!(sessionkit.exceptions, ConfigurationError, SessionkitError, "The store URL or an option is invalid.");
create_exception!(
    sessionkit.exceptions,
    StoreContended,
    SessionkitError,
    "So many requests wrote the session at once that this save never got its changes in; nothing was saved."
);

/// Turns a store error into the Python exception callers see.
pub(crate) fn store_error(err: StoreError) -> PyErr {
    match err {
        StoreError::Unavailable { .. } => StoreUnavailable::new_err(err.to_string()),
        StoreError::Config(_) => ConfigurationError::new_err(err.to_string()),
        StoreError::Contended { .. } => StoreContended::new_err(err.to_string()),
        other => SessionkitError::new_err(other.to_string()),
    }
}

/// The process's Tokio runtime, made on first use. After a `fork()` the child gets a runtime of its own (the
/// parent's worker threads do not exist there); the parent's is leaked, never dropped, since dropping it would wait
/// for threads that are gone.
static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

fn runtime() -> PyResult<&'static Runtime> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((owner, runtime)) = *slot {
        if owner == pid {
            return Ok(runtime);
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("sessionkit")
        .enable_all()
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start sessionkit's Tokio runtime: {e}")))?;
    let runtime: &'static Runtime = Box::leak(Box::new(runtime));
    *slot = Some((pid, runtime));
    Ok(runtime)
}

/// A key Django would accept (8+ characters), or `None` (= no such session).
fn parse_key(key: &str) -> Option<SessionKey> {
    SessionKey::parse(key).ok()
}

fn write_key(key: &str) -> PyResult<SessionKey> {
    parse_key(key).ok_or_else(|| PyValueError::new_err("a session key has at least 8 characters"))
}

/// The record of a session Python hands over: its key, its dict, and an expiry `age` seconds from now.
fn record_from_python(key: &str, data: &Bound<'_, PyAny>, age: i64) -> PyResult<SessionRecord> {
    Ok(SessionRecord::new(write_key(key)?, convert::dict_to_map(data)?, expires_in(age)))
}

/// `now + age` seconds (Django's `get_expiry_age()` at save time), clamped to what a store can keep.
fn expires_in(age: i64) -> OffsetDateTime {
    sessionkit::expiry::clamp_storable(OffsetDateTime::now_utc().saturating_add(time::Duration::seconds(age)))
}

fn unix_seconds(at: OffsetDateTime) -> f64 {
    at.unix_timestamp_nanos() as f64 / 1e9
}

/// A Redis session store for Python (see the module docs).
#[pyclass(frozen, module = "sessionkit._native")]
pub struct Store {
    /// What requests use: the Redis store, wrapped by the failure policy.
    store: Arc<dyn SessionStore>,
    /// The same store, for listing and counting.
    redis: Arc<RedisStore>,
    runtime: &'static Runtime,
    pid: u32,
    failure_policy: &'static str,
    /// Merge parallel saves (`SESSIONKIT["MERGE"]`, default true); false: the last write wins, as in Django.
    merge: bool,
    /// How threads open their own connections for the sync session calls.
    local: Arc<local::Shared>,
    /// The lifetime rules (idle timeout, absolute lifetime, touch interval; `SESSION_COOKIE_AGE`) and their clock.
    settings: Arc<Settings>,
}

impl Store {
    /// Refuses calls that cannot block here: in a child process after fork(), or from inside a Tokio runtime (a
    /// log handler run by a store call calling a store again).
    fn check_caller(&self) -> PyResult<()> {
        self.check_caller_in(std::process::id())
    }

    /// [`Store::check_caller`] for a caller that knows the process id already.
    fn check_caller_in(&self, pid: u32) -> PyResult<()> {
        if pid != self.pid {
            return Err(SessionkitError::new_err(
                "this store was opened before fork(); open a new one in the child process",
            ));
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(SessionkitError::new_err(
                "a synchronous sessionkit call cannot run inside another sessionkit call; use the a… methods",
            ));
        }
        Ok(())
    }

    /// Runs `work` to completion on the shared runtime, with the GIL released.
    fn run<T: Send>(&self, py: Python<'_>, work: impl Future<Output = T> + Send) -> PyResult<T> {
        self.check_caller()?;
        let runtime = self.runtime;
        Ok(py.detach(move || runtime.block_on(work)))
    }

    /// Runs a session call with the GIL released: on the calling thread's own runtime and connection
    /// ([`local`]), or on the shared ones for threads that have none.
    fn run_session<T, F, Fut>(&self, py: Python<'_>, work: F) -> PyResult<Result<T, StoreError>>
    where
        T: Send,
        F: FnOnce(Arc<dyn SessionStore>) -> Fut + Send,
        Fut: Future<Output = Result<T, StoreError>> + Send,
    {
        let pid = std::process::id();
        self.check_caller_in(pid)?;
        let shared = &self.local;
        let store = self.store.clone();
        let runtime = self.runtime;
        Ok(py.detach(move || match local::run(shared, pid, work) {
            Ok(result) => result,
            Err(work) => runtime.block_on(work(store)),
        }))
    }

    /// A load, with the failure policy applied to a thread whose own connection could not even be made.
    fn load_record(&self, py: Python<'_>, key: &str) -> PyResult<Option<SessionRecord>> {
        let Some(key) = parse_key(key) else { return Ok(None) };
        match self.run_session(py, |store| async move { store.load(&key).await })? {
            Ok(record) => Ok(record),
            Err(err @ StoreError::Unavailable { .. }) if self.failure_policy == "empty" => {
                tracing::warn!(target: "sessionkit", store = %self.store.describe(), error = %err,
                    "session store unavailable; treating the session as empty (failure_policy=empty)");
                Ok(None)
            }
            Err(err) => Err(store_error(err)),
        }
    }

    /// The changes of a save, in this store's save mode.
    fn changes(&self, snapshot: Option<&Snapshot>, current: &Map<String, Value>, cleared: bool) -> ChangeSet {
        let changes = changes_from(snapshot, current, cleared);
        if self.merge {
            changes
        } else {
            changes.with_mode(SaveMode::LastWriteWins)
        }
    }

    /// The record of a save from Python: the data converted, the expiry `age` seconds from now, and the snapshot's
    /// version.
    fn save_record(
        &self,
        key: &str,
        data: &Bound<'_, PyAny>,
        age: i64,
        snapshot: Option<&Snapshot>,
    ) -> PyResult<SessionRecord> {
        let mut record = record_from_python(key, data, age)?;
        record.version = snapshot.and_then(|s| s.version.clone());
        record.expires_at = self.expiry(&record.data, record.expires_at);
        Ok(record)
    }

    /// The expiry a write gives a session holding `data`: with a lifetime rule on, [`lifetime::store_expiry`]
    /// (the earliest of Django's expiry and the rules' deadlines); else `django`, Django's `get_expiry_age()` from
    /// Python, exactly as before.
    ///
    /// [`lifetime::store_expiry`]: sessionkit::lifetime::store_expiry
    fn expiry(&self, data: &Map<String, Value>, django: OffsetDateTime) -> OffsetDateTime {
        if sessionkit::lifetime::rules_on(&self.settings) {
            sessionkit::lifetime::store_expiry(&self.settings, data, self.settings.clock.now())
        } else {
            django
        }
    }

    /// A new session's data and expiry: its absolute lifetime starts (written into the Python dict itself), then
    /// the dict is converted.
    fn new_session(&self, data: &Bound<'_, PyAny>, age: i64) -> PyResult<(Map<String, Value>, OffsetDateTime)> {
        lifetime::start(&self.settings, data)?;
        let map = convert::dict_to_map(data)?;
        let expires_at = self.expiry(&map, expires_in(age));
        Ok((map, expires_at))
    }

    /// A loaded record as Python gets it: `(dict, Snapshot)` for a live session (with [`lifetime::CREATED_KEY`]
    /// added to the dict when the session lacks it), an `Expired` for one a lifetime rule has ended.
    ///
    /// [`lifetime::CREATED_KEY`]: sessionkit::lifetime::CREATED_KEY
    fn loaded_to_python(py: Python<'_>, loaded: Option<(SessionRecord, lifetime::Judged)>) -> PyResult<Py<PyAny>> {
        let Some((record, judged)) = loaded else { return Ok(py.None()) };
        match judged {
            lifetime::Judged::Expired(expired) => Ok(Py::new(py, expired)?.into_any()),
            lifetime::Judged::Live { created, touch_due } => {
                let dict = convert::map_to_dict(py, &record.data)?;
                if let Some(created) = created {
                    dict.set_item(sessionkit::lifetime::CREATED_KEY, created)?;
                }
                let snapshot = Snapshot {
                    version: record.version,
                    data: record.data,
                    expires_at: Some(record.expires_at),
                    touch_due,
                    created_added: created.is_some(),
                };
                Ok((dict, Py::new(py, snapshot)?).into_pyobject(py)?.into_any().unbind())
            }
        }
    }

    fn index(&self) -> PyResult<&dyn UserSessionIndex> {
        self.store
            .user_index()
            .ok_or_else(|| ConfigurationError::new_err("the per-user index is off (USER_INDEX = False)"))
    }
}

/// What a load read, kept in Rust for the save of the same request: the version (for the compare-and-set) and the
/// data as loaded (to tell which keys the request changed). The engines keep it next to the session dict.
#[pyclass(frozen, module = "sessionkit._native")]
pub struct Snapshot {
    version: Option<Version>,
    data: Map<String, Value>,
    /// The expiry the store reported (or was given), for the touch of an idle timeout.
    expires_at: Option<OffsetDateTime>,
    /// The load found an idle timeout's touch due: the engine marks the session modified, and its save (with no
    /// changes) becomes the touch.
    touch_due: bool,
    /// The load added the absolute lifetime's start to the dict: the engine marks the session modified.
    created_added: bool,
}

impl Snapshot {
    /// What a store read or wrote: `data` under `version`, expiring at `expires_at`.
    fn new(version: Option<Version>, data: Map<String, Value>, expires_at: Option<OffsetDateTime>) -> Snapshot {
        Snapshot { version, data, expires_at, touch_due: false, created_added: false }
    }
}

#[pymethods]
impl Snapshot {
    /// A snapshot of data read elsewhere (the database part of `cached_db`), with no store version; `expires_at`
    /// (Unix seconds) is the expiry stored with it, if known.
    #[staticmethod]
    #[pyo3(signature = (data, expires_at = None))]
    fn of(data: &Bound<'_, PyAny>, expires_at: Option<f64>) -> PyResult<Snapshot> {
        Ok(Snapshot::new(None, convert::dict_to_map(data)?, expires_at.and_then(from_unix_seconds)))
    }

    /// The expiry the store reported with the data (Unix seconds), if known.
    #[getter]
    fn expires_at(&self) -> Option<f64> {
        self.expires_at.map(unix_seconds)
    }

    /// True when the load found an idle timeout's touch due (the engine then saves; the save only moves the
    /// expiry).
    #[getter]
    fn touch_due(&self) -> bool {
        self.touch_due
    }

    /// True when the load added `_sessionkit_created` to the dict (the engine then saves once for it).
    #[getter]
    fn created_added(&self) -> bool {
        self.created_added
    }
}

/// Unix seconds as a time (`None` when out of range or not a number).
fn from_unix_seconds(seconds: f64) -> Option<OffsetDateTime> {
    if !seconds.is_finite() {
        return None;
    }
    OffsetDateTime::from_unix_timestamp_nanos((seconds * 1e9) as i128).ok()
}

/// The changes a save from Python makes: the keys whose value differs from the snapshot (compared whole, so a
/// nested value changed in place counts) and the keys gone; after `clear()`, or with no snapshot (a session the
/// request never loaded), the whole session replaces what is stored.
fn changes_from(snapshot: Option<&Snapshot>, current: &Map<String, Value>, cleared: bool) -> ChangeSet {
    match snapshot {
        // After `clear()`, every key the session holds now was set after the clear (even one set back to the
        // value it was loaded with).
        Some(_) if cleared => ChangeSet::replacing(current),
        Some(snapshot) => ChangeSet::between(&snapshot.data, current),
        None => ChangeSet::replacing(current),
    }
}

/// A save from Python: the record (with the snapshot's version) merged into what is stored. `None` when the
/// session vanished; else the merged data when another request's writes were merged in, and the new snapshot.
///
/// Under an idle timeout, a save that changes nothing of a session this request loaded is no rewrite: a touch
/// ([`SessionStore::touch`], an expiry-only write) when one is due by [`sessionkit::lifetime::touch_due`] from the
/// expiry the load reported (`stored_expiry`), else nothing at all.
async fn save_from_python(
    store: &dyn SessionStore,
    settings: &Settings,
    mut record: SessionRecord,
    changes: ChangeSet,
    stored_expiry: Option<OffsetDateTime>,
) -> Result<Option<(Option<Map<String, Value>>, Snapshot)>, StoreError> {
    if settings.idle_timeout.is_some() && changes.is_empty() && record.version.is_some() {
        let now = settings.clock.now();
        let due = stored_expiry.and_then(|at| sessionkit::lifetime::touch_due(settings, &record.data, at, now));
        let Some(at) = due else {
            return Ok(Some((None, Snapshot::new(record.version, record.data, stored_expiry))));
        };
        record.expires_at = at;
        match store.touch(&record).await? {
            Touched::Moved => return Ok(Some((None, Snapshot::new(record.version, record.data, Some(at))))),
            Touched::Vanished => return Ok(None),
            Touched::Unsupported => {} // saved whole below
        }
    }
    match store.save(&record, &changes).await {
        Ok(Saved { version, merged, .. }) => {
            let merged = merged.map(|merged| merged.data);
            let data = match &merged {
                Some(data) => data.clone(),
                None => std::mem::take(&mut record.data),
            };
            Ok(Some((merged, Snapshot::new(version, data, Some(record.expires_at)))))
        }
        Err(StoreError::SessionVanished) => Ok(None),
        Err(err) => Err(err),
    }
}

/// The Python result of [`save_from_python`]: `None`, or `(merged dict or None, Snapshot)`.
fn saved_to_python(py: Python<'_>, saved: Option<(Option<Map<String, Value>>, Snapshot)>) -> PyResult<Py<PyAny>> {
    let Some((merged, snapshot)) = saved else { return Ok(py.None()) };
    let merged = match merged {
        Some(data) => convert::map_to_dict(py, &data)?.into_any().unbind(),
        None => py.None(),
    };
    Ok((merged, Py::new(py, snapshot)?).into_pyobject(py)?.into_any().unbind())
}

/// A cache copy for `cached_db` (see [`Store::write_copy`]): [`cached_db::write_cache_copy`], compared with what
/// the snapshot read (the changes between its data and `record`'s go along for the per-user index). The new
/// snapshot, or `None` when the cache stepped aside.
async fn write_copy(
    store: &dyn SessionStore,
    mut record: SessionRecord,
    snapshot: Option<(Option<Version>, ChangeSet)>,
    db_write_took: Duration,
) -> Result<Option<Snapshot>, StoreError> {
    let changes = match snapshot {
        Some((version, changes)) => {
            record.version = version;
            changes
        }
        None => ChangeSet::default(),
    };
    let version = cached_db::write_cache_copy(store, &record, &changes, db_write_took).await?;
    Ok(version.map(|version| Snapshot::new(Some(version), record.data, Some(record.expires_at))))
}

/// A `cached_db` refill ([`cached_db::refill_cache`]): the snapshot of the copy made, or `None`.
async fn refill(
    store: &dyn SessionStore,
    record: SessionRecord,
    db_read_took: Duration,
) -> Result<Option<Snapshot>, StoreError> {
    let version = cached_db::refill_cache(store, &record, db_read_took).await?;
    Ok(version.map(|version| Snapshot::new(Some(version), record.data, Some(record.expires_at))))
}

/// What a cache write compares with: the snapshot's version and the changes from its data to `record`'s.
fn seen_copy(snapshot: Option<&Snapshot>, record: &SessionRecord) -> Option<(Option<Version>, ChangeSet)> {
    snapshot.map(|snapshot| (snapshot.version.clone(), ChangeSet::between(&snapshot.data, &record.data)))
}

/// Seconds measured in Python as a duration (negative or not a number: zero; too large: the largest).
fn took(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX)
}

/// A snapshot (or `None`) as a Python object.
fn snapshot_to_python(py: Python<'_>, snapshot: Option<Snapshot>) -> PyResult<Py<PyAny>> {
    Ok(match snapshot {
        Some(snapshot) => Py::new(py, snapshot)?.into_any(),
        None => py.None(),
    })
}

/// Creates a session under fresh keys until one is free (one round trip unless a key collides). The record
/// written, with the version the store gave it.
async fn create_new(
    store: &dyn SessionStore,
    map: serde_json::Map<String, serde_json::Value>,
    expires_at: OffsetDateTime,
) -> Result<SessionRecord, StoreError> {
    let mut record = SessionRecord::new(SessionKey::generate(), map, expires_at);
    for _ in 0..100 {
        match store.create(&record).await {
            Ok(version) => return Ok(SessionRecord { version, ..record }),
            Err(StoreError::KeyCollision) => record.key = SessionKey::generate(),
            Err(other) => return Err(other),
        }
    }
    Err(StoreError::KeyCollision)
}

fn none(py: Python<'_>) -> Py<PyAny> {
    py.None()
}

#[pymethods]
impl Store {
    /// Opens a Redis store from a URL (`redis://…?layout=…`, see docs/redis.md). `failure_policy` is `"error"`
    /// (an unreachable Redis raises `StoreUnavailable`) or `"empty"` (loads give no session instead).
    /// `thread_connections`: at most this many threads get a Redis connection of their own for the sync session
    /// calls (default 64; 0: all calls share one connection; always 0 with `client_cache=on` in the URL).
    #[staticmethod]
    ///
    /// The lifetime rules (`sessionkit::lifetime`; all off by default, Django's behaviour): `idle_timeout`,
    /// `absolute_timeout` and `touch_interval` in seconds (`SESSION_IDLE_TIMEOUT`, `SESSION_ABSOLUTE_TIMEOUT`,
    /// `SESSION_TOUCH_INTERVAL`) and `cookie_age` (`SESSION_COOKIE_AGE`, which the store expiry also goes by while
    /// a rule is on). Contradicting values raise `ConfigurationError`.
    #[pyo3(signature = (
        url, failure_policy = "error", thread_connections = local::DEFAULT_MAX_THREAD_CONNECTIONS, merge = true,
        idle_timeout = None, absolute_timeout = None, touch_interval = None, cookie_age = 1_209_600
    ))]
    #[allow(clippy::too_many_arguments)] // keyword arguments from Python
    fn connect(
        py: Python<'_>,
        url: &str,
        failure_policy: &str,
        thread_connections: usize,
        merge: bool,
        idle_timeout: Option<i64>,
        absolute_timeout: Option<i64>,
        touch_interval: Option<i64>,
        cookie_age: i64,
    ) -> PyResult<Store> {
        let settings = lifetime::settings(idle_timeout, absolute_timeout, touch_interval, cookie_age)?;
        let failure_policy = match failure_policy {
            "error" => "error",
            "empty" => "empty",
            other => {
                return Err(ConfigurationError::new_err(format!(
                    "FAILURE_POLICY {other:?} is not \"error\" or \"empty\""
                )))
            }
        };
        let runtime = runtime()?;
        let url = url.to_owned();
        let url_for_threads = url.clone();
        let redis = py.detach(move || runtime.block_on(RedisStore::connect(&url))).map_err(store_error)?;
        let redis = Arc::new(redis);
        let plain: Arc<dyn SessionStore> = Arc::new(Instrumented::new(redis.clone(), StoreKind::Redis));
        let store: Arc<dyn SessionStore> =
            if failure_policy == "empty" { Arc::new(TreatUnavailableAsEmpty::new(plain)) } else { plain };
        // With `client_cache=on` every sync call uses the shared store: its cache answers loads on the calling
        // thread with no hop, and per-thread stores would each keep a cache and a tracking connection of their own.
        let thread_connections = if redis.options().client_cache { 0 } else { thread_connections };
        let local = Arc::new(local::Shared::new(url_for_threads, failure_policy == "empty", thread_connections));
        Ok(Store { store, redis, runtime, pid: std::process::id(), failure_policy, merge, local, settings })
    }

    /// The store, without credentials (for logs).
    #[getter]
    fn describe(&self) -> String {
        self.store.describe()
    }

    /// `string`, `hash` or `django-cache`.
    #[getter]
    fn layout(&self) -> &'static str {
        self.redis.options().layout.as_str()
    }

    /// `error` or `empty`.
    #[getter]
    fn failure_policy(&self) -> &'static str {
        self.failure_policy
    }

    /// True when parallel saves merge (the default), false when the last write wins.
    #[getter]
    fn merge(&self) -> bool {
        self.merge
    }

    /// How many threads have a Redis connection of their own to this store now (the sync session calls of a
    /// thread use one from its fifth call on; see the `local` module).
    #[getter]
    fn thread_connections(&self) -> usize {
        self.local.thread_connections()
    }

    /// The most threads that get a connection of their own (`connect(thread_connections=…)`).
    #[getter]
    fn max_thread_connections(&self) -> usize {
        self.local.max_connections()
    }

    /// The session's data, or `None` when there is no live session under `key` (unknown, expired, or a key no
    /// store would hold). Corrupt data loads as `{}` with a log line on `sessionkit.corrupt`.
    fn load<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.load_record(py, key)?.map(|record| convert::map_to_dict(py, &record.data)).transpose()
    }

    /// Like [`Store::load`], with what the save of the same request needs: `(dict, Snapshot)`, or `None`.
    ///
    /// Under the lifetime rules, a session a rule has ended is deleted and given as an `Expired` (which rule,
    /// the session's id, its user); a live one lacking `_sessionkit_created` gets it in the dict
    /// (`Snapshot.created_added`), and `Snapshot.touch_due` says an idle timeout's touch is due.
    fn load_versioned(&self, py: Python<'_>, key: &str) -> PyResult<Py<PyAny>> {
        let Some(record) = self.load_record(py, key)? else { return Ok(py.None()) };
        let judged = lifetime::judge(&self.settings, &record.key, &record.data, Some(record.expires_at));
        if let lifetime::Judged::Expired(_) = &judged {
            let doomed = record.key.clone();
            let deleted = self.run_session(py, |store| async move { store.delete(&doomed).await })?;
            if let Err(err) = deleted {
                // The store's own expiry removes it anyway; the request goes on with a new session.
                tracing::warn!(target: "sessionkit", store = %self.store.describe(), error = %err,
                    "could not delete a session ended by its lifetime rule");
            }
        }
        Self::loaded_to_python(py, Some((record, judged)))
    }

    /// Judges a session read elsewhere (the database part of `cached_db`): `data` with the expiry stored with it
    /// (`expires_at`, Unix seconds). An `Expired` when a lifetime rule has ended it (nothing is deleted: the
    /// caller deletes); else the `Snapshot` of the data as read, after adding `_sessionkit_created` to the dict
    /// when it lacks it (`created_added`; `touch_due` as for a load).
    fn judge_loaded(
        &self,
        py: Python<'_>,
        key: &str,
        data: &Bound<'_, PyAny>,
        expires_at: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let key = write_key(key)?;
        let map = convert::dict_to_map(data)?;
        let stored = expires_at.and_then(from_unix_seconds);
        match lifetime::judge(&self.settings, &key, &map, stored) {
            lifetime::Judged::Expired(expired) => Ok(Py::new(py, expired)?.into_any()),
            lifetime::Judged::Live { created, touch_due } => {
                if let Some(created) = created {
                    data.set_item(sessionkit::lifetime::CREATED_KEY, created)?;
                }
                let snapshot =
                    Snapshot { touch_due, created_added: created.is_some(), ..Snapshot::new(None, map, stored) };
                Ok(Py::new(py, snapshot)?.into_any())
            }
        }
    }

    /// True when a lifetime rule (idle timeout or absolute lifetime) is on.
    #[getter]
    fn lifetime_rules(&self) -> bool {
        sessionkit::lifetime::rules_on(&self.settings)
    }

    /// The expiry (Unix seconds) a write now gives a session holding `data` under the lifetime rules
    /// (`sessionkit::lifetime::store_expiry`), or `None` when both rules are off (Django's expiry applies).
    fn store_expiry(&self, data: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
        if !sessionkit::lifetime::rules_on(&self.settings) {
            return Ok(None);
        }
        let map = convert::dict_to_map(data)?;
        let now = self.settings.clock.now();
        Ok(Some(unix_seconds(sessionkit::lifetime::store_expiry(&self.settings, &map, now))))
    }

    /// Starts the absolute lifetime of a session created now: writes `_sessionkit_created` into `data` (nothing
    /// without an absolute timeout). For a session whose creation is written outside this store (`cached_db`'s
    /// database row).
    fn start_lifetime(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        lifetime::start(&self.settings, data)
    }

    /// The save of a session whose database part is written elsewhere (`cached_db`), under an idle timeout: `None`
    /// when the save must write (a change since `snapshot`, a clear, no idle timeout, no snapshot); else `0.0`
    /// when nothing is to be written at all, or the expiry (Unix seconds, > 0) a touch moves the session to now
    /// (`sessionkit::lifetime::touch_due` from `snapshot.expires_at`).
    #[pyo3(signature = (data, snapshot = None, cleared = false))]
    fn unchanged_touch(
        &self,
        data: &Bound<'_, PyAny>,
        snapshot: Option<PyRef<'_, Snapshot>>,
        cleared: bool,
    ) -> PyResult<Option<f64>> {
        let Some(snapshot) = snapshot else { return Ok(None) };
        if self.settings.idle_timeout.is_none() || cleared {
            return Ok(None);
        }
        let map = convert::dict_to_map(data)?;
        if !ChangeSet::between(&snapshot.data, &map).is_empty() {
            return Ok(None);
        }
        let now = self.settings.clock.now();
        let due = snapshot.expires_at.and_then(|at| sessionkit::lifetime::touch_due(&self.settings, &map, at, now));
        Ok(Some(due.map_or(0.0, unix_seconds)))
    }

    /// Moves a stored session's expiry to `expires_at` (Unix seconds) without rewriting it (`PEXPIREAT` and the
    /// value header; the per-user index entry of the user in `data`). `False` when no such session is stored.
    fn touch(&self, py: Python<'_>, key: &str, data: &Bound<'_, PyAny>, expires_at: f64) -> PyResult<bool> {
        let at = from_unix_seconds(expires_at)
            .ok_or_else(|| PyValueError::new_err("expires_at must be a time in Unix seconds"))?;
        let record = SessionRecord::new(write_key(key)?, convert::dict_to_map(data)?, at);
        let touched = self.run_session(py, |store| async move { store.touch(&record).await })?.map_err(store_error)?;
        Ok(touched == Touched::Moved)
    }

    /// Async [`Store::touch`].
    fn atouch<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        data: &Bound<'_, PyAny>,
        expires_at: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let at = from_unix_seconds(expires_at)
            .ok_or_else(|| PyValueError::new_err("expires_at must be a time in Unix seconds"))?;
        let record = SessionRecord::new(write_key(key)?, convert::dict_to_map(data)?, at);
        let store = self.store.clone();
        bridge::spawn(py, self.runtime, async move { store.touch(&record).await }, |py, touched| {
            Ok(pyo3::types::PyBool::new(py, touched == Touched::Moved).to_owned().into_any().unbind())
        })
    }

    /// Saves this request's changes to a stored session, merged with what other requests wrote since it was
    /// loaded (`snapshot`, from [`Store::load_versioned`]; `None` for a session this request never loaded, whose
    /// data then replaces what is stored). `cleared`: the request called `clear()`. Returns `None` when the
    /// session no longer exists (it is never re-created), else `(merged, snapshot)`: the session as stored when
    /// other requests' keys were merged in (else `None`), and the snapshot for a later save.
    #[pyo3(signature = (key, data, age, snapshot = None, cleared = false))]
    fn save_changes(
        &self,
        py: Python<'_>,
        key: &str,
        data: &Bound<'_, PyAny>,
        age: i64,
        snapshot: Option<PyRef<'_, Snapshot>>,
        cleared: bool,
    ) -> PyResult<Py<PyAny>> {
        let record = self.save_record(key, data, age, snapshot.as_deref())?;
        let changes = self.changes(snapshot.as_deref(), &record.data, cleared);
        let stored = snapshot.as_deref().and_then(|s| s.expires_at);
        let settings = self.settings.clone();
        let saved = self.run_session(py, |store| async move {
            save_from_python(store.as_ref(), &settings, record, changes, stored).await
        })?;
        saved_to_python(py, saved.map_err(store_error)?)
    }

    /// Async [`Store::save_changes`].
    #[pyo3(signature = (key, data, age, snapshot = None, cleared = false))]
    fn asave_changes<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        data: &Bound<'_, PyAny>,
        age: i64,
        snapshot: Option<PyRef<'_, Snapshot>>,
        cleared: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let record = self.save_record(key, data, age, snapshot.as_deref())?;
        let changes = self.changes(snapshot.as_deref(), &record.data, cleared);
        let stored = snapshot.as_deref().and_then(|s| s.expires_at);
        let (store, settings) = (self.store.clone(), self.settings.clone());
        bridge::spawn(
            py,
            self.runtime,
            async move { save_from_python(store.as_ref(), &settings, record, changes, stored).await },
            saved_to_python,
        )
    }

    /// The cache part of `cached_db`: makes the cache hold `data` (what the database now holds) if it still holds
    /// what `snapshot` read, or, with no snapshot, if it holds nothing. When another request changed the cached copy
    /// meanwhile (a newer copy, or a logout's tombstone), a tombstone replaces it instead, so loads read the database
    /// for a minute: a stale copy never overwrites a newer one. Returns the new snapshot, or `None`.
    /// `db_seconds`: how long the database write took; past the refill deadline the cache steps aside.
    #[pyo3(signature = (key, data, age, snapshot = None, db_seconds = 0.0))]
    fn write_copy(
        &self,
        py: Python<'_>,
        key: &str,
        data: &Bound<'_, PyAny>,
        age: i64,
        snapshot: Option<PyRef<'_, Snapshot>>,
        db_seconds: f64,
    ) -> PyResult<Option<Snapshot>> {
        let record = record_from_python(key, data, age)?;
        let seen = seen_copy(snapshot.as_deref(), &record);
        let took = took(db_seconds);
        self.run_session(py, |store| async move { write_copy(store.as_ref(), record, seen, took).await })?
            .map_err(store_error)
    }

    /// The cache part of `cached_db` after a database read: puts `data` into the cache unless the cache holds an
    /// entry for `key` (a logout's tombstone, or another request's copy). Returns the snapshot of the copy made, or
    /// `None`. `db_seconds`: how long the database read took; past the refill deadline nothing is refilled.
    #[pyo3(signature = (key, data, age, db_seconds = 0.0))]
    fn refill(
        &self,
        py: Python<'_>,
        key: &str,
        data: &Bound<'_, PyAny>,
        age: i64,
        db_seconds: f64,
    ) -> PyResult<Option<Snapshot>> {
        let record = record_from_python(key, data, age)?;
        let took = took(db_seconds);
        self.run_session(py, |store| async move { refill(store.as_ref(), record, took).await })?.map_err(store_error)
    }

    /// Async [`Store::refill`].
    #[pyo3(signature = (key, data, age, db_seconds = 0.0))]
    fn arefill<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        data: &Bound<'_, PyAny>,
        age: i64,
        db_seconds: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let record = record_from_python(key, data, age)?;
        let took = took(db_seconds);
        let store = self.store.clone();
        bridge::spawn(py, self.runtime, async move { refill(store.as_ref(), record, took).await }, snapshot_to_python)
    }

    /// The cache part of `cached_db` at a delete: replaces the cached copy with a tombstone for a minute, so a
    /// refill from a database read made before the delete cannot bring the session back (Django's own engine reads
    /// the tombstone as a miss).
    fn bury(&self, py: Python<'_>, key: &str) -> PyResult<()> {
        let Some(key) = parse_key(key) else { return Ok(()) };
        self.run_session(py, |store| async move { cached_db::bury(store.as_ref(), &key).await })?.map_err(store_error)
    }

    /// Async [`Store::bury`].
    fn abury<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyAny>> {
        let store = self.store.clone();
        let key = parse_key(key);
        bridge::spawn(
            py,
            self.runtime,
            async move {
                match key {
                    Some(key) => cached_db::bury(store.as_ref(), &key).await,
                    None => Ok(()),
                }
            },
            |py, ()| Ok(none(py)),
        )
    }

    /// Async [`Store::write_copy`].
    #[pyo3(signature = (key, data, age, snapshot = None, db_seconds = 0.0))]
    fn awrite_copy<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        data: &Bound<'_, PyAny>,
        age: i64,
        snapshot: Option<PyRef<'_, Snapshot>>,
        db_seconds: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let record = record_from_python(key, data, age)?;
        let seen = seen_copy(snapshot.as_deref(), &record);
        let took = took(db_seconds);
        let store = self.store.clone();
        bridge::spawn(
            py,
            self.runtime,
            async move { write_copy(store.as_ref(), record, seen, took).await },
            snapshot_to_python,
        )
    }

    /// Stores a new session; `False` if `key` is taken. `age` = seconds until it expires.
    fn create(&self, py: Python<'_>, key: &str, data: &Bound<'_, PyAny>, age: i64) -> PyResult<bool> {
        let (map, expires_at) = self.new_session(data, age)?;
        let record = SessionRecord::new(write_key(key)?, map, expires_at);
        match self.run_session(py, |store| async move { store.create(&record).await })? {
            Ok(_) => Ok(true),
            Err(StoreError::KeyCollision) => Ok(false),
            Err(err) => Err(store_error(err)),
        }
    }

    /// Stores a new session under a fresh key (retrying on the rare collision) and returns the key.
    fn create_new(&self, py: Python<'_>, data: &Bound<'_, PyAny>, age: i64) -> PyResult<String> {
        let (map, at) = self.new_session(data, age)?;
        let created = self.run_session(py, |store| async move { create_new(store.as_ref(), map, at).await })?;
        Ok(created.map_err(store_error)?.key.as_str().to_owned())
    }

    /// Like [`Store::create_new`], with what a later save of the same request needs: `(key, Snapshot)`. Under an
    /// absolute lifetime, `_sessionkit_created` is written into `data` itself first (a create, and `cycle_key`
    /// through it, starts the lifetime again).
    fn create_fresh(&self, py: Python<'_>, data: &Bound<'_, PyAny>, age: i64) -> PyResult<(String, Snapshot)> {
        let (map, at) = self.new_session(data, age)?;
        let created = self.run_session(py, |store| async move { create_new(store.as_ref(), map, at).await })?;
        let record = created.map_err(store_error)?;
        let snapshot = Snapshot::new(record.version, record.data, Some(record.expires_at));
        Ok((record.key.as_str().to_owned(), snapshot))
    }

    /// Async [`Store::create_fresh`].
    fn acreate_fresh<'py>(&self, py: Python<'py>, data: &Bound<'_, PyAny>, age: i64) -> PyResult<Bound<'py, PyAny>> {
        let (map, at) = self.new_session(data, age)?;
        let store = self.store.clone();
        bridge::spawn(py, self.runtime, async move { create_new(store.as_ref(), map, at).await }, |py, record| {
            let key = record.key.as_str().to_owned();
            let snapshot = Py::new(py, Snapshot::new(record.version, record.data, Some(record.expires_at)))?;
            Ok((key, snapshot).into_pyobject(py)?.into_any().unbind())
        })
    }

    /// Replaces a stored session with `data` whole; `False` if it no longer exists (it is never re-created). The
    /// engines save with [`Store::save_changes`], which keeps other requests' writes.
    fn save(&self, py: Python<'_>, key: &str, data: &Bound<'_, PyAny>, age: i64) -> PyResult<bool> {
        let record = record_from_python(key, data, age)?;
        let changes = ChangeSet::replacing(&record.data);
        match self.run_session(py, |store| async move { store.save(&record, &changes).await })? {
            Ok(_) => Ok(true),
            Err(StoreError::SessionVanished) => Ok(false),
            Err(err) => Err(store_error(err)),
        }
    }

    /// True when a session is stored under `key`.
    fn exists(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        let Some(key) = parse_key(key) else { return Ok(false) };
        self.run_session(py, |store| async move { store.exists(&key).await })?.map_err(store_error)
    }

    /// Deletes a session (a missing one is not an error).
    fn delete(&self, py: Python<'_>, key: &str) -> PyResult<()> {
        let Some(key) = parse_key(key) else { return Ok(()) };
        self.run_session(py, |store| async move { store.delete(&key).await })?.map_err(store_error)
    }

    /// Removes expired sessions where Redis does not do it itself (the `hash` layout before Redis 7.4); returns
    /// how many.
    fn clear_expired(&self, py: Python<'_>) -> PyResult<u64> {
        self.run(py, self.store.clear_expired())?.map_err(store_error)
    }

    /// Async [`Store::load`].
    fn aload<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyAny>> {
        let store = self.store.clone();
        let key = parse_key(key);
        bridge::spawn(
            py,
            self.runtime,
            async move {
                match key {
                    Some(key) => store.load(&key).await,
                    None => Ok(None),
                }
            },
            |py, record| match record {
                Some(record) => Ok(convert::map_to_dict(py, &record.data)?.into_any().unbind()),
                None => Ok(none(py)),
            },
        )
    }

    /// Async [`Store::create`].
    fn acreate<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        data: &Bound<'_, PyAny>,
        age: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (map, expires_at) = self.new_session(data, age)?;
        let record = SessionRecord::new(write_key(key)?, map, expires_at);
        let store = self.store.clone();
        bridge::spawn(
            py,
            self.runtime,
            async move {
                match store.create(&record).await {
                    Ok(_) => Ok(true),
                    Err(StoreError::KeyCollision) => Ok(false),
                    Err(err) => Err(err),
                }
            },
            |py, created| Ok(pyo3::types::PyBool::new(py, created).to_owned().into_any().unbind()),
        )
    }

    /// Async [`Store::create_new`].
    fn acreate_new<'py>(&self, py: Python<'py>, data: &Bound<'_, PyAny>, age: i64) -> PyResult<Bound<'py, PyAny>> {
        let (map, at) = self.new_session(data, age)?;
        let store = self.store.clone();
        bridge::spawn(py, self.runtime, async move { create_new(store.as_ref(), map, at).await }, |py, record| {
            Ok(pyo3::types::PyString::new(py, record.key.as_str()).into_any().unbind())
        })
    }

    /// Async [`Store::load_versioned`].
    fn aload_versioned<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyAny>> {
        let (store, settings) = (self.store.clone(), self.settings.clone());
        let key = parse_key(key);
        bridge::spawn(
            py,
            self.runtime,
            async move {
                let Some(key) = key else { return Ok(None) };
                let Some(record) = store.load(&key).await? else { return Ok(None) };
                let judged = lifetime::judge(&settings, &record.key, &record.data, Some(record.expires_at));
                if let lifetime::Judged::Expired(_) = &judged {
                    if let Err(err) = store.delete(&record.key).await {
                        tracing::warn!(target: "sessionkit", store = %store.describe(), error = %err,
                            "could not delete a session ended by its lifetime rule");
                    }
                }
                Ok(Some((record, judged)))
            },
            Self::loaded_to_python,
        )
    }

    /// Async [`Store::exists`].
    fn aexists<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyAny>> {
        let store = self.store.clone();
        let key = parse_key(key);
        bridge::spawn(
            py,
            self.runtime,
            async move {
                match key {
                    Some(key) => store.exists(&key).await,
                    None => Ok(false),
                }
            },
            |py, found| Ok(pyo3::types::PyBool::new(py, found).to_owned().into_any().unbind()),
        )
    }

    /// Async [`Store::delete`].
    fn adelete<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyAny>> {
        let store = self.store.clone();
        let key = parse_key(key);
        bridge::spawn(
            py,
            self.runtime,
            async move {
                match key {
                    Some(key) => store.delete(&key).await,
                    None => Ok(()),
                }
            },
            |py, ()| Ok(none(py)),
        )
    }

    /// Async [`Store::clear_expired`].
    fn aclear_expired<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let store = self.store.clone();
        bridge::spawn(py, self.runtime, async move { store.clear_expired().await }, |py, n| {
            Ok(n.into_pyobject(py)?.into_any().unbind())
        })
    }

    /// A user's live sessions (per-user index), most recently seen first: dicts with `id`, `created`,
    /// `last_seen`, `expires_at` (Unix seconds or `None`), `user_agent`, `ip`.
    fn user_sessions<'py>(&self, py: Python<'py>, user_id: &str) -> PyResult<Bound<'py, PyList>> {
        let index = self.index()?;
        let sessions = self.run(py, index.list(user_id))?.map_err(store_error)?;
        let list = PyList::empty(py);
        for session in sessions {
            let item = PyDict::new(py);
            item.set_item("id", session.id)?;
            item.set_item("created", session.created.map(unix_seconds))?;
            item.set_item("last_seen", session.last_seen.map(unix_seconds))?;
            item.set_item("expires_at", unix_seconds(session.expires_at))?;
            item.set_item("user_agent", session.user_agent)?;
            item.set_item("ip", session.ip)?;
            list.append(item)?;
        }
        Ok(list)
    }

    /// Deletes one of a user's sessions by its id (from `user_sessions`); `False` if the user has no such session.
    fn delete_user_session(&self, py: Python<'_>, user_id: &str, session_id: &str) -> PyResult<bool> {
        let index = self.index()?;
        self.run(py, index.delete_one(user_id, session_id))?.map_err(store_error)
    }

    /// Deletes all of a user's sessions except the one under `keep`; returns how many were deleted.
    #[pyo3(signature = (user_id, keep = None))]
    fn delete_user_sessions(&self, py: Python<'_>, user_id: &str, keep: Option<&str>) -> PyResult<u64> {
        let index = self.index()?;
        let keep = keep.and_then(parse_key);
        self.run(py, index.delete_all(user_id, keep.as_ref()))?.map_err(store_error)
    }

    /// How many sessions are stored (SCAN; unswept expired `hash` fields count).
    fn count(&self, py: Python<'_>) -> PyResult<u64> {
        let redis = self.redis.clone();
        self.run(py, async move { redis.count().await })?.map_err(store_error)
    }
}

/// This request's changes (from `snapshot`, what it loaded, to `current`, what it saves; a clear when `cleared`)
/// applied to `stored`, the session as stored now: what a save writes when another request wrote meanwhile.
/// `cached_db` merges its database rows with it.
#[pyfunction]
#[pyo3(signature = (stored, snapshot, current, cleared = false))]
fn merge<'py>(
    py: Python<'py>,
    stored: &Bound<'py, PyAny>,
    snapshot: Option<PyRef<'py, Snapshot>>,
    current: &Bound<'py, PyAny>,
    cleared: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let stored = convert::dict_to_map(stored)?;
    let current = convert::dict_to_map(current)?;
    let changes = changes_from(snapshot.as_deref(), &current, cleared);
    let at = OffsetDateTime::UNIX_EPOCH;
    let key = SessionKey::parse("merge-only").map_err(|e| PyValueError::new_err(e.to_string()))?;
    let merged = changes.apply(&SessionRecord::new(key.clone(), stored, at), &SessionRecord::new(key, current, at));
    convert::map_to_dict(py, &merged.data)
}

/// The id under which a session appears in the per-user index (first 128 bits of SHA-256 of the key, hex).
#[pyfunction]
fn session_id(key: &str) -> PyResult<String> {
    Ok(sessionkit::store::user_index::session_id(&write_key(key)?))
}

/// Runs one `sessionkit` command line (`argv[0]` is the program name shown in usage lines) with the code of the
/// `sessionkit` binary, embedded ([`sessionkit_cli::run_embedded`]: no `--secret-file` or environment variables in
/// its help), on the shared runtime with the GIL released, without progress bars. `store_url` is the store used
/// when `argv` has no `--store`; `settings` holds Django's settings by name (SECRET_KEY, SECRET_KEY_FALLBACKS as a
/// JSON list, SESSION_COOKIE_AGE, ...), read instead of the process environment. Returns `(exit code, stdout
/// text, stderr text)`, exit codes as in docs/cli.md.
#[pyfunction]
#[pyo3(signature = (argv, store_url = None, settings = None))]
fn run_cli(
    py: Python<'_>,
    argv: Vec<String>,
    store_url: Option<String>,
    settings: Option<HashMap<String, String>>,
) -> PyResult<(u8, String, String)> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(SessionkitError::new_err("run_cli cannot run inside another sessionkit call"));
    }
    let runtime = runtime()?;
    let settings = settings.unwrap_or_default();
    let env = sessionkit_cli::Environment {
        store: store_url,
        settings_lookup: Box::new(move |name| settings.get(name).cloned()),
        progress: false,
    };
    let (code, out, err) = py.detach(move || {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
            runtime.block_on(sessionkit_cli::run_embedded(argv, &env, &mut out, &mut err))
        }));
        let code = ran.unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".to_owned());
            err.extend_from_slice(format!("sessionkit: internal error: {}\n", message.replace('\n', " ")).as_bytes());
            sessionkit_cli::EXIT_ERROR
        });
        (code, out, err)
    });
    Ok((code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned()))
}

/// What a Redis store URL configures, without connecting: `{"layout": "string" | "hash" | "django-cache",
/// "topology": "standalone" | "sentinel" | "cluster"}`. An invalid URL raises `ConfigurationError` with the same
/// message `Store.connect` would give (Django's system checks report it before any connection).
#[pyfunction]
fn parse_redis_url(url: &str) -> PyResult<HashMap<&'static str, &'static str>> {
    let options = RedisOptions::from_url(url).map_err(|err| store_error(err.into()))?;
    let layout = options.layout.as_str();
    let topology = match options.topology {
        Topology::Standalone { .. } => "standalone",
        Topology::Sentinel { .. } => "sentinel",
        Topology::Cluster { .. } => "cluster",
    };
    Ok(HashMap::from([("layout", layout), ("topology", topology)]))
}

/// The extension module `sessionkit._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    logbridge::install();
    metrics::install();
    m.add_class::<Store>()?;
    m.add_class::<Snapshot>()?;
    m.add_class::<lifetime::Expired>()?;
    m.add_function(wrap_pyfunction!(lifetime::check_lifetime, m)?)?;
    m.add_function(wrap_pyfunction!(lifetime::_set_clock_offset, m)?)?;
    m.add("CREATED_KEY", sessionkit::lifetime::CREATED_KEY)?;
    m.add_function(wrap_pyfunction!(merge, m)?)?;
    m.add_function(wrap_pyfunction!(session_id, m)?)?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    m.add_function(wrap_pyfunction!(parse_redis_url, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::metrics, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::record, m)?)?;
    let py = m.py();
    m.add("SessionkitError", py.get_type::<SessionkitError>())?;
    m.add("StoreUnavailable", py.get_type::<StoreUnavailable>())?;
    m.add("ConfigurationError", py.get_type::<ConfigurationError>())?;
    m.add("StoreContended", py.get_type::<StoreContended>())?;
    m.add("REFILL_DEADLINE_SECONDS", cached_db::REFILL_DEADLINE_SECONDS)?;
    m.add("TOMBSTONE_SECONDS", cached_db::TOMBSTONE_SECONDS)?;
    Ok(())
}
