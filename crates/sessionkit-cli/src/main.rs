//! `sessionkit`: see, count, clean, migrate and check Django sessions in any store sessionkit supports.
//!
//! Every command takes a store URL (`--store`, or `SESSIONKIT_STORE`) and reads Django's settings (SECRET_KEY,
//! SECRET_KEY_FALLBACKS, SESSION_COOKIE_AGE, ...) from the environment, or the secrets from `--secret-file`.
//! Tables for people, `--json` for scripts. Exit codes: 0 done, 1 error, 2 usage, 3 findings (see docs/cli.md).

mod common;
mod decode;
mod doctor;
mod list;
mod maintenance;
mod migrate;
mod show;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use common::{CliError, EXIT_ERROR};

/// Django's sessions, in any store sessionkit supports.
#[derive(Debug, Parser)]
#[command(name = "sessionkit", version, about, max_term_width = 110)]
struct Cli {
    /// Store URL: sqlite://PATH, postgres://…, mysql://…, redis://…?layout=…, file:///DIR, cached_db:CACHE|DB,
    /// cookie:, memory:// (see docs/configuration.md).
    #[arg(long, global = true, env = "SESSIONKIT_STORE", value_name = "URL", hide_env_values = true)]
    store: Option<String>,

    /// File holding SECRET_KEY on its first line and SECRET_KEY_FALLBACKS one per following line (instead of the
    /// SECRET_KEY / SECRET_KEY_FALLBACKS environment variables).
    #[arg(long, global = true, env = "SESSIONKIT_SECRET_FILE", value_name = "PATH")]
    secret_file: Option<PathBuf>,

    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List stored sessions (SCAN / keyset pages; never KEYS): key, user, expiry, size.
    List(list::ListArgs),
    /// Show one session: data, expiry, user, size and stored format.
    Show(show::ShowArgs),
    /// Count stored sessions.
    Count(maintenance::CountArgs),
    /// Remove expired sessions (Django's clearsessions); quiet unless --verbose, for cron.
    ClearExpired(maintenance::ClearArgs),
    /// Copy sessions from one store to another, keeping keys, data and expiry.
    Migrate(migrate::MigrateArgs),
    /// Count, size distribution, bytes per session, layout and encodings seen.
    Stats(stats::StatsArgs),
    /// Check a Redis server for settings that silently lose sessions.
    Doctor(doctor::DoctorArgs),
}

/// What every command gets.
pub struct Context {
    /// `--store`.
    pub store: Option<String>,
    /// `--secret-file`.
    pub secret_file: Option<PathBuf>,
    /// `--json`.
    pub json: bool,
}

impl Context {
    /// The `--store` URL, or a usage error.
    pub fn store_url(&self) -> Result<&str, CliError> {
        self.store.as_deref().ok_or_else(|| CliError::usage("no store given: pass --store URL or set SESSIONKIT_STORE"))
    }
}

fn main() -> ExitCode {
    // Never a backtrace: an unexpected panic becomes one line and exit code 1.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".to_owned());
        eprintln!("sessionkit: internal error: {}", common::one_line(&message));
    }));
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("sessionkit: error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let ctx = Context { store: cli.store, secret_file: cli.secret_file, json: cli.json };
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::List(args) => list::run(&ctx, args).await,
            Command::Show(args) => show::run(&ctx, args).await,
            Command::Count(args) => maintenance::count(&ctx, args).await,
            Command::ClearExpired(args) => maintenance::clear_expired(&ctx, args).await,
            Command::Migrate(args) => migrate::run(&ctx, args).await,
            Command::Stats(args) => stats::run(&ctx, args).await,
            Command::Doctor(args) => doctor::run(&ctx, args).await,
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("sessionkit: error: {}", err.message);
            ExitCode::from(err.code)
        }
    }
}
