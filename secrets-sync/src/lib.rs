//! `gateway-secrets-sync`: reads the gateway's secrets from HashiCorp Vault / OpenBao (KV v2,
//! AppRole or JWT auth) and writes them as Worker secrets — into `.dev.vars` for `wrangler dev`,
//! or through the Cloudflare API as one new Worker version — with keyset rotation, all or
//! nothing, and one audit line per run. See `docs/secrets.md`.

// `serde_json::Value` indexing is used for JSON documents: reads of a missing member give
// `Null`, writes go only to objects this crate builds. Nothing here indexes slices.
#![allow(clippy::indexing_slicing)]

pub mod clock;
pub mod cloudflare;
pub mod devvars;
pub mod mapping;
pub mod plan;
pub mod sync;
pub mod transport;
pub mod vault;
