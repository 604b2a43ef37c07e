//! Recognising and decoding whatever a store holds: signed tokens, legacy tokens, pickles (with django-redis
//! compressors), JSON, msgpack and sessionkit's native Redis values. Nothing pickled is ever executed.

use serde_json::{Map, Value};
use sessionkit::codec::django_cache::{CacheCompressor, CacheSerializer, CacheValueCodec};
use sessionkit::codec::signing::{Signer, SIGNED_COOKIES_SALT};
use sessionkit::codec::{CodecError, DecodeLimits};
use sessionkit::store::{SessionLister, SignedSessionCodec};
use sessionkit::Settings;

/// A decoded (or undecodable) stored value.
pub struct Decoded {
    /// What the bytes are, e.g. `signed token (zlib-compressed)`, `pickle protocol 4 + zlib`.
    pub format: String,
    /// The session dict, or why it could not be read.
    pub data: Result<Map<String, Value>, CodecError>,
}

const ZSTD_MAGIC: &[u8] = b"\x28\xb5\x2f\xfd";
const LZ4_MAGIC: &[u8] = b"\x04\x22\x4d\x18";
const XZ_MAGIC: &[u8] = b"\xfd7zXZ\x00";
const GZIP_MAGIC: &[u8] = b"\x1f\x8b";

/// The django-redis compressor whose output `raw` looks like (by magic bytes), if any.
fn compressor_of(raw: &[u8]) -> Option<(CacheCompressor, &'static str)> {
    if raw.starts_with(ZSTD_MAGIC) {
        Some((CacheCompressor::Zstd, "zstd"))
    } else if raw.starts_with(LZ4_MAGIC) {
        Some((CacheCompressor::Lz4, "lz4"))
    } else if raw.starts_with(XZ_MAGIC) {
        Some((CacheCompressor::Lzma, "lzma"))
    } else if raw.starts_with(GZIP_MAGIC) {
        Some((CacheCompressor::Gzip, "gzip"))
    } else if raw.len() >= 2 && raw[0] & 0x0f == 8 && (u16::from(raw[0]) * 256 + u16::from(raw[1])) % 31 == 0 {
        Some((CacheCompressor::Zlib, "zlib"))
    } else {
        None
    }
}

/// How a serialized (uncompressed) cache value is encoded.
fn serializer_of(data: &[u8]) -> Option<(CacheSerializer, String)> {
    match data {
        [0x80, protocol @ 2..=5, ..] => {
            Some((CacheSerializer::Pickle { protocol: *protocol }, format!("pickle protocol {protocol}")))
        }
        [b'{', ..] => Some((CacheSerializer::Json, "JSON (django-redis JSONSerializer)".to_owned())),
        [0x80..=0x8f | 0xde | 0xdf, ..] => Some((CacheSerializer::Msgpack, "msgpack".to_owned())),
        _ => None,
    }
}

fn looks_signed(text: &str) -> bool {
    let Some((rest, sig)) = text.rsplit_once(':') else { return false };
    let Some((payload, ts)) = rest.rsplit_once(':') else { return false };
    sig.len() == 43
        && !payload.is_empty()
        && !ts.is_empty()
        && ts.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// True for Django < 3.1's format: standard base64 of `<40 hex chars of SHA-1 HMAC>:<JSON>`.
fn looks_legacy(text: &str) -> bool {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=\n".contains(&b)) {
        return false;
    }
    let Some(head) = base64_prefix(text, 64) else { return false };
    head.len() > 41 && head[40] == b':' && head[..40].iter().all(u8::is_ascii_hexdigit)
}

/// Standard-base64 decodes the first `n` characters of `text` (rounded down to whole quanta).
fn base64_prefix(text: &str, n: usize) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let chars: Vec<u8> = text.bytes().filter(|b| *b != b'\n').take(n / 4 * 4).collect();
    let mut out = Vec::new();
    for quad in chars.chunks(4) {
        if quad.len() < 4 || quad.contains(&b'=') {
            break;
        }
        let mut acc = 0u32;
        for c in quad {
            acc = (acc << 6) | value(*c)?;
        }
        out.extend_from_slice(&acc.to_be_bytes()[1..]);
    }
    Some(out)
}

