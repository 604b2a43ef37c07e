//! `merge=false`: saves as Django makes them, the whole session as the request sees it replacing what is stored.
//!
//! Every server-side store merges parallel saves by default (`docs/concurrency.md`). This wrapper turns that off
//! for those who want Django's behaviour byte for byte: each save is marked
//! [`SaveMode::LastWriteWins`](crate::SaveMode::LastWriteWins), which the stores write in one unconditional update
//! (a vanished session still fails: a logout stays a logout).

use std::sync::Arc;

use async_trait::async_trait;

use super::{RawSession, Saved, SessionLister, SessionStore, UserSessionIndex};
use crate::{ChangeSet, SaveMode, SessionKey, SessionRecord, StoreError, Version};

/// A store whose saves replace the stored session whole (last write wins).
#[derive(Debug)]
pub struct LastWriteWins {
    inner: Arc<dyn SessionStore>,
}

impl LastWriteWins {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn SessionStore>) -> Self {
        LastWriteWins { inner }
    }
}

#[async_trait]
impl SessionStore for LastWriteWins {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        self.inner.load(key).await
    }

    async fn create(&self, record: &SessionRecord) -> Result<Option<Version>, StoreError> {
        self.inner.create(record).await
    }

    /// A merging save becomes last-write-wins; a save that asks for another mode (cached_db's compare-only cache
    /// writes) keeps it.
    async fn save(&self, record: &SessionRecord, changes: &ChangeSet) -> Result<Saved, StoreError> {
        if changes.mode() != SaveMode::Merge {
            return self.inner.save(record, changes).await;
        }
        self.inner.save(record, &changes.clone().with_mode(SaveMode::LastWriteWins)).await
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

    async fn hold_deleted(&self, key: &SessionKey, hold: std::time::Duration) -> Result<(), StoreError> {
        self.inner.hold_deleted(key, hold).await
    }

    async fn step_aside(&self, key: &SessionKey, hold: std::time::Duration) -> Result<(), StoreError> {
        self.inner.step_aside(key, hold).await
    }

    async fn touch(&self, record: &SessionRecord) -> Result<super::Touched, StoreError> {
        self.inner.touch(record).await
    }

    fn issue_key(&self, record: &SessionRecord) -> Result<Option<SessionKey>, StoreError> {
        self.inner.issue_key(record)
    }

    fn user_index(&self) -> Option<&dyn UserSessionIndex> {
        self.inner.user_index()
    }

    fn lister(&self) -> Option<&dyn SessionLister> {
        self.inner.lister()
    }
}
