//! Redis-specific behaviour beyond the conformance suite, against real servers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sessionkit::store::redis::RedisStore;
use sessionkit::store::user_index::{session_id, CLIENT_IP_KEY, USER_AGENT_KEY};
use sessionkit::{Session, SessionKey, SessionStore, Settings, StoreError};
use sessionkit_testsupport::{shared_cluster as cluster, shared_standalone as standalone, Sentinel, Standalone};

fn unique() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("r{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn cluster_url(options: &str) -> String {
    format!("{}?prefix={}:&{options}", sessionkit_testsupport::cluster_url(cluster()), unique())
}

fn standalone_url(options: &str) -> String {
    format!("{}?prefix={}:&{options}", standalone().url(), unique())
}

fn settings() -> Arc<Settings> {
    Arc::new(Settings::with_secret_key("redis-tests"))
}

async fn login(store: &Arc<RedisStore>, user: &str, agent: &str) -> SessionKey {
    let mut s = Session::new(store.clone(), settings(), None);
    s.set("_auth_user_id", user).await.unwrap();
    s.set("_auth_user_backend", "django.contrib.auth.backends.ModelBackend").await.unwrap();
    s.set(USER_AGENT_KEY, agent).await.unwrap();
    s.set(CLIENT_IP_KEY, "192.0.2.7").await.unwrap();
    s.save().await.unwrap();
    s.key().cloned().unwrap()
}

