//! Decoding stored values without stalling the async worker threads.
//!
//! Decoding is CPU work. A typical session decodes in microseconds, but a stored value may reach the decoders'
//! limits (16 MiB inflated, a pickle full of big ints or odd floats), which costs milliseconds, and whoever can
//! write the store (a Django app sharing the keys, say) decides what is there. Such a decode must not stall a
//! tokio worker and every request queued on it, while the common small decode must not pay a thread hop.
//!
//! So a value of at most [`WORKER_STORED_BYTES`] is first decoded on the calling task within tight limits
//! ([`WORKER_INFLATED_BYTES`] after decompression, [`WORKER_BIG_INT_BYTES`] of pickled big ints); a value that is
//! larger, or that reaches one of those limits, is decoded on tokio's blocking pool within the decoder's full
//! limits. Measured (release build, this project's CI machine): the slowest decode the worker limits allow, a
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
pub(crate) const WORKER_BIG_INT_BYTES: usize = 1024;

/// A decoder whose work can be bounded for a decode on an async worker thread.
pub(crate) trait BoundedDecode: Clone + Send + 'static {
    /// What a decode gives.
    type Output: Send + 'static;

    /// Decodes `bytes` within the decoder's own limits or, with `on_worker`, within the worker limits of this
    /// module (a value beyond them ends in [`CodecError::TooLarge`] or [`CodecError::WorkLimit`]).
    fn decode_bounded(&self, bytes: &[u8], on_worker: bool) -> Result<Self::Output, CodecError>;
}

/// `decoder` on `bytes`: on the calling task when the value is small and within the worker limits, else on
/// tokio's blocking pool (or here, when no tokio runtime runs). `store` names the store in the error returned
/// when the runtime shuts down first.
pub(crate) async fn decode_off_worker<D: BoundedDecode>(
    store: &str,
    decoder: &D,
    bytes: Vec<u8>,
) -> Result<Result<D::Output, CodecError>, StoreError> {
    if bytes.len() <= WORKER_STORED_BYTES {
        match decoder.decode_bounded(&bytes, true) {
            Err(CodecError::TooLarge { .. } | CodecError::WorkLimit { .. }) => {}
            done => return Ok(done),
        }
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return Ok(decoder.decode_bounded(&bytes, false)) };
    let decoder = decoder.clone();
    match runtime.spawn_blocking(move || decoder.decode_bounded(&bytes, false)).await {
        Ok(decoded) => Ok(decoded),
        // Decoders return errors, they do not panic; should one panic anyway, the panic goes on as it would
        // have on the calling task.
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
            codec.limits.max_inflated_bytes = codec.limits.max_inflated_bytes.min(WORKER_INFLATED_BYTES);
            codec.limits.pickle.max_big_int_bytes = codec.limits.pickle.max_big_int_bytes.min(WORKER_BIG_INT_BYTES);
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

    #[tokio::test(flavor = "current_thread")]
    async fn small_values_decode_here_and_the_rest_on_the_blocking_pool() {
        let here = std::thread::current().id();
        let decoder = WhereDecoded { worker_max: 3 };
        let small = decode_off_worker("t", &decoder, vec![0; WORKER_STORED_BYTES]).await.unwrap().unwrap();
        assert_eq!(small, (WORKER_STORED_BYTES, here, true));
        let large = decode_off_worker("t", &decoder, vec![0; WORKER_STORED_BYTES + 1]).await.unwrap().unwrap();
        assert_eq!((large.0, large.2), (WORKER_STORED_BYTES + 1, false));
        assert_ne!(large.1, here, "a large value is decoded on another thread");
        // Small, but over a worker limit: decoded again, in full, elsewhere.
        let costly = decode_off_worker("t", &decoder, vec![1; 10]).await.unwrap().unwrap();
        assert_eq!((costly.0, costly.2), (10, false));
        assert_ne!(costly.1, here);
    }
}
