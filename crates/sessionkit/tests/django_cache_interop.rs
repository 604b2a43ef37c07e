//! Real Django (its `cache` session engine, with Django's RedisCache and with django-redis) and sessionkit's
//! `django-cache` layout share sessions through one Redis, in both directions.
//!
//! Needs the repo's Python venv with Django (scripts/test creates it: `.venv`, from requirements-test.txt).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use serde_json::{Map, Value};
use sessionkit::store::redis::RedisStore;
use sessionkit::{Session, SessionKey, SessionStore, Settings};
use sessionkit_testsupport::shared_standalone as redis;
use time::{Duration, OffsetDateTime};

fn django(python: &PathBuf, args: &[&str]) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/django/cache_interop.py");
    let output = Command::new(python).arg(script).args(args).output().expect("run python");
    assert!(output.status.success(), "django failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("django printed JSON")
}

/// A Django login session with every JSON type, written in Python's JSON form so numbers compare exactly.
fn sample() -> Map<String, Value> {
    let text = r#"{"_auth_user_id":"42","_auth_user_backend":"django.contrib.auth.backends.ModelBackend",
        "_auth_user_hash":"911256f3eb0dfe8f43c584b52043043c0c75c0e03284145814bd096558e451db",
        "cart":{"tea":2,"cake":1},"name":"b\u00e4r \ud83d\ude00","big":123456789012345678901234567890,
        "f":1e+16,"g":0.1,"one":1.0,"neg":-7,"t":true,"n":null,"list":[1,[2,{"x":"y"}]]}"#;
    serde_json::from_str(text).unwrap()
}

struct Row {
    client: &'static str,
    compressor: &'static str,
}

const ROWS: [Row; 7] = [
    Row { client: "redis-cache", compressor: "" },
    Row { client: "django-redis", compressor: "" },
    Row { client: "django-redis", compressor: "zlib" },
    Row { client: "django-redis", compressor: "gzip" },
    Row { client: "django-redis", compressor: "lzma" },
    Row { client: "django-redis", compressor: "lz4" },
    Row { client: "django-redis", compressor: "zstd" },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_and_sessionkit_share_cache_sessions_both_ways() {
    let Some(python) = sessionkit_testsupport::django_python() else { return };
    let location = redis().url();
    for (i, row) in ROWS.iter().enumerate() {
        let key_prefix = format!("interop{i}");
        let mut url = format!("{location}?layout=django-cache&client={}&key_prefix={key_prefix}", row.client);
        if !row.compressor.is_empty() {
            url.push_str(&format!("&compressor={}", row.compressor));
        }
        let store = Arc::new(RedisStore::connect(&url).await.unwrap());
        let common = [
            "--location",
            &location,
            "--client",
            row.client,
            "--compressor",
            row.compressor,
            "--key-prefix",
            &key_prefix,
        ];
        let what = format!("{} {}", row.client, row.compressor);

        // Django writes, sessionkit reads the same data and expiry.
        let data = serde_json::to_string(&Value::Object(sample())).unwrap();
        let written = django(&python, &[&["write", "--data", &data][..], &common[..]].concat());
        let key = SessionKey::parse(written["key"].as_str().unwrap()).unwrap();
        let record = store.load(&key).await.unwrap().unwrap_or_else(|| panic!("{what}: sessionkit found nothing"));
        assert_eq!(record.data, sample(), "{what}");
        assert_eq!(record.data.keys().collect::<Vec<_>>(), sample().keys().collect::<Vec<_>>(), "{what}: order");
        let age = written["expiry_age"].as_i64().unwrap();
        let expected = OffsetDateTime::now_utc() + Duration::seconds(age);
        assert!((record.expires_at - expected).abs() < Duration::seconds(5), "{what}: expiry {}", record.expires_at);

        // sessionkit writes, Django's own SessionStore reads it identically.
        let mut session = Session::new(store.clone(), Arc::new(Settings::with_secret_key("x")), None);
        session.update(sample()).await.unwrap();
        session.save().await.unwrap();
        let key = session.key().unwrap().to_string();
        let raw = store.load_raw(session.key().unwrap()).await.unwrap().unwrap().bytes;
        let magic: &[u8] = match (row.client, row.compressor) {
            ("redis-cache", _) => b"\x80\x05",
            (_, "") => b"\x80\x04",
            (_, "zlib") => b"\x78",
            (_, "gzip") => b"\x1f\x8b",
            (_, "lzma") => b"\xfd7zXZ\x00",
            (_, "lz4") => b"\x04\x22\x4d\x18",
            (_, "zstd") => b"\x28\xb5\x2f\xfd",
            _ => unreachable!(),
        };
        assert!(raw.starts_with(magic), "{what}: stored bytes start {:02x?}", &raw[..raw.len().min(6)]);
        let read = django(&python, &[&["read", "--key", &key][..], &common[..]].concat());
        assert_eq!(read["key"].as_str(), Some(key.as_str()), "{what}: Django did not find the session");
        assert_eq!(read["data"], Value::Object(sample()), "{what}");
        let age = read["expiry_age"].as_i64().unwrap();
        assert_eq!(age, 1_209_600, "{what}: Django computes the default expiry age");
    }
}
