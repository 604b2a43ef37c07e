//! Secret keys that never show up in logs.

use std::fmt;

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
