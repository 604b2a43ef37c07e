//! The conformance suite on the MariaDB/MySQL `db` store, plus MySQL-specific checks: Django's exact DDL,
//! `datetime(6)` holding naive UTC, saves of unchanged data (rows *matched*, not changed), refusal of other table
//! shapes, the `expire_date` index in `clear_expired`'s plan, and sessions shared with real Django (PyMySQL) in both
//! directions.
//!
//! Needs a MariaDB or MySQL server at 127.0.0.1:3306 where `root` (no password) may create databases (scripts/test
//! makes sure one runs); `SESSIONKIT_TEST_MYSQL_URL` points elsewhere (`mysql://USER@HOST:PORT`). Every test creates
//! its own database `sessionkit_test_<pid>_<n>` and drops it when done.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use sessionkit::conformance::Harness;
use sessionkit::store::mysql::{MySqlStore, DJANGO_DDL};
use sessionkit::{
    ChangeSet, ConfigError, Expiry, Session, SessionKey, SessionRecord, SessionStore, Settings, StoreError,
};
use sqlx::mysql::MySqlPool;
use sqlx::{Connection, MySqlConnection};
use time::macros::datetime;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use sessionkit_testsupport::databases::{Engine, TestDatabase as TestDb};

fn server_url() -> String {
    Engine::MySql.server_url()
}

struct MySqlHarness {
    store: Arc<MySqlStore>,
    settings: Arc<Settings>,
    // Declared last: dropped after the store.
    _db: TestDb,
}

impl MySqlHarness {
    async fn new() -> Self {
        let db = TestDb::create(Engine::MySql).await;
        let settings = Arc::new(Settings::with_secret_key("conformance-secret"));
        let store = Arc::new(MySqlStore::connect(&db.url(), &settings).await.unwrap());
        MySqlHarness { store, settings, _db: db }
    }

    fn pool(&self) -> &MySqlPool {
        self.store.pool()
    }
}

#[async_trait::async_trait]
impl Harness for MySqlHarness {
    fn store(&self) -> Arc<dyn SessionStore> {
        self.store.clone()
    }
    fn settings(&self) -> Arc<Settings> {
        self.settings.clone()
    }
    async fn plant_corrupt(&self, key: &SessionKey) -> bool {
        sqlx::query("INSERT INTO django_session VALUES (?, 'eyJub3QiOiJzaWduZWQifQ:1r31eq:forged-signature', '2999-01-01 00:00:00')")
            .bind(key.as_str())
            .execute(self.pool())
            .await
            .unwrap();
        true
    }
}

sessionkit::conformance_suite!(MySqlHarness::new());

/// `SHOW CREATE TABLE django_session`: the whole definition as the server states it.
async fn show_create_table(pool: &MySqlPool) -> String {
    let (_, ddl): (String, String) = sqlx::query_as("SHOW CREATE TABLE django_session").fetch_one(pool).await.unwrap();
    ddl
}

/// The table sessionkit creates is the one of Django's `sessions.0001_initial` migration, as printed by
/// `manage.py sqlmigrate sessions 0001` with Django 5.2 on MariaDB: column types, the primary key and the
/// `expire_date` index with Django's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_djangos_exact_table_and_index() {
    assert_eq!(
        DJANGO_DDL,
        [
            "CREATE TABLE `django_session` (`session_key` varchar(40) NOT NULL PRIMARY KEY, `session_data` longtext NOT NULL, `expire_date` datetime(6) NOT NULL)",
            "CREATE INDEX `django_session_expire_date_a5c62663` ON `django_session` (`expire_date`)",
        ]
    );
    let h = MySqlHarness::new().await;
    let columns: Vec<(String, String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), CAST(IS_NULLABLE AS CHAR), \
         CAST(COLUMN_KEY AS CHAR), CAST(COLUMN_DEFAULT AS CHAR) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'django_session' ORDER BY ORDINAL_POSITION",
    )
    .fetch_all(h.pool())
    .await
    .unwrap();
    let column =
        |name: &str, ty: &str, key: &str| (name.to_owned(), ty.to_owned(), "NO".to_owned(), key.to_owned(), None);
    assert_eq!(
        columns,
        [
            column("session_key", "varchar(40)", "PRI"),
            column("session_data", "longtext", ""),
            column("expire_date", "datetime(6)", "MUL")
        ]
    );
    let indexes: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT CAST(INDEX_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), CAST(NON_UNIQUE AS SIGNED), \
         CAST(SEQ_IN_INDEX AS SIGNED) FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'django_session' ORDER BY INDEX_NAME, SEQ_IN_INDEX",
    )
    .fetch_all(h.pool())
    .await
    .unwrap();
    let index = |name: &str, column: &str, non_unique: i64| (name.to_owned(), column.to_owned(), non_unique, 1);
    assert_eq!(
        indexes,
        [index("django_session_expire_date_a5c62663", "expire_date", 1), index("PRIMARY", "session_key", 0)]
    );
    let ddl = show_create_table(h.pool()).await;
    assert!(ddl.contains("KEY `django_session_expire_date_a5c62663` (`expire_date`)"), "{ddl}");
}

