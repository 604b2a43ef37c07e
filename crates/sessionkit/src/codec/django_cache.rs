//! The value a Django cache backend stores for a session dict.
//!
//! Django's `cache` and `cached_db` session engines put the session dict itself into the cache, so its bytes
//! are whatever the cache backend's serializer (and compressor) make of a dict:
//!
//! - Django's built-in `django.core.cache.backends.redis.RedisCache`: `pickle.dumps(d, 5)`, no compression
//!   ([`CacheValueCodec::django_redis_cache`]).
//! - django-redis (`django_redis.cache.RedisCache`, default client): a serializer, `pickle.dumps(d, 4)` by
//!   default (option `PICKLE_VERSION`), or JSON (`json.dumps(d, cls=DjangoJSONEncoder)`: separators `", "` and
//!   `": "`, ASCII only) or msgpack (`msgpack.dumps(d)`); then an optional compressor applied only to values
//!   longer than its `min_length` (15 bytes, lzma 100) and **without a marker byte**
//!   ([`CacheValueCodec::django_redis`]).
//!
//! Reading follows django-redis' `decode`: a value that parses as a Python `int` is an int (never a session,
//! so [`CodecError::NotAnObject`]); otherwise the configured compressor is tried, and if the value is not
//! compressed data of that kind (wrong magic bytes or a failed decompression) the raw bytes are used; then
//! the serializer reads the result. All decompression stops at [`CacheLimits::max_inflated_bytes`].
//!
//! Compressors, as django-redis 7 calls them:
//!
//! | compressor | django-redis | here |
//! | --- | --- | --- |
//! | zlib | `zlib.compress(b, 6)` | zlib level 6 (the system zlib, byte-identical to CPython's) |
//! | gzip | `gzip.compress(b)`: level 9, header with the current time as mtime, OS 255 | the same header and raw deflate level 9 |
//! | lz4 | `lz4.frame.compress(b)`: frame format, linked 64 KiB blocks, content size stored | `lz4_flex` with the same frame options (the blocks' bytes differ from liblz4's, any reader accepts both) |
//! | zstd | `pyzstd.compress(b)`: level 3, content size stored, no checksum | libzstd level 3 |
//! | lzma | `lzma.compress(b, preset=4)`: xz container, CRC64 | liblzma, preset 4, CRC64 |
//!
//! Reading accepts what those Python functions accept: any zlib stream, gzip with optional header fields and
//! several members, lz4 frames, zstd frames (several in a row), xz streams (several in a row).

#![cfg(feature = "django-cache")]

use std::io::{Read, Write};

use flate2::{Compress, Compression, Crc, Decompress, FlushCompress, FlushDecompress, Status};
use serde_json::{Map, Number, Value};

use super::json::{non_finite_value, parse_python_json_object, python_float_number, to_python_json_with_separators};
use super::pickle::{from_pickle, to_pickle, PickleLimits};
use super::CodecError;

/// How the cache backend turns a Python object into bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSerializer {
    /// `pickle.dumps(value, protocol)`; [`to_pickle`] writes protocols 4 and 5, reading accepts 0–5.
    /// Django's `RedisCache` uses 5, django-redis 4 (its `PICKLE_VERSION` option, default
    /// `pickle.DEFAULT_PROTOCOL`).
    Pickle {
        /// The protocol written by [`CacheValueCodec::encode`].
        protocol: u8,
    },
    /// django-redis' `JSONSerializer`: `json.dumps(value, cls=DjangoJSONEncoder).encode()`, read with
    /// `json.loads(value.decode())` (UTF-8). `DjangoJSONEncoder` only adds dates, decimals and UUIDs, which a
    /// session read back as JSON holds as strings anyway. Like [`super::json::from_python_json`], reading
    /// accepts Python's non-standard `NaN`, `Infinity` and `-Infinity` literals.
    Json,
    /// django-redis' `MSGPackSerializer`: `msgpack.dumps(value)`, read with `msgpack.loads(value, raw=False)`.
    Msgpack,
}

impl CacheSerializer {
    /// django-redis' default serializer: pickle protocol 4 (`pickle.DEFAULT_PROTOCOL` on Python 3.8–3.13).
    pub const DJANGO_REDIS_DEFAULT: CacheSerializer = CacheSerializer::Pickle { protocol: 4 };
}

/// django-redis' compressor option (`COMPRESSOR`), applied after the serializer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheCompressor {
    /// `IdentityCompressor`, the default: no compression.
    None,
    /// `ZlibCompressor`: `zlib.compress(value, 6)` above 15 bytes.
    Zlib,
    /// `GzipCompressor`: `gzip.compress(value)` (level 9) above 15 bytes.
    Gzip,
    /// `Lz4Compressor`: `lz4.frame.compress(value)` above 15 bytes.
    Lz4,
    /// `ZStdCompressor`: `pyzstd.compress(value)` (level 3) above 15 bytes.
    Zstd,
    /// `LzmaCompressor`: `lzma.compress(value, preset=4)` (xz) above 100 bytes.
    Lzma,
}

/// zstd's default level (`ZSTD_CLEVEL_DEFAULT`), what `pyzstd.compress` uses.
const ZSTD_LEVEL: i32 = 3;
/// django-redis' `LzmaCompressor.preset`.
const LZMA_PRESET: u32 = 4;
/// django-redis' `ZlibCompressor.preset`.
const ZLIB_LEVEL: u32 = 6;
/// `gzip.compress`' default `compresslevel`.
const GZIP_LEVEL: u32 = 9;
/// Memory liblzma may use to decode one value: enough for any preset (preset 9 needs 65 MiB).
const LZMA_MEMLIMIT: u64 = 128 * 1024 * 1024;
/// msgpack-python's default nesting limit for `packb` (`DEFAULT_RECURSE_LIMIT`).
const MSGPACK_MAX_ENCODE_DEPTH: usize = 511;

impl CacheCompressor {
    /// Values of at most this many bytes are stored uncompressed (django-redis' `min_length`).
    pub fn min_length(self) -> usize {
        match self {
            CacheCompressor::None => usize::MAX,
            CacheCompressor::Lzma => 100,
            _ => 15,
        }
    }

