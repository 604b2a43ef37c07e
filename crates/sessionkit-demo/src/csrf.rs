//! CSRF protection as a Django user knows it (`CsrfViewMiddleware` with `CSRF_USE_SESSIONS = True`).
//!
//! - The secret lives in the session under Django's key `_csrftoken` (32 characters of `a-zA-Z0-9`), so a Django
//!   site sharing the session shares the token.
//! - Forms carry it masked, as Django's `{% csrf_token %}` does: a hidden `csrfmiddlewaretoken` field of 64
//!   characters (a fresh random mask, then the secret shifted by it). The field is read first, then the
//!   `X-CSRFToken` header, masked or not. A secret stored masked (64 characters, as Django before 4.0 kept it) is
//!   unmasked, as Django's `_get_secret` does.
//! - Every request with an unsafe method (anything but GET, HEAD, OPTIONS, TRACE) must carry the token, and a
//!   browser's `Origin` (or, without it, `Sec-Fetch-Site`) must name this site: `http(s)://` + the `Host` header
//!   (`https://` only when `SESSION_COOKIE_SECURE` is on, since the site is then served over HTTPS), or one of the
//!   [`CsrfPolicy::trusted_origins`] (Django's `CSRF_TRUSTED_ORIGINS`, for a proxy that changes the host).
//!   Otherwise 403 with the reason.
//! - A login rotates the secret ([`rotate`]), as Django's `rotate_token`.
//!
//! The session inspector shows the session's data, the secret included: this is a demo that shows everything it
//! stores (its responses are not compressed, so BREACH does not apply).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::Value;
use sessionkit::SessionError;
use sessionkit_tower::Session;

/// Django's session key of the CSRF secret (`django.middleware.csrf.CSRF_SESSION_KEY`).
pub const CSRF_SESSION_KEY: &str = "_csrftoken";
/// The form field that carries the token (`csrfmiddlewaretoken`).
pub const CSRF_FIELD: &str = "csrfmiddlewaretoken";
/// The header that may carry the token instead (Django's `CSRF_HEADER_NAME`, `HTTP_X_CSRFTOKEN`).
pub const CSRF_HEADER: &str = "x-csrftoken";

const ALLOWED_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SECRET_LENGTH: usize = 32;
/// Largest form body read to find the token; the demo's forms are a few dozen bytes.
const MAX_FORM_BYTES: usize = 64 * 1024;

fn random_string() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..SECRET_LENGTH).map(|_| char::from(ALLOWED_CHARS[rng.gen_range(0..ALLOWED_CHARS.len())])).collect()
}

fn index_of(byte: u8) -> Option<usize> {
    ALLOWED_CHARS.iter().position(|c| *c == byte)
}

/// Django's `_mask_cipher_secret`: a random mask, then each secret character shifted by the mask's.
fn mask(secret: &str) -> String {
    let mask = random_string();
    let cipher: String = secret
        .bytes()
        .zip(mask.bytes())
        .map(|(s, m)| {
            let shifted = (index_of(s).unwrap_or(0) + index_of(m).unwrap_or(0)) % ALLOWED_CHARS.len();
            char::from(ALLOWED_CHARS[shifted])
        })
        .collect();
    mask + &cipher
}

/// Django's `_unmask_cipher_token`, for a 64-character token; a 32-character token is the secret itself. `None`
/// for anything else (wrong length, characters outside `a-zA-Z0-9`).
fn unmask(token: &str) -> Option<String> {
    let bytes = token.as_bytes();
    if bytes.len() == SECRET_LENGTH {
        return bytes.iter().all(|b| index_of(*b).is_some()).then(|| token.to_owned());
    }
    if bytes.len() != 2 * SECRET_LENGTH {
        return None;
    }
    let (mask, cipher) = bytes.split_at(SECRET_LENGTH);
    cipher
        .iter()
        .zip(mask)
        .map(|(c, m)| {
            let n = ALLOWED_CHARS.len();
            Some(char::from(ALLOWED_CHARS[(index_of(*c)? + n - index_of(*m)?) % n]))
        })
        .collect()
}

/// The secret a stored `_csrftoken` value holds: the value itself (32 characters), or the value unmasked (64, as
/// Django before 4.0 stored it).
fn stored_secret(value: &Value) -> Option<String> {
    unmask(value.as_str()?)
}

/// The session's CSRF secret, made (and stored in the session) on first use.
async fn secret(session: &Session) -> Result<String, SessionError> {
    if let Some(secret) = session.get_value(CSRF_SESSION_KEY).await?.as_ref().and_then(stored_secret) {
        return Ok(secret);
    }
    let secret = random_string();
    session.set(CSRF_SESSION_KEY, &secret).await?;
    Ok(secret)
}

