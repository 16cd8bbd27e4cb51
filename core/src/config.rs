//! The policy file (`gateway.toml`): routes, tiers, issuers' rules and gateway-wide settings.
//! The same in every environment; per-environment values live in [`crate::env`].
//!
//! It is parsed and validated at build time by the Worker's `build.rs` (errors name the file, the
//! key and the reason, and fail the build), then embedded as JSON and validated again, cheaply,
//! on first use. Every key is documented in `docs/configuration.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::route::{
    AuthRequirement, FailurePolicy, Method, PathPattern, Route, RouteId, RouteTable,
};

/// Largest body limit a route may set (the Workers platform's own request limit is 100 MB).
pub const MAX_BODY_LIMIT: u64 = 100 * 1024 * 1024;

/// Why a policy (or environment) configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// Not valid TOML/JSON, or a key of the wrong type, missing or unknown.
    Syntax(String),
    /// A value that parses but breaks a rule; `key` is a path like `routes[2].cost`.
    Invalid {
        /// Where: `routes[2].cost`, `tiers.pro.windows[0].limit`.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Syntax(msg) => write!(f, "{}", msg.trim_end()),
            ConfigError::Invalid { key, reason } => write!(f, "{key}: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// JWS algorithms an issuer may be pinned to. `none` does not exist here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
    /// HMAC with SHA-256 (keys from a Worker secret only).
    HS256,
}

impl Algorithm {
    /// The JOSE `alg` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::PS256 => "PS256",
            Algorithm::ES256 => "ES256",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::HS256 => "HS256",
        }
    }

    /// Whether the algorithm uses a shared secret.
    pub fn is_symmetric(self) -> bool {
        matches!(self, Algorithm::HS256)
    }
}

fn default_max_body_bytes() -> u64 {
    1024 * 1024
}
fn default_origin_timeout_ms() -> u64 {
    10_000
}
fn default_limiter_timeout_ms() -> u64 {
    1000
}
fn default_limiter_write_interval_ms() -> u32 {
    1000
}
/// The longest a counter object waits, idle, before it writes its admissions down
/// (`limiter_write_interval_ms`).
pub const MAX_WRITE_INTERVAL_MS: u32 = 10_000;
/// Off unless set: its effect on p99 was measurable on one machine and within the noise on
/// another (BENCHMARKS.md, "Collection pauses").
fn default_collection_pacing_kib() -> u32 {
    0
}
/// The most short-lived JavaScript a request may allocate to pace collections
/// (`collection_pacing_kib`).
pub const MAX_COLLECTION_PACING_KIB: u32 = 1024;
fn default_token_cache_entries() -> usize {
    4096
}
fn default_leeway_seconds() -> u64 {
    5
}
fn default_max_lifetime_seconds() -> u64 {
    3600
}
fn default_org_claim() -> String {
    "org_id".to_owned()
}
fn default_tier_claim() -> String {
    "tier".to_owned()
}
fn default_jwks_default_ttl() -> u64 {
    300
}
fn default_jwks_min_ttl() -> u64 {
    60
}
fn default_jwks_max_ttl() -> u64 {
    3600
}
fn default_jwks_refetch_interval() -> u64 {
    10
}
fn default_jwks_max_stale() -> u64 {
    3600
}
fn default_max_header_bytes() -> u64 {
    16 * 1024
}
fn default_max_json_depth() -> u32 {
    32
}
fn default_limited() -> bool {
    true
}
fn default_cost() -> u32 {
    1
}
fn default_auth() -> AuthRequirement {
    AuthRequirement::Bearer
}
fn default_failure_policy() -> FailurePolicy {
    FailurePolicy::Closed
}

/// `[gateway]`: settings for every route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// Default body limit for routes that set none (bytes; default 1 MiB).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// How long to wait for the origin's response headers (ms; default 10 000).
    #[serde(default = "default_origin_timeout_ms")]
    pub origin_timeout_ms: u64,
    /// Forward the client's `Authorization` header to the origin (default false: the origin
    /// gets the verified identity headers instead of the raw token).
    #[serde(default)]
    pub forward_authorization: bool,
    /// Deadline for the counter object's answer (ms; default 1000); past it the route's
    /// `on_limiter_error` policy applies.
    #[serde(default = "default_limiter_timeout_ms")]
    pub limiter_timeout_ms: u64,
    /// How long a counter object waits after its last admission before it writes its
    /// admissions down and shrinks its reservation to zero (ms; default 1000). Admissions are
    /// never forgotten by a restart, whatever this is: each is written, or covered by a stored
    /// reservation, before it is answered (`core::counter`). 0: every admission is written
    /// before its answer (no reservation). Tiers may set their own (`write_interval_ms`).
    #[serde(default = "default_limiter_write_interval_ms")]
    pub limiter_write_interval_ms: u32,
    /// Short-lived JavaScript allocated per request (KiB; default 0: none), which paces the
    /// isolate's minor collections. The runtime destroys the request and response objects a
    /// collection frees (their header blocks most of the cost) in that collection's pause, so
    /// the requests served between two collections set its length; the gateway's own work
    /// allocates little JavaScript, so without this its collections came every ~500 requests
    /// and paused 50-100 ms. See BENCHMARKS.md, "collection pauses".
    #[serde(default = "default_collection_pacing_kib")]
    pub collection_pacing_kib: u32,
    /// Capacity of the per-isolate verified-token cache (default 4096; 0 turns it off).
    #[serde(default = "default_token_cache_entries")]
    pub token_cache_entries: usize,
    /// Largest request header block, names + values + 4 bytes per field (default 16 KiB);
    /// larger gets 431.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: u64,
    /// Deepest nesting of arrays and objects in a JSON body on routes that accept JSON
    /// (default 32); deeper gets 400.
    #[serde(default = "default_max_json_depth")]
    pub max_json_depth: u32,
    /// Further inbound headers never forwarded (e.g. a legacy `X-Employee-ID` an old origin
    /// still trusts), on top of the built-in identity, legacy and override lists. Matched in
    /// any case and with `_` for `-`.
    #[serde(default)]
    pub strip_request_headers: Vec<String>,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            max_body_bytes: default_max_body_bytes(),
            origin_timeout_ms: default_origin_timeout_ms(),
            forward_authorization: false,
            token_cache_entries: default_token_cache_entries(),
            limiter_timeout_ms: default_limiter_timeout_ms(),
            limiter_write_interval_ms: default_limiter_write_interval_ms(),
            collection_pacing_kib: default_collection_pacing_kib(),
            max_header_bytes: default_max_header_bytes(),
            max_json_depth: default_max_json_depth(),
            strip_request_headers: Vec::new(),
        }
    }
}

