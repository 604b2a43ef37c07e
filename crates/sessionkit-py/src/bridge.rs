//! Rust futures as asyncio futures, without a thread per call.
//!
//! [`spawn`] creates an `asyncio.Future` on the caller's running event loop, runs the Rust future on the module's
//! Tokio runtime, and hands the outcome back with `loop.call_soon_threadsafe(resolve, future, ok, value)`
//! (`sessionkit._bridge.resolve` ignores a future that was cancelled meanwhile). The Rust work is bounded by the
//! store's timeout, so a cancelled await leaves at most one bounded call running to its end.

use std::future::Future;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use sessionkit::StoreError;
use tokio::runtime::Runtime;

/// `sessionkit._bridge.resolve`.
static RESOLVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// `asyncio.get_running_loop`.
static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Runs `work` on `runtime` and returns an awaitable for its result; `convert` turns the result into a Python
/// object (with the GIL, on a runtime thread). Must be called from a coroutine (a running event loop).
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
    let loop_ref = event_loop.unbind();
    let future_ref = future.clone().unbind();
    runtime.spawn(async move {
        let result = work.await;
        // try_attach: during interpreter shutdown nobody awaits any more; then the result is dropped.
        let _ = Python::try_attach(move |py| {
            let outcome = result.map_err(crate::store_error).and_then(|value| convert(py, value));
            deliver(py, loop_ref, future_ref, outcome);
        });
    });
    Ok(future)
}

fn deliver(py: Python<'_>, event_loop: Py<PyAny>, future: Py<PyAny>, outcome: PyResult<Py<PyAny>>) {
    let (ok, value) = match outcome {
        Ok(value) => (true, value),
        Err(err) => (false, err.into_value(py).into_any()),
    };
    let sent = RESOLVE
        .get_or_try_init(py, || -> PyResult<_> { Ok(py.import("sessionkit._bridge")?.getattr("resolve")?.unbind()) })
        .and_then(|resolve| event_loop.call_method1(py, "call_soon_threadsafe", (resolve, future, ok, value)));
    if let Err(err) = sent {
        // The loop was closed before the call finished: nothing is waiting for the result.
        tracing::debug!(target: "sessionkit", error = %err, "event loop gone; async session result dropped");
    }
}
