//! Hostile input for every decoder: each case must end in the specific typed error (never a panic), and
//! nothing a client controls may make a decoder allocate or work beyond the documented limits.
//!
//! Pickle and legacy vectors were made with CPython 3.11 / Django 5.2.19 in the project's venv; how is said
//! next to each constant.

// Test code: a broken fixture should fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use serde_json::{Map, Value};
use sessionkit::codec::legacy::decode_legacy;
use sessionkit::codec::pickle::{from_pickle, PickleLimits};
use sessionkit::codec::{CodecError, DecodeLimits, Signer, SESSION_SALT};
use sessionkit::SecretKey;

const SECRET: &str = "test-secret-key";
const TS: i64 = 1_700_000_000;
const MIB: usize = 1024 * 1024;

/// Django 5.2: `signing.dumps({"foo": "bar"}, key="test-secret-key", salt="django.contrib.sessions.SessionStore",
/// compress=True)` at 1700000000.
const DJANGO_TOKEN: &str = "eyJmb28iOiJiYXIifQ:1r31eq:RnWPXJomOr-V2BX7g-VMy1xvGxvSHHm4P3Mh938lEqQ";

fn signer() -> Signer {
    Signer::new(SESSION_SALT, SecretKey::from(SECRET), vec![])
}

fn unsign(token: &str) -> Result<Map<String, Value>, CodecError> {
    signer().unsign_object(token, None, TS, &DecodeLimits::default())
}

/// `value` (any text, normally `payload:timestamp`) with a valid signature appended.
fn signed(value: &str) -> String {
    signer().sign_value(value)
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// Peak resident memory of this process (`VmHWM`), where Linux reports it.
fn peak_rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// zlib stream of `total` zero bytes, fed in 1 MiB pieces so the input is never held in memory.
fn zlib_zeros(total: usize) -> Vec<u8> {
    let zeros = vec![0u8; MIB];
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::new(9));
    let mut left = total;
    while left > 0 {
        let n = left.min(MIB);
        encoder.write_all(&zeros[..n]).unwrap();
        left -= n;
    }
    encoder.finish().unwrap()
}

// ---------------------------------------------------------------------------------------------- signed tokens

#[test]
fn tampered_signature() {
    assert_eq!(unsign(DJANGO_TOKEN).unwrap()["foo"], "bar");
    // Every single-character change of the signature.
    let (value, sig) = DJANGO_TOKEN.rsplit_once(':').unwrap();
    for i in 0..sig.len() {
        let mut bytes = sig.as_bytes().to_vec();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let token = format!("{value}:{}", String::from_utf8(bytes).unwrap());
        assert!(matches!(unsign(&token), Err(CodecError::BadSignature)), "{token}");
    }
    // A changed payload or timestamp under the original signature.
    let payload = DJANGO_TOKEN.replacen("eyJmb28", "eyJmb29", 1);
    assert!(matches!(unsign(&payload), Err(CodecError::BadSignature)));
    let timestamp = DJANGO_TOKEN.replacen(":1r31eq:", ":1r31er:", 1);
    assert!(matches!(unsign(&timestamp), Err(CodecError::BadSignature)));
    // Signatures of the wrong length or alphabet, and a non-ASCII one.
    for sig in ["", "A", &"A".repeat(42), &"A".repeat(44), &"+".repeat(43), "é".repeat(22).as_str()] {
        let token = format!("{value}:{sig}");
        assert!(matches!(unsign(&token), Err(CodecError::BadSignature)), "{sig}");
    }
}

#[test]
fn wrong_secret() {
    for other in [
        Signer::new(SESSION_SALT, SecretKey::from("another-secret"), vec![]),
        Signer::new(SESSION_SALT, SecretKey::from(""), vec![SecretKey::from("test-secret-ke")]),
        Signer::new("django.contrib.sessions.backends.signed_cookies", SecretKey::from(SECRET), vec![]),
    ] {
        let result = other.unsign_object(DJANGO_TOKEN, None, TS, &DecodeLimits::default());
        assert!(matches!(result, Err(CodecError::BadSignature)), "{other:?}");
    }
}

