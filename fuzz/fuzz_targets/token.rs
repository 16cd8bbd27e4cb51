//! Untrusted bytes as an `Authorization` header value through every pure authentication stage.
//! Invariant: no panic, and anything accepted was issued by the configured issuer for our
//! audience (the fuzzer cannot forge a signature, so acceptance here means the claim rules
//! passed on whatever it built; the signature check is the Worker's).
#![no_main]

use std::sync::LazyLock;

use gateway_core::auth::{bearer_token, check_header, parse, validate_claims};
use gateway_core::config::Policy;
use gateway_core::env::Environment;
use gateway_core::time::UnixMillis;
use libfuzzer_sys::fuzz_target;

static SETUP: LazyLock<(Policy, Environment)> = LazyLock::new(|| {
    let (policy, _) = Policy::from_toml(include_str!("../../gateway.toml")).expect("policy");
    let issuers = r#"{"users": {"issuer": "https://issuer.example.com", "jwks_uri": "https://issuer.example.com/jwks"},
                      "machines": {"issuer": "https://machines.example.com", "jwks_uri": "https://machines.example.com/jwks"},
                      "internal": {"issuer": "urn:example:internal"}}"#;
    let env = Environment::from_vars(&policy, |name| match name {
        "ENVIRONMENT" => Some("test".to_owned()),
        "ORIGIN_URL" => Some("https://origin.example.com".to_owned()),
        "GATEWAY_ISSUERS" => Some(issuers.to_owned()),
        _ => None,
    })
    .expect("environment");
    (policy, env)
});

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let (policy, env) = &*SETUP;
    let Ok(token) = bearer_token(Some(header)) else {
        return;
    };
    let Ok(parsed) = parse(token) else { return };
    let Ok((issuer, _)) = parsed.issuer(policy, env) else {
        return;
    };
    if check_header(&parsed, issuer).is_err() {
        return;
    }
    let _ = parsed.key_id();
    let _ = (parsed.signing_input(), parsed.signature());
    if let Ok(claims) = validate_claims(&parsed, issuer, policy, UnixMillis(1_800_000_000_000)) {
        assert_eq!(claims.issuer, issuer.name);
        assert!(!claims.subject.is_empty());
    }
});
