//! The one place outcomes become responses: errors as `application/problem+json`, and every
//! response (errors, gateway endpoints, forwarded origin answers) decorated with the request id
//! and the security headers (`gateway_core::forward::response_headers`). Each response is built
//! in one `new Response` (`crate::http`).

use gateway_core::error::{GatewayError, PROBLEM_CONTENT_TYPE};
use gateway_core::forward::{response_headers, set_header};

use crate::http::{Body, HeaderList, decorated, read_headers, response};

/// The response for an error. Never fails: if the runtime refuses to build it, a bare 500.
pub(crate) fn error(
    err: &GatewayError,
    request_id: &str,
    extra: &[(&'static str, String)],
) -> web_sys::Response {
    let body = serde_json::to_vec(&err.problem(request_id)).unwrap_or_default();
    let mut own = vec![
        ("content-type".to_owned(), PROBLEM_CONTENT_TYPE.to_owned()),
        ("cache-control".to_owned(), "no-store".to_owned()),
    ];
    for (name, value) in err.headers() {
        set_header(&mut own, name, value);
    }
    let headers = response_headers(own, request_id, extra, false);
    response(err.code().status(), &headers, Body::Bytes(&body))
}

/// A 204 from the gateway itself (CORS preflights); decorated by the caller.
pub(crate) fn no_content(extra: &[(&'static str, String)]) -> web_sys::Response {
    response(204, extra, Body::Empty)
}

/// A JSON response from the gateway itself.
pub(crate) fn json(status: u16, value: &serde_json::Value, request_id: &str) -> web_sys::Response {
    let own = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("cache-control".to_owned(), "no-store".to_owned()),
    ];
    let headers = response_headers(own, request_id, &[], false);
    response(status, &headers, Body::Bytes(value.to_string().as_bytes()))
}

/// The response the client gets for `response` (the origin's, or one the gateway made): its
/// status and body (streamed through untouched), and its headers read in one call, decided
/// (`gateway_core::forward::response_headers`), and applied as edits to the runtime's own copy
/// of them (`http::decorated`): the headers that pass through unchanged never cross into wasm
/// and back.
pub(crate) fn decorate(
    response_in: web_sys::Response,
    request_id: &str,
    extra: &[(&'static str, String)],
    authenticated: bool,
) -> web_sys::Response {
    // Unreadable (it never is): none of the block is kept, and there is nothing to edit.
    let read = read_headers(&response_in.headers());
    let base = read.as_ref().map(HeaderList::pairs).unwrap_or_default();
    let owned = base.iter().map(|&(n, v)| (n.to_owned(), v.to_owned()));
    let headers = response_headers(owned, request_id, extra, authenticated);
    if read.is_some()
        && let Ok(edited) = decorated(&response_in, &base, &headers)
    {
        return edited;
    }
    // Unreadable, or the runtime refused an edit (it cannot: the values are checked): the
    // response built whole instead, or a bare 500 if its body went with the failed copy.
    response(
        response_in.status(),
        &headers,
        Body::Stream(response_in.body()),
    )
}
