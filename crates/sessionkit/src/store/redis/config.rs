//! Redis store configuration, parsed from a URL.
//!
//! ```text
//! redis://[user:password@]host[:port][/db][?options]          standalone (TCP)
//! rediss://[user:password@]host[:port][/db][?options]         standalone over TLS
//! unix:///path/to/redis.sock[?db=N&options]                   standalone over a Unix socket
//! redis+sentinel://[user:password@]host:port[,host:port...]/MASTER_NAME[/db][?options]
//! redis+cluster://[user:password@]host:port[,host:port...][?options]
//! ```
//!
//! Options (query parameters; all optional). Any other name is refused with the list of known ones:
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `layout` | `string` | `string`, `hash` or `django-cache` |
//! | `prefix` | `sessionkit:` | key prefix of the `string` and `hash` layouts |
//! | `hashed_keys` | `false` | store SHA-256 of the session key instead of the key (`string`, `hash`) |
//! | `compression` | `zstd` | `zstd`, `lz4` or `none` (`string`, `hash`) |
//! | `compress_min_bytes` | `512` (`string`), `128` (`hash`) | values shorter than this are stored uncompressed: the fast layout skips compression for typical sessions, the small one compresses them |
//! | `buckets` | `1024` | number of hashes of the `hash` layout (aim for 100–300 sessions per bucket) |
//! | `connect_timeout` | `5` | seconds to establish a connection |
//! | `timeout` | `5` | seconds to wait for any reply (Django's common `SOCKET_TIMEOUT`) |
//! | `user_index` | `true` | keep the per-user session index for sessions with `_auth_user_id` |
//! | `index_refresh` | `300` | seconds: a save refreshes a session's index entry only when its expiry has moved past what the entry covers, at most once per this window (`0`: on every save); `last_seen` in the index has this precision |
//! | `adopt_layout` | `false` | `string`, `hash`: when the layout record under `prefix` names another shape (layout, bucket count, hashed keys, value format), rewrite it with this URL's instead of refusing to connect; sessions written with the old shape become unreachable (move them first with `sessionkit migrate`) |
//! | `hash_writes` | `auto` | `hash`: `auto` creates and replaces fields (the saves of `merge=false`) with one `HSETEX … FNX\|FXX PXAT` where every master has it (Redis ≥ 8, Valkey ≥ 9), else with a script; `script` always uses the scripts. Merging saves are a compare-and-set script either way |
//! | `client_cache` | `off` | `on`: loads of sessions this process has read or written are answered from memory without a round trip, kept true by Redis's invalidation messages (RESP3 `CLIENT TRACKING … BCAST NOLOOP`); standalone `redis://` over TCP only (docs/redis.md, "Client-side cache") |
//! | `client_cache_size` | `10000` | with `client_cache=on`: sessions kept in memory per store (random eviction beyond) |
//! | `protocol` | `resp2` | `redis://`, `rediss://`, `unix://`: passed to redis-rs (`resp3`) |
//! | `db`, `user`, `pass` | none | `unix://` only: database number and credentials (redis-rs) |
//! | `key_prefix` | empty | `django-cache`: Django's cache `KEY_PREFIX` |
//! | `version` | `1` | `django-cache`: Django's cache `VERSION` |
//! | `engine` | `cache` | `django-cache`: `cache` or `cached_db` (the key prefix Django's engine uses) |
//! | `client` | `redis-cache` | `django-cache`: `redis-cache` (Django's built-in RedisCache) or `django-redis` |
//! | `serializer` | `pickle` | `django-cache` with `django-redis`: `pickle`, `json` or `msgpack` |
//! | `pickle_protocol` | 5 (redis-cache) / 4 (django-redis) | pickle protocol written |
//! | `compressor` | `none` | `django-cache` with `django-redis`: `zlib`, `gzip`, `lz4`, `zstd`, `lzma` or `none` |
//! | `sentinel_password`, `sentinel_username` | none | credentials for the Sentinels (`redis+sentinel`) |

use std::time::Duration;

use crate::ConfigError;

/// Which of the three storage layouts a Redis store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Exactly what Django's `cache` / `cached_db` engines store, so Django and Rust share sessions.
    DjangoCache,
    /// One key per session with a compact versioned value: the fastest layout.
    String,
    /// Sessions spread over bucket hashes: the smallest layout.
    Hash,
}

