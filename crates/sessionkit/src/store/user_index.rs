//! The per-user session index: which sessions a logged-in user has, so they can be listed and revoked
//! ("log out other devices").
//!
//! A store keeps the index when it can ([`SessionStore::user_index`](super::SessionStore::user_index)); sessions
//! join it when their data carries Django's `_auth_user_id`. Entries of sessions that were deleted, flushed or
//! expired are pruned when the user's index is read or written.

use async_trait::async_trait;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::codec::CodecError;
use crate::{SessionKey, StoreError};

/// Session key under which an app may record the client's user agent (shown by [`UserSessionIndex::list`]).
pub const USER_AGENT_KEY: &str = "_sessionkit_ua";
/// Session key under which an app may record the client's IP address (shown by [`UserSessionIndex::list`]).
pub const CLIENT_IP_KEY: &str = "_sessionkit_ip";
/// Django's session key holding the logged-in user's primary key (as a string).
pub const AUTH_USER_ID_KEY: &str = "_auth_user_id";

/// The user id of a session's data, as Django stores it (`"42"`; a number is accepted too).
pub fn auth_user_id(data: &Map<String, Value>) -> Option<String> {
    match data.get(AUTH_USER_ID_KEY)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The id under which a session appears in the index: the first 128 bits of SHA-256 of its key, in hex. It
/// identifies a session without revealing the key (which is a bearer credential).
pub fn session_id(key: &SessionKey) -> String {
    Sha256::digest(key.as_str().as_bytes())[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// One of a user's sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSession {
    /// [`session_id`] of the session's key.
    pub id: String,
    /// When the session first joined the index (usually the login).
    pub created: Option<OffsetDateTime>,
    /// When the session was last saved.
    pub last_seen: Option<OffsetDateTime>,
    /// When it expires.
    pub expires_at: OffsetDateTime,
    /// The user agent, if the app recorded it under [`USER_AGENT_KEY`].
    pub user_agent: Option<String>,
    /// The IP address, if the app recorded it under [`CLIENT_IP_KEY`].
    pub ip: Option<String>,
}

/// One of a user's sessions with its data, as [`UserSessionIndex::sessions_with_data`] reads it (for export).
#[derive(Debug)]
pub struct UserSessionData {
    /// The session as [`UserSessionIndex::list`] describes it.
    pub session: UserSession,
    /// The session dict as stored, or why it could not be decoded.
    pub data: Result<Map<String, Value>, CodecError>,
}

/// List and revoke a user's sessions.
#[async_trait]
pub trait UserSessionIndex: Send + Sync {
    /// The user's live sessions, most recently seen first. Prunes dead entries as a side effect.
    async fn list(&self, user_id: &str) -> Result<Vec<UserSession>, StoreError>;

    /// Deletes one of the user's sessions by [`session_id`]; false if the user has no such session.
    async fn delete_one(&self, user_id: &str, session_id: &str) -> Result<bool, StoreError>;

    /// Deletes all of the user's sessions except `keep` (the current one, for "log out other devices"), and
    /// returns how many were deleted.
    async fn delete_all(&self, user_id: &str, keep: Option<&SessionKey>) -> Result<u64, StoreError>;

    /// The user's indexed sessions as `(session_id, key)` pairs, live or not. The key is `None` when the store
    /// cannot recover it (keys hashed at rest). Stores layered on top of this one (`cached_db`) use it to delete
    /// the same sessions from their other storage.
    async fn session_keys(&self, user_id: &str) -> Result<Vec<(String, Option<SessionKey>)>, StoreError>;

    /// The user's live sessions, as [`list`](UserSessionIndex::list) gives them, each with its stored data, read
    /// in as few round trips as the store allows (for a per-user export, [`crate::store::user_data`]). Sessions
    /// whose keys are hashed at rest are read too: the index knows where each session lives.
    async fn sessions_with_data(&self, user_id: &str) -> Result<Vec<UserSessionData>, StoreError>;

    /// Deletes every session of the user and the user's index itself (a per-user erasure,
    /// [`crate::store::user_data`]), and returns the [`session_id`]s of the sessions that were deleted.
    async fn erase(&self, user_id: &str) -> Result<Vec<String>, StoreError>;
}

/// `store`'s per-user index, or an error naming the store (`url`, made only then) as `what` ("the cache") that
/// keeps none.
pub(crate) fn index_of<'a>(
    store: &'a dyn super::SessionStore,
    url: impl FnOnce() -> String,
    what: &str,
) -> Result<&'a dyn UserSessionIndex, StoreError> {
    store.user_index().ok_or_else(|| {
        StoreError::from(crate::ConfigError::InvalidStoreUrl {
            url: url(),
            reason: format!("{what} keeps no per-user index"),
        })
    })
}