/// One sliding window of a tier: at most `limit` cost units in any `seconds`-long interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Cost units admitted per window.
    pub limit: u32,
    /// Window length in seconds.
    pub seconds: u32,
}

/// `[tiers.<name>]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierPolicy {
    /// A request must fit every window.
    pub windows: Vec<Window>,
    /// Where an organisation on this tier can buy more (sent as `upgradeUrl` on 429).
    #[serde(default)]
    pub upgrade_url: Option<String>,
    /// Shadow mode for the whole tier: decide, send headers, log "would limit", admit.
    #[serde(default)]
    pub shadow: bool,
    /// This tier's `gateway.limiter_write_interval_ms` (0: every admission written before it is
    /// answered, no reservation).
    #[serde(default)]
    pub write_interval_ms: Option<u32>,
}

/// `[[org_overrides]]`: an organisation's tier set by the operator, taking precedence over the
/// token's tier claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgOverride {
    /// The organisation id.
    pub org: String,
    /// Only for tokens of this issuer (default: every issuer).
    #[serde(default)]
    pub issuer: Option<String>,
    /// The tier to limit it at.
    pub tier: String,
}

/// `[[issuers]]`: the rules for one token issuer. Its URL and JWKS location are
/// per-environment (`GATEWAY_ISSUERS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerPolicy {
    /// Short name (`[a-z0-9_-]`, up to 32): the key in `GATEWAY_ISSUERS`, in the rate-limit
    /// key and in `X-Gateway-Issuer`.
    pub name: String,
    /// Accepted `aud` values; the token's `aud` must contain one.
    pub audiences: Vec<String>,
    /// Accepted algorithms; the token header's `alg` must be one of them and match the key.
    pub algorithms: Vec<Algorithm>,
    /// Clock leeway for `exp`, `nbf` and `iat` (seconds; default 5).
    #[serde(default = "default_leeway_seconds")]
    pub leeway_seconds: u64,
    /// Longest accepted token lifetime, `exp - iat` (seconds; default 3600).
    #[serde(default = "default_max_lifetime_seconds")]
    pub max_lifetime_seconds: u64,
    /// Required `typ` header (e.g. `at+jwt`, RFC 9068); unset: not checked.
    #[serde(default)]
    pub typ: Option<String>,
    /// Claim holding the organisation id (default `org_id`). A token without it is refused,
    /// unless `org_from_subject` is set.
    #[serde(default = "default_org_claim")]
    pub org_claim: String,
    /// A token without the organisation claim is its own organisation, `sub:<sub>` (default
    /// false: refused). The `sub:` namespace cannot collide with a claimed organisation (an
    /// organisation claim starting with `sub:` is refused), so a subject never shares another
    /// organisation's budget or revocations. For machine issuers whose clients have no
    /// organisation; never for user issuers, whose subjects are people.
    #[serde(default)]
    pub org_from_subject: bool,
    /// Claim holding the tier (default `tier`; missing or unknown tiers are `free`).
    #[serde(default = "default_tier_claim")]
    pub tier_claim: String,
    /// Optional claim holding RBAC permissions (array of strings, e.g. `permissions`).
    /// Unset: not read. A permission satisfies a route's required scope like a
    /// scope does (exactly or as `resource:*`), and `*` satisfies every scope.
    #[serde(default)]
    pub permissions_claim: Option<String>,
    /// JWKS freshness when the response has no `Cache-Control: max-age` (seconds; default 300).
    #[serde(default = "default_jwks_default_ttl")]
    pub jwks_default_ttl_seconds: u64,
    /// Lower bound on JWKS freshness (seconds; default 60).
    #[serde(default = "default_jwks_min_ttl")]
    pub jwks_min_ttl_seconds: u64,
    /// Upper bound on JWKS freshness (seconds; default 3600).
    #[serde(default = "default_jwks_max_ttl")]
    pub jwks_max_ttl_seconds: u64,
    /// Least time between two JWKS fetches, e.g. on unknown `kid`s (seconds; default 10).
    #[serde(default = "default_jwks_refetch_interval")]
    pub jwks_refetch_interval_seconds: u64,
    /// How long past its freshness a JWKS may be used while the issuer is unreachable
    /// (seconds; default 3600).
    #[serde(default = "default_jwks_max_stale")]
    pub jwks_max_stale_seconds: u64,
}

/// The JWKS lifecycle bounds of one issuer (policy values, possibly overridden per
/// environment in `GATEWAY_ISSUERS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksBounds {
    /// Freshness without `Cache-Control: max-age`.
    pub default_ttl_seconds: u64,
    /// Lower bound on freshness.
    pub min_ttl_seconds: u64,
    /// Upper bound on freshness.
    pub max_ttl_seconds: u64,
    /// Least time between two fetches.
    pub refetch_interval_seconds: u64,
    /// Stale-if-error bound.
    pub max_stale_seconds: u64,
}

