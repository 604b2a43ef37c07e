//! The [`SessionStore`] contract and its implementations, one module per store.
//!
//! | URL | store | feature |
//! |-----|-------|---------|
//! | `memory://` | [`memory::MemoryStore`] | `memory` |
//! | `cookie:` | [`cookie::CookieStore`] (Django's `signed_cookies` backend) | always |
//! | `cached_db:CACHE_URL\|DB_URL` | [`cached_db::CachedDbStore`] (Django's `cached_db` backend) | always |
//! | `sqlite://PATH`, `sqlite:///ABS/PATH` | [`sqlite::SqliteStore`] (Django's `db` backend) | `sqlite` |
//! | `postgres://USER@HOST:5432/DB`, `postgresql://` | [`postgres::PostgresStore`] (Django's `db` backend) | `postgres` |
//! | `mysql://USER@HOST:3306/DB`, `mariadb://` | [`mysql::MySqlStore`] (Django's `db` backend) | `mysql` |
//! | `file:///ABS/DIR`, `file://` (`SESSION_FILE_PATH` or the temp dir) | [`file::FileStore`] (Django's `file` backend) | `file` |
//! | `redis://`, `rediss://`, `unix://`, `redis+sentinel://`, `redis+cluster://` | [`redis::RedisStore`] | `redis` |
//!
//! Every store passes the shared conformance suite (`sessionkit::conformance`).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::codec::CodecError;
use crate::{ChangeSet, ConfigError, SessionKey, SessionRecord, Settings, StoreError, Version};

pub mod cached_db;
pub mod cookie;
#[cfg(feature = "file")]
pub mod file;
pub mod instrumented;
pub mod last_write_wins;
#[cfg(feature = "memory")]
pub mod memory;
pub mod merge;
mod offload;
pub mod policy;
#[cfg(any(feature = "redis", feature = "postgres", feature = "mysql"))]
mod probe;
mod redact;
#[cfg(feature = "redis")]
pub mod redis;
mod signed_data;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub mod sql;
#[cfg(feature = "mysql")]
pub use sql::mysql;
#[cfg(feature = "postgres")]
pub use sql::postgres;
#[cfg(feature = "sqlite")]
pub use sql::sqlite;
mod url_options;
pub mod user_data;
pub mod user_index;

pub use merge::{CompareAndSet, Saved, WriteOutcome};
pub use policy::{FailurePolicy, TreatUnavailableAsEmpty};
pub use redact::redact_url;
pub use signed_data::SignedSessionCodec;
pub use user_index::{UserSession, UserSessionIndex};

/// What [`SessionStore::touch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touched {
    /// The expiry was moved.
    Moved,
    /// No such session is stored (any more): nothing was written.
    Vanished,
    /// The store cannot move an expiry alone; the caller saves the session instead.
    Unsupported,
}

/// A session's stored form, as it is in the store, for inspection (`sessionkit show --raw`, the demo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSession {
    /// The stored value: a signed token for db stores, JSON for the memory store, and so on.
    pub bytes: Vec<u8>,
    /// The expiry the store keeps next to the value, if it keeps one.
    pub expires_at: Option<OffsetDateTime>,
}

/// Where a [`SessionLister`] enumeration continues: text the store made (a key, a `SCAN` cursor), opaque to callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor(pub String);

/// One stored session, as a [`SessionLister`] reports it: expired ones included, data not yet decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// How the store names the session: its key, or the hex SHA-256 of the key when the store keeps keys hashed
    /// at rest (Redis `hashed_keys=true`).
    pub id: String,
    /// The session key; `None` when the store keeps only a digest of it (then the session cannot be loaded or
    /// copied by key).
    pub key: Option<SessionKey>,
    /// The stored value (as [`SessionStore::load_raw`] returns it) and the expiry the store keeps.
    pub raw: RawSession,
}

impl StoredSession {
    /// True when the session has expired at `now` (a session without a known expiry never has).
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.raw.expires_at.is_some_and(|at| at <= now)
    }
}

/// One page of an enumeration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionPage {
    /// The sessions of this page (possibly none, even when more pages follow: a Redis `SCAN` step may match no key).
    pub sessions: Vec<StoredSession>,
    /// Where the next page starts; `None` when the enumeration is complete.
    pub next: Option<ListCursor>,
}

