//! Django's session expiry rules (`get_expiry_age`, `get_expiry_date`, `set_expiry`,
//! `get_expire_at_browser_close`), as pure functions of the `_session_expiry` value and a clock reading.

use serde_json::Value;
use time::format_description::well_known::Iso8601;
use time::{Duration, OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// The key under which Django keeps a session's custom expiry.
pub const EXPIRY_KEY: &str = "_session_expiry";

/// A session's custom expiry, as stored under `_session_expiry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No custom expiry: `SESSION_COOKIE_AGE` applies, and `SESSION_EXPIRE_AT_BROWSER_CLOSE` decides the cookie.
    Default,
    /// `0`: the cookie expires when the browser closes; storage keeps the session for `SESSION_COOKIE_AGE`.
    BrowserClose,
    /// `N` seconds after each save (inactivity timeout). Negative values give an already expired session.
    Seconds(i64),
    /// An absolute time, stored as an ISO-8601 string as Python's `datetime.isoformat()` writes it.
    At(OffsetDateTime),
}

impl Expiry {
    /// Reads the stored `_session_expiry` value the way Django interprets it.
    ///
    /// Python semantics: `None`/absent means default; numbers (and booleans, which are ints in Python) are
    /// seconds, with 0 meaning browser close; strings are ISO datetimes. Floats are floored to whole seconds.
    /// A value Django itself could not use (an unparseable string, a list) falls back to the default, and a
    /// warning is logged.
    pub fn from_value(value: Option<&Value>) -> Expiry {
        match value {
            None | Some(Value::Null) => Expiry::Default,
            Some(Value::Bool(b)) => Expiry::from_seconds(i64::from(*b)),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(s) => Expiry::from_seconds(s),
                None => match n.as_f64() {
                    Some(f) if f.is_finite() => {
                        Expiry::from_seconds(f.floor().clamp(i64::MIN as f64, i64::MAX as f64) as i64)
                    }
                    _ => {
                        tracing::warn!(value = %n, "unusable _session_expiry number; using the default expiry");
                        Expiry::Default
                    }
                },
            },
            Some(Value::String(s)) => match parse_isoformat(s) {
                Some(at) => Expiry::At(at),
                None => {
                    tracing::warn!(value = %s, "unparseable _session_expiry datetime; using the default expiry");
                    Expiry::Default
                }
            },
            Some(other) => {
                tracing::warn!(value = %other, "unusable _session_expiry value; using the default expiry");
                Expiry::Default
            }
        }
    }

    fn from_seconds(seconds: i64) -> Expiry {
        if seconds == 0 {
            Expiry::BrowserClose
        } else {
            Expiry::Seconds(seconds)
        }
    }

    /// The value to store under `_session_expiry`, or `None` to remove the key (Django's `set_expiry(None)`).
    pub fn to_value(self) -> Option<Value> {
        match self {
            Expiry::Default => None,
            Expiry::BrowserClose => Some(Value::from(0)),
            Expiry::Seconds(s) => Some(Value::from(s)),
            Expiry::At(at) => Some(Value::String(to_isoformat(at))),
        }
    }

    /// Seconds until the session expires, counted from `modification` (Django's `get_expiry_age`).
    ///
    /// For an absolute expiry this is the whole seconds of `at - modification`, floored as Python's
    /// `timedelta.days * 86400 + timedelta.seconds` is.
    pub fn age(self, modification: OffsetDateTime, cookie_age: i64) -> i64 {
        match self {
            Expiry::Default | Expiry::BrowserClose => cookie_age,
            Expiry::Seconds(s) => s,
            Expiry::At(at) => (at - modification).as_seconds_f64().floor() as i64,
        }
    }

    /// When the session expires, for a save at `modification` (Django's `get_expiry_date`).
    pub fn date(self, modification: OffsetDateTime, cookie_age: i64) -> OffsetDateTime {
        match self {
            Expiry::At(at) => at,
            Expiry::Default | Expiry::BrowserClose => modification.saturating_add(Duration::seconds(cookie_age)),
            Expiry::Seconds(s) => modification.saturating_add(Duration::seconds(s)),
        }
    }

    /// Whether the cookie should expire when the browser closes (Django's `get_expire_at_browser_close`).
    pub fn at_browser_close(self, expire_at_browser_close_setting: bool) -> bool {
        match self {
            Expiry::Default => expire_at_browser_close_setting,
            Expiry::BrowserClose => true,
            Expiry::Seconds(_) | Expiry::At(_) => false,
        }
    }
}

