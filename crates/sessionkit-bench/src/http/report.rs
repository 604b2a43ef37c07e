//! The tables (Markdown) and raw figures (JSON) of an HTTP run, and the machine they came from.

use std::fmt::Write as _;
use std::process::Command;

use serde_json::{json, Value};

use super::wrk::PERCENTILES;
use super::{median, ConfigRun, HttpReport};

/// The targets: sessionkit `string` and `string` + index (realistic mix) against tower-sessions' req/s,
/// and Redis time per request against a bare GET+SET pair.
pub const TARGETS: &[(&str, f64)] = &[("string", 1.5), ("string-index-mix", 1.3)];
/// Redis server time per request at most this times a bare GET+SET pair's.
pub const REDIS_TIME_TARGET: f64 = 1.2;

/// Where and when a run happened.
#[derive(Debug, Clone)]
pub struct Machine {
    /// UTC start time.
    pub started: String,
    /// UTC end time.
    pub finished: String,
    /// CPUs the OS offers.
    pub cpus: usize,
    /// `model name` of /proc/cpuinfo.
    pub cpu_model: String,
    /// `redis-server --version`'s `v=`.
    pub redis_version: String,
    /// `wrk --version`'s first words.
    pub wrk_version: String,
    /// Short commit hash (+ "with uncommitted changes").
    pub commit: String,
    /// Load average (1 min) at the start and the end.
    pub load_average: (f64, f64),
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
        .unwrap_or_default()
}

fn utc_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", now.year(), u8::from(now.month()), now.day(), now.hour(), now.minute())
}

/// The 1-minute load average (/proc/loadavg).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

impl Machine {
    /// Reads everything but the end time and load.
    pub fn read() -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let redis = command_output("redis-server", &["--version"]);
        let redis_version = redis.split_whitespace().find_map(|w| w.strip_prefix("v=")).unwrap_or("unknown").to_owned();
        let wrk = command_output("wrk", &["--version"]);
        let wrk_version = wrk.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        let mut commit = command_output("git", &["rev-parse", "--short", "HEAD"]).trim().to_owned();
        if !command_output("git", &["status", "--porcelain"]).trim().is_empty() {
            commit.push_str(" (with uncommitted changes)");
        }
        Machine {
            started: utc_now(),
            finished: String::new(),
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            cpu_model,
            redis_version,
            wrk_version,
            commit,
            load_average: (load_average(), f64::NAN),
        }
    }

    /// With the end time and load filled in.
    pub fn finished(mut self) -> Self {
        self.finished = utc_now();
        self.load_average.1 = load_average();
        self
    }
}

/// The median figures of one configuration.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Median req/s.
    pub requests_per_sec: f64,
    /// Median latency per percentile of [`PERCENTILES`], µs.
    pub percentiles_us: Vec<(f64, f64)>,
    /// Median Redis µs per request.
    pub redis_usec: f64,
    /// Median server CPU µs per request.
    pub server_cpu_usec: f64,
    /// Median app CPU µs per request.
    pub app_cpu_usec: f64,
    /// All errors of all rounds.
    pub errors: u64,
}

/// Medians over the runs of one configuration.
pub fn summarize(runs: &[ConfigRun]) -> Summary {
    Summary {
        requests_per_sec: median(runs.iter().map(|r| r.wrk.requests_per_sec())),
        percentiles_us: PERCENTILES
            .iter()
            .map(|p| (*p, median(runs.iter().filter_map(|r| r.wrk.percentile_us(*p)))))
            .collect(),
        redis_usec: median(runs.iter().map(ConfigRun::redis_usec_per_request)),
        server_cpu_usec: median(runs.iter().map(ConfigRun::server_cpu_usec_per_request)),
        app_cpu_usec: median(runs.iter().map(ConfigRun::app_cpu_usec_per_request)),
        errors: runs.iter().map(|r| r.wrk.errors).sum(),
    }
}

fn percentile(summary: &Summary, p: f64) -> f64 {
    summary.percentiles_us.iter().find(|(q, _)| (q - p).abs() < 1e-9).map(|(_, v)| *v).unwrap_or(f64::NAN)
}

/// `12345.6` → `12 346`.
pub fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".into();
    }
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    if value < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

