//! `sessionkit doctor`: what silently loses sessions on a Redis server (and a secret check on any store).

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sessionkit::store::redis::config::{DjangoEngine, Layout};
use sessionkit::store::redis::layout_record::{self, RecordCheck};
use sessionkit::store::redis::{glob_escape, RedisStore, ServerReport};
use sessionkit::store::Access;

use crate::common::{self, CliError, Opened, EXIT_FINDINGS, EXIT_OK};
use crate::Context;

/// Options of `doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Most `SCAN` steps (of COUNT 1000) per server when looking for Django cache keys.
    #[arg(long, default_value_t = 20, value_name = "N")]
    scan_budget: u32,
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Severity {
    Ok,
    Info,
    Skipped,
    Warning,
    Error,
}

impl Severity {
    fn label(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Info => "info",
            Severity::Skipped => "skipped",
            Severity::Warning => "WARNING",
            Severity::Error => "ERROR",
        }
    }
}

/// One check's outcome: what was found, why it matters, how to fix it.
struct Finding {
    check: &'static str,
    severity: Severity,
    found: String,
    why: String,
    fix: String,
}

fn finding(check: &'static str, severity: Severity, found: impl Into<String>) -> Finding {
    Finding { check, severity, found: found.into(), why: String::new(), fix: String::new() }
}

impl Finding {
    fn why(mut self, why: impl Into<String>) -> Self {
        self.why = why.into();
        self
    }
    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }
}

/// Runs `doctor`.
pub async fn run(ctx: &mut Context<'_>, args: DoctorArgs) -> Result<u8, CliError> {
    let settings = common::load_settings(ctx)?;
    let url = ctx.store_url()?.to_owned();
    let mut findings = Vec::new();
    let opened = match common::open(&url, &settings, Access::ReadOnly).await {
        Ok(opened) => opened,
        // A layout record of another shape is what doctor is for: report it as a finding.
        Err(err) if err.code == EXIT_FINDINGS => {
            let describe = sessionkit::store::redact_url(&url);
            findings.push(
                finding("layout record", Severity::Error, err.message)
                    .why("a store reading another shape than the sessions were written with finds none of them: every user looks logged out"),
            );
            print_findings(ctx, &describe, &findings)?;
            return Ok(EXIT_FINDINGS);
        }
        Err(err) => return Err(err),
    };
    common::require_secret(&opened)?;
    let describe = opened.store.describe();
    match &opened.redis {
        Some(redis) => redis_checks(redis, Role::of(redis), args.scan_budget, &mut findings).await?,
        None => match cached_db_cache(&url) {
            // cached_db: the cache's Redis server is checked as a cache (the database holds the sessions).
            Some(cache_url) => {
                let cache = common::open(&cache_url, &settings, Access::ReadOnly).await?;
                if let Some(redis) = &cache.redis {
                    redis_checks(redis, Role::CachedDbCache, args.scan_budget, &mut findings).await?;
                }
            }
            None => findings.push(
                finding("redis", Severity::Info, format!("{describe} is not a Redis store: only the store checks ran"))
                    .why("doctor's server checks (eviction, persistence, listpack limits, HEXPIRE) are about Redis"),
            ),
        },
    }
    store_checks(&opened, &mut findings).await;
    print_findings(ctx, &describe, &findings)?;
    let problems = findings.iter().filter(|f| f.severity >= Severity::Warning).count();
    Ok(if problems > 0 { EXIT_FINDINGS } else { EXIT_OK })
}

/// The Redis cache part of a `cached_db:CACHE|DB` URL, when it is one.
fn cached_db_cache(url: &str) -> Option<String> {
    let (cache, _) = sessionkit::store::cached_db_parts(url).ok()?;
    ["redis", "rediss", "unix", "valkey"].iter().any(|scheme| cache.starts_with(scheme)).then_some(cache)
}

/// What the sessions on a Redis server depend on it for: graded findings differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The server holds the sessions: losing a key logs its user out.
    Primary,
    /// The server is the cache of a `cached_db` store: the database holds every session, so an evicted or lost
    /// key costs one database read, not a login.
    CachedDbCache,
}

