//! `sessionkit-demo`: serves the demo app (see the library's [`sessionkit_demo::app`]).
//!
//! ```text
//! sessionkit-demo [--store URL] [--django-db URL] [--listen ADDR]
//! ```
//!
//! Session settings come from Django-named environment variables (`SECRET_KEY`, `SESSION_COOKIE_AGE`, ...).

use std::error::Error;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches, Parser};
use sessionkit::auth::{DjangoAuth, SqlUserSource, UserTable};
use sessionkit::{SecretKey, Settings};
use sessionkit_demo::csrf::CsrfPolicy;
use sessionkit_demo::observability;
use sessionkit_demo::{router_for, DemoStore, DEV_SECRET_FILE, DEV_SECRET_KEY};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// Demo web app for sessionkit: login, visit counter, cart and a session inspector.
///
/// Session settings are read from environment variables with Django's names (SECRET_KEY, SESSION_COOKIE_AGE,
/// SESSION_COOKIE_SECURE, SESSION_EXPIRE_AT_BROWSER_CLOSE, ...). Behind a proxy that changes the host, list the
/// public origins in CSRF_TRUSTED_ORIGINS (comma-separated, e.g. https://demo.example.com) as in Django. Logging
/// follows RUST_LOG (default: info).
#[derive(Debug, Parser)]
#[command(name = "sessionkit-demo", version)]
struct Cli {
    /// Session store URL: any of the forms listed below.
    #[arg(long, value_name = "URL", env = "SESSIONKIT_STORE", default_value = "sqlite://demo.sqlite3")]
    store: String,
    /// The Django project's database (`sqlite://db.sqlite3`, `postgres://…`, `mysql://…`): enables the Django
    /// auth bridge, so `GET /django/whoami` names the Django user logged in on the shared session cookie.
    #[arg(long, value_name = "URL", env = "SESSIONKIT_DJANGO_DB")]
    django_db: Option<String>,
    /// Address to listen on (`HOST:PORT`; port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8000")]
    listen: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let command = Cli::command().after_help(after_help());
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|err| err.exit());
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn Error>> {
    // Before the store opens, so that everything it records is scraped.
    let metrics = observability::install_prometheus();
    let mut settings = Settings::from_env()?;
    if settings.secret_key.is_empty() {
        tracing::warn!(
            "SECRET_KEY is not set: using the built-in development secret {DEV_SECRET_KEY:?}, which is public and \
             protects nothing. Set SECRET_KEY (to your Django site's SECRET_KEY to share its sessions)."
        );
        settings.secret_key = SecretKey::from(DEV_SECRET_KEY);
    }
    let store =
        DemoStore::open(&cli.store, &settings).await.map_err(|err| format!("cannot open the session store: {err}"))?;
    let listener =
        TcpListener::bind(&cli.listen).await.map_err(|err| format!("cannot listen on {}: {err}", cli.listen))?;
    let addr = listener.local_addr()?;
    let description = store.store.describe();
    let django_auth = match &cli.django_db {
        Some(url) => {
            let users = SqlUserSource::connect(url, UserTable::default())
                .await
                .map_err(|err| format!("cannot open the Django database: {err}"))?;
            Some(DjangoAuth::new(&settings, Arc::new(users))?)
        }
        None => None,
    };
    let csrf = CsrfPolicy::new(&settings, &std::env::var("CSRF_TRUSTED_ORIGINS").unwrap_or_default());
    let app = router_for(store, settings, django_auth, csrf);
    let app = match metrics {
        Ok(handle) => observability::with_metrics(app, handle),
        Err(err) => {
            tracing::warn!(error = %err, "cannot install the Prometheus recorder; GET /metrics is off");
            app
        }
    };
    println!("sessionkit-demo serving on http://{addr}/ (session store: {description})");
    tracing::info!(%addr, store = %description, "listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The end of `--help`: every store URL form (from the core's list) and where the development secret is kept.
fn after_help() -> String {
    let mut out = String::from("Store URLs (--store, SESSIONKIT_STORE): every form this build accepts\n");
    for (form, what) in sessionkit::store::store_url_forms() {
        out.push_str(&format!("  {form}\n      {what}\n"));
    }
    out.push_str(
        "  Any of them also takes ?failure_policy=empty (an unreachable store reads as an empty session) and\n  \
         ?merge=false (the last save wins, as in Django).\n\n",
    );
    out.push_str(&format!(
        "Development secret:\n  Without SECRET_KEY the demo signs sessions with its public development secret \
         {DEV_SECRET_KEY:?},\n  kept in {DEV_SECRET_FILE}\n  (crates/sessionkit-demo/dev-secret.txt in the source tree). \
         The sessionkit CLI reads the demo's\n  sessions with it: pass --secret-file {DEV_SECRET_FILE}\n  \
         (or set SESSIONKIT_SECRET_FILE to that path, or SECRET_KEY={DEV_SECRET_KEY}), e.g.\n    \
         sessionkit --store sqlite://demo.sqlite3 --secret-file {DEV_SECRET_FILE} list\n"
    ));
    out
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing open requests");
}
