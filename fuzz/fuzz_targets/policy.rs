//! Untrusted policy text (TOML and the embedded JSON form) through parsing and validation.
//! Invariant: no panic; a policy that validates round-trips through JSON unchanged.
#![no_main]

use gateway_core::config::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Policy::from_json(text);
    if let Ok((policy, file)) = Policy::from_toml(text) {
        let json = serde_json::to_string(&file).expect("serialise");
        assert_eq!(Policy::from_json(&json).expect("round trip"), policy);
    }
});
