//! `GET /metrics` after a login and a logout through HTTP, on a real Redis server.
//!
//! The Prometheus recorder is the process's global `metrics` recorder, installed once: this test binary holds this
//! one test only, so nothing else records into it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions: a panic is how a test fails"
)]

mod support;

use axum::http::{header, StatusCode};
use axum::Router;
use sessionkit::{open_store, Settings};
use sessionkit_demo::observability::{install_prometheus, with_metrics};
use sessionkit_demo::router;

struct Reply {
    status: StatusCode,
    cookie: Option<String>,
    body: String,
}

async fn request(app: &Router, method: &str, uri: &str, key: Option<&str>, form: Option<String>) -> Reply {
    let (status, headers, body) = support::send(app, method, uri, key, form.as_deref()).await;
    let cookie = headers
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().strip_prefix("sessionid=").unwrap().split(';').next().unwrap().to_owned());
    Reply { status, cookie, body }
}

/// The login page's session and its CSRF token.
async fn login_form(app: &Router, key: Option<&str>) -> (String, String) {
    let page = request(app, "GET", "/login", key, None).await;
    let key = page.cookie.or(key.map(str::to_owned)).unwrap();
    let marker = r#"name="csrfmiddlewaretoken" value=""#;
    let start = page.body.find(marker).unwrap() + marker.len();
    (key, page.body[start..].split('"').next().unwrap().to_owned())
}

/// The value of the sample `name{labels…}` whose labels include every one of `labels`; 0 when there is none.
fn sample(scrape: &str, name: &str, labels: &[&str]) -> f64 {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.split(['{', ' ']).next() == Some(name))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[tokio::test]
async fn metrics_show_the_loads_saves_and_deletion_of_a_login_and_a_logout() {
    let handle = install_prometheus().unwrap();
    let settings = Settings::with_secret_key("demo-metrics-secret");
    let url = format!("{}?prefix=metrics{}:", sessionkit_testsupport::shared_standalone().url(), std::process::id());
    let store = open_store(&url, &settings).await.unwrap();
    let app = with_metrics(router(store, settings), handle);

    let (key, token) = login_form(&app, None).await;
    let form = format!("username=alice&password=alice-password&csrfmiddlewaretoken={token}");
    let login = request(&app, "POST", "/login", Some(&key), Some(form)).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.body);
    let key = login.cookie.unwrap();
    assert_eq!(request(&app, "GET", "/", Some(&key), None).await.status, StatusCode::OK);
    let before_logout = request(&app, "GET", "/metrics", None, None).await.body;

    let (key, token) = login_form(&app, Some(&key)).await;
    let logout = request(&app, "POST", "/logout", Some(&key), Some(format!("csrfmiddlewaretoken={token}"))).await;
    assert_eq!(logout.status, StatusCode::SEE_OTHER, "{}", logout.body);

    let scrape = request(&app, "GET", "/metrics", None, None).await;
    assert_eq!(scrape.status, StatusCode::OK);
    let scrape = scrape.body;
    let redis = r#"store="redis""#;
    assert!(sample(&scrape, "sessionkit_loads_total", &[redis, r#"outcome="hit""#]) > 0.0, "{scrape}");
    assert!(sample(&scrape, "sessionkit_creates_total", &[redis]) > 0.0, "{scrape}");
    assert!(sample(&scrape, "sessionkit_saves_total", &[redis, r#"outcome="written""#]) > 0.0, "{scrape}");
    assert!(sample(&scrape, "sessionkit_load_duration_seconds_count", &[redis]) > 0.0, "{scrape}");
    // The logout deleted the session: one more deletion than before it (the login's cycle_key deleted one too).
    let deletes = sample(&scrape, "sessionkit_deletes_total", &[redis]);
    assert_eq!(deletes, sample(&before_logout, "sessionkit_deletes_total", &[redis]) + 1.0, "{scrape}");
    // Labels stay low-cardinality: no key, host or port in any series.
    assert!(!scrape.contains(&key) && !scrape.contains("127.0.0.1"), "{scrape}");
    println!("{scrape}");
}
