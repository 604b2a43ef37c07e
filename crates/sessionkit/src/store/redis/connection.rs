//! Connections to standalone Redis, Sentinel-managed masters and Redis Cluster, behind one type.
//!
//! - Standalone: one multiplexed [`ConnectionManager`] shared by all requests; it reconnects by itself after a
//!   server restart. redis-rs makes callers wait through its whole reconnect backoff, so the backoff is kept
//!   short (2 retries, at most 500 ms apart) and every call is also bounded by the store's `timeout`.
//! - Sentinel: the master is resolved through the Sentinels; redis-rs does not follow a failover by itself
//!   (redis-rs#1438), so after a connection error or a `READONLY` reply the master is resolved again and a new
//!   connection replaces the old one. The failed command is not retried (it may have been applied); the next
//!   request uses the new master.
//! - Cluster: redis-rs' async cluster connection (slot routing, MOVED/ASK, per-node reconnect). `SCAN` runs node
//!   by node over the masters.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Cmd, ConnectionAddr, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value,
};

use super::config::{RedisOptions, Topology};
use super::tracking::{Live, TrackedConnection};
use crate::{ConfigError, StoreError};

/// One connection handle of any topology; cheap to clone (all clones share the underlying connection).
#[derive(Clone)]
pub(crate) enum AnyConnection {
    Manager(ConnectionManager),
    Cluster(ClusterConnection),
    Tracked(MultiplexedConnection),
}

impl ConnectionLike for AnyConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            AnyConnection::Manager(c) => c.req_packed_command(cmd),
            AnyConnection::Cluster(c) => c.req_packed_command(cmd),
            AnyConnection::Tracked(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            AnyConnection::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            AnyConnection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            AnyConnection::Tracked(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            AnyConnection::Manager(c) => c.get_db(),
            AnyConnection::Cluster(c) => c.get_db(),
            AnyConnection::Tracked(c) => c.get_db(),
        }
    }
}

struct SentinelState {
    client: tokio::sync::Mutex<SentinelClient>,
    current: RwLock<ConnectionManager>,
    config: ConnectionManagerConfig,
    refreshing: AtomicBool,
}

enum Backend {
    Standalone(ConnectionManager),
    Sentinel(Arc<SentinelState>),
    Cluster(ClusterConnection),
    /// The request-path connection of `client_cache=on` (see [`tracking`](super::tracking)).
    Tracked(Arc<TrackedConnection>),
}

/// The Redis connection of a store.
pub(crate) struct RedisConnection {
    backend: Backend,
    timeout: Duration,
    describe: String,
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnection").field("store", &self.describe).field("timeout", &self.timeout).finish()
    }
}

fn manager_config(options: &RedisOptions) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(options.connect_timeout))
        .set_response_timeout(Some(options.timeout))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
}

