//! Request shape at the edge: header block size, `Host` allowlist, `Content-Type` allowlists,
//! JSON well-formedness and depth, streamed bodies cut off at the limit, the client's correlation
//! id, and a slow origin.

use std::time::Instant;

use gateway_e2e::{Stack, TokenSpec, http};

use crate::Case;
use crate::forwarding::assert_security_headers;
use crate::requests::assert_problem;

pub(crate) const CASES: &[Case] = &[
    (
        "shape::oversized_header_block_is_431",
        oversized_header_block_is_431,
    ),
    ("shape::unknown_host_is_421", unknown_host_is_421),
    (
        "shape::content_type_allowlist_is_415",
        content_type_allowlist_is_415,
    ),
    (
        "shape::json_bodies_are_checked_on_json_routes",
        json_bodies_are_checked_on_json_routes,
    ),
    (
        "shape::streamed_body_is_cut_off_at_the_limit",
        streamed_body_is_cut_off_at_the_limit,
    ),
    (
        "shape::client_request_id_is_a_correlation_id_only",
        client_request_id_is_a_correlation_id_only,
    ),
    ("shape::slow_origin_is_504", slow_origin_is_504),
];

fn writer(stack: &Stack) -> String {
    stack.token(&TokenSpec {
        scopes: "transactions:write",
        ..TokenSpec::default()
    })
}

fn post(stack: &Stack, token: &str, content_type: Option<&str>, body: &[u8]) -> http::Response {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("Authorization", bearer.as_str())];
    if let Some(ct) = content_type {
        headers.push(("Content-Type", ct));
    }
    http::request(
        "POST",
        &format!("{}/api/transactions", stack.gateway),
        &headers,
        Some(body),
    )
    .unwrap()
}

