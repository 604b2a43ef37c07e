//! The session-data format of Django before 3.1, read-only.
//!
//! Django < 3.1 stored session data (db, file and cached_db rows) as
//! `base64.b64encode(hash + b":" + serialized)`: standard base64 **with** padding of a lowercase hex HMAC-SHA1,
//! a colon and the JSON of the session dict (Django's `JSONSerializer`, latin-1). The hash is Django's
//! `salted_hmac(key_salt, serialized)` with SHA-1: key = SHA-1(`key_salt + SECRET_KEY`), then
//! HMAC-SHA1(key, serialized) as hex, where `key_salt` is `"django.contrib.sessions" + "SessionStore"`
//! (no dot between them, unlike the salt of the current format).
//!
//! Django 3.1 and 3.2 still read this format; 4.0 and later treat it as corrupt data. Reading it is opt-in
//! ([`crate::Settings::accept_legacy_format`]); nothing here ever writes it. Sessions pickled by
//! `PickleSerializer` (Django's default before 1.6) are not read.
//!
//! SHA-1 is implemented here (a few dozen lines, checked against FIPS 180 and Python's `hashlib`) because the
//! crate depends on no SHA-1 library; it is used only to verify these hashes.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::{Map, Value};

use super::json::from_python_json;
use super::{CodecError, DecodeLimits};
use crate::SecretKey;

/// `key_salt` of the legacy hash for Django's built-in backends: `"django.contrib.sessions" + "SessionStore"`.
pub const LEGACY_SESSION_SALT: &str = "django.contrib.sessionsSessionStore";

/// Standard base64 with canonical padding; non-zero trailing bits are tolerated, as by Python's `b64decode`.
const STANDARD_PADDED: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// Length of the hex HMAC-SHA1 in front of the data.
const HASH_HEX_LEN: usize = 40;

/// Verifies and decodes pre-3.1 session data with a fixed set of secrets (the current one, then fallbacks).
///
/// Only the HMAC keys derived from the secrets are kept (SHA-1 of salt and secret), never the secrets.
#[derive(Clone)]
pub struct LegacyDecoder {
    /// SHA-1(`key_salt + secret`) for the current secret, then for each fallback.
    keys: Vec<[u8; 20]>,
}

impl std::fmt::Debug for LegacyDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyDecoder")
            .field("fallback_keys", &self.keys.len().saturating_sub(1))
            .finish_non_exhaustive()
    }
}

impl LegacyDecoder {
    /// A decoder for Django's built-in session backends ([`LEGACY_SESSION_SALT`]) that accepts data hashed
    /// with `secret` or any of `fallbacks`.
    pub fn new(secret: &SecretKey, fallbacks: &[SecretKey]) -> Self {
        // Blank fallbacks would verify anything (see `Signer::new`): ignored.
        let keys = std::iter::once(secret)
            .chain(fallbacks.iter().filter(|s| !s.is_blank()))
            .map(|s| {
                let mut salted = LEGACY_SESSION_SALT.as_bytes().to_vec();
                salted.extend_from_slice(s.expose());
                sha1(&salted)
            })
            .collect();
        LegacyDecoder { keys }
    }

    /// Decodes `text` as Django 3.1's `SessionBase._legacy_decode` does. See [`decode_legacy`].
    pub fn decode(&self, text: &str, limits: &DecodeLimits) -> Result<Map<String, Value>, CodecError> {
        if text.len() > limits.max_token_bytes {
            return Err(CodecError::TooLarge { limit: limits.max_token_bytes });
        }
        let raw = STANDARD_PADDED.decode(text).map_err(|_| CodecError::Base64)?;
        let colon = raw
            .iter()
            .position(|&b| b == b':')
            .ok_or(CodecError::Malformed("legacy session data has no ':' after the hash"))?;
        let (hash, serialized) = (&raw[..colon], &raw[colon + 1..]);
        if !self.verify(hash, serialized) {
            return Err(CodecError::BadSignature);
        }
        from_python_json(serialized)
    }

    /// True if `hash` is the lowercase hex HMAC-SHA1 of `value` under one of the keys (Django's
    /// `constant_time_compare` of the hex strings; each comparison takes the same time whatever the bytes).
    fn verify(&self, hash: &[u8], value: &[u8]) -> bool {
        if hash.len() != HASH_HEX_LEN {
            return false;
        }
        let mut any = false;
        for key in &self.keys {
            let expected = hex(&hmac_sha1(key, value));
            let diff = expected.iter().zip(hash).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            any |= diff == 0;
        }
        any
    }
}

