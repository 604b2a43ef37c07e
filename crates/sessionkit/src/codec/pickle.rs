//! Python pickles of session dicts, as Django's cache backends store them.
//!
//! Django's cache session engines (`cache`, `cached_db`) store the session dict itself, and the Redis cache
//! backends pickle it: Django's own `RedisCache` with `pickle.dumps(d, 5)`, django-redis with protocol 4 by
//! default. This module writes those bytes and reads them back, for JSON-shaped values only.
//!
//! # Writing: [`to_pickle`]
//!
//! The output is byte for byte what CPython 3's `pickle.dumps(d, protocol)` writes for the same dict
//! (protocol 4 or 5; checked against every shared vector and against CPython on randomized dicts), including
//! CPython's (the C `_pickle` module's) framing and batching:
//!
//! - `PROTO`, then 64 KiB frames (`FRAME` + 8-byte length; a frame of fewer than 4 bytes is written without
//!   the header); a frame is closed before the next object once it holds 64 KiB or more; a string whose UTF-8
//!   form is 64 KiB or larger is written outside any frame.
//! - Dicts and lists as `EMPTY_DICT`/`EMPTY_LIST` + `MEMOIZE`, then their items: one item as `SETITEM`/`APPEND`;
//!   more in batches of 1000 between `MARK` and `SETITEMS`/`APPENDS`. Like the C pickler, a dict whose size is
//!   a multiple of 1000 ends with an empty `MARK SETITEMS` batch, and a list of 1001 items ends with a batch
//!   of one (`MARK x APPENDS`), unlike the pure-Python pickler.
//! - Ints as `BININT1`, `BININT2`, `BININT` when they fit, else `LONG1`/`LONG4` (two's complement,
//!   little-endian, as `pickle.encode_long`); floats as `BINFLOAT`; `None`, `True`, `False` as `NONE`,
//!   `NEWTRUE`, `NEWFALSE`; strings as `SHORT_BINUNICODE`, `BINUNICODE` or `BINUNICODE8`, each memoized.
//!
//! **Memo (shared objects).** CPython memoizes every str, dict and list it writes and writes a `BINGET`
//! (`LONG_BINGET` from index 256) when it meets *the same object* again. Which strings are the same object
//! depends on how the dict was built, so this module assumes the dict came from `json.loads`, which is how
//! Django builds a session dict from its JSON:
//!
//! - the empty string and strings of one character below U+0100 are singletons in CPython: all occurrences,
//!   keys and values, share one memo entry;
//! - `json.loads` keeps one object per distinct dict *key* text within a document (its key memo), so a key that
//!   occurs again anywhere in the session (e.g. `"id"` in every dict of a list) is written once and then
//!   referenced with `BINGET`; string *values* are distinct objects and are written each time;
//! - dicts and lists are never shared (JSON cannot express sharing).
//!
//! A dict built another way in a Python process can share differently (string literals and identifiers are
//! interned, so equal values may be the same object; a dict loaded with `pickle.loads` shares what its pickle
//! shared). The bytes then differ in `BINGET`s versus repeated strings, but `pickle.loads` returns an equal
//! dict either way, so Django reads our output exactly as it reads its own.
//!
//! Floats parse with Rust's `f64` parser, so `1e400` is written as infinity (as `json.loads` would give);
//! the `NaN`, `Infinity` and `-Infinity` numbers that [`super::json::from_python_json`] reads are written as
//! the `BINFLOAT`s of Python's non-finite floats.
//! Integers with more than 4300 digits are refused, as CPython's `json` refuses them.
//!
//! # Reading: [`from_pickle`]
//!
//! A stack machine for protocols 0–5 that understands only the opcodes JSON-shaped data needs and **never
//! imports or executes anything**: any class reference (`GLOBAL`, `STACK_GLOBAL`, `INST`), call (`REDUCE`,
//! `NEWOBJ`, `BUILD`, ...), persistent id, extension code, set, bytes or out-of-band buffer stops decoding with
//! [`CodecError::UnsupportedPickle`], naming the Python type when the pickle names it (`datetime.datetime`,
//! `decimal.Decimal`, `set`, `bytes`, ...). Tuples become JSON arrays. Dict keys must be strings.
//! `NaN` and infinite floats are read as the `NaN`/`Infinity`/`-Infinity` numbers of [`super::json`], so a session
//! holding them round-trips through [`to_pickle`].
//! Every length and memo index is checked before use, and [`PickleLimits`] bound the input, the memo, the
//! number of values, the size of the result and its nesting depth.

use std::collections::HashMap;
use std::rc::Rc;
use std::str::FromStr;

use serde_json::{Map, Number, Value};

use super::json::{non_finite_value, python_float_number};
use super::CodecError;

// Opcodes (names as in CPython's `pickle.py`).
const MARK: u8 = b'(';
const STOP: u8 = b'.';
const POP: u8 = b'0';
const POP_MARK: u8 = b'1';
const DUP: u8 = b'2';
const FLOAT: u8 = b'F';
const INT: u8 = b'I';
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const LONG: u8 = b'L';
const BININT2: u8 = b'M';
const NONE: u8 = b'N';
const PERSID: u8 = b'P';
const BINPERSID: u8 = b'Q';
const REDUCE: u8 = b'R';
const STRING: u8 = b'S';
const BINSTRING: u8 = b'T';
const SHORT_BINSTRING: u8 = b'U';
const UNICODE: u8 = b'V';
const BINUNICODE: u8 = b'X';
const APPEND: u8 = b'a';
const BUILD: u8 = b'b';
const GLOBAL: u8 = b'c';
const DICT: u8 = b'd';
const EMPTY_DICT: u8 = b'}';
const APPENDS: u8 = b'e';
const GET: u8 = b'g';
const BINGET: u8 = b'h';
const INST: u8 = b'i';
const LONG_BINGET: u8 = b'j';
const LIST: u8 = b'l';
const EMPTY_LIST: u8 = b']';
const OBJ: u8 = b'o';
const PUT: u8 = b'p';
const BINPUT: u8 = b'q';
const LONG_BINPUT: u8 = b'r';
const SETITEM: u8 = b's';
const TUPLE: u8 = b't';
const EMPTY_TUPLE: u8 = b')';
const SETITEMS: u8 = b'u';
const BINFLOAT: u8 = b'G';
const BINBYTES: u8 = b'B';
const SHORT_BINBYTES: u8 = b'C';
const PROTO: u8 = 0x80;
const NEWOBJ: u8 = 0x81;
const EXT1: u8 = 0x82;
const EXT2: u8 = 0x83;
const EXT4: u8 = 0x84;
const TUPLE1: u8 = 0x85;
const TUPLE2: u8 = 0x86;
const TUPLE3: u8 = 0x87;
const NEWTRUE: u8 = 0x88;
const NEWFALSE: u8 = 0x89;
const LONG1: u8 = 0x8a;
const LONG4: u8 = 0x8b;
const SHORT_BINUNICODE: u8 = 0x8c;
const BINUNICODE8: u8 = 0x8d;
const BINBYTES8: u8 = 0x8e;
const EMPTY_SET: u8 = 0x8f;
const ADDITEMS: u8 = 0x90;
const FROZENSET: u8 = 0x91;
const NEWOBJ_EX: u8 = 0x92;
const STACK_GLOBAL: u8 = 0x93;
const MEMOIZE: u8 = 0x94;
const FRAME: u8 = 0x95;
const BYTEARRAY8: u8 = 0x96;
const NEXT_BUFFER: u8 = 0x97;
const READONLY_BUFFER: u8 = 0x98;

/// The highest pickle protocol CPython writes (3.8+).
const HIGHEST_PROTOCOL: u8 = 5;
/// CPython's `_FRAME_SIZE_TARGET`: frames are closed once they reach this size, larger strings bypass them.
const FRAME_SIZE_TARGET: usize = 64 * 1024;
/// Frames shorter than this are written without a `FRAME` header.
const FRAME_SIZE_MIN: usize = 4;
/// `FRAME` opcode + 8-byte length.
const FRAME_HEADER_SIZE: usize = 9;
/// CPython's `BATCHSIZE` for `APPENDS` and `SETITEMS`.
const BATCH_SIZE: usize = 1000;
/// CPython's default `sys.get_int_max_str_digits()`: `json` cannot read or write longer integers.
const MAX_INT_DIGITS: usize = 4300;
/// Nesting deeper than this is refused when writing (CPython's default recursion limit is 1000) and caps
/// [`PickleLimits::max_depth`] when reading, so neither direction can overflow the stack.
const HARD_MAX_DEPTH: usize = 1000;

/// Writes `map` exactly as CPython's `pickle.dumps(map, protocol)` does, for protocol 4 or 5.
///
/// See the [module documentation](self) for the format and for how shared strings are chosen.
///
/// # Errors
///
/// [`CodecError::Unencodable`] for a protocol other than 4 or 5, an integer with more than 4300 digits or
/// nesting deeper than 1000 levels.
pub fn to_pickle(map: &Map<String, Value>, protocol: u8) -> Result<Vec<u8>, CodecError> {
    if !(4..=5).contains(&protocol) {
        return Err(CodecError::Unencodable(format!("pickle protocol {protocol} is not supported (only 4 and 5)")));
    }
    let mut pickler = Pickler {
        out: vec![PROTO, protocol],
        frame_start: None,
        memo_len: 0,
        singletons: [None; 257],
        keys: HashMap::new(),
    };
    pickler.save_dict(map, 1)?;
    pickler.write(&[STOP]);
    pickler.commit_frame();
    Ok(pickler.out)
}

/// The state of one `pickle.dumps` call.
struct Pickler<'a> {
    out: Vec<u8>,
    /// Where the header of the open frame is reserved, if a frame is open.
    frame_start: Option<usize>,
    /// Number of memo entries written so far (the index of the next `MEMOIZE`).
    memo_len: usize,
    /// Memo index of CPython's single-character strings (U+0000..U+00FF) and, at index 256, of the empty string.
    singletons: [Option<usize>; 257],
    /// Memo index of each dict key text written so far (`json.loads` shares equal keys).
    keys: HashMap<&'a str, usize>,
}