impl Role {
    fn of(redis: &RedisStore) -> Role {
        let options = redis.options();
        if options.layout == Layout::DjangoCache && options.django.engine == DjangoEngine::CachedDb {
            Role::CachedDbCache
        } else {
            Role::Primary
        }
    }
}

/// Prints the findings (a table for people, or `--json`).
fn print_findings(ctx: &mut Context<'_>, describe: &str, findings: &[Finding]) -> Result<(), CliError> {
    let problems = findings.iter().filter(|f| f.severity >= Severity::Warning).count();
    if ctx.json {
        let items: Vec<Value> = findings
            .iter()
            .map(|f| {
                json!({"check": f.check, "severity": f.severity.label().to_lowercase(), "found": f.found,
                       "why": f.why, "fix": f.fix})
            })
            .collect();
        common::print_json(ctx.out, &json!({"store": describe, "problems": problems, "findings": items}))?;
    } else {
        outln!(ctx, "sessionkit doctor: {describe}");
        for f in findings {
            outln!(ctx, "{:<8} {}: {}", f.severity.label(), f.check, f.found);
            if !f.why.is_empty() {
                outln!(ctx, "         why: {}", f.why);
            }
            if !f.fix.is_empty() {
                outln!(ctx, "         fix: {}", f.fix);
            }
        }
        outln!(ctx, "{problems} problem(s) found");
    }
    Ok(())
}

/// Store-level checks for every store: reachable, listable, and whether the secret reads the data.
async fn store_checks(opened: &Opened, findings: &mut Vec<Finding>) {
    let Some(lister) = opened.store.lister() else {
        findings.push(finding(
            "sessions",
            Severity::Info,
            "signed cookies keep sessions in browsers; nothing to sample",
        ));
        return;
    };
    let sampled = match common::sample(lister, 100).await {
        Ok(sampled) => sampled,
        Err(err) => {
            findings.push(finding("sessions", Severity::Error, format!("cannot list sessions: {}", err.message)));
            return;
        }
    };
    let total = sampled.len();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for s in &sampled {
        if let Err(err) = lister.decode(&s.raw.bytes) {
            *errors.entry(err.to_string()).or_default() += 1;
        }
    }
    let bad: usize = errors.values().sum();
    if total == 0 {
        findings.push(finding("sessions", Severity::Info, "no sessions stored (nothing to sample)"));
    } else if bad == 0 {
        findings.push(finding("sessions", Severity::Ok, format!("all {total} sampled sessions decode")));
    } else {
        let reasons: Vec<String> = errors.iter().map(|(e, n)| format!("{n}× {e}")).collect();
        findings.push(
            finding("sessions", Severity::Warning, format!("{bad} of {total} sampled sessions do not decode: {}", reasons.join("; ")))
                .why("undecodable sessions load as empty sessions: their users are logged out")
                .fix("check SECRET_KEY / SECRET_KEY_FALLBACKS, and for Redis the layout, serializer and compressor options of the URL"),
        );
    }
}

fn parse_u64(text: Option<&str>) -> Option<u64> {
    text?.trim().parse().ok()
}

