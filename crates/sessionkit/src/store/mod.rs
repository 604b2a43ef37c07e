//! The [`SessionStore`] contract and its implementations, one module per store.
//!
//! | URL | store | feature |
//! |-----|-------|---------|
//! | `memory://` | [`memory::MemoryStore`] | `memory` |
//! | `sqlite://PATH`, `sqlite:///ABS/PATH` | [`sqlite::SqliteStore`] (Django's `db` backend) | `sqlite` |
//! | `redis://`, `rediss://`, `unix://`, `redis+sentinel://`, `redis+cluster://` | [`redis::RedisStore`] | `redis` |
//!
//! Every store passes the shared conformance suite (`sessionkit::conformance`).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::{ChangeSet, ConfigError, SessionKey, SessionRecord, Settings, StoreError};

#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
mod signed_data;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod user_index;

pub use signed_data::SignedSessionCodec;
pub use user_index::{UserSession, UserSessionIndex};

/// A session's stored form, as it is in the store, for inspection (`sessionkit show --raw`, the demo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSession {
    /// The stored value: a signed token for db stores, JSON for the memory store, and so on.
    pub bytes: Vec<u8>,
    /// The expiry the store keeps next to the value, if it keeps one.
    pub expires_at: Option<OffsetDateTime>,
}

/// Where sessions live. Django's `SessionBase` storage contract, async.
///
/// Rules every implementation follows (and the conformance suite checks):
/// - `load` returns `None` for unknown, expired, or not [storage-safe](SessionKey::is_storage_safe) keys (when the
///   store addresses storage by key); data that cannot be decoded loads as an **empty** session and is logged on
///   target `sessionkit::corrupt`, as Django does.
/// - `create` never overwrites: an existing key gives [`StoreError::KeyCollision`].
/// - `save` only updates: a missing session gives [`StoreError::SessionVanished`], never a silent re-create.
/// - Each call is one round trip to the store where the store allows it.
#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug + 'static {
    /// A short description for logs and errors, without credentials (e.g. `sqlite://demo.sqlite3`).
    fn describe(&self) -> String;

    /// Loads a live session.
    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError>;

    /// Stores a new session; fails with [`StoreError::KeyCollision`] if the key exists (Django's
    /// `save(must_create=True)`).
    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError>;

    /// Replaces an existing session's data and expiry; fails with [`StoreError::SessionVanished`] if it no
    /// longer exists (Django's `save(must_create=False)`). `changes` says which keys this request changed.
    async fn save(&self, record: &SessionRecord, changes: &ChangeSet) -> Result<(), StoreError>;

    /// True when a session with this key is stored (expired or not, as Django's `exists`).
    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError>;

    /// Deletes a session; deleting a missing one is not an error.
    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError>;

    /// Removes expired sessions and returns how many were removed (Django's `clear_expired`).
    async fn clear_expired(&self) -> Result<u64, StoreError>;

    /// The stored form of a session, expired or not, for inspection.
    async fn load_raw(&self, key: &SessionKey) -> Result<Option<RawSession>, StoreError>;

    /// The per-user session index, if this store keeps one.
    fn user_index(&self) -> Option<&dyn UserSessionIndex> {
        None
    }
}

/// Opens a store from a URL.
///
/// - `memory://`: an in-process store (tests, small single-process apps).
/// - `sqlite://PATH` (relative) or `sqlite:///ABS/PATH`: Django's `db` backend on SQLite. The file is created
///   when missing; the `django_session` table too. It can be Django's own `db.sqlite3`.
///
/// Stores that sign data (sqlite) need `settings.secret_key`.
pub async fn open_store(url: &str, settings: &Settings) -> Result<Arc<dyn SessionStore>, StoreError> {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme).unwrap_or("");
    match scheme {
        #[cfg(feature = "memory")]
        "memory" => Ok(Arc::new(memory::MemoryStore::new())),
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(sqlite::SqliteStore::connect(url, settings).await?)),
        #[cfg(feature = "redis")]
        "redis" | "rediss" | "unix" | "redis+unix" | "redis+sentinel" | "rediss+sentinel" | "redis+cluster"
        | "rediss+cluster" => Ok(Arc::new(redis::RedisStore::connect(url).await?)),
        _ => {
            let _ = settings;
            Err(ConfigError::InvalidStoreUrl {
                url: redact_url(url),
                reason: format!(
                    "unknown or disabled store scheme {scheme:?} (this build supports: {})",
                    supported_schemes().join(", ")
                ),
            }
            .into())
        }
    }
}

fn supported_schemes() -> Vec<&'static str> {
    let mut schemes = Vec::new();
    if cfg!(feature = "memory") {
        schemes.push("memory://");
    }
    if cfg!(feature = "sqlite") {
        schemes.push("sqlite://");
    }
    if cfg!(feature = "redis") {
        schemes.extend(["redis://", "rediss://", "unix://", "redis+sentinel://", "redis+cluster://"]);
    }
    schemes
}

/// A URL with any password replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_schemes_are_a_clear_config_error() {
        let err = open_store("mongodb://localhost", &Settings::default()).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::Config(ConfigError::InvalidStoreUrl { .. })));
        assert!(text.contains("mongodb") && text.contains("memory://"), "{text}");
        assert!(open_store("no-scheme-at-all", &Settings::default()).await.is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("redis://user:hunter2@host:6379/0"), "redis://user:***@host:6379/0");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
