//! The request gate: what a request must look like before any route, token or counter is
//! consulted (header block size, `Content-Type` allowlist, body framing), each refusal a
//! [`GatewayError`].

use crate::error::GatewayError;
use crate::shape::{header_block_size, media_type};

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
