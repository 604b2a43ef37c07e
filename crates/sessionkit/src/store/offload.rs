//! Decoding stored values without stalling the async worker threads.
//!
//! Decoding is CPU work. A typical session decodes in microseconds, but a stored value may reach the decoders'
//! limits (16 MiB inflated, a pickle full of big ints or odd floats), which costs milliseconds, and whoever can
//! write the store (a Django app sharing the keys, say) decides what is there. Such a decode must not stall a
//! tokio worker and every request queued on it, while the common small decode must not pay a thread hop.
//!
//! So a value of at most [`WORKER_STORED_BYTES`] is first decoded on the calling task within tight limits
//! ([`WORKER_INFLATED_BYTES`] after decompression; for pickles [`WORKER_BIG_INT_BYTES`] of big ints,
//! [`WORKER_VALUES`] values and [`WORKER_OUTPUT_BYTES`] of result); a value that is larger, or that reaches one of
//! those limits ([`CodecError::TooLarge`], [`CodecError::WorkLimit`]), is decoded on tokio's blocking pool within
//! the decoder's full limits. A value whose decompressed size the decoder knows up front (the Redis `string` and
//! `hash` values say it) goes there directly when that size is over the limit. Measured (release build, this project's CI machine): the slowest decode the worker limits allow, a
//! pickle of a 1 KiB int and odd floats, took 300 µs; a typical 400-byte session takes a few µs.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::codec::{CodecError, DecodeLimits};
use crate::store::SignedSessionCodec;
use crate::StoreError;

/// Largest stored value decoded on the calling task.
pub(crate) const WORKER_STORED_BYTES: usize = 2 * 1024;
/// Largest decompressed value a decode on the calling task may produce.
pub(crate) const WORKER_INFLATED_BYTES: usize = 2 * 1024;
/// Most bytes of pickled big ints a decode on the calling task converts to decimal.
#[cfg(feature = "django-cache")]
pub(crate) const WORKER_BIG_INT_BYTES: usize = 1024;
/// Most values (and pickle marks) a decode on the calling task may build: a 2 KiB pickle of shared references
/// (`L1 = [s] * 500; [L1] * 500`) would otherwise expand to 250 000 values.
#[cfg(feature = "django-cache")]
pub(crate) const WORKER_VALUES: usize = 4096;
/// Most bytes of strings and numbers a decode on the calling task may produce (shared strings counted per copy).
#[cfg(feature = "django-cache")]
pub(crate) const WORKER_OUTPUT_BYTES: usize = 64 * 1024;

/// A decoder whose work can be bounded for a decode on an async worker thread.
pub(crate) trait BoundedDecode: Clone + Send + 'static {
    /// What a decode gives.
    type Output: Send + 'static;

    /// Decodes `bytes` within the decoder's own limits or, with `on_worker`, within the worker limits of this
    /// module (a value beyond them ends in [`CodecError::TooLarge`] or [`CodecError::WorkLimit`]).
    fn decode_bounded(&self, bytes: &[u8], on_worker: bool) -> Result<Self::Output, CodecError>;

    /// The size `bytes` will have once decompressed, when the format says so up front (else their own size).
    fn inflated_len(&self, bytes: &[u8]) -> usize {
        bytes.len()
    }
}

/// What a decode gave, and the bytes it decoded (handed back: the store keeps them as the session's version).
pub(crate) type Decoded<T> = (Result<T, CodecError>, Vec<u8>);

/// `decoder` on `bytes`: on the calling task when the value is small and within the worker limits, else on
/// tokio's blocking pool (or here, when no tokio runtime runs). `store` names the store in the error returned
/// when the runtime shuts down first.
pub(crate) async fn decode_off_worker<D: BoundedDecode>(
    store: &str,
    decoder: &D,
    bytes: Vec<u8>,
) -> Result<Decoded<D::Output>, StoreError> {
    if bytes.len() <= WORKER_STORED_BYTES && decoder.inflated_len(&bytes) <= WORKER_INFLATED_BYTES {
        match decoder.decode_bounded(&bytes, true) {
            Err(CodecError::TooLarge { .. } | CodecError::WorkLimit { .. }) => {}
            done => return Ok((done, bytes)),
        }
    }
    let decoder = decoder.clone();
    run_blocking(store, move || (decoder.decode_bounded(&bytes, false), bytes)).await
}

/// Runs `work` (CPU work over many stored values, e.g. decoding a page of sessions) on tokio's blocking pool, or here
/// when no tokio runtime runs. `store` names the store in the error returned when the runtime shuts down first.
pub(crate) async fn run_blocking<T: Send + 'static>(
    store: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return Ok(work()) };
    match runtime.spawn_blocking(work).await {
        Ok(value) => Ok(value),
        // Decoders return errors, they do not panic; should one panic anyway, the panic goes on as it would have
        // on the calling task.
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => Err(StoreError::unavailable(store, err)),
    }
}

