//! Requests the gateway refuses before authentication: problem+json with a stable code, never
//! forwarded.

use gateway_e2e::{Stack, TokenSpec, http};

use crate::Case;
use crate::forwarding::assert_security_headers;

pub(crate) const CASES: &[Case] = &[
    (
        "requests::unknown_route_is_404_problem_json",
        unknown_route_is_404_problem_json,
    ),
    (
        "requests::wrong_method_is_405_with_allow",
        wrong_method_is_405_with_allow,
    ),
    ("requests::ambiguous_paths_are_400", ambiguous_paths_are_400),
    (
        "requests::trailing_slash_and_case_do_not_match",
        trailing_slash_and_case_do_not_match,
    ),
    ("requests::oversized_body_is_413", oversized_body_is_413),
    ("requests::body_on_get_is_400", body_on_get_is_400),
    (
        "requests::reserved_prefix_is_never_forwarded",
        reserved_prefix_is_never_forwarded,
    ),
    (
        "requests::the_tested_build_has_no_benchmark_or_fault_endpoints",
        the_tested_build_has_no_benchmark_or_fault_endpoints,
    ),
    (
        "requests::dotfiles_and_override_headers_never_reach_the_origin",
        dotfiles_and_override_headers_never_reach_the_origin,
    ),
    (
        "requests::two_framings_for_one_body_are_refused",
        two_framings_for_one_body_are_refused,
    ),
    (
        "requests::origin_down_is_502_without_detail",
        origin_down_is_502_without_detail,
    ),
    (
        "requests::cors_preflights_at_the_edge_and_only_for_allowed_origins",
        cors_preflights_at_the_edge_and_only_for_allowed_origins,
    ),
];

/// Asserts a problem+json answer with this status and code; returns the body.
pub(crate) fn assert_problem(resp: &http::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(
        resp.status,
        status,
        "expected {status} {code}, got: {}",
        resp.text()
    );
    assert_eq!(
        resp.header("content-type"),
        Some("application/problem+json")
    );
    let body = resp.json();
    assert_eq!(body["error"], code, "{body}");
    assert_eq!(body["status"], status);
    assert_eq!(body["type"], format!("urn:edge-gateway:error:{code}"));
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(body["detail"], body["message"]);
    assert_eq!(body["request_id"].as_str(), resp.header("x-request-id"));
    assert!(body.get("origin").is_none(), "the origin answered: {body}");
    assert_security_headers(resp);
    body
}

/// Asserts a 403 `insufficient_scope` listing exactly these required and granted scopes.
pub(crate) fn assert_scope_denied(resp: &http::Response, required: &str, granted: &str) {
    let body = assert_problem(resp, 403, "insufficient_scope");
    assert_eq!(body["required"], serde_json::json!([required]));
    assert_eq!(body["granted"], serde_json::json!([granted]));
}

fn unknown_route_is_404_problem_json(stack: &Stack) {
    for path in [
        "/",
        "/api",
        "/api/unknown",
        "/api/transactions/123/extra",
        "/admin",
    ] {
        let resp = http::get(&format!("{}{path}", stack.gateway), &[]).unwrap();
        assert_problem(&resp, 404, "route_not_found");
    }
}

fn wrong_method_is_405_with_allow(stack: &Stack) {
    let resp = http::request(
        "DELETE",
        &format!("{}/api/transactions", stack.gateway),
        &[],
        None,
    )
    .unwrap();
    assert_problem(&resp, 405, "method_not_allowed");
    assert_eq!(resp.header("allow"), Some("GET, POST"));
    let resp = http::request(
        "GET",
        &format!("{}/api/reports/generate", stack.gateway),
        &[],
        None,
    )
    .unwrap();
    assert_problem(&resp, 405, "method_not_allowed");
    assert_eq!(resp.header("allow"), Some("POST"));
}

fn ambiguous_paths_are_400(stack: &Stack) {
    // The runtime's WHATWG URL parser resolves dot segments (also `%2e%2e`) before the Worker
    // sees the URL: the gateway then routes, and forwards, only the resolved path.
    let resp = http::get(
        &format!("{}/api/transactions/%2e%2e/health", stack.gateway),
        &[],
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["path"], "/api/health");
    for path in [
        "/api%2Fhealth",
        "/api%5Chealth",
        "/api/health%00",
        "/api//health",
        "/api/%zzhealth",
    ] {
        let resp = http::get(&format!("{}{path}", stack.gateway), &[]).unwrap();
        assert_problem(&resp, 400, "invalid_path");
    }
    let long = format!("{}/api/{}", stack.gateway, "a".repeat(3000));
    assert_problem(&http::get(&long, &[]).unwrap(), 414, "uri_too_long");
    // An escaped unreserved character is the same path: routed, not refused.
    let resp = http::get(&format!("{}/api/%68ealth", stack.gateway), &[]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.json()["path"],
        "/api/health",
        "the gateway forwards the normalised path it matched"
    );
}

