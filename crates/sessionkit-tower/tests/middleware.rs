//! Django's `SessionMiddleware` behaviour, request by request, through a real axum router.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{header, HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use sessionkit::store::memory::MemoryStore;
use sessionkit::store::RawSession;
use sessionkit::{ChangeSet, Expiry, SameSite, SessionKey, SessionRecord, SessionStore, Settings, StoreError};
use sessionkit_tower::{Session, SessionFailure, SessionLayer};
use tower::ServiceExt;

/// The memory store, with a count of the calls that reach it.
#[derive(Debug, Default)]
struct CountingStore {
    inner: MemoryStore,
    loads: AtomicUsize,
    writes: AtomicUsize,
    touches: AtomicUsize,
}

#[async_trait]
impl SessionStore for CountingStore {
    fn describe(&self) -> String {
        "counting+memory://".into()
    }
    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(key).await
    }
    async fn create(&self, record: &SessionRecord) -> Result<Option<sessionkit::Version>, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.create(record).await
    }
    async fn save(&self, record: &SessionRecord, changes: &ChangeSet) -> Result<sessionkit::store::Saved, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.save(record, changes).await
    }
    async fn touch(&self, record: &SessionRecord) -> Result<sessionkit::store::Touched, StoreError> {
        self.touches.fetch_add(1, Ordering::SeqCst);
        self.inner.touch(record).await
    }
    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.inner.exists(key).await
    }
    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn clear_expired(&self) -> Result<u64, StoreError> {
        self.inner.clear_expired().await
    }
    async fn load_raw(&self, key: &SessionKey) -> Result<Option<RawSession>, StoreError> {
        self.inner.load_raw(key).await
    }
}

impl CountingStore {
    fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }
    fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
    fn touches(&self) -> usize {
        self.touches.load(Ordering::SeqCst)
    }
}

async fn untouched() -> &'static str {
    "hello"
}

async fn count(session: Session) -> Result<String, SessionFailure> {
    let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
    session.set("n", n).await?;
    Ok(n.to_string())
}

async fn read_three_times(session: Session) -> Result<String, SessionFailure> {
    let a: Option<u64> = session.get("n").await?;
    let b: Option<u64> = session.get("n").await?;
    let items = session.items().await?;
    Ok(format!("{a:?} {b:?} {}", items.len()))
}

async fn flush(session: Session) -> Result<&'static str, SessionFailure> {
    session.flush().await?;
    Ok("bye")
}

async fn login(session: Session) -> Result<String, SessionFailure> {
    session.cycle_key().await?;
    session.set("_auth_user_id", "1").await?;
    Ok(session.key().await.map(|k| k.to_string()).unwrap_or_default())
}

async fn browser_close(session: Session) -> Result<&'static str, SessionFailure> {
    session.set_expiry(Expiry::BrowserClose).await?;
    Ok("ok")
}

async fn fail_after_write(session: Session) -> Result<&'static str, (StatusCode, &'static str)> {
    session.set("doomed", true).await.map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "x"))?;
    Err((StatusCode::INTERNAL_SERVER_ERROR, "boom"))
}

/// Loads, then the session is deleted behind the request's back (a logout in another tab), then writes.
async fn deleted_meanwhile(
    session: Session,
    axum::extract::State(store): axum::extract::State<Arc<CountingStore>>,
) -> Result<&'static str, SessionFailure> {
    session.set("x", 1).await?;
    let key = session.key().await.expect("request came with a cookie");
    store.delete(&key).await?;
    Ok("ok")
}

