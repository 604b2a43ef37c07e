//! The pre-3.1 session decoder on arbitrary text, and on arbitrary JSON bytes behind a valid legacy hash
//! (computed here with the `sha1`/`hmac` crates, as Django 3.0 did), so the JSON stage is reached and
//! sessionkit's own SHA-1 is cross-checked: a validly hashed input must never be a bad signature.

#![no_main]

use base64::Engine;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sessionkit::codec::legacy::{decode_legacy, LEGACY_SESSION_SALT};
use sessionkit::codec::{CodecError, DecodeLimits};
use sessionkit::SecretKey;
use sha1::{Digest, Sha1};

const SECRET: &str = "fuzz-secret";

/// `base64.b64encode(salted_hmac(salt, json, SECRET).hexdigest().encode() + b":" + json)`.
fn legacy_token(json: &[u8]) -> String {
    let key = Sha1::new().chain_update(LEGACY_SESSION_SALT).chain_update(SECRET).finalize();
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&key).expect("any key length");
    mac.update(json);
    let hash: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let mut raw = hash.into_bytes();
    raw.push(b':');
    raw.extend_from_slice(json);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fuzz_target!(|data: &[u8]| {
    let secret = SecretKey::from(SECRET);
    let fallbacks = [SecretKey::from("old")];
    let limits = DecodeLimits::default();
    let _ = decode_legacy(&String::from_utf8_lossy(data), &secret, &fallbacks, &limits);

    let token = legacy_token(data);
    // The hash is valid with the secret, and equally when the secret is a fallback.
    for (current, others) in [(&secret, &fallbacks[..]), (&fallbacks[0], std::slice::from_ref(&secret))] {
        let result = decode_legacy(&token, current, others, &limits);
        assert!(!matches!(result, Err(CodecError::BadSignature)), "valid hash refused");
    }
});
