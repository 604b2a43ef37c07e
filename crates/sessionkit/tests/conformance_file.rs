//! The conformance suite on the `file` store (Django's `file` backend), plus file-specific checks: Django's file
//! names and content, mode 0600, hostile keys, atomic writes, temp-file cleanup, expiry from the mtime, and
//! interop with real Django in both directions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{json, Map, Value};
use sessionkit::conformance::Harness;
use sessionkit::store::file::FileStore;
use sessionkit::store::SignedSessionCodec;
use sessionkit::{
    ChangeSet, ConfigError, Expiry, Session, SessionKey, SessionRecord, SessionStore, Settings, StoreError,
};
use time::{Duration, OffsetDateTime};

struct FileHarness {
    store: Arc<FileStore>,
    settings: Arc<Settings>,
    dir: tempfile::TempDir,
}

impl FileHarness {
    async fn new() -> Self {
        Self::with_settings(Settings::with_secret_key("conformance-secret")).await
    }

    async fn with_settings(settings: Settings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let store = Arc::new(FileStore::open(&url, &settings).await.unwrap());
        FileHarness { store, settings: Arc::new(settings), dir }
    }

    fn path(&self, key: &SessionKey) -> PathBuf {
        self.dir.path().join(format!("sessionid{}", key.as_str()))
    }

    fn names(&self) -> BTreeSet<String> {
        names_in(self.dir.path())
    }
}

#[async_trait::async_trait]
impl Harness for FileHarness {
    fn store(&self) -> Arc<dyn SessionStore> {
        self.store.clone()
    }
    fn settings(&self) -> Arc<Settings> {
        self.settings.clone()
    }
    /// A session file holding a token with a forged signature; its mtime is now, so it is live for
    /// SESSION_COOKIE_AGE (two weeks).
    async fn plant_corrupt(&self, key: &SessionKey) -> bool {
        std::fs::write(self.path(key), "eyJub3QiOiJzaWduZWQifQ:1r31eq:forged-signature").unwrap();
        true
    }
    /// Like Django's file backend, `load` deletes an expired session's file itself, so by the time the suite
    /// calls `clear_expired` the sessions it just loaded are already gone and the count may be 0 (the suite
    /// still checks they are gone). `expiry_follows_the_file_mtime` below checks the count of `clear_expired`
    /// on expired files nobody loaded.
    /// The file's mtime is the session's last write: the idle rule is covered by `file_idle_timeout` below.
    fn keeps_given_expiry(&self) -> bool {
        false
    }

    fn expires_natively(&self) -> bool {
        true
    }
}

sessionkit::conformance_suite!(FileHarness::new());

/// The names in a session directory, without the store's lock files (`.sessionkit-lock-NN`, made by saves and
/// deletes and kept for reuse).
fn names_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with(".sessionkit-lock-"))
        .collect()
}

/// Moves a file's mtime `by` into the past.
fn age_file(path: &Path, by: Duration) {
    let when = SystemTime::now() - std::time::Duration::from_secs(by.whole_seconds().unsigned_abs());
    std::fs::File::options().write(true).open(path).unwrap().set_modified(when).unwrap();
}

