//! The `machines` issuer end to end: a real OpenID provider (npm `oidc-provider`) issuing
//! RS256, PS256 and EdDSA client-credentials access tokens, verified by the gateway with
//! WebCrypto; and the `internal` HS256 issuer keyed from the static JWKS secret.

use std::time::Duration;

use gateway_e2e::{Stack, http};

use crate::Case;
use crate::forwarding::echoed_headers;
use crate::requests::{assert_problem, assert_scope_denied};

pub(crate) const CASES: &[Case] = &[
    (
        "machines::client_credentials_token_is_accepted",
        client_credentials_token_is_accepted,
    ),
    (
        "machines::tampered_token_is_refused",
        tampered_token_is_refused,
    ),
    ("machines::scope_is_enforced", scope_is_enforced),
    (
        "machines::expired_token_is_refused",
        expired_token_is_refused,
    ),
    (
        "machines::ps256_and_eddsa_tokens_are_accepted",
        ps256_and_eddsa_tokens_are_accepted,
    ),
    (
        "machines::internal_hs256_issuer_with_a_static_key",
        internal_hs256_issuer_with_a_static_key,
    ),
];

pub(crate) fn get(stack: &Stack, path: &str, token: &str) -> http::Response {
    stack.get_as(path, token)
}

fn client_credentials_token_is_accepted(stack: &Stack) {
    let token = stack.machine_token("acme-batch", "transactions:read");
    let resp = get(stack, "/api/transactions", &token);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let headers = echoed_headers(&resp.json());
    for (name, value) in [
        ("x-gateway-issuer", "machines"),
        ("x-gateway-subject", "acme-batch"),
        ("x-gateway-org", "acme"),
        ("x-gateway-tier", "pro"),
        ("x-gateway-scopes", "transactions:read"),
    ] {
        assert!(
            headers.contains(&(name.to_owned(), value.to_owned())),
            "{name}: {headers:?}"
        );
    }
    let token = stack.machine_token("globex-etl", "reports:generate");
    let resp = http::with_bearer(
        "POST",
        &format!("{}/api/reports/generate", stack.gateway),
        &token,
        Some(b"{}"),
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        echoed_headers(&resp.json())
            .contains(&("x-gateway-tier".to_owned(), "enterprise".to_owned()))
    );
}

fn tampered_token_is_refused(stack: &Stack) {
    use base64ct::{Base64UrlUnpadded, Encoding};
    let token = stack.machine_token("initech-script", "transactions:read");
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&Base64UrlUnpadded::decode_vec(parts[1]).unwrap()).unwrap();
    claims["tier"] = "enterprise".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        Base64UrlUnpadded::encode_string(claims.to_string().as_bytes()),
        parts[2]
    );
    assert_problem(
        &get(stack, "/api/transactions", &forged),
        401,
        "invalid_token",
    );
    assert_eq!(get(stack, "/api/transactions", &token).status, 200);
}

fn scope_is_enforced(stack: &Stack) {
    let token = stack.machine_token("acme-batch", "transactions:read");
    let resp = http::with_bearer(
        "POST",
        &format!("{}/api/transactions/export", stack.gateway),
        &token,
        Some(b"{}"),
    )
    .unwrap();
    assert_scope_denied(&resp, "transactions:export", "transactions:read");
}

fn expired_token_is_refused(stack: &Stack) {
    // The provider issues this client one-second tokens; past the 5 s leeway they are expired.
    let token = stack.machine_token("short-lived", "transactions:read");
    assert_eq!(get(stack, "/api/transactions", &token).status, 200);
    std::thread::sleep(Duration::from_millis(7_500));
    let body = assert_problem(
        &get(stack, "/api/transactions", &token),
        401,
        "token_expired",
    );
    assert_eq!(
        body["message"],
        "Access token has expired. Use your refresh token to get a new one."
    );
}

fn alg_of(token: &str) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    let header = Base64UrlUnpadded::decode_vec(token.split('.').next().unwrap()).unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    header["alg"].as_str().unwrap().to_owned()
}

fn ps256_and_eddsa_tokens_are_accepted(stack: &Stack) {
    for (client, alg, org) in [
        ("pss-client", "PS256", "hooli"),
        ("ed-client", "EdDSA", "piedpiper"),
        ("acme-batch", "RS256", "acme"),
    ] {
        let token = stack.machine_token(client, "transactions:read");
        assert_eq!(alg_of(&token), alg, "{client}");
        let resp = get(stack, "/api/transactions", &token);
        assert_eq!(resp.status, 200, "{alg}: {}", resp.text());
        let headers = echoed_headers(&resp.json());
        assert!(
            headers.contains(&("x-gateway-org".to_owned(), org.to_owned())),
            "{alg}"
        );
    }
}

fn internal_hs256_issuer_with_a_static_key(stack: &Stack) {
    let token = stack.internal_token(serde_json::json!({}));
    assert_eq!(alg_of(&token), "HS256");
    let resp = get(stack, "/api/transactions", &token);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let headers = echoed_headers(&resp.json());
    assert!(
        headers.contains(&("x-gateway-issuer".to_owned(), "internal".to_owned())),
        "{headers:?}"
    );
    assert!(
        headers.contains(&("x-gateway-subject".to_owned(), "svc-ledger".to_owned())),
        "{headers:?}"
    );

    // Signed with another key: refused. Over the issuer's 900 s lifetime cap: refused.
    let forged = stack.internal_token_with_key(&[9u8; 32], serde_json::json!({}));
    assert_problem(
        &get(stack, "/api/transactions", &forged),
        401,
        "invalid_token",
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let long = stack.internal_token(serde_json::json!({"iat": now, "exp": now + 1_000}));
    assert_problem(
        &get(stack, "/api/transactions", &long),
        401,
        "invalid_token",
    );
}
