//! `cycles`: what one request does to a logged-in session, as fast as the store allows.
//!
//! One cycle = `Session::new(store, settings, Some(key))`, `get("visits")` (loads the session: one round trip),
//! `set("visits", n + 1)`, `save()` (one round trip). N workers (tokio tasks on a multi-threaded runtime) run
//! cycles back to back on keys drawn at random from K pre-created sessions, for a fixed time. Every cycle's
//! latency goes into the worker's HdrHistogram; the histograms are merged at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::{json, Value};
use sessionkit::{open_store, Session, SessionKey, SessionStore, Settings};
use tokio::task::JoinSet;

use crate::workload::{create_sessions, VISITS_KEY};
use crate::{describe_store, new_histogram, BenchError, StoreDescription, SETTINGS_SECRET};

/// Concurrent writers used to pre-create the sessions.
const CREATE_CONCURRENCY: usize = 64;
/// Extra time given to the workers after the run before the benchmark gives up on them (each store call is
/// bounded by the store's own timeout, 5 s by default for Redis).
const GRACE: Duration = Duration::from_secs(30);

/// What to run.
#[derive(Debug, Clone)]
pub struct CyclesOptions {
    /// Store URL, e.g. `redis://127.0.0.1:6380/?layout=hash&buckets=50`.
    pub store_url: String,
    /// Concurrent workers.
    pub workers: usize,
    /// Measured time.
    pub duration: Duration,
    /// Time the workers run before measuring starts (connections, caches, Lua script compilation).
    pub warmup: Duration,
    /// Sessions pre-created; each cycle picks one at random.
    pub sessions: usize,
    /// Distinct `_auth_user_id`s among the sessions (matters with the store's per-user index).
    pub users: u64,
    /// Whether the store records metrics, and whether a recorder takes them.
    pub metrics: MetricsMode,
}

/// How the store of a run records metrics (`--metrics`): what recording costs (docs/performance.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MetricsMode {
    /// The store as `open_store` gives it: every call counted, timed and traced (`sessionkit::telemetry`), with no
    /// recorder installed, so the records go nowhere.
    #[default]
    NoRecorder,
    /// The store without the metrics wrapper (`memory://` and plain `redis://` URLs only): the baseline.
    Bare,
    /// The store as `open_store` gives it, with `metrics-exporter-prometheus`'s recorder installed as the
    /// global recorder (once per process).
    Prometheus,
}

impl MetricsMode {
    /// `no-recorder`, `bare` or `prometheus`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricsMode::NoRecorder => "no-recorder",
            MetricsMode::Bare => "bare",
            MetricsMode::Prometheus => "prometheus",
        }
    }
}

