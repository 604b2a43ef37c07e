//! Django's `db` session backend on SQL databases: SQLite, PostgreSQL and MariaDB/MySQL.
//!
//! One store, [`SqlStore`], holds the code path every database shares: the `django_session` table as Django's
//! `sessions.0001_initial` migration creates it, the refusal of a table of another shape, the signed data codec,
//! collision-safe creates, updates that notice a deleted session and merge with parallel writes (a compare-and-set
//! on the `session_data` the request loaded: `UPDATE … WHERE session_key = ? AND session_data = ?`, so Django's
//! schema stays as it is and Django's own writes are noticed too), and `clear_expired` by the `expire_date` index.
//! A [`Dialect`] adds only what differs between databases: connecting, placeholders and quoting, Django's DDL and
//! its column types, reading the catalog, and how `expire_date` is bound and read:
//!
//! | dialect | store | `expire_date` | bound as |
//! |---------|-------|---------------|----------|
//! | [`sqlite::SqliteDialect`] | [`sqlite::SqliteStore`] | `datetime` | naive UTC text `2026-12-06 03:14:19.155447` |
//! | [`postgres::PostgresDialect`] | [`postgres::PostgresStore`] | `timestamp with time zone` | an aware UTC time |
//! | [`mysql::MySqlDialect`] | [`mysql::MySqlStore`] | `datetime(6)` | a naive UTC time with microseconds |
//!
//! These are the values Django itself writes with `USE_TZ = True`, so Django and sessionkit can share one table.
//! Session keys longer than Django's `varchar(40)` column are never stored (loading one finds nothing).
//!
//! When sessionkit creates the table in a database that Django later migrates, run Django's
//! `manage.py migrate --fake-initial` once so Django records the table as already created.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use serde_json::{Map, Value};

use super::merge::{save_merging, CompareAndSet, Saved, WriteOutcome};
use super::signed_data::corrupt_to_empty;
use super::{
    redact_url, Access, ListCursor, RawSession, SessionLister, SessionPage, SessionStore, SignedSessionCodec,
    StoredSession, Touched,
};
use crate::codec::CodecError;
use crate::{ChangeSet, ConfigError, SessionKey, SessionRecord, Settings, StoreError, Version};

#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// Length of Django's `session_key varchar(40)` column.
const MAX_KEY_LEN: usize = 40;

/// The statements of the shared code path, written once with `"` quoting and `$n` placeholders; each dialect
/// renders them with its own quote character and placeholder style (see [`render`]).
mod templates {
    pub const SELECT_LIVE: &str =
        r#"SELECT "session_data", "expire_date" FROM "django_session" WHERE "session_key" = $1 AND "expire_date" > $2"#;
    pub const SELECT_ANY: &str =
        r#"SELECT "session_data", "expire_date" FROM "django_session" WHERE "session_key" = $1"#;
    pub const INSERT: &str =
        r#"INSERT INTO "django_session" ("session_key", "session_data", "expire_date") VALUES ($1, $2, $3)"#;
    pub const UPDATE: &str =
        r#"UPDATE "django_session" SET "session_data" = $1, "expire_date" = $2 WHERE "session_key" = $3"#;
    /// The touch of an idle timeout: only the expiry of a live session moves.
    pub const TOUCH: &str =
        r#"UPDATE "django_session" SET "expire_date" = $1 WHERE "session_key" = $2 AND "expire_date" > $3"#;
    pub const EXISTS: &str = r#"SELECT 1 FROM "django_session" WHERE "session_key" = $1"#;
    pub const DELETE: &str = r#"DELETE FROM "django_session" WHERE "session_key" = $1"#;
    /// A range condition on the indexed column alone: the database walks the `expire_date` index over the expired
    /// rows only (see docs/sql.md for each database's plan).
    pub const CLEAR_EXPIRED: &str = r#"DELETE FROM "django_session" WHERE "expire_date" < $1"#;
    /// One keyset page: rows after the last key of the previous page, in key order, by the primary key's index.
    /// The row limit is appended per call (`LIMIT n`).
    pub const PAGE: &str = r#"SELECT "session_key", "session_data", "expire_date" FROM "django_session" WHERE "session_key" > $1 ORDER BY "session_key""#;
    pub const COUNT_ALL: &str = r#"SELECT COUNT(*) FROM "django_session""#;
    pub const COUNT_LIVE: &str = r#"SELECT COUNT(*) FROM "django_session" WHERE "expire_date" > $1"#;
}

