//! The conformance suite every [`SessionStore`] must pass.
//!
//! A store's test file implements [`Harness`] and calls [`conformance_suite!`](crate::conformance_suite), which
//! expands to one `#[tokio::test]` per case below:
//!
//! ```ignore
//! struct MyHarness { store: Arc<dyn SessionStore>, settings: Arc<Settings> }
//! #[async_trait::async_trait]
//! impl sessionkit::conformance::Harness for MyHarness { /* ... */ }
//! sessionkit::conformance_suite!(async { MyHarness::new().await });
//! ```
//!
//! Each case gets a fresh harness from the expression, so cases may run in parallel.

// Test-support code: a failed expectation must panic with a message, which is what unwrap/expect do here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use time::{Duration, OffsetDateTime};

use crate::audit::AuditEvent;
use crate::lifetime::{Clock, ExpiryRule, CREATED_KEY};
use crate::store::{RawSession, Saved, SessionLister, Touched, UserSessionIndex};
use crate::{
    ChangeSet, Expiry, SaveMode, Session, SessionError, SessionKey, SessionRecord, SessionStore, Settings, StoreError,
    Version,
};

/// What the suite needs from a store under test.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// The store under test.
    fn store(&self) -> Arc<dyn SessionStore>;
    /// The settings the store was opened with.
    fn settings(&self) -> Arc<Settings>;
    /// Writes undecodable data under `key` (valid for an hour) the way another writer could, bypassing the
    /// store's encoder. Returns false if the store cannot hold corrupt data at all (then that case is skipped
    /// with a message, and the harness's docs must say why).
    async fn plant_corrupt(&self, key: &SessionKey) -> bool;
    /// True when the store's server expires sessions by itself (Redis TTLs): `clear_expired` then has nothing to
    /// remove and may return 0, but expired sessions must still be gone.
    fn expires_natively(&self) -> bool {
        false
    }
    /// True for a store that keeps nothing on the server (signed cookies): its key *is* the session, so a key
    /// cannot be revoked, `exists` is always false, and keys are not `[a-z0-9]`. Cases then check what such a
    /// store can promise and skip the rest, saying so.
    fn stateless(&self) -> bool {
        false
    }
    /// False for a store that derives a session's expiry from when it was written (the file store: the mtime)
    /// instead of keeping the expiry it is given; the idle-timeout cases are then skipped, saying so, and the
    /// store's own tests must cover the idle rule.
    fn keeps_given_expiry(&self) -> bool {
        true
    }
}

fn skip(h: &dyn Harness, what: &str) {
    eprintln!("store {}: {what}; skipped for a stateless store", h.store().describe());
}

fn session(h: &dyn Harness, key: Option<SessionKey>) -> Session {
    Session::new(h.store(), h.settings(), key)
}

/// Values of every JSON type, written as Python's json module writes them, in a deliberate non-sorted order.
fn sample_data() -> Map<String, Value> {
    let text = r#"{"zeta":"last-alpha-first","str":"b\u00e4r \ud83d\ude00 \"q\" \\ / \n","int":42,"neg":-7,
        "big":123456789012345678901234567890,"u64max":18446744073709551615,"float":0.1,"one":1.0,"exp":1e+16,
        "tiny":2.5e-07,"t":true,"f":false,"n":null,"list":[1,"two",[3],{"four":4}],"obj":{"b":1,"a":2},"":"empty key"}"#;
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        other => panic!("sample data does not parse: {other:?}"),
    }
}

async fn saved_session(h: &dyn Harness, data: &Map<String, Value>) -> SessionKey {
    let mut s = session(h, None);
    s.update(data.clone()).await.expect("update");
    s.save().await.expect("save");
    s.key().cloned().expect("a saved session has a key")
}

fn assert_close(actual: OffsetDateTime, expected: OffsetDateTime, what: &str) {
    let diff = (actual - expected).abs();
    assert!(diff <= Duration::seconds(2), "{what}: {actual} is not within 2s of {expected}");
}

/// A new session has no key, no data, and is neither accessed nor modified until touched.
pub async fn new_session_is_empty(h: &dyn Harness) {
    let mut s = session(h, None);
    assert!(s.key().is_none());
    assert!(s.is_empty());
    assert!(!s.is_accessed() && !s.is_modified());
    assert_eq!(s.len().await.unwrap(), 0);
    assert!(s.is_accessed());
    assert!(!s.is_modified());
    assert!(s.keys().await.unwrap().is_empty());
}

/// The dict API: get/set/pop/setdefault/update/clear/keys/items, with Django's modified rules.
pub async fn dict_api(h: &dyn Harness) {
    let mut s = session(h, None);
    s.set("a", 1).await.unwrap();
    assert!(s.is_modified());
    assert_eq!(s.get::<i64>("a").await.unwrap(), Some(1));
    assert_eq!(s.get::<i64>("missing").await.unwrap(), None);
    assert!(matches!(s.get::<String>("a").await, Err(SessionError::WrongType { .. })));
    assert_eq!(s.setdefault("a", 99).await.unwrap(), json!(1));
    assert_eq!(s.setdefault("b", "dflt").await.unwrap(), json!("dflt"));
    s.update([("c", json!([1, 2])), ("a", json!(3))]).await.unwrap();
    assert_eq!(s.keys().await.unwrap(), ["a", "b", "c"]);
    assert_eq!(
        s.items().await.unwrap(),
        vec![("a".to_owned(), json!(3)), ("b".to_owned(), json!("dflt")), ("c".to_owned(), json!([1, 2]))]
    );
    assert_eq!(s.pop("b").await.unwrap(), Some(json!("dflt")));
    assert_eq!(s.pop("b").await.unwrap(), None);
    assert!(s.contains_key("c").await.unwrap());
    s.clear();
    assert_eq!(s.len().await.unwrap(), 0);

    // pop of a missing key on a fresh session does not modify it (Django's rule).
    let mut fresh = session(h, None);
    assert_eq!(fresh.pop("nothing").await.unwrap(), None);
    assert!(!fresh.is_modified());
    // Typed values go through serde.
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Cart {
        items: Vec<String>,
        total_cents: u64,
    }
    let cart = Cart { items: vec!["tea".into()], total_cents: 450 };
    fresh.set("cart", &cart).await.unwrap();
    assert_eq!(fresh.get::<Cart>("cart").await.unwrap(), Some(cart));
}

