//! The untrusted text the abuse-resistance features parse: a client address (`CF-Connecting-IP`,
//! or an exemption entry), RFC 3339 dates, the legacy API-key list and a presented key, the
//! admin API's revocation body, and a token's revocation check. Invariants: no panic; an
//! accepted date formats back to an HTTP date and round-trips through its seconds; a client key
//! never contains the counter-object name separator in its class part; a parsed revocation
//! request always yields an entry that expires after it was made.
#![no_main]

use gateway_core::api_key::ApiKeySet;
use gateway_core::client::{ClientClass, ClientKey, is_exempt};
use gateway_core::ip::IpBlock;
use gateway_core::config::Policy;
use gateway_core::revocation::{AdminRevocation, Caller, RevocationList};
use gateway_core::time::{UnixMillis, http_date, parse_rfc3339_utc};
use libfuzzer_sys::fuzz_target;

fn policy() -> &'static Policy {
    static POLICY: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();
    POLICY.get_or_init(|| {
        Policy::from_toml(include_str!("../../gateway.toml"))
            .expect("the committed policy")
            .0
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let policy = policy();

    // Client addresses and exemptions.
    let key = ClientKey::from_ip(Some(text), 64);
    assert!(key.object_name(ClientClass::Gateway).starts_with("ip1:*:"));
    if let Ok(block) = IpBlock::parse(text) {
        let _ = is_exempt(Some(text.split('/').next().unwrap_or_default()), &[block]);
    }

    // Dates.
    if let Some(secs) = parse_rfc3339_utc(text) {
        let formatted = http_date(secs);
        assert!(formatted.ends_with(" GMT") && formatted.len() == 29, "{formatted}");
    }

    // The API-key secret, and a presented key against the keys it lists.
    if let Ok(keys) = ApiKeySet::from_json(text, policy) {
        if let Some(settings) = policy.api_keys.as_ref() {
            let _ = keys.authenticate(text, settings, policy, UnixMillis(1_795_000_000_000));
        }
    }

    // The admin API's body, turned into an entry and checked against a caller.
    if let Ok(request) = serde_json::from_str::<AdminRevocation>(text) {
        if let (Ok(scope), Some(issuer)) = (request.scope(), policy.issuer(&request.issuer)) {
            let entry = request.entry(scope, issuer, 1_795_000_000, "fuzz".into(), None);
            assert!(entry.expires_at > entry.revoked_at);
            let mut list = RevocationList::default();
            let _ = list.add(entry, 1_795_000_000);
            let caller = Caller {
                sub: request.sub.clone().unwrap_or_default(),
                jti: request.jti.clone(),
                iat: Some(1_794_999_999),
            };
            assert!(list.check(&caller, 1_795_000_000).is_some());
        }
    }
});