/// Verifies and decodes session data stored by Django before 3.1 (`base64(hexhash ":" json)`, see the
/// [module docs](self)), accepting a hash made with `secret` or any of `fallbacks`.
///
/// Steps: `text` longer than `limits.max_token_bytes` is refused before any work; it must be standard base64
/// with padding; the part before the first `:` must be the hex HMAC-SHA1 of the rest, compared in constant
/// time; the rest is read by [`from_python_json`] (latin-1, at most 128 levels deep) and must be an object.
///
/// # Errors
///
/// [`CodecError::TooLarge`], [`CodecError::Base64`], [`CodecError::Malformed`] (no `:`),
/// [`CodecError::BadSignature`] (hash matches no secret), [`CodecError::Json`] or [`CodecError::NotAnObject`].
pub fn decode_legacy(
    text: &str,
    secret: &SecretKey,
    fallbacks: &[SecretKey],
    limits: &DecodeLimits,
) -> Result<Map<String, Value>, CodecError> {
    if text.len() > limits.max_token_bytes {
        return Err(CodecError::TooLarge { limit: limits.max_token_bytes });
    }
    LegacyDecoder::new(secret, fallbacks).decode(text, limits)
}

fn hex(bytes: &[u8; 20]) -> [u8; 40] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 40];
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    out
}

/// HMAC-SHA1 (RFC 2104) with a key of at most one block (here always a 20-byte SHA-1 digest).
fn hmac_sha1(key: &[u8; 20], message: &[u8]) -> [u8; 20] {
    let mut block = [0u8; 64];
    block[..20].copy_from_slice(key);
    let mut inner = Sha1::new();
    inner.update(&block.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finish();
    let mut outer = Sha1::new();
    outer.update(&block.map(|b| b ^ 0x5c));
    outer.update(&inner);
    outer.finish()
}

fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(data);
    h.finish()
}

/// SHA-1 (FIPS 180-4), streaming.
struct Sha1 {
    state: [u32; 5],
    buffer: [u8; 64],
    buffered: usize,
    length: u64,
}

