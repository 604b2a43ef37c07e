//! The `hash` layout on a server with hash-field TTL (Redis ≥ 7.4, Valkey ≥ 9; installed under `target/` by
//! `scripts/install-field-ttl-redis`, which `scripts/test` runs): the conformance suite, and the field-TTL path
//! shown to work: each field carries the session's expiry, expires without the sweeper, is refreshed by a save,
//! and `clear_expired` has nothing to do. The same layout on Debian's Redis 7.0 (the sweeper path) is covered by
//! `conformance_redis.rs` and `redis_store.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map};
use sessionkit::conformance::Harness;
use sessionkit::store::redis::config::Layout;
use sessionkit::store::redis::RedisStore;
use sessionkit::{ChangeSet, SessionKey, SessionRecord, SessionStore, Settings};
use sessionkit_testsupport::{
    field_ttl_binaries, shared_field_ttl_servers, shared_standalone, ServerBinary, Standalone,
};
use time::OffsetDateTime;

/// The shared field-TTL server number `server` (in the order `scripts/install-field-ttl-redis` lists them:
/// Valkey 9, Redis 8, Redis 7.4) and a URL on it with `options` under a prefix of its own; `None` when that server
/// is not installed (outside CI; the fixture says it skipped).
fn server_and_url(server: usize, options: &str) -> Option<(&'static Standalone, String)> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let (_, standalone) = shared_field_ttl_servers().get(server)?;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Some((standalone, format!("{}?prefix=f{}x{n}:&{options}", standalone.url(), std::process::id())))
}

fn url(server: usize, options: &str) -> Option<String> {
    server_and_url(server, options).map(|(_, url)| url)
}

struct FieldTtlHarness {
    store: Arc<RedisStore>,
    settings: Arc<Settings>,
}

impl FieldTtlHarness {
    /// A harness on the shared field-TTL server; `None` when none is installed (outside CI).
    async fn new(server: usize, options: &str) -> Option<Self> {
        let url = url(server, options)?;
        let store = RedisStore::connect(&url).await.expect("connect");
        let hash = store.options().layout == Layout::Hash;
        assert!(!hash || store.uses_hash_field_expiry(), "{url}: the field-TTL path is not in use");
        Some(FieldTtlHarness { store: Arc::new(store), settings: Arc::new(Settings::with_secret_key("field-ttl")) })
    }
}

#[async_trait::async_trait]
impl Harness for FieldTtlHarness {
    fn store(&self) -> Arc<dyn SessionStore> {
        self.store.clone()
    }
    fn settings(&self) -> Arc<Settings> {
        self.settings.clone()
    }
    async fn plant_corrupt(&self, key: &SessionKey) -> bool {
        let expiry = (OffsetDateTime::now_utc().unix_timestamp() + 3600) as u32;
        let mut bytes = vec![1u8, 0];
        bytes.extend_from_slice(&expiry.to_be_bytes());
        bytes.extend_from_slice(b"{\"broken\": [");
        self.store.put_raw(key, &bytes, 3_600_000).await.unwrap();
        true
    }
    fn expires_natively(&self) -> bool {
        self.store.options().layout != Layout::Hash || self.store.uses_hash_field_expiry()
    }
}

/// The conformance suite on each field-TTL server (each case returns at once when that server is not installed,
/// outside CI).
macro_rules! field_ttl_suite {
    ($name:ident, $server:expr, $options:expr) => {
        mod $name {
            use super::*;
            sessionkit::conformance_suite!(optional: FieldTtlHarness::new($server, $options));
        }
    };
}

field_ttl_suite!(valkey9_hash, 0, "layout=hash&buckets=8");
field_ttl_suite!(valkey9_hash_hashed_zstd, 0, "layout=hash&buckets=4&hashed_keys=1&compress_min_bytes=0");
field_ttl_suite!(valkey9_string, 0, "layout=string");
field_ttl_suite!(redis8_hash, 1, "layout=hash&buckets=8");
field_ttl_suite!(redis8_hash_hashed_zstd, 1, "layout=hash&buckets=4&hashed_keys=1&compress_min_bytes=0");
field_ttl_suite!(redis8_hash_scripts, 1, "layout=hash&buckets=8&hash_writes=script");
field_ttl_suite!(redis74_hash, 2, "layout=hash&buckets=8&index_refresh=0");

/// Under CI every server `scripts/test` installs is here, so no suite above skips.
#[test]
fn under_ci_every_field_ttl_server_is_installed() {
    let names: Vec<String> = field_ttl_binaries().into_iter().map(|b| b.name).collect();
    if std::env::var_os("CI").is_some() {
        for wanted in ["valkey-9", "redis-8", "redis-7.4"] {
            assert!(names.iter().any(|n| n.starts_with(wanted)), "{wanted} missing from {names:?}");
        }
    }
}