async fn user_index_lists_prunes_and_revokes(url: String) {
    let store = Arc::new(RedisStore::connect(&url).await.unwrap());
    let index = store.user_index().expect("redis keeps a user index");
    let phone = login(&store, "42", "phone").await;
    let laptop = login(&store, "42", "laptop").await;
    let tablet = login(&store, "42", "tablet").await;
    let other_user = login(&store, "7", "desktop").await;

    let sessions = index.list("42").await.unwrap();
    assert_eq!(sessions.len(), 3);
    let mut agents: Vec<_> = sessions.iter().map(|s| s.user_agent.clone().unwrap()).collect();
    agents.sort();
    assert_eq!(agents, ["laptop", "phone", "tablet"]);
    for s in &sessions {
        assert_eq!(s.ip.as_deref(), Some("192.0.2.7"));
        assert!(s.created.is_some() && s.last_seen.is_some());
        let left = s.expires_at - time::OffsetDateTime::now_utc();
        assert!(left > time::Duration::days(13) && left <= time::Duration::days(14), "{left}");
    }
    assert!(sessions.iter().any(|s| s.id == session_id(&phone)));

    // A logout (flush) elsewhere: the entry is pruned at the next read.
    let mut s = Session::new(store.clone(), settings(), Some(tablet.clone()));
    s.flush().await.unwrap();
    assert_eq!(index.list("42").await.unwrap().len(), 2);

    // Revoke one device by id.
    assert!(index.delete_one("42", &session_id(&laptop)).await.unwrap());
    assert!(store.load(&laptop).await.unwrap().is_none());
    assert!(!index.delete_one("42", &session_id(&laptop)).await.unwrap());

    // "Log out other devices": everything but the current session.
    let second_phone = login(&store, "42", "phone 2").await;
    assert_eq!(index.delete_all("42", Some(&phone)).await.unwrap(), 1);
    assert!(store.load(&second_phone).await.unwrap().is_none());
    assert!(store.load(&phone).await.unwrap().is_some());
    assert_eq!(index.list("42").await.unwrap().len(), 1);
    // Other users are untouched.
    assert!(store.load(&other_user).await.unwrap().is_some());
    assert_eq!(index.list("7").await.unwrap().len(), 1);
    // Log out everywhere.
    assert_eq!(index.delete_all("42", None).await.unwrap(), 1);
    assert!(index.list("42").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_index_on_standalone_string_layout() {
    user_index_lists_prunes_and_revokes(standalone_url("layout=string")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_index_on_standalone_hash_layout_with_hashed_keys() {
    user_index_lists_prunes_and_revokes(standalone_url("layout=hash&buckets=4&hashed_keys=1")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_index_on_cluster_string_layout() {
    user_index_lists_prunes_and_revokes(cluster_url("layout=string")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_index_on_cluster_hash_layout() {
    user_index_lists_prunes_and_revokes(cluster_url("layout=hash&buckets=8")).await;
}

/// The same on each server with hash-field TTL (Valkey 9, Redis 8, Redis 7.4; `scripts/test` installs them): the
/// indexed write script gives the field its expiry there, and the logged-in session's field carries a TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_index_on_field_ttl_servers_hash_layout() {
    for (binary, server) in sessionkit_testsupport::shared_field_ttl_servers() {
        let url = format!("{}?prefix={}:&layout=hash&buckets=4", server.url(), unique());
        user_index_lists_prunes_and_revokes(url.clone()).await;
        let store = Arc::new(RedisStore::connect(&url).await.unwrap());
        assert!(store.uses_hash_field_expiry(), "{}", binary.name);
        let key = login(&store, "5", "phone").await;
        let (bucket, field) = store.raw_address(&key);
        let (bucket, field) = (String::from_utf8(bucket).unwrap(), String::from_utf8(field.unwrap()).unwrap());
        let reply = server.server.command(&["HPTTL", &bucket, "FIELDS", "1", &field]).unwrap();
        let ttl: i64 = reply.lines().nth(1).and_then(|l| l.trim().strip_prefix(':')?.parse().ok()).unwrap_or(-3);
        let two_weeks_ms = 14 * 86_400_000;
        assert!((two_weeks_ms - 60_000..=two_weeks_ms).contains(&ttl), "{}: HPTTL {reply:?}", binary.name);
    }
}

/// The index keys of one user share a slot and expire after the sessions (their expiry plus `index_refresh`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_keys_share_a_slot_and_expire() {
    let url = cluster_url("layout=string");
    let prefix = url.split("prefix=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let store = Arc::new(RedisStore::connect(&url).await.unwrap());
    login(&store, "1001", "ua").await;
    let index = format!("{prefix}u:{{1001}}");
    let node = &cluster().nodes[0];
    let slot_a = node.command(&["CLUSTER", "KEYSLOT", &index]).unwrap();
    let slot_b = node.command(&["CLUSTER", "KEYSLOT", &format!("{index}:m")]).unwrap();
    assert_eq!(slot_a, slot_b);
    let ttl_reply = cluster()
        .nodes
        .iter()
        .map(|n| n.command(&["PTTL", &index]).unwrap())
        .find(|r| !r.starts_with("-MOVED"))
        .unwrap();
    let ttl: i64 = ttl_reply.trim_start_matches(':').trim().parse().unwrap();
    assert!(ttl > 14 * 86_400_000 && ttl <= 14 * 86_400_000 + 300_000, "{ttl_reply}");
}

/// User ids with `{` or `}` (or empty) still get index keys in one slot: a login saves (no CrossSlot error),
/// the index lists and revokes the user's sessions, and distinct ids keep distinct indexes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_ids_with_braces_keep_their_index_on_cluster() {
    for layout in ["string", "hash&buckets=8"] {
        let store = Arc::new(RedisStore::connect(&cluster_url(&format!("layout={layout}"))).await.unwrap());
        let index = store.user_index().unwrap();
        let ids = ["}x", "{}x}", "}", "{", "a{b}c", "{{}}", "x}{y"];
        let mut keys = Vec::new();
        for id in ids {
            keys.push(login(&store, id, "ua").await);
            keys.push(login(&store, id, "ua 2").await);
        }
        for (n, id) in ids.iter().enumerate() {
            let listed = index.list(id).await.unwrap();
            assert_eq!(listed.len(), 2, "user id {id:?} ({layout})");
            assert!(listed.iter().any(|s| s.id == session_id(&keys[2 * n])), "user id {id:?}");
        }
        assert_eq!(index.delete_all("}x", Some(&keys[0])).await.unwrap(), 1);
        assert!(store.load(&keys[1]).await.unwrap().is_none());
        assert!(store.load(&keys[0]).await.unwrap().is_some());
        assert_eq!(index.list("{}x}").await.unwrap().len(), 2, "another id is untouched");
    }
}

/// Reads a user's index details hash as field → value.
async fn index_details(url: &str, user: &str) -> std::collections::HashMap<String, String> {
    let prefix = url.split("prefix=").nth(1).unwrap().split('&').next().unwrap();
    let client = redis::Client::open(standalone().url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("HGETALL").arg(format!("{prefix}u:{{{user}}}:m")).query_async(&mut conn).await.unwrap()
}

/// Saves within the refresh window leave the index alone (one ZSCORE in the script); a change of user agent,
/// or `index_refresh=0`, rewrites the entry; `list` reports each session's real expiry either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_within_the_refresh_window_skip_the_index() {
    for (options, refreshed) in
        [("layout=string", false), ("layout=hash&buckets=4", false), ("layout=string&index_refresh=0", true)]
    {
        let url = standalone_url(options);
        let store = Arc::new(RedisStore::connect(&url).await.unwrap());
        let key = login(&store, "55", "phone").await;
        let seen = index_details(&url, "55").await[&format!("{}:s", session_id(&key))].clone();
        tokio::time::sleep(Duration::from_millis(20)).await;

        // An ordinary save: data changes, the index entry does not (unless index_refresh=0).
        let mut s = Session::new(store.clone(), settings(), Some(key.clone()));
        s.set("cart", 3).await.unwrap();
        s.set_expiry(sessionkit::Expiry::Seconds(600)).await.unwrap();
        s.save().await.unwrap();
        let after = index_details(&url, "55").await[&format!("{}:s", session_id(&key))].clone();
        assert_eq!(after != seen, refreshed, "{options}: last_seen {seen} -> {after}");
        // The listed expiry is the session's own (10 minutes), not the index entry's score.
        let listed = store.user_index().unwrap().list("55").await.unwrap();
        let left = listed[0].expires_at - time::OffsetDateTime::now_utc();
        assert!(left > time::Duration::seconds(590) && left <= time::Duration::seconds(600), "{options}: {left}");

        // A new user agent is written at once.
        let mut s = Session::new(store.clone(), settings(), Some(key.clone()));
        s.set(USER_AGENT_KEY, "phone, updated").await.unwrap();
        s.save().await.unwrap();
        let listed = store.user_index().unwrap().list("55").await.unwrap();
        assert_eq!(listed[0].user_agent.as_deref(), Some("phone, updated"), "{options}");

        // A session deleted behind the index's back is not listed.
        store.delete(&key).await.unwrap();
        assert!(store.user_index().unwrap().list("55").await.unwrap().is_empty(), "{options}");
    }
}

/// Keys hashed at rest: neither key names nor hash fields contain the session key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_keys_never_store_the_key() {
    for layout in ["string", "hash"] {
        let url = standalone_url(&format!("layout={layout}&hashed_keys=1&buckets=2"));
        let store = Arc::new(RedisStore::connect(&url).await.unwrap());
        let key = login(&store, "5", "ua").await;
        let (redis_key, field) = store.raw_address(&key);
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        assert!(!text(&redis_key).contains(key.as_str()));
        if let Some(field) = &field {
            assert_eq!(field.len(), 32, "a raw SHA-256 digest");
            assert!(!text(field).contains(key.as_str()));
        }
        let dump = standalone()
            .server
            .command(&["KEYS", &format!("{}*", text(&redis_key).split(':').next().unwrap())])
            .unwrap();
        assert!(!dump.contains(key.as_str()), "{dump}");
        assert!(store.load(&key).await.unwrap().is_some());
    }
}

/// SCAN-based counting on every layout and on the Cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_uses_scan_on_every_layout() {
    for url in [
        standalone_url("layout=string"),
        standalone_url("layout=hash&buckets=8"),
        cluster_url("layout=string"),
        cluster_url("layout=hash&buckets=8"),
    ] {
        let store = Arc::new(RedisStore::connect(&url).await.unwrap());
        assert_eq!(store.count().await.unwrap(), 0, "{url}");
        for i in 0..25 {
            let mut s = Session::new(store.clone(), settings(), None);
            s.set("i", i).await.unwrap();
            s.save().await.unwrap();
        }
        assert_eq!(store.count().await.unwrap(), 25, "{url}");
    }
}

/// The hash sweeper works in bounded steps over the buckets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_sweeper_steps_are_bounded() {
    let store = Arc::new(RedisStore::connect(&standalone_url("layout=hash&buckets=8")).await.unwrap());
    assert!(!store.uses_hash_field_expiry(), "redis 7.0 has no HPEXPIREAT: the sweeper is in use");
    for _ in 0..20 {
        let mut s = Session::new(store.clone(), settings(), None);
        s.set("x", 1).await.unwrap();
        s.set_expiry(sessionkit::Expiry::Seconds(-5)).await.unwrap();
        s.save().await.unwrap();
    }
    let mut removed = 0;
    let mut steps = 0;
    loop {
        let (n, wrapped) = store.sweep_step(3).await.unwrap();
        removed += n;
        steps += 1;
        if wrapped {
            break;
        }
    }
    assert_eq!(steps, 3, "8 buckets in steps of 3");
    assert_eq!(removed, 20);
    assert_eq!(store.count().await.unwrap(), 0);
}

/// A Redis restart: calls fail fast with `Unavailable` during the outage, and the same store works again
/// afterwards without being rebuilt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_a_redis_restart() {
    let mut server = Standalone::start().unwrap();
    let store = Arc::new(RedisStore::connect(&format!("{}?timeout=1&connect_timeout=1", server.url())).await.unwrap());
    let key = login(&store, "9", "ua").await;
    assert!(store.load(&key).await.unwrap().is_some());

    server.server.stop();
    let started = Instant::now();
    let err = store.load(&key).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "failed after {:?}", started.elapsed());
    assert!(err.to_string().contains("127.0.0.1"), "the error names the store: {err}");

    server.server.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match store.load(&key).await {
            Ok(found) => {
                assert!(found.is_none(), "no persistence: the session is gone after the restart");
                break;
            }
            Err(err) if Instant::now() < deadline => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("no reconnect within 15 s: {err}"),
        }
    }
    login(&store, "9", "ua").await;
}

