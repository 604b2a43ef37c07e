//! The connection behind `client_cache=on`: one RESP3 connection with server-assisted client-side caching
//! (`CLIENT TRACKING ON BCAST PREFIX <prefix>`), which carries the session reads of the request path and receives
//! the invalidation messages that keep a [`ClientCache`] true.
//!
//! - **BCAST** on the store's key prefix: Redis reports every change of a session key, whoever made it and
//!   whether or not this connection read it, this process's own writes included (no `NOLOOP`: a write of this
//!   process is reported like anyone else's, so the order in which its own writes and reads reached Redis never
//!   matters; the store also forgets the address itself once its write is done).
//! - **Invalidations are applied in the connection's reader**, in wire order, before the replies that follow them
//!   are handed out (redis-rs calls the push handler synchronously from its driver).
//! - **A cached answer is given only when nothing is waiting to be read** ([`TrackedConnection::fresh`]): the
//!   socket is peeked (`MSG_PEEK`, non-blocking) and the reader must not be between a read and the end of
//!   processing what it read. An invalidation that reached this host before a load is looked up is applied first.
//! - **A lease**: a heartbeat `PING`s the connection every [`HEARTBEAT`]; cached answers are given only while the
//!   last reply is younger than [`LEASE`]. A connection that dies without a word (a dropped NAT entry, a host gone
//!   without a reset) stops answering within the lease, so no lost invalidation is trusted for longer.
//! - **Lost connection**: the cache is cleared at once (redis-rs reports the disconnection from its reader, a
//!   failed command or heartbeat marks it) and nothing is answered from memory until a new connection has
//!   tracking on again.
//!
//! Only plain TCP to a standalone server is supported (the socket is peeked); the URL parser refuses the other
//! topologies and schemes with `client_cache=on`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use redis::aio::{AsyncPushSender, MultiplexedConnection, SendError};
use redis::{AsyncConnectionConfig, ConnectionAddr, ProtocolVersion, PushInfo, PushKind, RedisError, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::client_cache::ClientCache;

/// How many times [`TrackedConnection::fresh`] looks again at a reader that is still processing what it read
/// (a few microseconds) before it gives up and lets the load ask Redis.
const READER_SPINS: u32 = 2_000;

/// How often the heartbeat pings the tracking connection.
pub const HEARTBEAT: Duration = Duration::from_millis(250);

/// How long after the last heartbeat reply cached answers are still given.
pub const LEASE: Duration = Duration::from_millis(1_000);

/// The name of the tracked connection in `CLIENT LIST`.
pub const CONNECTION_NAME: &str = "sessionkit-client-cache";

/// What the request path and the reader share about one physical connection.
#[derive(Debug)]
struct Watch {
    /// A duplicate of the socket, only ever peeked.
    peer: std::net::TcpStream,
    /// True from the start of each read until a read finds nothing left (everything read has been processed).
    reading: AtomicBool,
    /// False once redis-rs reports the connection lost, a command on it fails or the heartbeat goes unanswered.
    alive: AtomicBool,
    /// When the heartbeat last got a reply, in milliseconds since `opened`.
    last_reply_ms: AtomicU64,
    opened: Instant,
}

impl Watch {
    fn within_lease(&self) -> bool {
        let since_open = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        since_open.saturating_sub(self.last_reply_ms.load(Ordering::SeqCst)) < LEASE.as_millis() as u64
    }

    fn replied(&self) {
        let since_open = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_reply_ms.store(since_open, Ordering::SeqCst);
    }
}

/// The socket as redis-rs reads it, marking [`Watch::reading`].
struct WatchedStream {
    inner: tokio::net::TcpStream,
    watch: Arc<Watch>,
}

impl AsyncRead for WatchedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        // Set before the socket is read, cleared only when a read finds the socket empty: redis-rs decodes and
        // dispatches every complete frame it has buffered before it reads again.
        self.watch.reading.store(true, Ordering::SeqCst);
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if polled.is_pending() {
            self.watch.reading.store(false, Ordering::SeqCst);
        }
        polled
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Applies Redis's push messages to the cache, from redis-rs's reader.
struct Invalidations {
    cache: Arc<ClientCache>,
    watch: Arc<Watch>,
}

impl AsyncPushSender for Invalidations {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        match info.kind {
            PushKind::Invalidate => match info.data.first() {
                Some(Value::Array(keys)) => {
                    for key in keys {
                        match key {
                            Value::BulkString(key) => self.cache.invalidate(key),
                            // Not a key name: be safe.
                            _ => self.cache.clear(),
                        }
                    }
                }
                // FLUSHALL / FLUSHDB (a null instead of keys), or anything unexpected.
                _ => self.cache.clear(),
            },
            PushKind::Disconnection => {
                self.watch.alive.store(false, Ordering::SeqCst);
                self.cache.clear();
            }
            _ => {}
        }
        Ok(())
    }
}

/// One physical tracking connection: what commands go through, and its [`Watch`].
#[derive(Clone)]
pub(crate) struct Live {
    pub(crate) conn: MultiplexedConnection,
    watch: Arc<Watch>,
}

/// A RESP3 connection with tracking on, reconnected on demand, and the cache its invalidations keep true.
pub(crate) struct TrackedConnection {
    host: String,
    port: u16,
    info: redis::RedisConnectionInfo,
    prefix: Vec<u8>,
    connect_timeout: Duration,
    response_timeout: Duration,
    cache: Arc<ClientCache>,
    live: RwLock<Option<Live>>,
    connecting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for TrackedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackedConnection").field("host", &self.host).field("port", &self.port).finish()
    }
}