fn install_tls_provider() {
    // rustls needs a process-wide crypto provider; installing twice is harmless (the second call fails).
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl RedisConnection {
    /// Connects according to `options`. Fails fast (with the cause) when the servers cannot be reached.
    pub(crate) async fn connect(options: &RedisOptions, describe: String) -> Result<Self, StoreError> {
        let unavailable = |err: RedisError| StoreError::unavailable(describe.clone(), err);
        let bad_url = |err: RedisError| -> StoreError {
            ConfigError::InvalidStoreUrl { url: describe.clone(), reason: err.to_string() }.into()
        };
        let backend = match &options.topology {
            Topology::Standalone { url } => {
                if url.starts_with("rediss") || url.starts_with("valkeys") {
                    install_tls_provider();
                }
                let client = redis::Client::open(url.as_str()).map_err(bad_url)?;
                let target = tcp_target(url);
                let connect = ConnectionManager::new_with_config(client, manager_config(options));
                let manager = connect_explained(&describe, options.connect_timeout * 2, target, connect).await?;
                Backend::Standalone(manager)
            }
            Topology::Sentinel {
                sentinels,
                master_name,
                db,
                username,
                password,
                sentinel_username,
                sentinel_password,
            } => {
                let addrs = sentinels.iter().map(|(host, port)| ConnectionAddr::Tcp(host.clone(), *port));
                let mut builder = SentinelClientBuilder::new(addrs, master_name.clone(), SentinelServerType::Master)
                    .map_err(bad_url)?;
                builder = builder.set_client_to_redis_db(*db);
                if let Some(user) = username {
                    builder = builder.set_client_to_redis_username(user);
                }
                if let Some(pass) = password {
                    builder = builder.set_client_to_redis_password(pass);
                }
                if let Some(user) = sentinel_username {
                    builder = builder.set_client_to_sentinel_username(user);
                }
                if let Some(pass) = sentinel_password {
                    builder = builder.set_client_to_sentinel_password(pass);
                }
                let mut client = builder.build().map_err(bad_url)?;
                let config = manager_config(options);
                let manager = tokio::time::timeout(options.connect_timeout * 2, async {
                    let master = client.async_get_client().await?;
                    ConnectionManager::new_with_config(master, config.clone()).await
                })
                .await
                .map_err(|_| StoreError::unavailable(describe.clone(), Timeout(options.connect_timeout * 2)))?
                .map_err(unavailable)?;
                Backend::Sentinel(Arc::new(SentinelState {
                    client: tokio::sync::Mutex::new(client),
                    current: RwLock::new(manager),
                    config,
                    refreshing: AtomicBool::new(false),
                }))
            }
            Topology::Cluster { nodes, username, password } => {
                if nodes.iter().any(|n| n.starts_with("rediss")) {
                    install_tls_provider();
                }
                let mut builder = redis::cluster::ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(options.connect_timeout)
                    .response_timeout(options.timeout);
                if let Some(user) = username {
                    builder = builder.username(user);
                }
                if let Some(pass) = password {
                    builder = builder.password(pass);
                }
                let client = builder.build().map_err(bad_url)?;
                let connection = tokio::time::timeout(options.connect_timeout * 2, client.get_async_connection())
                    .await
                    .map_err(|_| StoreError::unavailable(describe.clone(), Timeout(options.connect_timeout * 2)))?
                    .map_err(unavailable)?;
                Backend::Cluster(connection)
            }
        };
        Ok(RedisConnection { backend, timeout: options.timeout, describe })
    }

    /// True for a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.backend, Backend::Cluster(_))
    }

    /// The request-path connection of `client_cache=on`, with its own reconnects and cache.
    pub(crate) fn tracked(tracked: Arc<TrackedConnection>, options: &RedisOptions, describe: String) -> Self {
        RedisConnection { backend: Backend::Tracked(tracked), timeout: options.timeout, describe }
    }

    /// The handle to run a command on, and for `client_cache=on` the tracking connection it belongs to.
    async fn handle(&self) -> Result<(AnyConnection, Option<Live>), RedisError> {
        Ok(match &self.backend {
            Backend::Standalone(m) => (AnyConnection::Manager(m.clone()), None),
            Backend::Sentinel(state) => {
                let current = state.current.read().unwrap_or_else(std::sync::PoisonError::into_inner);
                (AnyConnection::Manager(current.clone()), None)
            }
            Backend::Cluster(c) => (AnyConnection::Cluster(c.clone()), None),
            Backend::Tracked(tracked) => {
                let live = tracked.handle().await?;
                (AnyConnection::Tracked(live.conn.clone()), Some(live))
            }
        })
    }

    /// Runs `work` on a connection handle, bounded by the timeout; maps errors to [`StoreError::Unavailable`] and
    /// triggers a Sentinel re-resolution when the error suggests a failover.
    pub(crate) async fn run<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(AnyConnection) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        let mut used = None;
        let outcome = tokio::time::timeout(self.timeout, async {
            let (handle, live) = self.handle().await?;
            used = live;
            work(handle).await
        })
        .await;
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                if let (Backend::Tracked(tracked), Some(live)) = (&self.backend, &used) {
                    tracked.failed(live, &err);
                }
                if let Backend::Sentinel(state) = &self.backend {
                    if suggests_failover(&err) {
                        refresh_sentinel(Arc::clone(state), self.describe.clone());
                    }
                }
                Err(StoreError::unavailable(self.describe.clone(), err))
            }
            Err(_) => {
                if let (Backend::Tracked(tracked), Some(live)) = (&self.backend, &used) {
                    // What is still unread on it may be an invalidation.
                    tracked.lost(live);
                }
                if let Backend::Sentinel(state) = &self.backend {
                    refresh_sentinel(Arc::clone(state), self.describe.clone());
                }
                Err(StoreError::unavailable(self.describe.clone(), Timeout(self.timeout)))
            }
        }
    }

    /// Runs one command.
    pub(crate) async fn query<T: FromRedisValue + Send + 'static>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        self.run(|mut conn| async move { cmd.query_async(&mut conn).await }).await
    }

    /// Runs a pipeline (one round trip).
    pub(crate) async fn query_pipeline<T: FromRedisValue + Send + 'static>(
        &self,
        pipe: &Pipeline,
    ) -> Result<T, StoreError> {
        self.run(|mut conn| async move { pipe.query_async(&mut conn).await }).await
    }

    /// Runs a command on one node chosen by address (Cluster) or on the server (otherwise).
    pub(crate) async fn query_node(&self, node: Option<&(String, u16)>, cmd: Cmd) -> Result<Value, StoreError> {
        match (&self.backend, node) {
            (Backend::Cluster(c), Some((host, port))) => {
                let mut c = c.clone();
                let routing =
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host: host.clone(), port: *port });
                let work = async move { c.route_command(cmd, routing).await };
                match tokio::time::timeout(self.timeout, work).await {
                    Ok(result) => result.map_err(|err| StoreError::unavailable(self.describe.clone(), err)),
                    Err(_) => Err(StoreError::unavailable(self.describe.clone(), Timeout(self.timeout))),
                }
            }
            _ => self.query(&cmd).await,
        }
    }

    /// The nodes `SCAN` must visit: the masters of a Cluster, or the single server (`None`).
    pub(crate) async fn scan_nodes(&self) -> Result<Vec<Option<(String, u16)>>, StoreError> {
        if !self.is_cluster() {
            return Ok(vec![None]);
        }
        let nodes: String = self.query(&redis::cmd("CLUSTER").arg("NODES").clone()).await?;
        let mut masters = Vec::new();
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 3 || !fields[2].split(',').any(|f| f == "master") || fields[2].contains("fail") {
                continue;
            }
            // `host:port@busport[,hostname]`
            let addr = fields[1].split('@').next().unwrap_or_default();
            if let Some((host, port)) = addr.rsplit_once(':') {
                if let Ok(port) = port.parse() {
                    masters.push(Some((host.to_owned(), port)));
                }
            }
        }
        Ok(masters)
    }
}