impl<'a> Pickler<'a> {
    /// Appends to the open frame, opening one first (framing is always on for protocols 4 and 5).
    fn write(&mut self, bytes: &[u8]) {
        if self.frame_start.is_none() {
            self.frame_start = Some(self.out.len());
            self.out.extend_from_slice(&[0; FRAME_HEADER_SIZE]);
        }
        self.out.extend_from_slice(bytes);
    }

    /// Closes the open frame: fills in its header, or removes the reserved header if the frame is tiny.
    fn commit_frame(&mut self) {
        if let Some(start) = self.frame_start.take() {
            let len = self.out.len() - start - FRAME_HEADER_SIZE;
            if len >= FRAME_SIZE_MIN {
                self.out[start] = FRAME;
                self.out[start + 1..start + FRAME_HEADER_SIZE].copy_from_slice(&(len as u64).to_le_bytes());
            } else {
                self.out.drain(start..start + FRAME_HEADER_SIZE);
            }
        }
    }

    /// Called before each object, like CPython: closes the frame once it has reached the target size.
    fn opcode_boundary(&mut self) {
        if let Some(start) = self.frame_start {
            if self.out.len() - start - FRAME_HEADER_SIZE >= FRAME_SIZE_TARGET {
                self.commit_frame();
            }
        }
    }

    /// A large string: closes the frame and writes header and payload outside any frame.
    fn write_large(&mut self, header: &[u8], payload: &[u8]) {
        self.commit_frame();
        self.out.extend_from_slice(header);
        self.out.extend_from_slice(payload);
    }

    fn memoize(&mut self) -> usize {
        self.write(&[MEMOIZE]);
        let index = self.memo_len;
        self.memo_len += 1;
        index
    }

    fn write_get(&mut self, index: usize) -> Result<(), CodecError> {
        if let Ok(small) = u8::try_from(index) {
            self.write(&[BINGET, small]);
        } else {
            let index =
                u32::try_from(index).map_err(|_| CodecError::Unencodable("more than 2^32 memo entries".to_owned()))?;
            let mut op = [LONG_BINGET, 0, 0, 0, 0];
            op[1..].copy_from_slice(&index.to_le_bytes());
            self.write(&op);
        }
        Ok(())
    }

    fn save(&mut self, value: &'a Value, depth: usize) -> Result<(), CodecError> {
        self.opcode_boundary();
        match value {
            Value::Null => self.write(&[NONE]),
            Value::Bool(true) => self.write(&[NEWTRUE]),
            Value::Bool(false) => self.write(&[NEWFALSE]),
            Value::Number(n) => self.save_number(n)?,
            Value::String(s) => self.save_str(s, false)?,
            Value::Array(items) => self.save_list(items, depth + 1)?,
            Value::Object(map) => self.save_dict(map, depth + 1)?,
        }
        Ok(())
    }

    fn save_number(&mut self, n: &Number) -> Result<(), CodecError> {
        // With `arbitrary_precision` the text tells a Python int (no '.', 'e', 'E') from a float.
        let text = n.to_string();
        let non_finite = non_finite_value(&text);
        if non_finite.is_some() || text.contains(['.', 'e', 'E']) {
            let x: f64 = match non_finite {
                Some(x) => x,
                None => text.parse().map_err(|_| CodecError::Unencodable(format!("{text:?} is not a valid float")))?,
            };
            let mut op = [BINFLOAT, 0, 0, 0, 0, 0, 0, 0, 0];
            op[1..].copy_from_slice(&x.to_be_bytes());
            self.write(&op);
            return Ok(());
        }
        if let Ok(v) = text.parse::<i64>() {
            if let Ok(b) = u8::try_from(v) {
                self.write(&[BININT1, b]);
            } else if let Ok(w) = u16::try_from(v) {
                let b = w.to_le_bytes();
                self.write(&[BININT2, b[0], b[1]]);
            } else if let Ok(i) = i32::try_from(v) {
                let b = i.to_le_bytes();
                self.write(&[BININT, b[0], b[1], b[2], b[3]]);
            } else {
                let encoded = encode_long(v < 0, &v.unsigned_abs().to_le_bytes());
                self.write_long(&encoded);
            }
            return Ok(());
        }
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.as_str()),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CodecError::Unencodable(format!("{text:?} is not a valid integer")));
        }
        if digits.len() > MAX_INT_DIGITS {
            return Err(CodecError::Unencodable(format!("an integer has more than {MAX_INT_DIGITS} digits")));
        }
        let magnitude = decimal_to_le_bytes(digits);
        let encoded = encode_long(negative, &magnitude);
        self.write_long(&encoded);
        Ok(())
    }

    fn write_long(&mut self, encoded: &[u8]) {
        let mut op = Vec::with_capacity(encoded.len() + 5);
        match u8::try_from(encoded.len()) {
            Ok(n) => op.extend_from_slice(&[LONG1, n]),
            Err(_) => {
                // At most 4300 digits, so the length always fits an i32.
                let n = i32::try_from(encoded.len()).unwrap_or(i32::MAX);
                op.push(LONG4);
                op.extend_from_slice(&n.to_le_bytes());
            }
        }
        op.extend_from_slice(encoded);
        self.write(&op);
    }

    /// Writes a string, or a `BINGET` if CPython would hold the same object already (see the module docs).
    fn save_str(&mut self, s: &'a str, is_key: bool) -> Result<(), CodecError> {
        let singleton = singleton_slot(s);
        let known = match singleton {
            Some(slot) => self.singletons[slot],
            None if is_key => self.keys.get(s).copied(),
            None => None,
        };
        if let Some(index) = known {
            return self.write_get(index);
        }
        let bytes = s.as_bytes();
        let n = bytes.len();
        if let Ok(short) = u8::try_from(n) {
            self.write(&[SHORT_BINUNICODE, short]);
            self.write(bytes);
        } else if let Ok(n32) = u32::try_from(n) {
            let mut header = [BINUNICODE, 0, 0, 0, 0];
            header[1..].copy_from_slice(&n32.to_le_bytes());
            if n >= FRAME_SIZE_TARGET {
                self.write_large(&header, bytes);
            } else {
                self.write(&header);
                self.write(bytes);
            }
        } else {
            let mut header = [BINUNICODE8, 0, 0, 0, 0, 0, 0, 0, 0];
            header[1..].copy_from_slice(&(n as u64).to_le_bytes());
            self.write_large(&header, bytes);
        }
        let index = self.memoize();
        match singleton {
            Some(slot) => self.singletons[slot] = Some(index),
            None if is_key => {
                self.keys.insert(s, index);
            }
            None => {}
        }
        Ok(())
    }

    fn save_list(&mut self, items: &'a [Value], depth: usize) -> Result<(), CodecError> {
        check_encode_depth(depth)?;
        self.write(&[EMPTY_LIST]);
        self.memoize();
        match items {
            [] => {}
            [only] => {
                self.save(only, depth)?;
                self.write(&[APPEND]);
            }
            _ => {
                for batch in items.chunks(BATCH_SIZE) {
                    self.write(&[MARK]);
                    for item in batch {
                        self.save(item, depth)?;
                    }
                    self.write(&[APPENDS]);
                }
            }
        }
        Ok(())
    }

    fn save_dict(&mut self, map: &'a Map<String, Value>, depth: usize) -> Result<(), CodecError> {
        check_encode_depth(depth)?;
        self.write(&[EMPTY_DICT]);
        self.memoize();
        if map.len() == 1 {
            for (key, value) in map {
                self.opcode_boundary();
                self.save_str(key, true)?;
                self.save(value, depth)?;
                self.write(&[SETITEM]);
            }
        } else if map.len() > 1 {
            // CPython's `batch_dict_exact`: batches of 1000, and another (possibly empty) batch after a full one.
            let mut entries = map.iter();
            loop {
                self.write(&[MARK]);
                let mut count = 0;
                for (key, value) in entries.by_ref() {
                    self.opcode_boundary();
                    self.save_str(key, true)?;
                    self.save(value, depth)?;
                    count += 1;
                    if count == BATCH_SIZE {
                        break;
                    }
                }
                self.write(&[SETITEMS]);
                if count != BATCH_SIZE {
                    break;
                }
            }
        }
        Ok(())
    }
}

fn check_encode_depth(depth: usize) -> Result<(), CodecError> {
    if depth > HARD_MAX_DEPTH {
        return Err(CodecError::Unencodable(format!("nesting deeper than {HARD_MAX_DEPTH} levels")));
    }
    Ok(())
}

/// The singleton slot of a string CPython keeps one object of: `""` (slot 256) or one character below U+0100.
fn singleton_slot(s: &str) -> Option<usize> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (None, _) => Some(256),
        (Some(c), None) if u32::from(c) < 256 => Some(u32::from(c) as usize),
        _ => None,
    }
}

/// Decimal digits (no sign) to the little-endian bytes of the magnitude, without trailing zero bytes.
fn decimal_to_le_bytes(digits: &str) -> Vec<u8> {
    // Little-endian base-2^32 limbs; each step multiplies by 10^k and adds the next k digits (k <= 9).
    let mut limbs: Vec<u32> = Vec::with_capacity(digits.len() / 9 + 1);
    for chunk in digits.as_bytes().chunks(9) {
        let mut add: u64 = 0;
        let mut mul: u64 = 1;
        for &d in chunk {
            add = add * 10 + u64::from(d - b'0');
            mul *= 10;
        }
        for limb in &mut limbs {
            let t = u64::from(*limb) * mul + add;
            *limb = t as u32;
            add = t >> 32;
        }
        if add > 0 {
            limbs.push(add as u32);
        }
    }
    let mut bytes: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    bytes
}

