//! The session every benchmark stores: a realistic Django login session of about 300 bytes of JSON, and the
//! helper that writes many of them concurrently.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{Map, Value};
use sessionkit::{Session, SessionKey, SessionStore, Settings};
use tokio::task::JoinSet;

use crate::BenchError;

/// `_auth_user_id` of the first user; with `users` distinct users, session `i` belongs to `FIRST_USER_ID + i % users`.
pub const FIRST_USER_ID: u64 = 12345;

pub use crate::login::{login_session, VISITS_KEY};

/// Size of a session dict as compact JSON (what the `string` and `hash` layouts store before their 6-byte header).
pub fn json_size(data: &Map<String, Value>) -> usize {
    serde_json::to_vec(data).map(|bytes| bytes.len()).unwrap_or(0)
}

/// What [`create_sessions`] wrote.
#[derive(Debug, Clone)]
pub struct Created {
    /// The keys of the sessions written, in no particular order (only the first one unless `keep_keys` was set).
    pub keys: Vec<SessionKey>,
    /// How many sessions were written.
    pub count: usize,
}

/// Writes `count` new [`login_session`]s through [`Session::save`] (so through the store's `create`, exactly as a
/// login does), from `concurrency` tasks. Stops at the first error and returns it.
pub async fn create_sessions(
    store: Arc<dyn SessionStore>,
    settings: Arc<Settings>,
    count: usize,
    concurrency: usize,
    users: u64,
    keep_keys: bool,
) -> Result<Created, BenchError> {
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let users = users.max(1);
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency.clamp(1, count.max(1)) {
        let (store, settings, next, failed) =
            (Arc::clone(&store), Arc::clone(&settings), Arc::clone(&next), Arc::clone(&failed));
        tasks.spawn(async move {
            let mut rng = StdRng::from_entropy();
            let mut keys = Vec::new();
            let mut written = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || failed.load(Ordering::Relaxed) {
                    return Ok((keys, written));
                }
                let mut session = Session::new(Arc::clone(&store), Arc::clone(&settings), None);
                let data = login_session(&mut rng, FIRST_USER_ID + i as u64 % users);
                let outcome = async {
                    session.update(data).await?;
                    session.save().await
                }
                .await;
                if let Err(err) = outcome {
                    failed.store(true, Ordering::Relaxed);
                    return Err(BenchError(format!("creating session {i} failed: {err}")));
                }
                written += 1;
                if keep_keys || keys.is_empty() {
                    if let Some(key) = session.key() {
                        keys.push(key.clone());
                    }
                }
            }
        });
    }
    let mut created = Created { keys: Vec::new(), count: 0 };
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok((keys, written))) => {
                if keep_keys || created.keys.is_empty() {
                    created.keys.extend(keys);
                }
                created.count += written;
            }
            Ok(Err(err)) => {
                first_error.get_or_insert(err);
            }
            Err(err) => {
                first_error.get_or_insert(BenchError(format!("a writer task failed: {err}")));
            }
        }
    }
    match first_error {
        Some(err) => Err(err),
        None if created.keys.is_empty() && count > 0 => {
            Err(BenchError("the store returned no key for the sessions it created".into()))
        }
        None => Ok(created),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_session_is_about_300_bytes_and_has_the_django_keys() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..100 {
            let data = login_session(&mut rng, FIRST_USER_ID);
            let size = json_size(&data);
            assert!((290..=340).contains(&size), "{size}");
            assert_eq!(data["_auth_user_id"], "12345");
            assert_eq!(data["_auth_user_hash"].as_str().map(str::len), Some(64));
            assert_eq!(data["_csrftoken"].as_str().map(str::len), Some(64));
            assert!(data[VISITS_KEY].is_i64());
        }
    }
}
