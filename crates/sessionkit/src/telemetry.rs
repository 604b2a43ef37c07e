//! Metrics and traces: every series sessionkit records, in one place.
//!
//! sessionkit records through the ecosystem's facades and ships no exporter: counters and histograms go to the
//! [`metrics`] crate's recorder, spans to [`tracing`]. With no recorder installed the recording calls do nothing
//! (a thread-local read and an atomic load per call; measured in `docs/performance.md`). Install one in the
//! application — `metrics-exporter-prometheus` for a Prometheus scrape, `metrics-exporter-opentelemetry` or any
//! other — before or after opening stores: the keys are looked up at each call, so a recorder installed later
//! sees everything from then on. `docs/observability.md` shows a scrape.
//!
//! Every store [`open_store`](crate::store::open_store) opens is wrapped in
//! [`Instrumented`](crate::store::instrumented::Instrumented), which records the series below and opens a span
//! per call. The label `store` is the store's kind ([`StoreKind::label`]: `redis`, `sqlite`, `postgres`, `mysql`,
//! `file`, `memory`, `cookie`, `cached_db`), never a host, a URL or a key. A `cached_db` store is counted as
//! `cached_db` and its two parts again under their own kinds (the cache's loads then show the cache's hit rate).
//!
//! | series | type | labels | what it counts |
//! |--------|------|--------|----------------|
//! | `sessionkit_loads_total` | counter | `store`, `outcome` = `hit` \| `miss` \| `corrupt` | loads: a live session, none (unknown, expired), data that did not decode (loaded as an empty session, logged on `sessionkit::corrupt`) |
//! | `sessionkit_creates_total` | counter | `store` | sessions created |
//! | `sessionkit_saves_total` | counter | `store`, `outcome` = `written` \| `merged` | saves: the request's data written, or merged with another request's writes after a conflict |
//! | `sessionkit_save_conflicts_total` | counter | `store` | compare-and-set writes that lost to another request (each is merged and retried, or ends the save as contended) |
//! | `sessionkit_save_retries_total` | counter | `store` | writes tried again after a conflict |
//! | `sessionkit_deletes_total` | counter | `store` | sessions deleted (logouts, flushes, `cycle_key`) |
//! | `sessionkit_store_errors_total` | counter | `store`, `operation`, `kind` ([`error_kind`]) | store calls that failed |
//! | `sessionkit_cache_fallbacks_total` | counter | `operation`, `reason` = `error` \| `tombstone` \| `stepped_aside` | `cached_db`: the cache failed or was skipped and the database answered |
//! | `sessionkit_user_index_operations_total` | counter | `store`, `operation` = `list` \| `delete_one` \| `delete_all` | per-user index calls ("log out other devices") |
//! | `sessionkit_expired_cleared_total` | counter | `store` | expired sessions removed by `clear_expired` |
//! | `sessionkit_load_duration_seconds` | histogram | `store` | how long loads took |
//! | `sessionkit_save_duration_seconds` | histogram | `store` | how long saves took (all attempts) |
//!
//! Spans: one per store call, at DEBUG level on target `sessionkit::store`, named `sessionkit.<operation>`
//! (`sessionkit.load`, `sessionkit.save`, …) with the fields `store` (the store's redacted description, e.g.
//! `redis://127.0.0.1:6379/0`), `store.kind`, and, when known at the end, `outcome` (loads and saves) or `error`
//! (the [`error_kind`] of a failure).

use std::cell::Cell;
use std::time::Duration;

use metrics::{Key, Label, Level, Metadata};

use crate::StoreError;