/// Save then load keeps every JSON type, big integers, float text, key order and unicode.
pub async fn save_and_load_keep_order_and_types(h: &dyn Harness) {
    let data = sample_data();
    let key = saved_session(h, &data).await;
    let mut loaded = session(h, Some(key.clone()));
    let items = loaded.items().await.unwrap();
    let expected: Vec<(String, Value)> = data.into_iter().collect();
    assert_eq!(items, expected);
    assert_eq!(loaded.key(), Some(&key));
    // Rust-made floats survive as numbers.
    loaded.set("pi", 3.25_f64).await.unwrap();
    loaded.set("huge", 1e300_f64).await.unwrap();
    loaded.save().await.unwrap();
    // The key after the save (a store whose key is the data issues a new one).
    let mut again = session(h, loaded.key().cloned());
    assert_eq!(again.get::<f64>("pi").await.unwrap(), Some(3.25));
    assert_eq!(again.get::<f64>("huge").await.unwrap(), Some(1e300));
    assert_eq!(again.get::<u64>("u64max").await.unwrap(), Some(u64::MAX));
}

/// `flush()` deletes the stored session and drops the key.
pub async fn flush_deletes_everything(h: &dyn Harness) {
    let key = saved_session(h, &sample_data()).await;
    let mut s = session(h, Some(key.clone()));
    assert!(s.len().await.unwrap() > 0);
    s.flush().await.unwrap();
    assert!(s.key().is_none());
    assert!(s.is_empty());
    if h.stateless() {
        return skip(h, "a flushed cookie cannot be revoked");
    }
    assert!(!h.store().exists(&key).await.unwrap());
    assert!(h.store().load(&key).await.unwrap().is_none());
}

/// `cycle_key()` keeps the data under a new key and kills the old key.
pub async fn cycle_key_keeps_data_and_kills_old_key(h: &dyn Harness) {
    let data = sample_data();
    let old = saved_session(h, &data).await;
    let mut s = session(h, Some(old.clone()));
    s.cycle_key().await.unwrap();
    let new = s.key().cloned().expect("key after cycle");
    // A signed cookie of unchanged data signed in the same second is the same token.
    assert!(new != old || h.stateless());
    if h.stateless() {
        skip(h, "the pre-cycle cookie cannot be revoked");
    } else {
        assert!(h.store().load(&old).await.unwrap().is_none(), "old key must be dead");
        assert!(!h.store().exists(&old).await.unwrap());
    }
    let loaded = h.store().load(&new).await.unwrap().expect("new key loads");
    assert_eq!(loaded.data, data);
    // Data set after the cycle is saved under the new key.
    s.set("after", "cycle").await.unwrap();
    s.save().await.unwrap();
    if !h.stateless() {
        assert_eq!(s.key(), Some(&new));
    }
    let mut again = session(h, s.key().cloned());
    assert_eq!(again.get::<String>("after").await.unwrap().as_deref(), Some("cycle"));
}

/// Many concurrent creates never collide and all land.
pub async fn concurrent_creates_never_collide(h: &dyn Harness) {
    const N: usize = 200;
    let mut tasks = Vec::with_capacity(N);
    for i in 0..N {
        let (store, settings) = (h.store(), h.settings());
        tasks.push(tokio::spawn(async move {
            let mut s = Session::new(store, settings, None);
            s.set("n", i).await.unwrap();
            s.save().await.unwrap();
            (i, s.key().cloned().unwrap())
        }));
    }
    let mut keys = HashSet::new();
    for task in tasks {
        let (i, key) = task.await.unwrap();
        let record = h.store().load(&key).await.unwrap().expect("created session loads");
        assert_eq!(record.data.get("n"), Some(&json!(i)));
        keys.insert(key);
    }
    assert_eq!(keys.len(), N);
}

/// `create` on an existing key fails with `KeyCollision` and leaves the stored session untouched.
pub async fn create_never_overwrites(h: &dyn Harness) {
    if h.stateless() {
        return skip(h, "nothing is stored, so nothing can be overwritten");
    }
    let store = h.store();
    let key = SessionKey::generate();
    let expires_at = OffsetDateTime::now_utc() + Duration::hours(1);
    let mut first = Map::new();
    first.insert("owner".into(), json!("first"));
    store.create(&SessionRecord::new(key.clone(), first.clone(), expires_at)).await.unwrap();
    let mut second = Map::new();
    second.insert("owner".into(), json!("second"));
    let err = store.create(&SessionRecord::new(key.clone(), second, expires_at)).await.unwrap_err();
    assert!(matches!(err, StoreError::KeyCollision), "{err:?}");
    assert_eq!(store.load(&key).await.unwrap().unwrap().data, first);
}