/// `pickle.encode_long`: the shortest two's complement little-endian form of `±magnitude` (empty for zero).
fn encode_long(negative: bool, magnitude_le: &[u8]) -> Vec<u8> {
    let used = magnitude_le.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if used == 0 {
        return Vec::new();
    }
    let top = magnitude_le[used - 1];
    let bit_length = 8 * (used - 1) + (8 - top.leading_zeros() as usize);
    let nbytes = (bit_length >> 3) + 1;
    let mut out = vec![0u8; nbytes];
    out[..used].copy_from_slice(&magnitude_le[..used]);
    if negative {
        let mut carry = true;
        for byte in &mut out {
            let (v, c) = (!*byte).overflowing_add(u8::from(carry));
            *byte = v;
            carry = c;
        }
        if nbytes > 1 && out[nbytes - 1] == 0xff && out[nbytes - 2] & 0x80 != 0 {
            out.pop();
        }
    }
    out
}

/// The length of a two's complement little-endian int without its sign-extension bytes (trailing `0x00` of a
/// positive number, trailing `0xff` of a negative one).
fn significant_len(bytes: &[u8]) -> usize {
    let fill = if bytes.last().is_some_and(|&b| b & 0x80 != 0) { 0xff } else { 0x00 };
    bytes.iter().rposition(|&b| b != fill).map_or(0, |at| at + 1)
}

/// Two's complement little-endian bytes (as `LONG1`/`LONG4` carry them) to decimal text, or `None` if the
/// number has more than 4300 digits.
fn decode_long(bytes: &[u8]) -> Option<String> {
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    let mut magnitude: Vec<u8> = bytes.to_vec();
    if negative {
        let mut carry = true;
        for byte in &mut magnitude {
            let (v, c) = (!*byte).overflowing_add(u8::from(carry));
            *byte = v;
            carry = c;
        }
    }
    while magnitude.last() == Some(&0) {
        magnitude.pop();
    }
    // 1800 significant bytes are more than 4330 digits: refuse before the quadratic conversion.
    if magnitude.len() > 1800 {
        return None;
    }
    let mut limbs: Vec<u32> = magnitude
        .chunks(4)
        .map(|c| {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(b)
        })
        .collect();
    // Repeated division by 10^9, least significant chunk first.
    let mut chunks: Vec<u32> = Vec::new();
    while limbs.iter().any(|&l| l != 0) {
        let mut rem: u64 = 0;
        for limb in limbs.iter_mut().rev() {
            let cur = (rem << 32) | u64::from(*limb);
            *limb = (cur / 1_000_000_000) as u32;
            rem = cur % 1_000_000_000;
        }
        chunks.push(rem as u32);
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
    }
    let mut text = String::new();
    if negative {
        text.push('-');
    }
    match chunks.split_last() {
        None => text.push('0'),
        Some((first, rest)) => {
            text.push_str(&first.to_string());
            for chunk in rest.iter().rev() {
                text.push_str(&format!("{chunk:09}"));
            }
        }
    }
    let digits = text.len() - usize::from(negative);
    (digits <= MAX_INT_DIGITS).then_some(text)
}

/// Bounds applied by [`from_pickle`] to untrusted input.
///
/// Nothing is allocated from a length prefix before the bytes it announces have been checked to be present,
/// so memory use is bounded by these limits, not by what a pickle claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PickleLimits {
    /// Largest pickle accepted, in bytes; a longer input is refused with [`CodecError::TooLarge`] before
    /// decoding. Default: 16 MiB.
    pub max_input_bytes: usize,
    /// Deepest nesting of dicts, lists and tuples in the result, counting the session dict itself as 1.
    /// Default: 128, the limit of the JSON codec ([`super::json::from_python_json`]). Values above 1000 act as
    /// 1000, so decoding can never overflow the stack.
    pub max_depth: usize,
    /// Most memo entries (`MEMOIZE`/`PUT`) a pickle may create. Default: 1 048 576.
    pub max_memo_entries: usize,
    /// Most values the pickle may push (each string, number, container and memo reference counts), and most
    /// values the result may hold once shared objects are expanded. Bounds "billion laughs" pickles that
    /// reference one large list many times. Default: 1 000 000.
    pub max_items: usize,
    /// Largest total size of the strings and numbers in the result, in bytes, counting every copy of a shared
    /// string. Default: 64 MiB.
    pub max_output_bytes: usize,
    /// Most bytes, in all, of the ints longer than 8 bytes (`LONG1`/`LONG4`). Turning such an int into decimal
    /// text costs time quadratic in its length, so this bounds the work of a pickle made of big ints (16 MiB of
    /// `LONG4` would otherwise take seconds). Default: 4096 bytes, about 9 800 decimal digits in all; a session
    /// holding more than that in big ints is not one Django writes.
    pub max_big_int_bytes: usize,
}

impl Default for PickleLimits {
    fn default() -> Self {
        PickleLimits {
            max_input_bytes: 16 * 1024 * 1024,
            max_depth: 128,
            max_memo_entries: 1 << 20,
            max_items: 1_000_000,
            max_output_bytes: 64 * 1024 * 1024,
            max_big_int_bytes: 4096,
        }
    }
}

/// Reads a pickled session dict without executing anything.
///
/// Supported: protocols 0–5 with `PROTO`, `FRAME`, the memo opcodes (`MEMOIZE`, `PUT`, `BINPUT`,
/// `LONG_BINPUT`, `GET`, `BINGET`, `LONG_BINGET`), `MARK`, `STOP`, `POP`, `POP_MARK`, `DUP`, dicts
/// (`EMPTY_DICT`, `DICT`, `SETITEM`, `SETITEMS`), lists (`EMPTY_LIST`, `LIST`, `APPEND`, `APPENDS`), tuples
/// (`EMPTY_TUPLE`, `TUPLE`, `TUPLE1`–`TUPLE3`, read as arrays), strings (`SHORT_BINUNICODE`, `BINUNICODE`,
/// `BINUNICODE8`, `UNICODE`), ints (`BININT`, `BININT1`, `BININT2`, `INT`, `LONG1`, `LONG4`, `LONG`), floats
/// (`BINFLOAT`, `FLOAT`), `NONE`, `NEWTRUE`, `NEWFALSE`. Bytes after `STOP` are ignored, as by `pickle.loads`.
///
/// # Errors
///
/// - [`CodecError::UnsupportedPickle`]: a value a session cannot hold: any class or function reference,
///   call or object construction (named `module.name` when the pickle says, e.g. `datetime.datetime`), `set`,
///   `frozenset`, `bytes`, `bytearray`, out-of-band buffers, persistent ids, extension codes, Python 2 byte
///   strings, ints of more than 4300 digits, strings with lone
///   surrogates, a non-string dict key (`dict key of type int`), or a list or dict that contains itself.
/// - [`CodecError::InvalidPickle`]: truncated input, unknown opcode, memo reference out of range, stack
///   underflow, missing `MARK`, nesting deeper than `max_depth` or too many memo entries.
/// - [`CodecError::TooLarge`]: the input is longer than [`PickleLimits::max_input_bytes`].
/// - [`CodecError::WorkLimit`]: the ints longer than 8 bytes add up to more than
///   [`PickleLimits::max_big_int_bytes`], or the values, marks or result bytes exceed `max_items` /
///   `max_output_bytes`.
/// - [`CodecError::NotAnObject`]: the pickled object is not a dict.
pub fn from_pickle(bytes: &[u8], limits: &PickleLimits) -> Result<Map<String, Value>, CodecError> {
    if bytes.len() > limits.max_input_bytes {
        return Err(CodecError::TooLarge { limit: limits.max_input_bytes });
    }
    let mut unpickler = Unpickler {
        input: Input { data: bytes, pos: 0 },
        limits,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        nodes: Vec::new(),
        pushed: 0,
        big_int_bytes: 0,
    };
    let root = unpickler.run()?;
    let Item::Node(id) = root else {
        return Err(CodecError::NotAnObject);
    };
    if !matches!(unpickler.nodes[id], Node::Dict(_)) {
        return Err(CodecError::NotAnObject);
    }
    let mut builder = Builder {
        nodes: &unpickler.nodes,
        visiting: vec![false; unpickler.nodes.len()],
        items: 0,
        output_bytes: 0,
        max_items: limits.max_items,
        max_output_bytes: limits.max_output_bytes,
        max_depth: limits.max_depth.min(HARD_MAX_DEPTH),
    };
    match builder.build(&root, 1)? {
        Value::Object(map) => Ok(map),
        _ => Err(CodecError::NotAnObject),
    }
}

/// A value on the unpickler's stack or in its memo. Containers live in the node arena so that shared and
/// later-filled containers behave like Python's objects (a memo reference sees the container's final items).
#[derive(Debug, Clone)]
enum Item {
    None,
    Bool(bool),
    Int(i64),
    /// An int outside `i64`, as decimal text.
    BigInt(Rc<str>),
    Float(f64),
    Str(Rc<str>),
    Node(usize),
}

#[derive(Debug)]
enum Node {
    Dict(Vec<(Rc<str>, Item)>),
    List(Vec<Item>),
    Tuple(Vec<Item>),
}

struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    fn truncated(&self, needed: u64) -> CodecError {
        CodecError::InvalidPickle(format!(
            "truncated: {needed} bytes needed at offset {}, {} left",
            self.pos,
            self.data.len() - self.pos
        ))
    }

    /// The next `n` bytes; checked against the remaining input before anything is allocated.
    fn take(&mut self, n: u64) -> Result<&'a [u8], CodecError> {
        let remaining = self.data.len() - self.pos;
        match usize::try_from(n) {
            Ok(n) if n <= remaining => {
                let slice = &self.data[self.pos..self.pos + n];
                self.pos += n;
                Ok(slice)
            }
            _ => Err(self.truncated(n)),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }

    /// A text argument: the bytes up to the next `\n` (not included).
    fn line(&mut self) -> Result<&'a [u8], CodecError> {
        let rest = &self.data[self.pos..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.pos += i + 1;
                Ok(&rest[..i])
            }
            None => Err(CodecError::InvalidPickle(format!("truncated: no end of line after offset {}", self.pos))),
        }
    }
}