/// `sessionkit_loads_total{store, outcome}`.
pub const LOADS: &str = "sessionkit_loads_total";
/// `sessionkit_creates_total{store}`.
pub const CREATES: &str = "sessionkit_creates_total";
/// `sessionkit_saves_total{store, outcome}`.
pub const SAVES: &str = "sessionkit_saves_total";
/// `sessionkit_save_conflicts_total{store}`.
pub const SAVE_CONFLICTS: &str = "sessionkit_save_conflicts_total";
/// `sessionkit_save_retries_total{store}`.
pub const SAVE_RETRIES: &str = "sessionkit_save_retries_total";
/// `sessionkit_deletes_total{store}`.
pub const DELETES: &str = "sessionkit_deletes_total";
/// `sessionkit_store_errors_total{store, operation, kind}`.
pub const ERRORS: &str = "sessionkit_store_errors_total";
/// `sessionkit_cache_fallbacks_total{operation, reason}`.
pub const CACHE_FALLBACKS: &str = "sessionkit_cache_fallbacks_total";
/// `sessionkit_user_index_operations_total{store, operation}`.
pub const USER_INDEX_OPERATIONS: &str = "sessionkit_user_index_operations_total";
/// `sessionkit_expired_cleared_total{store}`.
pub const EXPIRED_CLEARED: &str = "sessionkit_expired_cleared_total";
/// `sessionkit_touches_total{store}`: idle-timeout touches (expiry-only writes) that moved a session.
pub const TOUCHES: &str = "sessionkit_touches_total";
/// `sessionkit_lifetime_expired_total{rule}`: sessions a request brought that a lifetime rule had ended.
pub const LIFETIME_EXPIRED: &str = "sessionkit_lifetime_expired_total";
/// `sessionkit_client_cache_hits_total`: Redis loads answered from `client_cache=on`'s memory (no round trip).
pub const CLIENT_CACHE_HITS: &str = "sessionkit_client_cache_hits_total";
/// `sessionkit_load_duration_seconds{store}` (histogram).
pub const LOAD_SECONDS: &str = "sessionkit_load_duration_seconds";
/// `sessionkit_save_duration_seconds{store}` (histogram).
pub const SAVE_SECONDS: &str = "sessionkit_save_duration_seconds";

/// Every counter, for front-ends that list them (the Python module's `metrics()`).
pub const COUNTERS: [&str; 13] = [
    LOADS,
    CREATES,
    SAVES,
    SAVE_CONFLICTS,
    SAVE_RETRIES,
    DELETES,
    ERRORS,
    CACHE_FALLBACKS,
    USER_INDEX_OPERATIONS,
    EXPIRED_CLEARED,
    TOUCHES,
    LIFETIME_EXPIRED,
    CLIENT_CACHE_HITS,
];
/// Every histogram.
pub const HISTOGRAMS: [&str; 2] = [LOAD_SECONDS, SAVE_SECONDS];

/// The kind of a store: the value of the `store` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreKind {
    /// `redis://` and the other Redis schemes.
    Redis,
    /// `sqlite://`.
    Sqlite,
    /// `postgres://`, `postgresql://`.
    Postgres,
    /// `mysql://`, `mariadb://`.
    Mysql,
    /// `file://`.
    File,
    /// `memory://`.
    Memory,
    /// `cookie:` (Django's `signed_cookies`).
    Cookie,
    /// `cached_db:CACHE|DB`.
    CachedDb,
    /// A store sessionkit does not know (an application's own [`SessionStore`](crate::SessionStore)).
    Other,
}

impl StoreKind {
    /// Every kind.
    pub const ALL: [StoreKind; 9] = [
        StoreKind::Redis,
        StoreKind::Sqlite,
        StoreKind::Postgres,
        StoreKind::Mysql,
        StoreKind::File,
        StoreKind::Memory,
        StoreKind::Cookie,
        StoreKind::CachedDb,
        StoreKind::Other,
    ];

    /// The label value: `redis`, `sqlite`, `postgres`, `mysql`, `file`, `memory`, `cookie`, `cached_db`, `other`.
    pub const fn label(self) -> &'static str {
        match self {
            StoreKind::Redis => "redis",
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "postgres",
            StoreKind::Mysql => "mysql",
            StoreKind::File => "file",
            StoreKind::Memory => "memory",
            StoreKind::Cookie => "cookie",
            StoreKind::CachedDb => "cached_db",
            StoreKind::Other => "other",
        }
    }

    /// The kind of the store a URL opens (by its scheme).
    pub fn of_url(url: &str) -> StoreKind {
        match url.split_once(':').map_or("", |(scheme, _)| scheme) {
            "redis" | "rediss" | "unix" | "redis+unix" | "redis+sentinel" | "rediss+sentinel" | "redis+cluster"
            | "rediss+cluster" => StoreKind::Redis,
            "sqlite" => StoreKind::Sqlite,
            "postgres" | "postgresql" => StoreKind::Postgres,
            "mysql" | "mariadb" => StoreKind::Mysql,
            "file" => StoreKind::File,
            "memory" => StoreKind::Memory,
            "cookie" | "signed-cookies" | "signed_cookies" => StoreKind::Cookie,
            "cached_db" => StoreKind::CachedDb,
            _ => StoreKind::Other,
        }
    }

    /// The kind whose label is `label`.
    pub fn from_label(label: &str) -> Option<StoreKind> {
        StoreKind::ALL.into_iter().find(|kind| kind.label() == label)
    }

    fn keys(self) -> &'static KindKeys {
        match self {
            StoreKind::Redis => &REDIS,
            StoreKind::Sqlite => &SQLITE,
            StoreKind::Postgres => &POSTGRES,
            StoreKind::Mysql => &MYSQL,
            StoreKind::File => &FILE,
            StoreKind::Memory => &MEMORY,
            StoreKind::Cookie => &COOKIE,
            StoreKind::CachedDb => &CACHED_DB,
            StoreKind::Other => &OTHER,
        }
    }
}

