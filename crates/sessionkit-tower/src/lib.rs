//! # sessionkit-tower
//!
//! A tower [`SessionLayer`] and an axum extractor ([`Session`]) with the behaviour of Django's
//! `SessionMiddleware`:
//!
//! - The session cookie is read on the way in; nothing is loaded until the handler touches the session, and
//!   then it is loaded once.
//! - On the way out: a sent cookie whose session became empty is deleted; a modified (or, with
//!   `SESSION_SAVE_EVERY_REQUEST`, any non-empty) session is saved and its cookie refreshed, unless the response
//!   is a 5xx; `Vary: Cookie` is added whenever the session was touched.
//! - A session deleted by a concurrent request while this one used it answers 400 (Django's
//!   `SessionInterrupted`); an unreachable store answers 503 and is logged, never an empty session.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use sessionkit::{open_store, Settings};
//! use sessionkit_tower::{Session, SessionFailure, SessionLayer};
//!
//! async fn visits(session: Session) -> Result<String, SessionFailure> {
//!     let n: u64 = session.get("visits").await?.unwrap_or(0) + 1;
//!     session.set("visits", n).await?;
//!     Ok(format!("visit number {n}"))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = Settings::with_secret_key("change me");
//! let store = open_store("sqlite://sessions.sqlite3", &settings).await?;
//! let app: Router = Router::new().route("/", get(visits)).layer(SessionLayer::new(store, settings));
//! # Ok(()) }
//! ```
//!
//! ## Examples
//!
//! Two runnable apps in `crates/sessionkit-tower/examples/`, also run in-process by `tests/examples.rs`:
//!
//! - `examples/axum_counter.rs`: the counter above as a complete app on the memory store (or any store URL in
//!   `SESSIONKIT_STORE`): `cargo run -p sessionkit-tower --example axum_counter`.
//! - `examples/django_shared_login.rs`: an axum service that reads the login of a Django site sharing its session
//!   cookie: the same `SECRET_KEY`, Django's sessions in Redis (`?layout=django-cache`) or in the
//!   `django_session` table, and [`DjangoUser`] verified against Django's `auth_user`:
//!   `cargo run -p sessionkit-tower --example django_shared_login`.

mod auth;
mod cookie_header;
mod extract;
mod layer;
mod request_cookie;

pub use auth::{DjangoUser, NotLoggedIn};
pub use cookie_header::{delete_cookie_header, session_cookie_header};
pub use extract::{Session, SessionFailure};
pub use layer::{SessionLayer, SessionService};
