//! `memory`: Redis memory per stored session.
//!
//! Reads `used_memory` (`INFO memory`), writes K sessions with distinct keys through the real `Session` API,
//! reads `used_memory` again: bytes per session = delta / K. Nothing is deleted or flushed, so run it against a
//! fresh, otherwise idle server (it warns when the database is not empty).

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use serde_json::{json, Value};
use sessionkit::store::redis::config::{Layout, RedisOptions, Topology};
use sessionkit::store::redis::RedisStore;
use sessionkit::{SessionStore, Settings};

use crate::workload::create_sessions;
use crate::{describe_store, BenchError, StoreDescription, SETTINGS_SECRET};

/// Time allowed for the inspection connection and each inspection command.
const INSPECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bucket hashes inspected at most (`OBJECT ENCODING` + `HLEN` each).
const MAX_BUCKETS_INSPECTED: usize = 100_000;

/// What to run.
#[derive(Debug, Clone)]
pub struct MemoryOptions {
    /// Store URL of a standalone Redis, e.g. `redis://127.0.0.1:6380/?layout=hash&buckets=5000`.
    pub store_url: String,
    /// Sessions to write.
    pub sessions: usize,
    /// Concurrent writers.
    pub concurrency: usize,
    /// Distinct `_auth_user_id`s among the sessions.
    pub users: u64,
}

/// How the `hash` layout's bucket hashes are encoded after the run.
#[derive(Debug, Clone, Default)]
pub struct BucketStats {
    /// Bucket hashes found.
    pub buckets: u64,
    /// Of those, encoded as listpacks (the compact encoding the layout is designed for).
    pub listpack: u64,
    /// Fewest sessions in one bucket.
    pub min_fields: u64,
    /// Most sessions in one bucket.
    pub max_fields: u64,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct MemoryReport {
    /// The store, without credentials.
    pub store: StoreDescription,
    /// Sessions written.
    pub sessions: usize,
    /// Stored size of one session.
    pub value_bytes: usize,
    /// Size of the same session as compact JSON.
    pub json_bytes: usize,
    /// Keys in the database before writing (0 on a fresh server).
    pub keys_before: u64,
    /// `used_memory` before writing.
    pub used_memory_before: u64,
    /// `used_memory` after writing.
    pub used_memory_after: u64,
    /// Time to write the sessions.
    pub write_time: Duration,
    /// `OBJECT ENCODING` of the key holding one sample session.
    pub sample_encoding: Option<String>,
    /// `hash` layout only: bucket encodings and fill.
    pub buckets: Option<BucketStats>,
    /// `hash-max-listpack-entries` and `hash-max-listpack-value`, when `CONFIG GET` is allowed.
    pub listpack_limits: Option<(u64, u64)>,
}

impl MemoryReport {
    /// (after - before) / sessions.
    pub fn bytes_per_session(&self) -> f64 {
        if self.sessions == 0 {
            return 0.0;
        }
        (self.used_memory_after as f64 - self.used_memory_before as f64) / self.sessions as f64
    }

    /// Sessions written per second.
    pub fn writes_per_sec(&self) -> f64 {
        let secs = self.write_time.as_secs_f64();
        if secs > 0.0 {
            self.sessions as f64 / secs
        } else {
            0.0
        }
    }

