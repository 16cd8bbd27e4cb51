//! Every name the gateway shares with something outside the Worker: the origin (identity and
//! signature headers), the deployment (Worker secrets, `[vars]`, bindings) and clients (response
//! headers, the reserved prefix). One module, so a rename is one change and the docs have one
//! source (docs/reference.md, "Names", lists the same values; a test checks they agree).

/// Prefix of the gateway's own endpoints. Never forwarded to the origin, never matched against
/// the route table.
pub const RESERVED_PREFIX: &str = "/_gateway";
/// Liveness endpoint under the reserved prefix.
pub const HEALTH_PATH: &str = "/_gateway/health";
/// The admin API's revocation endpoint (`GET`/`POST`/`DELETE`; `[admin]` in the policy).
pub const ADMIN_REVOCATIONS_PATH: &str = "/_gateway/admin/revocations";
/// Everything under it is the admin API (404 unless `[admin]` is configured).
pub const ADMIN_PREFIX: &str = "/_gateway/admin/";

/// The gateway's header namespace: every inbound header whose name starts with it, in any
/// spelling (case, `_` for `-`), is dropped before forwarding; only the gateway sets these.
pub const GATEWAY_HEADER_PREFIX: &str = "x-gateway-";

/// Identity headers the gateway sets on forwarded requests (after stripping any inbound copy).
pub mod identity_headers {
    /// The issuer's configured name (from the policy file), not its URL.
    pub const ISSUER: &str = "x-gateway-issuer";
    /// The token's `sub`.
    pub const SUBJECT: &str = "x-gateway-subject";
    /// The organisation the request is billed and limited as.
    pub const ORG: &str = "x-gateway-org";
    /// The tier the organisation is limited at.
    pub const TIER: &str = "x-gateway-tier";
    /// The token's granted scopes, space-delimited.
    pub const SCOPES: &str = "x-gateway-scopes";
    /// The route id from the route table that admitted the request.
    pub const ROUTE: &str = "x-gateway-route";
    /// Every identity header, for stripping inbound copies.
    pub const ALL: [&str; 6] = [ISSUER, SUBJECT, ORG, TIER, SCOPES, ROUTE];
}

/// The request id: generated at the edge, sent to the origin and the client. A client's own
/// `X-Request-ID` is never used as ours (see [`CLIENT_REQUEST_ID_HEADER`]).
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The client's correlation id, forwarded to the origin when the client's `X-Request-ID` is
/// safe (1-64 of `[A-Za-z0-9._:-]`) and logged as `client_request_id`.
pub const CLIENT_REQUEST_ID_HEADER: &str = "x-client-request-id";
/// HMAC-SHA256 signature over the forwarded request: `t=<unix secs>,kid=<key id>,v1=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-gateway-signature";

/// Rate-limit response headers.
pub mod rate_limit_headers {
    /// The limit of the window that is closest to running out, in cost units.
    pub const LIMIT: &str = "x-ratelimit-limit";
    /// Cost units left in that window.
    pub const REMAINING: &str = "x-ratelimit-remaining";
    /// When that window is empty again, Unix epoch seconds.
    pub const RESET: &str = "x-ratelimit-reset";
    /// The request's cost in cost units.
    pub const COST: &str = "x-ratelimit-cost";
    /// IETF structured field: every window's quota and length.
    pub const POLICY: &str = "ratelimit-policy";
    /// IETF structured field: every window's remaining quota and seconds to reset.
    pub const STATE: &str = "ratelimit";
}

/// Worker secrets (set with `wrangler secret put` or by the Vault sync job; never in `[vars]`).
pub mod secrets {
    /// Origin signing keyset, JSON: `{"current":"<kid>","keys":[{"kid":"<kid>","secret":"<base64url, >= 32 bytes>"}]}`.
    /// Holds the current key and, during a rotation, the previous one.
    pub const SIGNING_KEYS: &str = "GATEWAY_SIGNING_KEYS";
    /// Static JWKS per issuer name, JSON: `{"<issuer name>": {"keys": [<JWK>, ...]}}`; for issuers
    /// whose keys are not published at a `jwks_uri` (e.g. an HS256 issuer keyed from Vault).
    pub const STATIC_JWKS: &str = "GATEWAY_STATIC_JWKS";
    /// Non-secret fingerprint of the Vault versions live in this deployment (written by the sync job).
    pub const SECRETS_VERSION: &str = "SECRETS_VERSION";
    /// Legacy API keys (migration mode), JSON: `{"keys":[{"id":"<id>","sha256":"<hex of the
    /// key's SHA-256>","org":"<org>","tier":"<tier>","scopes":[...],"sunset":"<RFC 3339>"}]}`.
    /// Only hashes: the keys themselves are never stored.
    pub const API_KEYS: &str = "GATEWAY_API_KEYS";
    /// Every secret the Worker reads, in the order `.dev.vars.example` lists them.
    pub const ALL: [&str; 4] = [SIGNING_KEYS, STATIC_JWKS, SECRETS_VERSION, API_KEYS];
}

/// Per-environment values (`wrangler.toml` `[vars]`, or `--var` for tests).
pub mod vars {
    /// `dev`, `test`, `staging` or `production`; shown in logs.
    pub const ENVIRONMENT: &str = "ENVIRONMENT";
    /// Base URL of the origin API (`http(s)://host[:port][/base]`, no query, no fragment).
    pub const ORIGIN_URL: &str = "ORIGIN_URL";
    /// JSON object: issuer name -> `{"issuer": "<exact iss>", "jwks_uri": "<url>"}`.
    pub const ISSUERS: &str = "GATEWAY_ISSUERS";
    /// Optional, comma-separated: the `Host` values this deployment serves (`api.example.com`,
    /// `*.preview.example.com`, `127.0.0.1:8787`); others get 421. Unset or empty: any host.
    pub const ALLOWED_HOSTS: &str = "ALLOWED_HOSTS";
    /// Optional: the origin timeout in ms for this environment (overrides
    /// `gateway.origin_timeout_ms`).
    pub const ORIGIN_TIMEOUT_MS: &str = "ORIGIN_TIMEOUT_MS";
    /// Optional, comma-separated addresses or CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`)
    /// exempt from the limits before authentication: the operator's monitors and scanners.
    pub const CLIENT_LIMIT_EXEMPT: &str = "CLIENT_LIMIT_EXEMPT";
    /// Every var the Worker reads.
    pub const ALL: [&str; 6] = [
        ENVIRONMENT,
        ORIGIN_URL,
        ISSUERS,
        ALLOWED_HOSTS,
        ORIGIN_TIMEOUT_MS,
        CLIENT_LIMIT_EXEMPT,
    ];
}

/// Durable Object bindings and classes.
pub mod bindings {
    /// Binding of the rate-limit counter namespace.
    pub const RATE_LIMITER: &str = "RATE_LIMITER";
    /// Class name of the rate-limit counter object (`durable/`).
    pub const RATE_LIMITER_CLASS: &str = "RateLimiter";
    /// Optional mTLS certificate binding (`[[mtls_certificates]]`): when present, requests to
    /// the origin go through it and present the gateway's client certificate.
    pub const ORIGIN_MTLS: &str = "ORIGIN_MTLS";
}
