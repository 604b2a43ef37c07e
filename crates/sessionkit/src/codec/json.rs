//! JSON exactly as Django's `JSONSerializer` writes and reads it.
//!
//! Writing: [`to_python_json`] produces the bytes of Python's `json.dumps(obj, separators=(",", ":"))`
//! (`ensure_ascii=True`), which is what goes into a signed session token. Reading: [`from_python_json`]
//! mirrors `json.loads(data.decode("latin-1"))`.
//!
//! # Numbers
//!
//! serde_json is built with `arbitrary_precision`, so a [`Number`] is the exact decimal text it was read
//! from. That is how Python's types survive a round trip:
//!
//! - **Integers of any size** (Python ints are unbounded) keep their exact digits:
//!   `123456789012345678901234567890` is read and written back unchanged. [`Number::as_i64`] and
//!   [`Number::as_u64`] return `None` for an integer beyond 64 bits; read its digits with `to_string()`.
//! - A number with `.`, `e` or `E` is a Python `float`, written back as `repr(float)` (`1E2` becomes `100.0`).
//!   Two numbers holding the same float written differently (`1e16`, `1e+16`) are not `==`; compare floats
//!   as `f64`.
//! - **`NaN`, `Infinity` and `-Infinity`**, which Python's `json` writes for non-finite floats and reads back,
//!   are accepted as bare values and held as numbers whose text is that literal, so they are written back
//!   exactly. serde_json's [`Number::as_f64`] returns `None` for them (and for floats beyond `f64`, like
//!   `1e400`); [`number_as_f64`] gives the value Python would (`NaN`, `inf`, `-inf`). Such a value must not be
//!   written with `serde_json::to_string`, which would emit the literal into standard JSON that serde_json
//!   itself cannot read back; [`to_python_json`] is the writer for them.

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
    if non_finite_value(&text).is_some() {
        // `NaN`, `Infinity`, `-Infinity`: already Python's spelling.
        out.push_str(&text);
    } else if text.contains(['.', 'e', 'E']) {
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
        // A tie: `x` is exactly the midpoint, and the other candidate reads back as `x` too.
        let tie = equals_decimal(x, midpoint, unit_exp - 1) && format!("{other}e{unit_exp}").parse::<f64>() == Ok(x);
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

/// True if the finite `x` equals `mantissa × 10^exp10` exactly, in constant time (no big numbers: formatting
/// the exact decimal expansion of a small double costs tens of microseconds, which a hostile session full
/// of such floats would multiply). Both sides are written as `odd × 2^i × 5^j` with the odd part not divisible
/// by 5; by unique factorization they are equal exactly when all three parts are.
fn equals_decimal(x: f64, mantissa: u64, exp10: i32) -> bool {
    if !(x.is_finite() && x > 0.0) || mantissa == 0 {
        return false;
    }
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    // x = m × 2^e2, with m > 0 because x > 0.
    let (m, e2) = if biased == 0 { (fraction, -1074) } else { (fraction | (1 << 52), biased - 1075) };
    let (x_odd, x_twos, x_fives) = split_2_5(m);
    let (d_odd, d_twos, d_fives) = split_2_5(mantissa);
    x_odd == d_odd && e2 + x_twos == exp10 + d_twos && x_fives == exp10 + d_fives
}

/// `n` (> 0) as `(odd part not divisible by 5, number of factors 2, number of factors 5)`.
fn split_2_5(n: u64) -> (u64, i32, i32) {
    let twos = n.trailing_zeros();
    let mut odd = n >> twos;
    let mut fives = 0;
    while odd.is_multiple_of(5) {
        odd /= 5;
        fives += 1;
    }
    (odd, twos as i32, fives)
}

/// The exact decimal value of a finite, non-negative `x` as significant digits without trailing zeros and
/// the exponent of the first digit. A double has at most 767 significant decimal digits, so formatting with
/// 1100 digits after the point is exact. Slow; the tests use it to check [`equals_decimal`].
#[cfg(test)]
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
/// Numbers keep their source text (serde_json's `arbitrary_precision`, see the [module docs](self)), so big
/// integers and floats survive a round trip through [`to_python_json`]. Python's non-standard literals `NaN`,
/// `Infinity` and `-Infinity` are accepted as values (not inside strings, not as keys, no other spelling) and
/// written back unchanged. `\uXXXX` surrogate pairs are combined; an unpaired surrogate, which Python would
/// accept, is rejected. Nesting deeper than 128 levels fails with [`CodecError::Json`] (serde_json's recursion
/// limit) instead of overflowing the stack.
///
/// # Errors
///
/// [`CodecError::Json`] for invalid JSON, [`CodecError::NotAnObject`] for valid JSON that is not an object.
pub fn from_python_json(bytes: &[u8]) -> Result<Map<String, Value>, CodecError> {
    let text: String = bytes.iter().map(|&b| char::from(b)).collect();
    parse_python_json_object(&text)
}

/// `json.loads(text)` of already-decoded text, which must give a JSON object. serde_json is the fast path;
/// only when it fails and the text contains `NaN` or `Infinity` does the slower [`fallback`] parser, which
/// knows those literals, read it.
pub(crate) fn parse_python_json_object(text: &str) -> Result<Map<String, Value>, CodecError> {
    let value = match serde_json::from_str::<Value>(text) {
        Ok(value) => value,
        Err(_) if text.contains("NaN") || text.contains("Infinity") => fallback::parse(text)?,
        Err(e) => return Err(CodecError::Json(e.to_string())),
    };
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(CodecError::NotAnObject),
    }
}