/// Saving a session that was deleted meanwhile is `SessionVanished`, and nothing is re-created.
pub async fn save_of_deleted_session_is_an_error(h: &dyn Harness) {
    if h.stateless() {
        return skip(h, "a cookie session cannot be deleted behind the request's back");
    }
    let key = saved_session(h, &sample_data()).await;
    let mut s = session(h, Some(key.clone()));
    s.set("late", "write").await.unwrap();
    h.store().delete(&key).await.unwrap();
    let err = s.save().await.unwrap_err();
    assert!(matches!(err, SessionError::Store(StoreError::SessionVanished)), "{err:?}");
    assert!(!h.store().exists(&key).await.unwrap(), "a vanished session must not be re-created");
}

/// Unknown and malformed keys load as a new empty session; saving then creates a fresh key.
pub async fn unknown_or_malformed_keys_give_a_new_session(h: &dyn Harness) {
    let long = "a".repeat(10_000);
    let unknown = SessionKey::generate();
    for cookie in [unknown.as_str(), "short", "../../../etc/passwd", "abcd\0efgh", "ABCDEFGHIJKL", "abc/def/ghi", &long]
    {
        let mut s = Session::from_cookie(h.store(), h.settings(), Some(cookie));
        assert_eq!(s.len().await.unwrap(), 0, "cookie {:?}", &cookie[..cookie.len().min(20)]);
        assert!(s.key().is_none(), "an unknown key is dropped");
        s.set("x", 1).await.unwrap();
        s.save().await.unwrap();
        let new = s.key().cloned().unwrap();
        assert_ne!(new.as_str(), cookie);
        assert!(new.is_storage_safe() || h.stateless());
    }
}

/// `_session_expiry` as int seconds, ISO string, and 0 (browser close) give Django's expiry.
pub async fn expiry_int_iso_and_browser_close(h: &dyn Harness) {
    let cookie_age = h.settings().cookie_age;
    let store = h.store();

    let mut s = session(h, None);
    s.set_expiry(Expiry::Seconds(300)).await.unwrap();
    s.save().await.unwrap();
    let key = s.key().cloned().unwrap();
    let record = store.load(&key).await.unwrap().unwrap();
    assert_close(record.expires_at, OffsetDateTime::now_utc() + Duration::seconds(300), "int expiry");
    let mut loaded = session(h, Some(key));
    assert_eq!(loaded.expiry().await.unwrap(), Expiry::Seconds(300));
    assert!((299..=300).contains(&loaded.expiry_age().await.unwrap()));
    assert!(!loaded.expire_at_browser_close().await.unwrap());

    let at = OffsetDateTime::now_utc() + Duration::days(3);
    let mut s = session(h, None);
    s.set_expiry(Expiry::At(at)).await.unwrap();
    s.save().await.unwrap();
    let key = s.key().cloned().unwrap();
    let stored = store.load(&key).await.unwrap().unwrap();
    assert_close(stored.expires_at, at, "ISO expiry");
    assert!(stored.data.get("_session_expiry").is_some_and(Value::is_string));
    let mut loaded = session(h, Some(key));
    assert!(matches!(loaded.expiry().await.unwrap(), Expiry::At(_)));
    assert!((3 * 86400 - 2..=3 * 86400).contains(&loaded.expiry_age().await.unwrap()));

    let mut s = session(h, None);
    s.set_expiry(Expiry::BrowserClose).await.unwrap();
    s.save().await.unwrap();
    let key = s.key().cloned().unwrap();
    let stored = store.load(&key).await.unwrap().unwrap();
    assert_eq!(stored.data.get("_session_expiry"), Some(&json!(0)));
    assert_close(
        stored.expires_at,
        OffsetDateTime::now_utc() + Duration::seconds(cookie_age),
        "browser-close storage expiry",
    );
    let mut loaded = session(h, Some(key));
    assert!(loaded.expire_at_browser_close().await.unwrap());
    assert_eq!(loaded.expiry_age().await.unwrap(), cookie_age);

    // Removing the custom expiry returns to the default.
    loaded.set_expiry(Expiry::Default).await.unwrap();
    assert!(!loaded.contains_key("_session_expiry").await.unwrap());
    assert_eq!(loaded.expiry().await.unwrap(), Expiry::Default);
}

/// Absurd expiries (`set_expiry` of ±3·10⁹ s, 3·10¹¹ s, the ends of `i64`) are stored without error or panic:
/// far-future ones load with an expiry in year 9999 at most, past ones are expired.
pub async fn extreme_expiries_are_stored(h: &dyn Harness) {
    let store = h.store();
    let now = OffsetDateTime::now_utc();
    for seconds in [3_000_000_000_i64, 300_000_000_000, i64::MAX] {
        let mut s = session(h, None);
        s.set("far", seconds).await.unwrap();
        s.set_expiry(Expiry::Seconds(seconds)).await.unwrap();
        s.save().await.unwrap_or_else(|err| panic!("set_expiry({seconds}): {err}"));
        let record = store.load(s.key().unwrap()).await.unwrap().expect("a far-future session loads");
        // A signed cookie is good for SESSION_COOKIE_AGE after signing, whatever the session says; the Redis
        // `string`/`hash` value keeps its expiry as 32-bit Unix seconds (until 2106).
        let at_least =
            if h.stateless() { Duration::seconds(h.settings().cookie_age - 5) } else { Duration::days(365 * 75) };
        assert!(record.expires_at > now + at_least, "set_expiry({seconds}): {}", record.expires_at);
        assert!(record.expires_at.year() <= 9999, "set_expiry({seconds}): {}", record.expires_at);
        assert_eq!(record.data.get("far"), Some(&json!(seconds)));
    }
    for seconds in [-3_000_000_000_i64, i64::MIN + 1] {
        let mut s = session(h, None);
        s.set("past", seconds).await.unwrap();
        s.set_expiry(Expiry::Seconds(seconds)).await.unwrap();
        s.save().await.unwrap_or_else(|err| panic!("set_expiry({seconds}): {err}"));
        assert!(store.load(s.key().unwrap()).await.unwrap().is_none(), "set_expiry({seconds}) is expired");
    }
}

