//! # sessionkit-demo
//!
//! A small server-rendered web app showing `sessionkit` at work: a per-session visit counter, a login with
//! Django's session keys (`_auth_user_id`, `_auth_user_backend`), a cart kept in the session and an inspector
//! that shows the session as the handler sees it and as the store keeps it. Every form is protected against
//! cross-site requests the way Django does it ([`csrf`]).
//!
//! The binary (`sessionkit-demo --store URL --listen ADDR`) serves [`app::router`]; tests build the same router
//! in-process.

pub mod app;
pub mod csrf;

pub use app::{router, router_with_django_auth, router_with_options};

/// The `SECRET_KEY` used when none is configured. It is public knowledge, so it protects nothing: it only exists
/// so that sessions signed by one run of the demo still verify after a restart. Set `SECRET_KEY` for real use.
pub const DEV_SECRET_KEY: &str = "sessionkit-demo-insecure-dev-secret";
