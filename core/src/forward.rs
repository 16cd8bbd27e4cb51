//! What crosses from the client to the origin: which inbound headers are dropped, and the
//! identity headers the gateway adds in their place. The Worker applies these rules; the rules
//! live here so they are tested natively.

use crate::identity::VerifiedClaims;
use crate::names::{
    CLIENT_REQUEST_ID_HEADER, REQUEST_ID_HEADER, SIGNATURE_HEADER, identity_headers,
};
use crate::route::RouteId;

/// Hop-by-hop headers (RFC 9110 section 7.6.1) and headers the runtime sets itself.
pub const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Legacy identity headers some origins still read; never accepted from clients.
pub const LEGACY_IDENTITY_HEADERS: [&str; 5] = [
    "x-user-id",
    "x-user-roles",
    "x-org-id",
    "x-tenant-id",
    "x-forwarded-user",
];

/// Headers that would make the origin see another method or URL than the one the gateway
/// routed, checked scopes for and charged: never forwarded.
pub const OVERRIDE_HEADERS: [&str; 4] = [
    "x-http-method-override",
    "x-http-method",
    "x-original-url",
    "x-rewrite-url",
];

/// Security headers the gateway puts on every response it returns.
pub const SECURITY_HEADERS: [(&str, &str); 8] = [
    (
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=()",
    ),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("cross-origin-resource-policy", "same-origin"),
    // OWASP's advice: turn the legacy XSS auditor off (its "block" mode enabled cross-site
    // leaks); modern browsers ignore the header, CSP does the job.
    ("x-xss-protection", "0"),
];

/// Origin response headers that reveal the origin's software; removed before the client sees them.
pub const ORIGIN_HEADERS_REMOVED: [&str; 2] = ["server", "x-powered-by"];

/// A header name folded the way frameworks fold it into variables: lower case, `_` as `-`
/// (`X_User_ID` reaches a CGI/WSGI app as the same variable as `X-User-ID`).
fn folded(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b == b'_' {
                '-'
            } else {
                char::from(b.to_ascii_lowercase())
            }
        })
        .collect()
}

/// Whether an inbound request header is forwarded to the origin as it is.
///
/// Dropped: hop-by-hop headers, `Content-Length` (the runtime sets it), every spelling of the
/// gateway's identity, request-id and signature headers and of the legacy identity headers,
/// inbound `Forwarded`/`X-Forwarded-*` (the gateway sets its own from what the edge saw),
/// Cloudflare's `cf-*` headers, the operator's `strip` list (`gateway.strip_request_headers`),
/// and `Authorization` unless `forward_authorization` is set.
pub fn forwards_inbound_header(name: &str, forward_authorization: bool, strip: &[String]) -> bool {
    let name = folded(name);
    let name = name.as_str();
    if HOP_BY_HOP.contains(&name) || name == "content-length" {
        return false;
    }
    if identity_headers::ALL.contains(&name)
        || LEGACY_IDENTITY_HEADERS.contains(&name)
        || OVERRIDE_HEADERS.contains(&name)
        || name == REQUEST_ID_HEADER
        || name == CLIENT_REQUEST_ID_HEADER
        || name == SIGNATURE_HEADER
        || strip.iter().any(|s| folded(s) == name)
    {
        return false;
    }
    if name == "forwarded"
        || name.starts_with("x-forwarded-")
        || name.starts_with("cf-")
        || name == "x-real-ip"
    {
        return false;
    }
    if name == "authorization" {
        return forward_authorization;
    }
    true
}

/// The identity headers for a verified caller on a route.
pub fn identity_header_values(
    claims: &VerifiedClaims,
    route: &RouteId,
) -> Vec<(&'static str, String)> {
    vec![
        (identity_headers::ISSUER, claims.issuer.clone()),
        (identity_headers::SUBJECT, claims.subject.clone()),
        (identity_headers::ORG, claims.org.0.clone()),
        (identity_headers::TIER, claims.tier.clone()),
        (identity_headers::SCOPES, claims.scopes.join(" ")),
        (identity_headers::ROUTE, route.0.clone()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, forward_authorization: bool, expected: bool) {
        assert_eq!(
            forwards_inbound_header(name, forward_authorization, &[]),
            expected,
            "{name}"
        );
    }

    #[test]
    fn ordinary_headers_pass() {
        for name in [
            "accept",
            "content-type",
            "x-custom-thing",
            "User-Agent",
            "idempotency-key",
        ] {
            check(name, false, true);
        }
    }

    #[test]
    fn identity_headers_are_dropped_in_every_spelling() {
        for name in [
            "x-gateway-org",
            "X-Gateway-Org",
            "X_Gateway_Org",
            "x_gateway_subject",
            "X-User-ID",
            "x_user_id",
            "X-USER-ROLES",
            "X-Org-Id",
            "x-request-id",
            "X_Request_Id",
            "x-gateway-signature",
            "X-HTTP-Method-Override",
            "x_original_url",
            "X-Rewrite-URL",
            "X-Client-Request-ID",
        ] {
            check(name, false, false);
        }
    }

    #[test]
    fn the_operators_list_is_stripped_in_every_spelling() {
        let strip = vec!["X-Employee-ID".to_owned()];
        for name in ["x-employee-id", "X_EMPLOYEE_ID", "X-Employee-Id"] {
            assert!(!forwards_inbound_header(name, false, &strip), "{name}");
        }
        assert!(forwards_inbound_header("x-employee", false, &strip));
    }

    #[test]
    fn hop_by_hop_forwarding_and_platform_headers_are_dropped() {
        for name in [
            "Connection",
            "Transfer-Encoding",
            "TE",
            "Upgrade",
            "Host",
            "Content-Length",
            "Forwarded",
            "X-Forwarded-For",
            "x_forwarded_host",
            "X-Real-IP",
            "CF-Connecting-IP",
        ] {
            check(name, false, false);
        }
    }

    #[test]
    fn authorization_is_forwarded_only_when_configured() {
        check("Authorization", false, false);
        check("authorization", true, true);
    }
}