/// The `f64` Python would hold for `n`: like [`Number::as_f64`], but `NaN`, `Infinity` and `-Infinity` (which
/// [`from_python_json`] reads) give NaN and the infinities, and a float beyond the range of `f64` (`1e400`)
/// gives an infinity, as in Python, where serde_json's `as_f64` returns `None` for all of these. Integers
/// are converted to the nearest `f64`.
pub fn number_as_f64(n: &Number) -> Option<f64> {
    let text = n.to_string();
    match non_finite_value(&text) {
        Some(x) => Some(x),
        None => text.parse::<f64>().ok(),
    }
}

/// The value of Python's non-finite JSON literals `NaN`, `Infinity` and `-Infinity`, exactly as spelled;
/// `None` for any other text.
pub(crate) fn non_finite_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// The [`Number`] for a Python float `x`: its `repr` text (so it is written back unchanged), including
/// `NaN`, `Infinity` and `-Infinity` for non-finite values.
pub(crate) fn python_float_number(x: f64) -> Option<Number> {
    if x.is_finite() {
        python_float_repr(x).parse::<Number>().ok()
    } else {
        Some(non_finite_number(x))
    }
}

/// A [`Number`] holding `NaN`, `Infinity` or `-Infinity` (by the sign of `x`; a finite `x` counts as `NaN`).
///
/// serde_json offers no public way to put a non-finite value into a `Number`: `Number::from_f64` refuses it and
/// `Number::from_str` accepts only standard JSON. With `arbitrary_precision` a `Number` is just its text, and
/// the `#[doc(hidden)]` `Number::from_string_unchecked` stores a text unchecked. This is the only place that
/// calls it; the test `non_finite_numbers_pin_serde_json` fails loudly if a serde_json upgrade changes what it
/// does (the text, `to_string`, `as_f64` or `==`).
fn non_finite_number(x: f64) -> Number {
    let literal = if x == f64::INFINITY {
        "Infinity"
    } else if x == f64::NEG_INFINITY {
        "-Infinity"
    } else {
        "NaN"
    };
    Number::from_string_unchecked(literal.to_owned())
}

/// A small JSON parser that also reads Python's `NaN`, `Infinity` and `-Infinity`. It is used only when
/// serde_json has refused a text that contains one of them, and otherwise gives exactly what serde_json gives
/// (same numbers as source text, same string rules, same depth limit), so which parser read a payload never
/// shows in the result.
mod fallback {
    use serde_json::{Map, Number, Value};

    use super::non_finite_number;
    use crate::codec::CodecError;

    /// serde_json's recursion limit: 127 nested arrays/objects are read, 128 are refused.
    const MAX_DEPTH: usize = 128;

