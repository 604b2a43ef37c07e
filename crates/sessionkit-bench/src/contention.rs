//! `contention`: many workers writing few sessions at once, and a count of writes lost.
//!
//! W workers run cycles back to back on S sessions (S much smaller than W, so most saves race another save of the
//! same session). Worker `w`'s cycle: load a random session, set its own key `w<w>` to a counter it increments on
//! every successful save, save. Each key is written by one worker only, so after the run every session must hold,
//! for every worker, exactly the value of that worker's last successful save on it: anything else is a lost
//! write, counted. With merging (the default) the count must be 0; with `merge=false` (Django's last write wins)
//! it shows what is lost. Retries are counted too: each save says how many compare-and-set writes it took
//! ([`Saved::attempts`]), which a counting wrapper around the store adds up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::{json, Value};
use sessionkit::store::{RawSession, Saved, SessionLister, UserSessionIndex};
use sessionkit::{
    open_store, ChangeSet, Session, SessionError, SessionKey, SessionRecord, SessionStore, Settings, StoreError,
    Version,
};
use tokio::task::JoinSet;

use crate::workload::create_sessions;
use crate::{describe_store, BenchError, StoreDescription, SETTINGS_SECRET};

/// What to run.
#[derive(Debug, Clone)]
pub struct ContentionOptions {
    /// Store URL.
    pub store_url: String,
    /// Concurrent workers.
    pub workers: usize,
    /// Sessions they share.
    pub sessions: usize,
    /// Measured time.
    pub duration: Duration,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct ContentionReport {
    /// The store, without credentials.
    pub store: StoreDescription,
    /// Workers.
    pub workers: usize,
    /// Sessions shared.
    pub sessions: usize,
    /// Measured wall time.
    pub elapsed: Duration,
    /// Saves that succeeded.
    pub saves: u64,
    /// Compare-and-set writes that lost to another writer (each followed by a reload and a merge, or, after the
    /// last attempt, by giving up).
    pub retries: u64,
    /// Saves that gave up (`StoreError::Contended`).
    pub contended: u64,
    /// Other failed cycles.
    pub errors: u64,
    /// The first other error, if any.
    pub first_error: Option<String>,
    /// (session, worker) pairs whose stored value is not the worker's last successful save there.
    pub lost_writes: u64,
}

impl ContentionReport {
    /// Successful saves per second.
    pub fn saves_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.saves as f64 / secs
        } else {
            0.0
        }
    }

    /// Reloads per successful save.
    pub fn retries_per_save(&self) -> f64 {
        if self.saves > 0 {
            self.retries as f64 / self.saves as f64
        } else {
            0.0
        }
    }

    /// One flat JSON object (the `--json` output).
    pub fn to_json(&self) -> Value {
        json!({
            "mode": "contention",
            "store": self.store.url,
            "layout": self.store.layout,
            "workers": self.workers,
            "sessions": self.sessions,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "saves": self.saves,
            "saves_per_sec": (self.saves_per_sec() * 10.0).round() / 10.0,
            "retries": self.retries,
            "retries_per_save": (self.retries_per_save() * 1000.0).round() / 1000.0,
            "contended": self.contended,
            "errors": self.errors,
            "first_error": self.first_error,
            "lost_writes": self.lost_writes,
        })
    }
}

impl std::fmt::Display for ContentionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "store:    {} (layout {})", self.store.url, self.store.layout)?;
        writeln!(
            f,
            "run:      {} workers on {} sessions, {:.2} s",
            self.workers,
            self.sessions,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "saves:    {} = {:.0} saves/s, {:.3} retries per save, {} gave up (contended)",
            self.saves,
            self.saves_per_sec(),
            self.retries_per_save(),
            self.contended
        )?;
        write!(f, "lost:     {} writes lost; {} other errors", self.lost_writes, self.errors)?;
        if let Some(err) = &self.first_error {
            write!(f, " (first: {err})")?;
        }
        Ok(())
    }
}

/// The store with its saves' retries counted (the only thing the benchmark needs); everything else forwards.
#[derive(Debug)]
struct CountingRetries {
    inner: Arc<dyn SessionStore>,
    retries: AtomicU64,
}

