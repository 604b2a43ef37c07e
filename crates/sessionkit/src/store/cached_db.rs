//! Django's `cached_db` backend: any cache store in front of any db store.
//!
//! Django's order: reads try the cache, then the database (refilling the cache); writes go to the database first,
//! then the cache; deletes go to both. The database is the truth:
//! - a failing **cache** never loses or hides a session: the failure is logged (target `sessionkit`), counted
//!   ([`CachedDbStore::cache_failures`]) and the database answers;
//! - a failing **database** is an error, never a silently new session;
//! - a cache that cannot *delete* is an error too: a stale cached copy would keep a logged-out session alive.
//!
//! **A refill never outlives a delete.** A load that read the database just before a concurrent logout would,
//! in Django, put the session back into the cache after the logout deleted it, and reads would succeed until the
//! cache entry expired. Here:
//! - a delete leaves a short *tombstone* in the cache instead of nothing ([`SessionStore::hold_deleted`]): on the
//!   Redis `django-cache` layout Python's `None`, which Django's own engine reads as a miss (so it starts a new
//!   session, as after any delete), elsewhere an entry with empty data; it expires after [`TOMBSTONE_SECONDS`];
//! - a refill only *creates* a cache entry (never overwrites one), so it fails on the tombstone;
//! - a cached entry with empty data (a tombstone, or a session that really is empty) is not trusted: the
//!   database answers, and the entry is not refilled (a `None` tombstone loads as a miss, and the refill's create
//!   fails on it);
//! - a load whose database read took longer than [`REFILL_DEADLINE_SECONDS`] does not refill at all, so the
//!   tombstone is still there whenever a refill can arrive.
//!
//! **A cache write never puts a stale copy over a newer one.** After a save merged in the database, the cache gets
//! what the database holds only if it still holds the copy this request saw (a compare-only write); when another
//! request changed the cached copy meanwhile, or the database write took longer than [`REFILL_DEADLINE_SECONDS`],
//! the cache *steps aside* ([`SessionStore::step_aside`]): a tombstone, unless one is there already (which keeps
//! its expiry, so a session written all the time gets its cache back after [`TOMBSTONE_SECONDS`]), and loads read
//! the database meanwhile. These guarantees hold among sessionkit processes; Django's own `cached_db` engine
//! refills and writes the cache unconditionally.
//!
//! [`refill_cache`], [`write_cache_copy`] and [`bury`] are the cache half on its own, for front-ends whose
//! database half is elsewhere (the Django engine writes its rows with Django's ORM).
//!
//! URL: `cached_db:CACHE_URL|DB_URL`, e.g. `cached_db:redis://127.0.0.1:6379/0|postgres://app@db/app` or
//! `cached_db:memory://|sqlite://db.sqlite3`. A Redis cache URL without `layout=` gets
//! `layout=django-cache&engine=cached_db`, the keys Django's own `cached_db` engine uses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::user_index::UserSessionData;
use super::user_index::{session_id, CLIENT_IP_KEY, USER_AGENT_KEY};
use super::{RawSession, Saved, SessionLister, SessionStore, StoredSession, Touched, UserSession, UserSessionIndex};
use crate::telemetry::{self, CacheFallback};
use crate::{ChangeSet, SaveMode, SessionKey, SessionRecord, StoreError, Version};

/// A cache store in front of a database store.
#[derive(Debug)]
pub struct CachedDbStore {
    cache: Arc<dyn SessionStore>,
    db: Arc<dyn SessionStore>,
    cache_failures: AtomicU64,
    index: CachedDbIndex,
}

/// The cache's per-user index, with deletes that reach the database too.
#[derive(Debug)]
struct CachedDbIndex {
    cache: Arc<dyn SessionStore>,
    db: Arc<dyn SessionStore>,
}

impl CachedDbStore {
    /// `cache` in front of `db`.
    pub fn new(cache: Arc<dyn SessionStore>, db: Arc<dyn SessionStore>) -> Self {
        let index = CachedDbIndex { cache: Arc::clone(&cache), db: Arc::clone(&db) };
        CachedDbStore { cache, db, cache_failures: AtomicU64::new(0), index }
    }

