//! Redis, sessionkit's primary store: three layouts on standalone Redis, Sentinel or Cluster.
//!
//! | layout | key(s) | value | expiry | made for |
//! |---|---|---|---|---|
//! | `django-cache` | `KEY_PREFIX:VERSION:django.contrib.sessions.cache<key>` | the dict as Django's cache writes it (pickle; django-redis serializers/compressors) | key TTL = expiry age | sharing sessions with Django |
//! | `string` | `<prefix>s:<key>` (or SHA-256 hex of it) | [compact versioned value](value) | key TTL + in the value | speed |
//! | `hash` | field `<key>` (or its SHA-256) in one of N hashes `<prefix>h:<n>` | compact versioned value | in the value; `HPEXPIREAT` per field where the server has it (Redis ≥ 7.4, Valkey ≥ 9), else the sweeper | memory |
//!
//! Every load is one round trip (`GET`, `HGET`, or `GET`+`PTTL` pipelined for `django-cache`); every save is one
//! round trip (`SET … XX`, a script for `hash`), or one `MULTI` when the per-user index is updated too (two round
//! trips in a Cluster, where the session and the user's index live in different slots). Listing and counting use
//! `SCAN` on every master, never `KEYS`.
//!
//! Configuration is by URL: see [`config`].

mod client_cache;
pub mod config;
mod connection;
mod index;
mod inspect;
pub mod layout_record;
mod scripts;
mod tracking;
mod value;

pub use inspect::{ServerTtl, ValueHeader};
pub use tracking::CONNECTION_NAME as CLIENT_CACHE_CONNECTION_NAME;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use redis::Value as RedisValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use self::config::{Layout, RedisOptions};
use self::connection::RedisConnection;
#[cfg(feature = "django-cache")]
use self::scripts::STEP_ASIDE;
use self::scripts::{HASH_CREATE, HASH_SWEEP_DELETE, HASH_UPDATE, INDEXED_WRITE, STRING_UPDATE_IF, TOUCH};
use self::value::NativeCodec;
use super::merge::{save_merging, CompareAndSet, Saved, WriteOutcome};
use super::{
    redact_url, Access, ListCursor, RawSession, SessionLister, SessionPage, SessionStore, StoredSession, Touched,
};
use crate::codec::{CodecError, DecodeLimits};
use crate::{ChangeSet, SessionKey, SessionRecord, StoreError, Version};

/// The latest absolute field expiry Redis accepts (`HFE_MAX_ABS_TIME_MSEC`, 2^46 − 1 ms: the year 4199).
const MAX_FIELD_EXPIRY_MS: u64 = (1 << 46) - 1;

/// Sessions per bucket the `hash` layout's default bucket count is sized for.
pub const TARGET_SESSIONS_PER_BUCKET: u32 = 200;

/// A Redis session store. Build it with [`RedisStore::connect`] or `open_store("redis://…")`.
#[derive(Debug)]
pub struct RedisStore {
    conn: RedisConnection,
    /// `client_cache=on`: the request path's tracked connection and the cache it keeps true.
    hot: Option<Hot>,
    options: RedisOptions,
    native: NativeCodec,
    #[cfg(feature = "django-cache")]
    django: crate::codec::django_cache::CacheValueCodec,
    hash_field_expiry: bool,
    /// The `hash` layout creates and replaces fields with `HSETEX` (value and expiry in one native command)
    /// instead of a script: servers that have it (Redis ≥ 8, Valkey ≥ 9), unless `hash_writes=script`.
    native_hash_writes: bool,
    hash_create: redis::Script,
    hash_update: redis::Script,
    string_update_if: redis::Script,
    touch: redis::Script,
    indexed_write: redis::Script,
    hash_sweep_delete: redis::Script,
    #[cfg(feature = "django-cache")]
    step_aside: redis::Script,
    sweep_next_bucket: AtomicU32,
    /// What the layout record check found on connect.
    layout_record: layout_record::RecordCheck,
    describe: String,
}

/// The request path of `client_cache=on`: session reads go through `conn`, whose tracking keeps
/// `tracked`'s cache true (see [`tracking`]).
#[derive(Debug)]
struct Hot {
    conn: RedisConnection,
    tracked: Arc<tracking::TrackedConnection>,
}

/// One stored session, as [`RedisStore::list`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSession {
    /// The session key, or the hex SHA-256 of it when keys are hashed at rest.
    pub id: String,
    /// True when `id` is a SHA-256 digest rather than the key.
    pub key_is_hashed: bool,
    /// When it expires, if known.
    pub expires_at: Option<OffsetDateTime>,
    /// Size of the stored value in bytes.
    pub bytes: usize,
}

/// A hash field as a listed id: the key itself, or the hex of a raw SHA-256 digest.
fn stored_id(field: &[u8], hashed: bool) -> String {
    if hashed {
        hex(field)
    } else {
        String::from_utf8_lossy(field).into_owned()
    }
}

/// A hash field and its value, as `HSCAN` returns them.
type FieldAndValue = (Vec<u8>, Vec<u8>);

/// Which write [`RedisStore::write`] does.
#[derive(Debug, Clone, Copy)]
enum WriteMode<'a> {
    /// A new session: the key (or field) must be free.
    Create,
    /// An existing session, whatever it holds (`merge=false`).
    Replace,
    /// An existing session that must still hold these bytes (the compare-and-set of a merging save).
    ReplaceIf(&'a [u8]),
}

impl<'a> WriteMode<'a> {
    fn expected(self) -> Option<&'a [u8]> {
        match self {
            WriteMode::ReplaceIf(expected) => Some(expected),
            WriteMode::Create | WriteMode::Replace => None,
        }
    }
}

/// What a write's condition found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Written {
    /// The condition held and the value was written.
    Yes,
    /// A create found the key taken, an update found no session.
    No,
    /// A compare-and-set found another value: the value stored now and its remaining TTL in ms (-1: none known).
    Conflict(Vec<u8>, i64),
}

impl Written {
    /// The reply of the write scripts: 1 written, 0 taken / vanished, {value, ttl} conflict.
    fn from_script(reply: RedisValue) -> Written {
        match reply {
            RedisValue::Int(1) => Written::Yes,
            RedisValue::Array(items) => match items.as_slice() {
                [RedisValue::BulkString(value), RedisValue::Int(ttl)] => Written::Conflict(value.clone(), *ttl),
                _ => Written::No,
            },
            _ => Written::No,
        }
    }
}

/// Where a session lives in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Address {
    key: Vec<u8>,
    field: Option<Vec<u8>>,
}

