//! The error model: one type for everything the gateway refuses or fails at, and its one
//! client-facing shape, `application/problem+json` (RFC 9457) with a stable `error` code
//! and a `message` field. The Worker maps a [`GatewayError`] to a response in exactly one place
//! (`src/respond.rs`), using [`GatewayError::problem`] and [`GatewayError::headers`].
//!
//! Internal detail ([`GatewayError::Internal`], upstream failures) goes to the log through
//! [`GatewayError::log_detail`], never to the client.

use serde::Serialize;

use crate::identity::{IdentityClaim, RequiredClaim, TokenRejection};
use crate::method::Method;
use crate::path::PathRejection;

/// Stable error codes, the `error` member of every problem body. The list is part of the
/// public contract (README, "Errors"): codes are added, never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: the request is malformed (header, body framing).
    InvalidRequest,
    /// 400: the path is not in a form the gateway will route.
    InvalidPath,
    /// 414: the path is too long.
    UriTooLong,
    /// 404: no route matches the path.
    RouteNotFound,
    /// 405: the path is routed, not for this method.
    MethodNotAllowed,
    /// 413: the body is larger than the route allows.
    PayloadTooLarge,
    /// 415: the body's media type is not accepted by the route.
    UnsupportedMediaType,
    /// 400: the JSON body is not well-formed or nests too deep.
    InvalidBody,
    /// 431: the request's header block is too large.
    HeadersTooLarge,
    /// 421: the request addressed a host this deployment does not serve.
    MisdirectedRequest,
    /// 401: no bearer token on a protected route.
    MissingToken,
    /// 401: the token is malformed, badly signed, from an unknown issuer, or for another audience.
    InvalidToken,
    /// 401: the token has expired.
    TokenExpired,
    /// 403: the token lacks a scope the route requires.
    InsufficientScope,
    /// 429: the organisation is over its limit; retry after `Retry-After`.
    RateLimited,
    /// 429: the request's cost exceeds the whole limit; retrying cannot help.
    CostExceedsLimit,
    /// 502: the origin could not be reached.
    OriginUnreachable,
    /// 504: the origin did not answer in time.
    OriginTimeout,
    /// 503: the counter store is unavailable and the route fails closed.
    LimiterUnavailable,
    /// 503: the gateway's deployment configuration is invalid.
    GatewayMisconfigured,
    /// 503: the token issuer's keys could not be fetched and none are cached.
    IssuerUnavailable,
    /// 500: a bug; details are in the log under the request id.
    InternalError,
    /// 401: the token (or its subject or organisation) was revoked.
    TokenRevoked,
    /// 401: the API key is not one the gateway knows.
    InvalidApiKey,
    /// 401: the API key passed its cut-off date.
    ApiKeyExpired,
    /// 403: the route requires a verified client certificate, or the token is bound to another.
    ClientCertificateRequired,
}

impl ErrorCode {
    /// Every code, for docs and tests.
    pub const ALL: [ErrorCode; 26] = [
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidPath,
        ErrorCode::UriTooLong,
        ErrorCode::RouteNotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::InvalidBody,
        ErrorCode::HeadersTooLarge,
        ErrorCode::MisdirectedRequest,
        ErrorCode::MissingToken,
        ErrorCode::InvalidToken,
        ErrorCode::TokenExpired,
        ErrorCode::InsufficientScope,
        ErrorCode::RateLimited,
        ErrorCode::CostExceedsLimit,
        ErrorCode::OriginUnreachable,
        ErrorCode::OriginTimeout,
        ErrorCode::LimiterUnavailable,
        ErrorCode::GatewayMisconfigured,
        ErrorCode::IssuerUnavailable,
        ErrorCode::InternalError,
        ErrorCode::TokenRevoked,
        ErrorCode::InvalidApiKey,
        ErrorCode::ApiKeyExpired,
        ErrorCode::ClientCertificateRequired,
    ];

