//! The codec against tokens made by real Django (`shared/django-session-vectors.json`, Django 5.2.19,
//! SECRET_KEY "test-secret-key", SECRET_KEY_FALLBACKS ["old-secret"], time 1700000000).

// Test code: a broken vectors file should fail loudly, also in the non-`#[test]` helpers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Map, Value};
use sessionkit::codec::{to_python_json, CodecError, DecodeLimits, Signer, SESSION_SALT, SIGNED_COOKIES_SALT};
use sessionkit::SecretKey;

const VECTORS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/django-session-vectors.json");

struct Vector {
    name: String,
    session: Map<String, Value>,
    json: String,
    session_token: String,
    cookie_token: String,
    session_token_signed_with_fallback: String,
}

struct Vectors {
    secret: String,
    fallbacks: Vec<String>,
    timestamp: i64,
    vectors: Vec<Vector>,
}

fn text(value: &Value, field: &str) -> String {
    value[field].as_str().unwrap_or_else(|| panic!("field {field:?} is not a string")).to_owned()
}

fn load() -> Vectors {
    let raw = std::fs::read_to_string(VECTORS_PATH).unwrap_or_else(|e| panic!("cannot read {VECTORS_PATH}: {e}"));
    let root: Value = serde_json::from_str(&raw).expect("the vectors file is JSON");
    assert_eq!(root["session_salt"], SESSION_SALT);
    assert_eq!(root["cookie_salt"], SIGNED_COOKIES_SALT);
    let vectors: Vec<Vector> = root["vectors"]
        .as_array()
        .expect("vectors is an array")
        .iter()
        .map(|v| Vector {
            name: text(v, "name"),
            session: v["session"].as_object().expect("session is an object").clone(),
            json: text(v, "json"),
            session_token: text(v, "session_token"),
            cookie_token: text(v, "cookie_token"),
            session_token_signed_with_fallback: text(v, "session_token_signed_with_fallback"),
        })
        .collect();
    assert!(vectors.len() >= 7, "expected the full vector set");
    Vectors {
        secret: text(&root, "secret_key"),
        fallbacks: root["secret_key_fallbacks"]
            .as_array()
            .expect("fallbacks is an array")
            .iter()
            .map(|f| f.as_str().expect("fallback is a string").to_owned())
            .collect(),
        timestamp: root["timestamp"].as_i64().expect("timestamp is an integer"),
        vectors,
    }
}

impl Vectors {
    fn signer(&self, salt: &str, with_fallbacks: bool) -> Signer {
        let fallbacks = if with_fallbacks {
            self.fallbacks.iter().map(|f| SecretKey::from(f.as_str())).collect()
        } else {
            Vec::new()
        };
        Signer::new(salt, SecretKey::from(self.secret.as_str()), fallbacks)
    }

    fn unsign(&self, signer: &Signer, token: &str) -> Result<Map<String, Value>, CodecError> {
        signer.unsign_object(token, None, self.timestamp, &DecodeLimits::default())
    }
}

#[test]
fn vectors_file_has_expected_settings() {
    let v = load();
    assert_eq!(v.secret, "test-secret-key");
    assert_eq!(v.fallbacks, ["old-secret"]);
    assert_eq!(v.timestamp, 1_700_000_000);
}

#[test]
fn session_tokens_decode_to_the_session() {
    let v = load();
    let signer = v.signer(SESSION_SALT, false);
    for vector in &v.vectors {
        let decoded = v.unsign(&signer, &vector.session_token).unwrap_or_else(|e| panic!("{}: {e}", vector.name));
        assert_eq!(decoded, vector.session, "{}", vector.name);
        assert_eq!(
            to_python_json(&Value::Object(decoded)),
            vector.json,
            "{}: JSON bytes differ from Django's",
            vector.name
        );
        assert_eq!(to_python_json(&Value::Object(vector.session.clone())), vector.json, "{}", vector.name);
    }
}

#[test]
fn cookie_tokens_decode_with_the_cookie_salt() {
    let v = load();
    let signer = v.signer(SIGNED_COOKIES_SALT, false);
    let session_signer = v.signer(SESSION_SALT, true);
    for vector in &v.vectors {
        let decoded = v.unsign(&signer, &vector.cookie_token).unwrap_or_else(|e| panic!("{}: {e}", vector.name));
        assert_eq!(decoded, vector.session, "{}", vector.name);
        assert_eq!(to_python_json(&Value::Object(decoded)), vector.json, "{}", vector.name);
        // The salts keep the two kinds of token apart.
        assert!(
            matches!(v.unsign(&session_signer, &vector.cookie_token), Err(CodecError::BadSignature)),
            "{}",
            vector.name
        );
    }
}