#[async_trait]
impl SessionStore for CountingRetries {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        self.inner.load(key).await
    }
    async fn create(&self, record: &SessionRecord) -> Result<Option<Version>, StoreError> {
        self.inner.create(record).await
    }
    async fn save(&self, record: &SessionRecord, changes: &ChangeSet) -> Result<Saved, StoreError> {
        let saved = self.inner.save(record, changes).await;
        let retries = match &saved {
            Ok(saved) => saved.attempts.saturating_sub(1),
            Err(StoreError::Contended { attempts }) => *attempts,
            Err(_) => 0,
        };
        self.retries.fetch_add(retries as u64, Ordering::Relaxed);
        saved
    }
    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.inner.exists(key).await
    }
    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn clear_expired(&self) -> Result<u64, StoreError> {
        self.inner.clear_expired().await
    }
    async fn load_raw(&self, key: &SessionKey) -> Result<Option<RawSession>, StoreError> {
        self.inner.load_raw(key).await
    }
    fn user_index(&self) -> Option<&dyn UserSessionIndex> {
        self.inner.user_index()
    }
    fn lister(&self) -> Option<&dyn SessionLister> {
        self.inner.lister()
    }
}

/// What one worker did: its successful saves and, per session, the last value it saved there.
struct WorkerResult {
    /// The worker's key in the sessions.
    name: String,
    saves: u64,
    contended: u64,
    errors: u64,
    first_error: Option<String>,
    last_saved: HashMap<SessionKey, u64>,
}

async fn worker(
    id: usize,
    store: Arc<dyn SessionStore>,
    settings: Arc<Settings>,
    keys: Arc<Vec<SessionKey>>,
    stop_at: Instant,
) -> WorkerResult {
    let name = format!("w{id}");
    let mut rng = StdRng::from_entropy();
    let mut result = WorkerResult {
        name: name.clone(),
        saves: 0,
        contended: 0,
        errors: 0,
        first_error: None,
        last_saved: HashMap::new(),
    };
    let mut counter = 0u64;
    while Instant::now() < stop_at {
        let Some(key) = keys.choose(&mut rng).cloned() else { break };
        counter += 1;
        let mut session = Session::new(Arc::clone(&store), Arc::clone(&settings), Some(key.clone()));
        let outcome = async {
            session.len().await?;
            session.set(&name, counter).await?;
            session.save().await
        }
        .await;
        match outcome {
            Ok(()) => {
                result.saves += 1;
                result.last_saved.insert(key, counter);
            }
            Err(SessionError::Store(StoreError::Contended { .. })) => result.contended += 1,
            Err(err) => {
                result.errors += 1;
                result.first_error.get_or_insert_with(|| err.to_string());
            }
        }
    }
    result
}

/// Creates the sessions, runs the workers, then checks every session against what each worker last saved.
pub async fn run_contention(options: &ContentionOptions) -> Result<ContentionReport, BenchError> {
    if options.workers == 0 || options.sessions == 0 {
        return Err(BenchError("--workers and --sessions must be at least 1".into()));
    }
    let settings = Arc::new(Settings::with_secret_key(SETTINGS_SECRET));
    let inner = open_store(&options.store_url, &settings)
        .await
        .map_err(|e| BenchError(format!("cannot open the store: {e}")))?;
    let created = create_sessions(Arc::clone(&inner), Arc::clone(&settings), options.sessions, 16, 1, true).await?;
    let keys = Arc::new(created.keys);
    let counting = Arc::new(CountingRetries { inner: Arc::clone(&inner), retries: AtomicU64::new(0) });
    let store: Arc<dyn SessionStore> = counting.clone();

    let started = Instant::now();
    let stop_at = started + options.duration;
    let mut tasks = JoinSet::new();
    for id in 0..options.workers {
        tasks.spawn(worker(id, Arc::clone(&store), Arc::clone(&settings), Arc::clone(&keys), stop_at));
    }
    let mut results = Vec::with_capacity(options.workers);
    while let Some(joined) = tasks.join_next().await {
        results.push(joined.map_err(|e| BenchError(format!("a worker failed: {e}")))?);
    }
    let elapsed = started.elapsed();

    let mut lost_writes = 0;
    for key in keys.iter() {
        let stored = inner
            .load(key)
            .await
            .map_err(|e| BenchError(format!("reading a session back failed: {e}")))?
            .ok_or_else(|| BenchError("a session vanished during the run".into()))?
            .data;
        for result in &results {
            if let Some(last) = result.last_saved.get(key) {
                if stored.get(&result.name).and_then(Value::as_u64) != Some(*last) {
                    lost_writes += 1;
                }
            }
        }
    }
    Ok(ContentionReport {
        store: describe_store(&options.store_url),
        workers: options.workers,
        sessions: options.sessions,
        elapsed,
        saves: results.iter().map(|r| r.saves).sum(),
        retries: counting.retries.load(Ordering::Relaxed),
        contended: results.iter().map(|r| r.contended).sum(),
        errors: results.iter().map(|r| r.errors).sum(),
        first_error: results.iter().find_map(|r| r.first_error.clone()),
        lost_writes,
    })
}
