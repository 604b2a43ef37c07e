//! The demo's routes and pages: plain server-rendered HTML, no JavaScript.
//!
//! | route | what it does |
//! |-------|--------------|
//! | `GET /` | counts visits in the session (`visits`), shows who is logged in |
//! | `GET /login`, `POST /login` | the login form; two demo users, Django's `_auth_user_id` / `_auth_user_backend` |
//! | `POST /logout` | `flush()`es the session (deletes it and its cookie) |
//! | `GET /cart`, `POST /cart` | a cart kept under `cart` as `{item_id: quantity}` |
//! | `GET /session` | the inspector: key, expiry, data, the stored form, the store |
//! | `POST /session/expiry` | `set_expiry()`: default, browser close, or five minutes of inactivity |
//! | `GET /django/whoami` | the verified Django user of the request ([`DjangoUser`]), when started with a Django database |
//!
//! Every POST must carry the session's CSRF token and come from this site (see [`crate::csrf`]); each form
//! has the token in a hidden field.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::{Map, Value};
use sessionkit::auth::DjangoAuth;
use sessionkit::{Expiry, SessionError, SessionStore, Settings, StoreError};
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
    Item { id: "cheese", name: "Comté, 200 g", price_cents: 690 },
    Item { id: "coffee", name: "Coffee beans, 250 g", price_cents: 1150 },
];

/// Shared state of the handlers.
#[derive(Clone)]
struct AppState {
    store: Arc<dyn SessionStore>,
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
    let settings = Arc::new(settings);
    let mut layer = SessionLayer::new(Arc::clone(&store), Arc::clone(&settings));
    if let Some(auth) = django_auth {
        layer = layer.with_django_auth(auth);
    }
    let state = AppState { store: Arc::clone(&store), settings: Arc::clone(&settings) };
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/cart", get(cart_page).post(cart_update))
        .route("/session", get(inspector))
        .route("/session/expiry", post(set_expiry))
        .route("/django/whoami", get(django_whoami))
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(Arc::new(csrf), crate::csrf::require_csrf))
        .layer(layer)
}

fn json_response(value: Value) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
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

