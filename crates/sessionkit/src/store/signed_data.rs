//! The session-data encoding shared by Django's db, file and cached_db backends: a signed, optionally
//! compressed JSON token (`SessionBase.encode` / `decode`).

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::codec::signing::{Signer, SESSION_SALT};
use crate::codec::{CodecError, DecodeLimits};
use crate::{ConfigError, SessionKey, Settings};

/// Encodes and decodes session data exactly as Django's `SessionBase.encode`/`decode` do.
#[derive(Debug, Clone)]
pub struct SignedSessionCodec {
    signer: Signer,
    limits: DecodeLimits,
}

impl SignedSessionCodec {
    /// A codec with `settings.secret_key` (and fallbacks) and the salt of Django's built-in backends.
    pub fn new(settings: &Settings) -> Result<Self, ConfigError> {
        if settings.secret_key.is_empty() {
            return Err(ConfigError::MissingSecretKey);
        }
        Ok(SignedSessionCodec {
            signer: Signer::new(SESSION_SALT, settings.secret_key.clone(), settings.secret_key_fallbacks.clone()),
            limits: DecodeLimits::default(),
        })
    }

    /// The token Django would store for `data` saved at `now` (compressed when that is shorter).
    pub fn encode(&self, data: &Map<String, Value>, now: OffsetDateTime) -> String {
        self.signer.sign_object(data, true, now.unix_timestamp())
    }

    /// Decodes a stored token.
    pub fn decode(&self, token: &str) -> Result<Map<String, Value>, CodecError> {
        self.signer.unsign_object(token, None, OffsetDateTime::now_utc().unix_timestamp(), &self.limits)
    }

    /// Decodes a stored token; on any failure logs and returns empty data, as Django does (a bad signature is
    /// logged as "Session data corrupted", like Django's `django.security.SuspiciousSession` warning).
    pub fn decode_or_empty(&self, token: &str, key: &SessionKey, store: &str) -> Map<String, Value> {
        match self.decode(token) {
            Ok(data) => data,
            Err(err) => {
                tracing::warn!(target: "sessionkit::corrupt", store, key = ?key, error = %err, "Session data corrupted; using an empty session");
                Map::new()
            }
        }
    }
}
