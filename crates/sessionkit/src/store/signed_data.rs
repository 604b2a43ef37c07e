//! The session-data encoding shared by Django's db, file and cached_db backends: a signed, optionally
//! compressed JSON token (`SessionBase.encode` / `decode`), and, when enabled, the read-only format of Django
//! before 3.1 ([`crate::codec::legacy`]).

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::codec::legacy::LegacyDecoder;
use crate::codec::signing::{Signer, SESSION_SALT};
use crate::codec::{CodecError, DecodeLimits};
use crate::{ConfigError, SessionKey, Settings};

/// Encodes and decodes session data exactly as Django's `SessionBase.encode`/`decode` do.
#[derive(Debug, Clone)]
pub struct SignedSessionCodec {
    signer: Signer,
    limits: DecodeLimits,
    /// The pre-3.1 decoder, with keys from the same secrets; used only when `accept_legacy` is set.
    legacy: LegacyDecoder,
    accept_legacy: bool,
}

impl SignedSessionCodec {
    /// A codec with `settings.secret_key` (and fallbacks) and the salt of Django's built-in backends; it also
    /// reads the pre-3.1 format when `settings.accept_legacy_format` is set.
    pub fn new(settings: &Settings) -> Result<Self, ConfigError> {
        crate::secret::check_secrets(&settings.secret_key, &settings.secret_key_fallbacks)?;
        Ok(SignedSessionCodec {
            signer: Signer::new(SESSION_SALT, settings.secret_key.clone(), settings.secret_key_fallbacks.clone()),
            limits: DecodeLimits::default(),
            legacy: LegacyDecoder::new(&settings.secret_key, &settings.secret_key_fallbacks),
            accept_legacy: settings.accept_legacy_format,
        })
    }

    /// The codec of a store opened with `access`: as [`new`](Self::new), except that a store opened only to read
    /// accepts a missing `SECRET_KEY` and gets a random throwaway one, so tools that decode nothing (counting)
    /// need no secret; every decode with it fails as a bad signature.
    pub fn for_access(settings: &Settings, access: crate::store::Access) -> Result<Self, ConfigError> {
        match Self::new(settings) {
            Err(ConfigError::MissingSecretKey) if access == crate::store::Access::ReadOnly => {
                let throwaway = crate::SessionKey::generate();
                let settings = Settings {
                    secret_key: crate::SecretKey::new(format!("sessionkit-read-only-{}", throwaway.as_str())),
                    secret_key_fallbacks: Vec::new(),
                    ..settings.clone()
                };
                Self::new(&settings)
            }
            other => other,
        }
    }

    /// Whether [`decode`](Self::decode) also reads session data in the format of Django before 3.1 (as Django
    /// 3.1 and 3.2 do; Django 4.0+ does not). Overrides `Settings::accept_legacy_format`.
    #[must_use]
    pub fn with_legacy_format(mut self, accept: bool) -> Self {
        self.accept_legacy = accept;
        self
    }

    /// True if [`decode`](Self::decode) falls back to the pre-3.1 format.
    pub fn accepts_legacy_format(&self) -> bool {
        self.accept_legacy
    }

    /// The token Django would store for `data` saved at `now` (compressed when that is shorter).
    pub fn encode(&self, data: &Map<String, Value>, now: OffsetDateTime) -> String {
        self.signer.sign_object(data, true, now.unix_timestamp())
    }

    /// Decodes a stored token.
    ///
    /// With the legacy format enabled, a token that fails to decode is tried as pre-3.1 data, as Django 3.1
    /// does. If that fails too, the error returned is the legacy decoder's when the text cannot be a current
    /// token (it has no `:`, which standard base64 never contains), else the current format's.
    pub fn decode(&self, token: &str) -> Result<Map<String, Value>, CodecError> {
        self.decode_within(token, &self.limits)
    }

    /// [`Self::decode`] within `limits` instead of the codec's own.
    pub(crate) fn decode_within(&self, token: &str, limits: &DecodeLimits) -> Result<Map<String, Value>, CodecError> {
        let result = self.signer.unsign_object(token, None, OffsetDateTime::now_utc().unix_timestamp(), limits);
        match result {
            Err(err) if self.accept_legacy => match self.legacy.decode(token, limits) {
                Ok(data) => Ok(data),
                Err(legacy_err) if !token.contains(':') => Err(legacy_err),
                Err(_) => Err(err),
            },
            other => other,
        }
    }

    /// Decodes a stored token; on any failure logs and returns empty data, as Django does (a bad signature is
    /// logged as "Session data corrupted", like Django's `django.security.SuspiciousSession` warning).
    pub fn decode_or_empty(&self, token: &str, key: &SessionKey, store: &str) -> Map<String, Value> {
        self.decode(token).unwrap_or_else(|err| corrupt_to_empty(&err, key, store))
    }

