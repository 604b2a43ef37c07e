//! What answers on a port, for error messages that name the cause: a client library pointed at the wrong service
//! says `Parse error at 1 Unexpected 33`, `broken pipe`, or waits for a timeout. When a connection fails (or is
//! slow), the store probes the address once: a plain TCP connection that sends `PING\r\n` and reads the first
//! bytes of the reply, within [`PROBE_TIMEOUT`].

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a probe may take in all (connect, write, read).
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// What a probe found on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Peer {
    /// Nothing listens: the connection was refused.
    Refused,
    /// A Redis server in plaintext (it answered `PING` with a RESP reply).
    RedisPlaintext,
    /// An HTTP server.
    Http,
    /// A TLS server (it answered plaintext with a TLS alert or handshake record).
    Tls,
    /// A MySQL or MariaDB server (it greets first with its handshake packet).
    MySql,
    /// A server that closed the connection or stayed silent: PostgreSQL does both to a stranger's bytes.
    Silent,
    /// Something else answered; the first bytes, printable.
    Other(String),
    /// The probe itself could not connect (timeout, unreachable host); the reason.
    Unreachable(String),
}

impl Peer {
    /// A phrase for messages about a client of `protocol` ("Redis", "PostgreSQL"): "this port does not speak the
    /// Redis protocol: it answered like an HTTP server".
    pub(crate) fn describe(&self, protocol: &str) -> String {
        let not = format!("this port does not speak the {protocol} protocol");
        match self {
            Peer::Refused => "connection refused: nothing listens on that port".into(),
            Peer::RedisPlaintext => format!("{not}: a Redis server answers there"),
            Peer::Http => format!("{not}: it answered like an HTTP server"),
            Peer::Tls => format!("{not}: it answered with TLS"),
            Peer::MySql => format!("{not}: it answered like MySQL/MariaDB"),
            Peer::Silent => format!("{not}: it closed the connection or stayed silent on PING (as PostgreSQL does)"),
            Peer::Other(first) => format!("{not}: it answered {first:?}"),
            Peer::Unreachable(reason) => reason.clone(),
        }
    }
}

/// A connection error with what the probe found: `Parse error … (this port does not speak the Redis protocol: it
/// answered like an HTTP server)`. The client library's error stays the source.
#[derive(Debug)]
pub(crate) struct Explained {
    /// What the probe found, for people.
    pub(crate) cause: String,
    /// The client library's error.
    pub(crate) source: Box<dyn std::error::Error + Send + Sync>,
}

impl std::fmt::Display for Explained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (client error: {})", self.cause, self.source)
    }
}

impl std::error::Error for Explained {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// For a client that speaks plaintext (`tls` false) or TLS (`tls` true) to a Redis-protocol server: the cause
/// when `peer` cannot be such a server, `None` when it may be. `Silent` counts only when `silent_counts` (after a
/// failed connection; while a connection is merely slow, a silent probe proves nothing).
#[cfg(feature = "redis")]
pub(crate) fn redis_mismatch(peer: &Peer, tls: bool, silent_counts: bool) -> Option<String> {
    match peer {
        Peer::RedisPlaintext if tls => Some(
            "TLS handshake failed: a plaintext Redis server answers on that port; use redis:// (or the server's \
             TLS port)"
                .into(),
        ),
        Peer::RedisPlaintext | Peer::Unreachable(_) => None,
        Peer::Tls if tls => None,
        Peer::Tls => Some("this port speaks TLS: use rediss://".into()),
        Peer::Silent if !silent_counts => None,
        Peer::Silent if tls => Some("TLS handshake failed: the server did not answer as a TLS server would".into()),
        Peer::Refused => None,
        other => Some(other.describe("Redis")),
    }
}

/// For a client of a SQL database whose server answers a probe as `expected` does (PostgreSQL stays silent,
/// MySQL greets): the cause when `peer` is something else, `None` when it may be the database. `Silent` counts
/// only when `silent_counts` (after a failed connection; a loaded MySQL may greet late).
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn sql_mismatch(peer: &Peer, expected: &Peer, protocol: &str, silent_counts: bool) -> Option<String> {
    match peer {
        peer if peer == expected => None,
        Peer::Silent if !silent_counts => None,
        Peer::Unreachable(_) | Peer::Refused => None,
        // A database behind TLS-only proxies answers with TLS; the client's own error says more.
        Peer::Tls => None,
        other => Some(other.describe(protocol)),
    }
}

/// Probes `host:port` (see the module docs).
pub(crate) async fn probe(host: &str, port: u16) -> Peer {
    match tokio::time::timeout(PROBE_TIMEOUT, probe_inner(host, port)).await {
        Ok(peer) => peer,
        Err(_) => Peer::Silent,
    }
}

async fn probe_inner(host: &str, port: u16) -> Peer {
    // A host that does not complete the TCP handshake says nothing about the protocol (a firewall, a slow route).
    let connect = tokio::time::timeout(PROBE_TIMEOUT / 2, TcpStream::connect((host, port))).await;
    let mut stream = match connect {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => return Peer::Refused,
        Ok(Err(err)) => return Peer::Unreachable(err.to_string()),
        Err(_) => return Peer::Unreachable(format!("no TCP connection within {:?}", PROBE_TIMEOUT / 2)),
    };
    // MySQL greets before it reads: give it a moment to do so, then say PING.
    let mut first = [0u8; 64];
    let greeting = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut first)).await;
    let n = match greeting {
        Ok(Ok(n)) if n > 0 => n,
        Ok(Ok(_)) => return Peer::Silent,
        Ok(Err(_)) => return Peer::Silent,
        Err(_) => {
            if stream.write_all(b"PING\r\n").await.is_err() {
                return Peer::Silent;
            }
            match stream.read(&mut first).await {
                Ok(n) if n > 0 => n,
                _ => return Peer::Silent,
            }
        }
    };
    classify(&first[..n])
}

/// Names the protocol of a server's first bytes.
pub(crate) fn classify(bytes: &[u8]) -> Peer {
    match bytes {
        [b'+' | b'-', ..] => Peer::RedisPlaintext,
        // An HTTP status line, or (from servers that take `PING` for an HTTP/0.9 request) an HTML page.
        [b'H', b'T', b'T', b'P', b'/', ..] | [b'<', b'!' | b'h' | b'H', ..] => Peer::Http,
        // A TLS record: alert (21) or handshake (22), protocol version 3.x.
        [21 | 22, 3, ..] => Peer::Tls,
        // A MySQL packet: 3-byte length, sequence 0, protocol version 10 (or an error packet, 0xff).
        [_, _, _, 0, 10 | 0xff, ..] => Peer::MySql,
        _ => Peer::Other(
            bytes.iter().take(24).map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' }).collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_name_the_protocol() {
        assert_eq!(classify(b"+PONG\r\n"), Peer::RedisPlaintext);
        assert_eq!(classify(b"-NOAUTH Authentication required.\r\n"), Peer::RedisPlaintext);
        assert_eq!(classify(b"HTTP/1.0 400 Bad request\r\n"), Peer::Http);
        assert_eq!(classify(b"<!DOCTYPE HTML>\n<html lang"), Peer::Http);
        assert_eq!(classify(&[21, 3, 3, 0, 2, 2, 50]), Peer::Tls);
        assert_eq!(classify(b"\x5b\x00\x00\x00\x0a5.5.5-10.11.6-MariaDB"), Peer::MySql);
        assert_eq!(classify(b"\x01\x02hello"), Peer::Other("..hello".into()));
    }
}
