//! The local half of `client_cache=on`: the sessions this process has read or written, kept by Redis key (and
//! hash field), answered without a round trip while Redis says nobody else changed them (see
//! [`tracking`](super::tracking) for the connection that receives Redis's invalidation messages).
//!
//! Filling the cache races with invalidations: a value read from Redis may be overtaken by another process's
//! write whose invalidation arrives before the value is stored here. Every fill therefore starts with a
//! [`reserve`](ClientCache::reserve) that leaves a marker under the address *before* the command is sent; an
//! invalidation of the key removes the marker, and [`fill`](Reservation::fill) stores the value only if its own
//! marker is still there (the scheme the Redis documentation describes for client-side caching).
//!
//! The cache is bounded by `client_cache_size` entries; when full, arbitrary entries make room (the map's
//! iteration order is randomised per process, so this is random eviction).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use time::OffsetDateTime;

use crate::SessionRecord;

/// Sessions of one Redis key: the whole key (`string`, `django-cache`: field `b""`) or fields of a bucket hash.
type Fields = HashMap<Vec<u8>, Slot>;

#[derive(Debug)]
enum Slot {
    /// A read or write of this address is in flight; its value may be stored when it completes.
    Reserved(u64),
    /// The session as Redis holds it.
    Ready(SessionRecord),
}

#[derive(Debug, Default)]
struct Entries {
    keys: HashMap<Vec<u8>, Fields>,
    count: usize,
    next_token: u64,
}

/// A reservation made by [`ClientCache::reserve`]: [`fill`](Reservation::fill) it, or drop it to give the
/// address up (a read that found nothing, failed, or was cancelled).
#[derive(Debug)]
pub(crate) struct Reservation<'a> {
    cache: &'a ClientCache,
    key: Vec<u8>,
    field: Vec<u8>,
    token: u64,
}

impl Reservation<'_> {
    /// Stores `record` under the reserved address if the reservation still holds it.
    pub(crate) fn fill(self, record: SessionRecord) {
        let mut entries = self.cache.lock();
        if let Some(slot) = entries.keys.get_mut(&self.key).and_then(|f| f.get_mut(&self.field)) {
            if matches!(slot, Slot::Reserved(token) if *token == self.token) {
                *slot = Slot::Ready(record);
            }
        }
    }
}

impl Drop for Reservation<'_> {
    /// Removes the reservation if it is still there unfilled.
    fn drop(&mut self) {
        let mut entries = self.cache.lock();
        let held = entries
            .keys
            .get(&self.key)
            .and_then(|f| f.get(&self.field))
            .is_some_and(|slot| matches!(slot, Slot::Reserved(token) if *token == self.token));
        if held {
            ClientCache::remove_locked(&mut entries, &self.key, &self.field);
        }
    }
}

/// Sessions cached in this process, by Redis address.
#[derive(Debug)]
pub(crate) struct ClientCache {
    entries: Mutex<Entries>,
    capacity: usize,
}

impl ClientCache {
    /// An empty cache holding at most `capacity` sessions (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        ClientCache { entries: Mutex::new(Entries::default()), capacity: capacity.max(1) }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // The map is consistent after every statement that changes it, so a panic elsewhere cannot poison it.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached session at `key`/`field`, if one is cached and has not expired.
    pub(crate) fn get(&self, key: &[u8], field: &[u8]) -> Option<SessionRecord> {
        let entries = self.lock();
        match entries.keys.get(key)?.get(field)? {
            Slot::Ready(record) if record.expires_at > OffsetDateTime::now_utc() => Some(record.clone()),
            Slot::Ready(_) | Slot::Reserved(_) => None,
        }
    }

