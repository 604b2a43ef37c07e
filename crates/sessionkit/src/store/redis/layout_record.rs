//! The layout record: the shape the `string` and `hash` sessions under a key prefix were written with, kept in
//! Redis next to them, so that a store configured with another shape refuses to connect instead of finding none
//! of the sessions (and logging every user out).
//!
//! One string key per prefix, `<prefix>layout`, written once (`SET NX`) by the first store that opens the prefix
//! to write, without expiry:
//!
//! ```text
//! sessionkit:layout  →  "layout=hash;buckets=1024;hashed_keys=false;format=1"
//! ```
//!
//! What it records is what decides where a session is looked up and how its value is read: the layout (`s:` keys
//! or `h:` buckets), the bucket count (which bucket a key hashes to), hashed keys (the key or its SHA-256) and the
//! value format version. Compression is not recorded: every value says in its header how it is compressed.
//!
//! On connect the store reads the record (one `GET`): a match connects; a record that is missing is written,
//! unless a pipelined `EXISTS` finds data of another shape already there (`hash` buckets `<prefix>h:0…15` under a
//! `string` store, buckets `<prefix>h:<buckets>…` past a `hash` store's count: data from before records existed),
//! which is logged and left for `doctor`; a mismatch is
//! [`ConfigError::LayoutMismatch`], unless the URL says `adopt_layout=true`, which rewrites the record (sessions of
//! the old shape stay where they are, unreachable: move them first with `sessionkit migrate` to a new prefix). A
//! store opened read-only (the CLI's `list`, `count`, `show`, `stats`, `doctor`) checks but never writes. The
//! `django-cache` layout has no record: its keys and values are Django's, decided by Django's `CACHES` settings.

use std::fmt;

use redis::Value as RedisValue;

use super::config::{Layout, RedisOptions};
use super::connection::RedisConnection;
use crate::store::Access;
use crate::{ConfigError, StoreError};

/// The value format version of the compact values this build writes (the first byte of every value).
pub(crate) const VALUE_FORMAT: u8 = super::value::VERSION;

/// The shape of a prefix's sessions, as the record keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutShape {
    /// `string` or `hash`.
    pub layout: Layout,
    /// The bucket count (`hash`); `None` for `string`.
    pub buckets: Option<u32>,
    /// Keys stored as their SHA-256.
    pub hashed_keys: bool,
    /// The value format version.
    pub format: u8,
}

impl LayoutShape {
    /// The shape a store with `options` writes; `None` for the `django-cache` layout, which has no record.
    pub fn of(options: &RedisOptions) -> Option<Self> {
        let buckets = match options.layout {
            Layout::DjangoCache => return None,
            Layout::String => None,
            Layout::Hash => Some(options.buckets),
        };
        Some(LayoutShape { layout: options.layout, buckets, hashed_keys: options.hashed_keys, format: VALUE_FORMAT })
    }

    /// Parses a record's text; unknown fields are an error (a record from a newer sessionkit is not guessed at).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (mut layout, mut buckets, mut hashed_keys, mut format) = (None, None, None, None);
        for part in text.split(';').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').ok_or_else(|| format!("{part:?} is not name=value"))?;
            match name {
                "layout" => {
                    layout = Some(match value {
                        "string" => Layout::String,
                        "hash" => Layout::Hash,
                        other => return Err(format!("layout {other:?}")),
                    })
                }
                "buckets" => buckets = Some(value.parse().map_err(|_| format!("buckets {value:?}"))?),
                "hashed_keys" => {
                    hashed_keys = Some(match value {
                        "true" => true,
                        "false" => false,
                        other => return Err(format!("hashed_keys {other:?}")),
                    })
                }
                "format" => format = Some(value.parse().map_err(|_| format!("format {value:?}"))?),
                other => return Err(format!("unknown field {other:?}")),
            }
        }
        let layout = layout.ok_or("no layout")?;
        if (layout == Layout::Hash) != buckets.is_some() {
            return Err("buckets go with the hash layout only".into());
        }
        Ok(LayoutShape {
            layout,
            buckets,
            hashed_keys: hashed_keys.ok_or("no hashed_keys")?,
            format: format.ok_or("no format")?,
        })
    }

    /// The URL options that select this shape (`layout=hash&buckets=64&hashed_keys=true`).
    pub fn url_options(&self) -> String {
        let mut out = format!("layout={}", self.layout.as_str());
        if let Some(buckets) = self.buckets {
            out.push_str(&format!("&buckets={buckets}"));
        }
        if self.hashed_keys {
            out.push_str("&hashed_keys=true");
        }
        out
    }
}

impl fmt::Display for LayoutShape {
    /// The record's text: `layout=hash;buckets=1024;hashed_keys=false;format=1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layout={}", self.layout.as_str())?;
        if let Some(buckets) = self.buckets {
            write!(f, ";buckets={buckets}")?;
        }
        write!(f, ";hashed_keys={};format={}", self.hashed_keys, self.format)
    }
}

