//! Per-user export and erasure (`store::user_data`) against real stores: Redis (every layout, keys hashed at
//! rest, standalone and Cluster) through its index, cached_db (Redis + SQLite) through both halves, and the
//! bounded scan of stores without an index (SQLite, file, Redis with `user_index=false`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use sessionkit::store::user_data::{erase_user, export_user, Source, UserDataError, UserDataOptions};
use sessionkit::store::user_index::{session_id, CLIENT_IP_KEY, USER_AGENT_KEY};
use sessionkit::{open_store, Session, SessionKey, SessionStore, Settings};
use sessionkit_testsupport::{cluster_url, shared_cluster, shared_standalone};

const SECRET: &str = "user-data-tests";

fn settings() -> Arc<Settings> {
    Arc::new(Settings::with_secret_key(SECRET))
}

fn unique() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("u{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A logged-in session of `user` with a user agent, an IP, the password-derived hash and some data.
async fn login(store: &Arc<dyn SessionStore>, user: &str, agent: &str) -> SessionKey {
    let mut s = Session::new(store.clone(), settings(), None);
    s.set("_auth_user_id", user).await.unwrap();
    s.set("_auth_user_backend", "django.contrib.auth.backends.ModelBackend").await.unwrap();
    s.set("_auth_user_hash", "0123456789abcdef").await.unwrap();
    s.set(USER_AGENT_KEY, agent).await.unwrap();
    s.set(CLIENT_IP_KEY, "192.0.2.7").await.unwrap();
    s.set("cart", json!([agent, 3])).await.unwrap();
    s.save().await.unwrap();
    s.key().cloned().unwrap()
}

/// An anonymous session (no user).
async fn anonymous(store: &Arc<dyn SessionStore>) -> SessionKey {
    let mut s = Session::new(store.clone(), settings(), None);
    s.set("theme", "dark").await.unwrap();
    s.save().await.unwrap();
    s.key().cloned().unwrap()
}

fn ids(keys: &[&SessionKey]) -> Vec<String> {
    let mut ids: Vec<String> = keys.iter().map(|k| session_id(k)).collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// Export and erase of user "42" (two devices) next to user "7" and an anonymous session; `source` is the path
/// the store should take. Returns nothing; asserts everything.
async fn export_and_erase(store: Arc<dyn SessionStore>, source: Source, options: UserDataOptions) {
    let phone = login(&store, "42", "phone").await;
    let laptop = login(&store, "42", "laptop").await;
    let other = login(&store, "7", "desktop").await;
    let anon = anonymous(&store).await;
    let what = store.describe();

    let export = export_user(&store, "42", options).await.unwrap();
    assert_eq!(export.source, source, "{what}");
    assert!(export.complete, "{what}");
    assert_eq!(sorted(export.sessions.iter().map(|s| s.id.clone()).collect()), ids(&[&phone, &laptop]), "{what}");
    let doc = export.to_json();
    let text = doc.to_string();
    for key in [&phone, &laptop, &other, &anon] {
        assert!(!text.contains(key.as_str()), "{what}: a session key leaked into the export: {text}");
    }
    assert!(!text.contains("0123456789abcdef"), "{what}: _auth_user_hash exported");
    assert_eq!(doc["user_id"], json!("42"));
    assert_eq!(doc["source"], json!(source.as_str()));
    assert_eq!(doc["omitted_keys"], json!(["_auth_user_hash"]));
    let mut agents = Vec::new();
    for session in doc["sessions"].as_array().unwrap() {
        let data = &session["data"];
        assert_eq!(data["_auth_user_id"], json!("42"), "{what}: {session}");
        assert_eq!(data["cart"][1], json!(3), "{what}: {session}");
        assert!(data.get("_auth_user_hash").is_none(), "{what}");
        assert_eq!(session["ip"], json!("192.0.2.7"), "{what}");
        assert_eq!(session["decode_error"], Value::Null);
        agents.push(session["user_agent"].as_str().unwrap().to_owned());
        let expires = time::OffsetDateTime::parse(
            session["expires_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let left = expires - time::OffsetDateTime::now_utc();
        assert!(left > time::Duration::days(13) && left <= time::Duration::days(14), "{what}: {left}");
        // The index records when a session was created and last seen; a scan cannot know.
        assert_eq!(session["created"].is_string(), source == Source::Index, "{what}: {session}");
        assert_eq!(session["last_seen"].is_string(), source == Source::Index, "{what}: {session}");
    }
    agents.sort();
    assert_eq!(agents, ["laptop", "phone"], "{what}");
    if source == Source::Scan {
        assert!(export.scanned.unwrap() >= 4, "{what}: scanned {:?}", export.scanned);
    } else {
        assert_eq!(export.scanned, None);
    }

    // A dry run names both sessions and deletes nothing.
    let dry = erase_user(&store, "42", true, options).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(sorted(dry.session_ids.clone()), ids(&[&phone, &laptop]), "{what}");
    assert!(store.load(&phone).await.unwrap().is_some() && store.load(&laptop).await.unwrap().is_some());

    let erased = erase_user(&store, "42", false, options).await.unwrap();
    assert_eq!(erased.source, source);
    assert_eq!(sorted(erased.session_ids.clone()), ids(&[&phone, &laptop]), "{what}");
    assert_eq!(erased.to_json()["count"], json!(2));
    assert!(store.load(&phone).await.unwrap().is_none(), "{what}");
    assert!(store.load(&laptop).await.unwrap().is_none(), "{what}");
    // Another user's and anonymous sessions are untouched.
    assert!(store.load(&other).await.unwrap().is_some(), "{what}");
    assert!(store.load(&anon).await.unwrap().is_some(), "{what}");
    if let Some(index) = store.user_index() {
        assert!(index.list("42").await.unwrap().is_empty(), "{what}");
        assert_eq!(index.list("7").await.unwrap().len(), 1, "{what}");
    }
    assert!(export_user(&store, "42", options).await.unwrap().sessions.is_empty(), "{what}");
    assert!(erase_user(&store, "42", false, options).await.unwrap().session_ids.is_empty(), "{what}");
}

async fn redis(url: &str) -> Arc<dyn SessionStore> {
    open_store(url, &settings()).await.unwrap()
}

/// Every Redis layout, with keys hashed at rest too, standalone and Cluster: through the index, and the index
/// keys are gone afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_exports_and_erases_through_its_index_on_every_layout() {
    let standalone = shared_standalone();
    let cluster = cluster_url(shared_cluster());
    let mut urls = Vec::new();
    for options in [
        "layout=string",
        "layout=hash&buckets=8",
        "layout=string&hashed_keys=true",
        "layout=hash&buckets=8&hashed_keys=true",
    ] {
        urls.push((format!("{}?prefix={}:&{options}", standalone.url(), unique()), true));
        urls.push((format!("{cluster}?prefix={}:&{options}", unique()), false));
    }
    let django = format!("layout=django-cache&key_prefix={}", unique());
    urls.push((format!("{}?prefix={}:&{django}", standalone.url(), unique()), true));
    urls.push((format!("{cluster}?prefix={}:&{django}", unique()), false));
    for (url, is_standalone) in urls {
        export_and_erase(redis(&url).await, Source::Index, UserDataOptions::default()).await;
        if is_standalone {
            // Both index keys of the user are deleted, not just emptied.
            let prefix = url.split("prefix=").nth(1).unwrap().split('&').next().unwrap();
            let index = format!("{prefix}u:{{42}}");
            let exists = standalone.server.command(&["EXISTS", &index, &format!("{index}:m")]).unwrap();
            assert_eq!(exists.trim(), ":0", "{url}: {exists}");
            let other = standalone.server.command(&["EXISTS", &format!("{prefix}u:{{7}}")]).unwrap();
            assert_eq!(other.trim(), ":1", "{url}: user 7's index stays");
        }
    }
}

/// `force_scan` walks the store even when it has an index: the same sessions, without created/last seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_can_be_scanned_instead() {
    let options = UserDataOptions { force_scan: true, ..UserDataOptions::default() };
    for layout in ["string", "hash&buckets=4"] {
        let url = format!("{}?prefix={}:&layout={layout}", shared_standalone().url(), unique());
        export_and_erase(redis(&url).await, Source::Scan, options).await;
    }
}

/// Without an index, keys hashed at rest can be exported (found by a scan, named by the same session ids) but not
/// erased by key: the erasure refuses before deleting anything and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_keys_without_an_index_export_but_refuse_erasure() {
    let url =
        format!("{}?prefix={}:&layout=string&hashed_keys=true&user_index=false", shared_standalone().url(), unique());
    let store = redis(&url).await;
    assert!(store.user_index().is_none());
    let key = login(&store, "42", "phone").await;
    let export = export_user(&store, "42", UserDataOptions::default()).await.unwrap();
    assert_eq!(export.source, Source::Scan);
    assert_eq!(export.sessions.len(), 1);
    assert_eq!(export.sessions[0].id, session_id(&key));
    let err = erase_user(&store, "42", false, UserDataOptions::default()).await.unwrap_err();
    assert!(matches!(err, UserDataError::HashedWithoutIndex { count: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("user_index"), "{err}");
    assert!(store.load(&key).await.unwrap().is_some());
}

/// cached_db (Redis django-cache + SQLite): the export reads the database (a session whose cached copy was
/// evicted is still exported), the erasure deletes the rows, the cached copies and the cache's index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_db_exports_and_erases_both_halves() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("db.sqlite3").display());
    let prefix = unique();
    let cache_url = format!("{}?prefix={prefix}:&key_prefix={prefix}", shared_standalone().url());
    let store = open_store(&format!("cached_db:{cache_url}|{db_url}"), &settings()).await.unwrap();
    export_and_erase(store.clone(), Source::Index, UserDataOptions::default()).await;

    // A session the cache lost is exported and erased from the database.
    let cache = open_store(&format!("{cache_url}&layout=django-cache&engine=cached_db"), &settings()).await.unwrap();
    let db = open_store(&db_url, &settings()).await.unwrap();
    let kept = login(&store, "43", "phone").await;
    let evicted = login(&store, "43", "laptop").await;
    cache.delete(&evicted).await.unwrap();
    let export = export_user(&store, "43", UserDataOptions::default()).await.unwrap();
    assert_eq!(sorted(export.sessions.iter().map(|s| s.id.clone()).collect()), ids(&[&kept, &evicted]));
    let erased = erase_user(&store, "43", false, UserDataOptions::default()).await.unwrap();
    assert_eq!(erased.session_ids.len(), 2);
    for key in [&kept, &evicted] {
        assert!(db.load(key).await.unwrap().is_none(), "the row must be gone");
        assert!(store.load(key).await.unwrap().is_none());
        // The cache holds at most a tombstone (Python's None): a miss.
        assert!(cache.load(key).await.unwrap().is_none());
    }
    let index = format!("{prefix}:u:{{43}}");
    let exists = shared_standalone().server.command(&["EXISTS", &index, &format!("{index}:m")]).unwrap();
    assert_eq!(exists.trim(), ":0", "{exists}");
}

/// SQLite and file stores keep no index: a bounded scan, which says what it read and whether it finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_without_an_index_are_scanned_within_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    let sessions_dir = dir.path().join("sessions");
    std::fs::create_dir(&sessions_dir).unwrap();
    let urls =
        [format!("sqlite://{}", dir.path().join("db.sqlite3").display()), format!("file://{}", sessions_dir.display())];
    for url in urls {
        let store = open_store(&url, &settings()).await.unwrap();
        assert!(store.user_index().is_none());
        export_and_erase(store.clone(), Source::Scan, UserDataOptions::default()).await;

        // More sessions than the limit: the scan stops after the first page (500) and says it is incomplete.
        for _ in 0..520 {
            anonymous(&store).await;
        }
        let key = login(&store, "9", "phone").await;
        let limited = UserDataOptions { scan_limit: 10, ..UserDataOptions::default() };
        let export = export_user(&store, "9", limited).await.unwrap();
        assert!(!export.complete, "{url}");
        assert_eq!(export.scanned, Some(500), "{url}");
        assert_eq!(export.to_json()["complete"], json!(false));
        let full = export_user(&store, "9", UserDataOptions::default()).await.unwrap();
        assert!(full.complete);
        assert_eq!(full.scanned, Some(523), "{url}: 520 + user 7 + the anonymous one + user 9");
        assert_eq!(full.sessions.len(), 1);
        assert_eq!(full.sessions[0].id, session_id(&key));
    }
}

/// Signed cookies keep nothing on the server: both calls say so.
#[tokio::test]
async fn signed_cookies_have_nothing_to_export_or_erase() {
    let store = open_store("cookie:", &settings()).await.unwrap();
    let err = export_user(&store, "42", UserDataOptions::default()).await.unwrap_err();
    assert!(matches!(err, UserDataError::NothingServerSide { .. }), "{err:?}");
    assert!(err.to_string().contains("nothing on the server"), "{err}");
    let err = erase_user(&store, "42", true, UserDataOptions::default()).await.unwrap_err();
    assert!(matches!(err, UserDataError::NothingServerSide { .. }), "{err:?}");
}
