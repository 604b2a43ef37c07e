//! The demo's routes and pages: plain server-rendered HTML and one stylesheet, no JavaScript.
//!
//! | route | what it does |
//! |-------|--------------|
//! | `GET /` | counts visits in the session (`visits`), shows who is logged in |
//! | `GET /login`, `POST /login` | the login form; two demo users, Django's `_auth_user_id` / `_auth_user_backend` |
//! | `POST /logout` | `flush()`es the session (deletes it and its cookie) |
//! | `GET /cart`, `POST /cart` | a cart kept under `cart` as `{item_id: quantity}` |
//! | `GET /session` | the inspector: key, expiries, cookie, data, the stored form decoded, the store |
//! | `POST /session/expiry` | `set_expiry()`: default, browser close, or five minutes of inactivity |
//! | `GET /django/whoami` | the verified Django user of the request ([`DjangoUser`]), when started with a Django database |
//! | `GET /static/style.css` | the stylesheet |
//!
//! Every page, error pages included, says in its top bar whether the visitor is signed in (`id="auth-state"`).
//! Every POST must carry the session's CSRF token and come from this site (see [`crate::csrf`]); each form
//! has the token in a hidden field.

mod inspector;

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::{Map, Value};
use sessionkit::auth::DjangoAuth;
use sessionkit::codec::signing::{token_timestamp, Signer};
use sessionkit::codec::{CodecError, DecodeLimits, SESSION_SALT, SIGNED_COOKIES_SALT};
use sessionkit::store::redis::config::{Layout, RedisOptions};
use sessionkit::store::redis::{RedisStore, ServerTtl, ValueHeader};
use sessionkit::store::{without_wrapper_options, RawSession};
use sessionkit::{open_store, Expiry, SessionError, SessionKey, SessionStore, Settings, StoreError};
use sessionkit_tower::{DjangoUser, NotLoggedIn, Session, SessionFailure, SessionLayer};

use crate::csrf::CsrfPolicy;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Django's session key for the logged-in user's primary key (`django.contrib.auth.SESSION_KEY`).
pub const AUTH_USER_ID_KEY: &str = "_auth_user_id";
/// Django's session key for the authentication backend's dotted path (`BACKEND_SESSION_KEY`).
pub const AUTH_USER_BACKEND_KEY: &str = "_auth_user_backend";
/// The backend recorded at login: Django's default, so a Django site sharing the store accepts the login's shape.
pub const MODEL_BACKEND: &str = "django.contrib.auth.backends.ModelBackend";
/// The session key of the visit counter.
pub const VISITS_KEY: &str = "visits";
/// The session key of the cart (`{item_id: quantity}`).
pub const CART_KEY: &str = "cart";
/// The stylesheet, served at `/static/style.css`.
pub const STYLESHEET: &str = include_str!("style.css");

/// A demo user. The passwords are shown on the login page: this is a demo, not an authentication system.
struct User {
    id: &'static str,
    username: &'static str,
    password: &'static str,
}

const USERS: [User; 2] = [
    User { id: "1", username: "alice", password: "alice-password" },
    User { id: "2", username: "bob", password: "bob-password" },
];

/// Something that can go into the cart.
struct Item {
    id: &'static str,
    name: &'static str,
    price_cents: u64,
}

const CATALOGUE: [Item; 4] = [
    Item { id: "apple", name: "Apple", price_cents: 45 },
    Item { id: "bread", name: "Sourdough bread", price_cents: 420 },
    Item { id: "cheese", name: "Comté, 200\u{a0}g", price_cents: 690 },
    Item { id: "coffee", name: "Coffee beans, 250\u{a0}g", price_cents: 1150 },
];

/// The demo's session store: the store the app uses and, when the URL names a Redis server, a typed handle on the
/// same server for the inspector (where a session lives, the TTL Redis reports).
#[derive(Clone, Debug)]
pub struct DemoStore {
    /// The store the session layer uses.
    pub store: Arc<dyn SessionStore>,
    /// The same Redis store (the same connection when the URL has no `failure_policy` / `merge` option, else a
    /// second connection to the same server), for inspection only.
    pub redis: Option<Arc<RedisStore>>,
}

