//! `http`: the same axum handler behind sessionkit, its peer tower-sessions, and no session at all, driven by wrk
//! with session cookies replayed, each against a fresh redis-server; rounds interleaved, medians reported.
//!
//! Per round and configuration: a fresh `redis-server`, the app (`examples/http_app.rs`) on a free port, N first
//! visits (each stores a login-like session; their cookies go to a file), a wrk warm-up, `CONFIG RESETSTAT`, the
//! measured wrk run (64 connections, each request with one of the cookies, picked at random), then `INFO
//! commandstats` and `INFO cpu`. Each round also measures a bare `redis-benchmark -t get,set` on a fresh server,
//! the "GET+SET pair" the Redis time per request is compared with. [`report`] turns the rounds into tables.

pub mod commandstats;
pub mod processes;
pub mod report;
pub mod seed;
pub mod wrk;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use commandstats::{client_usec, parse_commandstats, parse_cpu_seconds, CommandStat};
use processes::{redis_cli, App, RedisServer};
use seed::UserMix;
use wrk::WrkResult;

use crate::BenchError;

/// One configuration of the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpConfig {
    /// Short name (`--configs`, JSON).
    pub id: &'static str,
    /// Name in tables and charts.
    pub label: &'static str,
    /// `--app` of the binary.
    pub app: &'static str,
    /// Which binary serves it.
    pub binary: AppBinary,
    /// sessionkit's store URL options (`{buckets}` is replaced by sessions / 200); empty for the others.
    pub store_options: &'static str,
    /// Whose sessions the first visits create.
    pub users: UserMix,
}

/// Every configuration, in table order.
pub const CONFIGS: &[HttpConfig] = &[
    HttpConfig {
        id: "ceiling",
        label: "axum, no sessions",
        app: "ceiling",
        binary: AppBinary::App,
        store_options: "",
        users: UserMix::OnePerSession,
    },
    HttpConfig {
        id: "tower-sessions",
        label: "tower-sessions + redis-store",
        app: "tower-sessions",
        binary: AppBinary::Peer,
        store_options: "",
        users: UserMix::OnePerSession,
    },
    HttpConfig {
        id: "string",
        label: "sessionkit string",
        app: "sessionkit",
        binary: AppBinary::App,
        store_options: "layout=string&user_index=false",
        users: UserMix::OnePerSession,
    },
    HttpConfig {
        id: "string-cache",
        label: "sessionkit string, client_cache=on",
        app: "sessionkit",
        binary: AppBinary::App,
        store_options: "layout=string&user_index=false&client_cache=on",
        users: UserMix::OnePerSession,
    },
    HttpConfig {
        id: "string-read",
        label: "sessionkit string, read-only requests",
        app: "sessionkit-read",
        binary: AppBinary::App,
        store_options: "layout=string&user_index=false",
        users: UserMix::OnePerSession,
    },
    HttpConfig {
        id: "string-read-cache",
        label: "sessionkit string, read-only requests, client_cache=on",
        app: "sessionkit-read",
        binary: AppBinary::App,
        store_options: "layout=string&user_index=false&client_cache=on",
        users: UserMix::OnePerSession,
    },
    HttpConfig {
        id: "string-lww",
        label: "sessionkit string, merge=false",
        app: "sessionkit",
        binary: AppBinary::App,
        store_options: "layout=string&user_index=false&merge=false",
        users: UserMix::OnePerSession,
    },
    HttpConfig {
        id: "string-index",
        label: "sessionkit string + index (1 user/session)",
        app: "sessionkit",
        binary: AppBinary::App,
        store_options: "layout=string&user_index=true",
        users: UserMix::OnePerSession,
    },
    HttpConfig {
        id: "string-index-mix",
        label: "sessionkit string + index (realistic mix)",
        app: "sessionkit",
        binary: AppBinary::App,
        store_options: "layout=string&user_index=true",
        users: UserMix::Realistic,
    },
    HttpConfig {
        id: "hash",
        label: "sessionkit hash",
        app: "sessionkit",
        binary: AppBinary::App,
        store_options: "layout=hash&buckets={buckets}&user_index=false",
        users: UserMix::OnePerSession,
    },
    HttpConfig {
        id: "django-cache",
        label: "sessionkit django-cache",
        app: "sessionkit",
        binary: AppBinary::App,
        store_options: "layout=django-cache&user_index=false",
        users: UserMix::OnePerSession,
    },
];

