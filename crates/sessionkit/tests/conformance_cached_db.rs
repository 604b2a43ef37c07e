//! cached_db: the conformance suite on cache + database pairs, and what happens when either side fails.
//! Also the failure policy (`failure_policy=empty`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sessionkit::conformance::Harness;
use sessionkit::store::cached_db::CachedDbStore;
use sessionkit::store::memory::MemoryStore;
use sessionkit::store::redis::RedisStore;
use sessionkit::store::sqlite::SqliteStore;
use sessionkit::{open_store, ConfigError, Session, SessionKey, SessionStore, Settings, StoreError};
use sessionkit_testsupport::{shared_standalone, Standalone};

fn settings() -> Arc<Settings> {
    Arc::new(Settings::with_secret_key("cached-db-secret"))
}

fn unique() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

struct CachedDbHarness {
    store: Arc<CachedDbStore>,
    db: Arc<SqliteStore>,
    settings: Arc<Settings>,
    _dir: tempfile::TempDir,
}

impl CachedDbHarness {
    async fn new(cache: Arc<dyn SessionStore>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings();
        let url = format!("sqlite://{}", dir.path().join("db.sqlite3").display());
        let db = Arc::new(SqliteStore::connect(&url, &settings).await.unwrap());
        let store = Arc::new(CachedDbStore::new(cache, db.clone()));
        CachedDbHarness { store, db, settings, _dir: dir }
    }

    async fn memory_sqlite() -> Self {
        Self::new(Arc::new(MemoryStore::new())).await
    }

    async fn redis_sqlite() -> Self {
        let url = format!(
            "{}?layout=django-cache&engine=cached_db&key_prefix=cdb{}x{}",
            shared_standalone().url(),
            std::process::id(),
            unique()
        );
        Self::new(Arc::new(RedisStore::connect(&url).await.unwrap())).await
    }
}

#[async_trait::async_trait]
impl Harness for CachedDbHarness {
    fn store(&self) -> Arc<dyn SessionStore> {
        self.store.clone()
    }
    fn settings(&self) -> Arc<Settings> {
        self.settings.clone()
    }
    /// Corrupt data in the database (the cache has no copy of a fresh key).
    async fn plant_corrupt(&self, key: &SessionKey) -> bool {
        sqlx::query("INSERT INTO django_session VALUES (?1, 'garbage:token:sig', '2999-01-01 00:00:00')")
            .bind(key.as_str())
            .execute(self.db.pool())
            .await
            .unwrap();
        true
    }
}

mod memory_sqlite {
    use super::*;
    sessionkit::conformance_suite!(CachedDbHarness::memory_sqlite());
}

mod redis_sqlite {
    use super::*;
    sessionkit::conformance_suite!(CachedDbHarness::redis_sqlite());
}

/// Redis (Django's cached_db keys) in front of PostgreSQL, each harness on a fresh database.
mod redis_postgres {
    use super::*;
    use sessionkit::store::postgres::PostgresStore;
    use sessionkit_testsupport::databases::{Engine, TestDatabase};

    struct RedisPostgresHarness {
        store: Arc<CachedDbStore>,
        db: Arc<PostgresStore>,
        settings: Arc<Settings>,
        // Dropped last, after the stores.
        _database: TestDatabase,
    }

    impl RedisPostgresHarness {
        async fn new() -> Self {
            let database = TestDatabase::create(Engine::Postgres).await;
            let settings = settings();
            let db = Arc::new(PostgresStore::connect(&database.url(), &settings).await.unwrap());
            let cache_url = format!(
                "{}?layout=django-cache&engine=cached_db&key_prefix=cdbpg{}x{}",
                shared_standalone().url(),
                std::process::id(),
                unique()
            );
            let cache = Arc::new(RedisStore::connect(&cache_url).await.unwrap());
            let store = Arc::new(CachedDbStore::new(cache, db.clone()));
            RedisPostgresHarness { store, db, settings, _database: database }
        }
    }

