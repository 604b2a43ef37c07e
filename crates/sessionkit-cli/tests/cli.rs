//! The `sessionkit` binary against real stores: SQLite, PostgreSQL, MariaDB, Redis (every layout, standalone and
//! Cluster, servers started for the test), file, cached_db and cookie; sessions written by real Django; errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use sessionkit::{open_store, Expiry, Session, Settings};
use sessionkit_testsupport::databases::{Engine, TestDatabase};
use sessionkit_testsupport::{cluster_url, shared_cluster, shared_standalone, Standalone};

const SECRET: &str = "cli-test-secret";

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Output {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }
}

/// Runs the binary with SECRET_KEY set (unless `env` overrides it) and checks it never panics.
fn sessionkit(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sessionkit"));
    cmd.args(args).env("SECRET_KEY", SECRET).env_remove("SESSIONKIT_STORE").env_remove("SECRET_KEY_FALLBACKS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run sessionkit");
    let output = Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !output.stderr.contains("panicked")
            && !output.stderr.contains("backtrace")
            && !output.stderr.contains("internal error"),
        "{args:?}: {}",
        output.stderr
    );
    output
}

/// Asserts one line on stderr and exit code `code`; returns the line.
fn one_line_error(out: &Output, code: i32) -> String {
    assert_eq!(out.code, code, "stdout: {} stderr: {}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {:?}", out.stderr);
    assert!(lines[0].starts_with("sessionkit: error: "), "{}", lines[0]);
    lines[0].to_owned()
}

fn unique() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("c{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Writes sessions through the library: users 1, 2, 2 (live) and one expired session. Returns the live keys.
async fn seed(url: &str) -> Vec<String> {
    let settings = Arc::new(Settings::with_secret_key(SECRET));
    let store = open_store(url, &settings).await.unwrap();
    let mut keys = Vec::new();
    for (i, user) in ["1", "2", "2"].iter().enumerate() {
        let mut s = Session::new(store.clone(), settings.clone(), None);
        s.set("_auth_user_id", *user).await.unwrap();
        s.set("n", i).await.unwrap();
        s.save().await.unwrap();
        keys.push(s.key().unwrap().to_string());
    }
    let mut s = Session::new(store.clone(), settings.clone(), None);
    s.set("old", true).await.unwrap();
    s.set_expiry(Expiry::Seconds(-60)).await.unwrap();
    s.save().await.unwrap();
    keys
}

/// Every command on one store.
async fn every_command(url: &str, scratch: &Path) {
    let keys = seed(url).await;
    let store = ["--store", url];
    let with = |args: &[&str]| -> Output { sessionkit(&[&store[..], args].concat(), &[]) };

    let count = with(&["count", "--valid"]);
    assert_eq!((count.code, count.stdout.trim()), (0, "3"), "{url}: {}", count.stderr);
    let all: u64 = with(&["count"]).stdout.trim().parse().unwrap();
    assert!((3..=4).contains(&all), "{url}: count {all}");

    let listed = with(&["list", "--json", "--valid", "--page-size", "2"]).json();
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "{url}: {listed}");
    for key in &keys {
        assert!(sessions.iter().any(|s| s["key"] == json!(key)), "{url}: {key} not listed");
    }
    let users = with(&["list", "--json", "--user", "2"]).json();
    assert_eq!(users["listed"], json!(2), "{url}: {users}");
    let table = with(&["list"]);
    assert!(table.stdout.starts_with("KEY") && table.stdout.contains(&keys[0]), "{url}: {}", table.stdout);

    let shown = with(&["show", &keys[1], "--json"]).json();
    assert_eq!(shown["data"], json!({"_auth_user_id": "2", "n": 1}), "{url}: {shown}");
    assert_eq!(shown["user"], json!("2"));
    assert!(shown["bytes"].as_u64().unwrap() > 0);
    let human = with(&["show", &keys[0]]);
    assert!(human.stdout.contains("user:     1") && human.stdout.contains("\"n\": 0"), "{url}: {}", human.stdout);
    let missing = with(&["show", "nosuchsessionkeyhere0000000000000"]);
    one_line_error(&missing, 3);

    let stats = with(&["stats", "--json"]).json();
    assert_eq!(stats["valid"], json!(3), "{url}: {stats}");
    assert_eq!(stats["logged_in"], json!(3), "{url}: {stats}");
    assert!(stats["bytes_per_session"].as_f64().unwrap() > 0.0);

    let cleared = with(&["clear-expired"]);
    assert_eq!(
        (cleared.code, cleared.stdout.as_str(), cleared.stderr.as_str()),
        (0, "", ""),
        "{url}: quiet under cron"
    );
    assert_eq!(with(&["count"]).stdout.trim(), "3", "{url}: the expired session is gone");

    // Copy out to a fresh SQLite database, twice: the second run copies nothing.
    let target = format!("sqlite://{}", scratch.join(format!("{}.sqlite3", unique())).display());
    let dry = sessionkit(&["migrate", "--from", url, "--to", &target, "--dry-run", "--json"], &[]).json();
    assert_eq!(dry["would_copy"], json!(3), "{url}: {dry}");
    let first = sessionkit(&["migrate", "--from", url, "--to", &target, "--json"], &[]);
    assert_eq!(first.code, 0, "{url}: {}", first.stderr);
    let first = first.json();
    assert_eq!((first["copied"].clone(), first["counts_verified"].clone()), (json!(3), json!(true)), "{url}: {first}");
    let again = sessionkit(&["migrate", "--from", url, "--to", &target, "--json"], &[]).json();
    assert_eq!((again["copied"].clone(), again["already_present"].clone()), (json!(0), json!(3)), "{url}: {again}");
    let copied = sessionkit(&["--store", &target, "show", &keys[2], "--json"], &[]).json();
    assert_eq!(copied["data"], json!({"_auth_user_id": "2", "n": 2}));
    let (source_expiry, copied_expiry) = (shown_expiry(url, &keys[2]), parse_time(&copied["expires_at"]));
    assert!((source_expiry - copied_expiry).abs() < time::Duration::seconds(2), "{url}: expiry kept");

    let doctor = with(&["doctor", "--json"]);
    assert!(doctor.code == 0 || doctor.code == 3, "{url}: {}", doctor.stderr);
    assert!(doctor.json()["findings"].as_array().is_some_and(|f| !f.is_empty()));
}

