//! The one place outcomes become responses: errors as `application/problem+json`, and every
//! response (errors, gateway endpoints, forwarded origin answers) decorated with the request id
//! and the security headers.

use gateway_core::error::{GatewayError, PROBLEM_CONTENT_TYPE};
use gateway_core::forward::{ORIGIN_HEADERS_REMOVED, SECURITY_HEADERS};
use gateway_core::names::REQUEST_ID_HEADER;
use worker::{Headers, Response};

/// The response for an error. Never fails: if the runtime refuses to build it, a bare 500.
pub(crate) fn error(
    err: &GatewayError,
    request_id: &str,
    extra: &[(&'static str, String)],
) -> Response {
    let body = serde_json::to_vec(&err.problem(request_id)).unwrap_or_default();
    let headers = Headers::new();
    let _ = headers.set("content-type", PROBLEM_CONTENT_TYPE);
    let _ = headers.set("cache-control", "no-store");
    for (name, value) in err.headers() {
        let _ = headers.set(name, &value);
    }
    let response = Response::builder()
        .with_status(err.code().status())
        .with_headers(headers)
        .fixed(body);
    decorate(response, request_id, extra, false)
}

/// A 204 from the gateway itself (CORS preflights); decorated by the caller.
pub(crate) fn no_content(extra: &[(&'static str, String)]) -> Response {
    let headers = Headers::new();
    for (name, value) in extra {
        let _ = headers.set(name, value);
    }
    Response::builder()
        .with_status(204)
        .with_headers(headers)
        .empty()
}

/// A JSON response from the gateway itself.
pub(crate) fn json(status: u16, value: &serde_json::Value, request_id: &str) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    let _ = headers.set("cache-control", "no-store");
    let response = Response::builder()
        .with_status(status)
        .with_headers(headers)
        .fixed(value.to_string().into_bytes());
    decorate(response, request_id, &[], false)
}

/// Copies the response's headers into a fresh, mutable set (fetched responses' headers are
/// immutable), drops what reveals the origin's software, and adds the request id and the
/// security headers. The body streams through untouched.
pub(crate) fn decorate(
    response: Response,
    request_id: &str,
    extra: &[(&'static str, String)],
    authenticated: bool,
) -> Response {
    let status = response.status_code();
    let headers = Headers::new();
    for (name, value) in response.headers().entries() {
        if !ORIGIN_HEADERS_REMOVED.contains(&name.as_str()) {
            let _ = headers.append(&name, &value);
        }
    }
    for (name, value) in SECURITY_HEADERS {
        let _ = headers.set(name, value);
    }
    let _ = headers.set(REQUEST_ID_HEADER, request_id);
    // Rate-limit headers: ours, which the origin's own may only tighten.
    let origin = response.headers();
    let merged =
        gateway_core::limit::merge_origin_headers(extra, |name| origin.get(name).ok().flatten());
    for (name, value) in merged {
        // A `Link` of ours (the API-key migration guide) joins the origin's links.
        let _ = if name == "link" {
            headers.append(name, &value)
        } else {
            headers.set(name, &value)
        };
    }
    // Authenticated answers are private: unless the origin chose a caching policy, none.
    if authenticated && !headers.has("cache-control").unwrap_or(false) {
        let _ = headers.set("cache-control", "no-store");
    }
    let (_, body) = response.into_parts();
    Response::builder()
        .with_status(status)
        .with_headers(headers)
        .body(body)
}
