//! Per-user data rights: export every live session of a user with its data, or erase them all (GDPR access and
//! erasure requests). `sessionkit user export|erase` and `manage.py sessionkit user export|erase` run these.
//!
//! **Two paths**, chosen per store:
//! - **index** ([`Source::Index`]): the store keeps a per-user index ([`SessionStore::user_index`]: Redis, and
//!   `cached_db` with a Redis cache). Redis: an export costs 2 round trips whatever the number of sessions (the
//!   index, then every value and expiry at once); an erasure 3 (the index, every session deleted at once, the index
//!   keys). `cached_db`: the cache's index for the details, and one pass over the database's rows (one query per
//!   500 rows), since the database holds every session and the cache only copies of some.
//! - **scan** ([`Source::Scan`]): every other store that can list its sessions (SQL, file, memory, Redis with
//!   `user_index=false`), or any store when [`UserDataOptions::force_scan`] asks: one pass over the store through
//!   its [`SessionLister`], 500 sessions a page, each decoded (on the blocking pool) to find `_auth_user_id`. It
//!   costs O(all sessions) — one SQL query, one `SCAN` step or one directory pass per page, and a decode per
//!   session — and stops after the page that reaches [`UserDataOptions::scan_limit`] sessions (then the result
//!   says it is not [complete](UserExport::complete)). A session that cannot be decoded (wrong `SECRET_KEY`,
//!   corrupt) cannot be attributed to anyone and is not found.
//!
//! Signed cookies keep nothing on the server: both calls fail with [`UserDataError::NothingServerSide`].
//!
//! **What an export holds.** Sessions are named by [`session_id`] (the session key is a bearer credential and is
//! never exported). `_auth_user_hash` is left out of each session's data ([`OMITTED_KEYS`]): it is an HMAC of the
//! user's password hash under the `SECRET_KEY`, a credential check rather than data about the user, and the
//! export says it omitted it. Only sessions whose data names the user (`_auth_user_id`) are exported: an index
//! entry whose session now belongs to someone else is skipped.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::user_index::{auth_user_id, session_id, UserSessionData, CLIENT_IP_KEY, USER_AGENT_KEY};
use super::{ListCursor, SessionStore, StoredSession};
use crate::codec::CodecError;
use crate::{SessionKey, StoreError};

/// Session keys left out of exported data: `_auth_user_hash` is derived from the user's password hash.
pub const OMITTED_KEYS: &[&str] = &["_auth_user_hash"];

/// Sessions a scan reads at most by default before it stops ([`UserDataOptions::scan_limit`]).
pub const DEFAULT_SCAN_LIMIT: u64 = 1_000_000;

/// Sessions per page of a scan.
const SCAN_PAGE: usize = 500;

/// How [`export_user`] and [`erase_user`] find a user's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserDataOptions {
    /// Scan the store even when it keeps a per-user index (finds sessions written before the index existed).
    pub force_scan: bool,
    /// A scan stops after this many sessions (the page that reaches it is finished).
    pub scan_limit: u64,
}

impl Default for UserDataOptions {
    fn default() -> Self {
        UserDataOptions { force_scan: false, scan_limit: DEFAULT_SCAN_LIMIT }
    }
}

/// Where a user's sessions were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The store's per-user index.
    Index,
    /// A pass over the store's sessions.
    Scan,
}

impl Source {
    /// `index` or `scan`, as the JSON says.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Index => "index",
            Source::Scan => "scan",
        }
    }
}

