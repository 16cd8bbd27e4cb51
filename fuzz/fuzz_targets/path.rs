//! Untrusted request paths through normalisation and route matching, and untrusted URLs through
//! the request-URL split. Invariants: no panic; a normalised path normalises to itself; a path
//! that matches a route is one normalisation accepted; a split URL's path starts with `/` and
//! holds no `?` or `#`, its query no `#`, and the parts are the URL's own text.
#![no_main]

use std::sync::LazyLock;

use gateway_core::config::Policy;
use gateway_core::path::{normalise, split_request_url};
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
    if let Some(url) = split_request_url(raw) {
        assert!(url.path.starts_with('/') && !url.path.contains(['?', '#']));
        assert!(url.query.is_none_or(|q| !q.contains('#')));
        assert!(raw.starts_with(url.scheme) && raw.contains(url.path));
    }
    let Ok(path) = normalise(raw) else { return };
    let again = normalise(path.as_str()).expect("a normalised path is accepted");
    assert_eq!(again, path, "normalisation is idempotent");
    for method in ["GET", "POST", "DELETE", "TRACE"] {
        let _ = POLICY.routes.match_request(method, &path);
    }
});
