//! Untrusted bytes as an `Authorization` header value through every pure authentication stage.
//! Invariant: no panic, and anything accepted was issued by the configured issuer for our
//! audience. The fuzzer cannot forge a signature: to reach the claim rules it stands in for the
//! Worker's verifier and answers every signature check `true` (`SignatureCheck::verdict`), so
//! acceptance here means the claim rules passed on whatever it built.
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
    let Ok(check) = parsed.signature_check(policy, env, String::new()) else {
        return;
    };
    let _ = (check.algorithm(), check.signing_input(), check.signature());
    let Ok(checked) = check.verdict(true) else {
        return;
    };
    if let Ok(claims) = validate_claims(&checked, policy, UnixMillis(1_800_000_000_000)) {
        assert_eq!(claims.issuer(), &issuer.name);
        assert!(!claims.subject().is_empty());
    }
});