    /// Parses one JSON value (with surrounding whitespace) that may contain the non-finite literals.
    pub(super) fn parse(text: &str) -> Result<Value, CodecError> {
        let mut parser = Parser { text, bytes: text.as_bytes(), pos: 0, depth: 0 };
        parser.skip_whitespace();
        let value = parser.value()?;
        parser.skip_whitespace();
        if parser.pos != parser.bytes.len() {
            return Err(parser.error("trailing characters"));
        }
        Ok(value)
    }

    struct Parser<'a> {
        text: &'a str,
        bytes: &'a [u8],
        pos: usize,
        depth: usize,
    }

    impl Parser<'_> {
        fn error(&self, what: &str) -> CodecError {
            CodecError::Json(format!("{what} at byte {}", self.pos))
        }

        fn peek(&self) -> Option<u8> {
            self.bytes.get(self.pos).copied()
        }

        fn skip_whitespace(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.pos += 1;
            }
        }

        fn expect(&mut self, byte: u8, what: &str) -> Result<(), CodecError> {
            if self.peek() == Some(byte) {
                self.pos += 1;
                Ok(())
            } else {
                Err(self.error(what))
            }
        }

        /// A fixed word (`true`, `NaN`, ...); what follows it is checked by the caller.
        fn word(&mut self, word: &str, value: Value) -> Result<Value, CodecError> {
            if self.bytes[self.pos..].starts_with(word.as_bytes()) {
                self.pos += word.len();
                Ok(value)
            } else {
                Err(self.error("expected value"))
            }
        }

        fn value(&mut self) -> Result<Value, CodecError> {
            match self.peek() {
                None => Err(self.error("EOF while parsing a value")),
                Some(b'{') => self.object(),
                Some(b'[') => self.array(),
                Some(b'"') => self.string().map(Value::String),
                Some(b't') => self.word("true", Value::Bool(true)),
                Some(b'f') => self.word("false", Value::Bool(false)),
                Some(b'n') => self.word("null", Value::Null),
                Some(b'N') => self.word("NaN", Value::Number(non_finite_number(f64::NAN))),
                Some(b'I') => self.word("Infinity", Value::Number(non_finite_number(f64::INFINITY))),
                Some(b'-') if self.bytes[self.pos..].starts_with(b"-Infinity") => {
                    self.word("-Infinity", Value::Number(non_finite_number(f64::NEG_INFINITY)))
                }
                Some(b'-' | b'0'..=b'9') => self.number(),
                Some(_) => Err(self.error("expected value")),
            }
        }

        fn enter(&mut self) -> Result<(), CodecError> {
            self.depth += 1;
            if self.depth >= MAX_DEPTH {
                return Err(self.error("recursion limit exceeded"));
            }
            Ok(())
        }

        fn object(&mut self) -> Result<Value, CodecError> {
            self.enter()?;
            self.pos += 1; // '{'
            let mut map = Map::new();
            self.skip_whitespace();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                self.depth -= 1;
                return Ok(Value::Object(map));
            }
            loop {
                self.skip_whitespace();
                if self.peek() != Some(b'"') {
                    return Err(self.error("key must be a string"));
                }
                let key = self.string()?;
                self.skip_whitespace();
                self.expect(b':', "expected ':'")?;
                self.skip_whitespace();
                let value = self.value()?;
                // Like a Python dict (and serde_json): a repeated key keeps its first position, last value.
                map.insert(key, value);
                self.skip_whitespace();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        self.depth -= 1;
                        return Ok(Value::Object(map));
                    }
                    _ => return Err(self.error("expected ',' or '}'")),
                }
            }
        }

        fn array(&mut self) -> Result<Value, CodecError> {
            self.enter()?;
            self.pos += 1; // '['
            let mut items = Vec::new();
            self.skip_whitespace();
            if self.peek() == Some(b']') {
                self.pos += 1;
                self.depth -= 1;
                return Ok(Value::Array(items));
            }
            loop {
                self.skip_whitespace();
                items.push(self.value()?);
                self.skip_whitespace();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b']') => {
                        self.pos += 1;
                        self.depth -= 1;
                        return Ok(Value::Array(items));
                    }
                    _ => return Err(self.error("expected ',' or ']'")),
                }
            }
        }

        /// A JSON number (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`), kept as its source text.
        fn number(&mut self) -> Result<Value, CodecError> {
            let start = self.pos;
            if self.peek() == Some(b'-') {
                self.pos += 1;
            }
            match self.peek() {
                Some(b'0') => self.pos += 1,
                Some(b'1'..=b'9') => self.digits(),
                _ => return Err(self.error("invalid number")),
            }
            if self.peek() == Some(b'.') {
                self.pos += 1;
                self.required_digits()?;
            }
            if matches!(self.peek(), Some(b'e' | b'E')) {
                self.pos += 1;
                if matches!(self.peek(), Some(b'+' | b'-')) {
                    self.pos += 1;
                }
                self.required_digits()?;
            }
            let text = &self.text[start..self.pos];
            text.parse::<Number>().map(Value::Number).map_err(|e| CodecError::Json(format!("{e} at byte {start}")))
        }

        fn digits(&mut self) {
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
        }

        fn required_digits(&mut self) -> Result<(), CodecError> {
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("invalid number"));
            }
            self.digits();
            Ok(())
        }

        /// A string starting at the opening quote; escapes decoded, surrogate pairs combined.
        fn string(&mut self) -> Result<String, CodecError> {
            self.pos += 1; // '"'
            let mut out = String::new();
            loop {
                let run = self.bytes[self.pos..].iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
                let Some(run) = run else {
                    self.pos = self.bytes.len();
                    return Err(self.error("EOF while parsing a string"));
                };
                // The run ends at an ASCII byte, so both ends are character boundaries.
                out.push_str(&self.text[self.pos..self.pos + run]);
                self.pos += run;
                match self.bytes[self.pos] {
                    b'"' => {
                        self.pos += 1;
                        return Ok(out);
                    }
                    b'\\' => {
                        self.pos += 1;
                        self.escape(&mut out)?;
                    }
                    _ => return Err(self.error("control character in string")),
                }
            }
        }

        fn escape(&mut self, out: &mut String) -> Result<(), CodecError> {
            let Some(byte) = self.peek() else {
                return Err(self.error("EOF while parsing a string"));
            };
            self.pos += 1;
            let c = match byte {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let unit = self.hex4()?;
                    let code = match unit {
                        0xd800..=0xdbff => {
                            if !self.bytes[self.pos..].starts_with(b"\\u") {
                                return Err(self.error("lone leading surrogate in hex escape"));
                            }
                            self.pos += 2;
                            let low = self.hex4()?;
                            if !(0xdc00..=0xdfff).contains(&low) {
                                return Err(self.error("lone leading surrogate in hex escape"));
                            }
                            0x10000 + ((u32::from(unit) - 0xd800) << 10) + (u32::from(low) - 0xdc00)
                        }
                        0xdc00..=0xdfff => return Err(self.error("lone trailing surrogate in hex escape")),
                        _ => u32::from(unit),
                    };
                    char::from_u32(code).ok_or_else(|| self.error("invalid unicode code point"))?
                }
                _ => return Err(self.error("invalid escape")),
            };
            out.push(c);
            Ok(())
        }

        fn hex4(&mut self) -> Result<u16, CodecError> {
            let digits = self.bytes.get(self.pos..self.pos + 4).ok_or_else(|| self.error("EOF in hex escape"))?;
            let mut unit: u16 = 0;
            for &d in digits {
                let v = char::from(d).to_digit(16).ok_or_else(|| self.error("invalid hex escape"))?;
                unit = unit << 4 | v as u16;
            }
            self.pos += 4;
            Ok(unit)
        }
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

    /// [`equals_decimal`] against the slow exact expansion, on the tie cases above, on neighbours of exact
    /// decimals and on pseudo-random doubles.
    #[test]
    fn equals_decimal_matches_the_exact_expansion() {
        let mut values: Vec<f64> = FLOAT_REPRS.iter().map(|&(bits, _)| f64::from_bits(bits).abs()).collect();
        values.extend([0.5, 0.25, 1e22, 1e23, 5e-324, 2.5, 1125899906842624.125, 4.35, 0.1, 123456789.0]);
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let x = f64::from_bits(state >> 1);
            if x.is_finite() {
                values.push(x);
            }
            // Short decimals are exactly representable more often.
            values.push((state % 100_000) as f64 / 1024.0);
        }
        for x in values {
            if x == 0.0 {
                continue;
            }
            let (digits, first_exp) = exact_decimal_digits(x);
            if digits.len() > 19 {
                // Not a decimal with a u64 mantissa: no (mantissa, exp10) may match.
                let (d, e) = shortest_digits(x);
                let d: u64 = d.parse().unwrap();
                let exp10 = e - (i32::try_from(shortest_digits(x).0.len()).unwrap() - 1);
                assert!(!equals_decimal(x, d, exp10), "{x:e}");
                continue;
            }
            let mantissa: u64 = digits.parse().unwrap();
            let exp10 = first_exp - (i32::try_from(digits.len()).unwrap() - 1);
            assert!(equals_decimal(x, mantissa, exp10), "{x:e}");
            if let Some(scaled) = mantissa.checked_mul(10) {
                assert!(equals_decimal(x, scaled, exp10 - 1), "{x:e}");
            }
            assert!(!equals_decimal(x, mantissa + 1, exp10), "{x:e}");
            assert!(!equals_decimal(x, mantissa, exp10 + 1), "{x:e}");
        }
    }

    /// Floats whose shortest digits end in an odd digit used to trigger an exact 1100-digit expansion each
    /// (found by the `pickle_reader` fuzz target: a 690-byte pickle of shared tuples of
    /// `2.0800493491434417e-135` took 2.6 s to decode).
    #[test]
    fn float_repr_is_fast_on_near_ties() {
        let start = std::time::Instant::now();
        for bits in [0x23f8_3094_8c04_6361_u64, 0x2388_948c_0463_6172, 0x0075_7365_725f_6964] {
            let x = f64::from_bits(bits);
            for _ in 0..10_000 {
                assert_eq!(python_float_repr(x).parse::<f64>().unwrap(), x);
            }
        }
        assert_eq!(python_float_repr(f64::from_bits(0x23f8_3094_8c04_6361)), "2.0800493491434417e-135");
        assert!(start.elapsed() < std::time::Duration::from_secs(3), "{:?}", start.elapsed());
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
        // The fallback parser (NaN in the text) applies the same rule.
        assert!(matches!(from_python_json(b"[NaN]"), Err(CodecError::NotAnObject)));
        assert!(matches!(from_python_json(b"NaN"), Err(CodecError::NotAnObject)));
        assert!(matches!(from_python_json(b"{\"x\":NaN"), Err(CodecError::Json(_))));
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
    /// Made by CPython 3.11: `json.dumps({"n": float("nan"), "i": float("inf"), "m": -float("inf"),
    /// "x": [1.5, float("nan")]}, separators=(",", ":"))`.
    const PYTHON_NON_FINITE: &[u8] = br#"{"n":NaN,"i":Infinity,"m":-Infinity,"x":[1.5,NaN]}"#;

    #[test]
    fn reads_and_writes_python_non_finite_floats() {
        let map = from_python_json(PYTHON_NON_FINITE).unwrap();
        assert_eq!(map.keys().collect::<Vec<_>>(), ["n", "i", "m", "x"]);
        let f = |v: &Value| number_as_f64(v.as_number().unwrap()).unwrap();
        assert!(f(&map["n"]).is_nan());
        assert_eq!(f(&map["i"]), f64::INFINITY);
        assert_eq!(f(&map["m"]), f64::NEG_INFINITY);
        assert_eq!(f(&map["x"][0]), 1.5);
        assert!(f(&map["x"][1]).is_nan());
        assert_eq!(to_python_json(&Value::Object(map.clone())).as_bytes(), PYTHON_NON_FINITE);
        assert_eq!(object_to_python_json(&map).as_bytes(), PYTHON_NON_FINITE);
        // Python's default separators too (what django-redis' JSON serializer writes).
        assert_eq!(
            to_python_json_with_separators(&Value::Object(map), ", ", ": "),
            r#"{"n": NaN, "i": Infinity, "m": -Infinity, "x": [1.5, NaN]}"#
        );
    }

    /// Pins what `non_finite_number` relies on in serde_json (see its doc comment): if an upgrade breaks any of
    /// this, NaN/Infinity would silently change or vanish on a round trip.
    #[test]
    fn non_finite_numbers_pin_serde_json() {
        for (x, literal) in [(f64::NAN, "NaN"), (f64::INFINITY, "Infinity"), (f64::NEG_INFINITY, "-Infinity")] {
            let n = non_finite_number(x);
            assert_eq!(n.to_string(), literal);
            assert_eq!(format!("{n:?}"), format!("Number({literal})"));
            // serde_json's own accessors do not see a float in it...
            assert_eq!(n.as_f64(), None);
            assert_eq!(n.as_i64(), None);
            assert_eq!(n.as_u64(), None);
            // ...ours does, and the writer keeps the literal.
            let value = Value::Number(n.clone());
            assert_eq!(to_python_json(&value), literal);
            let back = number_as_f64(&n).unwrap();
            assert!(if x.is_nan() { back.is_nan() } else { back == x }, "{literal}");
            assert_eq!(python_float_number(x), Some(n.clone()));
            // Equality is by text, like every arbitrary_precision number (unlike f64, NaN == NaN here).
            assert_eq!(n, non_finite_number(x));
            // Standard JSON has no such literal: serde_json writes the text raw and cannot read it back.
            assert_eq!(serde_json::to_string(&value).unwrap(), literal);
            assert!(serde_json::from_str::<Value>(literal).is_err());
        }
        assert_ne!(non_finite_number(f64::NAN), non_finite_number(f64::INFINITY));
    }

    #[test]
    fn number_as_f64_like_python() {
        let n = |t: &str| t.parse::<Number>().unwrap();
        assert_eq!(number_as_f64(&n("1.5")), Some(1.5));
        assert_eq!(number_as_f64(&n("-7")), Some(-7.0));
        assert_eq!(number_as_f64(&n("1e400")), Some(f64::INFINITY));
        assert_eq!(n("1e400").as_f64(), None);
        assert_eq!(number_as_f64(&n("12345678901234567890123")), Some(1.2345678901234568e22));
        assert_eq!(n("12345678901234567890123").as_i64(), None);
        assert_eq!(n("12345678901234567890123").as_u64(), None);
        assert_eq!(n("12345678901234567890123").to_string(), "12345678901234567890123");
    }

    #[test]
    fn non_finite_literals_only_as_bare_values() {
        // Inside strings they are text (serde_json reads these directly).
        let map = from_python_json(br#"{"a":"NaN","Infinity":"-Infinity"}"#).unwrap();
        assert_eq!(map["a"], "NaN");
        assert_eq!(map["Infinity"], "-Infinity");
        // Mixed: a string and a bare literal in one payload.
        let map = from_python_json(br#"{"NaN":NaN,"s":"Infinity \u00e9"}"#).unwrap();
        assert_eq!(to_python_json(&map["NaN"]), "NaN");
        assert_eq!(map["s"], "Infinity \u{e9}");
        // Python refuses all of these too (`json.loads` checked with CPython 3.11).
        for bad in [
            &br#"{NaN:1}"#[..],
            br#"{"a":nan}"#,
            br#"{"a":-NaN}"#,
            br#"{"a":+Infinity}"#,
            br#"{"a":infinity}"#,
            br#"{"a":Infinityx}"#,
            br#"{"a":NaN1}"#,
            br#"{"a":- Infinity}"#,
            br#"{"a":[NaN,]}"#,
            br#"{"a":NaN,}"#,
            br#"{"a":NaN} x"#,
            br#"{"a":Na}"#,
            br#"{"a":Infinit"#,
        ] {
            assert!(matches!(from_python_json(bad), Err(CodecError::Json(_))), "{}", String::from_utf8_lossy(bad));
        }
    }

    /// The fallback parser must give exactly what serde_json gives on every text serde_json reads, and refuse
    /// what it refuses.
    #[test]
    fn fallback_parser_agrees_with_serde_json() {
        let valid = [
            r#"{}"#,
            r#" { "a" : [ 1 , -2 , 3.5e-7 , 1E+2 , -0 , -0.0 , 0.5 , 12345678901234567890123456789 ] } "#,
            r#"{"s":"\"\\\/\b\f\n\r\t\u0000\u00e9\u20ac\ud83d\ude00 \u0041"}"#,
            "{\"latin1\":\"\u{e9}\u{ff}\u{80}\"}",
            r#"{"dup":1,"other":2,"dup":3}"#,
            r#"{"nested":{"a":{"b":[[],[{}],null,true,false]}}}"#,
            r#"[1,2]"#,
            r#""str""#,
            r#"1e400"#,
            "\t\r\n{}\n",
        ];
        for text in valid {
            assert_eq!(fallback::parse(text).unwrap(), serde_json::from_str::<Value>(text).unwrap(), "{text}");
        }
        let invalid = [
            "",
            " ",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "[1,]",
            "[01]",
            "[1.]",
            "[.5]",
            "[1e]",
            "[1e+]",
            "[-]",
            "[+1]",
            "[\"\\x\"]",
            "[\"\\u12\"]",
            "[\"\\u12G4\"]",
            "[\"\\ud800\"]",
            "[\"\\udc00\"]",
            "[\"\\ud800\\u0041\"]",
            "[\"a\nb\"]",
            "[\"abc",
            "[tru]",
            "[nul]",
            "{1:2}",
            "{}{}",
            "[1 2]",
        ];
        for text in invalid {
            assert!(serde_json::from_str::<Value>(text).is_err(), "serde_json accepts {text:?}");
            assert!(matches!(fallback::parse(text), Err(CodecError::Json(_))), "fallback accepts {text:?}");
        }
    }

    #[test]
    fn fallback_depth_limit_matches_serde_json() {
        for depth in [126, 127, 128, 129] {
            let plain = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let with_nan = format!("{}NaN{}", "[".repeat(depth), "]".repeat(depth));
            let objects = format!("{}NaN{}", "{\"a\":".repeat(depth), "}".repeat(depth));
            let serde_ok = serde_json::from_str::<Value>(&plain).is_ok();
            assert_eq!(fallback::parse(&plain).is_ok(), serde_ok, "depth {depth}");
            assert_eq!(fallback::parse(&with_nan).is_ok(), serde_ok, "depth {depth}");
            assert_eq!(fallback::parse(&objects).is_ok(), serde_ok, "depth {depth}");
            assert_eq!(serde_ok, depth < 128, "depth {depth}");
        }
        // Far too deep, with the literal so that the fallback parser is the one refusing it.
        let depth = 10_000;
        let text = format!("{{\"a\":{}NaN{}}}", "[".repeat(depth), "]".repeat(depth));
        assert!(matches!(from_python_json(text.as_bytes()), Err(CodecError::Json(_))));
        let text = format!("{}NaN{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        assert!(matches!(from_python_json(text.as_bytes()), Err(CodecError::Json(_))));
    }

    #[test]
    fn fallback_keeps_latin1_semantics() {
        // A raw byte 0xe9 is U+00E9 (latin-1), whichever parser reads it.
        let map = from_python_json(b"{\"a\":\"\xe9\",\"n\":NaN}").unwrap();
        assert_eq!(map["a"], "\u{e9}");
        assert_eq!(to_python_json(&Value::Object(map)), r#"{"a":"\u00e9","n":NaN}"#);
    }

    #[test]
    fn big_ints_survive_the_fallback_parser() {
        let text = br#"{"big":-123456789012345678901234567890,"f":1E2,"n":NaN}"#;
        let map = from_python_json(text).unwrap();
        assert_eq!(map["big"].as_i64(), None);
        assert_eq!(map["big"].to_string(), "-123456789012345678901234567890");
        assert_eq!(to_python_json(&Value::Object(map)), r#"{"big":-123456789012345678901234567890,"f":100.0,"n":NaN}"#);
    }
}