/// `clear()` and a save under a cookie key the store does not know, storage-safe or not: the session is gone, so
/// the save is `SessionVanished` (Django's `SessionInterrupted`, a 400), never another error.
pub async fn clear_then_save_under_an_unknown_key_is_vanished(h: &dyn Harness) {
    if h.stateless() {
        return skip(h, "a cookie session's key is its data; there is nothing to vanish");
    }
    let unknown = SessionKey::generate();
    for cookie in [unknown.as_str(), "NOT-A-STORAGE-SAFE-KEY", "../../../etc/passwd", &"a".repeat(200)] {
        let mut s = Session::from_cookie(h.store(), h.settings(), Some(cookie));
        s.clear();
        s.set("after", "clear").await.unwrap();
        let err = s.save().await.unwrap_err();
        assert!(matches!(err, SessionError::Store(StoreError::SessionVanished)), "{cookie:.20}: {err:?}");
    }
}

/// Runs `work` for each of `n` sessions on `key`, all loaded before any saves: each task loads, waits for every
/// other task to have loaded, then runs `work` (which changes the session) and saves. Returns each save's result.
async fn parallel_saves<F>(h: &dyn Harness, key: &SessionKey, n: usize, work: F) -> Vec<Result<(), SessionError>>
where
    F: Fn(usize, &mut Session) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>
        + Send
        + Sync
        + Clone
        + 'static,
{
    let loaded = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (store, settings, key, loaded, work) =
            (h.store(), h.settings(), key.clone(), Arc::clone(&loaded), work.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = Session::new(store, settings, Some(key));
            s.len().await.unwrap();
            loaded.wait().await;
            work(i, &mut s).await;
            s.save().await
        }));
    }
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

/// Parallel requests that each set a different key all keep their key: every save lands (as many writers as a
/// save has attempts, so each is sure to get its turn), whatever order they reach the store in.
pub async fn parallel_saves_of_distinct_keys_all_land(h: &dyn Harness) {
    if h.stateless() {
        return skip(h, "a session kept in the browser cannot merge parallel requests");
    }
    let mut base = Map::new();
    base.insert("base".into(), json!(true));
    let key = saved_session(h, &base).await;
    let n = crate::store::merge::MAX_SAVE_ATTEMPTS;
    let results =
        parallel_saves(h, &key, n, |i, s| Box::pin(async move { s.set(&format!("key{i}"), i).await.unwrap() })).await;
    for (i, result) in results.iter().enumerate() {
        assert!(result.is_ok(), "save {i}: {result:?}");
    }
    let stored = h.store().load(&key).await.unwrap().expect("the session is still there").data;
    for i in 0..n {
        assert_eq!(stored.get(&format!("key{i}")), Some(&json!(i)), "key{i} was lost: {stored:?}");
    }
    assert_eq!(stored.get("base"), Some(&json!(true)));
}

/// One request removes `x` while another sets `y`: `x` is gone and `y` is set; and a key set by both holds one of
/// the two values, never a mix, with both requests' other keys kept.
pub async fn parallel_removes_sets_and_same_key_writes(h: &dyn Harness) {
    if h.stateless() {
        return skip(h, "a session kept in the browser cannot merge parallel requests");
    }
    let mut base = Map::new();
    base.insert("x".into(), json!("to remove"));
    base.insert("shared".into(), json!("before"));
    let key = saved_session(h, &base).await;
    let results = parallel_saves(h, &key, 2, |i, s| {
        Box::pin(async move {
            if i == 0 {
                s.pop("x").await.unwrap();
                s.set("shared", "from 0").await.unwrap();
                s.set("only0", 0).await.unwrap();
            } else {
                s.set("y", "set").await.unwrap();
                s.set("shared", "from 1").await.unwrap();
                s.set("only1", 1).await.unwrap();
            }
        })
    })
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let stored = h.store().load(&key).await.unwrap().unwrap().data;
    assert!(!stored.contains_key("x"), "the removal was undone: {stored:?}");
    assert_eq!(stored.get("y"), Some(&json!("set")));
    assert!(matches!(stored.get("shared").and_then(Value::as_str), Some("from 0" | "from 1")), "{stored:?}");
    assert_eq!((stored.get("only0"), stored.get("only1")), (Some(&json!(0)), Some(&json!(1))), "{stored:?}");
}

/// A save that loaded the session before a `flush`/`delete` (a logout in another tab) fails with
/// `SessionVanished`, and the session stays deleted: a logout is never undone.
pub async fn a_save_racing_a_logout_fails_and_the_logout_stands(h: &dyn Harness) {
    if h.stateless() {
        return skip(h, "a cookie session cannot be deleted behind the request's back");
    }
    let key = saved_session(h, &sample_data()).await;
    let mut slow = session(h, Some(key.clone()));
    slow.len().await.unwrap();
    let mut logout = session(h, Some(key.clone()));
    logout.flush().await.unwrap();
    slow.set("late", "write").await.unwrap();
    let err = slow.save().await.unwrap_err();
    assert!(matches!(err, SessionError::Store(StoreError::SessionVanished)), "{err:?}");
    assert!(h.store().load(&key).await.unwrap().is_none(), "the logout was undone");
    assert!(!h.store().exists(&key).await.unwrap());
}

