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
//! - key `limiter`: `gateway_core::limit::LimiterState` as a JSON string — the object's clock and, per configured
//!   window, at most `BUCKETS + 1` buckets `{index, cost, first, last}`; buckets that left their
//!   window are pruned on every call, so the state per key is bounded whatever the traffic.
//!
//! The state is read from storage once per object instance and then kept in memory (the object
//! is its only writer); each call decides on it and writes it through to storage when it changed,
//! with no other I/O awaited in between (the runtime's input/output gates make each call atomic,
//! and hold the answer until the write is durable). A failed write drops the in-memory copy, so
//! the next call reads storage again.

use std::cell::RefCell;

use gateway_core::limit::{CONSUME_PATH, ConsumeRequest, LimiterState};
use worker::{DurableObject, Env, Method, Request, Response, Result, State, durable_object};

const STATE_KEY: &str = "limiter";

/// Reads the stored state: a JSON string (one value to convert, not one JS object per bucket),
/// or the structured form earlier versions wrote.
async fn load(storage: &worker::Storage) -> Result<LimiterState> {
    match storage.get::<String>(STATE_KEY).await {
        Ok(Some(text)) => serde_json::from_str(&text)
            .map_err(|e| worker::Error::RustError(format!("decoding the limiter state: {e}"))),
        Ok(None) => Ok(LimiterState::default()),
        Err(_) => Ok(storage.get(STATE_KEY).await?.unwrap_or_default()),
    }
}

/// The counter object.
#[durable_object(fetch)]
pub struct RateLimiter {
    state: State,
    /// The stored state, once read.
    cached: RefCell<Option<LimiterState>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").finish_non_exhaustive()
    }
}

impl DurableObject for RateLimiter {
    fn new(state: State, _env: Env) -> Self {
        RateLimiter {
            state,
            cached: RefCell::new(None),
        }
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
        let cached = self.cached.borrow_mut().take();
        let before: LimiterState = match cached {
            Some(state) => state,
            None => load(&storage).await?,
        };
        let mut after = before.clone();
        let decision = after.decide(&body.windows, body.cost, body.now);
        if after != before {
            // On a failed write the in-memory copy stays dropped: the next call reads storage.
            let text = serde_json::to_string(&after).map_err(|e| {
                worker::Error::RustError(format!("encoding the limiter state: {e}"))
            })?;
            storage.put(STATE_KEY, text).await?;
        }
        *self.cached.borrow_mut() = Some(after);
        Response::from_json(&decision)
    }
}