fn record(key: &SessionKey, data: Map<String, Value>) -> SessionRecord {
    SessionRecord::new(key.clone(), data, OffsetDateTime::now_utc() + Duration::hours(1))
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn assert_close(actual: OffsetDateTime, expected: OffsetDateTime, what: &str) {
    assert!((actual - expected).abs() <= Duration::seconds(3), "{what}: {actual} is not within 3s of {expected}");
}

/// `DIR/sessionid<key>` holds exactly the signed token Django's `SessionBase.encode` makes: ASCII, no newline,
/// verifiable with the shared secret; nothing else is left in the directory.
#[tokio::test]
async fn file_name_and_content_are_djangos() {
    let h = FileHarness::new().await;
    let mut s = Session::new(h.store(), h.settings(), None);
    s.set("foo", "bar").await.unwrap();
    s.save().await.unwrap();
    let key = s.key().unwrap().clone();
    assert_eq!(h.names(), BTreeSet::from([format!("sessionid{}", key.as_str())]));
    assert_eq!(h.store.path_for(&key), Some(h.path(&key)));

    let content = std::fs::read(h.path(&key)).unwrap();
    assert!(content.is_ascii() && !content.ends_with(b"\n"), "{:?}", String::from_utf8_lossy(&content));
    let token = String::from_utf8(content).unwrap();
    let parts: Vec<&str> = token.split(':').collect();
    assert_eq!(parts.len(), 3, "{token}");
    assert_eq!(parts[0], "eyJmb28iOiJiYXIifQ", "uncompressed base64 of {{\"foo\":\"bar\"}}");
    assert_eq!(parts[2].len(), 43);
    let codec = SignedSessionCodec::new(&h.settings).unwrap();
    assert_eq!(codec.decode(&token).unwrap(), object(json!({"foo": "bar"})));
    // load_raw gives the same bytes and the mtime-based expiry.
    let raw = h.store.load_raw(&key).await.unwrap().unwrap();
    assert_eq!(raw.bytes, token.as_bytes());
    assert_close(raw.expires_at.unwrap(), OffsetDateTime::now_utc() + Duration::seconds(1_209_600), "raw expiry");

    // Another SESSION_COOKIE_NAME is another prefix.
    let h = FileHarness::with_settings(Settings { cookie_name: "sid".into(), ..Settings::with_secret_key("k") }).await;
    let key = SessionKey::generate();
    h.store.create(&record(&key, Map::new())).await.unwrap();
    assert_eq!(h.names(), BTreeSet::from([format!("sid{}", key.as_str())]));
}

/// Session files are private to the owner, after a create and after a save (which writes a new inode).
#[cfg(unix)]
#[tokio::test]
async fn files_are_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let h = FileHarness::new().await;
    let key = SessionKey::generate();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    h.store.create(&record(&key, object(json!({"a": 1})))).await.unwrap();
    assert_eq!(mode(&h.path(&key)), 0o600);
    h.store.save(&record(&key, object(json!({"a": 2}))), &ChangeSet::default().with_last_write_wins()).await.unwrap();
    assert_eq!(mode(&h.path(&key)), 0o600);
}

/// Keys outside `[a-z0-9]` or longer than 64 never reach the filesystem: loads find nothing, writes are
/// refused, and no file appears anywhere, even where a traversal would have led.
#[tokio::test]
async fn hostile_keys_never_touch_the_filesystem() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("sessions");
    std::fs::create_dir(&dir).unwrap();
    // A directory named like the prefix makes "sessionid" + "/../../x" a real path to ROOT/x.
    std::fs::create_dir(dir.join("sessionid")).unwrap();
    let outside = format!("sessionkit-escape-{}", SessionKey::generate().as_str());
    let settings = Settings::with_secret_key("k");
    let store = FileStore::open(&format!("file://{}", dir.display()), &settings).await.unwrap();
    let long = "a".repeat(10_000);
    let hostile = [
        "../xxxxxxxx".to_owned(),
        "/../../escaped".to_owned(),
        format!("/../../../../../../../../tmp/{outside}"),
        "/etc/passwd".to_owned(),
        "abcd\0efgh".to_owned(),
        "\0\0\0\0\0\0\0\0".to_owned(),
        long,
        "ABCDEFGHIJ".to_owned(),
        "abcdefgh_out_x".to_owned(),
        "a".repeat(65),
    ];
    for cookie in &hostile {
        let key = SessionKey::parse(cookie).unwrap();
        let what = &cookie[..cookie.len().min(30)];
        assert!(store.path_for(&key).is_none(), "{what:?}");
        assert!(store.load(&key).await.unwrap().is_none(), "{what:?}");
        assert!(store.load_raw(&key).await.unwrap().is_none(), "{what:?}");
        assert!(!store.exists(&key).await.unwrap(), "{what:?}");
        store.delete(&key).await.unwrap();
        let rec = record(&key, object(json!({"evil": true})));
        assert!(matches!(store.create(&rec).await, Err(StoreError::UnsafeKey)), "{what:?}");
        assert!(matches!(store.save(&rec, &ChangeSet::default()).await, Err(StoreError::SessionVanished)), "{what:?}");
    }
    assert_eq!(store.clear_expired().await.unwrap(), 0);
    assert_eq!(names_in(root.path()), BTreeSet::from(["sessions".to_owned()]));
    assert_eq!(names_in(&dir), BTreeSet::from(["sessionid".to_owned()]));
    assert!(names_in(&dir.join("sessionid")).is_empty());
    assert!(!Path::new("/tmp").join(&outside).exists());
    assert!(!std::env::temp_dir().join(&outside).exists());
}

/// A symlink at a session path is not followed: its target is never read as a session.
#[cfg(unix)]
#[tokio::test]
async fn symlinks_are_not_followed() {
    let h = FileHarness::new().await;
    let elsewhere = tempfile::tempdir().unwrap();
    let codec = SignedSessionCodec::new(&h.settings).unwrap();
    let target = elsewhere.path().join("planted");
    std::fs::write(&target, codec.encode(&object(json!({"_auth_user_id": "1"})), OffsetDateTime::now_utc())).unwrap();
    let key = SessionKey::generate();
    std::os::unix::fs::symlink(&target, h.path(&key)).unwrap();
    assert!(h.store.load(&key).await.unwrap().is_none());
    assert!(h.store.load_raw(&key).await.unwrap().is_none());
    assert!(target.exists(), "the target is left alone");
}

