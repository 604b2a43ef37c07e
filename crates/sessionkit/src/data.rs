//! The session dictionary and the record of what a request changed in it.

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::expiry::EXPIRY_KEY;
use crate::SessionRecord;

/// What happened to one key during a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChange {
    /// The key was set (its new value is in the session data).
    Set,
    /// The key was removed.
    Removed,
}

/// The keys a request changed, in the order it changed them.
///
/// The change set travels with every save: when another request wrote the session since this one loaded it, the
/// store applies only this request's changes on top of what is stored now ([`ChangeSet::apply`]) instead of
/// letting the last writer win (`docs/concurrency.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    cleared: bool,
    keys: IndexMap<String, KeyChange>,
    mode: SaveMode,
}

/// How a save meets a session another request wrote since it was loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SaveMode {
    /// This request's changes are applied to what is stored now (the default).
    #[default]
    Merge,
    /// The whole session as this request sees it replaces what is stored, as Django saves (`merge=false`).
    LastWriteWins,
    /// The save is made only if nobody wrote since the load; else it fails ([`crate::StoreError::Contended`]) and
    /// nothing is written. For a copy that must never overwrite a newer one (cached_db's cache).
    CompareOnly,
}

impl ChangeSet {
    /// The changes of a request that cleared the whole session and set nothing.
    pub fn everything_cleared() -> Self {
        ChangeSet { cleared: true, ..ChangeSet::default() }
    }

    /// The same changes, saved as Django saves them: the whole session as this request sees it replaces what is
    /// stored, whatever another request wrote meanwhile (the store's `merge=false` option).
    #[must_use]
    pub fn with_last_write_wins(self) -> Self {
        self.with_mode(SaveMode::LastWriteWins)
    }

    /// The same changes, saved with the given [`SaveMode`].
    #[must_use]
    pub fn with_mode(mut self, mode: SaveMode) -> Self {
        self.mode = mode;
        self
    }

    /// How the save meets another request's writes.
    pub fn mode(&self) -> SaveMode {
        self.mode
    }

    /// The session after this request's changes are applied to `stored`, the session as stored now: a clear
    /// empties it first, then each changed key takes this request's value from `request` (or is removed), in the
    /// order of the changes; every other key keeps the stored value. A key already stored keeps its place, a new
    /// one goes last, as in a Python dict.
    ///
    /// The expiry is this request's (`request.expires_at`, computed when it saved) when the merged session's
    /// `_session_expiry` is the one this request had, else the stored one: a request that did not touch the
    /// expiry does not undo another's `set_expiry`. The version is the stored one, for the next compare-and-set.
    pub fn apply(&self, stored: &SessionRecord, request: &SessionRecord) -> SessionRecord {
        let mut data = if self.cleared { Map::new() } else { stored.data.clone() };
        for (key, change) in &self.keys {
            match (change, request.data.get(key)) {
                (KeyChange::Set, Some(value)) => {
                    data.insert(key.clone(), value.clone());
                }
                (KeyChange::Set, None) | (KeyChange::Removed, _) => {
                    data.shift_remove(key);
                }
            }
        }
        let expires_at =
            if data.get(EXPIRY_KEY) == request.data.get(EXPIRY_KEY) { request.expires_at } else { stored.expires_at };
        SessionRecord { key: request.key.clone(), data, expires_at, version: stored.version.clone() }
    }

    /// The changes that turn `loaded` into `current`: keys whose value differs (compared whole, so a nested value
    /// changed in place counts) or that are new are set, keys gone are removed. For front-ends that keep the
    /// session in a form that does not record changes (a Python dict).
    pub fn between(loaded: &Map<String, Value>, current: &Map<String, Value>) -> Self {
        let mut changes = ChangeSet::default();
        for (key, value) in current {
            if loaded.get(key) != Some(value) {
                changes.record(key, KeyChange::Set);
            }
        }
        for key in loaded.keys() {
            if !current.contains_key(key) {
                changes.record(key, KeyChange::Removed);
            }
        }
        changes
    }

    /// Marks the session as cleared (the request removed every key, including ones stored by other requests since
    /// it loaded), keeping the changes recorded after that.
    pub fn mark_cleared(&mut self) {
        self.cleared = true;
    }