    /// Compresses `data` exactly as django-redis' compressor does, including leaving short values as they are.
    /// A gzip header carries the current time, as `gzip.compress` writes it.
    ///
    /// # Errors
    ///
    /// [`CodecError::Unencodable`] if the compression library fails (it does not for in-memory data).
    pub fn compress(self, data: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
            .unwrap_or(0);
        self.compress_with_mtime(data, mtime)
    }

    pub(crate) fn compress_with_mtime(self, data: &[u8], gzip_mtime: u32) -> Result<Vec<u8>, CodecError> {
        if data.len() <= self.min_length() {
            return Ok(data.to_vec());
        }
        let failed = |what: &str, e: std::io::Error| CodecError::Unencodable(format!("{what} compression failed: {e}"));
        match self {
            CacheCompressor::None => Ok(data.to_vec()),
            CacheCompressor::Zlib => deflate(data, ZLIB_LEVEL, true),
            CacheCompressor::Gzip => {
                // gzip.compress: a fixed 10-byte header, raw deflate, CRC32 and size.
                let mut out = vec![0x1f, 0x8b, 8, 0];
                out.extend_from_slice(&gzip_mtime.to_le_bytes());
                out.extend_from_slice(&[2, 255]); // XFL 2 = best compression, OS 255 = unknown
                out.extend_from_slice(&deflate(data, GZIP_LEVEL, false)?);
                let mut crc = Crc::new();
                crc.update(data);
                out.extend_from_slice(&crc.sum().to_le_bytes());
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                Ok(out)
            }
            CacheCompressor::Lz4 => {
                use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
                // LZ4F_compressFrame (what lz4.frame.compress calls) marks a frame whose data fits one block
                // as independent blocks, else linked.
                let mode = if data.len() <= 64 * 1024 { BlockMode::Independent } else { BlockMode::Linked };
                let info = FrameInfo::new()
                    .block_size(BlockSize::Max64KB)
                    .block_mode(mode)
                    .content_size(Some(data.len() as u64));
                let mut encoder = FrameEncoder::with_frame_info(info, Vec::new());
                encoder.write_all(data).map_err(|e| failed("lz4", e))?;
                encoder.finish().map_err(|e| CodecError::Unencodable(format!("lz4 compression failed: {e}")))
            }
            CacheCompressor::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL).map_err(|e| failed("zstd", e)),
            CacheCompressor::Lzma => {
                let stream = liblzma::stream::Stream::new_easy_encoder(LZMA_PRESET, liblzma::stream::Check::Crc64)
                    .map_err(|e| CodecError::Unencodable(format!("lzma compression failed: {e}")))?;
                let mut encoder = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
                encoder.write_all(data).map_err(|e| failed("lzma", e))?;
                encoder.finish().map_err(|e| failed("lzma", e))
            }
        }
    }

    /// True if `data` starts like this compressor's output (zlib: a valid zlib header, usually `78 xx`;
    /// gzip `1f 8b`; lz4 frame `04 22 4d 18`; zstd `28 b5 2f fd`; xz `fd 37 7a 58 5a 00`).
    pub fn has_magic(self, data: &[u8]) -> bool {
        match self {
            CacheCompressor::None => false,
            CacheCompressor::Zlib => {
                data.len() >= 2
                    && data[0] & 0x0f == 8
                    && data[0] >> 4 <= 7
                    && (u16::from(data[0]) << 8 | u16::from(data[1])) % 31 == 0
            }
            CacheCompressor::Gzip => data.starts_with(&[0x1f, 0x8b]),
            CacheCompressor::Lz4 => data.starts_with(&[0x04, 0x22, 0x4d, 0x18]),
            CacheCompressor::Zstd => data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
            CacheCompressor::Lzma => data.starts_with(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]),
        }
    }

    /// django-redis' `decompress` inside `suppress(CompressorError)`: `Ok(None)` when `data` is not this
    /// compressor's output (no magic, or decompression fails), so the caller uses the raw bytes.
    ///
    /// # Errors
    ///
    /// [`CodecError::TooLarge`] as soon as the output would exceed `max_output` bytes (a compression bomb is
    /// never inflated further than that).
    pub fn decompress(self, data: &[u8], max_output: usize) -> Result<Option<Vec<u8>>, CodecError> {
        if !self.has_magic(data) {
            return Ok(None);
        }
        match self {
            CacheCompressor::None => Ok(None),
            CacheCompressor::Zlib => Ok(inflate(data, true, max_output)?.map(|(out, _)| out)),
            CacheCompressor::Gzip => gunzip(data, max_output),
            CacheCompressor::Lz4 => read_bounded(lz4_flex::frame::FrameDecoder::new(data), max_output),
            CacheCompressor::Zstd => {
                let Ok(mut decoder) = zstd::stream::read::Decoder::with_buffer(data) else {
                    return Ok(None);
                };
                // The window never needs to exceed the output limit; this bounds the decoder's memory.
                let window_log = usize::BITS - max_output.max(1).leading_zeros();
                if decoder.window_log_max(window_log.clamp(23, 27)).is_err() {
                    return Ok(None);
                }
                read_bounded(decoder, max_output)
            }
            CacheCompressor::Lzma => {
                let Ok(stream) =
                    liblzma::stream::Stream::new_stream_decoder(LZMA_MEMLIMIT, liblzma::stream::CONCATENATED)
                else {
                    return Ok(None);
                };
                read_bounded(liblzma::read::XzDecoder::new_stream(data, stream), max_output)
            }
        }
    }
}

/// zlib (`zlib_header`) or raw deflate of `data` at `level`, as `zlib.compress(data, level, wbits=±15)`.
fn deflate(data: &[u8], level: u32, zlib_header: bool) -> Result<Vec<u8>, CodecError> {
    let mut compress = Compress::new(Compression::new(level), zlib_header);
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let consumed = usize::try_from(compress.total_in()).unwrap_or(usize::MAX).min(data.len());
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(64));
        }
        let status = compress
            .compress_vec(&data[consumed..], &mut out, FlushCompress::Finish)
            .map_err(|e| CodecError::Unencodable(format!("deflate failed: {e}")))?;
        if status == Status::StreamEnd {
            return Ok(out);
        }
    }
}

