//! `sessionkit count` and `sessionkit clear-expired`.

use serde_json::json;
use sessionkit::store::redis::config::Layout;

use crate::common::{self, CliError, EXIT_OK};
use crate::Context;

/// Options of `count`.
#[derive(Debug, clap::Args)]
pub struct CountArgs {
    /// Count only sessions that have not expired.
    #[arg(long)]
    valid: bool,
}

/// Runs `count`.
pub async fn count(ctx: &mut Context<'_>, args: CountArgs) -> Result<u8, CliError> {
    let settings = common::load_settings(ctx)?;
    let opened = common::open(ctx.store_url()?, &settings, sessionkit::store::Access::ReadOnly).await?;
    // Counting decodes nothing, except live-only on the file store: a file's expiry may be inside its data.
    if args.valid && opened.file.is_some() {
        common::require_secret(&opened)?;
    }
    let lister = common::lister_of(opened.store.as_ref())?;
    let n = lister.count(args.valid).await?;
    if ctx.json {
        common::print_json(ctx.out, &json!({"store": opened.store.describe(), "count": n, "valid_only": args.valid}))?;
    } else {
        outln!(ctx, "{n}");
    }
    Ok(EXIT_OK)
}

/// Options of `clear-expired`.
#[derive(Debug, clap::Args)]
pub struct ClearArgs {
    /// Say what was removed (the command is silent otherwise, for cron).
    #[arg(long, short)]
    verbose: bool,
}

/// Runs `clear-expired`: the store's `clear_expired` (Django's `clearsessions`); the Redis `hash` layout's sweeper
/// runs in bounded steps with a progress bar on a terminal.
pub async fn clear_expired(ctx: &mut Context<'_>, args: ClearArgs) -> Result<u8, CliError> {
    let settings = common::load_settings(ctx)?;
    let opened = common::open(ctx.store_url()?, &settings, sessionkit::store::Access::ReadWrite).await?;
    let describe = opened.store.describe();
    let started = std::time::Instant::now();
    let sweeper =
        opened.redis.as_ref().filter(|r| r.options().layout == Layout::Hash && !r.uses_hash_field_expiry()).cloned();
    let (removed, how) = match sweeper {
        Some(redis) => {
            let buckets = u64::from(redis.options().buckets);
            let bar = common::progress(Some(buckets), "sweeping buckets", ctx.progress);
            let step = 64;
            let mut removed = 0;
            loop {
                let (n, wrapped) = redis.sweep_step(step).await?;
                removed += n;
                bar.inc(u64::from(step));
                if wrapped {
                    break;
                }
            }
            bar.finish_and_clear();
            (removed, "swept every bucket of the hash layout (Redis < 7.4 has no per-field expiry)")
        }
        None => {
            let bar = common::progress(None, "clearing expired sessions", ctx.progress);
            let removed = opened.store.clear_expired().await;
            bar.finish_and_clear();
            let how = match &opened.redis {
                Some(_) => "Redis expires these keys itself; nothing was left to remove",
                None if describe.starts_with("cookie:") => "signed cookies keep nothing on the server",
                None => "removed the expired sessions",
            };
            (removed?, how)
        }
    };
    if ctx.json {
        common::print_json(
            ctx.out,
            &json!({
                "store": describe,
                "removed": removed,
                "how": how,
                "seconds": started.elapsed().as_secs_f64(),
            }),
        )?;
    } else if args.verbose {
        outln!(
            ctx,
            "{describe}: removed {removed} expired session(s) in {:.1}s ({how})",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(EXIT_OK)
}