/// What a handler can fail with.
#[derive(Debug)]
pub enum AppError {
    /// A session or store call failed; answered as `sessionkit-tower` answers it (400, 500 or 503).
    Session(SessionFailure),
    /// The request itself is wrong (an unknown cart item, a missing form field); the message is shown.
    BadRequest(String),
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
            AppError::BadRequest(message) => {
                let body = format!(r#"<p class="error">{}</p><p><a href="/">Back home</a></p>"#, esc(&message));
                (StatusCode::BAD_REQUEST, page("Bad request", Nav::Plain, &body)).into_response()
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Layout

/// Escapes text for HTML element content and quoted attribute values.
fn esc(text: &str) -> Cow<'_, str> {
    html_escape::encode_safe(text)
}

/// What the navigation bar says about the visitor.
enum Nav<'a> {
    /// The current user, if any (with a logout button, or a login link), and the CSRF form field of the logout
    /// button (empty when nobody is logged in).
    User(Option<&'a str>, &'a str),
    /// No user information (error pages).
    Plain,
}

/// The shared layout. `body` is HTML the caller built (and escaped); `title` is escaped here.
fn page(title: &str, nav: Nav<'_>, body: &str) -> Html<String> {
    let who = match nav {
        Nav::User(Some(name), csrf) => format!(
            r#"<span>Logged in as <strong>{}</strong></span>
      <form class="inline" method="post" action="/logout">{csrf}<button type="submit">Log out</button></form>"#,
            esc(name)
        ),
        Nav::User(None, _) => r#"<span>Not logged in</span> <a href="/login">Log in</a>"#.to_owned(),
        Nav::Plain => String::new(),
    };
    let title = esc(title);
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} · sessionkit demo</title>
  <style>
    body {{ font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }}
    header {{ display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; border-bottom: 1px solid #ccc; padding-bottom: .5rem; }}
    header .who {{ margin-left: auto; display: flex; gap: .5rem; align-items: center; }}
    form.inline {{ display: inline; }}
    pre {{ background: #f4f4f4; padding: .75rem; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }}
    table {{ border-collapse: collapse; }}
    td, th {{ padding: .25rem .75rem; border-bottom: 1px solid #eee; text-align: left; }}
    .error {{ color: #a00; font-weight: bold; }}
    .note {{ color: #555; font-size: .9rem; }}
  </style>
</head>
<body>
  <header>
    <strong>sessionkit demo</strong>
    <a href="/">Home</a>
    <a href="/cart">Cart</a>
    <a href="/session">Session inspector</a>
    <span class="who">{who}</span>
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

/// RFC 3339, whole seconds.
fn format_time(at: OffsetDateTime) -> String {
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
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

/// The CSRF form field of the navigation's logout button: only a logged-in visitor has one, so an anonymous
/// page creates no token.
async fn nav_csrf(session: &Session, user: Option<&str>) -> Result<String, SessionError> {
    match user {
        Some(_) => crate::csrf::form_field(session).await,
        None => Ok(String::new()),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Handlers

async fn home(session: Session) -> Result<Html<String>, AppError> {
    // A value of another type (written by someone else) restarts the count rather than failing the page.
    let visits = session.get_value(VISITS_KEY).await?.and_then(|v| v.as_u64()).unwrap_or(0).saturating_add(1);
    session.set(VISITS_KEY, visits).await?;
    let user = current_user(&session).await?;
    let greeting = match &user {
        Some(name) => format!("<p>Welcome back, <strong>{}</strong>.</p>", esc(name)),
        None => r#"<p>You are not logged in. <a href="/login">Log in</a> as one of the demo users.</p>"#.to_owned(),
    };
    let body = format!(
        r#"    {greeting}
    <p>Visits to this page in this session: <strong id="visits">{visits}</strong></p>
    <ul>
      <li><a href="/cart">Your cart</a>: kept in the session under <code>cart</code>.</li>
      <li><a href="/session">Session inspector</a>: the session as this request sees it and as the store keeps it.</li>
      <li><a href="/login">Log in</a> (the session key changes) or log out (the session is deleted).</li>
    </ul>
    <p class="note">Sessions use Django's format: a Django site with the same <code>SECRET_KEY</code> and database
    shares them.</p>"#
    );
    let csrf = nav_csrf(&session, user.as_deref()).await?;
    Ok(page("Home", Nav::User(user.as_deref(), &csrf), &body))
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

fn login_form(user: Option<&str>, csrf: &str, error: Option<&str>, username: &str) -> Html<String> {
    let status = match user {
        Some(name) => format!(
            "<p>You are logged in as <strong>{}</strong>. Logging in again changes the session key.</p>",
            esc(name)
        ),
        None => String::new(),
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
        r#"    {status}
    {error}
    <form method="post" action="/login">
      {csrf}
      <p><label>Username <input name="username" value="{username}" autocomplete="username" required></label></p>
      <p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p>
      <p><button type="submit">Log in</button></p>
    </form>
    <p class="note">Demo users (this is a demo, so here are the passwords):</p>
    <ul>{users}</ul>"#,
        username = esc(username),
    );
    page("Log in", Nav::User(user, csrf), &body)
}

async fn login_page(session: Session) -> Result<Html<String>, AppError> {
    let user = current_user(&session).await?;
    let csrf = crate::csrf::form_field(&session).await?;
    Ok(login_form(user.as_deref(), &csrf, None, ""))
}

async fn login(session: Session, Form(form): Form<LoginForm>) -> Result<Response, AppError> {
    let Some(user) = USERS.iter().find(|u| u.username == form.username && u.password == form.password) else {
        tracing::info!(username = ?form.username, "failed login");
        let current = current_user(&session).await?;
        let csrf = crate::csrf::form_field(&session).await?;
        let page = login_form(current.as_deref(), &csrf, Some("Wrong username or password."), &form.username);
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
    let user = current_user(&session).await?;
    let csrf = crate::csrf::form_field(&session).await?;
    let contents = if cart.is_empty() {
        "<p>Your cart is empty.</p>".to_owned()
    } else {
        let rows: String = cart
            .iter()
            .map(|(item, qty)| {
                format!(
                    r#"<tr><td>{}</td><td id="qty-{}">{qty}</td><td>{}</td></tr>"#,
                    esc(item.name),
                    esc(item.id),
                    format_price(item.price_cents.saturating_mul(*qty))
                )
            })
            .collect();
        let total =
            cart.iter().fold(0u64, |sum, (item, qty)| sum.saturating_add(item.price_cents.saturating_mul(*qty)));
        format!(
            r#"<table><tr><th>Item</th><th>Quantity</th><th>Price</th></tr>{rows}<tr><th>Total</th><td></td><th>{}</th></tr></table>"#,
            format_price(total)
        )
    };
    let catalogue: String = CATALOGUE
        .iter()
        .map(|item| {
            format!(
                r#"<tr><td>{name}</td><td>{price}</td><td><form class="inline" method="post" action="/cart">{csrf}<button name="add" value="{id}">Add</button> <button name="remove" value="{id}">Remove</button></form></td></tr>"#,
                name = esc(item.name),
                price = format_price(item.price_cents),
                id = esc(item.id),
            )
        })
        .collect();
    let body = format!(
        r#"    <h2>In your cart</h2>
    {contents}
    <h2>Catalogue</h2>
    <table>{catalogue}</table>
    <p class="note">The cart is stored in the session under <code>cart</code> as <code>{{"item_id": quantity}}</code>.</p>"#
    );
    Ok(page("Cart", Nav::User(user.as_deref(), &csrf), &body))
}

/// The cart form: one of `add` or `remove`, naming an item id.
#[derive(Debug, Deserialize)]
struct CartForm {
    add: Option<String>,
    remove: Option<String>,
}

async fn cart_update(session: Session, Form(form): Form<CartForm>) -> Result<Redirect, AppError> {
    let (id, adding) = match (form.add, form.remove) {
        (Some(id), None) => (id, true),
        (None, Some(id)) => (id, false),
        _ => return Err(AppError::BadRequest("Send exactly one of the fields add or remove.".to_owned())),
    };
    let Some(item) = CATALOGUE.iter().find(|item| item.id == id) else {
        return Err(AppError::BadRequest(format!("There is no item {id:?} in the catalogue.")));
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
        None => return Ok(Redirect::to("/cart")),
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
    Ok(Redirect::to("/cart"))
}

async fn inspector(State(state): State<AppState>, session: Session) -> Result<Html<String>, AppError> {
    // Everything under one lock, data first: loading drops a key the store does not know.
    let (key, data, expiry_date, browser_close) = {
        let mut core = session.lock().await;
        let data: Map<String, Value> = core.items().await?.into_iter().collect();
        let expiry_date = core.expiry_date().await?;
        let browser_close = core.expire_at_browser_close().await?;
        (core.key().cloned(), data, expiry_date, browser_close)
    };
    let user = current_user(&session).await?;
    let data_json = serde_json::to_string_pretty(&Value::Object(data)).unwrap_or_else(|err| format!("<{err}>"));
    let (key_html, raw_html) = match &key {
        None => (
            "<em>no session yet</em>".to_owned(),
            "<p>Nothing is stored for this visitor yet: a session is saved once something is put into it.</p>"
                .to_owned(),
        ),
        Some(key) => {
            let raw = match state.store.load_raw(key).await? {
                None => "<p>The store has no entry under this key (it was deleted meanwhile).</p>".to_owned(),
                Some(raw) => format!(
                    r#"<p>Stored expiry: <span id="stored-expiry">{}</span></p>
    <pre id="raw">{}</pre>"#,
                    raw.expires_at.map(format_time).unwrap_or_else(|| "none kept by this store".to_owned()),
                    esc(&String::from_utf8_lossy(&raw.bytes))
                ),
            };
            (format!(r#"<code id="session-key">{}</code>"#, esc(key.as_str())), raw)
        }
    };
    // Django's get_expiry_date(): counted from now, i.e. the expiry the next save would store.
    let when = if key.is_some() { "Expiry if saved now" } else { "Would expire, if saved now" };
    // The expiry form needs a CSRF token, which lives in the session: offered once there is a session, so that
    // looking at the inspector never creates one.
    let csrf = if key.is_some() { crate::csrf::form_field(&session).await? } else { String::new() };
    let expiry_form = if key.is_some() {
        format!(
            r#"<form method="post" action="/session/expiry">
      {csrf}
      <p>Expiry:
        <button name="expiry" value="default">Default</button>
        <button name="expiry" value="browser-close">At browser close</button>
        <button name="expiry" value="five-minutes">After 5 minutes of inactivity</button>
      </p>
    </form>"#
        )
    } else {
        r#"<p class="note">The expiry can be changed once there is a session (visit <a href="/">Home</a>).</p>"#
            .to_owned()
    };
    let body = format!(
        r#"    <table>
      <tr><th>Session key</th><td>{key_html}</td></tr>
      <tr><th>{when}</th><td id="expiry-date">{expiry}</td></tr>
      <tr><th>Cookie expires at browser close</th><td id="browser-close">{browser_close}</td></tr>
      <tr><th>Cookie</th><td><code>{cookie}</code>, max age {age} s</td></tr>
      <tr><th>Store</th><td><code id="store">{store}</code></td></tr>
    </table>
    {expiry_form}
    <h2>Data, as the handler sees it</h2>
    <pre id="data">{data}</pre>
    <h2>Stored form, as the store keeps it</h2>
    {raw_html}"#,
        expiry = format_time(expiry_date),
        browser_close = if browser_close { "yes" } else { "no" },
        cookie = esc(&state.settings.cookie_name),
        age = state.settings.cookie_age,
        store = esc(&state.store.describe()),
        data = esc(&data_json),
    );
    Ok(page("Session inspector", Nav::User(user.as_deref(), &csrf), &body))
}

/// The expiry form's field.
#[derive(Debug, Deserialize)]
struct ExpiryForm {
    expiry: String,
}

async fn set_expiry(session: Session, Form(form): Form<ExpiryForm>) -> Result<Redirect, AppError> {
    let expiry = match form.expiry.as_str() {
        "default" => Expiry::Default,
        "browser-close" => Expiry::BrowserClose,
        "five-minutes" => Expiry::Seconds(300),
        other => return Err(AppError::BadRequest(format!("Unknown expiry {other:?}."))),
    };
    session.set_expiry(expiry).await?;
    Ok(Redirect::to("/session"))
}

async fn not_found() -> (StatusCode, Html<String>) {
    let body = r#"<p>There is no page here. <a href="/">Back home</a></p>"#;
    (StatusCode::NOT_FOUND, page("Not found", Nav::Plain, body))
}