    /// How many cache calls failed since the store was built (each one was logged; the database answered).
    pub fn cache_failures(&self) -> u64 {
        self.cache_failures.load(Ordering::Relaxed)
    }

    fn cache_failed(&self, operation: &'static str, err: &StoreError) {
        self.cache_failures.fetch_add(1, Ordering::Relaxed);
        telemetry::record_cache_fallback(operation, CacheFallback::Error);
        tracing::warn!(target: "sessionkit", cache = %self.cache.describe(), operation, error = %err,
            "session cache failed; the database answers");
    }

    /// A cache call that failed: logged and counted, and the database answers.
    fn tolerate(&self, operation: &'static str, outcome: Result<Option<Version>, StoreError>) -> Option<Version> {
        outcome.unwrap_or_else(|err| {
            self.cache_failed(operation, &err);
            None
        })
    }
}

/// What a `cached_db` record's [`Version`] holds: the database's version of the session (when it was read from
/// there) and the cache's (when it came from the cache, or was put there).
#[derive(Debug, Default)]
struct Versions {
    db: Option<Version>,
    cache: Option<Version>,
}

impl Versions {
    /// `[1 byte: 1 if db][1 byte: 1 if cache][u32 big-endian: length of db][db][cache]`.
    fn encode(&self) -> Option<Version> {
        if self.db.is_none() && self.cache.is_none() {
            return None;
        }
        let db = self.db.as_ref().map_or(&[][..], Version::as_bytes);
        let cache = self.cache.as_ref().map_or(&[][..], Version::as_bytes);
        let mut bytes = Vec::with_capacity(6 + db.len() + cache.len());
        bytes.push(u8::from(self.db.is_some()));
        bytes.push(u8::from(self.cache.is_some()));
        bytes.extend_from_slice(&u32::try_from(db.len()).unwrap_or(u32::MAX).to_be_bytes());
        bytes.extend_from_slice(db);
        bytes.extend_from_slice(cache);
        Some(Version::new(bytes))
    }

    /// The versions in `version`; none when it is not one of ours.
    fn decode(version: Option<&Version>) -> Versions {
        let Some(bytes) = version.map(Version::as_bytes) else { return Versions::default() };
        let (Some(&[has_db, has_cache]), Some(len)) = (bytes.get(..2).map(|b| [b[0], b[1]]).as_ref(), bytes.get(2..6))
        else {
            return Versions::default();
        };
        let db_end = (u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize).checked_add(6);
        let (Some(db), Some(cache)) =
            (db_end.and_then(|end| bytes.get(6..end)), db_end.and_then(|end| bytes.get(end..)))
        else {
            return Versions::default();
        };
        Versions { db: (has_db == 1).then(|| Version::new(db)), cache: (has_cache == 1).then(|| Version::new(cache)) }
    }
}

#[async_trait]
impl SessionStore for CachedDbStore {
    fn describe(&self) -> String {
        format!("cached_db:{}|{}", self.cache.describe(), self.db.describe())
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        let cache_has_entry = match self.cache.load(key).await {
            Ok(Some(record)) if !record.data.is_empty() => {
                let version = Versions { db: None, cache: record.version.clone() }.encode();
                return Ok(Some(SessionRecord { version, ..record }));
            }
            // A tombstone (or a session that really is empty): the database decides, and nothing is refilled.
            Ok(Some(_)) => {
                telemetry::record_cache_fallback("load", CacheFallback::Tombstone);
                true
            }
            Ok(None) => false,
            Err(err) => {
                self.cache_failed("load", &err);
                false
            }
        };
        let started = Instant::now();
        let Some(record) = self.db.load(key).await? else { return Ok(None) };
        let cache = if cache_has_entry {
            None
        } else {
            self.tolerate("refill", refill_cache(self.cache.as_ref(), &record, started.elapsed()).await)
        };
        let version = Versions { db: record.version.clone(), cache }.encode();
        Ok(Some(SessionRecord { version, ..record }))
    }

    async fn create(&self, record: &SessionRecord) -> Result<Option<Version>, StoreError> {
        let started = Instant::now();
        let db = self.db.create(record).await?;
        let written = write_cache_copy(self.cache.as_ref(), record, &ChangeSet::default(), started.elapsed()).await;
        let cache = self.tolerate("write", written);
        Ok(Versions { db, cache }.encode())
    }

