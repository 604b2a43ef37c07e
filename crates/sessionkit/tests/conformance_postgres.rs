//! The conformance suite on the PostgreSQL `db` store, plus PostgreSQL-specific checks: Django's exact DDL,
//! `timestamp with time zone` storage, refusal of other table shapes, the `expire_date` index in
//! `clear_expired`'s plan, and sessions shared with real Django (psycopg 3) in both directions.
//!
//! Needs a PostgreSQL server at 127.0.0.1:5432 where user `root` may create databases (scripts/test makes sure one
//! runs); `SESSIONKIT_TEST_POSTGRES_URL` points elsewhere (`postgres://USER@HOST:PORT`). Every test creates its own
//! database `sessionkit_test_<pid>_<n>` and drops it when done.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use serde_json::{Map, Value};
use sessionkit::conformance::Harness;
use sessionkit::store::postgres::{PostgresStore, DJANGO_DDL};
use sessionkit::{ConfigError, Expiry, Session, SessionKey, SessionRecord, SessionStore, Settings, StoreError};
use sqlx::postgres::PgPool;
use sqlx::{Connection, PgConnection};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use sessionkit_testsupport::databases::{Engine, TestDatabase as TestDb};

fn server_url() -> String {
    Engine::Postgres.server_url()
}

struct PgHarness {
    store: Arc<PostgresStore>,
    settings: Arc<Settings>,
    // Declared last: dropped after the store.
    _db: TestDb,
}

impl PgHarness {
    async fn new() -> Self {
        let db = TestDb::create(Engine::Postgres).await;
        let settings = Arc::new(Settings::with_secret_key("conformance-secret"));
        let store = Arc::new(PostgresStore::connect(&db.url(), &settings).await.unwrap());
        PgHarness { store, settings, _db: db }
    }

    fn pool(&self) -> &PgPool {
        self.store.pool()
    }
}

#[async_trait::async_trait]
impl Harness for PgHarness {
    fn store(&self) -> Arc<dyn SessionStore> {
        self.store.clone()
    }
    fn settings(&self) -> Arc<Settings> {
        self.settings.clone()
    }
    async fn plant_corrupt(&self, key: &SessionKey) -> bool {
        sqlx::query("INSERT INTO django_session VALUES ($1, 'eyJub3QiOiJzaWduZWQifQ:1r31eq:forged-signature', '2999-01-01 00:00:00+00')")
            .bind(key.as_str())
            .execute(self.pool())
            .await
            .unwrap();
        true
    }
}

sessionkit::conformance_suite!(PgHarness::new());

/// Columns (name, type, not null, default), indexes and constraints of `django_session`, from `pg_catalog`.
async fn catalog(pool: &PgPool) -> (Vec<(String, String, bool, Option<String>)>, Vec<(String, String)>, Vec<String>) {
    let columns = sqlx::query_as(
        "SELECT attname::text, format_type(atttypid, atttypmod), attnotnull, pg_get_expr(d.adbin, d.adrelid) \
         FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE attrelid = 'django_session'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let indexes = sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes WHERE tablename = 'django_session' ORDER BY indexname",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let constraints: Vec<(String,)> = sqlx::query_as(
        "SELECT conname::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE conrelid = 'django_session'::regclass ORDER BY conname",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    (columns, indexes, constraints.into_iter().map(|(c,)| c).collect())
}

/// The table sessionkit creates is the one of Django's `sessions.0001_initial` migration, as printed by
/// `manage.py sqlmigrate sessions 0001` with Django 5.2 on PostgreSQL: column types, the primary key, the
/// `varchar_pattern_ops` index for LIKE and the `expire_date` index, with Django's index names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_djangos_exact_table_and_indexes() {
    assert_eq!(
        DJANGO_DDL,
        [
            r#"CREATE TABLE "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, "session_data" text NOT NULL, "expire_date" timestamp with time zone NOT NULL)"#,
            r#"CREATE INDEX "django_session_session_key_c0390e0f_like" ON "django_session" ("session_key" varchar_pattern_ops)"#,
            r#"CREATE INDEX "django_session_expire_date_a5c62663" ON "django_session" ("expire_date")"#,
        ]
    );
    let h = PgHarness::new().await;
    let (columns, indexes, constraints) = catalog(h.pool()).await;
    let column = |name: &str, ty: &str| (name.to_owned(), ty.to_owned(), true, None);
    assert_eq!(
        columns,
        [
            column("session_key", "character varying(40)"),
            column("session_data", "text"),
            column("expire_date", "timestamp with time zone")
        ]
    );
    let index = |name: &str, def: &str| (name.to_owned(), def.to_owned());
    assert_eq!(
        indexes,
        [
            index(
                "django_session_expire_date_a5c62663",
                "CREATE INDEX django_session_expire_date_a5c62663 ON public.django_session USING btree (expire_date)"
            ),
            index("django_session_pkey", "CREATE UNIQUE INDEX django_session_pkey ON public.django_session USING btree (session_key)"),
            index(
                "django_session_session_key_c0390e0f_like",
                "CREATE INDEX django_session_session_key_c0390e0f_like ON public.django_session USING btree (session_key varchar_pattern_ops)"
            ),
        ]
    );
    assert_eq!(constraints, ["django_session_pkey PRIMARY KEY (session_key)"]);
}

/// `expire_date` is a `timestamp with time zone` holding the exact instant (microseconds), whatever the
/// connection's time zone, and reads back as the same instant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expire_date_is_timestamptz_in_utc() {
    let h = PgHarness::new().await;
    let key = SessionKey::generate();
    // Given in +02:00 with nanoseconds: stored as the UTC instant, cut to microseconds.
    let at = datetime!(2031-05-06 09:08:07.123456789 +02:00);
    let record = SessionRecord::new(key.clone(), Map::new(), at);
    h.store.create(&record).await.unwrap();
    let mut conn = h.pool().acquire().await.unwrap();
    sqlx::query("SET TIME ZONE 'Asia/Kolkata'").execute(&mut *conn).await.unwrap();
    let (ty, utc_text, stored): (String, String, OffsetDateTime) = sqlx::query_as(
        "SELECT pg_typeof(expire_date)::text, to_char(expire_date AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), \
         expire_date FROM django_session WHERE session_key = $1",
    )
    .bind(key.as_str())
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    sqlx::query("RESET TIME ZONE").execute(&mut *conn).await.unwrap();
    drop(conn);
    assert_eq!(ty, "timestamp with time zone");
    assert_eq!(utc_text, "2031-05-06 07:08:07.123456");
    assert_eq!(stored, datetime!(2031-05-06 07:08:07.123456 UTC));
    assert_eq!(h.store.load(&key).await.unwrap().unwrap().expires_at, datetime!(2031-05-06 07:08:07.123456 UTC));
}