    /// The code string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidPath => "invalid_path",
            ErrorCode::UriTooLong => "uri_too_long",
            ErrorCode::RouteNotFound => "route_not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::InvalidBody => "invalid_body",
            ErrorCode::HeadersTooLarge => "headers_too_large",
            ErrorCode::MisdirectedRequest => "misdirected_request",
            ErrorCode::MissingToken => "missing_token",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::RateLimited => "rate_limit_exceeded",
            ErrorCode::CostExceedsLimit => "cost_exceeds_limit",
            ErrorCode::OriginUnreachable => "origin_unreachable",
            ErrorCode::OriginTimeout => "origin_timeout",
            ErrorCode::LimiterUnavailable => "limiter_unavailable",
            ErrorCode::GatewayMisconfigured => "gateway_misconfigured",
            ErrorCode::IssuerUnavailable => "issuer_unavailable",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::TokenRevoked => "token_revoked",
            ErrorCode::InvalidApiKey => "invalid_api_key",
            ErrorCode::ApiKeyExpired => "api_key_expired",
            ErrorCode::ClientCertificateRequired => "client_certificate_required",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest | ErrorCode::InvalidPath | ErrorCode::InvalidBody => 400,
            ErrorCode::MissingToken
            | ErrorCode::InvalidToken
            | ErrorCode::TokenExpired
            | ErrorCode::TokenRevoked
            | ErrorCode::InvalidApiKey
            | ErrorCode::ApiKeyExpired => 401,
            ErrorCode::InsufficientScope | ErrorCode::ClientCertificateRequired => 403,
            ErrorCode::RouteNotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UriTooLong => 414,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::MisdirectedRequest => 421,
            ErrorCode::HeadersTooLarge => 431,
            ErrorCode::RateLimited | ErrorCode::CostExceedsLimit => 429,
            ErrorCode::InternalError => 500,
            ErrorCode::OriginUnreachable => 502,
            ErrorCode::LimiterUnavailable
            | ErrorCode::GatewayMisconfigured
            | ErrorCode::IssuerUnavailable => 503,
            ErrorCode::OriginTimeout => 504,
        }
    }

    /// The problem `title`: short, fixed per code.
    pub fn title(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "Invalid request",
            ErrorCode::InvalidPath => "Invalid path",
            ErrorCode::UriTooLong => "URI too long",
            ErrorCode::RouteNotFound => "Not found",
            ErrorCode::MethodNotAllowed => "Method not allowed",
            ErrorCode::PayloadTooLarge => "Payload too large",
            ErrorCode::UnsupportedMediaType => "Unsupported media type",
            ErrorCode::InvalidBody => "Invalid request body",
            ErrorCode::HeadersTooLarge => "Request header fields too large",
            ErrorCode::MisdirectedRequest => "Misdirected request",
            ErrorCode::MissingToken => "Authentication required",
            ErrorCode::InvalidToken => "Invalid access token",
            ErrorCode::TokenExpired => "Access token expired",
            ErrorCode::InsufficientScope => "Insufficient scope",
            ErrorCode::RateLimited => "Rate limit exceeded",
            ErrorCode::CostExceedsLimit => "Request cost exceeds the limit",
            ErrorCode::OriginUnreachable => "Bad gateway",
            ErrorCode::OriginTimeout => "Gateway timeout",
            ErrorCode::LimiterUnavailable => "Service unavailable",
            ErrorCode::GatewayMisconfigured => "Service unavailable",
            ErrorCode::IssuerUnavailable => "Service unavailable",
            ErrorCode::InternalError => "Internal error",
            ErrorCode::TokenRevoked => "Access token revoked",
            ErrorCode::InvalidApiKey => "Invalid API key",
            ErrorCode::ApiKeyExpired => "API key retired",
            ErrorCode::ClientCertificateRequired => "Client certificate required",
        }
    }

    /// The problem `type` URI.
    pub fn type_uri(self) -> String {
        format!("{PROBLEM_TYPE_BASE}{}", self.as_str())
    }
}

/// Base of every problem `type` (a URN, so nothing needs to be hosted).
pub const PROBLEM_TYPE_BASE: &str = "urn:edge-gateway:error:";
/// `Content-Type` of every error body.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";
/// The RFC 6750 realm in `WWW-Authenticate`.
pub const AUTH_REALM: &str = "api";

/// Who caused an error: decides the log level and whether a retry can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The client sent something the gateway refuses.
    Downstream,
    /// The origin or a peer (JWKS endpoint, counter store) failed.
    Upstream,
    /// The gateway itself (bug or misconfiguration).
    Internal,
}

