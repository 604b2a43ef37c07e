//! [`SessionLayer`]: Django's `SessionMiddleware` as a tower layer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use http::header::{SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use sessionkit::audit::AuditHook;
use sessionkit::auth::DjangoAuth;
use sessionkit::{SessionError, SessionStore, Settings, StoreError};
use tower_layer::Layer;
use tower_service::Service;

use crate::cookie_header::{delete_cookie_header, session_cookie_header};
use crate::extract::{failure_body, store_error_status, Session};
use crate::request_cookie::session_cookie;

/// Adds a lazily loaded [`Session`] to every request and saves it afterwards, as Django's middleware does.
#[derive(Clone, Debug)]
pub struct SessionLayer {
    store: Arc<dyn SessionStore>,
    settings: Arc<Settings>,
    django_auth: Option<Arc<DjangoAuth>>,
    audit: Option<Audit>,
}

/// The audit hook of a layer (a newtype so the layer stays `Debug`).
#[derive(Clone)]
struct Audit(Arc<dyn AuditHook>);

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditHook")
    }
}

impl SessionLayer {
    /// A layer over `store` with `settings` (cookie name and attributes, ages, `SESSION_SAVE_EVERY_REQUEST`).
    pub fn new(store: Arc<dyn SessionStore>, settings: impl Into<Arc<Settings>>) -> Self {
        SessionLayer { store, settings: settings.into(), django_auth: None, audit: None }
    }

    /// Reports every request's session events (login, logout, revocation, expiry by a lifetime rule, merged
    /// writes) to `hook`; see [`sessionkit::audit`].
    pub fn with_audit(mut self, hook: Arc<dyn AuditHook>) -> Self {
        self.audit = Some(Audit(hook));
        self
    }

    /// Makes the Django auth bridge available to handlers: the [`DjangoUser`](crate::DjangoUser) extractor
    /// gives the verified Django user of the request.
    pub fn with_django_auth(mut self, auth: impl Into<Arc<DjangoAuth>>) -> Self {
        self.django_auth = Some(auth.into());
        self
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            store: Arc::clone(&self.store),
            settings: Arc::clone(&self.settings),
            django_auth: self.django_auth.clone(),
            audit: self.audit.clone(),
        }
    }
}

/// The service [`SessionLayer`] wraps around an inner service.
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    inner: S,
    store: Arc<dyn SessionStore>,
    settings: Arc<Settings>,
    django_auth: Option<Arc<DjangoAuth>>,
    audit: Option<Audit>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<&'static str> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let cookie = session_cookie(request.headers(), &self.settings.cookie_name);
        let cookie_sent = cookie.was_sent();
        let mut core =
            sessionkit::Session::from_cookie(Arc::clone(&self.store), Arc::clone(&self.settings), cookie.value());
        if let Some(Audit(hook)) = &self.audit {
            core = core.with_audit(Arc::clone(hook));
        }
        let session = Session::new(core);
        request.extensions_mut().insert(session.clone());
        if let Some(auth) = &self.django_auth {
            request.extensions_mut().insert(Arc::clone(auth));
        }
        // The clone that was made ready is the one to call; keep a fresh clone for the next request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let settings = Arc::clone(&self.settings);
        Box::pin(async move {
            let mut response = inner.call(request).await?;
            finish_response(&session, cookie_sent, &settings, &mut response).await;
            Ok(response)
        })
    }
}

/// Django's `SessionMiddleware.process_response`.
async fn finish_response<B: From<&'static str>>(
    session: &Session,
    cookie_sent: bool,
    settings: &Settings,
    response: &mut Response<B>,
) {
    let mut core = session.0.lock().await;
    let empty = core.is_empty();
    let mut vary_cookie = core.is_accessed();
    if cookie_sent && empty {
        append_header(response, delete_cookie_header(settings));
        vary_cookie = true;
    } else if (core.is_modified() || settings.save_every_request || core.touch_due())
        && !empty
        && response.status().as_u16() < 500
    {
        // Django skips the save (and the cookie) for 5xx responses. An unchanged session whose idle-timeout
        // touch is due is "saved" too: the save only moves its expiry (sessionkit::lifetime).
        match save_and_cookie(&mut core, settings).await {
            Ok(set_cookie) => {
                append_header(response, set_cookie);
                vary_cookie = true;
            }
            Err(err) => {
                let status = match &err {
                    SessionError::Store(store_err) => store_error_status(store_err),
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                let store = core.store().describe();
                if status.is_server_error() {
                    tracing::error!(target: "sessionkit", store = %store, error = %err, status = status.as_u16(), "could not save the session");
                } else {
                    // A logout in a concurrent request (Django's SessionInterrupted): the client's race, not ours.
                    tracing::warn!(target: "sessionkit", store = %store, error = %err, status = status.as_u16(), "could not save the session");
                }
                *response = failure_response(status, &err);
                if matches!(err, SessionError::Store(StoreError::SessionVanished)) {
                    vary_cookie = true;
                }
            }
        }
    }
    if vary_cookie {
        patch_vary_cookie(response.headers_mut());
    }
}

/// Saves the session and returns its `Set-Cookie` value.
async fn save_and_cookie(core: &mut sessionkit::Session, settings: &Settings) -> Result<String, SessionError> {
    // Django computes the cookie's age before saving.
    let max_age = if core.expire_at_browser_close().await? { None } else { Some(core.expiry_age().await?) };
    core.save().await?;
    let key = core.key().map(|k| k.as_str()).unwrap_or_default();
    Ok(session_cookie_header(settings, key, max_age, SystemTime::now()))
}

fn failure_response<B: From<&'static str>>(status: StatusCode, err: &SessionError) -> Response<B> {
    let mut response = Response::new(B::from(failure_body(Some(err))));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn append_header<B>(response: &mut Response<B>, set_cookie: String) {
    match HeaderValue::try_from(set_cookie) {
        Ok(value) => {
            response.headers_mut().append(SET_COOKIE, value);
        }
        Err(err) => tracing::error!(target: "sessionkit", error = %err, "session cookie is not a valid header value"),
    }
}

/// Django's `patch_vary_headers(response, ("Cookie",))`: adds `Cookie` unless already listed or `*` is there.
fn patch_vary_cookie(headers: &mut HeaderMap) {
    if !headers.contains_key(VARY) {
        // The common case, without building the list.
        headers.insert(VARY, HeaderValue::from_static("Cookie"));
        return;
    }
    let existing: Vec<String> = headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    if existing.iter().any(|v| v == "*" || v.eq_ignore_ascii_case("cookie")) {
        return;
    }
    let mut values = existing;
    values.push("Cookie".to_owned());
    if let Ok(value) = HeaderValue::try_from(values.join(", ")) {
        headers.insert(VARY, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_is_merged_like_patch_vary_headers() {
        let mut headers = HeaderMap::new();
        patch_vary_cookie(&mut headers);
        assert_eq!(headers.get(VARY).unwrap(), "Cookie");
        let mut headers = HeaderMap::new();
        headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        patch_vary_cookie(&mut headers);
        assert_eq!(headers.get(VARY).unwrap(), "Accept-Encoding, Cookie");
        patch_vary_cookie(&mut headers);
        assert_eq!(headers.get(VARY).unwrap(), "Accept-Encoding, Cookie");
        let mut star = HeaderMap::new();
        star.insert(VARY, HeaderValue::from_static("*"));
        patch_vary_cookie(&mut star);
        assert_eq!(star.get(VARY).unwrap(), "*");
    }
}