    #[async_trait::async_trait]
    impl Harness for RedisPostgresHarness {
        fn store(&self) -> Arc<dyn SessionStore> {
            self.store.clone()
        }
        fn settings(&self) -> Arc<Settings> {
            self.settings.clone()
        }
        async fn plant_corrupt(&self, key: &SessionKey) -> bool {
            sqlx::query("INSERT INTO django_session VALUES ($1, 'garbage:token:sig', '2999-01-01 00:00:00+00')")
                .bind(key.as_str())
                .execute(self.db.pool())
                .await
                .unwrap();
            true
        }
    }

    sessionkit::conformance_suite!(RedisPostgresHarness::new());
}

async fn save_new(store: Arc<dyn SessionStore>, value: &str) -> SessionKey {
    let mut s = Session::new(store, settings(), None);
    s.set("v", value).await.unwrap();
    s.save().await.unwrap();
    s.key().cloned().unwrap()
}

/// A dead cache: the database answers every read and write, each failure is counted, nothing is lost; a delete
/// that cannot reach the cache is an error (a stale copy would outlive a logout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_cache_never_loses_or_hides_a_session() {
    let mut redis = Standalone::start().unwrap();
    let cache = Arc::new(
        RedisStore::connect(&format!("{}?layout=django-cache&engine=cached_db&timeout=0.5", redis.url()))
            .await
            .unwrap(),
    );
    let h = CachedDbHarness::new(cache).await;
    let before = save_new(h.store.clone(), "before").await;
    assert_eq!(h.store.cache_failures(), 0);

    redis.server.stop();
    let mut s = Session::new(h.store.clone(), settings(), Some(before.clone()));
    assert_eq!(s.get::<String>("v").await.unwrap().as_deref(), Some("before"), "the database answers");
    s.set("v", "during").await.unwrap();
    s.save().await.unwrap();
    let during = save_new(h.store.clone(), "during-new").await;
    assert!(h.store.cache_failures() >= 3, "{}", h.store.cache_failures());
    assert_eq!(h.db.load(&during).await.unwrap().unwrap().data["v"], "during-new");
    let err = h.store.delete(&during).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");

    redis.server.restart().unwrap();
    // Back to normal, and what was written during the outage is there.
    let mut s = Session::new(h.store.clone(), settings(), Some(before));
    assert_eq!(s.get::<String>("v").await.unwrap().as_deref(), Some("during"));
}

/// A dead database is an error, never an empty session.
#[tokio::test]
async fn a_failing_database_is_an_error() {
    let h = CachedDbHarness::memory_sqlite().await;
    let key = save_new(h.store.clone(), "x").await;
    // A fresh (empty) cache in front of the same database, so the database must answer; then it goes away.
    let store = Arc::new(CachedDbStore::new(Arc::new(MemoryStore::new()), h.db.clone()));
    h.db.pool().close().await;
    let mut s = Session::new(store, settings(), Some(key));
    let err = s.get::<String>("v").await.unwrap_err();
    assert!(matches!(err, sessionkit::SessionError::Store(StoreError::Unavailable { .. })), "{err:?}");
}

/// `failure_policy=empty` turns an unreachable store into an empty session (Django's cache behaviour); the default
/// is an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_policy_empty_versus_the_default_error() {
    let mut redis = Standalone::start().unwrap();
    let s = settings();
    let strict = open_store(&format!("{}?timeout=0.5", redis.url()), &s).await.unwrap();
    let lenient = open_store(&format!("{}?timeout=0.5&failure_policy=empty", redis.url()), &s).await.unwrap();
    let key = save_new(lenient.clone(), "kept").await;
    assert!(strict.load(&key).await.unwrap().is_some(), "both see the same data");

    redis.server.stop();
    assert!(matches!(strict.load(&key).await.unwrap_err(), StoreError::Unavailable { .. }));
    let mut session = Session::new(lenient.clone(), settings(), Some(key.clone()));
    assert_eq!(session.len().await.unwrap(), 0, "treated as empty");
    assert!(session.key().is_none());
    // A write still fails loudly.
    session.set("x", 1).await.unwrap();
    assert!(session.save().await.is_err());
}