#[test]
fn truncated_token() {
    for end in 0..DJANGO_TOKEN.len() {
        let result = unsign(&DJANGO_TOKEN[..end]);
        // Up to the first ':' there is no separator at all.
        let ok = if end <= DJANGO_TOKEN.find(':').unwrap() {
            matches!(result, Err(CodecError::Malformed(_)))
        } else {
            matches!(result, Err(CodecError::BadSignature))
        };
        assert!(ok, "prefix of {end} bytes: {result:?}");
    }
    // Cut from the front.
    for start in 1..DJANGO_TOKEN.len() {
        assert!(unsign(&DJANGO_TOKEN[start..]).is_err(), "suffix from {start}");
    }
}

#[test]
fn bad_base62_timestamp() {
    for ts in ["", "-", "1r31e!", "1r31 eq", "1r31eq\n", "é", "zzzzzzzzzzzzzzzzzzzzzzzzz", "-zzzzzzzzzzzz"] {
        let token = signed(&format!("e30:{ts}"));
        let result = unsign(&token);
        assert!(matches!(result, Err(CodecError::Malformed(_))), "{ts:?}: {result:?}");
    }
    // No timestamp field at all (one ':' only), validly signed.
    assert!(matches!(unsign(&signed("e30")), Err(CodecError::Malformed(_))));
}

#[test]
fn base64_garbage() {
    for payload in ["e3!0", "e", "@@@@", "e30=e30", "=", "e30==x", ".!", ".e", "....", "\u{e9}\u{e9}"] {
        let token = signed(&format!("{payload}:1r31eq"));
        let result = unsign(&token);
        assert!(matches!(result, Err(CodecError::Base64)), "{payload:?}: {result:?}");
    }
    // Valid base64 that is not zlib (or nothing at all) behind the compression marker.
    let token = signed(&format!(".{}:1r31eq", URL_SAFE_NO_PAD.encode(b"definitely not zlib")));
    assert!(matches!(unsign(&token), Err(CodecError::Inflate(_))));
    assert!(matches!(unsign(&signed(".:1r31eq")), Err(CodecError::Inflate(_))));
}

/// A validly signed compressed token that inflates to 1 GiB must stop at the 16 MiB default of
/// `DecodeLimits::max_inflated_bytes`, quickly and without allocating anything near 1 GiB.
#[test]
fn zip_bomb_token() {
    const GIB: usize = 1024 * MIB;
    let bomb = zlib_zeros(GIB);
    let token = signed(&format!(".{}:1r31eq", URL_SAFE_NO_PAD.encode(&bomb)));
    // zlib cannot do better than ~1:1030, so a 1 GiB bomb needs a token above the 1 MiB default token limit;
    // raise only that one, so the inflate limit is the default one.
    assert!(token.len() > DecodeLimits::default().max_token_bytes);
    let limits = DecodeLimits { max_token_bytes: 4 * MIB, ..DecodeLimits::default() };
    assert_eq!(limits.max_inflated_bytes, 16 * MIB);

    let start = Instant::now();
    let result = signer().unsign_object(&token, None, TS, &limits);
    let elapsed = start.elapsed();
    assert!(matches!(result, Err(CodecError::TooLarge { limit }) if limit == 16 * MIB), "{result:?}");
    // Inflating 16 MiB takes milliseconds; inflating 1 GiB would take seconds.
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    if let Some(peak) = peak_rss_bytes() {
        assert!(peak < 256 * MIB, "peak memory {} MiB", peak / MIB);
    }
    // With the default limits the token is refused by size before any work.
    assert!(matches!(unsign(&token), Err(CodecError::TooLarge { limit }) if limit == MIB));
}