impl HttpReport {
    /// The median req/s of the configuration `id`, if it ran.
    pub fn median_rps(&self, id: &str) -> Option<f64> {
        self.runs.iter().find(|(c, _)| c.id == id).map(|(_, runs)| summarize(runs).requests_per_sec)
    }

    /// Median bare GET+SET execution µs per pair, and server CPU µs per pair.
    pub fn bare_pair(&self) -> (f64, f64) {
        (median(self.bare.iter().map(|b| b.pair_usec())), median(self.bare.iter().map(|b| b.pair_cpu_usec())))
    }

    /// The Markdown report.
    pub fn to_markdown(&self) -> String {
        let o = &self.options;
        let m = &self.machine;
        let mut md = String::new();
        let _ = writeln!(md, "### Run\n");
        let _ = writeln!(md, "- {} to {}, commit {}", m.started, m.finished, m.commit);
        let _ = writeln!(
            md,
            "- machine: {} CPUs ({}), redis-server {}, {}; wrk, the app and redis-server share the CPUs",
            m.cpus, m.cpu_model, m.redis_version, m.wrk_version
        );
        let (load_low, load_high) = self
            .runs
            .iter()
            .flat_map(|(_, runs)| runs.iter().map(|r| r.load_average))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let _ = writeln!(
            md,
            "- load average (1 min): {:.2} at the start, {:.2} at the end, {load_low:.2}–{load_high:.2} at the end of the runs",
            m.load_average.0, m.load_average.1
        );
        let _ = writeln!(
            md,
            "- {} round(s), configurations interleaved (order rotated by one per round), a fresh redis-server per run; \
             {} sessions created by first visits per run; `wrk -t{} -c{} -d{}s --latency` after a {} s warm-up, each \
             request with one of the cookies, picked at random",
            o.rounds,
            o.sessions,
            o.wrk_threads,
            o.connections,
            o.duration.as_secs(),
            o.warmup.as_secs()
        );
        let _ = writeln!(md);
        let tower = self.median_rps("tower-sessions");
        let (bare_usec, bare_cpu) = self.bare_pair();
        let _ = writeln!(
            md,
            "| configuration | req/s (median) | vs tower-sessions | req/s per round | p50 ms | p99 ms | p99.9 ms | app CPU µs/request | Redis µs/request | vs bare GET+SET | server CPU µs/request | errors |"
        );
        let _ = writeln!(md, "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (config, runs) in &self.runs {
            let s = summarize(runs);
            let ratio = tower.map(|t| format!("**{:.2}**", s.requests_per_sec / t)).unwrap_or_else(|| "n/a".into());
            let per_round: Vec<String> = runs.iter().map(|r| thousands(r.wrk.requests_per_sec())).collect();
            let (redis, vs_bare, cpu) = if config.app == "ceiling" {
                ("–".to_owned(), "–".to_owned(), "–".to_owned())
            } else {
                (
                    format!("{:.2}", s.redis_usec),
                    format!("{:.2}", s.redis_usec / bare_usec),
                    format!("{:.1}", s.server_cpu_usec),
                )
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} | {} | {} |",
                config.label,
                thousands(s.requests_per_sec),
                ratio,
                per_round.join(" / "),
                percentile(&s, 50.0) / 1000.0,
                percentile(&s, 99.0) / 1000.0,
                percentile(&s, 99.9) / 1000.0,
                s.app_cpu_usec,
                redis,
                vs_bare,
                cpu,
                s.errors
            );
        }
        let get_rps = median(self.bare.iter().map(|b| b.get_rps));
        let set_rps = median(self.bare.iter().map(|b| b.set_rps));
        let _ = writeln!(
            md,
            "| bare redis-benchmark GET+SET (`-c {} -n {} -d {} -r {}`) | GET {} / SET {} | | | | | | | {:.2} per pair | 1.00 | {:.1} per pair | |",
            o.connections,
            o.bare_requests,
            o.bare_value_bytes,
            o.sessions,
            thousands(get_rps),
            thousands(set_rps),
            bare_usec,
            bare_cpu
        );
        let _ = writeln!(md);
        let _ = writeln!(md, "Targets:\n");
        for (id, target) in TARGETS {
            let label = self.runs.iter().find(|(c, _)| c.id == *id).map(|(c, _)| c.label).unwrap_or(id);
            match (self.median_rps(id), tower) {
                (Some(rps), Some(t)) => {
                    let factor = rps / t;
                    let verdict = if factor >= *target { "met" } else { "missed" };
                    let _ =
                        writeln!(md, "- {label} / tower-sessions req/s = {factor:.2} (target ≥ {target}: {verdict})");
                }
                _ => {
                    let _ = writeln!(md, "- {label} / tower-sessions: not measured in this run");
                }
            }
        }
        for (config, runs) in &self.runs {
            if config.app != "sessionkit" {
                continue;
            }
            let factor = summarize(runs).redis_usec / bare_usec;
            let verdict = if factor <= REDIS_TIME_TARGET { "met" } else { "missed" };
            let _ = writeln!(
                md,
                "- {} Redis µs/request / bare GET+SET = {factor:.2} (target ≤ {REDIS_TIME_TARGET}: {verdict})",
                config.label
            );
        }
        if !self.memory.is_empty() {
            let _ = writeln!(md, "\n| layout | sessions | value bytes | bytes/session |");
            let _ = writeln!(md, "|---|---:|---:|---:|");
            for row in &self.memory {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.0} |",
                    row.layout,
                    thousands(row.sessions as f64),
                    row.value_bytes,
                    row.bytes_per_session
                );
            }
        }
        md
    }

    /// Every figure, per run, plus the medians (what `sessionkit-bench plot` reads).
    pub fn to_json(&self) -> Value {
        let o = &self.options;
        let m = &self.machine;
        let (bare_usec, bare_cpu) = self.bare_pair();
        let configs: Vec<Value> = self
            .runs
            .iter()
            .map(|(config, runs)| {
                let s = summarize(runs);
                json!({
                    "id": config.id,
                    "label": config.label,
                    "app": config.app,
                    "store_options": config.store_options,
                    "median": {
                        "requests_per_sec": s.requests_per_sec,
                        "redis_usec_per_request": s.redis_usec,
                        "server_cpu_usec_per_request": s.server_cpu_usec,
                        "app_cpu_usec_per_request": s.app_cpu_usec,
                        "percentiles_us": s.percentiles_us,
                    },
                    "errors": s.errors,
                    "runs": runs.iter().map(|r| json!({
                        "round": r.round,
                        "requests": r.wrk.requests,
                        "duration_s": r.wrk.duration.as_secs_f64(),
                        "requests_per_sec": r.wrk.requests_per_sec(),
                        "errors": r.wrk.errors,
                        "percentiles_us": r.wrk.percentiles_us,
                        "redis_usec_per_request": r.redis_usec_per_request(),
                        "server_cpu_usec_per_request": r.server_cpu_usec_per_request(),
                        "app_cpu_usec_per_request": r.app_cpu_usec_per_request(),
                        "load_average": r.load_average,
                        "commandstats": r.commandstats.iter().map(|(k, v)| (k.clone(), json!({"calls": v.calls, "usec": v.usec}))).collect::<serde_json::Map<_, _>>(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "machine": {
                "started": m.started, "finished": m.finished, "cpus": m.cpus, "cpu_model": m.cpu_model,
                "redis_version": m.redis_version, "wrk_version": m.wrk_version, "commit": m.commit,
                "load_average_start": m.load_average.0, "load_average_end": m.load_average.1,
            },
            "options": {
                "rounds": o.rounds, "duration_s": o.duration.as_secs_f64(), "warmup_s": o.warmup.as_secs_f64(),
                "sessions": o.sessions, "connections": o.connections, "wrk_threads": o.wrk_threads,
                "bare_requests": o.bare_requests, "bare_value_bytes": o.bare_value_bytes,
            },
            "configs": configs,
            "bare": {
                "pair_usec": bare_usec,
                "pair_server_cpu_usec": bare_cpu,
                "runs": self.bare.iter().map(|b| json!({
                    "round": b.round, "get_rps": b.get_rps, "set_rps": b.set_rps,
                    "pair_usec": b.pair_usec(), "pair_server_cpu_usec": b.pair_cpu_usec(),
                })).collect::<Vec<_>>(),
            },
            "memory": self.memory.iter().map(|row| json!({
                "layout": row.layout, "sessions": row.sessions, "value_bytes": row.value_bytes,
                "bytes_per_session": row.bytes_per_session,
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped_by_spaces() {
        assert_eq!(thousands(1234567.4), "1 234 567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(f64::NAN), "n/a");
    }
}
