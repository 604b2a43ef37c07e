//! The conformance suite on the Redis store: every layout on standalone Redis, Sentinel and Cluster, each against
//! real `redis-server` processes started for this test binary (see sessionkit-testsupport).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sessionkit::conformance::Harness;
use sessionkit::store::redis::RedisStore;
use sessionkit::{SessionKey, SessionStore, Settings};
use sessionkit_testsupport::{
    cluster_url, shared_cluster as cluster, shared_sentinel as sentinel, shared_standalone as standalone, Sentinel,
};

#[derive(Clone, Copy)]
enum Topology {
    Standalone,
    Sentinel,
    Cluster,
}

/// A URL for `topology` with `options`, under a prefix no other test uses.
fn url(topology: Topology, options: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let base = match topology {
        Topology::Standalone => standalone().url(),
        Topology::Sentinel => format!("redis+sentinel://{}/{}", sentinel().sentinel_addr(), Sentinel::MASTER_NAME),
        Topology::Cluster => cluster_url(cluster()),
    };
    format!("{base}?prefix=t{pid}x{n}:&key_prefix=t{pid}x{n}&{options}")
}

struct RedisHarness {
    store: Arc<RedisStore>,
    settings: Arc<Settings>,
}

impl RedisHarness {
    async fn new(topology: Topology, options: &str) -> Self {
        let store = RedisStore::connect(&url(topology, options)).await.expect("connect");
        RedisHarness { store: Arc::new(store), settings: Arc::new(Settings::with_secret_key("redis-conformance")) }
    }
}

#[async_trait::async_trait]
impl Harness for RedisHarness {
    fn store(&self) -> Arc<dyn SessionStore> {
        self.store.clone()
    }
    fn settings(&self) -> Arc<Settings> {
        self.settings.clone()
    }
    async fn plant_corrupt(&self, key: &SessionKey) -> bool {
        // A header that says "valid for an hour" followed by broken JSON, or broken pickle for django-cache.
        let expiry =
            (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600) as u32;
        let mut bytes = vec![1u8, 0];
        bytes.extend_from_slice(&expiry.to_be_bytes());
        bytes.extend_from_slice(b"{\"broken\": [");
        if self.store.options().layout == sessionkit::store::redis::config::Layout::DjangoCache {
            bytes = b"\x80\x05\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\xff".to_vec();
        }
        self.store.put_raw(key, &bytes, 3_600_000).await.unwrap();
        true
    }
    fn expires_natively(&self) -> bool {
        self.store.options().layout != sessionkit::store::redis::config::Layout::Hash
    }
}

macro_rules! redis_suite {
    ($name:ident, $topology:expr, $options:expr) => {
        mod $name {
            use super::*;
            sessionkit::conformance_suite!(RedisHarness::new($topology, $options));
        }
    };
}

redis_suite!(standalone_string, Topology::Standalone, "layout=string");
redis_suite!(
    standalone_string_hashed_lz4,
    Topology::Standalone,
    "layout=string&hashed_keys=1&compression=lz4&compress_min_bytes=0"
);
redis_suite!(standalone_hash, Topology::Standalone, "layout=hash&buckets=8");
redis_suite!(
    standalone_hash_hashed_zstd,
    Topology::Standalone,
    "layout=hash&buckets=4&hashed_keys=1&compress_min_bytes=0"
);
redis_suite!(standalone_django_cache, Topology::Standalone, "layout=django-cache");
redis_suite!(sentinel_string, Topology::Sentinel, "layout=string&compress_min_bytes=0");
redis_suite!(sentinel_hash, Topology::Sentinel, "layout=hash&buckets=8");
redis_suite!(sentinel_django_cache, Topology::Sentinel, "layout=django-cache&client=django-redis");
redis_suite!(cluster_string, Topology::Cluster, "layout=string&hashed_keys=1");
redis_suite!(cluster_hash, Topology::Cluster, "layout=hash&buckets=16&compression=lz4&compress_min_bytes=0");
redis_suite!(cluster_django_cache, Topology::Cluster, "layout=django-cache&client=django-redis&compressor=zlib");
redis_suite!(standalone_string_client_cache, Topology::Standalone, "layout=string&client_cache=on");
redis_suite!(standalone_hash_client_cache, Topology::Standalone, "layout=hash&buckets=8&client_cache=on");
redis_suite!(standalone_django_cache_client_cache, Topology::Standalone, "layout=django-cache&client_cache=on");