#[tokio::test]
async fn urls_are_checked() {
    let s = settings();
    let err = open_store("memory://?failure_policy=sometimes", &s).await.unwrap_err();
    assert!(matches!(err, StoreError::Config(ConfigError::InvalidStoreUrl { .. })), "{err:?}");
    assert!(open_store("cached_db:memory://", &s).await.is_err(), "needs CACHE|DB");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("cached_db:memory://|sqlite://{}", dir.path().join("x.sqlite3").display());
    let store = open_store(&url, &s).await.unwrap();
    assert!(store.describe().starts_with("cached_db:memory://|sqlite://"));
    let key = save_new(store.clone(), "via-url").await;
    assert!(store.load(&key).await.unwrap().is_some());
}

/// Redis (django-cache layout, Django's cached_db keys, with the per-user index) in front of a fresh SQLite file.
struct Revocation {
    _dir: tempfile::TempDir,
    db: Arc<dyn SessionStore>,
    cache: Arc<dyn SessionStore>,
    store: Arc<dyn SessionStore>,
}

impl Revocation {
    async fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("db.sqlite3").display());
        let db: Arc<dyn SessionStore> = Arc::new(SqliteStore::connect(&url, &settings()).await.unwrap());
        let prefix = format!("{name}{}", std::process::id());
        let cache_url =
            format!("{}?layout=django-cache&engine=cached_db&key_prefix={prefix}", shared_standalone().url());
        let cache: Arc<dyn SessionStore> = Arc::new(RedisStore::connect(&cache_url).await.unwrap());
        let store: Arc<dyn SessionStore> = Arc::new(CachedDbStore::new(cache.clone(), db.clone()));
        Revocation { _dir: dir, db, cache, store }
    }
}

/// "Log out other devices" through cached_db deletes the database rows too: a revoked session must not come back
/// from the database after its cached copy is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_users_sessions_reaches_the_database() {
    let Revocation { _dir, db, store, .. } = Revocation::new("revoke").await;

    let mut keys = Vec::new();
    for device in ["phone", "laptop", "tablet"] {
        let mut session = Session::new(store.clone(), settings(), None);
        session.set("_auth_user_id", "77").await.unwrap();
        session.set("device", device).await.unwrap();
        session.save().await.unwrap();
        keys.push(session.key().cloned().unwrap());
    }
    let index = store.user_index().expect("the Redis cache keeps an index");
    assert_eq!(index.list("77").await.unwrap().len(), 3);

    // One device, by id.
    let phone = sessionkit::store::user_index::session_id(&keys[0]);
    assert!(index.delete_one("77", &phone).await.unwrap());
    assert!(db.load(&keys[0]).await.unwrap().is_none(), "the database row must be gone");
    assert!(store.load(&keys[0]).await.unwrap().is_none());

    // All but the current one.
    let mut current = Session::new(store.clone(), settings(), Some(keys[2].clone()));
    assert_eq!(current.log_out_other_devices().await.unwrap(), 1);
    assert!(db.load(&keys[1]).await.unwrap().is_none(), "the database row must be gone");
    assert!(store.load(&keys[1]).await.unwrap().is_none());
    assert!(store.load(&keys[2]).await.unwrap().is_some(), "the current session stays");
    assert_eq!(index.list("77").await.unwrap().len(), 1);
}

