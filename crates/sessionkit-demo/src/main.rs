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

use clap::Parser;
use sessionkit::auth::{DjangoAuth, SqlUserSource, UserTable};
use sessionkit::{open_store, SecretKey, Settings};
use sessionkit_demo::csrf::CsrfPolicy;
use sessionkit_demo::{router_with_options, DEV_SECRET_KEY};
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
    /// Session store URL: `sqlite://PATH` (relative), `sqlite:///ABS/PATH` or `memory://`.
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
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn Error>> {
    let mut settings = Settings::from_env()?;
    if settings.secret_key.is_empty() {
        tracing::warn!(
            "SECRET_KEY is not set: using the built-in development secret {DEV_SECRET_KEY:?}, which is public and \
             protects nothing. Set SECRET_KEY (to your Django site's SECRET_KEY to share its sessions)."
        );
        settings.secret_key = SecretKey::from(DEV_SECRET_KEY);
    }
    let store =
        open_store(&cli.store, &settings).await.map_err(|err| format!("cannot open the session store: {err}"))?;
    let listener =
        TcpListener::bind(&cli.listen).await.map_err(|err| format!("cannot listen on {}: {err}", cli.listen))?;
    let addr = listener.local_addr()?;
    let description = store.describe();
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
    let app = router_with_options(store, settings, django_auth, csrf);
    println!("sessionkit-demo serving on http://{addr}/ (session store: {description})");
    tracing::info!(%addr, store = %description, "listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
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