    /// The database is the arbiter: the save merges there (a request that read the cache has no database version,
    /// so the database is read first). Then the cache gets what the database now holds, if it still holds what this
    /// request saw (else the cache steps aside, see [`write_cache_copy`]).
    async fn save(&self, record: &SessionRecord, changes: &ChangeSet) -> Result<Saved, StoreError> {
        let seen = Versions::decode(record.version.as_ref());
        let started = Instant::now();
        let db_record = SessionRecord { version: seen.db, ..record.clone() };
        let saved = self.db.save(&db_record, changes).await?;
        // The cache gets what the database holds now, compared with the copy this request saw.
        let stored = saved.merged.clone().unwrap_or(db_record);
        let copy = SessionRecord { version: seen.cache, ..stored };
        let written = write_cache_copy(self.cache.as_ref(), &copy, changes, started.elapsed()).await;
        let cache = self.tolerate("write", written);
        let version = Versions { db: saved.version, cache }.encode();
        Ok(Saved { version, ..saved })
    }

    /// The database's expiry moves, and the cached copy's when this request read it from the cache or refilled
    /// it (a tombstone is never extended: its hold must lapse).
    async fn touch(&self, record: &SessionRecord) -> Result<Touched, StoreError> {
        let seen = Versions::decode(record.version.as_ref());
        let touched = self.db.touch(&SessionRecord { version: seen.db, ..record.clone() }).await?;
        if touched == Touched::Moved && seen.cache.is_some() {
            if let Err(err) = self.cache.touch(record).await {
                self.cache_failed("touch", &err);
            }
        }
        Ok(touched)
    }

    /// The database decides.
    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.db.exists(key).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.db.delete(key).await?;
        // Not tolerated: a cached copy would keep serving a session the user logged out of.
        bury(self.cache.as_ref(), key).await
    }

    async fn clear_expired(&self) -> Result<u64, StoreError> {
        let removed = self.db.clear_expired().await?;
        if let Err(err) = self.cache.clear_expired().await {
            self.cache_failed("clear_expired", &err);
        }
        Ok(removed)
    }

    async fn load_raw(&self, key: &SessionKey) -> Result<Option<RawSession>, StoreError> {
        self.db.load_raw(key).await
    }

    /// The database's enumeration: the database holds every session (the cache only copies of some).
    fn lister(&self) -> Option<&dyn SessionLister> {
        self.db.lister()
    }

    /// When the cache keeps an index (Redis): the database decides which sessions a user has (see
    /// `CachedDbIndex`), and revoking deletes the database row first, then the cached copy, so a revoked session
    /// cannot come back from the database.
    fn user_index(&self) -> Option<&dyn UserSessionIndex> {
        self.cache.user_index().map(|_| &self.index as &dyn UserSessionIndex)
    }
}

/// How long a deleted session's tombstone stays in the cache: far longer than a refill can take to arrive (see
/// [`REFILL_DEADLINE_SECONDS`]), short enough that the key costs nothing afterwards.
pub const TOMBSTONE_SECONDS: u64 = 60;

/// A load whose database read took longer than this does not refill the cache: the tombstone of a delete that
/// happened meanwhile might have expired by the time the refill arrives. Above any store timeout in use.
pub const REFILL_DEADLINE_SECONDS: u64 = 10;

// The cache half of `cached_db`, for any front-end: `CachedDbStore` here, and the Django engine, whose database
// half is Django's ORM.

/// Puts a session read from the database into the cache, unless the cache has an entry for it (a tombstone left
/// by a concurrent delete, or a copy a concurrent write made: a refill only creates) or the database read took
/// `db_read_took` ≥ [`REFILL_DEADLINE_SECONDS`] (a tombstone of a delete made meanwhile might be gone by now).
/// Returns the cache's version of the copy it made.
pub async fn refill_cache(
    cache: &dyn SessionStore,
    record: &SessionRecord,
    db_read_took: Duration,
) -> Result<Option<Version>, StoreError> {
    if db_read_took >= Duration::from_secs(REFILL_DEADLINE_SECONDS) {
        return Ok(None);
    }
    match cache.create(record).await {
        Err(StoreError::KeyCollision | StoreError::UnsafeKey) => Ok(None),
        other => other,
    }
}

