//! The request gate: what a request must look like before its token or any counter is
//! consulted (header block size, body framing, `Content-Type` allowlist), each refusal a
//! [`GatewayError`].

use crate::error::GatewayError;
use crate::header_block::HeaderBlock;
use crate::method::Method;
use crate::route::Route;
use crate::shape::{header_block_size, is_json, media_type};

/// 431 when the header block exceeds `limit` bytes.
pub fn check_header_size<N: AsRef<str>, V: AsRef<str>>(
    headers: impl IntoIterator<Item = (N, V)>,
    limit: u64,
) -> Result<(), GatewayError> {
    if header_block_size(headers) > limit {
        return Err(GatewayError::HeadersTooLarge { limit });
    }
    Ok(())
}

/// 415 unless the body's `Content-Type` is on the route's allowlist. An empty allowlist accepts
/// any type; a request without a body is not checked.
pub fn check_content_type(
    content_type: Option<&str>,
    has_body: bool,
    allowlist: &[String],
) -> Result<Option<String>, GatewayError> {
    if allowlist.is_empty() || !has_body {
        return Ok(content_type.and_then(media_type));
    }
    match content_type.and_then(media_type) {
        Some(m) if allowlist.contains(&m) => Ok(Some(m)),
        _ => Err(GatewayError::UnsupportedMediaType {
            allowed: allowlist.to_vec(),
        }),
    }
}

/// The `Content-Length` a request declares: `None` without one; 400 unless it is all digits.
pub fn declared_length(headers: &HeaderBlock) -> Result<Option<u64>, GatewayError> {
    match headers.get("content-length") {
        None => Ok(None),
        Some(value) => Ok(Some(
            value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|_| value.trim().bytes().all(|b| b.is_ascii_digit()))
                .ok_or(GatewayError::InvalidRequest(
                    "The Content-Length header is not a number.",
                ))?,
        )),
    }
}

/// Body framing, checked before anything is read: a parseable `Content-Length` within
/// `max_body_bytes`, one framing only, and no body at all on methods that carry none. Returns
/// whether the framing announces a body (a non-zero `Content-Length`, or `Transfer-Encoding`).
pub fn check_body_framing(
    headers: &HeaderBlock,
    method: Method,
    max_body_bytes: u64,
) -> Result<bool, GatewayError> {
    let declared = declared_length(headers)?;
    let chunked = headers.has("transfer-encoding");
    if chunked && declared.is_some() {
        // The classic request-smuggling shape: two framings for one body.
        return Err(GatewayError::InvalidRequest(
            "A request must not carry both Content-Length and Transfer-Encoding.",
        ));
    }
    if !method.allows_body() && (declared.is_some_and(|n| n > 0) || chunked) {
        return Err(GatewayError::InvalidRequest(
            "This method must not carry a request body.",
        ));
    }
    if declared.is_some_and(|n| n > max_body_bytes) {
        return Err(GatewayError::PayloadTooLarge {
            limit: max_body_bytes,
        });
    }
    Ok(chunked || declared.is_some_and(|n| n > 0))
}

/// What the route's body checks found: the body's media type, and the nesting limit to check a
/// JSON body against while it is read (`None`: not JSON, or the route takes no JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyPlan {
    /// The body's media type (lower case, without parameters), if it has one.
    pub media_type: Option<String>,
    /// Check the body as JSON nested at most this deep.
    pub json_depth: Option<u32>,
}

/// The body stage for a route: framing, then the `Content-Type` allowlist. A body is announced
/// by its framing or (HTTP/2, HTTP/3) simply present without a length (`stream_present`).
pub fn body_plan(
    headers: &HeaderBlock,
    stream_present: bool,
    route: &Route,
    max_json_depth: u32,
) -> Result<BodyPlan, GatewayError> {
    let has_body = check_body_framing(headers, route.method, route.max_body_bytes)?
        || (stream_present && !headers.has("content-length"));
    let media_type =
        check_content_type(headers.get("content-type"), has_body, &route.content_types)?;
    let json = route.accepts_json() && media_type.as_deref().is_some_and(is_json);
    Ok(BodyPlan {
        media_type,
        json_depth: json.then_some(max_json_depth),
    })
}

/// A request body read chunk by chunk, kept only up to its limit.
#[derive(Debug)]
pub struct BodyBuffer {
    limit: u64,
    bytes: Vec<u8>,
}

impl BodyBuffer {
    /// An empty body that may grow to `limit` bytes.
    pub fn new(limit: u64) -> BodyBuffer {
        BodyBuffer {
            limit,
            bytes: Vec::new(),
        }
    }

