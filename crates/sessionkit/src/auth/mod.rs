//! The Django auth bridge: who is logged in to a Django session, verified as Django verifies it.
//!
//! `django.contrib.auth.login()` puts three keys into the session:
//! - `_auth_user_id`: the user's primary key as a string (`"1"`);
//! - `_auth_user_backend`: the dotted path of the authentication backend
//!   (`django.contrib.auth.backends.ModelBackend`);
//! - `_auth_user_hash`: [`session_auth_hash`] of the user's password field, so that a password change logs
//!   the user out everywhere.
//!
//! On every request Django's `get_user()` checks that the backend is one of `AUTHENTICATION_BACKENDS`, loads
//! the user (`ModelBackend` refuses inactive users), and compares the stored hash with the user's current one
//! in constant time. A hash made with one of `SECRET_KEY_FALLBACKS` is accepted, and Django then cycles the
//! session key and rewrites the hash with the current secret. A missing or wrong hash flushes the session: the
//! user is logged out.
//!
//! [`DjangoAuth`] does the same from Rust. The user's password field comes from a [`UserSource`]: Django's
//! `auth_user` table ([`SqlUserSource`], when the project uses a SQL database sessionkit can reach) or values
//! the caller supplies ([`StaticUsers`], or any type implementing the trait).
//!
//! ```
//! use std::sync::Arc;
//! use sessionkit::auth::{session_auth_hash, DjangoAuth, StaticUsers, Verification};
//! use sessionkit::{SecretKey, Settings};
//!
//! # tokio_test_block_on(async {
//! let settings = Settings::with_secret_key("django-insecure-example");
//! let password = "pbkdf2_sha256$1000000$salt$hash=";
//! let users = StaticUsers::new().with_user("1", password, true);
//! let auth = DjangoAuth::new(&settings, Arc::new(users)).unwrap();
//!
//! let mut data = serde_json::Map::new();
//! data.insert("_auth_user_id".into(), "1".into());
//! data.insert("_auth_user_backend".into(), "django.contrib.auth.backends.ModelBackend".into());
//! data.insert("_auth_user_hash".into(), session_auth_hash(password, &settings.secret_key).into());
//! match auth.verify(&data).await.unwrap() {
//!     Verification::Verified(user) => assert_eq!(user.user_id, "1"),
//!     other => panic!("not verified: {other:?}"),
//! }
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::{ConfigError, SecretKey, Session, SessionError, Settings, StoreError};

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod sql;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub use sql::{SqlUserSource, UserTable};

/// Session key holding the logged-in user's primary key (Django's `auth.SESSION_KEY`).
pub const USER_ID_KEY: &str = "_auth_user_id";
/// Session key holding the dotted path of the backend that authenticated the user.
pub const BACKEND_KEY: &str = "_auth_user_backend";
/// Session key holding the session auth hash (Django's `auth.HASH_SESSION_KEY`).
pub const HASH_KEY: &str = "_auth_user_hash";
/// Where Django keeps the CSRF token when `CSRF_USE_SESSIONS = True`; a login removes it (Django rotates it).
pub const CSRF_SESSION_KEY: &str = "_csrftoken";
/// Django's default authentication backend.
pub const MODEL_BACKEND: &str = "django.contrib.auth.backends.ModelBackend";
/// The `key_salt` of `AbstractBaseUser.get_session_auth_hash`.
const SESSION_AUTH_HASH_SALT: &str = "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash";

