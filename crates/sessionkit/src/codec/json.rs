//! JSON exactly as Django's `JSONSerializer` writes and reads it.
//!
//! Writing: [`to_python_json`] produces the bytes of Python's `json.dumps(obj, separators=(",", ":"))`
//! (`ensure_ascii=True`), which is what goes into a signed session token. Reading: [`from_python_json`]
//! mirrors `json.loads(data.decode("latin-1"))`.

use serde_json::{Map, Number, Value};

use super::CodecError;

/// Serializes `value` exactly like Python's `json.dumps(value, separators=(",", ":"))`.
///
/// - Object keys keep their map order (serde_json's `preserve_order`), like a Python dict.
/// - The output is pure ASCII: `"` `\` and the controls `\n \r \t \b \f` get short escapes, other control
///   characters, DEL (0x7f) and all non-ASCII characters become lowercase `\uXXXX`, characters outside the
///   Basic Multilingual Plane become UTF-16 surrogate pairs. `/` is not escaped.
/// - A number written without `.`, `e` or `E` is a Python `int`: its digits are written unchanged
///   (any size; `-0` becomes `0`). Any other number is a Python `float` and is written as `repr(float)`
///   (see [`python_float_repr`]); a float too large for `f64` becomes `Infinity`, as it would in Python.
pub fn to_python_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, COMPACT);
    out
}

/// [`to_python_json`] of a map, without wrapping it in a `Value` first.
pub fn object_to_python_json(map: &Map<String, Value>) -> String {
    let mut out = String::new();
    write_object(&mut out, map, COMPACT);
    out
}

/// Like [`to_python_json`], but with Python's `separators=(item_sep, key_sep)`.
///
/// `to_python_json_with_separators(v, ", ", ": ")` is Python's default `json.dumps(v)` (what django-redis'
/// JSON serializer writes); `(",", ":")` gives [`to_python_json`]. Everything else (escaping, numbers, key
/// order) is as in [`to_python_json`].
pub fn to_python_json_with_separators(value: &Value, item_sep: &str, key_sep: &str) -> String {
    let mut out = String::new();
    write_value(&mut out, value, Separators { item: item_sep, key: key_sep });
    out
}

/// Python's `separators=(item, key)`.
#[derive(Clone, Copy)]
struct Separators<'a> {
    item: &'a str,
    key: &'a str,
}

const COMPACT: Separators<'static> = Separators { item: ",", key: ":" };

fn write_value(out: &mut String, value: &Value, seps: Separators<'_>) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(seps.item);
                }
                write_value(out, item, seps);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map, seps),
    }
}

fn write_object(out: &mut String, map: &Map<String, Value>, seps: Separators<'_>) {
    out.push('{');
    for (i, (key, item)) in map.iter().enumerate() {
        if i > 0 {
            out.push_str(seps.item);
        }
        write_string(out, key);
        out.push_str(seps.key);
        write_value(out, item, seps);
    }
    out.push('}');
}

fn write_number(out: &mut String, n: &Number) {
    // With `arbitrary_precision`, `to_string` returns the number's source text (or, for numbers built from
    // Rust values, their canonical text), which tells a Python int from a Python float.
    let text = n.to_string();
    if text.contains(['.', 'e', 'E']) {
        match text.parse::<f64>() {
            Ok(x) => out.push_str(&python_float_repr(x)),
            // Unreachable for a valid JSON number; keep the text rather than lose data.
            Err(_) => out.push_str(&text),
        }
    } else if text == "-0" {
        out.push('0');
    } else {
        out.push_str(&text);
    }
}

fn write_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let push_u16 = |out: &mut String, unit: u16| {
        out.push_str("\\u");
        for shift in [12, 8, 4, 0] {
            out.push(char::from(HEX[usize::from((unit >> shift) & 0xf)]));
        }
    };
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    push_u16(out, *unit);
                }
            }
        }
    }
    out.push('"');
}

/// Formats `x` like Python's `repr(float)` inside `json.dumps`.
///
/// The digits are the shortest ones that round-trip (Python and Rust agree on them); fixed notation is used
/// when the decimal exponent is between -4 and 15, scientific notation (`1e+16`, `2.5e-07`, at least two
/// exponent digits) otherwise, and an integral value in fixed notation gets a `.0` (`1.0`, `-0.0`,
/// `1000000000000000.0`). Non-finite values are written as Python's `json` module writes them:
/// `NaN`, `Infinity`, `-Infinity`.
pub fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    let (digits, exponent) = shortest_digits(x.abs());
    let n = digits.len() as i32;

    let mut out = String::with_capacity(digits.len() + 8);
    out.push_str(sign);
    if (-4..16).contains(&exponent) {
        // Position of the decimal point relative to the start of `digits`.
        let point = exponent + 1;
        if point <= 0 {
            out.push_str("0.");
            for _ in 0..-point {
                out.push('0');
            }
            out.push_str(&digits);
        } else if point < n {
            let (int_part, frac_part) = digits.split_at(point as usize);
            out.push_str(int_part);
            out.push('.');
            out.push_str(frac_part);
        } else {
            out.push_str(&digits);
            for _ in 0..point - n {
                out.push('0');
            }
            out.push_str(".0");
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exponent.unsigned_abs()));
    }
    out
}

