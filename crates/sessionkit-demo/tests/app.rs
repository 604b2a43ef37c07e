//! The demo app in-process (`tower::ServiceExt::oneshot`) over a `memory://` store.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions: a panic is how a test fails"
)]

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use sessionkit::{open_store, SessionKey, SessionStore, Settings};
use sessionkit_demo::router;
use tower::ServiceExt;

struct Demo {
    app: Router,
    store: Arc<dyn SessionStore>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    }

    /// The session key a `Set-Cookie: sessionid=KEY; ...` header gives, if there is exactly one such header.
    fn new_key(&self) -> Option<String> {
        let cookies = self.set_cookies();
        assert!(cookies.len() <= 1, "more than one Set-Cookie: {cookies:?}");
        let cookie = cookies.first()?;
        let value = cookie.strip_prefix("sessionid=").unwrap().split(';').next().unwrap();
        Some(value.to_owned())
    }

    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).unwrap().to_str().unwrap()
    }
}

impl Demo {
    async fn new() -> Demo {
        let settings = Settings::with_secret_key("demo-test-secret");
        let store = open_store("memory://", &settings).await.unwrap();
        Demo { app: router(Arc::clone(&store), settings), store }
    }

    async fn request(&self, method: &str, uri: &str, key: Option<&str>, form: Option<&str>) -> Reply {
        let (status, headers, body) = support::send(&self.app, method, uri, key, form).await;
        Reply { status, headers, body }
    }

    async fn get(&self, uri: &str, key: Option<&str>) -> Reply {
        self.request("GET", uri, key, None).await
    }

    /// POSTs `form` as a browser does after loading a page with a form: with the session's CSRF token (from the
    /// login page's hidden field; loading it makes a session when there is none).
    async fn post(&self, uri: &str, key: Option<&str>, form: &str) -> Reply {
        let (token, key) = self.csrf_token(key).await;
        let form = if form.is_empty() {
            format!("csrfmiddlewaretoken={token}")
        } else {
            format!("{form}&csrfmiddlewaretoken={token}")
        };
        self.request("POST", uri, Some(&key), Some(&form)).await
    }

    /// The masked CSRF token a page gives session `key` (or a new session), and that session's key.
    async fn csrf_token(&self, key: Option<&str>) -> (String, String) {
        let page = self.get("/login", key).await;
        let key = page.new_key().or(key.map(str::to_owned)).expect("the form page has a session");
        (csrf_field(&page.body).expect("the login page has a CSRF field"), key)
    }

    /// Visits `/` without a cookie and returns the new session's key.
    async fn new_session(&self) -> String {
        self.get("/", None).await.new_key().unwrap()
    }

    /// Logs in from session `key` (or none) and returns the new key.
    async fn login(&self, key: Option<&str>, form: &str) -> String {
        let reply = self.post("/login", key, form).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
        assert_eq!(reply.location(), "/");
        reply.new_key().unwrap()
    }

    async fn stored(&self, key: &str) -> Option<serde_json::Map<String, Value>> {
        self.store.load(&SessionKey::parse(key).unwrap()).await.unwrap().map(|record| record.data.into_iter().collect())
    }
}

