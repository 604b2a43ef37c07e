//! `sessionkit`: see, count, clean, migrate and check Django sessions in any store sessionkit supports, and export or
//! erase a user's sessions.
//!
//! Every command takes a store URL (`--store`, or `SESSIONKIT_STORE`) and reads Django's settings (SECRET_KEY,
//! SECRET_KEY_FALLBACKS, SESSION_COOKIE_AGE, ...) from the environment, or the secrets from `--secret-file`.
//! Tables for people, `--json` for scripts. Exit codes: 0 done, 1 error, 2 usage, 3 findings (see docs/cli.md).
//!
//! The library runs one command line ([`run`]) with the output going to the writers it is given and the
//! environment (store, settings, terminal) coming from an [`Environment`]: the `sessionkit` binary passes the
//! process's, and `manage.py sessionkit` (crates/sessionkit-py) passes Django's settings, so both print the same.

/// `writeln!` to the command's output; a failed write becomes a [`CliError`](common::CliError) (`?`).
macro_rules! outln {
    ($ctx:expr) => {
        writeln!($ctx.out).map_err($crate::common::write_failed)?
    };
    ($ctx:expr, $($arg:tt)*) => {
        writeln!($ctx.out, $($arg)*).map_err($crate::common::write_failed)?
    };
}

/// `write!` to the command's output; a failed write becomes a [`CliError`](common::CliError) (`?`).
macro_rules! out {
    ($ctx:expr, $($arg:tt)*) => {
        write!($ctx.out, $($arg)*).map_err($crate::common::write_failed)?
    };
}

mod common;
mod decode;
mod doctor;
mod list;
mod maintenance;
mod migrate;
mod show;
mod stats;
mod user;

use std::io::Write;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub use common::{CliError, EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, EXIT_USAGE};

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
    /// A user's sessions for a data-rights request: `user export ID` (JSON), `user erase ID [--dry-run]`.
    User(user::UserArgs),
}

/// Reads a setting or environment variable by name.
pub type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Where a command line runs: the store and settings it sees, and whether it may draw progress bars.
pub struct Environment {
    /// The store used when the command line has no `--store` (it wins over `SESSIONKIT_STORE`).
    pub store: Option<String>,
    /// Reads Django's settings (SECRET_KEY, SECRET_KEY_FALLBACKS in the format of the environment variable,
    /// SESSION_COOKIE_AGE, ...) and `SESSIONKIT_STORE` / `SESSIONKIT_SECRET_FILE`: the process environment for the
    /// binary ([`Environment::from_process`]), Django's settings for `manage.py sessionkit`.
    pub settings_lookup: Box<Lookup>,
    /// Progress bars may be drawn on the process's stderr (it is a terminal).
    pub progress: bool,
}

impl Environment {
    /// The process's environment variables; progress bars when stderr is a terminal.
    pub fn from_process() -> Self {
        use std::io::IsTerminal;
        Environment {
            store: None,
            settings_lookup: Box::new(|name| std::env::var(name).ok()),
            progress: std::io::stderr().is_terminal(),
        }
    }
}

/// What every command gets.
pub struct Context<'a> {
    /// `--store` (or the environment's store).
    pub store: Option<String>,
    /// `--secret-file`.
    pub secret_file: Option<PathBuf>,
    /// `--json`.
    pub json: bool,
    /// Progress bars allowed (on stderr, which is a terminal).
    pub progress: bool,
    /// Django's settings by name.
    pub lookup: &'a Lookup,
    /// Where the command prints (the binary's stdout).
    pub out: &'a mut (dyn Write + Send),
}

impl Context<'_> {
    /// The `--store` URL, or a usage error.
    pub fn store_url(&self) -> Result<&str, CliError> {
        self.store.as_deref().ok_or_else(|| CliError::usage("no store given: pass --store URL or set SESSIONKIT_STORE"))
    }
}