#[test]
fn non_object_json() {
    for json in ["[1,2,3]", "\"session\"", "42", "null", "true", "1e400", "[NaN]", "Infinity"] {
        for compress in [false, true] {
            let token = signer().sign_json_bytes(json.as_bytes(), compress, TS);
            let result = unsign(&token);
            assert!(matches!(result, Err(CodecError::NotAnObject)), "{json}: {result:?}");
        }
    }
    for json in ["", "{", "{\"a\":}", "not json", "{\"a\":NaN,}", "{\"a\":nan}"] {
        let token = signer().sign_json_bytes(json.as_bytes(), false, TS);
        assert!(matches!(unsign(&token), Err(CodecError::Json(_))), "{json}");
    }
}

fn nested_arrays(depth: usize, inner: &str) -> String {
    format!("{{\"a\":{}{inner}{}}}", "[".repeat(depth), "]".repeat(depth))
}

fn nested_objects(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

#[test]
fn json_nested_10000_deep_arrays() {
    // Plain (serde_json reads it) and with a NaN inside (the fallback parser reads it).
    for inner in ["", "NaN"] {
        let json = nested_arrays(10_000, inner);
        for compress in [false, true] {
            let token = signer().sign_json_bytes(json.as_bytes(), compress, TS);
            assert!(matches!(unsign(&token), Err(CodecError::Json(_))), "{inner} {compress}");
        }
    }
    // 126 arrays inside the session object (127 levels) are fine.
    let ok = signer().sign_json_bytes(nested_arrays(126, "NaN").as_bytes(), true, TS);
    assert!(unsign(&ok).is_ok());
}

#[test]
fn json_nested_10000_deep_objects() {
    for inner in ["1", "NaN"] {
        let json = nested_objects(10_000, inner);
        for compress in [false, true] {
            let token = signer().sign_json_bytes(json.as_bytes(), compress, TS);
            assert!(matches!(unsign(&token), Err(CodecError::Json(_))), "{inner} {compress}");
        }
    }
    let ok = signer().sign_json_bytes(nested_objects(127, "-Infinity").as_bytes(), false, TS);
    assert!(unsign(&ok).is_ok());
}

// ---------------------------------------------------------------------------------------------------- pickle

/// CPython 3.11 `pickle.dumps(real, 5)` and `pickle.dumps(real, 0)` of
/// `real = {"_auth_user_id": "42", "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
/// "cart": [1, 2.5, None, True, "x" * 300], "n": 12345678901234567890, "nested": {"a": {"b": []}}}`;
/// the 300 `x` are written here as `{X300}`.
const REAL_P5: &str =
    "800595cd010000000000007d94288c0d5f617574685f757365725f6964948c023432948c125f617574685f757365725f\
    6261636b656e64948c29646a616e676f2e636f6e747269622e617574682e6261636b656e64732e4d6f64656c4261636b656e64948c046361\
    7274945d94284b014740040000000000004e88582c010000{X300}94658c016e948a09d20a1feb8ca954ab008c066e6573746564947d948c\
    0161947d948c0162945d947373752e";
const REAL_P0: &str = "286470300a565f617574685f757365725f69640a70310a5634320a70320a73565f617574685f757365725f6261636b\
    656e640a70330a56646a616e676f2e636f6e747269622e617574682e6261636b656e64732e4d6f64656c4261636b656e640a70340a7356\
    636172740a70350a286c70360a49310a6146322e350a614e614930310a6156{X300}0a70370a6173566e0a70380a4c3132333435363738\
    39303132333435363738393\
    04c0a73566e65737465640a70390a28647031300a56610a7031310a28647031320a56620a7031330a286c7031340a7373732e";

fn real_pickle(template: &str) -> Vec<u8> {
    hex(&template.replace("{X300}", &"78".repeat(300)))
}

fn load(bytes: &[u8]) -> Result<Map<String, Value>, CodecError> {
    from_pickle(bytes, &PickleLimits::default())
}

#[test]
fn real_pickles_decode() {
    for template in [REAL_P5, REAL_P0] {
        let map = load(&real_pickle(template)).unwrap();
        assert_eq!(map["_auth_user_id"], "42");
        assert_eq!(map["cart"][4].as_str().map(str::len), Some(300));
        assert_eq!(map["n"].to_string(), "12345678901234567890");
        assert_eq!(map["nested"]["a"]["b"], Value::Array(vec![]));
    }
}

#[test]
fn truncated_pickle() {
    for template in [REAL_P5, REAL_P0] {
        let full = real_pickle(template);
        for end in 0..full.len() {
            let result = load(&full[..end]);
            assert!(matches!(result, Err(CodecError::InvalidPickle(_))), "prefix of {end} bytes: {result:?}");
        }
    }
}

#[test]
fn pickle_memo_references_out_of_range() {
    const PROTO4: [u8; 2] = [0x80, 4];
    let cases: Vec<Vec<u8>> = vec![
        // BINGET 1 with one memo entry.
        [&PROTO4[..], &[b'}', 0x94, b'h', 1, b'.']].concat(),
        // BINGET 0 with an empty memo.
        [&PROTO4[..], &[b'}', b'h', 0, b'.']].concat(),
        // LONG_BINGET 2^31 and 2^32 - 1.
        [&PROTO4[..], &[b'}', 0x94, b'j', 0, 0, 0, 0x80, b'.']].concat(),
        [&PROTO4[..], &[b'}', 0x94, b'j', 0xff, 0xff, 0xff, 0xff, b'.']].concat(),
        // GET with a decimal index (protocol 0), in and far out of u64.
        b"(dp0\ng1\n.".to_vec(),
        b"(dp0\ng99999999999999999999999999\n.".to_vec(),
        b"(dp0\ng-1\n.".to_vec(),
        b"(dp0\ng\n.".to_vec(),
    ];
    for case in cases {
        let result = load(&case);
        assert!(
            matches!(&result, Err(CodecError::InvalidPickle(m)) if m.contains("memo") || m.contains("GET")),
            "{case:?}: {result:?}"
        );
    }
}

/// Length prefixes of 2^31 and 2^63 followed by a few bytes: refused at once, nothing allocated from them.
#[test]
fn pickle_huge_length_prefixes() {
    let two31 = 0x8000_0000u32.to_le_bytes();
    let two63 = 0x8000_0000_0000_0000u64.to_le_bytes();
    let max64 = u64::MAX.to_le_bytes();
    let tail = b"abc";
    let with = |opcode: u8, len: &[u8]| [&[0x80, 5, opcode][..], len, tail].concat();
    let truncated = [
        ("BINUNICODE 2^31", with(b'X', &two31)),
        ("BINUNICODE 2^32-1", with(b'X', &u32::MAX.to_le_bytes())),
        ("BINUNICODE8 2^63", with(0x8d, &two63)),
        ("BINUNICODE8 2^64-1", with(0x8d, &max64)),
        ("SHORT_BINUNICODE 255", with(0x8c, &[255])),
        ("FRAME 2^31", with(0x95, &[&two31[..], &[0; 4]].concat())),
        ("FRAME 2^63", with(0x95, &two63)),
        ("LONG4 2^31-1", with(0x8b, &i32::MAX.to_le_bytes())),
    ];
    let start = Instant::now();
    for (name, bytes) in &truncated {
        let result = load(bytes);
        assert!(matches!(&result, Err(CodecError::InvalidPickle(m)) if m.contains("truncated")), "{name}: {result:?}");
    }
    // Bytes are never a session value: refused before their length is even used.
    let bytes_cases = [
        ("BINBYTES 2^31", with(b'B', &two31)),
        ("SHORT_BINBYTES 255", with(b'C', &[255])),
        ("BINBYTES8 2^63", with(0x8e, &two63)),
        ("BYTEARRAY8 2^63", with(0x96, &two63)),
    ];
    for (name, bytes) in &bytes_cases {
        let result = load(bytes);
        assert!(
            matches!(&result, Err(CodecError::UnsupportedPickle { python_type }) if python_type.starts_with("byte")),
            "{name}: {result:?}"
        );
    }
    // A negative LONG4 length.
    assert!(matches!(load(&with(0x8b, &(-1i32).to_le_bytes())), Err(CodecError::InvalidPickle(_))));
    assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
    if let Some(peak) = peak_rss_bytes() {
        assert!(peak < 1024 * MIB, "peak memory {} MiB", peak / MIB);
    }
}

/// CPython 3.11 `pickle.dumps({"when": datetime.datetime(2020, 1, 1)}, protocol)` for protocols 5, 2 and 0.
const DATETIME_PICKLES: [&str; 3] = [
    "80059534000000000000007d948c047768656e948c086461746574696d65948c086461746574696d65949394430a07e40101000000000000\
     9485945294732e",
    "80027d710058040000007768656e7101636461746574696d650a6461746574696d650a7102635f636f646563730a656e636f64650a710358\
     0b00000007c3a40101000000000000710458060000006c6174696e317105867106527107857108527109732e",
    "286470300a567768656e0a70310a636461746574696d650a6461746574696d650a70320a28635f636f646563730a656e636f64650a70330a\
     285607e401015c75303030305c75303030305c75303030305c75303030305c75303030305c75303030300a70340a566c6174696e310a7035\
     0a7470360a5270370a7470380a5270390a732e",
];

/// CPython 3.11 `pickle.dumps({"x": Evil()}, protocol)` for protocols 5, 2 and 0, where
/// `Evil.__reduce__` returns `(os.system, ("echo pwned",))`: STACK_GLOBAL/GLOBAL `posix system` + REDUCE.
const OS_SYSTEM_PICKLES: [&str; 3] = [
    "8005952c000000000000007d948c0178948c05706f736978948c0673797374656d9493948c0a6563686f2070776e6564948594529473\
     2e",
    "80027d7100580100000078710163706f7369780a73797374656d0a7102580a0000006563686f2070776e65647103857104527105732e",
    "286470300a56780a70310a63706f7369780a73797374656d0a70320a28566563686f2070776e65640a70330a7470340a5270350a732e",
];

fn unsupported_type(result: Result<Map<String, Value>, CodecError>) -> String {
    match result {
        Err(CodecError::UnsupportedPickle { python_type }) => python_type,
        other => panic!("expected UnsupportedPickle, got {other:?}"),
    }
}

#[test]
fn pickle_global_datetime() {
    for pickle in DATETIME_PICKLES {
        assert_eq!(unsupported_type(load(&hex(pickle))), "datetime.datetime");
    }
    // A bare datetime (not in a dict), protocol 5.
    let bare =
        "8005952a000000000000008c086461746574696d65948c086461746574696d65949394430a07e4010100000000000094859452942e";
    assert_eq!(unsupported_type(load(&hex(bare))), "datetime.datetime");
}

#[test]
fn pickle_os_system_reduce_is_never_called() {
    for pickle in OS_SYSTEM_PICKLES {
        assert_eq!(unsupported_type(load(&hex(pickle))), "posix.system");
    }
    // REDUCE without a global before it (a list called with a tuple) is refused as an object.
    let reduce = [0x80, 4, b']', b')', b'R', b'.'];
    assert!(unsupported_type(load(&reduce)).contains("REDUCE"));
}

/// Found by the `pickle_reader` fuzz target: 690 bytes whose DUPs of shared tuples expand to ~4 MB of JSON,
/// mostly copies of floats like `2.0800493491434417e-135`. Python reads it (the result is valid); sessionkit
/// used to spend 2.6 s (release build) formatting those floats, because each one that ends in an odd digit
/// triggered an exact 1100-digit decimal expansion to rule out a rounding tie. Now ~60 ms in a release build.
const FUZZ_SLOW_FLOATS: &str =
    "80059571000000000000007d94288c0d5f617e000000757365725f6964948c023432948c0463617274945d94284b01472e0400000000\
    00004e80059571000000000000007d94288c0d5f617e0000040000000000004e80059571000000000000007d94288c0d5f617e000000\
    757365725f6964948c023432948c0463617274945d94284b01472e040000000000004e883232323232328c016e948a09d20a1feb8ca9\
    54ab008c0166944723f830948c0463617274323232328632323232323232323232323232323232323232323232328c016e948a09d20a\
    1feb8ca954ab2b8c0166944723f83000000000008c066e6500746564947d948c0161947d948c0162945d9473738c0778c3a9f09f9880\
    94658c016e948a09d20a3feb86a95400ab8c016694472388948c04636172743232323286323232323232323232323232323232323232\
    32323232328c016e948a09d20a1feb8ca954ab008c0166944700757365725f6964948c023432948c0463617274945d94284b01472e04\
    0000000000004e883232323232328c016e948a09d20a1feb8ca954ab008c0166944723f830948c046361727432323232863232323232\
    3232323232323232323232323232323232328c016e948a09d20a1feb8ca954ab2b8c0166944723f83000000000008c066e6500746564\
    947d948c0161947d948c0162945d9473738c0778c3a9f09f988094658c016e948a09d20a3feb86a95400ab8c016694472388948c0463\
    617274323232328632323232323232323232323232323232323232323232328c016e948a09d20a1feb8ca954ab008c0166944723f830\
    00000000008c066e6500746564947d948c0161947d948c0162945d9473738c0778c3a9f09f988094658c016e948a09d20a3feb86a954\
    ab008c0166944723f83000ffffff318c066e6500746564947d948c0161947d948c0162945d947373752e";

#[test]
fn pickle_of_shared_floats_decodes_quickly() {
    let start = Instant::now();
    let map = load(&hex(FUZZ_SLOW_FLOATS)).unwrap();
    let json = sessionkit::codec::object_to_python_json(&map);
    let elapsed = start.elapsed();
    assert_eq!(map.len(), 5);
    assert!(json.len() > 3_000_000, "{}", json.len());
    assert!(json.contains("2.0800493491434417e-135"));
    // Debug build, shared machine: generous, but far below the tens of seconds it took before.
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
}

// ----------------------------------------------------------------------------------------------- cache values

/// django-redis values (features `django-cache`).
#[cfg(feature = "django-cache")]
mod cache {
    use super::*;
    use sessionkit::codec::django_cache::{CacheCompressor, CacheSerializer, CacheValueCodec};

    #[test]
    fn redis_cache_pickle_with_os_system() {
        let codec = CacheValueCodec::django_redis_cache();
        assert!(matches!(
            codec.decode(&hex(OS_SYSTEM_PICKLES[0])),
            Err(CodecError::UnsupportedPickle { python_type }) if python_type == "posix.system"
        ));
    }

    /// A django-redis value (pickle serializer) that inflates to 1 GiB is cut off at 16 MiB.
    fn assert_cache_bomb(compressor: CacheCompressor, bomb: &[u8]) {
        let codec = CacheValueCodec::django_redis(CacheSerializer::DJANGO_REDIS_DEFAULT, compressor);
        assert!(bomb.len() <= codec.limits.max_value_bytes);
        assert_eq!(codec.limits.max_inflated_bytes, 16 * MIB);
        let start = Instant::now();
        let result = codec.decode(bomb);
        let elapsed = start.elapsed();
        assert!(
            matches!(result, Err(CodecError::TooLarge { limit }) if limit == 16 * MIB),
            "{compressor:?}: {result:?}"
        );
        assert!(elapsed < Duration::from_secs(3), "{compressor:?} took {elapsed:?}");
        if let Some(peak) = peak_rss_bytes() {
            assert!(peak < 256 * MIB, "{compressor:?}: peak memory {} MiB", peak / MIB);
        }
    }

    #[test]
    fn django_redis_zlib_bomb() {
        assert_cache_bomb(CacheCompressor::Zlib, &zlib_zeros(1024 * MIB));
    }

    #[test]
    fn django_redis_zstd_bomb() {
        let zeros = vec![0u8; MIB];
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        for _ in 0..1024 {
            encoder.write_all(&zeros).unwrap();
        }
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < MIB, "{} bytes", bomb.len());
        assert_cache_bomb(CacheCompressor::Zstd, &bomb);
    }
}