/// A server that stops answering (DEBUG SLEEP) makes calls fail at the timeout instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_times_out() {
    let server = Standalone::start().unwrap();
    let store = Arc::new(RedisStore::connect(&format!("{}?timeout=0.5", server.url())).await.unwrap());
    let port = server.server.port();
    // CLIENT PAUSE stalls every client's commands for 3 s (DEBUG SLEEP is disabled by default in Redis 7).
    let reply = sessionkit_testsupport::command(port, &["CLIENT", "PAUSE", "3000", "ALL"]).unwrap();
    assert!(reply.starts_with("+OK"), "{reply}");
    let started = Instant::now();
    let err = store.load(&SessionKey::generate()).await.unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_millis(2500), "{waited:?}");
}

/// After a Sentinel failover the store finds the new master by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_sentinel_failover() {
    let mut setup = Sentinel::start().unwrap();
    let url =
        format!("redis+sentinel://{}/{}?timeout=1&connect_timeout=1", setup.sentinel_addr(), Sentinel::MASTER_NAME);
    let store = Arc::new(RedisStore::connect(&url).await.unwrap());
    let mut s = Session::new(store.clone(), settings(), None);
    s.set("before", "failover").await.unwrap();
    s.save().await.unwrap();

    setup.master.stop();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut s = Session::new(store.clone(), settings(), None);
        s.set("after", json!(true)).await.unwrap();
        match s.save().await {
            Ok(()) => {
                let key = s.key().unwrap().clone();
                assert!(store.load(&key).await.unwrap().is_some());
                let role = setup.replica.command(&["ROLE"]).unwrap();
                assert!(role.contains("master"), "the replica was promoted: {role}");
                break;
            }
            Err(err) if Instant::now() < deadline => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(err) => panic!("no failover within 30 s: {err}"),
        }
    }
}