/// The shortest digits that round-trip to `x` (finite, not negative) and the decimal exponent of the first
/// digit, chosen as Python does: `x` = `d.ddd` × 10^exponent, no trailing zeros (`"0"` for zero).
fn shortest_digits(x: f64) -> (String, i32) {
    // `{:e}` gives the shortest round-trip digits: "1e16", "2.5e-7", "1.7976931348623157e308", "0e0".
    let sci = format!("{x:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    match break_tie_to_even(x, &digits, exponent) {
        Some(even) => even,
        None => (digits, exponent),
    }
}

/// Rust and Python both pick the shortest digit string that round-trips, and among those the one closest
/// to `x`. They differ only when `x` lies exactly halfway between two such strings: Rust rounds the last
/// digit up, Python (David Gay's `dtoa`) rounds half to even (`756716708459839.25` is
/// `756716708459839.2` in Python). Returns Python's digits when they differ from `digits`.
fn break_tie_to_even(x: f64, digits: &str, exponent: i32) -> Option<(String, i32)> {
    let d: u64 = digits.parse().ok()?;
    if d & 1 == 0 {
        // Already even: in a tie Python keeps it too.
        return None;
    }
    let n = i32::try_from(digits.len()).ok()?;
    // x ~ d * 10^unit_exp
    let unit_exp = exponent - (n - 1);
    for (other, midpoint) in [(d - 1, 10 * d - 5), (d + 1, 10 * d + 5)] {
        // Cheap filters first; the exact comparison formats hundreds of digits.
        let midpoint_digits = midpoint.to_string();
        let midpoint_exp = unit_exp - 1 + i32::try_from(midpoint_digits.len()).ok()? - 1;
        let tie = format!("{midpoint}e{}", unit_exp - 1).parse::<f64>() == Ok(x)
            && format!("{other}e{unit_exp}").parse::<f64>() == Ok(x)
            && exact_decimal_digits(x) == (midpoint_digits, midpoint_exp);
        if tie {
            let mut other_digits = other.to_string();
            // A carry (9 -> 10) moves the first digit up one decade.
            let other_exp = exponent + i32::try_from(other_digits.len()).ok()? - n;
            let trimmed = other_digits.trim_end_matches('0').len().max(1);
            other_digits.truncate(trimmed);
            return Some((other_digits, other_exp));
        }
    }
    None
}