/// A `django_session` table of another shape is refused with a message naming the problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_table_of_another_shape() {
    let settings = Settings::with_secret_key("k");
    for (ddl, problem) in [
        ("CREATE TABLE django_session (id integer primary key, payload bytea)", r#"["id", "payload"]"#),
        (
            "CREATE TABLE django_session (session_key varchar(40) PRIMARY KEY, session_data text NOT NULL, \
             expire_date timestamp NOT NULL)",
            r#"expire_date is "timestamp without time zone""#,
        ),
        (
            "CREATE TABLE django_session (session_key varchar(40) PRIMARY KEY, session_data text, \
             expire_date timestamptz NOT NULL)",
            "session_data",
        ),
    ] {
        let db = TestDb::create(Engine::Postgres).await;
        let mut conn = PgConnection::connect(&db.url()).await.unwrap();
        sqlx::query(ddl).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        let err = PostgresStore::connect(&db.url(), &settings).await.unwrap_err();
        let StoreError::Config(ConfigError::SchemaMismatch(message)) = &err else { panic!("unexpected error {err:?}") };
        assert!(message.contains("django_session") && message.contains(problem), "{message}");
        assert!(message.contains("timestamp with time zone NOT NULL"), "{message}");
    }
}

/// Several processes starting at once on an empty database all succeed; the table is created once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_connects_create_the_table_once() {
    let db = TestDb::create(Engine::Postgres).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let url = db.url();
        tasks.spawn(async move { PostgresStore::connect(&url, &Settings::with_secret_key("k")).await.map(|_| ()) });
    }
    while let Some(done) = tasks.join_next().await {
        let result = done.unwrap();
        assert!(result.is_ok(), "{result:?}");
    }
}

/// `clear_expired`'s DELETE walks the `expire_date` index: with 20 000 live rows and 10 expired ones PostgreSQL
/// plans an index scan on `django_session_expire_date_a5c62663` and visits only the expired rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_expired_uses_the_expire_date_index() {
    let h = PgHarness::new().await;
    sqlx::query(
        "INSERT INTO django_session SELECT 'live' || g, 'x', now() + interval '1 day' FROM generate_series(1, 20000) g",
    )
    .execute(h.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO django_session SELECT 'dead' || g, 'x', now() - interval '1 day' FROM generate_series(1, 10) g",
    )
    .execute(h.pool())
    .await
    .unwrap();
    sqlx::query("ANALYZE django_session").execute(h.pool()).await.unwrap();
    let mut tx = h.pool().begin().await.unwrap();
    let plan: Vec<(String,)> = sqlx::query_as(
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) DELETE FROM \"django_session\" WHERE \"expire_date\" < $1",
    )
    .bind(OffsetDateTime::now_utc())
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    let plan: Vec<String> = plan.into_iter().map(|(line,)| line).collect();
    let text = plan.join("\n");
    eprintln!("{text}");
    assert!(text.contains("django_session_expire_date_a5c62663"), "{text}");
    assert!(!text.contains("Seq Scan"), "{text}");
    assert!(text.contains("rows=10 "), "{text}");
    assert_eq!(h.store.clear_expired().await.unwrap(), 10);
}

/// `open_store` accepts `postgres://` and `postgresql://` URLs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_store_accepts_postgres_urls() {
    let db = TestDb::create(Engine::Postgres).await;
    let settings = Settings::with_secret_key("k");
    for url in [db.url(), db.url().replacen("postgres://", "postgresql://", 1)] {
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
    let port = server.port().unwrap_or(5432).to_string();
    let output = Command::new(python)
        .arg(script)
        .args(args)
        .args(["--engine", "postgresql", "--name", name, "--host", server.host_str().unwrap(), "--port", &port])
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
    time::PrimitiveDateTime::parse(text, &format).unwrap().assume_utc()
}

/// Django migrates a database (its own DDL) and sessionkit accepts that table; the catalogs of a Django-made and
/// a sessionkit-made table are identical; then Django writes and sessionkit reads the same data and expiry, and
/// sessionkit writes and Django reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_and_sessionkit_share_db_sessions_both_ways() {
    let Some(python) = sessionkit_testsupport::django_python() else { return };
    let settings = Arc::new(Settings::with_secret_key("interop-secret"));
    let django_db = TestDb::create(Engine::Postgres).await;
    django(&python, &django_db.name, &["migrate"]);
    let store = Arc::new(PostgresStore::connect(&django_db.url(), &settings).await.unwrap());
    let ours = PgHarness::new().await;
    assert_eq!(catalog(store.pool()).await, catalog(ours.pool()).await, "Django's and sessionkit's tables differ");

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
