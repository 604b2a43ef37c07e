//! Django's `db` backend on PostgreSQL: URL `postgres://user[:password]@host:5432/dbname` (or `postgresql://`).
//!
//! Schema (Django 4.2–6.x, `manage.py sqlmigrate sessions 0001` on PostgreSQL):
//! ```sql
//! CREATE TABLE "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, "session_data" text NOT NULL,
//!     "expire_date" timestamp with time zone NOT NULL);
//! CREATE INDEX "django_session_session_key_c0390e0f_like" ON "django_session" ("session_key" varchar_pattern_ops);
//! CREATE INDEX "django_session_expire_date_a5c62663" ON "django_session" ("expire_date");
//! ```
//! `expire_date` is bound as an aware UTC time (microseconds), as Django's PostgreSQL backend binds it; the
//! connection's `TimeZone` does not matter. The table is found through the connection's `search_path`, as Django
//! finds it.
//!
//! The code path is shared with the other databases: see [`SqlStore`].

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Row;
use time::OffsetDateTime;

use super::backend::{Arg, Backend, ColumnShape, DjangoTypes, StoredRow};
use super::{utc_micros, Dialect, SqlStore};
use crate::store::Access;
use crate::{ConfigError, StoreError};

/// Django's `db` backend on PostgreSQL.
pub type PostgresStore = SqlStore<PostgresDialect>;

/// Django's DDL for `django_session`, statement by statement, exactly as `sqlmigrate` prints it.
pub const DJANGO_DDL: [&str; 3] = [
    r#"CREATE TABLE "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, "session_data" text NOT NULL, "expire_date" timestamp with time zone NOT NULL)"#,
    r#"CREATE INDEX "django_session_session_key_c0390e0f_like" ON "django_session" ("session_key" varchar_pattern_ops)"#,
    r#"CREATE INDEX "django_session_expire_date_a5c62663" ON "django_session" ("expire_date")"#,
];

/// The URL options sqlx reads for PostgreSQL (libpq's names, as sqlx spells them); `options[NAME]=VALUE` too.
const URL_OPTIONS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
    "options[",
];

/// Key of the transaction-level advisory lock that serialises processes creating the table at the same time.
const CREATE_LOCK: i64 = 0x5e55_1011_d1a0_0001;

/// The PostgreSQL side of [`PostgresStore`]: a pool of connections to one database.
#[derive(Debug, Clone)]
pub struct PostgresDialect {
    pool: PgPool,
}

impl Dialect for PostgresDialect {
    type Pool = PgPool;

    fn pool(&self) -> &PgPool {
        &self.pool
    }
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, PgArguments>;

fn bind<'q>(mut query: Query<'q>, args: &[Arg<'q>]) -> Query<'q> {
    for arg in args {
        query = match *arg {
            Arg::Text(text) => query.bind(text),
            Arg::Time(at) => query.bind(utc_micros(at)),
        };
    }
    query
}

#[async_trait]
impl Backend for PostgresDialect {
    const TYPES: DjangoTypes = DjangoTypes {
        key_prefix: "character varying",
        data: "text",
        expire: "timestamp with time zone",
        declaration: "session_key varchar(40) NOT NULL PRIMARY KEY, session_data text NOT NULL, \
                      expire_date timestamp with time zone NOT NULL",
    };
    const QUOTE: char = '"';

    fn placeholder(n: usize) -> String {
        format!("${n}")
    }

    async fn connect(url: &str, describe: &str, _access: Access) -> Result<Self, StoreError> {
        crate::store::url_options::refuse_unknown(url, "PostgreSQL", URL_OPTIONS)?;
        let options = PgConnectOptions::from_str(url)
            .map_err(|err| ConfigError::InvalidStoreUrl { url: describe.to_owned(), reason: err.to_string() })?
            .application_name("sessionkit");
        let tcp = options.get_socket().is_none().then(|| (options.get_host(), options.get_port()));
        super::first_connection(&options, describe, tcp, crate::store::probe::Peer::Silent, "PostgreSQL").await?;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(10))
            .idle_timeout(Some(Duration::from_secs(600)))
            .max_lifetime(Some(Duration::from_secs(1800)))
            .connect_with(options)
            .await
            .map_err(|err| StoreError::unavailable(describe.to_owned(), err))?;
        Ok(PostgresDialect { pool })
    }

    async fn columns(&self) -> Result<Vec<ColumnShape>, sqlx::Error> {
        // `to_regclass` resolves the name through the search_path as Django's unqualified queries do.
        let rows = sqlx::query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                 EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary \
                         AND a.attnum = ANY (i.indkey)) \
             FROM pg_attribute a \
             WHERE a.attrelid = to_regclass('django_session') AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ColumnShape {
                    name: row.try_get(0)?,
                    decl_type: row.try_get::<String, _>(1)?.to_ascii_lowercase(),
                    not_null: row.try_get(2)?,
                    primary_key: row.try_get(3)?,
                })
            })
            .collect()
    }

    async fn create_table(&self) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CREATE_LOCK).execute(&mut *tx).await?;
        let (exists,): (bool,) =
            sqlx::query_as("SELECT to_regclass('django_session') IS NOT NULL").fetch_one(&mut *tx).await?;
        if exists {
            return Ok(false);
        }
        for statement in DJANGO_DDL {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn has_expire_date_index(&self) -> Result<bool, sqlx::Error> {
        let (exists,): (bool,) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
                 WHERE i.indrelid = to_regclass('django_session') AND a.attname = 'expire_date')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(exists)
    }

    async fn execute<'q>(&self, sql: &'q str, args: &[Arg<'q>]) -> Result<u64, sqlx::Error> {
        Ok(bind(sqlx::query(sql), args).execute(&self.pool).await?.rows_affected())
    }

    async fn fetch_row<'q>(&self, sql: &'q str, args: &[Arg<'q>]) -> Result<Option<StoredRow>, sqlx::Error> {
        let Some(row) = bind(sqlx::query(sql), args).fetch_optional(&self.pool).await? else { return Ok(None) };
        let data: String = row.try_get(0)?;
        let expire: OffsetDateTime = row.try_get(1)?;
        Ok(Some(StoredRow { data, expire: Ok(expire) }))
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
            let expire: OffsetDateTime = row.try_get(2)?;
            let expire = Ok(expire);
            out.push((key, StoredRow { data, expire }));
        }
        Ok(out)
    }

    async fn fetch_count<'q>(&self, sql: &'q str, args: &[Arg<'q>]) -> Result<i64, sqlx::Error> {
        let row = bind(sqlx::query(sql), args).fetch_one(&self.pool).await?;
        row.try_get(0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{render, templates};
    use super::*;

    #[test]
    fn statements_use_dollar_placeholders() {
        assert_eq!(
            render::<PostgresDialect>(templates::SELECT_LIVE),
            r#"SELECT "session_data", "expire_date" FROM "django_session" WHERE "session_key" = $1 AND "expire_date" > $2"#
        );
    }
}
