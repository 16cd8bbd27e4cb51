//! What crosses from the client to the origin: which inbound headers are dropped, and the
//! identity headers the gateway adds in their place. The Worker applies these rules; the rules
//! live here so they are tested natively.

use crate::identity::{Scope, VerifiedClaims};
use crate::names::{
    CLIENT_REQUEST_ID_HEADER, GATEWAY_HEADER_PREFIX, REQUEST_ID_HEADER, SIGNATURE_HEADER,
    identity_headers,
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

/// One `Vary` from the response's own (any number of header lines, each a comma list) and the
/// gateway's: every field name once (compared in any case, first spelling kept), or `*` when
/// either varies on everything. Replacing the origin's `Vary` would let a shared cache serve one
/// caller's response to another (RFC 9110 §12.5.5).
pub fn merge_vary(theirs: &[&str], ours: &str) -> String {
    let mut names: Vec<&str> = Vec::new();
    for name in theirs
        .iter()
        .chain(std::iter::once(&ours))
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        if name == "*" {
            return "*".to_owned();
        }
        if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            names.push(name);
        }
    }
    names.join(", ")
}

/// `Headers.set` on a list of pairs: every entry named `name` (any case) replaced by one.
pub fn set_header(list: &mut Vec<(String, String)>, name: &str, value: String) {
    list.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    list.push((name.to_owned(), value));
}

/// The headers of the response the client gets, from those of the response being decorated (the
/// origin's, or one the gateway made): the origin's software headers removed; the security
/// headers and the request id set; the gateway's own `extra` headers (rate limit, CORS, API-key
/// deprecation) set, a `Link` joining the origin's links, the rate-limit ones merged so the
/// origin's can only tighten them (`limit::merge_origin_headers`); and, on authenticated answers
/// that chose no caching policy, `Cache-Control: no-store`. Names compare in any case; a
/// repeated name (`Set-Cookie`) keeps all its entries unless the gateway sets it.
pub fn response_headers(
    base: impl IntoIterator<Item = (String, String)>,
    request_id: &str,
    extra: &[(&'static str, String)],
    authenticated: bool,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = base
        .into_iter()
        .filter(|(n, _)| {
            !ORIGIN_HEADERS_REMOVED
                .iter()
                .any(|r| n.eq_ignore_ascii_case(r))
        })
        .collect();
    let merged = crate::limit::merge_origin_headers(extra, |name| {
        out.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    });
    for (name, value) in SECURITY_HEADERS {
        set_header(&mut out, name, value.to_owned());
    }
    set_header(&mut out, REQUEST_ID_HEADER, request_id.to_owned());
    for (name, value) in merged {
        if name == "link" {
            out.push((name.to_owned(), value));
        } else if name == "vary" {
            let theirs: Vec<&str> = out
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("vary"))
                .map(|(_, v)| v.as_str())
                .collect();
            let joined = merge_vary(&theirs, &value);
            set_header(&mut out, name, joined);
        } else {
            set_header(&mut out, name, value);
        }
    }
    if authenticated
        && !out
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("cache-control"))
    {
        out.push(("cache-control".to_owned(), "no-store".to_owned()));
    }
    out
}

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
/// Dropped: hop-by-hop headers, `Content-Length` (the runtime sets it), every header of the
/// gateway's namespace (`x-gateway-*`, in any spelling: the gateway's own identity and
/// signature headers and any other name an origin might read there), the request-id headers,
/// every spelling of the legacy identity headers,
/// inbound `Forwarded`/`X-Forwarded-*` (the gateway sets its own from what the edge saw),
/// Cloudflare's `cf-*` headers, the operator's `strip` list (`gateway.strip_request_headers`),
/// and `Authorization` unless `forward_authorization` is set.
pub fn forwards_inbound_header(name: &str, forward_authorization: bool, strip: &[String]) -> bool {
    let name = folded(name);
    let name = name.as_str();
    if HOP_BY_HOP.contains(&name) || name == "content-length" {
        return false;
    }
    if name.starts_with(GATEWAY_HEADER_PREFIX)
        || identity_headers::ALL.contains(&name)
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
        (identity_headers::ISSUER, claims.issuer().to_string()),
        (identity_headers::SUBJECT, claims.subject().to_owned()),
        (identity_headers::ORG, claims.org().to_string()),
        (identity_headers::TIER, claims.tier().to_string()),
        (
            identity_headers::SCOPES,
            claims
                .scopes()
                .iter()
                .map(Scope::as_str)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        (identity_headers::ROUTE, route.0.clone()),
    ]
}

/// Why a subrequest produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchFailure {
    /// The peer could not be reached (connection refused, DNS, TLS...).
    Unreachable(String),
    /// No response headers within the timeout (the request was aborted).
    TimedOut,
}