/// A per-user export or erasure failed.
#[derive(Debug, thiserror::Error)]
pub enum UserDataError {
    /// The store keeps sessions in the browser (signed cookies).
    #[error(
        "{store} keeps sessions in the browser (signed cookies): there is nothing on the server to export or erase; \
         a signed cookie stays valid until it expires or SECRET_KEY changes"
    )]
    NothingServerSide {
        /// The store's description.
        store: String,
    },
    /// The store has no index and cannot list its sessions.
    #[error("{store} keeps no per-user index and cannot list its sessions")]
    CannotScan {
        /// The store's description.
        store: String,
    },
    /// A scan found sessions of the user that cannot be deleted by key (keys hashed at rest, no index).
    #[error(
        "{count} session(s) of the user are stored under hashed keys (hashed_keys=true) in {store}, which keeps no \
         per-user index: they cannot be deleted by key; turn user_index on (the default) or let them expire"
    )]
    HashedWithoutIndex {
        /// The store's description.
        store: String,
        /// How many such sessions were found.
        count: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One exported session.
#[derive(Debug)]
pub struct ExportedSession {
    /// [`session_id`] of the key (never the key itself).
    pub id: String,
    /// When the session joined the index (usually the login), where recorded.
    pub created: Option<OffsetDateTime>,
    /// When the session was last saved, where recorded.
    pub last_seen: Option<OffsetDateTime>,
    /// When it expires, where known.
    pub expires_at: Option<OffsetDateTime>,
    /// The user agent, where recorded.
    pub user_agent: Option<String>,
    /// The IP address, where recorded.
    pub ip: Option<String>,
    /// The session dict without [`OMITTED_KEYS`], or why it could not be decoded.
    pub data: Result<Map<String, Value>, CodecError>,
}

/// Everything a user's sessions hold.
#[derive(Debug)]
pub struct UserExport {
    /// The user (Django's `_auth_user_id`).
    pub user_id: String,
    /// The store's description.
    pub store: String,
    /// When the export was made.
    pub exported_at: OffsetDateTime,
    /// Index or scan.
    pub source: Source,
    /// Sessions a scan read (`None` on the index path).
    pub scanned: Option<u64>,
    /// False when a scan stopped at its limit before the end of the store.
    pub complete: bool,
    /// The user's live sessions, most recently seen first (index) or in store order (scan).
    pub sessions: Vec<ExportedSession>,
}

/// What an erasure did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserErasure {
    /// The user.
    pub user_id: String,
    /// The store's description.
    pub store: String,
    /// Index or scan.
    pub source: Source,
    /// Nothing was deleted.
    pub dry_run: bool,
    /// Sessions a scan read (`None` on the index path).
    pub scanned: Option<u64>,
    /// False when a scan stopped at its limit before the end of the store.
    pub complete: bool,
    /// [`session_id`]s of the sessions deleted (dry run: that would be deleted).
    pub session_ids: Vec<String>,
}

fn rfc3339(at: Option<OffsetDateTime>) -> Value {
    at.and_then(|at| at.to_offset(time::UtcOffset::UTC).format(&time::format_description::well_known::Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

impl UserExport {
    /// The export as one JSON document (field names are stable; times are RFC 3339 in UTC):
    /// `{user_id, store, exported_at, source, scanned, complete, omitted_keys, sessions: [{id, created, last_seen,
    /// expires_at, user_agent, ip, data, decode_error}]}`.
    pub fn to_json(&self) -> Value {
        let sessions: Vec<Value> = self
            .sessions
            .iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "created": rfc3339(s.created),
                    "last_seen": rfc3339(s.last_seen),
                    "expires_at": rfc3339(s.expires_at),
                    "user_agent": s.user_agent,
                    "ip": s.ip,
                    "data": s.data.as_ref().ok().map(|d| Value::Object(d.clone())),
                    "decode_error": s.data.as_ref().err().map(ToString::to_string),
                })
            })
            .collect();
        json!({
            "user_id": self.user_id,
            "store": self.store,
            "exported_at": rfc3339(Some(self.exported_at)),
            "source": self.source.as_str(),
            "scanned": self.scanned,
            "complete": self.complete,
            "omitted_keys": OMITTED_KEYS,
            "sessions": sessions,
        })
    }
}

