//! Django's `SESSION_*` settings, `SECRET_KEY` and `SECRET_KEY_FALLBACKS`, with Django's defaults.

use std::path::PathBuf;

use crate::{ConfigError, SecretKey};

/// The `SameSite` attribute of the session cookie (`SESSION_COOKIE_SAMESITE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Lax` (Django's default).
    Lax,
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=None` (browsers then require `Secure`).
    None,
}

impl SameSite {
    /// The attribute value as Django writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

/// Session settings, named after Django's and defaulting to Django's values.
///
/// Build them in code (`Settings { cookie_age: 3600, ..Settings::default() }`) or from environment variables
/// with Django's names ([`Settings::from_env`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `SESSION_COOKIE_NAME`, default `sessionid`.
    pub cookie_name: String,
    /// `SESSION_COOKIE_AGE` in seconds, default 1209600 (two weeks).
    pub cookie_age: i64,
    /// `SESSION_COOKIE_DOMAIN`, default none.
    pub cookie_domain: Option<String>,
    /// `SESSION_COOKIE_SECURE`, default false.
    pub cookie_secure: bool,
    /// `SESSION_COOKIE_PATH`, default `/`.
    pub cookie_path: String,
    /// `SESSION_COOKIE_HTTPONLY`, default true.
    pub cookie_httponly: bool,
    /// `SESSION_COOKIE_SAMESITE`, default `Lax`; `None` here means the attribute is not sent (Django's `False`).
    pub cookie_samesite: Option<SameSite>,
    /// `SESSION_SAVE_EVERY_REQUEST`, default false.
    pub save_every_request: bool,
    /// `SESSION_EXPIRE_AT_BROWSER_CLOSE`, default false.
    pub expire_at_browser_close: bool,
    /// `SESSION_FILE_PATH`, default none (the system temp dir).
    pub file_path: Option<PathBuf>,
    /// `SESSION_CACHE_ALIAS`, default `default`.
    pub cache_alias: String,
    /// `SECRET_KEY`: signs stored session data (db, file, cookie stores). Default empty, which those stores refuse.
    pub secret_key: SecretKey,
    /// `SECRET_KEY_FALLBACKS`: older secrets still accepted when reading, never used to sign.
    pub secret_key_fallbacks: Vec<SecretKey>,
    /// Also read session data in the format of Django before 3.1 (`base64(sha1-hmac ":" json)`), as Django
    /// 3.1 and 3.2 did, in the stores that keep signed data (db, file, cached_db's database). Env var
    /// `SESSIONKIT_ACCEPT_LEGACY_FORMAT` (no Django equivalent). Default false: like Django 4.0+, such data
    /// is corrupt and loads as an empty session. Nothing writes the old format: a legacy session that is saved
    /// again is written in the current one.
    pub accept_legacy_format: bool,
    /// `SESSION_IDLE_TIMEOUT` in seconds (sessionkit's; Django has none): a session without a request for this
    /// long has expired. Default none (off: Django's behaviour). See [`crate::lifetime`].
    pub idle_timeout: Option<i64>,
    /// `SESSION_ABSOLUTE_TIMEOUT` in seconds (sessionkit's): a session created or cycled (at login) this long ago
    /// has expired, whatever its activity. Default none (off). See [`crate::lifetime`].
    pub absolute_timeout: Option<i64>,
    /// `SESSION_TOUCH_INTERVAL` in seconds (sessionkit's): with an idle timeout, a request that only reads moves
    /// the session's expiry at most once per interval. Default none: 60 s, or half the idle timeout when that is
    /// shorter. It must be shorter than the idle timeout. See [`crate::lifetime`].
    pub touch_interval: Option<i64>,
    /// The clock of the lifetime rules ([`crate::lifetime`]): the real time, or a test's own.
    pub clock: crate::lifetime::Clock,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            cookie_name: "sessionid".to_owned(),
            cookie_age: 1_209_600,
            cookie_domain: None,
            cookie_secure: false,
            cookie_path: "/".to_owned(),
            cookie_httponly: true,
            cookie_samesite: Some(SameSite::Lax),
            save_every_request: false,
            expire_at_browser_close: false,
            file_path: None,
            cache_alias: "default".to_owned(),
            secret_key: SecretKey::new(Vec::new()),
            secret_key_fallbacks: Vec::new(),
            accept_legacy_format: false,
            idle_timeout: None,
            absolute_timeout: None,
            touch_interval: None,
            clock: crate::lifetime::Clock::default(),
        }
    }
}

impl Settings {
    /// Django's defaults with the given `SECRET_KEY`.
    pub fn with_secret_key(secret_key: impl Into<SecretKey>) -> Self {
        Settings { secret_key: secret_key.into(), ..Settings::default() }
    }

    /// Reads settings from environment variables named like Django's settings; unset variables keep the default.
    ///
    /// Booleans accept `true/false`, `True/False`, `1/0`, `yes/no`, `on/off`. `SESSION_COOKIE_SAMESITE` accepts
    /// `Lax`, `Strict`, `None`, or `False`/empty for no attribute. `SESSION_COOKIE_DOMAIN` and
    /// `SESSION_FILE_PATH` treat an empty value as unset. `SECRET_KEY_FALLBACKS` is a JSON list of strings
    /// (`["old1", "old2"]`) or, if it does not start with `[`, a comma-separated list. sessionkit's own
    /// `SESSIONKIT_ACCEPT_LEGACY_FORMAT` (a boolean) sets [`Settings::accept_legacy_format`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Settings::from_env`], reading values through `lookup` (a map in tests, a config file, ...).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut s = Settings::default();
        if let Some(v) = lookup("SESSION_COOKIE_NAME") {
            if v.is_empty() || !v.bytes().all(is_cookie_name_byte) {
                return Err(invalid("SESSION_COOKIE_NAME", v, "a cookie name (letters, digits, !#$%&'*+-.^_`|~)"));
            }
            s.cookie_name = v;
        }
        if let Some(v) = lookup("SESSION_COOKIE_AGE") {
            s.cookie_age =
                v.trim().parse().map_err(|_| invalid("SESSION_COOKIE_AGE", v, "an integer number of seconds"))?;
        }
        if let Some(v) = lookup("SESSION_COOKIE_DOMAIN") {
            s.cookie_domain = (!v.is_empty() && v != "None").then_some(v);
        }
        if let Some(v) = lookup("SESSION_COOKIE_SECURE") {
            s.cookie_secure = parse_bool("SESSION_COOKIE_SECURE", v)?;
        }
        if let Some(v) = lookup("SESSION_COOKIE_PATH") {
            s.cookie_path = v;
        }
        if let Some(v) = lookup("SESSION_COOKIE_HTTPONLY") {
            s.cookie_httponly = parse_bool("SESSION_COOKIE_HTTPONLY", v)?;
        }
        if let Some(v) = lookup("SESSION_COOKIE_SAMESITE") {
            s.cookie_samesite = match v.to_ascii_lowercase().as_str() {
                "lax" => Some(SameSite::Lax),
                "strict" => Some(SameSite::Strict),
                "none" => Some(SameSite::None),
                "" | "false" => None,
                _ => return Err(invalid("SESSION_COOKIE_SAMESITE", v, "Lax, Strict, None or False")),
            };
        }
        if let Some(v) = lookup("SESSION_SAVE_EVERY_REQUEST") {
            s.save_every_request = parse_bool("SESSION_SAVE_EVERY_REQUEST", v)?;
        }
        if let Some(v) = lookup("SESSION_EXPIRE_AT_BROWSER_CLOSE") {
            s.expire_at_browser_close = parse_bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", v)?;
        }
        if let Some(v) = lookup("SESSION_FILE_PATH") {
            s.file_path = (!v.is_empty() && v != "None").then(|| PathBuf::from(v));
        }
        if let Some(v) = lookup("SESSION_CACHE_ALIAS") {
            s.cache_alias = v;
        }
        if let Some(v) = lookup("SECRET_KEY") {
            s.secret_key = SecretKey::from(v);
        }
        if let Some(v) = lookup("SECRET_KEY_FALLBACKS") {
            s.secret_key_fallbacks = parse_secret_list(&v)?;
        }
        if let Some(v) = lookup("SESSIONKIT_ACCEPT_LEGACY_FORMAT") {
            s.accept_legacy_format = parse_bool("SESSIONKIT_ACCEPT_LEGACY_FORMAT", v)?;
        }
        for (name, field) in [
            ("SESSION_IDLE_TIMEOUT", &mut s.idle_timeout),
            ("SESSION_ABSOLUTE_TIMEOUT", &mut s.absolute_timeout),
            ("SESSION_TOUCH_INTERVAL", &mut s.touch_interval),
        ] {
            if let Some(v) = lookup(name) {
                *field = parse_seconds(name, v)?;
            }
        }
        crate::secret::check_not_blank(&s.secret_key, &s.secret_key_fallbacks)?;
        crate::lifetime::check(&s)?;
        Ok(s)
    }
}

