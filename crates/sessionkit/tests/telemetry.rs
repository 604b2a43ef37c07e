//! The metrics every store call records (`sessionkit::telemetry`), read back through a recorder installed for
//! the test's thread, against the memory store, a real Redis server and cached_db.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::json;
use sessionkit::store::user_index::USER_AGENT_KEY;
use sessionkit::telemetry::{LOADS, SAVES};
use sessionkit::{open_store, ChangeSet, Session, SessionKey, SessionRecord, SessionStore, Settings};
use time::{Duration, OffsetDateTime};

fn settings() -> Arc<Settings> {
    Arc::new(Settings::with_secret_key("telemetry-tests"))
}

/// A metric's name and its labels, sorted.
type Series = (String, Vec<(String, String)>);

/// What a test's recorder has counted so far (a snapshot of the debugging recorder drains it, so the counts are
/// kept here).
struct Tally {
    snapshotter: Snapshotter,
    counts: RefCell<HashMap<Series, u64>>,
}

impl Tally {
    fn new(recorder: &DebuggingRecorder) -> Tally {
        Tally { snapshotter: recorder.snapshotter(), counts: RefCell::default() }
    }
}

/// The counter `name` with exactly `labels` (for a histogram: how many values it got), 0 when never recorded.
fn counter(tally: &Tally, name: &str, labels: &[(&str, &str)]) -> u64 {
    let mut counts = tally.counts.borrow_mut();
    for (key, .., value) in tally.snapshotter.snapshot().into_vec() {
        let mut found: Vec<(String, String)> =
            key.key().labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
        found.sort();
        let n = match value {
            DebugValue::Counter(n) => n,
            DebugValue::Histogram(values) => values.len() as u64,
            DebugValue::Gauge(_) => 0,
        };
        *counts.entry((key.key().name().to_owned(), found)).or_default() += n;
    }
    let mut want: Vec<(String, String)> = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    want.sort();
    counts.get(&(name.to_owned(), want)).copied().unwrap_or(0)
}

fn unique() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("t{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Creates, loads (hit and miss), saves, merges after a conflict and deletes through `store`, checking each series.
async fn counts_a_session_lifecycle(store: Arc<dyn SessionStore>, kind: &str, snapshotter: &Tally) {
    let store_label = [("store", kind)];
    let mut session = Session::new(Arc::clone(&store), settings(), None);
    session.set("n", 1).await.unwrap();
    session.save().await.unwrap();
    let key = session.key().cloned().unwrap();
    assert_eq!(counter(snapshotter, "sessionkit_creates_total", &store_label), 1);

    let loaded = store.load(&key).await.unwrap().unwrap();
    assert!(store.load(&SessionKey::generate()).await.unwrap().is_none());
    assert_eq!(counter(snapshotter, LOADS, &[("store", kind), ("outcome", "hit")]), 1);
    assert_eq!(counter(snapshotter, LOADS, &[("store", kind), ("outcome", "miss")]), 1);
    assert_eq!(counter(snapshotter, "sessionkit_load_duration_seconds", &store_label), 2);

    // Two requests loaded the same version: the second save conflicts, merges and is retried once.
    let mut first = loaded.clone();
    first.data.insert("a".into(), json!(1));
    store.save(&first, &ChangeSet::between(&loaded.data, &first.data)).await.unwrap();
    let mut second = loaded.clone();
    second.data.insert("b".into(), json!(2));
    let saved = store.save(&second, &ChangeSet::between(&loaded.data, &second.data)).await.unwrap();
    assert!(saved.merged.is_some());
    assert_eq!(counter(snapshotter, SAVES, &[("store", kind), ("outcome", "written")]), 1);
    assert_eq!(counter(snapshotter, SAVES, &[("store", kind), ("outcome", "merged")]), 1);
    assert_eq!(counter(snapshotter, "sessionkit_save_conflicts_total", &store_label), 1);
    assert_eq!(counter(snapshotter, "sessionkit_save_retries_total", &store_label), 1);
    assert_eq!(counter(snapshotter, "sessionkit_save_duration_seconds", &store_label), 2);

    store.delete(&key).await.unwrap();
    assert_eq!(counter(snapshotter, "sessionkit_deletes_total", &store_label), 1);
    // A save of the deleted session fails: counted by store, operation and kind.
    assert!(store.save(&second, &ChangeSet::between(&loaded.data, &second.data)).await.is_err());
    let failure = [("store", kind), ("operation", "save"), ("kind", "session_vanished")];
    assert_eq!(counter(snapshotter, "sessionkit_store_errors_total", &failure), 1);
}

#[tokio::test]
async fn the_memory_store_counts_every_call() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = Tally::new(&recorder);
    let _guard = metrics::set_default_local_recorder(&recorder);
    let store = open_store("memory://", &settings()).await.unwrap();
    counts_a_session_lifecycle(store, "memory", &snapshotter).await;
}

