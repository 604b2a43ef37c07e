//! A blank secret (empty or whitespace-only) in `SECRET_KEY` or `SECRET_KEY_FALLBACKS` lets anyone sign a
//! session that is then accepted; every place that takes secrets refuses it with one configuration error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::{json, Map};
use sessionkit::auth::{DjangoAuth, StaticUsers};
use sessionkit::codec::{Signer, SIGNED_COOKIES_SALT};
use sessionkit::store::cookie::CookieStore;
use sessionkit::store::SignedSessionCodec;
use sessionkit::{open_store, ConfigError, SecretKey, SessionKey, SessionStore, Settings, StoreError};

fn with_fallbacks(fallbacks: &[&str]) -> Settings {
    Settings {
        secret_key_fallbacks: fallbacks.iter().map(|f| SecretKey::from(*f)).collect(),
        ..Settings::with_secret_key("the-real-secret")
    }
}

const BLANK: [&[&str]; 3] = [&[""], &["old", "   "], &["\t\n"]];

/// What an attacker does with `SECRET_KEY_FALLBACKS = [""]`: sign a login for user 1 with the empty secret.
fn forged_cookie() -> String {
    let mut data = Map::new();
    data.insert("_auth_user_id".into(), json!("1"));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Signer::new(SIGNED_COOKIES_SALT, SecretKey::from(""), vec![]).sign_object(&data, true, now)
}

#[tokio::test]
async fn the_cookie_store_refuses_blank_fallbacks() {
    for fallbacks in BLANK {
        let err = CookieStore::new(&with_fallbacks(fallbacks)).unwrap_err();
        assert_eq!(err, ConfigError::BlankSecret { setting: "SECRET_KEY_FALLBACKS" }, "{fallbacks:?}");
        let err = open_store("cookie:", &with_fallbacks(fallbacks)).await.unwrap_err();
        assert!(matches!(err, StoreError::Config(ConfigError::BlankSecret { .. })), "{err:?}");
    }
    // With a real fallback the forged cookie is nobody.
    let store = CookieStore::new(&with_fallbacks(&["old"])).unwrap();
    let forged = SessionKey::parse(&forged_cookie()).unwrap();
    assert!(store.load(&forged).await.unwrap().is_none());
}

#[tokio::test]
async fn signed_data_stores_refuse_blank_secrets() {
    for fallbacks in BLANK {
        assert!(matches!(
            SignedSessionCodec::new(&with_fallbacks(fallbacks)),
            Err(ConfigError::BlankSecret { setting: "SECRET_KEY_FALLBACKS" })
        ));
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.sqlite3").display());
        let err = open_store(&url, &with_fallbacks(fallbacks)).await.unwrap_err();
        assert!(matches!(err, StoreError::Config(ConfigError::BlankSecret { .. })), "{err:?}");
        let err =
            open_store(&format!("file://{}", dir.path().display()), &with_fallbacks(fallbacks)).await.unwrap_err();
        assert!(matches!(err, StoreError::Config(ConfigError::BlankSecret { .. })), "{err:?}");
    }
    let blank_key = Settings::with_secret_key("  ");
    assert_eq!(SignedSessionCodec::new(&blank_key).unwrap_err(), ConfigError::BlankSecret { setting: "SECRET_KEY" });
    assert_eq!(CookieStore::new(&Settings::default()).unwrap_err(), ConfigError::MissingSecretKey);
}

#[test]
fn the_auth_bridge_refuses_blank_secrets() {
    for fallbacks in BLANK {
        let err = DjangoAuth::new(&with_fallbacks(fallbacks), Arc::new(StaticUsers::new())).unwrap_err();
        assert_eq!(err, ConfigError::BlankSecret { setting: "SECRET_KEY_FALLBACKS" });
    }
}

#[test]
fn settings_from_the_environment_refuse_blank_fallbacks() {
    let lookup = |fallbacks: &'static str| {
        move |name: &str| match name {
            "SECRET_KEY" => Some("the-real-secret".to_owned()),
            "SECRET_KEY_FALLBACKS" => Some(fallbacks.to_owned()),
            _ => None,
        }
    };
    for fallbacks in [r#"[""]"#, r#"["old", " "]"#] {
        let err = Settings::from_lookup(lookup(fallbacks)).unwrap_err();
        assert_eq!(err, ConfigError::BlankSecret { setting: "SECRET_KEY_FALLBACKS" }, "{fallbacks}");
    }
    assert_eq!(Settings::from_lookup(lookup(r#"["old"]"#)).unwrap().secret_key_fallbacks, [SecretKey::from("old")]);
}
