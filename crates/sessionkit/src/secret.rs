//! Secret keys that never show up in logs.

use std::fmt;

use crate::ConfigError;

/// A Django `SECRET_KEY` (or one of `SECRET_KEY_FALLBACKS`).
///
/// The bytes are kept as given; `Debug` and `Display` print `SecretKey(***)` so a secret never lands in a
/// log line or a panic message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(Vec<u8>);

impl SecretKey {
    /// Wraps a secret. Django secrets are strings; their UTF-8 bytes are what HMAC keys are derived from.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        SecretKey(secret.into())
    }

    /// The raw bytes, for key derivation.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// True when the secret is the empty string (Django refuses to start with one).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when the secret is empty or only whitespace: it protects nothing (anyone can sign with it).
    pub fn is_blank(&self) -> bool {
        std::str::from_utf8(&self.0).is_ok_and(|text| text.trim().is_empty())
    }
}

/// Refuses secrets that protect nothing: a blank (empty or whitespace-only) `SECRET_KEY` or any blank entry of
/// `SECRET_KEY_FALLBACKS`. A blank fallback lets anyone sign a session (or a login hash) that is then accepted.
/// An empty `SECRET_KEY` is [`ConfigError::MissingSecretKey`]; the others are [`ConfigError::BlankSecret`].
pub(crate) fn check_secrets(secret_key: &SecretKey, fallbacks: &[SecretKey]) -> Result<(), ConfigError> {
    if secret_key.is_empty() {
        return Err(ConfigError::MissingSecretKey);
    }
    check_not_blank(secret_key, fallbacks)
}

/// The blank checks of [`check_secrets`] without requiring a `SECRET_KEY` (settings read from the environment may
/// leave it unset for stores that sign nothing).
pub(crate) fn check_not_blank(secret_key: &SecretKey, fallbacks: &[SecretKey]) -> Result<(), ConfigError> {
    if !secret_key.is_empty() && secret_key.is_blank() {
        return Err(ConfigError::BlankSecret { setting: "SECRET_KEY" });
    }
    if fallbacks.iter().any(SecretKey::is_blank) {
        return Err(ConfigError::BlankSecret { setting: "SECRET_KEY_FALLBACKS" });
    }
    Ok(())
}

impl From<&str> for SecretKey {
    fn from(value: &str) -> Self {
        SecretKey::new(value.as_bytes().to_vec())
    }
}

impl From<String> for SecretKey {
    fn from(value: String) -> Self {
        SecretKey::new(value.into_bytes())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}
