//! The counters Worker: the gateway's Durable Objects, deployed as a Worker of their own
//! (`durable/wrangler.toml`) so the gateway Worker implements none. Each object is a thin
//! wrapper: load state, call `gateway-core`, save, reply. No other I/O is awaited between
//! reading and writing state. `durable/entry.mjs` is the Worker's entry module.

#![warn(clippy::too_many_lines)]

mod rate_limiter;

pub use rate_limiter::RateLimiter;