/// Everything the gateway refuses or fails at.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GatewayError {
    /// A malformed header or body framing; the text is safe to show.
    InvalidRequest(&'static str),
    /// The path failed normalisation.
    InvalidPath(PathRejection),
    /// No route matches.
    RouteNotFound,
    /// The path is routed for other methods.
    MethodNotAllowed {
        /// Methods that would match.
        allowed: Vec<Method>,
    },
    /// The body exceeds the route's limit.
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The body's media type is refused.
    UnsupportedMediaType {
        /// The media types the route accepts.
        allowed: Vec<String>,
    },
    /// The JSON body was refused.
    InvalidBody(crate::shape::JsonRejection),
    /// The header block is over the limit.
    HeadersTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The `Host` is not on the deployment's allowlist.
    MisdirectedRequest,
    /// No bearer token on a protected route.
    MissingToken,
    /// Credentials in another scheme (Basic, Digest, API key...): only bearer tokens are accepted.
    UnsupportedScheme,
    /// The bearer token was refused (401 `invalid_token`, or `token_expired`).
    TokenRejected(TokenRejection),
    /// The token lacks scopes.
    InsufficientScope {
        /// The scopes the route requires.
        required: Vec<String>,
        /// The scopes the token holds.
        granted: Vec<String>,
    },
    /// Over the limit; retry after this many seconds.
    RateLimited {
        /// Seconds until the same request fits.
        retry_after_secs: u64,
        /// The limit of the window that refused it, cost units.
        limit: u32,
        /// The organisation's tier.
        tier: String,
        /// Where to upgrade (the tier's `upgrade_url`, e.g. on the free tier).
        upgrade_url: Option<String>,
    },
    /// The request's cost exceeds the whole limit.
    CostExceedsLimit {
        /// The request's cost.
        cost: u32,
        /// The largest limit it has to fit in.
        limit: u32,
    },
    /// The origin could not be reached; the detail is logged only.
    OriginUnreachable(String),
    /// The origin did not answer within the timeout.
    OriginTimeout {
        /// The timeout, in milliseconds.
        timeout_ms: u64,
    },
    /// The counter store failed; the detail is logged only.
    LimiterUnavailable(String),
    /// Deployment configuration is invalid; the detail is logged only.
    Misconfigured(String),
    /// The issuer's keys are unavailable; the detail is logged only.
    IssuerUnavailable(String),
    /// A bug; the detail is logged only.
    Internal(String),
    /// The token is covered by a revocation (`org`, `subject` or `token`).
    TokenRevoked {
        /// What the matching entry covers.
        scope: crate::revocation::RevocationKind,
    },
    /// A client over a limit before authentication (per client IP).
    ClientRateLimited {
        /// Seconds until one more unit fits.
        retry_after_secs: u64,
        /// The limit of the window that ran out.
        limit: u32,
        /// Whether it counts an auth route's failures (else the gateway-wide class).
        failures: bool,
    },
    /// A valid token from an issuer that may not use the admin API.
    AdminIssuerRefused,
    /// A malformed admin request; the text is safe to show.
    InvalidAdminRequest(String),
    /// An API key the gateway does not know.
    InvalidApiKey,
    /// An API key past its cut-off.
    ApiKeyExpired {
        /// The cut-off, as an HTTP date.
        sunset: String,
        /// The migration guide.
        guide: String,
    },
    /// Both a bearer token and an API key.
    TwoCredentials,
    /// The route requires a verified client certificate and the request has none.
    ClientCertificateRequired,
    /// The token is bound to a certificate (`cnf.x5t#S256`) the request did not present.
    CertificateMismatch,
}

