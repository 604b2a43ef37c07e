//! Django's `db` backend on MariaDB and MySQL: URL `mysql://user[:password]@host:3306/dbname` (or `mariadb://`).
//!
//! Schema (Django 4.2–6.x, `manage.py sqlmigrate sessions 0001` on MariaDB/MySQL):
//! ```sql
//! CREATE TABLE `django_session` (`session_key` varchar(40) NOT NULL PRIMARY KEY, `session_data` longtext NOT NULL,
//!     `expire_date` datetime(6) NOT NULL);
//! CREATE INDEX `django_session_expire_date_a5c62663` ON `django_session` (`expire_date`);
//! ```
//! `expire_date` holds naive UTC with microseconds (`2026-12-06 03:14:19.155447`), which is what Django writes with
//! `USE_TZ = True`; a `datetime` column is not converted by the connection's `time_zone`.
//!
//! `save` relies on the number of rows an `UPDATE` *matched*. MySQL reports the rows it *changed* unless the client
//! sets `CLIENT_FOUND_ROWS`; sqlx sets that flag on every connection (as Django's MySQL backend does), so saving
//! unchanged data is not mistaken for a deleted session. The tests check this.
//!
//! The code path is shared with the other databases: see [`SqlStore`].

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::mysql::{MySqlArguments, MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::Row;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::backend::{Arg, Backend, ColumnShape, DjangoTypes, StoredRow};
use super::{utc_micros, Dialect, SqlStore};
use crate::store::Access;
use crate::{ConfigError, StoreError};

/// Django's `db` backend on MariaDB/MySQL.
pub type MySqlStore = SqlStore<MySqlDialect>;

/// Django's DDL for `django_session`, statement by statement, exactly as `sqlmigrate` prints it.
pub const DJANGO_DDL: [&str; 2] = [
    "CREATE TABLE `django_session` (`session_key` varchar(40) NOT NULL PRIMARY KEY, `session_data` longtext NOT NULL, `expire_date` datetime(6) NOT NULL)",
    "CREATE INDEX `django_session_expire_date_a5c62663` ON `django_session` (`expire_date`)",
];

/// The URL options sqlx reads for MySQL/MariaDB.
const URL_OPTIONS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslca",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "charset",
    "collation",
    "socket",
    "timezone",
    "time-zone",
];

/// Name of the `GET_LOCK` lock that serialises processes creating the table at the same time.
const CREATE_LOCK: &str = "sessionkit.django_session.create";

/// The MariaDB/MySQL side of [`MySqlStore`]: a pool of connections to one database.
#[derive(Debug, Clone)]
pub struct MySqlDialect {
    pool: MySqlPool,
}

impl Dialect for MySqlDialect {
    type Pool = MySqlPool;

    fn pool(&self) -> &MySqlPool {
        &self.pool
    }
}

/// `at` as the naive UTC `datetime(6)` value Django writes with `USE_TZ = True`.
pub fn to_django_mysql_datetime(at: OffsetDateTime) -> PrimitiveDateTime {
    let utc = utc_micros(at);
    PrimitiveDateTime::new(utc.date(), utc.time())
}

type Query<'q> = sqlx::query::Query<'q, sqlx::MySql, MySqlArguments>;

