//! `sessionkit migrate --from URL --to URL`.

use serde_json::{json, Map, Value};
use sessionkit::codec::object_to_python_json;
use sessionkit::expiry::EXPIRY_KEY;
use sessionkit::store::StoredSession;
use sessionkit::{SessionRecord, StoreError};
use time::{Duration, OffsetDateTime};

use crate::common::{self, CliError, Opened, EXIT_FINDINGS, EXIT_OK};
use crate::Context;

/// Options of `migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The store to copy from.
    #[arg(long, value_name = "URL")]
    from: String,
    /// The store to copy to.
    #[arg(long, value_name = "URL")]
    to: String,
    /// Only say what would be copied; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Replace sessions the target holds under the same key with different data (reported and kept otherwise).
    #[arg(long)]
    overwrite: bool,
    /// Sessions read per page from the source.
    #[arg(long, default_value_t = 500, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    page_size: u64,
}

/// What happened to each source session.
#[derive(Debug, Default)]
struct Tally {
    seen: u64,
    copied: u64,
    would_copy: u64,
    already_present: u64,
    overwritten: u64,
    conflicts: u64,
    expired: u64,
    failed: u64,
    /// Up to [`MAX_REPORTED`] `(session id, reason)` of conflicts and failures.
    problems: Vec<(String, String)>,
}

const MAX_REPORTED: usize = 1000;

impl Tally {
    fn problem(&mut self, id: &str, reason: impl Into<String>) {
        if self.problems.len() < MAX_REPORTED {
            self.problems.push((id.to_owned(), reason.into()));
        }
    }
}

/// The same session data, compared as Python's JSON text (so `1e16` and `1e+16` are equal).
fn same_data(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    a == b || object_to_python_json(a) == object_to_python_json(b)
}