    /// The changes of a request that replaced the whole session with `data`: a clear, then every key set. Applied
    /// to any stored session it gives `data`; for a session this request never loaded.
    pub fn replacing(data: &Map<String, Value>) -> Self {
        let mut changes = ChangeSet::everything_cleared();
        for key in data.keys() {
            changes.record(key, KeyChange::Set);
        }
        changes
    }

    /// True when nothing was changed.
    pub fn is_empty(&self) -> bool {
        !self.cleared && self.keys.is_empty()
    }

    /// True when the whole session was cleared (every key that existed before is gone).
    pub fn cleared(&self) -> bool {
        self.cleared
    }

    /// The changed keys, in the order of their last change.
    pub fn iter(&self) -> impl Iterator<Item = (&str, KeyChange)> + '_ {
        self.keys.iter().map(|(k, c)| (k.as_str(), *c))
    }

    /// What happened to `key`, if anything.
    pub fn get(&self, key: &str) -> Option<KeyChange> {
        self.keys.get(key).copied()
    }

    fn record(&mut self, key: &str, change: KeyChange) {
        // Re-insert so the order reflects the last change.
        self.keys.shift_remove(key);
        self.keys.insert(key.to_owned(), change);
    }
}

/// A session's data: an insertion-ordered map of JSON values, as Django's session dict is.
///
/// Every mutation is recorded in a [`ChangeSet`]. Reading never changes anything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionData {
    map: Map<String, Value>,
    changes: ChangeSet,
}

impl SessionData {
    /// Empty data with no changes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Data as loaded from a store: no changes recorded yet.
    pub fn from_map(map: Map<String, Value>) -> Self {
        SessionData { map, changes: ChangeSet::default() }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    /// True when `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Sets `key`, returning the previous value. A new key goes to the end, an existing one keeps its place
    /// (as in a Python dict).
    pub fn insert(&mut self, key: impl Into<String>, value: Value) -> Option<Value> {
        let key = key.into();
        self.changes.record(&key, KeyChange::Set);
        self.map.insert(key, value)
    }

    /// Removes `key`, returning its value. Removing an absent key records nothing.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let old = self.map.shift_remove(key);
        if old.is_some() {
            self.changes.record(key, KeyChange::Removed);
        }
        old
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.map.clear();
        self.changes.keys.clear();
        self.changes.cleared = true;
    }

    /// Replaces the whole map with what the store holds after a merged save, recording no change.
    pub(crate) fn replace_saved(&mut self, map: Map<String, Value>) {
        self.map = map;
        self.changes = ChangeSet::default();
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Keys in insertion order.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.map.keys().map(String::as_str)
    }