#[tokio::test]
async fn a_redis_store_counts_every_call_and_its_user_index() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = Tally::new(&recorder);
    let _guard = metrics::set_default_local_recorder(&recorder);
    let url = format!("{}?prefix={}:", sessionkit_testsupport::shared_standalone().url(), unique());
    let store = open_store(&url, &settings()).await.unwrap();
    counts_a_session_lifecycle(Arc::clone(&store), "redis", &snapshotter).await;

    let mut session = Session::new(Arc::clone(&store), settings(), None);
    session.set("_auth_user_id", "42").await.unwrap();
    session.set(USER_AGENT_KEY, "phone").await.unwrap();
    session.save().await.unwrap();
    let index = store.user_index().expect("redis keeps a user index");
    assert_eq!(index.list("42").await.unwrap().len(), 1);
    assert_eq!(index.delete_all("42", None).await.unwrap(), 1);
    let ops =
        |op| counter(&snapshotter, "sessionkit_user_index_operations_total", &[("store", "redis"), ("operation", op)]);
    assert_eq!((ops("list"), ops("delete_all"), ops("delete_one")), (1, 1, 0));

    // Corrupt data loads as an empty session and is counted as such, not as a hit.
    let key = SessionKey::generate();
    // A header that says "valid for an hour", then broken JSON (as the Redis conformance harness plants it).
    let expiry = (OffsetDateTime::now_utc() + Duration::hours(1)).unix_timestamp() as u32;
    let mut bytes = vec![1u8, 0];
    bytes.extend_from_slice(&expiry.to_be_bytes());
    bytes.extend_from_slice(b"{\"broken\": [");
    let planter = sessionkit::store::redis::RedisStore::connect(&url).await.unwrap();
    planter.put_raw(&key, &bytes, 3_600_000).await.unwrap();
    let loaded = store.load(&key).await.unwrap();
    assert!(loaded.is_none_or(|record| record.data.is_empty()));
    assert_eq!(counter(&snapshotter, LOADS, &[("store", "redis"), ("outcome", "corrupt")]), 1);
    assert_eq!(counter(&snapshotter, LOADS, &[("store", "redis"), ("outcome", "hit")]), 1);
}

#[tokio::test]
async fn corrupt_data_counts_as_corrupt_on_the_memory_and_file_stores() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = Tally::new(&recorder);
    let _guard = metrics::set_default_local_recorder(&recorder);

    let memory = sessionkit::store::memory::MemoryStore::new();
    let key = SessionKey::generate();
    memory.insert_raw(key.clone(), b"{\"truncated\": [1".to_vec(), OffsetDateTime::now_utc() + Duration::hours(1));
    let store =
        sessionkit::store::instrumented::Instrumented::new(Arc::new(memory), sessionkit::telemetry::StoreKind::Memory);
    assert!(store.load(&key).await.unwrap().unwrap().data.is_empty());
    assert_eq!(counter(&snapshotter, LOADS, &[("store", "memory"), ("outcome", "corrupt")]), 1);
    assert_eq!(counter(&snapshotter, LOADS, &[("store", "memory"), ("outcome", "hit")]), 0);

    // The file store decodes on the blocking pool: the mark comes back to the load.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let store = open_store(&url, &settings()).await.unwrap();
    let key = SessionKey::generate();
    std::fs::write(dir.path().join(format!("sessionid{}", key.as_str())), b"not-a-signed-token").unwrap();
    assert!(store.load(&key).await.unwrap().is_none_or(|record| record.data.is_empty()));
    assert_eq!(counter(&snapshotter, LOADS, &[("store", "file"), ("outcome", "corrupt")]), 1);
}

#[tokio::test]
async fn cached_db_counts_itself_its_parts_and_its_fallbacks() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = Tally::new(&recorder);
    let _guard = metrics::set_default_local_recorder(&recorder);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("cached_db:memory://|sqlite://{}", dir.path().join("db.sqlite3").display());
    let store = open_store(&url, &settings()).await.unwrap();
    let record = SessionRecord::new(
        SessionKey::generate(),
        serde_json::Map::from_iter([("k".to_owned(), json!("v"))]),
        OffsetDateTime::now_utc() + Duration::hours(1),
    );
    store.create(&record).await.unwrap();
    assert!(store.load(&record.key).await.unwrap().is_some());
    for kind in ["cached_db", "sqlite", "memory"] {
        assert_eq!(counter(&snapshotter, "sessionkit_creates_total", &[("store", kind)]), 1, "{kind}");
    }
    // Served by the cache: a cached_db hit and a memory hit, the database not asked.
    assert_eq!(counter(&snapshotter, LOADS, &[("store", "cached_db"), ("outcome", "hit")]), 1);
    assert_eq!(counter(&snapshotter, LOADS, &[("store", "memory"), ("outcome", "hit")]), 1);
    assert_eq!(counter(&snapshotter, LOADS, &[("store", "sqlite"), ("outcome", "hit")]), 0);

    // A delete leaves a tombstone in the cache: a later load of the key reads the database.
    store.delete(&record.key).await.unwrap();
    assert!(store.load(&record.key).await.unwrap().is_none());
    let fallback = [("operation", "load"), ("reason", "tombstone")];
    assert_eq!(counter(&snapshotter, "sessionkit_cache_fallbacks_total", &fallback), 1);
    assert_eq!(counter(&snapshotter, LOADS, &[("store", "sqlite"), ("outcome", "miss")]), 1);
    assert_eq!(counter(&snapshotter, "sessionkit_deletes_total", &[("store", "cached_db")]), 1);

    // Expired sessions cleared: the count clear_expired returns.
    let expired = SessionRecord::new(
        SessionKey::generate(),
        serde_json::Map::new(),
        OffsetDateTime::now_utc() - Duration::hours(1),
    );
    store.create(&expired).await.unwrap();
    assert_eq!(store.clear_expired().await.unwrap(), 1);
    assert_eq!(counter(&snapshotter, "sessionkit_expired_cleared_total", &[("store", "cached_db")]), 1);
    assert_eq!(counter(&snapshotter, "sessionkit_expired_cleared_total", &[("store", "sqlite")]), 1);
}

#[tokio::test]
async fn without_a_recorder_nothing_breaks() {
    let store = open_store("memory://", &settings()).await.unwrap();
    let mut session = Session::new(Arc::clone(&store), settings(), None);
    session.set("n", 1).await.unwrap();
    session.save().await.unwrap();
    assert!(store.load(session.key().unwrap()).await.unwrap().is_some());
}
