//! Times the decoders on given files: `cargo run --release --example time_decoders -- pickle FILE...`.
use std::time::Instant;

use sessionkit::codec::object_to_python_json;
use sessionkit::codec::pickle::{from_pickle, to_pickle, PickleLimits};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    for path in &args[1..] {
        let data = std::fs::read(path).expect("readable file");
        let start = Instant::now();
        let result = from_pickle(&data, &PickleLimits::default());
        let decode = start.elapsed();
        let (items, json_len, repickle) = match &result {
            Ok(map) => {
                let t = Instant::now();
                let json = object_to_python_json(map);
                let p = to_pickle(map, 5).map(|p| p.len());
                (map.len(), json.len(), format!("{p:?} in {:?}", t.elapsed()))
            }
            Err(e) => (0, 0, format!("{e}")),
        };
        println!("{path}: decode {decode:?}, keys {items}, json {json_len} bytes, {repickle}");
    }
}
