//! django-redis cache values on arbitrary bytes, for every serializer and compressor (decompression with a
//! 1 MiB limit).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sessionkit::codec::django_cache::{CacheCompressor, CacheSerializer, CacheValueCodec};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let serializer = match selector % 3 {
        0 => CacheSerializer::DJANGO_REDIS_DEFAULT,
        1 => CacheSerializer::Json,
        _ => CacheSerializer::Msgpack,
    };
    let compressor = match (selector / 3) % 6 {
        0 => CacheCompressor::None,
        1 => CacheCompressor::Zlib,
        2 => CacheCompressor::Gzip,
        3 => CacheCompressor::Lz4,
        4 => CacheCompressor::Zstd,
        _ => CacheCompressor::Lzma,
    };
    let mut codec = CacheValueCodec::django_redis(serializer, compressor);
    codec.limits.max_inflated_bytes = 1 << 20;
    let _ = codec.decode(rest);
});