impl GatewayError {
    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            GatewayError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            GatewayError::InvalidPath(PathRejection::TooLong) => ErrorCode::UriTooLong,
            GatewayError::InvalidPath(_) => ErrorCode::InvalidPath,
            GatewayError::RouteNotFound => ErrorCode::RouteNotFound,
            GatewayError::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            GatewayError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            GatewayError::UnsupportedMediaType { .. } => ErrorCode::UnsupportedMediaType,
            GatewayError::InvalidBody(_) => ErrorCode::InvalidBody,
            GatewayError::HeadersTooLarge { .. } => ErrorCode::HeadersTooLarge,
            GatewayError::MisdirectedRequest => ErrorCode::MisdirectedRequest,
            GatewayError::MissingToken | GatewayError::UnsupportedScheme => ErrorCode::MissingToken,
            GatewayError::TokenRejected(rejection) => rejection.code(),
            GatewayError::InsufficientScope { .. } => ErrorCode::InsufficientScope,
            GatewayError::RateLimited { .. } => ErrorCode::RateLimited,
            GatewayError::CostExceedsLimit { .. } => ErrorCode::CostExceedsLimit,
            GatewayError::OriginUnreachable(_) => ErrorCode::OriginUnreachable,
            GatewayError::OriginTimeout { .. } => ErrorCode::OriginTimeout,
            GatewayError::LimiterUnavailable(_) => ErrorCode::LimiterUnavailable,
            GatewayError::Misconfigured(_) => ErrorCode::GatewayMisconfigured,
            GatewayError::IssuerUnavailable(_) => ErrorCode::IssuerUnavailable,
            GatewayError::Internal(_) => ErrorCode::InternalError,
            GatewayError::TokenRevoked { .. } => ErrorCode::TokenRevoked,
            GatewayError::ClientRateLimited { .. } => ErrorCode::RateLimited,
            GatewayError::AdminIssuerRefused => ErrorCode::InsufficientScope,
            GatewayError::InvalidAdminRequest(_) | GatewayError::TwoCredentials => {
                ErrorCode::InvalidRequest
            }
            GatewayError::InvalidApiKey => ErrorCode::InvalidApiKey,
            GatewayError::ApiKeyExpired { .. } => ErrorCode::ApiKeyExpired,
            GatewayError::ClientCertificateRequired => ErrorCode::ClientCertificateRequired,
            GatewayError::CertificateMismatch => ErrorCode::InvalidToken,
        }
    }

    /// Who caused it.
    pub fn fault(&self) -> Fault {
        match self {
            GatewayError::OriginUnreachable(_)
            | GatewayError::OriginTimeout { .. }
            | GatewayError::LimiterUnavailable(_)
            | GatewayError::IssuerUnavailable(_) => Fault::Upstream,
            GatewayError::Misconfigured(_) | GatewayError::Internal(_) => Fault::Internal,
            _ => Fault::Downstream,
        }
    }

    /// Whether the same request may succeed later.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            GatewayError::RateLimited { .. }
                | GatewayError::ClientRateLimited { .. }
                | GatewayError::OriginUnreachable(_)
                | GatewayError::OriginTimeout { .. }
                | GatewayError::LimiterUnavailable(_)
                | GatewayError::IssuerUnavailable(_)
        )
    }

    /// The client-safe explanation (`detail` and `message`).
    pub fn message(&self) -> String {
        match self {
            GatewayError::InvalidRequest(why) => (*why).to_owned(),
            GatewayError::InvalidPath(why) => format!("Invalid request path: {why}."),
            GatewayError::RouteNotFound => "No route matches this path.".to_owned(),
            GatewayError::MethodNotAllowed { allowed } => format!(
                "This path accepts only: {}.",
                allowed
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            GatewayError::PayloadTooLarge { limit } => {
                format!("The request body exceeds this route's limit of {limit} bytes.")
            }
            GatewayError::UnsupportedMediaType { allowed } => format!(
                "This route accepts request bodies only as: {}.",
                allowed.join(", ")
            ),
            GatewayError::InvalidBody(why) => why.to_string(),
            GatewayError::HeadersTooLarge { limit } => format!(
                "The request's headers exceed the limit of {limit} bytes."
            ),
            GatewayError::MisdirectedRequest => {
                "This host is not served by this gateway.".to_owned()
            }
            GatewayError::MissingToken => {
                "This route requires an access token in the 'Authorization: Bearer' header.".to_owned()
            }
            GatewayError::UnsupportedScheme => {
                "Only Bearer access tokens are accepted ('Authorization: Bearer <token>'); Basic and other schemes are refused."
                    .to_owned()
            }
            GatewayError::TokenRejected(TokenRejection::Expired { .. }) => {
                "Access token has expired. Use your refresh token to get a new one.".to_owned()
            }
            GatewayError::TokenRejected(rejection) => {
                format!("The access token was rejected: {}.", rejection.description())
            }
            GatewayError::InsufficientScope { required, .. } => {
                format!("This route requires the scopes: {}.", required.join(" "))
            }
            GatewayError::RateLimited { retry_after_secs, limit, tier, .. } => {
                format!(
                    "Rate limit exceeded: your organisation's {tier} tier allows {limit} cost units per window. Retry in {retry_after_secs} s."
                )
            }
            GatewayError::CostExceedsLimit { cost, limit } => format!(
                "This request costs {cost} units, more than your tier's whole limit of {limit}; retrying will not help."
            ),
            GatewayError::OriginUnreachable(_) => {
                "The upstream service could not be reached.".to_owned()
            }
            GatewayError::OriginTimeout { .. } => {
                "The upstream service did not answer in time.".to_owned()
            }
            GatewayError::LimiterUnavailable(_)
            | GatewayError::Misconfigured(_)
            | GatewayError::IssuerUnavailable(_) => {
                "The service is temporarily unavailable.".to_owned()
            }
            GatewayError::Internal(_) => "An internal error occurred.".to_owned(),
            GatewayError::TokenRevoked { scope } => format!(
                "The access token has been revoked (by a {} revocation). Sign in again; if this persists, contact the API operator.",
                scope.as_str()
            ),
            GatewayError::ClientRateLimited { retry_after_secs, limit, failures } => {
                if *failures {
                    format!(
                        "Too many failed attempts from your network: at most {limit} per window. Retry in {retry_after_secs} s."
                    )
                } else {
                    format!(
                        "Too many unauthenticated or failed requests from your network: at most {limit} per window. Retry in {retry_after_secs} s."
                    )
                }
            }
            GatewayError::AdminIssuerRefused => {
                "The admin API accepts only tokens from the admin issuer.".to_owned()
            }
            GatewayError::InvalidAdminRequest(why) => format!("Invalid admin request: {why}."),
            GatewayError::InvalidApiKey => "The API key is not recognised.".to_owned(),
            GatewayError::ApiKeyExpired { sunset, guide } => format!(
                "This API key was retired on {sunset}. Use an OAuth access token instead: {guide}"
            ),
            GatewayError::TwoCredentials => {
                "Send either a bearer token or an API key, not both.".to_owned()
            }
            GatewayError::ClientCertificateRequired => {
                "This route requires a verified TLS client certificate.".to_owned()
            }
            GatewayError::CertificateMismatch => {
                "The access token was rejected: it is bound to a client certificate this request did not present.".to_owned()
            }
        }
    }

    /// What the log gets: the code, and any internal detail the client must not see.
    pub fn log_detail(&self) -> String {
        match self {
            GatewayError::OriginUnreachable(d)
            | GatewayError::LimiterUnavailable(d)
            | GatewayError::Misconfigured(d)
            | GatewayError::IssuerUnavailable(d)
            | GatewayError::Internal(d) => format!("{}: {d}", self.code().as_str()),
            GatewayError::OriginTimeout { timeout_ms } => {
                format!("{}: no answer within {timeout_ms} ms", self.code().as_str())
            }
            _ => format!("{}: {}", self.code().as_str(), self.message()),
        }
    }

    /// The problem+json body.
    pub fn problem(&self, request_id: &str) -> Problem {
        let code = self.code();
        let message = self.message();
        Problem {
            type_uri: code.type_uri(),
            title: code.title(),
            status: code.status(),
            detail: message.clone(),
            request_id: request_id.to_owned(),
            error: code.as_str(),
            message,
            required: match self {
                GatewayError::InsufficientScope { required, .. } => Some(required.clone()),
                _ => None,
            },
            granted: match self {
                GatewayError::InsufficientScope { granted, .. } => Some(granted.clone()),
                _ => None,
            },
            retry_after: match self {
                GatewayError::RateLimited {
                    retry_after_secs, ..
                }
                | GatewayError::ClientRateLimited {
                    retry_after_secs, ..
                } => Some(*retry_after_secs),
                _ => None,
            },
            limit: match self {
                GatewayError::RateLimited { limit, .. }
                | GatewayError::ClientRateLimited { limit, .. }
                | GatewayError::CostExceedsLimit { limit, .. } => Some(*limit),
                _ => None,
            },
            remaining: matches!(
                self,
                GatewayError::RateLimited { .. } | GatewayError::ClientRateLimited { .. }
            )
            .then_some(0),
            tier: match self {
                GatewayError::RateLimited { tier, .. } => Some(tier.clone()),
                _ => None,
            },
            upgrade_url: match self {
                GatewayError::RateLimited { upgrade_url, .. } => upgrade_url.clone(),
                _ => None,
            },
        }
    }

    /// Headers the response must carry besides `Content-Type`.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let bearer = |error: &str, description: &str| {
            format!(
                "Bearer realm=\"{AUTH_REALM}\", error=\"{error}\", error_description=\"{description}\""
            )
        };
        match self {
            GatewayError::MethodNotAllowed { allowed } => vec![(
                "allow",
                allowed
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            )],
            GatewayError::MissingToken | GatewayError::UnsupportedScheme => {
                vec![("www-authenticate", format!("Bearer realm=\"{AUTH_REALM}\""))]
            }
            GatewayError::TokenRejected(rejection) => {
                vec![(
                    "www-authenticate",
                    bearer("invalid_token", rejection.description()),
                )]
            }
            GatewayError::InsufficientScope { required, .. } => vec![(
                "www-authenticate",
                format!(
                    "Bearer realm=\"{AUTH_REALM}\", error=\"insufficient_scope\", scope=\"{}\"",
                    required.join(" ")
                ),
            )],
            GatewayError::RateLimited {
                retry_after_secs, ..
            }
            | GatewayError::ClientRateLimited {
                retry_after_secs, ..
            } => {
                vec![("retry-after", retry_after_secs.to_string())]
            }
            GatewayError::TokenRevoked { .. } => vec![(
                "www-authenticate",
                bearer("invalid_token", "the token has been revoked"),
            )],
            GatewayError::CertificateMismatch => vec![(
                "www-authenticate",
                bearer(
                    "invalid_token",
                    "the token is bound to another client certificate",
                ),
            )],
            GatewayError::InvalidApiKey | GatewayError::ApiKeyExpired { .. } => {
                vec![("www-authenticate", format!("Bearer realm=\"{AUTH_REALM}\""))]
            }
            GatewayError::LimiterUnavailable(_)
            | GatewayError::Misconfigured(_)
            | GatewayError::IssuerUnavailable(_) => vec![("retry-after", "5".to_owned())],
            _ => vec![],
        }
    }
}

