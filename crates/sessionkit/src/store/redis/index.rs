//! The per-user session index of the Redis store.
//!
//! For user `U` (Django's `_auth_user_id`) two keys share the hash tag `{U}`, so they live in one Cluster slot
//! (an id with `{` or `}` in it, an empty one or one starting with `~` is tagged `{~sha256:<hex of the id>}` instead,
//! see `index_hash_tag`):
//!
//! - `<prefix>u:{U}`: a sorted set, member = [`session_id`] of each session, score = its expiry (ms);
//! - `<prefix>u:{U}:m`: a hash of details per member: `<id>:c` created, `<id>:s` last seen (ms), `<id>:k` the
//!   Redis key of the session and `<id>:f` its hash field (`hash` layout), `<id>:a` user agent, `<id>:i` IP.
//!
//! Both get `PEXPIREAT` = the latest score of their members, so the index expires after the sessions.
//!
//! **Cost of each call** (n = the user's sessions):
//! - a save of a logged-in session: one script does the session write and, only if it succeeded, the index update
//!   (one command, one round trip, atomic). In a Cluster the session and the index are in different slots: the
//!   index is written first (one atomic round trip in the index's slot), then the session (a second round trip);
//!   a failed session write leaves an entry that the next read prunes.
//! - [`UserSessionIndex::list`]: 2 round trips (`ZRANGE`+`HGETALL`, then each entry's real expiry, pipelined:
//!   `PTTL`, or `HGET` of a hash field), plus 1 when dead entries are pruned; O(n).
//!
//! **Refresh window.** An entry's score (and the index keys' expiry) is the session's expiry plus `index_refresh`
//! (default 300 s). The save script rewrites the entry only when the session's new expiry passes that score, or
//! when the login, user agent or IP changed; the other saves leave the index alone (one `ZSCORE` inside the
//! script). So the index always outlives its sessions, `last_seen` is exact to within the window, and `list`
//! reports each session's real expiry.
//! - [`UserSessionIndex::delete_one`]: 2 round trips. [`UserSessionIndex::delete_all`]: 2 round trips, O(n).

use async_trait::async_trait;
use redis::Value as RedisValue;
use sha2::Digest;
use time::OffsetDateTime;

use serde_json::{Map, Value};

use super::config::Layout;
use super::value::NativeCodec;
use super::{Address, RedisStore};
use crate::codec::CodecError;
use crate::store::user_index::{
    session_id, UserSession, UserSessionData, UserSessionIndex, CLIENT_IP_KEY, USER_AGENT_KEY,
};
use crate::{SessionKey, SessionRecord, StoreError};

/// Detail fields kept per member in the `:m` hash.
const DETAIL_SUFFIXES: [&str; 6] = ["c", "s", "k", "f", "a", "i"];

/// The hash tag of a user's index keys: the user id itself when Redis Cluster reads it back whole (no `{` or `}`,
/// not empty) and it cannot be mistaken for a digest (does not start with `~`), else `~sha256:` and the hex SHA-256
/// of the id. A `}` in the id would end the tag early (`u:{}x}` and `u:{}x}:m` hash to different slots) and a `{`
/// could start it elsewhere; the digest form has neither. Ids starting with `~` are always hashed, so a user named
/// `~sha256:<hex>` cannot share another user's index.
fn index_hash_tag(user_id: &str) -> std::borrow::Cow<'_, str> {
    if !user_id.is_empty() && !user_id.contains(['{', '}']) && !user_id.starts_with('~') {
        return user_id.into();
    }
    let digest: String = sha2::Sha256::digest(user_id.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    format!("~sha256:{digest}").into()
}

impl RedisStore {
    pub(super) fn index_keys(&self, user_id: &str) -> (String, String) {
        let index = format!("{}u:{{{}}}", self.options.prefix, index_hash_tag(user_id));
        let details = format!("{index}:m");
        (index, details)
    }

