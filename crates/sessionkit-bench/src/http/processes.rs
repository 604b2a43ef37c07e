//! The processes an HTTP run starts: a fresh `redis-server` per measurement and the app under test. Both are
//! killed when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::BenchError;

/// A free loopback port (bound, read, released; never 6379, which the OS does not hand out for port 0).
pub fn free_port() -> Result<u16, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| BenchError(format!("cannot find a free port: {e}")))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| BenchError(format!("cannot find a free port: {e}")))
}

/// Runs `redis-cli -p PORT ARGS...` and returns its output.
pub fn redis_cli(port: u16, args: &[&str]) -> Result<String, BenchError> {
    let output = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .map_err(|e| BenchError(format!("cannot run redis-cli (Debian: redis-tools): {e}")))?;
    if !output.status.success() {
        return Err(BenchError(format!(
            "redis-cli {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A child process killed (and reaped) on drop.
#[derive(Debug)]
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A throwaway `redis-server`: loopback, no persistence, the listpack limits `scripts/bench-redis` uses.
#[derive(Debug)]
pub struct RedisServer {
    /// Its port.
    pub port: u16,
    _process: Owned,
}

impl RedisServer {
    /// Starts one on a free port, its files (none: no persistence) and log in `dir`, and waits for `PING`.
    pub fn start(dir: &Path) -> Result<Self, BenchError> {
        let port = free_port()?;
        let log = std::fs::File::create(dir.join(format!("redis-{port}.log")))
            .map_err(|e| BenchError(format!("cannot create the redis-server log in {}: {e}", dir.display())))?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--hash-max-listpack-entries", "512", "--hash-max-listpack-value", "1024"])
            .arg("--dir")
            .arg(dir)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| BenchError(format!("cannot start redis-server (Debian: redis-server): {e}")))?;
        let server = RedisServer { port, _process: Owned(child) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis_cli(port, &["PING"]).map(|reply| reply.trim() != "PONG").unwrap_or(true) {
            if Instant::now() > deadline {
                return Err(BenchError(format!("redis-server on port {port} did not answer PING within 10 s")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// The app under test (`examples/http_app.rs`), listening on a free port.
#[derive(Debug)]
pub struct App {
    /// Its port.
    pub port: u16,
    /// Its stderr, for error messages.
    pub log: PathBuf,
    _process: Owned,
}

impl App {
    /// Starts `binary --app APP --store STORE --listen 127.0.0.1:PORT` and waits until it accepts connections.
    pub fn start(binary: &Path, app: &str, store: &str, dir: &Path) -> Result<Self, BenchError> {
        let port = free_port()?;
        let log = dir.join(format!("app-{port}.log"));
        let log_file = std::fs::File::create(&log)
            .map_err(|e| BenchError(format!("cannot create the app log {}: {e}", log.display())))?;
        let child = Command::new(binary)
            .args(["--app", app, "--store", store, "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| BenchError(format!("cannot start {}: {e}", binary.display())))?;
        let mut started = App { port, log, _process: Owned(child) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || started.exited() {
                return Err(BenchError(format!(
                    "the {app} app did not start listening on port {port}: {}",
                    std::fs::read_to_string(&started.log).unwrap_or_default().trim()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(started)
    }

    fn exited(&mut self) -> bool {
        matches!(self._process.0.try_wait(), Ok(Some(_)))
    }

    /// CPU time (user + system, all threads) the app used so far, in seconds, from `/proc/PID/stat`.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // Fields after the command name (which may hold spaces, so split after its closing parenthesis): state
        // is field 3, utime 14 and stime 15 (proc(5)).
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        Some(ticks / clock_ticks_per_second())
    }

    /// The process id (for `perf record -p`).
    pub fn pid(&self) -> u32 {
        self._process.0.id()
    }
}

/// `getconf CLK_TCK` (the unit of `/proc/PID/stat`'s times), 100 when it cannot be read.
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}
