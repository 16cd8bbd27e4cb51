//! `[tiers.<name>]` and `[[org_overrides]]`: the windows each tier's organisations are limited
//! to, and the operator's pinned tiers.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::validate::{ConfigError, is_name};
use crate::window::{Window, check_windows};

/// The tier every unknown or missing tier claim falls back to.
pub const FALLBACK_TIER: &str = "free";

/// The longest a counter object waits, idle, before it writes its admissions down
/// (`limiter_write_interval_ms`).
pub const MAX_WRITE_INTERVAL_MS: u32 = 10_000;

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

/// A counter object's idle write delay (`gateway.limiter_write_interval_ms`, a tier's
/// `write_interval_ms`): at most [`MAX_WRITE_INTERVAL_MS`].
pub fn check_write_interval(key: &str, ms: u32) -> Result<(), ConfigError> {
    if ms > MAX_WRITE_INTERVAL_MS {
        return Err(ConfigError::invalid(
            key,
            format!("must be at most {MAX_WRITE_INTERVAL_MS}"),
        ));
    }
    Ok(())
}

/// Checks `[tiers.<name>]`: the fallback tier exists, and each tier's name, windows and URL.
pub fn check_tiers(tiers: &BTreeMap<String, TierPolicy>) -> Result<(), ConfigError> {
    if !tiers.contains_key(FALLBACK_TIER) {
        return Err(ConfigError::invalid(
            "tiers",
            format!(
                "a '{FALLBACK_TIER}' tier is required (tokens with a missing or unknown tier get it)"
            ),
        ));
    }
    for (name, tier) in tiers {
        let key = format!("tiers.{name}");
        if !is_name(name, 32, b"_-") {
            return Err(ConfigError::invalid(
                key,
                "tier names are [a-z0-9_-], at most 32 characters",
            ));
        }
        if let Some(url) = &tier.upgrade_url {
            crate::url::check_url(url)
                .map_err(|e| ConfigError::invalid(format!("{key}.upgrade_url"), e))?;
        }
        check_windows(&format!("{key}.windows"), &tier.windows)?;
        if let Some(ms) = tier.write_interval_ms {
            check_write_interval(&format!("{key}.write_interval_ms"), ms)?;
        }
    }
    Ok(())
}

/// Checks `[[org_overrides]]` against the tiers and issuers they name: one override per
/// organisation and issuer.
pub fn check_overrides(
    overrides: &[OrgOverride],
    tiers: &BTreeMap<String, TierPolicy>,
    issuer_names: &BTreeSet<&str>,
) -> Result<(), ConfigError> {
    for (i, o) in overrides.iter().enumerate() {
        let key = format!("org_overrides[{i}]");
        if o.org.is_empty() {
            return Err(ConfigError::invalid(
                format!("{key}.org"),
                "must not be empty",
            ));
        }
        if !tiers.contains_key(&o.tier) {
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
        let duplicate = overrides
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
    Ok(())
}
