//! Mutual TLS from clients: certificate-bound tokens (RFC 8705) and routes requiring a verified
//! client certificate. Local TLS client authentication is not available, so the edge's report
//! (`request.cf.tlsClientAuth`) is injected through Miniflare's `dispatchFetch` by the
//! loopback front (`miniflare/dispatch-front.mjs`); the same build also runs in `wrangler dev`,
//! where no certificate is ever reported.

use gateway_e2e::{Stack, TokenSpec, http};
use sha2::Digest;

use crate::Case;
use crate::requests::assert_problem;

pub(crate) const CASES: &[Case] = &[
    (
        "mtls::bound_tokens_need_their_certificate_and_routes_can_require_one",
        bound_tokens_need_their_certificate_and_routes_can_require_one,
    ),
    (
        "mtls::without_a_reported_certificate_bound_tokens_are_refused",
        without_a_reported_certificate_bound_tokens_are_refused,
    ),
    (
        "mtls::origin_traffic_goes_through_the_mtls_binding_when_present",
        origin_traffic_goes_through_the_mtls_binding_when_present,
    ),
];

/// A stand-in certificate's DER bytes and its two spellings: the edge's hex fingerprint and the
/// token's `x5t#S256`.
fn certificate(seed: &str) -> (String, String) {
    let digest = sha2::Sha256::digest(format!("DER of the {seed} certificate").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let x5t = <base64ct::Base64UrlUnpadded as base64ct::Encoding>::encode_string(&digest);
    (hex, x5t)
}

fn bound_token(stack: &Stack, x5t: &str, scopes: &str) -> String {
    stack.token(&TokenSpec {
        org: "mtls-partner",
        scopes,
        claims: Some(&serde_json::json!({"cnf": {"x5t#S256": x5t}}).to_string()),
        ..TokenSpec::default()
    })
}

fn call(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    tls: Option<(&str, &str, &str)>,
) -> http::Response {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("Authorization", bearer.as_str())];
    if let Some((presented, verified, sha256)) = tls {
        headers.extend([
            ("x-test-tls-presented", presented),
            ("x-test-tls-verified", verified),
            ("x-test-tls-sha256", sha256),
        ]);
    }
    let body = (method == "POST").then_some(&b"{}"[..]);
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    http::request(method, &format!("{base}{path}"), &headers, body).expect("request")
}

fn bound_tokens_need_their_certificate_and_routes_can_require_one(stack: &Stack) {
    let front = stack
        .miniflare_front("mtls", false)
        .expect("Miniflare front");
    let base = front.url.as_str();
    let (hex, x5t) = certificate("partner");
    let (other_hex, _) = certificate("someone else's");
    let bound = bound_token(stack, &x5t, "transactions:read payouts:write");

    // The matching verified certificate: accepted.
    let ok = call(
        base,
        "GET",
        "/api/transactions",
        &bound,
        Some(("1", "SUCCESS", &hex)),
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["origin"], "demo");
    // The same token with another certificate, an unverified one, or none: 401 invalid_token.
    for tls in [
        Some(("1", "SUCCESS", other_hex.as_str())),
        Some(("1", "FAILED:self signed certificate", hex.as_str())),
        Some(("0", "NONE", "")),
        None,
    ] {
        let resp = call(base, "GET", "/api/transactions", &bound, tls);
        let body = assert_problem(&resp, 401, "invalid_token");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("client certificate"),
            "{body}"
        );
        let challenge = resp.header("www-authenticate").unwrap();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }

    // A route requiring a verified certificate: an unbound token needs one too.
    let unbound = stack.token(&TokenSpec {
        org: "mtls-partner",
        scopes: "payouts:write",
        ..TokenSpec::default()
    });
    let refused = call(base, "POST", "/api/payouts", &unbound, None);
    assert_problem(&refused, 403, "client_certificate_required");
    let unverified = call(
        base,
        "POST",
        "/api/payouts",
        &unbound,
        Some(("1", "FAILED:certificate has expired", &hex)),
    );
    assert_problem(&unverified, 403, "client_certificate_required");
    let accepted = call(
        base,
        "POST",
        "/api/payouts",
        &unbound,
        Some(("1", "SUCCESS", &other_hex)),
    );
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    // A bound token on that route: its own certificate only.
    let ok = call(
        base,
        "POST",
        "/api/payouts",
        &bound,
        Some(("1", "SUCCESS", &hex)),
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    let wrong = call(
        base,
        "POST",
        "/api/payouts",
        &bound,
        Some(("1", "SUCCESS", &other_hex)),
    );
    assert_problem(&wrong, 401, "invalid_token");
    // A certificate the edge verified but reports as revoked counts as none.
    let revoked = http::request(
        "POST",
        &format!("{base}/api/payouts"),
        &[
            ("Authorization", &format!("Bearer {unbound}")),
            ("Content-Type", "application/json"),
            ("x-test-tls-presented", "1"),
            ("x-test-tls-verified", "SUCCESS"),
            ("x-test-tls-sha256", &hex),
            ("x-test-tls-revoked", "1"),
        ],
        Some(b"{}"),
    )
    .unwrap();
    assert_problem(&revoked, 403, "client_certificate_required");

    // A token bound by a method the gateway cannot check is refused, not accepted unbound.
    let dpop = stack.token(&TokenSpec {
        org: "mtls-partner",
        scopes: "transactions:read",
        claims: Some(r#"{"cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}"#),
        ..TokenSpec::default()
    });
    let resp = call(
        base,
        "GET",
        "/api/transactions",
        &dpop,
        Some(("1", "SUCCESS", &hex)),
    );
    let body = assert_problem(&resp, 401, "invalid_token");
    assert!(body["message"].as_str().unwrap().contains("cnf"), "{body}");
}

fn without_a_reported_certificate_bound_tokens_are_refused(stack: &Stack) {
    // `wrangler dev` reports no client certificate: a bound token is useless there, exactly as
    // a stolen bound token is without the partner's private key.
    let (_, x5t) = certificate("partner");
    let bound = bound_token(stack, &x5t, "transactions:read");
    assert_problem(
        &stack.get_as("/api/transactions", &bound),
        401,
        "invalid_token",
    );
    let unbound = stack.token(&TokenSpec {
        org: "mtls-partner",
        scopes: "payouts:write",
        ..TokenSpec::default()
    });
    let resp = http::with_bearer(
        "POST",
        &format!("{}/api/payouts", stack.gateway),
        &unbound,
        Some(b"{}"),
    )
    .unwrap();
    assert_problem(&resp, 403, "client_certificate_required");
}

fn origin_traffic_goes_through_the_mtls_binding_when_present(stack: &Stack) {
    let token = stack.token(&TokenSpec {
        org: "mtls-origin",
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    let via = |resp: &http::Response| {
        resp.json()["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h[0] == "x-test-via-origin-mtls" && h[1] == "1")
    };
    let with_binding = stack.miniflare_front("origin-mtls", true).expect("front");
    let resp = call(
        &with_binding.url,
        "GET",
        "/api/transactions?page=2",
        &token,
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(via(&resp), "the request did not go through ORIGIN_MTLS");
    // Still the signed, identity-carrying request the origin expects.
    assert_eq!(resp.json()["query"], "page=2");
    assert!(
        resp.json()["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h[0] == "x-gateway-signature")
    );
    // Without the binding the global fetch is used.
    let plain = stack.miniflare_front("origin-plain", false).expect("front");
    let resp = call(&plain.url, "GET", "/api/transactions", &token, None);
    assert_eq!(resp.status, 200);
    assert!(!via(&resp));
}
