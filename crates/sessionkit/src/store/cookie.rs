//! Django's `signed_cookies` backend: the cookie holds the whole session, signed (and compressed when that is
//! shorter) exactly as Django writes it, with the salt `django.contrib.sessions.backends.signed_cookies`.
//!
//! Nothing is stored on the server, so, as in Django:
//! - a session cannot be revoked: `delete`/`flush` only drop the cookie; a copied cookie stays valid until it
//!   expires (`SESSION_COOKIE_AGE` after its last save, checked as `max_age` when read);
//! - `exists` is always false, `clear_expired` has nothing to do, and there is nothing to enumerate
//!   ([`SessionStore::lister`] is `None`);
//! - the data is readable by the client (signed, not encrypted);
//! - parallel requests cannot be merged: each response carries the whole session, and the browser keeps the
//!   cookie of the last one (`docs/concurrency.md`).
//!
//! Stricter than Django: a session whose own `_session_expiry` has passed is not loaded (Django only checks
//! `SESSION_COOKIE_AGE`), and a session that would not fit in a cookie (over 4093 bytes for `name=value`) is an
//! error ([`StoreError::CookieTooLarge`]) instead of a cookie the browser silently drops.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{RawSession, Saved, SessionStore};
use crate::codec::signing::{token_timestamp, Signer, SIGNED_COOKIES_SALT};
use crate::codec::{CodecError, DecodeLimits};
use crate::{ChangeSet, ConfigError, Expiry, SessionKey, SessionRecord, Settings, StoreError, Version};

/// The most bytes of `name=value` a browser is guaranteed to keep, as Django checks it.
pub const MAX_COOKIE_BYTES: usize = 4093;

/// Django's `signed_cookies` backend.
#[derive(Debug, Clone)]
pub struct CookieStore {
    signer: Signer,
    cookie_age: i64,
    cookie_name_len: usize,
    limits: DecodeLimits,
}

impl CookieStore {
    /// A store signing with `settings.secret_key` (reading also with the fallbacks).
    pub fn new(settings: &Settings) -> Result<Self, ConfigError> {
        crate::secret::check_secrets(&settings.secret_key, &settings.secret_key_fallbacks)?;
        Ok(CookieStore {
            signer: Signer::new(
                SIGNED_COOKIES_SALT,
                settings.secret_key.clone(),
                settings.secret_key_fallbacks.clone(),
            ),
            cookie_age: settings.cookie_age,
            cookie_name_len: settings.cookie_name.len(),
            limits: DecodeLimits { max_token_bytes: MAX_COOKIE_BYTES, ..DecodeLimits::default() },
        })
    }

    /// The cookie value Django would send for `data` signed at `now`.
    pub fn token(&self, data: &serde_json::Map<String, serde_json::Value>, now: OffsetDateTime) -> String {
        self.signer.sign_object(data, true, now.unix_timestamp())
    }
}

#[async_trait]
impl SessionStore for CookieStore {
    fn describe(&self) -> String {
        "cookie:".to_owned()
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        let token = key.as_str();
        let now = OffsetDateTime::now_utc();
        let data = match self.signer.unsign_object(token, Some(self.cookie_age), now.unix_timestamp(), &self.limits) {
            Ok(data) => data,
            Err(CodecError::SignatureExpired { .. }) => return Ok(None),
            Err(err) => {
                tracing::warn!(target: "sessionkit::corrupt", store = "cookie:", error = %err, "Session data corrupted; starting a new session");
                crate::telemetry::mark_corrupt();
                return Ok(None);
            }
        };
        let signed_at =
            token_timestamp(token).and_then(|ts| OffsetDateTime::from_unix_timestamp(ts).ok()).unwrap_or(now);
        let expires_at = Expiry::from_value(data.get(crate::expiry::EXPIRY_KEY)).date(signed_at, self.cookie_age);
        // The cookie itself is only good for SESSION_COOKIE_AGE after signing, whatever the session says.
        let expires_at = expires_at.min(signed_at.saturating_add(time::Duration::seconds(self.cookie_age)));
        if expires_at <= now {
            return Ok(None);
        }
        Ok(Some(SessionRecord::new(key.clone(), data, expires_at)))
    }

    /// Nothing to store; a new session never collides (its key is its signed data).
    async fn create(&self, _record: &SessionRecord) -> Result<Option<Version>, StoreError> {
        Ok(None)
    }

    /// Nothing to store; the data travels in the key that [`SessionStore::issue_key`] returns. Nothing can be
    /// merged either: the session lives in the browser, and the cookie of the last response wins.
    async fn save(&self, _record: &SessionRecord, _changes: &ChangeSet) -> Result<Saved, StoreError> {
        Ok(Saved::written(None))
    }

    /// Always false, as Django's `signed_cookies.exists`.
    async fn exists(&self, _key: &SessionKey) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// Nothing to delete on the server; the middleware deletes the cookie of an emptied session.
    async fn delete(&self, _key: &SessionKey) -> Result<(), StoreError> {
        Ok(())
    }

    async fn clear_expired(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// The cookie value itself, and its expiry if it verifies.
    async fn load_raw(&self, key: &SessionKey) -> Result<Option<RawSession>, StoreError> {
        let expires_at = self.load(key).await?.map(|record| record.expires_at);
        Ok(Some(RawSession { bytes: key.as_str().as_bytes().to_vec(), expires_at }))
    }

    fn issue_key(&self, record: &SessionRecord) -> Result<Option<SessionKey>, StoreError> {
        let token = self.token(&record.data, OffsetDateTime::now_utc());
        let bytes = self.cookie_name_len + 1 + token.len();
        if bytes > MAX_COOKIE_BYTES {
            return Err(StoreError::CookieTooLarge { bytes, limit: MAX_COOKIE_BYTES });
        }
        // A token is at least 45 characters, so it always parses as a key.
        SessionKey::parse(&token).map(Some).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}