/// Enumeration of a store's sessions, for tools (`sessionkit list`, `count`, `stats`, `migrate`): bounded pages,
/// never the whole store at once (SQL: keyset pages on `session_key`; Redis: `SCAN`, never `KEYS`; files: one
/// directory pass per page).
///
/// Get it from [`SessionStore::lister`]. Sessions added or removed during an enumeration may or may not be
/// reported; every session that exists throughout is reported at least once (exactly once except on Redis, whose
/// `SCAN` may repeat a key when the keyspace is rehashed).
#[async_trait]
pub trait SessionLister: Send + Sync {
    /// The page starting at `cursor` (`None`: the first page) of about `page_size` sessions (SQL, memory and file
    /// stores give at most `page_size`; Redis passes it as `SCAN`'s `COUNT`, and a `hash` bucket is never split).
    async fn list_page(&self, cursor: Option<&ListCursor>, page_size: usize) -> Result<SessionPage, StoreError>;

    /// Decodes a stored value of this store (a [`StoredSession::raw`] or [`SessionStore::load_raw`] value) into
    /// the session dict: what `load` would read, but with the reason when it cannot.
    fn decode(&self, raw: &[u8]) -> Result<Map<String, Value>, CodecError>;

    /// How many sessions are stored; with `valid_only`, only those that have not expired. The default pages
    /// through [`SessionLister::list_page`]; stores override it when they can count in place.
    async fn count(&self, valid_only: bool) -> Result<u64, StoreError> {
        let now = OffsetDateTime::now_utc();
        let mut total = 0;
        let mut cursor = None;
        loop {
            let page = self.list_page(cursor.as_ref(), 1000).await?;
            total += page.sessions.iter().filter(|s| !valid_only || !s.is_expired(now)).count() as u64;
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(total),
            }
        }
    }
}

