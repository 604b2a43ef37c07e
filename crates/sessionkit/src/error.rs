//! Typed errors of the stores and of configuration.

use std::error::Error as StdError;
use std::sync::Arc;

/// Everything a [`SessionStore`](crate::SessionStore) call can fail with.
///
/// Corrupt stored data is not an error on load: Django treats it as an empty session, and so do the stores
/// (with a log line on target `sessionkit::corrupt`). [`StoreError::Corrupt`] is for inspection tools that ask
/// for the data itself.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A create found the key taken (Django's `CreateError`). [`Session`](crate::Session) retries with a new key.
    #[error("a session with this key already exists")]
    KeyCollision,
    /// A save found the session gone: it was deleted (logged out, flushed, expired) while the request used it
    /// (Django's `UpdateError`). It is never re-created silently; the middleware answers 400.
    #[error("the session was deleted before the request completed (for example by a logout in a concurrent request)")]
    SessionVanished,
    /// A save lost the compare-and-set to other writers of the same session every time it tried
    /// ([`MAX_SAVE_ATTEMPTS`](crate::store::merge::MAX_SAVE_ATTEMPTS) times): so many requests write this session
    /// at once that this one could not get its changes in. Nothing of this request was written; trying again
    /// later is safe. The middleware answers 503.
    #[error("other requests kept writing the session while this one tried to save it ({attempts} attempts); nothing was saved, try again")]
    Contended {
        /// How many compare-and-set writes were tried (0: a compare-only save of a record that was never loaded,
        /// which has nothing to compare with).
        attempts: usize,
    },
    /// The key has characters other than `a-z0-9` or is longer than 64 characters, and this store puts keys
    /// into file names, SQL or Redis keys. Loads treat such a key as "no session", saves as a vanished session
    /// ([`StoreError::SessionVanished`], as for any unknown key); creates refuse it with this error.
    #[error("this store refuses session keys outside [a-z0-9] or longer than 64 characters")]
    UnsafeKey,
    /// The signed-cookies store cannot send the session: the cookie would exceed the 4093 bytes browsers keep
    /// (Django's limit check). Store less in the session or use a server-side store.
    #[error("the session cookie would be {bytes} bytes, more than the {limit} a browser keeps; store less in the session or use a server-side store")]
    CookieTooLarge {
        /// Size of `name=value`.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// Stored data could not be decoded.
    #[error("stored session data is corrupt: {0}")]
    Corrupt(String),
    /// The store could not be reached or failed; `store` names it (e.g. `sqlite:///var/db.sqlite3`).
    #[error("session store {store} is unavailable: {source}")]
    Unavailable {
        /// Which store failed, without credentials.
        store: String,
        /// The underlying error.
        #[source]
        source: Arc<dyn StdError + Send + Sync>,
    },
    /// The store is configured wrongly (bad URL, a table of another shape, a missing secret).
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl StoreError {
    /// Wraps a backend error as [`StoreError::Unavailable`].
    pub fn unavailable(store: impl Into<String>, source: impl StdError + Send + Sync + 'static) -> Self {
        StoreError::Unavailable { store: store.into(), source: Arc::new(source) }
    }
}

/// Bad configuration: settings, store URLs, schemas.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting has a value that cannot be used.
    #[error("setting {name} has an invalid value {value:?}: expected {expected}")]
    InvalidSetting {
        /// The setting's name, e.g. `SESSION_COOKIE_AGE`.
        name: &'static str,
        /// The value given.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// `SECRET_KEY` is empty but a store that signs data needs it.
    #[error("SECRET_KEY is empty: a store that signs session data needs it (set the SECRET_KEY environment variable or Settings::secret_key)")]
    MissingSecretKey,
    /// `SECRET_KEY` is only whitespace, or `SECRET_KEY_FALLBACKS` has an empty or whitespace-only entry: anyone
    /// could sign sessions that are then accepted.
    #[error("{setting} has an empty or whitespace-only secret: anyone could sign sessions (and login hashes) that would be accepted; remove that entry or set a real secret")]
    BlankSecret {
        /// `SECRET_KEY` or `SECRET_KEY_FALLBACKS`.
        setting: &'static str,
    },
    /// The store URL cannot be parsed or names no known store.
    #[error("invalid store URL {url:?}: {reason}")]
    InvalidStoreUrl {
        /// The URL, with any password removed.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A store's existing schema differs from what Django (and sessionkit) use.
    #[error("{0}")]
    SchemaMismatch(String),
    /// A store opened only to read ([`open_store_read_only`](crate::store::open_store_read_only)) does not exist:
    /// no such SQLite file, no `django_session` table. The message names what is missing.
    #[error("{0}")]
    NoSuchStore(String),
    /// The Redis layout record under the key prefix names another shape than the store was configured with
    /// (layout, bucket count, hashed keys, value format): reading with this configuration would find none of the
    /// sessions. The message names both shapes and the fixes.
    #[error("{0}")]
    LayoutMismatch(String),
    /// Settings that are valid one by one but contradict each other (a touch interval not shorter than the idle
    /// timeout). The message names them and the fix.
    #[error("{0}")]
    ConflictingSettings(String),
}