/// A masked token for a form of this response (Django's `get_token`); stores a new secret in the session when it
/// has none.
pub async fn token(session: &Session) -> Result<String, SessionError> {
    Ok(mask(&secret(session).await?))
}

/// The hidden form field carrying a fresh masked token (`{% csrf_token %}`).
pub async fn form_field(session: &Session) -> Result<String, SessionError> {
    Ok(format!(r#"<input type="hidden" name="{CSRF_FIELD}" value="{}">"#, token(session).await?))
}

/// The hidden form field for the session's existing secret; `None` when it has none (nothing is stored: for pages
/// that must not write the session, such as the CSRF failure page).
pub async fn existing_form_field(session: &Session) -> Result<Option<String>, SessionError> {
    let secret = session.get_value(CSRF_SESSION_KEY).await?.as_ref().and_then(stored_secret);
    Ok(secret.map(|secret| format!(r#"<input type="hidden" name="{CSRF_FIELD}" value="{}">"#, mask(&secret))))
}

/// Drops the session's secret, so the next form gets a new one (Django's `rotate_token`, done at login).
pub async fn rotate(core: &mut sessionkit::Session) -> Result<(), SessionError> {
    core.pop(CSRF_SESSION_KEY).await?;
    Ok(())
}

/// Constant-time equality of two secrets.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// Which origins may send unsafe requests, besides this site itself.
#[derive(Debug, Clone, Default)]
pub struct CsrfPolicy {
    /// The site is served over HTTPS only (`SESSION_COOKIE_SECURE`): an `Origin` must be `https://`.
    pub https_only: bool,
    /// Further origins accepted as this site (`https://example.com`), as Django's `CSRF_TRUSTED_ORIGINS`: for a
    /// reverse proxy that serves the site under another host than the one the demo sees in `Host`.
    pub trusted_origins: Vec<String>,
}

impl CsrfPolicy {
    /// The policy for `settings`, with `trusted_origins` as a comma-separated list (the `CSRF_TRUSTED_ORIGINS`
    /// environment variable; empty entries are ignored).
    pub fn new(settings: &sessionkit::Settings, trusted_origins: &str) -> Self {
        let trusted_origins =
            trusted_origins.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned).collect();
        CsrfPolicy { https_only: settings.cookie_secure, trusted_origins }
    }

    /// Why a browser request comes from another site, if it does: an `Origin` other than this site (or a trusted
    /// origin), or, without `Origin`, `Sec-Fetch-Site: cross-site` / `same-site`.
    fn cross_site(&self, headers: &HeaderMap) -> Option<String> {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or_default();
            let authority = match origin.strip_prefix("https://") {
                Some(authority) => Some(authority),
                None if !self.https_only => origin.strip_prefix("http://"),
                None => None,
            };
            let same_site = authority.is_some_and(|a| !host.is_empty() && a.eq_ignore_ascii_case(host));
            let trusted = self.trusted_origins.iter().any(|t| t.eq_ignore_ascii_case(origin));
            return (!same_site && !trusted)
                .then(|| format!("Origin checking failed: {origin:?} does not match this site ({host:?})."));
        }
        sec_fetch_cross_site(headers)
    }
}

/// Without `Origin`: the browser's `Sec-Fetch-Site` saying the request comes from another site.
fn sec_fetch_cross_site(headers: &HeaderMap) -> Option<String> {
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site @ ("cross-site" | "same-site")) => {
            Some(format!("The browser says the request comes from another site (Sec-Fetch-Site: {site})."))
        }
        _ => None,
    }
}

/// The token of a form body, if the body is a urlencoded form that has one.
fn token_in_form(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body).find(|(name, _)| name == CSRF_FIELD).map(|(_, value)| value.into_owned())
}

/// Django's CSRF failure page, in the demo's layout (the top bar says who is signed in, as on every page).
async fn forbidden(session: &Session, reason: &str) -> Response {
    let body = format!(
        r#"    <section class="card"><p class="error">CSRF verification failed. Request aborted.</p><p>{}</p>
    <p><a href="/">Back home</a></p></section>"#,
        html_escape::encode_safe(reason)
    );
    // A refused request writes nothing, not even a new CSRF secret for the top bar's logout button.
    crate::app::error_page_without_writes(session, StatusCode::FORBIDDEN, "Forbidden (403)", &body).await
}

