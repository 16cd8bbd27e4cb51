//! The one structured log line per request (JSON, to the Workers log). It carries the request
//! id, the route, the outcome and the verified identity, and never a token, a secret or a
//! request body.

use serde::Serialize;

use crate::time::UnixMillis;

/// One request's log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestLog<'a> {
    /// Always `request`.
    pub event: &'static str,
    /// When the request arrived.
    pub ts: UnixMillis,
    /// `X-Request-Id`.
    pub request_id: &'a str,
    /// The client's own `X-Request-ID`, when it was safe to carry (forwarded to the origin as
    /// `X-Client-Request-ID`); never used as the gateway's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<&'a str>,
    /// `ENVIRONMENT`.
    pub env: &'a str,
    /// Request method as received.
    pub method: &'a str,
    /// The normalised path, or the raw path (truncated) when normalisation failed.
    pub path: &'a str,
    /// The matched route id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<&'a str>,
    /// Response status.
    pub status: u16,
    /// The 429 came from the isolate's memory of the counter object's refusal, with no call
    /// (`crate::refusals`); absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub refused_from_memory: bool,
    /// The error code when the gateway refused or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    /// Internal detail for failures (never sent to the client).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Issuer name of the verified token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<&'a str>,
    /// The verified `sub`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<&'a str>,
    /// The verified organisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<&'a str>,
    /// The verified tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<&'a str>,
    /// The verified client: the token's `sub` (for client-credentials tokens, the client id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<&'a str>,
    /// The route's cost, on rate-limited routes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<u32>,
    /// Cost units left in the tightest window after this request, on rate-limited routes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
    /// `forwarded`, `answered` (the gateway's own endpoints and preflights), or the error code.
    pub decision: &'a str,
    /// True for 401, 403 and 429: the lines a SOC 2 reviewer filters on.
    pub security_event: bool,
    /// The client address the edge saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<&'a str>,
    /// The `User-Agent`, cut to 200 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<&'a str>,
    /// Time spent in the gateway and the origin, in ms.
    pub duration_ms: u64,
}

/// Whether a status is a security event (authentication, authorisation, rate limiting).
pub fn is_security_event(status: u16) -> bool {
    matches!(status, 401 | 403 | 429)
}

impl RequestLog<'_> {
    /// The JSON line.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            String::from("{\"event\":\"request\",\"error\":\"log_serialisation\"}")
        })
    }
}
