//! What a refused configuration reports, and the name rules shared by the policy's sections.
//! Primitives: nothing here imports another module of the crate.

use std::fmt;

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
    /// A broken rule at `key`.
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
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

/// A name of `[a-z0-9]` and the `extra` bytes, 1 to `max` long.
pub fn is_name(s: &str, max: usize, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || extra.contains(&b))
}

/// RFC 6749 `scope-token`: `%x21 / %x23-5B / %x5D-7E`, at least one.
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}
