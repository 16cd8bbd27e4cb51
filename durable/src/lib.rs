//! The gateway's Durable Objects. Each is a thin wrapper: load state, call `gateway-core`,
//! save, reply. No other I/O is awaited between reading and writing state.

mod rate_limiter;

pub use rate_limiter::RateLimiter;