/// The key of the record of `prefix`.
pub fn record_key(prefix: &str) -> String {
    format!("{prefix}layout")
}

/// What a store found when it checked the record on connect (for `doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordCheck {
    /// The `django-cache` layout: Django's keys, no record.
    NotApplicable,
    /// The record matches this store's configuration.
    Matches,
    /// There was no record; this store wrote it.
    Written,
    /// There is no record: the store was opened read-only, or the prefix holds data of another shape already
    /// (written before records existed), which the store would not enshrine (logged at warn).
    Missing,
    /// The record could not be read or written: the server refused (an ACL without access to the key, a
    /// read-only replica). Logged at warn; the store works, but a mismatch goes undetected.
    Unchecked {
        /// The server's reply.
        reason: String,
    },
    /// The record named another shape and `adopt_layout=true` replaced it.
    Adopted {
        /// What the record said before.
        previous: String,
    },
}

/// Reads the record of the store's prefix and compares it with `options` (see the module docs).
///
/// A connection error fails the connect as any command would; a server error (an ACL without access to the
/// record's key, a read-only replica) does not: the store connects unchecked and says so in the log
/// ([`RecordCheck::Unchecked`]).
pub(crate) async fn check(
    conn: &RedisConnection,
    options: &RedisOptions,
    describe: &str,
    access: Access,
) -> Result<RecordCheck, StoreError> {
    let Some(shape) = LayoutShape::of(options) else { return Ok(RecordCheck::NotApplicable) };
    let key = record_key(&options.prefix);
    match check_or_write(conn, options, &shape, &key, describe, access).await {
        Err(StoreError::Unavailable { source, .. }) if is_server_reply(source.as_ref()) => {
            let reason = source.to_string();
            tracing::warn!(store = %describe, record = %key, %reason,
                "cannot read or write the layout record: a layout mismatch will not be detected");
            Ok(RecordCheck::Unchecked { reason })
        }
        other => other,
    }
}

/// True for an error Redis answered (`NOPERM`, `READONLY`, …), as opposed to a connection that failed.
fn is_server_reply(err: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    err.downcast_ref::<redis::RedisError>().is_some_and(|e| e.code().is_some())
}