/// Errors after which a Sentinel-managed master may have moved.
fn suggests_failover(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || matches!(err.kind(), ErrorKind::Server(ServerErrorKind::ReadOnly))
        || err.to_string().contains("MASTERDOWN")
}

/// Resolves the master again in the background and swaps the connection (one refresh at a time).
fn refresh_sentinel(state: Arc<SentinelState>, describe: String) {
    if state.refreshing.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async move {
        let result = async {
            let mut client = state.client.lock().await;
            let master = client.async_get_client().await?;
            ConnectionManager::new_with_config(master, state.config.clone()).await
        }
        .await;
        match result {
            Ok(manager) => {
                *state.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = manager;
                tracing::info!(target: "sessionkit", store = %describe, "re-resolved the master through Sentinel");
            }
            Err(err) => {
                tracing::warn!(target: "sessionkit", store = %describe, error = %err, "Sentinel re-resolution failed")
            }
        }
        state.refreshing.store(false, Ordering::Release);
    });
}

/// The TCP host, port and TLS flag of a standalone URL (`None` for Unix sockets, whose errors name the cause).
fn tcp_target(url: &str) -> Option<(String, u16, bool)> {
    let parsed = url::Url::parse(url).ok()?;
    let tls = matches!(parsed.scheme(), "rediss" | "valkeys");
    if !matches!(parsed.scheme(), "redis" | "rediss" | "valkey" | "valkeys") {
        return None;
    }
    let host = parsed.host_str()?.trim_start_matches('[').trim_end_matches(']').to_owned();
    Some((host, parsed.port().unwrap_or(6379), tls))
}

/// Runs `connect` within `deadline`. When it fails, or is still running after a second, the address is probed
/// ([`probe`](crate::store::probe)): a port that cannot be a Redis server of the URL's kind (HTTP, PostgreSQL,
/// MySQL, TLS for `redis://`, plaintext for `rediss://`) fails at once with a message that says so, instead of a
/// parse error or a timeout.
async fn connect_explained<T>(
    describe: &str,
    deadline: Duration,
    target: Option<(String, u16, bool)>,
    connect: impl std::future::Future<Output = Result<T, RedisError>>,
) -> Result<T, StoreError> {
    use crate::store::probe::{probe, redis_mismatch, Explained};
    let explained = |cause: String, source: Box<dyn std::error::Error + Send + Sync>| {
        StoreError::unavailable(describe.to_owned(), Explained { cause, source })
    };
    let slow_probe = async {
        match &target {
            Some((host, port, tls)) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match redis_mismatch(&probe(host, *port).await, *tls, false) {
                    Some(cause) => cause,
                    None => std::future::pending().await,
                }
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        outcome = tokio::time::timeout(deadline, connect) => match outcome {
            Ok(Ok(connected)) => Ok(connected),
            Ok(Err(err)) => {
                // A reply from Redis itself (WRONGPASS, NOAUTH, …) names its cause; only a failed exchange is probed.
                let cause = match &target {
                    Some((host, port, tls)) if err.code().is_none() => {
                        redis_mismatch(&probe(host, *port).await, *tls, true)
                    }
                    _ => None,
                };
                Err(match cause {
                    Some(cause) => explained(cause, Box::new(err)),
                    None => StoreError::unavailable(describe.to_owned(), err),
                })
            }
            Err(_) => Err(StoreError::unavailable(describe.to_owned(), Timeout(deadline))),
        },
        cause = slow_probe => Err(explained(cause, Box::new(Timeout(Duration::from_secs(1))))),
    }
}

/// A call that took longer than the store's timeout.
#[derive(Debug)]
pub(crate) struct Timeout(pub Duration);

impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no reply within {:?}", self.0)
    }
}

impl std::error::Error for Timeout {}
