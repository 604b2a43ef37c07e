//! The inspector's "stored form": what each store keeps, decoded honestly — signed tokens split into their parts
//! (SQLite, signed cookies), the Redis value header as fields with the key / bucket / field and the TTL Redis
//! reports, and the payload as pretty JSON.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions: a panic is how a test fails"
)]

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use serde_json::{json, Map, Value};
use sessionkit::{SessionKey, SessionRecord, Settings};
use sessionkit_demo::csrf::CsrfPolicy;
use sessionkit_demo::{router_for, DemoStore};
use time::OffsetDateTime;
use tower::ServiceExt;

const SECRET: &str = "inspector-test-secret";

struct Demo {
    app: Router,
    store: DemoStore,
}

impl Demo {
    async fn open(url: &str) -> Demo {
        let settings = Settings::with_secret_key(SECRET);
        let store = DemoStore::open(url, &settings).await.unwrap();
        let csrf = CsrfPolicy::new(&settings, "");
        Demo { app: router_for(store.clone(), settings, None, csrf), store }
    }

    /// GET `uri` with the session cookie `key`; the status, the body and the new cookie value, if any.
    async fn get(&self, uri: &str, key: Option<&str>) -> (StatusCode, String, Option<String>) {
        let mut request = Request::get(uri);
        if let Some(key) = key {
            request = request.header(header::COOKIE, format!("sessionid={key}"));
        }
        let response = self.app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let cookie = response.headers().get(header::SET_COOKIE).map(|v| {
            let v = v.to_str().unwrap();
            v.strip_prefix("sessionid=").unwrap().split(';').next().unwrap().to_owned()
        });
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap(), cookie)
    }

    /// A new session (two visits to the home page) and its inspector page, as it shows a session that the page
    /// itself does not change (the first look adds the CSRF secret of the page's forms, and says so).
    async fn session_and_inspector(&self) -> (String, String) {
        let (_, _, key) = self.get("/", None).await;
        let key = key.expect("the first visit sets a cookie");
        let (_, _, again) = self.get("/", Some(&key)).await;
        // The signed-cookie store issues a new token on every save; the other stores keep the key.
        let key = again.unwrap_or(key);
        let (_, first, added) = self.get("/session", Some(&key)).await;
        assert!(first.contains(r#"id="stored-form-stale""#), "the first look adds the CSRF secret: {first}");
        let key = added.unwrap_or(key);
        let (status, page, cookie) = self.get("/session", Some(&key)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(cookie, None, "looking again writes nothing");
        assert!(!page.contains(r#"id="stored-form-stale""#), "{page}");
        (key, page)
    }
}

/// The text of the element with `id` (up to the next `<`).
fn text_of<'a>(page: &'a str, id: &str) -> &'a str {
    let marker = format!(r#"id="{id}">"#);
    let start = page.find(&marker).unwrap_or_else(|| panic!("no #{id} in {page}")) + marker.len();
    page[start..].split('<').next().unwrap()
}

fn pretty(value: &Value) -> String {
    html_escape::encode_safe(&serde_json::to_string_pretty(value).unwrap()).into_owned()
}

/// Asserts the page shows the stored session dict pretty-printed, with `visits` = 2.
fn assert_payload(page: &str, stored: &Map<String, Value>) {
    assert_eq!(stored["visits"], json!(2));
    let shown = format!(r#"<pre id="stored-json">{}</pre>"#, pretty(&Value::Object(stored.clone())));
    assert!(page.contains(&shown), "{shown} not in {page}");
}

#[tokio::test]
async fn a_sqlite_session_is_a_signed_token_split_into_its_parts() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::open(&format!("sqlite://{}", dir.path().join("db.sqlite3").display())).await;
    let (key, page) = demo.session_and_inspector().await;
    let raw = demo.store.store.load_raw(&SessionKey::parse(&key).unwrap()).await.unwrap().unwrap();
    let token = String::from_utf8(raw.bytes.clone()).unwrap();
    let parts: Vec<&str> = token.split(':').collect();
    assert_eq!(parts.len(), 3, "{token}");
    // Nothing of the token's bytes is shown as they are; each part is named.
    assert!(!page.contains(&token), "{page}");
    assert_eq!(text_of(&page, "token-payload"), parts[0]);
    assert_eq!(text_of(&page, "token-timestamp"), parts[1]);
    assert_eq!(text_of(&page, "token-signature"), parts[2]);
    assert_eq!(parts[2].len(), 43);
    assert_eq!(text_of(&page, "token-compressed"), "no");
    assert_eq!(text_of(&page, "token-verified"), "verified with this SECRET_KEY");
    assert!(page.contains("<code>django.contrib.sessions.SessionStore</code>"), "the salt: {page}");
    let stored = demo.store.store.lister().unwrap().decode(&raw.bytes).unwrap();
    assert_payload(&page, &stored);
    // The stored expiry is the one the store keeps; the page explains both.
    let stored_expiry = raw.expires_at.unwrap().replace_nanosecond(0).unwrap();
    let shown = text_of(&page, "stored-expiry");
    assert_eq!(OffsetDateTime::parse(shown, &time::format_description::well_known::Rfc3339).unwrap(), stored_expiry);

    // A session Django would compress (a long, repetitive value): the leading "." is explained.
    let key = SessionKey::parse("compressedsessionkey0123456789ab").unwrap();
    let data: Map<String, Value> = [("note".to_owned(), json!("la ".repeat(200)))].into_iter().collect();
    let expires = OffsetDateTime::now_utc() + time::Duration::hours(1);
    demo.store.store.create(&SessionRecord::new(key.clone(), data.clone(), expires)).await.unwrap();
    let (_, page, _) = demo.get("/session", Some(key.as_str())).await;
    assert!(text_of(&page, "token-payload").starts_with('.'), "{page}");
    assert_eq!(text_of(&page, "token-compressed"), "yes, zlib (the leading ");
    let shown = format!(r#"<pre id="stored-json">{}</pre>"#, pretty(&Value::Object(data)));
    assert!(page.contains(&shown), "{page}");
}

#[tokio::test]
async fn a_signed_cookie_is_explained_as_the_session_itself() {
    let demo = Demo::open("cookie:").await;
    let (token, page) = demo.session_and_inspector().await;
    let parts: Vec<&str> = token.split(':').collect();
    assert_eq!(parts.len(), 3, "{token}");
    assert!(page.contains("the cookie value <em>is</em> the session"), "{page}");
    assert_eq!(text_of(&page, "token-payload"), parts[0]);
    assert_eq!(text_of(&page, "token-timestamp"), parts[1]);
    assert_eq!(text_of(&page, "token-signature"), parts[2]);
    assert_eq!(text_of(&page, "token-verified"), "verified with this SECRET_KEY");
    assert!(page.contains("<code>django.contrib.sessions.backends.signed_cookies</code>"), "the salt: {page}");
    // The key is the whole token: it is shown in a element that may break anywhere.
    assert!(page.contains(&format!(r#"<code class="token" id="session-key">{token}</code>"#)), "{page}");
    let stored: Map<String, Value> =
        serde_json::from_str(&text_of(&page, "data").replace("&quot;", "\"")).expect("the data as JSON");
    assert_payload(&page, &stored);
}

/// A string-layout value: the 6-byte header as fields, the Redis key, `PTTL` as Redis answers it.
#[tokio::test]
async fn a_redis_string_value_shows_its_header_key_and_pttl() {
    let redis = sessionkit_testsupport::Standalone::start().unwrap();
    // Small sessions are stored uncompressed; through a wrapper option too, which the inspector's Redis handle
    // does without.
    for (db, options) in [(0, "layout=string"), (1, "layout=string&merge=false")] {
        let demo = Demo::open(&format!("{}/{db}?{options}", redis.url())).await;
        let handle = demo.store.redis.clone().expect("a Redis handle for the inspector");
        let (key, page) = demo.session_and_inspector().await;
        assert_eq!(text_of(&page, "redis-layout"), "string");
        assert_eq!(text_of(&page, "redis-key"), format!("sessionkit:s:{key}"));
        let pttl: i64 = text_of(&page, "redis-ttl").parse().unwrap();
        let age_ms = 1_209_600_000;
        assert!(pttl > age_ms - 60_000 && pttl <= age_ms, "PTTL {pttl}: {page}");
        assert!(page.contains("<code>PTTL</code>"), "{page}");

        let raw = demo.store.store.load_raw(&SessionKey::parse(&key).unwrap()).await.unwrap().unwrap();
        assert_eq!(raw.bytes[0], 1);
        let header_hex: Vec<String> = raw.bytes[..6].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(text_of(&page, "value-header-hex"), header_hex.join(" "));
        assert_eq!(text_of(&page, "value-version"), "1");
        assert_eq!(text_of(&page, "value-compression"), "none", "{options}");
        assert_eq!(text_of(&page, "value-expiry"), text_of(&page, "stored-expiry"));
        let seconds = u32::from_be_bytes([raw.bytes[2], raw.bytes[3], raw.bytes[4], raw.bytes[5]]);
        assert!(page.contains(&format!("(Unix time {seconds}, u32 big-endian)")), "{page}");
        // No undecoded binary is printed as text.
        assert!(!page.contains('\u{1}') && !page.contains('\u{fffd}'), "{page}");
        let stored = handle.lister_decode(&raw.bytes);
        assert_payload(&page, &stored);
    }

    // A session big enough to be compressed: the flags say zstd with the dictionary, the payload still decodes.
    let demo = Demo::open(&format!("{}/4?layout=string&compress_min_bytes=0", redis.url())).await;
    let key = SessionKey::parse("bigredissessionkey0123456789abcd").unwrap();
    let data: Map<String, Value> = [("note".to_owned(), json!("la ".repeat(200)))].into_iter().collect();
    let expires = OffsetDateTime::now_utc() + time::Duration::hours(1);
    demo.store.store.create(&SessionRecord::new(key.clone(), data.clone(), expires)).await.unwrap();
    let (_, page, _) = demo.get("/session", Some(key.as_str())).await;
    let raw = demo.store.store.load_raw(&key).await.unwrap().unwrap();
    assert_eq!(raw.bytes[1], 3, "flags: zstd with dictionary 1");
    assert_eq!(text_of(&page, "value-compression"), "zstd with sessionkit dictionary 1", "{page}");
    assert!(page.contains("bytes, zstd with sessionkit dictionary 1 compressed"), "{page}");
    let shown = format!(r#"<pre id="stored-json">{}</pre>"#, pretty(&Value::Object(data)));
    assert!(page.contains(&shown), "{page}");
}

/// A hash-layout value: the bucket and the field, and the TTL: `HPTTL` where Redis expires fields (7.4+), else the
/// sweeper's expiry.
#[tokio::test]
async fn a_redis_hash_value_shows_its_bucket_field_and_expiry() {
    let redis = sessionkit_testsupport::Standalone::start().unwrap();
    let demo = Demo::open(&format!("{}/2?layout=hash&buckets=8&prefix=hashdemo:", redis.url())).await;
    let handle = demo.store.redis.clone().unwrap();
    let (key, page) = demo.session_and_inspector().await;
    assert_eq!(text_of(&page, "redis-layout"), "hash");
    let (bucket, field) = handle.raw_address(&SessionKey::parse(&key).unwrap());
    assert_eq!(text_of(&page, "redis-bucket"), String::from_utf8(bucket).unwrap());
    assert!(text_of(&page, "redis-bucket").starts_with("hashdemo:h:"), "{page}");
    assert_eq!(text_of(&page, "redis-field"), key);
    assert_eq!(field.unwrap(), key.as_bytes());
    if handle.uses_hash_field_expiry() {
        let hpttl: i64 = text_of(&page, "redis-ttl").parse().unwrap();
        assert!(hpttl > 0, "{page}");
    } else {
        assert_eq!(text_of(&page, "redis-ttl"), "none on the server");
        assert!(page.contains("the sweeper (<code>clear_expired</code>)"), "{page}");
    }
    assert_eq!(text_of(&page, "value-version"), "1");
    assert_eq!(text_of(&page, "value-expiry"), text_of(&page, "stored-expiry"));
    let raw = demo.store.store.load_raw(&SessionKey::parse(&key).unwrap()).await.unwrap().unwrap();
    assert_payload(&page, &handle.lister_decode(&raw.bytes));
}

/// Django's cache layout: the key Django's engine uses, `PTTL`, the pickle's bytes in hex and the dict decoded.
#[tokio::test]
async fn a_django_cache_value_shows_its_key_pttl_and_the_pickle_decoded() {
    let redis = sessionkit_testsupport::Standalone::start().unwrap();
    let demo = Demo::open(&format!("{}/3?layout=django-cache", redis.url())).await;
    let handle = demo.store.redis.clone().unwrap();
    let (key, page) = demo.session_and_inspector().await;
    assert_eq!(text_of(&page, "redis-layout"), "django-cache");
    assert_eq!(text_of(&page, "redis-key"), format!(":1:django.contrib.sessions.cache{key}"));
    assert!(text_of(&page, "redis-ttl").parse::<i64>().unwrap() > 0, "{page}");
    let raw = demo.store.store.load_raw(&SessionKey::parse(&key).unwrap()).await.unwrap().unwrap();
    assert!(text_of(&page, "raw-hex").starts_with("80 05"), "a protocol 5 pickle: {page}");
    assert_payload(&page, &handle.lister_decode(&raw.bytes));
}

/// What the store's own decoder reads from a stored value.
trait ListerDecode {
    fn lister_decode(&self, raw: &[u8]) -> Map<String, Value>;
}

impl ListerDecode for sessionkit::store::redis::RedisStore {
    fn lister_decode(&self, raw: &[u8]) -> Map<String, Value> {
        use sessionkit::SessionStore;
        self.lister().unwrap().decode(raw).unwrap()
    }
}