impl DemoStore {
    /// Opens the store at `url` (any URL [`open_store`] takes).
    pub async fn open(url: &str, settings: &Settings) -> Result<DemoStore, StoreError> {
        let bare = without_wrapper_options(url)?;
        if RedisOptions::from_url(&bare).is_err() {
            return Ok(DemoStore { store: open_store(url, settings).await?, redis: None });
        }
        let redis = Arc::new(RedisStore::connect(&bare).await?);
        let store: Arc<dyn SessionStore> =
            if bare == url { Arc::clone(&redis) as Arc<dyn SessionStore> } else { open_store(url, settings).await? };
        Ok(DemoStore { store, redis: Some(redis) })
    }
}

impl From<Arc<dyn SessionStore>> for DemoStore {
    fn from(store: Arc<dyn SessionStore>) -> Self {
        DemoStore { store, redis: None }
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
struct AppState {
    store: DemoStore,
    settings: Arc<Settings>,
}

/// The demo app: all routes, with a [`SessionLayer`] over `store` configured by `settings`.
pub fn router(store: Arc<dyn SessionStore>, settings: Settings) -> Router {
    router_with_django_auth(store, settings, None)
}

/// [`router`], plus the Django auth bridge: with `django_auth`, `GET /django/whoami` names the Django user
/// logged in on the shared session (a login made on the Django site is recognised here).
pub fn router_with_django_auth(
    store: Arc<dyn SessionStore>,
    settings: Settings,
    django_auth: Option<DjangoAuth>,
) -> Router {
    let csrf = CsrfPolicy::new(&settings, "");
    router_with_options(store, settings, django_auth, csrf)
}

/// [`router_with_django_auth`] with the CSRF policy given (trusted origins behind a proxy, see [`CsrfPolicy`]).
pub fn router_with_options(
    store: Arc<dyn SessionStore>,
    settings: Settings,
    django_auth: Option<DjangoAuth>,
    csrf: CsrfPolicy,
) -> Router {
    router_for(DemoStore::from(store), settings, django_auth, csrf)
}

/// [`router_with_options`] over a [`DemoStore`]: with a Redis handle, the inspector also shows where the session
/// lives in Redis and the TTL Redis reports.
pub fn router_for(store: DemoStore, settings: Settings, django_auth: Option<DjangoAuth>, csrf: CsrfPolicy) -> Router {
    let settings = Arc::new(settings);
    // Every session event (login, logout, revocation, expiry by a lifetime rule, merged writes) goes to the log,
    // as an audit log would receive it (target `sessionkit_demo::audit`).
    let mut layer = SessionLayer::new(Arc::clone(&store.store), Arc::clone(&settings)).with_audit(Arc::new(
        |event: &sessionkit::audit::AuditEvent| {
            tracing::info!(target: "sessionkit_demo::audit", kind = event.kind(), event = ?event, "session event");
        },
    ));
    if let Some(auth) = django_auth {
        layer = layer.with_django_auth(auth);
    }
    let state = AppState { store, settings: Arc::clone(&settings) };
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/cart", get(cart_page).post(cart_update))
        .route("/session", get(inspector::inspector))
        .route("/session/expiry", post(inspector::set_expiry))
        .route("/django/whoami", get(django_whoami))
        .route("/static/style.css", get(stylesheet))
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(Arc::new(csrf), crate::csrf::require_csrf))
        .layer(layer)
}

fn json_response(value: Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=300")], STYLESHEET)
        .into_response()
}

/// `GET /django/whoami`: `{"django_user_id": "1", "backend": "..."}` for a verified Django login, `{"django_user_id":
/// null}` for anyone else. A session whose `_auth_user_hash` no longer matches (the password changed) is
/// flushed, as Django's `get_user()` does. Answers 404 when the demo runs without `--django-db`.
async fn django_whoami(user: Result<Option<DjangoUser>, NotLoggedIn>) -> Response {
    match user {
        Ok(Some(user)) => json_response(serde_json::json!({"django_user_id": user.user_id, "backend": user.backend})),
        Ok(None) => json_response(serde_json::json!({"django_user_id": null})),
        Err(NotLoggedIn::AuthMissing) => (
            StatusCode::NOT_FOUND,
            "Not Found: start the demo with --django-db URL (the Django project's database) to use the auth bridge.",
        )
            .into_response(),
        Err(other) => other.into_response(),
    }
}

/// What a handler can fail with: a session or store call failed; answered as `sessionkit-tower` answers it (400,
/// 500 or 503). A bad request (an unknown cart item) is a page of its own ([`error_page`]).
#[derive(Debug)]
pub enum AppError {
    /// A session or store call failed.
    Session(SessionFailure),
}

impl From<SessionFailure> for AppError {
    fn from(failure: SessionFailure) -> Self {
        AppError::Session(failure)
    }
}

impl From<SessionError> for AppError {
    fn from(err: SessionError) -> Self {
        AppError::Session(SessionFailure::from(err))
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        AppError::from(SessionError::from(err))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::Session(failure) => failure.into_response(),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Layout

/// Escapes text for HTML element content and quoted attribute values.
fn esc(text: &str) -> Cow<'_, str> {
    html_escape::encode_safe(text)
}

/// Who is looking, for the top bar: the signed-in user, if any, and the CSRF form field of the logout button
/// (empty when nobody is signed in; `None` on a page that must not make one, which then has no logout button).
struct Visitor {
    user: Option<String>,
    csrf: Option<String>,
}

impl Visitor {
    /// The visitor of `session`. Only a signed-in visitor gets a CSRF token (for the logout button), so an
    /// anonymous page creates no session.
    async fn of(session: &Session) -> Result<Visitor, SessionError> {
        let user = current_user(session).await?;
        let csrf = match user {
            Some(_) => crate::csrf::form_field(session).await?,
            None => String::new(),
        };
        Ok(Visitor { user, csrf: Some(csrf) })
    }