    /// The commands that record `record` (stored at `address`) in `user_id`'s index.
    pub(super) fn index_commands(&self, user_id: &str, record: &SessionRecord, address: &Address) -> Vec<redis::Cmd> {
        let (index, details) = self.index_keys(user_id);
        let id = session_id(&record.key);
        let now_ms = now_ms();
        let expiry_ms = self.index_score_ms(record.expires_at);
        let mut commands = Vec::with_capacity(8);
        commands.push(redis::cmd("ZADD").arg(&index).arg(expiry_ms).arg(&id).clone());
        commands.push(redis::cmd("ZREMRANGEBYSCORE").arg(&index).arg("-inf").arg(now_ms).clone());
        commands.push(redis::cmd("HSETNX").arg(&details).arg(format!("{id}:c")).arg(now_ms).clone());
        let mut set = redis::cmd("HSET");
        set.arg(&details).arg(format!("{id}:s")).arg(now_ms).arg(format!("{id}:k")).arg(&address.key);
        if let Some(field) = &address.field {
            set.arg(format!("{id}:f")).arg(field.as_slice());
        }
        for (session_key, suffix) in [(USER_AGENT_KEY, "a"), (CLIENT_IP_KEY, "i")] {
            if let Some(serde_json::Value::String(text)) = record.data.get(session_key) {
                set.arg(format!("{id}:{suffix}")).arg(truncate(text, 512));
            }
        }
        commands.push(set);
        for key in [&index, &details] {
            // NX gives a new key its TTL; GT only ever extends it.
            commands.push(redis::cmd("PEXPIREAT").arg(key).arg(expiry_ms).arg("NX").clone());
            commands.push(redis::cmd("PEXPIREAT").arg(key).arg(expiry_ms).arg("GT").clone());
        }
        commands
    }

    /// The score (and key expiry) of an index entry for a session expiring at `expires_at`: the expiry plus the
    /// `index_refresh` window. It is an upper bound of the session's expiry while the saves within the window
    /// skip the index; [`UserSessionIndex::list`] reads each session's real expiry.
    pub(super) fn index_score_ms(&self, expires_at: OffsetDateTime) -> u64 {
        Self::expiry_ms(expires_at).saturating_add(self.options.index_refresh.as_millis() as u64)
    }

    /// Members and details of a user's index (one round trip).
    async fn read_index(&self, user_id: &str) -> Result<(Vec<(String, f64)>, Vec<(String, Vec<u8>)>), StoreError> {
        let (index, details) = self.index_keys(user_id);
        let mut pipe = redis::pipe();
        pipe.cmd("ZRANGE").arg(&index).arg(0).arg(-1).arg("WITHSCORES").cmd("HGETALL").arg(&details);
        self.conn.query_pipeline(&pipe).await
    }

    /// Removes members and their details from a user's index.
    async fn prune(&self, user_id: &str, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let (index, details) = self.index_keys(user_id);
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("ZREM").arg(&index).arg(ids).ignore();
        let fields: Vec<String> =
            ids.iter().flat_map(|id| DETAIL_SUFFIXES.iter().map(move |suffix| format!("{id}:{suffix}"))).collect();
        pipe.cmd("HDEL").arg(&details).arg(fields).ignore();
        let _: () = self.conn.query_pipeline(&pipe).await?;
        Ok(())
    }

    /// Deletes the sessions at `addresses` (one pipelined round trip; per-command routing in a Cluster) and
    /// returns how many existed.
    async fn delete_addresses(&self, addresses: &[Address]) -> Result<u64, StoreError> {
        Ok(self.delete_each(addresses).await?.iter().sum())
    }

    /// [`Self::delete_addresses`], with one count (1 deleted, 0 not there) per address.
    async fn delete_each(&self, addresses: &[Address]) -> Result<Vec<u64>, StoreError> {
        let commands: Vec<redis::Cmd> = addresses
            .iter()
            .map(|address| match &address.field {
                Some(field) => redis::cmd("HDEL").arg(&address.key).arg(field.as_slice()).clone(),
                None => redis::cmd("DEL").arg(&address.key).clone(),
            })
            .collect();
        let deleted = self.per_key_commands(&commands).await;
        for address in addresses {
            self.forget_cached(address);
        }
        deleted
    }

    /// Runs single-key commands on keys that may live in different slots: one pipeline on a single server;
    /// concurrently, one per key, in a Cluster (redis-rs refuses cross-slot pipelines). One round trip of latency
    /// either way.
    pub(super) async fn per_key_commands<T: redis::FromRedisValue + Send + 'static>(
        &self,
        commands: &[redis::Cmd],
    ) -> Result<Vec<T>, StoreError> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        if self.conn.is_cluster() {
            let replies = futures_util::future::join_all(commands.iter().map(|cmd| self.conn.query::<T>(cmd))).await;
            return replies.into_iter().collect();
        }
        let mut pipe = redis::pipe();
        for cmd in commands {
            pipe.add_command(cmd.clone());
        }
        self.conn.query_pipeline(&pipe).await
    }
}

struct Entry {
    id: String,
    expires_ms: f64,
    details: std::collections::HashMap<&'static str, Vec<u8>>,
}

impl Entry {
    fn address(&self) -> Option<Address> {
        let key = self.details.get("k")?.clone();
        Some(Address { key, field: self.details.get("f").cloned() })
    }

