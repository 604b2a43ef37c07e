//! What passes between a [`Session`](crate::Session) and a [`SessionStore`](crate::SessionStore).

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::SessionKey;

/// A session as a store holds it: key, data and the absolute expiry time.
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
}
