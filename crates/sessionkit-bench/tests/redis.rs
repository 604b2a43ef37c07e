//! Short runs of both benchmarks against a throwaway redis-server.

use std::time::Duration;

use sessionkit::store::redis::RedisStore;
use sessionkit_bench::cycles::{run_cycles, CyclesOptions, MetricsMode};
use sessionkit_bench::memory::{run_memory, MemoryOptions};
use sessionkit_testsupport::Standalone;

/// A throwaway server with the listpack limits `scripts/bench-redis` uses.
fn server() -> Result<Standalone, String> {
    let server = Standalone::start().map_err(|e| format!("redis-server starts (scripts/test installs it): {e}"))?;
    for (name, value) in [("hash-max-listpack-entries", "512"), ("hash-max-listpack-value", "1024")] {
        let reply = server.server.command(&["CONFIG", "SET", name, value]).map_err(|e| e.to_string())?;
        if !reply.starts_with("+OK") {
            return Err(format!("CONFIG SET {name}: {reply}"));
        }
    }
    Ok(server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_load_modify_and_save_existing_sessions_only() {
    let server = server().expect("server");
    for (layout, extra) in [("string", ""), ("hash", "&buckets=4"), ("django-cache", "&key_prefix=bench")] {
        let url = format!("{}/?layout={layout}&user_index=false&prefix=c{layout}:{extra}", server.url());
        let options = CyclesOptions {
            store_url: url.clone(),
            workers: 8,
            duration: Duration::from_millis(500),
            warmup: Duration::from_millis(100),
            sessions: 200,
            users: 1,
            metrics: MetricsMode::default(),
        };
        let report = run_cycles(&options).await.expect("cycles run");
        assert_eq!(report.errors, 0, "{layout}: {report}");
        assert!(report.cycles > 50, "{layout}: {report}");
        assert!(report.ops_per_sec() > 0.0 && report.quantile_us(0.5) > 0, "{layout}: {report}");
        assert!(report.quantile_us(0.5) <= report.quantile_us(0.99), "{layout}: {report}");
        // 339 bytes as JSON; the hash layout compresses it (zstd with the session dictionary) to about 195.
        assert!((150..=360).contains(&report.value_bytes), "{layout}: {report}");
        assert_eq!(report.store.layout, layout);
        let json = report.to_json();
        assert_eq!(json["cycles"], report.cycles);
        assert_eq!(json["errors"], 0);
        // Cycles only update: no session was created on the way.
        let store = RedisStore::connect(&url).await.expect("connect");
        assert_eq!(store.count().await.expect("count"), 200, "{layout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_counts_bytes_per_session_and_bucket_encodings() {
    let server = server().expect("server");
    let options = MemoryOptions {
        store_url: format!("{}/?layout=hash&buckets=10&user_index=false", server.url()),
        sessions: 2000,
        concurrency: 16,
        users: 2000,
    };
    let report = run_memory(&options).await.expect("memory run");
    assert_eq!(report.sessions, 2000);
    assert_eq!(report.keys_before, 0);
    let per_session = report.bytes_per_session();
    assert!(per_session > report.value_bytes as f64 && per_session < 1000.0, "{report}");
    let buckets = report.buckets.clone().expect("bucket stats for the hash layout");
    assert_eq!((buckets.buckets, buckets.listpack), (10, 10), "{report}");
    assert!(buckets.min_fields > 0 && buckets.max_fields < 512, "{report}");
    assert_eq!(report.sample_encoding.as_deref(), Some("listpack"));
    assert_eq!(report.listpack_limits, Some((512, 1024)));

    // A second run on the same server (another prefix) notices the keys already there: 10 buckets and the first
    // run's layout record.
    let url = format!("{}/?layout=string&user_index=false&prefix=second:", server.url());
    let options = MemoryOptions { store_url: url, ..options };
    let report = run_memory(&options).await.expect("memory run");
    assert_eq!(report.keys_before, 11);
    assert!(report.buckets.is_none());
    assert!(report.bytes_per_session() > report.value_bytes as f64, "{report}");
}

#[tokio::test]
async fn memory_refuses_what_it_cannot_measure() {
    let options = MemoryOptions {
        store_url: "redis+cluster://127.0.0.1:1,127.0.0.1:2".into(),
        sessions: 10,
        concurrency: 1,
        users: 1,
    };
    let err = run_memory(&options).await.expect_err("cluster refused");
    assert!(err.0.contains("standalone"), "{err}");
    let options = MemoryOptions { store_url: "memory://".into(), ..options };
    assert!(run_memory(&options).await.is_err());
}
