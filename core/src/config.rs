//! The policy file (`gateway.toml`): routes, tiers, issuers' rules and gateway-wide settings.
//! The same in every environment; per-environment values live in [`crate::env`].
//!
//! It is parsed and validated at build time by the Worker's `build.rs` (errors name the file, the
//! key and the reason, and fail the build), then embedded as JSON and validated again, cheaply,
//! on first use. Every key is documented in `docs/configuration.md`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::issuer::{IssuerPolicy, check_issuers};
use crate::route::{MAX_BODY_LIMIT, RouteSpec, RouteTable};
use crate::shape::{MAX_JSON_DEPTH, is_header_name};
use crate::tier::{
    FALLBACK_TIER, OrgOverride, TierPolicy, check_overrides, check_tiers, check_write_interval,
};
use crate::url::check_url;
use crate::validate::{ConfigError, is_scope_token};
use crate::window::{Window, check_windows};

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
fn default_max_header_bytes() -> u64 {
    16 * 1024
}
fn default_max_json_depth() -> u32 {
    32
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

impl GatewaySettings {
    /// Checks `[gateway]`.
    pub fn check(&self) -> Result<(), ConfigError> {
        let fail =
            |key: &str, reason: String| Err(ConfigError::invalid(format!("gateway.{key}"), reason));
        if self.max_body_bytes > MAX_BODY_LIMIT {
            return fail(
                "max_body_bytes",
                format!("must be at most {MAX_BODY_LIMIT}"),
            );
        }
        if !(10..=30_000).contains(&self.limiter_timeout_ms) {
            return fail(
                "limiter_timeout_ms",
                "must be between 10 and 30000".to_owned(),
            );
        }
        check_write_interval(
            "gateway.limiter_write_interval_ms",
            self.limiter_write_interval_ms,
        )?;
        if self.collection_pacing_kib > MAX_COLLECTION_PACING_KIB {
            return fail(
                "collection_pacing_kib",
                format!("must be at most {MAX_COLLECTION_PACING_KIB}"),
            );
        }
        if self.token_cache_entries > 100_000 {
            return fail("token_cache_entries", "must be at most 100000".to_owned());
        }
        if !(1024..=128 * 1024).contains(&self.max_header_bytes) {
            return fail(
                "max_header_bytes",
                "must be between 1024 and 131072".to_owned(),
            );
        }
        if !(1..=MAX_JSON_DEPTH).contains(&self.max_json_depth) {
            return fail(
                "max_json_depth",
                format!("must be between 1 and {MAX_JSON_DEPTH} (the JSON parser's nesting limit)"),
            );
        }
        for (i, name) in self.strip_request_headers.iter().enumerate() {
            if !is_header_name(name) {
                return fail(
                    &format!("strip_request_headers[{i}]"),
                    format!("'{name}' is not a header name"),
                );
            }
        }
        if !(100..=120_000).contains(&self.origin_timeout_ms) {
            return fail(
                "origin_timeout_ms",
                "must be between 100 and 120000".to_owned(),
            );
        }
        Ok(())
    }
}

impl ClientLimits {
    /// Checks `[client_limits]`.
    pub fn check(&self) -> Result<(), ConfigError> {
        check_windows("client_limits.windows", &self.windows)?;
        if !(32..=128).contains(&self.ipv6_prefix) {
            return Err(ConfigError::invalid(
                "client_limits.ipv6_prefix",
                "must be between 32 and 128",
            ));
        }
        Ok(())
    }
}

impl AdminPolicy {
    /// Checks `[admin]` against the issuers the policy defines.
    pub fn check(&self, issuer_names: &BTreeSet<&str>) -> Result<(), ConfigError> {
        if self.issuers.is_empty() {
            return Err(ConfigError::invalid(
                "admin.issuers",
                "at least one issuer is required",
            ));
        }
        if let Some(bad) = self
            .issuers
            .iter()
            .find(|i| !issuer_names.contains(i.as_str()))
        {
            return Err(ConfigError::invalid(
                "admin.issuers",
                format!("no issuer named '{bad}'"),
            ));
        }
        if !is_scope_token(&self.scope) {
            return Err(ConfigError::invalid(
                "admin.scope",
                format!("'{}' is not a valid scope token", self.scope),
            ));
        }
        Ok(())
    }
}

impl ApiKeyPolicy {
    /// `deprecated_since` in Unix seconds (checked when the policy is validated).
    pub fn deprecated_since_secs(&self) -> u64 {
        crate::time::parse_rfc3339_utc(&self.deprecated_since).unwrap_or(0)
    }

    /// Checks `[api_keys]` against the issuers the policy defines.
    pub fn check(&self, issuer_names: &BTreeSet<&str>) -> Result<(), ConfigError> {
        if !is_header_name(&self.header) || self.header.eq_ignore_ascii_case("authorization") {
            return Err(ConfigError::invalid(
                "api_keys.header",
                format!("'{}' is not a usable header name", self.header),
            ));
        }
        if !issuer_names.contains(self.issuer.as_str()) {
            return Err(ConfigError::invalid(
                "api_keys.issuer",
                format!("no issuer named '{}'", self.issuer),
            ));
        }
        check_url(&self.migration_guide)
            .map_err(|e| ConfigError::invalid("api_keys.migration_guide", e))?;
        if crate::time::parse_rfc3339_utc(&self.deprecated_since).is_none() {
            return Err(ConfigError::invalid(
                "api_keys.deprecated_since",
                "must be YYYY-MM-DDTHH:MM:SSZ",
            ));
        }
        Ok(())
    }
}

impl PolicyFile {
    /// Checks every rule and builds the [`Policy`]: each section checks itself; this checks how
    /// they refer to each other. The first broken rule is reported.
    pub fn validate(&self) -> Result<Policy, ConfigError> {
        let g = &self.gateway;
        g.check()?;
        check_tiers(&self.tiers)?;
        let issuer_names = check_issuers(&self.issuers)?;
        if self.routes.is_empty() {
            return Err(ConfigError::invalid(
                "routes",
                "at least one route is required",
            ));
        }
        let routes = self
            .routes
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                spec.build(
                    &format!("routes[{i}]"),
                    !self.issuers.is_empty(),
                    g.max_body_bytes,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.cors
            .check()
            .map_err(|(key, reason)| ConfigError::invalid(key, reason))?;
        check_overrides(&self.org_overrides, &self.tiers, &issuer_names)?;
        let routes = RouteTable::new(routes)
            .map_err(|(i, reason)| ConfigError::invalid(format!("routes[{i}]"), reason))?;
        self.client_limits.check()?;
        if let Some(admin) = &self.admin {
            admin.check(&issuer_names)?;
        }
        // The key header is a credential: never forwarded.
        let mut gateway = g.clone();
        if let Some(keys) = &self.api_keys {
            keys.check(&issuer_names)?;
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
    use crate::route::AuthRequirement;

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
