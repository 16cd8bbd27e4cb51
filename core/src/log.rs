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
    /// The client address the edge saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<&'a str>,
    /// Time spent in the gateway and the origin, in ms.
    pub duration_ms: u64,
}

impl RequestLog<'_> {
    /// The JSON line.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            String::from("{\"event\":\"request\",\"error\":\"log_serialisation\"}")
        })
    }
}