/// Captures what the store logs while `work` runs.
async fn logs_of<F: std::future::Future<Output = ()>>(work: F) -> String {
    use std::sync::Mutex;
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    work.await;
    drop(guard);
    let text = String::from_utf8_lossy(&buffer.0.lock().unwrap()).into_owned();
    text
}

/// The hash layout warns about listpack limits that ruin its memory gain, stays quiet when they are right, and
/// works for a user without CONFIG rights (as on managed Redis).
#[tokio::test(flavor = "current_thread")]
async fn hash_layout_checks_listpack_limits_without_needing_config_rights() {
    let server = Standalone::start().unwrap();
    let url = format!("{}?layout=hash&buckets=4", server.url());
    // Redis' stock limits for the value (64 bytes); a small entry limit set explicitly (defaults vary by build).
    assert!(server.server.command(&["CONFIG", "SET", "hash-max-listpack-entries", "128"]).unwrap().starts_with("+OK"));
    let logs = logs_of(async {
        RedisStore::connect(&url).await.unwrap();
    })
    .await;
    assert!(
        logs.contains("hash-max-listpack-value is below") && logs.contains("hash-max-listpack-entries is below"),
        "{logs}"
    );

    for (name, value) in [("hash-max-listpack-value", "1024"), ("hash-max-listpack-entries", "512")] {
        assert!(server.server.command(&["CONFIG", "SET", name, value]).unwrap().starts_with("+OK"));
    }
    let logs = logs_of(async {
        RedisStore::connect(&url).await.unwrap();
    })
    .await;
    assert!(!logs.contains("is below"), "{logs}");

    // A user who may do everything but CONFIG.
    let reply = server.server.command(&["ACL", "SETUSER", "app", "on", ">app-pw", "~*", "+@all", "-config"]).unwrap();
    assert!(reply.starts_with("+OK"), "{reply}");
    let limited = format!("redis://app:app-pw@127.0.0.1:{}?layout=hash&buckets=4", server.server.port());
    let logs = logs_of(async {
        let store = Arc::new(RedisStore::connect(&limited).await.unwrap());
        let key = login(&store, "3", "ua").await;
        assert!(store.load(&key).await.unwrap().is_some());
    })
    .await;
    assert!(logs.contains("CONFIG GET refused"), "{logs}");
}

