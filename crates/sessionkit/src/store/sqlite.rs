//! Django's `db` session backend on SQLite: the `django_session` table exactly as Django's migration creates it,
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
//! When sessionkit creates the table in a database that Django later migrates, run Django's
//! `manage.py migrate --fake-initial` once so Django records the table as already created.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::{redact_url, RawSession, SessionStore, SignedSessionCodec};
use crate::{ChangeSet, ConfigError, SessionKey, SessionRecord, Settings, StoreError};

const CREATE_TABLE: &str = r#"CREATE TABLE IF NOT EXISTS "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, "session_data" text NOT NULL, "expire_date" datetime NOT NULL)"#;
const CREATE_INDEX: &str =
    r#"CREATE INDEX IF NOT EXISTS "django_session_expire_date_a5c62663" ON "django_session" ("expire_date")"#;

/// Django's `db` backend on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    codec: SignedSessionCodec,
    describe: String,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://relative.db`, `sqlite:///abs/path.db`,
    /// or `sqlite::memory:`), creates the `django_session` table when absent, and checks the shape of an
    /// existing one.
    pub async fn connect(url: &str, settings: &Settings) -> Result<Self, StoreError> {
        let codec = SignedSessionCodec::new(settings)?;
        let describe = redact_url(url);
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|err| ConfigError::InvalidStoreUrl { url: describe.clone(), reason: err.to_string() })?
            .create_if_missing(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        // An in-memory database exists once per connection: keep exactly one.
        let max_connections = if in_memory { 1 } else { 8 };
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(if in_memory { None } else { Some(std::time::Duration::from_secs(600)) })
            .max_lifetime(if in_memory { None } else { Some(std::time::Duration::from_secs(1800)) })
            .connect_with(options)
            .await
            .map_err(|err| StoreError::unavailable(describe.clone(), err))?;
        let store = SqliteStore { pool, codec, describe };
        store.ensure_schema().await?;
        Ok(store)
    }

    /// The connection pool, for callers that need other tables of the same database (Django's `auth_user`).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn unavailable(&self, err: sqlx::Error) -> StoreError {
        StoreError::unavailable(self.describe.clone(), err)
    }

    /// `(session_data, expire_date)` of `key`; with `live_only`, only if it has not expired.
    async fn fetch_row(&self, key: &SessionKey, live_only: bool) -> Result<Option<(String, String)>, StoreError> {
        let sql = if live_only {
            r#"SELECT "session_data", "expire_date" FROM "django_session" WHERE "session_key" = ?1 AND "expire_date" > ?2"#
        } else {
            r#"SELECT "session_data", "expire_date" FROM "django_session" WHERE "session_key" = ?1"#
        };
        let mut query = sqlx::query_as::<_, (String, String)>(sql).bind(key.as_str());
        if live_only {
            query = query.bind(to_django_sqlite_datetime(OffsetDateTime::now_utc()));
        }
        query.fetch_optional(&self.pool).await.map_err(|e| self.unavailable(e))
    }

    async fn ensure_schema(&self) -> Result<(), StoreError> {
        let columns = sqlx::query("PRAGMA table_info(\"django_session\")")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.unavailable(e))?;
        if columns.is_empty() {
            let mut tx = self.pool.begin().await.map_err(|e| self.unavailable(e))?;
            sqlx::query(CREATE_TABLE).execute(&mut *tx).await.map_err(|e| self.unavailable(e))?;
            sqlx::query(CREATE_INDEX).execute(&mut *tx).await.map_err(|e| self.unavailable(e))?;
            tx.commit().await.map_err(|e| self.unavailable(e))?;
            tracing::info!(store = %self.describe, "created table django_session");
            return Ok(());
        }
        let found: Vec<ColumnShape> = columns
            .iter()
            .map(|row| ColumnShape {
                name: row.try_get::<String, _>("name").unwrap_or_default(),
                decl_type: row.try_get::<String, _>("type").unwrap_or_default().to_ascii_lowercase(),
                not_null: row.try_get::<i64, _>("notnull").unwrap_or(0) != 0,
                primary_key: row.try_get::<i64, _>("pk").unwrap_or(0) != 0,
            })
            .collect();
        check_shape(&found).map_err(|problem| {
            ConfigError::SchemaMismatch(format!(
                "{}: table django_session does not have Django's shape ({problem}); expected (session_key varchar(40) \
                 NOT NULL PRIMARY KEY, session_data text NOT NULL, expire_date datetime NOT NULL)",
                self.describe
            ))
            .into()
        })
    }
}

