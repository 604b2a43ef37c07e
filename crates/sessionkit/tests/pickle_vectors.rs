//! The pickle codec against pickles made by real CPython 3:
//! - `shared/django-session-vectors.json`: `pickle.dumps(session, 5)` and `(session, 4)` for every vector;
//! - `tests/data/pickle_cases.json.zlib`: a fixed sample of the randomized comparison (big and negative ints,
//!   strings over 255 bytes and over 64 KiB, 0/1/2/999/1000/1001/2000-item lists and dicts, shared keys, ...);
//! - `tests/data/cache_values.json` (`pickles`): values a session codec must refuse, and pickles of every
//!   protocol that it must read.
//!
//! The fixtures are made by `tests/data/gen_cache_fixtures.py`. Two ignored tests compare against a local
//! Python on demand:
//! - `random_python_pickles`: `python3 tests/data/gen_cache_fixtures.py --random 600 /tmp/cases.jsonl`, then
//!   `SESSIONKIT_PICKLE_RANDOM_CASES=/tmp/cases.jsonl cargo test -p sessionkit --test pickle_vectors -- --ignored`;
//! - `write_cache_values_for_python`: writes our encodings to `SESSIONKIT_CACHE_VALUES_OUT`, which
//!   `gen_cache_fixtures.py --check-rust DIR` decodes with CPython.

// Test code: a broken fixture should fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;

use serde_json::{Map, Value};
#[cfg(feature = "django-cache")]
use sessionkit::codec::django_cache::{CacheCompressor, CacheSerializer, CacheValueCodec};
use sessionkit::codec::pickle::{from_pickle, to_pickle, PickleLimits};
use sessionkit::codec::CodecError;

const VECTORS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/django-session-vectors.json");
const CASES: &[u8] = include_bytes!("data/pickle_cases.json.zlib");
const CACHE_VALUES: &str = include_str!("data/cache_values.json");

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2));
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

fn parse_map(json: &str) -> Map<String, Value> {
    serde_json::from_str(json).unwrap()
}

fn limits() -> PickleLimits {
    PickleLimits::default()
}

/// Checks both directions for one session and its CPython pickles; returns a description of a mismatch.
fn check_case(name: &str, session: &Map<String, Value>, p4: &[u8], p5: &[u8]) -> Result<(), String> {
    for (protocol, python) in [(4u8, p4), (5u8, p5)] {
        let ours = to_pickle(session, protocol).map_err(|e| format!("{name}: to_pickle({protocol}) failed: {e}"))?;
        if ours != python {
            let at = ours.iter().zip(python).position(|(a, b)| a != b).unwrap_or(ours.len().min(python.len()));
            return Err(format!(
                "{name}: protocol {protocol} differs at byte {at} (ours {} bytes, Python {} bytes)",
                ours.len(),
                python.len()
            ));
        }
        let read =
            from_pickle(python, &limits()).map_err(|e| format!("{name}: from_pickle({protocol}) failed: {e}"))?;
        if &read != session {
            return Err(format!("{name}: from_pickle({protocol}) gives a different session"));
        }
    }
    Ok(())
}

#[test]
fn shared_django_vectors() {
    let raw = std::fs::read_to_string(VECTORS_PATH).unwrap_or_else(|e| panic!("cannot read {VECTORS_PATH}: {e}"));
    let root: Value = serde_json::from_str(&raw).unwrap();
    let vectors = root["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 7);
    for vector in vectors {
        let name = vector["name"].as_str().unwrap();
        let session = vector["session"].as_object().unwrap();
        let p5 = hex(vector["pickle_protocol_5_hex"].as_str().unwrap());
        let p4 = hex(vector["pickle_protocol_4_hex"].as_str().unwrap());
        check_case(name, session, &p4, &p5).unwrap();
        // The same session read from its JSON (as Django builds it) pickles the same way.
        check_case(name, &parse_map(vector["json"].as_str().unwrap()), &p4, &p5).unwrap();
    }
}

#[test]
fn cpython_fixed_sample() {
    let mut text = String::new();
    flate2::read::ZlibDecoder::new(CASES).read_to_string(&mut text).unwrap();
    let root: Value = serde_json::from_str(&text).unwrap();
    let cases = root["cases"].as_array().unwrap();
    assert!(cases.len() >= 20, "{}", cases.len());
    let mut names = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let session = parse_map(case["json"].as_str().unwrap());
        check_case(name, &session, &hex(case["p4"].as_str().unwrap()), &hex(case["p5"].as_str().unwrap())).unwrap();
        names.push(name.to_owned());
    }
    for required in ["big_string_value", "list_sizes", "dict_1000", "dict_1001", "ints", "floats", "shared_keys"] {
        assert!(names.iter().any(|n| n == required), "missing case {required}");
    }
}

