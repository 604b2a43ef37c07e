//! Read-only views for inspection tools (the demo's session inspector): the header of a stored value, and the time
//! to live Redis itself reports for a session.

use time::OffsetDateTime;

use super::config::Layout;
use super::value::NativeCodec;
use super::RedisStore;
use crate::codec::CodecError;
use crate::{SessionKey, StoreError};

/// The header of a `string` / `hash` layout value (the layouts' compact versioned value), read without decoding
/// the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueHeader {
    /// Byte 0: the format version (1).
    pub version: u8,
    /// Byte 1: the flags as stored (bits 0-1 compression, bits 2-7 zero).
    pub flags: u8,
    /// Bytes 2-5: the expiry the value carries (Unix seconds, u32 big-endian).
    pub expires_at: OffsetDateTime,
}

impl ValueHeader {
    /// Bytes of the header; the payload (the session dict as JSON, maybe compressed) follows.
    pub const LEN: usize = 6;

    /// Reads the header of a stored value; an error for anything that is not a value of this format.
    pub fn parse(bytes: &[u8]) -> Result<ValueHeader, CodecError> {
        let expires_at = NativeCodec::peek_expiry(bytes)?;
        match bytes {
            [version, flags, ..] if flags & !0b11 == 0 => {
                Ok(ValueHeader { version: *version, flags: *flags, expires_at })
            }
            _ => Err(CodecError::Malformed("unknown flags in sessionkit value")),
        }
    }

    /// What bits 0-1 of the flags say about the payload.
    pub fn compression(&self) -> &'static str {
        match self.flags & 0b11 {
            0 => "none",
            1 => "zstd",
            2 => "lz4 (block, size-prefixed)",
            _ => "zstd with sessionkit dictionary 1",
        }
    }
}

/// The time to live of a session's entry as Redis reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerTtl {
    /// `PTTL key` (`string` and `django-cache` layouts): milliseconds left; `-1` no expiry, `-2` no such key.
    KeyPttl(i64),
    /// `HPTTL bucket FIELDS 1 field` (`hash` layout on Redis ≥ 7.4, where fields expire on the server): milliseconds
    /// left; `-1` no expiry on the field, `-2` no such field.
    FieldHpttl(i64),
    /// `hash` layout on a server without field expiry (Redis < 7.4): the field stays until the sweeper
    /// ([`SessionStore::clear_expired`](crate::SessionStore::clear_expired)) removes it once the expiry in its
    /// value's header has passed.
    Sweeper,
}

impl RedisStore {
    /// The time to live Redis reports for the session `key` (one command; reads only).
    pub async fn server_ttl(&self, key: &SessionKey) -> Result<ServerTtl, StoreError> {
        let address = self.address(key);
        match (&address.field, self.options.layout) {
            (Some(field), Layout::Hash) if self.hash_field_expiry => {
                let ttls: Vec<i64> = self
                    .conn
                    .query(redis::cmd("HPTTL").arg(&address.key).arg("FIELDS").arg(1).arg(field.as_slice()))
                    .await?;
                Ok(ServerTtl::FieldHpttl(ttls.first().copied().unwrap_or(-2)))
            }
            (Some(_), _) => Ok(ServerTtl::Sweeper),
            (None, _) => Ok(ServerTtl::KeyPttl(self.conn.query(redis::cmd("PTTL").arg(&address.key)).await?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::codec::DecodeLimits;
    use crate::store::redis::config::Compression;

    #[test]
    fn the_header_of_each_compression_is_read() {
        let data: Map<String, Value> = [("visits".to_owned(), json!("x".repeat(400)))].into_iter().collect();
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        for (compression, expected) in [
            (Compression::None, "none"),
            (Compression::Zstd, "zstd with sessionkit dictionary 1"),
            (Compression::Lz4, "lz4 (block, size-prefixed)"),
        ] {
            let codec = NativeCodec { compression, compress_min_bytes: 0, limits: DecodeLimits::default() };
            let header = ValueHeader::parse(&codec.encode(&data, at)).map_err(|e| e.to_string());
            assert_eq!(header.as_ref().map(ValueHeader::compression), Ok(expected));
            assert_eq!(header.map(|h| (h.version, h.expires_at)), Ok((1, at)));
        }
        assert!(ValueHeader::parse(b"{\"a\":1}").is_err());
        assert!(ValueHeader::parse(&[1, 0x80, 0, 0, 0, 0]).is_err());
    }
}
