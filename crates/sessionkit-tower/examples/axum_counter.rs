//! A plain axum app with sessionkit-tower: a visit counter kept in the session.
//!
//! ```text
//! cargo run -p sessionkit-tower --example axum_counter                      # sessions in memory
//! SECRET_KEY=change-me SESSIONKIT_STORE=sqlite://counter.sqlite3 \
//!     cargo run -p sessionkit-tower --example axum_counter                  # sessions in a SQLite file
//! curl -c jar -b jar http://127.0.0.1:3000/     # "visit number 1", then 2, 3, ... with the same cookie jar
//! ```
//!
//! `SESSIONKIT_STORE` takes any store URL (`redis://127.0.0.1:6379/0`, `postgres://…`, `file:///tmp/sessions`, see
//! docs/configuration.md); `SECRET_KEY`, `SESSION_COOKIE_AGE` and the other Django session settings come from the
//! environment. `crates/sessionkit-tower/tests/examples.rs` runs [`router`] in-process.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use sessionkit::{open_store, SecretKey, SessionStore, Settings};
use sessionkit_tower::{Session, SessionFailure, SessionLayer};

/// The session key the counter lives under.
pub const VISITS_KEY: &str = "visits";

/// `GET /`: adds one to this browser's counter. The first visit creates the session (and sets the cookie); each
/// later one loads it once, changes it, and the layer saves it after the handler.
pub async fn count(session: Session) -> Result<String, SessionFailure> {
    let visits: u64 = session.get(VISITS_KEY).await?.unwrap_or(0) + 1;
    session.set(VISITS_KEY, visits).await?;
    Ok(format!("visit number {visits}"))
}

/// `POST /reset`: forgets the session (deletes it from the store and its cookie), as a logout would.
pub async fn reset(session: Session) -> Result<&'static str, SessionFailure> {
    session.flush().await?;
    Ok("forgotten")
}

/// The app: the two routes behind a [`SessionLayer`] over `store`.
pub fn router(store: Arc<dyn SessionStore>, settings: Settings) -> Router {
    Router::new()
        .route("/", get(count))
        .route("/reset", axum::routing::post(reset))
        .layer(SessionLayer::new(store, settings))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut settings = Settings::from_env()?;
    if settings.secret_key.is_empty() {
        // The memory store signs nothing; the SQL and file stores refuse to start without a secret.
        eprintln!("SECRET_KEY is not set: using a public example secret (set SECRET_KEY for anything real)");
        settings.secret_key = SecretKey::from("axum-counter-example-secret-not-for-production");
    }
    let url = std::env::var("SESSIONKIT_STORE").unwrap_or_else(|_| "memory://".to_owned());
    let store = open_store(&url, &settings).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("axum_counter on http://{}/ (session store: {})", listener.local_addr()?, store.describe());
    axum::serve(listener, router(store, settings)).await?;
    Ok(())
}