impl JwksBounds {
    /// Checks the bounds; the error names the offending key (with its `jwks_` prefix).
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if !(1..=86_400).contains(&self.min_ttl_seconds)
            || self.max_ttl_seconds < self.min_ttl_seconds
            || self.max_ttl_seconds > 86_400
        {
            return Err((
                "jwks_max_ttl_seconds",
                "need 1 <= jwks_min_ttl_seconds <= jwks_max_ttl_seconds <= 86400",
            ));
        }
        if !(self.min_ttl_seconds..=self.max_ttl_seconds).contains(&self.default_ttl_seconds) {
            return Err((
                "jwks_default_ttl_seconds",
                "must lie between jwks_min_ttl_seconds and jwks_max_ttl_seconds",
            ));
        }
        if !(1..=3600).contains(&self.refetch_interval_seconds) {
            return Err((
                "jwks_refetch_interval_seconds",
                "must be between 1 and 3600",
            ));
        }
        if self.max_stale_seconds > 7 * 86_400 {
            return Err(("jwks_max_stale_seconds", "must be at most 604800 (7 days)"));
        }
        Ok(())
    }
}

impl IssuerPolicy {
    /// The policy's JWKS bounds for this issuer.
    pub fn jwks_bounds(&self) -> JwksBounds {
        JwksBounds {
            default_ttl_seconds: self.jwks_default_ttl_seconds,
            min_ttl_seconds: self.jwks_min_ttl_seconds,
            max_ttl_seconds: self.jwks_max_ttl_seconds,
            refetch_interval_seconds: self.jwks_refetch_interval_seconds,
            max_stale_seconds: self.jwks_max_stale_seconds,
        }
    }
}

fn default_client_windows() -> Vec<Window> {
    vec![Window {
        limit: 120,
        seconds: 60,
    }]
}
fn default_ipv6_prefix() -> u8 {
    64
}
fn default_admin_scope() -> String {
    "gateway:admin".to_owned()
}
fn default_api_key_header() -> String {
    "x-api-key".to_owned()
}

/// `[client_limits]`: limits before authentication, per client IP (IPv6 grouped by
/// `ipv6_prefix`). Every request to a public route and every failed authentication on a bearer
/// route counts one unit; past the limit the client gets 429 before any signature check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientLimits {
    /// Windows (default 120 per 60 s).
    #[serde(default = "default_client_windows")]
    pub windows: Vec<Window>,
    /// IPv6 clients are counted per prefix of this many bits (default 64; 32-128).
    #[serde(default = "default_ipv6_prefix")]
    pub ipv6_prefix: u8,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            windows: default_client_windows(),
            ipv6_prefix: default_ipv6_prefix(),
        }
    }
}

/// `[admin]`: who may use the gateway's admin API (`/_gateway/admin/...`). Without this
/// section the admin API does not exist (404).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminPolicy {
    /// Issuers whose tokens may call it (names from `[[issuers]]`); tokens of any other issuer
    /// are refused whatever scopes they claim.
    pub issuers: Vec<String>,
    /// The scope an admin token must hold (default `gateway:admin`).
    #[serde(default = "default_admin_scope")]
    pub scope: String,
}

/// `[api_keys]`: the migration mode for clients still on static API keys. Without this section
/// (the default) API keys are not accepted. The keys themselves are only hashes, in the
/// `GATEWAY_API_KEYS` Worker secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyPolicy {
    /// The header clients send the key in (default `x-api-key`); never forwarded.
    #[serde(default = "default_api_key_header")]
    pub header: String,
    /// The issuer whose organisations the keys belong to: a key's requests count against the
    /// same rate-limit object (and revocations) as that organisation's tokens.
    pub issuer: String,
    /// The migration guide, linked from every key-authenticated response.
    pub migration_guide: String,
    /// Since when keys are deprecated (`Deprecation` header), `YYYY-MM-DDTHH:MM:SSZ`.
    pub deprecated_since: String,
}

impl ApiKeyPolicy {
    /// `deprecated_since` in Unix seconds (checked when the policy is validated).
    pub fn deprecated_since_secs(&self) -> u64 {
        crate::time::parse_rfc3339_utc(&self.deprecated_since).unwrap_or(0)
    }
}

/// `[[routes]]` as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Stable id (`[a-z0-9._-]`).
    pub id: String,
    /// Method.
    pub method: Method,
    /// Path pattern (see [`crate::route`]).
    pub path: String,
    /// `bearer` (default) or `public`.
    #[serde(default = "default_auth")]
    pub auth: AuthRequirement,
    /// Required scopes (all of them).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Cost in rate-limit units (default 1).
    #[serde(default = "default_cost")]
    pub cost: u32,
    /// Body limit in bytes (default `gateway.max_body_bytes`).
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// `closed` (the default and the only value accepted: 503 when the counter store fails).
    #[serde(default = "default_failure_policy")]
    pub on_limiter_error: FailurePolicy,
    /// Shadow mode: decide and send the headers, log "would limit", but admit (default false).
    #[serde(default)]
    pub rate_limit_shadow: bool,
    /// Whether the route is rate limited at all (default true; `false` for e.g. a cheap
    /// internal status route — the token is still required).
    #[serde(default = "default_limited")]
    pub limited: bool,
    /// Media types a request body may have (`application/json`, ...); other types, or a body
    /// without `Content-Type`, get 415. Empty (default): any type. When a JSON type is listed,
    /// JSON bodies are checked for well-formedness and `gateway.max_json_depth`.
    #[serde(default)]
    pub content_types: Vec<String>,
    /// Makes this an auth route (e.g. a login route the origin answers): per client IP, only
    /// its failures (401/403 from the gateway or the origin) count, against these windows;
    /// once they run out the client gets 429 before reaching the origin. Empty (default): an
    /// ordinary route.
    #[serde(default)]
    pub failure_limit: Vec<Window>,
    /// Requests must present a client certificate the edge verified (mTLS); others get 403
    /// `client_certificate_required` (default false).
    #[serde(default)]
    pub require_client_certificate: bool,
}