/// The cache is disposable: a session whose cached copy was evicted (or never written) must still be listed
/// and revoked, because its database row lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_finds_sessions_the_cache_lost() {
    let Revocation { _dir, db, cache, store } = Revocation::new("evicted").await;

    let mut keys = Vec::new();
    for device in ["victim", "attacker", "old laptop"] {
        let mut session = Session::new(store.clone(), settings(), None);
        session.set("_auth_user_id", "88").await.unwrap();
        session.set("_sessionkit_ua", device).await.unwrap();
        session.save().await.unwrap();
        keys.push(session.key().cloned().unwrap());
    }
    // The cache loses two copies (eviction, a cache restart): only the database still has them.
    cache.delete(&keys[1]).await.unwrap();
    cache.delete(&keys[2]).await.unwrap();
    let index = store.user_index().unwrap();
    let listed = index.list("88").await.unwrap();
    assert_eq!(listed.len(), 3, "listed from the database: {listed:?}");
    assert!(listed.iter().any(|s| s.user_agent.as_deref() == Some("attacker")));

    assert!(index.delete_one("88", &sessionkit::store::user_index::session_id(&keys[2])).await.unwrap());
    assert!(db.load(&keys[2]).await.unwrap().is_none());
    assert_eq!(index.delete_all("88", Some(&keys[0])).await.unwrap(), 1);
    assert!(store.load(&keys[1]).await.unwrap().is_none(), "the attacker's session must be gone");
    assert!(store.load(&keys[0]).await.unwrap().is_some(), "the current session stays");
    assert_eq!(index.list("88").await.unwrap().len(), 1);
}

/// A database store whose next load can be held after it has read (the slow request of the race): it signals
/// `read` once it has its answer, then waits for `release` before returning it.
#[derive(Debug)]
struct HeldLoads {
    inner: Arc<dyn SessionStore>,
    gate: std::sync::Mutex<Option<(Arc<tokio::sync::Notify>, Arc<tokio::sync::Notify>)>>,
}

impl HeldLoads {
    /// Holds the next load; returns the (read, release) pair.
    fn hold_next(&self) -> (Arc<tokio::sync::Notify>, Arc<tokio::sync::Notify>) {
        let pair = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
        *self.gate.lock().unwrap() = Some(pair.clone());
        pair
    }
}

#[async_trait::async_trait]
impl SessionStore for HeldLoads {
    fn describe(&self) -> String {
        format!("held+{}", self.inner.describe())
    }
    async fn load(&self, key: &SessionKey) -> Result<Option<sessionkit::SessionRecord>, StoreError> {
        let result = self.inner.load(key).await;
        let gate = self.gate.lock().unwrap().take();
        if let Some((read, release)) = gate {
            read.notify_one();
            release.notified().await;
        }
        result
    }
    async fn create(&self, record: &sessionkit::SessionRecord) -> Result<Option<sessionkit::Version>, StoreError> {
        self.inner.create(record).await
    }
    async fn save(
        &self,
        record: &sessionkit::SessionRecord,
        changes: &sessionkit::ChangeSet,
    ) -> Result<sessionkit::store::Saved, StoreError> {
        self.inner.save(record, changes).await
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
    async fn load_raw(&self, key: &SessionKey) -> Result<Option<sessionkit::store::RawSession>, StoreError> {
        self.inner.load_raw(key).await
    }
}

/// The delayed-load race: a load reads the database, a logout then deletes the session everywhere, and only
/// then does the load refill the cache. The logged-out session must not come back from the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refill_cannot_resurrect_a_logged_out_session() {
    let redis_cache = || async {
        let url = format!(
            "{}?layout=django-cache&engine=cached_db&key_prefix=resurrect{}x{}",
            shared_standalone().url(),
            std::process::id(),
            unique()
        );
        Arc::new(RedisStore::connect(&url).await.unwrap()) as Arc<dyn SessionStore>
    };
    for cache in [Arc::new(MemoryStore::new()) as Arc<dyn SessionStore>, redis_cache().await] {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("db.sqlite3").display());
        let sqlite: Arc<dyn SessionStore> = Arc::new(SqliteStore::connect(&url, &settings()).await.unwrap());
        let db = Arc::new(HeldLoads { inner: sqlite, gate: std::sync::Mutex::new(None) });
        let store = Arc::new(CachedDbStore::new(cache.clone(), db.clone()));
        let key = save_new(store.clone(), "logged in").await;
        cache.delete(&key).await.unwrap(); // evicted: the next load reads the database

