//! The edge gateway Worker: the only layer that does I/O. It reads the request, asks
//! `gateway-core` what to do at each stage of the pipeline ([`pipeline`]), talks to the origin
//! ([`origin`]), the counter objects ([`limit`]) and the token issuers ([`auth`]), and turns every
//! outcome into a response in one place ([`respond`]).

mod admin;
mod auth;
#[cfg(feature = "bench")]
mod bench;
mod client;
mod limit;
mod origin;
mod pipeline;
mod respond;
mod runtime;
mod settings;

/// The rate-limit counter object, exported for the runtime (class `RateLimiter`).
pub use gateway_durable::RateLimiter;

use worker::{Context, Env, Request, Response, Result, event};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    Ok(pipeline::handle(req, &env).await)
}