/// The exact decimal value of a finite, non-negative `x` as significant digits without trailing zeros and
/// the exponent of the first digit. A double has at most 767 significant decimal digits, so formatting with
/// 1100 digits after the point is exact.
fn exact_decimal_digits(x: f64) -> (String, i32) {
    let sci = format!("{x:.1100e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let trimmed = digits.trim_end_matches('0').len().max(1);
    digits.truncate(trimmed);
    (digits, exponent.parse().unwrap_or(0))
}

/// Parses a session payload the way Django's `JSONSerializer.loads` does: the bytes are decoded as latin-1
/// (every byte becomes the character U+0000..U+00FF of the same value), then parsed as JSON, and the result
/// must be a JSON object.
///
/// Numbers keep their source text (serde_json's `arbitrary_precision`), so big integers and floats survive a
/// round trip through [`to_python_json`]. `\uXXXX` surrogate pairs are combined by serde_json; an unpaired
/// surrogate, which Python would accept, is rejected. Nesting deeper than 128 levels fails with
/// [`CodecError::Json`] (serde_json's recursion limit) instead of overflowing the stack.
///
/// Not yet supported: the non-standard literals `NaN`, `Infinity` and `-Infinity`, which Python writes and
/// accepts; a payload containing them is currently rejected with [`CodecError::Json`].
pub fn from_python_json(bytes: &[u8]) -> Result<Map<String, Value>, CodecError> {
    let text: String = bytes.iter().map(|&b| char::from(b)).collect();
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(CodecError::NotAnObject),
        Err(e) => Err(CodecError::Json(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(f64 bits, repr(x))`, generated with CPython 3.11:
    /// `struct.unpack('<Q', struct.pack('<d', x))[0], repr(x)`.
    const FLOAT_REPRS: &[(u64, &str)] = &[
        (0x0000000000000000, "0.0"),
        (0x8000000000000000, "-0.0"),
        (0x3ff0000000000000, "1.0"),
        (0xbff0000000000000, "-1.0"),
        (0x3fb999999999999a, "0.1"),
        (0x3fe0000000000000, "0.5"),
        (0x3ff8000000000000, "1.5"),
        (0x4004000000000000, "2.5"),
        (0x405edd2f1a9fbe77, "123.456"),
        (0xc05edd2f1a9fbe77, "-123.456"),
        (0x430c6bf526340000, "1000000000000000.0"),
        (0x4341c37937e08000, "1e+16"),
        (0x4341c37937e07fff, "9999999999999998.0"),
        (0x4376345785d8a000, "1e+17"),
        (0x3f1a36e2eb1c432d, "0.0001"),
        (0x3ee4f8b588e368f1, "1e-05"),
        (0x3f50624dd2f1a9fc, "0.001"),
        (0x3f19f3c70c996b77, "9.900000000000001e-05"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0x0000000000000001, "5e-324"),
        (0x0010000000000000, "2.2250738585072014e-308"),
        (0x7e41eb2d66005835, "1.5e+300"),
        (0x3e90c6f7a0b5ed8d, "2.5e-07"),
        (0x4480f0cf064dd592, "1e+22"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x437b69b4ba630f35, "1.2345678901234568e+17"),
        (0x43118b54f22aeb03, "1234567890123456.8"),
        (0x3fd3333333333334, "0.30000000000000004"),
        (0x3fd5555555555555, "0.3333333333333333"),
        (0x3fe5555555555555, "0.6666666666666666"),
        (0x400921fb54442d18, "3.141592653589793"),
        (0x4005bf0a8b145769, "2.718281828459045"),
        (0x4059000000000000, "100.0"),
        (0x3ddb7cdfd9d7bdbb, "1e-10"),
        (0x3eea36e2eb1c432d, "1.25e-05"),
        (0x3f1a36e2eb1c432c, "9.999999999999999e-05"),
        (0x3f1a36e2eb1c432e, "0.00010000000000000002"),
        (0x42d6bcc41e8fffff, "99999999999999.98"),
        (0x42d6bcc41e900000, "100000000000000.0"),
        (0x40c81cd6c8b43958, "12345.678"),
        (0x81a56e1fc2f8f359, "-1e-300"),
        (0x4011666666666666, "4.35"),
        (0x54b249ad2594c37d, "1e+100"),
        (0x44dfe185ca57c517, "6.02214076e+23"),
        (0x41b1de784a000000, "299792458.0"),
        (0x4340000000000000, "9007199254740992.0"),
        (0x4340000000000001, "9007199254740994.0"),
        (0x43e0000000000000, "9.223372036854776e+18"),
        (0x00000000000007e8, "1e-320"),
        (0x3ff0000000000001, "1.0000000000000002"),
        (0x3fefffffffffffff, "0.9999999999999999"),
        (0x3c36b082c2148b8e, "1.23e-18"),
        (0x3f0a36e2eb1c432d, "5e-05"),
        // Exact ties between two shortest candidates: Python rounds half to even, Rust's `{:e}` rounds up.
        (0x430e1c6d958d7b72, "1059438285926254.2"),
        (0xc31441f233f63165, "-1425502010969177.2"),
        (0x430581d6b4d3a9fa, "756716708459839.2"),
        (0xc3090aba3da943d2, "-881083679058042.2"),
        (0x42b7fa57c450e950, "26363981746409.312"),
        (0xc2d8c0fe9119c088, "-108868734838530.12"),
    ];

    #[test]
    fn float_repr_matches_python() {
        assert!(FLOAT_REPRS.len() >= 40);
        for &(bits, expected) in FLOAT_REPRS {
            let x = f64::from_bits(bits);
            assert_eq!(python_float_repr(x), expected, "bits {bits:#018x}");
            // The repr must also round-trip.
            assert_eq!(expected.parse::<f64>().unwrap().to_bits(), bits, "{expected}");
        }
    }

    #[test]
    fn float_repr_non_finite() {
        assert_eq!(python_float_repr(f64::NAN), "NaN");
        assert_eq!(python_float_repr(f64::INFINITY), "Infinity");
        assert_eq!(python_float_repr(f64::NEG_INFINITY), "-Infinity");
    }

    fn dumps(text: &str) -> String {
        to_python_json(&serde_json::from_str::<Value>(text).unwrap())
    }

    #[test]
    fn numbers_keep_python_types() {
        assert_eq!(dumps("12345678901234567890123"), "12345678901234567890123");
        assert_eq!(dumps("-12345678901234567890123"), "-12345678901234567890123");
        assert_eq!(dumps("-0"), "0");
        assert_eq!(dumps("-0.0"), "-0.0");
        assert_eq!(dumps("1.0"), "1.0");
        assert_eq!(dumps("1E2"), "100.0");
        assert_eq!(dumps("1e16"), "1e+16");
        assert_eq!(dumps("0.00001"), "1e-05");
        assert_eq!(dumps("1e400"), "Infinity");
        assert_eq!(dumps("-1e400"), "-Infinity");
        assert_eq!(dumps("1e-400"), "0.0");
        assert_eq!(to_python_json(&serde_json::json!(1.5)), "1.5");
        assert_eq!(to_python_json(&serde_json::json!(1e16)), "1e+16");
        assert_eq!(to_python_json(&serde_json::json!(-7)), "-7");
        assert_eq!(to_python_json(&serde_json::json!(u64::MAX)), "18446744073709551615");
    }

    #[test]
    fn strings_are_escaped_like_python() {
        // json.dumps("a\"b\\c/d\n\r\t\b\f\x00\x1f\x7f\x80é€😀 ~", separators=(",", ":"))
        let s = "a\"b\\c/d\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}\u{80}é€😀 ~";
        assert_eq!(
            to_python_json(&Value::String(s.to_owned())),
            r#""a\"b\\c/d\n\r\t\b\f\u0000\u001f\u007f\u0080\u00e9\u20ac\ud83d\ude00 ~""#
        );
    }

    #[test]
    fn structures_use_compact_separators_and_keep_order() {
        let text = r#"{"z": 1, "a": [true, false, null, {"k": "v"}], "m": {}, "e": []}"#;
        assert_eq!(dumps(text), r#"{"z":1,"a":[true,false,null,{"k":"v"}],"m":{},"e":[]}"#);
    }

    #[test]
    fn default_python_separators() {
        // json.dumps({"z": 1, "a": [True, None, {"k": "v"}], "m": {}, "e": []})
        let value: Value = serde_json::from_str(r#"{"z":1,"a":[true,null,{"k":"v"}],"m":{},"e":[]}"#).unwrap();
        assert_eq!(
            to_python_json_with_separators(&value, ", ", ": "),
            r#"{"z": 1, "a": [true, null, {"k": "v"}], "m": {}, "e": []}"#
        );
        assert_eq!(to_python_json_with_separators(&value, ",", ":"), to_python_json(&value));
    }

    #[test]
    fn reads_latin1_and_surrogates() {
        let map = from_python_json(b"{\"a\":\"\xe9\",\"b\":\"\\ud83d\\ude00\"}").unwrap();
        assert_eq!(map["a"], Value::String("\u{e9}".to_owned()));
        assert_eq!(map["b"], Value::String("😀".to_owned()));
    }

    #[test]
    fn requires_an_object() {
        assert!(matches!(from_python_json(b"[1,2]"), Err(CodecError::NotAnObject)));
        assert!(matches!(from_python_json(b"\"x\""), Err(CodecError::NotAnObject)));
        assert!(matches!(from_python_json(b"{"), Err(CodecError::Json(_))));
        assert!(matches!(from_python_json(b""), Err(CodecError::Json(_))));
        assert!(matches!(from_python_json(b"{\"x\":NaN}"), Err(CodecError::Json(_))));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let depth = 10_000;
        let mut text = String::from("{\"a\":");
        text.push_str(&"[".repeat(depth));
        text.push_str(&"]".repeat(depth));
        text.push('}');
        assert!(matches!(from_python_json(text.as_bytes()), Err(CodecError::Json(_))));

        let mut text = "{\"a\":".repeat(depth);
        text.push('1');
        text.push_str(&"}".repeat(depth));
        assert!(matches!(from_python_json(text.as_bytes()), Err(CodecError::Json(_))));
    }

    #[test]
    fn round_trip_keeps_bytes() {
        let text = r#"{"i":12345678901234567890,"f":1e+16,"g":1e-05,"h":2.5e-07,"one":1.0,"neg":-0.0,"s":"\u00e4\ud83d\ude00"}"#;
        let map = from_python_json(text.as_bytes()).unwrap();
        assert_eq!(to_python_json(&Value::Object(map)), text);
    }
}