/// Saves go through a temp file and a rename: 200 saves of a large session while another task loads in a loop;
/// the reader always sees one complete version, and no `_out_` file is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn saves_are_atomic_for_concurrent_readers() {
    use rand::Rng;
    let h = FileHarness::new().await;
    let store = h.store.clone();
    let mut rng = rand::thread_rng();
    // Random text compresses poorly, so the file stays large (about 300 kB).
    let blob: String = (0..256 * 1024).map(|_| char::from(rng.gen_range(b'!'..=b'~'))).collect();
    let data = |version: u64| object(json!({"version": version, "blob": blob}));
    let key = SessionKey::generate();
    store.create(&record(&key, data(0))).await.unwrap();
    assert!(std::fs::metadata(h.path(&key)).unwrap().len() > 200_000);

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, key, stop, blob) = (store.clone(), key.clone(), stop.clone(), blob.clone());
        tokio::spawn(async move {
            let (mut reads, mut last) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let loaded = store.load(&key).await.unwrap().expect("the session is always there");
                assert_eq!(loaded.data.len(), 2, "a partial or corrupt file was read");
                assert_eq!(loaded.data.get("blob").and_then(Value::as_str), Some(blob.as_str()));
                let version = loaded.data.get("version").and_then(Value::as_u64).unwrap();
                assert!(version >= last, "versions go forward");
                last = version;
                reads += 1;
            }
            reads
        })
    };
    for version in 1..=200 {
        store.save(&record(&key, data(version)), &ChangeSet::default().with_last_write_wins()).await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.await.unwrap();
    assert!(reads > 0);
    assert_eq!(store.load(&key).await.unwrap().unwrap().data.get("version"), Some(&json!(200)));
    assert_eq!(h.names(), BTreeSet::from([format!("sessionid{}", key.as_str())]), "no temp file is left");
}

/// `clear_expired` removes `<cookie name><key>_out_*` files older than a day, keeps fresh ones (a save in
/// progress) and anything not named like a session file, and counts only sessions.
#[tokio::test]
async fn clear_expired_removes_abandoned_temp_files_only() {
    let h = FileHarness::new().await;
    let live = SessionKey::generate();
    h.store.create(&record(&live, object(json!({"a": 1})))).await.unwrap();
    let key = SessionKey::generate();
    let old_temp = format!("sessionid{}_out_k2j4h5g6", key.as_str());
    let old_temp_django = format!("sessionid{}_out_ab_cd1_9", live.as_str());
    let fresh_temp = format!("sessionid{}_out_z9y8x7w6", key.as_str());
    let strangers =
        ["notes.txt".to_owned(), format!("other{}_out_abc", key.as_str()), "sessionidXY_out_abc".to_owned()];
    for name in [&old_temp, &old_temp_django, &fresh_temp].into_iter().chain(&strangers) {
        std::fs::write(h.dir.path().join(name), "partial").unwrap();
    }
    for name in [&old_temp, &old_temp_django].into_iter().chain(&strangers) {
        age_file(&h.dir.path().join(name), Duration::days(2));
    }
    assert_eq!(h.store.clear_expired().await.unwrap(), 0, "temp files are not counted");
    let expected: BTreeSet<String> =
        [format!("sessionid{}", live.as_str()), fresh_temp].into_iter().chain(strangers).collect();
    assert_eq!(h.names(), expected);
}