/// After a database write: makes the cache hold `copy` (what the database now holds) if the cache still holds the
/// copy this request saw (`copy.version`, the cache's version; `None`: it saw none, and the copy is created). When
/// another request changed the cache meanwhile (a newer copy, or a logout's tombstone), or the database write took
/// `db_write_took` ≥ [`REFILL_DEADLINE_SECONDS`], the cache steps aside instead ([`SessionStore::step_aside`]:
/// a tombstone for [`TOMBSTONE_SECONDS`], loads read the database): a stale copy is never written over a newer
/// one. `changes` are the request's, for the cache's per-user index (did the login change?). Returns the cache's
/// version when the copy was written.
pub async fn write_cache_copy(
    cache: &dyn SessionStore,
    copy: &SessionRecord,
    changes: &ChangeSet,
    db_write_took: Duration,
) -> Result<Option<Version>, StoreError> {
    if db_write_took >= Duration::from_secs(REFILL_DEADLINE_SECONDS) {
        step_aside(cache, &copy.key).await?;
        return Ok(None);
    }
    let written = if copy.version.is_some() {
        match cache.save(copy, &changes.clone().with_mode(SaveMode::CompareOnly)).await {
            Ok(saved) => Ok(saved.version),
            // Gone from the cache (evicted, expired): put it back, unless someone else did.
            Err(StoreError::SessionVanished) => cache.create(copy).await,
            Err(err) => Err(err),
        }
    } else {
        cache.create(copy).await
    };
    match written {
        Err(StoreError::Contended { .. } | StoreError::KeyCollision) => {
            step_aside(cache, &copy.key).await?;
            Ok(None)
        }
        Err(StoreError::UnsafeKey) => Ok(None),
        other => other,
    }
}

/// Replaces the cached copy of a deleted session with a tombstone ([`SessionStore::hold_deleted`] for
/// [`TOMBSTONE_SECONDS`]), so a refill from a database read made before the delete cannot put the session back.
pub async fn bury(cache: &dyn SessionStore, key: &SessionKey) -> Result<(), StoreError> {
    match cache.hold_deleted(key, Duration::from_secs(TOMBSTONE_SECONDS)).await {
        // A cache that refuses the key (an unsafe key: such a session cannot be cached either) has nothing to bury.
        Err(StoreError::UnsafeKey) => Ok(()),
        other => other,
    }
}

/// [`SessionStore::step_aside`] for [`TOMBSTONE_SECONDS`] (nothing for a key the cache refuses).
async fn step_aside(cache: &dyn SessionStore, key: &SessionKey) -> Result<(), StoreError> {
    telemetry::record_cache_fallback("write", CacheFallback::SteppedAside);
    match cache.step_aside(key, Duration::from_secs(TOMBSTONE_SECONDS)).await {
        Err(StoreError::UnsafeKey) => Ok(()),
        other => other,
    }
}

/// One of a user's sessions read from the database: key, stored form, decoded data.
type UserRow = (SessionKey, StoredSession, serde_json::Map<String, serde_json::Value>);

impl CachedDbIndex {
    fn cache_index(&self) -> Result<&dyn UserSessionIndex, StoreError> {
        super::user_index::index_of(self.cache.as_ref(), || self.cache.describe(), "the cache")
    }

    /// The user's live sessions as the database holds them: key, stored form and decoded data. The cache's index cannot be
    /// trusted to know them all (an evicted or never-written cache entry drops out of it while the row lives),
    /// so revocation reads the truth: one pass over the database's sessions, page by page (O(all sessions)).
    async fn user_rows(&self, user_id: &str) -> Result<Vec<UserRow>, StoreError> {
        if self.db.lister().is_none() {
            return Err(StoreError::from(crate::ConfigError::InvalidStoreUrl {
                url: self.db.describe(),
                reason: "the database store cannot list its sessions".to_owned(),
            }));
        }
        let scan = super::user_data::scan_sessions_of(&self.db, user_id, u64::MAX).await?;
        Ok(scan.found.into_iter().filter_map(|(stored, data)| Some((stored.key.clone()?, stored, data))).collect())
    }

