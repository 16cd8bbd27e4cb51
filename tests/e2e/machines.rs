//! The `machines` issuer end to end: a real OpenID provider (npm `oidc-provider`) issuing RS256
//! client-credentials access tokens, verified by the gateway with WebCrypto.

use std::time::Duration;

use gateway_e2e::{Stack, http};

use crate::Case;
use crate::forwarding::echoed_headers;
use crate::requests::assert_problem;

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
];

pub(crate) fn get(stack: &Stack, path: &str, token: &str) -> http::Response {
    let bearer = format!("Bearer {token}");
    http::get(
        &format!("{}{path}", stack.gateway),
        &[("Authorization", &bearer)],
    )
    .unwrap()
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
    let bearer = format!("Bearer {token}");
    let resp = http::request(
        "POST",
        &format!("{}/api/reports/generate", stack.gateway),
        &[("Authorization", &bearer)],
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
    let bearer = format!("Bearer {token}");
    let resp = http::request(
        "POST",
        &format!("{}/api/transactions/export", stack.gateway),
        &[("Authorization", &bearer)],
        Some(b"{}"),
    )
    .unwrap();
    let body = assert_problem(&resp, 403, "insufficient_scope");
    assert_eq!(body["required"], serde_json::json!(["transactions:export"]));
    assert_eq!(body["granted"], serde_json::json!(["transactions:read"]));
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
