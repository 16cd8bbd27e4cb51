//! The JWKS lifecycle end to end, on a stack of its own (it rotates and stops the issuer):
//! a new key is accepted without a restart, a removed key's tokens are refused once the JWKS
//! refreshes (even those already in the verified-token cache), and when the issuer is down the
//! cached keys keep working while an unknown key id is a 401, not a 5xx.

use std::time::{Duration, Instant};

use gateway_e2e::{Stack, TokenSpec};

use crate::Case;

pub(crate) const CASES: &[Case] = &[
    (
        "rotation::keys_rotate_and_outlive_the_issuer",
        keys_rotate_and_outlive_the_issuer,
    ),
    (
        "rotation::a_real_provider_rolls_its_keys_over",
        a_real_provider_rolls_its_keys_over,
    ),
    (
        "rotation::concurrent_unknown_kids_share_one_jwks_fetch",
        concurrent_unknown_kids_share_one_jwks_fetch,
    ),
    (
        "rotation::new_material_under_an_old_kid_drops_cached_tokens",
        new_material_under_an_old_kid_drops_cached_tokens,
    ),
];

/// The verified-token cache is bound to the key material (its RFC 7638 thumbprint), not to the
/// key id: an issuer that replaces its key under the same `kid` ends the old key's tokens once
/// the JWKS refreshes, even those already cached; tokens of the new key are accepted.
fn new_material_under_an_old_kid_drops_cached_tokens(_shared: &Stack) {
    let stack = Stack::start("kid-reuse").expect("stack");
    let spec = TokenSpec {
        scopes: "transactions:read",
        ..TokenSpec::default()
    };
    let old = stack.token(&spec);
    assert_eq!(status(&stack, &old), 200);
    assert_eq!(status(&stack, &old), 200, "cached");
    let kid = stack.signer().kid;
    assert_eq!(stack.rotate_keys_with(false, Some(&kid)), kid);
    let new = stack.token(&spec);
    eventually(&stack, &new, 200, "the new material under the old kid");
    eventually(&stack, &old, 401, "the cached token of the replaced key");
}

/// The JWKS requests the local issuer has answered, counted on its side.
fn jwks_requests(stack: &Stack) -> u64 {
    let stats = gateway_e2e::http::get(&format!("{}/stats", stack.issuer), &[]).unwrap();
    stats.json()["jwks_requests"].as_u64().unwrap()
}

