//! `client_cache=on`: loads answered from memory, and never stale across processes. The writer is a second
//! process (this test binary run again as `writer_process`), talking to the reader over its stdin/stdout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;

use sessionkit::store::redis::{RedisStore, CLIENT_CACHE_CONNECTION_NAME};
use sessionkit::{Session, SessionKey, SessionStore, Settings};
use sessionkit_testsupport::{
    field_ttl_binaries, shared_field_ttl_servers, shared_standalone as standalone, ServerBinary, Standalone,
};

const WRITER_URL: &str = "SESSIONKIT_CLIENT_CACHE_WRITER_URL";

fn settings() -> Arc<Settings> {
    Arc::new(Settings::with_secret_key("client-cache"))
}

async fn visits<S: SessionStore + ?Sized>(store: &Arc<S>, key: &SessionKey) -> Option<i64> {
    let record = store.load(key).await.unwrap()?;
    Some(record.data.get("visits").and_then(serde_json::Value::as_i64).unwrap_or(-1))
}

/// Loads `key` through a `Session` (as an app does), sets `visits`, saves.
async fn set_visits(store: Arc<dyn SessionStore>, key: Option<&SessionKey>, value: i64) -> SessionKey {
    let mut session = Session::new(store, settings(), key.cloned());
    session.set("visits", value).await.unwrap();
    session.save().await.unwrap();
    session.key().unwrap().clone()
}

/// The system's redis-server and, where `scripts/install-field-ttl-redis` has run, the newer servers.
fn servers() -> Vec<(&'static str, &'static Standalone)> {
    let mut servers = vec![("redis-server", standalone())];
    servers.extend(shared_field_ttl_servers().iter().map(|(binary, server)| (binary.name.as_str(), server)));
    servers
}

/// `cmdstat_<command>:calls=N` of a server.
fn calls(server: &Standalone, command: &str) -> u64 {
    let stats = server.server.command(&["INFO", "commandstats"]).unwrap();
    stats
        .lines()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

struct Writer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Writer {
    fn start(url: &str) -> Writer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "writer_process", "--ignored", "--nocapture", "--test-threads=1"])
            .env(WRITER_URL, url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut writer = Writer { child, stdin, stdout };
        assert_eq!(writer.reply(), "ready");
        writer
    }

    fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            assert!(self.stdout.read_line(&mut line).unwrap() > 0, "the writer process ended");
            // The test harness prints its own text too, on the same lines ("test writer_process ... ").
            if let Some((_, reply)) = line.trim().split_once("writer: ") {
                return reply.to_owned();
            }
        }
    }

    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        self.reply()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The other process: `set KEY N` loads KEY, sets visits = N and saves (a compare-and-set, merged on
/// conflict); `delete KEY` deletes it (a logout); `get KEY` answers what it loads. It caches too.
#[tokio::test]
#[ignore = "run by the other tests as a second process"]
async fn writer_process() {
    let Ok(url) = std::env::var(WRITER_URL) else { return };
    let store = Arc::new(RedisStore::connect(&url).await.unwrap());
    println!("writer: ready");
    for line in std::io::stdin().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["set", key, n] => {
                let key = SessionKey::parse(key).unwrap();
                set_visits(store.clone(), Some(&key), n.parse().unwrap()).await;
                "ok".to_owned()
            }
            ["delete", key] => {
                store.delete(&SessionKey::parse(key).unwrap()).await.unwrap();
                "ok".to_owned()
            }
            ["get", key] => format!("{:?}", visits(&store, &SessionKey::parse(key).unwrap()).await),
            _ => "unknown command".to_owned(),
        };
        println!("writer: {reply}");
    }
}

fn url(server: &Standalone, options: &str) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pid = std::process::id();
    format!("{}?prefix=cc{pid}x{n}:&key_prefix=cc{pid}x{n}&client_cache=on&{options}", server.url())
}

