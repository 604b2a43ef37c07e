//! `Set-Cookie` values written exactly as Django writes them.
//!
//! Django builds cookies with Python's `http.cookies.Morsel`, which emits attributes in alphabetical order of
//! their internal names: `Domain`, `expires`, `HttpOnly`, `Max-Age`, `Path`, `SameSite`, `Secure`. Matching that
//! byte for byte keeps responses identical to a Django app's (and diffable against one).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use sessionkit::Settings;

/// The `Set-Cookie` value that stores `value` in the session cookie.
///
/// `max_age` is `None` for a browser-close cookie (then neither `expires` nor `Max-Age` is sent); otherwise
/// `expires` is `now + max_age` as an HTTP date, as Django's middleware computes it.
pub fn session_cookie_header(settings: &Settings, value: &str, max_age: Option<i64>, now: SystemTime) -> String {
    // One allocation, sized for Django's default attributes; the request path formats this on every save.
    let mut out = String::with_capacity(settings.cookie_name.len() + value.len() + 112);
    out.push_str(&settings.cookie_name);
    out.push('=');
    out.push_str(value);
    if let Some(domain) = &settings.cookie_domain {
        out.push_str("; Domain=");
        out.push_str(domain);
    }
    if let Some(age) = max_age {
        out.push_str("; expires=");
        push_http_date(&mut out, cookie_expires(now, age));
    }
    if settings.cookie_httponly {
        out.push_str("; HttpOnly");
    }
    if let Some(age) = max_age {
        let _ = write!(out, "; Max-Age={age}");
    }
    push_path_samesite(&mut out, settings);
    if settings.cookie_secure {
        out.push_str("; Secure");
    }
    out
}

/// Appends `at` as an HTTP date (`Tue, 28 Nov 2023 22:13:20 GMT`). The text of the last second formatted on this
/// thread is kept: the responses of one second carry the same `expires` (the cookie age is a setting), so most of
/// them copy it instead of formatting a date again (a profile of the HTTP benchmark showed the formatting at 2 % of
/// the app's CPU).
fn push_http_date(out: &mut String, at: SystemTime) {
    thread_local! {
        static LAST_DATE: RefCell<(Option<u64>, String)> = const { RefCell::new((None, String::new())) };
    }
    let second = at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).ok();
    LAST_DATE.with_borrow_mut(|(cached_second, text)| {
        if second.is_none() || *cached_second != second {
            *text = httpdate::fmt_http_date(at);
            *cached_second = second;
        }
        out.push_str(text);
    });
}

/// The last moment an HTTP date can name: 9999-12-31 23:59:59 UTC.
const LAST_HTTP_DATE_SECS: u64 = 253_402_300_799;

/// `now + age` as the cookie's `expires`, clamped to what an HTTP date can say (1970 to year 9999): an age set by
/// a handler or stored in a session by another program may be anything, and formatting must not fail on it.
fn cookie_expires(now: SystemTime, age: i64) -> SystemTime {
    let first = SystemTime::UNIX_EPOCH;
    let last = first + Duration::from_secs(LAST_HTTP_DATE_SECS);
    let at = if age >= 0 {
        now.checked_add(Duration::from_secs(age.unsigned_abs())).unwrap_or(last)
    } else {
        now.checked_sub(Duration::from_secs(age.unsigned_abs())).unwrap_or(first)
    };
    at.clamp(first, last)
}

/// The `Set-Cookie` value that deletes the session cookie, as Django's `HttpResponse.delete_cookie` writes it:
/// `sessionid=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; SameSite=Lax`. `Secure` is added
/// for `__Secure-`/`__Host-` names and for `SameSite=None`, as Django does.
pub fn delete_cookie_header(settings: &Settings) -> String {
    let mut out = format!("{}=\"\"", settings.cookie_name);
    if let Some(domain) = &settings.cookie_domain {
        out.push_str("; Domain=");
        out.push_str(domain);
    }
    out.push_str("; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0");
    push_path_samesite(&mut out, settings);
    let secure = settings.cookie_name.starts_with("__Secure-")
        || settings.cookie_name.starts_with("__Host-")
        || settings.cookie_samesite == Some(sessionkit::SameSite::None);
    if secure {
        out.push_str("; Secure");
    }
    out
}