fn trailing_slash_and_case_do_not_match(stack: &Stack) {
    for path in ["/api/health/", "/API/health", "/api/Health"] {
        let resp = http::get(&format!("{}{path}", stack.gateway), &[]).unwrap();
        assert_problem(&resp, 404, "route_not_found");
    }
}

fn oversized_body_is_413(stack: &Stack) {
    let token = stack.token(&TokenSpec {
        scopes: "transactions:write",
        ..TokenSpec::default()
    });
    let body = vec![b'x'; 1024 * 1024 + 1];
    let bearer = format!("Bearer {token}");
    let resp = http::request(
        "POST",
        &format!("{}/api/transactions", stack.gateway),
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        Some(&body),
    )
    .unwrap();
    let problem = assert_problem(&resp, 413, "payload_too_large");
    assert!(
        problem["detail"].as_str().unwrap().contains("1048576"),
        "{problem}"
    );
    // Exactly at the limit is accepted: a JSON body of 1 MiB.
    let body = format!("{{\"p\":\"{}\"}}", "x".repeat(1024 * 1024 - 8)).into_bytes();
    assert_eq!(body.len(), 1024 * 1024);
    let resp = http::with_bearer(
        "POST",
        &format!("{}/api/transactions", stack.gateway),
        &token,
        Some(&body),
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["body"]["size"], 1024 * 1024);
}

fn body_on_get_is_400(stack: &Stack) {
    let resp = http::request(
        "GET",
        &format!("{}/api/health", stack.gateway),
        &[],
        Some(b"smuggled"),
    )
    .unwrap();
    assert_problem(&resp, 400, "invalid_request");
}

fn reserved_prefix_is_never_forwarded(stack: &Stack) {
    for path in [
        "/_gateway",
        "/_gateway/",
        "/_gateway/anything",
        "/%5Fgateway/anything",
    ] {
        let resp = http::get(&format!("{}{path}", stack.gateway), &[]).unwrap();
        assert_problem(&resp, 404, "route_not_found");
    }
    let resp = http::request(
        "POST",
        &format!("{}/_gateway/health", stack.gateway),
        &[],
        Some(b""),
    )
    .unwrap();
    assert_problem(&resp, 405, "method_not_allowed");
}

/// The build under test (the deployable one) answers nothing but health under the reserved
/// prefix: the benchmark endpoints exist only with `--features bench`, and faults come only from
/// configuration (no request-reachable hook). `make test` also checks the wasm's symbols.
fn the_tested_build_has_no_benchmark_or_fault_endpoints(stack: &Stack) {
    for path in [
        "/_gateway/bench/auth",
        "/_gateway/bench/limit",
        "/_gateway/fault",
        "/_gateway/debug",
    ] {
        let resp = http::request(
            "POST",
            &format!("{}{path}", stack.gateway),
            &[],
            Some(b"{}"),
        )
        .unwrap();
        assert_problem(&resp, 404, "route_not_found");
    }
}