/// Inflates one zlib (`zlib_header`) or raw deflate stream at the start of `data`, returning the output and the
/// number of input bytes used; `None` if the stream is invalid or incomplete (Python's `zlib.error`).
fn inflate(data: &[u8], zlib_header: bool, max_output: usize) -> Result<Option<(Vec<u8>, usize)>, CodecError> {
    let mut decompress = Decompress::new(zlib_header);
    let mut out: Vec<u8> = Vec::with_capacity(data.len().saturating_mul(4).clamp(64, max_output.saturating_add(1)));
    loop {
        if out.len() > max_output {
            return Err(CodecError::TooLarge { limit: max_output });
        }
        if out.len() == out.capacity() {
            // Grow, but never beyond one byte past the limit.
            let room = max_output.saturating_add(1) - out.len();
            out.reserve(out.capacity().max(64).min(room));
        }
        let consumed = usize::try_from(decompress.total_in()).unwrap_or(usize::MAX).min(data.len());
        let (in_before, out_before) = (decompress.total_in(), out.len());
        match decompress.decompress_vec(&data[consumed..], &mut out, FlushDecompress::None) {
            Err(_) => return Ok(None),
            Ok(Status::StreamEnd) => {
                if out.len() > max_output {
                    return Err(CodecError::TooLarge { limit: max_output });
                }
                let used = usize::try_from(decompress.total_in()).unwrap_or(usize::MAX);
                return Ok(Some((out, used)));
            }
            Ok(_) => {
                if decompress.total_in() == in_before && out.len() == out_before && out.len() < out.capacity() {
                    // No progress with room to write: the input ended before the end of the stream.
                    return Ok(None);
                }
            }
        }
    }
}

/// Python's `gzip.decompress`: one or more members, each with its header, deflate data, CRC32 and size;
/// zero bytes between members are skipped.
fn gunzip(mut data: &[u8], max_output: usize) -> Result<Option<Vec<u8>>, CodecError> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.len() < 10 || data[..3] != [0x1f, 0x8b, 8] {
            return Ok(None);
        }
        let flags = data[3];
        let mut pos = 10;
        if flags & FEXTRA != 0 {
            let Some(len) = data.get(pos..pos + 2) else { return Ok(None) };
            pos += 2 + usize::from(u16::from_le_bytes([len[0], len[1]]));
        }
        for flag in [FNAME, FCOMMENT] {
            if flags & flag != 0 {
                let Some(end) = data.get(pos..).and_then(|rest| rest.iter().position(|&b| b == 0)) else {
                    return Ok(None);
                };
                pos += end + 1;
            }
        }
        if flags & FHCRC != 0 {
            pos += 2;
        }
        let Some(body) = data.get(pos..) else { return Ok(None) };
        let member = inflate(body, false, max_output.saturating_sub(out.len()))
            .map_err(|_| CodecError::TooLarge { limit: max_output })?;
        let Some((member, used)) = member else {
            return Ok(None);
        };
        let Some(trailer) = body.get(used..used + 8) else { return Ok(None) };
        let mut crc = Crc::new();
        crc.update(&member);
        let expected_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let expected_len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        if crc.sum() != expected_crc || member.len() as u32 != expected_len {
            return Ok(None);
        }
        out.extend_from_slice(&member);
        data = &body[used + 8..];
        while let [0, rest @ ..] = data {
            data = rest;
        }
    }
    Ok(Some(out))
}

/// Reads a decompressing reader to its end, failing with [`CodecError::TooLarge`] past `max_output` bytes and
/// giving `None` if the data is invalid or truncated.
fn read_bounded(reader: impl Read, max_output: usize) -> Result<Option<Vec<u8>>, CodecError> {
    let limit = u64::try_from(max_output).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    match reader.take(limit).read_to_end(&mut out) {
        Ok(_) if out.len() > max_output => Err(CodecError::TooLarge { limit: max_output }),
        Ok(_) => Ok(Some(out)),
        Err(_) => Ok(None),
    }
}

/// Bounds applied when decoding a cache value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Largest stored value accepted, in bytes, before decompression. Default: 16 MiB.
    pub max_value_bytes: usize,
    /// Largest decompressed value, in bytes; decompression stops there with [`CodecError::TooLarge`].
    /// Default: 16 MiB.
    pub max_inflated_bytes: usize,
    /// Limits of the pickle reader; its `max_depth` and `max_items` also bound msgpack values.
    pub pickle: PickleLimits,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            max_value_bytes: 16 * 1024 * 1024,
            max_inflated_bytes: 16 * 1024 * 1024,
            pickle: PickleLimits::default(),
        }
    }
}

/// Encodes and decodes the bytes a Django cache backend stores for a session dict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheValueCodec {
    /// The cache's serializer.
    pub serializer: CacheSerializer,
    /// The cache's compressor (django-redis only; Django's own `RedisCache` does not compress).
    pub compressor: CacheCompressor,
    /// Bounds for decoding untrusted values.
    pub limits: CacheLimits,
}

impl CacheValueCodec {
    /// Django's built-in `django.core.cache.backends.redis.RedisCache`: `pickle.dumps(value, 5)`
    /// (`pickle.HIGHEST_PROTOCOL`), no compression.
    pub fn django_redis_cache() -> Self {
        CacheValueCodec {
            serializer: CacheSerializer::Pickle { protocol: 5 },
            compressor: CacheCompressor::None,
            limits: CacheLimits::default(),
        }
    }

    /// django-redis with the given serializer and compressor. Its defaults are
    /// [`CacheSerializer::DJANGO_REDIS_DEFAULT`] (pickle protocol 4) and [`CacheCompressor::None`].
    pub fn django_redis(serializer: CacheSerializer, compressor: CacheCompressor) -> Self {
        CacheValueCodec { serializer, compressor, limits: CacheLimits::default() }
    }

    /// The bytes the cache backend stores for the session dict `map`: the serializer's output, compressed
    /// when it is longer than the compressor's `min_length`.
    ///
    /// # Errors
    ///
    /// [`CodecError::Unencodable`] when the serializer cannot write the value: a pickle protocol other than 4
    /// or 5, an integer msgpack cannot hold (beyond 64 bits), too deep nesting.
    pub fn encode(&self, map: &Map<String, Value>) -> Result<Vec<u8>, CodecError> {
        let serialized = self.serialize(map)?;
        self.compressor.compress(&serialized)
    }

