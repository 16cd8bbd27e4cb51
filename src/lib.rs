//! The edge gateway Worker: the only layer that does I/O. It reads the request, asks
//! `gateway-core` what to do at each stage of the pipeline ([`pipeline`]), talks to the origin
//! ([`origin`]), the counter objects ([`limit`]) and the token issuers ([`auth`]), and turns every
//! outcome into a response in one place ([`respond`]).

#![warn(clippy::too_many_lines)]

mod admin;
mod auth;
#[cfg(feature = "bench")]
mod bench;
mod client;
mod http;
mod limit;
mod origin;
mod pipeline;
mod respond;
mod runtime;
mod settings;
mod settle;

use worker::{Context, Env, Result, event};

/// The runtime's own request and response types: workers-rs' wrappers would read `request.cf`,
/// the URL and the method on the way in, and rebuild the response on the way out, whether the
/// gateway needs them or not (see `http`).
#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, _ctx: Context) -> Result<web_sys::Response> {
    #[cfg(feature = "bench")]
    let req = match bench::dispatch(req, &env).await {
        Ok(response) => return Ok(response),
        Err(req) => req,
    };
    Ok(pipeline::handle(req, &env).await)
}