async fn redis_checks(
    redis: &RedisStore,
    role: Role,
    budget: u32,
    findings: &mut Vec<Finding>,
) -> Result<(), CliError> {
    let options = redis.options();
    if role == Role::CachedDbCache {
        findings.push(
            finding("role", Severity::Info, "this Redis server is the cache of a cached_db store")
                .why("the database holds every session: a key this server loses costs one database read, not a login; findings are graded for a cache"),
        );
    }
    let config_names =
        ["maxmemory-policy", "maxmemory", "save", "appendonly", "hash-max-listpack-entries", "hash-max-listpack-value"];
    let reports = redis.server_reports(&config_names).await?;
    let refused: Vec<&ServerReport> = reports.iter().filter(|r| r.config.is_err()).collect();
    if let Some(first) = refused.first() {
        let reason = first.config.as_ref().err().cloned().unwrap_or_default();
        findings.push(
            finding("config", Severity::Skipped, format!("CONFIG GET refused ({}): persistence and listpack limits are judged from INFO and OBJECT ENCODING instead", common::one_line(&reason)))
                .why("a managed Redis or an ACL user without +config cannot read the configuration")
                .fix("run doctor as a user with +config for the exact settings, or check them in your provider's console"),
        );
    }
    for report in &reports {
        let node = if reports.len() > 1 { format!(" ({})", report.node) } else { String::new() };
        version_check(report, redis, &node, findings);
        eviction_check(report, &node, role, findings);
        persistence_check(report, &node, role, findings);
        if options.layout == Layout::Hash {
            listpack_config_check(report, &node, options.compress_min_bytes, findings);
        }
    }
    if options.layout == Layout::Hash {
        let encodings = redis.bucket_encodings(50).await?;
        let hashtables: Vec<&(String, String, u64)> = encodings.iter().filter(|(_, e, _)| e == "hashtable").collect();
        if encodings.is_empty() {
            findings.push(finding("bucket encoding", Severity::Info, "no bucket hashes yet (nothing to sample)"));
        } else if hashtables.is_empty() {
            findings.push(finding(
                "bucket encoding",
                Severity::Ok,
                format!("{} sampled bucket hashes are listpacks", encodings.len()),
            ));
        } else {
            let (key, _, len) = hashtables[0];
            findings.push(
                finding("bucket encoding", Severity::Warning, format!("{} of {} sampled bucket hashes use the hashtable encoding (e.g. {key} with {len} sessions)", hashtables.len(), encodings.len()))
                    .why("a bucket that outgrew hash-max-listpack-entries/-value costs several times the memory, and Redis never converts it back")
                    .fix("CONFIG SET hash-max-listpack-entries 512 and hash-max-listpack-value 1024 (and in redis.conf), or use more buckets (docs/redis.md)"),
            );
        }
    }
    prefix_check(redis, budget, findings).await?;
    layout_checks(redis, budget, findings).await?;
    Ok(())
}

/// The layout record of the prefix (a mismatch never gets here: opening the store reports it), keys of the other
/// layout under the same prefix, and `hash` buckets beyond the configured count (data written with more buckets
/// before the record existed).
async fn layout_checks(redis: &RedisStore, budget: u32, findings: &mut Vec<Finding>) -> Result<(), CliError> {
    let options = redis.options();
    let record_key = layout_record::record_key(&options.prefix);
    match redis.layout_record() {
        RecordCheck::NotApplicable => return Ok(()),
        RecordCheck::Matches | RecordCheck::Written => findings.push(finding(
            "layout record",
            Severity::Ok,
            format!("{record_key} matches this store's configuration"),
        )),
        RecordCheck::Adopted { previous } => findings.push(finding(
            "layout record",
            Severity::Warning,
            format!("adopt_layout=true replaced {record_key} (it said {previous:?})"),
        )
        .why("sessions written with the previous shape are unreachable")
        .fix("remove adopt_layout=true from the URL now that the record is rewritten")),
        RecordCheck::Unchecked { reason } => findings.push(
            finding("layout record", Severity::Warning, format!("cannot read {record_key}: {reason}"))
                .why("without the record a store configured with another layout or bucket count than the sessions were written with finds none of them, unnoticed")
                .fix(format!("give the application's Redis user access to {record_key} (ACL ~{}*)", options.prefix)),
        ),
        RecordCheck::Missing => findings.push(
            finding("layout record", Severity::Info, format!("no {record_key} yet"))
                .why("the first store that opens this prefix to write records its layout, bucket count and key form; until then a mismatch cannot be detected")
                .fix("nothing to do: the application writes it when it connects"),
        ),
    }
    let (other, other_name) = match options.layout {
        Layout::String => ("h:", "hash"),
        Layout::Hash => ("s:", "string"),
        Layout::DjangoCache => return Ok(()),
    };
    let pattern = |part: &str| format!("{}*", glob_escape(&format!("{}{part}", options.prefix)));
    let (foreign, complete) = redis.sample_keys(&pattern(other), budget.max(1), 1000).await?;
    if !foreign.is_empty() {
        let example = String::from_utf8_lossy(&foreign[0]).into_owned();
        findings.push(
            finding("other layout", Severity::Warning, format!("{}{} keys of the {other_name} layout under prefix '{}' (e.g. {example}){}",
                foreign.len(), if complete { "" } else { "+" }, options.prefix, if complete { "" } else { ", SCAN budget used up" }))
                .why(format!("this store uses the {} layout and never reads them: they are sessions of another configuration, logged out for this one", options.layout.as_str()))
                .fix(format!("move them with `sessionkit migrate --from 'URL?layout={other_name}' --to 'URL?layout={}'`, or delete them", options.layout.as_str())),
        );
    }
    if options.layout == Layout::Hash {
        let (buckets, _) = redis.sample_keys(&pattern("h:"), budget.max(1), 100_000).await?;
        let beyond = buckets
            .iter()
            .filter_map(|key| String::from_utf8_lossy(key).rsplit(':').next().and_then(|n| n.parse::<u64>().ok()))
            .filter(|n| *n >= u64::from(options.buckets))
            .max();
        if let Some(highest) = beyond {
            findings.push(
                finding("bucket count", Severity::Error, format!("bucket hashes up to {}h:{highest} exist, but this store has buckets={}", options.prefix, options.buckets))
                    .why("sessions were written with more buckets than configured: a key is looked up in another bucket than it was written to, so most sessions are never found")
                    .fix(format!("set buckets to the count they were written with (at least {}), or migrate them to a new prefix", highest + 1)),
            );
        }
    }
    Ok(())
}