#[test]
fn fallback_secret_is_accepted_only_when_configured() {
    let v = load();
    let with = v.signer(SESSION_SALT, true);
    let without = v.signer(SESSION_SALT, false);
    for vector in &v.vectors {
        let token = &vector.session_token_signed_with_fallback;
        let decoded = v.unsign(&with, token).unwrap_or_else(|e| panic!("{}: {e}", vector.name));
        assert_eq!(decoded, vector.session, "{}", vector.name);
        assert!(
            matches!(v.unsign(&without, token), Err(CodecError::BadSignature)),
            "{}: accepted without the fallback",
            vector.name
        );
        // Tokens signed with the current secret still verify when fallbacks are configured.
        assert!(v.unsign(&with, &vector.session_token).is_ok(), "{}", vector.name);
    }
}

#[test]
fn resigning_reproduces_django_tokens_byte_for_byte() {
    let v = load();
    let session_signer = v.signer(SESSION_SALT, true);
    let cookie_signer = v.signer(SIGNED_COOKIES_SALT, true);
    let mut mismatches = Vec::new();
    for vector in &v.vectors {
        let token = session_signer.sign_object(&vector.session, true, v.timestamp);
        if token != vector.session_token {
            mismatches.push(format!("{} (session): ours {token}, Django {}", vector.name, vector.session_token));
        }
        let token = cookie_signer.sign_object(&vector.session, true, v.timestamp);
        if token != vector.cookie_token {
            mismatches.push(format!("{} (cookie): ours {token}, Django {}", vector.name, vector.cookie_token));
        }
    }
    assert!(mismatches.is_empty(), "tokens differ:\n{}", mismatches.join("\n"));
}

#[test]
fn compressed_vectors_are_present() {
    // Make sure the byte-for-byte test above covers both payload kinds.
    let v = load();
    assert!(v.vectors.iter().any(|x| x.session_token.starts_with('.')));
    assert!(v.vectors.iter().any(|x| !x.session_token.starts_with('.')));
}

#[test]
fn max_age_applies_to_django_tokens() {
    let v = load();
    let signer = v.signer(SIGNED_COOKIES_SALT, false);
    let limits = DecodeLimits::default();
    for vector in &v.vectors {
        let token = &vector.cookie_token;
        assert!(signer.unsign_object(token, Some(1_209_600), v.timestamp + 1_209_600, &limits).is_ok());
        assert!(matches!(
            signer.unsign_object(token, Some(1_209_600), v.timestamp + 1_209_601, &limits),
            Err(CodecError::SignatureExpired { age_seconds: 1_209_601, max_age_seconds: 1_209_600 })
        ));
    }
}

#[test]
fn tampered_django_tokens_are_rejected() {
    let v = load();
    let signer = v.signer(SESSION_SALT, true);
    for vector in &v.vectors {
        let token = &vector.session_token;
        // Flip one character of the payload.
        let first = token.chars().next().expect("token is not empty");
        let replacement = if first == 'A' { 'B' } else { 'A' };
        let tampered = format!("{replacement}{}", &token[first.len_utf8()..]);
        assert!(matches!(v.unsign(&signer, &tampered), Err(CodecError::BadSignature)), "{}", vector.name);
        // Drop the signature.
        let (unsigned, _) = token.rsplit_once(':').expect("token has a signature");
        assert!(v.unsign(&signer, unsigned).is_err(), "{}", vector.name);
    }
}

// NaN / Infinity, made by Django 5.2.19 with time.time patched to 1700000000.25:
// `signing.dumps(d, salt="django.contrib.sessions.SessionStore", compress=True)` with SECRET_KEY "test-secret-key".

/// `json.dumps(d, separators=(",", ":"))` for
/// `d = {"n": float("nan"), "i": float("inf"), "m": -float("inf"), "x": [1.5, float("nan")]}`.
const NON_FINITE_JSON: &str = r#"{"n":NaN,"i":Infinity,"m":-Infinity,"x":[1.5,NaN]}"#;
/// The signed token of that `d`.
const NON_FINITE_TOKEN: &str =
    ".eJyrVspTsvJL9NNRylSy8sxLy8zLLKnUUcpVstJF8CqUrKIN9Ux1gOpiawGFxQ9k:1r31eq:bSghdGJVz12y-tH7YRFY-9kk6jqzO4v40qQLYYodAZY";