/// `AbstractBaseUser.get_session_auth_hash()`: HMAC-SHA256 of the user's password field, keyed with
/// SHA-256(salt + secret), as 64 lowercase hex digits (Django's `salted_hmac(..., algorithm="sha256")`).
pub fn session_auth_hash(password_field: &str, secret: &SecretKey) -> String {
    let key = Sha256::new().chain_update(SESSION_AUTH_HASH_SALT.as_bytes()).chain_update(secret.expose()).finalize();
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = match Hmac::<Sha256>::new_from_slice(&key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(password_field.as_bytes());
    hex_lower(&mac.finalize().into_bytes())
}

fn hex_lower(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

/// Django's `constant_time_compare` for two hex strings.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a session claims about its login, before any verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DjangoLogin {
    /// `_auth_user_id`: the user's primary key as Django wrote it.
    pub user_id: String,
    /// `_auth_user_backend`: the dotted path of the backend.
    pub backend: String,
    /// `_auth_user_hash`, when present.
    pub hash: Option<String>,
}

impl DjangoLogin {
    /// Reads the three auth keys from session data. `None` when `_auth_user_id` or `_auth_user_backend` is
    /// missing or not a string (Django then treats the request as anonymous).
    pub fn from_data(data: &Map<String, Value>) -> Option<DjangoLogin> {
        let user_id = data.get(USER_ID_KEY)?.as_str()?.to_owned();
        let backend = data.get(BACKEND_KEY)?.as_str()?.to_owned();
        let hash = data.get(HASH_KEY).and_then(Value::as_str).map(str::to_owned);
        Some(DjangoLogin { user_id, backend, hash })
    }
}

/// The fields of a Django user the bridge needs.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// The `password` column exactly as stored (`pbkdf2_sha256$...`, or `!...` for an unusable password).
    pub password: String,
    /// `is_active`: `ModelBackend` treats an inactive user as logged out.
    pub is_active: bool,
}

impl fmt::Debug for AuthUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password field is a hash, but it still stays out of logs.
        f.debug_struct("AuthUser").field("password", &"<redacted>").field("is_active", &self.is_active).finish()
    }
}

/// Where the bridge finds a user's password field.
#[async_trait]
pub trait UserSource: Send + Sync + fmt::Debug {
    /// The user whose primary key Django wrote as `user_id`, or `None` when there is no such user.
    async fn find_user(&self, user_id: &str) -> Result<Option<AuthUser>, StoreError>;
}

/// Users supplied by the caller, e.g. from the application's own user service.
#[derive(Debug, Clone, Default)]
pub struct StaticUsers {
    users: HashMap<String, AuthUser>,
}

impl StaticUsers {
    /// No users.
    pub fn new() -> Self {
        StaticUsers::default()
    }

    /// Adds (or replaces) a user by primary key.
    pub fn with_user(mut self, user_id: impl Into<String>, password_field: impl Into<String>, is_active: bool) -> Self {
        self.users.insert(user_id.into(), AuthUser { password: password_field.into(), is_active });
        self
    }
}

#[async_trait]
impl UserSource for StaticUsers {
    async fn find_user(&self, user_id: &str) -> Result<Option<AuthUser>, StoreError> {
        Ok(self.users.get(user_id).cloned())
    }
}

/// A login that passed Django's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUser {
    /// The user's primary key, as stored in `_auth_user_id`.
    pub user_id: String,
    /// The backend that authenticated the user.
    pub backend: String,
}

/// Why a session that names a user does not count as logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// `_auth_user_backend` is not one of the configured backends. Django: anonymous, session kept.
    UnknownBackend,
    /// No user has that primary key. Django: anonymous, session kept.
    UnknownUser,
    /// The user is not active (`ModelBackend.user_can_authenticate`). Django: anonymous, session kept.
    Inactive,
    /// `_auth_user_hash` is missing or empty. Django flushes the session.
    MissingHash,
    /// `_auth_user_hash` matches neither the secret key nor a fallback (the password changed, or the hash was
    /// forged). Django flushes the session.
    HashMismatch,
}

impl Rejection {
    /// Whether Django flushes the session for this reason (a failed hash check), rather than only treating
    /// the request as anonymous.
    pub fn flushes_session(self) -> bool {
        matches!(self, Rejection::MissingHash | Rejection::HashMismatch)
    }
}

/// The outcome of [`DjangoAuth::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The session holds no login (`_auth_user_id` or `_auth_user_backend` missing).
    Anonymous,
    /// A valid login, hashed with the current secret key.
    Verified(VerifiedUser),
    /// A valid login whose hash was made with one of the fallback secrets: Django accepts it, cycles the
    /// session key and rewrites the hash (see [`DjangoAuth::current_user`]).
    VerifiedWithFallback(VerifiedUser),
    /// The session names a user but the login does not hold.
    Rejected(Rejection),
}

