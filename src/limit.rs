//! The rate-limit stage's I/O: one round trip to the organisation's counter object.

use gateway_core::error::GatewayError;
use gateway_core::identity::VerifiedClaims;
use gateway_core::limit::{CONSUME_PATH, ConsumeReply, ConsumeRequest};
use gateway_core::names::bindings::RATE_LIMITER;
use gateway_core::route::{FailurePolicy, Route};
use gateway_core::time::UnixMillis;
use worker::{Env, Headers, Method, Request, RequestInit};

async fn call(
    env: &Env,
    claims: &VerifiedClaims,
    body: &ConsumeRequest,
) -> Result<ConsumeReply, String> {
    let stub = env
        .durable_object(RATE_LIMITER)
        .and_then(|ns| ns.get_by_name(&claims.rate_limit_key().object_name()))
        .map_err(|e| format!("counter binding: {e}"))?;
    let headers = Headers::new();
    headers
        .set("content-type", "application/json")
        .map_err(|e| e.to_string())?;
    let json = serde_json::to_string(body).map_err(|e| e.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(json.into()));
    let req = Request::new_with_init(&format!("https://counter{CONSUME_PATH}"), &init)
        .map_err(|e| e.to_string())?;
    let mut resp = stub
        .fetch_with_request(req)
        .await
        .map_err(|e| format!("counter call: {e}"))?;
    if resp.status_code() != 200 {
        return Err(format!("counter answered {}", resp.status_code()));
    }
    resp.json().await.map_err(|e| format!("counter reply: {e}"))
}

/// Consumes the route's cost for the caller's organisation. When the counter store fails, the
/// route's failure policy decides: `closed` refuses (503), `open` admits (the failure is logged).
pub(crate) async fn consume(
    env: &Env,
    claims: &VerifiedClaims,
    route: &Route,
    now: UnixMillis,
) -> Result<Option<ConsumeReply>, GatewayError> {
    match call(
        env,
        claims,
        &ConsumeRequest {
            cost: route.cost,
            now,
        },
    )
    .await
    {
        Ok(reply) => Ok(Some(reply)),
        Err(detail) => match route.on_limiter_error {
            FailurePolicy::Closed => Err(GatewayError::LimiterUnavailable(detail)),
            FailurePolicy::Open => {
                worker::console_warn!(
                    "{}",
                    serde_json::json!({"event": "limiter_fail_open", "route": route.id.0, "detail": detail})
                );
                Ok(None)
            }
        },
    }
}
