//! What passes between a [`Session`](crate::Session) and a [`SessionStore`](crate::SessionStore).

use std::fmt;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::SessionKey;

/// A session as a store holds it: key, data, the absolute expiry time, and what the store read.
///
/// On save, `expires_at` is Django's `get_expiry_date()` at the moment of saving; stores keep it in their
/// own way (the `expire_date` column, a Redis TTL, a file's mtime).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// The session key.
    pub key: SessionKey,
    /// The session dict, in insertion order.
    pub data: Map<String, Value>,
    /// When the session expires.
    pub expires_at: OffsetDateTime,
    /// What the store read when it loaded this session (its version), so a save can check that nothing was
    /// written since (compare-and-set, see `docs/concurrency.md`). `None` for a session made in memory, or read
    /// from a store that keeps no versions (signed cookies).
    pub version: Option<Version>,
}

impl SessionRecord {
    /// A record with no version (a session made in memory, not read from a store).
    pub fn new(key: SessionKey, data: Map<String, Value>, expires_at: OffsetDateTime) -> Self {
        SessionRecord { key, data, expires_at, version: None }
    }
}

/// What a store read for a session, opaque to everyone but that store: the stored bytes themselves (Redis
/// values, a `session_data` token, a session file), or a counter (the memory store). Two loads give equal
/// versions exactly when the session was not written in between (or was written back to the same bytes, which
/// is the same state).
#[derive(Clone, PartialEq, Eq)]
pub struct Version(Vec<u8>);

impl Version {
    /// A version made of `bytes`.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Version(bytes.into())
    }

    /// The bytes the store made it of.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Consumes the version, giving its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Debug shows only the length: a version may be a whole stored session (data and all).
impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({} bytes)", self.0.len())
    }
}
