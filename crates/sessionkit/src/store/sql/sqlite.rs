//! Django's `db` backend on SQLite: the `django_session` table exactly as Django's migration creates it,
//! so sessionkit can share a Django project's own `db.sqlite3`.
//!
//! Schema (Django 4.2–6.x, `sessions.0001_initial`):
//! ```sql
//! CREATE TABLE "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY,
//!     "session_data" text NOT NULL, "expire_date" datetime NOT NULL);
//! CREATE INDEX "django_session_expire_date_a5c62663" ON "django_session" ("expire_date");
//! ```
//! `expire_date` holds naive UTC text such as `2026-12-06 03:14:19.155447` (no fraction when the microseconds
//! are zero), which is what Django writes with `USE_TZ = True`; SQLite compares it as text.
//!
//! The code path is shared with the other databases: see [`SqlStore`].

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::backend::{Arg, Backend, ColumnShape, DjangoTypes, StoredRow};
use super::{utc_micros, Dialect, SqlStore};
use crate::store::Access;
use crate::{ConfigError, StoreError};

/// Django's `db` backend on SQLite.
pub type SqliteStore = SqlStore<SqliteDialect>;

/// The URL options sqlx reads for SQLite (`mode=ro`, `cache=shared`, `immutable=true`, `vfs=NAME`).
const URL_OPTIONS: &[&str] = &["mode", "cache", "immutable", "vfs"];

const CREATE_TABLE: &str = r#"CREATE TABLE IF NOT EXISTS "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, "session_data" text NOT NULL, "expire_date" datetime NOT NULL)"#;
const CREATE_INDEX: &str =
    r#"CREATE INDEX IF NOT EXISTS "django_session_expire_date_a5c62663" ON "django_session" ("expire_date")"#;

/// The SQLite side of [`SqliteStore`]: a pool on a database file (or one in-memory connection).
#[derive(Debug, Clone)]
pub struct SqliteDialect {
    pool: SqlitePool,
}