impl TokenRejection {
    /// The stable code: `token_expired` for an expired token, `invalid_token` for every other
    /// reason.
    pub fn code(&self) -> ErrorCode {
        match self {
            TokenRejection::Expired { .. } => ErrorCode::TokenExpired,
            _ => ErrorCode::InvalidToken,
        }
    }

    /// The client-safe reason: the RFC 6750 `error_description`, and the end of the problem's
    /// `detail` ("The access token was rejected: <reason>.").
    pub fn description(&self) -> &'static str {
        match self {
            TokenRejection::TooLarge => "the token is too large",
            TokenRejection::Malformed => "the token is malformed",
            TokenRejection::MalformedClaims => "the token's claims are malformed",
            TokenRejection::Unsigned => "unsigned tokens are not accepted",
            TokenRejection::AlgorithmMismatch { .. } => {
                "the token's algorithm is not accepted for its issuer"
            }
            TokenRejection::CriticalHeader => "the token has critical header parameters",
            TokenRejection::NotAnAccessToken => "the token is not an access token (typ)",
            TokenRejection::WrongIssuer => "the token's issuer is not trusted",
            TokenRejection::UnknownKey => "the token's signing key is unknown",
            TokenRejection::AmbiguousKey => "the token does not identify its signing key (kid)",
            TokenRejection::BadSignature => "the token's signature is invalid",
            TokenRejection::Expired { .. } => "the token has expired",
            TokenRejection::NotYetValid => "the token is not valid yet",
            TokenRejection::IssuedInFuture => "the token was issued in the future",
            TokenRejection::LifetimeTooLong => "the token's lifetime exceeds the allowed maximum",
            TokenRejection::WrongAudience => "the token is not for this API (audience)",
            TokenRejection::MissingClaim { name } => match name {
                RequiredClaim::Issuer => "the token has no issuer",
                RequiredClaim::Subject => "the token has no subject",
                RequiredClaim::Expiry => "the token has no expiry",
                RequiredClaim::IssuedAt => "the token has no issue time (iat)",
                RequiredClaim::Organisation => "the token has no organisation claim",
            },
            TokenRejection::MalformedClaim { name } => match name {
                IdentityClaim::Organisation => "the token's organisation claim is malformed",
                IdentityClaim::Scopes => "the token's scopes are malformed",
                IdentityClaim::Permissions => "the token's permissions are malformed",
                IdentityClaim::Confirmation => {
                    "the token's confirmation (cnf) claim is malformed or uses an unsupported method"
                }
            },
            TokenRejection::ReservedOrganisation => {
                "the token's organisation claim uses the reserved sub: namespace"
            }
        }
    }
}