/// `expire_date` holds naive UTC with microseconds, as Django writes with `USE_TZ = True`, whatever the
/// connection's `time_zone`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expire_date_is_naive_utc_with_microseconds() {
    let h = MySqlHarness::new().await;
    let key = SessionKey::generate();
    // Given in +02:00 with nanoseconds: stored as naive UTC, cut to microseconds.
    let at = datetime!(2031-05-06 09:08:07.123456789 +02:00);
    h.store.create(&SessionRecord::new(key.clone(), Map::new(), at)).await.unwrap();
    let whole = SessionKey::generate();
    let at_whole_second = datetime!(2031-05-06 09:08:07 UTC);
    h.store.create(&SessionRecord::new(whole.clone(), Map::new(), at_whole_second)).await.unwrap();

    let mut conn = h.pool().acquire().await.unwrap();
    sqlx::query("SET time_zone = '+05:00'").execute(&mut *conn).await.unwrap();
    let text = |key: SessionKey| {
        sqlx::query_as::<_, (String, PrimitiveDateTime)>(
            "SELECT CAST(expire_date AS CHAR), expire_date FROM django_session WHERE session_key = ?",
        )
        .bind(key.as_str().to_owned())
    };
    let (stored_text, stored) = text(key.clone()).fetch_one(&mut *conn).await.unwrap();
    let (whole_text, _) = text(whole).fetch_one(&mut *conn).await.unwrap();
    sqlx::query("SET time_zone = '+00:00'").execute(&mut *conn).await.unwrap();
    drop(conn);
    assert_eq!(stored_text, "2031-05-06 07:08:07.123456");
    assert_eq!(stored, datetime!(2031-05-06 07:08:07.123456));
    assert_eq!(whole_text, "2031-05-06 09:08:07.000000");
    assert_eq!(h.store.load(&key).await.unwrap().unwrap().expires_at, datetime!(2031-05-06 07:08:07.123456 UTC));
}

/// Saving exactly the stored data again is not "vanished": the connection reports rows *matched*
/// (CLIENT_FOUND_ROWS), where MySQL's default would report 0 changed rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saving_unchanged_data_is_not_vanished() {
    let h = MySqlHarness::new().await;
    let record = SessionRecord {
        key: SessionKey::generate(),
        data: [("a".to_owned(), json!(1))].into_iter().collect(),
        expires_at: datetime!(2031-01-01 00:00:00.5 UTC),
        version: None,
    };
    h.store.create(&record).await.unwrap();
    let row = |pool: MySqlPool, key: String| async move {
        sqlx::query_as::<_, (String, String)>(
            "SELECT session_data, CAST(expire_date AS CHAR) FROM django_session WHERE session_key = ?",
        )
        .bind(key)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    // The token carries the second it was signed in: retry until a save writes byte-identical values.
    let mut identical_saves = 0;
    for _ in 0..20 {
        let before = row(h.pool().clone(), record.key.to_string()).await;
        h.store.save(&record, &ChangeSet::default()).await.unwrap();
        let after = row(h.pool().clone(), record.key.to_string()).await;
        if before == after {
            identical_saves += 1;
        }
        if identical_saves >= 3 {
            break;
        }
    }
    assert!(identical_saves >= 3, "no save wrote identical data");
    // The pool's connections count matched rows: an UPDATE that changes nothing still reports its row.
    let done = sqlx::query("UPDATE django_session SET session_data = session_data WHERE session_key = ?")
        .bind(record.key.as_str())
        .execute(h.pool())
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
    // And a save of a deleted session is still reported.
    h.store.delete(&record.key).await.unwrap();
    let err = h.store.save(&record, &ChangeSet::default()).await.unwrap_err();
    assert!(matches!(err, StoreError::SessionVanished), "{err:?}");
}

