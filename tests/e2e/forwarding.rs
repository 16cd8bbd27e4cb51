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
    (
        "forwarding::origin_accepts_only_gateway_signed_requests",
        origin_accepts_only_gateway_signed_requests,
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
        ("x-xss-protection", "0"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=(), payment=()",
        ),
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
    // No identity on a public route: only the route id and the signature.
    let gateway_headers: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.starts_with("x-gateway-"))
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        gateway_headers,
        ["x-gateway-route", "x-gateway-signature"],
        "{headers:?}"
    );
    assert_security_headers(&resp);
}

fn echo_equals_what_was_sent(stack: &Stack) {
    let token = stack.token(&TokenSpec {
        scopes: "documents:write",
        ..TokenSpec::default()
    });
    // Every byte value, in a scrambled order, so truncation or re-encoding changes the hash.
    let body: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let query = "note=caf%C3%A9%20%26%20more&empty=&flag&plus=a+b&slash=%2F";
    let url = format!("{}/api/documents?{query}", stack.gateway);
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
            ("X-Client-Request-Id", "forged"),
            // The gateway's namespace, names it does not set itself.
            ("X-Gateway-Sub", "admin"),
            ("X_Gateway_Identity", "{\"org\":\"evil-corp\"}"),
            ("x-gateway-verified", "true"),
            // On the operator's list (gateway.strip_request_headers), in another spelling.
            ("x_account_id", "acct-of-someone-else"),
        ],
        Some(&body),
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let echo = resp.json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/api/documents");
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
    assert_eq!(echoed(&headers, "x-gateway-scopes"), ["documents:write"]);
    assert_eq!(echoed(&headers, "x-gateway-route"), ["documents.upload"]);
    assert_eq!(
        echoed(&headers, "x-request-id"),
        [resp.header("x-request-id").unwrap()]
    );
    assert_ne!(resp.header("x-request-id"), Some("client-chosen"));
    // The client's safe id travels as its correlation id only (the forged copy is dropped).
    assert_eq!(echoed(&headers, "x-client-request-id"), ["client-chosen"]);
    for spoofed in [
        "x-user-id",
        "x_gateway_org",
        "x-gateway-sub",
        "x_gateway_identity",
        "x-gateway-identity",
        "x-gateway-verified",
        "authorization",
        "x_account_id",
        "x-account-id",
    ] {
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

/// The origin trusts only requests the gateway signed: unsigned, tampered, replayed and expired
/// requests get 401 from the demo origin (its verifier is independent of the gateway's signer).
fn origin_accepts_only_gateway_signed_requests(stack: &Stack) {
    let token = stack.token(&TokenSpec {
        scopes: "transactions:write",
        ..TokenSpec::default()
    });
    let body = br#"{"amount":1250}"#;
    let resp = http::with_bearer(
        "POST",
        &format!("{}/api/transactions?x=1", stack.gateway),
        &token,
        Some(body),
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let signed: Vec<(String, String)> = echoed_headers(&resp.json())
        .into_iter()
        .filter(|(n, _)| n.starts_with("x-gateway-") || n == "x-request-id")
        .collect();
    assert!(signed.iter().any(|(n, _)| n == "x-gateway-signature"));
    let as_refs: Vec<(&str, &str)> = signed
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let direct = |headers: &[(&str, &str)], body: &[u8]| {
        http::request(
            "POST",
            &format!("{}/api/transactions?x=1", stack.origin),
            headers,
            Some(body),
        )
        .unwrap()
    };
    let reason = |resp: &http::Response| {
        assert_eq!(resp.status, 401, "{}", resp.text());
        resp.json()["reason"].as_str().unwrap().to_owned()
    };
    // Replaying the gateway's exact request: refused (it was already seen).
    assert_eq!(reason(&direct(&as_refs, body)), "replayed");
    // Unsigned, with forged identity headers: refused.
    assert_eq!(
        reason(&direct(
            &[("x-gateway-org", "acme"), ("x-gateway-tier", "enterprise")],
            body
        )),
        "unsigned"
    );
    // Tampered: the signed headers with another body or another org.
    assert_eq!(
        reason(&direct(&as_refs, br#"{"amount":999999}"#)),
        "bad signature"
    );
    let mut other_org = as_refs.clone();
    for h in &mut other_org {
        if h.0 == "x-gateway-org" {
            h.1 = "evil-corp";
        }
    }
    assert_eq!(reason(&direct(&other_org, body)), "bad signature");
    // Expired: a correct signature from 10 minutes ago (signed here, with the run's key).
    let keyset = stack.signing_keyset();
    let key = <base64ct::Base64UrlUnpadded as base64ct::Encoding>::decode_vec(
        keyset["keys"][0]["secret"].as_str().unwrap(),
    )
    .unwrap();
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 600;
    let old = gateway_e2e::origin_signature(
        &key,
        "e2e-1",
        "POST",
        "/api/transactions?x=1",
        t,
        &as_refs,
        body,
    );
    let mut expired = as_refs.clone();
    for h in &mut expired {
        if h.0 == "x-gateway-signature" {
            h.1 = &old;
        }
    }
    assert_eq!(reason(&direct(&expired, body)), "expired");
}
