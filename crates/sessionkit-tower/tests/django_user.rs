//! The `DjangoUser` extractor: Django's `get_user()` semantics through a real axum router.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use sessionkit::auth::{session_auth_hash, AuthUser, DjangoAuth, StaticUsers, UserSource, HASH_KEY};
use sessionkit::store::memory::MemoryStore;
use sessionkit::{SecretKey, Session as CoreSession, SessionKey, SessionStore, Settings, StoreError};
use sessionkit_tower::{DjangoUser, SessionLayer};
use tower::ServiceExt;

const PASSWORD: &str = "pbkdf2_sha256$1000000$salt$hash=";

/// Counts lookups, to show the check runs once per request.
#[derive(Debug)]
struct CountingUsers {
    inner: StaticUsers,
    lookups: AtomicUsize,
}

#[async_trait]
impl UserSource for CountingUsers {
    async fn find_user(&self, user_id: &str) -> Result<Option<AuthUser>, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.find_user(user_id).await
    }
}

fn settings() -> Settings {
    let mut settings = Settings::with_secret_key("tower-secret");
    settings.secret_key_fallbacks = vec![SecretKey::from("old-tower-secret")];
    settings
}

async fn whoami(user: DjangoUser) -> String {
    format!("user {}", user.user_id)
}

async fn maybe(user: Option<DjangoUser>, again: Option<DjangoUser>) -> String {
    assert_eq!(user, again);
    match user {
        Some(user) => format!("user {}", user.user_id),
        None => "anonymous".to_owned(),
    }
}

struct App {
    router: Router,
    store: Arc<dyn SessionStore>,
    users: Arc<CountingUsers>,
}

fn app(with_auth: bool) -> App {
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let users = Arc::new(CountingUsers {
        inner: StaticUsers::new().with_user("5", PASSWORD, true),
        lookups: AtomicUsize::new(0),
    });
    let mut layer = SessionLayer::new(store.clone(), settings());
    if with_auth {
        layer = layer.with_django_auth(DjangoAuth::new(&settings(), users.clone()).unwrap());
    }
    let router = Router::new().route("/whoami", get(whoami)).route("/maybe", get(maybe)).layer(layer);
    App { router, store, users }
}

/// Stores a Django login for user 5 with the given hash, as Django's `login()` would leave it.
async fn stored_login(store: &Arc<dyn SessionStore>, hash: &str) -> SessionKey {
    let mut session = CoreSession::new(store.clone(), Arc::new(settings()), None);
    session.set("_auth_user_id", "5").await.unwrap();
    session.set("_auth_user_backend", "django.contrib.auth.backends.ModelBackend").await.unwrap();
    session.set(HASH_KEY, hash).await.unwrap();
    session.save().await.unwrap();
    session.key().unwrap().clone()
}

async fn call(router: &Router, uri: &str, key: Option<&SessionKey>) -> (StatusCode, Vec<String>, String) {
    let mut request = Request::builder().uri(uri);
    if let Some(key) = key {
        request = request.header(header::COOKIE, format!("sessionid={key}"));
    }
    let response = router.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let cookies =
        response.headers().get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, cookies, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn verified_logins_reach_the_handler_once_checked() {
    let app = app(true);
    let key = stored_login(&app.store, &session_auth_hash(PASSWORD, &settings().secret_key)).await;
    let (status, cookies, body) = call(&app.router, "/whoami", Some(&key)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "user 5"));
    assert!(cookies.is_empty(), "a verified login changes nothing: {cookies:?}");
    // Two extractors in one handler: one lookup.
    let before = app.users.lookups.load(Ordering::SeqCst);
    let (_, _, body) = call(&app.router, "/maybe", Some(&key)).await;
    assert_eq!(body, "user 5");
    assert_eq!(app.users.lookups.load(Ordering::SeqCst) - before, 1);
}

#[tokio::test]
async fn anonymous_requests_are_401_or_none() {
    let app = app(true);
    let (status, _, _) = call(&app.router, "/whoami", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = call(&app.router, "/maybe", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "anonymous"));
}

#[tokio::test]
async fn a_mismatched_hash_logs_out_and_flushes_like_django() {
    let app = app(true);
    let key = stored_login(&app.store, &"0".repeat(64)).await;
    let (status, cookies, _) = call(&app.router, "/whoami", Some(&key)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(app.store.load(&key).await.unwrap().is_none(), "the session must be deleted");
    assert!(cookies.iter().any(|c| c.starts_with("sessionid=\"\"; expires=Thu, 01 Jan 1970")), "{cookies:?}");
}

#[tokio::test]
async fn a_fallback_secret_hash_is_accepted_and_rewritten() {
    let app = app(true);
    let key = stored_login(&app.store, &session_auth_hash(PASSWORD, &SecretKey::from("old-tower-secret"))).await;
    let (status, cookies, body) = call(&app.router, "/whoami", Some(&key)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "user 5"));
    // Django cycles the key: the old one is gone, a new cookie carries the rewritten hash.
    assert!(app.store.load(&key).await.unwrap().is_none());
    let new_key = cookies[0].strip_prefix("sessionid=").unwrap().split(';').next().unwrap();
    let record = app.store.load(&SessionKey::parse(new_key).unwrap()).await.unwrap().unwrap();
    assert_eq!(record.data.get(HASH_KEY).unwrap(), &session_auth_hash(PASSWORD, &settings().secret_key));
}

#[tokio::test]
async fn without_the_bridge_the_extractor_is_a_500() {
    let app = app(false);
    let key = stored_login(&app.store, &session_auth_hash(PASSWORD, &settings().secret_key)).await;
    let (status, _, _) = call(&app.router, "/whoami", Some(&key)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}