impl Layout {
    /// The layout's name in URLs (`layout=…`): `string`, `hash` or `django-cache`.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::String => "string",
            Layout::Hash => "hash",
            Layout::DjangoCache => "django-cache",
        }
    }
}

/// How the `hash` layout creates and replaces fields on servers with `HSETEX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashWrites {
    /// `HSETEX … FNX|FXX PXAT …` where every master has it (Redis ≥ 8, Valkey ≥ 9), else the scripts.
    Auto,
    /// Always the scripts (`HSETNX`/`HSET` + `HPEXPIREAT`), for comparison and for servers whose `HSETEX` misbehaves.
    Script,
}

/// Compression of `string` and `hash` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Never compress.
    None,
    /// zstd (level 3) above `compress_min_bytes`.
    Zstd,
    /// LZ4 (block format with the size prepended) above `compress_min_bytes`.
    Lz4,
}

/// Which Django cache client wrote (and must read) `django-cache` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DjangoClient {
    /// Django's built-in `django.core.cache.backends.redis.RedisCache` (pickle protocol 5, `EX` seconds).
    RedisCache,
    /// `django_redis.cache.RedisCache` (pickle protocol 4 by default, optional compressor, `PX` milliseconds).
    DjangoRedis,
}

/// Which Django session engine's key prefix the `django-cache` layout uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DjangoEngine {
    /// `django.contrib.sessions.backends.cache`: keys `…django.contrib.sessions.cache<key>`.
    Cache,
    /// `django.contrib.sessions.backends.cached_db`: keys `…django.contrib.sessions.cached_db<key>`.
    CachedDb,
}

/// Options of the `django-cache` layout, mirroring Django's `CACHES` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DjangoCacheOptions {
    /// The cache's `KEY_PREFIX`.
    pub key_prefix: String,
    /// The cache's `VERSION`.
    pub version: i64,
    /// Which session engine's keys.
    pub engine: DjangoEngine,
    /// Which cache client.
    pub client: DjangoClient,
    /// `serializer` option (django-redis): `pickle`, `json`, `msgpack`.
    pub serializer: String,
    /// Pickle protocol to write.
    pub pickle_protocol: u8,
    /// `compressor` option (django-redis): `none`, `zlib`, `gzip`, `lz4`, `zstd`, `lzma`.
    pub compressor: String,
}

impl DjangoCacheOptions {
    /// The cache key of a session, `KEY_PREFIX:VERSION:django.contrib.sessions.cache<key>`.
    pub fn cache_key(&self, session_key: &str) -> String {
        format!("{}:{}:{}{}", self.key_prefix, self.version, self.engine_prefix(), session_key)
    }

    /// `django.contrib.sessions.cache` or `django.contrib.sessions.cached_db`.
    pub fn engine_prefix(&self) -> &'static str {
        match self.engine {
            DjangoEngine::Cache => "django.contrib.sessions.cache",
            DjangoEngine::CachedDb => "django.contrib.sessions.cached_db",
        }
    }
}

/// Where the servers are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server; the URL is handed to redis-rs (`redis://`, `rediss://`, `unix://`).
    Standalone {
        /// The connection URL without sessionkit's options.
        url: String,
    },
    /// A master found through Sentinels.
    Sentinel {
        /// Sentinel addresses.
        sentinels: Vec<(String, u16)>,
        /// The monitored master's name.
        master_name: String,
        /// Database number on the master.
        db: i64,
        /// Username for the master.
        username: Option<String>,
        /// Password for the master.
        password: Option<String>,
        /// Username for the Sentinels.
        sentinel_username: Option<String>,
        /// Password for the Sentinels.
        sentinel_password: Option<String>,
    },
    /// A Redis Cluster, reached through seed nodes.
    Cluster {
        /// Seed node URLs (`redis://host:port`).
        nodes: Vec<String>,
        /// Username for every node.
        username: Option<String>,
        /// Password for every node.
        password: Option<String>,
    },
}

