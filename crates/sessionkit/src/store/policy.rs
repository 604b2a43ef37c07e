//! What a store does when it cannot be reached: the failure policy.
//!
//! sessionkit's default is [`FailurePolicy::Error`]: a load that cannot reach the store is an error (the middleware
//! answers 503 and logs the store and cause), never an empty session — silently logging users out when Redis
//! hiccups is the most common complaint about Django's Redis session packages. Those who prefer Django's cache
//! behaviour choose [`FailurePolicy::TreatAsEmpty`] (URL option `failure_policy=empty` on any store URL): a load
//! that cannot reach the store gives a new, empty session, with a warning in the log. Writes still fail loudly
//! either way: a session that could not be saved is never reported as saved.

use std::sync::Arc;

use async_trait::async_trait;

use super::{RawSession, Saved, SessionLister, SessionStore, UserSessionIndex};
use crate::{ChangeSet, SessionKey, SessionRecord, StoreError, Version};

/// The failure policy of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// An unreachable store is an error (503 from the middleware). The default.
    #[default]
    Error,
    /// An unreachable store loads as an empty session (Django's cache engine), logged as a warning.
    TreatAsEmpty,
}

/// A store with [`FailurePolicy::TreatAsEmpty`]: loads that fail with [`StoreError::Unavailable`] give no session.
#[derive(Debug)]
pub struct TreatUnavailableAsEmpty {
    inner: Arc<dyn SessionStore>,
}

impl TreatUnavailableAsEmpty {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn SessionStore>) -> Self {
        TreatUnavailableAsEmpty { inner }
    }
}

#[async_trait]
impl SessionStore for TreatUnavailableAsEmpty {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        match self.inner.load(key).await {
            Err(err @ StoreError::Unavailable { .. }) => {
                tracing::warn!(target: "sessionkit", store = %self.inner.describe(), error = %err,
                    "session store unavailable; treating the session as empty (failure_policy=empty)");
                Ok(None)
            }
            other => other,
        }
    }

    async fn create(&self, record: &SessionRecord) -> Result<Option<Version>, StoreError> {
        self.inner.create(record).await
    }

    async fn save(&self, record: &SessionRecord, changes: &ChangeSet) -> Result<Saved, StoreError> {
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