    fn text(&self, suffix: &str) -> Option<String> {
        self.details.get(suffix).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn time(&self, suffix: &str) -> Option<OffsetDateTime> {
        let ms: i64 = self.text(suffix)?.parse().ok()?;
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
    }
}

fn entries(members: Vec<(String, f64)>, details: Vec<(String, Vec<u8>)>) -> Vec<Entry> {
    let mut entries: Vec<Entry> =
        members.into_iter().map(|(id, expires_ms)| Entry { id, expires_ms, details: Default::default() }).collect();
    for (field, value) in details {
        let Some((id, suffix)) = field.rsplit_once(':') else { continue };
        let Some(suffix) = DETAIL_SUFFIXES.iter().find(|s| **s == suffix) else { continue };
        if let Some(entry) = entries.iter_mut().find(|e| e.id == id) {
            entry.details.insert(suffix, value);
        }
    }
    entries
}

pub(super) fn now_ms() -> u64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u64
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl RedisStore {
    /// The user's live sessions (2 round trips, plus 1 when dead entries are pruned), with each one's stored value
    /// when `with_values`. Each candidate's real expiry is read (`PTTL` of a key, the expiry in a hash field's
    /// value), which also tells the sessions deleted without the index knowing (logout, flush, eviction); with
    /// values, a key is read with `GET` and `PTTL` in the same round trip.
    async fn live_sessions(
        &self,
        user_id: &str,
        with_values: bool,
    ) -> Result<Vec<(UserSession, Option<Vec<u8>>)>, StoreError> {
        let (members, details) = self.read_index(user_id).await?;
        let now = OffsetDateTime::now_utc();
        let now_ms = now_ms() as f64;
        // A score is an upper bound of the session's expiry (see `index_score_ms`): below now, it is gone.
        let (candidates, mut dead): (Vec<Entry>, Vec<Entry>) =
            entries(members, details).into_iter().partition(|e| e.expires_ms > now_ms && e.address().is_some());
        let mut reads: Vec<redis::Cmd> = Vec::with_capacity(candidates.len() * 2);
        for address in candidates.iter().filter_map(Entry::address) {
            match &address.field {
                Some(field) => reads.push(redis::cmd("HGET").arg(&address.key).arg(field.as_slice()).clone()),
                None => {
                    if with_values {
                        reads.push(redis::cmd("GET").arg(&address.key).clone());
                    }
                    reads.push(redis::cmd("PTTL").arg(&address.key).clone());
                }
            }
        }
        let mut replies = self.per_key_commands::<RedisValue>(&reads).await?.into_iter();
        let mut sessions = Vec::new();
        for entry in candidates {
            let (expires_at, value) = if entry.details.contains_key("f") {
                match replies.next() {
                    Some(RedisValue::BulkString(stored)) => {
                        (NativeCodec::peek_expiry(&stored).ok(), with_values.then_some(stored))
                    }
                    _ => (None, None),
                }
            } else {
                let value = if with_values {
                    match replies.next() {
                        Some(RedisValue::BulkString(stored)) if !self.stores_none(&stored) => Some(stored),
                        // Gone, or a cached_db tombstone (Python's None): no session.
                        _ => {
                            replies.next();
                            dead.push(entry);
                            continue;
                        }
                    }
                } else {
                    None
                };
                let expires_at = match replies.next() {
                    Some(RedisValue::Int(ms)) if ms >= 0 => Some(now.saturating_add(time::Duration::milliseconds(ms))),
                    // A key without a TTL (written by hand): it lives as long as its index entry says.
                    Some(RedisValue::Int(-1)) => {
                        OffsetDateTime::from_unix_timestamp_nanos(entry.expires_ms as i128 * 1_000_000).ok()
                    }
                    _ => None,
                };
                (expires_at, value)
            };
            let Some(expires_at) = expires_at.filter(|at| *at > now) else {
                dead.push(entry);
                continue;
            };
            let session = UserSession {
                created: entry.time("c"),
                last_seen: entry.time("s"),
                expires_at,
                user_agent: entry.text("a"),
                ip: entry.text("i"),
                id: entry.id,
            };
            sessions.push((session, value));
        }
        let dead_ids: Vec<String> = dead.into_iter().map(|e| e.id).collect();
        self.prune(user_id, &dead_ids).await?;
        sessions.sort_by_key(|(s, _)| std::cmp::Reverse(s.last_seen));
        Ok(sessions)
    }

    /// Decodes a stored value of this store (off the async worker when costly, see `store::offload`).
    async fn decode_value(&self, bytes: Vec<u8>) -> Result<Result<Map<String, Value>, CodecError>, StoreError> {
        match self.options.layout {
            Layout::DjangoCache => Ok(self.decode_django_off_worker(bytes).await?.0),
            Layout::String | Layout::Hash => {
                let (decoded, _) =
                    super::super::offload::decode_off_worker(&self.describe, &self.native, bytes).await?;
                Ok(decoded.map(|(data, _)| data))
            }
        }
    }
}

#[async_trait]
impl UserSessionIndex for RedisStore {
    async fn list(&self, user_id: &str) -> Result<Vec<UserSession>, StoreError> {
        Ok(self.live_sessions(user_id, false).await?.into_iter().map(|(session, _)| session).collect())
    }