    /// [`Visitor::of`] without writing the session: a signed-in visitor whose session holds no CSRF secret yet
    /// gets no logout button.
    async fn without_writes(session: &Session) -> Result<Visitor, SessionError> {
        let user = current_user(session).await?;
        let csrf = match user {
            Some(_) => crate::csrf::existing_form_field(session).await?,
            None => Some(String::new()),
        };
        Ok(Visitor { user, csrf })
    }

    /// The visitor of `session`, with the CSRF field `csrf` the page has anyway (for its own forms).
    async fn with_form(session: &Session, csrf: String) -> Result<Visitor, SessionError> {
        Ok(Visitor { user: current_user(session).await?, csrf: Some(csrf) })
    }

    /// The CSRF field of the page's forms.
    fn csrf(&self) -> &str {
        self.csrf.as_deref().unwrap_or_default()
    }
}

/// The shared layout. `body` is HTML the caller built (and escaped); `title` is escaped here. `path` marks the
/// current navigation link.
fn page(title: &str, path: &str, visitor: &Visitor, body: &str) -> Html<String> {
    let who = match (&visitor.user, &visitor.csrf) {
        (Some(name), Some(csrf)) => format!(
            r#"<div class="who signed-in" id="auth-state" data-signed-in="yes">
      <span>Signed in as <strong>{}</strong></span><span class="sep" aria-hidden="true">·</span>
      <form class="inline" method="post" action="/logout">{csrf}<button class="link" type="submit">Log out</button></form>
    </div>"#,
            esc(name),
        ),
        (Some(name), None) => format!(
            r#"<div class="who signed-in" id="auth-state" data-signed-in="yes">
      <span>Signed in as <strong>{}</strong></span>
    </div>"#,
            esc(name),
        ),
        (None, _) => r#"<div class="who signed-out" id="auth-state" data-signed-in="no">
      <span>Not signed in</span><span class="sep" aria-hidden="true">·</span><a href="/login">Log in</a>
    </div>"#
            .to_owned(),
    };
    let link = |href: &str, label: &str| {
        let current = if href == path { r#" aria-current="page""# } else { "" };
        format!(r#"<a href="{href}"{current}>{label}</a>"#)
    };
    let nav = [link("/", "Home"), link("/cart", "Cart"), link("/session", "Session inspector")].concat();
    let title = esc(title);
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} · sessionkit demo</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/static/style.css">
</head>
<body>
  <header class="topbar">
    <div class="topbar-inner">
    <a class="brand" href="/">sessionkit<small>demo</small></a>
    <nav class="nav">{nav}</nav>
    {who}
    </div>
  </header>
  <main>
    <h1>{title}</h1>
{body}
  </main>
</body>
</html>
"#
    ))
}

/// A page with an error status, with the visitor's signed-in state in the top bar like every page.
pub(crate) async fn error_page(session: &Session, status: StatusCode, title: &str, body: &str) -> Response {
    match Visitor::of(session).await {
        Ok(visitor) => (status, page(title, "", &visitor, body)).into_response(),
        Err(err) => SessionFailure::from(err).into_response(),
    }
}

/// [`error_page`] that writes nothing to the session (the CSRF failure page).
pub(crate) async fn error_page_without_writes(
    session: &Session,
    status: StatusCode,
    title: &str,
    body: &str,
) -> Response {
    match Visitor::without_writes(session).await {
        Ok(visitor) => (status, page(title, "", &visitor, body)).into_response(),
        Err(err) => SessionFailure::from(err).into_response(),
    }
}

async fn bad_request(session: &Session, message: &str) -> Response {
    let body =
        format!(r#"    <div class="card"><p class="error">{}</p><p><a href="/">Back home</a></p></div>"#, esc(message));
    error_page(session, StatusCode::BAD_REQUEST, "Bad request", &body).await
}

/// RFC 3339, whole seconds.
fn format_time(at: OffsetDateTime) -> String {
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

/// A duration in seconds for people: `14 d`, `4 min 59 s`, ...
fn format_seconds(total: i64) -> String {
    if total < 0 {
        return format!("{total} s");
    }
    let (d, h, m, s) = (total / 86_400, total / 3600 % 24, total / 60 % 60, total % 60);
    let parts: Vec<String> = [(d, "d"), (h, "h"), (m, "min"), (s, "s")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n} {unit}"))
        .collect();
    if parts.is_empty() {
        "0 s".to_owned()
    } else {
        parts.join(" ")
    }
}

fn format_price(cents: u64) -> String {
    format!("€{}.{:02}", cents / 100, cents % 100)
}

// ---------------------------------------------------------------------------------------------------------------
// Users

/// The display name of the logged-in user, from Django's `_auth_user_id` (a string; a number is accepted too).
/// An id that is not one of the demo users (a session written by a Django site, say) shows as `user #ID`.
async fn current_user(session: &Session) -> Result<Option<String>, SessionError> {
    let id = match session.get_value(AUTH_USER_ID_KEY).await? {
        Some(Value::String(id)) => id,
        Some(Value::Number(id)) => id.to_string(),
        _ => return Ok(None),
    };
    Ok(Some(match USERS.iter().find(|user| user.id == id) {
        Some(user) => user.username.to_owned(),
        None => format!("user #{id}"),
    }))
}

// ---------------------------------------------------------------------------------------------------------------
// Handlers

async fn home(session: Session) -> Result<Html<String>, AppError> {
    // A value of another type (written by someone else) restarts the count rather than failing the page.
    let visits = session.get_value(VISITS_KEY).await?.and_then(|v| v.as_u64()).unwrap_or(0).saturating_add(1);
    session.set(VISITS_KEY, visits).await?;
    let visitor = Visitor::of(&session).await?;
    let greeting = match &visitor.user {
        Some(name) => format!(
            r#"<p>Welcome back, <strong>{}</strong>. Your login lives in the session as Django keeps it
      (<code>_auth_user_id</code>, <code>_auth_user_backend</code>).</p>
      <p class="note">Log out (top right) deletes the session and its cookie.</p>"#,
            esc(name)
        ),
        None => r#"<p>You are not signed in. Log in as one of the demo users: the session key changes at login, as
      Django's <code>login()</code> does.</p>
      <p><a class="button" href="/login">Log in</a></p>"#
            .to_owned(),
    };
    let body = format!(
        r#"    <div class="grid">
      <section class="card">
        <h2>Your session</h2>
        {greeting}
      </section>
      <section class="card">
        <h2>Visit counter</h2>
        <p class="big" id="visits">{visits}</p>
        <p class="note">Visits to this page in this session, kept under <code>visits</code>.</p>
      </section>
    </div>
    <section class="card">
      <h2>Explore</h2>
      <ul>
        <li><a href="/cart">Cart</a>: kept in the session under <code>cart</code>.</li>
        <li><a href="/session">Session inspector</a>: the session as this request sees it, and its stored form
        decoded.</li>
      </ul>
      <p class="note">Sessions use Django's format: a Django site with the same <code>SECRET_KEY</code> and store
      shares them.</p>
    </section>"#
    );
    Ok(page("Home", "/", &visitor, &body))
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

fn login_form(visitor: &Visitor, error: Option<&str>, username: &str) -> Html<String> {
    let (title, status, button) = match &visitor.user {
        Some(name) => (
            "Switch user",
            format!(
                r#"<p>You are signed in as <strong>{}</strong>. Signing in as another user starts a new session;
      signing in again as the same user keeps the data and changes the session key.</p>"#,
                esc(name)
            ),
            "Switch user",
        ),
        None => ("Log in", String::new(), "Log in"),
    };
    let error = match error {
        Some(message) => format!(r#"<p class="error">{}</p>"#, esc(message)),
        None => String::new(),
    };
    let users: String = USERS
        .iter()
        .map(|u| format!("<li><code>{}</code> / <code>{}</code></li>", esc(u.username), esc(u.password)))
        .collect();
    let body = format!(
        r#"    <section class="card">
    {status}
    {error}
    <form method="post" action="/login">
      {csrf}
      <p><label for="username">Username</label><input id="username" name="username" value="{username}" autocomplete="username" required></p>
      <p><label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required></p>
      <p><button type="submit">{button}</button></p>
    </form>
    </section>
    <section class="card">
    <p class="note">Demo users (this is a demo, so here are the passwords):</p>
    <ul>{users}</ul>
    </section>"#,
        csrf = visitor.csrf(),
        username = esc(username),
    );
    page(title, "/login", visitor, &body)
}

async fn login_page(session: Session) -> Result<Html<String>, AppError> {
    let csrf = crate::csrf::form_field(&session).await?;
    let visitor = Visitor::with_form(&session, csrf).await?;
    Ok(login_form(&visitor, None, ""))
}

async fn login(session: Session, Form(form): Form<LoginForm>) -> Result<Response, AppError> {
    let Some(user) = USERS.iter().find(|u| u.username == form.username && u.password == form.password) else {
        tracing::info!(username = ?form.username, "failed login");
        let csrf = crate::csrf::form_field(&session).await?;
        let visitor = Visitor::with_form(&session, csrf).await?;
        let page = login_form(&visitor, Some("Wrong username or password."), &form.username);
        return Ok(page.into_response());
    };
    let mut core = session.lock().await;
    // As Django's login(): another user's session is not reused, and the key always changes (session fixation).
    let previous = core.get_value(AUTH_USER_ID_KEY).await?;
    if previous.is_some_and(|id| id != user.id) {
        core.flush().await?;
    }
    core.cycle_key().await?;
    // As Django's login() rotates the CSRF token: a token learnt before the login is worthless after it.
    crate::csrf::rotate(&mut core).await?;
    core.set(AUTH_USER_ID_KEY, user.id).await?;
    core.set(AUTH_USER_BACKEND_KEY, MODEL_BACKEND).await?;
    tracing::info!(username = user.username, "logged in");
    Ok(Redirect::to("/").into_response())
}

async fn logout(session: Session) -> Result<Redirect, AppError> {
    session.flush().await?;
    Ok(Redirect::to("/"))
}

/// The cart as stored: only known items with a positive quantity, in catalogue order. Anything else in a stored
/// cart (written by another program, or an item since removed from the catalogue) is ignored.
async fn load_cart(session: &Session) -> Result<Vec<(&'static Item, u64)>, SessionError> {
    let stored = match session.get_value(CART_KEY).await? {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    Ok(CATALOGUE
        .iter()
        .filter_map(|item| stored.get(item.id).and_then(Value::as_u64).filter(|qty| *qty > 0).map(|qty| (item, qty)))
        .collect())
}

async fn cart_page(session: Session) -> Result<Html<String>, AppError> {
    let cart = load_cart(&session).await?;
    let csrf = crate::csrf::form_field(&session).await?;
    let visitor = Visitor::with_form(&session, csrf).await?;
    let csrf = visitor.csrf();
    let contents = if cart.is_empty() {
        "<p>Your cart is empty.</p>".to_owned()
    } else {
        let rows: String = cart
            .iter()
            .map(|(item, qty)| {
                format!(
                    r#"<tr><td>{}</td><td class="num" id="qty-{}">{qty}</td><td class="num">{}</td></tr>"#,
                    esc(item.name),
                    esc(item.id),
                    format_price(item.price_cents.saturating_mul(*qty))
                )
            })
            .collect();
        let total =
            cart.iter().fold(0u64, |sum, (item, qty)| sum.saturating_add(item.price_cents.saturating_mul(*qty)));
        format!(
            r#"<table><tr><th>Item</th><th class="num">Qty</th><th class="num">Price</th></tr>{rows}<tr><th>Total</th><td></td><th class="num" id="cart-total">{}</th></tr></table>"#,
            format_price(total)
        )
    };
    let catalogue: String = CATALOGUE
        .iter()
        .map(|item| {
            format!(
                r#"<tr><td>{name}<br><span class="note">{price}</span></td><td class="num"><form class="inline" method="post" action="/cart">{csrf}<button class="small" name="add" value="{id}" aria-label="Add {name}">Add</button> <button class="small secondary" name="remove" value="{id}" aria-label="Remove {name}">Remove</button></form></td></tr>"#,
                name = esc(item.name),
                price = format_price(item.price_cents),
                id = esc(item.id),
            )
        })
        .collect();
    let body = format!(
        r#"    <section class="card">
    <h2>In your cart</h2>
    {contents}
    </section>
    <section class="card">
    <h2>Catalogue</h2>
    <table>{catalogue}</table>
    </section>
    <p class="note">The cart is stored in the session under <code>cart</code> as <code>{{"item_id": quantity}}</code>.</p>"#
    );
    Ok(page("Cart", "/cart", &visitor, &body))
}

/// The cart form: one of `add` or `remove`, naming an item id.
#[derive(Debug, Deserialize)]
struct CartForm {
    add: Option<String>,
    remove: Option<String>,
}

async fn cart_update(session: Session, Form(form): Form<CartForm>) -> Result<Response, AppError> {
    let (id, adding) = match (form.add, form.remove) {
        (Some(id), None) => (id, true),
        (None, Some(id)) => (id, false),
        _ => return Ok(bad_request(&session, "Send exactly one of the fields add or remove.").await),
    };
    let Some(item) = CATALOGUE.iter().find(|item| item.id == id) else {
        return Ok(bad_request(&session, &format!("There is no item {id:?} in the catalogue.")).await);
    };
    let mut cart = load_cart(&session).await?;
    match cart.iter().position(|(entry, _)| entry.id == item.id) {
        Some(index) if adding => cart[index].1 = cart[index].1.saturating_add(1),
        Some(index) if cart[index].1 > 1 => cart[index].1 -= 1,
        Some(index) => {
            cart.remove(index);
        }
        None if adding => cart.push((item, 1)),
        // Removing something that is not in the cart changes nothing, so nothing is written.
        None => return Ok(Redirect::to("/cart").into_response()),
    }
    if cart.is_empty() {
        session.pop(CART_KEY).await?;
    } else {
        // Catalogue order, whatever order things were added in.
        let stored: Map<String, Value> = CATALOGUE
            .iter()
            .filter_map(|c| {
                cart.iter().find(|(e, _)| e.id == c.id).map(|(_, qty)| (c.id.to_owned(), Value::from(*qty)))
            })
            .collect();
        session.set(CART_KEY, Value::Object(stored)).await?;
    }
    Ok(Redirect::to("/cart").into_response())
}

async fn not_found(session: Session, uri: Uri) -> Response {
    let body = format!(
        r#"    <section class="card"><p>There is no page at <code>{}</code>.</p><p><a href="/">Back home</a></p></section>"#,
        esc(uri.path())
    );
    error_page(&session, StatusCode::NOT_FOUND, "Not found", &body).await
}