/// `rediss://` against a real TLS listener: certificates are verified by default (a self-signed one is refused),
/// `#insecure` opts out; and `unix://` sockets with a database number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_unix_socket_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let tls_port = sessionkit_testsupport::free_port().unwrap();
    let socket = dir.path().join("redis.sock");
    let text = |p: &std::path::Path| p.display().to_string();
    let server = sessionkit_testsupport::RedisProcess::start(
        dir.path(),
        &[
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            text(&cert),
            "--tls-key-file".into(),
            text(&key),
            "--tls-ca-cert-file".into(),
            text(&cert),
            "--tls-auth-clients".into(),
            "no".into(),
            "--unixsocket".into(),
            text(&socket),
            "--unixsocketperm".into(),
            "700".into(),
        ],
    )
    .unwrap();

    let verified = RedisStore::connect(&format!("rediss://127.0.0.1:{tls_port}/?timeout=2&connect_timeout=2")).await;
    assert!(verified.is_err(), "a self-signed certificate must not be trusted by default");
    let insecure =
        Arc::new(RedisStore::connect(&format!("rediss://127.0.0.1:{tls_port}/?timeout=2#insecure")).await.unwrap());
    let key = login(&insecure, "11", "tls").await;
    assert!(insecure.load(&key).await.unwrap().is_some());

    let over_socket = Arc::new(RedisStore::connect(&format!("unix://{}?db=3", socket.display())).await.unwrap());
    let key = login(&over_socket, "12", "unix").await;
    assert!(over_socket.load(&key).await.unwrap().is_some());
    let size =
        std::process::Command::new("redis-cli").args(["-s", &text(&socket), "-n", "3", "DBSIZE"]).output().unwrap();
    let count: u64 = String::from_utf8_lossy(&size.stdout).trim().parse().unwrap();
    assert!(count >= 1, "the session went to database 3");
    drop(server);
}

