//! Django's `TimestampSigner` with `sign_object` / `unsign_object` (what `signing.dumps` and
//! `signing.loads` do with the JSON serializer).
//!
//! A token is `payload ":" timestamp ":" signature`:
//! - `payload` is the URL-safe base64 (no padding) of the Python-compatible JSON, or `.` followed by the
//!   base64 of its zlib compression when that is shorter;
//! - `timestamp` is the signing time in seconds, in [base62];
//! - `signature` is the URL-safe base64 (no padding) of HMAC-SHA256 over `payload:timestamp`, keyed with
//!   SHA-256(`salt + "signer" + secret`) (Django's `salted_hmac`).

use std::fmt;
use std::io::{Read, Write};

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::json::{from_python_json, object_to_python_json};
use super::{base62, CodecError, DecodeLimits};
use crate::SecretKey;

/// Salt of every built-in database/file/cache session backend: `"django.contrib.sessions." + "SessionStore"`.
pub const SESSION_SALT: &str = "django.contrib.sessions.SessionStore";

/// Salt of the `signed_cookies` session backend.
pub const SIGNED_COOKIES_SALT: &str = "django.contrib.sessions.backends.signed_cookies";

/// Length of an encoded HMAC-SHA256 signature (32 bytes in unpadded base64).
const SIGNATURE_LEN: usize = 43;

/// Decoder for payloads: URL-safe alphabet, padding optional, and (like Python's `base64` module) non-zero
/// trailing bits are tolerated. Payloads are only decoded after their signature has been verified.
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies Django session tokens for one salt, with a current secret and optional fallbacks
/// (Django's `SECRET_KEY` and `SECRET_KEY_FALLBACKS`).
///
/// The HMAC keys are derived once, in [`Signer::new`]. Tokens are always signed with the current secret;
/// verification tries the current secret, then each fallback in order, comparing in constant time.
#[derive(Clone)]
pub struct Signer {
    salt: String,
    /// Keyed HMAC states: index 0 for the current secret, then one per fallback.
    keys: Vec<HmacSha256>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("salt", &self.salt)
            .field("fallback_keys", &self.keys.len().saturating_sub(1))
            .finish_non_exhaustive()
    }
}

/// Django's `salted_hmac(salt + "signer", _, secret, algorithm="sha256")` key setup:
/// the HMAC key is SHA-256(`salt + "signer" + secret`).
fn derive_key(salt: &str, secret: &SecretKey) -> HmacSha256 {
    let digest =
        Sha256::new().chain_update(salt.as_bytes()).chain_update(b"signer").chain_update(secret.expose()).finalize();
    // HMAC zero-pads keys shorter than the hash block (64 bytes for SHA-256), so padding the 32-byte
    // digest ourselves gives the same MAC and lets us use the infallible fixed-size constructor.
    let mut block = [0u8; 64];
    block[..digest.len()].copy_from_slice(&digest);
    <HmacSha256 as hmac::digest::KeyInit>::new(&block.into())
}

impl Signer {
    /// Creates a signer for `salt` (usually [`SESSION_SALT`] or [`SIGNED_COOKIES_SALT`]) that signs with
    /// `secret` and also accepts tokens signed with any of `fallbacks`, except blank ones (empty or whitespace),
    /// which would accept anything anyone signs with them.
    pub fn new(salt: impl Into<String>, secret: SecretKey, fallbacks: Vec<SecretKey>) -> Self {
        let salt = salt.into();
        // A blank fallback would verify anything anyone signs with it; the stores refuse such settings
        // (`ConfigError::BlankSecret`), and a signer made directly ignores them.
        let fallbacks = fallbacks.iter().filter(|s| !s.is_blank());
        let keys = std::iter::once(&secret).chain(fallbacks).map(|s| derive_key(&salt, s)).collect();
        Signer { salt, keys }
    }

    /// The salt this signer was created with.
    pub fn salt(&self) -> &str {
        &self.salt
    }

    /// Signs a session dict like Django's `signing.dumps(data, salt=..., compress=...)` at `timestamp`
    /// (seconds since the Unix epoch).
    ///
    /// The payload is [`to_python_json`](super::json::to_python_json) of `data`; with `compress`, it is zlib-compressed (level 6) when
    /// that saves at least two bytes. Signed with the current secret.
    pub fn sign_object(&self, data: &Map<String, Value>, compress: bool, timestamp: i64) -> String {
        let json = object_to_python_json(data);
        self.sign_json_bytes(json.as_bytes(), compress, timestamp)
    }

