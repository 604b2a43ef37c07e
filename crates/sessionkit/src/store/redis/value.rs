//! The compact, versioned value of the `string` and `hash` layouts.
//!
//! ```text
//! byte 0      format version (1)
//! byte 1      flags: bits 0-1 compression (0 none, 1 zstd, 2 lz4 block with size prefix, 3 zstd with sessionkit's
//!             built-in dictionary 1); bits 2-7 zero
//! bytes 2-5   expiry, Unix seconds, u32 big-endian (the value carries its own expiry: the hash layout
//!             cannot rely on key TTLs, and loads need no extra TTL round trip)
//! bytes 6..   the session dict as UTF-8 JSON (serde_json; numbers keep their exact text), maybe compressed
//! ```

use std::cell::RefCell;
use std::io::Read;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::config::Compression;
use crate::codec::{CodecError, DecodeLimits};
use crate::store::offload::{worker_limits, BoundedDecode};

pub(crate) const VERSION: u8 = 1;
const HEADER_LEN: usize = 6;
const FLAG_ZSTD: u8 = 1;
const FLAG_LZ4: u8 = 2;
const FLAG_ZSTD_DICTIONARY: u8 = 3;

/// zstd raw-content dictionary 1: text that recurs in Django sessions as serde_json writes them. Small JSON values
/// compress poorly on their own (zstd has no history to refer to); with this dictionary the keys and values every
/// Django login carries cost a few bytes each. Never change these bytes: stored values refer to them. A new
/// dictionary gets a new flag value.
pub(crate) const DICTIONARY_1: &[u8] = br#"{"_language":"en","django_language":"en","testcookie":"worked","_messages":"[[\"__json_message\",0,20,\"","_sessionkit_ua":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36","_sessionkit_ua":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/","_sessionkit_ua":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15","_sessionkit_ip":"192.168.","_session_expiry":"2026-01-01T00:00:00+00:00","_session_expiry":0,"_session_expiry":3600,"cart":{"items":[],"total":0},"last_visit":"2026-","visits":1,"next":"/","_auth_user_backend":"django.contrib.auth.backends.RemoteUserBackend","_auth_user_backend":"allauth.account.auth_backends.AuthenticationBackend","_csrftoken":"","_auth_user_id":"1","_auth_user_backend":"django.contrib.auth.backends.ModelBackend","_auth_user_hash":""}"#;
const COMPRESSION_MASK: u8 = 0b11;
/// zstd level: 3 is zstd's default, a good speed/ratio balance for small JSON.
const ZSTD_LEVEL: i32 = 3;

/// Encodes and decodes native values.
#[derive(Debug, Clone)]
pub(crate) struct NativeCodec {
    pub(crate) compression: Compression,
    pub(crate) compress_min_bytes: usize,
    pub(crate) limits: DecodeLimits,
}

/// Seconds since the epoch as stored: clamped into u32 (1970..2106).
pub(crate) fn expiry_seconds(at: OffsetDateTime) -> u32 {
    at.unix_timestamp().clamp(0, i64::from(u32::MAX)) as u32
}