async fn vary_already() -> ([(header::HeaderName, &'static str); 1], &'static str) {
    ([(header::VARY, "Accept-Encoding")], "x")
}

fn app(store: Arc<CountingStore>, settings: Settings) -> Router {
    Router::new()
        .route("/untouched", get(untouched))
        .route("/count", get(count))
        .route("/read", get(read_three_times))
        .route("/flush", get(flush))
        .route("/login", get(login))
        .route("/browser-close", get(browser_close))
        .route("/fail", get(fail_after_write))
        .route("/deleted-meanwhile", get(deleted_meanwhile))
        .route("/vary-count", get(|s: Session| async move { (vary_already().await.0, count(s).await) }))
        .with_state(store.clone())
        .layer(SessionLayer::new(store, settings))
}

async fn send(app: &Router, path: &str, cookie: Option<&str>) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

/// The `name=value` part of the only Set-Cookie header.
fn cookie_pair(headers: &HeaderMap) -> String {
    let cookies = set_cookies(headers);
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    cookies[0].split(';').next().unwrap().to_owned()
}

fn setup() -> (Arc<CountingStore>, Router) {
    let store = Arc::new(CountingStore::default());
    (store.clone(), app(store, Settings::default()))
}

#[tokio::test]
async fn untouched_session_costs_nothing() {
    let (store, app) = setup();
    let (status, headers, _) = send(&app, "/untouched", Some("sessionid=abcdefghijklmnopqrstuvwxyz012345")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(store.loads(), 0, "no load when the handler never touches the session");
    assert_eq!(store.writes(), 0);
    assert!(set_cookies(&headers).is_empty());
    assert!(headers.get(header::VARY).is_none());
}

#[tokio::test]
async fn first_write_sets_djangos_cookie_and_vary() {
    let (store, app) = setup();
    let (status, headers, body) = send(&app, "/count", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "1"));
    let cookie = &set_cookies(&headers)[0];
    let parts: Vec<&str> = cookie.split("; ").collect();
    assert!(parts[0].starts_with("sessionid=") && parts[0].len() == "sessionid=".len() + 32, "{cookie}");
    assert!(parts[1].starts_with("expires=") && parts[1].ends_with(" GMT"), "{cookie}");
    assert_eq!(parts[2..], ["HttpOnly", "Max-Age=1209600", "Path=/", "SameSite=Lax"]);
    assert_eq!(headers.get(header::VARY).unwrap(), "Cookie");
    assert_eq!(store.loads(), 0, "a request without cookie has nothing to load");
    assert_eq!(store.writes(), 1, "one store write per save");
}

#[tokio::test]
async fn session_carries_across_requests_with_one_load_each() {
    let (store, app) = setup();
    let (_, headers, _) = send(&app, "/count", None).await;
    let cookie = cookie_pair(&headers);
    let (_, headers, body) = send(&app, "/count", Some(&cookie)).await;
    assert_eq!(body, "2");
    assert_eq!(cookie_pair(&headers), cookie, "same key, refreshed cookie");
    let loads_before = store.loads();
    let (_, headers, body) = send(&app, "/read", Some(&cookie)).await;
    assert_eq!(body, "Some(2) Some(2) 1");
    assert_eq!(store.loads() - loads_before, 1, "three reads, one load");
    assert!(set_cookies(&headers).is_empty(), "unmodified session is not saved");
    assert_eq!(headers.get(header::VARY).unwrap(), "Cookie", "accessed session varies on Cookie");
}

#[tokio::test]
async fn flush_deletes_the_cookie_like_django() {
    let (store, app) = setup();
    let (_, headers, _) = send(&app, "/count", None).await;
    let cookie = cookie_pair(&headers);
    let key = SessionKey::parse(cookie.trim_start_matches("sessionid=")).unwrap();
    let (status, headers, _) = send(&app, "/flush", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        set_cookies(&headers),
        [r#"sessionid=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; SameSite=Lax"#]
    );
    assert_eq!(headers.get(header::VARY).unwrap(), "Cookie");
    assert!(!store.exists(&key).await.unwrap());
}

#[tokio::test]
async fn unknown_cookie_gets_a_fresh_key() {
    let (_, app) = setup();
    let stale = "sessionid=zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
    let (_, headers, body) = send(&app, "/count", Some(stale)).await;
    assert_eq!(body, "1");
    let pair = cookie_pair(&headers);
    assert_ne!(pair, stale);
    // A hostile cookie value is just "no session".
    let (status, headers, body) = send(&app, "/count", Some("sessionid=../../etc/passwd%00")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "1"));
    assert_eq!(cookie_pair(&headers).len(), "sessionid=".len() + 32);
}

#[tokio::test]
async fn no_save_on_5xx() {
    let (store, app) = setup();
    let (status, headers, _) = send(&app, "/fail", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(store.writes(), 0);
    assert!(set_cookies(&headers).is_empty());
    assert_eq!(headers.get(header::VARY).unwrap(), "Cookie", "accessed, so still varies");
}

#[tokio::test]
async fn session_deleted_mid_request_is_a_400() {
    let (store, app) = setup();
    let (_, headers, _) = send(&app, "/count", None).await;
    let cookie = cookie_pair(&headers);
    let (status, headers, body) = send(&app, "/deleted-meanwhile", Some(&cookie)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(set_cookies(&headers).is_empty());
    let key = SessionKey::parse(cookie.trim_start_matches("sessionid=")).unwrap();
    assert!(!store.exists(&key).await.unwrap(), "never silently re-created");
}

#[tokio::test]
async fn cycle_key_on_login_kills_the_old_key() {
    let (store, app) = setup();
    let (_, headers, _) = send(&app, "/count", None).await;
    let before = cookie_pair(&headers);
    let old_key = SessionKey::parse(before.trim_start_matches("sessionid=")).unwrap();
    let (_, headers, body) = send(&app, "/login", Some(&before)).await;
    let after = cookie_pair(&headers);
    assert_eq!(after, format!("sessionid={body}"));
    assert_ne!(after, before);
    assert!(!store.exists(&old_key).await.unwrap(), "fixation: the pre-login key is dead");
    let (_, _, body) = send(&app, "/count", Some(&after)).await;
    assert_eq!(body, "2", "data carried over to the new key");
}

#[tokio::test]
async fn browser_close_cookie_has_no_max_age() {
    let (_, app) = setup();
    let (_, headers, _) = send(&app, "/browser-close", None).await;
    let cookie = &set_cookies(&headers)[0];
    assert!(cookie.ends_with("; HttpOnly; Path=/; SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("expires") && !cookie.contains("Max-Age"), "{cookie}");

    let store = Arc::new(CountingStore::default());
    let app = app_with(store, Settings { expire_at_browser_close: true, ..Settings::default() });
    let (_, headers, _) = send(&app, "/count", None).await;
    assert!(!set_cookies(&headers)[0].contains("Max-Age"));
}

fn app_with(store: Arc<CountingStore>, settings: Settings) -> Router {
    app(store, settings)
}

#[tokio::test]
async fn save_every_request_refreshes_untouched_sessions() {
    let store = Arc::new(CountingStore::default());
    let app = app_with(store.clone(), Settings { save_every_request: true, ..Settings::default() });
    let (_, headers, _) = send(&app, "/count", None).await;
    let cookie = cookie_pair(&headers);
    let writes = store.writes();
    let (_, headers, _) = send(&app, "/untouched", Some(&cookie)).await;
    assert_eq!(store.writes(), writes + 1, "saved although untouched");
    assert_eq!(cookie_pair(&headers), cookie);
    // Without a cookie there is nothing to save: the session is empty.
    let (_, headers, _) = send(&app, "/untouched", None).await;
    assert!(set_cookies(&headers).is_empty());
}

#[tokio::test]
async fn cookie_attributes_follow_settings() {
    let settings = Settings {
        cookie_name: "sid".into(),
        cookie_domain: Some(".example.com".into()),
        cookie_secure: true,
        cookie_httponly: false,
        cookie_path: "/app".into(),
        cookie_samesite: Some(SameSite::Strict),
        cookie_age: 3600,
        ..Settings::default()
    };
    let app = app_with(Arc::new(CountingStore::default()), settings);
    let (_, headers, _) = send(&app, "/count", None).await;
    let cookie = &set_cookies(&headers)[0];
    let parts: Vec<&str> = cookie.split("; ").collect();
    assert!(parts[0].starts_with("sid="));
    assert_eq!(parts[1], "Domain=.example.com");
    assert!(parts[2].starts_with("expires="));
    assert_eq!(parts[3..], ["Max-Age=3600", "Path=/app", "SameSite=Strict", "Secure"]);
    // The cookie is read under the configured name.
    let (_, _, body) = send(&app, "/count", Some(parts[0])).await;
    assert_eq!(body, "2");
}

#[tokio::test]
async fn existing_vary_is_extended() {
    let (_, app) = setup();
    let (_, headers, _) = send(&app, "/vary-count", None).await;
    assert_eq!(headers.get(header::VARY).unwrap(), "Accept-Encoding, Cookie");
}

fn sqlite_settings() -> Settings {
    Settings::with_secret_key("k")
}

/// A SQLite store in a fresh temporary directory (kept alive by the returned guard).
async fn sqlite_store() -> (Arc<sessionkit::store::sqlite::SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.sqlite3").display());
    let store = sessionkit::store::sqlite::SqliteStore::connect(&url, &sqlite_settings()).await.unwrap();
    (Arc::new(store), dir)
}

#[tokio::test]
async fn unreachable_store_is_a_503_not_an_empty_session() {
    let (sqlite, _dir) = sqlite_store().await;
    let app = Router::new().route("/count", get(count)).layer(SessionLayer::new(sqlite.clone(), sqlite_settings()));
    let (_, headers, _) = send(&app, "/count", None).await;
    let cookie = cookie_pair(&headers);
    sqlite.pool().close().await; // the store is now unreachable
    let (status, headers, body) = send(&app, "/count", Some(&cookie)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(set_cookies(&headers).is_empty(), "the user's cookie is kept, not replaced by a new session");
}

#[tokio::test]
async fn missing_layer_is_a_clear_500() {
    let app: Router = Router::new().route("/count", get(count));
    let (status, _, _) = send(&app, "/count", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

/// "Log out other devices" through the extractor, on a real Redis with the per-user index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_out_other_devices_on_redis() {
    let server = sessionkit_testsupport::Standalone::start().unwrap();
    let settings = Settings::with_secret_key("k");
    let store = sessionkit::open_store(&server.url(), &settings).await.unwrap();
    async fn login_as(session: Session, headers: HeaderMap) -> Result<&'static str, SessionFailure> {
        session.cycle_key().await?;
        session.set("_auth_user_id", "42").await?;
        let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
        session.record_client(agent, Some("192.0.2.1")).await?;
        Ok("in")
    }
    async fn devices(session: Session) -> Result<String, SessionFailure> {
        let mut agents: Vec<String> = session.user_sessions().await?.into_iter().filter_map(|s| s.user_agent).collect();
        agents.sort();
        Ok(agents.join(","))
    }
    async fn others_out(session: Session) -> Result<String, SessionFailure> {
        Ok(session.log_out_other_devices().await?.to_string())
    }
    let app = Router::new()
        .route("/login", get(login_as))
        .route("/devices", get(devices))
        .route("/others-out", get(others_out))
        .layer(SessionLayer::new(store, settings));
    let login = |agent: &'static str| {
        let app = app.clone();
        async move {
            let request = Request::get("/login").header(header::USER_AGENT, agent).body(Body::empty()).unwrap();
            let response = app.oneshot(request).await.unwrap();
            cookie_pair(response.headers())
        }
    };
    let phone = login("phone").await;
    let laptop = login("laptop").await;
    let (_, _, body) = send(&app, "/devices", Some(&phone)).await;
    assert_eq!(body, "laptop,phone");
    let (_, _, body) = send(&app, "/others-out", Some(&laptop)).await;
    assert_eq!(body, "1");
    let (_, _, body) = send(&app, "/devices", Some(&laptop)).await;
    assert_eq!(body, "laptop");
    // The phone's cookie now starts a fresh, logged-out session.
    let (status, _, _) = send(&app, "/devices", Some(&phone)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Sends a request whose `Cookie` header is raw bytes (browsers send latin-1 and other non-UTF-8 cookies).
async fn send_raw_cookie(app: &Router, path: &str, cookie: &[u8]) -> (StatusCode, HeaderMap, String) {
    let value = http::HeaderValue::from_bytes(cookie).unwrap();
    let request = Request::get(path).header(header::COOKIE, value).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// One byte that is not UTF-8 in another cookie (`theme=café` in latin-1) must not log the user out.
#[tokio::test]
async fn a_non_utf8_byte_in_another_cookie_keeps_the_session() {
    let (_, app) = setup();
    let (_, headers, _) = send(&app, "/count", None).await;
    let pair = cookie_pair(&headers);
    let mut header = pair.clone().into_bytes();
    header.extend_from_slice(b"; theme=caf\xe9");
    let (status, headers, body) = send_raw_cookie(&app, "/count", &header).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "2"), "the counter goes on");
    assert_eq!(cookie_pair(&headers), pair, "the same key is sent back, not a new session");
    // The bad byte first, the session cookie after it.
    let mut header = b"theme=caf\xe9; ".to_vec();
    header.extend_from_slice(pair.as_bytes());
    let (_, headers, body) = send_raw_cookie(&app, "/count", &header).await;
    assert_eq!(body, "3");
    assert_eq!(cookie_pair(&headers), pair);
}

/// A session cookie whose own value is not ASCII is not a key: a new session, and no panic.
#[tokio::test]
async fn a_non_ascii_session_cookie_is_no_key() {
    let (store, app) = setup();
    let (status, headers, body) = send_raw_cookie(&app, "/count", b"sessionid=caf\xe9caf\xe9caf\xe9").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "1"));
    assert_eq!(cookie_pair(&headers).len(), "sessionid=".len() + 32);
    assert_eq!(store.loads(), 0, "nothing to look up");
}

async fn set_expiry_seconds(
    session: Session,
    axum::extract::Path(seconds): axum::extract::Path<i64>,
) -> Result<&'static str, SessionFailure> {
    session.set_expiry(Expiry::Seconds(seconds)).await?;
    session.set("x", 1).await?;
    Ok("ok")
}

/// `set_expiry` of absurd ages, and a stored `_session_expiry` far in the past, give a response with a cookie a
/// browser can read (its `expires` clamped to what an HTTP date can say), never a panic.
#[tokio::test]
async fn extreme_expiries_never_panic() {
    let store = Arc::new(CountingStore::default());
    let app = Router::new()
        .route("/expiry/{seconds}", get(set_expiry_seconds))
        .route("/count", get(count))
        .layer(SessionLayer::new(store.clone(), Settings::default()));
    for seconds in [3_000_000_000_i64, -3_000_000_000, 300_000_000_000, i64::MAX, i64::MIN + 1] {
        let (status, headers, _) = send(&app, &format!("/expiry/{seconds}"), None).await;
        assert_eq!(status, StatusCode::OK, "set_expiry({seconds})");
        let cookie = &set_cookies(&headers)[0];
        assert!(cookie.contains(&format!("Max-Age={seconds}")), "{cookie}");
        let expires = cookie.split("; ").find_map(|p| p.strip_prefix("expires=")).unwrap();
        let at = httpdate::parse_http_date(expires).unwrap();
        let year_9999 = std::time::UNIX_EPOCH + std::time::Duration::from_secs(253_402_300_799);
        assert!(at >= std::time::UNIX_EPOCH && at <= year_9999, "{cookie}");
    }
    // A session stored with a `_session_expiry` in year 1000 (written by another program).
    let key = SessionKey::generate();
    let mut data = serde_json::Map::new();
    data.insert("_session_expiry".into(), "1000-01-01T00:00:00+00:00".into());
    data.insert("n".into(), 1.into());
    let expires_at = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    store.create(&SessionRecord::new(key.clone(), data, expires_at)).await.unwrap();
    let (status, headers, body) = send(&app, "/count", Some(&format!("sessionid={key}"))).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "2"));
    assert!(set_cookies(&headers)[0].contains("expires=Thu, 01 Jan 1970 00:00:00 GMT"), "{:?}", set_cookies(&headers));
}

async fn clear_then_set(session: Session) -> Result<&'static str, SessionFailure> {
    session.clear().await;
    session.set("after-clear", true).await?;
    Ok("ok")
}

/// `clear()` then a save under a cookie key the store does not know: Django answers 400 (`SessionInterrupted`),
/// whether or not the key could address storage; never a 500.
#[tokio::test]
async fn clear_then_save_under_an_unknown_key_is_a_400() {
    let (sqlite, _dir) = sqlite_store().await;
    let app = Router::new().route("/clear", get(clear_then_set)).layer(SessionLayer::new(sqlite, sqlite_settings()));
    for cookie in
        ["sessionid=zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", "sessionid=NOT-A-STORAGE-SAFE-KEY", "sessionid=AAAAAAAAAA"]
    {
        let (status, headers, body) = send(&app, "/clear", Some(cookie)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{cookie}: {body}");
        assert!(set_cookies(&headers).is_empty(), "{cookie}");
    }
}

/// The idle timeout over HTTP, with a clock the test moves: a read-only request is touched (an expiry-only
/// write, no full save) at most once per interval, an idle session is replaced by a new one and its cookie
/// deleted, and the audit hook hears of it and of the logout.
#[tokio::test]
async fn idle_timeout_touches_reads_once_per_interval_and_reports_expiry() {
    use sessionkit::audit::AuditEvent;
    use sessionkit::lifetime::{Clock, ExpiryRule};
    use std::sync::atomic::AtomicI64;
    use std::sync::Mutex;

    let offset = Arc::new(AtomicI64::new(0));
    let read = Arc::clone(&offset);
    let clock =
        Clock::from_fn(move || time::OffsetDateTime::now_utc() + time::Duration::seconds(read.load(Ordering::SeqCst)));
    let settings = Settings { idle_timeout: Some(600), touch_interval: Some(60), clock, ..Settings::default() };
    let store = Arc::new(CountingStore::default());
    let events = Arc::new(Mutex::new(Vec::<AuditEvent>::new()));
    let sink = Arc::clone(&events);
    let layer = SessionLayer::new(store.clone(), settings)
        .with_audit(Arc::new(move |event: &AuditEvent| sink.lock().unwrap().push(event.clone())));
    let app = Router::new()
        .route("/count", get(count))
        .route("/read", get(read_three_times))
        .route("/flush", get(flush))
        .layer(layer);

    let (_, headers, _) = send(&app, "/count", None).await;
    let cookie = cookie_pair(&headers);
    let writes = store.writes();
    let at = |seconds: i64| offset.store(seconds, Ordering::SeqCst);

    at(30);
    let (_, headers, body) = send(&app, "/read", Some(&cookie)).await;
    assert_eq!(body, "Some(1) Some(1) 1");
    assert!(set_cookies(&headers).is_empty(), "nothing due: no write, no cookie");
    assert_eq!((store.writes(), store.touches()), (writes, 0));

    at(61);
    let (_, headers, _) = send(&app, "/read", Some(&cookie)).await;
    assert_eq!(cookie_pair(&headers), cookie, "the touch re-sends the same cookie");
    assert_eq!((store.writes(), store.touches()), (writes, 1), "a touch, not a save");

    at(100);
    send(&app, "/read", Some(&cookie)).await;
    assert_eq!(store.touches(), 1, "at most one touch per interval");

    // Idle from 61 s to 700 s (> 600 s): a new, empty session, and the old cookie is deleted.
    at(700);
    let (_, headers, body) = send(&app, "/read", Some(&cookie)).await;
    assert_eq!(body, "None None 0");
    assert!(set_cookies(&headers).iter().any(|c| c.contains("Max-Age=0")), "{headers:?}");
    assert!(matches!(&events.lock().unwrap()[..], [AuditEvent::Expired { rule: ExpiryRule::Idle, .. }]));

    at(0);
    let (_, headers, _) = send(&app, "/count", None).await;
    send(&app, "/flush", Some(&cookie_pair(&headers))).await;
    let events = events.lock().unwrap();
    assert!(matches!(events.last(), Some(AuditEvent::Flushed { session: Some(_), .. })), "{events:?}");
}
