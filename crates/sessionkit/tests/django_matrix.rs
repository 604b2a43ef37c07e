//! The interop matrix: real Django 4.2 LTS and 5.2 LTS against sessionkit, store by store, in both directions.
//!
//! For every row (a Django session engine and its storage) and every Django version, four cells:
//! - **D→sk**: Django's SessionStore saves data with an absolute expiry; sessionkit loads the same data, the same
//!   `expiry_date`, and the storage expiry Django set (db row / Redis TTL).
//! - **sk→D**: sessionkit saves; Django's own SessionStore reads the same data and expiry.
//! - **D login→sk**: Django's test client logs alice in through `django.contrib.auth`; sessionkit's auth bridge
//!   ([`sessionkit::auth::DjangoAuth`], reading Django's `auth_user` table) returns alice. After Django changes
//!   alice's password, the bridge treats the session as logged out, as Django does.
//! - **sk login→D**: sessionkit logs bob in; Django's `request.user` on a request with that cookie is bob. A
//!   session whose `_auth_user_hash` does not match is anonymous to Django.
//!
//! The table is printed and written to `target/tmp/django-matrix.txt` (scripts/test shows it); any failed cell
//! fails the test. Adding a row is one line in [`ROWS`].
//!
//! Needs `.venv` (Django 5.2, from requirements-test.txt) and `.venv-django42` (Django 4.2, from
//! requirements-django42.txt); scripts/test creates both. `SESSIONKIT_PYTHON` / `SESSIONKIT_PYTHON_DJANGO42`
//! override the interpreters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use sessionkit::auth::{DjangoAuth, SqlUserSource, UserTable, HASH_KEY};
use sessionkit::codec::json::{from_python_json, object_to_python_json};
use sessionkit::expiry::{parse_isoformat, to_isoformat};
use sessionkit::{open_store, Expiry, Session, SessionKey, SessionStore, Settings};
use sessionkit_testsupport::databases::{Engine, TestDatabase};
use sessionkit_testsupport::django::DjangoProcess as Django;
use sessionkit_testsupport::shared_standalone;
use time::{Duration, OffsetDateTime};

const SECRET: &str = "matrix-secret-key";

/// Where Django keeps sessions in a row.
#[derive(Debug, Clone, Copy)]
enum Backend {
    /// `backends.db` on a database.
    Db(Database),
    /// `backends.cache` on Django's own `RedisCache`.
    RedisCache,
    /// `backends.cache` on django-redis, with a compressor (`""` = none; pickle either way).
    DjangoRedis(&'static str),
    /// `backends.cached_db`: `RedisCache` in front of SQLite.
    CachedDb,
    /// `backends.file`.
    File,
    /// `backends.signed_cookies`.
    SignedCookies,
}

#[derive(Debug, Clone, Copy)]
enum Database {
    Sqlite,
    Postgres,
    MariaDb,
}

/// The matrix rows. One line per row.
const ROWS: &[(&str, Backend)] = &[
    ("db on SQLite", Backend::Db(Database::Sqlite)),
    ("db on PostgreSQL", Backend::Db(Database::Postgres)),
    ("db on MariaDB", Backend::Db(Database::MariaDb)),
    ("cache via RedisCache", Backend::RedisCache),
    ("cache via django-redis (pickle)", Backend::DjangoRedis("")),
    ("cache via django-redis (zlib)", Backend::DjangoRedis("zlib")),
    ("cache via django-redis (zstd)", Backend::DjangoRedis("zstd")),
    ("cached_db (RedisCache + SQLite)", Backend::CachedDb),
    ("file", Backend::File),
    ("signed_cookies", Backend::SignedCookies),
];

const CELLS: [&str; 4] = ["D→sk", "sk→D", "D login→sk", "sk login→D"];

/// A session with every JSON type, written in Python's JSON form so values compare exactly after a trip
/// through Python (non-ASCII, astral characters, a 100-bit integer, floats in repr form, NaN and the
/// infinities, nesting).
fn sample() -> Map<String, Value> {
    let text = r#"{"cart":{"tea":2,"cake":1},"name":"b\u00e4r \ud83d\ude00 \u20ac","big":123456789012345678901234567890,
        "f":1e+16,"g":0.1,"one":1.0,"neg":-7,"t":true,"n":null,"list":[1,[2,{"x":"y"}]],"quote":"a\"b\\c",
        "nan":NaN,"inf":[Infinity,-Infinity]}"#;
    from_python_json(text.as_bytes()).unwrap()
}

