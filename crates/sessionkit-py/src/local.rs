//! Per-thread runtimes and connections for the synchronous methods.
//!
//! A sync call made on the shared multi-thread runtime pays two cross-thread wake-ups per Redis round trip: the
//! calling thread hands the command to the connection's driver task on a runtime worker, and the worker hands the
//! reply back. Here each Python thread gets its own current-thread Tokio runtime and its own connection to the
//! store's Redis, so `block_on` (with the GIL released) writes the command, waits in `epoll` and reads the reply on
//! the calling thread, as redis-py does.
//!
//! - **Lazily, and not for short-lived threads.** A thread gets its own connection from its
//!   [`CALLS_BEFORE_OWN_CONNECTION`]`+1`-th call on; until then (and for threads that never get that far, such as
//!   `runserver`'s thread per HTTP connection) its calls use the shared runtime and connection.
//! - **Bounded.** One connection per thread that used the store, at most [`DEFAULT_MAX_THREAD_CONNECTIONS`] per
//!   store and process (`SESSIONKIT["THREAD_CONNECTIONS"]`; `0` turns per-thread connections off); threads beyond
//!   that use the shared connection (a multiplexed one, good under concurrency).
//!   Django's threaded servers (gunicorn `gthread`, uWSGI, mod_wsgi, asgiref's thread pool) have bounded thread
//!   pools. A thread's connections close when the thread exits, and those of a closed `Store` when the thread next
//!   opens one.
//! - **Driven only inside `block_on`.** redis-rs' `ConnectionManager` spawns its connection's driver task (and,
//!   after a connection loss, the reconnect) on the runtime it was created on; a current-thread runtime runs them
//!   only while its thread is inside `block_on`, which is exactly when the thread waits for a reply. Between calls
//!   nothing needs to run: with RESP2 the server sends nothing unasked. A connection closed meanwhile (a Redis
//!   restart) fails the thread's next call, which starts the reconnect; the call after that uses the new
//!   connection. That is also what the shared connection does (redis-rs reconnects on the first failed request),
//!   and `tests/test_thread_connections.py` checks it.
//! - **fork().** A child process never uses (or drops) its parent's per-thread state: it is leaked, like the
//!   shared runtime, because dropping it would deregister sockets from an `epoll` instance shared with the parent
//!   and wait for threads that do not exist in the child. The child connects afresh.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use sessionkit::store::instrumented::Instrumented;
use sessionkit::store::redis::RedisStore;
use sessionkit::store::{SessionStore, TreatUnavailableAsEmpty};
use sessionkit::telemetry::StoreKind;
use sessionkit::StoreError;
use tokio::runtime::Runtime;

/// A thread uses the shared connection for its first this-many calls (on any store).
pub const CALLS_BEFORE_OWN_CONNECTION: u32 = 4;

/// At most this many per-thread connections per store and process, unless the store says otherwise.
pub const DEFAULT_MAX_THREAD_CONNECTIONS: usize = 64;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What a `Store` tells its threads: how to connect, and how many of them have a connection.
#[derive(Debug)]
pub struct Shared {
    id: u64,
    url: String,
    treat_unavailable_as_empty: bool,
    max_connections: usize,
    connections: AtomicUsize,
}

impl Shared {
    /// The per-thread side of a store opened from `url`: at most `max_connections` threads get a connection of
    /// their own (0: none; every call uses the shared connection).
    pub fn new(url: String, treat_unavailable_as_empty: bool, max_connections: usize) -> Self {
        Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            url,
            treat_unavailable_as_empty,
            max_connections,
            connections: AtomicUsize::new(0),
        }
    }

    /// The most threads that get a connection of their own.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// How many threads have a connection of their own to this store now.
    pub fn thread_connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