/// Without `_session_expiry` a session lives until mtime + SESSION_COOKIE_AGE; an expired file is deleted on
/// load and by `clear_expired`. `_session_expiry` in seconds counts from the mtime; an ISO date is absolute.
#[tokio::test]
async fn expiry_follows_the_file_mtime() {
    let h = FileHarness::new().await;
    let age = h.settings.cookie_age;
    let now = OffsetDateTime::now_utc();

    let key = SessionKey::generate();
    h.store.create(&record(&key, object(json!({"a": 1})))).await.unwrap();
    age_file(&h.path(&key), Duration::seconds(age - 60));
    let loaded = h.store.load(&key).await.unwrap().expect("one minute left");
    assert_close(loaded.expires_at, now + Duration::seconds(60), "mtime + cookie age");
    age_file(&h.path(&key), Duration::seconds(age + 10));
    assert!(h.store.load(&key).await.unwrap().is_none());
    assert!(!h.path(&key).exists(), "an expired file is deleted on load");

    let seconds = SessionKey::generate();
    h.store.create(&record(&seconds, object(json!({"_session_expiry": 300})))).await.unwrap();
    age_file(&h.path(&seconds), Duration::seconds(200));
    let loaded = h.store.load(&seconds).await.unwrap().expect("100 s left");
    assert_close(loaded.expires_at, now + Duration::seconds(100), "mtime + _session_expiry");
    age_file(&h.path(&seconds), Duration::seconds(400));
    assert!(h.store.load(&seconds).await.unwrap().is_none());

    let at = now + Duration::days(1);
    let absolute = SessionKey::generate();
    let data = object(json!({ "_session_expiry": Expiry::At(at).to_value().unwrap() }));
    h.store.create(&record(&absolute, data)).await.unwrap();
    age_file(&h.path(&absolute), Duration::days(60));
    let loaded = h.store.load(&absolute).await.unwrap().expect("an absolute expiry ignores the mtime");
    assert_close(loaded.expires_at, at, "ISO _session_expiry");

    // clear_expired: two expired by mtime, one live, one that is not a session file.
    let mut expired = Vec::new();
    for _ in 0..2 {
        let key = SessionKey::generate();
        h.store.create(&record(&key, object(json!({"old": true})))).await.unwrap();
        age_file(&h.path(&key), Duration::seconds(age + 100));
        expired.push(key);
    }
    std::fs::write(h.dir.path().join("unrelated"), "x").unwrap();
    age_file(&h.dir.path().join("unrelated"), Duration::days(100));
    assert_eq!(h.store.clear_expired().await.unwrap(), 2);
    for key in &expired {
        assert!(!h.path(key).exists());
    }
    assert!(h.path(&absolute).exists() && h.dir.path().join("unrelated").exists());
}

/// A file larger than the codec's 1 MiB token limit is corrupt data: an empty session, not a huge read.
#[tokio::test]
async fn oversized_files_are_corrupt() {
    let h = FileHarness::new().await;
    let key = SessionKey::generate();
    std::fs::write(h.path(&key), vec![b'a'; 2 * 1024 * 1024]).unwrap();
    let loaded = h.store.load(&key).await.unwrap().expect("kept as an empty session");
    assert!(loaded.data.is_empty());
    assert!(matches!(h.store.load_raw(&key).await, Err(StoreError::Corrupt(_))));
    // Non-ASCII content too (Django would crash on it).
    std::fs::write(h.path(&key), "caf\u{e9}:1r31eq:sig").unwrap();
    assert!(h.store.load(&key).await.unwrap().unwrap().data.is_empty());
}

/// An empty file (the name `create` claims before the data is renamed over it) loads as an empty session, as
/// in Django, and expires like any other file.
#[tokio::test]
async fn empty_placeholder_files() {
    let h = FileHarness::new().await;
    let key = SessionKey::generate();
    std::fs::write(h.path(&key), "").unwrap();
    assert!(h.store.load(&key).await.unwrap().unwrap().data.is_empty());
    let err = h.store.create(&record(&key, Map::new())).await.unwrap_err();
    assert!(matches!(err, StoreError::KeyCollision), "{err:?}");
    age_file(&h.path(&key), Duration::seconds(h.settings.cookie_age + 1));
    assert_eq!(h.store.clear_expired().await.unwrap(), 1);
    assert!(h.names().is_empty());
}

