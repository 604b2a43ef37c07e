//! The conformance suite on the in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use sessionkit::conformance::Harness;
use sessionkit::store::memory::MemoryStore;
use sessionkit::{SessionKey, SessionStore, Settings};
use time::{Duration, OffsetDateTime};

struct MemoryHarness {
    store: Arc<MemoryStore>,
    settings: Arc<Settings>,
}

#[async_trait::async_trait]
impl Harness for MemoryHarness {
    fn store(&self) -> Arc<dyn SessionStore> {
        self.store.clone()
    }
    fn settings(&self) -> Arc<Settings> {
        self.settings.clone()
    }
    async fn plant_corrupt(&self, key: &SessionKey) -> bool {
        self.store.insert_raw(
            key.clone(),
            b"{\"truncated\": [1, 2".to_vec(),
            OffsetDateTime::now_utc() + Duration::hours(1),
        );
        true
    }
}

sessionkit::conformance_suite!(async {
    MemoryHarness { store: Arc::new(MemoryStore::new()), settings: Arc::new(Settings::default()) }
});