/// Verifies Django logins and logs users in the way `django.contrib.auth` does.
#[derive(Debug, Clone)]
pub struct DjangoAuth {
    secret: SecretKey,
    fallbacks: Vec<SecretKey>,
    backends: Vec<String>,
    check_is_active: bool,
    users: Arc<dyn UserSource>,
}

impl DjangoAuth {
    /// A bridge using `settings.secret_key` (and fallbacks), accepting logins by Django's `ModelBackend`, with
    /// users from `users`.
    pub fn new(settings: &Settings, users: Arc<dyn UserSource>) -> Result<Self, ConfigError> {
        crate::secret::check_secrets(&settings.secret_key, &settings.secret_key_fallbacks)?;
        Ok(DjangoAuth {
            secret: settings.secret_key.clone(),
            fallbacks: settings.secret_key_fallbacks.clone(),
            backends: vec![MODEL_BACKEND.to_owned()],
            check_is_active: true,
            users,
        })
    }

    /// Django's `AUTHENTICATION_BACKENDS`: logins by other backends count as anonymous. Every listed backend is
    /// assumed to load users by primary key from the same [`UserSource`], as `ModelBackend` does.
    pub fn with_backends(mut self, backends: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.backends = backends.into_iter().map(Into::into).collect();
        self
    }

    /// Whether inactive users count as logged out (`ModelBackend`, the default) or not
    /// (`AllowAllUsersModelBackend`).
    pub fn with_inactive_users_rejected(mut self, reject: bool) -> Self {
        self.check_is_active = reject;
        self
    }

    /// Checks the login held in `data`, as Django's `get_user()` does, without changing anything.
    pub async fn verify(&self, data: &Map<String, Value>) -> Result<Verification, StoreError> {
        Ok(self.check(data).await?.0)
    }

    /// [`DjangoAuth::verify`], plus the user record it was decided on (one lookup, so a rehash uses the same
    /// password field the check used).
    async fn check(&self, data: &Map<String, Value>) -> Result<(Verification, Option<AuthUser>), StoreError> {
        let Some(login) = DjangoLogin::from_data(data) else {
            return Ok((Verification::Anonymous, None));
        };
        if !self.backends.contains(&login.backend) {
            return Ok((Verification::Rejected(Rejection::UnknownBackend), None));
        }
        let Some(user) = self.users.find_user(&login.user_id).await? else {
            return Ok((Verification::Rejected(Rejection::UnknownUser), None));
        };
        if self.check_is_active && !user.is_active {
            return Ok((Verification::Rejected(Rejection::Inactive), None));
        }
        let verified = VerifiedUser { user_id: login.user_id, backend: login.backend };
        let stored = match login.hash.as_deref() {
            None | Some("") => return Ok((Verification::Rejected(Rejection::MissingHash), None)),
            Some(hash) => hash,
        };
        let verification = if constant_time_eq(stored, &session_auth_hash(&user.password, &self.secret)) {
            Verification::Verified(verified)
        } else if self
            .fallbacks
            .iter()
            .any(|secret| constant_time_eq(stored, &session_auth_hash(&user.password, secret)))
        {
            Verification::VerifiedWithFallback(verified)
        } else {
            Verification::Rejected(Rejection::HashMismatch)
        };
        Ok((verification, Some(user)))
    }

    /// Django's `get_user(request)` on a live session: the verified user, or `None` for anonymous.
    ///
    /// Like Django, a failed hash check flushes the session (the user is logged out and the stored session is
    /// deleted), and a hash made with a fallback secret cycles the session key and is rewritten with the
    /// current secret. The other rejections leave the session alone. Each rejection is logged at debug level
    /// on target `sessionkit::auth`.
    pub async fn current_user(&self, session: &mut Session) -> Result<Option<VerifiedUser>, SessionError> {
        let (verification, record) = self.check(session.data().await?.as_map()).await?;
        match verification {
            Verification::Anonymous => Ok(None),
            Verification::Verified(user) => Ok(Some(user)),
            Verification::VerifiedWithFallback(user) => {
                // The password field the fallback hash was checked against, not a second read: a password
                // changed in between must not be signed into this session.
                let Some(record) = record else { return Ok(None) };
                session.cycle_key().await?;
                session.set(HASH_KEY, session_auth_hash(&record.password, &self.secret)).await?;
                tracing::info!(target: "sessionkit::auth", user_id = %user.user_id, "session auth hash made with a fallback secret; rewritten with the current one");
                Ok(Some(user))
            }
            Verification::Rejected(reason) => {
                tracing::debug!(target: "sessionkit::auth", ?reason, "session login rejected");
                if reason.flushes_session() {
                    session.flush().await?;
                }
                Ok(None)
            }
        }
    }