fn dotfiles_and_override_headers_never_reach_the_origin(stack: &Stack) {
    for path in ["/.env", "/.git/config", "/api/.htaccess", "/%2egit/HEAD"] {
        assert_problem(
            &http::get(&format!("{}{path}", stack.gateway), &[]).unwrap(),
            404,
            "route_not_found",
        );
    }
    let token = stack.token(&TokenSpec {
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    let bearer = format!("Bearer {token}");
    let resp = http::get(
        &format!("{}/api/transactions", stack.gateway),
        &[
            ("Authorization", &bearer),
            ("X-HTTP-Method-Override", "DELETE"),
            ("X-Original-URL", "/admin"),
            ("X_Rewrite_URL", "/admin"),
        ],
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    let headers = crate::forwarding::echoed_headers(&resp.json());
    for name in [
        "x-http-method-override",
        "x-original-url",
        "x_rewrite_url",
        "x-rewrite-url",
    ] {
        assert!(
            headers.iter().all(|(n, _)| n != name),
            "{name} reached the origin: {headers:?}"
        );
    }
    // Authenticated answers are not cacheable unless the origin says so.
    assert_eq!(resp.header("cache-control"), Some("no-store"));
}

/// Content-Length and Transfer-Encoding together (the classic smuggling shape). The runtime
/// resolves the framing before the Worker runs (Transfer-Encoding wins, RFC 9112), so locally the
/// gateway never sees both; it refuses them if it ever does (`check_body_framing`). Either way
/// nothing is smuggled: the origin gets one framing and exactly the chunked body (empty here).
fn two_framings_for_one_body_are_refused(stack: &Stack) {
    let token = stack.token(&TokenSpec {
        scopes: "transactions:write",
        ..TokenSpec::default()
    });
    let host = stack.gateway.trim_start_matches("http://");
    let request = format!(
        "POST /api/transactions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\nGET /"
    );
    let resp = http::raw(&stack.gateway, request.as_bytes()).unwrap();
    if resp.status == 400 {
        return;
    }
    assert_eq!(resp.status, 200, "{}", resp.text());
    let echo = resp.json();
    assert_eq!(
        echo["body"]["size"], 0,
        "smuggled bytes reached the origin: {echo}"
    );
    let headers = crate::forwarding::echoed_headers(&echo);
    let framings = headers
        .iter()
        .filter(|(n, _)| n == "content-length" || n == "transfer-encoding")
        .count();
    assert_eq!(framings, 1, "{headers:?}");
}

fn origin_down_is_502_without_detail(_shared: &Stack) {
    let mut stack = Stack::start("origin-down").expect("stack");
    stack.stop_service("origin");
    let resp = http::get(&format!("{}/api/health", stack.gateway), &[]).unwrap();
    let body = assert_problem(&resp, 502, "origin_unreachable");
    let text = body.to_string();
    assert!(
        !text.contains("127.0.0.1") && !text.contains("refused"),
        "upstream detail leaked: {text}"
    );
}

fn cors_preflights_at_the_edge_and_only_for_allowed_origins(stack: &Stack) {
    let preflight = |origin: &str, method: &str, headers: &str| {
        http::request(
            "OPTIONS",
            &format!("{}/api/transactions", stack.gateway),
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", method),
                ("Access-Control-Request-Headers", headers),
            ],
            None,
        )
        .unwrap()
    };
    let ok = preflight(
        "https://app.example.com",
        "POST",
        "authorization, content-type",
    );
    assert_eq!(
        ok.status,
        204,
        "answered at the edge, no token needed: {}",
        ok.text()
    );
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(ok.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(
        ok.header("access-control-allow-headers"),
        Some("authorization, content-type")
    );
    assert!(ok.body.is_empty(), "the origin was not called");
    assert!(ok.header("x-request-id").is_some());
    for refused in [
        preflight("https://evil.example.com", "POST", "authorization"),
        preflight("https://app.example.com", "DELETE", "authorization"),
        preflight("https://app.example.com", "POST", "x-user-id"),
    ] {
        assert_eq!(refused.status, 204);
        assert_eq!(refused.header("access-control-allow-origin"), None);
        assert!(refused.header("vary").is_some_and(|v| v.contains("Origin")));
    }
    // Actual answers: allowed origin gets ACAO (errors included), a foreign origin does not.
    let token = stack.token(&TokenSpec {
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    let bearer = format!("Bearer {token}");
    let url = format!("{}/api/transactions", stack.gateway);
    let allowed = http::get(
        &url,
        &[
            ("Authorization", &bearer),
            ("Origin", "https://app.example.com"),
        ],
    )
    .unwrap();
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert!(
        allowed
            .header("access-control-expose-headers")
            .is_some_and(|v| v.contains("x-ratelimit-remaining"))
    );
    let unauthenticated = http::get(&url, &[("Origin", "https://app.example.com")]).unwrap();
    assert_eq!(unauthenticated.status, 401);
    assert_eq!(
        unauthenticated.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let foreign = http::get(
        &url,
        &[
            ("Authorization", &bearer),
            ("Origin", "https://evil.example.com"),
        ],
    )
    .unwrap();
    assert_eq!(foreign.status, 200);
    assert_eq!(foreign.header("access-control-allow-origin"), None);
    assert_eq!(foreign.header("vary"), Some("Origin"));
}
