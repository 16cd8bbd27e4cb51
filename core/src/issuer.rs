//! `[[issuers]]`: the rules a token issuer's tokens must follow (pinned algorithms, audiences,
//! leeway, claims) and the bounds of its JWKS lifecycle. Its URL and key location are
//! per-environment ([`crate::env`]).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::validate::{ConfigError, is_name};

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

    /// The algorithm a JOSE `alg` value names exactly, if it is one of these.
    pub fn from_name(alg: &str) -> Option<Algorithm> {
        [
            Algorithm::RS256,
            Algorithm::PS256,
            Algorithm::ES256,
            Algorithm::EdDSA,
            Algorithm::HS256,
        ]
        .into_iter()
        .find(|a| a.as_str() == alg)
    }

    /// Whether the algorithm uses a shared secret.
    pub fn is_symmetric(self) -> bool {
        matches!(self, Algorithm::HS256)
    }
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

/// Checks `[[issuers]]`: each issuer's rules, and no name twice. Returns the names.
pub fn check_issuers(issuers: &[IssuerPolicy]) -> Result<BTreeSet<&str>, ConfigError> {
    let mut names = BTreeSet::new();
    for (i, issuer) in issuers.iter().enumerate() {
        let key = format!("issuers[{i}]");
        if !is_name(&issuer.name, 32, b"_-") {
            return Err(ConfigError::invalid(
                format!("{key}.name"),
                "issuer names are [a-z0-9_-], at most 32 characters",
            ));
        }
        if !names.insert(issuer.name.as_str()) {
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
        issuer
            .jwks_bounds()
            .check()
            .map_err(|(field, reason)| ConfigError::invalid(format!("{key}.{field}"), reason))?;
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
    Ok(names)
}
