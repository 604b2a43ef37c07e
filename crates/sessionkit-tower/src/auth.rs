//! [`DjangoUser`]: the verified Django user of a request, for handlers.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;
use sessionkit::auth::{DjangoAuth, VerifiedUser};

use crate::extract::{Session, SessionFailure};

/// The Django user logged in on this request's session, verified as Django's `get_user()` verifies it (backend
/// allowed, user exists and is active, `_auth_user_hash` matches the user's password field under the secret key
/// or a fallback).
///
/// Needs [`SessionLayer::with_django_auth`](crate::SessionLayer::with_django_auth). As in Django, a mismatched
/// hash is treated as logged out and flushes the session; a hash made with a fallback secret is rewritten.
///
/// Take `DjangoUser` in a handler that requires a login (anonymous requests get [`NotLoggedIn`], a 401), or
/// `Option<DjangoUser>` to handle anonymous requests yourself. The check runs once per request however many
/// extractors ask.
///
/// ```no_run
/// use sessionkit_tower::DjangoUser;
///
/// async fn whoami(user: DjangoUser) -> String {
///     format!("Django user {}", user.user_id)
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DjangoUser {
    /// The user's primary key, as Django stored it in `_auth_user_id`.
    pub user_id: String,
    /// The authentication backend's dotted path.
    pub backend: String,
}

impl From<VerifiedUser> for DjangoUser {
    fn from(user: VerifiedUser) -> Self {
        DjangoUser { user_id: user.user_id, backend: user.backend }
    }
}

/// Why a [`DjangoUser`] could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum NotLoggedIn {
    /// The session holds no valid Django login (401 Unauthorized).
    #[error("no Django user is logged in on this session")]
    Anonymous,
    /// [`SessionLayer::with_django_auth`](crate::SessionLayer::with_django_auth) was not called (500).
    #[error("SessionLayer::with_django_auth was not configured on this route")]
    AuthMissing,
    /// The session or the user source failed (status as for [`SessionFailure`]).
    #[error(transparent)]
    Session(#[from] SessionFailure),
}

impl IntoResponse for NotLoggedIn {
    fn into_response(self) -> Response {
        match self {
            NotLoggedIn::Anonymous => {
                (StatusCode::UNAUTHORIZED, "Unauthorized: log in to see this page.").into_response()
            }
            NotLoggedIn::AuthMissing => {
                tracing::error!(target: "sessionkit", "DjangoUser extractor used without SessionLayer::with_django_auth");
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
            }
            NotLoggedIn::Session(failure) => failure.into_response(),
        }
    }
}

/// The result of the check, cached in the request's extensions.
#[derive(Clone)]
struct Checked(Option<DjangoUser>);

async fn check(parts: &mut Parts) -> Result<Option<DjangoUser>, NotLoggedIn> {
    if let Some(Checked(user)) = parts.extensions.get::<Checked>() {
        return Ok(user.clone());
    }
    let auth = parts.extensions.get::<Arc<DjangoAuth>>().cloned().ok_or(NotLoggedIn::AuthMissing)?;
    let session = parts.extensions.get::<Session>().cloned().ok_or(SessionFailure::LayerMissing)?;
    let user = session.django_user(&auth).await.map_err(SessionFailure::from)?.map(DjangoUser::from);
    parts.extensions.insert(Checked(user.clone()));
    Ok(user)
}

impl<S: Send + Sync> FromRequestParts<S> for DjangoUser {
    type Rejection = NotLoggedIn;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        check(parts).await?.ok_or(NotLoggedIn::Anonymous)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for DjangoUser {
    type Rejection = NotLoggedIn;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        check(parts).await
    }
}