    /// The bytes the cache backend stores for Python's `None`: what `cache.get` reads back as a miss. The
    /// `cached_db` store leaves it behind a deleted session (a tombstone a Django site sharing the cache reads as
    /// "no such session", exactly as after a delete).
    pub fn encode_none(&self) -> Vec<u8> {
        match self.serializer {
            CacheSerializer::Pickle { protocol } if protocol >= 2 => vec![0x80, protocol, b'N', b'.'],
            CacheSerializer::Pickle { .. } => b"N.".to_vec(),
            CacheSerializer::Json => b"null".to_vec(),
            CacheSerializer::Msgpack => vec![0xc0],
        }
    }

    /// True when `bytes` is a stored `None` (as [`Self::encode_none`] writes it, or Python's pickle, `json` or
    /// msgpack would): Django's cache reads it as a miss.
    pub fn is_none(&self, bytes: &[u8]) -> bool {
        match bytes {
            [b'N', b'.'] | [0x80, 2..=5, b'N', b'.'] => matches!(self.serializer, CacheSerializer::Pickle { .. }),
            b"null" => self.serializer == CacheSerializer::Json,
            [0xc0] => self.serializer == CacheSerializer::Msgpack,
            _ => false,
        }
    }

    fn serialize(&self, map: &Map<String, Value>) -> Result<Vec<u8>, CodecError> {
        match self.serializer {
            CacheSerializer::Pickle { protocol } => to_pickle(map, protocol),
            CacheSerializer::Json => {
                Ok(to_python_json_with_separators(&Value::Object(map.clone()), ", ", ": ").into_bytes())
            }
            CacheSerializer::Msgpack => to_msgpack(map),
        }
    }

    /// Reads a stored value back into the session dict, in django-redis' order: a plain integer is refused
    /// ([`CodecError::NotAnObject`]), then the compressor is tried (falling back to the raw bytes), then the
    /// serializer reads the data.
    ///
    /// # Errors
    ///
    /// [`CodecError::TooLarge`] for a value or decompressed value over the [`CacheLimits`];
    /// [`CodecError::NotAnObject`] when the value is not a dict; the serializer's errors
    /// ([`CodecError::InvalidPickle`], [`CodecError::UnsupportedPickle`], [`CodecError::Json`],
    /// [`CodecError::Msgpack`]).
    pub fn decode(&self, bytes: &[u8]) -> Result<Map<String, Value>, CodecError> {
        if bytes.len() > self.limits.max_value_bytes {
            return Err(CodecError::TooLarge { limit: self.limits.max_value_bytes });
        }
        if is_python_int(bytes) {
            return Err(CodecError::NotAnObject);
        }
        let inflated = self.compressor.decompress(bytes, self.limits.max_inflated_bytes)?;
        let data = inflated.as_deref().unwrap_or(bytes);
        match self.serializer {
            CacheSerializer::Pickle { .. } => from_pickle(data, &self.limits.pickle),
            CacheSerializer::Json => {
                let text = std::str::from_utf8(data).map_err(|e| CodecError::Json(e.to_string()))?;
                parse_python_json_object(text)
            }
            CacheSerializer::Msgpack => from_msgpack(data, &self.limits.pickle),
        }
    }
}

/// Python's `int(value)` on bytes succeeds: optional ASCII whitespace, an optional sign, decimal digits with
/// single underscores between them, optional whitespace.
fn is_python_int(bytes: &[u8]) -> bool {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let start = bytes.iter().position(|b| !is_space(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !is_space(b)).map_or(start, |i| i + 1);
    let mut text = &bytes[start..end];
    if let [b'+' | b'-', rest @ ..] = text {
        text = rest;
    }
    !text.is_empty()
        && text.first().is_some_and(u8::is_ascii_digit)
        && text.last().is_some_and(u8::is_ascii_digit)
        && text.iter().all(|b| b.is_ascii_digit() || *b == b'_')
        && !text.windows(2).any(|w| w == b"__")
}

// ------------------------------------------------------------------------------------------------ msgpack

/// `msgpack.dumps(map)` (msgpack-python 1.x defaults: `use_bin_type=True`, floats as float 64, the smallest
/// int encoding).
fn to_msgpack(map: &Map<String, Value>) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    write_msgpack_map(&mut out, map, 1)?;
    Ok(out)
}

fn msgpack_write_error<E: std::fmt::Display>(e: E) -> CodecError {
    CodecError::Unencodable(format!("msgpack: {e}"))
}

fn msgpack_len(len: usize) -> Result<u32, CodecError> {
    u32::try_from(len).map_err(|_| CodecError::Unencodable("msgpack: more than 2^32 - 1 items or bytes".to_owned()))
}

fn write_msgpack_map(out: &mut Vec<u8>, map: &Map<String, Value>, depth: usize) -> Result<(), CodecError> {
    if depth > MSGPACK_MAX_ENCODE_DEPTH {
        return Err(CodecError::Unencodable(format!("msgpack: nesting deeper than {MSGPACK_MAX_ENCODE_DEPTH} levels")));
    }
    rmp::encode::write_map_len(out, msgpack_len(map.len())?).map_err(msgpack_write_error)?;
    for (key, value) in map {
        msgpack_len(key.len())?;
        rmp::encode::write_str(out, key).map_err(msgpack_write_error)?;
        write_msgpack_value(out, value, depth)?;
    }
    Ok(())
}

fn write_msgpack_value(out: &mut Vec<u8>, value: &Value, depth: usize) -> Result<(), CodecError> {
    match value {
        Value::Null => rmp::encode::write_nil(out).map_err(msgpack_write_error),
        Value::Bool(b) => rmp::encode::write_bool(out, *b).map_err(msgpack_write_error),
        Value::Number(n) => {
            let text = n.to_string();
            if let Some(x) = non_finite_value(&text) {
                rmp::encode::write_f64(out, x).map_err(msgpack_write_error)
            } else if text.contains(['.', 'e', 'E']) {
                let x: f64 = text.parse().map_err(|_| CodecError::Unencodable(format!("{text:?} is not a float")))?;
                rmp::encode::write_f64(out, x).map_err(msgpack_write_error)
            } else if let Ok(v) = text.parse::<i64>() {
                rmp::encode::write_sint(out, v).map(drop).map_err(msgpack_write_error)
            } else if let Ok(v) = text.parse::<u64>() {
                rmp::encode::write_uint(out, v).map(drop).map_err(msgpack_write_error)
            } else {
                Err(CodecError::Unencodable(format!("msgpack: integer {text} is out of range (64 bits)")))
            }
        }
        Value::String(s) => {
            msgpack_len(s.len())?;
            rmp::encode::write_str(out, s).map_err(msgpack_write_error)
        }
        Value::Array(items) => {
            if depth + 1 > MSGPACK_MAX_ENCODE_DEPTH {
                return Err(CodecError::Unencodable(format!(
                    "msgpack: nesting deeper than {MSGPACK_MAX_ENCODE_DEPTH} levels"
                )));
            }
            rmp::encode::write_array_len(out, msgpack_len(items.len())?).map_err(msgpack_write_error)?;
            for item in items {
                write_msgpack_value(out, item, depth + 1)?;
            }
            Ok(())
        }
        Value::Object(map) => write_msgpack_map(out, map, depth + 1),
    }
}