/// Each process writes, deletes and recreates a session the other has cached; the very next load in the other
/// process (sent as soon as the write was acknowledged) must see it: never the old value, never a logged-out
/// session. Every layout, on the system's server and on the newer ones (where a process's own script writes
/// stay cached).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_logouts_of_another_process_are_seen_by_the_next_load() {
    let layouts = [
        "layout=string",
        "layout=hash&buckets=4",
        "layout=django-cache",
        "layout=string&hashed_keys=1&compression=lz4&compress_min_bytes=0",
    ];
    for (name, server) in servers() {
        for options in layouts {
            let url = url(server, options);
            let reader = Arc::new(RedisStore::connect(&url).await.unwrap());
            let mut writer = Writer::start(&url);
            let mut key = set_visits(reader.clone(), None, 0).await;
            assert_eq!(visits(&reader, &key).await, Some(0), "{name} {options}");
            for round in 1..=150i64 {
                // The other process writes: this process must not answer the cached value.
                assert_eq!(writer.ask(&format!("set {} {round}", key.as_str())), "ok");
                let seen = visits(&reader, &key).await;
                assert_eq!(seen, Some(round), "{name} {options}: round {round}, write of the other process");
                // This process writes: the other must see it.
                set_visits(reader.clone(), Some(&key), -round).await;
                let seen = writer.ask(&format!("get {}", key.as_str()));
                assert_eq!(seen, format!("Some({})", -round), "{name} {options}: round {round}");
                if round % 15 == 0 {
                    // A logout in the other process: this process must not find the session any more.
                    assert_eq!(writer.ask(&format!("delete {}", key.as_str())), "ok");
                    let seen = visits(&reader, &key).await;
                    assert_eq!(seen, None, "{name} {options}: round {round}, logout of the other process");
                    key = set_visits(reader.clone(), None, round).await;
                }
            }
        }
    }
}

/// A session this process loaded is loaded again without a command to Redis (nearly always), and so is one it
/// created. After
/// its own save, one load asks Redis: Redis and Valkey report a script's writes back to the connection that ran
/// it despite `NOLOOP` (seen on 7.0, 7.4, 8.2 and Valkey 9), and a merging save is a compare-and-set script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_loads_and_loads_after_a_save_need_no_round_trip() {
    // Servers of its own: the command counts must not include other tests' commands.
    let mut own = vec![("redis-server".to_owned(), Standalone::start().unwrap())];
    for binary in field_ttl_binaries() {
        let server = Standalone::start_binary(&binary, &[]).unwrap();
        own.push((binary.name, server));
    }
    for (name, server) in &own {
        let store = Arc::new(RedisStore::connect(&url(server, "layout=string")).await.unwrap());
        let key = set_visits(store.clone(), None, 1).await;
        let before = calls(server, "get");
        for _ in 0..100 {
            assert_eq!(visits(&store, &key).await, Some(1));
        }
        // A load also asks Redis when something may be waiting to be read on the tracking connection (never
        // wrong, rarely needed here).
        let asked = calls(server, "get") - before;
        assert!(asked <= 5, "{name}: {asked} of 100 loads after a create asked Redis");

        let key2 = set_visits(store.clone(), Some(&key), 2).await;
        assert_eq!(key2, key);
        assert_eq!(visits(&store, &key).await, Some(2));
        let before = calls(server, "get");
        for _ in 0..50 {
            assert_eq!(visits(&store, &key).await, Some(2));
        }
        let asked = calls(server, "get") - before;
        assert!(asked <= 5, "{name}: {asked} of 50 loads after a save asked Redis");

        // Without the option, every load is a GET.
        let plain_url = url(server, "layout=string").replace("client_cache=on", "client_cache=off");
        let plain = Arc::new(RedisStore::connect(&plain_url).await.unwrap());
        let key = set_visits(plain.clone(), None, 1).await;
        let before = calls(server, "get");
        for _ in 0..10 {
            assert_eq!(visits(&plain, &key).await, Some(1));
        }
        assert_eq!(calls(server, "get") - before, 10, "{name}");
    }
}

