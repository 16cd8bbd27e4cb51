//! Forwarding to the origin: the matched normalised path and the raw query, filtered headers
//! plus the verified identity, the body buffered up to the route's limit, a timeout.

use futures_util::StreamExt as _;
use gateway_core::error::GatewayError;
use gateway_core::forward::{forwards_inbound_header, identity_header_values};
use gateway_core::identity::VerifiedClaims;
use gateway_core::names::{
    CLIENT_REQUEST_ID_HEADER, REQUEST_ID_HEADER, SIGNATURE_HEADER, identity_headers,
};
use gateway_core::route::Route;
use gateway_core::signing::{self, SignedParts, SigningKey, sha256_hex};
use worker::{Headers, Method, Request, RequestInit, RequestRedirect, Response};

use crate::runtime::{FetchFailure, fetch_via_with_timeout};

/// What the forwarder needs besides the request.
pub(crate) struct Forward<'a> {
    /// The full origin URL (base + matched path + raw query).
    pub url: String,
    /// The request target the origin receives (what the signature covers).
    pub target: String,
    /// The key that signs the request.
    pub signing_key: &'a SigningKey,
    /// Unix seconds, for the signature.
    pub now_secs: u64,
    /// The matched route.
    pub route: &'a Route,
    /// The verified caller, on protected routes.
    pub claims: Option<&'a VerifiedClaims>,
    /// `gateway.forward_authorization`.
    pub forward_authorization: bool,
    /// `gateway.origin_timeout_ms`.
    pub timeout_ms: u64,
    /// The request id.
    pub request_id: &'a str,
    /// The scheme the client used (`http`/`https`).
    pub scheme: &'a str,
    /// The client's correlation id, when safe.
    pub client_request_id: Option<&'a str>,
    /// `gateway.strip_request_headers`.
    pub strip_headers: &'a [String],
    /// Check the body as JSON, with this depth limit (JSON routes, JSON bodies).
    pub json_depth: Option<u32>,
    /// The origin mTLS binding, when the deployment has one (`ORIGIN_MTLS`).
    pub via: Option<crate::runtime::Via>,
}

fn origin_headers(inbound: &Headers, f: &Forward<'_>) -> Result<Headers, GatewayError> {
    let headers = Headers::new();
    let set = |name: &str, value: &str| {
        headers.append(name, value).map_err(|_| {
            GatewayError::InvalidRequest("a request header has a value the gateway cannot forward")
        })
    };
    for (name, value) in inbound.entries() {
        if forwards_inbound_header(&name, f.forward_authorization, f.strip_headers) {
            set(&name, &value)?;
        }
    }
    if let Ok(Some(ip)) = inbound.get("cf-connecting-ip") {
        set("x-forwarded-for", &ip)?;
    }
    if let Ok(Some(host)) = inbound.get("host") {
        set("x-forwarded-host", &host)?;
    }
    set("x-forwarded-proto", f.scheme)?;
    set(REQUEST_ID_HEADER, f.request_id)?;
    if let Some(id) = f.client_request_id {
        set(CLIENT_REQUEST_ID_HEADER, id)?;
    }
    if let Some(claims) = f.claims {
        for (name, value) in identity_header_values(claims, &f.route.id) {
            set(name, &value)?;
        }
    } else {
        set(identity_headers::ROUTE, &f.route.id.0)?;
    }
    Ok(headers)
}

/// Signs the outbound request (see `gateway_core::signing` for the canonical string).
fn sign(headers: &Headers, f: &Forward<'_>, body: &[u8]) -> Result<(), GatewayError> {
    let values: Vec<String> = identity_headers::ALL
        .iter()
        .map(|name| headers.get(name).ok().flatten().unwrap_or_default())
        .collect();
    let [issuer, subject, org, tier, scopes, route] = values.as_slice() else {
        return Err(GatewayError::Internal(
            "identity header list changed".to_owned(),
        ));
    };
    let parts = SignedParts {
        method: f.route.method.as_str(),
        path_and_query: &f.target,
        timestamp: f.now_secs,
        request_id: f.request_id,
        identity: [issuer, subject, org, tier, scopes, route],
        body_sha256: sha256_hex(body),
    };
    let value = signing::sign(f.signing_key, &parts)
        .ok_or_else(|| GatewayError::Internal("signing failed".to_owned()))?;
    headers
        .set(SIGNATURE_HEADER, &value)
        .map_err(|e| GatewayError::Internal(format!("signature header: {e}")))
}

/// Reads the body chunk by chunk, stopping as soon as it passes `limit`: a streamed (chunked)
/// body without `Content-Length` is cut off there, never buffered whole.
pub(crate) async fn read_body(req: &mut Request, limit: u64) -> Result<Vec<u8>, GatewayError> {
    let unreadable = || GatewayError::InvalidRequest("The request body could not be read.");
    let mut stream = req.stream().map_err(|_| unreadable())?;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| unreadable())?;
        let total = u64::try_from(body.len().saturating_add(chunk.len())).unwrap_or(u64::MAX);
        if total > limit {
            // Past the limit nothing more is kept: the rest is read and dropped, chunk by chunk,
            // so the client's connection ends cleanly (the platform caps the total at 100 MB).
            drop(body);
            while let Some(chunk) = stream.next().await {
                if chunk.is_err() {
                    break;
                }
            }
            return Err(GatewayError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Sends the request to the origin and returns its response (undecorated).
pub(crate) async fn forward(mut req: Request, f: Forward<'_>) -> Result<Response, GatewayError> {
    let headers = origin_headers(req.headers(), &f)?;
    let mut init = RequestInit::new();
    init.with_method(Method::from(f.route.method.as_str().to_owned()))
        .with_redirect(RequestRedirect::Manual);
    let mut body = Vec::new();
    if f.route.method.allows_body() && req.inner().body().is_some() {
        body = read_body(&mut req, f.route.max_body_bytes).await?;
        // An empty body is no body: nothing to parse.
        if let Some(max_depth) = f.json_depth.filter(|_| !body.is_empty()) {
            gateway_core::shape::check_json(&body, max_depth).map_err(GatewayError::InvalidBody)?;
        }
        init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    }
    sign(&headers, &f, &body)?;
    init.with_headers(headers);
    let outbound = Request::new_with_init(&f.url, &init)
        .map_err(|e| GatewayError::Internal(format!("building the origin request: {e}")))?;

    match fetch_via_with_timeout(outbound, f.via.as_ref(), f.timeout_ms).await {
        Ok(response) => Ok(response),
        Err(FetchFailure::Unreachable(detail)) => Err(GatewayError::OriginUnreachable(detail)),
        Err(FetchFailure::TimedOut) => Err(GatewayError::OriginTimeout {
            timeout_ms: f.timeout_ms,
        }),
    }
}