/// How a load ended: the `outcome` label of [`LOADS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadOutcome {
    /// A live session.
    Hit,
    /// No session (unknown, expired, or a key the store refuses).
    Miss,
    /// Stored data that did not decode: loaded as an empty session (or none, for signed cookies).
    Corrupt,
}

impl LoadOutcome {
    /// `hit`, `miss` or `corrupt`.
    pub const fn label(self) -> &'static str {
        match self {
            LoadOutcome::Hit => "hit",
            LoadOutcome::Miss => "miss",
            LoadOutcome::Corrupt => "corrupt",
        }
    }
}

/// How a save ended: the `outcome` label of [`SAVES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    /// The request's data was written as it was.
    Written,
    /// Another request wrote the session meanwhile; both requests' changes were merged and written.
    Merged,
}

impl SaveOutcome {
    /// `written` or `merged`.
    pub const fn label(self) -> &'static str {
        match self {
            SaveOutcome::Written => "written",
            SaveOutcome::Merged => "merged",
        }
    }
}

/// The `kind` label of [`ERRORS`]: a short name per [`StoreError`] variant.
pub fn error_kind(err: &StoreError) -> &'static str {
    match err {
        StoreError::KeyCollision => "key_collision",
        StoreError::SessionVanished => "session_vanished",
        StoreError::Contended { .. } => "contended",
        StoreError::UnsafeKey => "unsafe_key",
        StoreError::CookieTooLarge { .. } => "cookie_too_large",
        StoreError::Corrupt(_) => "corrupt",
        StoreError::Unavailable { .. } => "unavailable",
        StoreError::Config(_) => "config",
    }
}

// The hot-path keys (loads, creates, saves, their durations) are statics: no allocation per call, with or without
// a recorder. Rarer series build their key per call.

struct KindLabels {
    store: [Label; 1],
    hit: [Label; 2],
    miss: [Label; 2],
    corrupt: [Label; 2],
    written: [Label; 2],
    merged: [Label; 2],
}

const fn pair(store: &'static str, name: &'static str, value: &'static str) -> [Label; 2] {
    [Label::from_static_parts("store", store), Label::from_static_parts(name, value)]
}

const fn kind_labels(kind: StoreKind) -> KindLabels {
    let store = kind.label();
    KindLabels {
        store: [Label::from_static_parts("store", store)],
        hit: pair(store, "outcome", LoadOutcome::Hit.label()),
        miss: pair(store, "outcome", LoadOutcome::Miss.label()),
        corrupt: pair(store, "outcome", LoadOutcome::Corrupt.label()),
        written: pair(store, "outcome", SaveOutcome::Written.label()),
        merged: pair(store, "outcome", SaveOutcome::Merged.label()),
    }
}

struct KindKeys {
    hit: Key,
    miss: Key,
    corrupt: Key,
    creates: Key,
    written: Key,
    merged: Key,
    deletes: Key,
    load_seconds: Key,
    save_seconds: Key,
}

const fn kind_keys(labels: &'static KindLabels) -> KindKeys {
    KindKeys {
        hit: Key::from_static_parts(LOADS, &labels.hit),
        miss: Key::from_static_parts(LOADS, &labels.miss),
        corrupt: Key::from_static_parts(LOADS, &labels.corrupt),
        creates: Key::from_static_parts(CREATES, &labels.store),
        written: Key::from_static_parts(SAVES, &labels.written),
        merged: Key::from_static_parts(SAVES, &labels.merged),
        deletes: Key::from_static_parts(DELETES, &labels.store),
        load_seconds: Key::from_static_parts(LOAD_SECONDS, &labels.store),
        save_seconds: Key::from_static_parts(SAVE_SECONDS, &labels.store),
    }
}

macro_rules! kind_statics {
    ($($labels:ident, $keys:ident = $kind:expr;)*) => {
        $(
            static $labels: KindLabels = kind_labels($kind);
            static $keys: KindKeys = kind_keys(&$labels);
        )*
    };
}