/// Where sessions live. Django's `SessionBase` storage contract, async.
///
/// Rules every implementation follows (and the conformance suite checks):
/// - `load` returns `None` for unknown, expired, or not [storage-safe](SessionKey::is_storage_safe) keys (when the
///   store addresses storage by key); data that cannot be decoded loads as an **empty** session and is logged on
///   target `sessionkit::corrupt`, as Django does. The record carries the [`Version`] read.
/// - `create` never overwrites: an existing key gives [`StoreError::KeyCollision`].
/// - `save` only updates: a missing session gives [`StoreError::SessionVanished`], never a silent re-create. It
///   never loses another request's writes: a compare-and-set on the loaded version, and on conflict this request's
///   changes merged into what is stored ([`merge`], `docs/concurrency.md`).
/// - Each call is one round trip to the store where the store allows it (a save that conflicts costs more).
#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug + 'static {
    /// A short description for logs and errors, without credentials (e.g. `sqlite://demo.sqlite3`).
    fn describe(&self) -> String;

    /// Loads a live session.
    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError>;

    /// Stores a new session; fails with [`StoreError::KeyCollision`] if the key exists (Django's
    /// `save(must_create=True)`). Returns the version written. `record.version` is ignored.
    async fn create(&self, record: &SessionRecord) -> Result<Option<Version>, StoreError>;

    /// Writes this request's view of an existing session (Django's `save(must_create=False)`): `record` is the
    /// session as the request has it, `record.version` what it loaded, `changes` what it changed. When another
    /// request wrote the session since, `changes` are applied to what is stored instead, and [`Saved::merged`]
    /// says what was stored. Fails with [`StoreError::SessionVanished`] if the session no longer exists (it is
    /// never re-created) and [`StoreError::Contended`] if other writers won every attempt.
    async fn save(&self, record: &SessionRecord, changes: &ChangeSet) -> Result<Saved, StoreError>;

    /// True when a session with this key is stored (expired or not, as Django's `exists`).
    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError>;

    /// Deletes a session; deleting a missing one is not an error.
    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError>;

    /// Removes expired sessions and returns how many were removed (Django's `clear_expired`).
    async fn clear_expired(&self) -> Result<u64, StoreError>;

    /// The stored form of a session, expired or not, for inspection.
    async fn load_raw(&self, key: &SessionKey) -> Result<Option<RawSession>, StoreError>;

    /// For a store used as the cache of [`cached_db`](cached_db::CachedDbStore): replaces a deleted session with
    /// a marker (a *tombstone*) that expires after `hold`. A later [`create`](SessionStore::create) of the key
    /// fails on it ([`StoreError::KeyCollision`]), so a refill from a database read made before the delete cannot
    /// bring the session back; a load reads it as no session or an empty one. The default writes an empty session
    /// expiring after `hold` (an update, else a create); the Redis `django-cache` layout stores Python's `None`,
    /// which Django's own engine reads as a miss.
    async fn hold_deleted(&self, key: &SessionKey, hold: std::time::Duration) -> Result<(), StoreError> {
        write_empty_tombstone(self, key, hold).await
    }

    /// For a store used as the cache of [`cached_db`](cached_db::CachedDbStore): makes loads of `key` read the
    /// database for a while, because a cache write met a copy another request wrote (or a logout's tombstone).
    /// Like [`hold_deleted`](SessionStore::hold_deleted), except that a tombstone already there keeps its expiry:
    /// a session written all the time gets its cache back after `hold` instead of being tombstoned for good. The
    /// default loads the key and writes a tombstone unless it finds one (an empty session); the Redis
    /// `django-cache` layout does the same in one script.
    async fn step_aside(&self, key: &SessionKey, hold: std::time::Duration) -> Result<(), StoreError> {
        step_aside_unless_tombstoned(self, key, hold).await
    }

    /// Moves a stored session's expiry to `record.expires_at` without rewriting its data: the sliding expiry of an
    /// idle timeout ([`crate::lifetime`]). `record` is the session as this request loaded it (its data tells a
    /// store with a per-user index which entry to move too; its version which copies a layered store holds).
    /// One round trip where the store allows it: `PEXPIREAT` (and the value header's expiry) on Redis,
    /// `UPDATE … SET expire_date` on SQL, the file's mtime. Gives [`Touched::Vanished`] when the session no
    /// longer exists (never re-created). The default is [`Touched::Unsupported`]: [`Session`](crate::Session)
    /// then saves the session whole (signed cookies, whose cookie must be re-issued anyway).
    async fn touch(&self, record: &SessionRecord) -> Result<Touched, StoreError> {
        let _ = record;
        Ok(Touched::Unsupported)
    }

    /// For stores whose key *is* the session (signed cookies): the key to send to the client after `record` was
    /// created or saved. Other stores keep the key and return `Ok(None)` (the default).
    fn issue_key(&self, record: &SessionRecord) -> Result<Option<SessionKey>, StoreError> {
        let _ = record;
        Ok(None)
    }

    /// The per-user session index, if this store keeps one.
    fn user_index(&self) -> Option<&dyn UserSessionIndex> {
        None
    }

    /// Enumeration of the stored sessions, if the store can list them. Every store that keeps sessions on the
    /// server can; a store that keeps them in the browser (signed cookies) returns `None` (the default).
    fn lister(&self) -> Option<&dyn SessionLister> {
        None
    }
}

/// The default [`SessionStore::hold_deleted`]: an empty session expiring after `hold`, written as an update, else
/// a create (a create racing in between makes it try again, three times at most).
pub(crate) async fn write_empty_tombstone<S: SessionStore + ?Sized>(
    store: &S,
    key: &SessionKey,
    hold: std::time::Duration,
) -> Result<(), StoreError> {
    let hold = time::Duration::try_from(hold).unwrap_or(time::Duration::MAX);
    let expires_at = OffsetDateTime::now_utc().saturating_add(hold);
    let tombstone = SessionRecord::new(key.clone(), Map::new(), expires_at);
    // Whatever is cached is replaced: no merge.
    let changes = ChangeSet::everything_cleared().with_last_write_wins();
    let mut outcome = Err(StoreError::KeyCollision);
    for _ in 0..3 {
        outcome = match store.save(&tombstone, &changes).await {
            Ok(_) => Ok(()),
            Err(StoreError::SessionVanished) => store.create(&tombstone).await.map(|_| ()),
            Err(other) => Err(other),
        };
        if !matches!(outcome, Err(StoreError::KeyCollision)) {
            break;
        }
    }
    outcome
}

