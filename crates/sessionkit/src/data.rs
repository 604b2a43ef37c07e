//! The session dictionary and the record of what a request changed in it.

use indexmap::IndexMap;
use serde_json::{Map, Value};

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
/// Stores write whole sessions today, exactly as Django does. The change set travels with every save so that a
/// store can merge two parallel requests' writes (apply only this request's keys on top of what is stored now)
/// instead of letting the last writer win.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    cleared: bool,
    keys: IndexMap<String, KeyChange>,
}

impl ChangeSet {
    /// The changes of a request that cleared the whole session and set nothing.
    pub fn everything_cleared() -> Self {
        ChangeSet { cleared: true, keys: IndexMap::new() }
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