/// The latest expiry a store keeps: 9999-12-31 23:59:59 UTC, the last whole second Python's `datetime`, SQL
/// `DATETIME` columns and HTTP dates can all say.
const LAST_STORABLE_UNIX_SECONDS: i64 = 253_402_300_799;

/// `at` clamped to what every store and cookie can say: from the Unix epoch (a session expiring then is long
/// expired) to 9999-12-31 23:59:59 UTC. An expiry comes from the handler (`set_expiry`) or from stored data, so
/// any value must be storable, never an error or a panic in a store.
pub fn clamp_storable(at: OffsetDateTime) -> OffsetDateTime {
    let last = OffsetDateTime::from_unix_timestamp(LAST_STORABLE_UNIX_SECONDS).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    at.clamp(OffsetDateTime::UNIX_EPOCH, last)
}

/// Parses a datetime as Python's `datetime.fromisoformat` does for the strings Django writes
/// (`2030-01-02T03:04:05+00:00`, with `.ffffff` when microseconds are non-zero). A string without an offset
/// (written by Django with `USE_TZ = False`) is taken as UTC.
pub fn parse_isoformat(s: &str) -> Option<OffsetDateTime> {
    if s.len() > 64 {
        return None;
    }
    if let Ok(at) = OffsetDateTime::parse(s, &Iso8601::DEFAULT) {
        return Some(at);
    }
    PrimitiveDateTime::parse(s, &Iso8601::DEFAULT).ok().map(PrimitiveDateTime::assume_utc)
}

/// Formats a datetime as Python's `datetime.isoformat()` does for an aware datetime:
/// `YYYY-MM-DDTHH:MM:SS[.ffffff]+HH:MM`.
pub fn to_isoformat(at: OffsetDateTime) -> String {
    let mut out = format_date_time(at, 'T');
    let offset: UtcOffset = at.offset();
    let total = offset.whole_seconds();
    let sign = if total < 0 { '-' } else { '+' };
    let abs = total.unsigned_abs();
    out.push_str(&format!("{sign}{:02}:{:02}", abs / 3600, (abs % 3600) / 60));
    if !abs.is_multiple_of(60) {
        out.push_str(&format!(":{:02}", abs % 60));
    }
    out
}