    /// Adds a chunk; 413 (and nothing kept) once the body passes the limit, whatever its
    /// `Content-Length` said (a streamed body has none).
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), GatewayError> {
        let total = u64::try_from(self.bytes.len().saturating_add(chunk.len())).unwrap_or(u64::MAX);
        if total > self.limit {
            self.bytes = Vec::new();
            return Err(GatewayError::PayloadTooLarge { limit: self.limit });
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// The body read.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// A body read whole, checked as the body plan says: JSON well-formed and nested at most
/// `json_depth` deep (400 `invalid_body`). An empty body is no body: nothing to parse.
pub fn check_body(bytes: &[u8], json_depth: Option<u32>) -> Result<(), GatewayError> {
    match json_depth {
        Some(max_depth) if !bytes.is_empty() => {
            crate::shape::check_json(bytes, max_depth).map_err(GatewayError::InvalidBody)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_size_counts_names_values_and_framing() {
        let h = [("a", "bc"), ("host", "x")];
        assert_eq!(header_block_size(h), 7 + 9);
        assert!(check_header_size(h, 16).is_ok());
        assert_eq!(
            check_header_size(h, 15),
            Err(GatewayError::HeadersTooLarge { limit: 15 })
        );
    }

    #[test]
    fn body_framing_and_plan() {
        let p = crate::testing::policy();
        let list = crate::testing::route(&p, "tx.list");
        let create = crate::testing::route(&p, "tx.create");
        let h = |pairs: &[(&str, &str)]| HeaderBlock::from_pairs(pairs);
        let code =
            |r: Result<BodyPlan, GatewayError>| r.map_or_else(|e| e.code().as_str(), |_| "ok");
        let json = [
            ("content-type", "application/json"),
            ("content-length", "10"),
        ];
        let cases: [(&Route, HeaderBlock, bool, &str); 9] = [
            (list, h(&[]), false, "ok"),
            (list, h(&[("content-length", "0")]), false, "ok"),
            (
                list,
                h(&[("content-length", "5")]),
                false,
                "invalid_request",
            ),
            (
                list,
                h(&[("transfer-encoding", "chunked")]),
                true,
                "invalid_request",
            ),
            (
                create,
                h(&[("content-length", "x1")]),
                false,
                "invalid_request",
            ),
            (
                create,
                h(&[("content-length", "5"), ("transfer-encoding", "chunked")]),
                true,
                "invalid_request",
            ),
            (
                create,
                h(&[
                    ("content-length", "1001"),
                    ("content-type", "application/json"),
                ]),
                true,
                "payload_too_large",
            ),
            (
                create,
                h(&[("content-length", "10"), ("content-type", "text/plain")]),
                true,
                "unsupported_media_type",
            ),
            (create, h(&json), true, "ok"),
        ];
        for (route, headers, stream, expected) in cases {
            assert_eq!(
                code(body_plan(&headers, stream, route, 32)),
                expected,
                "{headers:?}"
            );
        }
        // A body without a length (HTTP/2) is a body: its type is checked.
        assert_eq!(
            code(body_plan(&h(&[]), true, create, 32)),
            "unsupported_media_type"
        );
        let plan = body_plan(&h(&json), true, create, 32).unwrap();
        assert_eq!(plan.json_depth, Some(32));
        assert_eq!(
            check_body(b"[[1]]", Some(1)).map_err(|e| e.code().as_str()),
            Err("invalid_body")
        );
        assert_eq!(check_body(b"", Some(1)), Ok(()));
        assert_eq!(check_body(b"not json", None), Ok(()));
        let mut buffer = BodyBuffer::new(4);
        assert_eq!(buffer.push(b"ab"), Ok(()));
        assert_eq!(buffer.push(b"cd"), Ok(()));
        assert_eq!(
            buffer.push(b"e"),
            Err(GatewayError::PayloadTooLarge { limit: 4 })
        );
        assert!(buffer.into_bytes().is_empty());
    }

    #[test]
    fn content_types() {
        let allow = vec!["application/json".to_owned()];
        assert_eq!(
            check_content_type(Some("application/json; charset=utf-8"), true, &allow),
            Ok(Some("application/json".to_owned()))
        );
        let refused = GatewayError::UnsupportedMediaType {
            allowed: allow.clone(),
        };
        assert_eq!(
            check_content_type(Some("text/plain"), true, &allow),
            Err(refused.clone())
        );
        assert_eq!(check_content_type(None, true, &allow), Err(refused));
        assert!(check_content_type(None, false, &allow).is_ok());
        assert!(check_content_type(Some("text/plain"), true, &[]).is_ok());
    }
}
