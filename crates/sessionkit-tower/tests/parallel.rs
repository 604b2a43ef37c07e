//! Parallel requests on one session through a real axum router and real stores: neither loses the other's write,
//! and a logout that finishes while a slow request is in flight is never undone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use http::{header, Request, StatusCode};
use sessionkit::{open_store, SessionKey, SessionStore, Settings};
use sessionkit_testsupport::databases::{Engine, TestDatabase};
use sessionkit_tower::{Session, SessionFailure, SessionLayer};
use tower::ServiceExt;

/// How long a slow request works between loading the session and setting its key.
const WORK: Duration = Duration::from_millis(150);
/// How much later the second request starts.
const STAGGER: Duration = Duration::from_millis(40);
/// Rounds per store, each on its own session, all at once.
const ROUNDS: usize = 100;

/// Reads the session, works a while, then sets `name` (the handler a new user would write).
async fn slow_set(session: Session, Path(name): Path<String>) -> Result<&'static str, SessionFailure> {
    let _: Option<u64> = session.get("visits").await?;
    tokio::time::sleep(WORK).await;
    session.set(&name, true).await?;
    Ok("ok")
}

async fn start(session: Session) -> Result<&'static str, SessionFailure> {
    session.set("visits", 1).await?;
    Ok("ok")
}

async fn logout(session: Session) -> Result<&'static str, SessionFailure> {
    session.flush().await?;
    Ok("bye")
}

fn app(store: Arc<dyn SessionStore>) -> Router {
    Router::new()
        .route("/start", get(start))
        .route("/slow/{name}", get(slow_set))
        .route("/logout", get(logout))
        .layer(SessionLayer::new(store, Settings::with_secret_key("parallel-tests")))
}

async fn send(app: &Router, path: &str, cookie: Option<&str>) -> (StatusCode, Option<String>) {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let cookie =
        response.headers().get(header::SET_COOKIE).map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    (response.status(), cookie)
}

/// One round: a session, then two slow requests 40 ms apart setting `a` and `b`. Returns what is stored after.
async fn round(app: &Router, store: &Arc<dyn SessionStore>) -> serde_json::Map<String, serde_json::Value> {
    let (_, cookie) = send(app, "/start", None).await;
    let cookie = cookie.expect("a session cookie");
    let first = send(app, "/slow/a", Some(&cookie));
    let second = async {
        tokio::time::sleep(STAGGER).await;
        send(app, "/slow/b", Some(&cookie)).await
    };
    let ((status_a, _), (status_b, _)) = tokio::join!(first, second);
    assert_eq!((status_a, status_b), (StatusCode::OK, StatusCode::OK));
    let key = SessionKey::parse(cookie.trim_start_matches("sessionid=")).unwrap();
    store.load(&key).await.unwrap().expect("the session is stored").data
}

/// `ROUNDS` rounds at once on `url`; returns how many kept both keys.
async fn rounds_keeping_both_keys(url: &str) -> usize {
    let store = open_store(url, &Settings::with_secret_key("parallel-tests")).await.unwrap();
    let app = app(store.clone());
    let results = futures_util::future::join_all((0..ROUNDS).map(|_| round(&app, &store))).await;
    results.iter().filter(|data| data.get("a").is_some() && data.get("b").is_some()).count()
}

/// A store URL on the shared server with `options`, under a prefix of its own (each layout records its shape
/// under its prefix, so two layouts never share one).
fn redis_url(options: &str) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let server = sessionkit_testsupport::shared_standalone().url();
    format!("{server}/0?prefix=par{}x{n}:&{options}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_parallel_writes_survive_on_redis_every_layout() {
    for options in ["layout=string", "layout=hash&buckets=16", "layout=django-cache&key_prefix=par"] {
        let kept = rounds_keeping_both_keys(&redis_url(options)).await;
        assert_eq!(kept, ROUNDS, "{options}: {kept} of {ROUNDS} rounds kept both keys");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_parallel_writes_survive_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("parallel.sqlite3").display());
    assert_eq!(rounds_keeping_both_keys(&sqlite).await, ROUNDS, "SQLite");
    let database = TestDatabase::create(Engine::Postgres).await;
    assert_eq!(rounds_keeping_both_keys(&database.url()).await, ROUNDS, "PostgreSQL");
}

/// With `merge=false` the last write wins, as in Django: the first request's key is lost in (nearly) every round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_false_is_djangos_last_write_wins() {
    let kept = rounds_keeping_both_keys(&redis_url("layout=string&merge=false")).await;
    assert!(kept < ROUNDS / 10, "{kept} of {ROUNDS} rounds kept both keys without merging");
}

/// A logout that completes while a slow request is in flight: after both, the session is gone, and the slow
/// request answered 400 (Django's `SessionInterrupted`) instead of bringing it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_during_a_slow_request_is_never_undone() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("logout.sqlite3").display());
    for url in [redis_url("layout=string"), redis_url("layout=hash&buckets=16"), sqlite] {
        let store = open_store(&url, &Settings::with_secret_key("parallel-tests")).await.unwrap();
        let app = app(store.clone());
        let (_, cookie) = send(&app, "/start", None).await;
        let cookie = cookie.unwrap();
        let slow = send(&app, "/slow/late", Some(&cookie));
        let logout = async {
            tokio::time::sleep(STAGGER).await;
            send(&app, "/logout", Some(&cookie)).await
        };
        let ((slow_status, slow_cookie), (logout_status, _)) = tokio::join!(slow, logout);
        assert_eq!(logout_status, StatusCode::OK, "{url}");
        assert_eq!(slow_status, StatusCode::BAD_REQUEST, "{url}: the slow request must not save");
        assert_eq!(slow_cookie, None, "{url}");
        let key = SessionKey::parse(cookie.trim_start_matches("sessionid=")).unwrap();
        assert!(store.load(&key).await.unwrap().is_none(), "{url}: the logout was undone");
    }
}