impl NativeCodec {
    pub(crate) fn encode(&self, data: &Map<String, Value>, expires_at: OffsetDateTime) -> Vec<u8> {
        // Serializing a map of `Value`s cannot fail (keys are strings, numbers are valid JSON text).
        let json = serde_json::to_vec(data).unwrap_or_else(|_| b"{}".to_vec());
        let (flags, payload) = if json.len() >= self.compress_min_bytes {
            match self.compression {
                Compression::None => (0, json),
                Compression::Zstd => match zstd_compress(&json) {
                    Ok(c) if c.len() < json.len() => (FLAG_ZSTD_DICTIONARY, c),
                    _ => (0, json),
                },
                Compression::Lz4 => {
                    let c = lz4_flex::block::compress_prepend_size(&json);
                    if c.len() < json.len() {
                        (FLAG_LZ4, c)
                    } else {
                        (0, json)
                    }
                }
            }
        } else {
            (0, json)
        };
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.push(VERSION);
        out.push(flags);
        out.extend_from_slice(&expiry_seconds(expires_at).to_be_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// The expiry stored in a value's header, without decoding the payload.
    pub(crate) fn peek_expiry(bytes: &[u8]) -> Result<OffsetDateTime, CodecError> {
        if bytes.len() < HEADER_LEN || bytes[0] != VERSION {
            return Err(CodecError::Malformed("not a sessionkit value (unknown format version or too short)"));
        }
        let seconds = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
        OffsetDateTime::from_unix_timestamp(i64::from(seconds))
            .map_err(|_| CodecError::Malformed("expiry out of range"))
    }

    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<(Map<String, Value>, OffsetDateTime), CodecError> {
        self.decode_within(bytes, &self.limits)
    }

    /// [`Self::decode`] within `limits` instead of the codec's own.
    fn decode_within(
        &self,
        bytes: &[u8],
        limits: &DecodeLimits,
    ) -> Result<(Map<String, Value>, OffsetDateTime), CodecError> {
        let expires_at = Self::peek_expiry(bytes)?;
        let flags = bytes[1];
        if flags & !COMPRESSION_MASK != 0 {
            return Err(CodecError::Malformed("unknown flags in sessionkit value"));
        }
        let payload = &bytes[HEADER_LEN..];
        let max = limits.max_inflated_bytes;
        let json: std::borrow::Cow<'_, [u8]> = match flags & COMPRESSION_MASK {
            0 => payload.into(),
            FLAG_ZSTD => zstd_decompress(payload, max, false)?.into(),
            FLAG_ZSTD_DICTIONARY => zstd_decompress(payload, max, true)?.into(),
            FLAG_LZ4 => {
                let (size, _) =
                    lz4_flex::block::uncompressed_size(payload).map_err(|e| CodecError::Inflate(e.to_string()))?;
                if size > max {
                    return Err(CodecError::TooLarge { limit: max });
                }
                lz4_flex::block::decompress_size_prepended(payload)
                    .map_err(|e| CodecError::Inflate(e.to_string()))?
                    .into()
            }
            _ => return Err(CodecError::Malformed("unknown compression in sessionkit value")),
        };
        // serde_json wrote these bytes; the Python-JSON reader also takes the `NaN`/`Infinity` numbers a session
        // read from Django may hold (serde_json writes them as they are but cannot read them back).
        let text = std::str::from_utf8(&json).map_err(|e| CodecError::Json(e.to_string()))?;
        let map = crate::codec::json::parse_python_json_object(text)?;
        Ok((map, expires_at))
    }
}

/// Loads decode on the async worker only when small (see `store::offload`).
impl BoundedDecode for NativeCodec {
    type Output = (Map<String, Value>, OffsetDateTime);

    fn decode_bounded(&self, bytes: &[u8], on_worker: bool) -> Result<Self::Output, CodecError> {
        self.decode_within(bytes, &worker_limits(&self.limits, on_worker))
    }

    /// The JSON's size: the payload itself, or what the zstd frame or lz4 block declares.
    fn inflated_len(&self, bytes: &[u8]) -> usize {
        let (Some(flags), Some(payload)) = (bytes.get(1), bytes.get(HEADER_LEN..)) else { return bytes.len() };
        let declared = match flags & COMPRESSION_MASK {
            FLAG_ZSTD | FLAG_ZSTD_DICTIONARY => {
                zstd::zstd_safe::get_frame_content_size(payload).ok().flatten().and_then(|n| usize::try_from(n).ok())
            }
            FLAG_LZ4 => lz4_flex::block::uncompressed_size(payload).ok().map(|(n, _)| n),
            _ => Some(payload.len()),
        };
        declared.unwrap_or(bytes.len())
    }
}

thread_local! {
    // zstd contexts are costly to create (a profile showed half the client's CPU in context setup): one per thread.
    static ZSTD_COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static ZSTD_DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    static ZSTD_DICTIONARY_DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

fn zstd_compress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    ZSTD_COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Compressor::with_dictionary(ZSTD_LEVEL, DICTIONARY_1)?);
        }
        match slot.as_mut() {
            Some(compressor) => compressor.compress(data),
            None => zstd::bulk::compress(data, ZSTD_LEVEL),
        }
    })
}

