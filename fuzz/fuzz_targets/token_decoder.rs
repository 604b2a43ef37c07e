//! `Signer::unsign_object` on arbitrary input, twice:
//! 1. the input as a whole token (almost never validly signed: exercises splitting and the signature check);
//! 2. the input as the signed value (`payload:timestamp`), signed with the known secret first, so the
//!    base62, base64, zlib and JSON stages run on arbitrary data; and the input as a bare payload with a
//!    valid timestamp, plain and behind the `.` compression marker.
//!
//! Any decoded session must also survive a round trip through the writer.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sessionkit::codec::{object_to_python_json, DecodeLimits, Signer, SESSION_SALT};
use sessionkit::SecretKey;

const NOW: i64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let signer = Signer::new(SESSION_SALT, SecretKey::from("fuzz-secret"), vec![SecretKey::from("old")]);
    let limits = DecodeLimits { max_token_bytes: 1 << 20, max_inflated_bytes: 1 << 20 };
    let text = String::from_utf8_lossy(data);

    let _ = signer.unsign_object(&text, Some(60), NOW, &limits);

    let candidates = [
        signer.sign_value(&text),
        signer.sign_value(&format!("{text}:1r31eq")),
        signer.sign_value(&format!(".{text}:1r31eq")),
    ];
    for token in &candidates {
        if let Ok(map) = signer.unsign_object(token, None, NOW, &limits) {
            // What we read, we can write, and read back to the same session.
            let again = signer.sign_object(&map, true, NOW);
            let back = signer.unsign_object(&again, None, NOW, &DecodeLimits::default()).expect("re-signed token");
            assert_eq!(object_to_python_json(&back), object_to_python_json(&map));
        }
    }
});
