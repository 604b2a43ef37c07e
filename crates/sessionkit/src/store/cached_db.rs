//! Django's `cached_db` backend: any cache store in front of any db store.
//!
//! Django's order: reads try the cache, then the database (refilling the cache); writes go to the database first,
//! then the cache; deletes go to both. The database is the truth:
//! - a failing **cache** never loses or hides a session: the failure is logged (target `sessionkit`), counted
//!   ([`CachedDbStore::cache_failures`]) and the database answers;
//! - a failing **database** is an error, never a silently new session;
//! - a cache that cannot *delete* is an error too: a stale cached copy would keep a logged-out session alive.
//!
//! URL: `cached_db:CACHE_URL|DB_URL`, e.g. `cached_db:redis://127.0.0.1:6379/0|postgres://app@db/app` or
//! `cached_db:memory://|sqlite://db.sqlite3`. A Redis cache URL without `layout=` gets
//! `layout=django-cache&engine=cached_db`, the keys Django's own `cached_db` engine uses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use super::{RawSession, SessionLister, SessionStore, UserSession, UserSessionIndex};
use crate::{ChangeSet, SessionKey, SessionRecord, StoreError};

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

    fn cache_failed(&self, operation: &str, err: &StoreError) {
        self.cache_failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(target: "sessionkit", cache = %self.cache.describe(), operation, error = %err,
            "session cache failed; the database answers");
    }

    /// Writes `record` to the cache whether or not the cache still has it; failures are logged and counted.
    async fn put_in_cache(&self, record: &SessionRecord, changes: &ChangeSet) {
        let result = match self.cache.save(record, changes).await {
            Err(StoreError::SessionVanished) => match self.cache.create(record).await {
                // Created concurrently by another request: that copy is as fresh as ours.
                Err(StoreError::KeyCollision) => Ok(()),
                other => other,
            },
            other => other,
        };
        if let Err(err) = result {
            self.cache_failed("write", &err);
        }
    }
}

#[async_trait]
impl SessionStore for CachedDbStore {
    fn describe(&self) -> String {
        format!("cached_db:{}|{}", self.cache.describe(), self.db.describe())
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        match self.cache.load(key).await {
            Ok(Some(record)) => return Ok(Some(record)),
            Ok(None) => {}
            Err(err) => self.cache_failed("load", &err),
        }
        let record = self.db.load(key).await?;
        if let Some(record) = &record {
            self.put_in_cache(record, &ChangeSet::default()).await;
        }
        Ok(record)
    }

    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError> {
        self.db.create(record).await?;
        self.put_in_cache(record, &ChangeSet::default()).await;
        Ok(())
    }

    async fn save(&self, record: &SessionRecord, changes: &ChangeSet) -> Result<(), StoreError> {
        self.db.save(record, changes).await?;
        self.put_in_cache(record, changes).await;
        Ok(())
    }

    /// The database decides.
    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.db.exists(key).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.db.delete(key).await?;
        // Not tolerated: a cached copy would keep serving a session the user logged out of.
        self.cache.delete(key).await
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

    /// The cache's index, when it keeps one (Redis): every write passes through the cache. Revoking a session
    /// through it deletes the database row first, then the cached copy, so a revoked session cannot come back
    /// from the database.
    fn user_index(&self) -> Option<&dyn UserSessionIndex> {
        self.cache.user_index().map(|_| &self.index as &dyn UserSessionIndex)
    }
}

impl CachedDbIndex {
    fn cache_index(&self) -> Result<&dyn UserSessionIndex, StoreError> {
        self.cache.user_index().ok_or_else(|| {
            StoreError::from(crate::ConfigError::InvalidStoreUrl {
                url: self.cache.describe(),
                reason: "the cache keeps no per-user index".to_owned(),
            })
        })
    }

    /// Deletes the database rows of the given index entries; refuses when a key cannot be recovered, because
    /// the cached copy alone would be revoked and the database would bring the session back.
    async fn delete_rows(&self, entries: &[(String, Option<SessionKey>)]) -> Result<(), StoreError> {
        for (id, key) in entries {
            let Some(key) = key else {
                return Err(StoreError::from(crate::ConfigError::InvalidStoreUrl {
                    url: self.cache.describe(),
                    reason: format!(
                        "cannot revoke session {id} in the database: the cache hashes keys at rest; use a cached_db \
                         cache without hashed_keys"
                    ),
                }));
            };
            self.db.delete(key).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl UserSessionIndex for CachedDbIndex {
    async fn list(&self, user_id: &str) -> Result<Vec<UserSession>, StoreError> {
        self.cache_index()?.list(user_id).await
    }

    async fn delete_one(&self, user_id: &str, session_id: &str) -> Result<bool, StoreError> {
        let index = self.cache_index()?;
        let entries: Vec<_> =
            index.session_keys(user_id).await?.into_iter().filter(|(id, _)| id == session_id).collect();
        self.delete_rows(&entries).await?;
        index.delete_one(user_id, session_id).await
    }

    async fn delete_all(&self, user_id: &str, keep: Option<&SessionKey>) -> Result<u64, StoreError> {
        let index = self.cache_index()?;
        let keep_id = keep.map(super::user_index::session_id);
        let entries: Vec<_> =
            index.session_keys(user_id).await?.into_iter().filter(|(id, _)| Some(id) != keep_id.as_ref()).collect();
        self.delete_rows(&entries).await?;
        index.delete_all(user_id, keep).await
    }

    async fn session_keys(&self, user_id: &str) -> Result<Vec<(String, Option<SessionKey>)>, StoreError> {
        self.cache_index()?.session_keys(user_id).await
    }
}
