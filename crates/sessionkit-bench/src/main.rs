//! `sessionkit-bench`: session cycles per second and Redis memory per session.
//!
//! ```text
//! sessionkit-bench cycles --store 'redis://127.0.0.1:6400/?layout=hash&buckets=50' --workers 50 --duration 10
//! sessionkit-bench memory --store 'redis://127.0.0.1:6401/?layout=hash&buckets=5000' --sessions 1000000
//! sessionkit-bench contention --store 'redis://127.0.0.1:6400/?layout=string' --workers 50 --sessions 5
//! sessionkit-bench http --app-binary target/release/examples/http_app      # starts its own redis-servers
//! sessionkit-bench plot --input target/bench-http.json --out docs/img
//! ```
//!
//! Run it against a server started for the benchmark (`scripts/bench-redis` does), never a production one:
//! `cycles` rewrites the sessions it created, `memory` leaves K sessions behind.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sessionkit_bench::contention::{run_contention, ContentionOptions};
use sessionkit_bench::cycles::{run_cycles, CyclesOptions, MetricsMode};
use sessionkit_bench::http::{configs_named, run_http, shown, HttpOptions};
use sessionkit_bench::memory::{run_memory, MemoryOptions};
use sessionkit_bench::BenchError;

/// Benchmarks of sessionkit's session stores.
#[derive(Debug, Parser)]
#[command(name = "sessionkit-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load + modify + save cycles per second on pre-created login sessions, with latency percentiles.
    Cycles(CyclesArgs),
    /// Redis used_memory per session: writes K sessions and compares INFO memory before and after.
    Memory(MemoryArgs),
    /// Many workers saving few sessions at once, each its own key: saves/s, retries per save, writes lost.
    Contention(ContentionArgs),
    /// The same axum handler behind sessionkit, tower-sessions and no session, driven by wrk replaying session
    /// cookies; a fresh redis-server per run, rounds interleaved. Writes Markdown and JSON (scripts/bench-http).
    Http(HttpArgs),
    /// Draws the charts of docs/performance.md (SVG) from the JSON `http` wrote.
    Plot(PlotArgs),
}

#[derive(Debug, Args)]
struct HttpArgs {
    /// The app binary (cargo build --release -p sessionkit-bench --example http_app).
    #[arg(long, default_value = "target/release/examples/http_app")]
    app_binary: PathBuf,
    /// The peer's binary (cargo build --release --manifest-path crates/sessionkit-bench/peer-app/Cargo.toml).
    #[arg(long, default_value = "target/release/tower-sessions-app")]
    peer_binary: PathBuf,
    /// examples/http_app built from an earlier commit: adds "(baseline build)" rows for string and string +
    /// index (realistic mix), for before/after figures in the same run.
    #[arg(long)]
    baseline_binary: Option<PathBuf>,
    /// Comma-separated configurations, or all: ceiling, tower-sessions, string, string-index, string-index-mix,
    /// hash, django-cache.
    #[arg(long, default_value = "all")]
    configs: String,
    /// Rounds (every configuration once per round, the order rotated).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Measured seconds per wrk run.
    #[arg(long, default_value = "10", value_parser = parse_seconds)]
    duration: Duration,
    /// Warm-up seconds before each measured run.
    #[arg(long, default_value = "2", value_parser = parse_warmup)]
    warmup: Duration,
    /// Sessions created by first visits per run (the cookies wrk replays).
    #[arg(long, default_value_t = 10_000)]
    sessions: usize,
    /// wrk connections (also redis-benchmark's clients).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// wrk threads.
    #[arg(long, default_value_t = 2)]
    wrk_threads: usize,
    /// Requests per command of the bare redis-benchmark GET+SET run.
    #[arg(long, default_value_t = 200_000)]
    bare_requests: usize,
    /// Value bytes of the bare run (a stored login session is about 340).
    #[arg(long, default_value_t = 340)]
    bare_value_bytes: usize,
    /// Sessions per layout for bytes/session (0: skip).
    #[arg(long, default_value_t = 100_000)]
    memory_sessions: usize,
    /// Directory for cookie files, the wrk script and logs.
    #[arg(long, default_value = "target/bench-http")]
    work_dir: PathBuf,
    /// Markdown report.
    #[arg(long, default_value = "target/bench-http.md")]
    markdown: PathBuf,
    /// JSON with every figure.
    #[arg(long, default_value = "target/bench-http.json")]
    json: PathBuf,
}

