//! Rust futures as asyncio futures, without a thread per call.
//!
//! [`spawn`] creates an `asyncio.Future` on the caller's running event loop and runs the Rust future on the
//! module's Tokio runtime. The outcome goes back to the loop through the loop's *completer*: a queue plus a
//! socket pair whose read end the loop watches (`loop.add_reader`). The Tokio thread pushes the raw result and, when
//! the queue was empty, writes one byte; it never takes the GIL. The loop's reader callback, already holding the
//! GIL, drains the queue, converts each result into Python objects and resolves the futures
//! (`sessionkit._bridge.resolve` ignores a future that was cancelled meanwhile). Handing results back through
//! `loop.call_soon_threadsafe` instead made every completion wait for the GIL on a Tokio worker, up to the
//! interpreter's switch interval (5 ms) while the loop thread was busy, which under load stalled the runtime's few
//! workers. A loop that cannot be weakly referenced (so no completer can be kept for it) gets the
//! `call_soon_threadsafe` path. The Rust work is bounded by the store's timeout, so a cancelled await leaves at most
//! one bounded call running to its end.

use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use sessionkit::StoreError;
use tokio::runtime::Runtime;

/// `sessionkit._bridge.resolve`.
static RESOLVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// `asyncio.get_running_loop`.
static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// `sessionkit._bridge.completers`: event loop -> its completer (a `WeakKeyDictionary`).
static COMPLETERS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A finished call's outcome, turned into a Python object on the loop's thread.
type Outcome = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// What a loop's completer shares with the Tokio threads.
struct Shared {
    queue: Mutex<Queue>,
    reader: UnixStream,
    writer: UnixStream,
}

/// Finished calls waiting for the loop, and whether a wake-up byte is on its way.
struct Queue {
    items: Vec<(Py<PyAny>, Outcome)>,
    /// True from a successful wake-up write until the loop's next drain: later pushes need not write.
    notified: bool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a finished call (no GIL needed) and wakes the loop unless a wake-up is already on its way.
    fn push(&self, future: Py<PyAny>, outcome: Outcome) {
        let notify = {
            let mut queue = self.lock();
            queue.items.push((future, outcome));
            !std::mem::replace(&mut queue.notified, true)
        };
        if notify {
            loop {
                match (&self.writer).write(&[1]) {
                    // WouldBlock: the socket is full of wake-ups the loop has not read yet, so it will drain.
                    Ok(_) => return,
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return,
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(err) => {
                        // No wake-up is on its way: the next push tries again.
                        tracing::warn!(target: "sessionkit", error = %err, "cannot wake the event loop");
                        self.lock().notified = false;
                        return;
                    }
                }
            }
        }
    }
}

/// The per-loop end of the hand-back: its `drain` is the loop's reader callback for the socket pair. The loop's
/// reader registration is its only strong owner (`sessionkit._bridge.completers` keeps a weak reference), so it
/// goes with the loop's `close()` even while calls are in flight: those keep only the queue, dropped with the last.
#[pyclass(frozen, weakref, module = "sessionkit._native")]
struct Completer {
    shared: Arc<Shared>,
}

#[pymethods]
impl Completer {
    /// Reads the wake-up bytes, then resolves every queued future (in the loop's thread, with the GIL). Reading
    /// before taking the queue means a call queued meanwhile is either taken now or has written a new wake-up.
    fn drain(&self, py: Python<'_>) {
        let mut buf = [0u8; 512];
        while let Ok(n) = (&self.shared.reader).read(&mut buf) {
            if n < buf.len() {
                break;
            }
        }
        let queued = {
            let mut queue = self.shared.lock();
            queue.notified = false;
            std::mem::take(&mut queue.items)
        };
        for (future, outcome) in queued {
            let outcome = outcome(py);
            resolve(py, future, outcome, |resolve, args| resolve.call1(py, args).map(drop));
        }
    }
}