/// `limits` tightened to the worker limits when `on_worker`.
pub(crate) fn worker_limits(limits: &DecodeLimits, on_worker: bool) -> DecodeLimits {
    let mut limits = *limits;
    if on_worker {
        limits.max_inflated_bytes = limits.max_inflated_bytes.min(WORKER_INFLATED_BYTES);
    }
    limits
}

/// The signed tokens of the db, file and cached_db stores.
impl BoundedDecode for Arc<SignedSessionCodec> {
    type Output = Map<String, Value>;

    fn decode_bounded(&self, bytes: &[u8], on_worker: bool) -> Result<Self::Output, CodecError> {
        // A token is ASCII; anything else is as corrupt as any token that does not verify.
        let token = std::str::from_utf8(bytes).map_err(|_| CodecError::Malformed("the stored token is not text"))?;
        self.decode_within(token, &worker_limits(self.limits(), on_worker))
    }
}

/// The values of Django's cache backends (Redis `django-cache` layout).
#[cfg(feature = "django-cache")]
impl BoundedDecode for crate::codec::django_cache::CacheValueCodec {
    type Output = Map<String, Value>;

    fn decode_bounded(&self, bytes: &[u8], on_worker: bool) -> Result<Self::Output, CodecError> {
        let mut codec = *self;
        if on_worker {
            let pickle = &mut codec.limits.pickle;
            codec.limits.max_inflated_bytes = codec.limits.max_inflated_bytes.min(WORKER_INFLATED_BYTES);
            pickle.max_big_int_bytes = pickle.max_big_int_bytes.min(WORKER_BIG_INT_BYTES);
            pickle.max_items = pickle.max_items.min(WORKER_VALUES);
            pickle.max_output_bytes = pickle.max_output_bytes.min(WORKER_OUTPUT_BYTES);
        }
        codec.decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoder that says where it ran and refuses values over `worker_max` on the worker.
    #[derive(Clone)]
    struct WhereDecoded {
        worker_max: usize,
    }

    impl BoundedDecode for WhereDecoded {
        type Output = (usize, std::thread::ThreadId, bool);

        fn decode_bounded(&self, bytes: &[u8], on_worker: bool) -> Result<Self::Output, CodecError> {
            if on_worker && bytes.iter().filter(|b| **b == 1).count() > self.worker_max {
                return Err(CodecError::WorkLimit { what: "ones", limit: self.worker_max });
            }
            Ok((bytes.len(), std::thread::current().id(), on_worker))
        }
    }

    /// A 2 KiB pickle of shared references expands to 250 000 values: over the worker's limits, within the full
    /// ones, so it is decoded whole on the blocking pool.
    #[tokio::test(flavor = "current_thread")]
    async fn a_small_pickle_that_expands_is_decoded_off_the_worker() {
        let mut pickle = vec![0x80, 4, b'}', 0x94, 0x8c, 1, b'k', 0x94, 0x8c, 1, b's', 0x94, b'0'];
        for memo in [2u8, 3] {
            pickle.extend_from_slice(&[b']', 0x94, b'(']);
            pickle.extend(std::iter::repeat_n([b'h', memo], 500).flatten());
            pickle.push(b'e');
            if memo == 2 {
                pickle.push(b'0'); // the first list stays reachable through the memo
            }
        }
        pickle.extend_from_slice(b"s.");
        assert!(pickle.len() <= WORKER_STORED_BYTES, "{}", pickle.len());
        let codec = crate::codec::django_cache::CacheValueCodec::django_redis_cache();
        assert!(matches!(codec.decode_bounded(&pickle, true), Err(CodecError::WorkLimit { .. })));
        let here = std::thread::current().id();
        let decoded = decode_off_worker("t", &WhereDecoded { worker_max: 0 }, vec![0]).await.unwrap().0.unwrap();
        assert_eq!(decoded.1, here);
        let data = decode_off_worker("t", &codec, pickle).await.unwrap().0.unwrap();
        let outer = data["k"].as_array().unwrap();
        assert_eq!((outer.len(), outer[0].as_array().unwrap().len()), (500, 500));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn small_values_decode_here_and_the_rest_on_the_blocking_pool() {
        let here = std::thread::current().id();
        let decoder = WhereDecoded { worker_max: 3 };
        let (small, bytes) = decode_off_worker("t", &decoder, vec![0; WORKER_STORED_BYTES]).await.unwrap();
        assert_eq!(small.unwrap(), (WORKER_STORED_BYTES, here, true));
        assert_eq!(bytes.len(), WORKER_STORED_BYTES, "the bytes come back");
        let (large, bytes) = decode_off_worker("t", &decoder, vec![0; WORKER_STORED_BYTES + 1]).await.unwrap();
        let large = large.unwrap();
        assert_eq!((large.0, large.2, bytes.len()), (WORKER_STORED_BYTES + 1, false, WORKER_STORED_BYTES + 1));
        assert_ne!(large.1, here, "a large value is decoded on another thread");
        // Small, but over a worker limit: decoded again, in full, elsewhere.
        let costly = decode_off_worker("t", &decoder, vec![1; 10]).await.unwrap().0.unwrap();
        assert_eq!((costly.0, costly.2), (10, false));
        assert_ne!(costly.1, here);
    }
}
