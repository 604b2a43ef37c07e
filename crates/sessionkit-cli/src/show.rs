//! `sessionkit show KEY`.

use serde_json::{json, Value};
use sessionkit::codec::CodecError;
use sessionkit::store::user_index::auth_user_id;
use sessionkit::SessionKey;
use time::OffsetDateTime;

use crate::common::{self, CliError, EXIT_OK};
use crate::{decode, Context};

/// Options of `show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The session key (the `sessionid` cookie's value; for a `cookie:` store, the whole cookie value).
    key: String,
    /// Print the stored bytes as they are: text as text, binary values as a hex dump.
    #[arg(long)]
    raw: bool,
}

/// Runs `show`.
pub async fn run(ctx: &mut Context<'_>, args: ShowArgs) -> Result<u8, CliError> {
    let key = SessionKey::parse(args.key.trim())
        .map_err(|_| CliError::usage("not a session key: Django's keys have at least 8 characters"))?;
    let settings = common::load_settings(ctx)?;
    let opened = common::open(ctx.store_url()?, &settings, sessionkit::store::Access::ReadOnly).await?;
    common::require_secret(&opened)?;
    let describe = opened.store.describe();
    let Some(raw) = opened.store.load_raw(&key).await? else {
        return Err(CliError::finding(format!("no session with this key in {describe}")));
    };
    let is_cookie = describe.starts_with("cookie:");
    let decoded = decode::decode(&raw.bytes, opened.store.lister(), &settings, is_cookie);
    if matches!(decoded.data, Err(CodecError::BadSignature)) {
        return Err(CliError::new(format!(
            "wrong secret: the session's signature matches neither SECRET_KEY nor its {} fallback(s) ({})",
            settings.secret_key_fallbacks.len(),
            decoded.format
        )));
    }
    let now = OffsetDateTime::now_utc();
    let user = decoded.data.as_ref().ok().and_then(auth_user_id);
    let expired = raw.expires_at.is_some_and(|at| at <= now);
    let unsupported = match &decoded.data {
        Err(CodecError::UnsupportedPickle { python_type }) => Some(python_type.clone()),
        _ => None,
    };
    if ctx.json {
        let mut out = json!({
            "key": key.as_str(),
            "store": describe,
            "format": decoded.format,
            "expires_at": raw.expires_at.map_or(Value::Null, common::json_time),
            "expired": expired,
            "user": user,
            "bytes": raw.bytes.len(),
            "data": decoded.data.as_ref().ok().map(|d| Value::Object(d.clone())),
            "decode_error": decoded.data.as_ref().err().map(ToString::to_string),
            "unsupported_python_type": unsupported,
        });
        if args.raw {
            out["raw_hex"] = Value::String(raw.bytes.iter().map(|b| format!("{b:02x}")).collect());
            out["raw_text"] = std::str::from_utf8(&raw.bytes).map_or(Value::Null, |t| Value::String(t.to_owned()));
        }
        common::print_json(ctx.out, &out)?;
        return Ok(EXIT_OK);
    }
    outln!(ctx, "key:      {}", key.as_str());
    outln!(ctx, "store:    {describe}");
    outln!(ctx, "format:   {}", decoded.format);
    match raw.expires_at {
        Some(at) => outln!(
            ctx,
            "expires:  {} ({}{})",
            common::human_time(at),
            common::relative(at, now),
            if expired { ", expired" } else { "" }
        ),
        None => outln!(ctx, "expires:  unknown (no expiry stored)"),
    }
    outln!(ctx, "user:     {}", user.as_deref().unwrap_or("- (not logged in)"));
    outln!(ctx, "size:     {} bytes", raw.bytes.len());
    match &decoded.data {
        Ok(data) => {
            let text = serde_json::to_string_pretty(&Value::Object(data.clone())).unwrap_or_default();
            outln!(ctx, "data:\n{text}");
        }
        Err(CodecError::UnsupportedPickle { python_type }) => outln!(
            ctx,
            "data:     not shown: the pickle holds a Python object of type {python_type}, which sessionkit never \
             executes (a session read by sessionkit holds JSON values only)"
        ),
        Err(err) => outln!(ctx, "data:     cannot be decoded: {err}"),
    }
    if args.raw {
        outln!(ctx, "raw:");
        out!(ctx, "{}", raw_dump(&raw.bytes));
    }
    Ok(EXIT_OK)
}

/// Printable ASCII as it is; anything else as a hex dump (`offset  16 bytes in hex  ASCII`).
fn raw_dump(bytes: &[u8]) -> String {
    if bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return format!("{}\n", String::from_utf8_lossy(bytes));
    }
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String =
            chunk.iter().map(|b| if b.is_ascii_graphic() || *b == b' ' { char::from(*b) } else { '.' }).collect();
        out.push_str(&format!("{:08x}  {:<47}  |{ascii}|\n", i * 16, hex.join(" ")));
    }
    out
}