/// A `django_session` table of another shape is refused with a message naming the problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_table_of_another_shape() {
    let settings = Settings::with_secret_key("k");
    for (ddl, problem) in [
        ("CREATE TABLE django_session (id integer primary key, payload blob)", r#"["id", "payload"]"#),
        (
            "CREATE TABLE django_session (session_key varchar(40) PRIMARY KEY, session_data longtext NOT NULL, \
             expire_date datetime NOT NULL)",
            r#"expire_date is "datetime""#,
        ),
        (
            "CREATE TABLE django_session (session_key varchar(40) PRIMARY KEY, session_data text NOT NULL, \
             expire_date datetime(6) NOT NULL)",
            r#"session_data is "text""#,
        ),
    ] {
        let db = TestDb::create(Engine::MySql).await;
        let mut conn = MySqlConnection::connect(&db.url()).await.unwrap();
        sqlx::raw_sql(ddl).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        let err = MySqlStore::connect(&db.url(), &settings).await.unwrap_err();
        let StoreError::Config(ConfigError::SchemaMismatch(message)) = &err else { panic!("unexpected error {err:?}") };
        assert!(message.contains("django_session") && message.contains(problem), "{message}");
        assert!(message.contains("expire_date datetime(6) NOT NULL"), "{message}");
    }
}

/// Several processes starting at once on an empty database all succeed; the table is created once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_connects_create_the_table_once() {
    let db = TestDb::create(Engine::MySql).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let url = db.url();
        tasks.spawn(async move { MySqlStore::connect(&url, &Settings::with_secret_key("k")).await.map(|_| ()) });
    }
    while let Some(done) = tasks.join_next().await {
        let result = done.unwrap();
        assert!(result.is_ok(), "{result:?}");
    }
}

/// `clear_expired`'s DELETE walks the `expire_date` index: with 20 000 live rows and 10 expired ones the server
/// plans a range scan on `django_session_expire_date_a5c62663` that reads only the expired rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_expired_uses_the_expire_date_index() {
    let h = MySqlHarness::new().await;
    // 0..99999 from five digit tables (no recursive CTE: its depth limit differs between MariaDB and MySQL).
    let numbers = "(SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d AS n FROM digits a, digits b, \
                   digits c, digits e, digits f) AS seq";
    sqlx::raw_sql(&format!(
        "CREATE TABLE digits (d int); INSERT INTO digits VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9); \
         INSERT INTO django_session SELECT CONCAT('live', n), 'x', UTC_TIMESTAMP(6) + INTERVAL 1 DAY FROM {numbers} \
             WHERE n < 20000; \
         INSERT INTO django_session SELECT CONCAT('dead', n), 'x', UTC_TIMESTAMP(6) - INTERVAL 1 DAY FROM {numbers} \
             WHERE n < 10; \
         ANALYZE TABLE django_session"
    ))
    .execute(h.pool())
    .await
    .unwrap();
    let now = PrimitiveDateTime::new(OffsetDateTime::now_utc().date(), OffsetDateTime::now_utc().time());
    let plan = sqlx::query("EXPLAIN DELETE FROM `django_session` WHERE `expire_date` < ?")
        .bind(now)
        .fetch_one(h.pool())
        .await
        .unwrap();
    use sqlx::Row;
    let get = |column: &str| -> String {
        plan.try_get::<Option<String>, _>(column)
            .ok()
            .flatten()
            .or_else(|| plan.try_get::<Option<i64>, _>(column).ok().flatten().map(|n| n.to_string()))
            .or_else(|| plan.try_get::<Option<u64>, _>(column).ok().flatten().map(|n| n.to_string()))
            .unwrap_or_default()
    };
    let summary = format!("type={} key={} rows={} Extra={}", get("type"), get("key"), get("rows"), get("Extra"));
    eprintln!("{summary}");
    assert_eq!(get("type"), "range", "{summary}");
    assert_eq!(get("key"), "django_session_expire_date_a5c62663", "{summary}");
    assert!(get("rows").parse::<u64>().unwrap() <= 20, "{summary}");
    assert_eq!(h.store.clear_expired().await.unwrap(), 10);
}

/// `open_store` accepts `mysql://` and `mariadb://` URLs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_store_accepts_mysql_and_mariadb_urls() {
    let db = TestDb::create(Engine::MySql).await;
    let settings = Settings::with_secret_key("k");
    for url in [db.url(), db.url().replacen("mysql://", "mariadb://", 1)] {
        let store = sessionkit::open_store(&url, &settings).await.unwrap();
        assert_eq!(store.describe(), url);
        let mut s = Session::new(store.clone(), Arc::new(settings.clone()), None);
        s.set("via", url.clone()).await.unwrap();
        s.save().await.unwrap();
        assert!(store.exists(s.key().unwrap()).await.unwrap());
    }
    let err = sessionkit::open_store(&format!("{}/no_such_database_here", server_url()), &settings).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
}

// --- Interop with real Django --------------------------------------------------------------------------------