impl TrackedConnection {
    /// Connects to the server of `url` (a `redis://` TCP URL) and turns tracking on for keys under `prefix`.
    pub(crate) async fn connect(
        url: &str,
        prefix: Vec<u8>,
        capacity: usize,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Arc<Self>, RedisError> {
        let client = redis::Client::open(url)?;
        let info = client.get_connection_info();
        let (host, port) = match info.addr() {
            ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
            _ => {
                return Err(RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "client_cache=on needs a plain TCP connection",
                )))
            }
        };
        let tracked = Arc::new(TrackedConnection {
            host,
            port,
            info: info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3),
            prefix,
            connect_timeout,
            response_timeout,
            cache: Arc::new(ClientCache::new(capacity)),
            live: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(()),
        });
        tracked.handle().await?;
        Ok(tracked)
    }

    /// The cache this connection keeps true.
    pub(crate) fn cache(&self) -> &ClientCache {
        &self.cache
    }

    fn current(&self) -> Option<Live> {
        self.live.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// True when a cached session may be answered now: the connection is up with tracking on and within its
    /// lease, no bytes wait in its socket and its reader has processed everything it read. Call it before looking
    /// the cache up.
    pub(crate) fn fresh(&self) -> bool {
        let Some(live) = self.current() else { return false };
        if !live.watch.alive.load(Ordering::SeqCst) || !live.watch.within_lease() {
            return false;
        }
        let mut probe = [0u8; 1];
        match live.watch.peer.peek(&mut probe) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            // Bytes waiting (an invalidation, maybe), end of stream, or an error: ask Redis.
            _ => return false,
        }
        // The peek happened before this load: if the reader took the bytes first, it is still marked reading
        // unless it has processed them. It usually is for a moment after any reply (the caller is woken before
        // the reader finishes its turn), so wait a few microseconds for it rather than ask Redis.
        std::sync::atomic::fence(Ordering::SeqCst);
        for _ in 0..READER_SPINS {
            if !live.watch.reading.load(Ordering::SeqCst) {
                return true;
            }
            std::hint::spin_loop();
        }
        false
    }

    /// The connection, reconnected (and tracking turned on again, with the cache cleared) when it was lost.
    pub(crate) async fn handle(self: &Arc<Self>) -> Result<Live, RedisError> {
        if let Some(live) = self.current().filter(|live| live.watch.alive.load(Ordering::SeqCst)) {
            return Ok(live);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(live) = self.current().filter(|live| live.watch.alive.load(Ordering::SeqCst)) {
            return Ok(live);
        }
        self.cache.clear();
        let live = tokio::time::timeout(self.connect_timeout, self.open())
            .await
            .map_err(|_| RedisError::from(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")))??;
        *self.live.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(live.clone());
        tokio::spawn(heartbeat(Arc::downgrade(self), live.clone()));
        Ok(live)
    }

    /// Called with the error of a command sent on `live`: a lost connection clears the cache and is replaced at
    /// the next call. A reply that did not come in time is treated the same: what is unread may be an
    /// invalidation.
    pub(crate) fn failed(&self, live: &Live, err: &RedisError) {
        if err.is_unrecoverable_error() || err.is_connection_dropped() || err.is_io_error() || err.is_timeout() {
            self.lost(live);
        }
    }

    /// Marks `live` lost and clears the cache.
    pub(crate) fn lost(&self, live: &Live) {
        live.watch.alive.store(false, Ordering::SeqCst);
        self.cache.clear();
    }

    async fn open(&self) -> Result<Live, RedisError> {
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await?;
        stream.set_nodelay(true)?;
        // A duplicate of the descriptor to peek at; both stay non-blocking (one open file description).
        let std_stream = stream.into_std()?;
        let peer = std_stream.try_clone()?;
        let stream = tokio::net::TcpStream::from_std(std_stream)?;
        let watch = Arc::new(Watch {
            peer,
            reading: AtomicBool::new(false),
            alive: AtomicBool::new(true),
            last_reply_ms: AtomicU64::new(0),
            opened: Instant::now(),
        });
        let invalidations = Invalidations { cache: Arc::clone(&self.cache), watch: Arc::clone(&watch) };
        let config = AsyncConnectionConfig::new()
            .set_push_sender(invalidations)
            .set_response_timeout(Some(self.response_timeout))
            .set_connection_timeout(Some(self.connect_timeout));
        let (mut conn, driver) = MultiplexedConnection::new_with_config(
            &self.info,
            WatchedStream { inner: stream, watch: Arc::clone(&watch) },
            config,
        )
        .await?;
        tokio::spawn(driver);
        let mut setup = redis::pipe();
        setup
            .cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("BCAST")
            .arg("PREFIX")
            .arg(self.prefix.as_slice())
            .ignore()
            .cmd("CLIENT")
            .arg("SETNAME")
            .arg(CONNECTION_NAME)
            .ignore();
        let _: () = setup.query_async(&mut conn).await?;
        watch.replied();
        Ok(Live { conn, watch })
    }
}

/// Pings `live` every [`HEARTBEAT`] while it is the current connection, renewing its lease; a missing reply marks
/// it lost. Ends with the connection, or when the store is dropped.
async fn heartbeat(tracked: std::sync::Weak<TrackedConnection>, live: Live) {
    let mut conn = live.conn.clone();
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        let Some(tracked) = tracked.upgrade() else { return };
        if !live.watch.alive.load(Ordering::SeqCst) {
            return;
        }
        let ping = tokio::time::timeout(LEASE, redis::cmd("PING").query_async::<()>(&mut conn)).await;
        match ping {
            Ok(Ok(())) => live.watch.replied(),
            Ok(Err(_)) | Err(_) => {
                tracked.lost(&live);
                return;
            }
        }
    }
}