/// Decompresses a zstd frame of at most `max` bytes. Frames we write declare their size, so one allocation of
/// exactly that size does it; a frame without a declared size is streamed, bounded.
fn zstd_decompress(payload: &[u8], max: usize, dictionary: bool) -> Result<Vec<u8>, CodecError> {
    let inflate = |e: std::io::Error| CodecError::Inflate(e.to_string());
    match zstd::zstd_safe::get_frame_content_size(payload) {
        Ok(Some(size)) if size > max as u64 => Err(CodecError::TooLarge { limit: max }),
        Ok(Some(size)) => (if dictionary { &ZSTD_DICTIONARY_DECOMPRESSOR } else { &ZSTD_DECOMPRESSOR }).with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                let made = if dictionary {
                    zstd::bulk::Decompressor::with_dictionary(DICTIONARY_1)
                } else {
                    zstd::bulk::Decompressor::new()
                };
                *slot = Some(made.map_err(inflate)?);
            }
            match slot.as_mut() {
                Some(decompressor) => decompressor.decompress(payload, size as usize).map_err(inflate),
                None => Err(CodecError::Inflate("no zstd context".into())),
            }
        }),
        Ok(None) if dictionary => read_bounded(
            zstd::stream::read::Decoder::with_dictionary(std::io::BufReader::new(payload), DICTIONARY_1)
                .map_err(inflate)?,
            max,
        ),
        Ok(None) => read_bounded(zstd::stream::read::Decoder::new(payload).map_err(inflate)?, max),
        Err(_) => Err(CodecError::Inflate("not a zstd frame".into())),
    }
}

