//! Django's `auth_user` table as a [`UserSource`](super::UserSource).

use async_trait::async_trait;

use super::{AuthUser, UserSource};
use crate::store::redact_url;
use crate::{ConfigError, StoreError};

/// Where the user model lives: Django's default `auth_user`, or a custom user model's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserTable {
    /// Table name. Default `auth_user`.
    pub table: String,
    /// Primary-key column. Default `id`.
    pub id_column: String,
    /// Whether the primary key is an integer (`AutoField`/`BigAutoField`, the default) or text (`UUIDField`,
    /// `CharField`). With an integer key, a `_auth_user_id` that is not an integer names no user.
    pub integer_id: bool,
    /// The password column. Default `password`.
    pub password_column: String,
    /// The `is_active` column, or `None` when the model has none (every user is then active).
    pub active_column: Option<String>,
}

impl Default for UserTable {
    fn default() -> Self {
        UserTable {
            table: "auth_user".to_owned(),
            id_column: "id".to_owned(),
            integer_id: true,
            password_column: "password".to_owned(),
            active_column: Some("is_active".to_owned()),
        }
    }
}

impl UserTable {
    fn check(&self) -> Result<(), ConfigError> {
        let names =
            [Some(&self.table), Some(&self.id_column), Some(&self.password_column), self.active_column.as_ref()];
        for name in names.into_iter().flatten() {
            let valid =
                !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(ConfigError::InvalidSetting {
                    name: "UserTable",
                    value: name.clone(),
                    expected: "an SQL identifier of letters, digits and _",
                });
            }
        }
        Ok(())
    }

    /// `SELECT password, is_active FROM table WHERE id = $1`, with `quote` around identifiers and `placeholder`
    /// for the one parameter.
    fn select(&self, quote: char, placeholder: &str) -> String {
        let q = |name: &str| format!("{quote}{name}{quote}");
        let active = match &self.active_column {
            Some(column) => q(column),
            None => "1 = 1".to_owned(),
        };
        format!(
            "SELECT {}, {} FROM {} WHERE {} = {placeholder}",
            q(&self.password_column),
            active,
            q(&self.table),
            q(&self.id_column)
        )
    }
}

/// Reads users from Django's database (SQLite, PostgreSQL or MariaDB/MySQL), one indexed primary-key lookup
/// per verification.
#[derive(Debug, Clone)]
pub struct SqlUserSource {
    pool: Pool,
    query: String,
    integer_id: bool,
    describe: String,
}

#[derive(Debug, Clone)]
enum Pool {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "mysql")]
    MySql(sqlx::MySqlPool),
}

impl SqlUserSource {
    /// Connects to the database at `url` (`sqlite://PATH`, `postgres://…`, `mysql://…`/`mariadb://…`, the URLs
    /// of the `db` stores) and reads `table`. SQLite databases are opened read-only.
    pub async fn connect(url: &str, table: UserTable) -> Result<Self, StoreError> {
        table.check()?;
        let describe = redact_url(url);
        let invalid = |reason: String| ConfigError::InvalidStoreUrl { url: describe.clone(), reason };
        let unavailable = |err: sqlx::Error| StoreError::unavailable(describe.clone(), err);
        let scheme = url.split_once("://").map(|(scheme, _)| scheme).unwrap_or_default();
        let pool = match scheme {
            #[cfg(feature = "sqlite")]
            "sqlite" => {
                let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url)
                    .map_err(|e| invalid(e.to_string()))?
                    .read_only(true);
                Pool::Sqlite(
                    sqlx::sqlite::SqlitePoolOptions::new()
                        .max_connections(4)
                        .connect_with(options)
                        .await
                        .map_err(unavailable)?,
                )
            }
            #[cfg(feature = "postgres")]
            "postgres" | "postgresql" => Pool::Postgres(sqlx::PgPool::connect(url).await.map_err(unavailable)?),
            #[cfg(feature = "mysql")]
            "mysql" | "mariadb" => {
                let url = url.replacen("mariadb://", "mysql://", 1);
                Pool::MySql(sqlx::MySqlPool::connect(&url).await.map_err(unavailable)?)
            }
            _ => return Err(invalid("expected a sqlite://, postgres:// or mysql:// URL".to_owned()).into()),
        };
        Ok(Self::with_pool(pool, table, describe))
    }

    /// Reads `table` through an existing SQLite pool (e.g. [`crate::store::sqlite::SqliteStore::pool`]).
    #[cfg(feature = "sqlite")]
    pub fn from_sqlite_pool(pool: sqlx::SqlitePool, table: UserTable) -> Result<Self, ConfigError> {
        table.check()?;
        Ok(Self::with_pool(Pool::Sqlite(pool), table, "sqlite".to_owned()))
    }

    /// Reads `table` through an existing PostgreSQL pool (e.g. [`crate::store::postgres::PostgresStore::pool`]).
    #[cfg(feature = "postgres")]
    pub fn from_postgres_pool(pool: sqlx::PgPool, table: UserTable) -> Result<Self, ConfigError> {
        table.check()?;
        Ok(Self::with_pool(Pool::Postgres(pool), table, "postgres".to_owned()))
    }

    /// Reads `table` through an existing MySQL pool (e.g. [`crate::store::mysql::MySqlStore::pool`]).
    #[cfg(feature = "mysql")]
    pub fn from_mysql_pool(pool: sqlx::MySqlPool, table: UserTable) -> Result<Self, ConfigError> {
        table.check()?;
        Ok(Self::with_pool(Pool::MySql(pool), table, "mysql".to_owned()))
    }

    fn with_pool(pool: Pool, table: UserTable, describe: String) -> Self {
        let query = match &pool {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(_) => table.select('"', "?"),
            #[cfg(feature = "postgres")]
            Pool::Postgres(_) => table.select('"', "$1"),
            #[cfg(feature = "mysql")]
            Pool::MySql(_) => table.select('`', "?"),
        };
        SqlUserSource { pool, query, integer_id: table.integer_id, describe }
    }
}

