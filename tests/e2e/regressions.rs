//! Regression tests for what a first ZAP scan of the demo API found: reflected input,
//! missing security headers, cookie flags. Every answer the gateway generates itself is
//! checked: it never echoes request input unescaped, always carries the security headers, and
//! sets no cookie.

use gateway_e2e::{Stack, TokenSpec, http};

use crate::Case;
use crate::forwarding::assert_security_headers;

pub(crate) const CASES: &[Case] = &[(
    "regressions::generated_answers_reflect_nothing_and_set_no_cookie",
    generated_answers_reflect_nothing_and_set_no_cookie,
)];

const PAYLOAD: &str = "<script>alert(\"zap\")</script>";
const ENCODED: &str = "%3Cscript%3Ealert(%22zap%22)%3C%2Fscript%3E";
/// Only ever sent as a token (the leak audit treats every token as a canary).
const TOKEN_PAYLOAD: &str = "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E";
/// A foreign host name (the runtime refuses a host that is not a name before the Worker runs).
const FOREIGN_HOST: &str = "zap-reflected-host.example";

fn check(resp: &http::Response, what: &str) {
    let body = resp.text();
    for needle in [
        "<script>",
        "alert(\"zap\")",
        "<img",
        "onerror=",
        FOREIGN_HOST,
        "zap-reflected-path",
    ] {
        assert!(
            !body.contains(needle),
            "{what}: the answer reflects {needle}: {body}"
        );
    }
    assert!(
        resp.headers.iter().all(|(n, _)| n != "set-cookie"),
        "{what}: the gateway set a cookie"
    );
    assert_security_headers(resp);
    if resp.status >= 400 {
        assert_eq!(
            resp.header("content-type"),
            Some("application/problem+json"),
            "{what}"
        );
    }
}

fn generated_answers_reflect_nothing_and_set_no_cookie(stack: &Stack) {
    let g = &stack.gateway;
    let reader = stack.token(&TokenSpec {
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    let bearer = format!("Bearer {reader}");
    let evil_header = [
        ("X-Request-Id", PAYLOAD),
        ("User-Agent", PAYLOAD),
        ("Origin", PAYLOAD),
    ];
    let cases: Vec<(&str, http::Response)> = vec![
        (
            "400 escaped path",
            http::get(&format!("{g}/api/{ENCODED}"), &[]).unwrap(),
        ),
        (
            "404 path",
            http::get(&format!("{g}/api/zap-reflected-path"), &[]).unwrap(),
        ),
        (
            "400 path",
            http::get(&format!("{g}/api/%2e%2e/{ENCODED}/..%2f"), &[]).unwrap(),
        ),
        (
            "400 token",
            http::get(
                &format!("{g}/api/transactions?q={ENCODED}"),
                &[("Authorization", &format!("Bearer {TOKEN_PAYLOAD}"))],
            )
            .unwrap(),
        ),
        (
            "401 basic",
            http::get(
                &format!("{g}/api/transactions"),
                &[("Authorization", &format!("Basic {PAYLOAD}"))],
            )
            .unwrap(),
        ),
        (
            "403 scope",
            http::request(
                "POST",
                &format!("{g}/api/reports/generate?x={ENCODED}"),
                &[
                    ("Authorization", &bearer),
                    ("Content-Type", "application/json"),
                ],
                Some(br#"{"name":"<script>alert(\"zap\")</script>"}"#),
            )
            .unwrap(),
        ),
        (
            "405 method",
            http::request(
                "DELETE",
                &format!("{g}/api/transactions?{ENCODED}"),
                &evil_header,
                None,
            )
            .unwrap(),
        ),
        (
            "415 content type",
            http::request(
                "POST",
                &format!("{g}/api/transactions"),
                &[
                    ("Authorization", &bearer),
                    (
                        "Content-Type",
                        "text/html; x=<script>alert(\"zap\")</script>",
                    ),
                ],
                Some(PAYLOAD.as_bytes()),
            )
            .unwrap(),
        ),
        (
            "421 host",
            http::raw(
                g,
                format!(
                    "GET /api/health HTTP/1.1\r\nHost: {FOREIGN_HOST}\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap(),
        ),
        (
            "200 health",
            http::get(&format!("{g}/_gateway/health?{ENCODED}"), &evil_header).unwrap(),
        ),
    ];
    let mut statuses = Vec::new();
    for (what, resp) in &cases {
        check(resp, what);
        statuses.push(resp.status);
    }
    // The cases really reached the answers they name.
    assert_eq!(
        statuses,
        [400, 404, 400, 400, 401, 403, 405, 415, 421, 200],
        "{statuses:?}"
    );
}
