//! The demo in a real browser: headless Chromium driven through chromedriver (WebDriver, with `fantoccini`).
//!
//! Starts chromedriver and the `sessionkit-demo` binary (on a temporary SQLite file), each on a free loopback
//! port, then: the home page signed out, a login, the visit counter, the inspector, a five-minute expiry, the cart,
//! a 404 page signed in, and every page at a phone's 390 × 844 CSS pixels, where nothing may be wider than the
//! screen (`document.documentElement.scrollWidth <= 390`). Screenshots of each page go to
//! `<target dir>/demo-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`, `/usr/bin/chromedriver`; `scripts/test`
//! installs them; `CHROMEDRIVER` / `CHROMIUM` name other paths). Without chromedriver the test fails under
//! `CI=true` and is skipped, with a line saying so, otherwise.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions: a panic is how a test fails"
)]

use std::fmt::Display;
use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

/// Phone viewport of the small-screen checks (an iPhone 12–15's CSS pixels).
const PHONE: (u32, u32) = (390, 844);
const DESKTOP: (u32, u32) = (1280, 900);
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

type Result<T> = std::result::Result<T, String>;

/// `map_err` for any error: "what: error".
fn ctx<E: Display>(what: impl Display) -> impl FnOnce(E) -> String {
    move |err| format!("{what}: {err}")
}