/// Listing with SCAN: every layout reports each stored session once, with its id, expiry and size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_reports_every_session_on_every_layout() {
    for url in [
        standalone_url("layout=string"),
        standalone_url("layout=string&hashed_keys=1"),
        standalone_url("layout=hash&buckets=4"),
        standalone_url("layout=hash&buckets=4&hashed_keys=1"),
        format!("{}?layout=django-cache&key_prefix={}", standalone().url(), unique()),
        cluster_url("layout=string"),
        cluster_url("layout=hash&buckets=8"),
    ] {
        let store = Arc::new(RedisStore::connect(&url).await.unwrap());
        let mut keys = Vec::new();
        for i in 0..30 {
            let mut s = Session::new(store.clone(), settings(), None);
            s.set("i", i).await.unwrap();
            s.save().await.unwrap();
            keys.push(s.key().cloned().unwrap());
        }
        let mut listed = Vec::new();
        store
            .list(|session| {
                listed.push(session);
                true
            })
            .await
            .unwrap();
        assert_eq!(listed.len(), 30, "{url}");
        let hashed = url.contains("hashed_keys=1");
        for key in &keys {
            let expected = if hashed {
                use sha2::Digest;
                sha2::Sha256::digest(key.as_str().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
            } else {
                key.to_string()
            };
            let found = listed.iter().find(|l| l.id == expected).unwrap_or_else(|| panic!("{url}: {key:?} not listed"));
            assert_eq!(found.key_is_hashed, hashed);
            assert!(found.bytes > 0);
            let left = found.expires_at.unwrap() - time::OffsetDateTime::now_utc();
            assert!(left > time::Duration::days(13), "{url}: {left}");
        }
        // Stops when asked.
        let mut seen = 0;
        store
            .list(|_| {
                seen += 1;
                seen < 5
            })
            .await
            .unwrap();
        assert_eq!(seen, 5);
    }
}

/// Expired entries leave the index with their details (the details hash of an always-active user must not grow).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_index_entries_take_their_details_with_them() {
    let url = standalone_url("layout=string&index_refresh=0");
    let store = Arc::new(RedisStore::connect(&url).await.unwrap());
    for _ in 0..3 {
        let mut s = Session::new(store.clone(), settings(), None);
        s.set("_auth_user_id", "66").await.unwrap();
        s.set(USER_AGENT_KEY, "short-lived").await.unwrap();
        s.set_expiry(sessionkit::Expiry::Seconds(1)).await.unwrap();
        s.save().await.unwrap();
    }
    assert_eq!(index_details(&url, "66").await.len(), 3 * 4, "created, seen, key, agent per session");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let key = login(&store, "66", "fresh").await;
    let details = index_details(&url, "66").await;
    assert!(details.keys().all(|field| field.starts_with(&session_id(&key))), "{details:?}");
}

/// A small stored value that is costly to decode (a pickled 1500-byte int: over what a decode on the async worker
/// may convert) is decoded in full elsewhere and loads exactly; a large value (32 KiB) loads too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costly_values_are_decoded_off_the_worker_and_load_whole() {
    let store = RedisStore::connect(&standalone_url("layout=django-cache")).await.unwrap();
    let key = SessionKey::generate();
    // {"n": 2**12000 - 1}: LONG4 of 1501 bytes (1500 of 0xff and a 0x00 sign byte), protocol 4.
    let mut pickle = vec![0x80, 4, b'}', 0x8c, 1, b'n', 0x8b];
    pickle.extend_from_slice(&1501u32.to_le_bytes());
    pickle.extend(std::iter::repeat_n(0xff, 1500));
    pickle.extend_from_slice(&[0x00, b's', b'.']);
    store.put_raw(&key, &pickle, 60_000).await.unwrap();
    let record = store.load(&key).await.unwrap().unwrap();
    assert_eq!(record.data["n"].to_string().len(), 3613, "2**12000 - 1 has 3613 digits");

    let native = Arc::new(RedisStore::connect(&standalone_url("layout=string")).await.unwrap());
    let mut s = Session::new(native.clone(), settings(), None);
    s.set("text", "x".repeat(32 * 1024)).await.unwrap();
    s.save().await.unwrap();
    let stored = native.load(s.key().unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.data["text"].as_str().unwrap().len(), 32 * 1024);
}