fn oversized_header_block_is_431(stack: &Stack) {
    let url = format!("{}/api/health", stack.gateway);
    let big = "a".repeat(17 * 1024);
    let resp = http::get(&url, &[("X-Padding", &big)]).unwrap();
    let problem = assert_problem(&resp, 431, "headers_too_large");
    assert!(
        problem["detail"].as_str().unwrap().contains("16384"),
        "{problem}"
    );
    // The same total spread over many headers counts the same.
    let piece = "b".repeat(1024);
    let many: Vec<(String, &str)> = (0..17)
        .map(|i| (format!("X-Pad-{i}"), piece.as_str()))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    assert_problem(&http::get(&url, &many).unwrap(), 431, "headers_too_large");
    // Well under the limit passes.
    let fine = "c".repeat(8 * 1024);
    let resp = http::get(&url, &[("X-Padding", &fine)]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
}

fn unknown_host_is_421(stack: &Stack) {
    let addr = stack.gateway.trim_start_matches("http://");
    let port = addr.rsplit(':').next().unwrap();
    for host in [
        "evil.example.com",
        "127.0.0.1.evil.example.com",
        "api.example.com",
    ] {
        let request =
            format!("GET /api/health HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
        let resp = http::raw(&stack.gateway, request.as_bytes()).unwrap();
        assert_problem(&resp, 421, "misdirected_request");
    }
    // The allowed names, with any port (ALLOWED_HOSTS = "127.0.0.1,localhost").
    for host in [
        addr.to_owned(),
        format!("localhost:{port}"),
        "LOCALHOST".to_owned(),
    ] {
        let request =
            format!("GET /api/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let resp = http::raw(&stack.gateway, request.as_bytes()).unwrap();
        assert_eq!(resp.status, 200, "{host}: {}", resp.text());
    }
}

fn content_type_allowlist_is_415(stack: &Stack) {
    let token = writer(stack);
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        Some("garbage"),
        None,
    ] {
        let resp = post(stack, &token, ct, br#"{"amount":1}"#);
        let problem = assert_problem(&resp, 415, "unsupported_media_type");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{ct:?}: {problem}"
        );
    }
    for ct in ["application/json", "Application/JSON; charset=utf-8"] {
        let resp = post(stack, &token, Some(ct), br#"{"amount":1}"#);
        assert_eq!(resp.status, 200, "{ct}: {}", resp.text());
    }
    // The upload route takes binary types, and not JSON.
    let uploader = stack.token(&TokenSpec {
        scopes: "documents:write",
        ..TokenSpec::default()
    });
    let bearer = format!("Bearer {uploader}");
    let upload = |ct: &str| {
        http::request(
            "POST",
            &format!("{}/api/documents", stack.gateway),
            &[("Authorization", &bearer), ("Content-Type", ct)],
            Some(b"%PDF-1.7 not json"),
        )
        .unwrap()
    };
    assert_eq!(upload("application/pdf").status, 200);
    assert_problem(&upload("application/json"), 415, "unsupported_media_type");
}

fn json_bodies_are_checked_on_json_routes(stack: &Stack) {
    let token = writer(stack);
    let json = Some("application/json");
    for bad in [
        &br#"{"amount": 1"#[..],
        br#"{"amount": 1,}"#,
        br#"{'amount': 1}"#,
        b"amount=1",
        b"{} {}",
        b"\xff\xfe{}",
    ] {
        let resp = post(stack, &token, json, bad);
        let problem = assert_problem(&resp, 400, "invalid_body");
        assert!(
            problem["detail"].as_str().unwrap().contains("well-formed"),
            "{problem}"
        );
    }
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    // gateway.max_json_depth = 32.
    let resp = post(stack, &token, json, nested(32).as_bytes());
    assert_eq!(resp.status, 200, "{}", resp.text());
    for depth in [33, 10_000] {
        let resp = post(stack, &token, json, nested(depth).as_bytes());
        let problem = assert_problem(&resp, 400, "invalid_body");
        assert!(
            problem["detail"].as_str().unwrap().contains("32"),
            "{problem}"
        );
    }
}

/// A chunked body without `Content-Length` is read chunk by chunk and refused as soon as it
/// passes the route's limit.
fn streamed_body_is_cut_off_at_the_limit(stack: &Stack) {
    let token = writer(stack);
    let host = stack.gateway.trim_start_matches("http://");
    let chunked = |total: usize| {
        let mut body = format!("{{\"p\":\"{}\"}}", "x".repeat(total - 8)).into_bytes();
        assert_eq!(body.len(), total);
        let mut request = format!(
            "POST /api/transactions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        for chunk in body.chunks_mut(64 * 1024) {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        http::raw(&stack.gateway, &request)
    };
    let small = chunked(200 * 1024).unwrap();
    assert_eq!(small.status, 200, "{}", small.text());
    assert_eq!(small.json()["body"]["size"], 200 * 1024);
    let resp = chunked(1024 * 1024 + 64 * 1024).unwrap();
    let problem = assert_problem(&resp, 413, "payload_too_large");
    assert!(
        problem["detail"].as_str().unwrap().contains("1048576"),
        "{problem}"
    );
    // The connection ended cleanly: the next requests (which need the issuer's keys and the
    // origin) are served as usual.
    let after = chunked(1024).unwrap();
    assert_eq!(after.status, 200, "{}", after.text());
}

fn client_request_id_is_a_correlation_id_only(stack: &Stack) {
    let token = stack.token(&TokenSpec {
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    let bearer = format!("Bearer {token}");
    let url = format!("{}/api/transactions", stack.gateway);
    let echoed = |resp: &http::Response, name: &str| -> Vec<String> {
        resp.json()["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h[0] == name)
            .map(|h| h[1].as_str().unwrap().to_owned())
            .collect()
    };
    let ours = |resp: &http::Response| {
        let id = resp.header("x-request-id").unwrap().to_owned();
        assert_eq!(id.len(), 36, "a UUID: {id}");
        id
    };
    // A safe id: forwarded as the client's, logged as the client's; ours stays ours.
    let safe = "support-ticket:4711.retry_2";
    let resp = http::get(&url, &[("Authorization", &bearer), ("X-Request-ID", safe)]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let id = ours(&resp);
    assert_eq!(echoed(&resp, "x-client-request-id"), [safe]);
    assert_eq!(echoed(&resp, "x-request-id"), std::slice::from_ref(&id));
    let line = stack.log_line(&id);
    assert_eq!(line["client_request_id"], safe, "{line}");
    assert_eq!(line["request_id"], id.as_str());
    // Unsafe ids are dropped whole: not forwarded, not logged.
    for unsafe_id in [
        "<script>alert(1)</script>",
        &"a".repeat(65),
        "id with spaces",
    ] {
        let resp = http::get(
            &url,
            &[("Authorization", &bearer), ("X-Request-ID", unsafe_id)],
        )
        .unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        let id = ours(&resp);
        assert!(
            echoed(&resp, "x-client-request-id").is_empty(),
            "{unsafe_id}"
        );
        let line = stack.log_line(&id);
        assert!(line.get("client_request_id").is_none(), "{line}");
    }
}

/// A stack with ORIGIN_TIMEOUT_MS = 1500 (its own, so the waiting origin thread slows no other
/// test); the demo origin waits as long as `X-Demo-Delay-Ms` says.
fn slow_origin_is_504(_shared: &Stack) {
    let stack =
        Stack::start_with("slow-origin", "test", &[("ORIGIN_TIMEOUT_MS", "1500")]).expect("stack");
    let url = format!("{}/api/health", stack.gateway);
    let started = Instant::now();
    let resp = http::get(&url, &[("X-Demo-Delay-Ms", "20000")]).unwrap();
    let waited = started.elapsed();
    let problem = assert_problem(&resp, 504, "origin_timeout");
    let text = problem.to_string();
    assert!(
        !text.contains("127.0.0.1") && !text.contains("1500"),
        "upstream detail leaked: {text}"
    );
    assert!(
        waited.as_secs() < 15,
        "answered after {waited:?}, not at the timeout"
    );
    assert_security_headers(&resp);
    let id = resp.header("x-request-id").unwrap();
    let line = stack.log_line(id);
    assert_eq!(line["decision"], "origin_timeout");
    assert_eq!(line["status"], 504);
    assert!(
        line["detail"].as_str().unwrap().contains("1500 ms"),
        "{line}"
    );
    // Just under the timeout is fine.
    let resp = http::get(&url, &[("X-Demo-Delay-Ms", "300")]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
}
