//! The login-like session every benchmark stores. Free of sessionkit (only `rand` and `serde_json`), so that
//! `peer-app/`, the tower-sessions app outside the workspace, includes this very file and stores the same session.

use rand::distributions::{Alphanumeric, DistString};
use rand::Rng;
use serde_json::{json, Map, Value};

/// The key the cycle benchmark reads and increments.
pub const VISITS_KEY: &str = "visits";

/// A Django login session as `django.contrib.auth` and a small shop leave it: the three `_auth_user_*` keys, a
/// CSRF secret, a cart, the last visit and a visit counter. Hashes and tokens are random (they compress poorly),
/// the rest is typical text. About 300 bytes as compact JSON.
pub fn login_session(rng: &mut impl Rng, user_id: u64) -> Map<String, Value> {
    let user_hash: String = (0..64).map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)])).collect();
    let csrf_token = Alphanumeric.sample_string(rng, 64);
    let last_visit = format!(
        "2025-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
        rng.gen_range(1..=12),
        rng.gen_range(1..=28),
        rng.gen_range(0..24),
        rng.gen_range(0..60),
        rng.gen_range(0..60)
    );
    let value = json!({
        "_auth_user_id": user_id.to_string(),
        "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
        "_auth_user_hash": user_hash,
        "_csrftoken": csrf_token,
        "cart": {"1042": 2, "77": 1},
        "last_visit": last_visit,
        VISITS_KEY: rng.gen_range(1..100),
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