    /// One flat JSON object (the `--json` output).
    pub fn to_json(&self) -> Value {
        let b = self.buckets.clone();
        json!({
            "mode": "memory",
            "store": self.store.url,
            "layout": self.store.layout,
            "user_index": self.store.user_index,
            "sessions": self.sessions,
            "value_bytes": self.value_bytes,
            "json_bytes": self.json_bytes,
            "keys_before": self.keys_before,
            "used_memory_before": self.used_memory_before,
            "used_memory_after": self.used_memory_after,
            "bytes_per_session": (self.bytes_per_session() * 10.0).round() / 10.0,
            "write_s": self.write_time.as_secs_f64(),
            "writes_per_sec": self.writes_per_sec().round(),
            "sample_encoding": self.sample_encoding,
            "buckets": b.as_ref().map(|b| b.buckets),
            "buckets_listpack": b.as_ref().map(|b| b.listpack),
            "bucket_min_sessions": b.as_ref().map(|b| b.min_fields),
            "bucket_max_sessions": b.as_ref().map(|b| b.max_fields),
            "hash_max_listpack_entries": self.listpack_limits.map(|l| l.0),
            "hash_max_listpack_value": self.listpack_limits.map(|l| l.1),
        })
    }
}

impl std::fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::write_report_header(f, &self.store, self.value_bytes, self.json_bytes)?;
        writeln!(
            f,
            "written:  {} sessions in {:.1} s ({:.0}/s)",
            self.sessions,
            self.write_time.as_secs_f64(),
            self.writes_per_sec()
        )?;
        writeln!(
            f,
            "memory:   used_memory {} -> {} bytes: {:.1} bytes per session",
            self.used_memory_before,
            self.used_memory_after,
            self.bytes_per_session()
        )?;
        if let Some((entries, value)) = self.listpack_limits {
            writeln!(f, "server:   hash-max-listpack-entries {entries}, hash-max-listpack-value {value}")?;
        }
        if let Some(b) = &self.buckets {
            writeln!(
                f,
                "buckets:  {} hashes, {} listpack, {}..{} sessions each",
                b.buckets, b.listpack, b.min_fields, b.max_fields
            )?;
        }
        write!(f, "encoding: {}", self.sample_encoding.as_deref().unwrap_or("unknown"))?;
        if self.keys_before > 0 {
            write!(f, "\nwarning:  the database held {} keys before the run: not a fresh server", self.keys_before)?;
        }
        Ok(())
    }
}

async fn inspect<T: redis::FromRedisValue + Send + 'static>(
    conn: &mut MultiplexedConnection,
    cmd: &redis::Cmd,
) -> Result<T, BenchError> {
    match tokio::time::timeout(INSPECT_TIMEOUT, cmd.query_async::<T>(conn)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(BenchError(format!("redis command failed: {err}"))),
        Err(_) => Err(BenchError(format!("no reply within {INSPECT_TIMEOUT:?}"))),
    }
}

/// `used_memory` from `INFO memory`.
async fn used_memory(conn: &mut MultiplexedConnection) -> Result<u64, BenchError> {
    let info: String = inspect(conn, redis::cmd("INFO").arg("memory")).await?;
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| BenchError("INFO memory has no used_memory line".into()))
}

async fn listpack_limits(conn: &mut MultiplexedConnection) -> Option<(u64, u64)> {
    let flat: Vec<String> = inspect(conn, redis::cmd("CONFIG").arg("GET").arg("hash-max-listpack-*")).await.ok()?;
    let get = |name: &str| {
        flat.chunks(2).find(|c| c.first().map(String::as_str) == Some(name)).and_then(|c| c.get(1)?.parse().ok())
    };
    Some((get("hash-max-listpack-entries")?, get("hash-max-listpack-value")?))
}