/// The policy file as written (serde model; see [`Policy`] for the validated form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// `[gateway]`.
    #[serde(default)]
    pub gateway: GatewaySettings,
    /// `[tiers.<name>]`; `free` is required (the fallback tier).
    pub tiers: BTreeMap<String, TierPolicy>,
    /// `[[issuers]]`.
    #[serde(default)]
    pub issuers: Vec<IssuerPolicy>,
    /// `[[routes]]`.
    pub routes: Vec<RouteSpec>,
    /// `[[org_overrides]]`.
    #[serde(default)]
    pub org_overrides: Vec<OrgOverride>,
    /// `[cors]`.
    #[serde(default)]
    pub cors: crate::cors::CorsPolicy,
    /// `[client_limits]`.
    #[serde(default)]
    pub client_limits: ClientLimits,
    /// `[admin]`.
    #[serde(default)]
    pub admin: Option<AdminPolicy>,
    /// `[api_keys]`.
    #[serde(default)]
    pub api_keys: Option<ApiKeyPolicy>,
}

/// The validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Gateway-wide settings.
    pub gateway: GatewaySettings,
    /// Tiers by name.
    pub tiers: BTreeMap<String, TierPolicy>,
    /// Issuers, in file order.
    pub issuers: Vec<IssuerPolicy>,
    /// The route table.
    pub routes: RouteTable,
    /// Per-organisation tier overrides.
    pub org_overrides: Vec<OrgOverride>,
    /// CORS.
    pub cors: crate::cors::CorsPolicy,
    /// Limits before authentication.
    pub client_limits: ClientLimits,
    /// The admin API, if enabled.
    pub admin: Option<AdminPolicy>,
    /// API-key migration mode, if enabled.
    pub api_keys: Option<ApiKeyPolicy>,
}

/// The tier every unknown or missing tier claim falls back to.
pub const FALLBACK_TIER: &str = "free";

fn is_name(s: &str, max: usize, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || extra.contains(&b))
}

/// RFC 6749 `scope-token`: `%x21 / %x23-5B / %x5D-7E`, at least one.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// A counter object's idle write delay (`gateway.limiter_write_interval_ms`, a tier's
/// `write_interval_ms`): at most [`MAX_WRITE_INTERVAL_MS`].
fn check_write_interval(key: &str, ms: u32) -> Result<(), ConfigError> {
    if ms > MAX_WRITE_INTERVAL_MS {
        return Err(ConfigError::invalid(
            key,
            format!("must be at most {MAX_WRITE_INTERVAL_MS}"),
        ));
    }
    Ok(())
}

/// A list of windows: at least one, each limit >= 1, lengths 1 s to a day, no length twice.
fn check_windows(key: &str, windows: &[Window]) -> Result<(), ConfigError> {
    if windows.is_empty() {
        return Err(ConfigError::invalid(key, "at least one window is required"));
    }
    let mut lengths = BTreeSet::new();
    for (i, w) in windows.iter().enumerate() {
        let wkey = format!("{key}[{i}]");
        if w.limit == 0 {
            return Err(ConfigError::invalid(
                format!("{wkey}.limit"),
                "must be at least 1",
            ));
        }
        if !(1..=86_400).contains(&w.seconds) {
            return Err(ConfigError::invalid(
                format!("{wkey}.seconds"),
                "must be between 1 and 86400",
            ));
        }
        if !lengths.insert(w.seconds) {
            return Err(ConfigError::invalid(
                format!("{wkey}.seconds"),
                format!("a {} s window is already defined here", w.seconds),
            ));
        }
    }
    Ok(())
}