    /// Django's `login(request, user, backend)`: logs `user_id` in on `session`.
    ///
    /// As in Django, a session already logged in as another user (or with another hash) is flushed first, so
    /// no data leaks between users; otherwise the key is cycled (session fixation) and the data kept. Then
    /// `_auth_user_id`, `_auth_user_backend` (`backend`, or [`MODEL_BACKEND`]) and `_auth_user_hash` are set, and
    /// a session-held CSRF token ([`CSRF_SESSION_KEY`]) is removed, as Django's `rotate_token` replaces it.
    /// Fails with [`SessionError::UnknownUser`] when the user does not exist.
    pub async fn log_in(
        &self,
        session: &mut Session,
        user_id: &str,
        backend: Option<&str>,
    ) -> Result<VerifiedUser, SessionError> {
        let Some(user) = self.users.find_user(user_id).await? else {
            return Err(SessionError::UnknownUser { user_id: user_id.to_owned() });
        };
        let hash = session_auth_hash(&user.password, &self.secret);
        if session.contains_key(USER_ID_KEY).await? {
            let same_user = session.get_value(USER_ID_KEY).await?.as_ref().and_then(Value::as_str) == Some(user_id);
            let stored_hash = session.get_value(HASH_KEY).await?;
            let same_hash = stored_hash.as_ref().and_then(Value::as_str).is_some_and(|h| constant_time_eq(h, &hash));
            if !same_user || !same_hash {
                session.flush().await?;
            }
        } else {
            session.cycle_key().await?;
        }
        // Django's login() ends with rotate_token(): with CSRF_USE_SESSIONS the token lives in the session, and a
        // token planted before the login (session fixation) must not survive it. Django makes a new one when
        // it next needs it. (A CSRF *cookie* is the application's to rotate.)
        session.pop(CSRF_SESSION_KEY).await?;
        let backend = backend.unwrap_or(MODEL_BACKEND).to_owned();
        session.set(USER_ID_KEY, user_id).await?;
        session.set(BACKEND_KEY, &backend).await?;
        session.set(HASH_KEY, hash).await?;
        let id = session.key().map(crate::store::user_index::session_id);
        session.report(|| crate::audit::AuditEvent::LoggedIn { session: id, user_id: user_id.to_owned() });
        Ok(VerifiedUser { user_id: user_id.to_owned(), backend })
    }

    /// Django's `logout(request)`: flushes the session (its data is deleted and a new key is used).
    pub async fn log_out(&self, session: &mut Session) -> Result<(), SessionError> {
        session.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    const PASSWORD: &str = "pbkdf2_sha256$1000000$abc$def=";

    fn settings() -> Settings {
        let mut settings = Settings::with_secret_key("current-secret");
        settings.secret_key_fallbacks = vec![SecretKey::from("old-secret")];
        settings
    }

    fn login_data(hash: Option<String>) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert(USER_ID_KEY.into(), "7".into());
        data.insert(BACKEND_KEY.into(), MODEL_BACKEND.into());
        if let Some(hash) = hash {
            data.insert(HASH_KEY.into(), hash.into());
        }
        data
    }

    fn auth(active: bool) -> DjangoAuth {
        DjangoAuth::new(&settings(), Arc::new(StaticUsers::new().with_user("7", PASSWORD, active))).unwrap()
    }