/// Django's interpreters: (label, python).
fn pythons() -> Vec<(&'static str, PathBuf)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut found = Vec::new();
    let candidates = [
        (
            "4.2",
            std::env::var_os("SESSIONKIT_PYTHON_DJANGO42").map(PathBuf::from),
            root.join(".venv-django42/bin/python"),
        ),
        ("5.2", std::env::var_os("SESSIONKIT_PYTHON").map(PathBuf::from), root.join(".venv/bin/python")),
    ];
    for (label, from_env, default) in candidates {
        match from_env.or_else(|| default.exists().then_some(default)) {
            Some(python) => found.push((label, python)),
            None => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "no Python venv with Django {label}: scripts/test creates it"
                );
                eprintln!("skipped Django {label}: no venv (scripts/test creates .venv and .venv-django42)");
            }
        }
    }
    found
}

/// A row's resources for one Django version: what sessionkit opens, how Django is configured, and what keeps
/// the resources alive.
struct RowEnv {
    store_url: String,
    auth_db_url: String,
    django: Value,
    _keep: Vec<Box<dyn Any>>,
}

fn sqlite_database(dir: &Path, name: &str) -> (String, Value) {
    let path = dir.join(name);
    (format!("sqlite://{}", path.display()), json!({"ENGINE": "django.db.backends.sqlite3", "NAME": path}))
}

fn server_database(db: &TestDatabase, django_engine: &str) -> Value {
    let url = url::Url::parse(&db.url()).unwrap();
    json!({
        "ENGINE": format!("django.db.backends.{django_engine}"),
        "NAME": db.name,
        "USER": url.username(),
        "PASSWORD": url.password().unwrap_or(""),
        "HOST": url.host_str().unwrap_or("127.0.0.1"),
        "PORT": url.port().map(|p| p.to_string()).unwrap_or_default(),
    })
}

