//! The JWKS lifecycle: when to fetch an issuer's key set, how long a fetched set is fresh, and
//! how long it may still be used when the issuer is down.
//!
//! - Freshness honours the JWKS response's `Cache-Control: max-age` within the issuer's
//!   configured bounds (`no-store`/`no-cache` count as the minimum); without one, the default.
//! - A token naming an unknown `kid` triggers a refetch (the issuer may have rotated), but no
//!   issuer is fetched more than once per refetch interval, whatever the cause: a flood of
//!   random `kid`s, or an issuer that is down, cannot become a flood of fetches.
//! - If a fetch fails, the last good set stays usable until `max_stale` past its freshness
//!   (stale-if-error, bounded); after that the issuer is unavailable (503).

use crate::issuer::JwksBounds;
use crate::time::UnixMillis;

/// Timing rules for one issuer, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksTiming {
    /// Freshness when the response says nothing.
    pub default_ttl_ms: u64,
    /// Lower bound on freshness.
    pub min_ttl_ms: u64,
    /// Upper bound on freshness.
    pub max_ttl_ms: u64,
    /// Least time between two fetch attempts.
    pub refetch_interval_ms: u64,
    /// How long past its freshness a set may serve while fetches fail.
    pub max_stale_ms: u64,
}

impl JwksTiming {
    /// The timing for validated bounds.
    pub fn from_bounds(bounds: JwksBounds) -> JwksTiming {
        let ms = |s: u64| s.saturating_mul(1000);
        JwksTiming {
            default_ttl_ms: ms(bounds.default_ttl_seconds),
            min_ttl_ms: ms(bounds.min_ttl_seconds),
            max_ttl_ms: ms(bounds.max_ttl_seconds),
            refetch_interval_ms: ms(bounds.refetch_interval_seconds),
            max_stale_ms: ms(bounds.max_stale_seconds),
        }
    }

    /// Freshness of a set fetched with this `Cache-Control` header.
    pub fn ttl_ms(&self, cache_control: Option<&str>) -> u64 {
        let mut max_age: Option<u64> = None;
        let mut uncacheable = false;
        for directive in cache_control.unwrap_or_default().split(',') {
            let directive = directive.trim().to_ascii_lowercase();
            if directive == "no-store" || directive == "no-cache" {
                uncacheable = true;
            } else if let Some(value) = directive.strip_prefix("max-age=") {
                max_age = value
                    .trim_matches('"')
                    .parse::<u64>()
                    .ok()
                    .map(|s| s.saturating_mul(1000));
            }
        }
        let ttl = if uncacheable {
            0
        } else {
            max_age.unwrap_or(self.default_ttl_ms)
        };
        ttl.clamp(self.min_ttl_ms, self.max_ttl_ms.max(self.min_ttl_ms))
    }

    /// Whether to fetch now.
    pub fn should_fetch(
        &self,
        stamp: Option<&JwksStamp>,
        now: UnixMillis,
        kid_unknown: bool,
    ) -> bool {
        let Some(stamp) = stamp else {
            return true;
        };
        if now.saturating_since(stamp.last_attempt) < self.refetch_interval_ms {
            return false;
        }
        match stamp.fetched_at {
            None => true,
            Some(fetched_at) => kid_unknown || now.saturating_since(fetched_at) >= stamp.ttl_ms,
        }
    }

    /// Whether the last good set may still be used (fresh, or stale within the bound).
    pub fn usable(&self, stamp: &JwksStamp, now: UnixMillis) -> bool {
        stamp.fetched_at.is_some_and(|f| {
            now.saturating_since(f) <= stamp.ttl_ms.saturating_add(self.max_stale_ms)
        })
    }
}

/// What the cache knows about one issuer's set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksStamp {
    /// When the held set was fetched (`None`: no fetch has succeeded yet).
    pub fetched_at: Option<UnixMillis>,
    /// Its freshness.
    pub ttl_ms: u64,
    /// The last fetch attempt, successful or not.
    pub last_attempt: UnixMillis,
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: JwksTiming = JwksTiming {
        default_ttl_ms: 300_000,
        min_ttl_ms: 60_000,
        max_ttl_ms: 3_600_000,
        refetch_interval_ms: 10_000,
        max_stale_ms: 600_000,
    };

    #[test]
    fn cache_control_within_bounds() {
        for (header, expected) in [
            (None, 300_000),
            (Some(""), 300_000),
            (Some("public, max-age=900"), 900_000),
            (Some("max-age=\"900\""), 900_000),
            (Some("MAX-AGE=5"), 60_000),
            (Some("max-age=999999"), 3_600_000),
            (Some("no-store"), 60_000),
            (Some("max-age=900, no-cache"), 60_000),
            (Some("max-age=abc"), 300_000),
            (Some("s-maxage=900"), 300_000),
        ] {
            assert_eq!(T.ttl_ms(header), expected, "{header:?}");
        }
    }

    fn stamp(fetched_at: Option<u64>, last_attempt: u64) -> JwksStamp {
        JwksStamp {
            fetched_at: fetched_at.map(UnixMillis),
            ttl_ms: 300_000,
            last_attempt: UnixMillis(last_attempt),
        }
    }

    #[test]
    fn when_to_fetch() {
        let now = UnixMillis(1_000_000);
        assert!(T.should_fetch(None, now, false));
        // Fresh: only an unknown kid refetches, and only past the interval.
        let fresh = stamp(Some(900_000), 900_000);
        assert!(!T.should_fetch(Some(&fresh), now, false));
        assert!(T.should_fetch(Some(&fresh), now, true));
        let just_fetched = stamp(Some(995_000), 995_000);
        assert!(
            !T.should_fetch(Some(&just_fetched), now, true),
            "kid floods are throttled"
        );
        // Expired: refetch.
        let old = stamp(Some(600_000), 600_000);
        assert!(T.should_fetch(Some(&old), now, false));
        // Failed recently with nothing cached: throttled too.
        assert!(!T.should_fetch(Some(&stamp(None, 995_000)), now, false));
        assert!(T.should_fetch(Some(&stamp(None, 980_000)), now, false));
    }

    #[test]
    fn stale_if_error_is_bounded() {
        let s = stamp(Some(0), 0);
        assert!(T.usable(&s, UnixMillis(300_000 + 600_000)));
        assert!(!T.usable(&s, UnixMillis(300_000 + 600_001)));
        assert!(!T.usable(&stamp(None, 0), UnixMillis(0)));
    }
}