/// The primary key to bind: Django converts `_auth_user_id` with the pk field's `to_python`.
enum Id<'a> {
    Integer(i64),
    Text(&'a str),
}

macro_rules! fetch_user {
    ($pool:expr, $query:expr, $id:expr) => {{
        let query = sqlx::query_as::<_, (String, bool)>($query);
        let query = match $id {
            Id::Integer(id) => query.bind(id),
            Id::Text(id) => query.bind(id),
        };
        query.fetch_optional($pool).await
    }};
}

#[async_trait]
impl UserSource for SqlUserSource {
    async fn find_user(&self, user_id: &str) -> Result<Option<AuthUser>, StoreError> {
        let id = if self.integer_id {
            match user_id.trim().parse::<i64>() {
                Ok(id) => Id::Integer(id),
                Err(_) => return Ok(None),
            }
        } else {
            Id::Text(user_id)
        };
        let row = match &self.pool {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => fetch_user!(pool, &self.query, id),
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => fetch_user!(pool, &self.query, id),
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => fetch_user!(pool, &self.query, id),
        }
        .map_err(|err| StoreError::unavailable(self.describe.clone(), err))?;
        Ok(row.map(|(password, is_active)| AuthUser { password, is_active }))
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    #[test]
    fn queries_quote_identifiers_per_dialect() {
        let table = UserTable::default();
        assert_eq!(table.select('"', "$1"), r#"SELECT "password", "is_active" FROM "auth_user" WHERE "id" = $1"#);
        let custom = UserTable { table: "accounts_user".into(), active_column: None, ..UserTable::default() };
        assert_eq!(custom.select('`', "?"), "SELECT `password`, 1 = 1 FROM `accounts_user` WHERE `id` = ?");
        let hostile = UserTable { table: "auth_user; DROP TABLE x".into(), ..UserTable::default() };
        assert!(hostile.check().is_err());
    }

    #[tokio::test]
    async fn reads_users_from_a_sqlite_auth_user_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        // The columns Django's migration creates that matter here.
        sqlx::query(
            r#"CREATE TABLE "auth_user" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "password" varchar(128) NOT NULL, "is_active" bool NOT NULL)"#,
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(r#"INSERT INTO auth_user (id, password, is_active) VALUES (1, 'pbkdf2_sha256$x', 1), (2, '!', 0)"#)
            .execute(&pool)
            .await
            .unwrap();
        let source =
            SqlUserSource::connect(&format!("sqlite://{}", path.display()), UserTable::default()).await.unwrap();
        let alice = source.find_user("1").await.unwrap().unwrap();
        assert_eq!((alice.password.as_str(), alice.is_active), ("pbkdf2_sha256$x", true));
        assert!(!source.find_user("2").await.unwrap().unwrap().is_active);
        assert!(source.find_user("3").await.unwrap().is_none());
        assert!(source.find_user("abc").await.unwrap().is_none());
        assert!(SqlUserSource::connect("redis://x", UserTable::default()).await.is_err());
    }
}