/// The binaries of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppBinary {
    /// `examples/http_app` (no sessions, sessionkit).
    App,
    /// `peer-app/`'s `tower-sessions-app`.
    Peer,
    /// `--baseline-binary`: `examples/http_app` built from an earlier commit (before/after an optimisation).
    Baseline,
}

/// The configurations run again on `--baseline-binary`, labelled "(baseline)".
pub const BASELINE_CONFIGS: &[HttpConfig] = &[
    HttpConfig {
        id: "string-baseline",
        label: "sessionkit string (baseline build)",
        app: "sessionkit",
        binary: AppBinary::Baseline,
        store_options: "layout=string&user_index=false",
        users: UserMix::OnePerSession,
    },
    HttpConfig {
        id: "string-index-mix-baseline",
        label: "sessionkit string + index (realistic mix) (baseline build)",
        app: "sessionkit",
        binary: AppBinary::Baseline,
        store_options: "layout=string&user_index=true",
        users: UserMix::Realistic,
    },
];

/// What to run.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// The app binary (`target/release/examples/http_app`): ceiling and sessionkit.
    pub app_binary: PathBuf,
    /// The peer's binary (`target/release/tower-sessions-app`, built from `peer-app/`).
    pub peer_binary: PathBuf,
    /// `examples/http_app` of an earlier build, for the rows of [`BASELINE_CONFIGS`] (when in `configs`).
    pub baseline_binary: Option<PathBuf>,
    /// Configurations to measure, in table order.
    pub configs: Vec<HttpConfig>,
    /// Rounds; each runs every configuration once, the order rotated by one per round.
    pub rounds: usize,
    /// Measured wrk time per run.
    pub duration: Duration,
    /// Unmeasured wrk time before it.
    pub warmup: Duration,
    /// Sessions created (first visits) per run.
    pub sessions: usize,
    /// wrk connections.
    pub connections: usize,
    /// wrk threads.
    pub wrk_threads: usize,
    /// Requests per command of the bare `redis-benchmark` run.
    pub bare_requests: usize,
    /// Value size of the bare run (the size of a stored login session).
    pub bare_value_bytes: usize,
    /// Sessions per layout for the bytes/session figures (`sessionkit-bench memory`); 0 skips them.
    pub memory_sessions: usize,
    /// Where cookie files, the Lua script and logs go.
    pub work_dir: PathBuf,
}

/// One measured run of one configuration.
#[derive(Debug, Clone)]
pub struct ConfigRun {
    /// The round it belongs to (1-based).
    pub round: usize,
    /// What wrk measured.
    pub wrk: WrkResult,
    /// `INFO commandstats` over the measured part.
    pub commandstats: BTreeMap<String, CommandStat>,
    /// Server CPU (user + system) over the measured part, seconds.
    pub server_cpu_seconds: f64,
    /// The app's CPU (user + system, all threads) over the measured part, seconds.
    pub app_cpu_seconds: f64,
    /// Machine load average (1 min) when the run ended.
    pub load_average: f64,
}

impl ConfigRun {
    /// Redis execution time per request ([`commandstats::client_usec`] / requests).
    pub fn redis_usec_per_request(&self) -> f64 {
        client_usec(&self.commandstats) / self.wrk.requests.max(1) as f64
    }

    /// Server CPU time per request, µs.
    pub fn server_cpu_usec_per_request(&self) -> f64 {
        self.server_cpu_seconds * 1e6 / self.wrk.requests.max(1) as f64
    }

    /// The app's CPU time per request, µs (HTTP, session, Redis client: everything the app process does).
    pub fn app_cpu_usec_per_request(&self) -> f64 {
        self.app_cpu_seconds * 1e6 / self.wrk.requests.max(1) as f64
    }
}