#[derive(Debug, Args)]
struct PlotArgs {
    /// The JSON `sessionkit-bench http` wrote.
    #[arg(long, default_value = "target/bench-http.json")]
    input: PathBuf,
    /// Directory for the SVG files.
    #[arg(long, default_value = "docs/img")]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct ContentionArgs {
    /// Store URL (any sessionkit store; add merge=false for Django's last-write-wins).
    #[arg(long)]
    store: String,
    /// Concurrent workers (tokio tasks), each running one cycle at a time.
    #[arg(long, default_value_t = 50)]
    workers: usize,
    /// Sessions the workers share.
    #[arg(long, default_value_t = 5)]
    sessions: usize,
    /// Measured seconds (fractions allowed).
    #[arg(long, default_value = "10", value_parser = parse_seconds)]
    duration: Duration,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct CyclesArgs {
    /// Store URL (any sessionkit store; Redis options such as layout=hash go in the query).
    #[arg(long)]
    store: String,
    /// Concurrent workers (tokio tasks), each running one cycle at a time.
    #[arg(long, default_value_t = 50)]
    workers: usize,
    /// Measured seconds (fractions allowed).
    #[arg(long, default_value = "10", value_parser = parse_seconds)]
    duration: Duration,
    /// Seconds of unmeasured warm-up before the measured run.
    #[arg(long, default_value = "1", value_parser = parse_warmup)]
    warmup: Duration,
    /// Sessions created up front; each cycle picks one at random.
    #[arg(long, default_value_t = 10_000)]
    sessions: usize,
    /// Distinct _auth_user_id values among the sessions (12345, 12346, ...).
    #[arg(long, default_value_t = 1)]
    users: u64,
    /// How the store records metrics: no-recorder (the store as open_store gives it, no recorder installed), bare
    /// (without the metrics wrapper; memory:// and plain redis:// only), prometheus (with the Prometheus recorder).
    #[arg(long, default_value = "no-recorder", value_parser = parse_metrics_mode)]
    metrics: MetricsMode,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct MemoryArgs {
    /// Store URL of a fresh standalone Redis (redis://, rediss://, unix://) with layout options.
    #[arg(long)]
    store: String,
    /// Sessions to write.
    #[arg(long, default_value_t = 100_000)]
    sessions: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Distinct _auth_user_id values among the sessions (12345, 12346, ...).
    #[arg(long, default_value_t = 1)]
    users: u64,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text.parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0 {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err("must be more than 0 and at most 3600 seconds".into())
    }
}

fn parse_metrics_mode(text: &str) -> Result<MetricsMode, String> {
    [MetricsMode::NoRecorder, MetricsMode::Bare, MetricsMode::Prometheus]
        .into_iter()
        .find(|mode| mode.as_str() == text)
        .ok_or_else(|| format!("{text:?} is not no-recorder, bare or prometheus"))
}

fn parse_warmup(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    parse_seconds(text)
}

fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime, BenchError> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        builder.worker_threads(threads.max(1));
    }
    builder.enable_all().build().map_err(|e| BenchError(format!("cannot start the tokio runtime: {e}")))
}

fn run(cli: Cli) -> Result<String, BenchError> {
    match cli.command {
        Command::Cycles(args) => {
            let options = CyclesOptions {
                store_url: args.store,
                workers: args.workers,
                duration: args.duration,
                warmup: args.warmup,
                sessions: args.sessions,
                users: args.users,
                metrics: args.metrics,
            };
            let report = runtime(args.threads)?.block_on(run_cycles(&options))?;
            Ok(if args.json { report.to_json().to_string() } else { report.to_string() })
        }
        Command::Contention(args) => {
            let options = ContentionOptions {
                store_url: args.store,
                workers: args.workers,
                sessions: args.sessions,
                duration: args.duration,
            };
            let report = runtime(args.threads)?.block_on(run_contention(&options))?;
            Ok(if args.json { report.to_json().to_string() } else { report.to_string() })
        }
        Command::Memory(args) => {
            let options = MemoryOptions {
                store_url: args.store,
                sessions: args.sessions,
                concurrency: args.concurrency,
                users: args.users,
            };
            let report = runtime(args.threads)?.block_on(run_memory(&options))?;
            Ok(if args.json { report.to_json().to_string() } else { report.to_string() })
        }
        Command::Http(args) => {
            let work_dir = std::path::absolute(&args.work_dir)
                .map_err(|e| BenchError(format!("{}: {e}", args.work_dir.display())))?;
            let configs = configs_named(&args.configs, args.baseline_binary.is_some())?;
            let options = HttpOptions {
                app_binary: args.app_binary,
                peer_binary: args.peer_binary,
                baseline_binary: args.baseline_binary,
                configs,
                rounds: args.rounds,
                duration: args.duration,
                warmup: args.warmup,
                sessions: args.sessions,
                connections: args.connections,
                wrk_threads: args.wrk_threads,
                bare_requests: args.bare_requests,
                bare_value_bytes: args.bare_value_bytes,
                memory_sessions: args.memory_sessions,
                work_dir,
            };
            let report = runtime(None)?.block_on(run_http(&options))?;
            let markdown = report.to_markdown();
            write_file(&args.markdown, &markdown)?;
            write_file(&args.json, &format!("{:#}\n", report.to_json()))?;
            Ok(format!("{markdown}\nwritten to {} and {}", shown(&args.markdown), shown(&args.json)))
        }
        Command::Plot(args) => {
            let text = std::fs::read_to_string(&args.input).map_err(|e| {
                BenchError(format!("cannot read {} (run sessionkit-bench http first): {e}", args.input.display()))
            })?;
            let json = serde_json::from_str(&text)
                .map_err(|e| BenchError(format!("{} is not JSON: {e}", args.input.display())))?;
            let written = sessionkit_bench::plot::plot_http(&json, &args.out)?;
            Ok(written.iter().map(|p| format!("wrote {}", shown(p))).collect::<Vec<_>>().join("\n"))
        }
    }
}

fn write_file(path: &std::path::Path, text: &str) -> Result<(), BenchError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| BenchError(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(path, text).map_err(|e| BenchError(format!("cannot write {}: {e}", path.display())))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    match run(cli) {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("sessionkit-bench: error: {err}");
            ExitCode::FAILURE
        }
    }
}
