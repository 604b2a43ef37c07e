//! The demo app in-process (`tower::ServiceExt::oneshot`) over a `memory://` store.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions: a panic is how a test fails")]

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
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(key) = key {
            builder = builder.header(header::COOKIE, format!("sessionid={key}"));
        }
        let body = match form {
            Some(form) => {
                builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(form.to_owned())
            }
            None => Body::empty(),
        };
        let response = self.app.clone().oneshot(builder.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        Reply { status, headers, body: String::from_utf8(bytes.to_vec()).unwrap() }
    }

    async fn get(&self, uri: &str, key: Option<&str>) -> Reply {
        self.request("GET", uri, key, None).await
    }

    async fn post(&self, uri: &str, key: Option<&str>, form: &str) -> Reply {
        self.request("POST", uri, key, Some(form)).await
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

fn visits(body: &str) -> u64 {
    let start = body.find(r#"<strong id="visits">"#).unwrap() + r#"<strong id="visits">"#.len();
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
    assert!(home.body.contains("Logged in as <strong>alice</strong>"), "{}", home.body);
    assert_eq!(visits(&home.body), 2, "data survives the key change");
    // The pre-login key is worthless now.
    let planted = demo.get("/", Some(&before)).await;
    assert!(planted.body.contains("Not logged in"));
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
    assert!(demo.get("/", Some(&bob)).await.body.contains("Logged in as <strong>bob</strong>"));
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
    assert_eq!(demo.stored(&key).await.unwrap().keys().collect::<Vec<_>>(), ["visits"]);

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
    assert!(home.body.contains("Not logged in"));
    assert_eq!(visits(&home.body), 1);

    // Logging out without a session is harmless and sets no cookie.
    let reply = demo.post("/logout", None, "").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert!(reply.set_cookies().is_empty());
}

#[tokio::test]
async fn cart_add_and_remove() {
    let demo = Demo::new().await;
    let empty = demo.get("/cart", None).await;
    assert!(empty.body.contains("Your cart is empty."));
    assert!(empty.set_cookies().is_empty(), "looking at the cart creates no session");

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
    assert!(page.body.contains(r#"<td id="qty-apple">2</td>"#), "{}", page.body);
    assert!(page.body.contains(r#"<td id="qty-coffee">1</td>"#));
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
    assert!(page.body.contains(&format!(r#"<code id="session-key">{key}</code>"#)), "{}", page.body);
    assert!(page.body.contains(r#"<td id="browser-close">no</td>"#));
    assert!(page.body.contains("&quot;_auth_user_id&quot;: &quot;1&quot;"), "pretty JSON: {}", page.body);
    let raw = demo.store.load_raw(&SessionKey::parse(&key).unwrap()).await.unwrap().unwrap();
    let raw_text = String::from_utf8_lossy(&raw.bytes);
    assert!(raw_text.contains("visits"), "{raw_text}");
    let shown = format!(r#"<pre id="raw">{}</pre>"#, html_escape::encode_safe(&raw_text));
    assert!(page.body.contains(&shown), "raw bytes {raw_text:?} not in {}", page.body);

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
