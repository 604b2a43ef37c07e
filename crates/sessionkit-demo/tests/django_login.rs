//! A login made on a real Django site is recognised by the demo's Rust handler (`GET /django/whoami`), through
//! one shared session store (Django's `db.sqlite3`), and a logout on either side ends the session on both.
//!
//! Needs the repo's Python venv with Django (scripts/test creates `.venv`).

#![allow(clippy::unwrap_used, reason = "test helpers: a panic is how a test fails")]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use sessionkit::auth::{DjangoAuth, SqlUserSource, UserTable};
use sessionkit::{open_store, Settings};
use sessionkit_demo::router_with_django_auth;
use sessionkit_testsupport::django::DjangoProcess;
use tower::ServiceExt;

const SECRET: &str = "shared-django-secret";

async fn get(app: &Router, method: &str, uri: &str, key: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::COOKIE, format!("sessionid={key}"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_django_login_is_recognised_by_the_rust_handler() {
    let Some(python) = sessionkit_testsupport::django_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite3");
    // The Django project: db sessions in db.sqlite3, the same SECRET_KEY.
    let config = json!({
        "secret_key": SECRET, "engine": "db", "cache": null, "file_path": null,
        "database": {"ENGINE": "django.db.backends.sqlite3", "NAME": db},
    });
    let mut django = DjangoProcess::start(&python, &config);
    let users = django.call(json!({"op": "setup"})).unwrap()["users"].clone();

    // The Rust app on the same database.
    let settings = Settings::with_secret_key(SECRET);
    let url = format!("sqlite://{}", db.display());
    let store = open_store(&url, &settings).await.unwrap();
    let auth = DjangoAuth::new(&settings, Arc::new(SqlUserSource::connect(&url, UserTable::default()).await.unwrap()))
        .unwrap();
    let app = router_with_django_auth(store, settings, Some(auth));

    // Alice logs in on the Django site; the Rust handler knows her.
    let login = django.call(json!({"op": "login", "username": "alice", "password": "alice-pw"})).unwrap();
    let key = login["key"].as_str().unwrap().to_owned();
    let (status, body) = get(&app, "GET", "/django/whoami", &key).await;
    assert_eq!(status, StatusCode::OK);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["django_user_id"], users["alice"]);
    assert_eq!(body["backend"], "django.contrib.auth.backends.ModelBackend");

    // Logging out in the Rust app ends the session for Django too (the logout button's form carries the CSRF
    // token the demo keeps in the session).
    let (_, home) = get(&app, "GET", "/", &key).await;
    let marker = r#"name="csrfmiddlewaretoken" value=""#;
    let token = home[home.find(marker).unwrap() + marker.len()..].split('"').next().unwrap().to_owned();
    let request = Request::post("/logout")
        .header(header::COOKIE, format!("sessionid={key}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrfmiddlewaretoken={token}")))
        .unwrap();
    assert_eq!(app.clone().oneshot(request).await.unwrap().status(), StatusCode::SEE_OTHER);
    let who = django.call(json!({"op": "whoami", "key": key})).unwrap();
    assert_eq!(who["user_id"], Value::Null, "Django still sees a user after the Rust logout");

    // A password change on the Django side logs the user out of the Rust app.
    let login = django.call(json!({"op": "login", "username": "bob", "password": "bob-pw"})).unwrap();
    let key = login["key"].as_str().unwrap().to_owned();
    let (_, body) = get(&app, "GET", "/django/whoami", &key).await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["django_user_id"], users["bob"]);
    django.call(json!({"op": "set_password", "username": "bob", "password": "new-pw"})).unwrap();
    let (_, body) = get(&app, "GET", "/django/whoami", &key).await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["django_user_id"], Value::Null);
    let who = django.call(json!({"op": "whoami", "key": key})).unwrap();
    assert_eq!(who["user_id"], Value::Null);

    // Anonymous requests get null; without the bridge the route is a clear 404.
    let (_, body) = get(&app, "GET", "/django/whoami", "nosuchsessionkey").await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["django_user_id"], Value::Null);
    let plain = sessionkit_demo::router(
        open_store("memory://", &Settings::with_secret_key(SECRET)).await.unwrap(),
        Settings::with_secret_key(SECRET),
    );
    let (status, body) = get(&plain, "GET", "/django/whoami", &key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("--django-db"), "{body}");
}