impl PolicyFile {
    /// Checks every rule and builds the [`Policy`]. The first broken rule is reported.
    pub fn validate(&self) -> Result<Policy, ConfigError> {
        let g = &self.gateway;
        if g.max_body_bytes > MAX_BODY_LIMIT {
            return Err(ConfigError::invalid(
                "gateway.max_body_bytes",
                format!("must be at most {MAX_BODY_LIMIT}"),
            ));
        }
        if !(10..=30_000).contains(&g.limiter_timeout_ms) {
            return Err(ConfigError::invalid(
                "gateway.limiter_timeout_ms",
                "must be between 10 and 30000",
            ));
        }
        check_write_interval(
            "gateway.limiter_write_interval_ms",
            g.limiter_write_interval_ms,
        )?;
        if g.collection_pacing_kib > MAX_COLLECTION_PACING_KIB {
            return Err(ConfigError::invalid(
                "gateway.collection_pacing_kib",
                format!("must be at most {MAX_COLLECTION_PACING_KIB}"),
            ));
        }
        if g.token_cache_entries > 100_000 {
            return Err(ConfigError::invalid(
                "gateway.token_cache_entries",
                "must be at most 100000",
            ));
        }
        if !(1024..=128 * 1024).contains(&g.max_header_bytes) {
            return Err(ConfigError::invalid(
                "gateway.max_header_bytes",
                "must be between 1024 and 131072",
            ));
        }
        if !(1..=crate::shape::MAX_JSON_DEPTH).contains(&g.max_json_depth) {
            return Err(ConfigError::invalid(
                "gateway.max_json_depth",
                format!(
                    "must be between 1 and {} (the JSON parser's nesting limit)",
                    crate::shape::MAX_JSON_DEPTH
                ),
            ));
        }
        for (i, name) in g.strip_request_headers.iter().enumerate() {
            if !crate::shape::is_header_name(name) {
                return Err(ConfigError::invalid(
                    format!("gateway.strip_request_headers[{i}]"),
                    format!("'{name}' is not a header name"),
                ));
            }
        }
        if !(100..=120_000).contains(&g.origin_timeout_ms) {
            return Err(ConfigError::invalid(
                "gateway.origin_timeout_ms",
                "must be between 100 and 120000",
            ));
        }

        if !self.tiers.contains_key(FALLBACK_TIER) {
            return Err(ConfigError::invalid(
                "tiers",
                format!(
                    "a '{FALLBACK_TIER}' tier is required (tokens with a missing or unknown tier get it)"
                ),
            ));
        }
        for (name, tier) in &self.tiers {
            let key = format!("tiers.{name}");
            if !is_name(name, 32, b"_-") {
                return Err(ConfigError::invalid(
                    key,
                    "tier names are [a-z0-9_-], at most 32 characters",
                ));
            }
            if let Some(url) = &tier.upgrade_url {
                crate::env::check_url(url)
                    .map_err(|e| ConfigError::invalid(format!("{key}.upgrade_url"), e))?;
            }
            check_windows(&format!("{key}.windows"), &tier.windows)?;
            if let Some(ms) = tier.write_interval_ms {
                check_write_interval(&format!("{key}.write_interval_ms"), ms)?;
            }
        }

        let mut issuer_names = BTreeSet::new();
        for (i, issuer) in self.issuers.iter().enumerate() {
            let key = format!("issuers[{i}]");
            if !is_name(&issuer.name, 32, b"_-") {
                return Err(ConfigError::invalid(
                    format!("{key}.name"),
                    "issuer names are [a-z0-9_-], at most 32 characters",
                ));
            }
            if !issuer_names.insert(issuer.name.as_str()) {
                return Err(ConfigError::invalid(
                    format!("{key}.name"),
                    format!("duplicate issuer name '{}'", issuer.name),
                ));
            }
            if issuer.audiences.is_empty() || issuer.audiences.iter().any(String::is_empty) {
                return Err(ConfigError::invalid(
                    format!("{key}.audiences"),
                    "at least one non-empty audience is required",
                ));
            }
            if issuer.algorithms.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{key}.algorithms"),
                    "at least one algorithm is required",
                ));
            }
            let symmetric = issuer
                .algorithms
                .iter()
                .filter(|a| a.is_symmetric())
                .count();
            if symmetric != 0 && symmetric != issuer.algorithms.len() {
                return Err(ConfigError::invalid(
                    format!("{key}.algorithms"),
                    "HS256 cannot be mixed with asymmetric algorithms (algorithm confusion); use two issuers",
                ));
            }
            if issuer.leeway_seconds > 300 {
                return Err(ConfigError::invalid(
                    format!("{key}.leeway_seconds"),
                    "must be at most 300",
                ));
            }
            if !(60..=86_400).contains(&issuer.max_lifetime_seconds) {
                return Err(ConfigError::invalid(
                    format!("{key}.max_lifetime_seconds"),
                    "must be between 60 and 86400",
                ));
            }
            if issuer.permissions_claim.as_deref() == Some("") {
                return Err(ConfigError::invalid(
                    format!("{key}.permissions_claim"),
                    "must not be empty (omit it instead)",
                ));
            }
            if issuer.typ.as_deref() == Some("") {
                return Err(ConfigError::invalid(
                    format!("{key}.typ"),
                    "must not be empty (omit it instead)",
                ));
            }
            issuer.jwks_bounds().check().map_err(|(field, reason)| {
                ConfigError::invalid(format!("{key}.{field}"), reason)
            })?;
            for (field, value) in [
                ("org_claim", &issuer.org_claim),
                ("tier_claim", &issuer.tier_claim),
            ] {
                if value.is_empty() {
                    return Err(ConfigError::invalid(
                        format!("{key}.{field}"),
                        "must not be empty",
                    ));
                }
            }
        }

        if self.routes.is_empty() {
            return Err(ConfigError::invalid(
                "routes",
                "at least one route is required",
            ));
        }
        let mut routes = Vec::with_capacity(self.routes.len());
        for (i, spec) in self.routes.iter().enumerate() {
            let key = format!("routes[{i}]");
            if !is_name(&spec.id, 64, b"._-") {
                return Err(ConfigError::invalid(
                    format!("{key}.id"),
                    "route ids are [a-z0-9._-], at most 64 characters",
                ));
            }
            let pattern = PathPattern::parse(&spec.path)
                .map_err(|reason| ConfigError::invalid(format!("{key}.path"), reason))?;
            if spec.path == crate::names::RESERVED_PREFIX
                || spec
                    .path
                    .starts_with(&format!("{}/", crate::names::RESERVED_PREFIX))
            {
                return Err(ConfigError::invalid(
                    format!("{key}.path"),
                    format!(
                        "'{}' is reserved for the gateway's own endpoints",
                        crate::names::RESERVED_PREFIX
                    ),
                ));
            }
            match spec.auth {
                AuthRequirement::Bearer if self.issuers.is_empty() => {
                    return Err(ConfigError::invalid(
                        format!("{key}.auth"),
                        "'bearer' routes need at least one [[issuers]] entry",
                    ));
                }
                AuthRequirement::Public if !spec.scopes.is_empty() => {
                    return Err(ConfigError::invalid(
                        format!("{key}.scopes"),
                        "a public route cannot require scopes",
                    ));
                }
                _ => {}
            }
            if let Some(bad) = spec.scopes.iter().find(|s| !is_scope_token(s)) {
                return Err(ConfigError::invalid(
                    format!("{key}.scopes"),
                    format!("'{bad}' is not a valid scope token (RFC 6749 section 3.3)"),
                ));
            }
            if spec.cost == 0 {
                return Err(ConfigError::invalid(
                    format!("{key}.cost"),
                    "must be at least 1",
                ));
            }
            let max_body_bytes = spec.max_body_bytes.unwrap_or(g.max_body_bytes);
            if max_body_bytes > MAX_BODY_LIMIT {
                return Err(ConfigError::invalid(
                    format!("{key}.max_body_bytes"),
                    format!("must be at most {MAX_BODY_LIMIT}"),
                ));
            }
            for (j, media) in spec.content_types.iter().enumerate() {
                crate::shape::check_media_type_entry(media).map_err(|reason| {
                    ConfigError::invalid(format!("{key}.content_types[{j}]"), reason)
                })?;
            }
            if !spec.content_types.is_empty() && !spec.method.allows_body() {
                return Err(ConfigError::invalid(
                    format!("{key}.content_types"),
                    format!("{} requests carry no body", spec.method.as_str()),
                ));
            }
            if !spec.failure_limit.is_empty() {
                check_windows(&format!("{key}.failure_limit"), &spec.failure_limit)?;
            }
            if spec.on_limiter_error == FailurePolicy::Open {
                return Err(ConfigError::invalid(
                    format!("{key}.on_limiter_error"),
                    "\"open\" is not offered: the counter object's answer carries the revocation check, so admitting without it would serve revoked tokens; use \"closed\" (503 with Retry-After)",
                ));
            }
            routes.push(Route {
                id: RouteId(spec.id.clone()),
                method: spec.method,
                pattern,
                auth: spec.auth,
                scopes: spec.scopes.clone(),
                cost: spec.cost,
                max_body_bytes,
                rate_limit_shadow: spec.rate_limit_shadow,
                limited: spec.limited,
                content_types: spec.content_types.clone(),
                failure_limit: spec.failure_limit.clone(),
                require_client_certificate: spec.require_client_certificate,
            });
        }
        self.cors
            .check()
            .map_err(|(key, reason)| ConfigError::invalid(key, reason))?;
        for (i, o) in self.org_overrides.iter().enumerate() {
            let key = format!("org_overrides[{i}]");
            if o.org.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{key}.org"),
                    "must not be empty",
                ));
            }
            if !self.tiers.contains_key(&o.tier) {
                return Err(ConfigError::invalid(
                    format!("{key}.tier"),
                    format!("no tier named '{}'", o.tier),
                ));
            }
            if let Some(issuer) = o.issuer.as_deref().filter(|i| !issuer_names.contains(i)) {
                return Err(ConfigError::invalid(
                    format!("{key}.issuer"),
                    format!("no issuer named '{issuer}'"),
                ));
            }
            let duplicate = self
                .org_overrides
                .iter()
                .take(i)
                .any(|p| p.org == o.org && p.issuer == o.issuer);
            if duplicate {
                return Err(ConfigError::invalid(
                    key,
                    format!("a second override for org '{}'", o.org),
                ));
            }
        }
        let routes = RouteTable::new(routes)
            .map_err(|(i, reason)| ConfigError::invalid(format!("routes[{i}]"), reason))?;
        check_windows("client_limits.windows", &self.client_limits.windows)?;
        if !(32..=128).contains(&self.client_limits.ipv6_prefix) {
            return Err(ConfigError::invalid(
                "client_limits.ipv6_prefix",
                "must be between 32 and 128",
            ));
        }
        if let Some(admin) = &self.admin {
            if admin.issuers.is_empty() {
                return Err(ConfigError::invalid(
                    "admin.issuers",
                    "at least one issuer is required",
                ));
            }
            if let Some(bad) = admin
                .issuers
                .iter()
                .find(|i| !issuer_names.contains(i.as_str()))
            {
                return Err(ConfigError::invalid(
                    "admin.issuers",
                    format!("no issuer named '{bad}'"),
                ));
            }
            if !is_scope_token(&admin.scope) {
                return Err(ConfigError::invalid(
                    "admin.scope",
                    format!("'{}' is not a valid scope token", admin.scope),
                ));
            }
        }
        if let Some(keys) = &self.api_keys {
            if !crate::shape::is_header_name(&keys.header)
                || keys.header.eq_ignore_ascii_case("authorization")
            {
                return Err(ConfigError::invalid(
                    "api_keys.header",
                    format!("'{}' is not a usable header name", keys.header),
                ));
            }
            if !issuer_names.contains(keys.issuer.as_str()) {
                return Err(ConfigError::invalid(
                    "api_keys.issuer",
                    format!("no issuer named '{}'", keys.issuer),
                ));
            }
            crate::env::check_url(&keys.migration_guide)
                .map_err(|e| ConfigError::invalid("api_keys.migration_guide", e))?;
            if crate::time::parse_rfc3339_utc(&keys.deprecated_since).is_none() {
                return Err(ConfigError::invalid(
                    "api_keys.deprecated_since",
                    "must be YYYY-MM-DDTHH:MM:SSZ",
                ));
            }
        }
        // The key header is a credential: never forwarded.
        let mut gateway = g.clone();
        if let Some(keys) = &self.api_keys {
            gateway.strip_request_headers.push(keys.header.clone());
        }

        Ok(Policy {
            gateway,
            tiers: self.tiers.clone(),
            issuers: self.issuers.clone(),
            routes,
            org_overrides: self.org_overrides.clone(),
            cors: self.cors.clone(),
            client_limits: self.client_limits.clone(),
            admin: self.admin.clone(),
            api_keys: self.api_keys.clone(),
        })
    }
}

