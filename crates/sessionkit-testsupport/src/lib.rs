//! Throwaway Redis servers for tests: standalone, a 3-master Cluster, and master + replica + Sentinel.
//!
//! Every server is a real `redis-server` process on a free loopback port, with its own temporary directory and
//! no persistence. Processes are stopped when the fixture is dropped; each one also runs under a small shell
//! watchdog that stops it when the test process exits, so a fixture kept in a `static` (shared by all tests of
//! one binary) or a crashed test never leaves a server behind. Nothing here touches a server it did not start.

pub mod databases;
pub mod django;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Marker put in every server's directory name, so `scripts/test` can find strays it started.
pub const DIR_PREFIX: &str = "sessionkit-test-redis-";

/// A fixture failed to start; the message says which command and why.
#[derive(Debug)]
pub struct FixtureError(pub String);

impl std::fmt::Display for FixtureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FixtureError {}

type Result<T> = std::result::Result<T, FixtureError>;

/// A port nobody listens on right now (the OS picks it; a race with another process is possible but rare, and
/// start-up retries on failure).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| FixtureError(format!("bind 127.0.0.1:0: {e}")))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| FixtureError(format!("local_addr: {e}")))
}

/// True when `redis-server` is on the PATH.
pub fn redis_available() -> bool {
    Command::new("redis-server").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// A Redis-protocol server program: Debian's `redis-server` on the PATH, or one that
/// `scripts/install-field-ttl-redis` installed (with the library path it needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerBinary {
    /// A short name for messages (`redis-7.0`, `redis-7.4.1`, …).
    pub name: String,
    /// The program.
    pub path: PathBuf,
    /// `LD_LIBRARY_PATH` for it, if it needs one.
    pub library_path: Option<PathBuf>,
}

impl ServerBinary {
    /// `redis-server` from the PATH (Debian's package).
    pub fn system() -> Self {
        ServerBinary { name: "redis-server".into(), path: PathBuf::from("redis-server"), library_path: None }
    }
}

/// The file `scripts/install-field-ttl-redis` writes: one line per server, `NAME PATH [LD_LIBRARY_PATH]`.
/// `$SESSIONKIT_FIELD_TTL_SERVERS` overrides where it is.
pub fn field_ttl_servers_file() -> PathBuf {
    std::env::var_os("SESSIONKIT_FIELD_TTL_SERVERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/field-ttl-redis/servers.txt"))
}

/// The servers with hash-field TTL (Redis >= 7.4) that `scripts/install-field-ttl-redis` installed, in the order
/// it lists them. Empty when it has not run: under CI (`CI` set) that is a failure (`scripts/test` runs it).
///
/// # Panics
/// Under CI, when the file lists no server.
pub fn field_ttl_binaries() -> Vec<ServerBinary> {
    let file = field_ttl_servers_file();
    let servers: Vec<ServerBinary> = std::fs::read_to_string(&file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let name = parts.next()?.to_owned();
            let path = PathBuf::from(parts.next()?);
            Some(ServerBinary { name, path, library_path: parts.next().map(PathBuf::from) })
        })
        .collect();
    if servers.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "no server with hash-field TTL listed in {}: run scripts/install-field-ttl-redis (scripts/test does)",
            file.display()
        );
        eprintln!("skipped: no server with hash-field TTL (run scripts/install-field-ttl-redis)");
    }
    servers
}

/// One `redis-server` process.
#[derive(Debug)]
pub struct RedisProcess {
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    config_file: Option<PathBuf>,
    binary: ServerBinary,
    child: Option<Child>,
}

impl RedisProcess {
    /// Starts `redis-server` on a free port in `dir` with extra `args` (e.g. `--cluster-enabled yes`).
    pub fn start(dir: &Path, args: &[String]) -> Result<Self> {
        Self::start_with_config(dir, None, args)
    }

    /// Like [`RedisProcess::start`], with a config file (it must come first on redis-server's command line).
    pub fn start_with_config(dir: &Path, config_file: Option<&Path>, args: &[String]) -> Result<Self> {
        Self::start_binary(&ServerBinary::system(), dir, config_file, args)
    }

    /// Like [`RedisProcess::start_with_config`], with another server program.
    pub fn start_binary(
        binary: &ServerBinary,
        dir: &Path,
        config_file: Option<&Path>,
        args: &[String],
    ) -> Result<Self> {
        let mut last_err = FixtureError("no attempt".into());
        for _ in 0..5 {
            let port = free_port()?;
            let mut process = RedisProcess {
                port,
                dir: dir.to_path_buf(),
                args: args.to_vec(),
                config_file: config_file.map(Path::to_path_buf),
                binary: binary.clone(),
                child: None,
            };
            match process.spawn().and_then(|()| process.wait_ready(Duration::from_secs(10))) {
                Ok(()) => return Ok(process),
                Err(err) => {
                    process.stop();
                    last_err = err;
                }
            }
        }
        Err(last_err)
    }

