//! The rate-limit counter object (class `RateLimiter`, binding `RATE_LIMITER`).
//!
//! One object per rate-limit key: the Worker addresses it by
//! `RateLimitKey::object_name()` = `rl1:<issuer name>:<org id>` (see `gateway_core::identity`).
//!
//! # Internal endpoints
//! - `POST /consume`, body `gateway_core::limit::ConsumeRequest` (JSON) -> 200
//!   `ConsumeReply` (JSON); 400 for a body that does not parse; 404 for any other path.
//!
//! # Storage layout
//! - key `counter`: `gateway_core::limit::CounterState` (JSON-serialised by the runtime).
//!
//! Reads and writes happen with no other I/O awaited between them, so the runtime's input/output
//! gates make each request's read-modify-write atomic.

use gateway_core::limit::{CONSUME_PATH, ConsumeRequest, CounterState};
use worker::{DurableObject, Env, Method, Request, Response, Result, State, durable_object};

const STATE_KEY: &str = "counter";

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
        let mut counter: CounterState = storage.get(STATE_KEY).await?.unwrap_or_default();
        let reply = counter.consume(&body);
        storage.put(STATE_KEY, &counter).await?;
        Response::from_json(&reply)
    }
}