// --------------------------------------------------------------------------------------------- legacy format

/// 16 MiB of `LONG4` ints of 1780 bytes each (4287 digits, just under the 4300 Python converts): each costs a
/// quadratic conversion to decimal text, so the reader stops at its big-int budget instead of working for seconds.
#[test]
fn pickle_of_big_ints_stops_at_the_big_int_budget() {
    let mut long = vec![0x8b];
    long.extend_from_slice(&1780u32.to_le_bytes());
    long.extend(std::iter::repeat_n(0x7f, 1780));
    let mut pickle = vec![0x80, 4];
    while pickle.len() + long.len() < 16 * MIB - 1 {
        pickle.extend_from_slice(&long);
    }
    pickle.push(b'.');
    let err = from_pickle(&pickle, &PickleLimits::default()).unwrap_err();
    assert!(matches!(err, CodecError::WorkLimit { limit: 4096, .. }), "{err}");
    // Within the budget, big ints still read exactly (2^8000 - 1 has 2409 digits).
    let mut one = vec![0x80, 4, b'}', 0x8c, 1, b'n', 0x8b];
    one.extend_from_slice(&1001u32.to_le_bytes());
    one.extend(std::iter::repeat_n(0xff, 1000));
    one.extend_from_slice(&[0x00, b's', b'.']);
    let data = from_pickle(&one, &PickleLimits::default()).unwrap();
    assert_eq!(data["n"].to_string().len(), 2409);
}