fn bind<'q>(mut query: Query<'q>, args: &[Arg<'q>]) -> Query<'q> {
    for arg in args {
        query = match *arg {
            Arg::Text(text) => query.bind(text),
            Arg::Time(at) => query.bind(to_django_mysql_datetime(at)),
        };
    }
    query
}

#[async_trait]
impl Backend for MySqlDialect {
    const TYPES: DjangoTypes = DjangoTypes {
        key_prefix: "varchar",
        data: "longtext",
        expire: "datetime(6)",
        declaration: "session_key varchar(40) NOT NULL PRIMARY KEY, session_data longtext NOT NULL, \
                      expire_date datetime(6) NOT NULL",
    };
    const QUOTE: char = '`';

    /// Byte for byte: `session_data` is `longtext` in the database's collation, which is usually
    /// case-insensitive.
    fn exact_text_equals(column: &str, placeholder: &str) -> String {
        format!("CAST({column} AS BINARY) = CAST({placeholder} AS BINARY)")
    }

    fn placeholder(_n: usize) -> String {
        "?".to_owned()
    }

    async fn connect(url: &str, describe: &str, _access: Access) -> Result<Self, StoreError> {
        crate::store::url_options::refuse_unknown(url, "MySQL/MariaDB", URL_OPTIONS)?;
        // sqlx reads the URL's authority and path only, so `mariadb://` needs no rewriting.
        let options = MySqlConnectOptions::from_str(url)
            .map_err(|err| ConfigError::InvalidStoreUrl { url: describe.to_owned(), reason: err.to_string() })?;
        let tcp = options.get_socket().is_none().then(|| (options.get_host(), options.get_port()));
        super::first_connection(&options, describe, tcp, crate::store::probe::Peer::MySql, "MySQL").await?;
        let pool = MySqlPoolOptions::new()
            .max_connections(10)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(10))
            .idle_timeout(Some(Duration::from_secs(600)))
            .max_lifetime(Some(Duration::from_secs(1800)))
            .connect_with(options)
            .await
            .map_err(|err| StoreError::unavailable(describe.to_owned(), err))?;
        Ok(MySqlDialect { pool })
    }

    async fn columns(&self) -> Result<Vec<ColumnShape>, sqlx::Error> {
        // CAST AS CHAR: MySQL 8 returns some information_schema columns as binary strings.
        let rows = sqlx::query(
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), CAST(IS_NULLABLE AS CHAR), \
                 CAST(COLUMN_KEY AS CHAR) \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'django_session' \
             ORDER BY ORDINAL_POSITION",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ColumnShape {
                    name: row.try_get(0)?,
                    decl_type: row.try_get::<String, _>(1)?.to_ascii_lowercase(),
                    not_null: row.try_get::<String, _>(2)? == "NO",
                    primary_key: row.try_get::<String, _>(3)? == "PRI",
                })
            })
            .collect()
    }

    async fn create_table(&self) -> Result<bool, sqlx::Error> {
        // DDL commits implicitly in MySQL, so a named lock (held by this connection) serialises creators.
        let mut conn = self.pool.acquire().await?;
        let (locked,): (Option<i64>,) =
            sqlx::query_as("SELECT GET_LOCK(?, 30)").bind(CREATE_LOCK).fetch_one(&mut *conn).await?;
        if locked != Some(1) {
            return Err(sqlx::Error::Protocol(format!("could not take the lock {CREATE_LOCK:?} within 30 s")));
        }
        let created = async {
            let (count,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'django_session'",
            )
            .fetch_one(&mut *conn)
            .await?;
            if count > 0 {
                return Ok(false);
            }
            for statement in DJANGO_DDL {
                sqlx::query(statement).execute(&mut *conn).await?;
            }
            Ok::<_, sqlx::Error>(true)
        }
        .await;
        let released = sqlx::query("SELECT RELEASE_LOCK(?)").bind(CREATE_LOCK).execute(&mut *conn).await;
        if created.is_err() || released.is_err() {
            // Never return a connection that may still hold the lock to the pool; closing it releases the lock.
            let _ = conn.detach();
        }
        let created = created?;
        released?;
        Ok(created)
    }

    async fn has_expire_date_index(&self) -> Result<bool, sqlx::Error> {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() \
             AND TABLE_NAME = 'django_session' AND COLUMN_NAME = 'expire_date' AND SEQ_IN_INDEX = 1",
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
        let expire: PrimitiveDateTime = row.try_get(1)?;
        Ok(Some(StoredRow { data, expire: Ok(expire.assume_utc()) }))
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
            let expire: PrimitiveDateTime = row.try_get(2)?;
            let expire = Ok(expire.assume_utc());
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
    use time::macros::datetime;

    #[test]
    fn statements_use_backticks_and_positional_placeholders() {
        assert_eq!(
            render::<MySqlDialect>(templates::UPDATE),
            "UPDATE `django_session` SET `session_data` = ?, `expire_date` = ? WHERE `session_key` = ?"
        );
    }

    #[test]
    fn datetimes_are_naive_utc_with_microseconds() {
        assert_eq!(
            to_django_mysql_datetime(datetime!(2026-12-06 04:14:19.155447999 +01:00)),
            datetime!(2026-12-06 03:14:19.155447)
        );
    }
}
