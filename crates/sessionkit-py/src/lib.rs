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
//! Errors: an unreachable store raises `StoreUnavailable`, a bad URL `ConfigurationError`, other store failures
//! `SessionkitError`; data that is not JSON raises `TypeError`/`ValueError` as `json.dumps` would. Nothing here
//! panics on outside data.

// No `unsafe` here: PyO3 0.27's macros need no `allow(unsafe_code)`, so the workspace's `deny` holds in this crate.

mod bridge;
mod convert;
mod local;
mod logbridge;

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use sessionkit::store::redis::config::Layout;
use sessionkit::store::redis::RedisStore;
use sessionkit::store::{SessionStore, TreatUnavailableAsEmpty, UserSessionIndex};
use sessionkit::{ChangeSet, SessionKey, SessionRecord, StoreError};
use time::OffsetDateTime;
use tokio::runtime::Runtime;

create_exception!(_native, SessionkitError, PyException, "Base class of sessionkit's errors.");
create_exception!(
    _native,
    StoreUnavailable,
    SessionkitError,
    "The session store could not be reached, or did not answer within its timeout."
);
create_exception!(_native, ConfigurationError, SessionkitError, "The store URL or an option is invalid.");

/// Turns a store error into the Python exception callers see.
pub(crate) fn store_error(err: StoreError) -> PyErr {
    match err {
        StoreError::Unavailable { .. } => StoreUnavailable::new_err(err.to_string()),
        StoreError::Config(_) => ConfigurationError::new_err(err.to_string()),
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
    Ok(SessionRecord { key: write_key(key)?, data: convert::dict_to_map(data)?, expires_at: expires_in(age) })
}

/// The changes of a save from Python: see [`whole_session`]; none when the engine says the login, user agent and
/// IP are as loaded.
fn save_changes(record: &SessionRecord, index_changed: bool) -> ChangeSet {
    if index_changed {
        whole_session(record)
    } else {
        ChangeSet::default()
    }
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
    /// How threads open their own connections for the sync session calls.
    local: Arc<local::Shared>,
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

    fn index(&self) -> PyResult<&dyn UserSessionIndex> {
        self.store
            .user_index()
            .ok_or_else(|| ConfigurationError::new_err("the per-user index is off (USER_INDEX = False)"))
    }
}

/// The changes of a save from Python when the engine cannot tell what changed: the keys the per-user index keeps
/// (login, user agent, IP) count as changed whenever present, so the index entry is rewritten. The engines pass
/// `index_changed=False` when those keys are as loaded, and the Redis store's `index_refresh` window then skips
/// the index for saves within it.
fn whole_session(record: &SessionRecord) -> ChangeSet {
    use sessionkit::store::user_index::{AUTH_USER_ID_KEY, CLIENT_IP_KEY, USER_AGENT_KEY};
    let mut data = sessionkit::SessionData::new();
    for key in [AUTH_USER_ID_KEY, USER_AGENT_KEY, CLIENT_IP_KEY] {
        if let Some(value) = record.data.get(key) {
            data.insert(key, value.clone());
        }
    }
    data.changes().clone()
}

/// Writes a session whether or not it is stored now (`cached_db` refilling its cache).
async fn put(store: &dyn SessionStore, record: &SessionRecord, created: bool) -> Result<(), StoreError> {
    let first = if created { store.create(record).await } else { store.save(record, &whole_session(record)).await };
    match first {
        Err(StoreError::KeyCollision) => store.save(record, &whole_session(record)).await,
        Err(StoreError::SessionVanished) => match store.create(record).await {
            Err(StoreError::KeyCollision) => Ok(()),
            other => other,
        },
        other => other,
    }
}

/// Creates a session under fresh keys until one is free (one round trip unless a key collides).
async fn create_new(
    store: &dyn SessionStore,
    map: serde_json::Map<String, serde_json::Value>,
    age: i64,
) -> Result<SessionKey, StoreError> {
    let mut record = SessionRecord { key: SessionKey::generate(), data: map, expires_at: expires_in(age) };
    for _ in 0..100 {
        match store.create(&record).await {
            Ok(()) => return Ok(record.key),
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
    /// calls (default 64; 0: all calls share one connection).
    #[staticmethod]
    #[pyo3(signature = (url, failure_policy = "error", thread_connections = local::DEFAULT_MAX_THREAD_CONNECTIONS))]
    fn connect(py: Python<'_>, url: &str, failure_policy: &str, thread_connections: usize) -> PyResult<Store> {
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
        let plain: Arc<dyn SessionStore> = redis.clone();
        let store: Arc<dyn SessionStore> =
            if failure_policy == "empty" { Arc::new(TreatUnavailableAsEmpty::new(plain)) } else { plain };
        let local = Arc::new(local::Shared::new(url_for_threads, failure_policy == "empty", thread_connections));
        Ok(Store { store, redis, runtime, pid: std::process::id(), failure_policy, local })
    }

    /// The store, without credentials (for logs).
    #[getter]
    fn describe(&self) -> String {
        self.store.describe()
    }

    /// `string`, `hash` or `django-cache`.
    #[getter]
    fn layout(&self) -> &'static str {
        match self.redis.options().layout {
            Layout::String => "string",
            Layout::Hash => "hash",
            Layout::DjangoCache => "django-cache",
        }
    }

    /// `error` or `empty`.
    #[getter]
    fn failure_policy(&self) -> &'static str {
        self.failure_policy
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
        let Some(key) = parse_key(key) else { return Ok(None) };
        let record = match self.run_session(py, |store| async move { store.load(&key).await })? {
            Ok(record) => record,
            // A thread whose own connection could not even be made: the failure policy still applies.
            Err(err @ StoreError::Unavailable { .. }) if self.failure_policy == "empty" => {
                tracing::warn!(target: "sessionkit", store = %self.store.describe(), error = %err,
                    "session store unavailable; treating the session as empty (failure_policy=empty)");
                None
            }
            Err(err) => return Err(store_error(err)),
        };
        record.map(|record| convert::map_to_dict(py, &record.data)).transpose()
    }

    /// Stores a new session; `False` if `key` is taken. `age` = seconds until it expires.
    fn create(&self, py: Python<'_>, key: &str, data: &Bound<'_, PyAny>, age: i64) -> PyResult<bool> {
        let record = record_from_python(key, data, age)?;
        match self.run_session(py, |store| async move { store.create(&record).await })? {
            Ok(()) => Ok(true),
            Err(StoreError::KeyCollision) => Ok(false),
            Err(err) => Err(store_error(err)),
        }
    }

    /// Stores a new session under a fresh key (retrying on the rare collision) and returns the key.
    fn create_new(&self, py: Python<'_>, data: &Bound<'_, PyAny>, age: i64) -> PyResult<String> {
        let map = convert::dict_to_map(data)?;
        let key = self.run_session(py, |store| async move { create_new(store.as_ref(), map, age).await })?;
        let key = key.map_err(store_error)?;
        Ok(key.as_str().to_owned())
    }

    /// Replaces a stored session; `False` if it no longer exists (it is never re-created). `index_changed=False`
    /// says the login, user agent and IP are those loaded, so the Redis per-user index may skip this save.
    #[pyo3(signature = (key, data, age, index_changed = true))]
    fn save(
        &self,
        py: Python<'_>,
        key: &str,
        data: &Bound<'_, PyAny>,
        age: i64,
        index_changed: bool,
    ) -> PyResult<bool> {
        let record = record_from_python(key, data, age)?;
        let changes = save_changes(&record, index_changed);
        match self.run_session(py, |store| async move { store.save(&record, &changes).await })? {
            Ok(()) => Ok(true),
            Err(StoreError::SessionVanished) => Ok(false),
            Err(err) => Err(store_error(err)),
        }
    }

    /// Writes a session whether or not it exists (a cache refill); `created` says which to try first.
    #[pyo3(signature = (key, data, age, created = false))]
    fn put(&self, py: Python<'_>, key: &str, data: &Bound<'_, PyAny>, age: i64, created: bool) -> PyResult<()> {
        let record = record_from_python(key, data, age)?;
        self.run_session(py, |store| async move { put(store.as_ref(), &record, created).await })?.map_err(store_error)
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
        let record = record_from_python(key, data, age)?;
        let store = self.store.clone();
        bridge::spawn(
            py,
            self.runtime,
            async move {
                match store.create(&record).await {
                    Ok(()) => Ok(true),
                    Err(StoreError::KeyCollision) => Ok(false),
                    Err(err) => Err(err),
                }
            },
            |py, created| Ok(pyo3::types::PyBool::new(py, created).to_owned().into_any().unbind()),
        )
    }

    /// Async [`Store::create_new`].
    fn acreate_new<'py>(&self, py: Python<'py>, data: &Bound<'_, PyAny>, age: i64) -> PyResult<Bound<'py, PyAny>> {
        let map = convert::dict_to_map(data)?;
        let store = self.store.clone();
        bridge::spawn(py, self.runtime, async move { create_new(store.as_ref(), map, age).await }, |py, key| {
            Ok(pyo3::types::PyString::new(py, key.as_str()).into_any().unbind())
        })
    }

    /// Async [`Store::save`].
    #[pyo3(signature = (key, data, age, index_changed = true))]
    fn asave<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        data: &Bound<'_, PyAny>,
        age: i64,
        index_changed: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let record = record_from_python(key, data, age)?;
        let changes = save_changes(&record, index_changed);
        let store = self.store.clone();
        bridge::spawn(
            py,
            self.runtime,
            async move {
                match store.save(&record, &changes).await {
                    Ok(()) => Ok(true),
                    Err(StoreError::SessionVanished) => Ok(false),
                    Err(err) => Err(err),
                }
            },
            |py, saved| Ok(pyo3::types::PyBool::new(py, saved).to_owned().into_any().unbind()),
        )
    }

    /// Async [`Store::put`].
    #[pyo3(signature = (key, data, age, created = false))]
    fn aput<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        data: &Bound<'_, PyAny>,
        age: i64,
        created: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let record = record_from_python(key, data, age)?;
        let store = self.store.clone();
        bridge::spawn(py, self.runtime, async move { put(store.as_ref(), &record, created).await }, |py, ()| {
            Ok(none(py))
        })
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

/// The id under which a session appears in the per-user index (first 128 bits of SHA-256 of the key, hex).
#[pyfunction]
fn session_id(key: &str) -> PyResult<String> {
    Ok(sessionkit::store::user_index::session_id(&write_key(key)?))
}

/// Runs one `sessionkit` command line (`argv[0]` is the program name shown in usage lines) with the code of the
/// `sessionkit` binary, on the shared runtime with the GIL released, without progress bars. `store_url` is the
/// store used when `argv` has no `--store`; `settings` holds Django's settings by name (SECRET_KEY,
/// SECRET_KEY_FALLBACKS as a JSON list, SESSION_COOKIE_AGE, ...), read instead of the process environment.
/// Returns `(exit code, stdout text, stderr text)`, exit codes as in docs/cli.md.
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
            runtime.block_on(sessionkit_cli::run(argv, &env, &mut out, &mut err))
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

/// The extension module `sessionkit._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    logbridge::install();
    m.add_class::<Store>()?;
    m.add_function(wrap_pyfunction!(session_id, m)?)?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    let py = m.py();
    m.add("SessionkitError", py.get_type::<SessionkitError>())?;
    m.add("StoreUnavailable", py.get_type::<StoreUnavailable>())?;
    m.add("ConfigurationError", py.get_type::<ConfigurationError>())?;
    Ok(())
}