kind_statics! {
    REDIS_LABELS, REDIS = StoreKind::Redis;
    SQLITE_LABELS, SQLITE = StoreKind::Sqlite;
    POSTGRES_LABELS, POSTGRES = StoreKind::Postgres;
    MYSQL_LABELS, MYSQL = StoreKind::Mysql;
    FILE_LABELS, FILE = StoreKind::File;
    MEMORY_LABELS, MEMORY = StoreKind::Memory;
    COOKIE_LABELS, COOKIE = StoreKind::Cookie;
    CACHED_DB_LABELS, CACHED_DB = StoreKind::CachedDb;
    OTHER_LABELS, OTHER = StoreKind::Other;
}

static METADATA: Metadata<'static> = Metadata::new("sessionkit", Level::INFO, Some(module_path!()));

fn increment(key: &Key, by: u64) {
    metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA).increment(by));
}

fn observe(key: &Key, seconds: f64) {
    metrics::with_recorder(|recorder| recorder.register_histogram(key, &METADATA).record(seconds));
}

/// Counts a load and its duration.
pub fn record_load(kind: StoreKind, outcome: LoadOutcome, took: Duration) {
    let keys = kind.keys();
    increment(
        match outcome {
            LoadOutcome::Hit => &keys.hit,
            LoadOutcome::Miss => &keys.miss,
            LoadOutcome::Corrupt => &keys.corrupt,
        },
        1,
    );
    observe(&keys.load_seconds, took.as_secs_f64());
}

/// Counts a created session.
pub fn record_create(kind: StoreKind) {
    increment(&kind.keys().creates, 1);
}

/// Counts a save, its duration, and the conflicts it met: a save that took `attempts` compare-and-set writes met
/// `attempts - 1` conflicts, each followed by a retry.
pub fn record_save(kind: StoreKind, outcome: SaveOutcome, attempts: usize, took: Duration) {
    let keys = kind.keys();
    increment(
        match outcome {
            SaveOutcome::Written => &keys.written,
            SaveOutcome::Merged => &keys.merged,
        },
        1,
    );
    observe(&keys.save_seconds, took.as_secs_f64());
    let retries = attempts.saturating_sub(1) as u64;
    if retries > 0 {
        record_conflicts(kind, retries, retries);
    }
}

/// Counts compare-and-set conflicts and the retries that followed them.
pub fn record_conflicts(kind: StoreKind, conflicts: u64, retries: u64) {
    let store = [Label::from_static_parts("store", kind.label())];
    if conflicts > 0 {
        increment(&Key::from_parts(SAVE_CONFLICTS, store.to_vec()), conflicts);
    }
    if retries > 0 {
        increment(&Key::from_parts(SAVE_RETRIES, store.to_vec()), retries);
    }
}

/// Counts a touch that moved a session's expiry.
pub fn record_touch(kind: StoreKind) {
    increment(&Key::from_parts(TOUCHES, vec![Label::from_static_parts("store", kind.label())]), 1);
}

/// Counts a session ended by a lifetime rule (`idle`, `absolute`).
pub fn record_lifetime_expired(rule: crate::lifetime::ExpiryRule) {
    increment(&Key::from_parts(LIFETIME_EXPIRED, vec![Label::from_static_parts("rule", rule.as_str())]), 1);
}

/// Counts a deleted session.
pub fn record_delete(kind: StoreKind) {
    increment(&kind.keys().deletes, 1);
}

/// Counts a failed store call (`operation`: `load`, `save`, …).
pub fn record_error(kind: StoreKind, operation: &'static str, err: &StoreError) {
    let labels = vec![
        Label::from_static_parts("store", kind.label()),
        Label::from_static_parts("operation", operation),
        Label::from_static_parts("kind", error_kind(err)),
    ];
    increment(&Key::from_parts(ERRORS, labels), 1);
    // A save that gave up met a conflict on every attempt (and retried after all but the last).
    if let StoreError::Contended { attempts } = err {
        let attempts = *attempts as u64;
        record_conflicts(kind, attempts, attempts.saturating_sub(1));
    }
}

/// Why `cached_db` read the database instead of the cache: the `reason` label of [`CACHE_FALLBACKS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheFallback {
    /// A cache call failed (logged); the database answered.
    Error,
    /// The cache held a tombstone or an empty entry; the database decided.
    Tombstone,
    /// A cache write met another request's copy (or took too long) and the cache stepped aside: loads read the
    /// database for a while.
    SteppedAside,
}

impl CacheFallback {
    /// `error`, `tombstone` or `stepped_aside`.
    pub const fn label(self) -> &'static str {
        match self {
            CacheFallback::Error => "error",
            CacheFallback::Tombstone => "tombstone",
            CacheFallback::SteppedAside => "stepped_aside",
        }
    }
}