async fn prepare(backend: Backend, tag: &str) -> RowEnv {
    let dir = tempfile::tempdir().unwrap();
    let (auth_url, auth_db) = sqlite_database(dir.path(), "auth.sqlite3");
    let redis = shared_standalone().url();
    let prefix = format!("matrix{}{tag}", std::process::id());
    let mut keep: Vec<Box<dyn Any>> = Vec::new();
    let base = json!({"secret_key": SECRET, "database": auth_db, "cache": null, "file_path": null});
    let with = |mut config: Value, pairs: Value| {
        for (k, v) in pairs.as_object().unwrap() {
            config[k] = v.clone();
        }
        config
    };
    let env = match backend {
        Backend::Db(Database::Sqlite) => {
            let (url, database) = sqlite_database(dir.path(), "db.sqlite3");
            RowEnv {
                store_url: url.clone(),
                auth_db_url: url,
                django: with(base, json!({"engine": "db", "database": database})),
                _keep: vec![],
            }
        }
        Backend::Db(database @ (Database::Postgres | Database::MariaDb)) => {
            let (engine, django_engine) = match database {
                Database::Postgres => (Engine::Postgres, "postgresql"),
                _ => (Engine::MySql, "mysql"),
            };
            let db = TestDatabase::create(engine).await;
            let url = db.url();
            let django = with(base, json!({"engine": "db", "database": server_database(&db, django_engine)}));
            keep.push(Box::new(db));
            RowEnv { store_url: url.clone(), auth_db_url: url, django, _keep: vec![] }
        }
        Backend::RedisCache => RowEnv {
            store_url: format!("{redis}?layout=django-cache&client=redis-cache&key_prefix={prefix}"),
            auth_db_url: auth_url,
            django: with(
                base,
                json!({"engine": "cache", "cache": {
                    "BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis, "KEY_PREFIX": prefix}}),
            ),
            _keep: vec![],
        },
        Backend::DjangoRedis(compressor) => {
            let mut url = format!("{redis}?layout=django-cache&client=django-redis&key_prefix={prefix}");
            let mut options = Map::new();
            if !compressor.is_empty() {
                url.push_str(&format!("&compressor={compressor}"));
                let class = match compressor {
                    "zlib" => "zlib.ZlibCompressor",
                    "zstd" => "zstd.ZStdCompressor",
                    "gzip" => "gzip.GzipCompressor",
                    "lzma" => "lzma.LzmaCompressor",
                    "lz4" => "lz4.Lz4Compressor",
                    other => panic!("unknown compressor {other}"),
                };
                options.insert("COMPRESSOR".into(), format!("django_redis.compressors.{class}").into());
            }
            RowEnv {
                store_url: url,
                auth_db_url: auth_url,
                django: with(
                    base,
                    json!({"engine": "cache", "cache": {
                        "BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis, "KEY_PREFIX": prefix,
                        "OPTIONS": options}}),
                ),
                _keep: vec![],
            }
        }
        Backend::CachedDb => {
            let (db_url, database) = sqlite_database(dir.path(), "db.sqlite3");
            RowEnv {
                store_url: format!(
                    "cached_db:{redis}?layout=django-cache&engine=cached_db&client=redis-cache&key_prefix={prefix}|{db_url}"
                ),
                auth_db_url: db_url,
                django: with(
                    base,
                    json!({"engine": "cached_db", "database": database, "cache": {
                        "BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis, "KEY_PREFIX": prefix}}),
                ),
                _keep: vec![],
            }
        }
        Backend::File => {
            let sessions = tempfile::tempdir().unwrap();
            let env = RowEnv {
                store_url: format!("file://{}", sessions.path().display()),
                auth_db_url: auth_url,
                django: with(base, json!({"engine": "file", "file_path": sessions.path()})),
                _keep: vec![],
            };
            keep.push(Box::new(sessions));
            env
        }
        Backend::SignedCookies => RowEnv {
            store_url: "cookie://".to_owned(),
            auth_db_url: auth_url,
            django: with(base, json!({"engine": "signed_cookies"})),
            _keep: vec![],
        },
    };
    keep.push(Box::new(dir));
    RowEnv { _keep: keep, ..env }
}

/// What sessionkit needs for a row, opened after Django created the tables.
struct Sessionkit {
    store: Arc<dyn SessionStore>,
    settings: Arc<Settings>,
    auth: DjangoAuth,
}

impl Sessionkit {
    fn session(&self, key: Option<&str>) -> Session {
        Session::from_cookie(self.store.clone(), self.settings.clone(), key)
    }
}

fn expiry_target() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    now + Duration::days(3) + Duration::seconds(7)
}

fn expected_data(expiry: OffsetDateTime) -> Map<String, Value> {
    let mut data = sample();
    data.insert("_session_expiry".into(), Expiry::At(expiry).to_value().unwrap());
    data
}

fn check_close(what: &str, ours: OffsetDateTime, theirs: Option<&Value>) -> Result<(), String> {
    let Some(text) = theirs.and_then(Value::as_str) else { return Ok(()) };
    let theirs = parse_isoformat(text).ok_or_else(|| format!("{what}: Django gave {text:?}"))?;
    if (ours - theirs).abs() > Duration::seconds(2) {
        return Err(format!("{what}: sessionkit {} vs Django {}", to_isoformat(ours), to_isoformat(theirs)));
    }
    Ok(())
}

fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(message())
    }
}

/// D→sk: Django writes, sessionkit reads the same data and expiry.
async fn django_writes(django: &mut Django, sk: &Sessionkit) -> Result<(), String> {
    let expiry = expiry_target();
    let data_json = object_to_python_json(&sample());
    let written = django.call(json!({"op": "write", "data_json": data_json, "expiry": to_isoformat(expiry)}))?;
    let key = written["key"].as_str().ok_or("no key")?;
    let parsed = SessionKey::parse(key).map_err(|e| e.to_string())?;
    let record = sk.store.load(&parsed).await.map_err(|e| e.to_string())?.ok_or("sessionkit found no session")?;
    let expected = expected_data(expiry);
    ensure(record.data == expected, || format!("data differs: {:?}", record.data))?;
    ensure(record.data.keys().eq(expected.keys().map(String::as_str)), || "key order differs".to_owned())?;
    check_close("storage expiry", record.expires_at, written.get("storage_expiry"))?;
    let mut session = sk.session(Some(key));
    let date = session.expiry_date().await.map_err(|e| e.to_string())?;
    check_close("expiry_date", date, written.get("expiry_date"))?;
    ensure(date == expiry, || format!("expiry_date {date} != {expiry}"))
}

/// sk→D: sessionkit writes, Django's own SessionStore reads the same data and expiry.
async fn sessionkit_writes(django: &mut Django, sk: &Sessionkit) -> Result<(), String> {
    let expiry = expiry_target();
    let mut session = sk.session(None);
    session.update(sample()).await.map_err(|e| e.to_string())?;
    session.set_expiry(Expiry::At(expiry)).await.map_err(|e| e.to_string())?;
    session.save().await.map_err(|e| e.to_string())?;
    let key = session.key().ok_or("no key after save")?.to_string();
    let record = sk.store.load(session.key().unwrap()).await.map_err(|e| e.to_string())?.ok_or("not stored")?;
    let read = django.call(json!({"op": "read", "key": key}))?;
    ensure(read["found"] == json!(true), || "Django found no session".to_owned())?;
    let data_json = read["data_json"].as_str().ok_or("no data_json")?;
    let data = from_python_json(data_json.as_bytes()).map_err(|e| format!("Django's JSON {data_json}: {e}"))?;
    ensure(data == expected_data(expiry), || format!("Django read {data_json}"))?;
    check_close("expiry_date", expiry, read.get("expiry_date"))?;
    ensure(read["expiry_date"].is_string(), || "Django gave no expiry_date".to_owned())?;
    check_close("storage expiry", record.expires_at, read.get("storage_expiry"))
}

/// D login→sk: a login made by django.contrib.auth is the same user to the auth bridge, until the password
/// changes.
async fn django_logs_in(django: &mut Django, sk: &Sessionkit) -> Result<(), String> {
    let login = django.call(json!({"op": "login", "username": "alice", "password": "alice-pw"}))?;
    let key = login["key"].as_str().ok_or("no session cookie")?;
    let mut session = sk.session(Some(key));
    let user = sk.auth.current_user(&mut session).await.map_err(|e| e.to_string())?;
    let user = user.ok_or("the auth bridge found no verified user")?;
    ensure(Some(user.user_id.as_str()) == login["user_id"].as_str(), || format!("bridge says user {}", user.user_id))?;

    django.call(json!({"op": "set_password", "username": "alice", "password": "alice-pw-2"}))?;
    let mut session = sk.session(Some(key));
    let after = sk.auth.current_user(&mut session).await.map_err(|e| e.to_string())?;
    ensure(after.is_none(), || "still logged in after Django changed the password".to_owned())?;
    django.call(json!({"op": "set_password", "username": "alice", "password": "alice-pw"}))?;
    Ok(())
}

/// sk login→D: a login made by sessionkit is `request.user` in Django; a forged hash is anonymous; after a
/// sessionkit logout Django sees no user, and a Django request that writes to the old cookie's session gets a new,
/// anonymous one (as after a logout made by Django).
async fn sessionkit_logs_in(django: &mut Django, sk: &Sessionkit, bob: &str) -> Result<(), String> {
    let mut session = sk.session(None);
    session.set("from", "sessionkit").await.map_err(|e| e.to_string())?;
    sk.auth.log_in(&mut session, bob, None).await.map_err(|e| e.to_string())?;
    session.save().await.map_err(|e| e.to_string())?;
    let key = session.key().ok_or("no key")?.to_string();
    let who = django.call(json!({"op": "whoami", "key": key}))?;
    ensure(who["user_id"].as_str() == Some(bob), || format!("Django's request.user is {}", who["user_id"]))?;

    let mut forged = sk.session(None);
    sk.auth.log_in(&mut forged, bob, None).await.map_err(|e| e.to_string())?;
    forged.set(HASH_KEY, "0".repeat(64)).await.map_err(|e| e.to_string())?;
    forged.save().await.map_err(|e| e.to_string())?;
    let key = forged.key().ok_or("no key")?.to_string();
    let who = django.call(json!({"op": "whoami", "key": key}))?;
    ensure(who["user_id"].is_null(), || format!("Django accepted a forged hash: {}", who["user_id"]))?;

    if sk.store.lister().is_none() {
        return Ok(()); // signed cookies: a logout cannot revoke a copied cookie, in Django as here
    }
    let mut logged_in = sk.session(None);
    sk.auth.log_in(&mut logged_in, bob, None).await.map_err(|e| e.to_string())?;
    logged_in.save().await.map_err(|e| e.to_string())?;
    let key = logged_in.key().ok_or("no key")?.to_string();
    logged_in.flush().await.map_err(|e| e.to_string())?;
    let touched = django.call(json!({"op": "touch", "key": key}))?;
    ensure(touched["status"] == json!(200), || format!("Django answered {} after the logout", touched["status"]))?;
    ensure(touched["user_id"].is_null(), || format!("still logged in for Django: {}", touched["user_id"]))?;
    let new_key = touched["key"].as_str().unwrap_or_default();
    ensure(new_key != key && !new_key.is_empty(), || format!("Django kept the logged-out key: {touched}"))
}

/// Runs the four cells of one row for one Django version.
async fn run_row(python: &Path, backend: Backend, tag: &str) -> (String, Vec<Result<(), String>>) {
    let env = prepare(backend, tag).await;
    let mut django = Django::start(python, &env.django);
    let setup = match django.call(json!({"op": "setup"})) {
        Ok(setup) => setup,
        Err(e) => return (String::new(), vec![Err(format!("setup: {e}")); CELLS.len()]),
    };
    let version = setup["version"].as_str().unwrap_or("?").to_owned();
    let bob = setup["users"]["bob"].as_str().unwrap_or("?").to_owned();
    let settings = Arc::new(Settings::with_secret_key(SECRET));
    let opened = async {
        let store = open_store(&env.store_url, &settings).await.map_err(|e| format!("open store: {e}"))?;
        let users = SqlUserSource::connect(&env.auth_db_url, UserTable::default())
            .await
            .map_err(|e| format!("open auth_user: {e}"))?;
        let auth = DjangoAuth::new(&settings, Arc::new(users)).map_err(|e| e.to_string())?;
        Ok::<_, String>(Sessionkit { store, settings: settings.clone(), auth })
    }
    .await;
    let sk = match opened {
        Ok(sk) => sk,
        Err(e) => return (version, vec![Err(e); CELLS.len()]),
    };
    let results = vec![
        django_writes(&mut django, &sk).await,
        sessionkit_writes(&mut django, &sk).await,
        django_logs_in(&mut django, &sk).await,
        sessionkit_logs_in(&mut django, &sk, &bob).await,
    ];
    drop(django);
    drop(env);
    (version, results)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_interop_matrix() {
    let pythons = pythons();
    if pythons.is_empty() {
        return;
    }
    let mut versions = Vec::new();
    let mut grid: Vec<Vec<Vec<Result<(), String>>>> = vec![Vec::new(); ROWS.len()];
    for (v, (label, python)) in pythons.iter().enumerate() {
        let mut version = label.to_string();
        for (r, (_, backend)) in ROWS.iter().enumerate() {
            let (seen, results) = run_row(python, *backend, &format!("v{v}r{r}")).await;
            if !seen.is_empty() {
                version = seen;
            }
            grid[r].push(results);
        }
        versions.push(version);
    }

    let table = render(&versions, &grid);
    println!("{table}");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("django-matrix.txt");
    std::fs::write(&out, &table).unwrap();
    let failed = grid.iter().flatten().flatten().filter(|r| r.is_err()).count();
    assert_eq!(failed, 0, "{failed} interop cells failed:\n{table}");
}

fn render(versions: &[String], grid: &[Vec<Vec<Result<(), String>>>]) -> String {
    let name_width = ROWS.iter().map(|(name, _)| name.chars().count()).max().unwrap_or(0);
    let cell_width = CELLS.iter().map(|c| c.chars().count()).max().unwrap_or(4);
    let pad = |text: &str, width: usize| format!("{text}{}", " ".repeat(width.saturating_sub(text.chars().count())));
    let mut out = String::from("Django interop matrix (D = Django, sk = sessionkit)\n");
    out.push_str(&pad("", name_width));
    for version in versions {
        let span = CELLS.len() * (cell_width + 1) - 1;
        out.push_str(&format!(" | {}", pad(&format!("Django {version}"), span)));
    }
    out.push('\n');
    out.push_str(&pad("row", name_width));
    for _ in versions {
        out.push_str(" |");
        for cell in CELLS {
            out.push_str(&format!(" {}", pad(cell, cell_width)));
        }
    }
    out.push('\n');
    let mut failures = Vec::new();
    for ((name, _), per_version) in ROWS.iter().zip(grid) {
        out.push_str(&pad(name, name_width));
        for (version, results) in versions.iter().zip(per_version) {
            out.push_str(" |");
            for (cell, result) in CELLS.iter().zip(results) {
                let mark = if result.is_ok() { "pass" } else { "FAIL" };
                out.push_str(&format!(" {}", pad(mark, cell_width)));
                if let Err(reason) = result {
                    failures.push(format!("{name} / Django {version} / {cell}: {reason}"));
                }
            }
        }
        out.push('\n');
    }
    let total: usize = grid.iter().flatten().map(Vec::len).sum();
    out.push_str(&format!("{} of {total} cells pass\n", total - failures.len()));
    for failure in failures {
        out.push_str(&format!("  {failure}\n"));
    }
    out
}