/// Runs `migrate`.
pub async fn run(ctx: &mut Context<'_>, args: MigrateArgs) -> Result<u8, CliError> {
    let settings = common::load_settings(ctx)?;
    let source = common::open(&args.from, &settings, sessionkit::store::Access::ReadOnly).await?;
    common::require_secret(&source)?;
    let target = common::open(&args.to, &settings, sessionkit::store::Access::ReadWrite).await?;
    let (from, to) = (source.store.describe(), target.store.describe());
    if from == to {
        return Err(CliError::usage(format!("--from and --to are the same store ({from})")));
    }
    if to.starts_with("cookie:") {
        return Err(CliError::usage(
            "a signed_cookies store keeps sessions in browsers; nothing can be copied into it",
        ));
    }
    let lister = common::lister_of(source.store.as_ref())?;
    common::check_secret(lister, &from, &settings).await?;
    let total = lister.count(false).await?;
    let bar = common::progress(Some(total), if args.dry_run { "checking" } else { "copying" }, ctx.progress);
    let mut tally = Tally::default();
    let mut cursor = None;
    loop {
        let page = lister.list_page(cursor.as_ref(), args.page_size as usize).await?;
        for session in &page.sessions {
            copy_one(session, &source, &target, &args, &mut tally).await?;
            bar.inc(1);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    bar.finish_and_clear();
    let accounted = tally.copied
        + tally.would_copy
        + tally.already_present
        + tally.overwritten
        + tally.conflicts
        + tally.expired
        + tally.failed;
    let counts_verified = accounted == tally.seen;
    let target_count = match target.store.lister() {
        Some(l) => Some(l.count(true).await?),
        None => None,
    };
    let incomplete = tally.conflicts + tally.failed > 0;
    if ctx.json {
        let problems: Vec<Value> =
            tally.problems.iter().map(|(id, reason)| json!({"session": id, "reason": reason})).collect();
        common::print_json(
            ctx.out,
            &json!({
                "from": from,
                "to": to,
                "dry_run": args.dry_run,
                "seen": tally.seen,
                "copied": tally.copied,
                "would_copy": tally.would_copy,
                "already_present": tally.already_present,
                "overwritten": tally.overwritten,
                "conflicts": tally.conflicts,
                "expired_skipped": tally.expired,
                "failed": tally.failed,
                "counts_verified": counts_verified,
                "target_live_sessions": target_count,
                "problems": problems,
            }),
        )?;
    } else {
        outln!(ctx, "{} {from} -> {to}", if args.dry_run { "dry run:" } else { "migrated" });
        let mut rows = vec![vec!["sessions in source".to_owned(), tally.seen.to_string()]];
        if args.dry_run {
            rows.push(vec!["would be copied".to_owned(), tally.would_copy.to_string()]);
        } else {
            rows.push(vec!["copied (and read back)".to_owned(), tally.copied.to_string()]);
        }
        rows.push(vec!["already present (same data)".to_owned(), tally.already_present.to_string()]);
        if args.overwrite {
            rows.push(vec!["overwritten".to_owned(), tally.overwritten.to_string()]);
        }
        rows.push(vec!["conflicts (different data in target)".to_owned(), tally.conflicts.to_string()]);
        rows.push(vec!["expired (skipped)".to_owned(), tally.expired.to_string()]);
        rows.push(vec!["failed".to_owned(), tally.failed.to_string()]);
        if let Some(n) = target_count {
            rows.push(vec!["live sessions in target now".to_owned(), n.to_string()]);
        }
        out!(ctx, "{}", common::table(&["", "count"], &rows));
        outln!(
            ctx,
            "{}",
            if counts_verified {
                "counts verified: every source session is accounted for".to_owned()
            } else {
                format!("COUNT MISMATCH: {accounted} accounted for, {} seen", tally.seen)
            }
        );
        for (id, reason) in &tally.problems {
            outln!(ctx, "not copied: {id}: {reason}");
        }
        if (tally.conflicts + tally.failed) as usize > tally.problems.len() {
            outln!(ctx, "(first {} problems shown)", tally.problems.len());
        }
    }
    if !counts_verified {
        return Err(CliError::new(format!("count mismatch: {accounted} of {} sessions accounted for", tally.seen)));
    }
    Ok(if incomplete { EXIT_FINDINGS } else { EXIT_OK })
}

async fn copy_one(
    session: &StoredSession,
    source: &Opened,
    target: &Opened,
    args: &MigrateArgs,
    tally: &mut Tally,
) -> Result<(), CliError> {
    tally.seen += 1;
    let now = OffsetDateTime::now_utc();
    if session.is_expired(now) {
        tally.expired += 1;
        return Ok(());
    }
    let Some(key) = session.key.clone() else {
        tally.failed += 1;
        tally.problem(
            &session.id,
            "the source keeps only a SHA-256 of the key (hashed_keys): the key cannot be recovered",
        );
        return Ok(());
    };
    let Some(lister) = source.store.lister() else { return Ok(()) };
    let data = match lister.decode(&session.raw.bytes) {
        Ok(data) => data,
        Err(err) => {
            tally.failed += 1;
            tally.problem(key.as_str(), format!("cannot decode the source data: {err}"));
            return Ok(());
        }
    };
    let expires_at = session
        .raw
        .expires_at
        .unwrap_or_else(|| now.saturating_add(Duration::seconds(source.settings.cookie_age.max(1))));
    let record = SessionRecord::new(key.clone(), data, expires_at);
    match target.store.load(&key).await? {
        Some(existing) if same_data(&existing.data, &record.data) => {
            tally.already_present += 1;
            return Ok(());
        }
        Some(_) if !args.overwrite => {
            tally.conflicts += 1;
            tally.problem(key.as_str(), "the target holds different data under this key (use --overwrite to replace)");
            return Ok(());
        }
        Some(_) if args.dry_run => {
            tally.overwritten += 1;
            return Ok(());
        }
        Some(_) => {
            target.store.save(&record, &sessionkit::ChangeSet::default().with_last_write_wins()).await?;
            tally.overwritten += 1;
            return verify(&record, target, tally, false).await;
        }
        None if args.dry_run => {
            tally.would_copy += 1;
            return Ok(());
        }
        None => {}
    }
    match target.store.create(&record).await {
        Ok(_) => {}
        Err(StoreError::KeyCollision) if args.overwrite => {
            target.store.save(&record, &sessionkit::ChangeSet::default().with_last_write_wins()).await?;
            tally.overwritten += 1;
            return verify(&record, target, tally, false).await;
        }
        Err(StoreError::KeyCollision) => {
            tally.conflicts += 1;
            tally.problem(key.as_str(), "the target holds an expired session under this key (use --overwrite)");
            return Ok(());
        }
        Err(err @ (StoreError::UnsafeKey | StoreError::CookieTooLarge { .. } | StoreError::Corrupt(_))) => {
            tally.failed += 1;
            tally.problem(key.as_str(), err.to_string());
            return Ok(());
        }
        Err(err) => return Err(err.into()),
    }
    keep_file_expiry(&record, target);
    verify(&record, target, tally, true).await
}

/// A file store has no expiry column: Django expires a file at mtime + SESSION_COOKIE_AGE unless the session sets
/// `_session_expiry`. Setting the mtime keeps the source's expiry.
fn keep_file_expiry(record: &SessionRecord, target: &Opened) {
    let Some(file) = &target.file else { return };
    if record.data.contains_key(EXPIRY_KEY) {
        return;
    }
    let Some(path) = file.path_for(&record.key) else { return };
    let modified = record.expires_at.saturating_sub(Duration::seconds(target.settings.cookie_age));
    let Ok(since_epoch) = std::time::Duration::try_from(modified - OffsetDateTime::UNIX_EPOCH) else { return };
    let when = std::time::UNIX_EPOCH + since_epoch;
    if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) {
        let _ = f.set_modified(when);
    }
}

/// Reads a written session back and checks its data.
async fn verify(record: &SessionRecord, target: &Opened, tally: &mut Tally, created: bool) -> Result<(), CliError> {
    match target.store.load(&record.key).await? {
        Some(back) if same_data(&back.data, &record.data) => {
            if created {
                tally.copied += 1;
            }
            Ok(())
        }
        other => {
            if !created {
                tally.overwritten -= 1;
            }
            tally.failed += 1;
            let why = if other.is_some() { "reads back with different data" } else { "cannot be read back" };
            tally.problem(record.key.as_str(), format!("written to the target but {why}"));
            Ok(())
        }
    }
}