/// The hash layout's expiry path, as the store chose it from the server's commands (`COMMAND INFO`); for the
/// other layouts, which do not need it, what the version says.
fn version_check(report: &ServerReport, redis: &RedisStore, node: &str, findings: &mut Vec<Finding>) {
    let layout = redis.options().layout;
    let version = report.info("redis_version").unwrap_or("unknown").to_owned();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if layout == Layout::Hash && redis.uses_hash_field_expiry() {
        findings.push(
            finding(
                "HEXPIRE",
                Severity::Ok,
                format!("Redis {version}{node} has per-field expiry: the hash layout expires sessions on the server (HPEXPIREAT), no sweeper needed"),
            )
            .why("chosen from the server's commands (COMMAND INFO HPEXPIREAT HPTTL), not its version"),
        );
    } else if layout != Layout::Hash && (major, minor) >= (7, 4) {
        findings.push(finding(
            "HEXPIRE",
            Severity::Ok,
            format!("Redis {version}{node} has per-field expiry (HPEXPIREAT)"),
        ));
    } else if layout == Layout::Hash {
        findings.push(
            finding("HEXPIRE", Severity::Warning, format!("Redis {version}{node} has no HPEXPIREAT/HPTTL (Redis >= 7.4, Valkey >= 9): the hash layout uses the sweeper"))
                .why("the hash layout cannot expire single fields: expired sessions stay in their buckets, using memory, until swept")
                .fix("schedule `sessionkit clear-expired` in cron (e.g. hourly), or upgrade to Redis >= 7.4"),
        );
    } else {
        findings.push(finding(
            "HEXPIRE",
            Severity::Info,
            format!("Redis {version}{node} has no HEXPIRE (needs 7.4); this layout does not need it"),
        ));
    }
}

fn eviction_check(report: &ServerReport, node: &str, role: Role, findings: &mut Vec<Finding>) {
    let policy = report.config("maxmemory-policy").or(report.info("maxmemory_policy")).unwrap_or("unknown").to_owned();
    let maxmemory = parse_u64(report.config("maxmemory").or(report.info("maxmemory")));
    if role == Role::CachedDbCache {
        let found = match maxmemory {
            Some(0) => format!("no maxmemory set{node}"),
            Some(limit) => format!("maxmemory-policy {policy} with maxmemory {limit}{node}"),
            None => format!("maxmemory not reported{node}"),
        };
        findings.push(finding("eviction", Severity::Ok, found).why(
            "as a cached_db cache, an evicted session is read from the database on its next request: eviction costs a query, never a login",
        ));
        return;
    }
    match maxmemory {
        Some(0) => findings.push(
            finding("eviction", Severity::Ok, format!("no maxmemory set{node} (policy {policy} never applies)"))
                .why("Redis grows until the machine runs out of memory; watch used_memory"),
        ),
        Some(limit) if policy.starts_with("allkeys-") => findings.push(
            finding("eviction", Severity::Error, format!("maxmemory-policy {policy} with maxmemory {limit}{node}"))
                .why("when memory is full Redis evicts any key, live sessions included: users are logged out at random and nothing reports it")
                .fix("use a Redis of its own for sessions with maxmemory-policy noeviction (writes then fail loudly), or volatile-* with caches given TTLs and enough memory"),
        ),
        Some(limit) if policy.starts_with("volatile-") => findings.push(
            finding("eviction", Severity::Warning, format!("maxmemory-policy {policy} with maxmemory {limit}{node}"))
                .why("volatile-* evicts keys that have a TTL, and every session key has one: a full Redis logs users out")
                .fix("keep sessions on a Redis with maxmemory-policy noeviction, or size maxmemory well above the sessions' memory"),
        ),
        Some(limit) => findings.push(finding("eviction", Severity::Ok, format!("maxmemory {limit} with policy {policy}{node}: sessions are never evicted"))),
        None => findings.push(finding("eviction", Severity::Skipped, format!("maxmemory not reported{node}"))),
    }
}

