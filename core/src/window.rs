//! A sliding window (`{ limit, seconds }`) as the policy writes it, and the rules a list of
//! them follows.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::validate::ConfigError;

/// One sliding window of a tier: at most `limit` cost units in any `seconds`-long interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Cost units admitted per window.
    pub limit: u32,
    /// Window length in seconds.
    pub seconds: u32,
}

/// A list of windows: at least one, each limit >= 1, lengths 1 s to a day, no length twice.
pub fn check_windows(key: &str, windows: &[Window]) -> Result<(), ConfigError> {
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
