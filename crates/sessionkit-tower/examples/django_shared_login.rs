//! An axum service that knows who is logged in on a Django site it shares the session cookie with.
//!
//! Three things must be the same on both sides:
//!
//! 1. **`SECRET_KEY`** (and `SECRET_KEY_FALLBACKS`): Django signs stored sessions and the login hash with it.
//! 2. **Where sessions live**: the store URL in `SESSIONKIT_STORE` points at Django's session storage:
//!    - `SESSION_ENGINE = "django.contrib.sessions.backends.cache"` with Django's `RedisCache` at
//!      `redis://127.0.0.1:6379/0`: `SESSIONKIT_STORE='redis://127.0.0.1:6379/0?layout=django-cache'` (add
//!      `&key_prefix=…&version=…` when `CACHES` sets `KEY_PREFIX`/`VERSION`; `&client=django-redis` for
//!      django-redis);
//!    - the default `db` engine (the `django_session` table): the database URL, e.g.
//!      `SESSIONKIT_STORE=sqlite:///path/to/db.sqlite3` or `postgres://app@db/app`;
//!    - `cached_db`: `SESSIONKIT_STORE='cached_db:redis://127.0.0.1:6379/0|sqlite:///path/to/db.sqlite3'`.
//! 3. **The cookie reaches both**: the same host (cookies ignore the port, so Django on `127.0.0.1:8000` and this
//!    service on `127.0.0.1:3000` share it) or `SESSION_COOKIE_DOMAIN=.example.com` on both sides for sibling hosts.
//!
//! `SESSIONKIT_DJANGO_DB` is the Django project's database, where the bridge reads `auth_user` (the password field
//! and `is_active`) to verify each login as Django's `get_user()` does.
//!
//! ```text
//! SECRET_KEY='the Django SECRET_KEY' \
//! SESSIONKIT_STORE='redis://127.0.0.1:6379/0?layout=django-cache' \
//! SESSIONKIT_DJANGO_DB=sqlite:///path/to/django/db.sqlite3 \
//!     cargo run -p sessionkit-tower --example django_shared_login
//! ```
//!
//! Log in on the Django site, then open `http://127.0.0.1:3000/whoami` in the same browser:
//! `{"django_user_id":"1","backend":"django.contrib.auth.backends.ModelBackend"}`. `/account` answers 401 to
//! anonymous requests. After a logout on the Django site, or a password change, the service sees an anonymous
//! request too. The demo's `/django/whoami` route (`crates/sessionkit-demo`) is the same handler;
//! docs/django-interop.md has the details.

use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sessionkit::auth::{DjangoAuth, SqlUserSource, UserTable};
use sessionkit::{open_store, SessionStore, Settings};
use sessionkit_tower::{DjangoUser, NotLoggedIn, SessionLayer};

/// `GET /whoami`: `{"django_user_id": "1", "backend": "…"}` for a verified Django login, `{"django_user_id":
/// null}` for anyone else. A login whose `_auth_user_hash` no longer matches the user's password field is logged
/// out (the session is flushed, as Django's `get_user()` does).
pub async fn whoami(user: Result<Option<DjangoUser>, NotLoggedIn>) -> Response {
    match user {
        Ok(Some(user)) => json(serde_json::json!({"django_user_id": user.user_id, "backend": user.backend})),
        Ok(None) => json(serde_json::json!({"django_user_id": null})),
        // The store or the user database failed: 503 (or 400 for a session deleted meanwhile), never "anonymous".
        Err(failure) => failure.into_response(),
    }
}

fn json(value: serde_json::Value) -> Response {
    ([(CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

/// `GET /account`: only for logged-in Django users; anonymous requests get 401 from the extractor.
pub async fn account(user: DjangoUser) -> String {
    format!("account page of Django user {}", user.user_id)
}

/// The service: its routes behind a [`SessionLayer`] over Django's session storage, with the auth bridge.
pub fn router(store: Arc<dyn SessionStore>, settings: Settings, auth: DjangoAuth) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/account", get(account))
        .layer(SessionLayer::new(store, settings).with_django_auth(auth))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SECRET_KEY, SECRET_KEY_FALLBACKS, SESSION_COOKIE_NAME, SESSION_COOKIE_DOMAIN, ...: the Django site's values.
    let settings = Settings::from_env()?;
    if settings.secret_key.is_empty() {
        return Err("set SECRET_KEY to the Django site's SECRET_KEY".into());
    }
    let sessions =
        std::env::var("SESSIONKIT_STORE").unwrap_or_else(|_| "redis://127.0.0.1:6379/0?layout=django-cache".to_owned());
    let django_db = std::env::var("SESSIONKIT_DJANGO_DB").unwrap_or_else(|_| "sqlite://db.sqlite3".to_owned());
    let store =
        open_store(&sessions, &settings).await.map_err(|err| format!("cannot open the session store: {err}"))?;
    let users = SqlUserSource::connect(&django_db, UserTable::default())
        .await
        .map_err(|err| format!("cannot open the Django database: {err}"))?;
    let auth = DjangoAuth::new(&settings, Arc::new(users))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("django_shared_login on http://{}/whoami (sessions: {})", listener.local_addr()?, store.describe());
    axum::serve(listener, router(store, settings, auth)).await?;
    Ok(())
}
