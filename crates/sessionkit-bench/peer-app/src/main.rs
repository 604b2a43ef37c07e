//! The peer app of `sessionkit-bench http`: `examples/http_app.rs`'s handler on tower-sessions 0.14 with
//! tower-sessions-redis-store 0.16 (fred), set up as their READMEs show: a pool of 6 connections,
//! `with_secure(false)` for plain HTTP, two weeks of inactivity (Django's default cookie age).
//!
//! `GET /` loads the session, adds one to `visits` and saves it; a first visit (no session yet) stores the same
//! login-like session as `sessionkit_bench::login::login_session` (this crate includes that file) for the user in
//! `?user=N`.
//!
//! ```text
//! cargo build --release --manifest-path crates/sessionkit-bench/peer-app/Cargo.toml
//! target/release/tower-sessions-app --app tower-sessions --store redis://127.0.0.1:6400/ --listen 127.0.0.1:8400
//! ```

use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use clap::Parser;
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};
use tower_sessions_redis_store::RedisStore;

/// `sessionkit_bench::login`, the very file: the same login-like session as sessionkit's rows store.
#[path = "../../src/login.rs"]
mod login;

use login::VISITS_KEY;

/// The same arguments as `examples/http_app.rs` (`--app` must be `tower-sessions`).
#[derive(Debug, Parser)]
struct Args {
    /// tower-sessions (the only app this binary serves).
    #[arg(long, default_value = "tower-sessions")]
    app: String,
    /// The Redis server's URL.
    #[arg(long, default_value = "redis://127.0.0.1:6379/0")]
    store: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8400")]
    listen: String,
}

/// `?user=N`: whose login a first visit stores.
#[derive(Debug, serde::Deserialize)]
struct VisitQuery {
    user: Option<u64>,
}

async fn visit(session: Session, Query(query): Query<VisitQuery>) -> Result<String, (StatusCode, String)> {
    let failed = |err: tower_sessions::session::Error| (StatusCode::INTERNAL_SERVER_ERROR, err.to_string());
    let visits = match session.get::<u64>(VISITS_KEY).await.map_err(failed)? {
        Some(visits) => visits + 1,
        None => {
            // Built before the first await: the thread's RNG must not be held across one (the future is Send).
            let payload = login::login_session(&mut rand::thread_rng(), query.user.unwrap_or(12345));
            for (key, value) in payload {
                session.insert(&key, value).await.map_err(failed)?;
            }
            1
        }
    };
    session.insert(VISITS_KEY, visits).await.map_err(failed)?;
    Ok(format!("visit number {visits}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.app != "tower-sessions" {
        return Err(format!("this binary serves --app tower-sessions only, not {:?}", args.app).into());
    }
    let pool = Pool::new(Config::from_url(&args.store)?, None, None, None, 6)?;
    // fred's connection task: keeps the pool connected for as long as the app runs.
    let _connection_task = pool.connect();
    pool.wait_for_connect().await?;
    let layer = SessionManagerLayer::new(RedisStore::new(pool))
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::weeks(2)));
    let app = Router::new().route("/", get(visit)).layer(layer);
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    eprintln!("tower-sessions-app listening on http://{}/", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