        let (read, release) = db.hold_next();
        let slow = tokio::spawn({
            let store = store.clone();
            let key = key.clone();
            async move { store.load(&key).await }
        });
        read.notified().await; // the slow load has read the database
        store.delete(&key).await.unwrap(); // the logout, completed
        release.notify_one();
        let slow_result = slow.await.unwrap().unwrap();
        assert!(slow_result.is_some(), "the slow load read the session before the logout");

        assert!(store.load(&key).await.unwrap().is_none(), "{}: the logout was undone", cache.describe());
        let live_copy = cache.load(&key).await.unwrap().filter(|r| !r.data.is_empty());
        assert!(live_copy.is_none(), "{}: the cache serves the logged-out session", cache.describe());
        let mut session = Session::new(store.clone(), settings(), Some(key.clone()));
        assert_eq!(session.len().await.unwrap(), 0);
        assert!(session.key().is_none(), "the cookie's key is no session");
    }
}

/// A session read from the database is put back into the cache only when the cache has no entry for it, and
/// a session that was logged out leaves nothing a later load would trust.
#[tokio::test]
async fn refills_never_overwrite_and_deletes_leave_a_tombstone() {
    let cache = Arc::new(MemoryStore::new());
    let h = CachedDbHarness::new(cache.clone()).await;
    let key = save_new(h.store.clone(), "first").await;
    cache.delete(&key).await.unwrap();
    assert_eq!(h.store.load(&key).await.unwrap().unwrap().data["v"], "first");
    assert_eq!(cache.load(&key).await.unwrap().unwrap().data["v"], "first", "refilled after a miss");
    h.store.delete(&key).await.unwrap();
    let tombstone = cache.load(&key).await.unwrap().expect("a delete leaves a tombstone");
    assert!(tombstone.data.is_empty());
    let left = tombstone.expires_at - time::OffsetDateTime::now_utc();
    assert!(left <= time::Duration::seconds(sessionkit::store::cached_db::TOMBSTONE_SECONDS as i64), "{left}");
    assert!(h.store.load(&key).await.unwrap().is_none());
    assert!(!h.store.exists(&key).await.unwrap());
}

/// On the Redis `django-cache` layout the tombstone is Python's `None` (what `pickle.dumps(None, 5)` writes), which
/// Django's `cache.get` reads as a miss, for 60 s; sessionkit reads it as no session and never refills over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_django_cache_tombstone_is_pythons_none() {
    let url = format!(
        "{}?layout=django-cache&engine=cached_db&key_prefix=none{}x{}",
        shared_standalone().url(),
        std::process::id(),
        unique()
    );
    let cache = Arc::new(RedisStore::connect(&url).await.unwrap());
    let h = CachedDbHarness::new(cache.clone()).await;
    let key = save_new(h.store.clone(), "v").await;
    h.store.delete(&key).await.unwrap();
    let (redis_key, _) = cache.raw_address(&key);
    let client = redis::Client::open(shared_standalone().url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let raw: Vec<u8> = redis::cmd("GET").arg(&redis_key).query_async(&mut conn).await.unwrap();
    assert_eq!(raw, b"\x80\x05N.", "pickle.dumps(None, 5)");
    let ttl: i64 = redis::cmd("PTTL").arg(&redis_key).query_async(&mut conn).await.unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
    assert!(cache.load(&key).await.unwrap().is_none(), "a stored None is a miss");
    assert!(h.store.load(&key).await.unwrap().is_none());
    let refill = sessionkit::SessionRecord {
        key: key.clone(),
        data: [("v".to_owned(), serde_json::json!("stale"))].into_iter().collect(),
        expires_at: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        version: None,
    };
    assert!(matches!(cache.create(&refill).await, Err(StoreError::KeyCollision)), "a refill fails on the tombstone");
}

/// The caches the cache-half tests run on: memory, and Redis in the `django-cache` and `string` layouts.
async fn every_kind_of_cache() -> Vec<Arc<dyn SessionStore>> {
    let tag = format!("aside{}x{}", std::process::id(), unique());
    let mut caches: Vec<Arc<dyn SessionStore>> = vec![Arc::new(MemoryStore::new())];
    for url in [
        format!("{}?layout=django-cache&engine=cached_db&key_prefix={tag}", shared_standalone().url()),
        format!("{}?layout=string&prefix={tag}:", shared_standalone().url()),
    ] {
        caches.push(Arc::new(RedisStore::connect(&url).await.unwrap()));
    }
    caches
}