impl UserErasure {
    /// The erasure as JSON: `{user_id, store, source, dry_run, scanned, complete, count, session_ids}`.
    pub fn to_json(&self) -> Value {
        json!({
            "user_id": self.user_id,
            "store": self.store,
            "source": self.source.as_str(),
            "dry_run": self.dry_run,
            "scanned": self.scanned,
            "complete": self.complete,
            "count": self.session_ids.len(),
            "session_ids": self.session_ids,
        })
    }
}

/// Every live session of `user_id` with its data (see the module docs for the paths and their costs).
pub async fn export_user(
    store: &Arc<dyn SessionStore>,
    user_id: &str,
    options: UserDataOptions,
) -> Result<UserExport, UserDataError> {
    let exported_at = OffsetDateTime::now_utc();
    let describe = store.describe();
    if let Some(index) = store.user_index().filter(|_| !options.force_scan) {
        let sessions = index
            .sessions_with_data(user_id)
            .await?
            .into_iter()
            .filter(|s| belongs_to(&s.data, user_id))
            .map(exported_from_index)
            .collect();
        return Ok(UserExport {
            user_id: user_id.to_owned(),
            store: describe,
            exported_at,
            source: Source::Index,
            scanned: None,
            complete: true,
            sessions,
        });
    }
    let scan = scan_user(store, user_id, options.scan_limit).await?;
    let sessions = scan
        .found
        .into_iter()
        .map(|(stored, data)| {
            let text = |name: &str| data.get(name).and_then(Value::as_str).map(str::to_owned);
            ExportedSession {
                id: id_of(&stored),
                created: None,
                last_seen: None,
                expires_at: stored.raw.expires_at,
                user_agent: text(USER_AGENT_KEY),
                ip: text(CLIENT_IP_KEY),
                data: Ok(without_omitted(data)),
            }
        })
        .collect();
    Ok(UserExport {
        user_id: user_id.to_owned(),
        store: describe,
        exported_at,
        source: Source::Scan,
        scanned: Some(scan.scanned),
        complete: scan.complete,
        sessions,
    })
}

/// Deletes every session of `user_id` and the user's index entry (see the module docs for the paths and their
/// costs); with `dry_run`, deletes nothing and says what would be deleted.
///
/// A session the user opens while the erasure runs may survive it: erase after the account is disabled.
pub async fn erase_user(
    store: &Arc<dyn SessionStore>,
    user_id: &str,
    dry_run: bool,
    options: UserDataOptions,
) -> Result<UserErasure, UserDataError> {
    let describe = store.describe();
    if let Some(index) = store.user_index().filter(|_| !options.force_scan) {
        let session_ids = if dry_run {
            index.list(user_id).await?.into_iter().map(|s| s.id).collect()
        } else {
            index.erase(user_id).await?
        };
        return Ok(UserErasure {
            user_id: user_id.to_owned(),
            store: describe,
            source: Source::Index,
            dry_run,
            scanned: None,
            complete: true,
            session_ids,
        });
    }
    let scan = scan_user(store, user_id, options.scan_limit).await?;
    let hashed = scan.found.iter().filter(|(stored, _)| stored.key.is_none()).count();
    if hashed > 0 {
        return Err(UserDataError::HashedWithoutIndex { store: describe, count: hashed });
    }
    let keys: Vec<(String, SessionKey)> =
        scan.found.into_iter().filter_map(|(stored, _)| Some((id_of(&stored), stored.key?))).collect();
    if !dry_run {
        for (_, key) in &keys {
            store.delete(key).await?;
        }
    }
    Ok(UserErasure {
        user_id: user_id.to_owned(),
        store: describe,
        source: Source::Scan,
        dry_run,
        scanned: Some(scan.scanned),
        complete: scan.complete,
        session_ids: keys.into_iter().map(|(id, _)| id).collect(),
    })
}

/// True when decoded data names `user_id` as its user (undecodable data is kept: it is reported, not shown).
fn belongs_to(data: &Result<Map<String, Value>, CodecError>, user_id: &str) -> bool {
    match data {
        Ok(data) => auth_user_id(data).as_deref() == Some(user_id),
        Err(_) => true,
    }
}