/// Encodings and sizes of the bucket hashes, found by `SCAN` with the bucket key of a sample session
/// (`<prefix>h:<n>`) minus its number.
async fn bucket_stats(conn: &mut MultiplexedConnection, sample_bucket: &[u8]) -> Result<BucketStats, BenchError> {
    let stem_len = sample_bucket.iter().rposition(|b| !b.is_ascii_digit()).map_or(0, |i| i + 1);
    let mut pattern = Vec::with_capacity(stem_len + 4);
    for &byte in &sample_bucket[..stem_len] {
        if matches!(byte, b'*' | b'?' | b'[' | b']' | b'\\') {
            pattern.push(b'\\');
        }
        pattern.push(byte);
    }
    pattern.push(b'*');
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = inspect(
            conn,
            redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000).arg("TYPE").arg("hash"),
        )
        .await?;
        keys.extend(batch);
        if next == 0 || keys.len() >= MAX_BUCKETS_INSPECTED {
            break;
        }
        cursor = next;
    }
    let mut stats = BucketStats { min_fields: u64::MAX, ..BucketStats::default() };
    for chunk in keys.chunks(1000) {
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.cmd("OBJECT").arg("ENCODING").arg(key).cmd("HLEN").arg(key);
        }
        let replies: Vec<(Option<String>, u64)> =
            match tokio::time::timeout(INSPECT_TIMEOUT, pipe.query_async(conn)).await {
                Ok(Ok(replies)) => replies,
                Ok(Err(err)) => return Err(BenchError(format!("OBJECT ENCODING / HLEN failed: {err}"))),
                Err(_) => return Err(BenchError(format!("no reply within {INSPECT_TIMEOUT:?}"))),
            };
        for (encoding, fields) in replies {
            stats.buckets += 1;
            if matches!(encoding.as_deref(), Some("listpack" | "ziplist" | "listpackex")) {
                stats.listpack += 1;
            }
            stats.min_fields = stats.min_fields.min(fields);
            stats.max_fields = stats.max_fields.max(fields);
        }
    }
    if stats.buckets == 0 {
        stats.min_fields = 0;
    }
    Ok(stats)
}

/// Measures memory per session on a standalone Redis.
pub async fn run_memory(options: &MemoryOptions) -> Result<MemoryReport, BenchError> {
    if options.sessions == 0 {
        return Err(BenchError("--sessions must be at least 1".into()));
    }
    let parsed = RedisOptions::from_url(&options.store_url).map_err(|e| BenchError(format!("bad store URL: {e}")))?;
    let Topology::Standalone { url: plain_url } = &parsed.topology else {
        return Err(BenchError("memory needs a standalone Redis URL (redis://, rediss:// or unix://)".into()));
    };
    let store_info = describe_store(&options.store_url);
    store_info.warn_about_hot_user_index(options.sessions, options.users);

    let client = redis::Client::open(plain_url.as_str()).map_err(|e| BenchError(format!("bad Redis URL: {e}")))?;
    let mut conn = tokio::time::timeout(INSPECT_TIMEOUT, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| BenchError(format!("cannot connect to Redis within {INSPECT_TIMEOUT:?}")))?
        .map_err(|e| BenchError(format!("cannot connect to Redis: {e}")))?;
    // Keys before the store connects (which writes its layout record, one small key); the store is connected
    // before the memory readings, so its connection counts in both.
    let keys_before: u64 = inspect(&mut conn, &redis::cmd("DBSIZE")).await?;
    let store = Arc::new(
        RedisStore::connect(&options.store_url).await.map_err(|e| BenchError(format!("cannot open the store: {e}")))?,
    );
    if keys_before > 0 {
        eprintln!(
            "sessionkit-bench: warning: the database already holds {keys_before} keys; use a fresh server for exact figures"
        );
    }
    let used_memory_before = used_memory(&mut conn).await?;

    let settings = Arc::new(Settings::with_secret_key(SETTINGS_SECRET));
    let dyn_store: Arc<dyn SessionStore> = store.clone();
    let started = Instant::now();
    let created =
        create_sessions(dyn_store, settings, options.sessions, options.concurrency, options.users, false).await?;
    let write_time = started.elapsed();
    let used_memory_after = used_memory(&mut conn).await?;

    let (value_bytes, json_bytes) = crate::stored_size(store.as_ref(), &created.keys).await?;
    let mut sample_encoding = None;
    let mut buckets = None;
    if let Some(sample) = created.keys.first() {
        let (key, _field) = store.raw_address(sample);
        sample_encoding = inspect::<Option<String>>(&mut conn, redis::cmd("OBJECT").arg("ENCODING").arg(&key)).await?;
        if parsed.layout == Layout::Hash {
            buckets = Some(bucket_stats(&mut conn, &key).await?);
        }
    }
    let listpack_limits = listpack_limits(&mut conn).await;
    Ok(MemoryReport {
        store: store_info,
        sessions: created.count,
        value_bytes,
        json_bytes,
        keys_before,
        used_memory_before,
        used_memory_after,
        write_time,
        sample_encoding,
        buckets,
        listpack_limits,
    })
}