#[test]
fn cpython_pickles_to_read_or_refuse() {
    let root: Value = serde_json::from_str(CACHE_VALUES).unwrap();
    let pickles = root["pickles"].as_array().unwrap();
    let mut refused = 0;
    let mut read = 0;
    for pickle in pickles {
        let name = pickle["name"].as_str().unwrap();
        let bytes = hex(pickle["hex"].as_str().unwrap());
        let result = from_pickle(&bytes, &limits());
        if let Some(expected) = pickle.get("ok") {
            let expected = parse_map(expected.as_str().unwrap());
            assert_eq!(result.unwrap_or_else(|e| panic!("{name}: {e}")), expected, "{name}");
            read += 1;
            continue;
        }
        let expected = pickle["error"].as_str().unwrap();
        match (expected, result) {
            ("not_an_object", Err(CodecError::NotAnObject)) => {}
            ("recursive", Err(CodecError::UnsupportedPickle { python_type })) => {
                assert!(python_type.starts_with("recursive"), "{name}: {python_type}");
            }
            (key, Err(CodecError::UnsupportedPickle { python_type })) if key.starts_with("key:") => {
                assert_eq!(python_type, format!("dict key of type {}", &key[4..]), "{name}");
            }
            (_, Err(CodecError::UnsupportedPickle { python_type })) => assert_eq!(python_type, expected, "{name}"),
            (_, other) => panic!("{name}: expected {expected}, got {other:?}"),
        }
        refused += 1;
    }
    assert!(refused >= 40, "{refused}");
    assert!(read >= 7, "{read}");
}

/// Compares with pickles made by a local CPython (see the file's documentation). Prints the counts.
#[test]
#[ignore = "needs SESSIONKIT_PICKLE_RANDOM_CASES, made by gen_cache_fixtures.py --random"]
fn random_python_pickles() {
    let Ok(path) = std::env::var("SESSIONKIT_PICKLE_RANDOM_CASES") else {
        println!("SESSIONKIT_PICKLE_RANDOM_CASES is not set: nothing to compare");
        return;
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let (mut total, mut failures) = (0, Vec::new());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap();
        let name = case["name"].as_str().unwrap();
        let session = parse_map(case["json"].as_str().unwrap());
        total += 1;
        if let Err(e) =
            check_case(name, &session, &hex(case["p4"].as_str().unwrap()), &hex(case["p5"].as_str().unwrap()))
        {
            failures.push(e);
        }
    }
    println!("random pickle cases: {total}, byte-identical both ways: {}", total - failures.len());
    assert!(total > 0);
    assert!(failures.is_empty(), "{} of {total} cases differ:\n{}", failures.len(), failures.join("\n"));
}

/// Writes our encoding of a few sessions with every serializer x compressor, for CPython to decode
/// (`gen_cache_fixtures.py --check-rust DIR`).
#[cfg(feature = "django-cache")]
#[test]
#[ignore = "needs SESSIONKIT_CACHE_VALUES_OUT, checked by gen_cache_fixtures.py --check-rust"]
fn write_cache_values_for_python() {
    let Ok(dir) = std::env::var("SESSIONKIT_CACHE_VALUES_OUT") else {
        println!("SESSIONKIT_CACHE_VALUES_OUT is not set: nothing written");
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let root: Value = serde_json::from_str(CACHE_VALUES).unwrap();
    let mut sessions: Vec<(String, Map<String, Value>)> = root["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_owned(), parse_map(s["json"].as_str().unwrap())))
        .collect();
    // Larger than one lz4 block and one pickle frame.
    let mut large = Map::new();
    for i in 0..3000 {
        large.insert(format!("key{i}"), Value::String(format!("value {i} ").repeat(10)));
    }
    sessions.push(("large".to_owned(), large));
    let serializers = [
        ("pickle4", CacheSerializer::Pickle { protocol: 4 }),
        ("pickle5", CacheSerializer::Pickle { protocol: 5 }),
        ("json", CacheSerializer::Json),
        ("msgpack", CacheSerializer::Msgpack),
    ];
    let compressors = [
        ("none", CacheCompressor::None),
        ("zlib", CacheCompressor::Zlib),
        ("gzip", CacheCompressor::Gzip),
        ("lz4", CacheCompressor::Lz4),
        ("zstd", CacheCompressor::Zstd),
        ("lzma", CacheCompressor::Lzma),
    ];
    let mut written = 0;
    for (name, session) in &sessions {
        std::fs::write(dir.join(format!("{name}.json")), Value::Object(session.clone()).to_string()).unwrap();
        for (sname, serializer) in serializers {
            for (cname, compressor) in compressors {
                let codec = CacheValueCodec::django_redis(serializer, compressor);
                if let Ok(bytes) = codec.encode(session) {
                    std::fs::write(dir.join(format!("{name}.{sname}.{cname}.bin")), bytes).unwrap();
                    written += 1;
                }
            }
        }
    }
    println!("wrote {written} values to {}", dir.display());
}