/// The refusal for an origin that gave no response: 502 unreachable, 504 too slow.
pub fn origin_failed(failure: FetchFailure, timeout_ms: u64) -> crate::error::GatewayError {
    use crate::error::GatewayError;
    match failure {
        FetchFailure::Unreachable(detail) => GatewayError::OriginUnreachable(detail),
        FetchFailure::TimedOut => GatewayError::OriginTimeout { timeout_ms },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn values<'a>(list: &'a [(String, String)], name: &str) -> Vec<&'a str> {
        list.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn vary_is_merged_never_replaced() {
        let check = |theirs: &[&str], ours: &str, expected: &str| {
            assert_eq!(merge_vary(theirs, ours), expected, "{theirs:?} + {ours}");
        };
        check(&[], "Origin", "Origin");
        check(&["Accept-Encoding"], "Origin", "Accept-Encoding, Origin");
        check(
            &["Accept-Encoding, Authorization", "Accept-Language"],
            "Origin",
            "Accept-Encoding, Authorization, Accept-Language, Origin",
        );
        check(&["origin, Accept"], "Origin", "origin, Accept");
        check(&["*"], "Origin", "*");
        check(&[" , "], "Origin", "Origin");
        // Through the response headers: the origin's lines become one merged line.
        let origin = pairs(&[("Vary", "Accept-Encoding"), ("vary", "Authorization")]);
        let out = response_headers(origin, "req-1", &[("vary", "Origin".to_owned())], false);
        assert_eq!(
            values(&out, "vary"),
            ["Accept-Encoding, Authorization, Origin"]
        );
    }

    #[test]
    fn response_headers_replace_what_the_gateway_owns_and_keep_the_rest() {
        let origin = pairs(&[
            ("content-type", "application/json"),
            ("Server", "nginx/1.25"),
            ("x-powered-by", "Express"),
            ("x-frame-options", "SAMEORIGIN"),
            ("x-request-id", "origin-chose-this"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("link", "</next>; rel=\"next\""),
        ]);
        let extra = [(
            "link",
            "<https://docs/keys>; rel=\"deprecation\"".to_owned(),
        )];
        let out = response_headers(origin, "req-1", &extra, false);
        assert!(values(&out, "server").is_empty() && values(&out, "Server").is_empty());
        assert!(values(&out, "x-powered-by").is_empty());
        assert_eq!(values(&out, "x-frame-options"), ["DENY"]);
        assert_eq!(values(&out, "x-request-id"), ["req-1"]);
        assert_eq!(values(&out, "content-type"), ["application/json"]);
        assert_eq!(values(&out, "set-cookie"), ["a=1", "b=2"]);
        assert_eq!(values(&out, "link").len(), 2, "ours joins the origin's");
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(values(&out, name), [value], "{name}");
        }
        assert!(
            values(&out, "cache-control").is_empty(),
            "not authenticated"
        );
    }

    #[test]
    fn authenticated_answers_are_not_cached_unless_the_origin_says_so() {
        let out = response_headers(pairs(&[]), "r", &[], true);
        assert_eq!(values(&out, "cache-control"), ["no-store"]);
        let out = response_headers(
            pairs(&[("Cache-Control", "private, max-age=60")]),
            "r",
            &[],
            true,
        );
        assert_eq!(values(&out, "Cache-Control"), ["private, max-age=60"]);
        assert!(values(&out, "cache-control").is_empty());
    }

    #[test]
    fn the_origin_can_only_tighten_the_rate_limit_headers() {
        use crate::names::rate_limit_headers as h;
        let ours = [
            (h::LIMIT, "100".to_owned()),
            (h::REMAINING, "50".to_owned()),
            (h::RESET, "30".to_owned()),
        ];
        let tighter = pairs(&[(h::LIMIT, "10"), (h::REMAINING, "3"), (h::RESET, "5")]);
        let out = response_headers(tighter, "r", &ours, true);
        assert_eq!(values(&out, h::REMAINING), ["3"]);
        assert_eq!(values(&out, h::LIMIT), ["10"]);
        let looser = pairs(&[(h::REMAINING, "99")]);
        let out = response_headers(looser, "r", &ours, true);
        assert_eq!(values(&out, h::REMAINING), ["50"]);
    }

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
            "X-Gateway-Sub",
            "X_Gateway_Identity",
            "x-gateway-",
            "X-GATEWAY-ANYTHING",
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

    #[test]
    fn an_origin_without_a_response_is_502_or_504() {
        let unreachable = origin_failed(FetchFailure::Unreachable("refused".into()), 10);
        assert_eq!(unreachable.code().status(), 502);
        let slow = origin_failed(FetchFailure::TimedOut, 10_000);
        assert_eq!(
            slow,
            crate::error::GatewayError::OriginTimeout { timeout_ms: 10_000 }
        );
        assert_eq!(slow.code().status(), 504);
    }
}