fn persistence_check(report: &ServerReport, node: &str, role: Role, findings: &mut Vec<Finding>) {
    if role == Role::CachedDbCache {
        findings.push(
            finding("persistence", Severity::Ok, format!("not needed{node}: this server is a cached_db cache")).why(
                "the database holds every session; after a restart the cache refills from it, one query per session",
            ),
        );
        return;
    }
    let aof = report.config("appendonly").map(|v| v == "yes").or_else(|| report.info("aof_enabled").map(|v| v == "1"));
    let why = "a restart or crash loses every session: all users are logged out at once";
    let fix = "enable AOF (appendonly yes, appendfsync everysec) or RDB snapshots (save 3600 1 300 100 60 10000)";
    match (report.config("save"), aof) {
        (_, Some(true)) => findings.push(finding("persistence", Severity::Ok, format!("AOF enabled{node}"))),
        (Some(save), Some(false)) if save.trim().is_empty() => findings.push(
            finding(
                "persistence",
                Severity::Error,
                format!("no persistence{node}: save is empty and appendonly is no"),
            )
            .why(why)
            .fix(fix),
        ),
        (Some(save), _) => {
            findings.push(finding("persistence", Severity::Ok, format!("RDB snapshots{node} (save {save})")))
        }
        (None, _) => {
            // No CONFIG rights: judge from INFO persistence.
            let saves = parse_u64(report.info("rdb_saves"));
            let changes = parse_u64(report.info("rdb_changes_since_last_save"));
            let last_save = parse_u64(report.info("rdb_last_save_time"));
            let uptime = parse_u64(report.info("uptime_in_seconds"));
            let never_saved = saves == Some(0) && changes.is_some_and(|c| c > 0);
            if never_saved {
                findings.push(
                    finding("persistence", Severity::Warning, format!("probably no persistence{node}: AOF off and no RDB snapshot since the start {} ago, with {} unsaved changes (CONFIG refused, so `save` could not be read)",
                        uptime.map_or_else(|| "?".to_owned(), |u| format!("{u}s")), changes.unwrap_or(0)))
                        .why(why).fix(fix),
                );
            } else {
                findings.push(finding(
                    "persistence",
                    Severity::Ok,
                    format!("AOF off; RDB snapshots are being taken{node} (last at {})", last_save.unwrap_or(0)),
                ));
            }
        }
    }
}

fn listpack_config_check(report: &ServerReport, node: &str, compress_min_bytes: usize, findings: &mut Vec<Finding>) {
    let entries = parse_u64(report.config("hash-max-listpack-entries"));
    let value = parse_u64(report.config("hash-max-listpack-value"));
    let typical = compress_min_bytes.max(400) as u64;
    match (entries, value) {
        (Some(entries), Some(value)) if entries < 400 || value < typical => findings.push(
            finding("listpack limits", Severity::Warning, format!("hash-max-listpack-entries {entries}, hash-max-listpack-value {value}{node}"))
                .why("the hash layout saves memory only while each bucket stays a listpack; smaller limits turn buckets into hashtables")
                .fix(format!("CONFIG SET hash-max-listpack-entries 512 and hash-max-listpack-value 1024 (at least {typical}), and put them in redis.conf")),
        ),
        (Some(entries), Some(value)) => findings.push(finding("listpack limits", Severity::Ok, format!("hash-max-listpack-entries {entries}, hash-max-listpack-value {value}{node}"))),
        _ => {}
    }
}

