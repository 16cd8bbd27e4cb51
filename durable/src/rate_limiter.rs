//! The rate-limit counter object (class `RateLimiter`, binding `RATE_LIMITER`).
//!
//! One object per rate-limit key: the Worker addresses it by
//! `RateLimitKey::object_name()` = `rl1:<issuer name>:<org id>` (see `gateway_core::identity`), so
//! two issuers never share counters even for the same org string.
//!
//! # Internal endpoints
//! - `POST /consume`, body `gateway_core::limit::ConsumeRequest` (JSON: cost, the Worker's clock,
//!   the tier's windows) -> 200 `gateway_core::limit::Decision` (JSON); 400 for a body that does
//!   not parse; 404 for any other path. One call checks and consumes atomically.
//!
//! # Storage layout
//! - key `limiter`: `gateway_core::limit::LimiterState` — the object's clock and, per configured
//!   window, at most `BUCKETS + 1` buckets `{index, cost, first, last}`; buckets that left their
//!   window are pruned on every call, so the state per key is bounded whatever the traffic.
//!
//! The state is read, decided on and written with no other I/O awaited in between (the
//! runtime's input/output gates then make each call atomic), and written only when it changed.

use gateway_core::limit::{CONSUME_PATH, ConsumeRequest, LimiterState};
use worker::{DurableObject, Env, Method, Request, Response, Result, State, durable_object};

const STATE_KEY: &str = "limiter";

/// The counter object.
#[durable_object(fetch)]
pub struct RateLimiter {
    state: State,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").finish_non_exhaustive()
    }
}

impl DurableObject for RateLimiter {
    fn new(state: State, _env: Env) -> Self {
        RateLimiter { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        if req.method() != Method::Post || req.path() != CONSUME_PATH {
            return Response::error("unknown counter endpoint", 404);
        }
        let body: ConsumeRequest = match req.json().await {
            Ok(body) => body,
            Err(_) => return Response::error("malformed consume request", 400),
        };
        let storage = self.state.storage();
        let before: LimiterState = storage.get(STATE_KEY).await?.unwrap_or_default();
        let mut after = before.clone();
        let decision = after.decide(&body.windows, body.cost, body.now);
        if after != before {
            storage.put(STATE_KEY, &after).await?;
        }
        Response::from_json(&decision)
    }
}