/// The completer of `event_loop` (created and registered with `loop.add_reader` on first use), or `None` when
/// the loop cannot be weakly referenced.
fn completer(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<Option<Arc<Shared>>> {
    let completers = COMPLETERS
        .get_or_try_init(py, || -> PyResult<_> {
            Ok(py.import("sessionkit._bridge")?.getattr("completers")?.unbind())
        })?
        .bind(py);
    let found = match completers.call_method1("get", (event_loop,)) {
        Ok(found) => found,
        Err(err) if err.is_instance_of::<pyo3::exceptions::PyTypeError>(py) => return Ok(None), // no weakref
        Err(err) => return Err(err),
    };
    // A weak reference to the completer; dead once the loop was closed.
    if !found.is_none() {
        if let Ok(existing) = found.call0()?.cast::<Completer>() {
            return Ok(Some(existing.get().shared.clone()));
        }
    }
    let (reader, writer) = UnixStream::pair()?;
    reader.set_nonblocking(true)?;
    writer.set_nonblocking(true)?;
    let fd = reader.as_raw_fd();
    let shared = Arc::new(Shared { queue: Mutex::new(Queue { items: Vec::new(), notified: false }), reader, writer });
    let created = Bound::new(py, Completer { shared: shared.clone() })?;
    match event_loop.call_method1("add_reader", (fd, created.getattr("drain")?)) {
        Ok(_) => {}
        // A loop that cannot watch sockets (a Proactor-style loop): the call_soon_threadsafe path.
        Err(err)
            if err.is_instance_of::<pyo3::exceptions::PyNotImplementedError>(py)
                || err.is_instance_of::<pyo3::exceptions::PyAttributeError>(py) =>
        {
            return Ok(None)
        }
        Err(err) => return Err(err),
    }
    let weak = py.import("weakref")?.getattr("ref")?.call1((&created,))?;
    completers.set_item(event_loop, weak)?;
    Ok(Some(shared))
}

/// Runs `work` on `runtime` and returns an awaitable for its result; `convert` turns the result into a Python
/// object (with the GIL, on the event loop's thread). Must be called from a coroutine (a running event loop).
pub fn spawn<'py, T, W, C>(
    py: Python<'py>,
    runtime: &'static Runtime,
    work: W,
    convert: C,
) -> PyResult<Bound<'py, PyAny>>
where
    T: Send + 'static,
    W: Future<Output = Result<T, StoreError>> + Send + 'static,
    C: for<'a> FnOnce(Python<'a>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let get_loop = GET_RUNNING_LOOP
        .get_or_try_init(py, || -> PyResult<_> { Ok(py.import("asyncio")?.getattr("get_running_loop")?.unbind()) })?;
    let event_loop = get_loop.call0(py)?.into_bound(py);
    let future = event_loop.call_method0("create_future")?;
    let future_ref = future.clone().unbind();
    if let Some(shared) = completer(py, &event_loop)? {
        runtime.spawn(async move {
            let result = work.await;
            let outcome: Outcome =
                Box::new(move |py| result.map_err(crate::store_error).and_then(|value| convert(py, value)));
            shared.push(future_ref, outcome);
        });
        return Ok(future);
    }
    let loop_ref = event_loop.unbind();
    runtime.spawn(async move {
        let result = work.await;
        // try_attach: during interpreter shutdown nobody awaits any more; then the result is dropped.
        let _ = Python::try_attach(move |py| {
            let outcome = result.map_err(crate::store_error).and_then(|value| convert(py, value));
            resolve(py, future_ref, outcome, |resolve, args| {
                loop_ref
                    .call_method1(py, "call_soon_threadsafe", (resolve.clone_ref(py), args.0, args.1, args.2))
                    .map(drop)
            });
        });
    });
    Ok(future)
}

/// Hands `outcome` to `sessionkit._bridge.resolve(future, ok, value)` through `call` (directly, or scheduled on
/// the loop).
fn resolve<F>(py: Python<'_>, future: Py<PyAny>, outcome: PyResult<Py<PyAny>>, call: F)
where
    F: FnOnce(&Py<PyAny>, (Py<PyAny>, bool, Py<PyAny>)) -> PyResult<()>,
{
    let (ok, value) = match outcome {
        Ok(value) => (true, value),
        Err(err) => (false, err.into_value(py).into_any()),
    };
    let sent = RESOLVE
        .get_or_try_init(py, || -> PyResult<_> { Ok(py.import("sessionkit._bridge")?.getattr("resolve")?.unbind()) })
        .and_then(|resolve| call(resolve, (future, ok, value)));
    if let Err(err) = sent {
        // The loop was closed before the call finished: nothing is waiting for the result.
        tracing::debug!(target: "sessionkit", error = %err, "event loop gone; async session result dropped");
    }
}
