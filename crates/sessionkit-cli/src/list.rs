//! `sessionkit list`.

use std::io::Write;

use serde_json::{json, Value};
use sessionkit::store::user_index::auth_user_id;

use crate::common::{self, CliError, EXIT_OK};
use crate::{decode, Context};

/// Options of `list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only sessions of this user (Django's `_auth_user_id`, e.g. 42).
    #[arg(long, value_name = "ID")]
    user: Option<String>,
    /// Only expired sessions (still stored, not yet cleared): past the store's expiry, or past a lifetime rule
    /// of the settings (`SESSION_ABSOLUTE_TIMEOUT`, `SESSION_IDLE_TIMEOUT`), as a request would find them.
    #[arg(long, conflicts_with = "valid")]
    expired: bool,
    /// Only sessions that have not expired.
    #[arg(long)]
    valid: bool,
    /// Stop after this many sessions.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Sessions fetched per page (one SQL query / one SCAN step per page).
    #[arg(long, default_value_t = 500, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    page_size: u64,
}

/// Runs `list`: pages through the store and prints each matching session as it comes (memory stays bounded by a
/// page, however large the store).
pub async fn run(ctx: &mut Context<'_>, args: ListArgs) -> Result<u8, CliError> {
    let settings = common::load_settings(ctx)?;
    let opened = common::open(ctx.store_url()?, &settings, sessionkit::store::Access::ReadOnly).await?;
    common::require_secret(&opened)?;
    let describe = opened.store.describe();
    let lister = common::lister_of(opened.store.as_ref())?;
    common::check_secret(lister, &describe, &settings).await?;
    let now = settings.clock.now();
    let rules_on = sessionkit::lifetime::rules_on(&settings);
    let limit = args.limit.unwrap_or(u64::MAX);
    let (mut shown, mut scanned, mut undecodable) = (0u64, 0u64, 0u64);
    let json = ctx.json;
    let mut out = std::io::BufWriter::new(&mut *ctx.out);
    if json {
        let _ = writeln!(out, "{{\"store\": {}, \"sessions\": [", Value::String(describe.clone()));
    } else {
        let _ = writeln!(out, "{:<40}  {:<10}  {:<23}  {:>8}  STATUS", "KEY", "USER", "EXPIRES", "BYTES");
    }
    let mut write_error = None;
    common::for_each_page(lister, args.page_size as usize, |page| {
        for session in page.sessions {
            scanned += 1;
            let mut expired = session.is_expired(now);
            let mut rule = None;
            let decoded = if expired || !rules_on {
                // Decoding is left until the session is known to be listed.
                None
            } else {
                let decoded = decode::decode(&session.raw.bytes, Some(lister), &settings, false).data;
                if let Ok(data) = &decoded {
                    rule = sessionkit::lifetime::expired_by(&settings, data, session.raw.expires_at, now);
                    expired = rule.is_some();
                }
                Some(decoded)
            };
            if (args.expired && !expired) || (args.valid && expired) {
                continue;
            }
            let decoded =
                decoded.unwrap_or_else(|| decode::decode(&session.raw.bytes, Some(lister), &settings, false).data);
            let user = decoded.as_ref().ok().and_then(auth_user_id);
            if decoded.is_err() {
                undecodable += 1;
            }
            if args.user.as_ref().is_some_and(|wanted| user.as_ref() != Some(wanted)) {
                continue;
            }
            let shown_key = match &session.key {
                Some(key) => key.as_str().to_owned(),
                None => format!("sha256:{}", session.id),
            };
            let result = if json {
                let item = json!({
                    "key": session.key.as_ref().map(|k| k.as_str()),
                    "id": session.id,
                    "key_is_hashed": session.key.is_none(),
                    "user": user,
                    "expires_at": session.raw.expires_at.map_or(Value::Null, common::json_time),
                    "expired": expired,
                    "expired_by": rule.map(sessionkit::lifetime::ExpiryRule::as_str),
                    "bytes": session.raw.bytes.len(),
                    "decode_error": decoded.as_ref().err().map(ToString::to_string),
                });
                let sep = if shown == 0 { "  " } else { ", " };
                writeln!(out, "{sep}{item}")
            } else {
                let expires = session.raw.expires_at.map_or_else(|| "-".to_owned(), common::human_time);
                let status = match (&decoded, expired) {
                    (Err(err), _) => format!("undecodable: {err}"),
                    (Ok(_), true) => match rule {
                        Some(rule) => format!("expired ({} timeout)", rule.as_str()),
                        None => "expired".to_owned(),
                    },
                    (Ok(_), false) => "valid".to_owned(),
                };
                writeln!(
                    out,
                    "{:<40}  {:<10}  {:<23}  {:>8}  {status}",
                    shown_key,
                    user.as_deref().unwrap_or("-"),
                    expires,
                    session.raw.bytes.len()
                )
            };
            if let Err(err) = result {
                write_error = Some(err);
                return false;
            }
            shown += 1;
            if shown >= limit {
                return false;
            }
        }
        true
    })
    .await?;
    if let Some(err) = write_error {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(EXIT_OK);
        }
        return Err(CliError::new(format!("cannot write the list: {err}")));
    }
    if json {
        let _ = writeln!(out, "], \"listed\": {shown}, \"scanned\": {scanned}, \"undecodable\": {undecodable}}}");
    } else {
        let _ = writeln!(out, "{shown} session(s) listed ({scanned} scanned)");
    }
    let _ = out.flush();
    Ok(EXIT_OK)
}