/// The value of the first `csrfmiddlewaretoken` hidden field of a page.
fn csrf_field(body: &str) -> Option<String> {
    let start = body.find(r#"name="csrfmiddlewaretoken" value=""#)? + r#"name="csrfmiddlewaretoken" value=""#.len();
    Some(body[start..].split('"').next()?.to_owned())
}

fn visits(body: &str) -> u64 {
    let start = body.find(r#"id="visits">"#).unwrap() + r#"id="visits">"#.len();
    body[start..].split('<').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn first_response_sets_a_django_cookie_and_varies_on_cookie() {
    let demo = Demo::new().await;
    let reply = demo.get("/", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    let cookies = reply.set_cookies();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let parts: Vec<&str> = cookies[0].split("; ").collect();
    let key = parts[0].strip_prefix("sessionid=").unwrap();
    assert_eq!(key.len(), 32);
    assert!(key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{key}");
    // Django writes `expires` first (Morsel's attribute order), then exactly these.
    assert!(parts[1].starts_with("expires=") && parts[1].ends_with(" GMT"), "{cookies:?}");
    assert_eq!(parts[2..], ["HttpOnly", "Max-Age=1209600", "Path=/", "SameSite=Lax"]);
    let vary: Vec<&str> = reply.headers.get_all(header::VARY).iter().map(|v| v.to_str().unwrap()).collect();
    assert!(vary.iter().any(|v| v.split(',').any(|v| v.trim() == "Cookie")), "{vary:?}");
}

#[tokio::test]
async fn visit_counter_counts_requests_that_carry_the_cookie() {
    let demo = Demo::new().await;
    let first = demo.get("/", None).await;
    assert_eq!(visits(&first.body), 1);
    let key = first.new_key().unwrap();
    for expected in 2..=4 {
        let reply = demo.get("/", Some(&key)).await;
        assert_eq!(visits(&reply.body), expected);
        // The key stays the same; the cookie is refreshed because the session changed.
        assert_eq!(reply.new_key().as_deref(), Some(key.as_str()));
    }
    assert_eq!(demo.stored(&key).await.unwrap()["visits"], json!(4));
    // Without the cookie it is a new session.
    let other = demo.get("/", None).await;
    assert_eq!(visits(&other.body), 1);
    assert_ne!(other.new_key().unwrap(), key);
    // Other pages do not count.
    demo.get("/cart", Some(&key)).await;
    assert_eq!(visits(&demo.get("/", Some(&key)).await.body), 5);
}

#[tokio::test]
async fn login_cycles_the_key_and_the_home_page_shows_the_user() {
    let demo = Demo::new().await;
    let before = demo.new_session().await;
    let after = demo.login(Some(&before), "username=alice&password=alice-password").await;
    assert_ne!(after, before, "login must change the session key");
    assert!(demo.store.load_raw(&SessionKey::parse(&before).unwrap()).await.unwrap().is_none(), "old key deleted");
    let data = demo.stored(&after).await.unwrap();
    assert_eq!(data["_auth_user_id"], json!("1"));
    assert_eq!(data["_auth_user_backend"], json!("django.contrib.auth.backends.ModelBackend"));

    let home = demo.get("/", Some(&after)).await;
    assert!(home.body.contains("Signed in as <strong>alice</strong>"), "{}", home.body);
    assert_eq!(visits(&home.body), 2, "data survives the key change");
    // The pre-login key is worthless now.
    let planted = demo.get("/", Some(&before)).await;
    assert!(planted.body.contains("Not signed in"));
    assert_ne!(planted.new_key().unwrap(), before);
}

#[tokio::test]
async fn login_without_a_session_and_switching_users() {
    let demo = Demo::new().await;
    let alice = demo.login(None, "username=alice&password=alice-password").await;
    demo.post("/cart", Some(&alice), "add=apple").await;
    let bob = demo.login(Some(&alice), "username=bob&password=bob-password").await;
    assert_ne!(bob, alice);
    let data = demo.stored(&bob).await.unwrap();
    assert_eq!(data["_auth_user_id"], json!("2"));
    assert!(!data.contains_key("cart"), "another user's session is not reused: {data:?}");
    assert!(demo.get("/", Some(&bob)).await.body.contains("Signed in as <strong>bob</strong>"));
}

#[tokio::test]
async fn wrong_password_shows_the_error_and_writes_no_session() {
    let demo = Demo::new().await;
    let reply = demo.post("/login", None, "username=alice&password=nope").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains("Wrong username or password."), "{}", reply.body);
    assert!(reply.body.contains(r#"name="username" value="alice""#));
    assert!(reply.set_cookies().is_empty(), "{:?}", reply.set_cookies());

    // With an existing session: no write, no new cookie, nobody logged in.
    let key = demo.new_session().await;
    let reply = demo.post("/login", Some(&key), "username=bob&password=alice-password").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains("Wrong username or password."));
    assert!(reply.set_cookies().is_empty(), "{:?}", reply.set_cookies());
    assert_eq!(demo.stored(&key).await.unwrap().keys().collect::<Vec<_>>(), ["visits", "_csrftoken"]);

    // What the visitor typed comes back escaped.
    let reply = demo.post("/login", None, "username=%3Cscript%3Ex%3C%2Fscript%3E&password=x").await;
    assert!(reply.body.contains("&lt;script&gt;x&lt;&#x2F;script&gt;"), "{}", reply.body);
    assert!(!reply.body.contains("<script>"));
}

#[tokio::test]
async fn logout_deletes_the_session_and_its_cookie() {
    let demo = Demo::new().await;
    let key = demo.login(None, "username=alice&password=alice-password").await;
    let reply = demo.post("/logout", Some(&key), "").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/");
    let cookies = reply.set_cookies();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(cookies[0].starts_with("sessionid=\"\";"), "{cookies:?}");
    assert!(cookies[0].contains("; Max-Age=0"), "{cookies:?}");
    assert!(demo.store.load_raw(&SessionKey::parse(&key).unwrap()).await.unwrap().is_none());
    let home = demo.get("/", Some(&key)).await;
    assert!(home.body.contains("Not signed in"));
    assert_eq!(visits(&home.body), 1);

    // Without a session there is no CSRF token, so a POST is refused (as Django's "CSRF cookie not set").
    let reply = demo.request("POST", "/logout", None, Some("")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.set_cookies().is_empty());
}

#[tokio::test]
async fn cart_add_and_remove() {
    let demo = Demo::new().await;
    let empty = demo.get("/cart", None).await;
    assert!(empty.body.contains("Your cart is empty."));
    assert!(csrf_field(&empty.body).is_some(), "the cart's forms carry a CSRF token, kept in a new session");
    assert!(empty.new_key().is_some());

    let added = demo.post("/cart", None, "add=coffee").await;
    assert_eq!(added.status, StatusCode::SEE_OTHER);
    assert_eq!(added.location(), "/cart");
    let key = added.new_key().unwrap();
    for form in ["add=apple", "add=apple", "add=apple", "remove=apple"] {
        let reply = demo.post("/cart", Some(&key), form).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER);
    }
    // Stored in catalogue order, as a JSON object of quantities.
    let stored = demo.stored(&key).await.unwrap();
    assert_eq!(serde_json::to_string(&stored["cart"]).unwrap(), r#"{"apple":2,"coffee":1}"#);
    let page = demo.get("/cart", Some(&key)).await;
    assert!(page.body.contains(r#"id="qty-apple">2</td>"#), "{}", page.body);
    assert!(page.body.contains(r#"id="qty-coffee">1</td>"#));
    assert!(page.body.contains("€12.40"), "total: {}", page.body);

    // Removing something not in the cart writes nothing.
    let reply = demo.post("/cart", Some(&key), "remove=bread").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert!(reply.set_cookies().is_empty());

    for form in ["remove=coffee", "remove=apple", "remove=apple"] {
        demo.post("/cart", Some(&key), form).await;
    }
    assert!(!demo.stored(&key).await.unwrap().contains_key("cart"));
    assert!(demo.get("/cart", Some(&key)).await.body.contains("Your cart is empty."));
}

#[tokio::test]
async fn unknown_cart_items_and_bad_forms_are_400() {
    let demo = Demo::new().await;
    let key = demo.new_session().await;
    let reply = demo.post("/cart", Some(&key), "add=%3Cb%3Ecaviar").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.body.contains("There is no item"), "{}", reply.body);
    assert!(reply.body.contains("&lt;b&gt;caviar"), "{}", reply.body);
    assert!(!reply.body.contains("<b>caviar"));
    assert!(reply.set_cookies().is_empty());
    assert!(!demo.stored(&key).await.unwrap().contains_key("cart"));

    for form in ["", "add=apple&remove=apple"] {
        let reply = demo.post("/cart", Some(&key), form).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{form:?}");
        assert!(reply.body.contains("exactly one"), "{}", reply.body);
    }
    let reply = demo.post("/session/expiry", Some(&key), "expiry=forever").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(demo.post("/login", None, "username=alice").await.status.is_client_error());
    assert_eq!(demo.get("/nope", None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn inspector_shows_the_key_the_data_and_the_stored_form() {
    let demo = Demo::new().await;
    let none = demo.get("/session", None).await;
    assert_eq!(none.status, StatusCode::OK);
    assert!(none.body.contains("no session yet"), "{}", none.body);
    assert!(none.body.contains(r#"<code id="store">memory:&#x2F;&#x2F;</code>"#), "{}", none.body);
    assert!(none.set_cookies().is_empty(), "inspecting creates no session");

    let key = demo.login(None, "username=alice&password=alice-password").await;
    demo.get("/", Some(&key)).await;
    let page = demo.get("/session", Some(&key)).await;
    assert!(page.set_cookies().is_empty(), "inspecting writes nothing");
    assert!(page.body.contains(&format!(r#"<code class="token" id="session-key">{key}</code>"#)), "{}", page.body);
    assert!(page.body.contains(r#"<td id="browser-close">no</td>"#));
    assert!(page.body.contains("&quot;_auth_user_id&quot;: &quot;1&quot;"), "pretty JSON: {}", page.body);
    // The memory store keeps JSON text: shown pretty-printed, as the store's decoder reads it.
    let raw = demo.store.load_raw(&SessionKey::parse(&key).unwrap()).await.unwrap().unwrap();
    let stored: Value = serde_json::from_slice(&raw.bytes).unwrap();
    let shown = format!(
        r#"<pre id="stored-json">{}</pre>"#,
        html_escape::encode_safe(&serde_json::to_string_pretty(&stored).unwrap())
    );
    assert!(page.body.contains(&shown), "{shown} not in {}", page.body);
    assert!(page.body.contains("JSON text"), "{}", page.body);

    // An unknown key is dropped: no session, and the stale cookie is deleted.
    let stale = demo.get("/session", Some("abcdefghijklmnopqrstuvwxyz012345")).await;
    assert!(stale.body.contains("no session yet"));
    assert!(stale.set_cookies()[0].contains("Max-Age=0"));
}

#[tokio::test]
async fn expiry_can_be_set_to_browser_close_and_back() {
    let demo = Demo::new().await;
    let key = demo.new_session().await;
    let reply = demo.post("/session/expiry", Some(&key), "expiry=browser-close").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/session");
    let cookie = &reply.set_cookies()[0];
    assert!(!cookie.contains("Max-Age") && !cookie.contains("expires"), "browser-close cookie: {cookie}");
    let page = demo.get("/session", Some(&key)).await;
    assert!(page.body.contains(r#"<td id="browser-close">yes</td>"#), "{}", page.body);
    assert!(page.body.contains("&quot;_session_expiry&quot;: 0"));

    let reply = demo.post("/session/expiry", Some(&key), "expiry=five-minutes").await;
    assert!(reply.set_cookies()[0].contains("; Max-Age=300;"), "{:?}", reply.set_cookies());
    demo.post("/session/expiry", Some(&key), "expiry=default").await;
    assert!(!demo.stored(&key).await.unwrap().contains_key("_session_expiry"));
}

/// A POST with an `Origin` header, for the cross-site cases.
async fn post_from(demo: &Demo, origin: &str, uri: &str, key: &str, form: &str) -> Reply {
    let request = Request::post(uri)
        .header(header::COOKIE, format!("sessionid={key}"))
        .header(header::HOST, "demo.test")
        .header(header::ORIGIN, origin)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .unwrap();
    let response = demo.app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    Reply { status, headers, body: String::from_utf8(bytes.to_vec()).unwrap() }
}

/// Every unsafe request needs the session's CSRF token: without it (or with another session's) nothing happens.
#[tokio::test]
async fn posts_without_the_sessions_csrf_token_are_refused() {
    let demo = Demo::new().await;
    let key = demo.login(None, "username=alice&password=alice-password").await;
    let (_, other_key) = demo.csrf_token(None).await;
    let (others_token, _) = demo.csrf_token(Some(&other_key)).await;
    for (uri, form) in [
        ("/login", "username=bob&password=bob-password"),
        ("/logout", ""),
        ("/cart", "add=apple"),
        ("/session/expiry", "expiry=browser-close"),
    ] {
        for token in ["", "csrfmiddlewaretoken=x", &format!("csrfmiddlewaretoken={others_token}")] {
            let form = [form, token].iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join("&");
            let reply = demo.request("POST", uri, Some(&key), Some(&form)).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{uri} {form}");
            assert!(reply.body.contains("CSRF verification failed"), "{}", reply.body);
            assert!(reply.set_cookies().is_empty(), "{uri}: {:?}", reply.set_cookies());
        }
    }
    let data = demo.stored(&key).await.expect("not logged out");
    assert_eq!(data["_auth_user_id"], json!("1"), "not logged in as bob");
    assert!(!data.contains_key("cart") && !data.contains_key("_session_expiry"), "{data:?}");
    // The X-CSRFToken header works as the form field does.
    let (token, _) = demo.csrf_token(Some(&key)).await;
    let request = Request::post("/cart")
        .header(header::COOKIE, format!("sessionid={key}"))
        .header("x-csrftoken", token)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("add=apple"))
        .unwrap();
    assert_eq!(demo.app.clone().oneshot(request).await.unwrap().status(), StatusCode::SEE_OTHER);
}

/// Login CSRF: another site's form that logs the visitor into the attacker's account is refused by the `Origin`
/// check even when it carries a valid token; the same form from this site works.
#[tokio::test]
async fn cross_site_posts_are_refused_by_origin() {
    let demo = Demo::new().await;
    let (token, key) = demo.csrf_token(None).await;
    let form = format!("username=bob&password=bob-password&csrfmiddlewaretoken={token}");
    for origin in ["https://evil.example", "null", "http://demo.test.evil.example"] {
        let reply = post_from(&demo, origin, "/login", &key, &form).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{origin}");
        assert!(reply.body.contains("Origin checking failed"), "{}", reply.body);
    }
    assert!(!demo.stored(&key).await.unwrap().contains_key("_auth_user_id"), "nobody was logged in");
    let reply = post_from(&demo, "http://demo.test", "/login", &key, &form).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
}

/// A login rotates the token (Django's `rotate_token`): a token learnt before the login is worthless after it.
#[tokio::test]
async fn login_rotates_the_csrf_token() {
    let demo = Demo::new().await;
    let (before, key) = demo.csrf_token(None).await;
    let form = format!("username=alice&password=alice-password&csrfmiddlewaretoken={before}");
    let login = demo.request("POST", "/login", Some(&key), Some(&form)).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    let key = login.new_key().unwrap();
    let stale =
        demo.request("POST", "/cart", Some(&key), Some(&format!("add=apple&csrfmiddlewaretoken={before}"))).await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN);
    let fresh = demo.post("/cart", Some(&key), "add=apple").await;
    assert_eq!(fresh.status, StatusCode::SEE_OTHER);
}

/// Every page says in its top bar whether the visitor is signed in, error pages included, and a signed-in visitor
/// is offered no "Log in" link anywhere.
#[tokio::test]
async fn every_page_shows_the_signed_in_state() {
    let demo = Demo::new().await;
    let pages = [("/", StatusCode::OK), ("/login", StatusCode::OK), ("/cart", StatusCode::OK)];
    let pages = [&pages[..], &[("/session", StatusCode::OK), ("/no/such/page", StatusCode::NOT_FOUND)]].concat();
    for (uri, status) in &pages {
        let reply = demo.get(uri, None).await;
        assert_eq!(reply.status, *status, "{uri}");
        let body = &reply.body;
        assert!(body.contains(r#"id="auth-state" data-signed-in="no""#), "{uri}: {body}");
        assert!(body.contains("<span>Not signed in</span>"), "{uri}: {body}");
        assert!(body.contains(r#"<a href="/login">Log in</a>"#), "{uri}: {body}");
        assert!(!body.contains("Signed in as"), "{uri}: {body}");
    }
    assert!(demo.get("/nope", None).await.set_cookies().is_empty(), "an anonymous 404 creates no session");

    let key = demo.login(None, "username=alice&password=alice-password").await;
    let mut replies = Vec::new();
    for (uri, status) in &pages {
        let reply = demo.get(uri, Some(&key)).await;
        assert_eq!(reply.status, *status, "{uri}");
        replies.push((*uri, reply));
    }
    // The error pages: an unknown cart item (400) and a POST without the CSRF token (403).
    replies.push(("POST /cart (400)", demo.post("/cart", Some(&key), "add=caviar").await));
    replies.push(("POST /cart (403)", demo.request("POST", "/cart", Some(&key), Some("add=apple")).await));
    assert_eq!(replies[replies.len() - 2].1.status, StatusCode::BAD_REQUEST);
    assert_eq!(replies[replies.len() - 1].1.status, StatusCode::FORBIDDEN);
    for (what, reply) in &replies {
        let body = &reply.body;
        assert!(body.contains(r#"id="auth-state" data-signed-in="yes""#), "{what}: {body}");
        assert!(body.contains("Signed in as <strong>alice</strong>"), "{what}: {body}");
        assert!(body.contains(r#"action="/logout""#) && body.contains(">Log out</button>"), "{what}: {body}");
        assert!(!body.contains(r#"href="/login""#) && !body.contains(">Log in<"), "{what}: no login link: {body}");
        assert!(!body.contains("Not signed in"), "{what}: {body}");
    }
    // The 404 page's logout button works like any other.
    let not_found = &replies[4].1.body;
    let token = csrf_field(not_found).expect("the 404 page's logout button carries the CSRF token");
    let reply = demo.request("POST", "/logout", Some(&key), Some(&format!("csrfmiddlewaretoken={token}"))).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
}

/// One stylesheet, served from the binary; every page links it and has a viewport for phones; keys and tokens
/// may break anywhere rather than widen the page.
#[tokio::test]
async fn pages_link_the_stylesheet_and_fit_a_phone() {
    let demo = Demo::new().await;
    let css = demo.get("/static/style.css", None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
    assert!(css.set_cookies().is_empty(), "the stylesheet makes no session");
    assert_eq!(css.body, sessionkit_demo::app::STYLESHEET);
    assert!(css.body.contains("overflow-wrap: anywhere"), "{}", css.body);
    assert!(css.body.contains(".token { word-break: break-all; }"), "{}", css.body);
    assert!(css.body.contains("@media (max-width: 560px)"), "{}", css.body);

    let key = demo.login(None, "username=alice&password=alice-password").await;
    for uri in ["/", "/login", "/cart", "/session", "/nope"] {
        for cookie in [None, Some(key.as_str())] {
            let body = demo.get(uri, cookie).await.body;
            assert!(body.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#), "{body}");
            assert!(body.contains(r#"<link rel="stylesheet" href="/static/style.css">"#), "{uri}: {body}");
            assert!(!body.contains("<style"), "{uri}: no inline styles: {body}");
        }
    }
    let inspector = demo.get("/session", Some(&key)).await.body;
    assert!(inspector.contains(&format!(r#"<code class="token" id="session-key">{key}</code>"#)), "{inspector}");
}

/// The inspector's cookie line shows the `Max-Age` the last `Set-Cookie` carried, and explains both expiries.
#[tokio::test]
async fn the_inspector_shows_the_max_age_sent_in_set_cookie() {
    let demo = Demo::new().await;
    let key = demo.new_session().await;
    let max_age_sent = |reply: &Reply| -> Option<String> {
        let cookie = reply.set_cookies().into_iter().next().expect("a Set-Cookie");
        cookie.split("; ").find_map(|part| part.strip_prefix("Max-Age=").map(str::to_owned))
    };
    for (choice, expected) in [("five-minutes", Some("300")), ("browser-close", None), ("default", Some("1209600"))] {
        let reply = demo.post("/session/expiry", Some(&key), &format!("expiry={choice}")).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER);
        assert_eq!(max_age_sent(&reply).as_deref(), expected, "{choice}");
        let page = demo.get("/session", Some(&key)).await.body;
        let shown = match expected {
            Some(age) => format!(r#"<code>Max-Age=<span id="cookie-max-age">{age}</span></code>"#),
            None => r#"<span id="cookie-max-age">none</span>"#.to_owned(),
        };
        assert!(page.contains(&shown), "{choice}: {shown} not in {page}");
    }
    let page = demo.get("/session", Some(&key)).await.body;
    assert!(page.contains("<th>Stored expiry</th>") && page.contains("<th>Expiry if saved now</th>"), "{page}");
    assert!(page.contains("the session ends then unless it is saved again"), "{page}");
    assert!(page.contains("every save moves the stored expiry here"), "{page}");
}