/// Opens the store of a run as `mode` says.
async fn open_for(url: &str, settings: &Settings, mode: MetricsMode) -> Result<Arc<dyn SessionStore>, BenchError> {
    let failed = |e: sessionkit::StoreError| BenchError(format!("cannot open the store: {e}"));
    match mode {
        MetricsMode::NoRecorder => open_store(url, settings).await.map_err(failed),
        MetricsMode::Prometheus => {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .map_err(|e| BenchError(format!("cannot install the Prometheus recorder: {e}")))?;
            open_store(url, settings).await.map_err(failed)
        }
        MetricsMode::Bare if url.starts_with("memory:") => Ok(Arc::new(sessionkit::store::memory::MemoryStore::new())),
        MetricsMode::Bare
            if url.starts_with("redis:") && !url.contains("merge=") && !url.contains("failure_policy=") =>
        {
            Ok(Arc::new(sessionkit::store::redis::RedisStore::connect(url).await.map_err(failed)?))
        }
        MetricsMode::Bare => Err(BenchError("--metrics bare takes memory:// or a plain redis:// URL".into())),
    }
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct CyclesReport {
    /// The store, without credentials.
    pub store: StoreDescription,
    /// Stored size of one session (bytes as the store keeps them).
    pub value_bytes: usize,
    /// Size of the same session as compact JSON.
    pub json_bytes: usize,
    /// Workers.
    pub workers: usize,
    /// Sessions cycled over.
    pub sessions: usize,
    /// Distinct users among the sessions.
    pub users: u64,
    /// Warm-up time, not measured.
    pub warmup: Duration,
    /// Measured wall time: from the end of the warm-up until the last worker stopped.
    pub elapsed: Duration,
    /// Cycles completed without error in the measured time.
    pub cycles: u64,
    /// Cycles that failed in the measured time.
    pub errors: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// Latency of successful cycles, in microseconds.
    pub latency_us: Histogram<u64>,
    /// How the store recorded metrics.
    pub metrics: MetricsMode,
}

impl CyclesReport {
    /// Successful cycles per second of measured time.
    pub fn ops_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.cycles as f64 / secs
        } else {
            0.0
        }
    }

    /// A latency quantile (0.5, 0.99, 0.999) in microseconds; 0 when nothing was measured.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.latency_us.is_empty() {
            0
        } else {
            self.latency_us.value_at_quantile(q)
        }
    }

    /// One flat JSON object (the `--json` output).
    pub fn to_json(&self) -> Value {
        json!({
            "mode": "cycles",
            "store": self.store.url,
            "layout": self.store.layout,
            "user_index": self.store.user_index,
            "workers": self.workers,
            "sessions": self.sessions,
            "users": self.users,
            "value_bytes": self.value_bytes,
            "json_bytes": self.json_bytes,
            "warmup_s": self.warmup.as_secs_f64(),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "cycles": self.cycles,
            "ops_per_sec": (self.ops_per_sec() * 10.0).round() / 10.0,
            "p50_us": self.quantile_us(0.5),
            "p99_us": self.quantile_us(0.99),
            "p999_us": self.quantile_us(0.999),
            "max_us": if self.latency_us.is_empty() { 0 } else { self.latency_us.max() },
            "mean_us": (self.latency_us.mean() * 10.0).round() / 10.0,
            "errors": self.errors,
            "first_error": self.first_error,
            "metrics": self.metrics.as_str(),
        })
    }
}

impl std::fmt::Display for CyclesReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::write_report_header(f, &self.store, self.value_bytes, self.json_bytes)?;
        writeln!(
            f,
            "run:      {} workers, {} sessions, {} users, {:.1} s warm-up, {:.2} s measured, metrics: {}",
            self.workers,
            self.sessions,
            self.users,
            self.warmup.as_secs_f64(),
            self.elapsed.as_secs_f64(),
            self.metrics.as_str()
        )?;
        writeln!(f, "cycles:   {} = {:.0} cycles/s (load + modify + save)", self.cycles, self.ops_per_sec())?;
        writeln!(
            f,
            "latency:  p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
            self.quantile_us(0.5),
            self.quantile_us(0.99),
            self.quantile_us(0.999),
            if self.latency_us.is_empty() { 0 } else { self.latency_us.max() }
        )?;
        write!(f, "errors:   {}", self.errors)?;
        if let Some(err) = &self.first_error {
            write!(f, " (first: {err})")?;
        }
        Ok(())
    }
}

/// What one worker measured.
struct WorkerResult {
    latency_us: Histogram<u64>,
    cycles: u64,
    errors: u64,
    first_error: Option<String>,
}

/// One request's work on a session: load, read `visits`, write `visits + 1`, save.
pub async fn cycle(store: Arc<dyn SessionStore>, settings: Arc<Settings>, key: SessionKey) -> Result<(), BenchError> {
    let mut session = Session::new(store, settings, Some(key));
    let visits: Option<i64> = session.get(VISITS_KEY).await.map_err(|e| BenchError(format!("load: {e}")))?;
    let Some(visits) = visits else {
        // An unknown key would make save() create a new session: not the cycle being measured.
        return Err(BenchError("session not found (or loaded empty) on load".into()));
    };
    session.set(VISITS_KEY, visits.saturating_add(1)).await.map_err(|e| BenchError(format!("set: {e}")))?;
    session.save().await.map_err(|e| BenchError(format!("save: {e}")))
}