/// `msgpack.loads(data, raw=False)` of a session dict, bounded by `limits.max_depth` and `limits.max_items`.
fn from_msgpack(data: &[u8], limits: &PickleLimits) -> Result<Map<String, Value>, CodecError> {
    let mut reader =
        MsgpackReader { data, pos: 0, items: 0, max_items: limits.max_items, max_depth: limits.max_depth.min(1000) };
    let value = reader.value(1)?;
    if reader.pos != data.len() {
        return Err(CodecError::Msgpack(format!("extra data after the value at offset {}", reader.pos)));
    }
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(CodecError::NotAnObject),
    }
}

struct MsgpackReader<'a> {
    data: &'a [u8],
    pos: usize,
    items: usize,
    max_items: usize,
    max_depth: usize,
}

fn msgpack_error(message: impl Into<String>) -> CodecError {
    CodecError::Msgpack(message.into())
}

impl<'a> MsgpackReader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if n > self.data.len() - self.pos {
            return Err(msgpack_error(format!("truncated: {n} bytes needed at offset {}", self.pos)));
        }
        let slice = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn uint(&mut self, width: usize) -> Result<u64, CodecError> {
        Ok(self.take(width)?.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
    }

    fn str(&mut self, len: usize) -> Result<String, CodecError> {
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| msgpack_error("a str is not valid UTF-8"))
    }

    /// A Python float; NaN and the infinities become `NaN`/`Infinity`/`-Infinity` numbers, as in the pickle
    /// reader.
    fn float(x: f64) -> Result<Value, CodecError> {
        python_float_number(x).map(Value::Number).ok_or_else(|| msgpack_error(format!("{x} is not a number")))
    }

    /// Checks a container's announced length against the remaining input (each item takes at least one byte)
    /// before anything is allocated.
    fn count(&mut self, len: u64, per_item: u64) -> Result<usize, CodecError> {
        let remaining = (self.data.len() - self.pos) as u64;
        if len.saturating_mul(per_item) > remaining {
            return Err(msgpack_error(format!("truncated: {len} items announced at offset {}", self.pos)));
        }
        usize::try_from(len).map_err(|_| msgpack_error("container too large"))
    }

    fn value(&mut self, depth: usize) -> Result<Value, CodecError> {
        self.items += 1;
        if self.items > self.max_items {
            return Err(CodecError::WorkLimit { what: "values (max_items)", limit: self.max_items });
        }
        let marker = self.take(1)?[0];
        let len = match marker {
            0x00..=0x7f => return Ok(Value::Number(Number::from(marker))),
            0xe0..=0xff => return Ok(Value::Number(Number::from(i64::from(marker as i8)))),
            0xc0 => return Ok(Value::Null),
            0xc2 => return Ok(Value::Bool(false)),
            0xc3 => return Ok(Value::Bool(true)),
            0xcc..=0xcf => {
                let v = self.uint(1 << (marker - 0xcc))?;
                return Ok(Value::Number(Number::from(v)));
            }
            0xd0..=0xd3 => {
                let width = 1usize << (marker - 0xd0);
                let raw = self.uint(width)?;
                // Sign-extend from `width` bytes.
                let shift = 64 - 8 * width as u32;
                let v = ((raw << shift) as i64) >> shift;
                return Ok(Value::Number(Number::from(v)));
            }
            0xca => {
                let bits = u32::try_from(self.uint(4)?).unwrap_or(0);
                return Self::float(f64::from(f32::from_bits(bits)));
            }
            0xcb => return Self::float(f64::from_bits(self.uint(8)?)),
            0xa0..=0xbf => return self.str(usize::from(marker & 0x1f)).map(Value::String),
            0xd9..=0xdb => {
                let len = self.uint(1 << (marker - 0xd9))?;
                let len = self.count(len, 1)?;
                return self.str(len).map(Value::String);
            }
            0xc4..=0xc6 => return Err(msgpack_error("bytes (bin) cannot be held by a session value")),
            0xc7..=0xc9 | 0xd4..=0xd8 => {
                // ext: 0xc7-0xc9 carry a length, then the type byte; fixext 0xd4-0xd8 only the type byte.
                if marker <= 0xc9 {
                    self.uint(1 << (marker - 0xc7))?;
                }
                let ext_type = self.take(1)?[0] as i8;
                let name = if ext_type == -1 { "msgpack.Timestamp" } else { "msgpack.ExtType" };
                return Err(msgpack_error(format!("{name} (ext type {ext_type}) cannot be held by a session value")));
            }
            0xc1 => return Err(msgpack_error(format!("reserved byte 0xc1 at offset {}", self.pos - 1))),
            0x90..=0x9f => (false, u64::from(marker & 0x0f)),
            0xdc => (false, self.uint(2)?),
            0xdd => (false, self.uint(4)?),
            0x80..=0x8f => (true, u64::from(marker & 0x0f)),
            0xde => (true, self.uint(2)?),
            0xdf => (true, self.uint(4)?),
        };
        if depth > self.max_depth {
            return Err(msgpack_error(format!("nesting deeper than {} levels (max_depth)", self.max_depth)));
        }
        match len {
            (false, n) => {
                let n = self.count(n, 1)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Ok(Value::Array(items))
            }
            (true, n) => {
                let n = self.count(n, 2)?;
                let mut map = Map::new();
                for _ in 0..n {
                    let key_offset = self.pos;
                    let key = match self.value(depth + 1)? {
                        Value::String(key) => key,
                        other => {
                            let kind = match other {
                                Value::Null => "NoneType",
                                Value::Bool(_) => "bool",
                                Value::Number(n) if n.to_string().contains(['.', 'e', 'E']) => "float",
                                Value::Number(_) => "int",
                                Value::Array(_) => "list",
                                Value::Object(_) => "dict",
                                Value::String(_) => "str",
                            };
                            return Err(msgpack_error(format!("map key of type {kind} at offset {key_offset}")));
                        }
                    };
                    let value = self.value(depth + 1)?;
                    map.insert(key, value);
                }
                Ok(Value::Object(map))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALL_COMPRESSORS: [CacheCompressor; 6] = [
        CacheCompressor::None,
        CacheCompressor::Zlib,
        CacheCompressor::Gzip,
        CacheCompressor::Lz4,
        CacheCompressor::Zstd,
        CacheCompressor::Lzma,
    ];
    const ALL_SERIALIZERS: [CacheSerializer; 4] = [
        CacheSerializer::Pickle { protocol: 4 },
        CacheSerializer::Pickle { protocol: 5 },
        CacheSerializer::Json,
        CacheSerializer::Msgpack,
    ];

    /// `pickle.dumps(None, p)` for every protocol, `json.dumps(None)`, `msgpack.packb(None)`: a stored `None`.
    #[test]
    fn none_is_written_and_recognised_as_python_writes_it() {
        for (serializer, bytes) in [
            (CacheSerializer::Pickle { protocol: 5 }, &b"\x80\x05N."[..]),
            (CacheSerializer::Pickle { protocol: 4 }, b"\x80\x04N."),
            (CacheSerializer::Json, b"null"),
            (CacheSerializer::Msgpack, b"\xc0"),
        ] {
            let codec = CacheValueCodec::django_redis(serializer, CacheCompressor::Zlib);
            assert_eq!(codec.encode_none(), bytes, "{serializer:?}");
            assert!(codec.is_none(bytes));
            assert!(!codec.is_none(&codec.encode(&Map::new()).unwrap()), "an empty dict is not None");
        }
        let pickle = CacheValueCodec::django_redis_cache();
        for old_protocol in [&b"N."[..], b"\x80\x02N.", b"\x80\x03N."] {
            assert!(pickle.is_none(old_protocol));
        }
        assert!(!pickle.is_none(b"null"));
    }

    fn obj(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    fn sample() -> Map<String, Value> {
        obj(json!({
            "_auth_user_id": "42",
            "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
            "cart": [{"sku": "A-1", "qty": 2, "price": 9.99}, {"sku": "B-2", "qty": 1}],
            "name": "bär 😀",
            "flags": [true, false, null],
            "big": 18446744073709551615u64,
            "neg": -9223372036854775808i64,
            "text": "lorem ipsum ".repeat(30),
        }))
    }

    #[test]
    fn round_trip_every_serializer_and_compressor() {
        for map in [sample(), Map::new(), obj(json!({"a": 1}))] {
            for serializer in ALL_SERIALIZERS {
                for compressor in ALL_COMPRESSORS {
                    let codec = CacheValueCodec::django_redis(serializer, compressor);
                    let bytes = codec.encode(&map).unwrap();
                    let raw = codec.serialize(&map).unwrap();
                    if raw.len() <= compressor.min_length() {
                        assert_eq!(bytes, raw, "{serializer:?} {compressor:?}: short values stay uncompressed");
                    } else {
                        assert!(compressor.has_magic(&bytes), "{serializer:?} {compressor:?}: compressed");
                    }
                    assert_eq!(codec.decode(&bytes).unwrap(), map, "{serializer:?} {compressor:?}");
                }
            }
        }
    }

    #[test]
    fn constructors() {
        let django = CacheValueCodec::django_redis_cache();
        assert_eq!(django.serializer, CacheSerializer::Pickle { protocol: 5 });
        assert_eq!(django.compressor, CacheCompressor::None);
        let map = obj(json!({"foo": "bar"}));
        assert_eq!(django.encode(&map).unwrap(), hex("80059510000000000000007d948c03666f6f948c0362617294732e"));
        let redis = CacheValueCodec::django_redis(CacheSerializer::DJANGO_REDIS_DEFAULT, CacheCompressor::None);
        assert_eq!(redis.encode(&map).unwrap(), hex("80049510000000000000007d948c03666f6f948c0362617294732e"));
    }

    #[test]
    fn thresholds() {
        let data = [b'a'; 100];
        for compressor in ALL_COMPRESSORS {
            let min = compressor.min_length();
            if min == usize::MAX {
                continue;
            }
            assert_eq!(compressor.compress(&data[..min.min(100)]).unwrap(), &data[..min.min(100)]);
        }
        assert_eq!(CacheCompressor::Zlib.compress(&data[..15]).unwrap(), &data[..15]);
        assert_ne!(CacheCompressor::Zlib.compress(&data[..16]).unwrap(), &data[..16]);
        assert_eq!(CacheCompressor::Lzma.compress(&data[..100]).unwrap(), &data[..100]);
        let long = [b'a'; 101];
        assert!(CacheCompressor::Lzma.has_magic(&CacheCompressor::Lzma.compress(&long).unwrap()));
    }

    #[test]
    fn json_uses_python_default_separators() {
        let codec = CacheValueCodec::django_redis(CacheSerializer::Json, CacheCompressor::None);
        let map = obj(json!({"a": [1, 2.5, "é"], "b": {"c": null}}));
        assert_eq!(codec.encode(&map).unwrap(), br#"{"a": [1, 2.5, "\u00e9"], "b": {"c": null}}"#);
        // Read as UTF-8 (json.loads(value.decode())).
        assert_eq!(codec.decode("{\"a\": \"é\"}".as_bytes()).unwrap(), obj(json!({"a": "é"})));
        assert!(matches!(codec.decode(b"{\"a\": \"\xe9\"}"), Err(CodecError::Json(_))));
        assert!(matches!(codec.decode(b"[1]"), Err(CodecError::NotAnObject)));
    }

    #[test]
    fn msgpack_matches_msgpack_python() {
        // msgpack.dumps({'a': [1, -1, -33, 200, -200, 70000, 2**63, -2**63, 1.5, 'x'*40, True, None]})
        let expected = hex(&format!(
            "81a1619c01ffd0dfccc8d1ff38ce00011170cf8000000000000000d38000000000000000cb3ff8000000000000d928{}c3c0",
            "78".repeat(40)
        ));
        let map = obj(
            json!({"a": [1, -1, -33, 200, -200, 70000, 9223372036854775808u64, i64::MIN, 1.5, "x".repeat(40), true, null]}),
        );
        assert_eq!(to_msgpack(&map).unwrap(), expected);
        assert_eq!(from_msgpack(&expected, &PickleLimits::default()).unwrap(), map);
    }

    #[test]
    fn msgpack_refusals() {
        let limits = PickleLimits::default();
        let big: Map<String, Value> = serde_json::from_str(r#"{"n": 18446744073709551616}"#).unwrap();
        assert!(matches!(to_msgpack(&big), Err(CodecError::Unencodable(_))));
        let neg: Map<String, Value> = serde_json::from_str(r#"{"n": -9223372036854775809}"#).unwrap();
        assert!(matches!(to_msgpack(&neg), Err(CodecError::Unencodable(_))));
        let cases: &[&[u8]] = &[
            b"\x81\xa1a\xc4\x01x",                // bin
            b"\x81\xa1a\xd6\xff\x00\x00\x00\x00", // timestamp ext
            b"\x81\xa1a\xc7\x01\x05x",            // ext8
            b"\x81\x01\x02",                      // int key
            b"\x81\xa1a",                         // truncated
            b"\x81\xa1a\xc1",                     // reserved
            b"\xdf\xff\xff\xff\xff",              // huge map on a tiny input
            b"\xdd\xff\xff\xff\xff",              // huge array
            b"\xdb\xff\xff\xff\xff",              // huge str
            b"\x80\x00",                          // extra data
            b"\x81\xa1a\xa2\xff\xfe",             // invalid UTF-8
        ];
        for case in cases {
            assert!(matches!(from_msgpack(case, &limits), Err(CodecError::Msgpack(_))), "{case:?}");
        }
        assert!(matches!(from_msgpack(b"\x91\x01", &limits), Err(CodecError::NotAnObject)));
        // 10 000 nested arrays.
        let mut deep = b"\x81\xa1a".to_vec();
        deep.extend(std::iter::repeat_n(0x91, 10_000));
        deep.push(0xc0);
        assert!(matches!(from_msgpack(&deep, &limits), Err(CodecError::Msgpack(_))));
        // float32 is read as a Python float.
        let map = from_msgpack(b"\x81\xa1f\xca\x3f\xc0\x00\x00", &limits).unwrap();
        assert_eq!(Value::Object(map), json!({"f": 1.5}));
        // NaN and the infinities (from Python's JSON) are written as the doubles msgpack-python writes
        // (`msgpack.dumps({"a": float("nan")})` is `81 a1 61 cb 7f f8 00 00 00 00 00 00`) and read back unchanged.
        for (bytes, literal) in [
            (&b"\x81\xa1a\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"[..], r#"{"a":NaN}"#),
            (b"\x81\xa1a\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00", r#"{"a":Infinity}"#),
            (b"\x81\xa1a\xcb\xff\xf0\x00\x00\x00\x00\x00\x00", r#"{"a":-Infinity}"#),
        ] {
            let map = crate::codec::json::from_python_json(literal.as_bytes()).unwrap();
            assert_eq!(to_msgpack(&map).unwrap(), bytes);
            assert_eq!(crate::codec::json::object_to_python_json(&from_msgpack(bytes, &limits).unwrap()), literal);
        }
    }

    /// django-redis' JSON serializer writes `json.dumps({"n": float("nan"), "i": float("inf")})` as below
    /// (CPython 3.11); reading accepts the literals and writing gives the same bytes back.
    #[test]
    fn json_serializer_keeps_nan_and_infinity() {
        let stored = br#"{"n": NaN, "i": Infinity, "m": [-Infinity]}"#;
        let codec = CacheValueCodec::django_redis(CacheSerializer::Json, CacheCompressor::None);
        let map = codec.decode(stored).unwrap();
        assert_eq!(codec.encode(&map).unwrap(), stored);
        // Compressed, the same.
        let zlib = CacheValueCodec::django_redis(CacheSerializer::Json, CacheCompressor::Zlib);
        assert_eq!(zlib.decode(&zlib.encode(&map).unwrap()).unwrap(), map);
    }

    #[test]
    fn plain_integers_are_not_sessions() {
        for codec in [
            CacheValueCodec::django_redis_cache(),
            CacheValueCodec::django_redis(CacheSerializer::Json, CacheCompressor::Zlib),
        ] {
            for value in [&b"42"[..], b"-7", b" 1_000 ", b"+3\n"] {
                assert!(matches!(codec.decode(value), Err(CodecError::NotAnObject)), "{value:?}");
            }
        }
        for value in [&b"1__0"[..], b"_1", b"1_", b"", b"-", b"1.5", b"0x10"] {
            assert!(!is_python_int(value), "{value:?}");
        }
    }

    #[test]
    fn uncompressed_values_are_read_when_a_compressor_is_configured() {
        // django-redis stores short values uncompressed and reads them back through the fallback.
        let map = obj(json!({"foo": "bar"}));
        let plain = to_pickle(&map, 4).unwrap();
        for compressor in ALL_COMPRESSORS {
            let codec = CacheValueCodec::django_redis(CacheSerializer::DJANGO_REDIS_DEFAULT, compressor);
            assert_eq!(codec.decode(&plain).unwrap(), map, "{compressor:?}");
        }
    }

    #[test]
    fn corrupt_compressed_data_falls_back_and_then_fails() {
        let map = sample();
        for compressor in ALL_COMPRESSORS.into_iter().skip(1) {
            let codec = CacheValueCodec::django_redis(CacheSerializer::DJANGO_REDIS_DEFAULT, compressor);
            let bytes = codec.encode(&map).unwrap();
            // Truncated: decompression fails, the raw bytes are not a pickle either.
            let truncated = &bytes[..bytes.len() - 5];
            assert!(compressor.decompress(truncated, 1 << 20).unwrap().is_none(), "{compressor:?}");
            assert!(matches!(codec.decode(truncated), Err(CodecError::InvalidPickle(_))), "{compressor:?}");
        }
    }

    /// 16 MiB of zeros compressed by each compressor must stop at the 1 MiB limit.
    #[test]
    fn compression_bombs_are_cut_off() {
        let zeros = vec![0u8; 16 * 1024 * 1024];
        let limit = 1024 * 1024;
        for compressor in ALL_COMPRESSORS.into_iter().skip(1) {
            let bomb = compressor.compress_with_mtime(&zeros, 0).unwrap();
            assert!(bomb.len() < 1024 * 1024, "{compressor:?}: {} bytes", bomb.len());
            assert!(
                matches!(compressor.decompress(&bomb, limit), Err(CodecError::TooLarge { limit: l }) if l == limit),
                "{compressor:?}"
            );
            let mut codec = CacheValueCodec::django_redis(CacheSerializer::DJANGO_REDIS_DEFAULT, compressor);
            codec.limits.max_inflated_bytes = limit;
            assert!(matches!(codec.decode(&bomb), Err(CodecError::TooLarge { .. })), "{compressor:?}");
            // Exactly at the limit is fine.
            let exact = compressor.compress_with_mtime(&zeros[..limit], 0).unwrap();
            assert_eq!(compressor.decompress(&exact, limit).unwrap().map(|v| v.len()), Some(limit), "{compressor:?}");
        }
    }

    #[test]
    fn oversized_values_are_refused_before_work() {
        let mut codec = CacheValueCodec::django_redis_cache();
        codec.limits.max_value_bytes = 10;
        assert!(matches!(codec.decode(&[0u8; 11]), Err(CodecError::TooLarge { limit: 10 })));
    }

    /// What django-redis stores, made by CPython (`tests/data/gen_cache_fixtures.py`): every serializer x
    /// compressor for a few sessions. Reading must give the session back; writing must give the same bytes
    /// where the compressor is the same library at the same settings (see `IDENTICAL`).
    #[test]
    fn python_made_cache_values() {
        let root: Value = serde_json::from_str(include_str!("../../tests/data/cache_values.json")).unwrap();
        let mtime = u32::try_from(root["gzip_mtime"].as_u64().unwrap()).unwrap();
        let sessions: Vec<Map<String, Value>> = root["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| serde_json::from_str(s["json"].as_str().unwrap()).unwrap())
            .collect();
        let mut checked = 0;
        let mut identical = 0;
        for value in root["values"].as_array().unwrap() {
            let session = &sessions[usize::try_from(value["session"].as_u64().unwrap()).unwrap()];
            let serializer = match value["serializer"].as_str().unwrap() {
                "pickle4" => CacheSerializer::Pickle { protocol: 4 },
                "pickle5" => CacheSerializer::Pickle { protocol: 5 },
                "json" => CacheSerializer::Json,
                "msgpack" => CacheSerializer::Msgpack,
                other => panic!("unknown serializer {other}"),
            };
            if value.get("error").is_some() {
                // msgpack-python raised OverflowError: so must we.
                let codec = CacheValueCodec::django_redis(serializer, CacheCompressor::None);
                assert!(matches!(codec.encode(session), Err(CodecError::Unencodable(_))), "{value}");
                continue;
            }
            let compressor = match value["compressor"].as_str().unwrap() {
                "none" => CacheCompressor::None,
                "zlib" => CacheCompressor::Zlib,
                "gzip" => CacheCompressor::Gzip,
                "lz4" => CacheCompressor::Lz4,
                "zstd" => CacheCompressor::Zstd,
                "lzma" => CacheCompressor::Lzma,
                other => panic!("unknown compressor {other}"),
            };
            let codec = CacheValueCodec::django_redis(serializer, compressor);
            let python = hex(value["hex"].as_str().unwrap());
            assert_eq!(&codec.decode(&python).unwrap(), session, "decode {serializer:?} {compressor:?}");
            let ours = compressor.compress_with_mtime(&codec.serialize(session).unwrap(), mtime).unwrap();
            if IDENTICAL.contains(&compressor) || ours.len() <= 15 {
                assert_eq!(ours, python, "encode {serializer:?} {compressor:?}");
                identical += 1;
            } else {
                // lz4: magic, flags (independent blocks for one block), 64 KiB blocks, content size, checksum.
                assert_eq!(ours[..15], python[..15], "lz4 frame header {serializer:?}");
            }
            // Whatever the bytes, our output reads back.
            assert_eq!(&codec.decode(&ours).unwrap(), session);
            checked += 1;
        }
        assert!(checked >= 100, "{checked}");
        assert!(identical >= 80, "{identical}");
    }

    /// Compressors whose output is byte-identical to CPython's here: zlib and gzip use the same zlib (1.2.13),
    /// zstd the same libzstd (1.5.7) as the `zstandard` wheel, and liblzma 5.8 (bundled) encodes these values
    /// as CPython's liblzma 5.4 does. lz4 is not in the list: `lz4_flex` is not liblz4 and may choose other
    /// matches, so only its frame header is compared.
    const IDENTICAL: [CacheCompressor; 5] = [
        CacheCompressor::None,
        CacheCompressor::Zlib,
        CacheCompressor::Gzip,
        CacheCompressor::Zstd,
        CacheCompressor::Lzma,
    ];

    #[test]
    fn gzip_header_and_members_like_python() {
        let data = b"hello hello hello hello".to_vec();
        let one = CacheCompressor::Gzip.compress_with_mtime(&data, 1_700_000_000).unwrap();
        assert_eq!(&one[..10], &[0x1f, 0x8b, 8, 0, 0x00, 0xf1, 0x53, 0x65, 2, 255]);
        // Two members with zero padding between them, as gzip.decompress accepts.
        let mut two = one.clone();
        two.extend_from_slice(&[0, 0, 0]);
        two.extend_from_slice(&one);
        let out = CacheCompressor::Gzip.decompress(&two, 1 << 20).unwrap().unwrap();
        assert_eq!(out, [data.clone(), data.clone()].concat());
        // Optional header fields: FNAME and FEXTRA.
        let mut named = vec![0x1f, 0x8b, 8, 8 | 4, 0, 0, 0, 0, 0, 255, 2, 0, b'x', b'y'];
        named.extend_from_slice(b"name\0");
        named.extend_from_slice(&one[10..]);
        assert_eq!(CacheCompressor::Gzip.decompress(&named, 1 << 20).unwrap().unwrap(), data);
        // A bad CRC is not gzip data.
        let mut bad = one.clone();
        let n = bad.len();
        bad[n - 8] ^= 1;
        assert!(CacheCompressor::Gzip.decompress(&bad, 1 << 20).unwrap().is_none());
    }
}
