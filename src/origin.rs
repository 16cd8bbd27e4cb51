//! Forwarding to the origin: the matched normalised path and the raw query, filtered headers
//! plus the verified identity, the body buffered up to the route's limit, a timeout.

use futures_util::StreamExt as _;
use gateway_core::encoding::sha256_hex;
use gateway_core::error::GatewayError;
use gateway_core::forward::{forwards_inbound_header, identity_header_values, origin_failed};
use gateway_core::identity::VerifiedClaims;
use gateway_core::names::{
    CLIENT_REQUEST_ID_HEADER, REQUEST_ID_HEADER, SIGNATURE_HEADER, identity_headers,
};
use gateway_core::request::{BodyBuffer, check_body};
use gateway_core::route::Route;
use gateway_core::signing::{self, SignedParts, SigningKey};

use crate::http::{HeaderList, Incoming, forwarding_init, valid_header_value};
use crate::runtime::fetch_with_deadline;

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

/// The headers the origin receives: the client's, filtered, plus the forwarding headers and the
/// verified identity. Decided whole in Rust; the runtime gets only the edits that turn the
/// client's block into it (`crate::http::forwarding_init`).
fn origin_headers(
    inbound: &HeaderList,
    f: &Forward<'_>,
) -> Result<Vec<(String, String)>, GatewayError> {
    let mut headers = Vec::with_capacity(16);
    let mut set = |name: &str, value: &str| {
        // Inbound values are the runtime's own; a claim (a `sub`, an org id) may hold what no
        // header can carry. The runtime trims a value's surrounding blanks; so does the
        // signature, which must cover what the origin receives.
        let value = value.trim_matches([' ', '\t']);
        if !valid_header_value(value) {
            return Err(GatewayError::InvalidRequest(
                "a request header has a value the gateway cannot forward",
            ));
        }
        headers.push((name.to_owned(), value.to_owned()));
        Ok(())
    };
    for (name, value) in inbound.iter() {
        if forwards_inbound_header(name, f.forward_authorization, f.strip_headers) {
            set(name, value)?;
        }
    }
    if let Some(ip) = inbound.get("cf-connecting-ip") {
        set("x-forwarded-for", ip)?;
    }
    if let Some(host) = inbound.get("host") {
        set("x-forwarded-host", host)?;
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

/// Signs the outbound request (see `gateway_core::signing` for the canonical string): the
/// identity values are the ones just put in `headers`.
fn sign(
    headers: &mut Vec<(String, String)>,
    f: &Forward<'_>,
    body: &[u8],
) -> Result<(), GatewayError> {
    let value_of = |name: &str| {
        headers
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let [issuer, subject, org, tier, scopes, route] = identity_headers::ALL.map(value_of);
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
    headers.push((SIGNATURE_HEADER.to_owned(), value));
    Ok(())
}

/// Reads the body chunk by chunk, stopping as soon as it passes `limit`: a streamed (chunked)
/// body without `Content-Length` is cut off there, never buffered whole.
pub(crate) async fn read_body(
    stream: Option<web_sys::ReadableStream>,
    limit: u64,
) -> Result<Vec<u8>, GatewayError> {
    let unreadable = || GatewayError::InvalidRequest("The request body could not be read.");
    let mut stream = worker::ByteStream::from(stream.ok_or_else(unreadable)?);
    let mut body = BodyBuffer::new(limit);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| unreadable())?;
        if let Err(too_large) = body.push(&chunk) {
            // Past the limit nothing more is kept: the rest is read and dropped, chunk by chunk,
            // so the client's connection ends cleanly (the platform caps the total at 100 MB).
            while let Some(chunk) = stream.next().await {
                if chunk.is_err() {
                    break;
                }
            }
            return Err(too_large);
        }
    }
    Ok(body.into_bytes())
}

/// Sends the request to the origin and returns its response (undecorated).
pub(crate) async fn forward(
    incoming: &Incoming,
    f: Forward<'_>,
) -> Result<web_sys::Response, GatewayError> {
    let mut headers = origin_headers(&incoming.headers, &f)?;
    let mut body = None;
    if let Some(stream) = incoming.body().filter(|_| f.route.method.allows_body()) {
        let bytes = read_body(Some(stream), f.route.max_body_bytes).await?;
        check_body(&bytes, f.json_depth)?;
        body = Some(bytes);
    }
    sign(&mut headers, &f, body.as_deref().unwrap_or_default())?;
    let init = forwarding_init(
        f.route.method.as_str(),
        incoming.headers_object(),
        &incoming.headers.pairs(),
        &headers,
        body.as_deref(),
    )
    .map_err(|e| GatewayError::Internal(format!("building the origin request: {e}")))?;
    fetch_with_deadline(&f.url, &init, f.via.as_ref(), f.timeout_ms)
        .await
        .map_err(|failure| origin_failed(failure, f.timeout_ms))
}