fn exported_from_index(found: UserSessionData) -> ExportedSession {
    let UserSessionData { session, data } = found;
    let text = |name: &str| data.as_ref().ok().and_then(|d| d.get(name)).and_then(Value::as_str).map(str::to_owned);
    ExportedSession {
        user_agent: session.user_agent.or_else(|| text(USER_AGENT_KEY)),
        ip: session.ip.or_else(|| text(CLIENT_IP_KEY)),
        id: session.id,
        created: session.created,
        last_seen: session.last_seen,
        expires_at: Some(session.expires_at),
        data: data.map(without_omitted),
    }
}

fn without_omitted(mut data: Map<String, Value>) -> Map<String, Value> {
    for key in OMITTED_KEYS {
        data.shift_remove(*key);
    }
    data
}

/// [`session_id`] of a listed session: of its key, or, for a key hashed at rest (the id is the hex SHA-256 of the
/// key), the first 32 hex digits of that digest, which is the same thing.
fn id_of(stored: &StoredSession) -> String {
    match &stored.key {
        Some(key) => session_id(key),
        None => stored.id.chars().take(32).collect(),
    }
}

/// What a scan found.
pub(crate) struct Scan {
    /// The user's live sessions and their decoded data.
    pub(crate) found: Vec<(StoredSession, Map<String, Value>)>,
    scanned: u64,
    complete: bool,
}

/// [`scan_sessions_of`] on the store's own enumeration, or why there is none.
async fn scan_user(store: &Arc<dyn SessionStore>, user_id: &str, limit: u64) -> Result<Scan, UserDataError> {
    let describe = store.describe();
    match store.lister() {
        Some(_) => Ok(scan_sessions_of(store, user_id, limit).await?),
        None if describe.starts_with("cookie:") => Err(UserDataError::NothingServerSide { store: describe }),
        None => Err(UserDataError::CannotScan { store: describe }),
    }
}

/// One pass over `store`'s sessions (pages of [`SCAN_PAGE`], decoded on the blocking pool), keeping the live ones
/// of `user_id`; stops after the page that reaches `limit` sessions (`u64::MAX`: never). A store without an
/// enumeration has nothing to scan.
pub(crate) async fn scan_sessions_of(
    store: &Arc<dyn SessionStore>,
    user_id: &str,
    limit: u64,
) -> Result<Scan, StoreError> {
    let Some(lister) = store.lister() else { return Ok(Scan { found: Vec::new(), scanned: 0, complete: true }) };
    let describe = store.describe();
    let now = OffsetDateTime::now_utc();
    let (mut found, mut scanned) = (Vec::new(), 0u64);
    let mut cursor: Option<ListCursor> = None;
    loop {
        let page = lister.list_page(cursor.as_ref(), SCAN_PAGE).await?;
        scanned += page.sessions.len() as u64;
        // Decoding a page of sessions is CPU work: on the blocking pool, not on an async worker.
        let (owner, user, sessions) = (Arc::clone(store), user_id.to_owned(), page.sessions);
        let matched = super::offload::run_blocking(&describe, move || {
            let Some(lister) = owner.lister() else { return Vec::new() };
            let mut matched = Vec::new();
            for stored in sessions {
                if stored.is_expired(now) {
                    continue;
                }
                let Ok(data) = lister.decode(&stored.raw.bytes) else { continue };
                if auth_user_id(&data).as_deref() == Some(user.as_str()) {
                    matched.push((stored, data));
                }
            }
            matched
        })
        .await?;
        found.extend(matched);
        match page.next {
            None => return Ok(Scan { found, scanned, complete: true }),
            Some(_) if scanned >= limit => return Ok(Scan { found, scanned, complete: false }),
            Some(next) => cursor = Some(next),
        }
    }
}