impl Sha1 {
    fn new() -> Self {
        Sha1 {
            state: [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476, 0xc3d2_e1f0],
            buffer: [0; 64],
            buffered: 0,
            length: 0,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.length = self.length.wrapping_add(data.len() as u64);
        while !data.is_empty() {
            let n = (64 - self.buffered).min(data.len());
            self.buffer[self.buffered..self.buffered + n].copy_from_slice(&data[..n]);
            self.buffered += n;
            data = &data[n..];
            if self.buffered == 64 {
                let block = self.buffer;
                self.compress(&block);
                self.buffered = 0;
            }
        }
    }

    fn finish(mut self) -> [u8; 20] {
        let bit_length = self.length.wrapping_mul(8);
        self.update(&[0x80]);
        while self.buffered != 56 {
            self.update(&[0]);
        }
        self.update(&bit_length.to_be_bytes());
        let mut out = [0u8; 20];
        for (chunk, word) in out.chunks_exact_mut(4).zip(self.state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    fn compress(&mut self, block: &[u8; 64]) {
        let mut w = [0u32; 80];
        for (i, chunk) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = self.state;
        for (i, &wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5a82_7999),
                20..=39 => (b ^ c ^ d, 0x6ed9_eba1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8f1b_bcdc),
                _ => (b ^ c ^ d, 0xca62_c1d6),
            };
            let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (s, v) in self.state.iter_mut().zip([a, b, c, d, e]) {
            *s = s.wrapping_add(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hexs(bytes: &[u8; 20]) -> String {
        String::from_utf8(hex(bytes).to_vec()).unwrap()
    }

    /// FIPS 180-2 examples and Python's `hashlib.sha1(b"a" * 1000).hexdigest()`.
    #[test]
    fn sha1_known_answers() {
        assert_eq!(hexs(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(hexs(&sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            hexs(&sha1(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(hexs(&sha1(&[b'a'; 1000])), "291e9a6c66994949b57ba5e650361e98fc36b1ba");
        assert_eq!(hexs(&sha1(&vec![b'a'; 1_000_000])), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
        // Streaming in odd pieces gives the same digest.
        let mut h = Sha1::new();
        for piece in [&b"abcdbcdecdefdefgefghfghighijhij"[..], b"k", b"", b"ijkljklmklmnlmnomnopnopq"] {
            h.update(piece);
        }
        assert_eq!(hexs(&h.finish()), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    }

    /// Django 5.2: `salted_hmac("django.contrib.sessionsSessionStore", b"abc", secret="test-secret-key",
    /// algorithm="sha1").hexdigest()`.
    #[test]
    fn salted_hmac_like_django() {
        let decoder = LegacyDecoder::new(&SecretKey::from("test-secret-key"), &[]);
        assert_eq!(hexs(&hmac_sha1(&decoder.keys[0], b"abc")), "2bc6bc8e41759cadb6eb96c59b218626cccb12a7");
        assert!(decoder.verify(b"2bc6bc8e41759cadb6eb96c59b218626cccb12a7", b"abc"));
        assert!(!decoder.verify(b"2bc6bc8e41759cadb6eb96c59b218626cccb12a8", b"abc"));
        assert!(!decoder.verify(b"2BC6BC8E41759CADB6EB96C59B218626CCCB12A7", b"abc"));
        assert!(!decoder.verify(b"2bc6bc8e41759cadb6eb96c59b218626cccb12a", b"abc"));
        assert!(!decoder.verify(b"", b"abc"));
    }

    #[test]
    fn debug_hides_keys() {
        let decoder = LegacyDecoder::new(&SecretKey::from("test-secret-key"), &[SecretKey::from("old")]);
        assert_eq!(format!("{decoder:?}"), "LegacyDecoder { fallback_keys: 1, .. }");
    }
    // Made with Django 5.2.19's `salted_hmac(..., algorithm="sha1")` (checked against hashlib/hmac) and
    // `base64.b64encode(hash.encode() + b":" + json.dumps(d, separators=(",", ":")).encode("latin-1"))`,
    // salt "django.contrib.sessionsSessionStore", as Django < 3.1 wrote session data.

    /// `{"foo": "bar", "n": 1, "big": 12345678901234567890123}` with secret "test-secret-key".
    pub(crate) const PLAIN: &str = "MTc4M2Q4NjFjYmY3OWMyMWJlMWVhYWYyMzE1ZDIwNjkwMDIyYjBmYjp7ImZvbyI6ImJhciIsIm4iOjEsImJpZyI6MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjN9";
    /// `{"_auth_user_id": "1", "x": [1.5, None, True]}` with the fallback secret "old-secret".
    const FALLBACK: &str =
        "OTBiY2EwY2ZmZDY1OGUzMjU0MGUyNDRjOTYxY2RiOWZkZmIzMjViYjp7Il9hdXRoX3VzZXJfaWQiOiIxIiwieCI6WzEuNSxudWxsLHRydWVdfQ==";
    /// `{"name": "Zoë € 😀"}` (JSON with `\u` escapes) with "test-secret-key".
    const NON_ASCII: &str =
        "NjQxMTE3NmRiZWE3N2U3MmE2OTJiNGMxNTdjNTM3NTM2OGVjNjgwOTp7Im5hbWUiOiJab1x1MDBlYiBcdTIwYWMgXHVkODNkXHVkZTAwIn0=";
    /// `{"name": "Zoë"}` serialized with `ensure_ascii=False`, so the JSON holds the raw latin-1 byte 0xeb.
    const LATIN1_RAW: &str = "NGQyMWMzN2RlZThhNTdkYjcwN2JmZmZmZDBiMDEwZWIwZWM1ZjE4Mjp7Im5hbWUiOiJab+sifQ==";
    /// `{"user": "alice", "admin": false}` signed, then `"admin":false` replaced by `"admin":true ` (same
    /// length) without re-signing.
    const TAMPERED: &str =
        "OTBlZWVmMzZiNWNlM2QyMzJjMzY1NDRmYWM2YjJmYjQ4NTM1YTEwOTp7InVzZXIiOiJhbGljZSIsImFkbWluIjp0cnVlIH0=";
    /// The untampered original of [`TAMPERED`].
    const UNTAMPERED: &str =
        "OTBlZWVmMzZiNWNlM2QyMzJjMzY1NDRmYWM2YjJmYjQ4NTM1YTEwOTp7InVzZXIiOiJhbGljZSIsImFkbWluIjpmYWxzZX0=";
    /// `{"n": float("nan"), "i": float("inf")}` with "test-secret-key".
    const NON_FINITE: &str = "OWU2OGE3Mzc1Zjc2MTBiNTZhN2U2MjQxZmVlMzEwN2U2NTNiNGI0YTp7Im4iOk5hTiwiaSI6SW5maW5pdHl9";
    /// `{"foo": "bar"}` with "another-secret".
    const OTHER_SECRET: &str = "MDhhMWE1NzNkZWM3NzQ0MzQwNjE2YjBjZDEwZTVmMTU2NjJkYTc4Mzp7ImZvbyI6ImJhciJ9";

    fn decode(text: &str) -> Result<Map<String, Value>, CodecError> {
        decode_legacy(
            text,
            &SecretKey::from("test-secret-key"),
            &[SecretKey::from("old-secret")],
            &DecodeLimits::default(),
        )
    }

    fn json(map: &Map<String, Value>) -> String {
        crate::codec::json::object_to_python_json(map)
    }

    #[test]
    fn reads_django_legacy_vectors() {
        assert_eq!(json(&decode(PLAIN).unwrap()), r#"{"foo":"bar","n":1,"big":12345678901234567890123}"#);
        assert_eq!(json(&decode(FALLBACK).unwrap()), r#"{"_auth_user_id":"1","x":[1.5,null,true]}"#);
        assert_eq!(decode(NON_ASCII).unwrap()["name"], "Zo\u{eb} \u{20ac} \u{1f600}");
        assert_eq!(decode(LATIN1_RAW).unwrap()["name"], "Zo\u{eb}");
        assert_eq!(json(&decode(NON_FINITE).unwrap()), r#"{"n":NaN,"i":Infinity}"#);
        assert_eq!(json(&decode(UNTAMPERED).unwrap()), r#"{"user":"alice","admin":false}"#);
    }

    #[test]
    fn rejects_tampered_and_foreign_data() {
        assert!(matches!(decode(TAMPERED), Err(CodecError::BadSignature)));
        assert!(matches!(decode(OTHER_SECRET), Err(CodecError::BadSignature)));
        // The fallback vector needs the fallback.
        let no_fallback = decode_legacy(FALLBACK, &SecretKey::from("test-secret-key"), &[], &DecodeLimits::default());
        assert!(matches!(no_fallback, Err(CodecError::BadSignature)));
        // A fallback given as the current secret works too.
        let rotated = decode_legacy(
            PLAIN,
            &SecretKey::from("x"),
            &[SecretKey::from("y"), SecretKey::from("test-secret-key")],
            &DecodeLimits::default(),
        );
        assert_eq!(rotated.unwrap()["foo"], "bar");
    }

    #[test]
    fn malformed_legacy_data() {
        // Not base64 / missing padding / URL-safe alphabet.
        for text in ["!!!!", "e30", "ab-_", "MTc4M2Q4NjFj YmY3"] {
            assert!(matches!(decode(text), Err(CodecError::Base64)), "{text}");
        }
        // No ':' after the hash.
        assert!(matches!(decode("YWJj"), Err(CodecError::Malformed(_))));
        assert!(matches!(decode(""), Err(CodecError::Malformed(_))));
        // A current-format token is not legacy data.
        let modern = "eyJmb28iOiJiYXIifQ:1r31eq:RnWPXJomOr-V2BX7g-VMy1xvGxvSHHm4P3Mh938lEqQ";
        assert!(matches!(decode(modern), Err(CodecError::Base64)));
        // Truncations of a valid vector all fail (padding or hash).
        for end in 0..PLAIN.len() {
            assert!(decode(&PLAIN[..end]).is_err(), "{end}");
        }
    }

    #[test]
    fn correctly_hashed_but_bad_json() {
        let decoder = LegacyDecoder::new(&SecretKey::from("k"), &[]);
        let make = |json: &[u8]| {
            let mut raw = hex(&hmac_sha1(&decoder.keys[0], json)).to_vec();
            raw.push(b':');
            raw.extend_from_slice(json);
            base64::engine::general_purpose::STANDARD.encode(raw)
        };
        let limits = DecodeLimits::default();
        assert_eq!(decoder.decode(&make(b"{\"a\":1}"), &limits).unwrap()["a"], 1);
        assert!(matches!(decoder.decode(&make(b"[1]"), &limits), Err(CodecError::NotAnObject)));
        assert!(matches!(decoder.decode(&make(b"{\"a\""), &limits), Err(CodecError::Json(_))));
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(decoder.decode(&make(deep.as_bytes()), &limits), Err(CodecError::Json(_))));
    }

    #[test]
    fn oversize_input_is_refused_before_decoding() {
        let limits = DecodeLimits { max_token_bytes: PLAIN.len(), max_inflated_bytes: 1 };
        let secret = SecretKey::from("test-secret-key");
        assert!(decode_legacy(PLAIN, &secret, &[], &limits).is_ok());
        let limits = DecodeLimits { max_token_bytes: PLAIN.len() - 1, ..limits };
        assert!(matches!(
            decode_legacy(PLAIN, &secret, &[], &limits),
            Err(CodecError::TooLarge { limit }) if limit == PLAIN.len() - 1
        ));
        // Refused by size even though it is not base64 at all.
        assert!(matches!(
            decode_legacy(&"!".repeat(PLAIN.len()), &secret, &[], &limits),
            Err(CodecError::TooLarge { .. })
        ));
    }
}
