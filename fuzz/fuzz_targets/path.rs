//! Untrusted request paths through normalisation and route matching. Invariants: no panic;
//! a normalised path normalises to itself; a path that matches a route is one normalisation
//! accepted.
#![no_main]

use std::sync::LazyLock;

use gateway_core::config::Policy;
use gateway_core::path::normalise;
use libfuzzer_sys::fuzz_target;

static POLICY: LazyLock<Policy> = LazyLock::new(|| {
    Policy::from_toml(include_str!("../../gateway.toml"))
        .expect("policy")
        .0
});

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = normalise(raw) else { return };
    let again = normalise(path.as_str()).expect("a normalised path is accepted");
    assert_eq!(again, path, "normalisation is idempotent");
    for method in ["GET", "POST", "DELETE", "TRACE"] {
        let _ = POLICY.routes.match_request(method, &path);
    }
});