/// Everything a Redis store needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// Servers.
    pub topology: Topology,
    /// Storage layout.
    pub layout: Layout,
    /// Key prefix (`string`, `hash`).
    pub prefix: String,
    /// Store SHA-256 of session keys instead of the keys.
    pub hashed_keys: bool,
    /// Value compression (`string`, `hash`).
    pub compression: Compression,
    /// Values shorter than this are not compressed.
    pub compress_min_bytes: usize,
    /// Number of bucket hashes (`hash`).
    pub buckets: u32,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time to wait for a reply.
    pub timeout: Duration,
    /// Maintain the per-user index.
    pub user_index: bool,
    /// How far past a session's expiry its index entry is written, so that the saves within this window leave
    /// the index alone (the save script checks the entry's score). Zero refreshes the entry on every save.
    pub index_refresh: Duration,
    /// Rewrite the layout record with this configuration when it records another one (`adopt_layout=true`;
    /// see [`layout_record`](super::layout_record)), instead of refusing to connect.
    pub adopt_layout: bool,
    /// `hash_writes=auto|script`: how the `hash` layout creates and replaces fields on servers with `HSETEX`.
    pub hash_writes: HashWrites,
    /// `django-cache` layout options.
    pub django: DjangoCacheOptions,
    /// `client_cache=on`: answer loads of sessions this process has seen from memory, kept true by Redis's
    /// invalidation messages (see [`tracking`](super::tracking)). Standalone servers over plain TCP only.
    pub client_cache: bool,
    /// `client_cache_size`: at most this many sessions cached per store.
    pub client_cache_size: usize,
}