    #[test]
    fn hash_matches_django_vector() {
        // From ../shared/django-session-vectors.json ("auth_hash"), made by Django 5.2.
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/django-session-vectors.json"
        ))
        .unwrap();
        let vectors: Value = serde_json::from_str(&text).unwrap();
        let case = &vectors["auth_hash"];
        let secret = SecretKey::from(vectors["secret_key"].as_str().unwrap());
        let password = case["password"].as_str().unwrap();
        assert_eq!(session_auth_hash(password, &secret), case["hexdigest"].as_str().unwrap());
    }

    #[tokio::test]
    async fn verification_follows_django_get_user() {
        let s = settings();
        let current = session_auth_hash(PASSWORD, &s.secret_key);
        let old = session_auth_hash(PASSWORD, &SecretKey::from("old-secret"));
        let auth = auth(true);
        let verified = VerifiedUser { user_id: "7".into(), backend: MODEL_BACKEND.into() };
        assert_eq!(auth.verify(&Map::new()).await.unwrap(), Verification::Anonymous);
        assert_eq!(
            auth.verify(&login_data(Some(current.clone()))).await.unwrap(),
            Verification::Verified(verified.clone())
        );
        assert_eq!(auth.verify(&login_data(Some(old))).await.unwrap(), Verification::VerifiedWithFallback(verified));
        assert_eq!(
            auth.verify(&login_data(Some("0".repeat(64)))).await.unwrap(),
            Verification::Rejected(Rejection::HashMismatch)
        );
        assert_eq!(auth.verify(&login_data(None)).await.unwrap(), Verification::Rejected(Rejection::MissingHash));
        assert_eq!(
            auth.verify(&login_data(Some(String::new()))).await.unwrap(),
            Verification::Rejected(Rejection::MissingHash)
        );
        let mut other_backend = login_data(Some(current.clone()));
        other_backend.insert(BACKEND_KEY.into(), "myapp.Backend".into());
        assert_eq!(auth.verify(&other_backend).await.unwrap(), Verification::Rejected(Rejection::UnknownBackend));
        let mut unknown = login_data(Some(current.clone()));
        unknown.insert(USER_ID_KEY.into(), "8".into());
        assert_eq!(auth.verify(&unknown).await.unwrap(), Verification::Rejected(Rejection::UnknownUser));
        let mut not_a_string = login_data(Some(current.clone()));
        not_a_string.insert(USER_ID_KEY.into(), 7.into());
        assert_eq!(auth.verify(&not_a_string).await.unwrap(), Verification::Anonymous);
        assert_eq!(
            super::tests::auth(false).verify(&login_data(Some(current.clone()))).await.unwrap(),
            Verification::Rejected(Rejection::Inactive)
        );
        let allow_inactive = super::tests::auth(false).with_inactive_users_rejected(false);
        assert!(matches!(allow_inactive.verify(&login_data(Some(current))).await.unwrap(), Verification::Verified(_)));
    }

    #[tokio::test]
    async fn live_sessions_are_flushed_or_rehashed_like_django() {
        let s = Arc::new(settings());
        let store: Arc<dyn crate::SessionStore> = Arc::new(MemoryStore::new());
        let auth = auth(true);

        // Log in, save, and read back: verified.
        let mut session = Session::new(store.clone(), s.clone(), None);
        session.set("cart", 3).await.unwrap();
        auth.log_in(&mut session, "7", None).await.unwrap();
        session.save().await.unwrap();
        let key = session.key().unwrap().clone();
        let mut again = Session::new(store.clone(), s.clone(), Some(key.clone()));
        assert_eq!(auth.current_user(&mut again).await.unwrap().unwrap().user_id, "7");
        assert_eq!(again.get::<i64>("cart").await.unwrap(), Some(3), "data survives login, as in Django");

        // A fallback hash is accepted, the key cycles and the hash is rewritten.
        let old = session_auth_hash(PASSWORD, &SecretKey::from("old-secret"));
        again.set(HASH_KEY, &old).await.unwrap();
        again.save().await.unwrap();
        let mut rotated = Session::new(store.clone(), s.clone(), Some(key.clone()));
        assert!(auth.current_user(&mut rotated).await.unwrap().is_some());
        assert_ne!(rotated.key(), Some(&key));
        assert_eq!(rotated.get::<String>(HASH_KEY).await.unwrap(), Some(session_auth_hash(PASSWORD, &s.secret_key)));
        rotated.save().await.unwrap();
        let rotated_key = rotated.key().unwrap().clone();

        // A wrong hash logs out: the session is flushed and gone from the store.
        let mut tampered = Session::new(store.clone(), s.clone(), Some(rotated_key.clone()));
        tampered.set(HASH_KEY, "0".repeat(64)).await.unwrap();
        tampered.save().await.unwrap();
        let mut after = Session::new(store.clone(), s.clone(), Some(rotated_key.clone()));
        assert_eq!(auth.current_user(&mut after).await.unwrap(), None);
        assert!(after.is_empty());
        assert!(store.load(&rotated_key).await.unwrap().is_none());
    }

    #[test]
    fn empty_fallback_secrets_are_refused() {
        let mut s = settings();
        s.secret_key_fallbacks.push(SecretKey::from(""));
        assert!(DjangoAuth::new(&s, Arc::new(StaticUsers::new())).is_err());
    }

    /// A user source whose password changes after the first lookup (a password change racing the request).
    #[derive(Debug, Default)]
    struct ChangingPassword {
        lookups: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl UserSource for ChangingPassword {
        async fn find_user(&self, _user_id: &str) -> Result<Option<AuthUser>, StoreError> {
            let n = self.lookups.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let password = if n == 0 { PASSWORD } else { "pbkdf2_sha256$changed" };
            Ok(Some(AuthUser { password: password.to_owned(), is_active: true }))
        }
    }

    #[tokio::test]
    async fn a_fallback_rehash_uses_the_password_it_checked() {
        let s = Arc::new(settings());
        let store: Arc<dyn crate::SessionStore> = Arc::new(MemoryStore::new());
        let users = Arc::new(ChangingPassword::default());
        let auth = DjangoAuth::new(&s, users.clone()).unwrap();
        let mut session = Session::new(store, s.clone(), None);
        for (key, value) in login_data(Some(session_auth_hash(PASSWORD, &SecretKey::from("old-secret")))) {
            session.set(&key, value).await.unwrap();
        }
        assert!(auth.current_user(&mut session).await.unwrap().is_some());
        assert_eq!(users.lookups.load(std::sync::atomic::Ordering::SeqCst), 1, "one lookup per check");
        // Rewritten for the password that was checked: after the change, the next request is logged out.
        assert_eq!(session.get::<String>(HASH_KEY).await.unwrap(), Some(session_auth_hash(PASSWORD, &s.secret_key)));
        assert!(auth.current_user(&mut session).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn logging_in_removes_a_session_held_csrf_token() {
        let s = Arc::new(settings());
        let store: Arc<dyn crate::SessionStore> = Arc::new(MemoryStore::new());
        let mut session = Session::new(store, s, None);
        session.set(CSRF_SESSION_KEY, "planted-before-login").await.unwrap();
        session.set("cart", 1).await.unwrap();
        auth(true).log_in(&mut session, "7", None).await.unwrap();
        assert_eq!(session.get_value(CSRF_SESSION_KEY).await.unwrap(), None);
        assert_eq!(session.get::<i64>("cart").await.unwrap(), Some(1));
    }

    #[tokio::test]
    async fn logging_in_as_another_user_starts_a_fresh_session() {
        let s = Arc::new(settings());
        let store: Arc<dyn crate::SessionStore> = Arc::new(MemoryStore::new());
        let users = StaticUsers::new().with_user("7", PASSWORD, true).with_user("8", "other", true);
        let auth = DjangoAuth::new(&s, Arc::new(users)).unwrap();
        let mut session = Session::new(store, s, None);
        auth.log_in(&mut session, "7", None).await.unwrap();
        session.set("private", "seven's").await.unwrap();
        auth.log_in(&mut session, "8", Some("myapp.Backend")).await.unwrap();
        assert_eq!(session.get_value("private").await.unwrap(), None);
        assert_eq!(session.get::<String>(BACKEND_KEY).await.unwrap().as_deref(), Some("myapp.Backend"));
        assert!(auth.log_in(&mut session, "9", None).await.is_err());
    }
}