/// `file:///dir`, `file://` with SESSION_FILE_PATH or the temp dir, `?fsync=true`; a missing directory, a
/// regular file, a relative path and a missing SECRET_KEY are configuration errors naming the problem.
#[tokio::test]
async fn urls_and_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    let settings = Settings::with_secret_key("k");

    let store = sessionkit::open_store(&format!("file://{path}"), &settings).await.unwrap();
    assert_eq!(store.describe(), format!("file://{path}"));
    let from_setting = Settings { file_path: Some(dir.path().to_owned()), ..settings.clone() };
    let store = sessionkit::open_store("file://", &from_setting).await.unwrap();
    assert_eq!(store.describe(), format!("file://{path}"));
    let store = FileStore::open("file://", &settings).await.unwrap();
    assert_eq!(store.dir(), std::path::absolute(std::env::temp_dir()).unwrap());

    let synced = sessionkit::open_store(&format!("file://{path}?fsync=true"), &settings).await.unwrap();
    let key = SessionKey::generate();
    synced.create(&record(&key, object(json!({"durable": 1})))).await.unwrap();
    let replace = ChangeSet::default().with_last_write_wins();
    synced.save(&record(&key, object(json!({"durable": 2}))), &replace).await.unwrap();
    assert_eq!(synced.load(&key).await.unwrap().unwrap().data.get("durable"), Some(&json!(2)));

    let missing = dir.path().join("missing");
    let err = sessionkit::open_store(&format!("file://{}", missing.display()), &settings).await.unwrap_err();
    let StoreError::Config(ConfigError::InvalidStoreUrl { reason, .. }) = &err else { panic!("{err:?}") };
    assert!(reason.contains(&missing.display().to_string()) && reason.contains("doesn't exist"), "{reason}");

    let err = FileStore::open("file://", &Settings { file_path: Some(missing.clone()), ..settings.clone() })
        .await
        .unwrap_err();
    let StoreError::Config(ConfigError::InvalidSetting { name, value, .. }) = &err else { panic!("{err:?}") };
    assert_eq!((*name, value.as_str()), ("SESSION_FILE_PATH", missing.display().to_string().as_str()));
    assert!(err.to_string().contains("SESSION_FILE_PATH"));

    let regular = dir.path().join("regular-file");
    std::fs::write(&regular, "").unwrap();
    let err = FileStore::open(&format!("file://{}", regular.display()), &settings).await.unwrap_err();
    assert!(err.to_string().contains("regular-file"), "{err}");

    let err = FileStore::open("file://relative/dir", &settings).await.unwrap_err();
    assert!(matches!(err, StoreError::Config(ConfigError::InvalidStoreUrl { .. })), "{err:?}");
    let err = FileStore::open(&format!("file://{path}"), &Settings::default()).await.unwrap_err();
    assert!(matches!(err, StoreError::Config(ConfigError::MissingSecretKey)), "{err:?}");
    let bad_name = Settings { cookie_name: "../sid".into(), ..settings.clone() };
    let err = FileStore::open(&format!("file://{path}"), &bad_name).await.unwrap_err();
    assert!(matches!(err, StoreError::Config(ConfigError::InvalidSetting { name: "SESSION_COOKIE_NAME", .. })));
}

fn django(python: &Path, dir: &Path, args: &[&str]) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/django/file_interop.py");
    let output = Command::new(python).arg(script).arg("--dir").arg(dir).args(args).output().expect("run python");
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

/// Django 5.2's own file backend and FileStore share one directory: what Django writes, sessionkit reads
/// (same data, order and expiry), and what sessionkit writes, Django reads.
#[tokio::test]
async fn django_and_sessionkit_share_session_files_both_ways() {
    let Some(python) = sessionkit_testsupport::django_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let settings = Arc::new(Settings::with_secret_key("interop-secret"));
    let store = Arc::new(FileStore::open(&format!("file://{}", dir.path().display()), &settings).await.unwrap());

    // Django writes, sessionkit reads.
    let data = serde_json::to_string(&Value::Object(sample())).unwrap();
    let written = django(&python, dir.path(), &["write", "--data", &data]);
    let key = SessionKey::parse(written["key"].as_str().unwrap()).unwrap();
    assert!(dir.path().join(format!("sessionid{}", key.as_str())).is_file());
    let record = store.load(&key).await.unwrap().expect("sessionkit finds Django's session");
    assert_eq!(record.data, sample());
    assert_eq!(record.data.keys().collect::<Vec<_>>(), sample().keys().collect::<Vec<_>>(), "key order");
    let age = written["expiry_age"].as_i64().unwrap();
    assert_close(record.expires_at, OffsetDateTime::now_utc() + Duration::seconds(age), "expiry");
    // ... and updates it in place, which Django reads back.
    let mut session = Session::new(store.clone(), settings.clone(), Some(key.clone()));
    session.set("added_by", "sessionkit").await.unwrap();
    session.save().await.unwrap();
    let read = django(&python, dir.path(), &["read", key.as_str()]);
    assert_eq!(read["data"]["added_by"], json!("sessionkit"));
    assert_eq!(read["data"]["big"], sample()["big"]);

    // sessionkit writes, Django reads.
    let mut session = Session::new(store.clone(), settings.clone(), None);
    session.update(sample()).await.unwrap();
    session.save().await.unwrap();
    let key = session.key().unwrap().to_string();
    let read = django(&python, dir.path(), &["read", &key]);
    assert_eq!(read["key"].as_str(), Some(key.as_str()), "Django did not find the session");
    assert_eq!(read["data"], Value::Object(sample()));
    assert_eq!(read["expiry_age"].as_i64(), Some(1_209_600));
    let leftovers: Vec<String> = names_in(dir.path()).into_iter().filter(|n| n.contains("_out_")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