/// `YYYY-MM-DD<sep>HH:MM:SS` plus `.ffffff` when the microseconds are non-zero: the date-time part that Python's
/// `isoformat()` and Django's SQLite datetime text share.
pub(crate) fn format_date_time(at: OffsetDateTime, separator: char) -> String {
    let mut out = format!(
        "{:04}-{:02}-{:02}{separator}{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    if at.microsecond() != 0 {
        out.push_str(&format!(".{:06}", at.microsecond()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const AGE: i64 = 1_209_600;

    #[test]
    fn reads_stored_values_like_django() {
        assert_eq!(Expiry::from_value(None), Expiry::Default);
        assert_eq!(Expiry::from_value(Some(&json!(null))), Expiry::Default);
        assert_eq!(Expiry::from_value(Some(&json!(0))), Expiry::BrowserClose);
        assert_eq!(Expiry::from_value(Some(&json!(false))), Expiry::BrowserClose);
        assert_eq!(Expiry::from_value(Some(&json!(300))), Expiry::Seconds(300));
        assert_eq!(Expiry::from_value(Some(&json!(-5))), Expiry::Seconds(-5));
        assert_eq!(Expiry::from_value(Some(&json!(2.5))), Expiry::Seconds(2));
        assert_eq!(
            Expiry::from_value(Some(&json!("2030-01-02T03:04:05+00:00"))),
            Expiry::At(datetime!(2030-01-02 03:04:05 UTC))
        );
        assert_eq!(Expiry::from_value(Some(&json!("not a date"))), Expiry::Default);
        assert_eq!(Expiry::from_value(Some(&json!([1]))), Expiry::Default);
    }

    #[test]
    fn isoformat_round_trips_pythons_format() {
        let cases = [
            ("2030-01-02T03:04:05+00:00", datetime!(2030-01-02 03:04:05 UTC)),
            ("2030-01-02T03:04:05.123456+00:00", datetime!(2030-01-02 03:04:05.123456 UTC)),
            ("2030-01-02T03:04:05+05:30", datetime!(2030-01-02 03:04:05 +05:30)),
            ("2030-01-02T03:04:05-08:00", datetime!(2030-01-02 03:04:05 -08:00)),
        ];
        for (text, at) in cases {
            assert_eq!(parse_isoformat(text), Some(at), "{text}");
            assert_eq!(to_isoformat(at), text);
        }
        // Naive strings (USE_TZ = False) are read as UTC.
        assert_eq!(parse_isoformat("2030-01-02T03:04:05"), Some(datetime!(2030-01-02 03:04:05 UTC)));
        assert_eq!(parse_isoformat(&"9".repeat(10_000)), None);
    }

    #[test]
    fn age_and_date_follow_get_expiry_age_and_get_expiry_date() {
        let now = datetime!(2026-01-01 00:00:00.5 UTC);
        assert_eq!(Expiry::Default.age(now, AGE), AGE);
        assert_eq!(Expiry::BrowserClose.age(now, AGE), AGE);
        assert_eq!(Expiry::Seconds(300).age(now, AGE), 300);
        // timedelta(seconds=9.5).days*86400 + .seconds == 9: floored.
        assert_eq!(Expiry::At(datetime!(2026-01-01 00:00:10 UTC)).age(now, AGE), 9);
        // In the past: -0.5 s becomes days=-1, seconds=86399, i.e. -1.
        assert_eq!(Expiry::At(datetime!(2026-01-01 00:00:00 UTC)).age(now, AGE), -1);
        assert_eq!(Expiry::Default.date(now, AGE), now + Duration::seconds(AGE));
        assert_eq!(Expiry::Seconds(-10).date(now, AGE), now - Duration::seconds(10));
        let at = datetime!(2030-01-02 03:04:05 UTC);
        assert_eq!(Expiry::At(at).date(now, AGE), at);
    }

    #[test]
    fn expiries_are_clamped_to_what_stores_can_keep() {
        let now = datetime!(2026-01-01 00:00:00 UTC);
        assert_eq!(clamp_storable(Expiry::Seconds(300_000_000_000).date(now, AGE)), datetime!(9999-12-31 23:59:59 UTC));
        assert_eq!(clamp_storable(Expiry::Seconds(i64::MAX).date(now, AGE)), datetime!(9999-12-31 23:59:59 UTC));
        assert_eq!(clamp_storable(Expiry::Seconds(-3_000_000_000).date(now, AGE)), OffsetDateTime::UNIX_EPOCH);
        assert_eq!(clamp_storable(Expiry::Seconds(i64::MIN).date(now, AGE)), OffsetDateTime::UNIX_EPOCH);
        assert_eq!(clamp_storable(now), now);
    }

    #[test]
    fn browser_close_rule() {
        assert!(!Expiry::Default.at_browser_close(false));
        assert!(Expiry::Default.at_browser_close(true));
        assert!(Expiry::BrowserClose.at_browser_close(false));
        assert!(!Expiry::Seconds(10).at_browser_close(true));
    }

    #[test]
    fn to_value_is_what_set_expiry_stores() {
        assert_eq!(Expiry::Default.to_value(), None);
        assert_eq!(Expiry::BrowserClose.to_value(), Some(json!(0)));
        assert_eq!(Expiry::Seconds(60).to_value(), Some(json!(60)));
        assert_eq!(Expiry::At(datetime!(2030-01-02 03:04:05 UTC)).to_value(), Some(json!("2030-01-02T03:04:05+00:00")));
    }
}