/// `{"k": [float("nan")] * 50, "big": 12345678901234567890123}`, compressed.
const NON_FINITE_COMPRESSED_TOKEN: &str =
    ".eJyrVspWsor2S_TTGQY4VkcpKTNdycrQyNjE1MzcwtIAhVULAOvIQvw:1r31eq:NFPhCtesVULdYDc8oYnNjfqIQK_eUqquLxyAlW-vdoE";

#[test]
fn nan_and_infinity_tokens_round_trip_byte_for_byte() {
    let signer = Signer::new(SESSION_SALT, SecretKey::from("test-secret-key"), vec![]);
    let data = signer.unsign_object(NON_FINITE_TOKEN, None, 1_700_000_000, &DecodeLimits::default()).unwrap();
    assert_eq!(to_python_json(&Value::Object(data.clone())), NON_FINITE_JSON);
    assert!(sessionkit::codec::number_as_f64(data["n"].as_number().unwrap()).unwrap().is_nan());
    assert_eq!(sessionkit::codec::number_as_f64(data["m"].as_number().unwrap()), Some(f64::NEG_INFINITY));
    assert_eq!(signer.sign_object(&data, true, 1_700_000_000), NON_FINITE_TOKEN);

    let data =
        signer.unsign_object(NON_FINITE_COMPRESSED_TOKEN, None, 1_700_000_000, &DecodeLimits::default()).unwrap();
    assert_eq!(data["k"].as_array().unwrap().len(), 50);
    assert_eq!(data["big"].to_string(), "12345678901234567890123");
    assert_eq!(signer.sign_object(&data, true, 1_700_000_000), NON_FINITE_COMPRESSED_TOKEN);
}

/// Session data as Django < 3.1 stored it (made with Django 5.2.19's `salted_hmac(..., algorithm="sha1")`,
/// salt "django.contrib.sessionsSessionStore", and `base64.b64encode(hash + b":" + json)`), read through the
/// store codec only when the legacy format is enabled.
#[test]
fn legacy_format_through_the_store_codec() {
    use sessionkit::store::SignedSessionCodec;
    use sessionkit::Settings;
    // {"name": "Zoë € 😀"} with SECRET_KEY "test-secret-key".
    const LEGACY_NON_ASCII: &str =
        "NjQxMTE3NmRiZWE3N2U3MmE2OTJiNGMxNTdjNTM3NTM2OGVjNjgwOTp7Im5hbWUiOiJab1x1MDBlYiBcdTIwYWMgXHVkODNkXHVkZTAwIn0=";
    // {"_auth_user_id": "1", "x": [1.5, None, True]} with the fallback "old-secret".
    const LEGACY_FALLBACK: &str =
        "OTBiY2EwY2ZmZDY1OGUzMjU0MGUyNDRjOTYxY2RiOWZkZmIzMjViYjp7Il9hdXRoX3VzZXJfaWQiOiIxIiwieCI6WzEuNSxudWxsLHRydWVdfQ==";
    // {"user": "alice", "admin": false} signed, then the JSON edited to "admin":true without re-signing.
    const LEGACY_TAMPERED: &str =
        "OTBlZWVmMzZiNWNlM2QyMzJjMzY1NDRmYWM2YjJmYjQ4NTM1YTEwOTp7InVzZXIiOiJhbGljZSIsImFkbWluIjp0cnVlIH0=";

    let settings = |accept: bool| Settings {
        secret_key_fallbacks: vec![SecretKey::from("old-secret")],
        accept_legacy_format: accept,
        ..Settings::with_secret_key("test-secret-key")
    };
    let off = SignedSessionCodec::new(&settings(false)).unwrap();
    let on = SignedSessionCodec::new(&settings(true)).unwrap();
    for token in [LEGACY_NON_ASCII, LEGACY_FALLBACK, LEGACY_TAMPERED] {
        assert!(off.decode(token).is_err(), "Django 4.0+ behaviour: {token}");
    }
    assert_eq!(on.decode(LEGACY_NON_ASCII).unwrap()["name"], "Zo\u{eb} \u{20ac} \u{1f600}");
    assert_eq!(on.decode(LEGACY_FALLBACK).unwrap()["x"], serde_json::json!([1.5, null, true]));
    assert!(matches!(on.decode(LEGACY_TAMPERED), Err(CodecError::BadSignature)));
}