    /// The codec's limits.
    pub(crate) fn limits(&self) -> &DecodeLimits {
        &self.limits
    }
}

/// What a store loads when its data does not decode: an empty session, and a log line on target
/// `sessionkit::corrupt` (as Django's "Session data corrupted" warning).
pub(crate) fn corrupt_to_empty(err: &CodecError, key: &SessionKey, store: &str) -> Map<String, Value> {
    tracing::warn!(target: "sessionkit::corrupt", store, key = ?key, error = %err, "Session data corrupted; using an empty session");
    crate::telemetry::mark_corrupt();
    Map::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretKey;

    /// Django < 3.1 session data (see `codec::legacy` for how it was made) with SECRET_KEY "test-secret-key":
    /// `{"foo": "bar", "n": 1, "big": 12345678901234567890123}`.
    const LEGACY: &str = "MTc4M2Q4NjFjYmY3OWMyMWJlMWVhYWYyMzE1ZDIwNjkwMDIyYjBmYjp7ImZvbyI6ImJhciIsIm4iOjEsImJpZyI6MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjN9";
    /// The same data signed with the fallback secret "old-secret".
    const LEGACY_FALLBACK: &str =
        "OTBiY2EwY2ZmZDY1OGUzMjU0MGUyNDRjOTYxY2RiOWZkZmIzMjViYjp7Il9hdXRoX3VzZXJfaWQiOiIxIiwieCI6WzEuNSxudWxsLHRydWVdfQ==";
    /// Django 5.2 `signing.dumps({"foo": "bar"}, salt="django.contrib.sessions.SessionStore", compress=True)`.
    const CURRENT: &str = "eyJmb28iOiJiYXIifQ:1r31eq:RnWPXJomOr-V2BX7g-VMy1xvGxvSHHm4P3Mh938lEqQ";

    fn settings(accept_legacy_format: bool) -> Settings {
        Settings {
            secret_key_fallbacks: vec![SecretKey::from("old-secret")],
            accept_legacy_format,
            ..Settings::with_secret_key("test-secret-key")
        }
    }

    #[test]
    fn legacy_format_is_off_by_default() {
        let codec = SignedSessionCodec::new(&settings(false)).unwrap();
        assert!(!codec.accepts_legacy_format());
        assert!(matches!(codec.decode(LEGACY), Err(CodecError::Malformed(_))));
        let key = SessionKey::generate();
        assert!(codec.decode_or_empty(LEGACY, &key, "test").is_empty());
        assert_eq!(codec.decode(CURRENT).unwrap()["foo"], "bar");
    }

    #[test]
    fn legacy_format_from_settings_or_builder() {
        for codec in [
            SignedSessionCodec::new(&settings(true)).unwrap(),
            SignedSessionCodec::new(&settings(false)).unwrap().with_legacy_format(true),
        ] {
            assert!(codec.accepts_legacy_format());
            let data = codec.decode(LEGACY).unwrap();
            assert_eq!(data["foo"], "bar");
            assert_eq!(data["big"].to_string(), "12345678901234567890123");
            assert_eq!(codec.decode(LEGACY_FALLBACK).unwrap()["_auth_user_id"], "1");
            // The current format still comes first.
            assert_eq!(codec.decode(CURRENT).unwrap()["foo"], "bar");
            // Saving writes the current format, which reads back.
            let token = codec.encode(&data, OffsetDateTime::now_utc());
            assert!(token.contains(':'));
            assert_eq!(codec.decode(&token).unwrap(), data);
        }
        let off = SignedSessionCodec::new(&settings(true)).unwrap().with_legacy_format(false);
        assert!(matches!(off.decode(LEGACY), Err(CodecError::Malformed(_))));
    }

    #[test]
    fn errors_with_the_legacy_format_on() {
        let codec = SignedSessionCodec::new(&settings(true)).unwrap();
        // Legacy-looking data with a bad hash: the legacy decoder's error.
        let mut raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, LEGACY).unwrap();
        raw[0] ^= 1;
        let tampered = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw);
        assert!(matches!(codec.decode(&tampered), Err(CodecError::BadSignature)));
        // A tampered current token: the current format's error.
        let bad = CURRENT.replacen("eyJmb28", "eyJmb29", 1);
        assert!(matches!(codec.decode(&bad), Err(CodecError::BadSignature)));
        // Legacy data signed with another secret.
        let other = SignedSessionCodec::new(&Settings {
            accept_legacy_format: true,
            ..Settings::with_secret_key("another-secret")
        })
        .unwrap();
        assert!(matches!(other.decode(LEGACY), Err(CodecError::BadSignature)));
    }
}