/// The default [`SessionStore::step_aside`]: a tombstone, unless a load finds one (an empty session) already.
pub(crate) async fn step_aside_unless_tombstoned<S: SessionStore + ?Sized>(
    store: &S,
    key: &SessionKey,
    hold: std::time::Duration,
) -> Result<(), StoreError> {
    match store.load(key).await? {
        Some(record) if record.data.is_empty() => Ok(()),
        _ => write_empty_tombstone(store, key, hold).await,
    }
}

/// Opens a store from a URL.
///
/// - `memory://`: an in-process store (tests, small single-process apps).
/// - `sqlite://PATH` (relative) or `sqlite:///ABS/PATH`: Django's `db` backend on SQLite. The file is created
///   when missing; the `django_session` table too. It can be Django's own `db.sqlite3`.
/// - `postgres://USER[:PASSWORD]@HOST:5432/DB` (or `postgresql://`), `mysql://USER[:PASSWORD]@HOST:3306/DB` (or
///   `mariadb://`): Django's `db` backend on PostgreSQL or MariaDB/MySQL (see [`sql`]). The database must exist; the
///   `django_session` table is created when missing and refused when of another shape.
///
/// Stores that sign data (sqlite, postgres, mysql) need `settings.secret_key`.
///
/// Every store opened here records metrics and tracing spans ([`instrumented`], [`crate::telemetry`]).
///
/// Any URL may carry `failure_policy=empty` (see [`policy`]): then an unreachable store loads as an empty session
/// instead of an error; and `merge=false` (see [`last_write_wins`]): then a save replaces the stored session whole,
/// as Django's engines do, instead of merging with parallel requests' writes. `cached_db:CACHE_URL|DB_URL` puts
/// one store in front of another (see [`cached_db`]); each part takes its own options (`merge=false` belongs on the
/// database part, which decides).
///
/// Options a store does not know are refused with the list of those it does (`?layot=hash` is an error, not the
/// default layout).
pub async fn open_store(url: &str, settings: &Settings) -> Result<Arc<dyn SessionStore>, StoreError> {
    open_store_with(url, settings, Access::ReadWrite).await
}

/// Opens a store only to read it, for tools that inspect (`sessionkit list`, `count`, `show`, `stats`, `doctor`):
/// nothing is created or recorded. A SQLite file that does not exist and a database without a `django_session`
/// table are errors that say so ([`ConfigError::NoSuchStore`]) instead of an empty table created on the spot; a
/// Redis store checks its layout record without writing one. A store that signs data opens without a secret
/// (a blank `SECRET_KEY`): counting works, and every decode fails as a bad signature.
pub async fn open_store_read_only(url: &str, settings: &Settings) -> Result<Arc<dyn SessionStore>, StoreError> {
    open_store_with(url, settings, Access::ReadOnly).await
}

/// Whether a store is opened to be written or only read (see [`open_store_read_only`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Access {
    /// Creates what is missing (the SQLite file, the `django_session` table, the Redis layout record).
    #[default]
    ReadWrite,
    /// Creates and writes nothing while opening.
    ReadOnly,
}

/// [`open_store`] or [`open_store_read_only`], by `access`.
pub async fn open_store_with(
    url: &str,
    settings: &Settings,
    access: Access,
) -> Result<Arc<dyn SessionStore>, StoreError> {
    let (url, options) = take_wrapper_options(url)?;
    let store = open_one(&url, settings, access).await?;
    // Innermost, so that failures a policy hides are counted too.
    let mut store: Arc<dyn SessionStore> =
        Arc::new(instrumented::Instrumented::new(store, crate::telemetry::StoreKind::of_url(&url)));
    if !options.merge {
        store = Arc::new(last_write_wins::LastWriteWins::new(store));
    }
    Ok(match options.failure_policy {
        FailurePolicy::Error => store,
        FailurePolicy::TreatAsEmpty => Arc::new(TreatUnavailableAsEmpty::new(store)),
    })
}

/// `url` without the options that wrap a store (`failure_policy`, `merge`), checked: for tools that open a store
/// type directly (the CLI), where those options change nothing.
pub fn without_wrapper_options(url: &str) -> Result<String, StoreError> {
    take_wrapper_options(url).map(|(url, _)| url)
}

/// The options every store URL takes, handled by wrappers around the store rather than by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WrapperOptions {
    /// `failure_policy=error|empty`.
    failure_policy: FailurePolicy,
    /// `merge=true|false`: merge parallel saves (the default) or let the last write win.
    merge: bool,
}