/// One bare `redis-benchmark -t get,set` run.
#[derive(Debug, Clone)]
pub struct BareRun {
    /// The round it belongs to.
    pub round: usize,
    /// commandstats after it.
    pub commandstats: BTreeMap<String, CommandStat>,
    /// Server CPU over it, seconds.
    pub server_cpu_seconds: f64,
    /// GET and SET requests/s as redis-benchmark reports them.
    pub get_rps: f64,
    /// See `get_rps`.
    pub set_rps: f64,
}

impl BareRun {
    /// Execution µs of one GET plus one SET.
    pub fn pair_usec(&self) -> f64 {
        let per_call = |name: &str| self.commandstats.get(name).map(CommandStat::usec_per_call).unwrap_or(0.0);
        per_call("get") + per_call("set")
    }

    /// Server CPU µs per GET+SET pair.
    pub fn pair_cpu_usec(&self) -> f64 {
        let calls = |name: &str| self.commandstats.get(name).map(|s| s.calls).unwrap_or(0);
        let pairs = (calls("get") + calls("set")) as f64 / 2.0;
        self.server_cpu_seconds * 1e6 / pairs.max(1.0)
    }
}

/// bytes/session of one layout.
#[derive(Debug, Clone)]
pub struct MemoryRow {
    /// `string`, `hash`, `django-cache`.
    pub layout: &'static str,
    /// Sessions written.
    pub sessions: usize,
    /// (used_memory after − before) / sessions.
    pub bytes_per_session: f64,
    /// Stored size of one session.
    pub value_bytes: usize,
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct HttpReport {
    /// What was asked.
    pub options: HttpOptions,
    /// Per configuration (in `options.configs` order), its runs.
    pub runs: Vec<(HttpConfig, Vec<ConfigRun>)>,
    /// The bare runs.
    pub bare: Vec<BareRun>,
    /// bytes/session per layout.
    pub memory: Vec<MemoryRow>,
    /// Where and when (machine, versions, load).
    pub machine: report::Machine,
}

/// Runs everything `options` asks for.
pub async fn run_http(options: &HttpOptions) -> Result<HttpReport, BenchError> {
    std::fs::create_dir_all(&options.work_dir)
        .map_err(|e| BenchError(format!("cannot create {}: {e}", options.work_dir.display())))?;
    let machine_before = report::Machine::read();
    let mut runs: Vec<(HttpConfig, Vec<ConfigRun>)> = options.configs.iter().map(|c| (*c, Vec::new())).collect();
    let mut bare = Vec::new();
    for round in 1..=options.rounds.max(1) {
        eprintln!("sessionkit-bench http: round {round}/{}: bare redis-benchmark GET+SET", options.rounds);
        bare.push(run_bare(options, round)?);
        let mut order: Vec<usize> = (0..runs.len()).collect();
        order.rotate_left((round - 1) % runs.len().max(1));
        for index in order {
            let config = runs[index].0;
            eprintln!("sessionkit-bench http: round {round}/{}: {}", options.rounds, config.label);
            let run = run_config(options, &config, round).await?;
            eprintln!(
                "sessionkit-bench http:   {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs, Redis {:.2} µs/request, app CPU {:.1} µs/request, {} errors",
                run.wrk.requests_per_sec(),
                run.wrk.percentile_us(50.0).unwrap_or(0.0),
                run.wrk.percentile_us(99.0).unwrap_or(0.0),
                run.redis_usec_per_request(),
                run.app_cpu_usec_per_request(),
                run.wrk.errors
            );
            runs[index].1.push(run);
        }
    }
    let memory = if options.memory_sessions > 0 { run_memory_rows(options).await? } else { Vec::new() };
    let machine = machine_before.finished();
    Ok(HttpReport { options: options.clone(), runs, bare, memory, machine })
}

/// The store URL of `config` on `server`.
fn store_url(config: &HttpConfig, server: &RedisServer, sessions: usize) -> String {
    let options = config.store_options.replace("{buckets}", &sessions.div_ceil(200).max(1).to_string());
    if options.is_empty() {
        server.url()
    } else {
        format!("{}?{options}", server.url())
    }
}

async fn run_config(options: &HttpOptions, config: &HttpConfig, round: usize) -> Result<ConfigRun, BenchError> {
    let server = RedisServer::start(&options.work_dir)?;
    let binary = match config.binary {
        AppBinary::App => &options.app_binary,
        AppBinary::Peer => &options.peer_binary,
        AppBinary::Baseline => options
            .baseline_binary
            .as_ref()
            .ok_or_else(|| BenchError(format!("{} needs --baseline-binary", config.label)))?,
    };
    let app = App::start(binary, config.app, &store_url(config, &server, options.sessions), &options.work_dir)?;
    let users = seed::user_ids(config.users, options.sessions);
    let cookies = seed::first_visits(app.port, &users, 16).await.map_err(|e| {
        let log = std::fs::read_to_string(&app.log).unwrap_or_default();
        BenchError(format!("{}: {e}; app log: {}", config.label, log.trim()))
    })?;
    let cookie_file = options.work_dir.join(format!("cookies-{}.txt", config.id));
    seed::write_cookie_file(&cookie_file, &cookies)?;
    let script = options.work_dir.join(format!("replay-{}.lua", config.id));
    std::fs::write(&script, wrk::lua_script(&cookie_file))
        .map_err(|e| BenchError(format!("cannot write {}: {e}", script.display())))?;
    if !options.warmup.is_zero() {
        wrk::run(&script, app.port, options.wrk_threads, options.connections, options.warmup)?;
    }
    redis_cli(server.port, &["CONFIG", "RESETSTAT"])?;
    let cpu_before = parse_cpu_seconds(&redis_cli(server.port, &["INFO", "cpu"])?);
    let app_cpu_before = app.cpu_seconds();
    let measured = wrk::run(&script, app.port, options.wrk_threads, options.connections, options.duration)?;
    let app_cpu_after = app.cpu_seconds();
    let cpu_after = parse_cpu_seconds(&redis_cli(server.port, &["INFO", "cpu"])?);
    let commandstats = parse_commandstats(&redis_cli(server.port, &["INFO", "commandstats"])?);
    if measured.errors > 0 {
        eprintln!(
            "sessionkit-bench http: warning: {}: {} errors or non-2xx responses; app log: {}",
            config.label,
            measured.errors,
            std::fs::read_to_string(&app.log).unwrap_or_default().lines().last().unwrap_or("")
        );
    }
    Ok(ConfigRun {
        round,
        wrk: measured,
        commandstats,
        server_cpu_seconds: cpu_after - cpu_before,
        app_cpu_seconds: app_cpu_after.zip(app_cpu_before).map(|(after, before)| after - before).unwrap_or(f64::NAN),
        load_average: report::load_average(),
    })
}

fn run_bare(options: &HttpOptions, round: usize) -> Result<BareRun, BenchError> {
    let server = RedisServer::start(&options.work_dir)?;
    redis_cli(server.port, &["CONFIG", "RESETSTAT"])?;
    let cpu_before = parse_cpu_seconds(&redis_cli(server.port, &["INFO", "cpu"])?);
    let output = Command::new("redis-benchmark")
        .args(["-p", &server.port.to_string(), "-t", "get,set", "-q"])
        .args(["-c", &options.connections.to_string(), "-n", &options.bare_requests.to_string()])
        .args(["-d", &options.bare_value_bytes.to_string(), "-r", &options.sessions.to_string()])
        .output()
        .map_err(|e| BenchError(format!("cannot run redis-benchmark (Debian: redis-tools): {e}")))?;
    let cpu_after = parse_cpu_seconds(&redis_cli(server.port, &["INFO", "cpu"])?);
    let commandstats = parse_commandstats(&redis_cli(server.port, &["INFO", "commandstats"])?);
    let text = String::from_utf8_lossy(&output.stdout).replace('\r', "\n");
    let rate = |name: &str| -> f64 {
        text.lines()
            .rev()
            .filter_map(|line| line.trim().strip_prefix(name))
            .filter_map(|rest| rest.trim_start_matches(':').split_whitespace().next())
            .find_map(|value| value.parse().ok())
            .unwrap_or(0.0)
    };
    Ok(BareRun {
        round,
        commandstats,
        server_cpu_seconds: cpu_after - cpu_before,
        get_rps: rate("GET"),
        set_rps: rate("SET"),
    })
}

async fn run_memory_rows(options: &HttpOptions) -> Result<Vec<MemoryRow>, BenchError> {
    let mut rows = Vec::new();
    let buckets = options.memory_sessions.div_ceil(200).max(1);
    for (layout, url_options) in [
        ("string", "layout=string&user_index=false".to_owned()),
        ("hash", format!("layout=hash&buckets={buckets}&user_index=false")),
        ("django-cache", "layout=django-cache&user_index=false".to_owned()),
    ] {
        eprintln!("sessionkit-bench http: memory, {layout}, {} sessions", options.memory_sessions);
        let server = RedisServer::start(&options.work_dir)?;
        let memory = crate::memory::run_memory(&crate::memory::MemoryOptions {
            store_url: format!("{}?{url_options}", server.url()),
            sessions: options.memory_sessions,
            concurrency: 64,
            users: 1,
        })
        .await?;
        rows.push(MemoryRow {
            layout,
            sessions: memory.sessions,
            bytes_per_session: memory.bytes_per_session(),
            value_bytes: memory.value_bytes,
        });
    }
    Ok(rows)
}

/// The median of `values` (the mean of the middle two for an even count); 0 for none.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The configurations named in a comma-separated list (`all` for every one of [`CONFIGS`]), in table order;
/// `with_baseline` adds [`BASELINE_CONFIGS`] after the configurations they repeat.
pub fn configs_named(list: &str, with_baseline: bool) -> Result<Vec<HttpConfig>, BenchError> {
    let all = CONFIGS.iter().chain(BASELINE_CONFIGS);
    let wanted: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    for name in &wanted {
        if *name != "all" && !all.clone().any(|c| c.id == *name) {
            let known: Vec<&str> = all.map(|c| c.id).collect();
            return Err(BenchError(format!("unknown configuration {name:?}; known: all, {}", known.join(", "))));
        }
    }
    let mut chosen = Vec::new();
    for config in CONFIGS {
        if wanted.contains(&"all") || wanted.contains(&config.id) {
            chosen.push(*config);
        }
        for baseline in BASELINE_CONFIGS {
            let repeats = baseline.id.strip_suffix("-baseline") == Some(config.id);
            if repeats && (wanted.contains(&baseline.id) || (with_baseline && chosen.last() == Some(config))) {
                chosen.push(*baseline);
            }
        }
    }
    Ok(chosen)
}

/// Where a path is shown relative to the current directory, when it is under it.
pub fn shown(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|dir| path.strip_prefix(dir).ok().map(|p| p.display().to_string()))
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_takes_the_middle() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median([]), 0.0);
    }

    #[test]
    fn configurations_are_chosen_by_name() {
        assert_eq!(configs_named("all", false).map(|c| c.len()), Ok(CONFIGS.len()));
        let ids = |list, baseline| {
            configs_named(list, baseline).expect("known names").iter().map(|c| c.id).collect::<Vec<_>>()
        };
        // Table order, not the order asked.
        assert_eq!(ids("string, tower-sessions", false), ["tower-sessions", "string"]);
        assert_eq!(ids("string, tower-sessions", true), ["tower-sessions", "string", "string-baseline"]);
        assert_eq!(ids("all", true).len(), CONFIGS.len() + BASELINE_CONFIGS.len());
        assert_eq!(ids("string-index-mix-baseline", false), ["string-index-mix-baseline"]);
        assert!(configs_named("strin", false).is_err());
    }
}
