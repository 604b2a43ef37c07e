//! `from_pickle` on arbitrary bytes (with limits small enough to hit them); a decoded session must pickle
//! again and read back to the same session.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sessionkit::codec::object_to_python_json;
use sessionkit::codec::pickle::{from_pickle, to_pickle, PickleLimits};

fuzz_target!(|data: &[u8]| {
    let limits = PickleLimits { max_items: 100_000, max_output_bytes: 1 << 22, ..PickleLimits::default() };
    if let Ok(map) = from_pickle(data, &limits) {
        if let Ok(again) = to_pickle(&map, 5) {
            let back = from_pickle(&again, &PickleLimits::default()).expect("our own pickle reads back");
            assert_eq!(object_to_python_json(&back), object_to_python_json(&map));
        }
    }
});
