//! `sessionkit.metrics()`: the counters and histograms the stores record (`sessionkit::telemetry`), as plain
//! Python data, for django-prometheus or any other publisher; and `record()`, for what the Django `cached_db`
//! engine does in Python (its database half runs through Django's ORM, not a Rust store).
//!
//! The module installs an in-process recorder (a `metrics-util` registry: counters, and a count and sum per
//! histogram; no exporter) as the process's global `metrics` recorder the first time it is needed, unless another
//! one was installed first (by a Rust library linked into the same process), in which case `metrics()` returns
//! empty lists and the records go to that recorder.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ::metrics::{Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{Registry, Storage};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use sessionkit::telemetry::{self, CacheFallback, LoadOutcome, SaveOutcome, StoreKind};
use sessionkit::StoreError;

/// A histogram as `metrics()` reports it: how many values, and their sum (seconds).
#[derive(Debug, Default)]
struct CountSum {
    count: AtomicU64,
    /// The sum as `f64` bits, updated with compare-and-swap.
    sum_bits: AtomicU64,
}

impl HistogramFn for CountSum {
    fn record(&self, value: f64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| Some((f64::from_bits(bits) + value).to_bits()));
    }
}

/// Counters and gauges as atomics, histograms as a count and a sum.
#[derive(Debug)]
struct CountingStorage;

impl Storage<Key> for CountingStorage {
    type Counter = Arc<AtomicU64>;
    type Gauge = Arc<AtomicU64>;
    type Histogram = Arc<CountSum>;

    fn counter(&self, _: &Key) -> Self::Counter {
        Arc::default()
    }

    fn gauge(&self, _: &Key) -> Self::Gauge {
        Arc::default()
    }

    fn histogram(&self, _: &Key) -> Self::Histogram {
        Arc::default()
    }
}

/// The module's recorder.
#[derive(Debug)]
struct InProcessRecorder {
    registry: Registry<Key, CountingStorage>,
}

impl Recorder for InProcessRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.registry.get_or_create_counter(key, |counter| Counter::from_arc(Arc::clone(counter)))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.registry.get_or_create_gauge(key, |gauge| Gauge::from_arc(Arc::clone(gauge)))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.registry.get_or_create_histogram(key, |histogram| Histogram::from_arc(Arc::clone(histogram)))
    }
}

/// The recorder, when this module's is the global one (`None`: another was installed first).
static RECORDER: OnceLock<Option<Arc<InProcessRecorder>>> = OnceLock::new();

/// Installs the module's recorder unless a global recorder exists already; called when the module is imported.
pub(crate) fn install() {
    let _ = recorder();
}

/// The module's recorder, installed on first use; `None` when another global recorder was installed first.
fn recorder() -> Option<&'static Arc<InProcessRecorder>> {
    RECORDER
        .get_or_init(|| {
            let recorder = Arc::new(InProcessRecorder { registry: Registry::new(CountingStorage) });
            ::metrics::set_global_recorder(Arc::clone(&recorder)).ok().map(|()| recorder)
        })
        .as_ref()
}

/// A sample's dict with its `name` and `labels` filled in.
fn sample<'py>(py: Python<'py>, key: &Key) -> PyResult<Bound<'py, PyDict>> {
    let labels = PyDict::new(py);
    for label in key.labels() {
        labels.set_item(label.key(), label.value())?;
    }
    let item = PyDict::new(py);
    item.set_item("name", key.name())?;
    item.set_item("labels", labels)?;
    Ok(item)
}

/// `(name, labels)` of a key, for sorting.
fn sort_key(key: &Key) -> (String, Vec<(String, String)>) {
    (key.name().to_owned(), key.labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect())
}

/// The counters and histograms recorded so far in this process: `{"counters": [{"name", "labels", "value"}],
/// "histograms": [{"name", "labels", "count", "sum"}]}`, sorted by name and labels. Values are totals since the
/// process started (Prometheus counters); histogram sums are seconds.
#[pyfunction]
pub(crate) fn metrics(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let counters = PyList::empty(py);
    let histograms = PyList::empty(py);
    if let Some(recorder) = recorder() {
        let mut found = recorder.registry.get_counter_handles().into_iter().collect::<Vec<_>>();
        found.sort_by_key(|(key, _)| sort_key(key));
        for (key, value) in found {
            let item = sample(py, &key)?;
            item.set_item("value", value.load(Ordering::Relaxed))?;
            counters.append(item)?;
        }
        let mut found = recorder.registry.get_histogram_handles().into_iter().collect::<Vec<_>>();
        found.sort_by_key(|(key, _)| sort_key(key));
        for (key, value) in found {
            let item = sample(py, &key)?;
            item.set_item("count", value.count.load(Ordering::Relaxed))?;
            item.set_item("sum", f64::from_bits(value.sum_bits.load(Ordering::Relaxed)))?;
            histograms.append(item)?;
        }
    }
    let out = PyDict::new(py);
    out.set_item("counters", counters)?;
    out.set_item("histograms", histograms)?;
    Ok(out)
}

/// Records what a front-end did outside a Rust store (the Django `cached_db` engine's database half):
/// `event` is `load_hit`, `load_miss`, `create`, `save_written`, `save_merged`, `save_contended` (a save that gave
/// up after `attempts` conflicts), `delete` or `cache_error`;
/// `store` a store kind (`cached_db` by default); `seconds` the duration of a load or save; `attempts` how many
/// compare-and-set writes a save took; `operation` the cache call that failed (`cache_error`: `load`, `refill`,
/// `write`, `clear_expired`, `open`, `touch`).
#[pyfunction]
#[pyo3(signature = (event, store = "cached_db", seconds = 0.0, attempts = 1, operation = "load"))]
pub(crate) fn record(event: &str, store: &str, seconds: f64, attempts: usize, operation: &str) -> PyResult<()> {
    let kind =
        StoreKind::from_label(store).ok_or_else(|| PyValueError::new_err(format!("unknown store kind {store:?}")))?;
    let took = Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX);
    match event {
        "load_hit" => telemetry::record_load(kind, LoadOutcome::Hit, took),
        "load_miss" => telemetry::record_load(kind, LoadOutcome::Miss, took),
        "create" => telemetry::record_create(kind),
        "save_written" => telemetry::record_save(kind, SaveOutcome::Written, attempts, took),
        "save_merged" => telemetry::record_save(kind, SaveOutcome::Merged, attempts, took),
        "save_contended" => telemetry::record_error(kind, "save", &StoreError::Contended { attempts }),
        "delete" => telemetry::record_delete(kind),
        "cache_error" => {
            let operation = match operation {
                "load" => "load",
                "refill" => "refill",
                "write" | "save" => "write",
                "clear_expired" => "clear_expired",
                "open" => "open",
                "touch" => "touch",
                other => return Err(PyValueError::new_err(format!("unknown cache operation {other:?}"))),
            };
            telemetry::record_cache_fallback(operation, CacheFallback::Error);
        }
        other => return Err(PyValueError::new_err(format!("unknown event {other:?}"))),
    }
    Ok(())
}