fn is_cookie_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn invalid(name: &'static str, value: String, expected: &'static str) -> ConfigError {
    ConfigError::InvalidSetting { name, value, expected }
}

fn parse_bool(name: &'static str, value: String) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(invalid(name, value, "a boolean (true/false, 1/0, yes/no, on/off)")),
    }
}

/// A positive number of seconds, or none for an empty value, `None` or `0` (the rule is off).
fn parse_seconds(name: &'static str, value: String) -> Result<Option<i64>, ConfigError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed == "None" {
        return Ok(None);
    }
    match trimmed.parse::<i64>() {
        Ok(0) => Ok(None),
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(invalid(name, value, "a positive integer number of seconds (empty, None or 0: off)")),
    }
}

fn parse_secret_list(value: &str) -> Result<Vec<SecretKey>, ConfigError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    if trimmed.starts_with('[') {
        let list: Vec<String> = serde_json::from_str(trimmed).map_err(|_| ConfigError::InvalidSetting {
            name: "SECRET_KEY_FALLBACKS",
            value: "<redacted>".to_owned(),
            expected: "a JSON list of strings or a comma-separated list",
        })?;
        return Ok(list.into_iter().map(SecretKey::from).collect());
    }
    Ok(trimmed.split(',').filter(|s| !s.is_empty()).map(SecretKey::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_djangos() {
        let s = Settings::default();
        assert_eq!(s.cookie_name, "sessionid");
        assert_eq!(s.cookie_age, 1_209_600);
        assert_eq!(s.cookie_domain, None);
        assert!(!s.cookie_secure);
        assert_eq!(s.cookie_path, "/");
        assert!(s.cookie_httponly);
        assert_eq!(s.cookie_samesite, Some(SameSite::Lax));
        assert!(!s.save_every_request);
        assert!(!s.expire_at_browser_close);
        assert_eq!(s.file_path, None);
        assert_eq!(s.cache_alias, "default");
        assert!(s.secret_key.is_empty());
        assert!(!s.accept_legacy_format);
        assert_eq!((s.idle_timeout, s.absolute_timeout, s.touch_interval), (None, None, None));
        assert_eq!(from(&[]).unwrap(), s);
    }

    #[test]
    fn reads_every_setting_by_its_django_name() {
        let s = from(&[
            ("SESSION_COOKIE_NAME", "sid"),
            ("SESSION_COOKIE_AGE", "3600"),
            ("SESSION_COOKIE_DOMAIN", ".example.com"),
            ("SESSION_COOKIE_SECURE", "True"),
            ("SESSION_COOKIE_PATH", "/app"),
            ("SESSION_COOKIE_HTTPONLY", "false"),
            ("SESSION_COOKIE_SAMESITE", "Strict"),
            ("SESSION_SAVE_EVERY_REQUEST", "1"),
            ("SESSION_EXPIRE_AT_BROWSER_CLOSE", "yes"),
            ("SESSION_FILE_PATH", "/tmp/sessions"),
            ("SESSION_CACHE_ALIAS", "sessions"),
            ("SECRET_KEY", "s3cret"),
            ("SECRET_KEY_FALLBACKS", r#"["old1", "old,2"]"#),
        ])
        .unwrap();
        assert_eq!(s.cookie_name, "sid");
        assert_eq!(s.cookie_age, 3600);
        assert_eq!(s.cookie_domain.as_deref(), Some(".example.com"));
        assert!(s.cookie_secure);
        assert_eq!(s.cookie_path, "/app");
        assert!(!s.cookie_httponly);
        assert_eq!(s.cookie_samesite, Some(SameSite::Strict));
        assert!(s.save_every_request);
        assert!(s.expire_at_browser_close);
        assert_eq!(s.file_path, Some(PathBuf::from("/tmp/sessions")));
        assert_eq!(s.cache_alias, "sessions");
        assert_eq!(s.secret_key, SecretKey::from("s3cret"));
        assert_eq!(s.secret_key_fallbacks, vec![SecretKey::from("old1"), SecretKey::from("old,2")]);
        let s = from(&[("SECRET_KEY_FALLBACKS", "a,b"), ("SESSION_COOKIE_SAMESITE", "False")]).unwrap();
        assert_eq!(s.secret_key_fallbacks, vec![SecretKey::from("a"), SecretKey::from("b")]);
        assert_eq!(s.cookie_samesite, None);
    }

    #[test]
    fn lifetime_settings_are_read_and_checked() {
        let s = from(&[
            ("SESSION_IDLE_TIMEOUT", "1800"),
            ("SESSION_ABSOLUTE_TIMEOUT", "43200"),
            ("SESSION_TOUCH_INTERVAL", "60"),
        ])
        .unwrap();
        assert_eq!((s.idle_timeout, s.absolute_timeout, s.touch_interval), (Some(1800), Some(43200), Some(60)));
        let off = from(&[("SESSION_IDLE_TIMEOUT", "0"), ("SESSION_ABSOLUTE_TIMEOUT", "")]).unwrap();
        assert_eq!((off.idle_timeout, off.absolute_timeout), (None, None));
        let err = from(&[("SESSION_IDLE_TIMEOUT", "-5")]).unwrap_err();
        assert!(matches!(err, ConfigError::InvalidSetting { name: "SESSION_IDLE_TIMEOUT", .. }), "{err}");
        let err = from(&[("SESSION_IDLE_TIMEOUT", "60"), ("SESSION_TOUCH_INTERVAL", "60")]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("SESSION_TOUCH_INTERVAL") && text.contains("SESSION_IDLE_TIMEOUT"), "{text}");
        let err = from(&[("SESSION_IDLE_TIMEOUT", "600"), ("SESSION_ABSOLUTE_TIMEOUT", "300")]).unwrap_err();
        assert!(err.to_string().contains("SESSION_ABSOLUTE_TIMEOUT"), "{err}");
    }

    #[test]
    fn accept_legacy_format_from_env() {
        for (value, expected) in
            [("1", true), ("true", true), ("True", true), ("0", false), ("false", false), ("", false)]
        {
            let s = from(&[("SESSIONKIT_ACCEPT_LEGACY_FORMAT", value)]).unwrap();
            assert_eq!(s.accept_legacy_format, expected, "{value:?}");
        }
        assert!(!from(&[]).unwrap().accept_legacy_format);
    }

    #[test]
    fn bad_values_are_typed_errors_naming_the_setting() {
        let err = from(&[("SESSION_COOKIE_AGE", "two weeks")]).unwrap_err();
        assert!(matches!(err, ConfigError::InvalidSetting { name: "SESSION_COOKIE_AGE", .. }));
        assert!(err.to_string().contains("SESSION_COOKIE_AGE"));
        assert!(from(&[("SESSION_COOKIE_SECURE", "maybe")]).is_err());
        assert!(from(&[("SESSION_COOKIE_SAMESITE", "sometimes")]).is_err());
        assert!(from(&[("SESSION_COOKIE_NAME", "bad name;")]).is_err());
        let err = from(&[("SESSIONKIT_ACCEPT_LEGACY_FORMAT", "sometimes")]).unwrap_err();
        assert!(matches!(err, ConfigError::InvalidSetting { name: "SESSIONKIT_ACCEPT_LEGACY_FORMAT", .. }));
        let err = from(&[("SECRET_KEY_FALLBACKS", "[not json")]).unwrap_err();
        assert!(!err.to_string().contains("not json"), "secrets are not echoed");
    }

    #[test]
    fn blank_secrets_are_refused() {
        for (name, value) in [
            ("SECRET_KEY_FALLBACKS", r#"[""]"#),
            ("SECRET_KEY_FALLBACKS", r#"["old", "  "]"#),
            ("SECRET_KEY_FALLBACKS", "old, \t ,new"),
            ("SECRET_KEY", "   "),
        ] {
            let err = from(&[("SECRET_KEY", "real"), (name, value)]).unwrap_err();
            assert_eq!(
                err,
                ConfigError::BlankSecret {
                    setting: if name == "SECRET_KEY" { "SECRET_KEY" } else { "SECRET_KEY_FALLBACKS" }
                }
            );
            assert!(err.to_string().contains(name), "{err}");
        }
        // An unset (empty) SECRET_KEY stays allowed here; the stores that sign refuse it.
        assert!(from(&[("SECRET_KEY", "")]).unwrap().secret_key.is_empty());
        let ok = Settings { secret_key_fallbacks: vec![SecretKey::from("old")], ..Settings::with_secret_key("k") };
        assert!(crate::secret::check_secrets(&ok.secret_key, &ok.secret_key_fallbacks).is_ok());
    }
}