/// A save that loaded the session before another request cycled its key (a login in another tab): the slow save
/// fails, the old key stays dead, and the new key holds the data without the slow request's write.
pub async fn a_save_racing_cycle_key_leaves_the_old_key_dead(h: &dyn Harness) {
    if h.stateless() {
        return skip(h, "a cookie session's old key cannot be revoked");
    }
    let key = saved_session(h, &sample_data()).await;
    let mut slow = session(h, Some(key.clone()));
    slow.len().await.unwrap();
    let mut login = session(h, Some(key.clone()));
    login.cycle_key().await.unwrap();
    let new_key = login.key().cloned().unwrap();
    slow.set("late", "write").await.unwrap();
    let err = slow.save().await.unwrap_err();
    assert!(matches!(err, SessionError::Store(StoreError::SessionVanished)), "{err:?}");
    assert!(h.store().load(&key).await.unwrap().is_none(), "the old key came back");
    let stored = h.store().load(&new_key).await.unwrap().unwrap().data;
    assert_eq!(stored, sample_data(), "the new key holds the data as cycled");
}

/// After a merged save the request sees the merged session, and a second save of the same request keeps the
/// other request's keys too.
pub async fn a_merged_save_leaves_the_merged_data_in_the_session(h: &dyn Harness) {
    if h.stateless() {
        return skip(h, "a session kept in the browser cannot merge parallel requests");
    }
    let key = saved_session(h, &Map::new()).await;
    let mut first = session(h, Some(key.clone()));
    first.len().await.unwrap();
    let mut second = session(h, Some(key.clone()));
    second.set("from_second", 2).await.unwrap();
    second.save().await.unwrap();
    first.set("from_first", 1).await.unwrap();
    first.save().await.unwrap();
    assert_eq!(first.get::<i64>("from_second").await.unwrap(), Some(2), "merged in");
    first.set("again", true).await.unwrap();
    first.save().await.unwrap();
    let stored = h.store().load(&key).await.unwrap().unwrap().data;
    assert_eq!(stored.get("from_second"), Some(&json!(2)), "{stored:?}");
    assert_eq!(stored.get("from_first"), Some(&json!(1)));
    assert_eq!(stored.get("again"), Some(&json!(true)));
}

/// A compare-only save (a cache copy that must never overwrite a newer one) of a record that was never loaded has
/// nothing to compare with: it fails as contended and writes nothing.
pub async fn a_compare_only_save_without_a_version_writes_nothing(h: &dyn Harness) {
    if h.stateless() {
        return skip(h, "a session kept in the browser has no versions");
    }
    let key = saved_session(h, &sample_data()).await;
    let mut other = Map::new();
    other.insert("overwritten".into(), json!(true));
    let record = SessionRecord::new(key.clone(), other, OffsetDateTime::now_utc() + Duration::hours(1));
    let changes = ChangeSet::replacing(&record.data).with_mode(SaveMode::CompareOnly);
    let err = h.store().save(&record, &changes).await.unwrap_err();
    assert!(matches!(err, StoreError::Contended { attempts: 0 }), "{err:?}");
    assert_eq!(h.store().load(&key).await.unwrap().unwrap().data, sample_data(), "nothing was written");
}

/// A clock the lifetime cases move by hand: the real time plus an offset in seconds.
struct TestClock(Arc<AtomicI64>);

impl TestClock {
    fn new() -> (TestClock, Clock) {
        let offset = Arc::new(AtomicI64::new(0));
        let read = Arc::clone(&offset);
        let clock = Clock::from_fn(move || OffsetDateTime::now_utc() + Duration::seconds(read.load(Ordering::SeqCst)));
        (TestClock(offset), clock)
    }

    /// Moves the clock to `seconds` after the start.
    fn set(&self, seconds: i64) {
        self.0.store(seconds, Ordering::SeqCst);
    }
}

/// A store that counts the writes going through it: full saves and creates apart from touches.
#[derive(Debug)]
struct CountingWrites {
    inner: Arc<dyn SessionStore>,
    saves: AtomicU64,
    touches: AtomicU64,
}

impl CountingWrites {
    fn counts(&self) -> (u64, u64) {
        (self.saves.load(Ordering::SeqCst), self.touches.load(Ordering::SeqCst))
    }
}

#[async_trait]
impl SessionStore for CountingWrites {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        self.inner.load(key).await
    }
    async fn create(&self, record: &SessionRecord) -> Result<Option<Version>, StoreError> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        self.inner.create(record).await
    }
    async fn save(&self, record: &SessionRecord, changes: &ChangeSet) -> Result<Saved, StoreError> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        self.inner.save(record, changes).await
    }
    async fn touch(&self, record: &SessionRecord) -> Result<Touched, StoreError> {
        self.touches.fetch_add(1, Ordering::SeqCst);
        self.inner.touch(record).await
    }
    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.inner.exists(key).await
    }
    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn clear_expired(&self) -> Result<u64, StoreError> {
        self.inner.clear_expired().await
    }
    async fn load_raw(&self, key: &SessionKey) -> Result<Option<RawSession>, StoreError> {
        self.inner.load_raw(key).await
    }
    fn issue_key(&self, record: &SessionRecord) -> Result<Option<SessionKey>, StoreError> {
        self.inner.issue_key(record)
    }
    fn user_index(&self) -> Option<&dyn UserSessionIndex> {
        self.inner.user_index()
    }
    fn lister(&self) -> Option<&dyn SessionLister> {
        self.inner.lister()
    }
}

/// Audit events, collected.
#[derive(Default)]
struct Events(Mutex<Vec<AuditEvent>>);