/// Removes the `failure_policy` and `merge` query parameters from a URL and returns them parsed.
fn take_wrapper_options(url: &str) -> Result<(String, WrapperOptions), StoreError> {
    let mut options = WrapperOptions { failure_policy: FailurePolicy::Error, merge: true };
    // cached_db URLs carry two URLs: each part keeps its own options.
    if url.starts_with("cached_db:") {
        return Ok((url.to_owned(), options));
    }
    let Some((base, query)) = url.split_once('?') else { return Ok((url.to_owned(), options)) };
    let bad = |reason: String| -> StoreError { ConfigError::InvalidStoreUrl { url: redact_url(url), reason }.into() };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("failure_policy", value)) => {
                options.failure_policy = match value {
                    "error" => FailurePolicy::Error,
                    "empty" => FailurePolicy::TreatAsEmpty,
                    other => return Err(bad(format!("failure_policy={other:?} is not error or empty"))),
                }
            }
            Some(("merge", value)) => {
                options.merge = match value {
                    "true" | "1" | "yes" | "on" => true,
                    "false" | "0" | "no" | "off" => false,
                    other => return Err(bad(format!("merge={other:?} is not true or false"))),
                }
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    Ok((url, options))
}

/// A `cached_db:CACHE|DB` URL split into the cache's URL and the database's; a Redis cache without a layout gets
/// Django's cached_db keys (`layout=django-cache&engine=cached_db`), as [`open_store`] opens it.
pub fn cached_db_parts(url: &str) -> Result<(String, String), StoreError> {
    let rest = url.strip_prefix("cached_db:").unwrap_or(url);
    let (cache, db) = rest.split_once('|').ok_or_else(|| ConfigError::InvalidStoreUrl {
        url: redact_url(url),
        reason: "expected cached_db:CACHE_URL|DB_URL".into(),
    })?;
    let mut cache = cache.to_owned();
    if cache.starts_with("redis") && !cache.contains("layout=") {
        cache.push(if cache.contains('?') { '&' } else { '?' });
        cache.push_str("layout=django-cache&engine=cached_db");
    }
    Ok((cache, db.to_owned()))
}

/// A boxed future of an opened store (`open_one` recurses for `cached_db`, so its future must be boxed).
type OpenFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Arc<dyn SessionStore>, StoreError>> + Send + 'a>>;

fn open_one<'a>(url: &'a str, settings: &'a Settings, access: Access) -> OpenFuture<'a> {
    Box::pin(open_one_inner(url, settings, access))
}

async fn open_one_inner(url: &str, settings: &Settings, access: Access) -> Result<Arc<dyn SessionStore>, StoreError> {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme).unwrap_or("");
    match scheme {
        "cached_db" => {
            let (cache, db) = cached_db_parts(url)?;
            let cache = open_store_with(&cache, settings, access).await?;
            let db = open_store_with(&db, settings, access).await?;
            Ok(Arc::new(cached_db::CachedDbStore::new(cache, db)))
        }
        #[cfg(feature = "memory")]
        "memory" => {
            url_options::refuse_unknown(url, "memory", &[])?;
            Ok(Arc::new(memory::MemoryStore::new()))
        }
        "cookie" | "signed-cookies" | "signed_cookies" => {
            url_options::refuse_unknown(url, "signed-cookie", &[])?;
            Ok(Arc::new(cookie::CookieStore::new(settings)?))
        }
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(sqlite::SqliteStore::connect_with(url, settings, access).await?)),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(Arc::new(postgres::PostgresStore::connect_with(url, settings, access).await?)),
        #[cfg(feature = "mysql")]
        "mysql" | "mariadb" => Ok(Arc::new(mysql::MySqlStore::connect_with(url, settings, access).await?)),
        #[cfg(feature = "file")]
        "file" => Ok(Arc::new(file::FileStore::open_with(url, settings, access).await?)),
        #[cfg(feature = "redis")]
        "redis" | "rediss" | "unix" | "redis+unix" | "redis+sentinel" | "rediss+sentinel" | "redis+cluster"
        | "rediss+cluster" => Ok(Arc::new(redis::RedisStore::connect_with_access(url, access).await?)),
        _ => {
            let _ = (settings, access);
            Err(ConfigError::InvalidStoreUrl {
                url: redact_url(url),
                reason: format!(
                    "unknown or disabled store scheme {scheme:?} (this build supports: {})",
                    supported_schemes().join(", ")
                ),
            }
            .into())
        }
    }
}