/// Fifty requests arriving together, each with a key id the isolate has never seen, while the
/// JWKS is due for a refresh: one fetch reaches the issuer (single flight per issuer and
/// isolate), counted at the issuer; the others wait for it, and every one of them is answered
/// (401: the keys really are unknown), none with a 5xx.
fn concurrent_unknown_kids_share_one_jwks_fetch(_shared: &Stack) {
    let stack = Stack::start("jwks-single-flight").expect("stack");
    let good = stack.token(&TokenSpec {
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    assert_eq!(status(&stack, &good), 200);
    // Each JWKS answer takes 500 ms, so the fetches of concurrent requests would overlap.
    let delay = gateway_e2e::http::request(
        "POST",
        &format!("{}/jwks-delay?ms=500", stack.issuer),
        &[],
        None,
    )
    .unwrap();
    assert_eq!(delay.status, 200);
    // Past the JWKS max-age (1 s) and the refetch interval (1 s): the next request fetches.
    std::thread::sleep(Duration::from_millis(2_200));
    let before = jwks_requests(&stack);
    let signer = stack.signer();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let tokens: Vec<String> = (0..50)
        .map(|i| {
            let case: gateway_e2e::corpus::Case = serde_json::from_value(serde_json::json!({
                "name": "unknown kid",
                "header": {"kid": format!("unknown-{i}")},
                "expect": [401, "invalid_token"],
            }))
            .unwrap();
            let carried = case.build(&signer, now);
            carried.authorization[0]
                .strip_prefix("Bearer ")
                .unwrap()
                .to_owned()
        })
        .collect();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(tokens.len()));
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = tokens
            .iter()
            .map(|token| {
                let barrier = std::sync::Arc::clone(&barrier);
                let stack = &stack;
                scope.spawn(move || {
                    barrier.wait();
                    status(stack, token)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(
        jwks_requests(&stack) - before,
        1,
        "JWKS fetches reaching the issuer for 50 concurrent unknown key ids"
    );
}

fn status(stack: &Stack, token: &str) -> u16 {
    stack.get_as("/api/transactions", token).status
}

/// Polls until the token gets `expected` (the JWKS refreshes on its own schedule: at most a few
/// seconds with the local issuer's 1 s timings).
fn eventually(stack: &Stack, token: &str, expected: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = status(stack, token);
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {got}, expected {expected}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn keys_rotate_and_outlive_the_issuer(_shared: &Stack) {
    let mut stack = Stack::start("rotation").expect("rotation stack");
    let spec = TokenSpec {
        scopes: "transactions:read",
        ..TokenSpec::default()
    };
    let old = stack.token(&spec);
    assert_eq!(status(&stack, &old), 200);

    // A new signing key appears in the JWKS: its tokens are accepted without a redeploy.
    stack.rotate_keys(true);
    let new = stack.token(&spec);
    assert_ne!(
        old.split('.').next(),
        new.split('.').next(),
        "the kid changed"
    );
    eventually(&stack, &new, 200, "a token signed with the new key");
    assert_eq!(
        status(&stack, &old),
        200,
        "the previous key is still published"
    );

    // Every earlier key leaves the JWKS: their tokens are refused after the refresh, although
    // `old` sits in the verified-token cache.
    stack.rotate_keys(false);
    let newest = stack.token(&spec);
    eventually(&stack, &newest, 200, "a token signed with the newest key");
    eventually(&stack, &old, 401, "a token whose key was removed");
    eventually(&stack, &new, 401, "a token whose key was removed");

    // The issuer goes down: cached keys keep verifying (stale-if-error), fresh tokens from the
    // same key included; a token naming an unknown kid is a 401, never a 5xx.
    stack.stop_service("issuer");
    let after = stack.token(&spec);
    std::thread::sleep(Duration::from_millis(2_500)); // past the JWKS freshness: refreshes now fail
    assert_eq!(status(&stack, &newest), 200);
    assert_eq!(status(&stack, &after), 200);
    stack.rotate_keys(false);
    let unknown = stack.token(&spec);
    let got = status(&stack, &unknown);
    assert_eq!(got, 401, "unknown kid while the issuer is down");
}

/// The same lifecycle with a real OpenID provider (`oidc-provider`, RS256): it is restarted with a
/// new keyset, as a provider's key rollover looks from outside.
fn a_real_provider_rolls_its_keys_over(_shared: &Stack) {
    let mut stack = Stack::start("rollover").expect("rollover stack");
    let old = stack.machine_token("acme-batch", "transactions:read");
    assert_eq!(status(&stack, &old), 200);

    stack.rotate_machine_keys(true);
    let new = stack.machine_token("acme-batch", "transactions:read");
    assert_ne!(
        old.split('.').next(),
        new.split('.').next(),
        "the kid changed"
    );
    eventually(
        &stack,
        &new,
        200,
        "a token signed with the provider's new key",
    );
    assert_eq!(
        status(&stack, &old),
        200,
        "the previous key is still published"
    );

    stack.rotate_machine_keys(false);
    let newest = stack.machine_token("acme-batch", "transactions:read");
    eventually(&stack, &newest, 200, "a token signed with the newest key");
    eventually(&stack, &old, 401, "a token whose key the provider dropped");

    // The provider goes down: cached keys keep verifying; an unknown kid is a 401, not a 5xx.
    stack.stop_service("machines");
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(status(&stack, &newest), 200);
    let unknown_kid = {
        use base64ct::{Base64UrlUnpadded, Encoding};
        let (header, rest) = newest.split_once('.').unwrap();
        let mut header: serde_json::Value =
            serde_json::from_slice(&Base64UrlUnpadded::decode_vec(header).unwrap()).unwrap();
        header["kid"] = "rolled-away".into();
        format!(
            "{}.{rest}",
            Base64UrlUnpadded::encode_string(header.to_string().as_bytes())
        )
    };
    assert_eq!(status(&stack, &unknown_kid), 401);
}