/// Runs one `sessionkit` command line (`args[0]` is the program name), writing what the binary prints to `out`
/// (stdout) and `err` (stderr: usage and error lines). Returns the exit code (docs/cli.md): 0 done, 1 error,
/// 2 usage, 3 findings; `--help` and `--version` print to `out` and return 0.
pub async fn run(
    args: Vec<String>,
    env: &Environment,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> u8 {
    run_command(Cli::command(), args, env, out, err).await
}

/// [`run`] for a program that embeds the command and supplies the store and the secrets itself (`manage.py
/// sessionkit`: the configured engine's store, Django's settings). Its help shows neither `--secret-file` nor the
/// environment variables `SESSIONKIT_STORE` / `SESSIONKIT_SECRET_FILE` (clap does not read them either: only
/// `env` answers) and names no file of this repository; everything else is [`run`]'s.
pub async fn run_embedded(
    args: Vec<String>,
    env: &Environment,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> u8 {
    let command = Cli::command()
        .mut_arg("store", |arg| {
            arg.env(None).help(
                "Read this store instead of the configured one: sqlite://PATH, postgres://…, mysql://…, \
                 redis://…?layout=…, file:///DIR, cached_db:CACHE|DB, cookie:, memory://",
            )
        })
        .mut_arg("secret_file", |arg| arg.env(None).hide(true));
    run_command(command, args, env, out, err).await
}

async fn run_command(
    command: clap::Command,
    args: Vec<String>,
    env: &Environment,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> u8 {
    let matches = match command.try_get_matches_from(args) {
        Ok(matches) => matches,
        Err(e) => return clap_error(&e, out, err),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return clap_error(&e, out, err),
    };
    let lookup = env.settings_lookup.as_ref();
    // Values clap read from the process environment are read through the environment's lookup instead, so an
    // embedder decides what the command sees.
    let from_env = |id: &str| matches.value_source(id) == Some(ValueSource::EnvVariable);
    let store = if from_env("store") || cli.store.is_none() {
        env.store.clone().or_else(|| lookup("SESSIONKIT_STORE")).filter(|s| !s.is_empty())
    } else {
        cli.store
    };
    let secret_file = if from_env("secret_file") {
        lookup("SESSIONKIT_SECRET_FILE").filter(|s| !s.is_empty()).map(PathBuf::from)
    } else {
        cli.secret_file
    };
    let progress = env.progress && !cli.json;
    let mut ctx = Context { store, secret_file, json: cli.json, progress, lookup, out };
    let ctx = &mut ctx;
    let outcome = match cli.command {
        Command::List(args) => list::run(ctx, args).await,
        Command::Show(args) => show::run(ctx, args).await,
        Command::Count(args) => maintenance::count(ctx, args).await,
        Command::ClearExpired(args) => maintenance::clear_expired(ctx, args).await,
        Command::Migrate(args) => migrate::run(ctx, args).await,
        Command::Stats(args) => stats::run(ctx, args).await,
        Command::Doctor(args) => doctor::run(ctx, args).await,
        Command::User(args) => user::run(ctx, args).await,
    };
    let _ = ctx.out.flush();
    match outcome {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "sessionkit: error: {}", e.message);
            let _ = err.flush();
            e.code
        }
    }
}

/// Writes a clap error (or `--help` / `--version`) where clap would print it; returns clap's exit code.
fn clap_error<'a>(e: &clap::Error, out: &'a mut (dyn Write + Send), err: &'a mut (dyn Write + Send)) -> u8 {
    let text = e.render().to_string();
    let target = if e.use_stderr() { err } else { out };
    let _ = target.write_all(text.as_bytes());
    let _ = target.flush();
    u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn help(embedded: bool) -> String {
        let env = Environment { store: None, settings_lookup: Box::new(|_| None), progress: false };
        let args = vec!["manage.py sessionkit".to_owned(), "--help".to_owned()];
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let code = runtime.block_on(async {
            if embedded {
                run_embedded(args, &env, &mut out, &mut err).await
            } else {
                run(args, &env, &mut out, &mut err).await
            }
        });
        assert_eq!(code, EXIT_OK);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_embedded_help_names_no_secret_file_environment_variable_or_repository_file() {
        let embedded = help(true);
        assert!(embedded.contains("Usage: manage.py sessionkit [OPTIONS] <COMMAND>"), "{embedded}");
        assert!(embedded.contains("clear-expired") && embedded.contains("--store <URL>"), "{embedded}");
        for absent in ["secret-file", "SESSIONKIT_", "docs/"] {
            assert!(!embedded.contains(absent), "{absent} in {embedded}");
        }
        let binary = help(false);
        assert!(binary.contains("--secret-file") && binary.contains("SESSIONKIT_STORE"), "{binary}");
    }
}
