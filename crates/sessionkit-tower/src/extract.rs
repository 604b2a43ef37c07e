//! The handler-side API: [`Session`] (an axum extractor) and [`SessionFailure`] (its error response).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use sessionkit::{Expiry, SessionError, SessionKey, StoreError};
use time::OffsetDateTime;
use tokio::sync::{Mutex, MutexGuard};

/// The current request's session, shared between the handler and the [`SessionLayer`](crate::SessionLayer).
///
/// Cheap to clone. Every method locks the session for the duration of one call; use [`Session::lock`] to do
/// several things under one lock. Data is loaded from the store on first use, once per request.
#[derive(Clone, Debug)]
pub struct Session(pub(crate) Arc<Mutex<sessionkit::Session>>);

impl Session {
    /// Wraps a core session (the layer does this for each request).
    pub fn new(session: sessionkit::Session) -> Self {
        Session(Arc::new(Mutex::new(session)))
    }

    /// Locks the core session for several operations in a row.
    pub async fn lock(&self) -> MutexGuard<'_, sessionkit::Session> {
        self.0.lock().await
    }

    /// The session key, if the session has one (it gets one when first saved).
    ///
    /// Before the data is loaded this is the key from the cookie, unchecked; a key the store does not know is
    /// dropped by the first load. Touch the data first (or use [`Session::loaded_key`]) when it matters.
    pub async fn key(&self) -> Option<SessionKey> {
        self.0.lock().await.key().cloned()
    }

    /// The session key after loading the data: `None` for a new session or an unknown cookie key.
    pub async fn loaded_key(&self) -> Result<Option<SessionKey>, SessionError> {
        let mut session = self.0.lock().await;
        session.data().await?;
        Ok(session.key().cloned())
    }

    /// True when `key` is present.
    pub async fn contains_key(&self, key: &str) -> Result<bool, SessionError> {
        self.0.lock().await.contains_key(key).await
    }

    /// The keys in insertion order.
    pub async fn keys(&self) -> Result<Vec<String>, SessionError> {
        self.0.lock().await.keys().await
    }

    /// Number of keys.
    pub async fn len(&self) -> Result<usize, SessionError> {
        self.0.lock().await.len().await
    }

    /// True when the session holds no data.
    pub async fn is_empty(&self) -> Result<bool, SessionError> {
        Ok(self.0.lock().await.len().await? == 0)
    }

    /// Sets several keys at once.
    pub async fn update<K: Into<String>>(
        &self,
        pairs: impl IntoIterator<Item = (K, Value)>,
    ) -> Result<(), SessionError> {
        self.0.lock().await.update(pairs).await
    }

    /// Seconds until expiry, counted from now.
    pub async fn expiry_age(&self) -> Result<i64, SessionError> {
        self.0.lock().await.expiry_age().await
    }

    /// A copy of the whole data as an ordered JSON map.
    pub async fn to_map(&self) -> Result<serde_json::Map<String, Value>, SessionError> {
        Ok(self.0.lock().await.data().await?.as_map().clone())
    }

    /// The value under `key`, deserialized. A stored value of another type is [`SessionError::WrongType`]
    /// (a 500 through [`SessionFailure`]); for values other programs write (a Django site sharing the session),
    /// prefer [`Session::get_value`] and parse leniently.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        self.0.lock().await.get(key).await
    }

    /// The JSON value under `key`.
    pub async fn get_value(&self, key: &str) -> Result<Option<Value>, SessionError> {
        self.0.lock().await.get_value(key).await
    }

    /// Sets `key`.
    pub async fn set(&self, key: &str, value: impl Serialize) -> Result<(), SessionError> {
        self.0.lock().await.set(key, value).await
    }

    /// Removes `key`, returning its value.
    pub async fn pop(&self, key: &str) -> Result<Option<Value>, SessionError> {
        self.0.lock().await.pop(key).await
    }

    /// Returns the value under `key`, setting it to `default` first if absent.
    pub async fn setdefault(&self, key: &str, default: impl Serialize) -> Result<Value, SessionError> {
        self.0.lock().await.setdefault(key, default).await
    }

    /// The key/value pairs in insertion order.
    pub async fn items(&self) -> Result<Vec<(String, Value)>, SessionError> {
        self.0.lock().await.items().await
    }

    /// Removes all data (the key stays; use [`Session::flush`] at logout).
    pub async fn clear(&self) {
        self.0.lock().await.clear();
    }

    /// Sets or removes the custom expiry.
    pub async fn set_expiry(&self, expiry: Expiry) -> Result<(), SessionError> {
        self.0.lock().await.set_expiry(expiry).await
    }

    /// The custom expiry.
    pub async fn expiry(&self) -> Result<Expiry, SessionError> {
        self.0.lock().await.expiry().await
    }

    /// When the session expires if saved now.
    pub async fn expiry_date(&self) -> Result<OffsetDateTime, SessionError> {
        self.0.lock().await.expiry_date().await
    }

    /// Whether the cookie expires when the browser closes.
    pub async fn expire_at_browser_close(&self) -> Result<bool, SessionError> {
        self.0.lock().await.expire_at_browser_close().await
    }

    /// Moves the data to a new key and deletes the old one. Call it at login.
    pub async fn cycle_key(&self) -> Result<(), SessionError> {
        self.0.lock().await.cycle_key().await
    }

    /// Deletes the session and its cookie. Call it at logout.
    pub async fn flush(&self) -> Result<(), SessionError> {
        self.0.lock().await.flush().await
    }

    /// The logged-in Django user id (`_auth_user_id`), if any.
    pub async fn auth_user_id(&self) -> Result<Option<String>, SessionError> {
        self.0.lock().await.auth_user_id().await
    }

    /// Records the client's user agent and IP for the per-user index (writes only what changed).
    pub async fn record_client(&self, user_agent: Option<&str>, ip: Option<&str>) -> Result<(), SessionError> {
        self.0.lock().await.record_client(user_agent, ip).await
    }

    /// The logged-in user's sessions (needs a store with a per-user index, such as Redis).
    pub async fn user_sessions(&self) -> Result<Vec<sessionkit::store::UserSession>, SessionError> {
        self.0.lock().await.user_sessions().await
    }

    /// "Log out other devices": deletes every other session of the logged-in user; returns how many.
    pub async fn log_out_other_devices(&self) -> Result<u64, SessionError> {
        self.0.lock().await.log_out_other_devices().await
    }

    /// The verified Django user of this session ([`sessionkit::auth::DjangoAuth::current_user`]): a failed
    /// hash check flushes the session, a fallback-secret hash is rewritten, as Django does.
    pub async fn django_user(
        &self,
        auth: &sessionkit::auth::DjangoAuth,
    ) -> Result<Option<sessionkit::auth::VerifiedUser>, SessionError> {
        auth.current_user(&mut *self.0.lock().await).await
    }

    /// Logs a Django user in on this session ([`sessionkit::auth::DjangoAuth::log_in`]); Django's
    /// `request.user` is then that user on the Django side of the same cookie.
    pub async fn django_log_in(
        &self,
        auth: &sessionkit::auth::DjangoAuth,
        user_id: &str,
        backend: Option<&str>,
    ) -> Result<sessionkit::auth::VerifiedUser, SessionError> {
        auth.log_in(&mut *self.0.lock().await, user_id, backend).await
    }

    /// Marks the session modified so it is saved at the end of the request.
    pub async fn mark_modified(&self) {
        self.0.lock().await.mark_modified();
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionFailure;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Session>().cloned().ok_or(SessionFailure::LayerMissing)
    }
}

