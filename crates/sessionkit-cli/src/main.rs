//! `sessionkit`: see, count, clean, migrate and check Django sessions in any store sessionkit supports.
//!
//! The commands live in the library ([`sessionkit_cli::run`]), shared with `manage.py sessionkit`; this binary
//! runs it with the process's stdout, stderr and environment. Exit codes: 0 done, 1 error, 2 usage, 3 findings
//! (see docs/cli.md).

use std::io::Write;
use std::process::ExitCode;

use sessionkit_cli::{Environment, EXIT_ERROR};

/// Collapses whitespace runs with newlines into single spaces, so every message is one line.
fn one_line(text: &str) -> String {
    text.split(['\n', '\r']).map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
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
        eprintln!("sessionkit: internal error: {}", one_line(&message));
    }));
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("sessionkit: error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let env = Environment::from_process();
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    let code = runtime.block_on(sessionkit_cli::run(args, &env, &mut stdout, &mut stderr));
    let _ = stdout.flush();
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    ExitCode::from(code)
}