struct ColumnShape {
    name: String,
    decl_type: String,
    not_null: bool,
    primary_key: bool,
}

fn check_shape(columns: &[ColumnShape]) -> Result<(), String> {
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    if names != ["session_key", "session_data", "expire_date"] {
        return Err(format!("columns are {names:?}"));
    }
    let [key, data, expire] = columns else { return Err("wrong number of columns".into()) };
    if !(key.decl_type.starts_with("varchar") && key.primary_key && key.not_null) {
        return Err(format!("session_key is {:?}, primary key: {}", key.decl_type, key.primary_key));
    }
    if !(data.decl_type == "text" && data.not_null) {
        return Err(format!("session_data is {:?}", data.decl_type));
    }
    if !(expire.decl_type == "datetime" && expire.not_null) {
        return Err(format!("expire_date is {:?}", expire.decl_type));
    }
    Ok(())
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

#[async_trait]
impl SessionStore for SqliteStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        if !key.is_storage_safe() {
            return Ok(None);
        }
        let Some((token, expire_text)) = self.fetch_row(key, true).await? else { return Ok(None) };
        let expires_at = parse_django_sqlite_datetime(&expire_text).unwrap_or_else(|| {
            tracing::warn!(target: "sessionkit::corrupt", store = %self.describe, key = ?key, expire_date = %expire_text, "unparseable expire_date");
            OffsetDateTime::now_utc()
        });
        let data = self.codec.decode_or_empty(&token, key, &self.describe);
        Ok(Some(SessionRecord { key: key.clone(), data, expires_at }))
    }

    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError> {
        if !record.key.is_storage_safe() {
            return Err(StoreError::UnsafeKey);
        }
        let token = self.codec.encode(&record.data, OffsetDateTime::now_utc());
        let result = sqlx::query(
            r#"INSERT INTO "django_session" ("session_key", "session_data", "expire_date") VALUES (?1, ?2, ?3)"#,
        )
        .bind(record.key.as_str())
        .bind(token)
        .bind(to_django_sqlite_datetime(record.expires_at))
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Err(StoreError::KeyCollision),
            Err(err) => Err(self.unavailable(err)),
        }
    }

    async fn save(&self, record: &SessionRecord, _changes: &ChangeSet) -> Result<(), StoreError> {
        if !record.key.is_storage_safe() {
            return Err(StoreError::UnsafeKey);
        }
        let token = self.codec.encode(&record.data, OffsetDateTime::now_utc());
        let done = sqlx::query(
            r#"UPDATE "django_session" SET "session_data" = ?1, "expire_date" = ?2 WHERE "session_key" = ?3"#,
        )
        .bind(token)
        .bind(to_django_sqlite_datetime(record.expires_at))
        .bind(record.key.as_str())
        .execute(&self.pool)
        .await
        .map_err(|e| self.unavailable(e))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::SessionVanished);
        }
        Ok(())
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        if !key.is_storage_safe() {
            return Ok(false);
        }
        let row = sqlx::query(r#"SELECT 1 FROM "django_session" WHERE "session_key" = ?1"#)
            .bind(key.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(row.is_some())
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        if !key.is_storage_safe() {
            return Ok(());
        }
        sqlx::query(r#"DELETE FROM "django_session" WHERE "session_key" = ?1"#)
            .bind(key.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(())
    }

    async fn clear_expired(&self) -> Result<u64, StoreError> {
        let now = to_django_sqlite_datetime(OffsetDateTime::now_utc());
        let done = sqlx::query(r#"DELETE FROM "django_session" WHERE "expire_date" < ?1"#)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(done.rows_affected())
    }

    async fn load_raw(&self, key: &SessionKey) -> Result<Option<RawSession>, StoreError> {
        if !key.is_storage_safe() {
            return Ok(None);
        }
        let Some((token, expire_text)) = self.fetch_row(key, false).await? else { return Ok(None) };
        Ok(Some(RawSession { bytes: token.into_bytes(), expires_at: parse_django_sqlite_datetime(&expire_text) }))
    }
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
}
