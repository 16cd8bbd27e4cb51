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
];

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