/// One SQL database's side of the `db` store. Implemented by this crate's dialects only.
pub trait Dialect: backend::Backend {
    /// The sqlx connection pool of this database.
    type Pool: fmt::Debug + Send + Sync;

    /// The connection pool, for callers that need other tables of the same database (Django's `auth_user`).
    fn pool(&self) -> &Self::Pool;
}

/// The per-database operations [`SqlStore`] builds on. Private: only this crate's dialects implement them.
pub(crate) mod backend {
    use super::*;

    /// A value bound to a statement: dialects bind times their own way.
    #[derive(Debug, Clone, Copy)]
    pub enum Arg<'q> {
        /// Text (session key, signed data).
        Text(&'q str),
        /// An `expire_date` value or the current time.
        Time(OffsetDateTime),
    }

    /// A stored `(session_data, expire_date)`; an `expire_date` the dialect could not read keeps its text.
    #[derive(Debug)]
    pub struct StoredRow {
        /// The signed token.
        pub data: String,
        /// The expiry, or the stored text when it does not parse.
        pub expire: Result<OffsetDateTime, String>,
    }

    /// One column of an existing `django_session` table, types lowercased as the catalog spells them.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ColumnShape {
        /// Column name.
        pub name: String,
        /// Declared type (`varchar(40)`, `character varying(40)`, `longtext`, ...).
        pub decl_type: String,
        /// `NOT NULL`.
        pub not_null: bool,
        /// Part of the primary key.
        pub primary_key: bool,
    }

    /// Column types Django's migration gives `django_session` on one database.
    #[derive(Debug)]
    pub struct DjangoTypes {
        /// Prefix of `session_key`'s type (any length of varchar is accepted, as Django's `max_length` may differ).
        pub key_prefix: &'static str,
        /// `session_data`'s type.
        pub data: &'static str,
        /// `expire_date`'s type.
        pub expire: &'static str,
        /// The column list as Django declares it, for messages.
        pub declaration: &'static str,
    }

    /// What a dialect provides to the shared code path.
    #[async_trait]
    pub trait Backend: Sized + Clone + fmt::Debug + Send + Sync + 'static {
        /// Django's column types on this database.
        const TYPES: DjangoTypes;
        /// The identifier quote character.
        const QUOTE: char;

        /// Placeholder `n` (1-based) as this database's driver spells it.
        fn placeholder(n: usize) -> String;

        /// A condition that `column` holds exactly the text bound at `placeholder`, byte for byte (a
        /// case-insensitive collation must not make two tokens equal).
        fn exact_text_equals(column: &str, placeholder: &str) -> String {
            format!("{column} = {placeholder}")
        }

        /// Connects a pool to `url` (`describe` is the redacted URL, for errors); with [`Access::ReadOnly`] it
        /// creates nothing (no SQLite file).
        async fn connect(url: &str, describe: &str, access: Access) -> Result<Self, StoreError>;

        /// The columns of `django_session` in order; empty when the table does not exist.
        async fn columns(&self) -> Result<Vec<ColumnShape>, sqlx::Error>;

        /// Creates the table and its indexes with Django's exact DDL unless another process just did (each
        /// dialect serialises concurrent creators); returns whether this call created it.
        async fn create_table(&self) -> Result<bool, sqlx::Error>;

        /// True when an index starts with `expire_date` (what `clear_expired` relies on).
        async fn has_expire_date_index(&self) -> Result<bool, sqlx::Error>;

        /// Runs a statement and returns the number of rows it matched.
        async fn execute<'q>(&self, sql: &'q str, args: &[Arg<'q>]) -> Result<u64, sqlx::Error>;

        /// Fetches `(session_data, expire_date)` of at most one row.
        async fn fetch_row<'q>(&self, sql: &'q str, args: &[Arg<'q>]) -> Result<Option<StoredRow>, sqlx::Error>;

        /// True when the query returns a row.
        async fn fetch_exists<'q>(&self, sql: &'q str, args: &[Arg<'q>]) -> Result<bool, sqlx::Error>;

        /// Fetches `(session_key, session_data, expire_date)` rows.
        async fn fetch_rows<'q>(&self, sql: &'q str, args: &[Arg<'q>])
            -> Result<Vec<(String, StoredRow)>, sqlx::Error>;

        /// Runs a `SELECT COUNT(*)`.
        async fn fetch_count<'q>(&self, sql: &'q str, args: &[Arg<'q>]) -> Result<i64, sqlx::Error>;
    }
}

use backend::{Arg, Backend, ColumnShape};

/// Renders a template for dialect `D`: `"` becomes its quote character and `$n` its placeholder `n`.
fn render<D: Backend>(template: &str) -> String {
    let mut out = String::with_capacity(template.len() + 8);
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push(D::QUOTE),
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                match digits.parse::<usize>() {
                    Ok(n) => out.push_str(&D::placeholder(n)),
                    Err(_) => out.push('$'),
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// The shared statements, rendered once per store.
#[derive(Debug, Clone)]
struct Statements {
    select_live: String,
    select_any: String,
    insert: String,
    update: String,
    /// `UPDATE` only if `session_data` is still the given token: the compare-and-set of a merging save.
    update_if: String,
    touch: String,
    exists: String,
    delete: String,
    clear_expired: String,
    page: String,
    count_all: String,
    count_live: String,
}

impl Statements {
    fn new<D: Backend>() -> Self {
        Statements {
            select_live: render::<D>(templates::SELECT_LIVE),
            select_any: render::<D>(templates::SELECT_ANY),
            insert: render::<D>(templates::INSERT),
            update: render::<D>(templates::UPDATE),
            update_if: format!(
                "{} AND {}",
                render::<D>(templates::UPDATE),
                D::exact_text_equals(&format!("{0}session_data{0}", D::QUOTE), &D::placeholder(4))
            ),
            touch: render::<D>(templates::TOUCH),
            exists: render::<D>(templates::EXISTS),
            delete: render::<D>(templates::DELETE),
            clear_expired: render::<D>(templates::CLEAR_EXPIRED),
            page: render::<D>(templates::PAGE),
            count_all: render::<D>(templates::COUNT_ALL),
            count_live: render::<D>(templates::COUNT_LIVE),
        }
    }
}

/// Django's `db` backend on the SQL database of dialect `D`: use the aliases
/// [`SqliteStore`](sqlite::SqliteStore), [`PostgresStore`](postgres::PostgresStore) and
/// [`MySqlStore`](mysql::MySqlStore).
#[derive(Debug, Clone)]
pub struct SqlStore<D: Dialect> {
    dialect: D,
    codec: Arc<SignedSessionCodec>,
    describe: String,
    sql: Statements,
}

impl<D: Dialect> SqlStore<D> {
    /// Connects a pool to `url`, creates the `django_session` table (and its indexes) exactly as Django's
    /// migration does when it is missing, and refuses an existing table of another shape
    /// ([`ConfigError::SchemaMismatch`]). Needs `settings.secret_key` to sign session data.
    pub async fn connect(url: &str, settings: &Settings) -> Result<Self, StoreError> {
        Self::connect_with(url, settings, Access::ReadWrite).await
    }

    /// [`connect`](Self::connect), or with [`Access::ReadOnly`] a connection that creates nothing: a SQLite file
    /// that does not exist and a missing `django_session` table are [`ConfigError::NoSuchStore`], and a missing
    /// `SECRET_KEY` is accepted (see [`open_store_read_only`](crate::store::open_store_read_only)).
    pub async fn connect_with(url: &str, settings: &Settings, access: Access) -> Result<Self, StoreError> {
        let codec = Arc::new(SignedSessionCodec::for_access(settings, access)?);
        let describe = redact_url(url);
        let dialect = D::connect(url, &describe, access).await?;
        let store = SqlStore { dialect, codec, describe, sql: Statements::new::<D>() };
        store.ensure_schema(access).await?;
        Ok(store)
    }

    /// The connection pool, for callers that need other tables of the same database (Django's `auth_user`).
    pub fn pool(&self) -> &D::Pool {
        self.dialect.pool()
    }

    fn unavailable(&self, err: sqlx::Error) -> StoreError {
        StoreError::unavailable(self.describe.clone(), err)
    }

    async fn ensure_schema(&self, access: Access) -> Result<(), StoreError> {
        let mut columns = self.dialect.columns().await.map_err(|e| self.unavailable(e))?;
        if columns.is_empty() && access == Access::ReadOnly {
            return Err(ConfigError::NoSuchStore(format!(
                "{}: there is no django_session table (nothing was ever stored there); opened read-only, so it was \
                 not created — check the URL, or run Django's migrate (any write through sessionkit creates it too)",
                self.describe
            ))
            .into());
        }
        if columns.is_empty() {
            if self.dialect.create_table().await.map_err(|e| self.unavailable(e))? {
                tracing::info!(store = %self.describe, "created table django_session");
            }
            columns = self.dialect.columns().await.map_err(|e| self.unavailable(e))?;
        }
        check_shape(&columns, &D::TYPES).map_err(|problem| {
            StoreError::from(ConfigError::SchemaMismatch(format!(
                "{}: table django_session does not have Django's shape ({problem}); expected ({})",
                self.describe,
                D::TYPES.declaration
            )))
        })?;
        if !self.dialect.has_expire_date_index().await.map_err(|e| self.unavailable(e))? {
            tracing::warn!(store = %self.describe, "django_session has no index on expire_date: clear_expired will scan the whole table");
        }
        Ok(())
    }

    async fn fetch_row(&self, key: &SessionKey, live_only: bool) -> Result<Option<backend::StoredRow>, StoreError> {
        let result = if live_only {
            let args = [Arg::Text(key.as_str()), Arg::Time(OffsetDateTime::now_utc())];
            self.dialect.fetch_row(&self.sql.select_live, &args).await
        } else {
            self.dialect.fetch_row(&self.sql.select_any, &[Arg::Text(key.as_str())]).await
        };
        result.map_err(|e| self.unavailable(e))
    }
}

/// How long the first, direct connection of a PostgreSQL or MySQL store may take.
#[cfg(any(feature = "postgres", feature = "mysql"))]
const FIRST_CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Connects once, directly, before the pool is built: a pool retries a refused connection until its acquire
/// timeout and then says only "pool timed out"; one direct attempt fails at once with the cause ("connection
/// refused", a wrong password, a missing database), and when the server does not answer like the database
/// (`expected`, see [`probe`](super::probe)) the message says what it answered like instead.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) async fn first_connection<O>(
    options: &O,
    describe: &str,
    tcp: Option<(&str, u16)>,
    expected: super::probe::Peer,
    protocol: &str,
) -> Result<(), StoreError>
where
    O: sqlx::ConnectOptions,
    O::Connection: Sized,
{
    use sqlx::Connection;
    let explained = |cause: String, source: Box<dyn std::error::Error + Send + Sync>| {
        StoreError::unavailable(describe.to_owned(), super::probe::Explained { cause, source })
    };
    // While the connection is slow, a probe after a second may show the port is no such database at all.
    let slow_probe = async {
        match tcp {
            Some((host, port)) => {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let peer = super::probe::probe(host, port).await;
                match super::probe::sql_mismatch(&peer, &expected, protocol, false) {
                    Some(cause) => cause,
                    None => std::future::pending().await,
                }
            }
            None => std::future::pending().await,
        }
    };
    let attempt = tokio::select! {
        attempt = tokio::time::timeout(FIRST_CONNECTION_TIMEOUT, options.connect()) => attempt,
        cause = slow_probe => {
            let waited = std::io::Error::new(std::io::ErrorKind::TimedOut, "no reply within 1s");
            return Err(explained(cause, Box::new(waited)));
        }
    };
    let err = match attempt {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            return Ok(());
        }
        Ok(Err(err)) => err,
        Err(_) => {
            return Err(StoreError::unavailable(
                describe.to_owned(),
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {}s", FIRST_CONNECTION_TIMEOUT.as_secs()),
                ),
            ))
        }
    };
    let cause = match tcp {
        Some((host, port)) if !matches!(&err, sqlx::Error::Database(_)) => {
            super::probe::sql_mismatch(&super::probe::probe(host, port).await, &expected, protocol, true)
        }
        _ => None,
    };
    Err(match cause {
        Some(cause) => explained(cause, Box::new(err)),
        None => StoreError::unavailable(describe.to_owned(), err),
    })
}

/// A key that may address a row: storage-safe and not longer than Django's column.
fn fits(key: &SessionKey) -> bool {
    key.is_storage_safe() && key.as_str().len() <= MAX_KEY_LEN
}

fn check_shape(columns: &[ColumnShape], types: &backend::DjangoTypes) -> Result<(), String> {
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    if names != ["session_key", "session_data", "expire_date"] {
        return Err(format!("columns are {names:?}"));
    }
    let [key, data, expire] = columns else { return Err("wrong number of columns".into()) };
    if !(key.decl_type.starts_with(types.key_prefix) && key.primary_key && key.not_null) {
        return Err(format!("session_key is {:?}, primary key: {}", key.decl_type, key.primary_key));
    }
    if !(data.decl_type == types.data && data.not_null && !data.primary_key) {
        return Err(format!("session_data is {:?}, not null: {}", data.decl_type, data.not_null));
    }
    if !(expire.decl_type == types.expire && expire.not_null && !expire.primary_key) {
        return Err(format!("expire_date is {:?}, not null: {}", expire.decl_type, expire.not_null));
    }
    Ok(())
}

/// `at` in UTC, cut to the microseconds the databases (and Python's datetime) keep.
pub(crate) fn utc_micros(at: OffsetDateTime) -> OffsetDateTime {
    let utc = at.to_offset(time::UtcOffset::UTC);
    utc.replace_nanosecond(utc.nanosecond() / 1_000 * 1_000).unwrap_or(utc)
}

#[async_trait]
impl<D: Dialect> SessionStore for SqlStore<D> {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        if !fits(key) {
            return Ok(None);
        }
        let Some(row) = self.fetch_row(key, true).await? else { return Ok(None) };
        let expires_at = row.expire.unwrap_or_else(|text| {
            tracing::warn!(target: "sessionkit::corrupt", store = %self.describe, key = ?key, expire_date = %text, "unparseable expire_date");
            crate::telemetry::mark_corrupt();
            OffsetDateTime::now_utc()
        });
        let (decoded, token) =
            super::offload::decode_off_worker(&self.describe, &self.codec, row.data.into_bytes()).await?;
        let data = decoded.unwrap_or_else(|err| corrupt_to_empty(&err, key, &self.describe));
        // The version is the token itself: the compare-and-set of a save checks the row still holds it.
        Ok(Some(SessionRecord { key: key.clone(), data, expires_at, version: Some(Version::new(token)) }))
    }

    async fn create(&self, record: &SessionRecord) -> Result<Option<Version>, StoreError> {
        if !fits(&record.key) {
            return Err(StoreError::UnsafeKey);
        }
        let token = self.codec.encode(&record.data, OffsetDateTime::now_utc());
        let args = [Arg::Text(record.key.as_str()), Arg::Text(&token), Arg::Time(record.expires_at)];
        match self.dialect.execute(&self.sql.insert, &args).await {
            Ok(_) => Ok(Some(Version::new(token))),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Err(StoreError::KeyCollision),
            Err(err) => Err(self.unavailable(err)),
        }
    }

    async fn save(&self, record: &SessionRecord, changes: &ChangeSet) -> Result<Saved, StoreError> {
        save_merging(self, record, changes).await
    }

    /// `UPDATE … SET expire_date` of a live row: the data is not rewritten. Rows *matched* count (on MySQL too,
    /// see `save`), so an unchanged expiry still reads as moved.
    async fn touch(&self, record: &SessionRecord) -> Result<Touched, StoreError> {
        if !fits(&record.key) {
            return Ok(Touched::Vanished);
        }
        let args = [Arg::Time(record.expires_at), Arg::Text(record.key.as_str()), Arg::Time(OffsetDateTime::now_utc())];
        let matched = self.dialect.execute(&self.sql.touch, &args).await.map_err(|e| self.unavailable(e))?;
        Ok(if matched > 0 { Touched::Moved } else { Touched::Vanished })
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        if !fits(key) {
            return Ok(false);
        }
        self.dialect.fetch_exists(&self.sql.exists, &[Arg::Text(key.as_str())]).await.map_err(|e| self.unavailable(e))
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        if !fits(key) {
            return Ok(());
        }
        self.dialect.execute(&self.sql.delete, &[Arg::Text(key.as_str())]).await.map_err(|e| self.unavailable(e))?;
        Ok(())
    }

    async fn clear_expired(&self) -> Result<u64, StoreError> {
        let args = [Arg::Time(OffsetDateTime::now_utc())];
        self.dialect.execute(&self.sql.clear_expired, &args).await.map_err(|e| self.unavailable(e))
    }

    async fn load_raw(&self, key: &SessionKey) -> Result<Option<RawSession>, StoreError> {
        if !fits(key) {
            return Ok(None);
        }
        let Some(row) = self.fetch_row(key, false).await? else { return Ok(None) };
        Ok(Some(RawSession { bytes: row.data.into_bytes(), expires_at: row.expire.ok() }))
    }

    fn lister(&self) -> Option<&dyn SessionLister> {
        Some(self)
    }
}

/// One `UPDATE`: with an expected version, `… AND session_data = <the token loaded>`; no row matched means another
/// writer changed it (a conflict) or it is gone (vanished), which one `SELECT 1` tells.
#[async_trait]
impl<D: Dialect> CompareAndSet for SqlStore<D> {
    async fn write_if(
        &self,
        record: &SessionRecord,
        expected: Option<&Version>,
        _changes: &ChangeSet,
    ) -> Result<WriteOutcome, StoreError> {
        if !fits(&record.key) {
            // No session can be stored under such a key, so there is none to update.
            return Ok(WriteOutcome::Vanished);
        }
        let token = self.codec.encode(&record.data, OffsetDateTime::now_utc());
        let key = record.key.as_str();
        // Rows *matched*: on MySQL the connection has CLIENT_FOUND_ROWS (sqlx always sets it, as Django's MySQL
        // backend does), so an update that writes identical data still counts its row.
        let matched = match expected {
            None => {
                let args = [Arg::Text(&token), Arg::Time(record.expires_at), Arg::Text(key)];
                self.dialect.execute(&self.sql.update, &args).await
            }
            Some(expected) => {
                let Ok(loaded) = std::str::from_utf8(expected.as_bytes()) else {
                    return Ok(WriteOutcome::Conflict(None));
                };
                let args = [Arg::Text(&token), Arg::Time(record.expires_at), Arg::Text(key), Arg::Text(loaded)];
                self.dialect.execute(&self.sql.update_if, &args).await
            }
        }
        .map_err(|e| self.unavailable(e))?;
        if matched > 0 {
            return Ok(WriteOutcome::Written(Some(Version::new(token))));
        }
        if expected.is_some() && self.exists(&record.key).await? {
            return Ok(WriteOutcome::Conflict(None));
        }
        Ok(WriteOutcome::Vanished)
    }
}

/// Keyset pagination on the primary key: one indexed query per page
/// (`WHERE session_key > <last key> ORDER BY session_key LIMIT n`); the cursor is the last key of the page.
#[async_trait]
impl<D: Dialect> SessionLister for SqlStore<D> {
    async fn list_page(&self, cursor: Option<&ListCursor>, page_size: usize) -> Result<SessionPage, StoreError> {
        let page_size = page_size.clamp(1, 100_000);
        let sql = format!("{} LIMIT {page_size}", self.sql.page);
        let after = cursor.map_or("", |c| c.0.as_str());
        let rows = self.dialect.fetch_rows(&sql, &[Arg::Text(after)]).await.map_err(|e| self.unavailable(e))?;
        let full = rows.len() >= page_size;
        let sessions: Vec<StoredSession> = rows
            .into_iter()
            .map(|(key, row)| StoredSession {
                key: SessionKey::parse(&key).ok(),
                id: key,
                raw: RawSession { bytes: row.data.into_bytes(), expires_at: row.expire.ok() },
            })
            .collect();
        let next = if full { sessions.last().map(|s| ListCursor(s.id.clone())) } else { None };
        Ok(SessionPage { sessions, next })
    }

    fn decode(&self, raw: &[u8]) -> Result<Map<String, Value>, CodecError> {
        let token = std::str::from_utf8(raw).map_err(|_| CodecError::Malformed("session_data is not ASCII"))?;
        self.codec.decode(token)
    }

    /// `SELECT COUNT(*)`, with `expire_date > now` (by the `expire_date` index) for live sessions only.
    async fn count(&self, valid_only: bool) -> Result<u64, StoreError> {
        let now = [Arg::Time(OffsetDateTime::now_utc())];
        let result = if valid_only {
            self.dialect.fetch_count(&self.sql.count_live, &now).await
        } else {
            self.dialect.fetch_count(&self.sql.count_all, &[]).await
        };
        let n = result.map_err(|e| self.unavailable(e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn column(name: &str, decl_type: &str, primary_key: bool) -> ColumnShape {
        ColumnShape { name: name.into(), decl_type: decl_type.into(), not_null: true, primary_key }
    }

    const TYPES: backend::DjangoTypes =
        backend::DjangoTypes { key_prefix: "varchar", data: "text", expire: "datetime", declaration: "" };

    #[test]
    fn shape_check_names_the_problem() {
        let good = [
            column("session_key", "varchar(40)", true),
            column("session_data", "text", false),
            column("expire_date", "datetime", false),
        ];
        assert_eq!(check_shape(&good, &TYPES), Ok(()));
        let mut nullable = good.clone();
        nullable[2].not_null = false;
        assert!(check_shape(&nullable, &TYPES).unwrap_err().contains("expire_date"));
        let mut composite = good.clone();
        composite[2].primary_key = true;
        assert!(check_shape(&composite, &TYPES).is_err());
        let mut blob = good.clone();
        blob[1].decl_type = "blob".into();
        assert!(check_shape(&blob, &TYPES).unwrap_err().contains("\"blob\""));
        assert!(check_shape(&good[..2], &TYPES).unwrap_err().contains("columns are"));
    }

    #[test]
    fn times_are_cut_to_microseconds_in_utc() {
        assert_eq!(
            utc_micros(datetime!(2026-12-06 04:14:19.155447999 +01:00)),
            datetime!(2026-12-06 03:14:19.155447 UTC)
        );
    }

    #[test]
    fn keys_longer_than_djangos_column_never_reach_the_database() {
        assert!(fits(&SessionKey::generate()));
        let long = SessionKey::parse(&"a".repeat(41));
        assert!(long.is_ok_and(|key| !fits(&key)));
    }
}