fn parse_time(value: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(value.as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap()
}

fn shown_expiry(url: &str, key: &str) -> time::OffsetDateTime {
    let shown = sessionkit(&["--store", url, "show", key, "--json"], &[]).json();
    parse_time(&shown["expires_at"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_on_sqlite_file_and_cached_db() {
    let dir = tempfile::tempdir().unwrap();
    every_command(&format!("sqlite://{}", dir.path().join("db.sqlite3").display()), dir.path()).await;
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    every_command(&format!("file://{}", files.display()), dir.path()).await;
    let cached = format!(
        "cached_db:{}?key_prefix={}|sqlite://{}",
        shared_standalone().url(),
        unique(),
        dir.path().join("cached.sqlite3").display()
    );
    every_command(&cached, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_on_postgres_and_mariadb() {
    let dir = tempfile::tempdir().unwrap();
    for engine in [Engine::Postgres, Engine::MySql] {
        let db = TestDatabase::create(engine).await;
        every_command(&db.url(), dir.path()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_on_redis_layouts_standalone_and_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let standalone = shared_standalone().url();
    let cluster = cluster_url(shared_cluster());
    for url in [
        format!("{standalone}?layout=string&prefix={}:", unique()),
        format!("{standalone}?layout=hash&buckets=8&prefix={}:", unique()),
        format!("{standalone}?layout=django-cache&key_prefix={}", unique()),
        format!("{cluster}?layout=string&prefix={}:", unique()),
        format!("{cluster}?layout=hash&buckets=8&prefix={}:", unique()),
    ] {
        every_command(&url, dir.path()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_store_refuses_listing_and_show_decodes_a_cookie() {
    for command in [&["list"][..], &["count"], &["stats"], &["migrate", "--from", "cookie:", "--to", "memory://"]] {
        let out = sessionkit(&[&["--store", "cookie:"][..], command].concat(), &[]);
        let line = one_line_error(&out, 1);
        assert!(line.contains("signed_cookies store keeps sessions in browsers; there is nothing to list"), "{line}");
    }
    let settings = Settings::with_secret_key(SECRET);
    let cookie = sessionkit::store::cookie::CookieStore::new(&settings).unwrap();
    let mut data = serde_json::Map::new();
    data.insert("_auth_user_id".into(), json!("9"));
    let token = cookie.token(&data, time::OffsetDateTime::now_utc());
    let shown = sessionkit(&["--store", "cookie:", "show", &token, "--json"], &[]).json();
    assert_eq!(shown["data"], json!({"_auth_user_id": "9"}), "{shown}");
    assert_eq!(shown["user"], json!("9"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_url_unreachable_store_and_wrong_secret_give_one_line() {
    let line = one_line_error(&sessionkit(&["--store", "mongodb://x", "count"], &[]), 1);
    assert!(line.contains("mongodb"), "{line}");
    let port = sessionkit_testsupport::free_port().unwrap();
    let line = one_line_error(&sessionkit(&["--store", &format!("redis://127.0.0.1:{port}"), "list"], &[]), 1);
    assert!(line.contains("unavailable"), "{line}");
    let line = one_line_error(&sessionkit(&["--store", "redis://127.0.0.1:notaport", "count"], &[]), 1);
    assert!(line.contains("redis"), "{line}");
    let line = one_line_error(&sessionkit(&["count"], &[]), 2);
    assert!(line.contains("--store"), "{line}");

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("db.sqlite3").display());
    let keys = seed(&url).await;
    for command in [&["list"][..], &["show", &keys[0]], &["stats"], &["migrate", "--from", &url, "--to", "memory://"]] {
        let args = [&["--store", &url][..], command].concat();
        let line = one_line_error(&sessionkit(&args, &[("SECRET_KEY", "not-the-secret")]), 1);
        assert!(line.contains("wrong secret"), "{command:?}: {line}");
    }
    // count decodes nothing, so it needs no secret; the commands that decode do.
    let counted = sessionkit(&["--store", &url, "count"], &[("SECRET_KEY", "")]);
    assert_eq!((counted.code, counted.stdout.trim()), (0, "4"), "{}", counted.stderr);
    for command in [&["list"][..], &["show", &keys[0]], &["stats"], &["doctor"]] {
        let args = [&["--store", &url][..], command].concat();
        let line = one_line_error(&sessionkit(&args, &[("SECRET_KEY", "")]), 1);
        assert!(line.contains("SECRET_KEY is empty"), "{command:?}: {line}");
    }

    // The secret file: SECRET_KEY first, fallbacks after; the rotated secret reads the old sessions.
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("new-secret\n{SECRET}\n")).unwrap();
    let file_arg = secret_file.display().to_string();
    let shown =
        sessionkit(&["--store", &url, "--secret-file", &file_arg, "show", &keys[0], "--json"], &[("SECRET_KEY", "x")]);
    assert_eq!(shown.json()["user"], json!("1"), "{}", shown.stderr);
    let missing = sessionkit(&["--store", &url, "--secret-file", "/nonexistent/secret", "count"], &[]);
    assert!(one_line_error(&missing, 1).contains("secret file"));
}

fn django(script_args: &[&str]) -> Option<Value> {
    let python = sessionkit_testsupport::django_python()?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/django/write_session.py");
    let out = Command::new(python).arg(script).args(script_args).output().expect("run python");
    assert!(out.status.success(), "django failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// `show` decodes sessions that real Django wrote: the cache engine through django-redis (pickle, zlib), one
/// holding a pickled `datetime` (named, never executed), the db engine on SQLite, and a pre-3.1 legacy row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_decodes_sessions_written_by_django() {
    let redis = Standalone::start().unwrap();
    let location = redis.url();
    let Some(written) = django(&[
        "cache",
        "--location",
        &location,
        "--compressor",
        "zlib",
        "--data",
        r#"{"_auth_user_id": "5", "cart": [1, 2]}"#,
    ]) else {
        return;
    };
    let key = written["key"].as_str().unwrap();
    // The store URL does not even name the compressor: show recognises zlib by its header.
    let store = format!("{location}?layout=django-cache&client=django-redis");
    let shown = sessionkit(&["--store", &store, "show", key, "--json"], &[]).json();
    assert_eq!(shown["data"], json!({"_auth_user_id": "5", "cart": [1, 2]}), "{shown}");
    assert_eq!(shown["format"], json!("pickle protocol 4 + zlib (django-redis COMPRESSOR)"));
    let expires = shown["expires_at"].as_str().unwrap();
    assert!(!shown["expired"].as_bool().unwrap() && expires.len() >= 20, "{shown}");

    let with_datetime = django(&["cache", "--location", &location, "--datetime", "--data", r#"{"a": 1}"#]).unwrap();
    let key = with_datetime["key"].as_str().unwrap();
    let human = sessionkit(&["--store", &store, "show", key, "--raw"], &[]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(human.stdout.contains("datetime.datetime") && human.stdout.contains("never executes"), "{}", human.stdout);
    assert!(human.stdout.contains("00000000  80 04 95"), "hex dump of the pickle: {}", human.stdout);
    let shown = sessionkit(&["--store", &store, "show", key, "--json"], &[]).json();
    assert_eq!(shown["unsupported_python_type"], json!("datetime.datetime"), "{shown}");

    let stats = sessionkit(&["--store", &store, "stats", "--json"], &[]).json();
    assert_eq!(stats["sessions"], json!(2), "{stats}");
    assert_eq!(stats["encodings"]["pickle protocol 4"], json!(1), "{stats}");

    // Django's db engine on SQLite (Django creates the table), plus a legacy row.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite3");
    let path_arg = path.display().to_string();
    let written = django(&["db", "--path", &path_arg, "--data", r#"{"_auth_user_id": "11", "lang": "fr"}"#]).unwrap();
    let key = written["key"].as_str().unwrap();
    let url = format!("sqlite://{path_arg}");
    let shown = sessionkit(&["--store", &url, "show", key, "--json"], &[]).json();
    assert_eq!(shown["data"], json!({"_auth_user_id": "11", "lang": "fr"}), "{shown}");
    assert_eq!(shown["format"], json!("signed token"));
    let legacy = django(&["legacy", "--path", &path_arg, "--data", r#"{"_auth_user_id": "12"}"#]).unwrap();
    let key = legacy["key"].as_str().unwrap();
    let shown = sessionkit(&["--store", &url, "show", key, "--json"], &[]).json();
    assert_eq!(shown["format"], json!("legacy token (Django < 3.1)"), "{shown}");
    assert_eq!(shown["data"], json!({"_auth_user_id": "12"}), "{shown}");

    // Django's db.sqlite3 -> the Redis hash layout.
    let target = format!("{location}?layout=hash&buckets=4");
    let migrated = sessionkit(&["migrate", "--from", &url, "--to", &target, "--json"], &[]);
    let report = migrated.json();
    // The legacy row cannot be read by the store (legacy reading is off), so it is reported, not copied.
    assert_eq!(report["copied"], json!(1), "{report}");
    assert_eq!(report["failed"], json!(1), "{report}");
    assert_eq!(migrated.code, 3, "sessions left behind give exit code 3");
    assert!(report["problems"][0]["reason"].as_str().unwrap().contains("cannot decode"), "{report}");
    let shown = sessionkit(&["--store", &target, "show", written["key"].as_str().unwrap(), "--json"], &[]).json();
    assert_eq!(shown["data"], json!({"_auth_user_id": "11", "lang": "fr"}), "{shown}");
    drop(redis);
}

/// A copy that meets different data under the same key reports a conflict and keeps the target's data unless
/// --overwrite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_reports_conflicts_and_overwrites_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("sqlite://{}", dir.path().join("a.sqlite3").display());
    let target = format!("{}?layout=string&prefix={}:", shared_standalone().url(), unique());
    let keys = seed(&source).await;
    let settings = Arc::new(Settings::with_secret_key(SECRET));
    let store = open_store(&target, &settings).await.unwrap();
    let record = sessionkit::SessionRecord {
        key: sessionkit::SessionKey::parse(&keys[0]).unwrap(),
        data: serde_json::from_value(json!({"other": "data"})).unwrap(),
        expires_at: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        version: None,
    };
    store.create(&record).await.unwrap();
    let out = sessionkit(&["migrate", "--from", &source, "--to", &target], &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stdout.contains("conflicts (different data in target)  1"), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("not copied: {}", keys[0])), "{}", out.stdout);
    let kept = sessionkit(&["--store", &target, "show", &keys[0], "--json"], &[]).json();
    assert_eq!(kept["data"], json!({"other": "data"}));
    let out = sessionkit(&["migrate", "--from", &source, "--to", &target, "--overwrite", "--json"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["overwritten"], json!(1));
    let replaced = sessionkit(&["--store", &target, "show", &keys[0], "--json"], &[]).json();
    assert_eq!(replaced["data"], json!({"_auth_user_id": "1", "n": 0}));
}

fn finding<'a>(report: &'a Value, check: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == json!(check))
        .unwrap_or_else(|| panic!("no {check} finding: {report}"))
}

/// doctor on a Redis set up to lose sessions: eviction, no persistence, small listpack limits, no HEXPIRE (Redis
/// 7.0), a django-cache prefix mismatch; then the same as a user without CONFIG rights.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_finds_what_loses_sessions_with_and_without_config_rights() {
    let redis = Standalone::start().unwrap();
    for args in [
        &["CONFIG", "SET", "maxmemory", "100mb"][..],
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
        &["CONFIG", "SET", "hash-max-listpack-value", "64"],
        &["SET", ":1:django.contrib.sessions.cacheabcdefgh12345678", "x"],
    ] {
        assert!(redis.server.command(args).unwrap().starts_with('+'), "{args:?}");
    }
    let port = redis.server.port();
    let hash = format!("redis://127.0.0.1:{port}?layout=hash&buckets=4");
    seed(&hash).await;
    let out = sessionkit(&["--store", &hash, "doctor", "--json"], &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let report = out.json();
    assert_eq!(finding(&report, "eviction")["severity"], json!("error"), "{report}");
    assert!(finding(&report, "eviction")["fix"].as_str().unwrap().contains("noeviction"));
    assert_eq!(finding(&report, "persistence")["severity"], json!("error"), "{report}");
    assert_eq!(finding(&report, "HEXPIRE")["severity"], json!("warning"), "{report}");
    assert_eq!(finding(&report, "listpack limits")["severity"], json!("warning"), "{report}");
    assert_eq!(finding(&report, "django-cache prefix")["severity"], json!("info"), "{report}");
    let human = sessionkit(&["--store", &hash, "doctor"], &[]);
    assert!(human.stdout.contains("ERROR    eviction") && human.stdout.contains("why: "), "{}", human.stdout);

    let cache = format!("redis://127.0.0.1:{port}?layout=django-cache&key_prefix=myapp&version=2");
    let report = sessionkit(&["--store", &cache, "doctor", "--json"], &[]).json();
    let prefix = finding(&report, "django-cache prefix");
    assert_eq!(prefix["severity"], json!("error"), "{report}");
    assert!(prefix["fix"].as_str().unwrap().contains("key_prefix=&version=1&engine=cache"), "{prefix}");

    // An ACL user without CONFIG: eviction still found through INFO, persistence judged from INFO.
    let reply = redis.server.command(&["ACL", "SETUSER", "app", "on", ">app-pw", "~*", "+@all", "-config"]).unwrap();
    assert!(reply.starts_with("+OK"), "{reply}");
    let limited = format!("redis://app:app-pw@127.0.0.1:{port}?layout=hash&buckets=4");
    let out = sessionkit(&["--store", &limited, "doctor", "--json"], &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let report = out.json();
    assert_eq!(finding(&report, "config")["severity"], json!("skipped"), "{report}");
    assert_eq!(finding(&report, "eviction")["severity"], json!("error"), "{report}");
    assert_eq!(finding(&report, "persistence")["severity"], json!("warning"), "{report}");
    assert!(!report.to_string().contains("app-pw"), "no password in the report");
    drop(redis);
}

/// Read-only commands create nothing: a mistyped SQLite path is "no such database file" (not a new empty database
/// that Django's `migrate` then trips over), an empty database is "no django_session table".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_commands_create_no_database_file_or_table() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.sqlite3");
    let url = format!("sqlite://{}", typo.display());
    for command in [&["list"][..], &["count"], &["show", "abcdefgh12345678"], &["stats"], &["doctor"]] {
        let args = [&["--store", &url][..], command].concat();
        let line = one_line_error(&sessionkit(&args, &[]), 1);
        assert!(line.contains("no such SQLite database file"), "{command:?}: {line}");
        assert!(!typo.exists(), "{command:?} created {}", typo.display());
    }
    // An empty file is an empty SQLite database: read, never given a table.
    let empty = dir.path().join("empty.sqlite3");
    std::fs::write(&empty, b"").unwrap();
    let url = format!("sqlite://{}", empty.display());
    for command in [&["list"][..], &["count"], &["stats"]] {
        let args = [&["--store", &url][..], command].concat();
        let line = one_line_error(&sessionkit(&args, &[]), 1);
        assert!(line.contains("no django_session table"), "{command:?}: {line}");
    }
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0, "the empty database was written to");
    // count --valid on the file store reads expiries inside the data: that needs the secret.
    let files = tempfile::tempdir().unwrap();
    let file_url = format!("file://{}", files.path().display());
    let line = one_line_error(&sessionkit(&["--store", &file_url, "count", "--valid"], &[("SECRET_KEY", "")]), 1);
    assert!(line.contains("SECRET_KEY is empty"), "{line}");
    let counted = sessionkit(&["--store", &file_url, "count"], &[("SECRET_KEY", "")]);
    assert_eq!((counted.code, counted.stdout.trim()), (0, "0"), "{}", counted.stderr);
    // A command that writes still creates what it needs.
    let fresh = dir.path().join("fresh.sqlite3");
    let out = sessionkit(&["--store", &format!("sqlite://{}", fresh.display()), "clear-expired"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(fresh.exists());
}

/// Unknown store-URL options are refused before anything connects, naming the option meant.
#[test]
fn unknown_store_url_options_are_refused_with_the_known_ones() {
    let port = sessionkit_testsupport::free_port().unwrap();
    for (url, meant) in [
        (format!("redis://127.0.0.1:{port}?layot=hash"), "layout"),
        (format!("redis://127.0.0.1:{port}?layout=hash&bukets=64"), "buckets"),
        ("sqlite:///tmp/x.sqlite3?mod=ro".to_owned(), "mode"),
        (format!("postgres://root@127.0.0.1:{port}/x?sslmod=disable"), "sslmode"),
        (format!("mysql://root@127.0.0.1:{port}/x?charst=utf8mb4"), "charset"),
        ("file:///tmp?fsnyc=1".to_owned(), "fsync"),
        ("memory://?merg=false".to_owned(), "merge"),
    ] {
        let line = one_line_error(&sessionkit(&["--store", &url, "count"], &[]), 1);
        assert!(line.contains(&format!("did you mean \"{meant}\"")), "{url}: {line}");
        assert!(line.contains("knows:"), "{url}: {line}");
    }
}

/// A server that answers every connection like an HTTP server, for the connection-error tests.
fn http_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut buf = [0u8; 1024];
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                // Like a real server: answer once a request line has arrived.
                let mut seen = Vec::new();
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    if seen.windows(2).any(|w| w == b"\r\n") {
                        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
                        break;
                    }
                }
            });
        }
    });
    port
}

/// Connection errors say what is wrong, at once: a refused port, a port that speaks HTTP, a plaintext Redis
/// behind a `rediss://` URL; no parse errors, no pool timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_name_the_cause_without_waiting_for_a_timeout() {
    let http = http_server();
    let refused = sessionkit_testsupport::free_port().unwrap();
    let plain_redis = shared_standalone().server.port();
    for (url, cause) in [
        (format!("redis://127.0.0.1:{http}"), "does not speak the Redis protocol: it answered like an HTTP server"),
        (format!("rediss://127.0.0.1:{plain_redis}"), "TLS handshake failed: a plaintext Redis server answers"),
        (format!("postgres://root@127.0.0.1:{refused}/x"), "Connection refused"),
        (format!("mysql://root@127.0.0.1:{refused}/x"), "Connection refused"),
        (
            format!("postgres://root@127.0.0.1:{http}/x"),
            "does not speak the PostgreSQL protocol: it answered like an HTTP server",
        ),
        (
            format!("postgres://root@127.0.0.1:{plain_redis}/x"),
            "does not speak the PostgreSQL protocol: a Redis server",
        ),
        // scripts/test makes sure PostgreSQL answers on 5432.
        ("redis://127.0.0.1:5432".to_owned(), "does not speak the Redis protocol: it closed the connection or stayed"),
    ] {
        let started = std::time::Instant::now();
        let line = one_line_error(&sessionkit(&["--store", &url, "count"], &[]), 1);
        let took = started.elapsed();
        assert!(line.contains(cause), "{url}: {line}");
        // The pools and clients would wait 10 s; the cause is known within a second or so (the probe).
        assert!(took < std::time::Duration::from_secs(8), "{url} took {took:?}: {line}");
    }
}

/// The layout record: sessions written with one shape are never read with another. A mismatch is refused (exit
/// 3, and doctor reports it), adopt_layout=true rewrites the record, doctor finds other-layout keys and buckets
/// beyond the configured count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_mismatch_is_refused_and_doctor_reports_it() {
    let base = shared_standalone().url();
    let prefix = format!("{}:", unique());
    let written = format!("{base}?layout=hash&buckets=64&prefix={prefix}");
    seed(&written).await;
    let recorded = shared_standalone().server.command(&["GET", &format!("{prefix}layout")]).unwrap();
    assert!(recorded.contains("layout=hash;buckets=64;hashed_keys=false;format=1"), "{recorded}");
    assert_eq!(sessionkit(&["--store", &written, "count", "--valid"], &[]).stdout.trim(), "3");

    let wrong = format!("{base}?layout=hash&buckets=1024&prefix={prefix}");
    let line = one_line_error(&sessionkit(&["--store", &wrong, "count"], &[]), 3);
    assert!(line.contains("written with layout=hash&buckets=64") && line.contains("buckets=1024"), "{line}");
    let err = sessionkit::open_store(&wrong, &Settings::with_secret_key(SECRET)).await.unwrap_err();
    assert!(matches!(err, sessionkit::StoreError::Config(sessionkit::ConfigError::LayoutMismatch(_))), "{err}");
    let report = sessionkit(&["--store", &wrong, "doctor", "--json"], &[]);
    assert_eq!(report.code, 3, "{}", report.stderr);
    let record = finding(&report.json(), "layout record").clone();
    assert_eq!(record["severity"], json!("error"), "{record}");
    let string = format!("{base}?layout=string&prefix={prefix}");
    let line = one_line_error(&sessionkit(&["--store", &string, "list"], &[]), 3);
    assert!(line.contains("written with layout=hash&buckets=64"), "{line}");

    let report = sessionkit(&["--store", &written, "doctor", "--json"], &[]).json();
    assert_eq!(finding(&report, "layout record")["severity"], json!("ok"), "{report}");

    // adopt_layout=true (a store that writes) replaces the record; the old sessions are then out of reach.
    let adopt = format!("{wrong}&adopt_layout=true");
    sessionkit::open_store(&adopt, &Settings::with_secret_key(SECRET)).await.unwrap();
    let recorded = shared_standalone().server.command(&["GET", &format!("{prefix}layout")]).unwrap();
    assert!(recorded.contains("buckets=1024"), "{recorded}");
    let report = sessionkit(&["--store", &wrong, "doctor", "--json"], &[]).json();
    assert_eq!(finding(&report, "layout record")["severity"], json!("ok"), "{report}");

    // Data from before the record existed: 1024 buckets written, no record, a store with 4 buckets. An
    // application opening it does not enshrine its wrong shape in a record; doctor finds the extra buckets.
    let prefix = format!("{}:", unique());
    seed(&format!("{base}?layout=hash&buckets=1024&prefix={prefix}")).await;
    shared_standalone().server.command(&["DEL", &format!("{prefix}layout")]).unwrap();
    // A real deployment has sessions in every bucket; four test sessions may all land past h:19 (the first keys
    // the evidence probe looks at), so one bucket is filled by hand.
    shared_standalone().server.command(&["HSET", &format!("{prefix}h:5"), "field", "value"]).unwrap();
    let few = format!("{base}?layout=hash&buckets=4&prefix={prefix}");
    sessionkit::open_store(&few, &Settings::with_secret_key(SECRET)).await.unwrap();
    let string = format!("{base}?layout=string&prefix={prefix}");
    sessionkit::open_store(&string, &Settings::with_secret_key(SECRET)).await.unwrap();
    let recorded = shared_standalone().server.command(&["EXISTS", &format!("{prefix}layout")]).unwrap();
    assert!(recorded.contains('0'), "a store recorded its shape over data of another: {recorded}");
    let report = sessionkit(&["--store", &few, "doctor", "--json"], &[]).json();
    assert_eq!(finding(&report, "layout record")["severity"], json!("info"), "{report}");
    assert_eq!(finding(&report, "bucket count")["severity"], json!("error"), "{report}");
    let read_only = shared_standalone().server.command(&["EXISTS", &format!("{prefix}layout")]).unwrap();
    assert!(read_only.contains('0'), "doctor wrote a layout record: {read_only}");

    // A Redis user without access to the record's key: the store works unchecked, and doctor says so.
    let user = unique();
    let acl = ["ACL", "SETUSER", &user, "on", ">pw", "~*:s:*", "~*:h:*", "~*:u:*", "+@all"];
    assert!(shared_standalone().server.command(&acl).unwrap().starts_with("+OK"));
    let port = shared_standalone().server.port();
    let limited = format!("redis://{user}:pw@127.0.0.1:{port}?layout=hash&buckets=4&prefix={}:", unique());
    let opened = sessionkit::store::redis::RedisStore::connect(&limited).await.unwrap();
    assert!(
        matches!(opened.layout_record(), sessionkit::store::redis::layout_record::RecordCheck::Unchecked { .. }),
        "{:?}",
        opened.layout_record()
    );
    let report = sessionkit(&["--store", &limited, "doctor", "--json"], &[]).json();
    let record = finding(&report, "layout record");
    assert_eq!(record["severity"], json!("warning"), "{report}");
    assert!(record["found"].as_str().unwrap().contains("no permissions"), "{record}");

    // Keys of the other layout under the same prefix.
    let prefix = format!("{}:", unique());
    seed(&format!("{base}?layout=string&prefix={prefix}")).await;
    shared_standalone().server.command(&["DEL", &format!("{prefix}layout")]).unwrap();
    let hash = format!("{base}?layout=hash&buckets=4&prefix={prefix}");
    let report = sessionkit(&["--store", &hash, "doctor", "--json"], &[]).json();
    let other = finding(&report, "other layout");
    assert_eq!(other["severity"], json!("warning"), "{report}");
    assert!(other["found"].as_str().unwrap().contains("string layout"), "{other}");
}

/// doctor grades a cached_db cache as a cache: no persistence and eviction lose no session there (the database
/// holds them), so they are not errors; the same server holding the sessions itself gets the errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_grades_a_cached_db_cache_by_its_role() {
    let redis = Standalone::start().unwrap();
    for args in [&["CONFIG", "SET", "maxmemory", "100mb"][..], &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]] {
        assert!(redis.server.command(args).unwrap().starts_with('+'), "{args:?}");
    }
    let port = redis.server.port();
    let primary = sessionkit(&["--store", &format!("redis://127.0.0.1:{port}"), "doctor", "--json"], &[]).json();
    assert_eq!(finding(&primary, "persistence")["severity"], json!("error"), "{primary}");
    assert_eq!(finding(&primary, "eviction")["severity"], json!("error"), "{primary}");

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("db.sqlite3").display());
    seed(&db).await;
    for url in [
        format!("redis://127.0.0.1:{port}?layout=django-cache&engine=cached_db"),
        format!("cached_db:redis://127.0.0.1:{port}|{db}"),
    ] {
        let out = sessionkit(&["--store", &url, "doctor", "--json"], &[]);
        let report = out.json();
        assert_eq!(finding(&report, "role")["severity"], json!("info"), "{url}: {report}");
        for check in ["persistence", "eviction"] {
            assert_eq!(finding(&report, check)["severity"], json!("ok"), "{url}: {report}");
        }
        assert_eq!(out.code, 0, "{url}: {report}");
    }
    drop(redis);
}

/// doctor says which expiry path the hash layout chose: per-field expiry on servers that have it (Valkey 9,
/// Redis 8, Redis 7.4, installed by scripts/test), the sweeper on Debian's Redis 7.0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_says_which_expiry_path_the_hash_layout_uses() {
    for (binary, server) in sessionkit_testsupport::shared_field_ttl_servers() {
        let url = format!("{}?layout=hash&buckets=4&prefix={}:", server.url(), unique());
        let report = sessionkit(&["--store", &url, "doctor", "--json"], &[]).json();
        let hexpire = finding(&report, "HEXPIRE");
        assert_eq!(hexpire["severity"], json!("ok"), "{}: {report}", binary.name);
        assert!(hexpire["found"].as_str().unwrap().contains("no sweeper needed"), "{}: {hexpire}", binary.name);
    }
    let url = format!("{}?layout=hash&buckets=4&prefix={}:", shared_standalone().url(), unique());
    let report = sessionkit(&["--store", &url, "doctor", "--json"], &[]).json();
    let hexpire = finding(&report, "HEXPIRE");
    assert_eq!(hexpire["severity"], json!("warning"), "{report}");
    assert!(hexpire["found"].as_str().unwrap().contains("uses the sweeper"), "{hexpire}");
}

/// `list --expired` applies the lifetime rules of the settings as a request would: a session past
/// `SESSION_ABSOLUTE_TIMEOUT` (by the `_sessionkit_created` it carries) is listed as expired although the store
/// still holds it as live, and is not among the valid ones.
#[tokio::test]
async fn list_expired_follows_the_absolute_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.sqlite3").display());
    let settings = Arc::new(Settings::with_secret_key(SECRET));
    let store = open_store(&url, &settings).await.unwrap();
    let two_hours_ago = time::OffsetDateTime::now_utc().unix_timestamp() - 7200;
    let mut old = Session::new(store.clone(), settings.clone(), None);
    old.set(sessionkit::lifetime::CREATED_KEY, two_hours_ago).await.unwrap();
    old.save().await.unwrap();
    let mut fresh = Session::new(store.clone(), settings.clone(), None);
    fresh.set("n", 1).await.unwrap();
    fresh.save().await.unwrap();
    let (old, fresh) = (old.key().unwrap().to_string(), fresh.key().unwrap().to_string());

    let rules = [("SESSION_ABSOLUTE_TIMEOUT", "3600")];
    let expired = sessionkit(&["--store", &url, "list", "--expired", "--json"], &rules).json();
    assert_eq!(expired["listed"], json!(1), "{expired}");
    assert_eq!(expired["sessions"][0]["key"], json!(old));
    assert_eq!(expired["sessions"][0]["expired_by"], json!("absolute"));
    let valid = sessionkit(&["--store", &url, "list", "--valid", "--json"], &rules).json();
    assert_eq!(valid["listed"], json!(1), "{valid}");
    assert_eq!(valid["sessions"][0]["key"], json!(fresh));
    let table = sessionkit(&["--store", &url, "list"], &rules);
    assert!(table.stdout.contains("expired (absolute timeout)"), "{}", table.stdout);
    // Without the rule, both are live.
    let without = sessionkit(&["--store", &url, "list", "--valid", "--json"], &[]).json();
    assert_eq!(without["listed"], json!(2), "{without}");
}

/// `user export ID` and `user erase ID [--dry-run]` on one store seeded by [`seed`] (user 2 has two live sessions,
/// user 1 one): `source` is the path the store takes (`index` or `scan`).
async fn user_export_and_erase(url: &str, source: &str) {
    let keys = seed(url).await;
    let with = |args: &[&str]| -> Output { sessionkit(&[&["--store", url][..], args].concat(), &[]) };
    let id = |key: &String| sessionkit::store::user_index::session_id(&sessionkit::SessionKey::parse(key).unwrap());
    let mut expected = vec![id(&keys[1]), id(&keys[2])];
    expected.sort();

    let export = with(&["user", "export", "2"]);
    assert_eq!(export.code, 0, "{url}: {}", export.stderr);
    for key in &keys {
        assert!(!export.stdout.contains(key.as_str()), "{url}: a session key in the export");
    }
    let doc = export.json();
    assert_eq!((doc["user_id"].clone(), doc["source"].clone()), (json!("2"), json!(source)), "{url}: {doc}");
    let sessions = doc["sessions"].as_array().unwrap();
    let mut ids: Vec<String> = sessions.iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    assert_eq!(ids, expected, "{url}: {doc}");
    let mut ns: Vec<i64> = sessions.iter().map(|s| s["data"]["n"].as_i64().unwrap()).collect();
    ns.sort();
    assert_eq!(ns, [1, 2], "{url}: {doc}");
    for s in sessions {
        parse_time(&s["expires_at"]);
        for field in ["created", "last_seen", "user_agent", "ip", "decode_error"] {
            assert!(s.get(field).is_some(), "{url}: {field} missing from {s}");
        }
    }
    assert_eq!(doc["scanned"].is_u64(), source == "scan", "{url}: {doc}");

    let dry = with(&["user", "erase", "2", "--dry-run"]);
    assert_eq!(dry.code, 0, "{url}: {}", dry.stderr);
    assert!(dry.stdout.starts_with("dry run: would delete 2 session(s) of user 2 in "), "{url}: {}", dry.stdout);
    assert!(expected.iter().all(|id| dry.stdout.contains(id.as_str())), "{url}: {}", dry.stdout);
    assert_eq!(with(&["count", "--valid"]).stdout.trim(), "3", "{url}: a dry run deletes nothing");

    let erased = with(&["user", "erase", "2", "--json"]);
    assert_eq!(erased.code, 0, "{url}: {}", erased.stderr);
    let erased = erased.json();
    assert_eq!((erased["count"].clone(), erased["dry_run"].clone()), (json!(2), json!(false)), "{url}: {erased}");
    assert_eq!(erased["source"], json!(source));
    for key in &keys[1..] {
        one_line_error(&with(&["show", key]), 3);
    }
    assert_eq!(with(&["count", "--valid"]).stdout.trim(), "1", "{url}: user 1 keeps their session");
    assert_eq!(with(&["user", "export", "2"]).json()["sessions"], json!([]), "{url}");
    let again = with(&["user", "erase", "2"]);
    assert!(again.stdout.starts_with("deleted 0 session(s) of user 2"), "{url}: {}", again.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_export_and_erase_on_redis_cached_db_and_stores_without_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let standalone = shared_standalone().url();
    let cluster = cluster_url(shared_cluster());
    for base in [&standalone, &cluster] {
        for options in [
            "layout=string",
            "layout=hash&buckets=8",
            "layout=string&hashed_keys=true",
            "layout=hash&buckets=8&hashed_keys=true",
            "layout=django-cache",
        ] {
            let p = unique();
            let url = if options == "layout=django-cache" {
                format!("{base}?{options}&prefix={p}:&key_prefix={p}")
            } else {
                format!("{base}?{options}&prefix={p}:")
            };
            user_export_and_erase(&url, "index").await;
        }
    }
    let cached = format!(
        "cached_db:{standalone}?prefix={p}:&key_prefix={p}|sqlite://{}",
        dir.path().join("cached.sqlite3").display(),
        p = unique()
    );
    user_export_and_erase(&cached, "index").await;
    let sqlite = format!("sqlite://{}", dir.path().join("db.sqlite3").display());
    user_export_and_erase(&sqlite, "scan").await;
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    user_export_and_erase(&format!("file://{}", files.display()), "scan").await;
    // --scan walks a Redis store even though it has an index.
    let url = format!("{standalone}?layout=string&prefix={}:", unique());
    seed(&url).await;
    let scanned = sessionkit(&["--store", &url, "user", "export", "2", "--scan"], &[]).json();
    assert_eq!((scanned["source"].clone(), scanned["sessions"].as_array().unwrap().len()), (json!("scan"), 2));

    // A wrong secret, the signed-cookie store, bad user ids and limits: one line each.
    let line = one_line_error(&sessionkit(&["--store", &sqlite, "user", "export", "1"], &[("SECRET_KEY", "other")]), 1);
    assert!(line.contains("wrong secret"), "{line}");
    let line = one_line_error(&sessionkit(&["--store", "cookie:", "user", "erase", "1"], &[]), 1);
    assert!(line.contains("nothing on the server"), "{line}");
    let line = one_line_error(&sessionkit(&["--store", &sqlite, "user", "export", " "], &[]), 2);
    assert!(line.contains("user id is empty"), "{line}");
    let long = "9".repeat(300);
    let line = one_line_error(&sessionkit(&["--store", &sqlite, "user", "erase", &long], &[]), 2);
    assert!(line.contains("at most 256 characters"), "{line}");
    let out = sessionkit(&["--store", &sqlite, "user", "export", "1", "--scan-limit", "0"], &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}
