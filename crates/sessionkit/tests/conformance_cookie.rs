//! The conformance suite on the signed-cookies store, plus its own rules: Django's exact cookie, the size limit,
//! max_age, fallback secrets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::{json, Map, Value};
use sessionkit::conformance::Harness;
use sessionkit::store::cookie::{CookieStore, MAX_COOKIE_BYTES};
use sessionkit::{Session, SessionError, SessionKey, SessionStore, Settings, StoreError};

struct CookieHarness {
    store: Arc<CookieStore>,
    settings: Arc<Settings>,
}

fn settings() -> Settings {
    Settings { secret_key_fallbacks: vec!["old-secret".into()], ..Settings::with_secret_key("test-secret-key") }
}

impl CookieHarness {
    async fn new() -> Self {
        let settings = settings();
        CookieHarness { store: Arc::new(CookieStore::new(&settings).unwrap()), settings: Arc::new(settings) }
    }
}

#[async_trait::async_trait]
impl Harness for CookieHarness {
    fn store(&self) -> Arc<dyn SessionStore> {
        self.store.clone()
    }
    fn settings(&self) -> Arc<Settings> {
        self.settings.clone()
    }
    /// The key is the data: there is no place to plant corrupt data under a key (tampered cookies are tested below).
    async fn plant_corrupt(&self, _key: &SessionKey) -> bool {
        false
    }
    fn expires_natively(&self) -> bool {
        true
    }
    fn stateless(&self) -> bool {
        true
    }
}

sessionkit::conformance_suite!(CookieHarness::new());

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/django-session-vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Cookies made by real Django 5.2 (signed at 1700000000) are verified and decoded — they are too old for
/// `SESSION_COOKIE_AGE`, so a store with a very long cookie age reads them, and the default store refuses them.
#[tokio::test]
async fn reads_djangos_signed_cookies_and_honours_max_age() {
    let old_enough = Settings { cookie_age: 100 * 365 * 86_400, ..settings() };
    let store = CookieStore::new(&old_enough).unwrap();
    let default = CookieStore::new(&settings()).unwrap();
    for vector in vectors()["vectors"].as_array().unwrap() {
        let token = SessionKey::parse(vector["cookie_token"].as_str().unwrap()).unwrap();
        let name = vector["name"].as_str().unwrap();
        let record = store.load(&token).await.unwrap();
        if vector["session"].get("_session_expiry") == Some(&json!(300)) {
            // Signed in 2023 with a 300-second inactivity expiry: long expired (Django would still accept it).
            assert!(record.is_none(), "{name}");
            continue;
        }
        let record = record.unwrap_or_else(|| panic!("{name}: Django's cookie does not verify"));
        assert_eq!(Value::Object(record.data), vector["session"], "{name}");
        assert!(default.load(&token).await.unwrap().is_none(), "older than SESSION_COOKIE_AGE");
        // The session salt is not the cookie salt: a db token is not a valid cookie.
        let session_token = SessionKey::parse(vector["session_token"].as_str().unwrap()).unwrap();
        assert!(store.load(&session_token).await.unwrap().is_none());
    }
}

/// What we send is Django's format: the same bytes Django would sign now.
#[tokio::test]
async fn issues_djangos_cookie_format() {
    let h = CookieHarness::new().await;
    let mut s = Session::new(h.store(), h.settings(), None);
    s.set("foo", "bar").await.unwrap();
    s.save().await.unwrap();
    let cookie = s.key().unwrap().as_str().to_owned();
    let Value::Object(data) = json!({"foo": "bar"}) else { unreachable!() };
    let now = time::OffsetDateTime::now_utc();
    // Signed within this second (or the one before, if the second just turned).
    let expected = [h.store.token(&data, now), h.store.token(&data, now - time::Duration::seconds(1))];
    assert!(expected.contains(&cookie), "{cookie}");
    assert!(cookie.starts_with("eyJmb28iOiJiYXIifQ:"));
    // A tampered cookie is a new session.
    let tampered = SessionKey::parse(&cookie.replace("eyJmb28", "eyJmb29")).unwrap();
    let mut s = Session::new(h.store(), h.settings(), Some(tampered));
    assert_eq!(s.len().await.unwrap(), 0);
    assert!(s.key().is_none());
}

/// A session too big for a cookie is a clear error, not a cookie the browser drops.
#[tokio::test]
async fn oversized_sessions_are_an_error() {
    let h = CookieHarness::new().await;
    let mut s = Session::new(h.store(), h.settings(), None);
    // Pseudo-random letters (xorshift) do not compress below the limit.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: String = (0..6000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect();
    let mut map = Map::new();
    map.insert("blob".into(), Value::String(noise));
    s.update(map).await.unwrap();
    let err = s.save().await.unwrap_err();
    assert!(matches!(err, SessionError::Store(StoreError::CookieTooLarge { limit: MAX_COOKIE_BYTES, .. })), "{err:?}");
    assert!(err.to_string().contains("4093"), "{err}");
}

/// Tokens signed with a fallback secret are accepted; new cookies are signed with the current secret.
#[tokio::test]
async fn fallback_secrets_verify() {
    let old = Settings::with_secret_key("old-secret");
    let old_store = CookieStore::new(&old).unwrap();
    let Value::Object(data) = json!({"user": 1}) else { unreachable!() };
    let token = SessionKey::parse(&old_store.token(&data, time::OffsetDateTime::now_utc())).unwrap();
    let h = CookieHarness::new().await;
    assert_eq!(h.store.load(&token).await.unwrap().unwrap().data, data);
    let without_fallback = CookieStore::new(&Settings::with_secret_key("test-secret-key")).unwrap();
    assert!(without_fallback.load(&token).await.unwrap().is_none());
}