/// 16 MiB of `MARK`: every mark counts against `max_items`, so the mark stack cannot grow to 128 MiB.
#[test]
fn pickle_of_marks_stops_at_max_items() {
    let mut pickle = vec![0x80, 4];
    pickle.resize(16 * MIB - 1, b'(');
    pickle.push(b'.');
    let err = from_pickle(&pickle, &PickleLimits::default()).unwrap_err();
    assert!(matches!(err, CodecError::WorkLimit { limit: 1_000_000, .. }), "{err}");
}

/// A pickle whose root is not a dict says so without talking about JSON.
#[test]
fn pickle_of_a_list_is_not_a_session() {
    // pickle.dumps([1], protocol=4)
    let err = from_pickle(&hex("80049506000000000000005d944b01612e"), &PickleLimits::default()).unwrap_err();
    assert!(matches!(err, CodecError::NotAnObject));
    let text = err.to_string();
    assert!(!text.contains("JSON:") && !text.contains("valid JSON"), "{text}");
    assert!(text.contains("not a dict"), "{text}");
}

#[test]
fn legacy_garbage() {
    let secret = SecretKey::from(SECRET);
    let limits = DecodeLimits::default();
    assert!(matches!(decode_legacy("%%%%", &secret, &[], &limits), Err(CodecError::Base64)));
    assert!(matches!(
        decode_legacy(&STANDARD.encode(b"no colon"), &secret, &[], &limits),
        Err(CodecError::Malformed(_))
    ));
    let forged = STANDARD.encode(format!("{}:{{\"admin\":true}}", "0".repeat(40)));
    assert!(matches!(decode_legacy(&forged, &secret, &[], &limits), Err(CodecError::BadSignature)));
    let huge = "A".repeat(limits.max_token_bytes + 4);
    assert!(matches!(decode_legacy(&huge, &secret, &[], &limits), Err(CodecError::TooLarge { .. })));
}
