//! The web app `sessionkit-bench http` drives with wrk: one axum route, `GET /`, with the same handler shape in
//! every configuration.
//!
//! - `--app ceiling`: no sessions at all (the ceiling: axum, the query and the counter, minus the session).
//! - `--app sessionkit`: sessionkit-tower's `SessionLayer` over `open_store(--store)`, as the README shows.
//!
//! The peer, tower-sessions, is the same handler in `peer-app/` (a crate outside the workspace; see there why).
//!
//! The handler loads the session, adds one to `visits` and saves it. A first visit (no session yet) stores the
//! login-like payload of `sessionkit_bench::workload::login_session` for the user in `?user=N` instead.
//!
//! ```text
//! cargo run --release -p sessionkit-bench --example http_app -- --app sessionkit \
//!     --store 'redis://127.0.0.1:6400/?layout=string&user_index=false' --listen 127.0.0.1:8400
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::Query;
use axum::routing::get;
use axum::Router;
use clap::Parser;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;
use sessionkit::{open_store, Settings};
use sessionkit_bench::workload::{login_session, FIRST_USER_ID, VISITS_KEY};

/// The app behind `sessionkit-bench http`.
#[derive(Debug, Parser)]
struct Args {
    /// ceiling or sessionkit.
    #[arg(long)]
    app: String,
    /// sessionkit's store URL, with its options.
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

/// The login-like payload of a first visit.
fn first_visit_payload(query: &VisitQuery) -> serde_json::Map<String, Value> {
    login_session(&mut StdRng::from_entropy(), query.user.unwrap_or(FIRST_USER_ID))
}

/// `--app ceiling`: the handler without a session (a process-wide counter stands in for the session's).
async fn ceiling(counter: Arc<AtomicU64>, Query(query): Query<VisitQuery>) -> String {
    let _user_of_a_first_visit = query.user;
    let visits = counter.fetch_add(1, Ordering::Relaxed) + 1;
    format!("visit number {visits}")
}

/// `--app sessionkit`.
async fn sessionkit_visit(
    session: sessionkit_tower::Session,
    Query(query): Query<VisitQuery>,
) -> Result<String, sessionkit_tower::SessionFailure> {
    let visits = match session.get::<u64>(VISITS_KEY).await? {
        Some(visits) => {
            session.set(VISITS_KEY, visits + 1).await?;
            visits + 1
        }
        None => {
            session.update(first_visit_payload(&query)).await?;
            session.set(VISITS_KEY, 1).await?;
            1
        }
    };
    Ok(format!("visit number {visits}"))
}

/// `--app sessionkit-read`: a request that reads its session and changes nothing (what most requests of a
/// site do); a first visit stores the login-like session as in `sessionkit_visit`.
async fn sessionkit_read(
    session: sessionkit_tower::Session,
    Query(query): Query<VisitQuery>,
) -> Result<String, sessionkit_tower::SessionFailure> {
    let visits = match session.get::<u64>(VISITS_KEY).await? {
        Some(visits) => visits,
        None => {
            session.update(first_visit_payload(&query)).await?;
            session.set(VISITS_KEY, 1).await?;
            1
        }
    };
    Ok(format!("visit number {visits}"))
}

async fn router(args: &Args) -> Result<Router, Box<dyn std::error::Error>> {
    Ok(match args.app.as_str() {
        "ceiling" => {
            let counter = Arc::new(AtomicU64::new(0));
            Router::new().route("/", get(move |query| ceiling(Arc::clone(&counter), query)))
        }
        "sessionkit" => {
            let settings = Settings::with_secret_key(sessionkit_bench::SETTINGS_SECRET);
            let store = open_store(&args.store, &settings).await?;
            Router::new().route("/", get(sessionkit_visit)).layer(sessionkit_tower::SessionLayer::new(store, settings))
        }
        "sessionkit-read" => {
            let settings = Settings::with_secret_key(sessionkit_bench::SETTINGS_SECRET);
            let store = open_store(&args.store, &settings).await?;
            Router::new().route("/", get(sessionkit_read)).layer(sessionkit_tower::SessionLayer::new(store, settings))
        }
        other => {
            return Err(format!(
                "--app {other:?} is not ceiling, sessionkit or sessionkit-read (tower-sessions: peer-app/)"
            )
            .into())
        }
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let app = router(&args).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    eprintln!("http_app {} listening on http://{}/", args.app, listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
