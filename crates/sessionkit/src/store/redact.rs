//! Store URLs made safe to show: every password and every secret-looking query parameter replaced by `***`.
//!
//! A store's [`describe`](super::SessionStore::describe) and every configuration error carry the URL through
//! here, so it can reach logs, error pages and the demo's inspector. Works on the text, not through a URL parser,
//! because several forms the stores accept are not URLs a parser takes (`redis+cluster://a:7000,b:7001`,
//! `cached_db:CACHE|DB`, passwords with unescaped `@` or `/`).

/// What replaces a secret.
const REDACTED: &str = "***";

/// Query parameter names (lowercased, percent-decoded) that hold secrets when they contain one of these.
const SECRET_NAME_PARTS: [&str; 6] = ["pass", "pwd", "secret", "token", "credential", "auth"];

/// `url` with the password of its userinfo and the values of secret-looking query parameters (`password`,
/// `pass`, `sentinel_password`, `token`, `*key`, ...) replaced by `***`. A `cached_db:CACHE|DB` URL has both of
/// its URLs redacted. The user name and everything else stay, so the text still says which store it is.
pub fn redact_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("cached_db:") {
        return match rest.split_once('|') {
            Some((cache, db)) => format!("cached_db:{}|{}", redact_url(cache), redact_url(db)),
            None => format!("cached_db:{}", redact_url(rest)),
        };
    }
    let url = redact_userinfo(url);
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (url.as_str(), None),
    };
    let (base, query) = match before_fragment.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (before_fragment, None),
    };
    let mut out = base.to_owned();
    if let Some(query) = query {
        out.push('?');
        out.push_str(&redact_query(query));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// `scheme://user:password@hosts/path` → `scheme://user:***@hosts/path`. The userinfo ends at the *last* `@` of the
/// URL, so a password with unescaped `@`, `/`, `?` or `#` is still covered (a query value with an `@` after a
/// password may then be hidden too: too much is hidden, never too little). Path-only schemes (`sqlite`, `file`)
/// have no userinfo: an `@` in a file name stays.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    if matches!(scheme, "sqlite" | "file") {
        return url.to_owned();
    }
    let Some((userinfo, hosts)) = rest.rsplit_once('@') else { return url.to_owned() };
    let user = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:{REDACTED}"),
        None => userinfo.to_owned(),
    };
    format!("{scheme}://{user}@{hosts}")
}

fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _value)) if is_secret_name(name) => format!("{name}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_secret_name(name: &str) -> bool {
    let decoded: String = url::form_urlencoded::parse(format!("{name}=").as_bytes())
        .next()
        .map(|(name, _)| name.to_lowercase())
        .unwrap_or_default();
    decoded.ends_with("key") || SECRET_NAME_PARTS.iter().any(|part| decoded.contains(part))
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    /// Every URL form the stores accept, with secrets where a user could put them.
    #[test]
    fn every_url_form_loses_its_secrets() {
        let cases = [
            ("redis://user:hunter2@host:6379/0", "redis://user:***@host:6379/0"),
            ("redis://:hunter2@host", "redis://:***@host"),
            ("redis://user@host", "redis://user@host"),
            ("rediss://u:hunter2@host:6380/1?layout=hash#insecure", "rediss://u:***@host:6380/1?layout=hash#insecure"),
            ("redis://host/0?password=hunter2&layout=hash", "redis://host/0?password=***&layout=hash"),
            ("redis://host?pass=hunter2", "redis://host?pass=***"),
            ("redis://host?PassWord=hunter2", "redis://host?PassWord=***"),
            ("redis://host?pass%77ord=hunter2", "redis://host?pass%77ord=***"),
            ("unix:///run/redis.sock?db=2&password=hunter2", "unix:///run/redis.sock?db=2&password=***"),
            ("redis+unix:///run/redis.sock?pass=hunter2", "redis+unix:///run/redis.sock?pass=***"),
            (
                "redis+sentinel://u:hunter2@s1:26379,s2:26380/mymaster/2?sentinel_password=hunter3&sentinel_username=sv",
                "redis+sentinel://u:***@s1:26379,s2:26380/mymaster/2?sentinel_password=***&sentinel_username=sv",
            ),
            ("rediss+sentinel://:hunter2@s1/m", "rediss+sentinel://:***@s1/m"),
            ("redis+cluster://u:hunter2@a:7000,b:7001,c:7002", "redis+cluster://u:***@a:7000,b:7001,c:7002"),
            ("rediss+cluster://:hunter2@a:7000,b:7001?layout=hash", "rediss+cluster://:***@a:7000,b:7001?layout=hash"),
            ("redis://u:hun@ter/2@host:6379", "redis://u:***@host:6379"),
            ("redis://u:hun#ter2@host:6379/0", "redis://u:***@host:6379/0"),
            ("redis://u:hun?ter2@host:6379/0?layout=hash", "redis://u:***@host:6379/0?layout=hash"),
            ("redis://:hunter2#@host", "redis://:***@host"),
            ("redis://u:hunter2@host/0?next=a@b", "redis://u:***@b"),
            ("redis://host/0?token=hunter2@b&layout=hash", "redis://host/0?token=***&layout=hash"),
            ("postgres://app:hunter2@db:5432/app?sslmode=require", "postgres://app:***@db:5432/app?sslmode=require"),
            ("postgresql://app@db/app?password=hunter2", "postgresql://app@db/app?password=***"),
            ("mysql://root:hunter2@127.0.0.1:3306/test", "mysql://root:***@127.0.0.1:3306/test"),
            ("mariadb://root:hunter2@h/test?ssl-key=/k.pem", "mariadb://root:***@h/test?ssl-key=***"),
            ("sqlite://demo.sqlite3", "sqlite://demo.sqlite3"),
            ("sqlite:///srv/me@home/db.sqlite3?mode=rwc", "sqlite:///srv/me@home/db.sqlite3?mode=rwc"),
            ("file:///var/sessions", "file:///var/sessions"),
            ("file://", "file://"),
            ("memory://", "memory://"),
            ("cookie:", "cookie:"),
            (
                "cached_db:redis://:hunter2@h/0?token=hunter3|postgres://app:hunter4@db/app",
                "cached_db:redis://:***@h/0?token=***|postgres://app:***@db/app",
            ),
            ("redis://host?failure_policy=empty&key_prefix=app&hashed_keys=1", "redis://host?failure_policy=empty&key_prefix=app&hashed_keys=1"),
            ("redis://host?api_key=hunter2&auth=hunter3&secret=x&token=y", "redis://host?api_key=***&auth=***&secret=***&token=***"),
            ("not a url at all", "not a url at all"),
        ];
        for (url, expected) in cases {
            let redacted = redact_url(url);
            assert_eq!(redacted, expected, "{url}");
            assert!(!redacted.contains("hunter"), "{url} → {redacted}");
        }
    }
}