fn read_bounded(reader: impl Read, max: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    reader.take(max as u64 + 1).read_to_end(&mut out).map_err(|e| CodecError::Inflate(e.to_string()))?;
    if out.len() > max {
        return Err(CodecError::TooLarge { limit: max });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn codec(compression: Compression, min: usize) -> NativeCodec {
        NativeCodec { compression, compress_min_bytes: min, limits: DecodeLimits::default() }
    }

    fn sample() -> Map<String, Value> {
        let Value::Object(map) = json!({"_auth_user_id": "1", "big": 123456789012345678901234567890u128, "f": 1.5,
            "text": "x".repeat(600), "nested": {"b": [1, 2], "a": null}})
        else {
            unreachable!()
        };
        map
    }

    #[test]
    fn round_trips_with_every_compression_and_keeps_order() {
        let at = datetime!(2030-01-02 03:04:05 UTC);
        for compression in [Compression::None, Compression::Zstd, Compression::Lz4] {
            let c = codec(compression, 100);
            let bytes = c.encode(&sample(), at);
            assert_eq!(bytes[0], 1);
            assert_eq!(bytes[1] != 0, compression != Compression::None, "{compression:?}");
            if compression == Compression::Zstd {
                assert_eq!(bytes[1], FLAG_ZSTD_DICTIONARY);
            }
            let (map, expires) = c.decode(&bytes).unwrap();
            assert_eq!(map, sample());
            assert_eq!(map.keys().collect::<Vec<_>>(), sample().keys().collect::<Vec<_>>());
            assert_eq!(expires, at);
            assert_eq!(NativeCodec::peek_expiry(&bytes).unwrap(), at);
        }
        // Small values stay uncompressed.
        let small = codec(Compression::Zstd, 512).encode(&Map::new(), at);
        assert_eq!(small, [1, 0, 0x70, 0xdd, 0x55, 0x25, b'{', b'}']); // 1893553445 = 2030-01-02T03:04:05Z
    }

    #[test]
    fn non_finite_floats_and_unicode_survive() {
        let at = datetime!(2030-01-02 03:04:05 UTC);
        let map =
            crate::codec::json::from_python_json(br#"{"n":NaN,"i":[Infinity,-Infinity],"s":"\u00e4\ud83d\ude00"}"#)
                .unwrap();
        for compression in [Compression::None, Compression::Zstd] {
            let (read, _) = codec(compression, 0).decode(&codec(compression, 0).encode(&map, at)).unwrap();
            assert_eq!(
                crate::codec::json::object_to_python_json(&read),
                r#"{"n":NaN,"i":[Infinity,-Infinity],"s":"\u00e4\ud83d\ude00"}"#
            );
        }
    }

    #[test]
    fn the_dictionary_shrinks_a_django_login_session() {
        let Value::Object(login) = json!({"_auth_user_id": "12345",
            "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
            "_auth_user_hash": "9c1185a5c5e9fc54612808977ee8f548b2258d31b9c1b0f6a3c1a1c1d7a5e7f0",
            "_csrftoken": "Hk3RzVq0d2XG7mJ4x9uYpB6nT1cLwA8sE5fKoQiZ0vUbN3rD7yM2hC4gP6jW9tS1", "visits": 7})
        else {
            unreachable!()
        };
        let plain = codec(Compression::None, 0).encode(&login, datetime!(2030-01-01 0:00 UTC));
        let with_dictionary = codec(Compression::Zstd, 0).encode(&login, datetime!(2030-01-01 0:00 UTC));
        let without_dictionary = zstd::bulk::compress(&plain[6..], 3).unwrap();
        assert!(with_dictionary.len() * 10 < plain.len() * 7, "{} vs {}", with_dictionary.len(), plain.len());
        assert!(
            with_dictionary.len() + 40 < without_dictionary.len() + 6,
            "{} vs {}",
            with_dictionary.len(),
            without_dictionary.len()
        );
        assert_eq!(codec(Compression::Zstd, 0).decode(&with_dictionary).unwrap().0, login);
        // Values written with plain zstd (flag 1) stay readable.
        let mut plain_zstd = vec![1, FLAG_ZSTD, 0x70, 0xdd, 0x55, 0x25];
        plain_zstd.extend(without_dictionary);
        assert_eq!(codec(Compression::Zstd, 0).decode(&plain_zstd).unwrap().0, login);
    }

    #[test]
    fn the_inflated_size_is_known_before_decoding() {
        let data = sample();
        let json_len = serde_json::to_vec(&data).unwrap().len();
        for compression in [Compression::Zstd, Compression::Lz4, Compression::None] {
            let value = codec(compression, 1).encode(&data, datetime!(2030-01-01 00:00 UTC));
            assert_eq!(codec(compression, 1).inflated_len(&value), json_len, "{compression:?}");
        }
        assert_eq!(codec(Compression::Zstd, 1).inflated_len(b"\x01"), 1, "too short: its own size");
    }

    #[test]
    fn hostile_values_are_errors() {
        let c = codec(Compression::Zstd, 0);
        for bad in [
            &b""[..],
            b"\x01",
            b"\x02\x00\x00\x00\x00\x00{}",
            b"\x01\x80\x00\x00\x00\x00{}",
            b"\x01\x00\x00\x00\x00\x00[1]",
            b"\x01\x01\x00\x00\x00\x00garbage",
            b"\x01\x02\x00\x00\x00\x00\xff\xff\xff\x7f",
        ] {
            assert!(c.decode(bad).is_err(), "{bad:?}");
        }
        // A zstd bomb stops at the limit.
        let zeros = vec![b' '; 20 * 1024 * 1024];
        let mut bomb = vec![1, FLAG_ZSTD, 0, 0, 0, 0];
        bomb.extend(zstd::bulk::compress(&zeros, 3).unwrap());
        let small_limits = NativeCodec {
            limits: DecodeLimits { max_inflated_bytes: 1024 * 1024, ..DecodeLimits::default() },
            ..c.clone()
        };
        assert!(matches!(small_limits.decode(&bomb), Err(CodecError::TooLarge { .. })));
        let mut lz4_bomb = vec![1, FLAG_LZ4, 0, 0, 0, 0];
        lz4_bomb.extend(lz4_flex::block::compress_prepend_size(&zeros));
        assert!(matches!(small_limits.decode(&lz4_bomb), Err(CodecError::TooLarge { .. })));
    }
}