impl Dialect for SqliteDialect {
    type Pool = SqlitePool;

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, SqliteArguments<'q>>;

fn bind<'q>(mut query: Query<'q>, args: &[Arg<'q>]) -> Query<'q> {
    for arg in args {
        query = match *arg {
            Arg::Text(text) => query.bind(text),
            Arg::Time(at) => query.bind(to_django_sqlite_datetime(utc_micros(at))),
        };
    }
    query
}

#[async_trait]
impl Backend for SqliteDialect {
    const TYPES: DjangoTypes = DjangoTypes {
        key_prefix: "varchar",
        data: "text",
        expire: "datetime",
        declaration:
            "session_key varchar(40) NOT NULL PRIMARY KEY, session_data text NOT NULL, expire_date datetime NOT NULL",
    };
    const QUOTE: char = '"';

    fn placeholder(n: usize) -> String {
        format!("?{n}")
    }

    /// Opens (creating if missing) the database at `url` (`sqlite://relative.db`, `sqlite:///abs/path.db`,
    /// or `sqlite::memory:`).
    async fn connect(url: &str, describe: &str, access: Access) -> Result<Self, StoreError> {
        crate::store::url_options::refuse_unknown(url, "SQLite", URL_OPTIONS)?;
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|err| ConfigError::InvalidStoreUrl { url: describe.to_owned(), reason: err.to_string() })?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = match access {
            Access::ReadWrite => options.create_if_missing(true),
            Access::ReadOnly => {
                let path = options.get_filename().to_path_buf();
                let exists = tokio::task::spawn_blocking(move || path.is_file()).await.unwrap_or(false);
                if !in_memory && !exists {
                    return Err(ConfigError::NoSuchStore(format!(
                        "{describe}: no such SQLite database file {} (opened read-only, so it was not created; \
                         check the path: sqlite:///ABS/PATH has three slashes, sqlite://REL/PATH is relative to \
                         the current directory)",
                        options.get_filename().display()
                    ))
                    .into());
                }
                options.create_if_missing(false).read_only(!in_memory)
            }
        };
        // An in-memory database exists once per connection: keep exactly one.
        let max_connections = if in_memory { 1 } else { 8 };
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(if in_memory { None } else { Some(Duration::from_secs(600)) })
            .max_lifetime(if in_memory { None } else { Some(Duration::from_secs(1800)) })
            .connect_with(options)
            .await
            .map_err(|err| StoreError::unavailable(describe.to_owned(), err))?;
        Ok(SqliteDialect { pool })
    }

    async fn columns(&self) -> Result<Vec<ColumnShape>, sqlx::Error> {
        let rows = sqlx::query("PRAGMA table_info(\"django_session\")").fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|row| ColumnShape {
                name: row.try_get::<String, _>("name").unwrap_or_default(),
                decl_type: row.try_get::<String, _>("type").unwrap_or_default().to_ascii_lowercase(),
                not_null: row.try_get::<i64, _>("notnull").unwrap_or(0) != 0,
                primary_key: row.try_get::<i64, _>("pk").unwrap_or(0) != 0,
            })
            .collect())
    }

    async fn create_table(&self) -> Result<bool, sqlx::Error> {
        // SQLite stores the statement without `IF NOT EXISTS`, so `sqlite_master` shows Django's exact DDL.
        let mut tx = self.pool.begin().await?;
        sqlx::query(CREATE_TABLE).execute(&mut *tx).await?;
        sqlx::query(CREATE_INDEX).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn has_expire_date_index(&self) -> Result<bool, sqlx::Error> {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pragma_index_list('django_session') AS il \
             JOIN pragma_index_info(il.name) AS ii WHERE ii.seqno = 0 AND ii.name = 'expire_date'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(count > 0)
    }

    async fn execute<'q>(&self, sql: &'q str, args: &[Arg<'q>]) -> Result<u64, sqlx::Error> {
        Ok(bind(sqlx::query(sql), args).execute(&self.pool).await?.rows_affected())
    }

    async fn fetch_row<'q>(&self, sql: &'q str, args: &[Arg<'q>]) -> Result<Option<StoredRow>, sqlx::Error> {
        let Some(row) = bind(sqlx::query(sql), args).fetch_optional(&self.pool).await? else { return Ok(None) };
        let data: String = row.try_get(0)?;
        let text: String = row.try_get(1)?;
        let expire = parse_django_sqlite_datetime(&text).ok_or(text);
        Ok(Some(StoredRow { data, expire }))
    }

    async fn fetch_exists<'q>(&self, sql: &'q str, args: &[Arg<'q>]) -> Result<bool, sqlx::Error> {
        Ok(bind(sqlx::query(sql), args).fetch_optional(&self.pool).await?.is_some())
    }

    async fn fetch_rows<'q>(&self, sql: &'q str, args: &[Arg<'q>]) -> Result<Vec<(String, StoredRow)>, sqlx::Error> {
        let rows = bind(sqlx::query(sql), args).fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let key: String = row.try_get(0)?;
            let data: String = row.try_get(1)?;
            let text: String = row.try_get(2)?;
            let expire = parse_django_sqlite_datetime(&text).ok_or(text);
            out.push((key, StoredRow { data, expire }));
        }
        Ok(out)
    }

    async fn fetch_count<'q>(&self, sql: &'q str, args: &[Arg<'q>]) -> Result<i64, sqlx::Error> {
        let row = bind(sqlx::query(sql), args).fetch_one(&self.pool).await?;
        row.try_get(0)
    }
}

/// Formats a time as Django's SQLite backend stores it: naive UTC, `YYYY-MM-DD HH:MM:SS[.ffffff]`.
pub fn to_django_sqlite_datetime(at: OffsetDateTime) -> String {
    crate::expiry::format_date_time(at.to_offset(time::UtcOffset::UTC), ' ')
}

/// Parses Django's SQLite datetime text (naive UTC, optional fraction).
pub fn parse_django_sqlite_datetime(text: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        version = 2,
        "[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    PrimitiveDateTime::parse(text, &format).ok().map(PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn datetime_text_matches_djangos_sqlite_format() {
        assert_eq!(to_django_sqlite_datetime(datetime!(2026-12-06 03:14:19.155447 UTC)), "2026-12-06 03:14:19.155447");
        assert_eq!(to_django_sqlite_datetime(datetime!(2026-12-06 03:14:19 UTC)), "2026-12-06 03:14:19");
        assert_eq!(to_django_sqlite_datetime(datetime!(2026-12-06 04:14:19 +01:00)), "2026-12-06 03:14:19");
        assert_eq!(
            parse_django_sqlite_datetime("2026-12-06 03:14:19.155447"),
            Some(datetime!(2026-12-06 03:14:19.155447 UTC))
        );
        assert_eq!(parse_django_sqlite_datetime("2026-12-06 03:14:19"), Some(datetime!(2026-12-06 03:14:19 UTC)));
        assert_eq!(parse_django_sqlite_datetime("garbage"), None);
    }

    #[test]
    fn statements_use_numbered_placeholders() {
        assert_eq!(
            super::super::render::<SqliteDialect>(super::super::templates::UPDATE),
            r#"UPDATE "django_session" SET "session_data" = ?1, "expire_date" = ?2 WHERE "session_key" = ?3"#
        );
    }
}