impl Policy {
    /// Parses and validates the TOML policy file.
    #[cfg(feature = "policy-file")]
    pub fn from_toml(text: &str) -> Result<(Policy, PolicyFile), ConfigError> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        Ok((file.validate()?, file))
    }

    /// Parses and validates the embedded JSON form (written by the build script).
    pub fn from_json(text: &str) -> Result<Policy, ConfigError> {
        let file: PolicyFile =
            serde_json::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        file.validate()
    }

    /// The tier policy for a tier claim: unknown or missing names get the `free` tier.
    pub fn tier_or_fallback(&self, claimed: Option<&str>) -> (&str, Option<&TierPolicy>) {
        match claimed.and_then(|c| self.tiers.get_key_value(c)) {
            Some((name, tier)) => (name.as_str(), Some(tier)),
            None => (FALLBACK_TIER, self.tiers.get(FALLBACK_TIER)),
        }
    }

    /// How long a counter object may hold this tier's admissions in memory only (the tier's
    /// `write_interval_ms`, else the gateway's).
    pub fn write_interval_ms(&self, tier: &TierPolicy) -> u32 {
        tier.write_interval_ms
            .unwrap_or(self.gateway.limiter_write_interval_ms)
    }

    /// The operator's tier for an organisation, if overridden: an issuer-specific override wins
    /// over one for every issuer.
    pub fn override_tier(&self, issuer: &str, org: &str) -> Option<&str> {
        let matching = self.org_overrides.iter().filter(|o| o.org == org);
        matching
            .clone()
            .find(|o| o.issuer.as_deref() == Some(issuer))
            .or_else(|| matching.clone().find(|o| o.issuer.is_none()))
            .map(|o| o.tier.as_str())
    }

    /// The issuer rules by name.
    pub fn issuer(&self, name: &str) -> Option<&IssuerPolicy> {
        self.issuers.iter().find(|i| i.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[tiers.free]
windows = [{ limit = 100, seconds = 60 }]

[[issuers]]
name = "local"
audiences = ["https://api.example.com"]
algorithms = ["ES256"]

[[routes]]
id = "health"
method = "GET"
path = "/api/health"
auth = "public"

[[routes]]
id = "tx.list"
method = "GET"
path = "/api/transactions"
scopes = ["transactions:read"]
"#;

    fn check(text: &str, expected: Result<(), &str>) {
        let got = Policy::from_toml(text)
            .map(|_| ())
            .map_err(|e| e.to_string());
        match (got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(needle)) => assert!(e.contains(needle), "error {e:?} lacks {needle:?}"),
            (got, expected) => panic!("got {got:?}, expected {expected:?}"),
        }
    }

    fn with(extra: &str) -> String {
        format!("{BASE}\n{extra}")
    }

    #[test]
    fn the_base_policy_is_valid_and_fills_defaults() {
        let (policy, _) = Policy::from_toml(BASE).unwrap();
        assert_eq!(policy.gateway, GatewaySettings::default());
        let issuer = policy.issuer("local").unwrap();
        assert_eq!(issuer.leeway_seconds, 5);
        assert_eq!(issuer.max_lifetime_seconds, 3600);
        assert_eq!(issuer.org_claim, "org_id");
        let r = &policy.routes.routes()[1];
        assert_eq!(
            (r.cost, r.max_body_bytes, r.auth),
            (1, 1024 * 1024, AuthRequirement::Bearer)
        );
    }

    #[test]
    fn the_committed_policy_file_is_valid() {
        let (policy, _) = Policy::from_toml(include_str!("../../gateway.toml")).unwrap();
        for tier in ["free", "pro", "enterprise"] {
            assert!(policy.tiers.contains_key(tier), "{tier}");
        }
    }

    #[test]
    fn a_tier_may_set_its_own_write_interval() {
        let (policy, _) = Policy::from_toml(&with(
            "[gateway]\nlimiter_write_interval_ms = 250\n[tiers.billed]\nwindows = [{ limit = 1, seconds = 1 }]\nwrite_interval_ms = 0",
        ))
        .unwrap();
        assert_eq!(policy.write_interval_ms(&policy.tiers["billed"]), 0);
        assert_eq!(policy.write_interval_ms(&policy.tiers["free"]), 250);
        let (default, _) = Policy::from_toml(BASE).unwrap();
        assert_eq!(default.write_interval_ms(&default.tiers["free"]), 1000);
    }

    #[test]
    fn json_round_trip_gives_the_same_policy() {
        let (policy, file) = Policy::from_toml(include_str!("../../gateway.toml")).unwrap();
        let json = serde_json::to_string(&file).unwrap();
        assert_eq!(Policy::from_json(&json).unwrap(), policy);
    }

    #[test]
    fn errors_name_the_key_and_the_reason() {
        check(
            &with("[gateway]\nmax_body_bytes = 999999999999"),
            Err("gateway.max_body_bytes: must be at most"),
        );
        check(
            &with("[gateway]\norigin_timeout_ms = 5"),
            Err("gateway.origin_timeout_ms"),
        );
        // Admitting without the counter object's answer would skip the revocation check.
        check(
            &with(
                "[[routes]]\nid = \"x\"\nmethod = \"GET\"\npath = \"/x\"\non_limiter_error = \"open\"",
            ),
            Err(
                "routes[2].on_limiter_error: \"open\" is not offered: the counter object's answer carries the revocation check",
            ),
        );
        check(
            &with(
                "[[routes]]\nid = \"x\"\nmethod = \"GET\"\npath = \"/x\"\non_limiter_error = \"closed\"",
            ),
            Ok(()),
        );
        // Deeper than the JSON parser nests would refuse well-formed bodies as malformed.
        check(
            &with("[gateway]\nmax_json_depth = 129"),
            Err("gateway.max_json_depth: must be between 1 and 128"),
        );
        check(&with("[gateway]\nmax_json_depth = 128"), Ok(()));
        check(
            &with("[gateway]\nlimiter_write_interval_ms = 10001"),
            Err("gateway.limiter_write_interval_ms: must be at most 10000"),
        );
        check(
            &with("[gateway]\ncollection_pacing_kib = 1025"),
            Err("gateway.collection_pacing_kib: must be at most 1024"),
        );
        check(
            &with("[tiers.pro]\nwindows = [{ limit = 1, seconds = 1 }]\nwrite_interval_ms = 60000"),
            Err("tiers.pro.write_interval_ms: must be at most 10000"),
        );
        check(
            &with("[tiers.pro]\nwindows = [{ limit = 1, seconds = 1 }]\nwrite_interval_ms = -1"),
            Err("TOML parse error"),
        );
        check(
            &BASE.replace("[tiers.free]", "[tiers.gratis]"),
            Err("tiers: a 'free' tier is required"),
        );
        check(
            &with("[tiers.Pro]\nwindows = [{ limit = 1, seconds = 1 }]"),
            Err("tiers.Pro: tier names"),
        );
        check(
            &with("[tiers.pro]\nwindows = []"),
            Err("tiers.pro.windows: at least one"),
        );
        check(
            &with("[tiers.pro]\nwindows = [{ limit = 0, seconds = 1 }]"),
            Err("tiers.pro.windows[0].limit"),
        );
        check(
            &with(
                "[tiers.pro]\nwindows = [{ limit = 1, seconds = 60 }, { limit = 2, seconds = 60 }]",
            ),
            Err("tiers.pro.windows[1].seconds: a 60 s window"),
        );
        check(
            &BASE.replace("\"ES256\"", "\"ES256\", \"HS256\""),
            Err("issuers[0].algorithms: HS256 cannot be mixed"),
        );
        check(
            &BASE.replace(
                "audiences = [\"https://api.example.com\"]",
                "audiences = []",
            ),
            Err("issuers[0].audiences"),
        );
        check(
            &BASE.replace("name = \"local\"", "name = \"Local Issuer\""),
            Err("issuers[0].name"),
        );
        check(
            &with("[[routes]]\nid = \"x\"\nmethod = \"GET\"\npath = \"/a//b\""),
            Err("routes[2].path: must not contain empty"),
        );
        check(
            &with("[[routes]]\nid = \"x\"\nmethod = \"GET\"\npath = \"/_gateway/x\""),
            Err("routes[2].path: '/_gateway' is reserved"),
        );
        check(
            &with("[[routes]]\nid = \"x\"\nmethod = \"GET\"\npath = \"/x\"\ncost = 0"),
            Err("routes[2].cost: must be at least 1"),
        );
        check(
            &with(
                "[[routes]]\nid = \"x\"\nmethod = \"GET\"\npath = \"/x\"\nauth = \"public\"\nscopes = [\"a\"]",
            ),
            Err("routes[2].scopes: a public route"),
        );
        check(
            &with("[[routes]]\nid = \"x\"\nmethod = \"GET\"\npath = \"/x\"\nscopes = [\"a b\"]"),
            Err("routes[2].scopes: 'a b' is not a valid scope"),
        );
        check(
            &with("[[routes]]\nid = \"health\"\nmethod = \"POST\"\npath = \"/x\""),
            Err("routes[2]: duplicate route id 'health'"),
        );
        check(
            &with("[[routes]]\nid = \"x\"\nmethod = \"GET\"\npath = \"/api/health\""),
            Err("routes[2]: GET /api/health is ambiguous"),
        );
    }

    #[test]
    fn jwks_timing_bounds_are_checked() {
        let issuer = |extra: &str| {
            BASE.replace(
                "algorithms = [\"ES256\"]",
                &format!("algorithms = [\"ES256\"]\n{extra}"),
            )
        };
        check(
            &issuer("jwks_min_ttl_seconds = 0"),
            Err("issuers[0].jwks_max_ttl_seconds: need 1 <="),
        );
        check(
            &issuer("jwks_min_ttl_seconds = 600\njwks_max_ttl_seconds = 60"),
            Err("issuers[0].jwks_max_ttl_seconds"),
        );
        check(
            &issuer("jwks_default_ttl_seconds = 30"),
            Err("issuers[0].jwks_default_ttl_seconds: must lie between"),
        );
        check(
            &issuer("jwks_refetch_interval_seconds = 0"),
            Err("issuers[0].jwks_refetch_interval_seconds"),
        );
        check(
            &issuer("jwks_max_stale_seconds = 9999999"),
            Err("issuers[0].jwks_max_stale_seconds"),
        );
        check(
            &issuer("jwks_min_ttl_seconds = 1\njwks_default_ttl_seconds = 1"),
            Ok(()),
        );
    }

    #[test]
    fn unknown_keys_wrong_types_and_unknown_algorithms_are_syntax_errors() {
        check(
            &with("[gateway]\nmax_body_byte = 1"),
            Err("unknown field `max_body_byte`"),
        );
        check(
            &BASE.replace("\"ES256\"", "\"none\""),
            Err("unknown variant `none`"),
        );
        check(
            &BASE.replace(
                "method = \"GET\"\npath = \"/api/health\"",
                "method = \"TRACE\"\npath = \"/api/health\"",
            ),
            Err("unknown variant `TRACE`"),
        );
        check(
            &with("[[routes]]\nid = \"x\"\nmethod = \"GET\"\npath = \"/x\"\ncost = \"ten\""),
            Err("invalid type"),
        );
        check("routes = [", Err("TOML parse error"));
    }

    #[test]
    fn org_overrides_are_checked_and_issuer_specific_ones_win() {
        let with_overrides = |extra: &str| {
            format!("{BASE}\n[tiers.pro]\nwindows = [{{ limit = 1, seconds = 1 }}]\n{extra}")
        };
        check(
            &with_overrides("[[org_overrides]]\norg = \"a\"\ntier = \"gold\""),
            Err("org_overrides[0].tier: no tier named 'gold'"),
        );
        check(
            &with_overrides("[[org_overrides]]\norg = \"a\"\nissuer = \"nope\"\ntier = \"pro\""),
            Err("org_overrides[0].issuer: no issuer named 'nope'"),
        );
        check(
            &with_overrides("[[org_overrides]]\norg = \"\"\ntier = \"pro\""),
            Err("org_overrides[0].org: must not be empty"),
        );
        check(
            &with_overrides(
                "[[org_overrides]]\norg = \"a\"\ntier = \"pro\"\n[[org_overrides]]\norg = \"a\"\ntier = \"free\"",
            ),
            Err("org_overrides[1]: a second override for org 'a'"),
        );
        let (policy, _) = Policy::from_toml(&with_overrides(
            "[[org_overrides]]\norg = \"a\"\ntier = \"pro\"\n[[org_overrides]]\norg = \"a\"\nissuer = \"local\"\ntier = \"free\"",
        ))
        .unwrap();
        assert_eq!(policy.override_tier("local", "a"), Some("free"));
        assert_eq!(policy.override_tier("other", "a"), Some("pro"));
        assert_eq!(policy.override_tier("local", "b"), None);
    }

    #[test]
    fn missing_and_unknown_tiers_fall_back_to_free() {
        let (policy, _) = Policy::from_toml(include_str!("../../gateway.toml")).unwrap();
        assert_eq!(policy.tier_or_fallback(Some("pro")).0, "pro");
        assert_eq!(policy.tier_or_fallback(Some("platinum")).0, "free");
        assert_eq!(policy.tier_or_fallback(None).0, "free");
        assert!(policy.tier_or_fallback(None).1.is_some());
    }
}