    /// 2 round trips (3 when dead entries are pruned), whatever the number of sessions: the index, then every
    /// session's value and expiry at once (one pipeline; one concurrent command per key in a Cluster).
    async fn sessions_with_data(&self, user_id: &str) -> Result<Vec<UserSessionData>, StoreError> {
        let mut out = Vec::new();
        for (session, value) in self.live_sessions(user_id, true).await? {
            let data = match value {
                Some(bytes) => self.decode_value(bytes).await?,
                None => Err(CodecError::Malformed("the session's value could not be read")),
            };
            out.push(UserSessionData { session, data });
        }
        Ok(out)
    }

    /// 3 round trips: the index, every indexed session deleted at once (pipelined; concurrent in a Cluster), then
    /// both index keys deleted (one slot, one command).
    async fn erase(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        let (members, details) = self.read_index(user_id).await?;
        let (ids, addresses): (Vec<String>, Vec<Address>) = entries(members, details)
            .into_iter()
            .filter_map(|e| Some((e.address()?, e.id)))
            .map(|(a, id)| (id, a))
            .unzip();
        let counts = self.delete_each(&addresses).await?;
        let deleted = ids.into_iter().zip(counts).filter(|(_, n)| *n > 0).map(|(id, _)| id).collect();
        let (index, details) = self.index_keys(user_id);
        let _: () = self.conn.query(redis::cmd("DEL").arg(&index).arg(&details)).await?;
        Ok(deleted)
    }

    async fn delete_one(&self, user_id: &str, id: &str) -> Result<bool, StoreError> {
        let (members, details) = self.read_index(user_id).await?;
        let Some(entry) = entries(members, details).into_iter().find(|e| e.id == id) else { return Ok(false) };
        let deleted = match entry.address() {
            Some(address) => self.delete_addresses(&[address]).await?,
            None => 0,
        };
        self.prune(user_id, &[entry.id]).await?;
        Ok(deleted > 0)
    }

    async fn delete_all(&self, user_id: &str, keep: Option<&SessionKey>) -> Result<u64, StoreError> {
        let keep_id = keep.map(session_id);
        let (members, details) = self.read_index(user_id).await?;
        let doomed: Vec<Entry> =
            entries(members, details).into_iter().filter(|e| Some(&e.id) != keep_id.as_ref()).collect();
        let addresses: Vec<Address> = doomed.iter().filter_map(Entry::address).collect();
        let deleted = self.delete_addresses(&addresses).await?;
        let ids: Vec<String> = doomed.into_iter().map(|e| e.id).collect();
        self.prune(user_id, &ids).await?;
        Ok(deleted)
    }

    async fn session_keys(&self, user_id: &str) -> Result<Vec<(String, Option<SessionKey>)>, StoreError> {
        let (members, details) = self.read_index(user_id).await?;
        Ok(entries(members, details)
            .into_iter()
            .map(|entry| {
                let key = entry.address().and_then(|address| self.key_of_address(&address));
                (entry.id, key)
            })
            .collect())
    }
}

/// Reads the session-write reply out of a `MULTI` result: `SET` answers OK or nil, the hash scripts 1 or 0.
pub(super) fn write_succeeded(reply: &RedisValue) -> bool {
    match reply {
        RedisValue::Okay => true,
        RedisValue::SimpleString(s) => s == "OK",
        RedisValue::Int(n) => *n == 1,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::index_hash_tag;
    use sha2::Digest;

    #[test]
    fn tags_are_the_id_or_a_digest_that_no_id_can_spell() {
        assert_eq!(index_hash_tag("42"), "42");
        assert_eq!(index_hash_tag("alice@example.com"), "alice@example.com");
        let digest =
            |id: &str| -> String { sha2::Sha256::digest(id.as_bytes()).iter().map(|b| format!("{b:02x}")).collect() };
        assert_eq!(index_hash_tag("}x"), format!("~sha256:{}", digest("}x")));
        assert_eq!(index_hash_tag(""), format!("~sha256:{}", digest("")));
        // A user named like another user's digest tag gets a digest of its own name.
        let spelled = format!("~sha256:{}", digest("{victim}"));
        assert_ne!(index_hash_tag(&spelled), index_hash_tag("{victim}"));
        assert_eq!(index_hash_tag(&spelled), format!("~sha256:{}", digest(&spelled)));
    }
}
