//! `sessionkit user export ID` and `sessionkit user erase ID [--dry-run]`: a user's sessions for a data-rights
//! request (GDPR access and erasure), through the store's per-user index, else a bounded scan
//! (`sessionkit::store::user_data`).

use sessionkit::store::user_data::{self, Source, UserDataError, UserDataOptions, DEFAULT_SCAN_LIMIT};
use sessionkit::store::Access;

use crate::common::{self, CliError, Opened, EXIT_OK};
use crate::Context;

/// Longest user id accepted (Django's primary keys are far shorter; the id ends up in Redis key names).
const MAX_USER_ID_CHARS: usize = 256;

/// Options of `user`.
#[derive(Debug, clap::Args)]
pub struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Debug, clap::Subcommand)]
enum UserCommand {
    /// Print every live session of a user with its data, created/last seen, user agent and IP as one JSON document
    /// (a data access request). Session keys are never printed; sessions are named by their id.
    Export(ExportArgs),
    /// Delete every session of a user and the user's index entry (an erasure request); prints the count.
    Erase(EraseArgs),
}

/// How sessions are found: the index, or a scan.
#[derive(Debug, clap::Args)]
struct FindArgs {
    /// Scan the whole store even when it keeps a per-user index (finds sessions written before the index existed;
    /// costs a pass over every session).
    #[arg(long)]
    scan: bool,
    /// A scan stops after about this many sessions (the page that reaches it is finished) and says it did not
    /// reach the end of the store.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SCAN_LIMIT,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    scan_limit: u64,
}

impl FindArgs {
    fn options(&self) -> UserDataOptions {
        UserDataOptions { force_scan: self.scan, scan_limit: self.scan_limit }
    }
}

/// Options of `user export`.
#[derive(Debug, clap::Args)]
struct ExportArgs {
    /// The user's id (Django's `_auth_user_id`, e.g. 42).
    user_id: String,
    #[command(flatten)]
    find: FindArgs,
}

/// Options of `user erase`.
#[derive(Debug, clap::Args)]
struct EraseArgs {
    /// The user's id (Django's `_auth_user_id`, e.g. 42).
    user_id: String,
    /// Say what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    find: FindArgs,
}

/// Runs `user export` or `user erase`.
pub async fn run(ctx: &mut Context<'_>, args: UserArgs) -> Result<u8, CliError> {
    match args.command {
        UserCommand::Export(args) => export(ctx, args).await,
        UserCommand::Erase(args) => erase(ctx, args).await,
    }
}

fn checked_user_id(user_id: &str) -> Result<&str, CliError> {
    let user_id = user_id.trim();
    if user_id.is_empty() {
        return Err(CliError::usage("the user id is empty: pass Django's user id (_auth_user_id), e.g. 42"));
    }
    if user_id.chars().count() > MAX_USER_ID_CHARS || user_id.chars().any(char::is_control) {
        return Err(CliError::usage(format!(
            "not a user id: at most {MAX_USER_ID_CHARS} characters, no control characters"
        )));
    }
    Ok(user_id)
}

/// Opens the store and checks the secret where sessions must be decoded: a scan, and `cached_db` (whose index
/// reads the database's signed rows). Redis through its index needs no secret.
async fn open(ctx: &Context<'_>, access: Access, find: &FindArgs) -> Result<Opened, CliError> {
    let settings = common::load_settings(ctx)?;
    let opened = common::open(ctx.store_url()?, &settings, access).await?;
    let describe = opened.store.describe();
    if describe.starts_with("cookie:") {
        // user_data says why there is nothing to do; no secret needed for that.
        return Ok(opened);
    }
    let decodes_signed = opened.store.user_index().is_none() || find.scan || describe.starts_with("cached_db:");
    if decodes_signed {
        common::require_secret(&opened)?;
        if let Some(lister) = opened.store.lister() {
            common::check_secret(lister, &describe, &opened.settings).await?;
        }
    }
    Ok(opened)
}

fn cli_error(err: UserDataError) -> CliError {
    match err {
        UserDataError::Store(err) => CliError::from(err),
        other => CliError::new(other.to_string()),
    }
}

/// `found through the per-user index` / `found by scanning N session(s)`.
fn how(source: Source, scanned: Option<u64>) -> String {
    match source {
        Source::Index => "found through the per-user index".to_owned(),
        Source::Scan => format!("found by scanning {} session(s)", scanned.unwrap_or(0)),
    }
}

/// The finding of a scan that stopped at its limit.
fn incomplete(scanned: Option<u64>) -> CliError {
    CliError::finding(format!(
        "the scan stopped at --scan-limit after {} session(s), before the end of the store: sessions of the user \
         may remain; run again with a higher --scan-limit",
        scanned.unwrap_or(0)
    ))
}

async fn export(ctx: &mut Context<'_>, args: ExportArgs) -> Result<u8, CliError> {
    let user_id = checked_user_id(&args.user_id)?;
    let opened = open(ctx, Access::ReadOnly, &args.find).await?;
    let export = user_data::export_user(&opened.store, user_id, args.find.options()).await.map_err(cli_error)?;
    common::print_json(ctx.out, &export.to_json())?;
    if !export.complete {
        return Err(incomplete(export.scanned));
    }
    Ok(EXIT_OK)
}

async fn erase(ctx: &mut Context<'_>, args: EraseArgs) -> Result<u8, CliError> {
    let user_id = checked_user_id(&args.user_id)?;
    let access = if args.dry_run { Access::ReadOnly } else { Access::ReadWrite };
    let opened = open(ctx, access, &args.find).await?;
    let erasure =
        user_data::erase_user(&opened.store, user_id, args.dry_run, args.find.options()).await.map_err(cli_error)?;
    if ctx.json {
        common::print_json(ctx.out, &erasure.to_json())?;
    } else {
        let n = erasure.session_ids.len();
        let how = how(erasure.source, erasure.scanned);
        if erasure.dry_run {
            outln!(ctx, "dry run: would delete {n} session(s) of user {user_id} in {} ({how})", erasure.store);
            for id in &erasure.session_ids {
                outln!(ctx, "  {id}");
            }
        } else {
            let index = if erasure.source == Source::Index { " and the user's index" } else { "" };
            outln!(ctx, "deleted {n} session(s) of user {user_id}{index} in {} ({how})", erasure.store);
        }
    }
    if !erasure.complete {
        return Err(incomplete(erasure.scanned));
    }
    Ok(EXIT_OK)
}
