//! Saves that never lose another request's writes: optimistic concurrency with a merge on conflict.
//!
//! A load remembers what it read (the record's [`Version`]). A save is a compare-and-set: it writes only if the
//! stored session is still at that version, which is one round trip when nothing conflicts. When another request
//! wrote the session meanwhile, the store reloads it, applies this request's [`ChangeSet`] on top of what is stored
//! now ([`ChangeSet::apply`]) and tries again, at most [`MAX_SAVE_ATTEMPTS`] times ([`StoreError::Contended`]
//! after that). A store that reads the current session while checking (the Redis scripts) returns it with the
//! conflict, so a retry costs one round trip. A session deleted meanwhile (a logout, a `cycle_key`, a flush) is never written again:
//! [`StoreError::SessionVanished`]. `docs/concurrency.md` has the whole contract.
//!
//! A record without a version (never loaded) is merged with what is stored: the request's `changes` are applied
//! to the stored session, so keys it did not change keep their stored values. To replace the whole session, pass
//! [`ChangeSet::replacing`] (or save with [`SaveMode::LastWriteWins`]).
//!
//! Versions are compared as bytes (the Redis stores compare the whole stored value, the SQL stores the
//! `session_data` column): another request's write of identical bytes is not seen as a conflict, which is
//! harmless (the merge would give the same session), and nothing extra (a counter) has to be stored.
//!
//! A store provides the one primitive, [`CompareAndSet::write_if`], and its `save` calls [`save_merging`]:
//!
//! ```ignore
//! async fn save(&self, record: &SessionRecord, changes: &ChangeSet) -> Result<Saved, StoreError> {
//!     sessionkit::store::merge::save_merging(self, record, changes).await
//! }
//! ```

use async_trait::async_trait;

use super::SessionStore;
use crate::{ChangeSet, SaveMode, SessionRecord, StoreError, Version};

/// How many compare-and-set writes a save tries before [`StoreError::Contended`].
pub const MAX_SAVE_ATTEMPTS: usize = 10;

/// What a conditional write found.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOutcome {
    /// Written; the new version (`None` for a store that keeps none).
    Written(Option<Version>),
    /// The stored session is not at the expected version: another request wrote it. A store that read the
    /// session as it is now while checking (the Redis scripts return it) gives it here, as a load would, so the
    /// merge needs no second round trip; else `None`, and the session is loaded.
    Conflict(Option<SessionRecord>),
    /// No session is stored under the key (deleted or expired): it is never re-created.
    Vanished,
}

/// What a save stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    /// The version the store now holds, for a later save of the same request.
    pub version: Option<Version>,
    /// The session as stored, when it differs from what the request saved: another request's writes merged in.
    /// The request should go on with this data.
    pub merged: Option<SessionRecord>,
    /// How many compare-and-set writes the save took: 1 when nothing conflicted, one more per conflict (each
    /// after a reload).
    pub attempts: usize,
}

impl Saved {
    /// A save of exactly the request's data, in one write.
    pub fn written(version: Option<Version>) -> Self {
        Saved { version, merged: None, attempts: 1 }
    }
}

/// The primitive a store gives for merging saves.
#[async_trait]
pub trait CompareAndSet: SessionStore {
    /// Replaces the stored session under `record.key` with `record`, in one atomic step, only if it exists and,
    /// with `expected`, only if it is still at that version. `expected = None` replaces whatever is stored (the
    /// last-write-wins save of `merge=false`). `changes` are the request's, for stores that keep more than the
    /// session (the Redis per-user index looks at whether the login changed).
    async fn write_if(
        &self,
        record: &SessionRecord,
        expected: Option<&Version>,
        changes: &ChangeSet,
    ) -> Result<WriteOutcome, StoreError>;
}

/// A store's `save`: the request's record written with compare-and-set, merged with what other requests wrote
/// and retried on conflict; last-write-wins when `changes` says so.
pub async fn save_merging<S: CompareAndSet + ?Sized>(
    store: &S,
    record: &SessionRecord,
    changes: &ChangeSet,
) -> Result<Saved, StoreError> {
    let single_write = match (changes.mode(), &record.version) {
        (SaveMode::Merge, _) => None,
        (SaveMode::LastWriteWins, _) => Some(None),
        (SaveMode::CompareOnly, Some(version)) => Some(Some(version)),
        // Nothing loaded, nothing to compare with: writing would overwrite whatever is stored.
        (SaveMode::CompareOnly, None) => return Err(StoreError::Contended { attempts: 0 }),
    };
    if let Some(expected) = single_write {
        return match store.write_if(record, expected, changes).await? {
            WriteOutcome::Written(version) => Ok(Saved::written(version)),
            WriteOutcome::Vanished => Err(StoreError::SessionVanished),
            WriteOutcome::Conflict(_) => Err(StoreError::Contended { attempts: 1 }),
        };
    }
    // A record that was never loaded (a save after `clear()` without a load, a front-end that keeps no versions)
    // has nothing to compare with: merge with what is stored first.
    let mut attempt = match &record.version {
        Some(_) => None,
        None => Some(merge_with_stored(store, record, changes).await?),
    };
    for attempts in 1..=MAX_SAVE_ATTEMPTS {
        let current = attempt.as_ref().unwrap_or(record);
        match store.write_if(current, current.version.as_ref(), changes).await? {
            WriteOutcome::Written(version) => {
                let merged =
                    attempt.filter(|merged| merged.data != record.data || merged.expires_at != record.expires_at);
                return Ok(Saved { version, merged, attempts });
            }
            WriteOutcome::Vanished => return Err(StoreError::SessionVanished),
            // The last attempt lost: no pause and no reload for a write that will not be tried.
            WriteOutcome::Conflict(_) if attempts == MAX_SAVE_ATTEMPTS => break,
            WriteOutcome::Conflict(current) => {
                back_off(attempts).await;
                attempt = Some(match current {
                    Some(current) => changes.apply(&current, record),
                    None => merge_with_stored(store, record, changes).await?,
                });
            }
        }
    }
    Err(StoreError::Contended { attempts: MAX_SAVE_ATTEMPTS })
}

/// After the `attempts`-th write lost: nothing after the first two (a few requests racing, the usual case, merge at
/// once; a conflict costs one round trip where the store returns what it holds now); then a random pause of up to
/// 1 ms, 2 ms, 4 ms, … (64 ms at most), so many writers of one session stop colliding in lockstep. Measured with
/// `sessionkit-bench contention` (docs/performance.md): without the pauses, 50 workers on 5 sessions saved less
/// than half as often and gave up on 24 % of their saves instead of 9 %.
async fn back_off(attempts: usize) {
    if attempts < 3 {
        return;
    }
    let ceiling_us = 250u64 << (attempts - 1).min(8);
    let pause = rand::Rng::gen_range(&mut rand::thread_rng(), 0..ceiling_us);
    tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
}

/// This request's changes applied to the session as stored now; a session no longer stored has vanished.
async fn merge_with_stored<S: CompareAndSet + ?Sized>(
    store: &S,
    record: &SessionRecord,
    changes: &ChangeSet,
) -> Result<SessionRecord, StoreError> {
    let stored = store.load(&record.key).await?.ok_or(StoreError::SessionVanished)?;
    Ok(changes.apply(&stored, record))
}
