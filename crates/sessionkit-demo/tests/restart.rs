//! The real binary over real HTTP: a login survives a restart on the same SQLite file.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions: a panic is how a test fails")]

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `sessionkit-demo`; killed (and reaped) when dropped, whatever happens in the test.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(store: &str, dir: &Path, name: &str) -> Server {
        let port = free_port();
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sessionkit-demo"))
            .args(["--store", store, "--listen", &format!("127.0.0.1:{port}")])
            .current_dir(dir)
            // The fixed development secret is what lets signed sessions verify after a restart.
            .env_remove("SECRET_KEY")
            .env_remove("SECRET_KEY_FALLBACKS")
            .env_remove("SESSIONKIT_STORE")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        let mut server = Server { child, port, log };
        server.wait_until_ready();
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the demo exited during startup ({status}):\n{}", self.log());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "the demo did not accept connections within 10 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server with SIGTERM (graceful shutdown) where there is one, and returns its exit status.
    fn stop(mut self) -> ExitStatus {
        #[cfg(unix)]
        {
            let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
            if sent.is_ok_and(|s| s.success()) {
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    if let Some(status) = self.child.try_wait().unwrap() {
                        return status;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                panic!("the demo did not stop within 10 s of SIGTERM:\n{}", self.log());
            }
        }
        self.child.kill().unwrap();
        self.child.wait().unwrap()
    }

    fn request(&self, method: &str, path: &str, key: Option<&str>, form: Option<&str>) -> Reply {
        http(self.port, method, path, key, form)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn session_key(&self) -> Option<String> {
        let cookie = self.header("set-cookie")?;
        Some(cookie.strip_prefix("sessionid=")?.split(';').next()?.to_owned())
    }
}

/// A minimal HTTP/1.1 client: one request per connection (`Connection: close`), body read to EOF.
fn http(port: u16, method: &str, path: &str, key: Option<&str>, form: Option<&str>) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(key) = key {
        request.push_str(&format!("Cookie: sessionid={key}\r\n"));
    }
    let body = form.unwrap_or("");
    if form.is_some() {
        request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Reply { status, headers, body: body.to_owned() }
}

/// The value of the first `csrfmiddlewaretoken` hidden field of a page.
fn csrf_field(body: &str) -> Option<String> {
    let start = body.find(r#"name="csrfmiddlewaretoken" value=""#)? + r#"name="csrfmiddlewaretoken" value=""#.len();
    Some(body[start..].split('"').next()?.to_owned())
}

#[test]
fn a_login_survives_a_restart_on_the_same_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("demo.sqlite3").display());

    let first = Server::start(&store, dir.path(), "first");
    let home = first.request("GET", "/", None, None);
    assert_eq!(home.status, 200, "{}", home.body);
    let before = home.session_key().unwrap();
    let form_page = first.request("GET", "/login", Some(&before), None);
    let token = csrf_field(&form_page.body).unwrap();
    let form = format!("username=alice&password=alice-password&csrfmiddlewaretoken={token}");
    let login = first.request("POST", "/login", Some(&before), Some(&form));
    assert_eq!(login.status, 303, "{}", login.body);
    assert_eq!(login.header("location"), Some("/"));
    let key = login.session_key().unwrap();
    assert_ne!(key, before);
    assert!(first.request("GET", "/", Some(&key), None).body.contains("Signed in as <strong>alice</strong>"));
    let log = first.log();
    assert!(log.contains("sessionkit-demo serving on http://127.0.0.1:"), "{log}");
    assert!(log.contains("SECRET_KEY is not set"), "the development secret is announced: {log}");
    assert!(
        log.lines().any(|line| line.contains("sessionkit_demo::audit") && line.contains(r#"kind="cycled""#)),
        "the login's key cycle is in the audit log: {log}"
    );
    let status = first.stop();
    assert!(status.success(), "graceful shutdown exits cleanly: {status}");

    let second = Server::start(&store, dir.path(), "second");
    let home = second.request("GET", "/", Some(&key), None);
    assert_eq!(home.status, 200);
    assert!(home.body.contains("Signed in as <strong>alice</strong>"), "{}\n{}", home.body, second.log());
    assert!(home.body.contains(r#"id="visits">3<"#), "{}", home.body);
    let inspector = second.request("GET", "/session", Some(&key), None);
    assert!(inspector.body.contains(&format!(r#"<code class="token" id="session-key">{key}</code>"#)));
    assert!(inspector.body.contains(r#"<code id="store">sqlite:&#x2F;&#x2F;"#), "{}", inspector.body);
}

#[test]
fn a_bad_store_url_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sessionkit-demo"))
        .args(["--store", "mongodb://localhost/x", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot open the session store") && stderr.contains("mongodb"), "{stderr}");
}

/// The store's password never reaches the startup line, the logs or the inspector page anonymous visitors see.
#[test]
fn the_store_password_is_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let redis_dir = tempfile::Builder::new().prefix("sessionkit-test-redis-").tempdir().unwrap();
    let socket = redis_dir.path().join("redis.sock");
    let args = ["--unixsocket".to_owned(), socket.display().to_string()];
    let redis = sessionkit_testsupport::RedisProcess::start(redis_dir.path(), &args).unwrap();
    // A password on this test's own server, once it answers.
    redis.command(&["CONFIG", "SET", "requirepass", "hunter2-secret"]).unwrap();
    // Over a Unix socket the password is a query parameter (`pass=`), where a URL parser sees no password.
    for (store, shown) in [
        (format!("redis://:hunter2-secret@127.0.0.1:{}/0?layout=string", redis.port()), ":***@127.0.0.1"),
        // Another database: a prefix keeps one layout (the layout record refuses `hash` where `string` wrote).
        (format!("unix://{}?pass=hunter2-secret&layout=hash&db=1", socket.display()), "pass=***"),
    ] {
        let server = Server::start(&store, dir.path(), "redacted");
        let home = server.request("GET", "/", None, None);
        assert_eq!(home.status, 200, "the store works with its password: {}", home.body);
        let key = home.session_key().unwrap();
        let inspector = server.request("GET", "/session", Some(&key), None);
        assert!(inspector.body.contains(shown), "{}", inspector.body);
        let log = server.log();
        assert!(log.contains(shown), "{log}");
        for text in [&inspector.body, &home.body, &log] {
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}