impl RedisOptions {
    /// Parses a store URL (see the module docs).
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        let redacted = crate::store::redact_url(url);
        let bad = |reason: String| ConfigError::InvalidStoreUrl { url: redacted.clone(), reason };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("missing ://".into()))?;
        // A fragment (redis-rs reads `#insecure` on rediss:// URLs) goes back on the URL handed to redis-rs.
        let (rest, fragment) = match rest.split_once('#') {
            Some((rest, fragment)) => (rest, Some(fragment)),
            None => (rest, None),
        };
        let (before_query, query) = match rest.split_once('?') {
            Some((a, q)) => (a, q),
            None => (rest, ""),
        };
        let mut options = RedisOptions {
            topology: Topology::Standalone { url: String::new() },
            layout: Layout::String,
            prefix: "sessionkit:".into(),
            hashed_keys: false,
            compression: Compression::Zstd,
            compress_min_bytes: 128,
            buckets: 1024,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            user_index: true,
            index_refresh: Duration::from_secs(300),
            adopt_layout: false,
            hash_writes: HashWrites::Auto,
            django: DjangoCacheOptions {
                key_prefix: String::new(),
                version: 1,
                engine: DjangoEngine::Cache,
                client: DjangoClient::RedisCache,
                serializer: "pickle".into(),
                pickle_protocol: 0,
                compressor: "none".into(),
            },
            client_cache: false,
            client_cache_size: 10_000,
        };
        let mut passthrough: Vec<(String, String)> = Vec::new();
        let mut compress_min_given = false;
        let mut sentinel_username = None;
        let mut sentinel_password = None;
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let value = value.into_owned();
            match name.as_ref() {
                "layout" => {
                    options.layout = match value.as_str() {
                        "string" => Layout::String,
                        "hash" => Layout::Hash,
                        "django-cache" | "django_cache" => Layout::DjangoCache,
                        other => return Err(bad(format!("layout {other:?} is not string, hash or django-cache"))),
                    }
                }
                "prefix" => options.prefix = value,
                "hashed_keys" => {
                    options.hashed_keys = parse_bool(&value).ok_or_else(|| bad(format!("hashed_keys={value:?}")))?
                }
                "user_index" => {
                    options.user_index = parse_bool(&value).ok_or_else(|| bad(format!("user_index={value:?}")))?
                }
                "index_refresh" => {
                    let seconds: f64 = value.parse().map_err(|_| bad(format!("index_refresh={value:?}")))?;
                    if !(seconds.is_finite() && (0.0..=86_400.0).contains(&seconds)) {
                        return Err(bad(format!("index_refresh={value:?} is not between 0 and 86400 seconds")));
                    }
                    options.index_refresh = Duration::from_secs_f64(seconds);
                }
                "compression" => {
                    options.compression = match value.as_str() {
                        "zstd" => Compression::Zstd,
                        "lz4" => Compression::Lz4,
                        "none" | "" => Compression::None,
                        other => return Err(bad(format!("compression {other:?} is not zstd, lz4 or none"))),
                    }
                }
                "compress_min_bytes" => {
                    options.compress_min_bytes =
                        value.parse().map_err(|_| bad(format!("compress_min_bytes={value:?}")))?;
                    compress_min_given = true;
                }
                "buckets" => {
                    options.buckets =
                        value.parse().ok().filter(|n| *n > 0).ok_or_else(|| bad(format!("buckets={value:?}")))?
                }
                "connect_timeout" => {
                    options.connect_timeout =
                        parse_seconds(&value).ok_or_else(|| bad(format!("connect_timeout={value:?}")))?
                }
                "timeout" => {
                    options.timeout = parse_seconds(&value).ok_or_else(|| bad(format!("timeout={value:?}")))?
                }
                "key_prefix" => options.django.key_prefix = value,
                "version" => options.django.version = value.parse().map_err(|_| bad(format!("version={value:?}")))?,
                "engine" => {
                    options.django.engine = match value.as_str() {
                        "cache" => DjangoEngine::Cache,
                        "cached_db" | "cached-db" => DjangoEngine::CachedDb,
                        other => return Err(bad(format!("engine {other:?} is not cache or cached_db"))),
                    }
                }
                "client" => {
                    options.django.client = match value.as_str() {
                        "redis-cache" | "rediscache" | "django" => DjangoClient::RedisCache,
                        "django-redis" | "django_redis" => DjangoClient::DjangoRedis,
                        other => return Err(bad(format!("client {other:?} is not redis-cache or django-redis"))),
                    }
                }
                "serializer" => options.django.serializer = value,
                "pickle_protocol" => {
                    options.django.pickle_protocol =
                        value.parse().map_err(|_| bad(format!("pickle_protocol={value:?}")))?
                }
                "compressor" => options.django.compressor = value,
                "sentinel_username" => sentinel_username = Some(value),
                "sentinel_password" => sentinel_password = Some(value),
                "hash_writes" => {
                    options.hash_writes = match value.as_str() {
                        "auto" => HashWrites::Auto,
                        "script" => HashWrites::Script,
                        other => return Err(bad(format!("hash_writes {other:?} is not auto or script"))),
                    }
                }
                "client_cache" => {
                    options.client_cache =
                        parse_bool(&value).ok_or_else(|| bad(format!("client_cache={value:?} is not on or off")))?
                }
                "client_cache_size" => {
                    options.client_cache_size = value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad(format!("client_cache_size={value:?} is not a positive number")))?
                }
                "adopt_layout" => {
                    options.adopt_layout =
                        parse_bool(&value).ok_or_else(|| bad(format!("adopt_layout={value:?} is not true or false")))?
                }
                other if client_options(scheme).contains(&other) => passthrough.push((name.into_owned(), value)),
                other if crate::store::url_options::WRAPPER_OPTIONS.contains(&other) => {
                    return Err(crate::store::url_options::wrapper_option_here(&redacted, other));
                }
                other => {
                    let known: Vec<&str> = OPTIONS.iter().chain(client_options(scheme)).copied().collect();
                    return Err(crate::store::url_options::unknown_option(&redacted, "Redis", other, &known));
                }
            }
        }
        if !compress_min_given {
            options.compress_min_bytes = if options.layout == Layout::Hash { 128 } else { 512 };
        }
        if options.django.pickle_protocol == 0 {
            options.django.pickle_protocol = match options.django.client {
                DjangoClient::RedisCache => 5,
                DjangoClient::DjangoRedis => 4,
            };
        }
        if options.layout == Layout::DjangoCache && options.hashed_keys {
            return Err(bad(
                "hashed_keys cannot be used with the django-cache layout: Django looks sessions up by key".into(),
            ));
        }
        let (userinfo, hosts_and_path) = match before_query.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, before_query),
        };
        let (username, password) = parse_userinfo(userinfo);
        options.topology = match scheme {
            "redis" | "rediss" | "unix" | "redis+unix" | "valkey" | "valkeys" => {
                let mut plain = format!("{scheme}://{before_query}");
                if !passthrough.is_empty() {
                    plain.push('?');
                    plain.push_str(
                        &url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&passthrough).finish(),
                    );
                }
                if let Some(fragment) = fragment {
                    plain.push('#');
                    plain.push_str(fragment);
                }
                Topology::Standalone { url: plain }
            }
            "redis+sentinel" | "rediss+sentinel" => {
                let (hosts, path) = hosts_and_path.split_once('/').ok_or_else(|| bad("missing /MASTER_NAME".into()))?;
                let mut parts = path.split('/').filter(|p| !p.is_empty());
                let master_name = parts.next().ok_or_else(|| bad("missing /MASTER_NAME".into()))?.to_owned();
                let db = match parts.next() {
                    Some(db) => db.parse().map_err(|_| bad(format!("database {db:?} is not a number")))?,
                    None => 0,
                };
                Topology::Sentinel {
                    sentinels: parse_hosts(hosts, 26379).map_err(bad)?,
                    master_name,
                    db,
                    username,
                    password,
                    sentinel_username,
                    sentinel_password,
                }
            }
            "redis+cluster" | "rediss+cluster" => {
                let hosts = hosts_and_path.split('/').next().unwrap_or_default();
                let node_scheme = if scheme.starts_with("rediss") { "rediss" } else { "redis" };
                let nodes = parse_hosts(hosts, 6379)
                    .map_err(bad)?
                    .into_iter()
                    .map(|(host, port)| format!("{node_scheme}://{host}:{port}"))
                    .collect();
                Topology::Cluster { nodes, username, password }
            }
            other => return Err(bad(format!("{other:?} is not a Redis scheme"))),
        };
        if options.client_cache && !matches!(scheme, "redis" | "valkey") {
            return Err(bad(format!(
                "client_cache=on works with a standalone server over plain TCP (redis://host:port), not with \
                 {scheme}:// yet; remove client_cache or connect with redis://"
            )));
        }
        Ok(options)
    }
}