impl Events {
    fn taken(&self) -> Vec<AuditEvent> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Events")
    }
}

/// What the lifetime cases share: the store behind a write counter, settings with the rules and a test clock,
/// and the audit events of every session made with [`Lifetimes::session`].
struct Lifetimes {
    store: Arc<CountingWrites>,
    settings: Arc<Settings>,
    clock: TestClock,
    events: Arc<Events>,
}

impl Lifetimes {
    fn new(h: &dyn Harness, idle: Option<i64>, absolute: Option<i64>, interval: Option<i64>) -> Self {
        let (clock, shared) = TestClock::new();
        let settings = Settings {
            idle_timeout: idle,
            absolute_timeout: absolute,
            touch_interval: interval,
            clock: shared,
            ..(*h.settings()).clone()
        };
        crate::lifetime::check(&settings).expect("consistent lifetime settings");
        let store = Arc::new(CountingWrites { inner: h.store(), saves: AtomicU64::new(0), touches: AtomicU64::new(0) });
        Lifetimes { store, settings: Arc::new(settings), clock, events: Arc::default() }
    }

    fn session(&self, key: Option<SessionKey>) -> Session {
        let events = Arc::clone(&self.events);
        let store: Arc<dyn SessionStore> = Arc::clone(&self.store) as Arc<dyn SessionStore>;
        Session::new(store, Arc::clone(&self.settings), key).with_audit(Arc::new(move |event: &AuditEvent| {
            events.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(event.clone());
        }))
    }

    /// One request that reads the session and changes nothing, ending as the front-ends end it: a save when a
    /// touch is due. Returns the data read (empty: no live session).
    async fn read_only_request(&self, key: &SessionKey) -> (Map<String, Value>, Option<SessionKey>) {
        let mut s = self.session(Some(key.clone()));
        let data = s.data().await.expect("load").as_map().clone();
        if s.touch_due() {
            s.save().await.expect("touch");
        }
        (data, s.key().cloned())
    }

    /// The expiry the store reports now for `key`.
    async fn stored_expiry(&self, key: &SessionKey) -> OffsetDateTime {
        self.store.inner.load(key).await.expect("load").expect("live in the store").expires_at
    }
}

/// Idle timeout: a session nobody uses for the timeout has expired (and is deleted, with an audit event); reads
/// move its expiry, but at most once per touch interval and without a full write; writes move it too.
pub async fn an_idle_session_expires_and_reads_touch_at_most_once_per_interval(h: &dyn Harness) {
    if h.stateless() {
        return skip(h, "a session kept in the browser is re-signed, not touched");
    }
    if !h.keeps_given_expiry() {
        eprintln!(
            "store {}: expiry derived from the write time; idle rule covered by the store's tests",
            h.store().describe()
        );
        return;
    }
    let t = Lifetimes::new(h, Some(600), None, Some(60));
    let mut s = t.session(None);
    s.set("cart", json!(["apple"])).await.unwrap();
    s.save().await.unwrap();
    let key = s.key().cloned().unwrap();
    let start = t.settings.clock.now();
    assert_close(t.stored_expiry(&key).await, start + Duration::seconds(600), "a save sets the idle deadline");
    assert!(!t.store.inner.load(&key).await.unwrap().unwrap().data.contains_key(CREATED_KEY), "no absolute rule");
    let writes = t.store.counts();

    // 30 s later: within the interval, nothing is written.
    t.clock.set(30);
    let (data, _) = t.read_only_request(&key).await;
    assert_eq!(data.get("cart"), Some(&json!(["apple"])));
    assert_eq!(t.store.counts(), writes, "no write within the touch interval");
    // 61 s later: one touch, no save; the deadline moves to now + 600 and the data is unchanged.
    t.clock.set(61);
    t.read_only_request(&key).await;
    assert_eq!(t.store.counts(), (writes.0, writes.1 + 1), "one touch, no full save");
    assert_close(t.stored_expiry(&key).await, start + Duration::seconds(661), "the touch moved the expiry");
    assert_eq!(t.store.inner.load(&key).await.unwrap().unwrap().data.get("cart"), Some(&json!(["apple"])));
    // 90 s: within the interval of the touch, nothing again.
    t.clock.set(90);
    t.read_only_request(&key).await;
    assert_eq!(t.store.counts(), (writes.0, writes.1 + 1), "at most one touch per interval");
    // A write moves the deadline as well (a full save, no touch).
    t.clock.set(200);
    let mut s = t.session(Some(key.clone()));
    s.set("cart", json!(["apple", "pear"])).await.unwrap();
    s.save().await.unwrap();
    assert_eq!(t.store.counts(), (writes.0 + 1, writes.1 + 1));
    assert_close(t.stored_expiry(&key).await, start + Duration::seconds(800), "a save moves the deadline");
    assert!(t.events.taken().is_empty(), "nothing to report yet");

    // 801 s: idle for more than 600 s: expired. The request gets a new, empty session; the old one is deleted.
    t.clock.set(801);
    let (data, kept) = t.read_only_request(&key).await;
    assert!(data.is_empty() && kept.is_none(), "an idle session loads as a new one: {data:?}");
    assert!(!t.store.inner.exists(&key).await.unwrap(), "the expired session was deleted");
    let events = t.events.taken();
    assert!(
        matches!(&events[..], [AuditEvent::Expired { rule: ExpiryRule::Idle, .. }]),
        "one idle expiry reported: {events:?}"
    );
}