    /// Signs already-serialized JSON (normally the output of [`to_python_json`](super::json::to_python_json), which is ASCII) at
    /// `timestamp`, compressing it first when `compress` is set and compression saves at least two bytes.
    pub fn sign_json_bytes(&self, json: &[u8], compress: bool, timestamp: i64) -> String {
        let compressed =
            if compress { zlib_compress(json).filter(|c| c.len() < json.len().saturating_sub(1)) } else { None };
        let payload = match compressed {
            Some(c) => format!(".{}", URL_SAFE_NO_PAD.encode(c)),
            None => URL_SAFE_NO_PAD.encode(json),
        };
        self.sign_payload(&payload, timestamp)
    }

    /// `TimestampSigner.sign`: appends `:timestamp:signature` to an ASCII payload.
    fn sign_payload(&self, payload: &str, timestamp: i64) -> String {
        self.sign_value(&format!("{payload}:{}", base62::encode(timestamp)))
    }

    /// Django's base `Signer.sign(value)`: appends `:` and the signature of `value` (made with the current
    /// secret) to `value` as it is.
    ///
    /// For `value` = `payload:timestamp` this is the token [`Signer::sign_object`] makes. Signing any other
    /// text gives a token with a valid signature around arbitrary (possibly malformed) contents, which is how
    /// tests and fuzz targets reach the stages of [`Signer::unsign_object`] after the signature check.
    pub fn sign_value(&self, value: &str) -> String {
        let mut mac = self.keys[0].clone();
        mac.update(value.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{value}:{sig}")
    }

    /// Verifies and decodes a token like Django's `signing.loads(token, salt=..., max_age=...)`.
    ///
    /// Steps, in order: the token must be at most `limits.max_token_bytes` long; the signature (after the
    /// last `:`) must match the current secret or a fallback; the timestamp must be valid base62 and, when
    /// `max_age_seconds` is given, `now - timestamp` must not exceed it (`now` in seconds since the Unix
    /// epoch); a payload starting with `.` is base64-decoded and zlib-inflated, stopping at
    /// `limits.max_inflated_bytes`; the result must be a JSON object.
    pub fn unsign_object(
        &self,
        token: &str,
        max_age_seconds: Option<i64>,
        now: i64,
        limits: &DecodeLimits,
    ) -> Result<Map<String, Value>, CodecError> {
        if token.len() > limits.max_token_bytes {
            return Err(CodecError::TooLarge { limit: limits.max_token_bytes });
        }
        let (signed_value, sig) =
            token.rsplit_once(':').ok_or(CodecError::Malformed("the token has no ':' separator"))?;
        self.verify(signed_value, sig)?;

        let (payload, timestamp) =
            signed_value.rsplit_once(':').ok_or(CodecError::Malformed("the token has no timestamp"))?;
        let timestamp = base62::decode(timestamp)?;
        if let Some(max_age) = max_age_seconds {
            let age = i128::from(now) - i128::from(timestamp);
            if age > i128::from(max_age) {
                return Err(CodecError::SignatureExpired {
                    age_seconds: i64::try_from(age).unwrap_or(i64::MAX),
                    max_age_seconds: max_age,
                });
            }
        }

        let json = match payload.strip_prefix('.') {
            Some(compressed) => {
                let deflated = LENIENT_URL_SAFE.decode(compressed).map_err(|_| CodecError::Base64)?;
                bounded_inflate(&deflated, limits.max_inflated_bytes)?
            }
            None => LENIENT_URL_SAFE.decode(payload).map_err(|_| CodecError::Base64)?,
        };
        from_python_json(&json)
    }

    /// Checks `sig` against `value` with every key, in constant time per key.
    fn verify(&self, value: &str, sig: &str) -> Result<(), CodecError> {
        // A valid signature is exactly 43 canonical base64 characters, so strict decoding accepts only the
        // one string Django would compare equal.
        if sig.len() != SIGNATURE_LEN {
            return Err(CodecError::BadSignature);
        }
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| CodecError::BadSignature)?;
        for key in &self.keys {
            let mut mac = key.clone();
            mac.update(value.as_bytes());
            if mac.verify_slice(&sig).is_ok() {
                return Ok(());
            }
        }
        Err(CodecError::BadSignature)
    }
}

/// `zlib.compress(data)`: zlib format, level 6 (Python's default), window 15, memory level 8.
/// Writing into a `Vec` cannot fail; `None` is only a defensive fallback to "not compressed".
/// The signing time of a token (`payload:TIMESTAMP:signature`), without verifying it: call it only on a token
/// that [`Signer::unsign_object`] accepted.
pub fn token_timestamp(token: &str) -> Option<i64> {
    let (signed_value, _sig) = token.rsplit_once(':')?;
    let (_payload, timestamp) = signed_value.rsplit_once(':')?;
    base62::decode(timestamp).ok()
}