    /// Pairs in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> + '_ {
        self.map.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The whole map, for encoding.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.map
    }

    /// Consumes the data, returning the map.
    pub fn into_map(self) -> Map<String, Value> {
        self.map
    }

    /// Moves the map out (to hand it to a store without copying); [`SessionData::put_map`] puts it back.
    pub(crate) fn take_map(&mut self) -> Map<String, Value> {
        std::mem::take(&mut self.map)
    }

    /// Puts back a map taken with [`SessionData::take_map`]. Records no change.
    pub(crate) fn put_map(&mut self, map: Map<String, Value>) {
        self.map = map;
    }

    /// What was changed since the data was loaded (or since [`SessionData::reset_changes`]).
    pub fn changes(&self) -> &ChangeSet {
        &self.changes
    }

    /// Forgets the recorded changes (after a successful save).
    pub fn reset_changes(&mut self) {
        self.changes = ChangeSet::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_insertion_order_like_a_python_dict() {
        let mut data = SessionData::new();
        data.insert("b", json!(1));
        data.insert("a", json!(2));
        data.insert("c", json!(3));
        data.insert("b", json!(4)); // existing key keeps its place
        assert_eq!(data.keys().collect::<Vec<_>>(), ["b", "a", "c"]);
        data.remove("b");
        data.insert("b", json!(5)); // re-added key goes last
        assert_eq!(data.keys().collect::<Vec<_>>(), ["a", "c", "b"]);
    }

    fn record(pairs: Value, expiry_secs: i64) -> SessionRecord {
        let Value::Object(data) = pairs else { panic!("not an object") };
        let at = time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(expiry_secs);
        SessionRecord::new(crate::SessionKey::parse("abcdefgh12345678").unwrap(), data, at)
    }

    #[test]
    fn apply_puts_this_requests_keys_on_what_is_stored() {
        let loaded = record(json!({"a": 1, "b": 2, "gone": 0}), 100);
        let mut data = SessionData::from_map(loaded.data.clone());
        data.insert("b", json!(20));
        data.insert("new", json!("x"));
        data.remove("gone");
        let request = SessionRecord { data: data.as_map().clone(), ..record(json!({}), 200) };
        // Meanwhile another request set `c`, changed `a` and re-added `gone`.
        let stored = record(json!({"a": 10, "b": 2, "gone": 5, "c": 3}), 150);
        let merged = data.changes().apply(&stored, &request);
        assert_eq!(Value::Object(merged.data.clone()), json!({"a": 10, "b": 20, "c": 3, "new": "x"}));
        assert_eq!(merged.data.keys().collect::<Vec<_>>(), ["a", "b", "c", "new"], "stored keys keep their place");
        assert_eq!(merged.expires_at, request.expires_at, "the same _session_expiry: this request's expiry");
        // A clear removes what the other request added too.
        let mut cleared = SessionData::from_map(loaded.data.clone());
        cleared.clear();
        cleared.insert("only", json!(1));
        let request = SessionRecord { data: cleared.as_map().clone(), ..record(json!({}), 200) };
        assert_eq!(Value::Object(cleared.changes().apply(&stored, &request).data), json!({"only": 1}));
    }

    #[test]
    fn apply_keeps_another_requests_expiry_unless_this_one_set_it() {
        let stored = record(json!({"_session_expiry": 300, "k": 1}), 150);
        let untouched = SessionData::from_map(Map::new());
        let request = record(json!({}), 200);
        let merged = untouched.changes().apply(&stored, &request);
        assert_eq!(merged.expires_at, stored.expires_at, "another request's set_expiry stays");
        let mut set = SessionData::from_map(Map::new());
        set.insert("_session_expiry", json!(60));
        let request = record(json!({"_session_expiry": 60}), 260);
        assert_eq!(set.changes().apply(&stored, &request).expires_at, request.expires_at);
    }

    #[test]
    fn between_finds_set_changed_and_removed_keys() {
        let loaded = record(json!({"same": 1, "nested": {"items": [1]}, "gone": true}), 0).data;
        let current = record(json!({"same": 1, "nested": {"items": [1, 2]}, "new": null}), 0).data;
        let changes = ChangeSet::between(&loaded, &current);
        let listed: Vec<_> = changes.iter().collect();
        assert_eq!(listed, [("nested", KeyChange::Set), ("new", KeyChange::Set), ("gone", KeyChange::Removed)]);
        assert!(!changes.cleared());
        assert!(ChangeSet::between(&loaded, &loaded).is_empty());
    }

    #[test]
    fn records_which_keys_changed() {
        let mut map = Map::new();
        map.insert("kept".into(), json!(1));
        map.insert("gone".into(), json!(2));
        let mut data = SessionData::from_map(map);
        assert!(data.changes().is_empty());
        assert_eq!(data.get("kept"), Some(&json!(1)));
        assert!(data.changes().is_empty(), "reads change nothing");
        data.insert("new", json!("x"));
        data.remove("gone");
        data.remove("never-there");
        let changes: Vec<_> = data.changes().iter().collect();
        assert_eq!(changes, [("new", KeyChange::Set), ("gone", KeyChange::Removed)]);
        data.insert("gone", json!(3));
        assert_eq!(data.changes().get("gone"), Some(KeyChange::Set));
        data.clear();
        assert!(data.changes().cleared());
        assert_eq!(data.changes().iter().count(), 0);
        data.insert("after", json!(true));
        assert_eq!(data.changes().get("after"), Some(KeyChange::Set));
        data.reset_changes();
        assert!(data.changes().is_empty());
    }
}
