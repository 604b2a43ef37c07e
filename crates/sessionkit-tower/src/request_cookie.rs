//! The session cookie's value from a request's `Cookie` headers, read as Django's `parse_cookie` reads them.
//!
//! Django never drops the header for an odd byte: under ASGI it decodes it as latin-1, under WSGI as UTF-8 with
//! bad bytes replaced by U+FFFD. Either way one byte that is not UTF-8 in some *other* cookie (`theme=café` sent as
//! latin-1, a sibling subdomain's binary cookie) changes nothing about the session cookie. This parser works on the
//! header's bytes for the same reason: a header that is not UTF-8 is never skipped whole. Hand-written because no
//! cookie crate parses bytes with Python's rules (split on `;`, split each chunk on the first `=`, strip
//! whitespace, undo `http.cookies` quoting; the last occurrence of a name wins). Whitespace is what both of
//! Django's readings strip: ASCII whitespace and the separators `\x1c`–`\x1f`; a session cookie value with any byte
//! outside ASCII is no key under either reading.

use http::header::COOKIE;
use http::HeaderMap;

/// What the request says about the session cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SessionCookie {
    /// No cookie of that name.
    Absent,
    /// The cookie was sent, but its value is not text a session key can be (bytes outside ASCII); Django would
    /// find no session under it. Counts as sent: an emptied session's cookie is deleted.
    Unusable,
    /// The cookie's value.
    Value(String),
}

impl SessionCookie {
    /// True when the request carried a cookie of that name, usable or not.
    pub(crate) fn was_sent(&self) -> bool {
        !matches!(self, SessionCookie::Absent)
    }

    /// The value, when it can be a session key.
    pub(crate) fn value(&self) -> Option<&str> {
        match self {
            SessionCookie::Value(value) => Some(value),
            SessionCookie::Absent | SessionCookie::Unusable => None,
        }
    }
}

/// The cookie `name` from all `Cookie` headers of a request.
pub(crate) fn session_cookie(headers: &HeaderMap, name: &str) -> SessionCookie {
    let mut found = SessionCookie::Absent;
    for header in headers.get_all(COOKIE) {
        for chunk in header.as_bytes().split(|b| *b == b';') {
            let (key, value) = match chunk.iter().position(|b| *b == b'=') {
                Some(at) => (&chunk[..at], &chunk[at + 1..]),
                None => (&chunk[..0], chunk),
            };
            if python_strip(key) != name.as_bytes() {
                continue;
            }
            let value = unquote(python_strip(value));
            found = match String::from_utf8(value) {
                Ok(text) if text.is_ascii() => SessionCookie::Value(text),
                _ => SessionCookie::Unusable,
            };
        }
    }
    found
}

/// Python's `str.strip()` as both of Django's readings of the header apply it: the ASCII bytes `str.isspace()` is
/// true for (a lone `0xA0` or `0x85` is whitespace only in the latin-1 reading, so it is kept).
fn python_strip(bytes: &[u8]) -> &[u8] {
    let is_space = |b: &u8| matches!(b, 0x09..=0x0d | 0x1c..=0x20);
    let start = bytes.iter().position(|b| !is_space(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !is_space(b)).map_or(start, |at| at + 1);
    &bytes[start..end]
}

/// `http.cookies._unquote`: a value in double quotes loses them, and `\ooo` (octal) and `\c` escapes inside are
/// undone; any other value is kept as it is.
fn unquote(value: &[u8]) -> Vec<u8> {
    let inner = match value {
        [b'"', inner @ .., b'"'] if value.len() >= 2 => inner,
        _ => return value.to_vec(),
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        match inner[i] {
            b'\\' if i + 1 < inner.len() && inner[i + 1] != b'\n' => {
                let octal = inner.get(i + 1..i + 4).filter(|d| {
                    matches!(d[0], b'0'..=b'3') && matches!(d[1], b'0'..=b'7') && matches!(d[2], b'0'..=b'7')
                });
                match octal {
                    Some(d) => {
                        out.push(((d[0] - b'0') << 6) | ((d[1] - b'0') << 3) | (d[2] - b'0'));
                        i += 4;
                    }
                    None => {
                        out.push(inner[i + 1]);
                        i += 2;
                    }
                }
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(COOKIE, HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    fn value(values: &[&[u8]]) -> SessionCookie {
        session_cookie(&headers(values), "sessionid")
    }

    #[test]
    fn the_last_occurrence_wins_and_quotes_are_removed() {
        assert_eq!(
            value(&[b"a=1; sessionid=first; b=2", b"sessionid=\"second\""]),
            SessionCookie::Value("second".into())
        );
        assert_eq!(value(&[b"a=1"]), SessionCookie::Absent);
        assert_eq!(value(&[b";;;=;sessionid"]), SessionCookie::Absent, "a bare word is a value with an empty name");
        assert_eq!(value(&[b"  sessionid  =  abc  "]), SessionCookie::Value("abc".into()));
        assert_eq!(value(&[b"sessionid="]), SessionCookie::Value(String::new()));
        assert_eq!(value(&[b"sessionid=a=b"]), SessionCookie::Value("a=b".into()), "split on the first =");
    }

    #[test]
    fn bytes_outside_utf8_in_other_cookies_change_nothing() {
        // `theme=café` in latin-1: the é is the single byte 0xE9, not UTF-8.
        assert_eq!(
            value(&[b"sessionid=abcdefgh12345678; theme=caf\xe9"]),
            SessionCookie::Value("abcdefgh12345678".into())
        );
        assert_eq!(value(&[b"theme=caf\xc3\xa9; sessionid=k1234567"]), SessionCookie::Value("k1234567".into()));
        assert_eq!(value(&[b"\xff\xfe=\x80; sessionid=k1234567"]), SessionCookie::Value("k1234567".into()));
    }

    #[test]
    fn a_session_value_outside_ascii_is_sent_but_unusable() {
        assert_eq!(value(&[b"sessionid=caf\xe9caf\xe9"]), SessionCookie::Unusable);
        assert_eq!(value(&[b"sessionid=caf\xc3\xa9caf\xc3\xa9"]), SessionCookie::Unusable);
        assert!(value(&[b"sessionid=\xe9"]).was_sent());
        assert_eq!(value(&[b"sessionid=\xe9"]).value(), None);
    }

    #[test]
    fn python_whitespace_and_quoting_rules() {
        // ASCII whitespace around names and values is stripped, as Python strips it.
        assert_eq!(value(&[b" sessionid\t= \tabcdefgh\t"]), SessionCookie::Value("abcdefgh".into()));
        // A lone NBSP byte is whitespace only to the latin-1 reading (ASGI); WSGI Django reads U+FFFD: no key.
        assert_eq!(value(&[b"sessionid=abcdefgh\xa0"]), SessionCookie::Unusable);
        assert_eq!(value(&[b"sessionid=\"a\\\"b\\134c\\d\""]), SessionCookie::Value("a\"b\\cd".into()));
        assert_eq!(value(&[b"sessionid=\""]), SessionCookie::Value("\"".into()), "one quote is not quoting");
        assert_eq!(value(&[b"sessionid=\"abc"]), SessionCookie::Value("\"abc".into()));
    }
}
