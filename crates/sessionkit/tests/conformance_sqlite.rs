//! The conformance suite on the SQLite `db` store, plus SQLite-specific checks (Django's schema and formats).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use sessionkit::conformance::Harness;
use sessionkit::store::sqlite::SqliteStore;
use sessionkit::{ConfigError, Session, SessionKey, SessionStore, Settings, StoreError};

struct SqliteHarness {
    store: Arc<SqliteStore>,
    settings: Arc<Settings>,
    _dir: tempfile::TempDir,
}

impl SqliteHarness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let settings = Arc::new(Settings::with_secret_key("conformance-secret"));
        let url = format!("sqlite://{}", dir.path().join("db.sqlite3").display());
        let store = Arc::new(SqliteStore::connect(&url, &settings).await.unwrap());
        SqliteHarness { store, settings, _dir: dir }
    }
}

#[async_trait::async_trait]
impl Harness for SqliteHarness {
    fn store(&self) -> Arc<dyn SessionStore> {
        self.store.clone()
    }
    fn settings(&self) -> Arc<Settings> {
        self.settings.clone()
    }
    async fn plant_corrupt(&self, key: &SessionKey) -> bool {
        sqlx::query("INSERT INTO django_session VALUES (?1, 'eyJub3QiOiJzaWduZWQifQ:1r31eq:forged-signature', '2999-01-01 00:00:00')")
            .bind(key.as_str())
            .execute(self.store.pool())
            .await
            .unwrap();
        true
    }
}

sessionkit::conformance_suite!(SqliteHarness::new());

/// The table sessionkit creates is byte-for-byte the DDL of Django's `sessions.0001_initial` migration
/// (as printed by `manage.py sqlmigrate sessions 0001` with Django 5.2).
#[tokio::test]
async fn creates_djangos_exact_table_and_index() {
    let h = SqliteHarness::new().await;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master WHERE tbl_name = 'django_session' AND sql IS NOT NULL ORDER BY type DESC",
    )
    .fetch_all(h.store.pool())
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            (
                "django_session".to_owned(),
                r#"CREATE TABLE "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, "session_data" text NOT NULL, "expire_date" datetime NOT NULL)"#.to_owned()
            ),
            (
                "django_session_expire_date_a5c62663".to_owned(),
                r#"CREATE INDEX "django_session_expire_date_a5c62663" ON "django_session" ("expire_date")"#.to_owned()
            ),
        ]
    );
}

/// Stored rows use Django's datetime text and a signed token that verifies with the shared secret.
#[tokio::test]
async fn rows_hold_djangos_formats() {
    let h = SqliteHarness::new().await;
    let mut s = Session::new(h.store(), h.settings(), None);
    s.set("foo", "bar").await.unwrap();
    s.save().await.unwrap();
    let key = s.key().unwrap().clone();
    let (data, expire): (String, String) =
        sqlx::query_as("SELECT session_data, expire_date FROM django_session WHERE session_key = ?1")
            .bind(key.as_str())
            .fetch_one(h.store.pool())
            .await
            .unwrap();
    // Uncompressed token of {"foo":"bar"}: base64 of the JSON, then base62 time, then a 43-char signature.
    let parts: Vec<&str> = data.split(':').collect();
    assert_eq!(parts.len(), 3, "{data}");
    assert_eq!(parts[0], "eyJmb28iOiJiYXIifQ");
    assert_eq!(parts[2].len(), 43);
    // "YYYY-MM-DD HH:MM:SS" with an optional ".ffffff".
    let re_ok = expire.len() == 19 || (expire.len() == 26 && expire.as_bytes()[19] == b'.');
    assert!(re_ok && expire.as_bytes()[10] == b' ', "{expire}");
}

/// A `django_session` table of another shape is refused with a message naming the problem.
#[tokio::test]
async fn refuses_a_table_of_another_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.sqlite3");
    let url = format!("sqlite://{}", path.display());
    {
        let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc")).await.unwrap();
        sqlx::query("CREATE TABLE django_session (id integer primary key, payload blob)").execute(&pool).await.unwrap();
        pool.close().await;
    }
    let err = SqliteStore::connect(&url, &Settings::with_secret_key("k")).await.unwrap_err();
    let StoreError::Config(ConfigError::SchemaMismatch(message)) = &err else { panic!("unexpected error {err:?}") };
    assert!(message.contains("django_session") && message.contains("[\"id\", \"payload\"]"), "{message}");
}

/// Without SECRET_KEY the db store refuses to start (it could not sign anything).
#[tokio::test]
async fn requires_a_secret_key() {
    let err = SqliteStore::connect("sqlite::memory:", &Settings::default()).await.unwrap_err();
    assert!(matches!(err, StoreError::Config(ConfigError::MissingSecretKey)), "{err:?}");
}

/// `open_store` builds the same store from a URL.
#[tokio::test]
async fn open_store_accepts_sqlite_urls() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("via-url.sqlite3").display());
    let store = sessionkit::open_store(&url, &Settings::with_secret_key("k")).await.unwrap();
    assert!(store.describe().starts_with("sqlite://"));
    assert!(dir.path().join("via-url.sqlite3").exists());
    let mem = sessionkit::open_store("memory://", &Settings::default()).await.unwrap();
    assert_eq!(mem.describe(), "memory://");
}