impl RedisStore {
    /// Connects to Redis as the URL says (see [`config`] for the URL forms and options).
    ///
    /// At connect time the `hash` layout checks whether the server has `HPEXPIREAT`/`HPTTL` (`COMMAND INFO`; Redis
    /// ≥ 7.4, Valkey ≥ 9), checks the [layout record](layout_record), and warns when
    /// `hash-max-listpack-value` / `hash-max-listpack-entries` are too small for the memory gain; both checks work
    /// without `CONFIG` rights (they are skipped with a debug line when refused).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_access(url, Access::ReadWrite).await
    }

    /// [`connect`](Self::connect); with [`Access::ReadOnly`] the [layout record](layout_record) is checked but
    /// never written.
    pub async fn connect_with_access(url: &str, access: Access) -> Result<Self, StoreError> {
        let options = RedisOptions::from_url(url)?;
        Self::connect_with(options, redact_url(url), access).await
    }

    /// Connects with parsed options; `describe` names the store in logs and errors. Checks the
    /// [layout record](layout_record) of the prefix (and writes it, unless `access` is read-only, when missing).
    pub async fn connect_with(options: RedisOptions, describe: String, access: Access) -> Result<Self, StoreError> {
        let conn = RedisConnection::connect(&options, describe.clone()).await?;
        let layout_record = layout_record::check(&conn, &options, &describe, access).await?;
        let hot = match (&options.client_cache, &options.topology) {
            (true, config::Topology::Standalone { url }) => {
                let prefix = Self::key_prefix_of(&options).into_bytes();
                let tracked = tracking::TrackedConnection::connect(
                    url,
                    prefix,
                    options.client_cache_size,
                    options.connect_timeout,
                    options.timeout,
                )
                .await
                .map_err(|err| StoreError::unavailable(format!("{describe} (client_cache=on)"), err))?;
                let conn = RedisConnection::tracked(Arc::clone(&tracked), &options, describe.clone());
                Some(Hot { conn, tracked })
            }
            _ => None,
        };
        #[cfg(feature = "django-cache")]
        let django = django_value_codec(&options)?;
        let native = NativeCodec {
            compression: options.compression,
            compress_min_bytes: options.compress_min_bytes,
            limits: DecodeLimits::default(),
        };
        let mut store = RedisStore {
            conn,
            hot,
            native,
            #[cfg(feature = "django-cache")]
            django,
            hash_field_expiry: false,
            native_hash_writes: false,
            hash_create: redis::Script::new(HASH_CREATE),
            hash_update: redis::Script::new(HASH_UPDATE),
            string_update_if: redis::Script::new(STRING_UPDATE_IF),
            touch: redis::Script::new(TOUCH),
            indexed_write: redis::Script::new(INDEXED_WRITE),
            hash_sweep_delete: redis::Script::new(HASH_SWEEP_DELETE),
            #[cfg(feature = "django-cache")]
            step_aside: redis::Script::new(STEP_ASIDE),
            sweep_next_bucket: AtomicU32::new(0),
            layout_record,
            describe,
            options,
        };
        if store.options.layout == Layout::Hash {
            store.hash_field_expiry = store.server_has_hash_field_expiry().await;
            store.native_hash_writes = store.hash_field_expiry
                && store.options.hash_writes == config::HashWrites::Auto
                && store.every_master_knows(&["HSETEX"]).await;
            store.warn_about_listpack_limits().await;
        }
        Ok(store)
    }

    /// The parsed options.
    pub fn options(&self) -> &RedisOptions {
        &self.options
    }

    /// What the [layout record](layout_record) check found when the store connected.
    pub fn layout_record(&self) -> &layout_record::RecordCheck {
        &self.layout_record
    }

    /// True when the `hash` layout expires fields on the server (`HPEXPIREAT`; Redis ≥ 7.4, Valkey ≥ 9); otherwise
    /// [`SessionStore::clear_expired`] sweeps expired fields.
    pub fn uses_hash_field_expiry(&self) -> bool {
        self.hash_field_expiry
    }

    /// True when every master knows the per-field expiry commands the `hash` layout uses (`HPEXPIREAT`, `HPTTL`):
    /// asked with `COMMAND INFO`, so the answer is the server's capability, not its version string (Redis ≥ 7.4,
    /// Valkey ≥ 9, and not a server where they are renamed away). Any doubt (a node that does not answer, a
    /// refused `COMMAND`) chooses the sweeper, which works everywhere.
    async fn server_has_hash_field_expiry(&self) -> bool {
        self.every_master_knows(&["HPEXPIREAT", "HPTTL"]).await
    }

    /// True when `COMMAND INFO` on every master knows each of `commands`; false on any doubt.
    async fn every_master_knows(&self, commands: &[&str]) -> bool {
        let Ok(nodes) = self.conn.scan_nodes().await else { return false };
        if nodes.is_empty() {
            return false;
        }
        for node in &nodes {
            let reply =
                self.conn.query_node(node.as_ref(), redis::cmd("COMMAND").arg("INFO").arg(commands).clone()).await;
            let known = match reply {
                Ok(RedisValue::Array(entries)) => {
                    entries.len() == commands.len() && entries.iter().all(|entry| !matches!(entry, RedisValue::Nil))
                }
                _ => false,
            };
            if !known {
                return false;
            }
        }
        true
    }

    /// True when the `hash` layout creates and replaces fields with `HSETEX` (see [`config`]'s `hash_writes`).
    pub fn uses_native_hash_writes(&self) -> bool {
        self.native_hash_writes
    }

    async fn warn_about_listpack_limits(&self) {
        let Ok(nodes) = self.conn.scan_nodes().await else { return };
        let Some(node) = nodes.first() else { return };
        let reply = self
            .conn
            .query_node(node.as_ref(), redis::cmd("CONFIG").arg("GET").arg("hash-max-listpack-*").clone())
            .await;
        let pairs: Vec<(String, String)> = match reply.and_then(|v| {
            redis::from_redis_value::<Vec<String>>(v).map_err(|e| StoreError::unavailable(self.describe.clone(), e))
        }) {
            Ok(flat) => flat.chunks(2).filter_map(|c| Some((c.first()?.clone(), c.get(1)?.clone()))).collect(),
            Err(err) => {
                tracing::debug!(target: "sessionkit", store = %self.describe, error = %err, "CONFIG GET refused; listpack limits not checked");
                return;
            }
        };
        let get = |name: &str| pairs.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.parse::<u64>().ok());
        let typical_value = self.options.compress_min_bytes.max(400) as u64;
        if let Some(value_limit) = get("hash-max-listpack-value") {
            if value_limit < typical_value {
                tracing::warn!(target: "sessionkit", store = %self.describe, hash_max_listpack_value = value_limit, typical_value_bytes = typical_value,
                    "hash-max-listpack-value is below the typical session size: bucket hashes will use the hashtable encoding and the hash layout saves little memory; set it to at least {typical_value} (docs/redis.md)");
            }
        }
        if let Some(entries_limit) = get("hash-max-listpack-entries") {
            if entries_limit < u64::from(TARGET_SESSIONS_PER_BUCKET) * 2 {
                tracing::warn!(target: "sessionkit", store = %self.describe, hash_max_listpack_entries = entries_limit,
                    "hash-max-listpack-entries is below twice the sessions per bucket: full buckets will use the hashtable encoding; set it to at least {} (docs/redis.md)", TARGET_SESSIONS_PER_BUCKET * 2);
            }
        }
    }

    fn digest(key: &SessionKey) -> [u8; 32] {
        Sha256::digest(key.as_str().as_bytes()).into()
    }

    /// The bucket number of a key: from its SHA-256, so any key alphabet spreads evenly.
    fn bucket_of(&self, digest: &[u8; 32]) -> u32 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first) % u64::from(self.options.buckets)) as u32
    }

    fn bucket_key(&self, bucket: u32) -> Vec<u8> {
        format!("{}h:{bucket}", self.options.prefix).into_bytes()
    }

    /// The connection of the request path's session reads: the tracked one with `client_cache=on`.
    fn hot_conn(&self) -> &RedisConnection {
        self.hot.as_ref().map_or(&self.conn, |hot| &hot.conn)
    }

    /// With `client_cache=on`, forgets a session this process has just changed (Redis reports the change to the
    /// tracking connection too; this makes it immediate for this process). Called after the change is made, so a
    /// load that raced with it cannot leave the old copy behind.
    fn forget_cached(&self, address: &Address) {
        if let Some(hot) = &self.hot {
            hot.tracked.cache().remove(&address.key, address.field.as_deref().unwrap_or_default());
        }
    }

    fn address(&self, key: &SessionKey) -> Address {
        match self.options.layout {
            Layout::DjangoCache => {
                Address { key: self.options.django.cache_key(key.as_str()).into_bytes(), field: None }
            }
            Layout::String => {
                let id = if self.options.hashed_keys { hex(&Self::digest(key)) } else { key.as_str().to_owned() };
                Address { key: format!("{}s:{id}", self.options.prefix).into_bytes(), field: None }
            }
            Layout::Hash => {
                let digest = Self::digest(key);
                let field = if self.options.hashed_keys { digest.to_vec() } else { key.as_str().as_bytes().to_vec() };
                Address { key: self.bucket_key(self.bucket_of(&digest)), field: Some(field) }
            }
        }
    }

    /// The session key stored at `address`, the inverse of [`Self::address`]; `None` when keys are hashed at rest.
    fn key_of_address(&self, address: &Address) -> Option<SessionKey> {
        let text = match self.options.layout {
            Layout::DjangoCache => {
                let prefix = self.options.django.cache_key("");
                address.key.strip_prefix(prefix.as_bytes())?.to_vec()
            }
            Layout::String if !self.options.hashed_keys => {
                address.key.strip_prefix(format!("{}s:", self.options.prefix).as_bytes())?.to_vec()
            }
            Layout::Hash if !self.options.hashed_keys => address.field.clone()?,
            Layout::String | Layout::Hash => return None,
        };
        SessionKey::parse(std::str::from_utf8(&text).ok()?).ok()
    }

    fn unavailable(&self, err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::unavailable(self.describe.clone(), err)
    }

    /// Encodes a record in the layout's value format.
    fn encode(&self, record: &SessionRecord) -> Result<Vec<u8>, StoreError> {
        match self.options.layout {
            Layout::DjangoCache => self.encode_django(&record.data),
            Layout::String | Layout::Hash => Ok(self.native.encode(&record.data, record.expires_at)),
        }
    }

    #[cfg(feature = "django-cache")]
    fn encode_django(&self, data: &Map<String, Value>) -> Result<Vec<u8>, StoreError> {
        self.django
            .encode(data)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode the session for Django's cache: {e}")))
    }

    #[cfg(not(feature = "django-cache"))]
    fn encode_django(&self, _data: &Map<String, Value>) -> Result<Vec<u8>, StoreError> {
        Err(crate::ConfigError::InvalidStoreUrl {
            url: self.describe.clone(),
            reason: "the django-cache layout needs the django-cache feature".into(),
        }
        .into())
    }

    #[cfg(feature = "django-cache")]
    fn decode_django(&self, bytes: &[u8]) -> Result<Map<String, Value>, crate::codec::CodecError> {
        self.django.decode(bytes)
    }

    /// True when a `django-cache` value is Python's `None` (a tombstone), not a session.
    fn stores_none(&self, bytes: &[u8]) -> bool {
        #[cfg(feature = "django-cache")]
        {
            self.options.layout == Layout::DjangoCache && self.django.is_none(bytes)
        }
        #[cfg(not(feature = "django-cache"))]
        {
            let _ = bytes;
            false
        }
    }

    /// [`Self::decode_django`] off the async worker when the value is large (see `store::offload`).
    async fn decode_django_off_worker(
        &self,
        bytes: Vec<u8>,
    ) -> Result<super::offload::Decoded<Map<String, Value>>, StoreError> {
        #[cfg(feature = "django-cache")]
        {
            super::offload::decode_off_worker(&self.describe, &self.django, bytes).await
        }
        #[cfg(not(feature = "django-cache"))]
        Ok((self.decode_django(&bytes), bytes))
    }

    #[cfg(not(feature = "django-cache"))]
    fn decode_django(&self, _bytes: &[u8]) -> Result<Map<String, Value>, crate::codec::CodecError> {
        Err(crate::codec::CodecError::Malformed("the django-cache layout needs the django-cache feature"))
    }

    fn corrupt_to_empty(&self, key: &SessionKey, err: &dyn std::fmt::Display) -> Map<String, Value> {
        tracing::warn!(target: "sessionkit::corrupt", store = %self.describe, key = ?key, error = %err, "Session data corrupted; using an empty session");
        crate::telemetry::mark_corrupt();
        Map::new()
    }

    /// Milliseconds from now until `at`, at least 1 (Redis refuses 0; an already expired session then vanishes
    /// within a millisecond).
    fn ttl_ms(at: OffsetDateTime) -> u64 {
        let ms = (at - OffsetDateTime::now_utc()).whole_milliseconds();
        ms.clamp(1, i128::from(u64::MAX >> 1)) as u64
    }

    fn expiry_ms(at: OffsetDateTime) -> u64 {
        (at.unix_timestamp_nanos() / 1_000_000).clamp(1, i128::from(u64::MAX >> 1)) as u64
    }

    /// [`expiry_ms`](Self::expiry_ms) for `HPEXPIREAT`, whose absolute times Redis caps at 2^46 − 1 ms (the year
    /// 4199; "invalid expire time" beyond, while Valkey takes more): a session kept longer than that expires
    /// from the server in 4199 instead, and its value's header keeps the expiry it was given.
    fn field_expiry_ms(at: OffsetDateTime) -> u64 {
        Self::expiry_ms(at).min(MAX_FIELD_EXPIRY_MS)
    }

    /// The expiry arguments of `SET`: `EX seconds` for Django's RedisCache (as it writes them) when at least a
    /// second is left, else `PXAT ms` (exact; an already expired session is gone at once, while NX/XX still say
    /// whether the key existed).
    fn ttl_arguments(&self, expires_at: OffsetDateTime) -> (&'static str, u64) {
        let ttl_ms = Self::ttl_ms(expires_at);
        let redis_cache = self.options.django.client == config::DjangoClient::RedisCache;
        if self.options.layout == Layout::DjangoCache && redis_cache && ttl_ms >= 1000 {
            ("EX", ttl_ms / 1000)
        } else {
            ("PXAT", Self::expiry_ms(expires_at))
        }
    }

    /// `SET key value PXAT ms NX|XX` (`EX seconds` for Django's RedisCache), the string-valued layouts' create and
    /// last-write-wins save.
    fn set_command(&self, address: &Address, value: &[u8], expires_at: OffsetDateTime, create: bool) -> redis::Cmd {
        let (unit, amount) = self.ttl_arguments(expires_at);
        let mut cmd = redis::cmd("SET");
        cmd.arg(&address.key).arg(value).arg(unit).arg(amount).arg(if create { "NX" } else { "XX" });
        cmd
    }

    /// Writes a session and reports what the condition found: a create needs the key free, an update needs the
    /// session stored and, with an expected value, still holding it. Returns the outcome and the value written.
    ///
    /// For a logged-in session the index entry is written on create, when `refresh_index` says the entry's
    /// details change (login, user agent, IP), or when the session's expiry has moved past the entry's score
    /// (the score is the expiry plus `index_refresh`, so the saves within that window skip the index).
    ///
    /// With `client_cache=on` the cached copy is forgotten once the write is done (Redis also reports the write to
    /// every tracking connection, this process's included); the next load reads the session from Redis.
    async fn write(
        &self,
        record: &SessionRecord,
        mode: WriteMode<'_>,
        refresh_index: bool,
    ) -> Result<(Written, Vec<u8>), StoreError> {
        let outcome = self.write_uncached(record, mode, refresh_index).await;
        if self.hot.is_some() && record.key.is_storage_safe() {
            self.forget_cached(&self.address(&record.key));
        }
        outcome
    }

    async fn write_uncached(
        &self,
        record: &SessionRecord,
        mode: WriteMode<'_>,
        refresh_index: bool,
    ) -> Result<(Written, Vec<u8>), StoreError> {
        let create = matches!(mode, WriteMode::Create);
        if !record.key.is_storage_safe() {
            // No session can be stored under such a key: a create is refused, a save finds none to update.
            return if create { Err(StoreError::UnsafeKey) } else { Ok((Written::No, Vec::new())) };
        }
        let value = self.encode(record)?;
        let address = self.address(&record.key);
        let user = if self.options.user_index { crate::store::user_index::auth_user_id(&record.data) } else { None };
        let written = match user {
            None => self.write_session(&address, &value, record.expires_at, mode).await?,
            Some(user) if self.conn.is_cluster() => {
                // Different slots, two round trips. A create writes the session first: were the index first, a
                // concurrent list/revoke could prune the entry before the session exists, and the live session
                // would stay out of the index. A save writes the index first, so the entry always covers the
                // session's new expiry; an entry whose session write then fails is pruned when next read.
                let mut pipe = redis::pipe();
                pipe.atomic();
                for cmd in self.index_commands(&user, record, &address) {
                    pipe.add_command(cmd).ignore();
                }
                if create {
                    let created = self.write_session(&address, &value, record.expires_at, mode).await?;
                    if created == Written::Yes {
                        let _: () = self.conn.query_pipeline(&pipe).await?;
                    }
                    created
                } else {
                    let _: () = self.conn.query_pipeline(&pipe).await?;
                    self.write_session(&address, &value, record.expires_at, mode).await?
                }
            }
            Some(user) => {
                // One script: the session write and, only if it succeeded, the index update. One command, atomic.
                let (index_key, details_key) = self.index_keys(&user);
                let (ttl_unit, ttl_value) = self.ttl_arguments(record.expires_at);
                let text = |key: &str| match record.data.get(key) {
                    Some(serde_json::Value::String(s)) => s.chars().take(512).collect(),
                    _ => String::new(),
                };
                let expected = mode.expected();
                let mut invocation = self.indexed_write.prepare_invoke();
                invocation
                    .key(&address.key)
                    .key(index_key)
                    .key(details_key)
                    .arg(if create { "create" } else { "update" })
                    .arg(if address.field.is_some() { "hash" } else { "set" })
                    .arg(value.as_slice())
                    .arg(match address.field {
                        Some(_) => Self::field_expiry_ms(record.expires_at),
                        None => Self::expiry_ms(record.expires_at),
                    })
                    .arg(ttl_unit)
                    .arg(ttl_value)
                    .arg(address.field.as_deref().unwrap_or_default())
                    .arg(if self.hash_field_expiry { "1" } else { "0" })
                    .arg(crate::store::user_index::session_id(&record.key))
                    .arg(index::now_ms())
                    .arg(text(crate::store::user_index::USER_AGENT_KEY))
                    .arg(text(crate::store::user_index::CLIENT_IP_KEY))
                    .arg(self.index_score_ms(record.expires_at))
                    .arg(if create || refresh_index || self.options.index_refresh.is_zero() { "1" } else { "0" })
                    .arg(if expected.is_some() { "1" } else { "0" })
                    .arg(expected.unwrap_or_default());
                let invocation = &invocation;
                let reply: RedisValue =
                    self.conn.run(|mut conn| async move { invocation.invoke_async(&mut conn).await }).await?;
                Written::from_script(reply)
            }
        };
        Ok((written, value))
    }

    /// Writes a session without touching the index: `SET … NX|XX` or the compare-and-set script for string-valued
    /// layouts, the hash create/update script for `hash`.
    async fn write_session(
        &self,
        address: &Address,
        value: &[u8],
        expires_at: OffsetDateTime,
        mode: WriteMode<'_>,
    ) -> Result<Written, StoreError> {
        let create = matches!(mode, WriteMode::Create);
        let expected = mode.expected();
        let invocation = match (&address.field, expected) {
            (Some(field), None) if self.native_hash_writes => {
                // HSETEX bucket FNX|FXX PXAT ms FIELDS 1 field value: 1 written, 0 the field was there (create)
                // or gone (replace).
                let written: i64 = self
                    .conn
                    .query(
                        redis::cmd("HSETEX")
                            .arg(&address.key)
                            .arg(if create { "FNX" } else { "FXX" })
                            .arg("PXAT")
                            .arg(Self::field_expiry_ms(expires_at))
                            .arg("FIELDS")
                            .arg(1)
                            .arg(field.as_slice())
                            .arg(value),
                    )
                    .await?;
                return Ok(if written == 1 { Written::Yes } else { Written::No });
            }
            (Some(field), _) => {
                let script = if create { &self.hash_create } else { &self.hash_update };
                let mut invocation = script.prepare_invoke();
                invocation
                    .key(&address.key)
                    .arg(field.as_slice())
                    .arg(value)
                    .arg(Self::field_expiry_ms(expires_at))
                    .arg(if self.hash_field_expiry { "1" } else { "0" })
                    .arg(if expected.is_some() { "1" } else { "0" })
                    .arg(expected.unwrap_or_default());
                invocation
            }
            (None, Some(expected)) => {
                let (unit, amount) = self.ttl_arguments(expires_at);
                let mut invocation = self.string_update_if.prepare_invoke();
                invocation.key(&address.key).arg(value).arg(unit).arg(amount).arg(expected);
                invocation
            }
            (None, None) => {
                let reply: RedisValue = self.conn.query(&self.set_command(address, value, expires_at, create)).await?;
                return Ok(if index::write_succeeded(&reply) { Written::Yes } else { Written::No });
            }
        };
        let invocation = &invocation;
        let reply: RedisValue =
            self.conn.run(|mut conn| async move { invocation.invoke_async(&mut conn).await }).await?;
        Ok(Written::from_script(reply))
    }

    /// A stored value (and, for `django-cache`, its remaining TTL in ms) as the session record a load gives:
    /// decoded (off the async worker when costly), with the value itself as the version; `None` when it has
    /// expired or is a tombstone.
    async fn decode_stored(
        &self,
        key: &SessionKey,
        bytes: Vec<u8>,
        ttl_ms: Option<i64>,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let now = OffsetDateTime::now_utc();
        let (data, expires_at, bytes) = match self.options.layout {
            Layout::DjangoCache => {
                if self.stores_none(&bytes) {
                    // Python's `None` (a cached_db tombstone): Django's cache reads it as a miss.
                    return Ok(None);
                }
                let expires_at = match ttl_ms {
                    Some(ms) if ms >= 0 => now.saturating_add(time::Duration::milliseconds(ms)),
                    // No TTL (-1): Django's `timeout=None`; treat as the cookie age would: far future.
                    _ => now + time::Duration::days(365 * 100),
                };
                let (decoded, bytes) = self.decode_django_off_worker(bytes).await?;
                (decoded.unwrap_or_else(|err| self.corrupt_to_empty(key, &err)), expires_at, bytes)
            }
            Layout::String | Layout::Hash => {
                // A readable header with an unreadable payload is corrupt data of a live session; without a
                // header, keep it for an hour.
                let stored_expiry = NativeCodec::peek_expiry(&bytes).ok();
                let (decoded, bytes) = super::offload::decode_off_worker(&self.describe, &self.native, bytes).await?;
                match decoded {
                    Ok((data, expires_at)) => (data, expires_at, bytes),
                    Err(err) => (
                        self.corrupt_to_empty(key, &err),
                        stored_expiry.unwrap_or(now + time::Duration::hours(1)),
                        bytes,
                    ),
                }
            }
        };
        if expires_at <= now {
            return Ok(None);
        }
        // The version is the stored value itself: a save's script checks Redis still holds exactly these bytes.
        Ok(Some(SessionRecord { key: key.clone(), data, expires_at, version: Some(Version::new(bytes)) }))
    }

    /// Reads the stored bytes and, for `django-cache`, the remaining TTL in ms, in one round trip.
    async fn read(&self, address: &Address) -> Result<Option<(Vec<u8>, Option<i64>)>, StoreError> {
        match (&address.field, self.options.layout) {
            (Some(field), _) => {
                let bytes: Option<Vec<u8>> =
                    self.hot_conn().query(redis::cmd("HGET").arg(&address.key).arg(field.as_slice())).await?;
                Ok(bytes.map(|b| (b, None)))
            }
            (None, Layout::DjangoCache) => {
                let mut pipe = redis::pipe();
                pipe.cmd("GET").arg(&address.key).cmd("PTTL").arg(&address.key);
                let (bytes, ttl): (Option<Vec<u8>>, i64) = self.hot_conn().query_pipeline(&pipe).await?;
                Ok(bytes.map(|b| (b, Some(ttl))))
            }
            (None, _) => {
                let bytes: Option<Vec<u8>> = self.hot_conn().query(redis::cmd("GET").arg(&address.key)).await?;
                Ok(bytes.map(|b| (b, None)))
            }
        }
    }

    /// Where a session lives: the Redis key and, for the `hash` layout, the field. For tools and tests.
    pub fn raw_address(&self, key: &SessionKey) -> (Vec<u8>, Option<Vec<u8>>) {
        let address = self.address(key);
        (address.key, address.field)
    }

    /// Writes `bytes` at a session's address as they are, bypassing the encoder (import tools; tests that plant
    /// corrupt data). String-valued layouts get a TTL of `ttl_ms`, and so does a `hash` field on a server with
    /// per-field expiry (no sweeper would ever remove it otherwise).
    pub async fn put_raw(&self, key: &SessionKey, bytes: &[u8], ttl_ms: u64) -> Result<(), StoreError> {
        let address = self.address(key);
        match &address.field {
            Some(field) => {
                let mut pipe = redis::pipe();
                pipe.atomic().cmd("HSET").arg(&address.key).arg(field.as_slice()).arg(bytes).ignore();
                if self.hash_field_expiry {
                    pipe.cmd("HPEXPIRE")
                        .arg(&address.key)
                        .arg(ttl_ms.max(1))
                        .arg("FIELDS")
                        .arg(1)
                        .arg(field.as_slice())
                        .ignore();
                }
                let _: () = self.conn.query_pipeline(&pipe).await?;
            }
            None => {
                let _: () = self
                    .conn
                    .query(redis::cmd("SET").arg(&address.key).arg(bytes).arg("PX").arg(ttl_ms.max(1)))
                    .await?;
            }
        }
        self.forget_cached(&address);
        Ok(())
    }

    /// One step of the `hash` layout's sweeper: scans up to `max_buckets` buckets from where the last step stopped
    /// and deletes expired fields. Returns `(removed, wrapped)`: `wrapped` is true when the step reached the last
    /// bucket, i.e. a full pass has completed. Work per step is bounded by `max_buckets` × the bucket size.
    ///
    /// Each bucket is read with `HSCAN`, then its expired fields are deleted by a script that reads each field
    /// again and deletes it only if the value *now* stored is expired: a save that refreshed a field between the
    /// scan and the delete keeps it.
    pub async fn sweep_step(&self, max_buckets: u32) -> Result<(u64, bool), StoreError> {
        let buckets = self.options.buckets;
        let start = self.sweep_next_bucket.load(Ordering::Relaxed) % buckets;
        let end = (start + max_buckets.max(1)).min(buckets);
        let now = OffsetDateTime::now_utc();
        let mut removed = 0;
        for bucket in start..end {
            let key = self.bucket_key(bucket);
            let expired = self.expired_fields(&key, now).await?;
            removed += self.delete_fields_if_expired(&key, &expired, now).await?;
        }
        let wrapped = end >= buckets;
        self.sweep_next_bucket.store(if wrapped { 0 } else { end }, Ordering::Relaxed);
        Ok((removed, wrapped))
    }

    /// The fields of a bucket whose stored value had expired at `now` when `HSCAN` read it.
    async fn expired_fields(&self, bucket: &[u8], now: OffsetDateTime) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut expired = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, items): (u64, Vec<FieldAndValue>) =
                self.conn.query(redis::cmd("HSCAN").arg(bucket).arg(cursor).arg("COUNT").arg(500)).await?;
            expired.extend(
                items
                    .into_iter()
                    .filter(|(_, value)| NativeCodec::peek_expiry(value).is_ok_and(|at| at <= now))
                    .map(|(field, _)| field),
            );
            if next == 0 {
                return Ok(expired);
            }
            cursor = next;
        }
    }

    /// Deletes those of `fields` whose value, read again inside one script, is still expired at `now`; returns how
    /// many were deleted. Sent in chunks so one script never runs long.
    async fn delete_fields_if_expired(
        &self,
        bucket: &[u8],
        fields: &[Vec<u8>],
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut removed = 0;
        for chunk in fields.chunks(256) {
            let mut invocation = self.hash_sweep_delete.prepare_invoke();
            invocation.key(bucket).arg(now.unix_timestamp());
            for field in chunk {
                invocation.arg(field.as_slice());
            }
            let invocation = &invocation;
            let n: u64 = self.conn.run(|mut conn| async move { invocation.invoke_async(&mut conn).await }).await?;
            removed += n;
        }
        Ok(removed)
    }

    /// What every key of this store's sessions starts with (bucket keys for `hash`).
    fn key_prefix(&self) -> String {
        Self::key_prefix_of(&self.options)
    }

    /// [`Self::key_prefix`] of a store with these options (also what `client_cache=on` tracks).
    fn key_prefix_of(options: &RedisOptions) -> String {
        match options.layout {
            Layout::DjangoCache => {
                let d = &options.django;
                format!("{}:{}:{}", d.key_prefix, d.version, d.engine_prefix())
            }
            Layout::String => format!("{}s:", options.prefix),
            Layout::Hash => format!("{}h:", options.prefix),
        }
    }

    /// The `SCAN MATCH` pattern of this store's keys.
    fn scan_pattern(&self) -> String {
        format!("{}*", glob_escape(&self.key_prefix()))
    }

    /// One `SCAN … MATCH` page of this store's keys on `node` (the server, or one Cluster master).
    async fn scan_page(&self, node: Option<&(String, u16)>, cursor: u64) -> Result<(u64, Vec<Vec<u8>>), StoreError> {
        self.scan_match(node, cursor, &self.scan_pattern(), 1000).await
    }

    /// One `SCAN cursor MATCH pattern COUNT count` step on `node`.
    async fn scan_match(
        &self,
        node: Option<&(String, u16)>,
        cursor: u64,
        pattern: &str,
        count: usize,
    ) -> Result<(u64, Vec<Vec<u8>>), StoreError> {
        let scan = redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(count.max(1)).clone();
        let reply = self.conn.query_node(node, scan).await?;
        redis::from_redis_value(reply).map_err(|e| self.unavailable(e))
    }

    /// The masters to scan, in a stable order (a list cursor names its node).
    async fn sorted_scan_nodes(&self) -> Result<Vec<Option<(String, u16)>>, StoreError> {
        let mut nodes = self.conn.scan_nodes().await?;
        nodes.sort();
        Ok(nodes)
    }

    /// Lists stored sessions with `SCAN` on every master (plus `HSCAN` per bucket for `hash`), never `KEYS`;
    /// calls `visit` for each and stops early when it returns false. One `SCAN` page (≈1000 keys) plus one pipelined
    /// read per page are in flight at a time, so memory stays bounded however many sessions there are.
    pub async fn list(&self, mut visit: impl FnMut(ListedSession) -> bool + Send) -> Result<(), StoreError> {
        for node in self.conn.scan_nodes().await? {
            let mut cursor: u64 = 0;
            loop {
                let (next, keys) = self.scan_page(node.as_ref(), cursor).await?;
                for stored in self.describe_page(&keys).await? {
                    let listed = ListedSession {
                        id: stored.id,
                        key_is_hashed: self.options.hashed_keys,
                        expires_at: stored.raw.expires_at,
                        bytes: stored.raw.bytes.len(),
                    };
                    if !visit(listed) {
                        return Ok(());
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    /// A listed session from its stored id and value.
    fn stored(&self, id: String, bytes: Vec<u8>, expires_at: Option<OffsetDateTime>) -> StoredSession {
        let key = if self.options.hashed_keys { None } else { SessionKey::parse(&id).ok() };
        StoredSession { id, key, raw: RawSession { bytes, expires_at } }
    }

    /// Turns one SCAN page of keys into stored sessions (values included).
    async fn describe_page(&self, keys: &[Vec<u8>]) -> Result<Vec<StoredSession>, StoreError> {
        let mut out = Vec::new();
        match self.options.layout {
            Layout::Hash => {
                for bucket in keys {
                    let mut cursor: u64 = 0;
                    loop {
                        let (next, items): (u64, Vec<FieldAndValue>) =
                            self.conn.query(redis::cmd("HSCAN").arg(bucket).arg(cursor).arg("COUNT").arg(500)).await?;
                        for (field, value) in items {
                            let expires_at = NativeCodec::peek_expiry(&value).ok();
                            out.push(self.stored(stored_id(&field, self.options.hashed_keys), value, expires_at));
                        }
                        if next == 0 {
                            break;
                        }
                        cursor = next;
                    }
                }
            }
            Layout::String | Layout::DjangoCache => {
                let reads: Vec<redis::Cmd> = keys.iter().map(|k| redis::cmd("GET").arg(k).clone()).collect();
                let values: Vec<Option<Vec<u8>>> = self.per_key_commands(&reads).await?;
                let ttls: Vec<redis::Cmd> = keys.iter().map(|k| redis::cmd("PTTL").arg(k).clone()).collect();
                let ttls: Vec<i64> = if self.options.layout == Layout::DjangoCache {
                    self.per_key_commands(&ttls).await?
                } else {
                    Vec::new()
                };
                let prefix_len = self.key_prefix().len();
                for (i, (key, value)) in keys.iter().zip(values).enumerate() {
                    let Some(value) = value.filter(|v| !self.stores_none(v)) else { continue };
                    let suffix = key.get(prefix_len..).unwrap_or_default();
                    let expires_at = match self.options.layout {
                        Layout::DjangoCache => ttls
                            .get(i)
                            .filter(|ms| **ms >= 0)
                            .map(|ms| OffsetDateTime::now_utc().saturating_add(time::Duration::milliseconds(*ms))),
                        _ => NativeCodec::peek_expiry(&value).ok(),
                    };
                    out.push(self.stored(String::from_utf8_lossy(suffix).into_owned(), value, expires_at));
                }
            }
        }
        Ok(out)
    }

    /// Counts stored sessions with `SCAN` (and `HLEN` per bucket for the `hash` layout), never `KEYS`. Expired
    /// `hash` fields not yet swept are counted.
    pub async fn count(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        for node in self.conn.scan_nodes().await? {
            let mut cursor: u64 = 0;
            loop {
                let (next, keys) = self.scan_page(node.as_ref(), cursor).await?;
                if self.options.layout == Layout::Hash {
                    let lengths: Vec<redis::Cmd> = keys.iter().map(|key| redis::cmd("HLEN").arg(key).clone()).collect();
                    let counts: Vec<u64> = self.per_key_commands(&lengths).await?;
                    total += counts.iter().sum::<u64>();
                } else {
                    total += keys.len() as u64;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(total)
    }
}

/// A list cursor: `<node>/<SCAN cursor>`, the node being `host:port` of a Cluster master or `server`.
fn parse_list_cursor(cursor: &ListCursor) -> Option<(String, u64)> {
    let (node, scan) = cursor.0.rsplit_once('/')?;
    Some((node.to_owned(), scan.parse().ok()?))
}

fn node_name(node: Option<&(String, u16)>) -> String {
    node.map_or_else(|| "server".to_owned(), |(host, port)| format!("{host}:{port}"))
}

/// `SCAN` on every master in turn (the cursor names the master and its `SCAN` cursor); for the `hash` layout each
/// matched bucket is read whole with `HSCAN`, and `COUNT` is scaled down so a page holds about `page_size`
/// sessions.
#[async_trait]
impl SessionLister for RedisStore {
    async fn list_page(&self, cursor: Option<&ListCursor>, page_size: usize) -> Result<SessionPage, StoreError> {
        let nodes = self.sorted_scan_nodes().await?;
        let (index, scan_cursor) = match cursor {
            None => (0, 0),
            Some(cursor) => {
                let bad = || {
                    StoreError::Corrupt(format!(
                        "list cursor {:?} does not name a node of {} (the Cluster changed?)",
                        cursor.0, self.describe
                    ))
                };
                let (node, scan) = parse_list_cursor(cursor).ok_or_else(bad)?;
                let index = nodes.iter().position(|n| node_name(n.as_ref()) == node).ok_or_else(bad)?;
                (index, scan)
            }
        };
        let Some(node) = nodes.get(index) else { return Ok(SessionPage::default()) };
        let count = match self.options.layout {
            Layout::Hash => (page_size / TARGET_SESSIONS_PER_BUCKET as usize).max(1),
            _ => page_size,
        };
        let (next, keys) = self.scan_match(node.as_ref(), scan_cursor, &self.scan_pattern(), count).await?;
        let sessions = self.describe_page(&keys).await?;
        let next = if next != 0 {
            Some(ListCursor(format!("{}/{next}", node_name(node.as_ref()))))
        } else {
            nodes.get(index + 1).map(|n| ListCursor(format!("{}/0", node_name(n.as_ref()))))
        };
        Ok(SessionPage { sessions, next })
    }

    fn decode(&self, raw: &[u8]) -> Result<Map<String, Value>, CodecError> {
        match self.options.layout {
            Layout::DjangoCache => self.decode_django(raw),
            Layout::String | Layout::Hash => self.native.decode(raw).map(|(data, _)| data),
        }
    }

    /// `SCAN` counting (see [`RedisStore::count`]); keys of the `string` and `django-cache` layouts expire in Redis,
    /// so they are all live. Live sessions of the `hash` layout are counted by reading each value's expiry.
    async fn count(&self, valid_only: bool) -> Result<u64, StoreError> {
        if !valid_only || self.options.layout != Layout::Hash {
            return RedisStore::count(self).await;
        }
        let now = OffsetDateTime::now_utc();
        let (mut total, mut cursor) = (0, None);
        loop {
            let page = self.list_page(cursor.as_ref(), 1000).await?;
            total += page.sessions.iter().filter(|s| !s.is_expired(now)).count() as u64;
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(total),
            }
        }
    }
}

/// What one Redis server says about itself, for diagnostics (`sessionkit doctor`).
#[derive(Debug, Clone)]
pub struct ServerReport {
    /// The server: `host:port` of a Cluster master, else the store's description.
    pub node: String,
    /// `INFO server`, `INFO persistence` and `INFO memory` fields, e.g. `("redis_version", "7.0.15")`.
    pub info: Vec<(String, String)>,
    /// `CONFIG GET` answers, or why the server refused them (an ACL user without `+config`, a renamed command).
    pub config: Result<Vec<(String, String)>, String>,
}

impl ServerReport {
    /// An `INFO` field.
    pub fn info(&self, name: &str) -> Option<&str> {
        self.info.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A `CONFIG GET` value (`None` when refused or unknown).
    pub fn config(&self, name: &str) -> Option<&str> {
        self.config.as_ref().ok()?.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// True when a store error is the server refusing a command (an error reply such as `NOPERM`), not a failure to
/// reach it.
fn is_refusal(err: &StoreError) -> Option<String> {
    let StoreError::Unavailable { source, .. } = err else { return None };
    let redis_err = source.downcast_ref::<redis::RedisError>()?;
    if redis_err.is_io_error()
        || redis_err.is_timeout()
        || redis_err.is_connection_dropped()
        || redis_err.is_connection_refusal()
    {
        return None;
    }
    Some(redis_err.to_string())
}

fn text_of(value: RedisValue) -> String {
    match value {
        RedisValue::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        RedisValue::VerbatimString { text, .. } => text,
        RedisValue::SimpleString(text) => text,
        _ => String::new(),
    }
}

/// Diagnostics for tools (`sessionkit doctor`): they read, never write.
impl RedisStore {
    /// `INFO` (server, persistence, memory) and `CONFIG GET` of each of `config_names` on every master. A refused
    /// `CONFIG` is reported in [`ServerReport::config`], not as an error; an unreachable server is an error.
    pub async fn server_reports(&self, config_names: &[&str]) -> Result<Vec<ServerReport>, StoreError> {
        let mut reports = Vec::new();
        for node in self.sorted_scan_nodes().await? {
            let mut info = Vec::new();
            for section in ["server", "persistence", "memory"] {
                let reply = self.conn.query_node(node.as_ref(), redis::cmd("INFO").arg(section).clone()).await?;
                for line in text_of(reply).lines() {
                    if let Some((k, v)) = line.trim_end().split_once(':') {
                        info.push((k.to_owned(), v.to_owned()));
                    }
                }
            }
            let mut config = Ok(Vec::new());
            for name in config_names {
                let reply =
                    self.conn.query_node(node.as_ref(), redis::cmd("CONFIG").arg("GET").arg(*name).clone()).await;
                match reply {
                    Ok(value) => {
                        let flat: Vec<String> = redis::from_redis_value(value).unwrap_or_default();
                        if let Ok(pairs) = config.as_mut() {
                            pairs.extend(flat.chunks(2).filter_map(|c| Some((c.first()?.clone(), c.get(1)?.clone()))));
                        }
                    }
                    Err(err) => match is_refusal(&err) {
                        Some(reason) => {
                            config = Err(reason);
                            break;
                        }
                        None => return Err(err),
                    },
                }
            }
            let name = if node.is_some() { node_name(node.as_ref()) } else { self.describe.clone() };
            reports.push(ServerReport { node: name, info, config });
        }
        Ok(reports)
    }

    /// Keys matching the glob `pattern`, found with `SCAN … MATCH pattern COUNT 1000` on every master, at most
    /// `max_steps` `SCAN` calls per master and `max_keys` keys in all. Returns the keys and whether the scan was
    /// complete (every master scanned to the end).
    pub async fn sample_keys(
        &self,
        pattern: &str,
        max_steps: u32,
        max_keys: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StoreError> {
        let mut found = Vec::new();
        let mut complete = true;
        for node in self.sorted_scan_nodes().await? {
            let mut cursor = 0;
            let mut steps = 0;
            loop {
                let (next, keys) = self.scan_match(node.as_ref(), cursor, pattern, 1000).await?;
                steps += 1;
                found.extend(keys);
                if found.len() >= max_keys {
                    found.truncate(max_keys);
                    return Ok((found, false));
                }
                if next == 0 {
                    break;
                }
                if steps >= max_steps {
                    complete = false;
                    break;
                }
                cursor = next;
            }
        }
        Ok((found, complete))
    }

    /// `OBJECT ENCODING` and `HLEN` of up to `max_buckets` bucket hashes of the `hash` layout (found with `SCAN`):
    /// `(key, encoding, fields)`. Buckets whose encoding is `hashtable` lost the listpack's memory gain.
    pub async fn bucket_encodings(&self, max_buckets: usize) -> Result<Vec<(String, String, u64)>, StoreError> {
        let pattern = format!("{}*", glob_escape(&format!("{}h:", self.options.prefix)));
        let (keys, _) = self.sample_keys(&pattern, 50, max_buckets).await?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let encoding: Option<String> = self.conn.query(redis::cmd("OBJECT").arg("ENCODING").arg(&key)).await?;
            let len: u64 = self.conn.query(redis::cmd("HLEN").arg(&key)).await?;
            if let Some(encoding) = encoding {
                out.push((String::from_utf8_lossy(&key).into_owned(), encoding, len));
            }
        }
        Ok(out)
    }
}

#[cfg(feature = "django-cache")]
fn django_value_codec(options: &RedisOptions) -> Result<crate::codec::django_cache::CacheValueCodec, StoreError> {
    use crate::codec::django_cache::{CacheCompressor, CacheSerializer, CacheValueCodec};
    let d = &options.django;
    let bad =
        |reason: String| -> StoreError { crate::ConfigError::InvalidStoreUrl { url: "redis".into(), reason }.into() };
    Ok(match d.client {
        config::DjangoClient::RedisCache => {
            let mut codec = CacheValueCodec::django_redis_cache();
            codec.serializer = CacheSerializer::Pickle { protocol: d.pickle_protocol };
            codec
        }
        config::DjangoClient::DjangoRedis => {
            let serializer = match d.serializer.as_str() {
                "pickle" => CacheSerializer::Pickle { protocol: d.pickle_protocol },
                "json" => CacheSerializer::Json,
                "msgpack" => CacheSerializer::Msgpack,
                other => return Err(bad(format!("serializer {other:?} is not pickle, json or msgpack"))),
            };
            let compressor = match d.compressor.as_str() {
                "none" | "" => CacheCompressor::None,
                "zlib" => CacheCompressor::Zlib,
                "gzip" => CacheCompressor::Gzip,
                "lz4" => CacheCompressor::Lz4,
                "zstd" => CacheCompressor::Zstd,
                "lzma" => CacheCompressor::Lzma,
                other => return Err(bad(format!("compressor {other:?} is not zlib, gzip, lz4, zstd, lzma or none"))),
            };
            CacheValueCodec::django_redis(serializer, compressor)
        }
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `text` with the glob characters of `SCAN … MATCH` (`*`, `?`, `[`, `]`, `\`) escaped.
pub fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[async_trait]
impl SessionStore for RedisStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        if !key.is_storage_safe() {
            return Ok(None);
        }
        let address = self.address(key);
        let Some(hot) = &self.hot else {
            let Some((bytes, ttl_ms)) = self.read(&address).await? else { return Ok(None) };
            return self.decode_stored(key, bytes, ttl_ms).await;
        };
        // client_cache=on: answered from memory while nothing can be waiting to invalidate it; otherwise read
        // under a reservation, so an invalidation that overtakes the reply keeps the reply out of the cache.
        let cache = hot.tracked.cache();
        let field = address.field.as_deref().unwrap_or_default();
        if hot.tracked.fresh() {
            if let Some(record) = cache.get(&address.key, field) {
                crate::telemetry::client_cache_hit();
                return Ok(Some(record));
            }
        }
        // Dropped unfilled (nothing found, an error, the request cancelled), the reservation is given up.
        let reservation = cache.reserve(&address.key, field);
        let loaded = match self.read(&address).await? {
            Some((bytes, ttl_ms)) => self.decode_stored(key, bytes, ttl_ms).await?,
            None => None,
        };
        if let Some(record) = &loaded {
            reservation.fill(record.clone());
        }
        Ok(loaded)
    }

    async fn create(&self, record: &SessionRecord) -> Result<Option<Version>, StoreError> {
        match self.write(record, WriteMode::Create, true).await? {
            (Written::Yes, value) => Ok(Some(Version::new(value))),
            _ => Err(StoreError::KeyCollision),
        }
    }

    async fn save(&self, record: &SessionRecord, changes: &ChangeSet) -> Result<Saved, StoreError> {
        save_merging(self, record, changes).await
    }

    /// One script: the expiry of the key (or field) and of the value's header, and the user's index entry
    /// (a second round trip on Cluster, where the index lives in another slot).
    async fn touch(&self, record: &SessionRecord) -> Result<Touched, StoreError> {
        if !record.key.is_storage_safe() {
            return Ok(Touched::Vanished);
        }
        let address = self.address(&record.key);
        let user = if self.options.user_index { crate::store::user_index::auth_user_id(&record.data) } else { None };
        let id = crate::store::user_index::session_id(&record.key);
        let score = self.index_score_ms(record.expires_at);
        let now_ms = index::now_ms();
        let mut invocation = self.touch.prepare_invoke();
        invocation.key(&address.key);
        let kind = match (&address.field, self.options.layout) {
            (Some(_), _) => "hash",
            (None, Layout::DjangoCache) => "cache",
            (None, _) => "set",
        };
        let separate_index = match &user {
            Some(user) if !self.conn.is_cluster() => {
                let (index_key, details_key) = self.index_keys(user);
                invocation.key(index_key).key(details_key);
                None
            }
            other => other.clone(),
        };
        invocation
            .arg(kind)
            .arg(address.field.as_deref().unwrap_or_default())
            .arg(match address.field {
                Some(_) => Self::field_expiry_ms(record.expires_at),
                None => Self::expiry_ms(record.expires_at),
            })
            .arg(value::expiry_seconds(record.expires_at).to_be_bytes().as_slice())
            .arg(if self.hash_field_expiry { "1" } else { "0" })
            .arg(&id)
            .arg(score)
            .arg(now_ms);
        let invocation = &invocation;
        let moved: i64 = self.conn.run(|mut conn| async move { invocation.invoke_async(&mut conn).await }).await?;
        // The stored expiry (and, for `string`/`hash`, the value's header) changed: no cached copy is current.
        self.forget_cached(&address);
        if moved == 0 {
            return Ok(Touched::Vanished);
        }
        if let Some(user) = separate_index {
            let (index_key, details_key) = self.index_keys(&user);
            let score_now: Option<f64> = self.conn.query(redis::cmd("ZSCORE").arg(&index_key).arg(&id)).await?;
            if score_now.is_some() {
                let mut pipe = redis::pipe();
                pipe.atomic()
                    .cmd("ZADD")
                    .arg(&index_key)
                    .arg("XX")
                    .arg("GT")
                    .arg(score)
                    .arg(&id)
                    .ignore()
                    .cmd("HSET")
                    .arg(&details_key)
                    .arg(format!("{id}:s"))
                    .arg(now_ms)
                    .ignore()
                    .cmd("PEXPIREAT")
                    .arg(&index_key)
                    .arg(score)
                    .arg("GT")
                    .ignore()
                    .cmd("PEXPIREAT")
                    .arg(&details_key)
                    .arg(score)
                    .arg("GT")
                    .ignore();
                let _: () = self.conn.query_pipeline(&pipe).await?;
            }
        }
        Ok(Touched::Moved)
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        if !key.is_storage_safe() {
            return Ok(false);
        }
        let address = self.address(key);
        let n: i64 = match &address.field {
            Some(field) => self.conn.query(redis::cmd("HEXISTS").arg(&address.key).arg(field.as_slice())).await?,
            None => self.conn.query(redis::cmd("EXISTS").arg(&address.key)).await?,
        };
        Ok(n > 0)
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        if !key.is_storage_safe() {
            return Ok(());
        }
        let address = self.address(key);
        let _: i64 = match &address.field {
            Some(field) => self.conn.query(redis::cmd("HDEL").arg(&address.key).arg(field.as_slice())).await?,
            None => self.conn.query(redis::cmd("DEL").arg(&address.key)).await?,
        };
        self.forget_cached(&address);
        Ok(())
    }

    /// `string` and `django-cache` keys expire in Redis itself (nothing to do, 0 removed, as Django's cache
    /// engine). The `hash` layout without `HPEXPIREAT` runs the sweeper over every bucket, in bounded steps.
    async fn clear_expired(&self) -> Result<u64, StoreError> {
        if self.options.layout != Layout::Hash || self.hash_field_expiry {
            return Ok(0);
        }
        self.sweep_next_bucket.store(0, Ordering::Relaxed);
        let mut removed = 0;
        loop {
            let (n, wrapped) = self.sweep_step(64).await?;
            removed += n;
            if wrapped {
                return Ok(removed);
            }
        }
    }

    /// `django-cache`: Python's `None` for `hold` (`SET … PX`), which Django's own engine reads as a miss; a
    /// create fails on it. The other layouts: the default (an empty session).
    async fn hold_deleted(&self, key: &SessionKey, hold: std::time::Duration) -> Result<(), StoreError> {
        #[cfg(feature = "django-cache")]
        if self.options.layout == Layout::DjangoCache {
            return self.write_none_tombstone(key, hold, false).await;
        }
        super::write_empty_tombstone(self, key, hold).await
    }

    /// `django-cache`: one script (Python's `None` unless it is there already). The other layouts: the default.
    async fn step_aside(&self, key: &SessionKey, hold: std::time::Duration) -> Result<(), StoreError> {
        #[cfg(feature = "django-cache")]
        if self.options.layout == Layout::DjangoCache {
            return self.write_none_tombstone(key, hold, true).await;
        }
        super::step_aside_unless_tombstoned(self, key, hold).await
    }

    fn user_index(&self) -> Option<&dyn crate::store::UserSessionIndex> {
        self.options.user_index.then_some(self as &dyn crate::store::UserSessionIndex)
    }

    fn lister(&self) -> Option<&dyn SessionLister> {
        Some(self)
    }

    async fn load_raw(&self, key: &SessionKey) -> Result<Option<RawSession>, StoreError> {
        if !key.is_storage_safe() {
            return Ok(None);
        }
        let address = self.address(key);
        let Some((bytes, ttl_ms)) = self.read(&address).await? else { return Ok(None) };
        let expires_at = match (self.options.layout, ttl_ms) {
            (Layout::DjangoCache, Some(ms)) if ms >= 0 => {
                Some(OffsetDateTime::now_utc().saturating_add(time::Duration::milliseconds(ms)))
            }
            (Layout::DjangoCache, _) => None,
            _ => NativeCodec::peek_expiry(&bytes).ok(),
        };
        Ok(Some(RawSession { bytes, expires_at }))
    }
}

impl RedisStore {
    /// The `django-cache` tombstone: Python's `None` for `hold`; with `keep_existing`, a tombstone already there is
    /// left as it is (its expiry too).
    #[cfg(feature = "django-cache")]
    async fn write_none_tombstone(
        &self,
        key: &SessionKey,
        hold: std::time::Duration,
        keep_existing: bool,
    ) -> Result<(), StoreError> {
        if !key.is_storage_safe() {
            return Err(StoreError::UnsafeKey);
        }
        let ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX).max(1);
        let (redis_key, none) = (self.address(key).key, self.django.encode_none());
        if keep_existing {
            let mut invocation = self.step_aside.prepare_invoke();
            invocation.key(redis_key).arg(none).arg(ms);
            let invocation = &invocation;
            let _: u8 = self.conn.run(|mut conn| async move { invocation.invoke_async(&mut conn).await }).await?;
        } else {
            let _: () = self.conn.query(&redis::cmd("SET").arg(redis_key).arg(none).arg("PX").arg(ms).clone()).await?;
        }
        self.forget_cached(&self.address(key));
        Ok(())
    }
}

/// One command: `SET … XX` (last write wins), or a script that compares the stored value with the one loaded
/// (string-valued layouts, `hash`, and the indexed write when the session belongs to a user).
#[async_trait]
impl CompareAndSet for RedisStore {
    async fn write_if(
        &self,
        record: &SessionRecord,
        expected: Option<&Version>,
        changes: &ChangeSet,
    ) -> Result<WriteOutcome, StoreError> {
        use crate::store::user_index::{AUTH_USER_ID_KEY, CLIENT_IP_KEY, USER_AGENT_KEY};
        let refresh_index = changes.cleared()
            || [AUTH_USER_ID_KEY, USER_AGENT_KEY, CLIENT_IP_KEY].iter().any(|key| changes.get(key).is_some());
        let mode = match expected {
            Some(expected) => WriteMode::ReplaceIf(expected.as_bytes()),
            None => WriteMode::Replace,
        };
        Ok(match self.write(record, mode, refresh_index).await? {
            (Written::Yes, value) => WriteOutcome::Written(Some(Version::new(value))),
            (Written::Conflict(current, ttl_ms), _) => {
                match self.decode_stored(&record.key, current, Some(ttl_ms)).await? {
                    Some(current) => WriteOutcome::Conflict(Some(current)),
                    // What is stored now has expired (or is a tombstone): the session is gone.
                    None => WriteOutcome::Vanished,
                }
            }
            (Written::No, _) => WriteOutcome::Vanished,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The sweeper reads a bucket, then deletes what was expired; a save that refreshes a field in between must
    /// keep it (the delete re-checks the stored expiry atomically).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_field_refreshed_between_scan_and_delete_survives_the_sweeper() {
        let server = sessionkit_testsupport::shared_standalone();
        let url = format!("{}?layout=hash&buckets=1&prefix=sweeprace{}:", server.url(), std::process::id());
        let store = RedisStore::connect(&url).await.unwrap();
        assert!(!store.uses_hash_field_expiry(), "this test needs the sweeper (a server without HPEXPIREAT)");
        let now = OffsetDateTime::now_utc();
        let past = now - time::Duration::seconds(5);
        let (refreshed, untouched) = (SessionKey::generate(), SessionKey::generate());
        for key in [&refreshed, &untouched] {
            let record = SessionRecord::new(key.clone(), Map::new(), past);
            store.create(&record).await.unwrap();
        }
        let bucket = store.bucket_key(0);
        let expired = store.expired_fields(&bucket, now).await.unwrap();
        assert_eq!(expired.len(), 2, "both fields are expired when the sweeper reads the bucket");

        // A request that loaded the session just before it expired saves it now, with a new expiry.
        let mut data = Map::new();
        data.insert("kept".into(), Value::Bool(true));
        let loaded = store.load_raw(&refreshed).await.unwrap().unwrap().bytes;
        let live = SessionRecord {
            version: Some(Version::new(loaded)),
            ..SessionRecord::new(refreshed.clone(), data, now + time::Duration::hours(1))
        };
        store.save(&live, &ChangeSet::default()).await.unwrap();

        assert_eq!(store.delete_fields_if_expired(&bucket, &expired, now).await.unwrap(), 1);
        let loaded = store.load(&refreshed).await.unwrap().expect("the refreshed session survives the sweep");
        assert_eq!(loaded.data.get("kept"), Some(&Value::Bool(true)));
        assert!(store.load_raw(&untouched).await.unwrap().is_none(), "the expired one is gone");
    }
}