    /// Marks `key`/`field` as being read (dropping what was cached there): only this reservation may fill it, and
    /// only if no invalidation of the key arrives first.
    pub(crate) fn reserve(&self, key: &[u8], field: &[u8]) -> Reservation<'_> {
        let mut entries = self.lock();
        entries.next_token += 1;
        let token = entries.next_token;
        let fields = entries.keys.entry(key.to_vec()).or_default();
        let added = fields.insert(field.to_vec(), Slot::Reserved(token)).is_none();
        if added {
            entries.count += 1;
            if entries.count > self.capacity {
                Self::make_room(&mut entries, self.capacity, key);
            }
        }
        Reservation { cache: self, key: key.to_vec(), field: field.to_vec(), token }
    }

    /// Forgets one address (this process changed it outside the cache).
    pub(crate) fn remove(&self, key: &[u8], field: &[u8]) {
        Self::remove_locked(&mut self.lock(), key, field);
    }

    /// Forgets every session under `key` (Redis says the key changed), reservations included.
    pub(crate) fn invalidate(&self, key: &[u8]) {
        let mut entries = self.lock();
        if let Some(fields) = entries.keys.remove(key) {
            entries.count -= fields.len();
        }
    }

    /// Forgets everything (the connection that receives invalidations was lost, or the database was flushed).
    pub(crate) fn clear(&self) {
        let mut entries = self.lock();
        entries.keys.clear();
        entries.count = 0;
    }

    /// Number of addresses cached or reserved.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().count
    }

    fn remove_locked(entries: &mut Entries, key: &[u8], field: &[u8]) {
        let Some(fields) = entries.keys.get_mut(key) else { return };
        if fields.remove(field).is_some() {
            entries.count -= 1;
        }
        if fields.is_empty() {
            entries.keys.remove(key);
        }
    }

    /// Drops arbitrary keys (never `keep`, the one being reserved) until a tenth of the capacity is free.
    fn make_room(entries: &mut Entries, capacity: usize, keep: &[u8]) {
        let target = capacity - capacity / 10;
        let victims: Vec<Vec<u8>> = {
            let mut remaining = entries.count;
            entries
                .keys
                .iter()
                .filter(|(key, _)| key.as_slice() != keep)
                .take_while(|(_, fields)| {
                    let keep_going = remaining > target;
                    remaining = remaining.saturating_sub(fields.len());
                    keep_going
                })
                .map(|(key, _)| key.clone())
                .collect()
        };
        for key in victims {
            if let Some(fields) = entries.keys.remove(&key) {
                entries.count -= fields.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::SessionKey;

    fn record(visits: i64) -> SessionRecord {
        let mut data = serde_json::Map::new();
        data.insert("visits".into(), visits.into());
        SessionRecord {
            key: SessionKey::generate(),
            data,
            expires_at: OffsetDateTime::now_utc() + time::Duration::hours(1),
            version: None,
        }
    }

    #[test]
    fn a_fill_is_kept_only_while_its_reservation_holds() {
        let cache = ClientCache::new(100);
        let first = cache.reserve(b"k", b"");
        first.fill(record(1));
        assert_eq!(cache.get(b"k", b"").unwrap().data["visits"], 1);

        // An invalidation between the command and its reply: the reply must not be cached.
        let second = cache.reserve(b"k", b"");
        assert!(cache.get(b"k", b"").is_none(), "a reservation hides what was cached");
        cache.invalidate(b"k");
        second.fill(record(2));
        assert!(cache.get(b"k", b"").is_none());

        // A newer reservation wins over an older one.
        let old = cache.reserve(b"k", b"");
        let new = cache.reserve(b"k", b"");
        old.fill(record(3));
        assert!(cache.get(b"k", b"").is_none());
        new.fill(record(4));
        assert_eq!(cache.get(b"k", b"").unwrap().data["visits"], 4);
    }

    #[test]
    fn invalidating_a_bucket_forgets_all_its_fields_and_a_dropped_reservation_frees_the_slot() {
        let cache = ClientCache::new(100);
        for field in [b"a", b"b"] {
            cache.reserve(b"bucket", field).fill(record(1));
        }
        cache.reserve(b"other", b"").fill(record(1));
        assert_eq!(cache.len(), 3);
        cache.invalidate(b"bucket");
        assert!(cache.get(b"bucket", b"a").is_none() && cache.get(b"bucket", b"b").is_none());
        assert_eq!(cache.len(), 1);
        drop(cache.reserve(b"gone", b""));
        cache.remove(b"other", b"");
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn expired_sessions_are_not_answered_and_the_size_is_bounded() {
        let cache = ClientCache::new(10);
        let mut expired = record(1);
        expired.expires_at = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        cache.reserve(b"old", b"").fill(expired);
        assert!(cache.get(b"old", b"").is_none());
        for i in 0..100u32 {
            cache.reserve(&i.to_be_bytes(), b"").fill(record(i.into()));
        }
        assert!(cache.len() <= 10, "{} entries", cache.len());
        cache.clear();
        assert_eq!(cache.len(), 0);
    }
}