/// A child process, killed and reaped when dropped (whatever happens in the test).
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn start(command: &mut Command, log: PathBuf, port: u16) -> Process {
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = command.stdin(Stdio::null()).stdout(out).stderr(err).spawn().unwrap();
        let mut process = Process { child, log };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = process.child.try_wait().unwrap() {
                panic!("{:?} exited during startup ({status}):\n{}", command.get_program(), process.log());
            }
            assert!(
                Instant::now() < deadline,
                "{:?} did not listen within 20 s:\n{}",
                command.get_program(),
                process.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        process
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The file `$name` names if it is set (`None` when there is no such file), else `default` if it exists, else
/// `program` on the PATH.
fn executable(name: &str, default: &str, program: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(name) {
        return Some(PathBuf::from(path)).filter(|path| path.is_file());
    }
    if Path::new(default).is_file() {
        return Some(PathBuf::from(default));
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(program)).find(|path| path.is_file())
}

/// Where the screenshots go: `demo-screenshots/` in the target directory (`CARGO_TARGET_TMPDIR` is its `tmp/`).
fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("demo-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_in_headless_chromium() {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Some(chromedriver) = executable("CHROMEDRIVER", "/usr/bin/chromedriver", "chromedriver") else {
        assert!(
            !in_ci,
            "chromedriver is not installed, and CI=true needs the browser test: install Debian's chromium and \
             chromium-driver (scripts/test does: apt-get install chromium chromium-driver), or set CHROMEDRIVER"
        );
        println!(
            "SKIPPED the_demo_in_headless_chromium: chromedriver not found (apt-get install chromium \
             chromium-driver, or set CHROMEDRIVER); under CI=true this fails"
        );
        return;
    };
    let chromium = executable("CHROMIUM", "/usr/bin/chromium", "chromium")
        .unwrap_or_else(|| panic!("chromedriver is at {} but chromium is not installed", chromedriver.display()));
    let dir = tempfile::tempdir().unwrap();

    let driver_port = free_port();
    let driver = Process::start(
        Command::new(&chromedriver).arg(format!("--port={driver_port}")),
        dir.path().join("chromedriver.log"),
        driver_port,
    );
    let demo_port = free_port();
    let store = format!("sqlite://{}", dir.path().join("demo.sqlite3").display());
    let demo = Process::start(
        Command::new(env!("CARGO_BIN_EXE_sessionkit-demo"))
            .args(["--store", &store, "--listen", &format!("127.0.0.1:{demo_port}")])
            .current_dir(dir.path())
            .env_remove("SECRET_KEY")
            .env_remove("SECRET_KEY_FALLBACKS")
            .env_remove("SESSIONKIT_STORE")
            .env("RUST_LOG", "warn"),
        dir.path().join("demo.log"),
        demo_port,
    );

    let profile = dir.path().join("chromium-profile");
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new",
                // Tests run as root in containers, where Chromium's sandbox cannot start.
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                "--no-first-run",
                "--lang=en-US",
                format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let Value::Object(capabilities) = capabilities else { unreachable!() };
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .unwrap_or_else(|err| panic!("cannot start a Chromium session: {err}\n{}", driver.log()));
    let base = format!("http://127.0.0.1:{demo_port}");
    let shots = screenshot_dir();
    let outcome = walk_through(&client, &base, &shots).await;
    let _ = client.close().await;
    if let Err(err) = outcome {
        panic!("{err}\n--- demo log:\n{}\n--- chromedriver log (tail):\n{}", demo.log(), tail(&driver.log(), 40));
    }
    println!("screenshots in {}", shots.display());
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The whole visit; an `Err` says which step failed.
async fn walk_through(client: &Client, base: &str, shots: &Path) -> Result<()> {
    client.set_window_size(DESKTOP.0, DESKTOP.1).await.map_err(ctx("window size"))?;

    // Signed out: the top bar says so and offers the login link.
    client.goto(&format!("{base}/")).await.map_err(ctx("open /"))?;
    expect_signed_in(client, None).await?;
    expect_eq(text(client, "#visits").await?, "1", "visits on the first visit")?;
    screenshot(client, shots, "desktop-1-home-signed-out").await?;

    // Log in through the top bar's link and the form.
    click_to(client, "#auth-state a[href='/login']", "/login").await?;
    fill(client, "#username", "alice").await?;
    fill(client, "#password", "alice-password").await?;
    screenshot(client, shots, "desktop-2-login").await?;
    click_to(client, "main form[action='/login'] button[type='submit']", "/").await?;
    expect_signed_in(client, Some("alice")).await?;
    expect_eq(text(client, "#visits").await?, "2", "visits after the login (the data survives the key change)")?;

    // The counter counts.
    client.refresh().await.map_err(ctx("reload /"))?;
    expect_eq(text(client, "#visits").await?, "3", "visits after a reload")?;
    screenshot(client, shots, "desktop-3-home-signed-in").await?;

    // The inspector shows the cookie's key and the stored token, verified.
    click_to(client, "nav a[href='/session']", "/session").await?;
    let cookie = client.get_named_cookie("sessionid").await.map_err(ctx("the sessionid cookie"))?;
    expect_eq(text(client, "#session-key").await?, cookie.value().to_owned(), "the inspector's session key")?;
    expect_eq(text(client, "#token-verified").await?, "verified with this SECRET_KEY", "the token's signature")?;
    expect_eq(text(client, "#cookie-max-age").await?, "1209600", "the default Max-Age")?;
    screenshot(client, shots, "desktop-4-inspector").await?;
    click_to(client, "button[value='five-minutes']", "/session").await?;
    expect_eq(text(client, "#cookie-max-age").await?, "300", "the Max-Age after choosing five minutes")?;
    full_page_screenshot(client, shots, "desktop-5-inspector-five-minutes").await?;

    // The cart.
    client.goto(&format!("{base}/cart")).await.map_err(ctx("open /cart"))?;
    click_to(client, "button[name='add'][value='coffee']", "/cart").await?;
    expect_eq(text(client, "#qty-coffee").await?, "1", "coffee in the cart")?;
    screenshot(client, shots, "desktop-6-cart").await?;

    // A 404 page still says who is signed in.
    client.goto(&format!("{base}/no/such/page")).await.map_err(ctx("open a 404 page"))?;
    let title = client.title().await.map_err(ctx("title"))?;
    expect_eq(title.starts_with("Not found").to_string(), "true".to_owned(), &format!("the 404 title {title:?}"))?;
    expect_signed_in(client, Some("alice")).await?;
    screenshot(client, shots, "desktop-7-not-found").await?;

    // A phone: nothing wider than the screen on any page, signed in and then signed out.
    set_viewport(client, PHONE).await?;
    for (path, name) in
        [("/", "home"), ("/cart", "cart"), ("/session", "inspector"), ("/login", "switch-user"), ("/nope", "not-found")]
    {
        client.goto(&format!("{base}{path}")).await.map_err(ctx(format!("open {path}")))?;
        expect_signed_in(client, Some("alice")).await?;
        expect_fits(client, path).await?;
        full_page_screenshot(client, shots, &format!("phone-signed-in-{name}")).await?;
    }
    client.goto(&format!("{base}/")).await.map_err(ctx("open /"))?;
    click_to(client, "#auth-state button[type='submit']", "/").await?;
    expect_signed_in(client, None).await?;
    for (path, name) in [("/", "home"), ("/login", "login"), ("/session", "inspector"), ("/nope", "not-found")] {
        client.goto(&format!("{base}{path}")).await.map_err(ctx(format!("open {path}")))?;
        expect_signed_in(client, None).await?;
        expect_fits(client, path).await?;
        full_page_screenshot(client, shots, &format!("phone-signed-out-{name}")).await?;
    }
    Ok(())
}

fn expect_eq<T: PartialEq + std::fmt::Debug>(got: T, want: impl Into<T>, what: &str) -> Result<()> {
    let want = want.into();
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

async fn text(client: &Client, css: &str) -> Result<String> {
    let element = client.find(Locator::Css(css)).await.map_err(ctx(format!("find {css}")))?;
    Ok(element.text().await.map_err(ctx(format!("text of {css}")))?.trim().to_owned())
}

async fn click(client: &Client, css: &str) -> Result<()> {
    let element = client.find(Locator::Css(css)).await.map_err(ctx(format!("find {css}")))?;
    element.click().await.map_err(ctx(format!("click {css}")))
}

async fn fill(client: &Client, css: &str, value: &str) -> Result<()> {
    let element = client.find(Locator::Css(css)).await.map_err(ctx(format!("find {css}")))?;
    element.clear().await.map_err(ctx(format!("clear {css}")))?;
    element.send_keys(value).await.map_err(ctx(format!("type into {css}")))
}

/// Clicks `css`, which loads a page (a link, a form's button), and waits until a new document at `path` has loaded:
/// a redirect back to the same URL counts, since the old document is marked before the click.
async fn click_to(client: &Client, css: &str, path: &str) -> Result<()> {
    client.execute("window.__sessionkitOldPage = true", vec![]).await.map_err(ctx("mark the page"))?;
    click(client, css).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = client.current_url().await.map_err(ctx("current URL"))?;
        let state = client
            .execute("return [window.__sessionkitOldPage === true, document.readyState]", vec![])
            .await
            .map_err(ctx("readyState"))?;
        if url.path() == path && state == json!([false, "complete"]) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "after clicking {css}: at {url} ({state}) after 10 s, waiting for a new page at {path}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The top bar's state: `Some(user)` signed in (a logout button, no login link anywhere), `None` signed out.
async fn expect_signed_in(client: &Client, user: Option<&str>) -> Result<()> {
    let url = client.current_url().await.map_err(ctx("current URL"))?;
    let bar = client.find(Locator::Id("auth-state")).await.map_err(ctx(format!("{url}: the top bar's state")))?;
    let state = bar.attr("data-signed-in").await.map_err(ctx("data-signed-in"))?;
    let bar_text = bar.text().await.map_err(ctx("the top bar's text"))?;
    let login_links = client.find_all(Locator::Css("a[href='/login']")).await.map_err(ctx("login links"))?;
    let logout =
        client.find_all(Locator::Css("#auth-state form[action='/logout'] button")).await.map_err(ctx("logout"))?;
    match user {
        Some(user) => {
            expect_eq(state, Some("yes".to_owned()), &format!("{url}: signed-in state"))?;
            if !bar_text.contains(&format!("Signed in as {user}")) {
                return Err(format!("{url}: the top bar says {bar_text:?}, not signed in as {user}"));
            }
            expect_eq(login_links.len(), 0usize, &format!("{url}: login links while signed in"))?;
            expect_eq(logout.len(), 1usize, &format!("{url}: logout buttons"))?;
            let links = client.find_all(Locator::LinkText("Log in")).await.map_err(ctx("links named Log in"))?;
            expect_eq(links.len(), 0usize, &format!("{url}: links named \"Log in\" while signed in"))
        }
        None => {
            expect_eq(state, Some("no".to_owned()), &format!("{url}: signed-out state"))?;
            if !bar_text.contains("Not signed in") {
                return Err(format!("{url}: the top bar says {bar_text:?}"));
            }
            expect_eq(logout.len(), 0usize, &format!("{url}: logout buttons while signed out"))?;
            if login_links.is_empty() {
                return Err(format!("{url}: no login link while signed out"));
            }
            Ok(())
        }
    }
}

/// Resizes the window so that the page's viewport is `width` × `height` CSS pixels.
async fn set_viewport(client: &Client, (width, height): (u32, u32)) -> Result<()> {
    client.set_window_size(width, height).await.map_err(ctx("window size"))?;
    let inner =
        client.execute("return [window.innerWidth, window.innerHeight]", vec![]).await.map_err(ctx("inner size"))?;
    let (w, h) = (inner[0].as_u64().unwrap_or(0) as u32, inner[1].as_u64().unwrap_or(0) as u32);
    if (w, h) != (width, height) {
        // A window with browser chrome: grow it by the difference.
        client
            .set_window_size(width + width.saturating_sub(w), height + height.saturating_sub(h))
            .await
            .map_err(ctx("window size"))?;
    }
    let inner = client.execute("return window.innerWidth", vec![]).await.map_err(ctx("inner width"))?;
    expect_eq(inner, json!(width), "the viewport's width")
}

/// Nothing on the page is wider than the viewport: no horizontal scrolling, no element past the right edge.
async fn expect_fits(client: &Client, path: &str) -> Result<()> {
    let report = client
        .execute(
            r##"const width = document.documentElement.clientWidth;
            const wide = [];
            for (const el of document.querySelectorAll("body *")) {
              const r = el.getBoundingClientRect();
              if (r.width > 0 && (r.right > width + 0.5 || r.left < -0.5)) {
                wide.push(`${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""} ${Math.round(r.left)}..${Math.round(r.right)}`);
              }
            }
            return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, wide: wide.slice(0, 12)};"##,
            vec![],
        )
        .await
        .map_err(ctx(format!("{path}: measure")))?;
    let scroll_width = report["scrollWidth"].as_u64().unwrap_or(u64::MAX);
    let wide = report["wide"].as_array().map_or(0, Vec::len);
    if scroll_width > u64::from(PHONE.0) || wide > 0 {
        return Err(format!("{path} is wider than a {}px phone: {report}", PHONE.0));
    }
    Ok(())
}

async fn screenshot(client: &Client, dir: &Path, name: &str) -> Result<()> {
    let png = client.screenshot().await.map_err(ctx(format!("screenshot {name}")))?;
    std::fs::write(dir.join(format!("{name}.png")), png).map_err(ctx(format!("write {name}.png")))
}

/// A screenshot of the whole page: the window is made as tall as the page (same width, so the same layout), then
/// put back.
async fn full_page_screenshot(client: &Client, dir: &Path, name: &str) -> Result<()> {
    let (width, height) = client.get_window_size().await.map_err(ctx("window size"))?;
    let page_height = client
        .execute("return document.documentElement.scrollHeight", vec![])
        .await
        .map_err(ctx("page height"))?
        .as_u64()
        .unwrap_or(height);
    let tall = page_height.max(height).min(6000) + (height.saturating_sub(inner_height(client).await?));
    client.set_window_size(width as u32, tall as u32).await.map_err(ctx("window size"))?;
    let shot = screenshot(client, dir, name).await;
    client.set_window_size(width as u32, height as u32).await.map_err(ctx("window size"))?;
    shot
}

async fn inner_height(client: &Client) -> Result<u64> {
    let value = client.execute("return window.innerHeight", vec![]).await.map_err(ctx("inner height"))?;
    Ok(value.as_u64().unwrap_or(0))
}