/// Every test below runs on each installed field-TTL server.
fn servers() -> std::ops::Range<usize> {
    0..shared_field_ttl_servers().len()
}

/// The field's TTL as the server reports it (`HPTTL`), in ms; -2 no field, -1 no TTL.
fn hpttl(server: &Standalone, store: &RedisStore, key: &SessionKey) -> i64 {
    let (bucket, field) = store.raw_address(key);
    let bucket = String::from_utf8(bucket).unwrap();
    let field = String::from_utf8(field.expect("a hash field")).unwrap();
    let reply = server.server.command(&["HPTTL", &bucket, "FIELDS", "1", &field]).unwrap();
    // `*1\r\n:N\r\n`
    reply.lines().nth(1).and_then(|l| l.trim().strip_prefix(':')).and_then(|n| n.parse().ok()).unwrap_or_else(|| {
        panic!("unexpected HPTTL reply {reply:?}");
    })
}

fn record(key: &SessionKey, expires_in: time::Duration) -> SessionRecord {
    let mut data = Map::new();
    data.insert("n".into(), json!(1));
    SessionRecord::new(key.clone(), data, OffsetDateTime::now_utc() + expires_in)
}

/// Milliseconds from now to `at`.
fn ms_until(at: OffsetDateTime) -> i64 {
    (at - OffsetDateTime::now_utc()).whole_milliseconds() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fields_ttl_is_the_sessions_expiry_after_create_and_after_save() {
    for n in servers() {
        let Some((server, url)) = server_and_url(n, "layout=hash&buckets=4") else { continue };
        fields_ttl_follows_the_expiry(server, &url).await;
    }
}

async fn fields_ttl_follows_the_expiry(server: &Standalone, url: &str) {
    let store = RedisStore::connect(url).await.unwrap();
    let key = SessionKey::generate();
    let created = record(&key, time::Duration::minutes(30));
    store.create(&created).await.unwrap();
    let ttl = hpttl(server, &store, &key);
    assert!((ttl - ms_until(created.expires_at)).abs() < 2_000, "after create: HPTTL {ttl} ms");

    // A save of the live session moves the field's TTL with the session's expiry.
    let loaded = store.load(&key).await.unwrap().expect("live");
    let saved = SessionRecord { expires_at: OffsetDateTime::now_utc() + time::Duration::hours(5), ..loaded };
    store.save(&saved, &ChangeSet::replacing(&saved.data)).await.unwrap();
    let ttl = hpttl(server, &store, &key);
    assert!((ttl - ms_until(saved.expires_at)).abs() < 2_000, "after save: HPTTL {ttl} ms");
    assert!(ttl > 4 * 3_600_000, "the save refreshed the TTL: {ttl} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_field_disappears_without_the_sweeper_and_clear_expired_does_nothing() {
    // Servers of its own: the command counts below must not include other tests' commands.
    for binary in field_ttl_binaries() {
        let server = Standalone::start_binary(&binary, &[]).unwrap();
        let url = format!("{}?layout=hash&buckets=2", server.url());
        expired_field_disappears(&server, &url).await;
    }
}

async fn expired_field_disappears(server: &Standalone, url: &str) {
    let store = RedisStore::connect(url).await.unwrap();
    let key = SessionKey::generate();
    let live = SessionKey::generate();
    store.create(&record(&key, time::Duration::milliseconds(300))).await.unwrap();
    store.create(&record(&live, time::Duration::hours(1))).await.unwrap();
    let (bucket, field) = store.raw_address(&key);
    let (bucket, field) = (String::from_utf8(bucket).unwrap(), String::from_utf8(field.unwrap()).unwrap());
    // The server deletes the field itself once its TTL has passed (lazily on access, or by its active expiry).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = server.server.command(&["HEXISTS", &bucket, &field]).unwrap();
        if reply.starts_with(":0") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the expired field is still there: {reply}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(store.load(&key).await.unwrap().is_none());
    assert!(store.load_raw(&key).await.unwrap().is_none());

    // clear_expired has nothing to do: no bucket is scanned.
    assert!(server.server.command(&["CONFIG", "RESETSTAT"]).unwrap().starts_with("+OK"));
    assert_eq!(store.clear_expired().await.unwrap(), 0);
    let stats = server.server.command(&["INFO", "commandstats"]).unwrap();
    assert!(!stats.contains("cmdstat_hscan") && !stats.contains("cmdstat_evalsha"), "clear_expired did work: {stats}");
    assert!(store.load(&live).await.unwrap().is_some(), "the live session stays");
}

/// The path is chosen from the server's commands, not its version: the same Redis with `HPEXPIREAT` renamed away
/// gets the sweeper; Debian's Redis 7.0 gets the sweeper; doctor-facing `uses_hash_field_expiry` says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_path_follows_the_servers_commands_not_its_version() {
    for (n, (binary, _)) in shared_field_ttl_servers().iter().enumerate() {
        let Some(url) = url(n, "layout=hash&buckets=2") else { continue };
        assert!(RedisStore::connect(&url).await.unwrap().uses_hash_field_expiry(), "{}", binary.name);
        renamed_hpexpireat_means_the_sweeper(binary).await;
    }
    let old = RedisStore::connect(&format!(
        "{}?layout=hash&buckets=2&prefix=old{}:",
        shared_standalone().url(),
        std::process::id()
    ))
    .await
    .unwrap();
    assert!(!old.uses_hash_field_expiry(), "Debian's Redis 7.0 has no per-field expiry");
    assert_eq!(old.options().layout, Layout::Hash);
}

async fn renamed_hpexpireat_means_the_sweeper(binary: &ServerBinary) {
    let renamed = Standalone::start_binary(binary, &["--rename-command".into(), "HPEXPIREAT".into(), String::new()])
        .expect("start a server with HPEXPIREAT renamed");
    let version = renamed.server.command(&["INFO", "server"]).unwrap();
    assert!(version.contains("redis_version:"), "{version}");
    let store = RedisStore::connect(&format!("{}?layout=hash&buckets=2", renamed.url())).await.unwrap();
    assert!(!store.uses_hash_field_expiry(), "{}: HPEXPIREAT is gone, so the sweeper must be used", binary.name);
    // And the sweeper path works there: a session created expired is swept.
    let key = SessionKey::generate();
    store.create(&record(&key, time::Duration::seconds(-5))).await.unwrap();
    assert_eq!(store.clear_expired().await.unwrap(), 1);
}

/// `HSETEX` where the server has it (Valkey 9, Redis 8), the scripts where it does not (Redis 7.4) or when asked:
/// a create is `HSETEX … FNX` (a taken key is a collision), a last-write-wins save `HSETEX … FXX` (a vanished
/// session is not re-created), and either sets the field's TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsetex_creates_and_replaces_where_the_server_has_it() {
    for (n, (binary, server)) in shared_field_ttl_servers().iter().enumerate() {
        let has_hsetex = !binary.name.starts_with("redis-7.");
        let Some(url) = url(n, "layout=hash&buckets=2&user_index=false") else { continue };
        let store = RedisStore::connect(&url).await.unwrap();
        assert_eq!(store.uses_native_hash_writes(), has_hsetex, "{}", binary.name);
        let scripted = RedisStore::connect(&format!("{url}&hash_writes=script")).await.unwrap();
        assert!(!scripted.uses_native_hash_writes(), "{}", binary.name);

        assert!(server.server.command(&["CONFIG", "RESETSTAT"]).unwrap().starts_with("+OK"));
        let key = SessionKey::generate();
        let created = record(&key, time::Duration::minutes(10));
        store.create(&created).await.unwrap();
        assert!(
            matches!(store.create(&created).await, Err(sessionkit::StoreError::KeyCollision)),
            "{}: a second create of the key collides",
            binary.name
        );
        let ttl = hpttl(server, &store, &key);
        assert!((ttl - ms_until(created.expires_at)).abs() < 2_000, "{}: HPTTL {ttl}", binary.name);

        // merge=false: the save replaces the field (HSETEX FXX) and moves its TTL; a vanished one stays gone.
        let lww = sessionkit::open_store(&format!("{url}&merge=false"), &Settings::with_secret_key("field-ttl"))
            .await
            .unwrap();
        let later = SessionRecord { expires_at: OffsetDateTime::now_utc() + time::Duration::hours(2), ..created };
        lww.save(&later, &ChangeSet::replacing(&later.data)).await.unwrap();
        let ttl = hpttl(server, &store, &key);
        assert!((ttl - ms_until(later.expires_at)).abs() < 2_000, "{}: HPTTL after save {ttl}", binary.name);
        store.delete(&key).await.unwrap();
        let vanished = lww.save(&later, &ChangeSet::replacing(&later.data)).await;
        assert!(matches!(vanished, Err(sessionkit::StoreError::SessionVanished)), "{}: {vanished:?}", binary.name);
        assert!(store.load_raw(&key).await.unwrap().is_none(), "{}: re-created", binary.name);

        let stats = server.server.command(&["INFO", "commandstats"]).unwrap();
        assert_eq!(stats.contains("cmdstat_hsetex"), has_hsetex, "{}: {stats}", binary.name);
    }
}
