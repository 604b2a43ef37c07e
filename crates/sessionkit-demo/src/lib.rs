//! # sessionkit-demo
//!
//! A small server-rendered web app showing `sessionkit` at work: a per-session visit counter, a login with
//! Django's session keys (`_auth_user_id`, `_auth_user_backend`), a cart kept in the session and an inspector
//! that shows the session as the handler sees it and as the store keeps it. Every form is protected against
//! cross-site requests the way Django does it ([`csrf`]).
//!
//! The binary (`sessionkit-demo --store URL --listen ADDR`) serves [`app::router`], plus `GET /metrics` in
//! Prometheus text format ([`observability`]); tests build the same router in-process.

pub mod app;
pub mod csrf;
pub mod observability;

pub use app::{router, router_for, router_with_django_auth, router_with_options, DemoStore};

/// The `SECRET_KEY` used when none is configured. It is public knowledge, so it protects nothing: it only exists
/// so that sessions signed by one run of the demo still verify after a restart. Set `SECRET_KEY` for real use.
///
/// It is also kept in [`DEV_SECRET_FILE`], in the format of the `sessionkit` CLI's `--secret-file`, so the CLI can
/// read the demo's sessions.
pub const DEV_SECRET_KEY: &str = "sessionkit-demo-insecure-dev-secret";

/// The file holding [`DEV_SECRET_KEY`] for the `sessionkit` CLI (`--secret-file PATH` or
/// `SESSIONKIT_SECRET_FILE=PATH`): `crates/sessionkit-demo/dev-secret.txt` in the source tree, as an absolute path
/// of the checkout the demo was built from.
pub const DEV_SECRET_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dev-secret.txt");

#[cfg(test)]
mod tests {
    /// The file says what the constant says (its first line that is not a comment, as the CLI reads it).
    #[test]
    fn the_dev_secret_file_holds_the_dev_secret() {
        let text = include_str!("../dev-secret.txt");
        let secret = text.lines().find(|line| !line.trim().is_empty() && !line.starts_with('#'));
        assert_eq!(secret, Some(super::DEV_SECRET_KEY));
    }
}