impl From<TokenRejection> for GatewayError {
    fn from(rejection: TokenRejection) -> GatewayError {
        GatewayError::TokenRejected(rejection)
    }
}

impl From<crate::identity::ScopeRejection> for GatewayError {
    fn from(r: crate::identity::ScopeRejection) -> GatewayError {
        GatewayError::InsufficientScope {
            required: r.required,
            granted: r.granted,
        }
    }
}

/// An RFC 9457 problem body with the gateway's extension members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `urn:edge-gateway:error:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Fixed per code.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// The client-safe explanation.
    pub detail: String,
    /// The request id, also in `X-Request-Id`.
    pub request_id: String,
    /// The stable code.
    pub error: &'static str,
    /// Same text as `detail`, under the name clients of the old API read.
    pub message: String,
    /// For `insufficient_scope`: the scopes the route requires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required: Option<Vec<String>>,
    /// For `insufficient_scope`: the scopes the token holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted: Option<Vec<String>>,
    /// For `rate_limit_exceeded`: seconds until retry (also `Retry-After`).
    #[serde(rename = "retryAfter", skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// For `rate_limit_exceeded` and `cost_exceeds_limit`: the limit, cost units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// For `rate_limit_exceeded`: always 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u32>,
    /// For `rate_limit_exceeded`: the organisation's tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// For `rate_limit_exceeded`: where to upgrade, when the tier has an upgrade URL.
    #[serde(rename = "upgradeUrl", skip_serializing_if = "Option::is_none")]
    pub upgrade_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_statuses_are_errors() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {}", code.as_str());
            assert!((400..600).contains(&code.status()), "{}", code.as_str());
            assert!(code.type_uri().ends_with(code.as_str()));
        }
    }

    #[test]
    fn internal_detail_reaches_the_log_not_the_client() {
        let secret = "connect ECONNREFUSED 10.0.0.7:8443 token=abc";
        for err in [
            GatewayError::Internal(secret.to_owned()),
            GatewayError::OriginUnreachable(secret.to_owned()),
            GatewayError::LimiterUnavailable(secret.to_owned()),
            GatewayError::Misconfigured(secret.to_owned()),
            GatewayError::IssuerUnavailable(secret.to_owned()),
        ] {
            let body = serde_json::to_string(&err.problem("rid")).unwrap();
            assert!(!body.contains("10.0.0.7"), "{body}");
            assert!(!body.contains("token=abc"), "{body}");
            assert!(err.log_detail().contains(secret));
        }
    }

    #[test]
    fn problem_body_has_the_contract_fields() {
        let err = GatewayError::InsufficientScope {
            required: vec!["reports:generate".into()],
            granted: vec!["transactions:read".into()],
        };
        let body = serde_json::to_value(err.problem("req-1")).unwrap();
        assert_eq!(body["type"], "urn:edge-gateway:error:insufficient_scope");
        assert_eq!(body["status"], 403);
        assert_eq!(body["error"], "insufficient_scope");
        assert_eq!(body["request_id"], "req-1");
        assert_eq!(body["detail"], body["message"]);
        assert_eq!(body["required"][0], "reports:generate");
        assert_eq!(body["granted"][0], "transactions:read");
        assert!(body.get("retryAfter").is_none());
        let limited = GatewayError::RateLimited {
            retry_after_secs: 12,
            limit: 100,
            tier: "free".into(),
            upgrade_url: Some("https://example.com/pricing".into()),
        };
        let body = serde_json::to_value(limited.problem("r")).unwrap();
        assert_eq!(body["error"], "rate_limit_exceeded");
        assert_eq!(
            (
                body["retryAfter"].as_u64(),
                body["limit"].as_u64(),
                body["remaining"].as_u64()
            ),
            (Some(12), Some(100), Some(0))
        );
        assert_eq!(
            (body["tier"].as_str(), body["upgradeUrl"].as_str()),
            (Some("free"), Some("https://example.com/pricing"))
        );
        assert_eq!(limited.headers(), vec![("retry-after", "12".to_owned())]);
        let never = GatewayError::CostExceedsLimit {
            cost: 20,
            limit: 10,
        };
        assert!(
            never.headers().is_empty(),
            "no Retry-After: retrying cannot help"
        );
    }

    /// Every token rejection keeps its code, its problem `detail` and its `error_description`:
    /// clients and the end-to-end suite read them.
    #[test]
    fn token_rejections_keep_their_codes_and_texts() {
        use crate::identity::{IdentityClaim as I, RequiredClaim as R, TokenRejection as T};
        let cases: [(T, &str); 25] = [
            (T::TooLarge, "the token is too large"),
            (T::Malformed, "the token is malformed"),
            (T::MalformedClaims, "the token's claims are malformed"),
            (T::Unsigned, "unsigned tokens are not accepted"),
            (
                T::AlgorithmMismatch {
                    expected: vec![crate::issuer::Algorithm::ES256],
                    actual: None,
                },
                "the token's algorithm is not accepted for its issuer",
            ),
            (
                T::CriticalHeader,
                "the token has critical header parameters",
            ),
            (
                T::NotAnAccessToken,
                "the token is not an access token (typ)",
            ),
            (T::WrongIssuer, "the token's issuer is not trusted"),
            (T::UnknownKey, "the token's signing key is unknown"),
            (
                T::AmbiguousKey,
                "the token does not identify its signing key (kid)",
            ),
            (T::BadSignature, "the token's signature is invalid"),
            (T::NotYetValid, "the token is not valid yet"),
            (T::IssuedInFuture, "the token was issued in the future"),
            (
                T::LifetimeTooLong,
                "the token's lifetime exceeds the allowed maximum",
            ),
            (T::WrongAudience, "the token is not for this API (audience)"),
            (
                T::MissingClaim { name: R::Issuer },
                "the token has no issuer",
            ),
            (
                T::MissingClaim { name: R::Subject },
                "the token has no subject",
            ),
            (
                T::MissingClaim { name: R::Expiry },
                "the token has no expiry",
            ),
            (
                T::MissingClaim { name: R::IssuedAt },
                "the token has no issue time (iat)",
            ),
            (
                T::MissingClaim {
                    name: R::Organisation,
                },
                "the token has no organisation claim",
            ),
            (
                T::MalformedClaim {
                    name: I::Organisation,
                },
                "the token's organisation claim is malformed",
            ),
            (
                T::MalformedClaim { name: I::Scopes },
                "the token's scopes are malformed",
            ),
            (
                T::MalformedClaim {
                    name: I::Permissions,
                },
                "the token's permissions are malformed",
            ),
            (
                T::MalformedClaim {
                    name: I::Confirmation,
                },
                "the token's confirmation (cnf) claim is malformed or uses an unsupported method",
            ),
            (
                T::ReservedOrganisation,
                "the token's organisation claim uses the reserved sub: namespace",
            ),
        ];
        for (rejection, why) in cases {
            let err = GatewayError::from(rejection);
            assert_eq!(err.code(), ErrorCode::InvalidToken, "{why}");
            assert_eq!(
                err.message(),
                format!("The access token was rejected: {why}.")
            );
            assert_eq!(
                err.headers(),
                vec![(
                    "www-authenticate",
                    format!(
                        "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"{why}\""
                    )
                )]
            );
        }
        let expired = GatewayError::from(T::Expired { by_secs: 30 });
        assert_eq!(expired.code(), ErrorCode::TokenExpired);
        assert_eq!(expired.code().status(), 401);
        assert_eq!(
            expired.message(),
            "Access token has expired. Use your refresh token to get a new one."
        );
        assert_eq!(
            expired.headers(),
            vec![(
                "www-authenticate",
                "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"the token has expired\"".to_owned()
            )]
        );
    }

    #[test]
    fn rfc6750_challenges() {
        let header = |e: GatewayError| {
            e.headers()
                .into_iter()
                .find(|(n, _)| *n == "www-authenticate")
                .unwrap()
                .1
        };
        assert_eq!(header(GatewayError::MissingToken), "Bearer realm=\"api\"");
        assert!(
            header(TokenRejection::Expired { by_secs: 1 }.into())
                .contains("error=\"invalid_token\"")
        );
        assert!(
            header(GatewayError::InsufficientScope {
                required: vec!["a".into(), "b".into()],
                granted: vec![],
            })
            .contains("scope=\"a b\"")
        );
        assert_eq!(
            GatewayError::MethodNotAllowed {
                allowed: vec![Method::Get, Method::Post]
            }
            .headers(),
            vec![("allow", "GET, POST".to_owned())]
        );
    }
}