/// A session problem turned into a response: handlers return `Result<_, SessionFailure>` and use `?` on session
/// calls.
///
/// | cause | status |
/// |-------|--------|
/// | store unreachable or failing | 503 Service Unavailable (logged with the store and cause) |
/// | so many parallel writes to the session that this save never got in ([`StoreError::Contended`]) | 503 Service Unavailable |
/// | session deleted by a concurrent request | 400 Bad Request (Django's `SessionInterrupted`) |
/// | a per-user operation on a session without a logged-in user | 403 Forbidden |
/// | value of the wrong type, anything else | 500 Internal Server Error |
#[derive(Debug, thiserror::Error)]
pub enum SessionFailure {
    /// A session call failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The handler asked for a [`Session`] but no [`SessionLayer`](crate::SessionLayer) is installed.
    #[error("no SessionLayer is installed on this route")]
    LayerMissing,
}

impl From<StoreError> for SessionFailure {
    fn from(err: StoreError) -> Self {
        SessionFailure::Session(SessionError::Store(err))
    }
}

impl SessionFailure {
    /// The status this failure answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            SessionFailure::Session(SessionError::Store(err)) => store_error_status(err),
            SessionFailure::Session(SessionError::NotLoggedIn) => StatusCode::FORBIDDEN,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

pub(crate) fn store_error_status(err: &StoreError) -> StatusCode {
    match err {
        StoreError::SessionVanished => StatusCode::BAD_REQUEST,
        StoreError::Unavailable { .. } | StoreError::Contended { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The plain-text body of a session failure response.
pub(crate) fn failure_body(err: Option<&SessionError>) -> &'static str {
    match err {
        Some(SessionError::Store(StoreError::SessionVanished)) => {
            "Bad Request: the session was deleted before the request completed."
        }
        Some(SessionError::Store(StoreError::Unavailable { .. })) => {
            "Service Unavailable: the session store cannot be reached."
        }
        Some(SessionError::Store(StoreError::Contended { .. })) => {
            "Service Unavailable: too many requests changed this session at once; try again."
        }
        Some(SessionError::NotLoggedIn) => "Forbidden: this needs a logged-in session.",
        _ => "Internal Server Error",
    }
}

impl IntoResponse for SessionFailure {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            SessionFailure::Session(err) => failure_body(Some(err)),
            SessionFailure::LayerMissing => failure_body(None),
        };
        if status.is_server_error() {
            tracing::error!(target: "sessionkit", error = %self, status = status.as_u16(), "session failure");
        } else {
            tracing::warn!(target: "sessionkit", error = %self, status = status.as_u16(), "session failure");
        }
        (status, body).into_response()
    }
}