/// When the connection that receives invalidations is lost, what was cached is forgotten: a write made while it
/// was down (which no invalidation reports) is seen once the store has reconnected, and caching resumes on the
/// new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_tracking_connection_clears_the_cache() {
    // A server of its own: the kill must not reach other tests' connections.
    let server = Standalone::start().unwrap();
    let url = url(&server, "layout=string");
    let store = Arc::new(RedisStore::connect(&url).await.unwrap());
    let key = set_visits(store.clone(), None, 1).await;
    let unrelated = set_visits(store.clone(), None, 7).await;
    assert_eq!(visits(&store, &key).await, Some(1));

    server.server.command(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]).ok();
    let list = server.server.command(&["CLIENT", "LIST"]).unwrap();
    for line in list.lines().filter(|l| l.contains(&format!("name={CLIENT_CACHE_CONNECTION_NAME} "))) {
        let id = line.split_whitespace().find_map(|f| f.strip_prefix("id=")).unwrap();
        server.server.command(&["CLIENT", "KILL", "ID", id]).unwrap();
    }
    // The kill above closed this store's ordinary connection too: a fresh one.
    let other = Arc::new(RedisStore::connect(&url.replace("client_cache=on", "client_cache=off")).await.unwrap());
    set_visits(other.clone(), Some(&key), 2).await;
    // Another session's load reconnects the tracking connection (the kill may surface as one failed load first).
    let mut reconnected = false;
    for _ in 0..50 {
        if store.load(&unrelated).await.is_ok() {
            reconnected = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(reconnected);
    assert_eq!(visits(&store, &key).await, Some(2), "the copy cached before the loss was forgotten");
    // Cached again on the new connection, and invalidated by the other store's writes.
    assert_eq!(visits(&store, &key).await, Some(2));
    set_visits(other.clone(), Some(&key), 3).await;
    assert_eq!(visits(&store, &key).await, Some(3));
}

/// Reads and writes of one session racing in one process (`merge=false` saves, which are plain `SET XX`): once
/// they are done, a load gives what Redis holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_reads_and_writes_in_one_process_leave_no_stale_copy() {
    let url = url(standalone(), "layout=string&merge=false");
    let store = sessionkit::store::open_store(&url, &settings()).await.unwrap();
    let plain_url = url.replace("client_cache=on", "client_cache=off");
    let plain = sessionkit::store::open_store(&plain_url, &settings()).await.unwrap();
    let key = set_visits(store.clone(), None, 0).await;
    for round in 1..=300i64 {
        let writer = {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move { set_visits(store.clone(), Some(&key), round).await })
        };
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (store, key) = (store.clone(), key.clone());
                tokio::spawn(async move { visits(&store, &key).await })
            })
            .collect();
        writer.await.unwrap();
        for reader in readers {
            reader.await.unwrap();
        }
        assert_eq!(visits(&store, &key).await, visits(&plain, &key).await, "round {round}");
        assert_eq!(visits(&store, &key).await, Some(round), "round {round}");
    }
}

/// A server that stops answering (a hung host, a connection dropped without a reset) is not trusted past the
/// heartbeat's lease (1 s): the load asks Redis, and fails as any load would, instead of answering a copy whose
/// invalidations may be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_is_not_trusted_past_the_lease() {
    let args = ["--enable-debug-command".to_owned(), "yes".to_owned()];
    let server = Standalone::start_binary(&ServerBinary::system(), &args).unwrap();
    let store = Arc::new(RedisStore::connect(&url(&server, "layout=string&timeout=0.3")).await.unwrap());
    let key = set_visits(store.clone(), None, 1).await;
    assert_eq!(visits(&store, &key).await, Some(1));
    let port = server.server.port();
    let sleeper = std::thread::spawn(move || sessionkit_testsupport::command(port, &["DEBUG", "SLEEP", "3"]));
    tokio::time::sleep(std::time::Duration::from_millis(1_600)).await;
    let during = store.load(&key).await;
    assert!(during.is_err(), "answered while the server was silent: {during:?}");
    sleeper.join().unwrap().unwrap();
    assert_eq!(visits(&store, &key).await, Some(1), "served again once the server answers");
}

#[tokio::test]
async fn client_cache_is_refused_where_it_cannot_be_kept_true() {
    for url in [
        "redis+cluster://127.0.0.1:7000?client_cache=on",
        "redis+sentinel://127.0.0.1:26379/mymaster?client_cache=on",
        "rediss://127.0.0.1:6380?client_cache=on",
        "unix:///tmp/redis.sock?client_cache=on",
    ] {
        let err = RedisStore::connect(url).await.unwrap_err().to_string();
        assert!(err.contains("client_cache=on works with a standalone server over plain TCP"), "{url}: {err}");
    }
    let err = RedisStore::connect("redis://127.0.0.1:6379?client_cache=maybe").await.unwrap_err().to_string();
    assert!(err.contains("client_cache=\"maybe\" is not on or off"), "{err}");
}
