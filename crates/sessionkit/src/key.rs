//! Session keys: generation, Django's validity rule, and the stricter rule for keys that reach storage.

use std::fmt;

use rand::RngCore;

/// The characters Django uses for session keys (`VALID_KEY_CHARS`).
const KEY_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Length of generated keys, as in Django.
pub const GENERATED_KEY_LEN: usize = 32;
/// Shortest key Django accepts.
pub const MIN_KEY_LEN: usize = 8;
/// Longest key a store puts into a file name, an SQL parameter or a Redis key
/// (Django's `session_key` column is `varchar(40)`; 64 leaves room for custom key functions).
pub const MAX_STORAGE_KEY_LEN: usize = 64;

/// A session key: the value of the session cookie.
///
/// [`SessionKey::parse`] accepts what Django accepts (any string of at least 8 characters). Stores that embed the
/// key in a file name, a SQL statement or a Redis key also check [`SessionKey::is_storage_safe`] and treat any other
/// key as "no such session", so a hostile cookie can at worst start a new, empty session.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(String);

/// Why a string is not a session key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("session key must be at least {MIN_KEY_LEN} characters long (got {0})")]
pub struct InvalidKey(pub usize);

impl SessionKey {
    /// A fresh key: 32 characters of `a-z0-9` drawn from the operating system's CSPRNG.
    pub fn generate() -> Self {
        // One read from the OS CSPRNG per key (not one per character): 64 random bytes; each byte below 252
        // (= 7 × 36) maps to a character without bias, the others are skipped. 32 of 64 bytes are kept with
        // overwhelming probability; when they are not, another 64 bytes are read.
        let mut key = String::with_capacity(GENERATED_KEY_LEN);
        let mut buffer = [0u8; 64];
        while key.len() < GENERATED_KEY_LEN {
            rand::rngs::OsRng.fill_bytes(&mut buffer);
            for byte in buffer.iter().copied().filter(|b| usize::from(*b) < 252) {
                if key.len() == GENERATED_KEY_LEN {
                    break;
                }
                key.push(char::from(KEY_ALPHABET[usize::from(byte) % KEY_ALPHABET.len()]));
            }
        }
        SessionKey(key)
    }

    /// Accepts what Django's `_validate_session_key` accepts: a string of at least 8 characters.
    pub fn parse(value: &str) -> Result<Self, InvalidKey> {
        let len = value.chars().count();
        if len < MIN_KEY_LEN {
            return Err(InvalidKey(len));
        }
        Ok(SessionKey(value.to_owned()))
    }

    /// True when the key may be used to address storage: only `a-z0-9`, at most 64 characters.
    pub fn is_storage_safe(&self) -> bool {
        self.0.len() <= MAX_STORAGE_KEY_LEN && self.0.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Debug shows only a prefix: a session key is a bearer credential and must not be logged whole.
impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix: String = self.0.chars().take(4).collect();
        write!(f, "SessionKey({prefix}…)")
    }
}

impl AsRef<str> for SessionKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generated_keys_are_32_lowercase_alphanumerics_and_distinct() {
        let keys: HashSet<String> = (0..2000).map(|_| SessionKey::generate().0).collect();
        assert_eq!(keys.len(), 2000);
        for key in &keys {
            assert_eq!(key.len(), 32);
            assert!(key.bytes().all(|b| KEY_ALPHABET.contains(&b)), "{key}");
        }
        // Every character of the alphabet shows up across 64k draws: the choice is not biased to a subset.
        let seen: HashSet<u8> = keys.iter().flat_map(|k| k.bytes()).collect();
        assert_eq!(seen.len(), KEY_ALPHABET.len());
    }

    #[test]
    fn parse_follows_django_length_rule() {
        assert_eq!(SessionKey::parse("short"), Err(InvalidKey(5)));
        assert_eq!(SessionKey::parse(""), Err(InvalidKey(0)));
        assert!(SessionKey::parse("12345678").is_ok());
        // Django does not check the charset: such a key parses but is not storage-safe.
        let odd = SessionKey::parse("../../etc/passwd").unwrap();
        assert!(!odd.is_storage_safe());
    }

    #[test]
    fn storage_safety_rejects_anything_outside_a_z0_9_or_longer_than_64() {
        for bad in ["ABCDEFGHIJ", "abcdefgh/", "abcd\0efgh", "abcdefgh ", "abcdéfghi", "abcdefgh-1", "abc:defgh"] {
            assert!(!SessionKey::parse(bad).unwrap().is_storage_safe(), "{bad:?}");
        }
        assert!(!SessionKey::parse(&"a".repeat(65)).unwrap().is_storage_safe());
        assert!(!SessionKey::parse(&"a".repeat(10_000)).unwrap().is_storage_safe());
        assert!(SessionKey::parse(&"a".repeat(64)).unwrap().is_storage_safe());
        assert!(SessionKey::generate().is_storage_safe());
    }

    #[test]
    fn debug_does_not_leak_the_key() {
        let key = SessionKey::parse("abcdefghijklmnop").unwrap();
        assert_eq!(format!("{key:?}"), "SessionKey(abcd…)");
    }
}
