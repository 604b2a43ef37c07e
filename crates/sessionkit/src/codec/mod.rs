//! Django's wire formats: signing (`django.core.signing`), Python-compatible JSON and base62.
//!
//! Everything here is a pure function of its inputs (the current time is always passed in), so the byte-level
//! behaviour can be tested against tokens made by Django itself.
//!
//! - [`base62`]: the timestamp encoding of `TimestampSigner`.
//! - [`json`]: `json.dumps(obj, separators=(",", ":"))` byte for byte, and Django's latin-1 + `json.loads` reader.
//! - [`signing`]: [`Signer`], i.e. `TimestampSigner.sign_object` / `unsign_object` (what `signing.dumps` and
//!   `signing.loads` do), with Django's key derivation and secret fallbacks.
//! - [`legacy`]: [`decode_legacy`], the read-only decoder of the session format of Django before 3.1.
//! - [`pickle`] and `django_cache`: the values Django's cache backends store.

pub mod base62;
pub mod django_cache;
pub mod json;
pub mod legacy;
pub mod pickle;
pub mod signing;

pub use json::{from_python_json, number_as_f64, object_to_python_json, python_float_repr, to_python_json};
pub use legacy::decode_legacy;
pub use signing::{Signer, SESSION_SALT, SIGNED_COOKIES_SALT};

/// Why a token or payload could not be decoded.
///
/// Django turns every one of these into an empty session; callers usually do the same and log the reason
/// (a [`CodecError::BadSignature`] is what Django reports as "Session data corrupted").
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The signature matched neither the secret key nor any fallback key (or was not a signature at all).
    #[error("the signature does not match the secret key or any fallback key")]
    BadSignature,

    /// The signature is valid but older than the allowed maximum age.
    #[error("the signature has expired: it is {age_seconds} seconds old, the limit is {max_age_seconds} seconds")]
    SignatureExpired {
        /// Seconds between the signing time and now.
        age_seconds: i64,
        /// The maximum age that was allowed.
        max_age_seconds: i64,
    },

    /// The input does not have the expected shape (missing separator, invalid base62 timestamp, ...).
    #[error("malformed token: {0}")]
    Malformed(&'static str),

    /// The payload is not valid URL-safe base64.
    #[error("the payload is not valid URL-safe base64")]
    Base64,

    /// The payload is marked as compressed but is not a complete, valid zlib stream.
    #[error("the compressed payload could not be inflated: {0}")]
    Inflate(String),

    /// The token, or the payload after decompression, is larger than the configured limit.
    #[error("the data is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes, that was exceeded.
        limit: usize,
    },

    /// The payload is not valid JSON (this includes nesting deeper than 128 levels).
    #[error("the payload is not valid JSON: {0}")]
    Json(String),

    /// The data decodes (as JSON, pickle or msgpack) to something other than a dict / JSON object, so it cannot
    /// be a session.
    #[error("the data decodes to a value that is not a dict (a JSON object), so it cannot be a session")]
    NotAnObject,

    /// The pickle holds a value that a session (a JSON-shaped dict) cannot hold, such as a `datetime.datetime`,
    /// a `set` or `bytes`. Nothing in the pickle is ever imported or executed; `python_type` names the Python
    /// type when the pickle tells it (`module.name` of a class), else a description.
    #[error("the pickle holds a value of type {python_type}, which a session cannot hold")]
    UnsupportedPickle {
        /// The Python type, e.g. `datetime.datetime`, `set`, `bytes`, `dict key of type int`.
        python_type: String,
    },

    /// Decoding would take more work than allowed, e.g. more big-int bytes than
    /// [`pickle::PickleLimits::max_big_int_bytes`] (their conversion to decimal costs quadratic time).
    #[error("decoding stopped at the limit of {limit} {what}")]
    WorkLimit {
        /// What was counted, e.g. `bytes of big ints (max_big_int_bytes)`.
        what: &'static str,
        /// The limit that was reached.
        limit: usize,
    },

    /// The data is not a valid pickle (truncated, unknown opcode, memo reference out of range, ...) or exceeds
    /// one of the [`pickle::PickleLimits`].
    #[error("invalid pickle: {0}")]
    InvalidPickle(String),

    /// The data is not valid msgpack, or holds a value a session cannot hold (bytes, extension types, ...).
    #[error("invalid msgpack: {0}")]
    Msgpack(String),

    /// The value cannot be written in the requested format (an unsupported pickle protocol, an integer too
    /// large for msgpack, nesting too deep, ...).
    #[error("the value cannot be encoded: {0}")]
    Unencodable(String),
}

/// Size limits applied while decoding untrusted tokens.
///
/// A token is only decompressed after its signature has been verified, but a leaked or misused secret must
/// still not let a token exhaust memory:
/// - a token (or [legacy] session data) longer than `max_token_bytes` (default 1 MiB) is rejected with
///   [`CodecError::TooLarge`] before any work is done;
/// - a zip bomb is cut off as soon as its inflated output exceeds `max_inflated_bytes` (default 16 MiB)
///   with [`CodecError::TooLarge`]: inflation streams into a buffer that never grows past the limit, so a
///   token that would inflate to gigabytes costs at most 16 MiB of memory and the time to inflate 16 MiB;
/// - JSON nesting depth is limited to 127 levels (serde_json's recursion limit of 128, which the fallback
///   parser for `NaN`/`Infinity` applies too), so deeply nested payloads fail with [`CodecError::Json`]
///   instead of overflowing the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest token accepted, in bytes. Default: 1 MiB.
    pub max_token_bytes: usize,
    /// Largest decompressed payload accepted, in bytes. Default: 16 MiB.
    pub max_inflated_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits { max_token_bytes: 1024 * 1024, max_inflated_bytes: 16 * 1024 * 1024 }
    }
}