/// The touch of an idle timeout moves the session's entry in its user's index with its expiry (else the index
/// would prune a live session once the old score passed): one script on standalone, a second round trip to the
/// index's slot on Cluster. The session's data stays as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_touch_moves_the_user_index_entry() {
    use sessionkit::lifetime::Clock;
    use std::sync::atomic::AtomicI64;
    const DAY: i64 = 86_400;
    for url in [standalone_url("layout=string"), standalone_url("layout=hash&buckets=4"), cluster_url("layout=string")]
    {
        let offset = Arc::new(AtomicI64::new(0));
        let read = Arc::clone(&offset);
        let clock = Clock::from_fn(move || {
            time::OffsetDateTime::now_utc() + time::Duration::seconds(read.load(Ordering::SeqCst))
        });
        let settings = Arc::new(Settings { idle_timeout: Some(3 * DAY), clock, ..(*settings()).clone() });
        let store = Arc::new(RedisStore::connect(&url).await.unwrap());
        let mut s = Session::new(store.clone(), settings.clone(), None);
        s.set("_auth_user_id", "77").await.unwrap();
        s.set("cart", 1).await.unwrap();
        s.save().await.unwrap();
        let key = s.key().cloned().unwrap();
        let prefix = url.split("prefix=").nth(1).unwrap().split('&').next().unwrap().to_owned();
        let index = store.user_index().unwrap();
        let before = index.list("77").await.unwrap();
        assert_eq!(before.len(), 1, "{url}");

        offset.store(2 * DAY, Ordering::SeqCst);
        let mut s = Session::new(store.clone(), settings.clone(), Some(key.clone()));
        assert_eq!(s.get::<i64>("cart").await.unwrap(), Some(1));
        assert!(s.touch_due(), "{url}");
        s.save().await.unwrap();
        let moved = store.load(&key).await.unwrap().unwrap();
        let expected = time::OffsetDateTime::now_utc() + time::Duration::seconds(5 * DAY);
        assert!((moved.expires_at - expected).abs() < time::Duration::seconds(5), "{url}: {}", moved.expires_at);
        assert_eq!(moved.data.get("cart"), Some(&json!(1)), "{url}: the data is unchanged");
        // The index entry's score (the expiry it promises, plus index_refresh) covers the new expiry.
        let entry_score = index_score(&url, &prefix, "77", &session_id(&key)).await;
        let new_expiry_ms = (moved.expires_at.unix_timestamp_nanos() / 1_000_000) as f64;
        assert!(entry_score >= new_expiry_ms - 1000.0, "{url}: score {entry_score} < expiry {new_expiry_ms}");
        let listed = index.list("77").await.unwrap();
        assert_eq!(listed.len(), 1, "{url}");
        assert!(listed[0].last_seen >= before[0].last_seen, "{url}: the touch is activity");
    }
}

/// The score of a session's entry in a user's index, read from whichever server holds it.
async fn index_score(url: &str, prefix: &str, user: &str, id: &str) -> f64 {
    let index = format!("{prefix}u:{{{user}}}");
    if url.starts_with("redis+cluster") {
        let reply = cluster()
            .nodes
            .iter()
            .map(|n| n.command(&["ZSCORE", &index, id]).unwrap())
            .find(|r| !r.starts_with("-MOVED"))
            .unwrap();
        return reply.trim_start_matches(['$', ':', ',']).lines().last().unwrap_or_default().trim().parse().unwrap();
    }
    let client = redis::Client::open(standalone().url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let score: Option<f64> = redis::cmd("ZSCORE").arg(&index).arg(id).query_async(&mut conn).await.unwrap();
    score.unwrap()
}
