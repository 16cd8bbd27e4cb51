//! The gateway's domain logic, free of I/O and of any Workers binding.
//!
//! Everything the Worker decides is decided here, as plain functions over plain values, so it is
//! tested natively with `cargo test`: the policy file and its validation ([`config`]), the
//! per-environment values ([`env`]), request-path normalisation ([`path`]), the route table
//! ([`route`]), the verified caller and the rate-limit key ([`identity`]), the one error type and
//! its client-facing shape ([`error`]), the names shared with the origin and the deployment
//! ([`names`]), time ([`time`]) and the one-line request log ([`log`]).
//!
//! Time is never read here: callers pass a [`time::UnixMillis`].

#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]

pub mod admin;
pub mod api_key;
pub mod auth;
pub mod client;
pub mod config;
pub mod cors;
pub mod counter;
pub mod counter_object;
pub mod encoding;
pub mod env;
pub mod error;
pub mod forward;
pub mod gate;
pub mod header_block;
pub mod header_edit;
pub mod health;
pub mod holds;
pub mod identity;
pub mod ip;
pub mod issuer;
pub mod jwk;
pub mod jwks;
pub mod limit;
pub mod log;
pub mod method;
pub mod mtls;
pub mod names;
pub mod path;
pub mod pipeline;
pub mod protocol;
pub mod refusals;
pub mod request;
pub mod revocation;
pub mod route;
pub mod shape;
pub mod signing;
#[cfg(test)]
mod testing;
pub mod tier;
pub mod time;
pub mod token_cache;
pub mod url;
pub mod validate;
pub mod window;