    fn spawn(&mut self) -> Result<()> {
        let node_dir = self.dir.join(self.port.to_string());
        std::fs::create_dir_all(&node_dir).map_err(|e| FixtureError(format!("mkdir {}: {e}", node_dir.display())))?;
        let mut redis_args: Vec<String> = self.config_file.iter().map(|p| p.display().to_string()).collect();
        redis_args.extend([
            "--port".into(),
            self.port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            node_dir.display().to_string(),
            "--logfile".into(),
            node_dir.join("redis.log").display().to_string(),
        ]);
        redis_args.extend(self.args.iter().cloned());
        let program = self.binary.path.display().to_string();
        self.child = Some(spawn_watched(&program, &redis_args, self.binary.library_path.as_deref())?);
        Ok(())
    }

    /// Waits until the server answers PING.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(reply) = command(self.port, &["PING"]) {
                if reply.starts_with("+PONG") {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(FixtureError(format!(
                    "redis-server on port {} did not answer PING within {timeout:?}; log: {}",
                    self.port,
                    std::fs::read_to_string(self.dir.join(self.port.to_string()).join("redis.log")).unwrap_or_default()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the process (SIGKILL: tests want an abrupt outage, and there is nothing to persist).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The watchdog leads its own process group; killing the group takes redis-server with it.
            let _ = Command::new("kill").arg("-KILL").arg("--").arg(format!("-{}", child.id())).status();
            let _ = child.kill();
            let _ = child.wait();
        }
        // The watchdog's redis-server child: make sure it is gone before the port is reused.
        let deadline = Instant::now() + Duration::from_secs(5);
        while command(self.port, &["PING"]).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the process again on the same port and directory (a Redis restart as seen by clients).
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn()?;
        self.wait_ready(Duration::from_secs(10))
    }

    /// Sends one command and returns the raw RESP reply.
    pub fn command(&self, args: &[&str]) -> Result<String> {
        command(self.port, args)
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Spawns `program args` under a shell watchdog: when the test process (the watchdog's parent) exits, or the
/// watchdog is killed, the program is killed too.
fn spawn_watched(program: &str, args: &[String], library_path: Option<&Path>) -> Result<Child> {
    // $PPID is the test process. `exec` is not used so the shell stays to watch; the trap covers kill of the shell.
    let script = r#"prog="$1"; shift; "$prog" "$@" & child=$!; trap 'kill -9 $child 2>/dev/null; exit 0' TERM INT HUP;
while kill -0 "$PPID" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.5; done; kill -9 $child 2>/dev/null"#;
    let mut cmd = Command::new("sh");
    // A process group of its own, so stop() can kill the watchdog and the server together.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.arg("-c").arg(script).arg("watchdog").arg(program).args(args);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    if let Some(path) = library_path {
        cmd.env("LD_LIBRARY_PATH", path);
    }
    cmd.spawn().map_err(|e| FixtureError(format!("cannot start {program}: {e}")))
}

/// Sends one command over RESP and returns the raw reply text (enough for fixture checks).
pub fn command(port: u16, args: &[&str]) -> Result<String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| FixtureError(format!("connect {port}: {e}")))?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| FixtureError(e.to_string()))?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{}\r\n", arg.len(), arg));
    }
    stream.write_all(request.as_bytes()).map_err(|e| FixtureError(format!("write {port}: {e}")))?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 16384];
    // Read until the reply looks complete: simple replies end with CRLF; bulk replies carry their length.
    loop {
        let n = stream.read(&mut buf).map_err(|e| FixtureError(format!("read {port}: {e}")))?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if reply_complete(&reply) {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

fn reply_complete(reply: &[u8]) -> bool {
    resp_end(reply, 0).is_some()
}

/// The index just past the RESP value starting at `at`, or `None` when the bytes end before it does.
fn resp_end(buf: &[u8], at: usize) -> Option<usize> {
    let line_end = at + buf.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
    let header = std::str::from_utf8(buf.get(at + 1..line_end)?).ok()?;
    let after = line_end + 2;
    match buf.get(at)? {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Some(after),
        b'$' | b'=' | b'!' => {
            let len: i64 = header.parse().ok()?;
            if len < 0 {
                return Some(after);
            }
            let end = after + len as usize + 2;
            (buf.len() >= end).then_some(end)
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let count: i64 = header.parse().ok()?;
            let items = if matches!(buf[at], b'%' | b'|') { count * 2 } else { count };
            let mut pos = after;
            for _ in 0..items.max(0) {
                pos = resp_end(buf, pos)?;
            }
            Some(pos)
        }
        _ => Some(buf.len()),
    }
}

fn temp_root() -> Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(DIR_PREFIX).tempdir().map_err(|e| FixtureError(format!("temp dir: {e}")))
}

/// A standalone server.
#[derive(Debug)]
pub struct Standalone {
    /// The server process.
    pub server: RedisProcess,
    _dir: tempfile::TempDir,
}

impl Standalone {
    /// Starts one server.
    pub fn start() -> Result<Self> {
        Self::start_binary(&ServerBinary::system(), &[])
    }

    /// Starts one server of `binary` with extra `args`.
    pub fn start_binary(binary: &ServerBinary, args: &[String]) -> Result<Self> {
        let dir = temp_root()?;
        let server = RedisProcess::start_binary(binary, dir.path(), None, args)?;
        Ok(Standalone { server, _dir: dir })
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }
}

/// A Redis Cluster of three masters (no replicas), created with `redis-cli --cluster create`.
#[derive(Debug)]
pub struct Cluster {
    /// The three master processes.
    pub nodes: Vec<RedisProcess>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts three cluster-enabled servers and joins them into one cluster covering all 16384 slots.
    pub fn start() -> Result<Self> {
        let dir = temp_root()?;
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let bus = free_port()?;
            let args: Vec<String> = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
                "--cluster-port",
                &bus.to_string(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            nodes.push(RedisProcess::start(dir.path(), &args)?);
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        create.args(["--cluster-replicas", "0", "--cluster-yes"]);
        let output = create.output().map_err(|e| FixtureError(format!("redis-cli --cluster create: {e}")))?;
        if !output.status.success() {
            return Err(FixtureError(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let cluster = Cluster { nodes, _dir: dir };
        cluster.wait_ok(Duration::from_secs(20))?;
        Ok(cluster)
    }

    fn wait_ok(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let all_ok = self
                .nodes
                .iter()
                .all(|n| n.command(&["CLUSTER", "INFO"]).is_ok_and(|info| info.contains("cluster_state:ok")));
            if all_ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(FixtureError(format!("cluster did not reach cluster_state:ok within {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Seed node URLs, `redis://127.0.0.1:PORT` each.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisProcess::url).collect()
    }
}

/// A master, one replica, and one Sentinel watching the master under the name [`Sentinel::MASTER_NAME`].
#[derive(Debug)]
pub struct Sentinel {
    /// The master.
    pub master: RedisProcess,
    /// The replica of the master.
    pub replica: RedisProcess,
    /// The Sentinel process.
    pub sentinel: RedisProcess,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    /// The master name the Sentinel monitors.
    pub const MASTER_NAME: &'static str = "sessionkit";

    /// Starts master, replica and Sentinel and waits until the Sentinel knows the master and the replica is in sync.
    pub fn start() -> Result<Self> {
        let dir = temp_root()?;
        let master = RedisProcess::start(dir.path(), &[])?;
        let replica =
            RedisProcess::start(dir.path(), &["--replicaof".into(), "127.0.0.1".into(), master.port().to_string()])?;
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "sentinel monitor {name} 127.0.0.1 {port} 1\nsentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 3000\nsentinel resolve-hostnames no\n",
                name = Self::MASTER_NAME,
                port = master.port()
            ),
        )
        .map_err(|e| FixtureError(format!("write sentinel.conf: {e}")))?;
        let sentinel = RedisProcess::start_with_config(dir.path(), Some(&conf), &["--sentinel".into()])?;
        let fixture = Sentinel { master, replica, sentinel, _dir: dir };
        fixture.wait_synced(Duration::from_secs(20))?;
        Ok(fixture)
    }

    fn wait_synced(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let known = self
                .sentinel
                .command(&["SENTINEL", "get-master-addr-by-name", Self::MASTER_NAME])
                .is_ok_and(|r| r.contains(&self.master.port().to_string()));
            let synced =
                self.replica.command(&["INFO", "replication"]).is_ok_and(|r| r.contains("master_link_status:up"));
            if known && synced {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(FixtureError(format!("sentinel setup not ready within {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `redis+sentinel://127.0.0.1:SENTINEL_PORT/MASTER_NAME`-style parts: the sentinel address.
    pub fn sentinel_addr(&self) -> String {
        format!("127.0.0.1:{}", self.sentinel.port())
    }
}

/// One standalone server shared by every test of the calling test binary (started on first use; stopped by its
/// watchdog when the binary exits). Tests sharing it must use their own key prefixes.
///
/// # Panics
/// When the server cannot be started: a fixture failure fails the test with the reason.
pub fn shared_standalone() -> &'static Standalone {
    static SERVER: std::sync::OnceLock<Standalone> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| Standalone::start().unwrap_or_else(|e| panic!("cannot start redis-server: {e}")))
}

/// One standalone server of each of [`field_ttl_binaries`] (hash-field TTL), shared by every test of the calling
/// test binary, with the binary it runs; empty when none is installed (outside CI: the caller skips, saying so).
///
/// # Panics
/// When a server cannot be started, or under CI when none is installed.
pub fn shared_field_ttl_servers() -> &'static [(ServerBinary, Standalone)] {
    static SERVERS: std::sync::OnceLock<Vec<(ServerBinary, Standalone)>> = std::sync::OnceLock::new();
    SERVERS.get_or_init(|| {
        field_ttl_binaries()
            .into_iter()
            .map(|binary| {
                let server = Standalone::start_binary(&binary, &[])
                    .unwrap_or_else(|e| panic!("cannot start {} ({}): {e}", binary.name, binary.path.display()));
                (binary, server)
            })
            .collect()
    })
}

/// One 3-master Cluster shared by every test of the calling test binary (see [`shared_standalone`]).
///
/// # Panics
/// When the cluster cannot be started.
pub fn shared_cluster() -> &'static Cluster {
    static SERVERS: std::sync::OnceLock<Cluster> = std::sync::OnceLock::new();
    SERVERS.get_or_init(|| Cluster::start().unwrap_or_else(|e| panic!("cannot start a Redis Cluster: {e}")))
}

/// One master + replica + Sentinel shared by every test of the calling test binary (see [`shared_standalone`]).
/// Tests that fail over the master must start their own [`Sentinel`].
///
/// # Panics
/// When the setup cannot be started.
pub fn shared_sentinel() -> &'static Sentinel {
    static SERVERS: std::sync::OnceLock<Sentinel> = std::sync::OnceLock::new();
    SERVERS.get_or_init(|| Sentinel::start().unwrap_or_else(|e| panic!("cannot start Sentinel: {e}")))
}

/// The Python of the repo's venv (Django, redis-py, django-redis, …), for the interop tests: `$SESSIONKIT_PYTHON`,
/// else `.venv/bin/python` at the workspace root (both set up by `scripts/test`). `None` when neither exists — the
/// caller then says it skipped; under CI (`CI` set) a missing venv fails instead.
///
/// # Panics
/// Under CI, when there is no venv.
pub fn django_python() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("SESSIONKIT_PYTHON") {
        return Some(PathBuf::from(path));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if venv.exists() {
        return Some(venv);
    }
    assert!(std::env::var_os("CI").is_none(), "no Python venv with Django: scripts/test creates .venv");
    eprintln!("skipped: no Python venv with Django (run scripts/test, which creates .venv)");
    None
}

/// `redis+cluster://` URL of a cluster's nodes.
pub fn cluster_url(cluster: &Cluster) -> String {
    let hosts: Vec<String> = cluster.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
    format!("redis+cluster://{}", hosts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_starts_answers_and_restarts() {
        if !redis_available() {
            panic!("redis-server is not installed; scripts/test installs it");
        }
        let mut s = Standalone::start().unwrap();
        assert!(s.server.command(&["SET", "k", "v"]).unwrap().starts_with("+OK"));
        assert_eq!(s.server.command(&["GET", "k"]).unwrap(), "$1\r\nv\r\n");
        s.server.restart().unwrap();
        assert_eq!(s.server.command(&["GET", "k"]).unwrap(), "$-1\r\n", "no persistence: data is gone");
        let port = s.server.port();
        drop(s);
        assert!(command(port, &["PING"]).is_err(), "server stopped on drop");
    }

    #[test]
    fn cluster_covers_all_slots() {
        let c = Cluster::start().unwrap();
        let info = c.nodes[0].command(&["CLUSTER", "INFO"]).unwrap();
        assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
        assert!(info.contains("cluster_known_nodes:3"), "{info}");
    }

    #[test]
    fn resp_completeness() {
        assert!(reply_complete(b"+OK\r\n"));
        assert!(!reply_complete(b"$5\r\nhel"));
        assert!(reply_complete(b"$-1\r\n"));
        assert!(reply_complete(b"*3\r\n$6\r\nmaster\r\n:1234\r\n*0\r\n"));
        assert!(!reply_complete(b"*2\r\n$1\r\na\r\n"));
        assert!(reply_complete(b"*2\r\n*1\r\n:1\r\n$1\r\nb\r\n"));
    }

    #[test]
    fn sentinel_knows_the_master() {
        let s = Sentinel::start().unwrap();
        let reply = s.sentinel.command(&["SENTINEL", "get-master-addr-by-name", Sentinel::MASTER_NAME]).unwrap();
        assert!(reply.contains(&s.master.port().to_string()), "{reply}");
    }
}