fn supported_schemes() -> Vec<&'static str> {
    let mut schemes = vec!["cookie:", "cached_db:CACHE|DB"];
    if cfg!(feature = "memory") {
        schemes.push("memory://");
    }
    if cfg!(feature = "sqlite") {
        schemes.push("sqlite://");
    }
    if cfg!(feature = "postgres") {
        schemes.extend(["postgres://", "postgresql://"]);
    }
    if cfg!(feature = "mysql") {
        schemes.extend(["mysql://", "mariadb://"]);
    }
    if cfg!(feature = "file") {
        schemes.push("file://");
    }
    if cfg!(feature = "redis") {
        schemes.extend(["redis://", "rediss://", "unix://", "redis+sentinel://", "redis+cluster://"]);
    }
    schemes
}

/// Every store URL form [`open_store`] accepts in this build (the stores of disabled features left out), as
/// `(form, what it opens)`, for help texts (`sessionkit-demo --help`). Every form also takes the query options
/// `failure_policy=error|empty` and `merge=true|false` (see [`open_store`]).
pub fn store_url_forms() -> Vec<(&'static str, &'static str)> {
    let mut forms = Vec::new();
    if cfg!(feature = "memory") {
        forms.push(("memory://", "in-process store; sessions are lost when the process exits"));
    }
    if cfg!(feature = "sqlite") {
        forms.push(("sqlite://PATH", "Django's db backend on SQLite, PATH relative to the working directory"));
        forms.push(("sqlite:///ABS/PATH", "the same with an absolute path (Django's own db.sqlite3 works)"));
    }
    if cfg!(feature = "postgres") {
        forms.push((
            "postgres://USER[:PASSWORD]@HOST[:5432]/DB",
            "Django's db backend on PostgreSQL (or postgresql://)",
        ));
    }
    if cfg!(feature = "mysql") {
        forms.push(("mysql://USER[:PASSWORD]@HOST[:3306]/DB", "Django's db backend on MariaDB/MySQL (or mariadb://)"));
    }
    if cfg!(feature = "file") {
        forms.push(("file:///ABS/DIR", "Django's file backend: one file per session in DIR"));
        forms.push(("file://", "the same in SESSION_FILE_PATH, else the temp directory"));
    }
    if cfg!(feature = "redis") {
        forms.push((
            "redis://[USER:PASSWORD@]HOST[:PORT][/DB][?layout=string|hash|django-cache]",
            "Redis (rediss:// over TLS); every URL option is in docs/redis.md",
        ));
        forms.push(("unix:///PATH/redis.sock[?db=N]", "Redis over a Unix socket (or redis+unix://)"));
        forms.push((
            "redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER[/DB]",
            "Redis behind Sentinel (rediss+sentinel:// over TLS)",
        ));
        forms.push(("redis+cluster://HOST:PORT[,HOST:PORT...]", "Redis Cluster (rediss+cluster:// over TLS)"));
    }
    forms.push((
        "cookie:",
        "Django's signed_cookies backend: the cookie is the session (or signed-cookies:, signed_cookies:)",
    ));
    forms.push(("cached_db:CACHE_URL|DB_URL", "Django's cached_db backend: the CACHE_URL store in front of DB_URL"));
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_forms_name_every_supported_scheme() {
        let forms = store_url_forms();
        for scheme in supported_schemes() {
            let scheme = scheme.split(':').next().unwrap_or(scheme);
            assert!(
                forms.iter().any(|(form, text)| form.starts_with(&format!("{scheme}:")) || text.contains(scheme)),
                "{scheme} is missing from store_url_forms()"
            );
        }
    }

    #[tokio::test]
    async fn unknown_schemes_are_a_clear_config_error() {
        let err = open_store("mongodb://localhost", &Settings::default()).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::Config(ConfigError::InvalidStoreUrl { .. })));
        assert!(text.contains("mongodb") && text.contains("memory://"), "{text}");
        assert!(open_store("no-scheme-at-all", &Settings::default()).await.is_err());
    }
}
