//! The examples' routers, run in-process: what `cargo run --example …` serves, without a socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use sessionkit::auth::{session_auth_hash, DjangoAuth, StaticUsers, HASH_KEY};
use sessionkit::store::memory::MemoryStore;
use sessionkit::{Session as CoreSession, SessionKey, SessionStore, Settings};
use tower::ServiceExt;

// The examples are binaries; their `main` is not called here.
#[allow(dead_code)]
#[path = "../examples/axum_counter.rs"]
mod axum_counter;

#[allow(dead_code)]
#[path = "../examples/django_shared_login.rs"]
mod django_shared_login;

async fn send(app: &Router, method: &str, path: &str, cookie: Option<&str>) -> (StatusCode, Vec<String>, String) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let cookies =
        response.headers().get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, cookies, String::from_utf8(body.to_vec()).unwrap())
}

/// The `name=value` part of a `Set-Cookie` header.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn axum_counter_counts_across_requests_with_the_cookie() {
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let app = axum_counter::router(store.clone(), Settings::with_secret_key("example-test"));

    let (status, cookies, body) = send(&app, "GET", "/", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "visit number 1"));
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let cookie = pair(&cookies[0]);
    assert!(cookie.starts_with("sessionid="), "{cookie}");

    let (status, cookies, body) = send(&app, "GET", "/", Some(&cookie)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "visit number 2"));
    assert_eq!(pair(&cookies[0]), cookie, "same session, cookie refreshed");

    // The count is in the store under the session's key.
    let key = SessionKey::parse(cookie.strip_prefix("sessionid=").unwrap()).unwrap();
    let record = store.load(&key).await.unwrap().expect("the session is stored");
    assert_eq!(record.data.get(axum_counter::VISITS_KEY).unwrap(), 2);

    // Without the cookie it is another visitor.
    let (_, _, body) = send(&app, "GET", "/", None).await;
    assert_eq!(body, "visit number 1");

    // Reset forgets the session: deleted from the store, cookie removed, the next visit starts again.
    let (status, cookies, _) = send(&app, "POST", "/reset", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(cookies[0].starts_with("sessionid=\"\"; expires=Thu, 01 Jan 1970"), "{cookies:?}");
    assert!(store.load(&key).await.unwrap().is_none());
    let (_, _, body) = send(&app, "GET", "/", Some(&cookie)).await;
    assert_eq!(body, "visit number 1");
}

const PASSWORD: &str = "pbkdf2_sha256$1000000$salt$hash=";

#[tokio::test]
async fn django_shared_login_names_the_django_user() {
    let settings = Settings::with_secret_key("the-django-secret");
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    let users = StaticUsers::new().with_user("1", PASSWORD, true);
    let auth = DjangoAuth::new(&settings, Arc::new(users)).unwrap();
    let app = django_shared_login::router(store.clone(), settings.clone(), auth);

    // What Django's login() leaves in the session store.
    let mut session = CoreSession::new(store.clone(), Arc::new(settings.clone()), None);
    session.set("_auth_user_id", "1").await.unwrap();
    session.set("_auth_user_backend", "django.contrib.auth.backends.ModelBackend").await.unwrap();
    session.set(HASH_KEY, session_auth_hash(PASSWORD, &settings.secret_key)).await.unwrap();
    session.save().await.unwrap();
    let cookie = format!("sessionid={}", session.key().unwrap());

    let (status, _, body) = send(&app, "GET", "/whoami", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"django_user_id":"1","backend":"django.contrib.auth.backends.ModelBackend"}"#);
    let (status, _, body) = send(&app, "GET", "/account", Some(&cookie)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "account page of Django user 1"));

    let (status, _, body) = send(&app, "GET", "/whoami", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"django_user_id":null}"#));
    let (status, _, _) = send(&app, "GET", "/account", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