/// What the bytes look like, without decoding them (no secret needed).
pub fn describe_format(raw: &[u8]) -> String {
    if raw.is_empty() {
        return "empty".to_owned();
    }
    if raw[0] == 1 && raw.len() >= 6 && raw[1] & !0b11 == 0 {
        let compression = ["", " + zstd", " + lz4", " + zstd (sessionkit dictionary)"][usize::from(raw[1] & 0b11)];
        return format!("sessionkit value v1{compression}");
    }
    if let Some((serializer, name)) = serializer_of(raw) {
        return match serializer {
            CacheSerializer::Pickle { .. } => name,
            _ => name,
        };
    }
    if let Some((compressor, name)) = compressor_of(raw) {
        let inner = compressor
            .decompress(raw, 16 * 1024 * 1024)
            .ok()
            .flatten()
            .and_then(|inner| serializer_of(&inner).map(|(_, n)| n));
        return match inner {
            Some(inner) => format!("{inner} + {name} (django-redis COMPRESSOR)"),
            None => format!("{name}-compressed data"),
        };
    }
    let Ok(text) = std::str::from_utf8(raw) else { return format!("unknown binary ({} bytes)", raw.len()) };
    if looks_signed(text) {
        return if text.starts_with('.') {
            "signed token (zlib-compressed)".to_owned()
        } else {
            "signed token".to_owned()
        };
    }
    if looks_legacy(text) {
        return "legacy token (Django < 3.1)".to_owned();
    }
    if text.trim().bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return "Python int (not a session)".to_owned();
    }
    format!("unknown text ({} bytes)", raw.len())
}

/// Decodes a stored value: with the store's own decoder first, then by what the bytes look like.
pub fn decode(raw: &[u8], lister: Option<&dyn SessionLister>, settings: &Settings, is_cookie: bool) -> Decoded {
    let format = describe_format(raw);
    if is_cookie {
        let signer =
            Signer::new(SIGNED_COOKIES_SALT, settings.secret_key.clone(), settings.secret_key_fallbacks.clone());
        let data = std::str::from_utf8(raw)
            .map_err(|_| CodecError::Malformed("a cookie value is ASCII"))
            .and_then(|token| signer.unsign_object(token, None, now(), &DecodeLimits::default()));
        return Decoded { format: format!("{format} (signed_cookies)"), data };
    }
    let from_store = match lister.map(|l| l.decode(raw)) {
        Some(Ok(data)) => return Decoded { format, data: Ok(data) },
        Some(Err(err)) => Some(err),
        None => None,
    };
    let data = match (from_store, sniffed_decode(raw, settings)) {
        (_, Some(Ok(data))) => Ok(data),
        // The store's own reading is the most telling (a wrong secret, an unsupported pickled type).
        (Some(err), _) => Err(err),
        (None, Some(Err(err))) => Err(err),
        (None, None) => Err(CodecError::Malformed("not a session format sessionkit knows")),
    };
    Decoded { format, data }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Decoding by the look of the bytes, independent of the store.
fn sniffed_decode(raw: &[u8], settings: &Settings) -> Option<Result<Map<String, Value>, CodecError>> {
    if let Some((serializer, _)) = serializer_of(raw) {
        if !matches!(serializer, CacheSerializer::Json) {
            return Some(CacheValueCodec::django_redis(serializer, CacheCompressor::None).decode(raw));
        }
    }
    if let Some((compressor, _)) = compressor_of(raw) {
        if let Ok(Some(inner)) = compressor.decompress(raw, 16 * 1024 * 1024) {
            if let Some((serializer, _)) = serializer_of(&inner) {
                return Some(CacheValueCodec::django_redis(serializer, compressor).decode(raw));
            }
        }
    }
    let text = std::str::from_utf8(raw).ok()?;
    if text.starts_with('{') {
        return Some(sessionkit::codec::from_python_json(raw));
    }
    if looks_signed(text) {
        let codec = match SignedSessionCodec::new(settings) {
            Ok(codec) => codec,
            Err(_) => return Some(Err(CodecError::BadSignature)),
        };
        let data = codec.decode(text);
        if matches!(data, Err(CodecError::BadSignature)) {
            let cookie =
                Signer::new(SIGNED_COOKIES_SALT, settings.secret_key.clone(), settings.secret_key_fallbacks.clone());
            if let Ok(data) = cookie.unsign_object(text, None, now(), &DecodeLimits::default()) {
                return Some(Ok(data));
            }
        }
        return Some(data);
    }
    if looks_legacy(text) {
        return Some(decode_legacy(text, settings));
    }
    None
}

/// Django < 3.1's session format, through `sessionkit::codec::legacy`.
fn decode_legacy(text: &str, settings: &Settings) -> Result<Map<String, Value>, CodecError> {
    sessionkit::codec::legacy::decode_legacy(
        text,
        &settings.secret_key,
        &settings.secret_key_fallbacks,
        &DecodeLimits::default(),
    )
}