/// The cached copy of `key`, if the cache holds a live one (not a tombstone).
async fn cached_copy(
    cache: &Arc<dyn SessionStore>,
    key: &SessionKey,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    cache.load(key).await.unwrap().map(|r| r.data).filter(|data| !data.is_empty())
}

/// A cache write that meets another request's copy steps aside (a tombstone: loads read the database), and a
/// tombstone already there keeps its expiry, so a session written all the time gets its cache back once it expires
/// instead of being tombstoned for as long as it is busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_cache_write_steps_aside_without_extending_the_tombstone() {
    for cache in every_kind_of_cache().await {
        let h = CachedDbHarness::new(cache.clone()).await;
        let key = save_new(h.store.clone(), "v").await;
        let mut first = Session::new(h.store.clone(), settings(), Some(key.clone()));
        first.len().await.unwrap(); // loads the cached copy
        let mut second = Session::new(h.store.clone(), settings(), Some(key.clone()));
        second.set("second", 2).await.unwrap();
        second.save().await.unwrap(); // the cache now holds the second request's copy
        first.set("first", 1).await.unwrap();
        first.save().await.unwrap(); // merged in the database; the cache copy it saw is gone
        assert_eq!(cached_copy(&cache, &key).await, None, "{}: the cache stepped aside", cache.describe());
        let stored = h.store.load(&key).await.unwrap().unwrap().data;
        assert_eq!(
            (stored.get("first"), stored.get("second")),
            (Some(&serde_json::json!(1)), Some(&serde_json::json!(2)))
        );

        // The tombstone is about to expire; a busy session's next save must not extend it.
        cache.hold_deleted(&key, std::time::Duration::from_millis(1200)).await.unwrap();
        let mut third = Session::new(h.store.clone(), settings(), Some(key.clone()));
        third.set("third", 3).await.unwrap();
        third.save().await.unwrap();
        assert_eq!(cached_copy(&cache, &key).await, None, "{}: still aside", cache.describe());
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let loaded = h.store.load(&key).await.unwrap().unwrap().data; // a miss: read from the database, refilled
        assert_eq!(loaded.get("third"), Some(&serde_json::json!(3)));
        let copy = cached_copy(&cache, &key).await;
        assert_eq!(copy.as_ref(), Some(&loaded), "{}: the cache is back in use", cache.describe());
    }
}

/// A database write or read slower than the refill deadline leaves nothing in the cache: the tombstone of a delete
/// made meanwhile could have expired by the time the cache write arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_writes_after_a_slow_database_step_aside() {
    use sessionkit::store::cached_db::{refill_cache, write_cache_copy, REFILL_DEADLINE_SECONDS};
    let slow = std::time::Duration::from_secs(REFILL_DEADLINE_SECONDS);
    for cache in every_kind_of_cache().await {
        let record = sessionkit::SessionRecord::new(
            SessionKey::generate(),
            [("v".to_owned(), serde_json::json!("db"))].into_iter().collect(),
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        );
        assert_eq!(refill_cache(cache.as_ref(), &record, slow).await.unwrap(), None);
        assert_eq!(cached_copy(&cache, &record.key).await, None, "{}: no late refill", cache.describe());
        let version = write_cache_copy(cache.as_ref(), &record, &sessionkit::ChangeSet::default(), slow - slow / 2)
            .await
            .unwrap();
        assert!(version.is_some(), "{}: a prompt write is cached", cache.describe());
        let late = sessionkit::SessionRecord { version, ..record.clone() };
        assert_eq!(
            write_cache_copy(cache.as_ref(), &late, &sessionkit::ChangeSet::default(), slow).await.unwrap(),
            None
        );
        assert_eq!(cached_copy(&cache, &record.key).await, None, "{}: a late write steps aside", cache.describe());
    }
}
