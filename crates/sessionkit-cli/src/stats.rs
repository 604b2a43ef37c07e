//! `sessionkit stats`.

use std::collections::BTreeMap;

use serde_json::json;
use sessionkit::store::user_index::auth_user_id;
use time::OffsetDateTime;

use crate::common::{self, CliError, EXIT_OK};
use crate::{decode, Context};

/// Options of `stats`.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Sessions read per page.
    #[arg(long, default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    page_size: u64,
}

/// Upper bounds of the size classes (bytes), the last one open.
const SIZE_CLASSES: [usize; 8] = [128, 256, 512, 1024, 2048, 4096, 16384, usize::MAX];

fn class_label(i: usize) -> String {
    let low = if i == 0 { 0 } else { SIZE_CLASSES[i - 1] };
    match SIZE_CLASSES[i] {
        usize::MAX => format!(">= {low}"),
        high => format!("{low}-{}", high - 1),
    }
}

/// Runs `stats`: one pass over every page.
pub async fn run(ctx: &mut Context<'_>, args: StatsArgs) -> Result<u8, CliError> {
    let settings = common::load_settings(ctx)?;
    let opened = common::open(ctx.store_url()?, &settings, sessionkit::store::Access::ReadOnly).await?;
    common::require_secret(&opened)?;
    let describe = opened.store.describe();
    let lister = common::lister_of(opened.store.as_ref())?;
    common::check_secret(lister, &describe, &settings).await?;
    let layout = match &opened.redis {
        Some(redis) => {
            use sessionkit::store::redis::config::Topology;
            let o = redis.options();
            let layout = o.layout.as_str();
            let topology = match o.topology {
                Topology::Standalone { .. } => "standalone",
                Topology::Sentinel { .. } => "sentinel",
                Topology::Cluster { .. } => "cluster",
            };
            let hashed = if o.hashed_keys { ", keys hashed at rest" } else { "" };
            format!("redis, {layout} layout, {topology}{hashed}")
        }
        None if opened.file.is_some() => "file (one signed token per file)".to_owned(),
        None if describe.starts_with("cached_db:") => "cached_db (counted in its database)".to_owned(),
        None if describe.starts_with("memory:") => "memory".to_owned(),
        None => "db (django_session table)".to_owned(),
    };
    let now = OffsetDateTime::now_utc();
    let (mut count, mut expired, mut logged_in, mut undecodable, mut total_bytes) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut min, mut max) = (usize::MAX, 0usize);
    let mut classes = [0u64; SIZE_CLASSES.len()];
    let mut encodings: BTreeMap<String, u64> = BTreeMap::new();
    let bar = common::progress(None, "reading sessions", ctx.progress);
    common::for_each_page(lister, args.page_size as usize, |page| {
        for session in page.sessions {
            let size = session.raw.bytes.len();
            count += 1;
            total_bytes += size as u64;
            min = min.min(size);
            max = max.max(size);
            let class = SIZE_CLASSES.iter().position(|high| size < *high).unwrap_or(SIZE_CLASSES.len() - 1);
            classes[class] += 1;
            if session.is_expired(now) {
                expired += 1;
            }
            *encodings.entry(decode::describe_format(&session.raw.bytes)).or_default() += 1;
            match decode::decode(&session.raw.bytes, Some(lister), &settings, false).data {
                Ok(data) if auth_user_id(&data).is_some() => logged_in += 1,
                Ok(_) => {}
                Err(_) => undecodable += 1,
            }
            bar.inc(1);
        }
        true
    })
    .await?;
    bar.finish_and_clear();
    let mean = if count > 0 { total_bytes as f64 / count as f64 } else { 0.0 };
    let server_memory = match &opened.redis {
        Some(redis) => redis
            .server_reports(&[])
            .await
            .ok()
            .map(|r| r.iter().filter_map(|s| s.info("used_memory")?.parse::<u64>().ok()).sum::<u64>()),
        None => None,
    };
    if ctx.json {
        let distribution: Vec<_> =
            classes.iter().enumerate().map(|(i, n)| json!({"bytes": class_label(i), "sessions": n})).collect();
        common::print_json(
            ctx.out,
            &json!({
                "store": describe,
                "layout": layout,
                "sessions": count,
                "valid": count - expired,
                "expired": expired,
                "logged_in": logged_in,
                "undecodable": undecodable,
                "total_bytes": total_bytes,
                "bytes_per_session": mean,
                "min_bytes": if count > 0 { min } else { 0 },
                "max_bytes": max,
                "size_distribution": distribution,
                "encodings": encodings,
                "redis_used_memory": server_memory,
            }),
        )?;
        return Ok(EXIT_OK);
    }
    outln!(ctx, "store:              {describe}");
    outln!(ctx, "layout:             {layout}");
    outln!(ctx, "sessions:           {count} ({} valid, {expired} expired, {logged_in} logged in)", count - expired);
    if undecodable > 0 {
        outln!(ctx, "undecodable:        {undecodable}");
    }
    outln!(
        ctx,
        "stored bytes:       {total_bytes} ({mean:.0} bytes per session, min {}, max {max})",
        if count > 0 { min } else { 0 }
    );
    if let Some(used) = server_memory {
        let per = used.checked_div(count).map_or_else(String::new, |per| format!(", {per} per session"));
        outln!(ctx, "redis used_memory:  {used} bytes (whole server{per})");
    }
    outln!(ctx, "\nsize distribution (stored value bytes):");
    let rows: Vec<Vec<String>> = classes
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| vec![class_label(i), n.to_string(), bar_of(*n, count)])
        .collect();
    out!(ctx, "{}", common::table(&["bytes", "sessions", ""], &rows));
    outln!(ctx, "\nencodings seen:");
    let rows: Vec<Vec<String>> = encodings.iter().map(|(k, n)| vec![k.clone(), n.to_string()]).collect();
    out!(ctx, "{}", common::table(&["encoding", "sessions"], &rows));
    Ok(EXIT_OK)
}

fn bar_of(n: u64, total: u64) -> String {
    if total == 0 {
        return String::new();
    }
    "#".repeat(((n * 30).div_ceil(total)) as usize)
}
