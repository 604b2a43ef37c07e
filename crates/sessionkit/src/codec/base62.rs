//! Base62 as used by Django's `TimestampSigner` for the timestamp field (`django.core.signing.b62_encode`).
//!
//! Alphabet `0-9A-Za-z`, most significant digit first, zero is `"0"`, negative numbers get a leading `-`.

use super::CodecError;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Encodes `n` in base62 exactly as Django does: `1700000000` becomes `"1r31eq"`, `0` becomes `"0"`,
/// `-61` becomes `"-z"`.
pub fn encode(n: i64) -> String {
    if n == 0 {
        return "0".to_owned();
    }
    let mut magnitude = n.unsigned_abs();
    // 11 digits hold any u64 (62^11 > 2^64), plus one for the sign.
    let mut digits = Vec::with_capacity(12);
    while magnitude > 0 {
        digits.push(ALPHABET[(magnitude % 62) as usize]);
        magnitude /= 62;
    }
    if n < 0 {
        digits.push(b'-');
    }
    digits.iter().rev().map(|&b| char::from(b)).collect()
}

fn digit_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'Z' => Some(b - b'A' + 10),
        b'a'..=b'z' => Some(b - b'a' + 36),
        _ => None,
    }
}

/// Decodes a base62 number written by [`encode`] (or by Django).
///
/// Accepts an optional leading `-` and leading zeros, as Django does. Rejects the empty string, a lone `-`,
/// characters outside the alphabet and values that do not fit in an `i64`, with [`CodecError::Malformed`].
pub fn decode(s: &str) -> Result<i64, CodecError> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if digits.is_empty() {
        return Err(CodecError::Malformed("the base62 timestamp is empty"));
    }
    // i64::MIN has magnitude i64::MAX + 1, so accumulate in i128 and range-check at every step.
    let limit: i128 = if negative { -(i128::from(i64::MIN)) } else { i128::from(i64::MAX) };
    let mut value: i128 = 0;
    for b in digits.bytes() {
        let d = digit_value(b)
            .ok_or(CodecError::Malformed("the timestamp contains a character that is not a base62 digit"))?;
        value = value * 62 + i128::from(d);
        if value > limit {
            return Err(CodecError::Malformed("the base62 timestamp does not fit in 64 bits"));
        }
    }
    let signed = if negative { -value } else { value };
    i64::try_from(signed).map_err(|_| CodecError::Malformed("the base62 timestamp does not fit in 64 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(encode(1_700_000_000), "1r31eq");
        assert_eq!(encode(0), "0");
        assert_eq!(encode(61), "z");
        assert_eq!(encode(62), "10");
        assert_eq!(encode(-61), "-z");
        assert_eq!(decode("1r31eq").unwrap(), 1_700_000_000);
        assert_eq!(decode("0").unwrap(), 0);
        assert_eq!(decode("-0").unwrap(), 0);
        assert_eq!(decode("00z").unwrap(), 61);
        assert_eq!(decode("-z").unwrap(), -61);
    }

    #[test]
    fn round_trip_extremes() {
        for n in [i64::MIN, i64::MIN + 1, -1, 1, i64::MAX, i64::MAX - 1, 1_700_000_000, -1_700_000_000] {
            assert_eq!(decode(&encode(n)).unwrap(), n, "{n}");
        }
        assert_eq!(encode(i64::MAX), "AzL8n0Y58m7");
        assert_eq!(encode(i64::MIN), "-AzL8n0Y58m8");
    }

    #[test]
    fn bad_base62() {
        for s in [
            "",
            "-",
            "--1",
            "+1",
            "1 ",
            " 1",
            "1.5",
            "é",
            "1r31eq:",
            "AzL8n0Y58m8",
            "-AzL8n0Y58m9",
            "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
        ] {
            assert!(matches!(decode(s), Err(CodecError::Malformed(_))), "{s:?} should be rejected");
        }
    }
}
