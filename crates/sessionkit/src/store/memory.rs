//! An in-process store, for tests and small single-process apps. Sessions are lost when the process exits.
//!
//! Saves merge as every server-side store's do (`docs/concurrency.md`): each entry has a version, a number from a
//! counter that never repeats, and a save is a compare-and-set on it under the map's lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::merge::{save_merging, CompareAndSet, Saved, WriteOutcome};
use super::{ListCursor, RawSession, SessionLister, SessionPage, SessionStore, StoredSession, Touched};
use crate::codec::json::{from_python_json, object_to_python_json};
use crate::codec::CodecError;
use crate::{ChangeSet, SessionKey, SessionRecord, StoreError, Version};

#[derive(Debug, Clone)]
struct Entry {
    /// The session dict as Python-compatible JSON: values are copied in and out, never shared, so the store
    /// behaves like a real one (and corrupt data can be planted in tests).
    json: Vec<u8>,
    expires_at: OffsetDateTime,
    version: u64,
}

/// Sessions in a `HashMap` behind a mutex. Any key Django accepts is accepted (nothing is derived from it).
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<SessionKey, Entry>>,
    next_version: AtomicU64,
}

fn version_of(entry: &Entry) -> Version {
    Version::new(entry.version.to_be_bytes())
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `bytes` as the raw value of `key`, as if another writer had put them there (used to test how
    /// corrupt data is handled).
    pub fn insert_raw(&self, key: SessionKey, bytes: Vec<u8>, expires_at: OffsetDateTime) {
        let version = self.new_version();
        self.entries().insert(key, Entry { json: bytes, expires_at, version });
    }

    /// Number of stored sessions, expired ones included.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<SessionKey, Entry>> {
        // A panic while holding the lock cannot leave a half-written entry (inserts are single calls).
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn new_version(&self) -> u64 {
        self.next_version.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn entry_for(&self, record: &SessionRecord) -> Entry {
        let json = object_to_python_json(&record.data).into_bytes();
        Entry { json, expires_at: record.expires_at, version: self.new_version() }
    }
}

/// Pages in key order: each page collects the `page_size` smallest keys after the cursor (the last key of the
/// previous page), so memory stays bounded by the page while the lock is held for one pass over the map.
#[async_trait]
impl SessionLister for MemoryStore {
    async fn list_page(&self, cursor: Option<&ListCursor>, page_size: usize) -> Result<SessionPage, StoreError> {
        let page_size = page_size.max(1);
        let after = cursor.map(|c| c.0.as_str());
        let mut page: std::collections::BTreeMap<&str, StoredSession> = std::collections::BTreeMap::new();
        let entries = self.entries();
        for (key, entry) in entries.iter() {
            if after.is_some_and(|after| key.as_str() <= after) {
                continue;
            }
            if page.len() == page_size && page.last_key_value().is_some_and(|(last, _)| key.as_str() >= *last) {
                continue;
            }
            let stored = StoredSession {
                id: key.as_str().to_owned(),
                key: Some(key.clone()),
                raw: RawSession { bytes: entry.json.clone(), expires_at: Some(entry.expires_at) },
            };
            page.insert(key.as_str(), stored);
            if page.len() > page_size {
                page.pop_last();
            }
        }
        let full = page.len() == page_size;
        let sessions: Vec<StoredSession> = page.into_values().collect();
        drop(entries);
        let next = if full { sessions.last().map(|s| ListCursor(s.id.clone())) } else { None };
        Ok(SessionPage { sessions, next })
    }

    fn decode(&self, raw: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, CodecError> {
        from_python_json(raw)
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    fn describe(&self) -> String {
        "memory://".to_owned()
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        let now = OffsetDateTime::now_utc();
        let Some(entry) = self.entries().get(key).filter(|e| e.expires_at > now).cloned() else {
            return Ok(None);
        };
        let data = from_python_json(&entry.json).unwrap_or_else(|err| {
            tracing::warn!(target: "sessionkit::corrupt", store = "memory://", key = ?key, error = %err, "Session data corrupted; using an empty session");
            crate::telemetry::mark_corrupt();
            serde_json::Map::new()
        });
        let version = Some(version_of(&entry));
        Ok(Some(SessionRecord { key: key.clone(), data, expires_at: entry.expires_at, version }))
    }

    async fn create(&self, record: &SessionRecord) -> Result<Option<Version>, StoreError> {
        let entry = self.entry_for(record);
        let version = version_of(&entry);
        let now = OffsetDateTime::now_utc();
        let mut entries = self.entries();
        // An expired entry does not hold its key (as in a cache, and as Redis): a cached_db refill after a
        // tombstone expired must succeed before any `clear_expired`.
        if entries.get(&record.key).is_some_and(|e| e.expires_at > now) {
            return Err(StoreError::KeyCollision);
        }
        entries.insert(record.key.clone(), entry);
        Ok(Some(version))
    }

    async fn save(&self, record: &SessionRecord, changes: &ChangeSet) -> Result<Saved, StoreError> {
        save_merging(self, record, changes).await
    }

    async fn touch(&self, record: &SessionRecord) -> Result<Touched, StoreError> {
        let now = OffsetDateTime::now_utc();
        let mut entries = self.entries();
        Ok(match entries.get_mut(&record.key).filter(|e| e.expires_at > now) {
            Some(entry) => {
                entry.expires_at = record.expires_at;
                Touched::Moved
            }
            None => Touched::Vanished,
        })
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        Ok(self.entries().contains_key(key))
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.entries().remove(key);
        Ok(())
    }

    async fn clear_expired(&self) -> Result<u64, StoreError> {
        let now = OffsetDateTime::now_utc();
        let mut entries = self.entries();
        let before = entries.len();
        entries.retain(|_, entry| entry.expires_at > now);
        Ok((before - entries.len()) as u64)
    }

    async fn load_raw(&self, key: &SessionKey) -> Result<Option<RawSession>, StoreError> {
        Ok(self.entries().get(key).map(|e| RawSession { bytes: e.json.clone(), expires_at: Some(e.expires_at) }))
    }

    fn lister(&self) -> Option<&dyn SessionLister> {
        Some(self)
    }
}

#[async_trait]
impl CompareAndSet for MemoryStore {
    async fn write_if(
        &self,
        record: &SessionRecord,
        expected: Option<&Version>,
        _changes: &ChangeSet,
    ) -> Result<WriteOutcome, StoreError> {
        let entry = self.entry_for(record);
        let version = version_of(&entry);
        let mut entries = self.entries();
        let Some(slot) = entries.get_mut(&record.key) else { return Ok(WriteOutcome::Vanished) };
        if expected.is_some_and(|expected| *expected != version_of(slot)) {
            return Ok(WriteOutcome::Conflict(None));
        }
        *slot = entry;
        Ok(WriteOutcome::Written(Some(version)))
    }
}