fn zlib_compress(data: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::new(6));
    encoder.write_all(data).ok()?;
    encoder.finish().ok()
}

/// Inflates a complete zlib stream, failing with [`CodecError::TooLarge`] as soon as the output exceeds
/// `limit` bytes, so a zip bomb costs at most `limit + 1` bytes of memory. Data after the end of the stream is
/// ignored, as Python's `zlib.decompress` does; a truncated or corrupt stream is an error.
fn bounded_inflate(data: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    ZlibDecoder::new(data).take(cap).read_to_end(&mut out).map_err(|e| CodecError::Inflate(e.to_string()))?;
    if out.len() > limit {
        return Err(CodecError::TooLarge { limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: i64 = 1_700_000_000;

    fn signer() -> Signer {
        Signer::new(SESSION_SALT, SecretKey::from("test-secret-key"), vec![])
    }

    fn object(text: &str) -> Map<String, Value> {
        match serde_json::from_str(text).unwrap() {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    fn unsign(signer: &Signer, token: &str) -> Result<Map<String, Value>, CodecError> {
        signer.unsign_object(token, None, TS, &DecodeLimits::default())
    }

    /// Same as Django's `signing.dumps({"foo": "bar"}, key="test-secret-key",
    /// salt="django.contrib.sessions.SessionStore", compress=True)` at 1700000000.
    const SIMPLE: &str = "eyJmb28iOiJiYXIifQ:1r31eq:RnWPXJomOr-V2BX7g-VMy1xvGxvSHHm4P3Mh938lEqQ";

    #[test]
    fn signs_and_verifies_like_django() {
        let s = signer();
        assert_eq!(s.sign_object(&object(r#"{"foo":"bar"}"#), true, TS), SIMPLE);
        assert_eq!(unsign(&s, SIMPLE).unwrap(), object(r#"{"foo":"bar"}"#));
    }

    #[test]
    fn compression_round_trip() {
        let s = signer();
        let data = object(&format!(r#"{{"k":"{}"}}"#, "ab".repeat(500)));
        let token = s.sign_object(&data, true, TS);
        assert!(token.starts_with('.'));
        assert!(token.len() < 200);
        assert_eq!(unsign(&s, &token).unwrap(), data);
        let plain = s.sign_object(&data, false, TS);
        assert!(!plain.starts_with('.'));
        assert_eq!(unsign(&s, &plain).unwrap(), data);
    }

    #[test]
    fn debug_hides_keys() {
        let text = format!("{:?}", signer());
        assert!(text.contains(SESSION_SALT));
        assert!(!text.contains("test-secret-key"));
    }

    #[test]
    fn tampered_signature() {
        let s = signer();
        let mut bad = SIMPLE.to_owned();
        bad.pop();
        bad.push('A');
        assert!(matches!(unsign(&s, &bad), Err(CodecError::BadSignature)));
        // Non-canonical trailing bits in the last character decode to the same bytes; still rejected.
        let mut noncanonical = SIMPLE.to_owned();
        noncanonical.pop();
        noncanonical.push('R');
        assert_ne!(noncanonical, SIMPLE);
        assert!(matches!(unsign(&s, &noncanonical), Err(CodecError::BadSignature)));
        // Tampered payload.
        let tampered = SIMPLE.replacen("eyJmb28", "eyJmb29", 1);
        assert!(matches!(unsign(&s, &tampered), Err(CodecError::BadSignature)));
        // Tampered timestamp.
        let tampered = SIMPLE.replacen("1r31eq", "1r31er", 1);
        assert!(matches!(unsign(&s, &tampered), Err(CodecError::BadSignature)));
        // Garbage signatures of every length.
        for sig in ["", "x", "!!!!", &"A".repeat(43), &"=".repeat(43), &"A".repeat(44)] {
            let token = format!("eyJmb28iOiJiYXIifQ:1r31eq:{sig}");
            assert!(matches!(unsign(&s, &token), Err(CodecError::BadSignature)), "{sig}");
        }
    }

    #[test]
    fn wrong_secret_and_fallbacks() {
        let other = Signer::new(SESSION_SALT, SecretKey::from("another-secret"), vec![]);
        assert!(matches!(unsign(&other, SIMPLE), Err(CodecError::BadSignature)));
        let wrong_salt = Signer::new(SIGNED_COOKIES_SALT, SecretKey::from("test-secret-key"), vec![]);
        assert!(matches!(unsign(&wrong_salt, SIMPLE), Err(CodecError::BadSignature)));
        let rotated = Signer::new(
            SESSION_SALT,
            SecretKey::from("another-secret"),
            vec![SecretKey::from("x"), SecretKey::from("test-secret-key")],
        );
        assert_eq!(unsign(&rotated, SIMPLE).unwrap(), object(r#"{"foo":"bar"}"#));
        // New tokens are signed with the current secret only.
        let token = rotated.sign_object(&object("{}"), true, TS);
        assert!(matches!(unsign(&signer(), &token), Err(CodecError::BadSignature)));
        assert!(unsign(&other, &token).is_ok());
    }

    #[test]
    fn truncated_token() {
        let s = signer();
        for end in 0..SIMPLE.len() {
            let truncated = &SIMPLE[..end];
            assert!(unsign(&s, truncated).is_err(), "{truncated}");
        }
        assert!(matches!(unsign(&s, &SIMPLE[1..]), Err(CodecError::BadSignature)));
    }

    #[test]
    fn token_without_separators() {
        let s = signer();
        assert!(matches!(unsign(&s, ""), Err(CodecError::Malformed(_))));
        assert!(matches!(unsign(&s, "eyJmb28iOiJiYXIifQ1r31eqRnWPXJomOr"), Err(CodecError::Malformed(_))));
        // One separator only: correctly signed, but there is no timestamp.
        let no_ts = sign_raw(&s, "e30");
        assert_eq!(s.sign_value("e30"), no_ts);
        assert_eq!(s.sign_value("eyJmb28iOiJiYXIifQ:1r31eq"), SIMPLE);
        assert!(matches!(unsign(&s, &no_ts), Err(CodecError::Malformed(_))));
    }

    /// A token signed correctly over an arbitrary `payload:timestamp` string.
    fn sign_raw(s: &Signer, value: &str) -> String {
        let mut mac = s.keys[0].clone();
        mac.update(value.as_bytes());
        format!("{value}:{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn bad_base62_timestamp() {
        let s = signer();
        for ts in ["", "1r3!eq", "-", "zzzzzzzzzzzzzzzzzzzz", "1r31eq "] {
            let token = sign_raw(&s, &format!("e30:{ts}"));
            assert!(matches!(unsign(&s, &token), Err(CodecError::Malformed(_))), "{ts:?}");
        }
        // Extreme timestamps must not overflow the age computation.
        let token = sign_raw(&s, &format!("e30:-{}", base62::encode(i64::MAX)));
        assert!(matches!(
            s.unsign_object(&token, Some(i64::MAX), i64::MAX, &DecodeLimits::default()),
            Err(CodecError::SignatureExpired { age_seconds: i64::MAX, .. })
        ));
    }

    #[test]
    fn base64_garbage() {
        let s = signer();
        for payload in ["e3!0", "e", ".e", ".!!!!", "e30=e30", "@@@@"] {
            let token = sign_raw(&s, &format!("{payload}:1r31eq"));
            assert!(matches!(unsign(&s, &token), Err(CodecError::Base64)), "{payload}");
        }
        // Padding and non-zero trailing bits are tolerated, as in Python.
        let token = sign_raw(&s, "e30=:1r31eq");
        assert!(unsign(&s, &token).unwrap().is_empty());
        let token = sign_raw(&s, "e31:1r31eq");
        assert!(unsign(&s, &token).unwrap().is_empty());
    }

    #[test]
    fn corrupt_or_truncated_zlib() {
        let s = signer();
        let compressed = zlib_compress(b"{\"a\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}").unwrap();
        let truncated = &compressed[..compressed.len() - 3];
        let token = sign_raw(&s, &format!(".{}:1r31eq", URL_SAFE_NO_PAD.encode(truncated)));
        assert!(matches!(unsign(&s, &token), Err(CodecError::Inflate(_))));
        let token = sign_raw(&s, &format!(".{}:1r31eq", URL_SAFE_NO_PAD.encode(b"not zlib at all")));
        assert!(matches!(unsign(&s, &token), Err(CodecError::Inflate(_))));
        // Bad checksum.
        let mut bad = compressed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let token = sign_raw(&s, &format!(".{}:1r31eq", URL_SAFE_NO_PAD.encode(&bad)));
        assert!(matches!(unsign(&s, &token), Err(CodecError::Inflate(_))));
        // Trailing bytes after the stream are ignored, as by Python's zlib.decompress.
        let mut trailing = compressed.clone();
        trailing.extend_from_slice(b"xyz");
        let token = sign_raw(&s, &format!(".{}:1r31eq", URL_SAFE_NO_PAD.encode(&trailing)));
        assert_eq!(unsign(&s, &token).unwrap().len(), 1);
        // Any compression level is accepted.
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::new(9));
        encoder.write_all(b"{\"a\":1}").unwrap();
        let level9 = encoder.finish().unwrap();
        let token = sign_raw(&s, &format!(".{}:1r31eq", URL_SAFE_NO_PAD.encode(level9)));
        assert_eq!(unsign(&s, &token).unwrap(), object(r#"{"a":1}"#));
    }

    #[test]
    fn zlib_bomb_is_cut_off() {
        let s = signer();
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::new(9));
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..100 {
            encoder.write_all(&zeros).unwrap();
        }
        let bomb = encoder.finish().unwrap();
        let token = sign_raw(&s, &format!(".{}:1r31eq", URL_SAFE_NO_PAD.encode(&bomb)));
        assert!(token.len() < DecodeLimits::default().max_token_bytes);

        let start = std::time::Instant::now();
        let result = unsign(&s, &token);
        assert!(matches!(result, Err(CodecError::TooLarge { limit }) if limit == 16 * 1024 * 1024), "{result:?}");
        assert!(start.elapsed() < std::time::Duration::from_secs(5));

        let small = DecodeLimits { max_token_bytes: 1 << 20, max_inflated_bytes: 1000 };
        assert!(matches!(s.unsign_object(&token, None, TS, &small), Err(CodecError::TooLarge { limit: 1000 })));
    }

    #[test]
    fn inflated_size_limit_is_inclusive() {
        let data = vec![b'a'; 5000];
        let compressed = zlib_compress(&data).unwrap();
        assert_eq!(bounded_inflate(&compressed, 5000).unwrap(), data);
        assert!(matches!(bounded_inflate(&compressed, 4999), Err(CodecError::TooLarge { limit: 4999 })));
    }

    #[test]
    fn token_size_limit() {
        let s = signer();
        let limits = DecodeLimits { max_token_bytes: SIMPLE.len(), max_inflated_bytes: 100 };
        assert!(s.unsign_object(SIMPLE, None, TS, &limits).is_ok());
        let limits = DecodeLimits { max_token_bytes: SIMPLE.len() - 1, ..limits };
        assert!(matches!(s.unsign_object(SIMPLE, None, TS, &limits), Err(CodecError::TooLarge { .. })));
    }

    #[test]
    fn json_array_payload_is_not_an_object() {
        let s = signer();
        let token = s.sign_json_bytes(b"[1,2,3]", true, TS);
        assert!(matches!(unsign(&s, &token), Err(CodecError::NotAnObject)));
        let token = s.sign_json_bytes(b"not json", false, TS);
        assert!(matches!(unsign(&s, &token), Err(CodecError::Json(_))));
    }

    #[test]
    fn deeply_nested_json_is_an_error() {
        let s = signer();
        let depth = 10_000;
        let json = format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
        for compress in [true, false] {
            let token = s.sign_json_bytes(json.as_bytes(), compress, TS);
            assert!(matches!(unsign(&s, &token), Err(CodecError::Json(_))));
        }
    }

    #[test]
    fn max_age() {
        let s = signer();
        let limits = DecodeLimits::default();
        // Django: expired when `now - timestamp > max_age`.
        assert!(s.unsign_object(SIMPLE, Some(100), TS + 100, &limits).is_ok());
        assert!(matches!(
            s.unsign_object(SIMPLE, Some(100), TS + 101, &limits),
            Err(CodecError::SignatureExpired { age_seconds: 101, max_age_seconds: 100 })
        ));
        // A timestamp in the future is not expired.
        assert!(s.unsign_object(SIMPLE, Some(0), TS - 10, &limits).is_ok());
        // No max_age: any age is fine.
        assert!(s.unsign_object(SIMPLE, None, i64::MAX, &limits).is_ok());
        // The signature is checked before the age.
        let other = Signer::new(SESSION_SALT, SecretKey::from("nope"), vec![]);
        assert!(matches!(other.unsign_object(SIMPLE, Some(0), TS + 1000, &limits), Err(CodecError::BadSignature)));
    }

    #[test]
    fn error_messages_are_readable() {
        let e = CodecError::SignatureExpired { age_seconds: 101, max_age_seconds: 100 };
        assert_eq!(e.to_string(), "the signature has expired: it is 101 seconds old, the limit is 100 seconds");
        assert_eq!(CodecError::TooLarge { limit: 10 }.to_string(), "the data is larger than the limit of 10 bytes");
    }
}