/// The middleware: checks every unsafe request (it must run inside the [`sessionkit_tower::SessionLayer`]).
pub async fn require_csrf(
    State(policy): State<Arc<CsrfPolicy>>,
    session: Session,
    request: Request,
    next: Next,
) -> Response {
    if is_safe(request.method()) {
        return next.run(request).await;
    }
    if let Some(reason) = policy.cross_site(request.headers()) {
        tracing::warn!(method = %request.method(), path = %request.uri().path(), reason, "CSRF check failed");
        return forbidden(&session, &reason).await;
    }
    let header_token = request.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return forbidden(&session, "The request body is too large to look for the CSRF token.").await;
    };
    // Django reads the form field first, then the header.
    let sent = token_in_form(&bytes).filter(|t| !t.is_empty()).or(header_token);
    let stored = match session.get_value(CSRF_SESSION_KEY).await {
        Ok(value) => value.as_ref().and_then(stored_secret),
        Err(err) => return sessionkit_tower::SessionFailure::from(err).into_response(),
    };
    let reason = match (sent.as_deref().and_then(unmask), stored) {
        (_, None) => Some("This session holds no CSRF token: load the form again."),
        (None, Some(_)) => Some("The CSRF token is missing or malformed."),
        (Some(sent), Some(stored)) if !same(&sent, &stored) => Some("The CSRF token is incorrect."),
        _ => None,
    };
    if let Some(reason) = reason {
        tracing::warn!(method = %parts.method, path = %parts.uri.path(), reason, "CSRF check failed");
        return forbidden(&session, reason).await;
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_tokens_unmask_to_the_secret_and_differ_each_time() {
        let secret = random_string();
        let (a, b) = (mask(&secret), mask(&secret));
        assert_eq!(a.len(), 64);
        assert_ne!(a, b, "a fresh mask every time");
        assert_eq!(unmask(&a).as_deref(), Some(secret.as_str()));
        assert_eq!(unmask(&b).as_deref(), Some(secret.as_str()));
        assert_eq!(unmask(&secret).as_deref(), Some(secret.as_str()), "an unmasked secret is accepted");
        assert_eq!(unmask("short"), None);
        assert_eq!(unmask(&"!".repeat(64)), None);
    }

    /// A token made by Django 5.2: `_mask_cipher_secret("a" * 32)` with the mask `"b" * 32` is `"b" * 32 + "b" * 32`
    /// shifted: index('a') + index('b') = 1 → 'b'.
    #[test]
    fn unmasking_follows_djangos_cipher() {
        let token = format!("{}{}", "b".repeat(32), "b".repeat(32));
        assert_eq!(unmask(&token).unwrap(), "a".repeat(32));
        let token = format!("{}{}", "9".repeat(32), "8".repeat(32));
        // index('8') - index('9') = -1 → wraps to the last character.
        assert_eq!(unmask(&token).unwrap(), "9".repeat(32));
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        let policy = CsrfPolicy::default();
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:8000".parse().unwrap());
        assert_eq!(policy.cross_site(&headers), None, "no Origin: not a browser's cross-site request");
        headers.insert(header::ORIGIN, "http://127.0.0.1:8000".parse().unwrap());
        assert_eq!(policy.cross_site(&headers), None);
        headers.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(policy.cross_site(&headers).unwrap().contains("evil.example"));
        headers.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(policy.cross_site(&headers).is_some());
        headers.remove(header::ORIGIN);
        headers.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(policy.cross_site(&headers).is_some());
        headers.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert_eq!(policy.cross_site(&headers), None);
    }

    #[test]
    fn https_sites_and_trusted_origins() {
        let secure = sessionkit::Settings { cookie_secure: true, ..sessionkit::Settings::default() };
        let policy = CsrfPolicy::new(&secure, " https://www.example.com , ");
        assert_eq!(policy.trusted_origins, ["https://www.example.com"]);
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "internal:8000".parse().unwrap());
        headers.insert(header::ORIGIN, "http://internal:8000".parse().unwrap());
        assert!(policy.cross_site(&headers).is_some(), "plain http to an https-only site");
        headers.insert(header::ORIGIN, "https://internal:8000".parse().unwrap());
        assert_eq!(policy.cross_site(&headers), None);
        headers.insert(header::ORIGIN, "https://www.example.com".parse().unwrap());
        assert_eq!(policy.cross_site(&headers), None, "a trusted origin");
    }

    /// Django before 4.0 stored the token masked in the session; it still works.
    #[test]
    fn a_masked_stored_secret_is_unmasked() {
        let secret = random_string();
        assert_eq!(stored_secret(&Value::String(mask(&secret))).as_deref(), Some(secret.as_str()));
        assert_eq!(stored_secret(&Value::String(secret.clone())).as_deref(), Some(secret.as_str()));
        assert_eq!(stored_secret(&Value::from(5)), None);
    }
}