fn push_path_samesite(out: &mut String, settings: &Settings) {
    if !settings.cookie_path.is_empty() {
        out.push_str("; Path=");
        out.push_str(&settings.cookie_path);
    }
    if let Some(same_site) = settings.cookie_samesite {
        out.push_str("; SameSite=");
        out.push_str(same_site.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessionkit::SameSite;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn default_cookie_matches_django_byte_for_byte() {
        // Python: SimpleCookie with Django's defaults prints exactly this for a save at 1700000000.
        let header = session_cookie_header(&Settings::default(), "abc", Some(1_209_600), at(1_700_000_000));
        assert_eq!(
            header,
            "sessionid=abc; expires=Tue, 28 Nov 2023 22:13:20 GMT; HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax"
        );
    }

    #[test]
    fn every_attribute_in_djangos_order() {
        let settings = Settings {
            cookie_name: "sid".into(),
            cookie_domain: Some("ex.com".into()),
            cookie_secure: true,
            cookie_path: "/app".into(),
            cookie_samesite: Some(SameSite::Strict),
            ..Settings::default()
        };
        assert_eq!(
            session_cookie_header(&settings, "k", Some(60), at(0)),
            "sid=k; Domain=ex.com; expires=Thu, 01 Jan 1970 00:01:00 GMT; HttpOnly; Max-Age=60; Path=/app; SameSite=Strict; Secure"
        );
        let plain = Settings { cookie_httponly: false, cookie_samesite: None, ..Settings::default() };
        assert_eq!(session_cookie_header(&plain, "k", None, at(0)), "sessionid=k; Path=/");
    }

    #[test]
    fn browser_close_cookie_has_no_expiry() {
        assert_eq!(
            session_cookie_header(&Settings::default(), "k", None, at(0)),
            "sessionid=k; HttpOnly; Path=/; SameSite=Lax"
        );
    }

    #[test]
    fn expires_is_clamped_to_what_an_http_date_can_say() {
        for (age, expires) in [
            (300_000_000_000, "Fri, 31 Dec 9999 23:59:59 GMT"),
            (i64::MAX, "Fri, 31 Dec 9999 23:59:59 GMT"),
            (-3_000_000_000, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (i64::MIN, "Thu, 01 Jan 1970 00:00:00 GMT"),
        ] {
            let header = session_cookie_header(&Settings::default(), "k", Some(age), at(1_700_000_000));
            assert!(header.contains(&format!("; expires={expires};")), "{header}");
            assert!(header.contains(&format!("; Max-Age={age};")), "{header}");
        }
    }

    #[test]
    fn the_cached_date_follows_the_second_asked() {
        let header = |secs| session_cookie_header(&Settings::default(), "k", Some(60), at(secs));
        for _ in 0..2 {
            assert!(header(1_700_000_000).contains("; expires=Tue, 14 Nov 2023 22:14:20 GMT;"));
            assert!(header(1_700_000_001).contains("; expires=Tue, 14 Nov 2023 22:14:21 GMT;"));
        }
        let subsecond = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_001_999);
        let header = session_cookie_header(&Settings::default(), "k", Some(60), subsecond);
        assert!(header.contains("; expires=Tue, 14 Nov 2023 22:14:21 GMT;"), "{header}");
    }

    #[test]
    fn delete_cookie_matches_django() {
        assert_eq!(
            delete_cookie_header(&Settings::default()),
            r#"sessionid=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; SameSite=Lax"#
        );
        let none = Settings { cookie_samesite: Some(SameSite::None), ..Settings::default() };
        assert!(delete_cookie_header(&none).ends_with("; SameSite=None; Secure"));
        let host = Settings { cookie_name: "__Host-sid".into(), ..Settings::default() };
        assert!(delete_cookie_header(&host).ends_with("; Secure"));
    }
}