/// Runs tests/django/db_interop.py against database `name` of the test server.
fn django(python: &PathBuf, name: &str, args: &[&str]) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/django/db_interop.py");
    let server = url::Url::parse(&server_url()).unwrap();
    let port = server.port().unwrap_or(3306).to_string();
    let output = Command::new(python)
        .arg(script)
        .args(args)
        .args(["--engine", "mysql", "--name", name, "--host", server.host_str().unwrap(), "--port", &port])
        .args(["--user", server.username()])
        .output()
        .expect("run python");
    assert!(output.status.success(), "django failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("django printed JSON")
}

/// A Django login session with every JSON type, written in Python's JSON form so numbers compare exactly.
fn sample() -> Map<String, Value> {
    let text = r#"{"_auth_user_id":"42","_auth_user_backend":"django.contrib.auth.backends.ModelBackend",
        "_auth_user_hash":"911256f3eb0dfe8f43c584b52043043c0c75c0e03284145814bd096558e451db",
        "cart":{"tea":2,"cake":1},"name":"b\u00e4r \ud83d\ude00","big":123456789012345678901234567890,
        "f":1e+16,"g":0.1,"one":1.0,"neg":-7,"t":true,"n":null,"list":[1,[2,{"x":"y"}]]}"#;
    serde_json::from_str(text).unwrap()
}

fn naive_utc(text: &str) -> OffsetDateTime {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond]");
    PrimitiveDateTime::parse(text, &format).unwrap().assume_utc()
}

/// Django migrates a database (its own DDL) and sessionkit accepts that table; `SHOW CREATE TABLE` of a
/// Django-made and a sessionkit-made table are identical; then Django writes and sessionkit reads the same data and
/// expiry, and sessionkit writes and Django reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_and_sessionkit_share_db_sessions_both_ways() {
    let Some(python) = sessionkit_testsupport::django_python() else { return };
    let settings = Arc::new(Settings::with_secret_key("interop-secret"));
    let django_db = TestDb::create(Engine::MySql).await;
    django(&python, &django_db.name, &["migrate"]);
    let store = Arc::new(MySqlStore::connect(&django_db.url(), &settings).await.unwrap());
    let ours = MySqlHarness::new().await;
    assert_eq!(show_create_table(store.pool()).await, show_create_table(ours.pool()).await);

    // Django writes, sessionkit reads the same data and the same expire_date, to the microsecond.
    let data = serde_json::to_string(&Value::Object(sample())).unwrap();
    let written = django(&python, &django_db.name, &["write", "--data", &data]);
    let key = SessionKey::parse(written["key"].as_str().unwrap()).unwrap();
    let record = store.load(&key).await.unwrap().expect("sessionkit finds Django's session");
    assert_eq!(record.data, sample());
    assert_eq!(record.data.keys().collect::<Vec<_>>(), sample().keys().collect::<Vec<_>>(), "key order");
    assert_eq!(record.expires_at, naive_utc(written["expire_date"].as_str().unwrap()));
    let expected = OffsetDateTime::now_utc() + Duration::seconds(written["expiry_age"].as_i64().unwrap());
    assert!((record.expires_at - expected).abs() < Duration::seconds(10), "expiry {}", record.expires_at);

    // sessionkit writes (a new session, then a save of Django's), Django's own SessionStore reads it identically.
    let mut session = Session::new(store.clone(), settings.clone(), None);
    session.update(sample()).await.unwrap();
    session.set_expiry(Expiry::Seconds(3600)).await.unwrap();
    session.save().await.unwrap();
    let ours_key = session.key().unwrap().clone();
    let stored = store.load(&ours_key).await.unwrap().unwrap();
    let read = django(&python, &django_db.name, &["read", "--key", ours_key.as_str()]);
    assert_eq!(read["key"].as_str(), Some(ours_key.as_str()), "Django did not find the session");
    let mut expected = sample();
    expected.insert("_session_expiry".into(), Value::from(3600));
    assert_eq!(read["data"], Value::Object(expected));
    assert_eq!(read["expiry_age"].as_i64(), Some(3600));
    assert_eq!(naive_utc(read["expire_date"].as_str().unwrap()), stored.expires_at);

    let mut theirs = Session::new(store.clone(), settings.clone(), Some(key.clone()));
    theirs.set("edited_by", "sessionkit").await.unwrap();
    theirs.save().await.unwrap();
    let read = django(&python, &django_db.name, &["read", "--key", key.as_str()]);
    assert_eq!(read["data"]["edited_by"], "sessionkit");
    assert_eq!(read["expiry_age"].as_i64(), Some(1_209_600));
}