struct Unpickler<'a, 'l> {
    input: Input<'a>,
    limits: &'l PickleLimits,
    stack: Vec<Item>,
    /// Stack lengths at each open `MARK` (CPython's metastack).
    marks: Vec<usize>,
    memo: HashMap<u64, Item>,
    nodes: Vec<Node>,
    /// Values pushed (and marks set) so far, bounded by `max_items`.
    pushed: usize,
    /// Significant bytes of the big ints read so far, bounded by `max_big_int_bytes`.
    big_int_bytes: usize,
}

fn unsupported(python_type: impl Into<String>) -> CodecError {
    CodecError::UnsupportedPickle { python_type: python_type.into() }
}

fn invalid(message: impl Into<String>) -> CodecError {
    CodecError::InvalidPickle(message.into())
}

/// The Python type named by a `GLOBAL`/`STACK_GLOBAL`/`INST` reference.
fn global_name(module: &str, name: &str) -> String {
    match (module, name) {
        // Protocols 0-2 pickle `bytes` as a call of `_codecs.encode`.
        ("_codecs", "encode") => "bytes".to_owned(),
        ("builtins" | "__builtin__", _) => name.to_owned(),
        _ => format!("{module}.{name}"),
    }
}

impl Unpickler<'_, '_> {
    fn push(&mut self, item: Item) -> Result<(), CodecError> {
        self.count_pushed()?;
        self.stack.push(item);
        Ok(())
    }

    /// Counts a value or a mark against `max_items` (marks take memory too: 16 MiB of `MARK` is 16 M marks).
    fn count_pushed(&mut self) -> Result<(), CodecError> {
        self.pushed += 1;
        if self.pushed > self.limits.max_items {
            return Err(CodecError::WorkLimit { what: "values and marks (max_items)", limit: self.limits.max_items });
        }
        Ok(())
    }

    fn push_node(&mut self, node: Node) -> Result<(), CodecError> {
        let id = self.nodes.len();
        self.nodes.push(node);
        self.push(Item::Node(id))
    }

    /// Length of the stack below which the current `MARK` hides items.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self, opcode: &str) -> Result<Item, CodecError> {
        if self.stack.len() <= self.floor() {
            return Err(invalid(format!("stack underflow at {opcode}")));
        }
        self.stack.pop().ok_or_else(|| invalid(format!("stack underflow at {opcode}")))
    }

    fn top(&self, opcode: &str) -> Result<&Item, CodecError> {
        if self.stack.len() <= self.floor() {
            return Err(invalid(format!("stack underflow at {opcode}")));
        }
        self.stack.last().ok_or_else(|| invalid(format!("stack underflow at {opcode}")))
    }

    /// The items pushed since the last `MARK`, which is removed.
    fn pop_mark(&mut self, opcode: &str) -> Result<Vec<Item>, CodecError> {
        let mark = self.marks.pop().ok_or_else(|| invalid(format!("{opcode} without MARK")))?;
        Ok(self.stack.split_off(mark))
    }

    fn memo_put(&mut self, index: u64) -> Result<(), CodecError> {
        let item = self.top("PUT")?.clone();
        if !self.memo.contains_key(&index) && self.memo.len() >= self.limits.max_memo_entries {
            return Err(invalid(format!("more than {} memo entries", self.limits.max_memo_entries)));
        }
        self.memo.insert(index, item);
        Ok(())
    }

    fn memo_get(&mut self, index: u64) -> Result<(), CodecError> {
        let item =
            self.memo.get(&index).cloned().ok_or_else(|| invalid(format!("memo reference {index} out of range")))?;
        self.push(item)
    }

    /// A Python float; NaN and the infinities become the `NaN`/`Infinity`/`-Infinity` numbers that
    /// [`super::json::from_python_json`] reads too, so they are written back unchanged.
    fn push_float(&mut self, x: f64) -> Result<(), CodecError> {
        self.push(Item::Float(x))
    }

    fn push_long(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        let significant = significant_len(bytes);
        if significant > 8 {
            self.big_int_bytes = self.big_int_bytes.saturating_add(significant);
            if self.big_int_bytes > self.limits.max_big_int_bytes {
                return Err(CodecError::WorkLimit {
                    what: "bytes of big ints (max_big_int_bytes)",
                    limit: self.limits.max_big_int_bytes,
                });
            }
        }
        let text = decode_long(bytes).ok_or_else(|| unsupported(format!("int (more than {MAX_INT_DIGITS} digits)")))?;
        self.push_int_text(&text)
    }

    fn push_int_text(&mut self, text: &str) -> Result<(), CodecError> {
        match text.parse::<i64>() {
            Ok(v) => self.push(Item::Int(v)),
            Err(_) => self.push(Item::BigInt(Rc::from(text))),
        }
    }

    /// `INT` and `LONG` text arguments: an optional sign and decimal digits (CPython also accepts other bases).
    fn push_int_line(&mut self, line: &[u8], opcode: &str) -> Result<(), CodecError> {
        let text = std::str::from_utf8(line).map_err(|_| invalid(format!("{opcode} argument is not ASCII")))?.trim();
        let (negative, digits) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(format!("{opcode} argument {text:?} is not a decimal integer")));
        }
        let trimmed = digits.trim_start_matches('0');
        if trimmed.len() > MAX_INT_DIGITS {
            return Err(unsupported(format!("int (more than {MAX_INT_DIGITS} digits)")));
        }
        let canonical = match (trimmed.is_empty(), negative) {
            (true, _) => "0".to_owned(),
            (false, true) => format!("-{trimmed}"),
            (false, false) => trimmed.to_owned(),
        };
        self.push_int_text(&canonical)
    }

    fn push_str(&mut self, bytes: &[u8]) -> Result<(), CodecError> {
        match std::str::from_utf8(bytes) {
            Ok(s) => self.push(Item::Str(Rc::from(s))),
            Err(_) if has_surrogates(bytes) => Err(unsupported("str with lone surrogates")),
            Err(_) => Err(invalid("string is not valid UTF-8")),
        }
    }

    fn item_type(&self, item: &Item) -> &'static str {
        match item {
            Item::None => "NoneType",
            Item::Bool(_) => "bool",
            Item::Int(_) | Item::BigInt(_) => "int",
            Item::Float(_) => "float",
            Item::Str(_) => "str",
            Item::Node(id) => match self.nodes.get(*id) {
                Some(Node::Dict(_)) => "dict",
                Some(Node::List(_)) => "list",
                Some(Node::Tuple(_)) | None => "tuple",
            },
        }
    }

    fn key(&self, item: Item) -> Result<Rc<str>, CodecError> {
        match item {
            Item::Str(s) => Ok(s),
            other => Err(unsupported(format!("dict key of type {}", self.item_type(&other)))),
        }
    }

    /// Adds `pairs` (key, value, key, value, ...) to the dict below them on the stack.
    fn set_items(&mut self, pairs: Vec<Item>, opcode: &str) -> Result<(), CodecError> {
        if !pairs.len().is_multiple_of(2) {
            return Err(invalid(format!("odd number of items for {opcode}")));
        }
        let target = match self.top(opcode)? {
            Item::Node(id) if matches!(self.nodes.get(*id), Some(Node::Dict(_))) => *id,
            other => return Err(invalid(format!("{opcode} on a {}", self.item_type(other)))),
        };
        let mut entries = Vec::with_capacity(pairs.len() / 2);
        let mut iter = pairs.into_iter();
        while let (Some(key), Some(value)) = (iter.next(), iter.next()) {
            entries.push((self.key(key)?, value));
        }
        if let Some(Node::Dict(dict)) = self.nodes.get_mut(target) {
            dict.extend(entries);
        }
        Ok(())
    }

    /// Appends `items` to the list below them on the stack.
    fn append_items(&mut self, items: Vec<Item>, opcode: &str) -> Result<(), CodecError> {
        let target = match self.top(opcode)? {
            Item::Node(id) if matches!(self.nodes.get(*id), Some(Node::List(_))) => *id,
            other => return Err(invalid(format!("{opcode} on a {}", self.item_type(other)))),
        };
        if let Some(Node::List(list)) = self.nodes.get_mut(target) {
            list.extend(items);
        }
        Ok(())
    }

    fn dict_from_pairs(&mut self, pairs: Vec<Item>) -> Result<(), CodecError> {
        self.push_node(Node::Dict(Vec::new()))?;
        self.set_items(pairs, "DICT")
    }

    fn global_line(&mut self) -> Result<String, CodecError> {
        let module = String::from_utf8_lossy(self.input.line()?).into_owned();
        let name = String::from_utf8_lossy(self.input.line()?).into_owned();
        Ok(global_name(&module, &name))
    }

    /// Runs the opcodes up to `STOP` and returns the pickled object.
    fn run(&mut self) -> Result<Item, CodecError> {
        loop {
            let offset = self.input.pos;
            let opcode = match self.input.take(1) {
                Ok(byte) => byte[0],
                Err(_) => return Err(invalid("truncated: the pickle ends before STOP")),
            };
            match opcode {
                PROTO => {
                    let protocol = self.input.u8()?;
                    if protocol > HIGHEST_PROTOCOL {
                        return Err(invalid(format!("unsupported pickle protocol {protocol}")));
                    }
                }
                FRAME => {
                    let len = u64::from_le_bytes(self.input.array()?);
                    let remaining = (self.input.data.len() - self.input.pos) as u64;
                    if len > remaining {
                        return Err(self.input.truncated(len));
                    }
                }
                STOP => return self.pop("STOP"),
                MARK => {
                    self.count_pushed()?;
                    self.marks.push(self.stack.len());
                }
                POP => {
                    if self.stack.len() > self.floor() {
                        self.stack.pop();
                    } else {
                        self.pop_mark("POP")?;
                    }
                }
                POP_MARK => {
                    self.pop_mark("POP_MARK")?;
                }
                DUP => {
                    let item = self.top("DUP")?.clone();
                    self.push(item)?;
                }
                MEMOIZE => {
                    let index = self.memo.len() as u64;
                    self.memo_put(index)?;
                }
                PUT => {
                    let line = self.input.line()?;
                    let index = parse_index(line).ok_or_else(|| invalid("PUT argument is not an index"))?;
                    self.memo_put(index)?;
                }
                BINPUT => {
                    let index = self.input.u8()?;
                    self.memo_put(u64::from(index))?;
                }
                LONG_BINPUT => {
                    let index = u32::from_le_bytes(self.input.array()?);
                    self.memo_put(u64::from(index))?;
                }
                GET => {
                    let line = self.input.line()?;
                    let index = parse_index(line).ok_or_else(|| invalid("GET argument is not an index"))?;
                    self.memo_get(index)?;
                }
                BINGET => {
                    let index = self.input.u8()?;
                    self.memo_get(u64::from(index))?;
                }
                LONG_BINGET => {
                    let index = u32::from_le_bytes(self.input.array()?);
                    self.memo_get(u64::from(index))?;
                }
                EMPTY_DICT => self.push_node(Node::Dict(Vec::new()))?,
                EMPTY_LIST => self.push_node(Node::List(Vec::new()))?,
                EMPTY_TUPLE => self.push_node(Node::Tuple(Vec::new()))?,
                DICT => {
                    let pairs = self.pop_mark("DICT")?;
                    self.dict_from_pairs(pairs)?;
                }
                LIST => {
                    let items = self.pop_mark("LIST")?;
                    self.push_node(Node::List(items))?;
                }
                TUPLE => {
                    let items = self.pop_mark("TUPLE")?;
                    self.push_node(Node::Tuple(items))?;
                }
                TUPLE1 | TUPLE2 | TUPLE3 => {
                    let n = usize::from(opcode - TUPLE1) + 1;
                    if self.stack.len() < self.floor() + n {
                        return Err(invalid(format!("stack underflow at TUPLE{n}")));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push_node(Node::Tuple(items))?;
                }
                SETITEM => {
                    let value = self.pop("SETITEM")?;
                    let key = self.pop("SETITEM")?;
                    self.set_items(vec![key, value], "SETITEM")?;
                }
                SETITEMS => {
                    let pairs = self.pop_mark("SETITEMS")?;
                    self.set_items(pairs, "SETITEMS")?;
                }
                APPEND => {
                    let value = self.pop("APPEND")?;
                    self.append_items(vec![value], "APPEND")?;
                }
                APPENDS => {
                    let items = self.pop_mark("APPENDS")?;
                    self.append_items(items, "APPENDS")?;
                }
                SHORT_BINUNICODE => {
                    let n = self.input.u8()?;
                    let bytes = self.input.take(u64::from(n))?;
                    self.push_str(bytes)?;
                }
                BINUNICODE => {
                    let n = u32::from_le_bytes(self.input.array()?);
                    let bytes = self.input.take(u64::from(n))?;
                    self.push_str(bytes)?;
                }
                BINUNICODE8 => {
                    let n = u64::from_le_bytes(self.input.array()?);
                    let bytes = self.input.take(n)?;
                    self.push_str(bytes)?;
                }
                UNICODE => {
                    let line = self.input.line()?;
                    let text = decode_raw_unicode_escape(line)?;
                    self.push(Item::Str(Rc::from(text.as_str())))?;
                }
                BININT => {
                    let v = i32::from_le_bytes(self.input.array()?);
                    self.push(Item::Int(i64::from(v)))?;
                }
                BININT1 => {
                    let v = self.input.u8()?;
                    self.push(Item::Int(i64::from(v)))?;
                }
                BININT2 => {
                    let v = u16::from_le_bytes(self.input.array()?);
                    self.push(Item::Int(i64::from(v)))?;
                }
                INT => {
                    let line = self.input.line()?;
                    match line {
                        b"00" => self.push(Item::Bool(false))?,
                        b"01" => self.push(Item::Bool(true))?,
                        _ => self.push_int_line(line, "INT")?,
                    }
                }
                LONG => {
                    let line = self.input.line()?;
                    let line = line.strip_suffix(b"L").unwrap_or(line);
                    self.push_int_line(line, "LONG")?;
                }
                LONG1 => {
                    let n = self.input.u8()?;
                    let bytes = self.input.take(u64::from(n))?;
                    self.push_long(bytes)?;
                }
                LONG4 => {
                    let n = i32::from_le_bytes(self.input.array()?);
                    let n = u64::try_from(n).map_err(|_| invalid("LONG4 with a negative length"))?;
                    let bytes = self.input.take(n)?;
                    self.push_long(bytes)?;
                }
                BINFLOAT => {
                    let x = f64::from_be_bytes(self.input.array()?);
                    self.push_float(x)?;
                }
                FLOAT => {
                    let line = self.input.line()?;
                    let x = std::str::from_utf8(line)
                        .ok()
                        .and_then(|t| t.trim().parse::<f64>().ok())
                        .ok_or_else(|| invalid("FLOAT argument is not a number"))?;
                    self.push_float(x)?;
                }
                NONE => self.push(Item::None)?,
                NEWTRUE => self.push(Item::Bool(true))?,
                NEWFALSE => self.push(Item::Bool(false))?,

                // Everything below would create or call Python objects: refused, never executed.
                GLOBAL | INST => return Err(unsupported(self.global_line()?)),
                STACK_GLOBAL => {
                    let name = self.pop("STACK_GLOBAL")?;
                    let module = self.pop("STACK_GLOBAL")?;
                    return Err(match (module, name) {
                        (Item::Str(module), Item::Str(name)) => unsupported(global_name(&module, &name)),
                        _ => invalid("STACK_GLOBAL with a module or name that is not a str"),
                    });
                }
                REDUCE | BUILD | NEWOBJ | NEWOBJ_EX | OBJ => {
                    return Err(unsupported(format!("object (opcode {} at offset {offset})", opcode_name(opcode))));
                }
                PERSID | BINPERSID => return Err(unsupported("persistent id")),
                EXT1 | EXT2 | EXT4 => return Err(unsupported("object from the copyreg extension registry")),
                EMPTY_SET | ADDITEMS => return Err(unsupported("set")),
                FROZENSET => return Err(unsupported("frozenset")),
                BINBYTES | SHORT_BINBYTES | BINBYTES8 => return Err(unsupported("bytes")),
                BYTEARRAY8 => return Err(unsupported("bytearray")),
                NEXT_BUFFER | READONLY_BUFFER => return Err(unsupported("pickle.PickleBuffer (out-of-band buffer)")),
                STRING | BINSTRING | SHORT_BINSTRING => return Err(unsupported("str (Python 2 byte string)")),
                other => return Err(invalid(format!("unknown opcode 0x{other:02x} at offset {offset}"))),
            }
        }
    }
}

