//! Benchmarks of sessionkit's session stores, Redis first.
//!
//! - [`cycles`]: load + modify + save cycles per second and their latency (p50, p99, p99.9), as many requests
//!   working on logged-in sessions would do.
//! - [`memory`]: Redis `used_memory` per stored session, for each layout.
//! - [`contention`]: many workers saving few sessions at once: saves/s, retries per save, and writes lost (none
//!   when saves merge).
//!
//! - [`http`]: the same axum handler behind sessionkit, tower-sessions and no session at all, driven by wrk
//!   (`scripts/bench-http`); [`plot`] draws its charts.
//!
//! The `sessionkit-bench` binary wraps them; `scripts/bench-redis` runs them next to `redis-benchmark` and writes
//! the tables of `docs/performance.md`.

pub mod contention;
pub mod cycles;
pub mod http;
pub mod login;
pub mod memory;
pub mod plot;
pub mod workload;

use hdrhistogram::Histogram;
use sessionkit::store::redis::config::RedisOptions;
use sessionkit::{SessionKey, SessionStore};

/// `SECRET_KEY` of the benchmark's settings (Redis stores do not sign; the sqlite store would).
pub const SETTINGS_SECRET: &str = "bench";

/// A benchmark could not run or could not finish; the message says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchError(pub String);

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}

/// A store URL as reported: without credentials, with the Redis layout when it is a Redis URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreDescription {
    /// The URL with any password replaced by `***`.
    pub url: String,
    /// `string`, `hash`, `django-cache`, or `-` for stores other than Redis.
    pub layout: &'static str,
    /// Whether the store keeps the per-user session index (Redis `user_index`, on by default).
    pub user_index: bool,
}

/// The first two lines of a human-readable report: the store and the session's size.
pub(crate) fn write_report_header(
    f: &mut std::fmt::Formatter<'_>,
    store: &StoreDescription,
    value_bytes: usize,
    json_bytes: usize,
) -> std::fmt::Result {
    writeln!(f, "store:    {} (layout {}, user_index {})", store.url, store.layout, store.user_index)?;
    writeln!(f, "session:  {value_bytes} bytes stored ({json_bytes} bytes of JSON)")
}

impl StoreDescription {
    /// Warns on stderr when every session belongs to one user while the per-user index is on: every save then
    /// updates the same index keys, which grow with the session count (not what a real site does).
    pub fn warn_about_hot_user_index(&self, sessions: usize, users: u64) {
        if self.user_index && users <= 1 && sessions > 100 {
            eprintln!(
                "sessionkit-bench: warning: user_index is on and all {sessions} sessions belong to user {}; \
                 every save updates that one user's index. Use --users N (e.g. --users {sessions}) or add \
                 user_index=false to the store URL",
                workload::FIRST_USER_ID
            );
        }
    }
}

/// Describes a store URL (see [`StoreDescription`]).
pub fn describe_store(url: &str) -> StoreDescription {
    let redacted = sessionkit::store::redact_url(url);
    match RedisOptions::from_url(url) {
        Ok(options) => {
            StoreDescription { url: redacted, layout: options.layout.as_str(), user_index: options.user_index }
        }
        Err(_) => StoreDescription { url: redacted, layout: "-", user_index: false },
    }
}

/// A latency histogram in microseconds: 1 µs to 60 s, 3 significant digits.
pub fn new_histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| BenchError(format!("cannot create a histogram: {e:?}")))
}

/// The stored size of the first session in `keys` (the value as the store keeps it) and its size as compact JSON.
pub async fn stored_size(store: &dyn SessionStore, keys: &[SessionKey]) -> Result<(usize, usize), BenchError> {
    let key = keys.first().ok_or_else(|| BenchError("no session was created".into()))?;
    let raw = store
        .load_raw(key)
        .await
        .map_err(|e| BenchError(format!("reading a session back failed: {e}")))?
        .ok_or_else(|| BenchError("a session just created cannot be read back".into()))?;
    let record = store
        .load(key)
        .await
        .map_err(|e| BenchError(format!("loading a session back failed: {e}")))?
        .ok_or_else(|| BenchError("a session just created cannot be loaded".into()))?;
    Ok((raw.bytes.len(), workload::json_size(&record.data)))
}