/// A thread's connection to one store. Dropping it gives the store's connection slot back.
struct Entry {
    owner: Weak<Shared>,
    store: Arc<dyn SessionStore>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.upgrade() {
            owner.connections.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// One thread's runtime and connections. Field order is drop order: connections before their runtime.
struct ThreadState {
    entries: HashMap<u64, Entry>,
    runtime: Option<Rc<Runtime>>,
    pid: u32,
    calls: u32,
}

impl ThreadState {
    fn runtime(&mut self) -> Option<Rc<Runtime>> {
        if self.runtime.is_none() {
            let built = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                // Only DNS lookups of host names use the blocking pool.
                .max_blocking_threads(2)
                .build();
            match built {
                Ok(runtime) => self.runtime = Some(Rc::new(runtime)),
                Err(err) => {
                    tracing::warn!(target: "sessionkit", error = %err,
                        "cannot start a per-thread Tokio runtime; this thread uses the shared connection");
                    return None;
                }
            }
        }
        self.runtime.clone()
    }
}

thread_local! {
    static STATE: RefCell<Option<ThreadState>> = const { RefCell::new(None) };
}

/// What the calling thread runs a call on.
enum Route {
    /// Its own runtime and its connection to the store.
    Own(Rc<Runtime>, Arc<dyn SessionStore>),
    /// Its own runtime; the connection is to be made (a slot is reserved).
    Connect(Rc<Runtime>),
}

fn route(shared: &Arc<Shared>, pid: u32) -> Option<Route> {
    if shared.max_connections == 0 {
        return None;
    }
    STATE
        .try_with(|cell| {
            // Re-entered (a log handler calling a store inside a call): use the shared connection.
            let mut slot = cell.try_borrow_mut().ok()?;
            if slot.as_ref().is_some_and(|state| state.pid != pid) {
                // Forked: the parent's runtime and sockets are not ours to drop (see the module docs).
                std::mem::forget(slot.take());
            }
            let state =
                slot.get_or_insert_with(|| ThreadState { entries: HashMap::new(), runtime: None, pid, calls: 0 });
            state.calls = state.calls.saturating_add(1);
            if let Some(entry) = state.entries.get(&shared.id) {
                let store = entry.store.clone();
                return Some(Route::Own(state.runtime()?, store));
            }
            if state.calls <= CALLS_BEFORE_OWN_CONNECTION {
                return None;
            }
            if shared.connections.fetch_add(1, Ordering::AcqRel) >= shared.max_connections {
                shared.connections.fetch_sub(1, Ordering::AcqRel);
                return None;
            }
            match state.runtime() {
                Some(runtime) => Some(Route::Connect(runtime)),
                None => {
                    shared.connections.fetch_sub(1, Ordering::AcqRel);
                    None
                }
            }
        })
        .ok()
        .flatten()
}

/// Connects this thread to the store (its reserved slot is given back if that fails).
async fn connect(shared: &Arc<Shared>) -> Result<Arc<dyn SessionStore>, StoreError> {
    let redis = match RedisStore::connect(&shared.url).await {
        Ok(redis) => redis,
        Err(err) => {
            shared.connections.fetch_sub(1, Ordering::AcqRel);
            return Err(err);
        }
    };
    let plain: Arc<dyn SessionStore> = Arc::new(Instrumented::new(Arc::new(redis), StoreKind::Redis));
    let store: Arc<dyn SessionStore> =
        if shared.treat_unavailable_as_empty { Arc::new(TreatUnavailableAsEmpty::new(plain)) } else { plain };
    let entry = Entry { owner: Arc::downgrade(shared), store: store.clone() };
    let _ = STATE.try_with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            if let Some(state) = slot.as_mut() {
                // Connections to stores that were closed meanwhile go now.
                state.entries.retain(|_, old| old.owner.strong_count() > 0);
                state.entries.insert(shared.id, entry);
            }
        }
        // Otherwise `entry` is dropped here: this call uses the connection, the next one makes another.
    });
    Ok(store)
}

/// Runs `work` on the calling thread's own runtime and connection to the store; hands `work` back when this
/// thread is to use the shared connection instead. Call it with the GIL released and outside any Tokio runtime;
/// `pid` is this process's id (per-thread state made before a fork() is not used).
pub fn run<T, F, Fut>(shared: &Arc<Shared>, pid: u32, work: F) -> Result<Result<T, StoreError>, F>
where
    F: FnOnce(Arc<dyn SessionStore>) -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let Some(route) = route(shared, pid) else { return Err(work) };
    let (runtime, store) = match route {
        Route::Own(runtime, store) => (runtime, Some(store)),
        Route::Connect(runtime) => (runtime, None),
    };
    Ok(runtime.block_on(async move {
        let store = match store {
            Some(store) => store,
            None => connect(shared).await?,
        };
        work(store).await
    }))
}