fn opcode_name(opcode: u8) -> &'static str {
    match opcode {
        REDUCE => "REDUCE",
        BUILD => "BUILD",
        NEWOBJ => "NEWOBJ",
        NEWOBJ_EX => "NEWOBJ_EX",
        OBJ => "OBJ",
        _ => "?",
    }
}

/// A memo index written as decimal text (`PUT`/`GET`).
fn parse_index(line: &[u8]) -> Option<u64> {
    std::str::from_utf8(line).ok()?.trim().parse().ok()
}

/// True if the bytes hold a UTF-8-encoded surrogate (`ED A0..BF xx`), which Python's `surrogatepass` writes.
fn has_surrogates(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w[0] == 0xed && (0xa0..=0xbf).contains(&w[1]))
}

/// Python's `raw-unicode-escape` decoding (protocol 0 `UNICODE`): latin-1, except `\uXXXX` and `\UXXXXXXXX`.
fn decode_raw_unicode_escape(line: &[u8]) -> Result<String, CodecError> {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        // An escape needs an odd number of backslashes before the `u`; `\\u` is a backslash and a `u`.
        if b == b'\\' && i + 1 < line.len() && matches!(line[i + 1], b'u' | b'U') {
            let width = if line[i + 1] == b'u' { 4 } else { 8 };
            let hex = line.get(i + 2..i + 2 + width).ok_or_else(|| invalid("truncated \\u escape in UNICODE"))?;
            let code = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .ok_or_else(|| invalid("invalid \\u escape in UNICODE"))?;
            match char::from_u32(code) {
                Some(c) => out.push(c),
                None if (0xd800..0xe000).contains(&code) => return Err(unsupported("str with lone surrogates")),
                None => return Err(invalid("invalid \\U escape in UNICODE")),
            }
            i += 2 + width;
        } else if b == b'\\' && i + 1 < line.len() && line[i + 1] == b'\\' {
            out.push_str("\\\\");
            i += 2;
        } else {
            out.push(char::from(b));
            i += 1;
        }
    }
    Ok(out)
}

/// Turns the unpickled object graph into a `Value`, bounding size and depth and refusing cycles.
struct Builder<'n> {
    nodes: &'n [Node],
    visiting: Vec<bool>,
    items: usize,
    output_bytes: usize,
    max_items: usize,
    max_output_bytes: usize,
    max_depth: usize,
}