/// The options sessionkit reads from a Redis URL (the module docs say what each does).
const OPTIONS: &[&str] = &[
    "layout",
    "prefix",
    "hashed_keys",
    "compression",
    "compress_min_bytes",
    "buckets",
    "connect_timeout",
    "timeout",
    "user_index",
    "index_refresh",
    "adopt_layout",
    "hash_writes",
    "client_cache",
    "client_cache_size",
    "key_prefix",
    "version",
    "engine",
    "client",
    "serializer",
    "pickle_protocol",
    "compressor",
    "sentinel_username",
    "sentinel_password",
];

/// The options redis-rs reads from a URL of `scheme`, passed on to it: `protocol` on standalone URLs, and on
/// `unix://` URLs also `db`, `user` and `pass`. Sentinel and Cluster connections are built from parts, so they
/// take none.
fn client_options(scheme: &str) -> &'static [&'static str] {
    match scheme {
        "unix" | "redis+unix" => &["protocol", "db", "user", "pass"],
        "redis" | "rediss" | "valkey" | "valkeys" => &["protocol"],
        _ => &[],
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse_seconds(value: &str) -> Option<Duration> {
    let seconds: f64 = value.parse().ok()?;
    (seconds.is_finite() && seconds > 0.0 && seconds < 86_400.0).then(|| Duration::from_secs_f64(seconds))
}

fn parse_userinfo(userinfo: Option<&str>) -> (Option<String>, Option<String>) {
    let Some(info) = userinfo else { return (None, None) };
    let decode = |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    match info.split_once(':') {
        Some((user, pass)) => (decode(user).filter(|u| !u.is_empty()), decode(pass)),
        None => (decode(info).filter(|u| !u.is_empty()), None),
    }
}

fn parse_hosts(hosts: &str, default_port: u16) -> Result<Vec<(String, u16)>, String> {
    let mut out = Vec::new();
    for host in hosts.split(',').filter(|h| !h.is_empty()) {
        let (name, port) = match host.rsplit_once(':') {
            Some((name, port)) => (name, port.parse().map_err(|_| format!("port {port:?} is not a number"))?),
            None => (host, default_port),
        };
        out.push((name.trim_start_matches('[').trim_end_matches(']').to_owned(), port));
    }
    if out.is_empty() {
        return Err("no host given".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_urls_keep_their_connection_part_and_lose_our_options() {
        let o = RedisOptions::from_url("redis://u:p%40ss@h:6380/3?layout=hash&buckets=64&protocol=resp3").unwrap();
        assert_eq!(o.layout, Layout::Hash);
        assert_eq!(o.buckets, 64);
        assert_eq!(o.compress_min_bytes, 128, "the hash layout compresses typical sessions");
        assert_eq!(RedisOptions::from_url("redis://h").unwrap().compress_min_bytes, 512);
        assert_eq!(RedisOptions::from_url("redis://h?layout=hash&compress_min_bytes=9").unwrap().compress_min_bytes, 9);
        assert_eq!(o.topology, Topology::Standalone { url: "redis://u:p%40ss@h:6380/3?protocol=resp3".into() });
        let o = RedisOptions::from_url("rediss://h:6380/?layout=hash#insecure").unwrap();
        assert_eq!(o.layout, Layout::Hash);
        assert_eq!(o.topology, Topology::Standalone { url: "rediss://h:6380/#insecure".into() });
        let o = RedisOptions::from_url("unix:///run/redis.sock?db=2&timeout=0.5").unwrap();
        assert_eq!(o.topology, Topology::Standalone { url: "unix:///run/redis.sock?db=2".into() });
        assert_eq!(o.timeout, Duration::from_millis(500));
        assert_eq!(o.layout, Layout::String);
        assert_eq!(o.connect_timeout, Duration::from_secs(5));
    }

    #[test]
    fn sentinel_and_cluster_urls() {
        let o = RedisOptions::from_url("redis+sentinel://:secret@s1:26379,s2/mymaster/2?sentinel_password=sp").unwrap();
        assert_eq!(
            o.topology,
            Topology::Sentinel {
                sentinels: vec![("s1".into(), 26379), ("s2".into(), 26379)],
                master_name: "mymaster".into(),
                db: 2,
                username: None,
                password: Some("secret".into()),
                sentinel_username: None,
                sentinel_password: Some("sp".into()),
            }
        );
        let o = RedisOptions::from_url("redis+cluster://a:7000,b:7001?layout=django-cache&key_prefix=app&version=2")
            .unwrap();
        assert_eq!(
            o.topology,
            Topology::Cluster {
                nodes: vec!["redis://a:7000".into(), "redis://b:7001".into()],
                username: None,
                password: None
            }
        );
        assert_eq!(o.django.cache_key("abc"), "app:2:django.contrib.sessions.cacheabc");
        assert_eq!(o.django.pickle_protocol, 5);
    }

    #[test]
    fn bad_options_are_config_errors_without_the_password() {
        for url in [
            "redis://h?layout=tree",
            "redis://h?buckets=0",
            "redis://h?timeout=-1",
            "redis://:hunter2@h?compression=brotli",
            "redis+sentinel://s1",
            "redis://h?layout=django-cache&hashed_keys=1",
            "mongodb://h",
        ] {
            let err = RedisOptions::from_url(url).unwrap_err();
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        let o = RedisOptions::from_url("redis://h?layout=django-cache&client=django-redis&compressor=zstd").unwrap();
        assert_eq!(o.django.pickle_protocol, 4);
        assert_eq!(
            DjangoCacheOptions { engine: DjangoEngine::CachedDb, ..o.django }.cache_key("k"),
            ":1:django.contrib.sessions.cached_dbk"
        );
    }

    #[test]
    fn unknown_options_are_refused_with_the_known_ones() {
        let err = RedisOptions::from_url("redis://:hunter2@h?layot=hash").unwrap_err().to_string();
        assert!(err.contains("unknown option \"layot\" (did you mean \"layout\"?)"), "{err}");
        assert!(err.contains("buckets") && err.contains("protocol") && !err.contains("hunter2"), "{err}");
        // redis-rs reads these itself on the URLs it parses; elsewhere they would be dropped, so they are refused.
        assert!(RedisOptions::from_url("redis://h?protocol=resp3").is_ok());
        assert!(RedisOptions::from_url("unix:///run/r.sock?db=1&user=u&pass=p").is_ok());
        for url in ["redis+cluster://a:7000?protocol=resp3", "redis://h?db=2", "redis+sentinel://s/m?pass=x"] {
            let err = RedisOptions::from_url(url).unwrap_err().to_string();
            assert!(err.contains("unknown option"), "{url}: {err}");
        }
        assert!(RedisOptions::from_url("redis://h?layout=hash&adopt_layout=true").unwrap().adopt_layout);
        // The wrapper options belong to open_store, which strips them before the store sees the URL.
        let err = RedisOptions::from_url("redis://h?merge=false").unwrap_err().to_string();
        assert!(err.contains("merge is an option of open_store") && err.contains("SESSIONKIT['MERGE']"), "{err}");
    }
}