/// Absolute lifetime: a session created (or cycled) the lifetime ago has expired however active it was; the
/// store's expiry never goes past the absolute deadline; cycling the key starts the lifetime again.
pub async fn the_absolute_lifetime_ends_an_active_session(h: &dyn Harness) {
    if h.stateless() {
        return skip(h, "a session kept in the browser is checked by the same rule but not touched");
    }
    let t = Lifetimes::new(h, Some(600), Some(1800), Some(60));
    let mut s = t.session(None);
    s.set("user", "alice").await.unwrap();
    s.save().await.unwrap();
    let key = s.key().cloned().unwrap();
    let start = t.settings.clock.now();
    let stored = t.store.inner.load(&key).await.unwrap().unwrap();
    assert_eq!(stored.data.get(CREATED_KEY), Some(&json!(start.unix_timestamp())), "the start is in the data");
    // Active every 500 s: the idle rule never ends it ...
    for at in [500, 1000, 1500] {
        t.clock.set(at);
        let (data, _) = t.read_only_request(&key).await;
        assert_eq!(data.get("user"), Some(&json!("alice")), "live at {at} s");
    }
    if h.keeps_given_expiry() {
        assert_close(t.stored_expiry(&key).await, start + Duration::seconds(1800), "capped at the absolute deadline");
    }
    // ... the absolute rule does.
    t.clock.set(1801);
    let (data, kept) = t.read_only_request(&key).await;
    assert!(data.is_empty() && kept.is_none(), "past its absolute lifetime: {data:?}");
    assert!(!t.store.inner.exists(&key).await.unwrap());
    let events = t.events.taken();
    assert!(matches!(&events[..], [AuditEvent::Expired { rule: ExpiryRule::Absolute, .. }]), "{events:?}");

    // cycle_key (login) restarts the lifetime.
    t.clock.set(0);
    let mut s = t.session(None);
    s.set("user", "bob").await.unwrap();
    s.save().await.unwrap();
    t.clock.set(500);
    let mut s = t.session(s.key().cloned());
    s.cycle_key().await.unwrap();
    s.save().await.unwrap();
    let cycled = s.key().cloned().unwrap();
    for at in [1000, 1500, 2000] {
        t.clock.set(at);
        let (data, _) = t.read_only_request(&cycled).await;
        assert_eq!(data.get("user"), Some(&json!("bob")), "{at} s: the cycle at 500 s restarted the lifetime");
    }
    let events = t.events.taken();
    assert!(matches!(&events[..], [AuditEvent::Cycled { .. }]), "{events:?}");
}

/// With both rules off (Django's behaviour), nothing of the rules is written and nothing is touched.
pub async fn lifetime_rules_off_write_nothing_of_their_own(h: &dyn Harness) {
    let t = Lifetimes::new(h, None, None, None);
    let mut s = t.session(None);
    s.set("k", 1).await.unwrap();
    s.save().await.unwrap();
    let key = s.key().cloned().unwrap();
    let mut s = t.session(Some(key.clone()));
    let data = s.data().await.unwrap().as_map().clone();
    assert!(!data.contains_key(CREATED_KEY), "{data:?}");
    assert!(!s.touch_due());
    t.clock.set(100_000);
    assert!(!t.session(Some(key)).touch_due());
    assert_eq!(t.store.counts().1, 0, "never touched");
}

/// An expired session is never loaded, and `clear_expired` removes exactly the expired ones.
pub async fn expired_sessions_are_never_loaded_and_cleared(h: &dyn Harness) {
    let store = h.store();
    let mut expired = Vec::new();
    for expiry in
        [Expiry::Seconds(-10), Expiry::At(OffsetDateTime::now_utc() - Duration::hours(1)), Expiry::Seconds(-100_000)]
    {
        let mut s = session(h, None);
        s.set("secret", "old").await.unwrap();
        s.set_expiry(expiry).await.unwrap();
        s.save().await.unwrap();
        expired.push(s.key().cloned().unwrap());
    }
    let live = saved_session(h, &sample_data()).await;
    for key in &expired {
        assert!(store.load(key).await.unwrap().is_none(), "expired session loaded");
        let mut s = session(h, Some(key.clone()));
        assert_eq!(s.len().await.unwrap(), 0);
        assert!(s.key().is_none());
    }
    let removed = store.clear_expired().await.unwrap();
    if !h.expires_natively() {
        assert!(
            removed >= expired.len() as u64,
            "clear_expired removed {removed}, expected at least {}",
            expired.len()
        );
    }
    for key in expired.iter().filter(|_| !h.stateless()) {
        assert!(store.load_raw(key).await.unwrap().is_none(), "expired session still stored after clear_expired");
    }
    assert!(store.load(&live).await.unwrap().is_some(), "clear_expired removed a live session");
    assert_eq!(store.clear_expired().await.unwrap(), 0, "a second clear_expired finds nothing");
}

/// Corrupt stored data loads as an empty session (the key is kept, as in Django), never a crash.
pub async fn corrupt_data_gives_an_empty_session(h: &dyn Harness) {
    let key = SessionKey::generate();
    if !h.plant_corrupt(&key).await {
        eprintln!("store {} cannot hold corrupt data; case skipped", h.store().describe());
        return;
    }
    let mut s = session(h, Some(key.clone()));
    assert_eq!(s.len().await.unwrap(), 0);
    assert_eq!(s.key(), Some(&key));
    // The next save overwrites the corrupt value with good data.
    s.set("fixed", true).await.unwrap();
    s.save().await.unwrap();
    assert_eq!(h.store().load(&key).await.unwrap().unwrap().data.get("fixed"), Some(&json!(true)));
}