/// Reads the record as text (`None`: there is none).
async fn read(conn: &RedisConnection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(match conn.query::<RedisValue>(redis::cmd("GET").arg(key)).await? {
        RedisValue::Nil => None,
        RedisValue::BulkString(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        RedisValue::SimpleString(text) => Some(text),
        other => Some(format!("{other:?}")),
    })
}

/// True when `text` records `shape` (compared parsed: a record that says the same in another order matches).
fn records(text: &str, shape: &LayoutShape) -> bool {
    LayoutShape::parse(text).is_ok_and(|recorded| recorded == *shape)
}

async fn check_or_write(
    conn: &RedisConnection,
    options: &RedisOptions,
    shape: &LayoutShape,
    key: &str,
    describe: &str,
    access: Access,
) -> Result<RecordCheck, StoreError> {
    let wanted = shape.to_string();
    let mut stored = read(conn, key).await?;
    if stored.is_none() && access == Access::ReadWrite {
        if let Some(evidence) = other_shape_evidence(conn, options).await? {
            // Data of another shape is there already (written before records existed): recording this store's
            // shape would enshrine a wrong URL. Leave the prefix unrecorded and say so; `doctor` reports it.
            tracing::warn!(store = %describe, record = %key, %evidence,
                "not recording the layout of this key prefix: data of another shape is there; check the URL (sessionkit doctor)");
            return Ok(RecordCheck::Missing);
        }
        // NX: of two stores opening an empty prefix with different shapes, one records its shape and the other
        // reads it back below.
        let set: RedisValue = conn.query(redis::cmd("SET").arg(key).arg(&wanted).arg("NX")).await?;
        if !matches!(set, RedisValue::Nil) {
            tracing::info!(store = %describe, record = %key, shape = %wanted, "recorded the layout of this key prefix");
            return Ok(RecordCheck::Written);
        }
        stored = read(conn, key).await?;
    }
    match stored {
        None => Ok(RecordCheck::Missing),
        Some(text) if records(&text, shape) => Ok(RecordCheck::Matches),
        Some(text) if options.adopt_layout && access == Access::ReadWrite => {
            let _: RedisValue = conn.query(redis::cmd("SET").arg(key).arg(&wanted)).await?;
            tracing::warn!(store = %describe, record = %key, previous = %text, shape = %wanted,
                "adopt_layout=true: replaced the layout record; sessions written with the previous shape are unreachable");
            Ok(RecordCheck::Adopted { previous: text })
        }
        Some(text) => Err(mismatch(describe, key, &text, shape, options.adopt_layout)),
    }
}

/// How many bucket keys [`other_shape_evidence`] looks at.
const EVIDENCE_KEYS: u32 = 16;

/// Cheap signs (one pipelined round trip of `EXISTS`) that the prefix holds sessions of another shape than
/// `options`: `hash` buckets under a `string` store (`<prefix>h:0` … `h:15`), or buckets past a `hash` store's
/// count (`<prefix>h:<buckets>` … `h:<buckets + 15>`). A real deployment has sessions in every bucket, so 16 keys
/// are plenty; a probe that fails (a Cluster refusing the pipeline) is no evidence.
async fn other_shape_evidence(conn: &RedisConnection, options: &RedisOptions) -> Result<Option<String>, StoreError> {
    let first = match options.layout {
        Layout::String => 0,
        Layout::Hash => options.buckets,
        Layout::DjangoCache => return Ok(None),
    };
    let keys: Vec<String> =
        (first..first.saturating_add(EVIDENCE_KEYS)).map(|n| format!("{}h:{n}", options.prefix)).collect();
    let mut pipe = redis::pipe();
    for key in &keys {
        pipe.cmd("EXISTS").arg(key);
    }
    let found: Vec<i64> = match conn.query_pipeline(&pipe).await {
        Ok(found) => found,
        Err(err) => {
            tracing::debug!(%err, "layout evidence probe failed");
            return Ok(None);
        }
    };
    Ok(keys.iter().zip(found).find(|(_, n)| *n > 0).map(|(key, _)| format!("{key} exists")))
}

fn mismatch(describe: &str, key: &str, recorded: &str, configured: &LayoutShape, adopt: bool) -> StoreError {
    let recorded_options = match LayoutShape::parse(recorded) {
        Ok(shape) if shape.format != configured.format => {
            return ConfigError::LayoutMismatch(format!(
                "{describe}: the sessions under this prefix were written in value format {} ({key} = {recorded:?}); \
                 this sessionkit reads and writes format {}: use the sessionkit version that wrote them, or move \
                 them with `sessionkit migrate`",
                shape.format, configured.format
            ))
            .into();
        }
        Ok(shape) if configured.hashed_keys && !shape.hashed_keys => shape.url_options() + "&hashed_keys=false",
        Ok(shape) => shape.url_options(),
        Err(problem) => format!("(unreadable record: {problem})"),
    };
    let adopt = if adopt {
        "adopt_layout=true is set, but this store was opened read-only (a command that only reads never rewrites \
         the record): run the application, or a command that writes, with it"
    } else {
        "or, to start over with this shape and leave the old sessions unreachable, add adopt_layout=true"
    };
    ConfigError::LayoutMismatch(format!(
        "{describe}: the sessions under this prefix were written with {recorded_options} ({key} = {recorded:?}) but \
         this store is configured with {}: it would find none of them. Fix the URL to say {recorded_options}; or \
         move the sessions to a new prefix with `sessionkit migrate --from 'URL?{recorded_options}' --to \
         'URL?{}&prefix=NEW:'` (keep the prefix= of this URL, if it has one, in the first); {adopt}",
        configured.url_options(),
        configured.url_options(),
    ))
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_strangers_are_refused() {
        let options = RedisOptions::from_url("redis://h?layout=hash&buckets=64&hashed_keys=true").unwrap();
        let shape = LayoutShape::of(&options).unwrap();
        assert_eq!(shape.to_string(), "layout=hash;buckets=64;hashed_keys=true;format=1");
        assert_eq!(LayoutShape::parse(&shape.to_string()).unwrap(), shape);
        assert_eq!(shape.url_options(), "layout=hash&buckets=64&hashed_keys=true");
        let string = LayoutShape::of(&RedisOptions::from_url("redis://h").unwrap()).unwrap();
        assert_eq!(string.to_string(), "layout=string;hashed_keys=false;format=1");
        assert!(LayoutShape::of(&RedisOptions::from_url("redis://h?layout=django-cache").unwrap()).is_none());
        for bad in [
            "",
            "layout=tree;hashed_keys=false;format=1",
            "layout=string;buckets=3;hashed_keys=false;format=1",
            "layout=hash;hashed_keys=false;format=1",
            "layout=string;hashed_keys=false;format=1;colour=red",
            "layout=string;hashed_keys=maybe;format=1",
        ] {
            assert!(LayoutShape::parse(bad).is_err(), "{bad}");
        }
        // Compared by meaning, not by text.
        assert!(records("format=1;hashed_keys=false;layout=string", &string));
        assert!(!records("layout=string;hashed_keys=true;format=1", &string));
    }

    #[test]
    fn a_mismatch_names_both_shapes_and_the_fixes() {
        let configured = LayoutShape::of(&RedisOptions::from_url("redis://h?layout=hash&buckets=1024").unwrap());
        let err = mismatch(
            "redis://h",
            "sessionkit:layout",
            "layout=hash;buckets=64;hashed_keys=false;format=1",
            &configured.unwrap(),
            false,
        )
        .to_string();
        assert!(err.contains("written with layout=hash&buckets=64"), "{err}");
        assert!(err.contains("configured with layout=hash&buckets=1024"), "{err}");
        assert!(err.contains("sessionkit migrate") && err.contains("adopt_layout=true"), "{err}");
    }
}
