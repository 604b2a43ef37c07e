//! `sessionkit-demo --help` names every store URL form the core accepts and where the development secret is kept,
//! and the `sessionkit` CLI reads the demo's sessions the way the help says.

#![allow(clippy::unwrap_used, reason = "test code: a panic is how a test fails")]

use std::process::Command;

use axum::body::Body;
use axum::http::{header, Request};
use sessionkit::{open_store, Settings};
use sessionkit_demo::{DEV_SECRET_FILE, DEV_SECRET_KEY};
use tower::ServiceExt;

fn help() -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_sessionkit-demo"))
        .arg("--help")
        .env_remove("SESSIONKIT_STORE")
        .env_remove("SECRET_KEY")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn help_lists_every_store_url_form() {
    let help = help();
    let forms = sessionkit::store::store_url_forms();
    assert!(forms.len() >= 10, "{forms:?}");
    for (form, what) in forms {
        assert!(help.contains(&format!("  {form}\n      {what}\n")), "{form} ({what}) is missing:\n{help}");
    }
    // Every scheme open_store takes, aliases included, and the options every URL takes.
    for scheme in [
        "memory://",
        "sqlite://PATH",
        "sqlite:///ABS/PATH",
        "postgres://",
        "postgresql://",
        "mysql://",
        "mariadb://",
        "file:///ABS/DIR",
        "redis://",
        "rediss://",
        "unix://",
        "redis+unix://",
        "redis+sentinel://",
        "rediss+sentinel://",
        "redis+cluster://",
        "rediss+cluster://",
        "cookie:",
        "signed-cookies:",
        "signed_cookies:",
        "docs/redis.md",
        "cached_db:CACHE_URL|DB_URL",
        "?failure_policy=empty",
        "?merge=false",
    ] {
        assert!(help.contains(scheme), "{scheme} is missing:\n{help}");
    }
}

#[test]
fn help_says_where_the_dev_secret_is_and_how_the_cli_uses_it() {
    let help = help();
    assert!(help.contains(&format!("{DEV_SECRET_KEY:?}")), "{help}");
    assert!(help.contains(&format!("kept in {DEV_SECRET_FILE}\n")), "{help}");
    assert!(help.contains("crates/sessionkit-demo/dev-secret.txt in the source tree"), "{help}");
    assert!(help.contains(&format!("--secret-file {DEV_SECRET_FILE}")), "{help}");
    assert!(help.contains("SESSIONKIT_SECRET_FILE"), "{help}");
    assert!(std::path::Path::new(DEV_SECRET_FILE).is_file(), "{DEV_SECRET_FILE} does not exist");
}

/// What the help tells a developer to do works: the CLI, given `--secret-file DEV_SECRET_FILE`, reads a session
/// the demo signed with its development secret; without it, it cannot.
#[tokio::test]
async fn the_cli_reads_demo_sessions_with_the_secret_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("demo.sqlite3").display());
    // The binary's settings when SECRET_KEY is not set.
    let settings = Settings::with_secret_key(DEV_SECRET_KEY);
    let app = sessionkit_demo::router(open_store(&url, &settings).await.unwrap(), settings);
    let response = app.oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    let key = cookie.strip_prefix("sessionid=").unwrap().split(';').next().unwrap().to_owned();

    let cli = |with_file: bool| {
        let url = url.clone();
        let key = key.clone();
        async move {
            let mut args = vec!["sessionkit".to_owned(), "--store".to_owned(), url];
            if with_file {
                args.extend(["--secret-file".to_owned(), DEV_SECRET_FILE.to_owned()]);
            }
            args.extend(["show".to_owned(), key]);
            // The CLI sees no SECRET_KEY in its environment.
            let env = sessionkit_cli::Environment { store: None, settings_lookup: Box::new(|_| None), progress: false };
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = sessionkit_cli::run(args, &env, &mut out, &mut err).await;
            (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
        }
    };
    let (code, out, err) = cli(true).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("visits"), "the session's data: {out}");
    let (code, out, err) = cli(false).await;
    assert_ne!(code, 0, "without the secret file the CLI cannot verify the session: {out}{err}");
}
