//! What every command shares: errors and exit codes, settings and secrets, opening stores, output helpers.

use std::fmt;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sessionkit::store::file::FileStore;
use sessionkit::store::redis::RedisStore;
use sessionkit::store::{Access, ListCursor, SessionLister, SessionPage, StoredSession};
use sessionkit::{ConfigError, SecretKey, SessionStore, Settings, StoreError};
use time::OffsetDateTime;

/// Exit code: the command did what was asked.
pub const EXIT_OK: u8 = 0;
/// Exit code: the command failed (unreachable store, bad URL, wrong secret, I/O error).
pub const EXIT_ERROR: u8 = 1;
/// Exit code: the command line is wrong (clap's usage errors use it too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the command ran and found something to act on: `show` found no such session, `migrate` left
/// sessions uncopied, `doctor` found problems.
pub const EXIT_FINDINGS: u8 = 3;

/// A failed command: one line for stderr and an exit code.
#[derive(Debug)]
pub struct CliError {
    /// What went wrong, one line.
    pub message: String,
    /// The process exit code.
    pub code: u8,
}

impl CliError {
    /// An operational error (exit 1).
    pub fn new(message: impl Into<String>) -> Self {
        CliError { message: one_line(&message.into()), code: EXIT_ERROR }
    }

    /// A usage error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        CliError { message: one_line(&message.into()), code: EXIT_USAGE }
    }

    /// A finding (exit 3).
    pub fn finding(message: impl Into<String>) -> Self {
        CliError { message: one_line(&message.into()), code: EXIT_FINDINGS }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<StoreError> for CliError {
    fn from(err: StoreError) -> Self {
        match &err {
            StoreError::Config(ConfigError::MissingSecretKey) => CliError::new(
                "SECRET_KEY is empty: this store signs session data; set SECRET_KEY (and SECRET_KEY_FALLBACKS) in the \
                 environment or pass --secret-file PATH",
            ),
            // The command found data of another shape than configured: something to act on (exit 3).
            StoreError::Config(ConfigError::LayoutMismatch(message)) => CliError::finding(message.clone()),
            _ => CliError::new(err.to_string()),
        }
    }
}

impl From<ConfigError> for CliError {
    fn from(err: ConfigError) -> Self {
        CliError::from(StoreError::from(err))
    }
}

/// Collapses whitespace runs with newlines into single spaces, so every message is one line.
pub fn one_line(text: &str) -> String {
    text.split(['\n', '\r']).map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Django's settings from the environment (the context's lookup), with SECRET_KEY and fallbacks from
/// `--secret-file` when given.
///
/// The file holds SECRET_KEY on its first non-empty line and one fallback per following non-empty line; lines
/// starting with `#` are comments; a trailing `\r` is dropped. Nothing else is trimmed (a secret may contain spaces).
pub fn load_settings(ctx: &crate::Context<'_>) -> Result<Settings, CliError> {
    let mut settings = Settings::from_lookup(ctx.lookup)?;
    if let Some(path) = ctx.secret_file.as_deref() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::new(format!("cannot read the secret file {}: {e}", path.display())))?;
        let mut lines = text
            .lines()
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
        let secret = lines.next().ok_or_else(|| {
            CliError::new(format!("the secret file {} holds no SECRET_KEY (first non-empty line)", path.display()))
        })?;
        settings.secret_key = SecretKey::from(secret);
        settings.secret_key_fallbacks = lines.map(SecretKey::from).collect();
    }
    Ok(settings)
}

/// An opened store, with typed handles for the stores some commands need more from.
pub struct Opened {
    /// The store.
    pub store: Arc<dyn SessionStore>,
    /// The same store when it is Redis (sweeper progress, doctor).
    pub redis: Option<Arc<RedisStore>>,
    /// The same store when it is a file store (migrate sets file times to keep expiry).
    pub file: Option<Arc<FileStore>>,
    /// The settings it was opened with.
    pub settings: Settings,
}

fn scheme(url: &str) -> &str {
    url.split_once(':').map_or("", |(scheme, _)| scheme)
}

/// Opens the store at `url`. Commands that only read (`list`, `show`, `count`, `stats`, `doctor`, the source of
/// `migrate`) open it with [`Access::ReadOnly`]: nothing is created (no SQLite file, no `django_session` table, no
/// Redis layout record) and a missing `SECRET_KEY` is not an error until something must be decoded.
pub async fn open(url: &str, settings: &Settings, access: Access) -> Result<Opened, CliError> {
    if url.trim().is_empty() {
        return Err(CliError::usage("no store given: pass --store URL or set SESSIONKIT_STORE"));
    }
    let settings = settings.clone();
    match scheme(url) {
        "redis" | "rediss" | "unix" | "redis+unix" | "redis+sentinel" | "rediss+sentinel" | "redis+cluster"
        | "rediss+cluster" => {
            let url = sessionkit::store::without_wrapper_options(url)?;
            let redis = Arc::new(RedisStore::connect_with_access(&url, access).await?);
            Ok(Opened { store: redis.clone(), redis: Some(redis), file: None, settings })
        }
        "file" => {
            let url = sessionkit::store::without_wrapper_options(url)?;
            let file = Arc::new(FileStore::open_with(&url, &settings, access).await?);
            Ok(Opened { store: file.clone(), redis: None, file: Some(file), settings })
        }
        _ => {
            let store = sessionkit::store::open_store_with(url, &settings, access).await?;
            Ok(Opened { store, redis: None, file: None, settings })
        }
    }
}

