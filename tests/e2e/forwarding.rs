//! The first end-to-end path: the gateway forwards to the origin exactly what it was sent.

use gateway_e2e::{Stack, TokenSpec, http};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Case;

pub(crate) const CASES: &[Case] = &[
    (
        "forwarding::health_is_answered_by_the_gateway_itself",
        health_is_answered_by_the_gateway_itself,
    ),
    (
        "forwarding::public_route_reaches_the_origin",
        public_route_reaches_the_origin,
    ),
    (
        "forwarding::echo_equals_what_was_sent",
        echo_equals_what_was_sent,
    ),
    (
        "forwarding::origin_software_headers_are_removed",
        origin_software_headers_are_removed,
    ),
];

/// Headers of an echo, as (name, value) pairs.
pub(crate) fn echoed_headers(echo: &Value) -> Vec<(String, String)> {
    echo["headers"]
        .as_array()
        .expect("headers array")
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_owned(),
                pair[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn echoed<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

pub(crate) fn assert_security_headers(resp: &http::Response) {
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(resp.header(name), Some(value), "{name} on {}", resp.status);
    }
    assert!(
        resp.header("strict-transport-security")
            .is_some_and(|v| v.starts_with("max-age="))
    );
    let rid = resp.header("x-request-id").expect("x-request-id");
    assert_eq!(rid.len(), 36, "request id {rid:?} is not a UUID");
}

fn health_is_answered_by_the_gateway_itself(stack: &Stack) {
    let resp = http::get(&format!("{}/_gateway/health", stack.gateway), &[]).unwrap();
    assert_eq!(resp.status, 200);
    let body = resp.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["environment"], "test");
    assert!(
        body.get("origin").is_none(),
        "health must not reach the origin: {body}"
    );
    assert_security_headers(&resp);
}

fn public_route_reaches_the_origin(stack: &Stack) {
    let resp = http::get(&format!("{}/api/health?probe=1", stack.gateway), &[]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let echo = resp.json();
    assert_eq!(echo["origin"], "demo");
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/api/health");
    assert_eq!(echo["query"], "probe=1");
    let headers = echoed_headers(&echo);
    // The origin sees the same request id the client gets.
    assert_eq!(
        echoed(&headers, "x-request-id"),
        [resp.header("x-request-id").unwrap()]
    );
    // No identity on a public route.
    assert!(
        headers.iter().all(|(n, _)| !n.starts_with("x-gateway-")),
        "{headers:?}"
    );
    assert_security_headers(&resp);
}

fn echo_equals_what_was_sent(stack: &Stack) {
    let token = stack.token(&TokenSpec {
        scopes: "transactions:write",
        ..TokenSpec::default()
    });
    // Every byte value, in a scrambled order, so truncation or re-encoding changes the hash.
    let body: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let query = "note=caf%C3%A9%20%26%20more&empty=&flag&plus=a+b&slash=%2F";
    let url = format!("{}/api/transactions?{query}", stack.gateway);
    let bearer = format!("Bearer {token}");
    let resp = http::request(
        "POST",
        &url,
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/octet-stream"),
            ("X-Custom-Trace", "abc-123"),
            ("Idempotency-Key", "key-7f3a"),
            // Spoofing attempts: none of these may reach the origin as sent.
            ("X-User-ID", "admin"),
            ("X_Gateway_Org", "evil-corp"),
            ("X-Gateway-Tier", "enterprise"),
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Request-Id", "client-chosen"),
        ],
        Some(&body),
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let echo = resp.json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/api/transactions");
    assert_eq!(echo["query"], query);
    assert_eq!(echo["body"]["size"], body.len());
    let sha: String = Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(echo["body"]["sha256"], sha);

    let headers = echoed_headers(&echo);
    assert_eq!(
        echoed(&headers, "content-type"),
        ["application/octet-stream"]
    );
    assert_eq!(echoed(&headers, "x-custom-trace"), ["abc-123"]);
    assert_eq!(echoed(&headers, "idempotency-key"), ["key-7f3a"]);
    // The verified identity, and only that.
    assert_eq!(echoed(&headers, "x-gateway-issuer"), ["users"]);
    assert_eq!(echoed(&headers, "x-gateway-subject"), ["client-acme"]);
    assert_eq!(echoed(&headers, "x-gateway-org"), ["acme"]);
    assert_eq!(echoed(&headers, "x-gateway-tier"), ["pro"]);
    assert_eq!(echoed(&headers, "x-gateway-scopes"), ["transactions:write"]);
    assert_eq!(echoed(&headers, "x-gateway-route"), ["transactions.create"]);
    assert_eq!(
        echoed(&headers, "x-request-id"),
        [resp.header("x-request-id").unwrap()]
    );
    assert_ne!(resp.header("x-request-id"), Some("client-chosen"));
    for spoofed in ["x-user-id", "x_gateway_org", "authorization"] {
        assert!(
            echoed(&headers, spoofed).is_empty(),
            "{spoofed} reached the origin: {headers:?}"
        );
    }
    assert!(
        !echoed(&headers, "x-forwarded-for").contains(&"6.6.6.6"),
        "{headers:?}"
    );
    assert_eq!(echoed(&headers, "x-forwarded-proto"), ["http"]);
}

fn origin_software_headers_are_removed(stack: &Stack) {
    // The demo origin sends `Server: tiny-http` and `X-Powered-By`; the client sees neither.
    let direct = http::get(&format!("{}/api/health", stack.origin), &[]).unwrap();
    assert!(
        direct.header("x-powered-by").is_some(),
        "the origin should leak it directly"
    );
    let resp = http::get(&format!("{}/api/health", stack.gateway), &[]).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-powered-by"), None);
    assert!(
        resp.header("server")
            .is_none_or(|s| !s.contains("tiny-http")),
        "{:?}",
        resp.header("server")
    );
}