/// Counts a `cached_db` cache fallback (`operation`: `load`, `refill`, `write`, `clear_expired`).
pub fn record_cache_fallback(operation: &'static str, reason: CacheFallback) {
    let labels =
        vec![Label::from_static_parts("operation", operation), Label::from_static_parts("reason", reason.label())];
    increment(&Key::from_parts(CACHE_FALLBACKS, labels), 1);
}

/// Counts a per-user index call (`operation`: `list`, `delete_one`, `delete_all`).
pub fn record_user_index(kind: StoreKind, operation: &'static str) {
    let labels =
        vec![Label::from_static_parts("store", kind.label()), Label::from_static_parts("operation", operation)];
    increment(&Key::from_parts(USER_INDEX_OPERATIONS, labels), 1);
}

/// Counts expired sessions removed by `clear_expired`.
pub fn record_expired_cleared(kind: StoreKind, removed: u64) {
    if removed > 0 {
        increment(&Key::from_parts(EXPIRED_CLEARED, vec![Label::from_static_parts("store", kind.label())]), removed);
    }
}

// Corrupt data is found deep inside a store's load (after decoding), where the store only logs it. The
// instrumented wrapper runs each load inside a task-local flag; the store's corrupt path sets it ([`mark_corrupt`])
// and the wrapper counts the load as `corrupt` instead of `hit`/`miss`. Stores that decode on the blocking pool
// carry the flag back with [`capture_corrupt`].

tokio::task_local! {
    static LOAD_CORRUPT: Cell<bool>;
}

thread_local! {
    /// Set inside [`capture_corrupt`] (off the task, on a blocking thread).
    static CAPTURED: Cell<Option<bool>> = const { Cell::new(None) };
}

/// A Redis load answered from the client-side cache.
pub(crate) fn client_cache_hit() {
    metrics::counter!(CLIENT_CACHE_HITS).increment(1);
}

/// Called where a store turns undecodable data into an empty session (next to its `sessionkit::corrupt` log line):
/// the load in progress counts as `corrupt`.
pub(crate) fn mark_corrupt() {
    if LOAD_CORRUPT.try_with(|flag| flag.set(true)).is_err() {
        CAPTURED.with(|captured| {
            if captured.get().is_some() {
                captured.set(Some(true));
            }
        });
    }
}

/// Runs `work` (on a blocking thread) and says whether it called [`mark_corrupt`]; pass the answer to
/// [`mark_corrupt_if`] back on the task.
#[cfg(feature = "file")]
pub(crate) fn capture_corrupt<T>(work: impl FnOnce() -> T) -> (T, bool) {
    let outer = CAPTURED.with(|captured| captured.replace(Some(false)));
    let out = work();
    let corrupt = CAPTURED.with(|captured| captured.replace(outer)).unwrap_or(false);
    (out, corrupt)
}

/// [`mark_corrupt`] when `corrupt`.
#[cfg(feature = "file")]
pub(crate) fn mark_corrupt_if(corrupt: bool) {
    if corrupt {
        mark_corrupt();
    }
}

/// Runs a load, and says whether its store found corrupt data.
pub(crate) async fn watch_corrupt<T>(load: impl std::future::Future<Output = T>) -> (T, bool) {
    LOAD_CORRUPT
        .scope(Cell::new(false), async move {
            let out = load.await;
            (out, LOAD_CORRUPT.try_with(Cell::get).unwrap_or(false))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_labels_round_trip() {
        for kind in StoreKind::ALL {
            assert_eq!(StoreKind::from_label(kind.label()), Some(kind));
            assert_eq!(kind.keys().hit.labels().map(|l| l.value()).collect::<Vec<_>>(), [kind.label(), "hit"]);
        }
        assert_eq!(StoreKind::of_url("redis+cluster://a:1"), StoreKind::Redis);
        assert_eq!(StoreKind::of_url("cached_db:memory://|sqlite://x"), StoreKind::CachedDb);
        assert_eq!(StoreKind::of_url("mariadb://u@h/d"), StoreKind::Mysql);
        assert_eq!(StoreKind::of_url("nonsense"), StoreKind::Other);
    }

    #[tokio::test]
    async fn a_corrupt_mark_reaches_the_watching_load_only() {
        let (_, corrupt) = watch_corrupt(async { mark_corrupt() }).await;
        assert!(corrupt);
        let (_, corrupt) = watch_corrupt(async {}).await;
        assert!(!corrupt);
        // Outside any load: nothing to mark, no panic.
        mark_corrupt();
    }
}