/// Fails with the usual missing-secret message when `settings` has no `SECRET_KEY` and the store signs its data
/// (every store but Redis and memory): for read-only commands that decode sessions, since a store opened read-only
/// accepts a missing secret.
pub fn require_secret(opened: &Opened) -> Result<(), CliError> {
    let signs = opened.redis.is_none() && !opened.store.describe().starts_with("memory");
    if signs && opened.settings.secret_key.is_empty() {
        return Err(StoreError::from(ConfigError::MissingSecretKey).into());
    }
    Ok(())
}

/// The store's enumeration, or the reason it has none.
pub fn lister_of(store: &dyn SessionStore) -> Result<&dyn SessionLister, CliError> {
    store.lister().ok_or_else(|| {
        if store.describe().starts_with("cookie:") {
            CliError::new("a signed_cookies store keeps sessions in browsers; there is nothing to list")
        } else {
            CliError::new(format!("store {} cannot list its sessions", store.describe()))
        }
    })
}

/// Walks every page of `lister`, calling `visit` with each page; stops early when `visit` returns false.
pub async fn for_each_page(
    lister: &dyn SessionLister,
    page_size: usize,
    mut visit: impl FnMut(SessionPage) -> bool,
) -> Result<(), CliError> {
    let mut cursor: Option<ListCursor> = None;
    loop {
        let page = lister.list_page(cursor.as_ref(), page_size).await?;
        let next = page.next.clone();
        if !visit(page) {
            return Ok(());
        }
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// Up to `n` stored sessions from the start of the enumeration (a Redis `SCAN` page may be empty, so this pages
/// on until it has `n` or the store is done, at most 1000 pages).
pub async fn sample(lister: &dyn SessionLister, n: usize) -> Result<Vec<StoredSession>, CliError> {
    let mut out = Vec::new();
    let mut cursor: Option<ListCursor> = None;
    for _ in 0..1000 {
        let page = lister.list_page(cursor.as_ref(), n).await?;
        out.extend(page.sessions);
        if out.len() >= n {
            out.truncate(n);
            break;
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(out)
}

/// Checks that the configured secret verifies the store's data: samples up to 50 sessions and fails with one
/// line when every sampled session has a bad signature. Stores whose data is not signed pass.
pub async fn check_secret(lister: &dyn SessionLister, describe: &str, settings: &Settings) -> Result<(), CliError> {
    let sampled = sample(lister, 50).await?;
    let (mut bad, mut total) = (0, 0);
    for session in &sampled {
        total += 1;
        if matches!(lister.decode(&session.raw.bytes), Err(sessionkit::codec::CodecError::BadSignature)) {
            bad += 1;
        }
    }
    if total > 0 && bad == total {
        return Err(CliError::new(format!(
            "wrong secret: SECRET_KEY (and {} fallback(s)) verifies none of the {total} sessions sampled in {describe}; \
             set the SECRET_KEY the sessions were written with (environment or --secret-file)",
            settings.secret_key_fallbacks.len()
        )));
    }
    Ok(())
}

/// `2026-12-06 03:14:19 UTC`.
pub fn human_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// RFC 3339 in UTC, for JSON.
pub fn json_time(at: OffsetDateTime) -> serde_json::Value {
    at.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .map_or(serde_json::Value::Null, serde_json::Value::String)
}

/// `in 13d 23h`, `2h ago`.
pub fn relative(at: OffsetDateTime, now: OffsetDateTime) -> String {
    let secs = (at - now).whole_seconds();
    let abs = secs.unsigned_abs();
    let text = if abs >= 86_400 {
        format!("{}d {}h", abs / 86_400, abs % 86_400 / 3600)
    } else if abs >= 3600 {
        format!("{}h {}m", abs / 3600, abs % 3600 / 60)
    } else if abs >= 60 {
        format!("{}m {}s", abs / 60, abs % 60)
    } else {
        format!("{abs}s")
    };
    if secs >= 0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// A progress bar on stderr when the environment allows them (stderr is a terminal, `--json` is off); hidden
/// otherwise.
pub fn progress(total: Option<u64>, message: &str, visible: bool) -> ProgressBar {
    let bar = match total {
        Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()),
    };
    if visible {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        let style = match total {
            Some(_) => ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)"),
            None => ProgressStyle::with_template("{spinner} {msg} {pos} ({elapsed})"),
        };
        if let Ok(style) = style {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    bar.set_message(message.to_owned());
    bar
}

/// Prints a JSON value on the command's output.
pub fn print_json(out: &mut (dyn Write + Send), value: &serde_json::Value) -> Result<(), CliError> {
    writeln!(out, "{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned())).map_err(write_failed)
}

/// A failed write of the command's output.
pub fn write_failed(err: std::io::Error) -> CliError {
    CliError::new(format!("cannot write the output: {err}"))
}

/// Left-aligned columns for people: every row padded to the widest cell of its column.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count()) + 2;
                out.push_str(&" ".repeat(pad));
            }
        }
        while out.ends_with(' ') {
            out.pop();
        }
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}
