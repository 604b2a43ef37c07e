//! `manage.py sessionkit doctor` and the server part of `stats`: a few `INFO` / `CONFIG GET` checks of the Redis
//! server a store uses.
//!
//! Deliberately modest: standalone servers only (Sentinel and Cluster are reported as skipped), one connection of
//! its own per call, and every check that needs `CONFIG` rights is skipped (not failed) on a managed Redis that
//! refuses `CONFIG`.

use std::collections::BTreeMap;

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use sessionkit::store::redis::config::{Layout, RedisOptions, Topology};

/// One finding: status (`ok`, `warn`, `error`, `skip`), the check's name, and a sentence.
pub type Check = (&'static str, &'static str, String);

async fn connect(options: &RedisOptions) -> Result<MultiplexedConnection, String> {
    let Topology::Standalone { url } = &options.topology else {
        return Err("only standalone Redis is checked (Sentinel and Cluster: check each server)".into());
    };
    let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(options.connect_timeout))
        .set_response_timeout(Some(options.timeout));
    client.get_multiplexed_async_connection_with_config(&config).await.map_err(|e| e.to_string())
}

/// `INFO` as `field → value` (all default sections).
async fn info(conn: &mut MultiplexedConnection) -> Result<BTreeMap<String, String>, String> {
    let text: String = redis::cmd("INFO").query_async(conn).await.map_err(|e| e.to_string())?;
    Ok(text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

/// `CONFIG GET pattern` as pairs, or the refusal.
async fn config_get(conn: &mut MultiplexedConnection, pattern: &str) -> Result<BTreeMap<String, String>, String> {
    let flat: Vec<String> =
        redis::cmd("CONFIG").arg("GET").arg(pattern).query_async(conn).await.map_err(|e| e.to_string())?;
    Ok(flat.chunks(2).filter_map(|pair| Some((pair.first()?.clone(), pair.get(1)?.clone()))).collect())
}

fn version_tuple(version: &str) -> (u32, u32) {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Server facts for `stats`: version, memory, clients, keyspace.
pub async fn server_stats(options: &RedisOptions) -> Result<BTreeMap<String, String>, String> {
    let mut conn = connect(options).await?;
    let all = info(&mut conn).await?;
    let wanted = [
        "redis_version",
        "used_memory",
        "used_memory_human",
        "maxmemory_human",
        "connected_clients",
        "uptime_in_seconds",
    ];
    let mut out: BTreeMap<String, String> = all
        .iter()
        .filter(|(k, _)| wanted.contains(&k.as_str()) || k.starts_with("db"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.retain(|k, _| !k.starts_with("db") || k[2..].bytes().all(|b| b.is_ascii_digit()));
    Ok(out)
}

/// The checks of `doctor`.
pub async fn doctor(options: &RedisOptions) -> Vec<Check> {
    let mut checks: Vec<Check> = Vec::new();
    let mut conn = match connect(options).await {
        Ok(conn) => conn,
        Err(err) if !matches!(options.topology, Topology::Standalone { .. }) => {
            checks.push(("skip", "server", err));
            return checks;
        }
        Err(err) => {
            checks.push(("error", "connection", format!("cannot connect: {err}")));
            return checks;
        }
    };
    let started = std::time::Instant::now();
    match redis::cmd("PING").query_async::<String>(&mut conn).await {
        Ok(_) => checks.push((
            "ok",
            "connection",
            format!("PING answered in {:.2} ms", started.elapsed().as_secs_f64() * 1e3),
        )),
        Err(err) => {
            checks.push(("error", "connection", format!("PING failed: {err}")));
            return checks;
        }
    }
    let info = info(&mut conn).await.unwrap_or_default();
    let version = info.get("redis_version").cloned().unwrap_or_default();
    let has_hexpire = version_tuple(&version) >= (7, 4);
    match (options.layout, has_hexpire) {
        (Layout::Hash, false) => checks.push((
            "warn",
            "version",
            format!(
                "Redis {version} has no HPEXPIREAT (7.4+): expired sessions of the hash layout stay until \
                 `manage.py clearsessions` sweeps them; run it from cron"
            ),
        )),
        _ => checks.push(("ok", "version", format!("Redis {version}"))),
    }

    match config_get(&mut conn, "maxmemory*").await {
        Err(err) => checks.push(("skip", "maxmemory-policy", format!("CONFIG GET refused: {err}"))),
        Ok(config) => {
            let maxmemory: u64 = config.get("maxmemory").and_then(|v| v.parse().ok()).unwrap_or(0);
            let policy = config.get("maxmemory-policy").cloned().unwrap_or_default();
            if maxmemory > 0 && policy != "noeviction" {
                checks.push((
                    "warn",
                    "maxmemory-policy",
                    format!(
                        "maxmemory is set and maxmemory-policy is {policy}: when memory is full Redis evicts \
                         sessions (users are logged out); use noeviction for a session server"
                    ),
                ));
            } else {
                checks.push(("ok", "maxmemory-policy", format!("{policy} (maxmemory {maxmemory})")));
            }
        }
    }

    let save = config_get(&mut conn, "save").await;
    let appendonly = config_get(&mut conn, "appendonly").await;
    match (save, appendonly) {
        (Ok(save), Ok(aof)) => {
            let rdb = save.get("save").is_some_and(|v| !v.trim().is_empty());
            let aof = aof.get("appendonly").is_some_and(|v| v == "yes");
            if rdb || aof {
                checks.push((
                    "ok",
                    "persistence",
                    format!("RDB snapshots {}, AOF {}", if rdb { "on" } else { "off" }, if aof { "on" } else { "off" }),
                ));
            } else {
                checks.push((
                    "warn",
                    "persistence",
                    "neither RDB snapshots nor AOF: a Redis restart logs every user out".to_owned(),
                ));
            }
        }
        (Err(err), _) | (_, Err(err)) => checks.push(("skip", "persistence", format!("CONFIG GET refused: {err}"))),
    }

    if options.layout == Layout::Hash {
        match config_get(&mut conn, "hash-max-listpack-*").await {
            Err(err) => checks.push(("skip", "listpack", format!("CONFIG GET refused: {err}"))),
            Ok(config) => {
                let value: u64 = config.get("hash-max-listpack-value").and_then(|v| v.parse().ok()).unwrap_or(0);
                let entries: u64 = config.get("hash-max-listpack-entries").and_then(|v| v.parse().ok()).unwrap_or(0);
                if value < 512 || entries < 400 {
                    checks.push((
                        "warn",
                        "listpack",
                        format!(
                            "hash-max-listpack-value {value} / hash-max-listpack-entries {entries}: the hash layout \
                             saves memory only with value >= 1024 and entries >= 512 (docs/redis.md)"
                        ),
                    ));
                } else {
                    checks.push(("ok", "listpack", format!("value {value}, entries {entries}")));
                }
            }
        }
    }
    checks
}