async fn worker(
    store: Arc<dyn SessionStore>,
    settings: Arc<Settings>,
    keys: Arc<Vec<SessionKey>>,
    measure_from: Instant,
    stop_at: Instant,
) -> Result<WorkerResult, BenchError> {
    let mut rng = StdRng::from_entropy();
    let mut result = WorkerResult { latency_us: new_histogram()?, cycles: 0, errors: 0, first_error: None };
    loop {
        let start = Instant::now();
        if start >= stop_at {
            return Ok(result);
        }
        let Some(key) = keys.choose(&mut rng).cloned() else { return Ok(result) };
        let outcome = cycle(Arc::clone(&store), Arc::clone(&settings), key).await;
        if start < measure_from {
            continue;
        }
        match outcome {
            Ok(()) => {
                let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                result.latency_us.saturating_record(micros.max(1));
                result.cycles += 1;
            }
            Err(err) => {
                result.errors += 1;
                result.first_error.get_or_insert(err.0);
            }
        }
    }
}

/// Pre-creates the sessions, runs the workers for warm-up + duration, and merges their measurements.
pub async fn run_cycles(options: &CyclesOptions) -> Result<CyclesReport, BenchError> {
    if options.workers == 0 || options.sessions == 0 {
        return Err(BenchError("--workers and --sessions must be at least 1".into()));
    }
    let store_info = describe_store(&options.store_url);
    store_info.warn_about_hot_user_index(options.sessions, options.users);
    let settings = Arc::new(Settings::with_secret_key(SETTINGS_SECRET));
    let store = open_for(&options.store_url, &settings, options.metrics).await?;

    let created = create_sessions(
        Arc::clone(&store),
        Arc::clone(&settings),
        options.sessions,
        CREATE_CONCURRENCY,
        options.users,
        true,
    )
    .await?;
    let keys = Arc::new(created.keys);
    let (value_bytes, json_bytes) = crate::stored_size(store.as_ref(), &keys).await?;

    let measure_from = Instant::now() + options.warmup;
    let stop_at = measure_from + options.duration;
    let mut tasks = JoinSet::new();
    for _ in 0..options.workers {
        tasks.spawn(worker(Arc::clone(&store), Arc::clone(&settings), Arc::clone(&keys), measure_from, stop_at));
    }
    let mut merged = new_histogram()?;
    let (mut cycles, mut errors, mut first_error) = (0, 0, None);
    let collect = async {
        while let Some(joined) = tasks.join_next().await {
            let result = joined.map_err(|e| BenchError(format!("a worker failed: {e}")))??;
            merged.add(&result.latency_us).map_err(|e| BenchError(format!("merging histograms: {e:?}")))?;
            cycles += result.cycles;
            errors += result.errors;
            if first_error.is_none() {
                first_error = result.first_error;
            }
        }
        Ok::<(), BenchError>(())
    };
    let limit = options.warmup + options.duration + GRACE;
    tokio::time::timeout(limit, collect)
        .await
        .map_err(|_| BenchError(format!("workers did not stop within {limit:?}")))??;
    let elapsed = Instant::now().saturating_duration_since(measure_from);

    if cycles == 0 {
        return Err(BenchError(format!(
            "no cycle succeeded ({errors} errors; first: {})",
            first_error.as_deref().unwrap_or("none")
        )));
    }
    Ok(CyclesReport {
        store: store_info,
        value_bytes,
        json_bytes,
        workers: options.workers,
        sessions: options.sessions,
        users: options.users.max(1),
        warmup: options.warmup,
        elapsed,
        cycles,
        errors,
        first_error,
        latency_us: merged,
        metrics: options.metrics,
    })
}
