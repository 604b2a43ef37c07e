//! `GET /session`, the session inspector: the session as this request sees it (key, expiry if saved now, the
//! cookie's `Max-Age`, the data), its stored form decoded (the signed token's parts, or the Redis key, bucket,
//! field, value header and the TTL Redis reports), and `POST /session/expiry`.

use super::*;

/// What the inspector reads under the session's lock.
struct Snapshot {
    key: Option<SessionKey>,
    data: Map<String, Value>,
    expiry_if_saved_now: OffsetDateTime,
    browser_close: bool,
    /// The `Max-Age` the session layer sends in `Set-Cookie` when it saves this session (`None`: none is sent, the
    /// cookie ends with the browser session).
    cookie_max_age: Option<i64>,
}

pub(super) async fn inspector(State(state): State<AppState>, session: Session) -> Result<Html<String>, AppError> {
    // Everything under one lock, data first: loading drops a key the store does not know.
    let snapshot = {
        let mut core = session.lock().await;
        let data: Map<String, Value> = core.items().await?.into_iter().collect();
        let expiry_if_saved_now = core.expiry_date().await?;
        let browser_close = core.expire_at_browser_close().await?;
        // As sessionkit-tower's layer computes it for the Set-Cookie header (Django's get_expiry_age()).
        let cookie_max_age = if browser_close { None } else { Some(core.expiry_age().await?) };
        Snapshot { key: core.key().cloned(), data, expiry_if_saved_now, browser_close, cookie_max_age }
    };
    let data_json =
        serde_json::to_string_pretty(&Value::Object(snapshot.data.clone())).unwrap_or_else(|err| format!("<{err}>"));
    let (key_html, stored_expiry, stored_html) = match &snapshot.key {
        None => (
            "<em>no session yet</em>".to_owned(),
            "<em>nothing stored</em>".to_owned(),
            "<p>Nothing is stored for this visitor yet: a session is saved once something is put into it.</p>"
                .to_owned(),
        ),
        Some(key) => {
            let raw = state.store.store.load_raw(key).await?;
            let stored_expiry = match raw.as_ref().map(|raw| raw.expires_at) {
                Some(Some(at)) => format!(r#"<span id="stored-expiry">{}</span>"#, format_time(at)),
                Some(None) => r#"<span id="stored-expiry">none kept by this store</span>"#.to_owned(),
                None => r#"<span id="stored-expiry">nothing stored</span>"#.to_owned(),
            };
            let stored = match raw {
                None => "<p>The store has no entry under this key (it was deleted meanwhile).</p>".to_owned(),
                Some(raw) => stored_form(&state, key, &raw).await?,
            };
            (format!(r#"<code class="token" id="session-key">{}</code>"#, esc(key.as_str())), stored_expiry, stored)
        }
    };
    let cookie_max_age = match snapshot.cookie_max_age {
        Some(age) => {
            format!(r#"<code>Max-Age=<span id="cookie-max-age">{age}</span></code> ({})"#, esc(&format_seconds(age)))
        }
        None => r#"<span id="cookie-max-age">none</span>: no <code>Max-Age</code> nor <code>expires</code>, so the
        browser drops the cookie when it closes"#
            .to_owned(),
    };
    // The expiry form needs a CSRF token, which lives in the session: offered once there is a session, so that
    // looking at the inspector never creates one. A session without a CSRF secret gets one now, saved after
    // this page was read: the page says so.
    let (visitor, added_secret) = match (&snapshot.key, crate::csrf::existing_form_field(&session).await?) {
        (None, _) => (Visitor::of(&session).await?, false),
        (Some(_), Some(csrf)) => (Visitor::with_form(&session, csrf).await?, false),
        (Some(_), None) => (Visitor::with_form(&session, crate::csrf::form_field(&session).await?).await?, true),
    };
    let stored_html = if added_secret {
        format!(
            r#"<p class="note" id="stored-form-stale">This page has just added a CSRF secret (<code>_csrftoken</code>,
    for its forms) to the session: it is saved after the page was read, so the stored form below is from before.
    Reload to see it stored.</p>
    {stored_html}"#
        )
    } else {
        stored_html
    };
    let expiry_form = if snapshot.key.is_some() {
        format!(
            r#"<form class="expiry" method="post" action="/session/expiry">
      {csrf}
      <div class="actions"><span>Set the expiry:</span>
        <button class="small secondary" name="expiry" value="default">Default ({default})</button>
        <button class="small secondary" name="expiry" value="browser-close">At browser close</button>
        <button class="small secondary" name="expiry" value="five-minutes">After 5 minutes of inactivity</button>
      </div>
    </form>"#,
            csrf = visitor.csrf(),
            default = esc(&format_seconds(state.settings.cookie_age)),
        )
    } else {
        r#"<p class="note">The expiry can be changed once there is a session (visit <a href="/">Home</a>).</p>"#
            .to_owned()
    };
    let body = format!(
        r#"    <section class="card">
    <h2>This session</h2>
    <table class="kv">
      <tr><th>Session key</th><td>{key_html}</td></tr>
      <tr><th>Stored expiry</th><td>{stored_expiry}<br><span class="note">What the store holds, written by the
        last save: the session ends then unless it is saved again.</span></td></tr>
      <tr><th>Expiry if saved now</th><td><span id="expiry-date">{expiry}</span><br><span class="note">Django's
        <code>get_expiry_date()</code>, counted from now: every save moves the stored expiry here (the expiry
        slides with activity).</span></td></tr>
      <tr><th>Expires at browser close</th><td id="browser-close">{browser_close}</td></tr>
      <tr><th>Cookie</th><td><code>{cookie}</code>, {cookie_max_age}<br><span class="note">What
        <code>Set-Cookie</code> carries whenever the session is saved (this page saves nothing, so it sends no
        cookie).</span></td></tr>
      <tr><th>Store</th><td><code id="store">{store}</code></td></tr>
    </table>
    {expiry_form}
    </section>
    <section class="card">
    <h2>Data, as the handler sees it</h2>
    <pre id="data">{data}</pre>
    </section>
    <section class="card" id="stored-form">
    <h2>Stored form, as the store keeps it</h2>
    {stored_html}
    </section>"#,
        expiry = format_time(snapshot.expiry_if_saved_now),
        browser_close = if snapshot.browser_close { "yes" } else { "no" },
        cookie = esc(&state.settings.cookie_name),
        store = esc(&state.store.store.describe()),
        data = esc(&data_json),
    );
    Ok(page("Session inspector", "/session", &visitor, &body))
}

/// The stored form of `key`, explained: where it lives (Redis), the value's header or the signed token's parts,
/// and the payload decoded.
async fn stored_form(state: &AppState, key: &SessionKey, raw: &RawSession) -> Result<String, StoreError> {
    let mut out = String::new();
    if let Some(redis) = &state.store.redis {
        out.push_str(&redis_location(redis, key).await?);
        if redis.options().layout != Layout::DjangoCache {
            out.push_str(&native_value(raw, decoded(state, raw)));
            return Ok(out);
        }
    }
    let text = std::str::from_utf8(&raw.bytes).ok();
    match text.and_then(SignedToken::parse) {
        Some(token) => out.push_str(&signed_token(state, &token, raw)),
        None if text.is_some_and(|t| t.starts_with('{')) => {
            out.push_str(&format!(
                r#"<p>JSON text, {} bytes (this store keeps the dict as JSON, unsigned):</p>"#,
                raw.bytes.len()
            ));
            out.push_str(&payload_json(decoded(state, raw)));
        }
        None => {
            out.push_str(&format!(
                r#"<p>{} bytes{}:</p><pre class="hex" id="raw-hex">{}</pre>"#,
                raw.bytes.len(),
                if state.store.redis.is_some() {
                    ", as Django's cache wrote them (pickle, or django-redis's serializer)"
                } else {
                    ""
                },
                hex_dump(&raw.bytes, 256)
            ));
            out.push_str(&payload_json(decoded(state, raw)));
        }
    }
    Ok(out)
}

/// The session dict the store's own decoder reads from `raw` (for a signed-cookie store, which has no lister, the
/// token verified with the signed_cookies salt).
fn decoded(state: &AppState, raw: &RawSession) -> Result<Map<String, Value>, CodecError> {
    match state.store.store.lister() {
        Some(lister) => lister.decode(&raw.bytes),
        None => {
            let token = std::str::from_utf8(&raw.bytes).map_err(|_| CodecError::Malformed("a cookie is ASCII"))?;
            let settings = &state.settings;
            Signer::new(SIGNED_COOKIES_SALT, settings.secret_key.clone(), settings.secret_key_fallbacks.clone())
                .unsign_object(token, None, OffsetDateTime::now_utc().unix_timestamp(), &DecodeLimits::default())
        }
    }
}

/// The decoded payload as pretty JSON, or why it could not be decoded.
fn payload_json(data: Result<Map<String, Value>, CodecError>) -> String {
    match data {
        Ok(map) => format!(
            r#"<h3>Payload, decoded</h3><pre id="stored-json">{}</pre>"#,
            esc(&serde_json::to_string_pretty(&Value::Object(map)).unwrap_or_default())
        ),
        Err(err) => {
            format!(r#"<p class="error" id="stored-json">The payload does not decode: {}</p>"#, esc(&err.to_string()))
        }
    }
}

/// `01 00 6a 3f …`: the first `max` bytes in hex.
fn hex_dump(bytes: &[u8], max: usize) -> String {
    let mut out: Vec<String> = bytes.iter().take(max).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > max {
        out.push(format!("… ({} more bytes)", bytes.len() - max));
    }
    out.join(" ")
}

/// Where the session lives in Redis and the TTL Redis reports for it.
async fn redis_location(redis: &RedisStore, key: &SessionKey) -> Result<String, StoreError> {
    let options = redis.options();
    let (redis_key, field) = redis.raw_address(key);
    // Keys and fields are text, except a `hash` field under hashed_keys=true: the raw SHA-256 of the key.
    let printable = |bytes: &[u8]| match std::str::from_utf8(bytes) {
        Ok(text) if text.chars().all(|c| !c.is_control()) => esc(text).into_owned(),
        _ => format!(r#"{} <span class="note">(SHA-256 of the key: hashed_keys=true)</span>"#, hex_dump(bytes, 32)),
    };
    let mut rows =
        format!(r#"<tr><th>Layout</th><td><code id="redis-layout">{}</code></td></tr>"#, options.layout.as_str());
    match &field {
        Some(field) => rows.push_str(&format!(
            r#"<tr><th>Bucket (hash key)</th><td><code class="token" id="redis-bucket">{}</code></td></tr>
      <tr><th>Field</th><td><code class="token" id="redis-field">{}</code></td></tr>"#,
            printable(&redis_key),
            printable(field)
        )),
        None => rows.push_str(&format!(
            r#"<tr><th>Redis key</th><td><code class="token" id="redis-key">{}</code></td></tr>"#,
            printable(&redis_key)
        )),
    }
    let ttl = match redis.server_ttl(key).await? {
        ServerTtl::KeyPttl(ms) => format!(r#"<code>PTTL</code> → {}"#, ttl_text(ms, "key")),
        ServerTtl::FieldHpttl(ms) => format!(r#"<code>HPTTL … FIELDS 1 …</code> → {}"#, ttl_text(ms, "field")),
        ServerTtl::Sweeper => r#"<span id="redis-ttl">none on the server</span>: this Redis has no per-field expiry
        (it came with 7.4), so the field stays until the sweeper (<code>clear_expired</code>) deletes it after the
        expiry in the value's header"#
            .to_owned(),
    };
    rows.push_str(&format!(r#"<tr><th>TTL, as Redis reports it</th><td>{ttl}</td></tr>"#));
    Ok(format!(r#"<h3>Where it lives in Redis</h3><table class="kv">{rows}</table>"#))
}

/// A `PTTL` / `HPTTL` answer in words.
fn ttl_text(ms: i64, what: &str) -> String {
    let explained = match ms {
        -2 => format!("no such {what}"),
        -1 => format!("the {what} has no expiry"),
        ms => format!("{} left", format_seconds(ms / 1000)),
    };
    format!(r#"<code id="redis-ttl">{ms}</code> ms ({explained})"#)
}

/// A `string` / `hash` layout value: the header's fields, then the payload.
fn native_value(raw: &RawSession, data: Result<Map<String, Value>, CodecError>) -> String {
    let bytes = &raw.bytes;
    let header = match ValueHeader::parse(bytes) {
        Ok(header) => header,
        Err(err) => {
            return format!(
                r#"<p class="error">Not a sessionkit value ({}):</p><pre class="hex" id="raw-hex">{}</pre>"#,
                esc(&err.to_string()),
                hex_dump(bytes, 256)
            )
        }
    };
    let head = &bytes[..ValueHeader::LEN.min(bytes.len())];
    let payload_len = bytes.len().saturating_sub(ValueHeader::LEN);
    let payload_kind =
        if header.flags & 0b11 == 0 { "JSON text".to_owned() } else { format!("{} compressed", header.compression()) };
    format!(
        r#"<h3>Value: {total} bytes</h3>
    <table class="kv">
      <tr><th>Header (bytes 0–5)</th><td><code class="hex" id="value-header-hex">{head_hex}</code></td></tr>
      <tr><th>Format version (byte 0)</th><td id="value-version">{version}</td></tr>
      <tr><th>Flags (byte 1)</th><td><code>0x{flags:02x}</code>: compression <span id="value-compression">{compression}</span></td></tr>
      <tr><th>Expiry (bytes 2–5)</th><td><span id="value-expiry">{expiry}</span> <span class="note">(Unix time {seconds}, u32 big-endian)</span></td></tr>
      <tr><th>Payload (bytes 6–)</th><td>{payload_len} bytes, {payload_kind}</td></tr>
    </table>
    {json}"#,
        total = bytes.len(),
        head_hex = hex_dump(head, ValueHeader::LEN),
        version = header.version,
        flags = header.flags,
        compression = esc(header.compression()),
        payload_kind = esc(&payload_kind),
        expiry = format_time(header.expires_at),
        seconds = header.expires_at.unix_timestamp(),
        json = payload_json(data),
    )
}

/// A signed token's three parts (`payload:timestamp:signature`), as Django's `signing.dumps` writes them.
struct SignedToken<'a> {
    text: &'a str,
    payload: &'a str,
    timestamp: &'a str,
    signature: &'a str,
}

impl<'a> SignedToken<'a> {
    fn parse(text: &'a str) -> Option<SignedToken<'a>> {
        let (rest, signature) = text.rsplit_once(':')?;
        let (payload, timestamp) = rest.rsplit_once(':')?;
        let base64 = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let ok = signature.len() == 43
            && base64(signature)
            && !timestamp.is_empty()
            && timestamp.bytes().all(|b| b.is_ascii_alphanumeric())
            && base64(payload.strip_prefix('.').unwrap_or(payload))
            && !payload.is_empty();
        ok.then_some(SignedToken { text, payload, timestamp, signature })
    }
}

fn signed_token(state: &AppState, token: &SignedToken<'_>, raw: &RawSession) -> String {
    let cookie_store = state.store.store.lister().is_none();
    let salt = if cookie_store { SIGNED_COOKIES_SALT } else { SESSION_SALT };
    let data = decoded(state, raw);
    let compressed = token.payload.starts_with('.');
    let signed_at = token_timestamp(token.text)
        .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
        .map(|at| format!("signed at {}", format_time(at)))
        .unwrap_or_else(|| "not a base62 number".to_owned());
    let verified = match &data {
        Ok(_) => "verified with this SECRET_KEY".to_owned(),
        Err(CodecError::BadSignature) => {
            "does <strong>not</strong> verify with this SECRET_KEY or its fallbacks".to_owned()
        }
        Err(err) => format!("not verified: {}", esc(&err.to_string())),
    };
    let intro = if cookie_store {
        "The signed_cookies store keeps nothing on the server: the cookie value <em>is</em> the session, a signed token"
    } else {
        "A signed token, as Django's db, file and cached_db backends store <code>session_data</code>"
    };
    format!(
        r#"<p>{intro} ({len} characters): <code>payload:timestamp:signature</code>.</p>
    <table class="kv">
      <tr><th>Payload</th><td><code class="token" id="token-payload">{payload}</code><br><span class="note">URL-safe
        base64 of the JSON ({payload_len} characters); compressed: <span id="token-compressed">{compressed}</span></span></td></tr>
      <tr><th>Timestamp</th><td><code id="token-timestamp">{timestamp}</code> <span class="note">(base62 seconds:
        {signed_at})</span></td></tr>
      <tr><th>Signature</th><td><code class="token" id="token-signature">{signature}</code><br><span class="note">HMAC-SHA256 of
        <code>payload:timestamp</code> keyed with SHA-256 of salt <code>{salt}</code> + <code>signer</code> +
        SECRET_KEY, URL-safe base64: <span id="token-verified">{verified}</span></span></td></tr>
    </table>
    {json}"#,
        len = token.text.len(),
        payload = esc(token.payload),
        payload_len = token.payload.len(),
        compressed = if compressed { "yes, zlib (the leading <code>.</code>)" } else { "no" },
        timestamp = esc(token.timestamp),
        signature = esc(token.signature),
        json = payload_json(data),
    )
}

/// The expiry form's field.
#[derive(Debug, Deserialize)]
pub(super) struct ExpiryForm {
    expiry: String,
}

pub(super) async fn set_expiry(session: Session, Form(form): Form<ExpiryForm>) -> Result<Response, AppError> {
    let expiry = match form.expiry.as_str() {
        "default" => Expiry::Default,
        "browser-close" => Expiry::BrowserClose,
        "five-minutes" => Expiry::Seconds(300),
        other => return Ok(bad_request(&session, &format!("Unknown expiry {other:?}.")).await),
    };
    session.set_expiry(expiry).await?;
    Ok(Redirect::to("/session").into_response())
}