/// The store URL options that read sessions under `prefix` (`KP:V:django.contrib.sessions.cache[d_db]`).
fn url_options_for(prefix: &str) -> String {
    let mut parts = prefix.splitn(3, ':');
    let (kp, version, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or("1"), parts.next().unwrap_or(""));
    let engine = if rest.ends_with("cached_db") { "cached_db" } else { "cache" };
    format!("layout=django-cache&key_prefix={kp}&version={version}&engine={engine}")
}

/// Django's cache engine keys: `KEY_PREFIX:VERSION:django.contrib.sessions.cache<key>` (or `cached_db`).
async fn prefix_check(redis: &RedisStore, budget: u32, findings: &mut Vec<Finding>) -> Result<(), CliError> {
    const MARKER: &str = "django.contrib.sessions.cache";
    let options = redis.options();
    let (keys, complete) = redis.sample_keys(&format!("*{MARKER}*"), budget.max(1), 1000).await?;
    let mut prefixes: BTreeMap<String, u64> = BTreeMap::new();
    for key in &keys {
        let text = String::from_utf8_lossy(key);
        let Some(at) = text.find(MARKER) else { continue };
        let engine = if text[at + MARKER.len()..].starts_with("d_db") { "cached_db" } else { "cache" };
        *prefixes
            .entry(format!("{}{MARKER}{}", &text[..at], if engine == "cached_db" { "d_db" } else { "" }))
            .or_default() += 1;
    }
    let scanned = if complete { "whole keyspace scanned" } else { "SCAN budget used up; counts are a sample" };
    let configured = {
        let d = &options.django;
        format!("{}:{}:{}", d.key_prefix, d.version, d.engine_prefix())
    };
    let found: Vec<String> = prefixes.iter().map(|(p, n)| format!("{n} under '{p}…'")).collect();
    match options.layout {
        Layout::DjangoCache => {
            let ours = prefixes.get(&configured).copied().unwrap_or(0);
            let others: Vec<&String> = prefixes.keys().filter(|p| **p != configured).collect();
            if !others.is_empty() && ours == 0 {
                findings.push(
                    finding("django-cache prefix", Severity::Error, format!("this store reads '{configured}…' but Django's sessions are elsewhere: {} ({scanned})", found.join(", ")))
                        .why("with a KEY_PREFIX, VERSION or engine mismatch sessionkit and Django never see each other's sessions: every request looks logged out")
                        .fix(format!("match Django's CACHES['default'] KEY_PREFIX and VERSION in the store URL: {}", url_options_for(others[0]))),
                );
            } else if !others.is_empty() {
                findings.push(
                    finding(
                        "django-cache prefix",
                        Severity::Warning,
                        format!("sessions under several prefixes: {} ({scanned})", found.join(", ")),
                    )
                    .why("a second Django site or an old KEY_PREFIX/VERSION writes sessions this store never reads")
                    .fix("check that every app sharing sessions uses the same KEY_PREFIX and VERSION"),
                );
            } else if ours > 0 {
                findings.push(finding(
                    "django-cache prefix",
                    Severity::Ok,
                    format!("{ours} sessions under the configured '{configured}…' ({scanned})"),
                ));
            } else {
                findings.push(finding(
                    "django-cache prefix",
                    Severity::Info,
                    format!("no Django cache sessions found ({scanned})"),
                ));
            }
        }
        Layout::String | Layout::Hash if !prefixes.is_empty() => findings.push(
            finding(
                "django-cache prefix",
                Severity::Info,
                format!("Django cache-engine sessions present: {} ({scanned})", found.join(", ")),
            )
            .why("this store's layout does not read Django's own cache sessions")
            .fix("to share sessions with Django use layout=django-cache with Django's KEY_PREFIX and VERSION"),
        ),
        _ => {}
    }
    Ok(())
}