impl Builder<'_> {
    fn count(&mut self, bytes: usize) -> Result<(), CodecError> {
        self.items += 1;
        if self.items > self.max_items {
            return Err(CodecError::WorkLimit { what: "values in the result (max_items)", limit: self.max_items });
        }
        self.output_bytes = self.output_bytes.saturating_add(bytes);
        if self.output_bytes > self.max_output_bytes {
            return Err(CodecError::WorkLimit {
                what: "bytes in the result (max_output_bytes)",
                limit: self.max_output_bytes,
            });
        }
        Ok(())
    }

    fn number(text: &str) -> Result<Value, CodecError> {
        Number::from_str(text).map(Value::Number).map_err(|_| invalid(format!("{text:?} is not a number")))
    }

    fn build(&mut self, item: &Item, depth: usize) -> Result<Value, CodecError> {
        match item {
            Item::None => {
                self.count(0)?;
                Ok(Value::Null)
            }
            Item::Bool(b) => {
                self.count(0)?;
                Ok(Value::Bool(*b))
            }
            Item::Int(v) => {
                self.count(20)?;
                Ok(Value::Number(Number::from(*v)))
            }
            Item::BigInt(text) => {
                self.count(text.len())?;
                Self::number(text)
            }
            Item::Float(x) => {
                self.count(24)?;
                python_float_number(*x).map(Value::Number).ok_or_else(|| invalid(format!("{x} is not a number")))
            }
            Item::Str(s) => {
                self.count(s.len())?;
                Ok(Value::String(s.to_string()))
            }
            Item::Node(id) => {
                let id = *id;
                if depth > self.max_depth {
                    return Err(invalid(format!("nesting deeper than {} levels (max_depth)", self.max_depth)));
                }
                let node = self.nodes.get(id).ok_or_else(|| invalid("dangling container reference"))?;
                if self.visiting[id] {
                    let kind = if matches!(node, Node::Dict(_)) { "dict" } else { "list" };
                    return Err(unsupported(format!("recursive {kind} (contains itself)")));
                }
                self.count(0)?;
                self.visiting[id] = true;
                let value = match node {
                    Node::Dict(entries) => {
                        let mut map = Map::new();
                        for (key, item) in entries {
                            self.output_bytes = self.output_bytes.saturating_add(key.len());
                            let value = self.build(item, depth + 1)?;
                            // Like a Python dict: a repeated key keeps its first position and takes the last value.
                            map.insert(key.to_string(), value);
                        }
                        Value::Object(map)
                    }
                    Node::List(items) | Node::Tuple(items) => {
                        let mut out = Vec::with_capacity(items.len());
                        for item in items {
                            out.push(self.build(item, depth + 1)?);
                        }
                        Value::Array(out)
                    }
                };
                self.visiting[id] = false;
                Ok(value)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    fn hex(text: &str) -> Vec<u8> {
        let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        (0..clean.len()).step_by(2).map(|i| u8::from_str_radix(&clean[i..i + 2], 16).unwrap()).collect()
    }

    fn load(bytes: &[u8]) -> Result<Map<String, Value>, CodecError> {
        from_pickle(bytes, &PickleLimits::default())
    }

    fn unsupported_type(result: Result<Map<String, Value>, CodecError>) -> String {
        match result {
            Err(CodecError::UnsupportedPickle { python_type }) => python_type,
            other => panic!("expected UnsupportedPickle, got {other:?}"),
        }
    }

    fn is_invalid(result: Result<Map<String, Value>, CodecError>) -> bool {
        matches!(result, Err(CodecError::InvalidPickle(_)))
    }

    #[test]
    fn simple_dict_matches_django_compat_doc() {
        let expected = hex("80 05 95 10 00 00 00 00 00 00 00 7d 94 8c 03 66 6f 6f 94 8c 03 62 61 72 94 73 2e");
        let map = obj(json!({"foo": "bar"}));
        assert_eq!(to_pickle(&map, 5).unwrap(), expected);
        assert_eq!(load(&expected).unwrap(), map);
        let mut p4 = expected.clone();
        p4[1] = 4;
        assert_eq!(to_pickle(&map, 4).unwrap(), p4);
    }

    #[test]
    fn other_protocols_are_refused_when_writing() {
        let map = obj(json!({}));
        for protocol in [0, 1, 2, 3, 6] {
            assert!(matches!(to_pickle(&map, protocol), Err(CodecError::Unencodable(_))));
        }
    }

    #[test]
    fn encode_long_matches_python_doctests() {
        let cases: &[(&str, &[u8])] = &[
            ("0", b""),
            ("255", b"\xff\x00"),
            ("32767", b"\xff\x7f"),
            ("-256", b"\x00\xff"),
            ("-32768", b"\x00\x80"),
            ("-128", b"\x80"),
            ("127", b"\x7f"),
            ("-1", b"\xff"),
            ("-129", b"\x7f\xff"),
            ("128", b"\x80\x00"),
        ];
        for (text, expected) in cases {
            let (negative, digits) = match text.strip_prefix('-') {
                Some(d) => (true, d),
                None => (false, *text),
            };
            assert_eq!(encode_long(negative, &decimal_to_le_bytes(digits)), *expected, "{text}");
            if !expected.is_empty() {
                assert_eq!(decode_long(expected).unwrap(), *text);
            }
        }
        // Round trip of big values through both conversions.
        for text in ["18446744073709551616", "-18446744073709551617", "340282366920938463463374607431768211455"] {
            let (negative, digits) = match text.strip_prefix('-') {
                Some(d) => (true, d),
                None => (false, text),
            };
            assert_eq!(decode_long(&encode_long(negative, &decimal_to_le_bytes(digits))).unwrap(), text);
        }
        assert_eq!(decode_long(&[0x00, 0x00]).unwrap(), "0");
    }

    #[test]
    fn json_loads_sharing_is_mirrored() {
        // Python: pickle.dumps(json.loads('{"x":{"key":"key","k2":"\u00e9"},"y":{"key":"key","k2":"a"},"key":""}'), 5)
        let map: Map<String, Value> =
            serde_json::from_str(r#"{"x":{"key":"key","k2":"é"},"y":{"key":"key","k2":"a"},"key":""}"#).unwrap();
        let expected = hex(
            "8005953e000000000000007d94288c0178947d94288c036b6579948c036b6579948c026b32948c02c3a994758c0179947d9428\
             68038c036b65799468058c0161947568038c0094752e",
        );
        let out = to_pickle(&map, 5).unwrap();
        assert_eq!(out, expected);
        // Keys "key" (memo 3) and "k2" (memo 5) are referenced again; the value "key" is written each time (twice, plus the first key).
        assert_eq!(out.windows(2).filter(|w| *w == [BINGET, 3]).count(), 2);
        assert_eq!(out.windows(2).filter(|w| *w == [BINGET, 5]).count(), 1);
        assert_eq!(out.windows(5).filter(|w| *w == b"\x8c\x03key").count(), 3);
        assert_eq!(load(&out).unwrap(), map);
    }

    #[test]
    fn reads_every_supported_opcode() {
        // Protocol 0 text opcodes: MARK DICT, UNICODE with escapes, INT, LONG, FLOAT, PUT/GET, LIST, TUPLE.
        let p0 = b"(dp0\nVk\\u00e9y\np1\n(lp2\nI1\naI01\naI-7\naL123456789012345678901234567890L\naF1.5\nag1\na(I1\nI2\ntp3\naNas.";
        let map = load(p0).unwrap();
        assert_eq!(
            Value::Object(map),
            serde_json::from_str::<Value>(r#"{"kéy":[1,true,-7,123456789012345678901234567890,1.5,"kéy",[1,2],null]}"#)
                .unwrap()
        );
        // Binary opcodes: TUPLE1-3, EMPTY_TUPLE, POP, POP_MARK, DUP, LONG4, BINUNICODE8, NEWFALSE, BINGET.
        let mut p = vec![PROTO, 4, EMPTY_DICT, MEMOIZE, MARK];
        p.extend_from_slice(b"\x8c\x01a");
        p.extend_from_slice(&[BININT1, 1, TUPLE1]);
        p.extend_from_slice(b"\x8c\x01b");
        p.extend_from_slice(&[BININT1, 1, BININT2, 2, 0, TUPLE2]);
        p.extend_from_slice(b"\x8c\x01c");
        p.extend_from_slice(&[NONE, NEWTRUE, NEWFALSE, TUPLE3]);
        p.extend_from_slice(b"\x8c\x01d");
        p.push(EMPTY_TUPLE);
        p.extend_from_slice(&[LONG4, 2, 0, 0, 0, 0x00, 0x80]); // -32768
        p.push(POP);
        p.extend_from_slice(&[MARK, NONE, NONE, POP_MARK]);
        p.extend_from_slice(b"\x8c\x01e");
        p.extend_from_slice(&[BINUNICODE8, 2, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(b"hi");
        p.extend_from_slice(&[DUP, POP]);
        p.extend_from_slice(b"\x8c\x01f");
        p.extend_from_slice(&[LONG1, 2, 0x00, 0x80]); // -32768
        p.extend_from_slice(&[SETITEMS, STOP]);
        let map = load(&p).unwrap();
        assert_eq!(
            Value::Object(map),
            json!({"a": [1], "b": [1, 2], "c": [null, true, false], "d": [], "e": "hi", "f": -32768})
        );
    }

    /// `pickle.dumps(json.loads('{"n":NaN,"i":Infinity,"m":-Infinity,"x":[1.5,NaN]}'), 5)` and the same with
    /// protocol 0, made by CPython 3.11.
    const NON_FINITE_P5: &str = "80059546000000000000007d94288c016e94477ff80000000000008c016994477ff000000000\
        00008c016d9447fff00000000000008c0178945d9428473ff8000000000000477ff800000000000065752e";
    const NON_FINITE_P0: &[u8] = b"(dp0\nVn\np1\nFnan\nsVi\np2\nFinf\nsVm\np3\nF-inf\nsVx\np4\n(lp5\nF1.5\naFnan\nas.";

    #[test]
    fn nan_and_infinity_round_trip_like_python() {
        let json = br#"{"n":NaN,"i":Infinity,"m":-Infinity,"x":[1.5,NaN]}"#;
        let map = crate::codec::json::from_python_json(json).unwrap();
        assert_eq!(to_pickle(&map, 5).unwrap(), hex(NON_FINITE_P5));
        for pickle in [hex(NON_FINITE_P5), NON_FINITE_P0.to_vec()] {
            let read = load(&pickle).unwrap();
            assert_eq!(crate::codec::json::object_to_python_json(&read).as_bytes(), json);
        }
        for (x, literal) in [(f64::NAN, "NaN"), (f64::INFINITY, "Infinity"), (f64::NEG_INFINITY, "-Infinity")] {
            let mut p = vec![PROTO, 4, EMPTY_DICT, SHORT_BINUNICODE, 1, b'x', BINFLOAT];
            p.extend_from_slice(&x.to_be_bytes());
            p.extend_from_slice(&[SETITEM, STOP]);
            assert_eq!(crate::codec::json::object_to_python_json(&load(&p).unwrap()), format!(r#"{{"x":{literal}}}"#));
        }
    }

    #[test]
    fn truncated_pickles_are_errors() {
        let full = to_pickle(&obj(json!({"foo": "bar", "n": [1, 2.5, 70000, 12345678901234567890u64]})), 5).unwrap();
        for len in 0..full.len() {
            let result = load(&full[..len]);
            assert!(is_invalid(result), "prefix of {len} bytes");
        }
        assert!(load(&full).is_ok());
    }

    #[test]
    fn memo_reference_out_of_range() {
        assert!(is_invalid(load(&[PROTO, 4, EMPTY_DICT, MEMOIZE, BINGET, 1, STOP])));
        assert!(is_invalid(load(&[PROTO, 4, EMPTY_DICT, LONG_BINGET, 0, 0, 0, 0x80, STOP])));
        assert!(is_invalid(load(b"(dg7\n.")));
        // In range works.
        assert!(load(&[PROTO, 4, EMPTY_DICT, MEMOIZE, BINGET, 0, POP, STOP]).is_ok());
    }

    #[test]
    fn huge_length_prefixes_on_tiny_inputs() {
        let mut cases: Vec<Vec<u8>> = Vec::new();
        cases.push(vec![PROTO, 4, BINUNICODE, 0xff, 0xff, 0xff, 0xff, b'a']);
        cases.push(vec![PROTO, 4, BINUNICODE8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, b'a']);
        cases.push(vec![PROTO, 4, BINUNICODE8, 0, 0, 0, 0, 0, 0, 0, 0x80]);
        cases.push(vec![PROTO, 4, FRAME, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, EMPTY_DICT, STOP]);
        cases.push(vec![PROTO, 4, LONG4, 0xff, 0xff, 0xff, 0x7f, 1]);
        cases.push(vec![PROTO, 4, LONG4, 0xff, 0xff, 0xff, 0xff, 1]);
        cases.push(vec![PROTO, 4, SHORT_BINUNICODE, 200, b'a']);
        cases.push(vec![PROTO, 4, LONG1, 200, 1]);
        for case in cases {
            assert!(is_invalid(load(&case)), "{case:?}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let depth = 10_000;
        let mut p = vec![PROTO, 4, EMPTY_DICT, SHORT_BINUNICODE, 1, b'a'];
        p.extend(std::iter::repeat_n(EMPTY_LIST, depth));
        p.extend(std::iter::repeat_n(APPEND, depth - 1));
        p.extend_from_slice(&[SETITEM, STOP]);
        assert!(is_invalid(load(&p)));

        // {"k": {"k": ...}}: push d0 k d1 k d2 ..., then SETITEM repeatedly from the innermost.
        let mut p = vec![PROTO, 4, EMPTY_DICT];
        for _ in 1..depth {
            p.extend_from_slice(&[SHORT_BINUNICODE, 1, b'k', EMPTY_DICT]);
        }
        p.extend(std::iter::repeat_n(SETITEM, depth - 1));
        p.push(STOP);
        assert!(is_invalid(load(&p)));

        // Exactly at the limit works.
        let limits = PickleLimits { max_depth: 5, ..PickleLimits::default() };
        let map = obj(json!({"a": [[[["x"]]]]}));
        let bytes = to_pickle(&map, 4).unwrap();
        assert_eq!(from_pickle(&bytes, &limits).unwrap(), map);
        let limits = PickleLimits { max_depth: 4, ..PickleLimits::default() };
        assert!(matches!(from_pickle(&bytes, &limits), Err(CodecError::InvalidPickle(_))));
    }

    #[test]
    fn deep_values_are_refused_when_writing() {
        let mut value = json!(1);
        for _ in 0..1100 {
            value = Value::Array(vec![value]);
        }
        let mut map = Map::new();
        map.insert("deep".to_owned(), value);
        assert!(matches!(to_pickle(&map, 5), Err(CodecError::Unencodable(_))));
    }

    #[test]
    fn globals_and_calls_are_never_executed() {
        // pickle.dumps({"when": datetime.datetime(2030, 1, 2)}, 2) starts with GLOBAL 'datetime datetime'.
        let p2 = b"\x80\x02}q\x00X\x04\x00\x00\x00whenq\x01cdatetime\ndatetime\nq\x02C\n\x07\xee\x01\x02\x00\x00\x00\x00\x00\x00q\x03\x85q\x04Rq\x05s.";
        assert_eq!(unsupported_type(load(p2)), "datetime.datetime");
        // Protocol 4: STACK_GLOBAL with module and name from the stack.
        let p4 = b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x04when\x94\x8c\x08datetime\x94\x8c\x08datetime\x94\x93\x94C\n\x07\xee\x01\x02\x00\x00\x00\x00\x00\x00\x94\x85\x94R\x94s.";
        assert_eq!(unsupported_type(load(p4)), "datetime.datetime");
        assert_eq!(unsupported_type(load(b"(dVx\ni__main__\nPoint\n(s.")), "__main__.Point");
        assert_eq!(unsupported_type(load(b"\x80\x02cbuiltins\nset\n]\x85R.")), "set");
        assert_eq!(unsupported_type(load(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00a.")), "bytes");
        assert!(unsupported_type(load(&[PROTO, 4, EMPTY_DICT, NONE, EMPTY_TUPLE, REDUCE, STOP])).contains("REDUCE"));
        assert!(unsupported_type(load(&[PROTO, 4, EMPTY_DICT, NONE, BUILD, STOP])).contains("BUILD"));
        assert!(unsupported_type(load(&[PROTO, 4, NONE, EMPTY_TUPLE, NEWOBJ, STOP])).contains("NEWOBJ"));
        assert!(unsupported_type(load(&[PROTO, 4, NONE, EMPTY_TUPLE, EMPTY_DICT, NEWOBJ_EX])).contains("NEWOBJ_EX"));
        assert!(unsupported_type(load(&[PROTO, 4, MARK, NONE, OBJ])).contains("OBJ"));
        assert_eq!(unsupported_type(load(b"\x80\x04}\x94(\x8c\x01xPabc\nu.")), "persistent id");
        assert_eq!(unsupported_type(load(&[PROTO, 4, NONE, BINPERSID])), "persistent id");
        for ext in [[EXT1, 1, 0, 0], [EXT2, 1, 0, 0], [EXT4, 1, 0, 0]] {
            assert!(unsupported_type(load(&[&[PROTO, 4][..], &ext[..]].concat())).contains("extension"));
        }
        // STACK_GLOBAL without strings is malformed.
        assert!(is_invalid(load(&[PROTO, 4, NONE, NONE, STACK_GLOBAL])));
    }

    #[test]
    fn bytes_sets_and_buffers_are_unsupported() {
        assert_eq!(unsupported_type(load(&[PROTO, 4, EMPTY_DICT, SHORT_BINBYTES, 1, b'a'])), "bytes");
        assert_eq!(unsupported_type(load(&[PROTO, 4, BINBYTES, 1, 0, 0, 0, b'a'])), "bytes");
        assert_eq!(unsupported_type(load(&[PROTO, 4, BINBYTES8, 1, 0, 0, 0, 0, 0, 0, 0, b'a'])), "bytes");
        assert_eq!(unsupported_type(load(&[PROTO, 5, BYTEARRAY8, 1, 0, 0, 0, 0, 0, 0, 0, b'a'])), "bytearray");
        assert_eq!(unsupported_type(load(&[PROTO, 4, EMPTY_SET, MEMOIZE, MARK, BININT1, 1, ADDITEMS])), "set");
        assert_eq!(unsupported_type(load(&[PROTO, 4, MARK, BININT1, 1, FROZENSET])), "frozenset");
        assert!(unsupported_type(load(&[PROTO, 5, NEXT_BUFFER])).contains("PickleBuffer"));
        assert!(unsupported_type(load(&[PROTO, 5, NONE, READONLY_BUFFER])).contains("PickleBuffer"));
        assert!(unsupported_type(load(b"\x80\x02}U\x01as.")).contains("Python 2"));
        assert!(unsupported_type(load(b"\x80\x02}T\x01\x00\x00\x00as.")).contains("Python 2"));
        assert!(unsupported_type(load(b"(dS'a'\n")).contains("Python 2"));
    }

    #[test]
    fn dict_keys_must_be_strings() {
        assert_eq!(
            unsupported_type(load(&[PROTO, 4, EMPTY_DICT, BININT1, 1, NONE, SETITEM, STOP])),
            "dict key of type int"
        );
        assert_eq!(
            unsupported_type(load(&[PROTO, 4, EMPTY_DICT, NONE, NONE, SETITEM, STOP])),
            "dict key of type NoneType"
        );
        assert_eq!(
            unsupported_type(load(&[PROTO, 4, EMPTY_DICT, MARK, EMPTY_TUPLE, NONE, SETITEMS, STOP])),
            "dict key of type tuple"
        );
        assert_eq!(
            unsupported_type(load(&[PROTO, 4, EMPTY_DICT, NEWTRUE, NONE, SETITEM, STOP])),
            "dict key of type bool"
        );
    }

    #[test]
    fn results_must_be_dicts() {
        for p in [&[PROTO, 4, EMPTY_LIST, STOP][..], &[PROTO, 4, NONE, STOP], &[PROTO, 4, BININT1, 5, STOP], b"Vx\n."] {
            assert!(matches!(load(p), Err(CodecError::NotAnObject)), "{p:?}");
        }
    }

    #[test]
    fn malformed_structure_is_an_error() {
        let cases: &[&[u8]] = &[
            &[PROTO, 9, EMPTY_DICT, STOP],                       // unknown protocol
            &[PROTO, 4, 0xff],                                   // unknown opcode
            &[PROTO, 4, STOP],                                   // empty stack
            &[PROTO, 4, MEMOIZE],                                // nothing to memoize
            &[PROTO, 4, EMPTY_DICT, SETITEMS],                   // no MARK
            &[PROTO, 4, EMPTY_DICT, APPEND],                     // underflow
            &[PROTO, 4, EMPTY_DICT, NONE, APPEND, STOP],         // append to a dict
            &[PROTO, 4, EMPTY_LIST, NONE, NONE, SETITEM, STOP],  // setitem on a list
            &[PROTO, 4, EMPTY_DICT, MARK, NONE, SETITEMS, STOP], // odd SETITEMS
            &[PROTO, 4, EMPTY_DICT, MARK, STOP],                 // STOP sees only the items above the mark
            &[PROTO, 4, EMPTY_DICT, MARK, MEMOIZE],              // MEMOIZE sees only the items above the mark
            &[PROTO, 4, EMPTY_DICT, MARK, TUPLE1],               // TUPLE1 too
            &[PROTO, 4, EMPTY_DICT, TUPLE2],                     // underflow
            &[PROTO, 4, EMPTY_TUPLE, NONE, APPEND, STOP],        // tuples are immutable
            &[PROTO, 4, SHORT_BINUNICODE, 1, 0xff],              // invalid UTF-8
            &[PROTO, 4, LONG4, 0xff, 0xff, 0xff, 0xff],          // negative length
            b"(dI1x\n",                                          // bad INT
            b"(dF1.x\n",                                         // bad FLOAT
            b"(dp-1\n",                                          // bad PUT
            b"(dVa\\u00z\n",                                     // bad escape
        ];
        for case in cases {
            assert!(is_invalid(load(case)), "{case:?}: {:?}", load(case));
        }
        // A lone surrogate is a valid Python str that a Rust String cannot hold.
        assert_eq!(
            unsupported_type(load(&[PROTO, 4, SHORT_BINUNICODE, 3, 0xed, 0xa0, 0x80])),
            "str with lone surrogates"
        );
        assert_eq!(unsupported_type(load(b"Va\\ud800\n")), "str with lone surrogates");
    }

    #[test]
    fn recursive_containers_are_unsupported() {
        // l = []; l.append(l); pickle.dumps({"r": l}, 4)
        let p = [
            PROTO,
            4,
            EMPTY_DICT,
            MEMOIZE,
            SHORT_BINUNICODE,
            1,
            b'r',
            MEMOIZE,
            EMPTY_LIST,
            MEMOIZE,
            BINGET,
            2,
            APPEND,
            SETITEM,
            STOP,
        ];
        assert!(unsupported_type(load(&p)).starts_with("recursive list"));
        // d = {}; d["d"] = d
        let p = [PROTO, 4, EMPTY_DICT, MEMOIZE, SHORT_BINUNICODE, 1, b'd', BINGET, 0, SETITEM, STOP];
        assert!(unsupported_type(load(&p)).starts_with("recursive dict"));
    }

    #[test]
    fn shared_containers_see_their_final_items() {
        // l = [1]; pickle.dumps({"a": l, "b": l}) references the list with BINGET after it was filled.
        let mut p = vec![PROTO, 4, EMPTY_DICT, MEMOIZE, MARK, SHORT_BINUNICODE, 1, b'a', MEMOIZE];
        p.extend_from_slice(&[EMPTY_LIST, MEMOIZE, BININT1, 1, APPEND]);
        p.extend_from_slice(&[SHORT_BINUNICODE, 1, b'b', MEMOIZE, BINGET, 2, SETITEMS, STOP]);
        assert_eq!(Value::Object(load(&p).unwrap()), json!({"a": [1], "b": [1]}));
        // A list referenced before it is filled still shows its final items, as in Python.
        let mut p = vec![PROTO, 4, EMPTY_DICT, MEMOIZE, SHORT_BINUNICODE, 1, b'a', EMPTY_LIST, MEMOIZE];
        p.extend_from_slice(&[SETITEM, SHORT_BINUNICODE, 1, b'b', BINGET, 1, SETITEM]);
        p.extend_from_slice(&[BINGET, 1, BININT1, 7, APPEND, POP, STOP]);
        assert_eq!(Value::Object(load(&p).unwrap()), json!({"a": [7], "b": [7]}));
    }

    #[test]
    fn billion_laughs_is_bounded() {
        // A list of 100 strings of 1000 bytes, then lists of 100 references to the previous list, 4 levels:
        // 10^8 * 1000 bytes if expanded.
        let mut p = vec![PROTO, 4, EMPTY_DICT, MEMOIZE, SHORT_BINUNICODE, 1, b'x', MEMOIZE];
        p.extend_from_slice(&[EMPTY_LIST, MEMOIZE, MARK]);
        p.extend_from_slice(&[BINUNICODE, 0xe8, 0x03, 0, 0]);
        p.extend(std::iter::repeat_n(b'a', 1000));
        p.push(MEMOIZE);
        p.extend(std::iter::repeat_n([BINGET, 3], 99).flatten());
        p.extend_from_slice(&[APPENDS, POP]);
        let mut last = 2u8;
        for level in 0..4u8 {
            if level > 0 {
                p.push(POP); // the previous level stays reachable through the memo
            }
            p.extend_from_slice(&[EMPTY_LIST, MEMOIZE, MARK]);
            p.extend(std::iter::repeat_n([BINGET, last], 100).flatten());
            p.push(APPENDS);
            last = 4 + level;
        }
        p.extend_from_slice(&[SETITEM, STOP]);
        let err = load(&p).unwrap_err();
        assert!(matches!(err, CodecError::WorkLimit { what, .. } if what.contains("max_")), "{err:?}");
        // Pushing too many values is refused while parsing, too.
        let limits = PickleLimits { max_items: 50, ..PickleLimits::default() };
        assert!(matches!(from_pickle(&p, &limits), Err(CodecError::WorkLimit { .. })));
    }

    #[test]
    fn limits_are_enforced() {
        let map = obj(json!({"a": "x".repeat(100), "b": [1, 2, 3]}));
        let bytes = to_pickle(&map, 5).unwrap();
        let tight = |f: fn(&mut PickleLimits)| {
            let mut limits = PickleLimits::default();
            f(&mut limits);
            from_pickle(&bytes, &limits)
        };
        assert!(matches!(tight(|l| l.max_input_bytes = 10), Err(CodecError::TooLarge { limit: 10 })));
        assert!(matches!(tight(|l| l.max_memo_entries = 2), Err(CodecError::InvalidPickle(_))));
        assert!(matches!(tight(|l| l.max_items = 5), Err(CodecError::WorkLimit { .. })));
        assert!(matches!(tight(|l| l.max_output_bytes = 50), Err(CodecError::WorkLimit { .. })));
        assert!(matches!(tight(|l| l.max_depth = 1), Err(CodecError::InvalidPickle(_))));
        assert_eq!(tight(|_| {}).unwrap(), map);
    }

    #[test]
    fn huge_ints_are_refused() {
        let digits = "9".repeat(MAX_INT_DIGITS + 1);
        let map: Map<String, Value> = serde_json::from_str(&format!("{{\"n\":{digits}}}")).unwrap();
        assert!(matches!(to_pickle(&map, 5), Err(CodecError::Unencodable(_))));
        let map: Map<String, Value> = serde_json::from_str(&format!("{{\"n\":{}}}", &digits[1..])).unwrap();
        let bytes = to_pickle(&map, 5).unwrap();
        assert_eq!(load(&bytes).unwrap(), map);
        // LONG4 of 4000 bytes: more than 4300 digits.
        let mut p = vec![PROTO, 4, LONG4, 0xa0, 0x0f, 0, 0];
        p.extend(std::iter::repeat_n(0x11, 4000));
        assert!(unsupported_type(load(&p)).contains("4300"));
        assert!(unsupported_type(load(format!("I{digits}\n.").as_bytes())).contains("4300"));
    }

    #[test]
    fn framing_and_batches_follow_cpython() {
        // A 70 000-byte string goes outside any frame; the 3-byte tail gets no FRAME header.
        let map = obj(json!({"k": "a".repeat(70_000)}));
        let out = to_pickle(&map, 4).unwrap();
        assert_eq!(&out[..17], b"\x80\x04\x95\x06\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01k\x94");
        assert_eq!(&out[17..22], b"Xp\x11\x01\x00");
        assert_eq!(&out[out.len() - 3..], b"\x94s.");
        // A dict of exactly 1000 items ends with an empty batch.
        let big: Map<String, Value> = (0..1000).map(|i| (format!("k{i}"), json!(i))).collect();
        let out = to_pickle(&big, 4).unwrap();
        assert_eq!(&out[out.len() - 4..], b"u(u.");
        assert_eq!(load(&out).unwrap(), big);
    }

    #[test]
    fn duplicate_keys_keep_first_position_and_last_value() {
        let p = b"\x80\x04}(\x8c\x01aK\x01\x8c\x01bK\x02\x8c\x01aK\x03u.";
        let map = load(p).unwrap();
        assert_eq!(serde_json::to_string(&map).unwrap(), r#"{"a":3,"b":2}"#);
    }
}