/// `exists`, `delete` and `load_raw` agree with each other.
pub async fn exists_delete_and_raw(h: &dyn Harness) {
    let store = h.store();
    let key = saved_session(h, &sample_data()).await;
    let raw = store.load_raw(&key).await.unwrap().expect("raw form");
    assert!(!raw.bytes.is_empty());
    if h.stateless() {
        assert!(!store.exists(&key).await.unwrap(), "a stateless store stores nothing, as Django's exists()");
        return skip(h, "exists/delete have nothing to act on");
    }
    assert!(store.exists(&key).await.unwrap());
    store.delete(&key).await.unwrap();
    assert!(!store.exists(&key).await.unwrap());
    assert!(store.load_raw(&key).await.unwrap().is_none());
    store.delete(&key).await.unwrap(); // deleting twice is fine
    assert!(!store.exists(&SessionKey::generate()).await.unwrap());
}

/// The enumeration ([`SessionStore::lister`]) reports every stored session once, across small pages, with data
/// that decodes to what was saved; `count` agrees, and counts only live sessions with `valid_only`.
pub async fn enumeration_lists_every_session(h: &dyn Harness) {
    let store = h.store();
    let Some(lister) = store.lister() else {
        assert!(h.stateless(), "a store that keeps sessions must be able to list them");
        return skip(h, "nothing is stored, so nothing can be listed");
    };
    let mut saved = Vec::new();
    for i in 0..5 {
        let mut data = Map::new();
        data.insert("n".into(), json!(i));
        data.insert("_auth_user_id".into(), json!(format!("{}", 100 + i)));
        saved.push((saved_session(h, &data).await, data));
    }
    let mut expired = session(h, None);
    expired.set("old", true).await.unwrap();
    expired.set_expiry(Expiry::Seconds(-10)).await.unwrap();
    expired.save().await.unwrap();

    let mut listed = Vec::new();
    let mut cursor = None;
    for _ in 0..10_000 {
        let page = lister.list_page(cursor.as_ref(), 2).await.unwrap();
        listed.extend(page.sessions);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let now = OffsetDateTime::now_utc();
    for (key, data) in &saved {
        let digest: String = {
            use sha2::Digest;
            sha2::Sha256::digest(key.as_str().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
        };
        let found: Vec<_> = listed.iter().filter(|s| s.key.as_ref() == Some(key) || s.id == digest).collect();
        assert!(!found.is_empty(), "session {key:?} was not listed");
        let stored = found[0];
        assert!(stored.key.as_ref().is_none_or(|k| k == key));
        assert_eq!(lister.decode(&stored.raw.bytes).unwrap(), *data, "listed data decodes to the saved data");
        assert!(!stored.is_expired(now), "a live session is listed as expired");
        let left = stored.raw.expires_at.map(|at| at - now);
        assert!(left.is_none_or(|left| left > Duration::days(13)), "expiry of a listed session: {left:?}");
    }
    let live = lister.count(true).await.unwrap();
    let all = lister.count(false).await.unwrap();
    assert_eq!(live, 5, "count(valid_only) counts the live sessions");
    assert!((5..=6).contains(&all), "count() = {all}: 5 live sessions and maybe one expired one not yet removed");
    let mut ids: Vec<&str> = listed.iter().map(|s| s.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), listed.len(), "a session was listed twice");
    assert_eq!(listed.len() as u64, all, "every stored session is listed, and count() agrees");
}

/// Expands to one `#[tokio::test]` per conformance case, each with a fresh harness from `$make` (an expression
/// evaluating to a future of a [`Harness`]). `conformance_suite!(optional: $make)` takes a future of an
/// `Option<Harness>` instead: with `None` (a server the machine does not have, outside CI) each case returns
/// without checking anything, and the harness's constructor says why.
#[macro_export]
macro_rules! conformance_suite {
    (@cases [$mode:ident] $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::conformance_suite!(@run [$mode] $make, $case);
            }
        )*
    };
    (@run [always] $make:expr, $case:ident) => {
        let harness = $make.await;
        $crate::conformance::$case(&harness).await;
    };
    (@run [optional] $make:expr, $case:ident) => {
        if let Some(harness) = $make.await {
            $crate::conformance::$case(&harness).await;
        }
    };
    (@with [$mode:ident] $make:expr) => {
        $crate::conformance_suite!(@cases [$mode] $make;
            an_idle_session_expires_and_reads_touch_at_most_once_per_interval,
            the_absolute_lifetime_ends_an_active_session, lifetime_rules_off_write_nothing_of_their_own,
            new_session_is_empty, dict_api, save_and_load_keep_order_and_types, flush_deletes_everything,
            cycle_key_keeps_data_and_kills_old_key, concurrent_creates_never_collide, create_never_overwrites,
            save_of_deleted_session_is_an_error, unknown_or_malformed_keys_give_a_new_session,
            expiry_int_iso_and_browser_close, expired_sessions_are_never_loaded_and_cleared,
            corrupt_data_gives_an_empty_session, exists_delete_and_raw, enumeration_lists_every_session,
            extreme_expiries_are_stored, clear_then_save_under_an_unknown_key_is_vanished,
            parallel_saves_of_distinct_keys_all_land, parallel_removes_sets_and_same_key_writes,
            a_save_racing_a_logout_fails_and_the_logout_stands, a_save_racing_cycle_key_leaves_the_old_key_dead,
            a_merged_save_leaves_the_merged_data_in_the_session, a_compare_only_save_without_a_version_writes_nothing);
    };
    (optional: $make:expr) => {
        $crate::conformance_suite!(@with [optional] $make);
    };
    ($make:expr) => {
        $crate::conformance_suite!(@with [always] $make);
    };
}