    /// Deletes sessions from the database, then replaces their cached copies with tombstones (a cached copy must
    /// not outlive its row).
    async fn revoke(&self, keys: &[SessionKey]) -> Result<u64, StoreError> {
        for key in keys {
            self.db.delete(key).await?;
            bury(self.cache.as_ref(), key).await?;
        }
        Ok(keys.len() as u64)
    }
}

/// The per-user index of `cached_db`: details (created, last seen, client) come from the cache's index, which
/// every write passes through; which sessions exist comes from the database, so an evicted or failed cache
/// entry never hides a session from "log out other devices".
#[async_trait]
impl UserSessionIndex for CachedDbIndex {
    async fn list(&self, user_id: &str) -> Result<Vec<UserSession>, StoreError> {
        Ok(self.sessions_with_data(user_id).await?.into_iter().map(|s| s.session).collect())
    }

    /// The database's rows of the user (one pass over the database, see `user_rows`), with the details the cache's
    /// index recorded.
    async fn sessions_with_data(&self, user_id: &str) -> Result<Vec<UserSessionData>, StoreError> {
        let details = self.cache_index()?.list(user_id).await?;
        let mut sessions: Vec<UserSessionData> = self
            .user_rows(user_id)
            .await?
            .into_iter()
            .map(|(key, stored, data)| {
                let id = session_id(&key);
                let cached = details.iter().find(|d| d.id == id);
                let text = |name: &str| data.get(name).and_then(|v| v.as_str()).map(str::to_owned);
                let session = UserSession {
                    created: cached.and_then(|d| d.created),
                    last_seen: cached.and_then(|d| d.last_seen),
                    expires_at: stored.raw.expires_at.unwrap_or_else(time::OffsetDateTime::now_utc),
                    user_agent: text(USER_AGENT_KEY).or_else(|| cached.and_then(|d| d.user_agent.clone())),
                    ip: text(CLIENT_IP_KEY).or_else(|| cached.and_then(|d| d.ip.clone())),
                    id,
                };
                UserSessionData { session, data: Ok(data) }
            })
            .collect();
        sessions.sort_by_key(|s| std::cmp::Reverse(s.session.last_seen));
        Ok(sessions)
    }

    /// Both halves: every cached copy the cache's index names (hashed keys included) and the index itself go first,
    /// then every row of the user (one pass over the database) and every key the cache's index knew is deleted from
    /// the database and tombstoned in the cache, so a refill racing with the erasure cannot bring a session back.
    /// Returns the ids of the database rows deleted (the database holds every session; cached copies are copies).
    async fn erase(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        let cache_index = self.cache_index()?;
        let cached_keys = cache_index.session_keys(user_id).await?;
        let rows = self.user_rows(user_id).await?;
        cache_index.erase(user_id).await?;
        let ids: Vec<String> = rows.iter().map(|(key, ..)| session_id(key)).collect();
        let mut keys: Vec<SessionKey> = rows.into_iter().map(|(key, ..)| key).collect();
        for key in cached_keys.into_iter().filter_map(|(_, key)| key) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        self.revoke(&keys).await?;
        Ok(ids)
    }

    async fn delete_one(&self, user_id: &str, id: &str) -> Result<bool, StoreError> {
        let keys: Vec<SessionKey> = self
            .user_rows(user_id)
            .await?
            .into_iter()
            .map(|(key, ..)| key)
            .filter(|key| session_id(key) == id)
            .collect();
        let deleted = self.revoke(&keys).await?;
        self.cache_index()?.delete_one(user_id, id).await?;
        Ok(deleted > 0)
    }

    async fn delete_all(&self, user_id: &str, keep: Option<&SessionKey>) -> Result<u64, StoreError> {
        let keys: Vec<SessionKey> =
            self.user_rows(user_id).await?.into_iter().map(|(key, ..)| key).filter(|key| Some(key) != keep).collect();
        let deleted = self.revoke(&keys).await?;
        // Also whatever the cache's index still names (copies whose rows are already gone).
        self.cache_index()?.delete_all(user_id, keep).await?;
        Ok(deleted)
    }

    async fn session_keys(&self, user_id: &str) -> Result<Vec<(String, Option<SessionKey>)>, StoreError> {
        Ok(self.user_rows(user_id).await?.into_iter().map(|(key, ..)| (session_id(&key), Some(key))).collect())
    }
}
