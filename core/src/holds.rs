//! Holds: attempts in flight on a route that counts only its failures (a login route).
//!
//! Counting a failure only once the origin answered lets a client send any number of guesses
//! at once: each is counted after it was tried. So before a request of such a route is
//! forwarded, the client's counter object grants it a hold, a slot in the failure budget: a hold
//! is granted only while every failure counted plus every live hold plus this one fit the
//! route's `failure_limit`. When the origin has answered the gateway settles the hold: a failure
//! is counted in its place, a success frees it. A hold nobody settles (the isolate crashed, the
//! request was cancelled) lapses at its `until` — the origin's timeout plus a margin — so no
//! client is locked out for longer than that. So at most `limit` failures reach the origin per
//! window per client, however many attempts run in parallel.
//!
//! Holds are stored (key [`HOLDS_KEY`]) before the hold's answer leaves, so a restarted object
//! still counts them; at most [`MAX_HOLDS`] at once per client.

use serde::{Deserialize, Serialize};

use crate::counter::Counter;
use crate::limit::Decision;
use crate::time::UnixMillis;
use crate::window::Window;

/// Storage key of the live holds (JSON text of [`Holds`]).
pub const HOLDS_KEY: &str = "holds";

/// Added to the origin's timeout for a hold's lifetime (transit both ways, the settle call).
pub const HOLD_MARGIN_MS: u64 = 5_000;

/// The most holds one client object keeps (each is one request in flight).
pub const MAX_HOLDS: usize = 1_000;

/// One attempt in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The request's id.
    pub id: String,
    /// When it lapses unsettled (object time, ms).
    pub until: u64,
}

/// Every live hold of one client object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Holds(pub Vec<Hold>);

/// Gateway -> counter object: hold a slot for request `id` before forwarding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// The request's id (what the settle names).
    pub id: String,
    /// The route's `failure_limit`.
    pub windows: Vec<Window>,
    /// How long the hold lives unsettled: the origin's timeout plus [`HOLD_MARGIN_MS`].
    pub hold_ms: u64,
}

/// Gateway -> counter object: the origin answered request `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettleRequest {
    /// The request's id.
    pub id: String,
    /// Whether it failed (the origin's 401/403): counted as a failure.
    pub failed: bool,
    /// The route's `failure_limit`.
    pub windows: Vec<Window>,
    /// The idle write delay (`gateway.limiter_write_interval_ms`).
    #[serde(default)]
    pub write_within_ms: u32,
}

impl Holds {
    /// Drops the holds that lapsed by `now`; whether any did.
    pub fn prune(&mut self, now: u64) -> bool {
        let before = self.0.len();
        self.0.retain(|h| h.until > now);
        self.0.len() != before
    }

    /// Removes the hold of `id`; whether it was live.
    pub fn take(&mut self, id: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|h| h.id != id);
        self.0.len() != before
    }

    /// The stored form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "[]".to_owned())
    }
}

/// Decides a hold at the object's time `now`: granted (`Admitted`, the hold added: store the
/// holds before answering) when the failures counted, the live holds and this one fit every
/// window; else `Limited` with the seconds until the failures counted leave room when they
/// alone fill the budget, or else until the first live hold lapses (an upper bound: a settle
/// may free a slot earlier).
pub fn decide(
    counter: &mut Counter,
    holds: &mut Holds,
    request: &HoldRequest,
    now: UnixMillis,
) -> Decision {
    holds.prune(now.0);
    let pending = u32::try_from(holds.0.len()).unwrap_or(u32::MAX);
    let wanted = pending.saturating_add(1);
    let decision = counter.fits(&request.windows, wanted, now);
    if matches!(decision, Decision::Admitted { .. }) && holds.0.len() < MAX_HOLDS {
        holds.0.push(Hold {
            id: request.id.clone(),
            until: now.0.saturating_add(request.hold_ms),
        });
        return decision;
    }
    let standing = counter.standing(&request.windows, now);
    let windows = match standing {
        Decision::Admitted { windows, .. } => windows,
        _ => Vec::new(),
    };
    let failures_free_in = match counter.fits(&request.windows, 1, now) {
        Decision::Limited {
            retry_after_secs, ..
        } => retry_after_secs,
        _ => 0,
    };
    let first_lapse = holds
        .0
        .iter()
        .map(|h| h.until.saturating_sub(now.0).div_ceil(1000))
        .min()
        .unwrap_or(u64::MAX);
    // Failures alone fill the budget: only their leaving the window helps. Else the holds do,
    // and the first to lapse (or be settled) frees a slot.
    let retry_after_secs = if failures_free_in > 0 {
        failures_free_in
    } else {
        first_lapse
    };
    Decision::Limited {
        retry_after_secs: retry_after_secs.clamp(1, u64::MAX),
        windows,
        retry_after_ms: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::LimiterState;

    const LOGIN: [Window; 1] = [Window {
        limit: 5,
        seconds: 900,
    }];

    fn hold(counter: &mut Counter, holds: &mut Holds, id: &str, now: u64) -> bool {
        let request = HoldRequest {
            id: id.to_owned(),
            windows: LOGIN.to_vec(),
            hold_ms: 15_000,
        };
        matches!(
            decide(counter, holds, &request, UnixMillis(now)),
            Decision::Admitted { .. }
        )
    }

    /// Twenty attempts at once: five holds, the rest refused before the origin; the failures
    /// take the holds' places; successes free theirs; an unsettled hold lapses.
    #[test]
    fn at_most_the_limit_of_attempts_are_in_flight_or_failed() {
        let mut counter = Counter::load(LimiterState::default(), None, UnixMillis(0));
        let mut holds = Holds::default();
        let granted: Vec<bool> = (0..20)
            .map(|i| hold(&mut counter, &mut holds, &format!("r{i}"), 1_000))
            .collect();
        assert_eq!(granted.iter().filter(|g| **g).count(), 5);
        assert!(granted[..5].iter().all(|g| *g));
        // Two succeed (freed), two fail (counted), one is never settled.
        for id in ["r0", "r1"] {
            assert!(holds.take(id));
        }
        for id in ["r2", "r3"] {
            assert!(holds.take(id));
            counter.count(&LOGIN, 1, UnixMillis(2_000), 1_000);
        }
        // Room for 5 - 2 failures - 1 live hold = 2 more.
        assert!(hold(&mut counter, &mut holds, "r20", 3_000));
        assert!(hold(&mut counter, &mut holds, "r21", 3_000));
        assert!(!hold(&mut counter, &mut holds, "r22", 3_000));
        // r4 lapses at 16 000: one slot comes back, not more.
        assert!(!hold(&mut counter, &mut holds, "r23", 15_999));
        assert!(hold(&mut counter, &mut holds, "r24", 16_000));
        assert!(!hold(&mut counter, &mut holds, "r25", 16_000));
    }

    #[test]
    fn a_refusal_says_when_a_slot_comes_back() {
        let mut counter = Counter::load(LimiterState::default(), None, UnixMillis(0));
        let mut holds = Holds::default();
        for i in 0..5 {
            assert!(hold(&mut counter, &mut holds, &format!("r{i}"), 1_000));
        }
        let request = HoldRequest {
            id: "late".into(),
            windows: LOGIN.to_vec(),
            hold_ms: 15_000,
        };
        match decide(&mut counter, &mut holds, &request, UnixMillis(2_000)) {
            Decision::Limited {
                retry_after_secs, ..
            } => assert_eq!(retry_after_secs, 14, "the first hold lapses at 16 s"),
            other => panic!("{other:?}"),
        }
        // Five failures: the window's own time, not the holds'.
        for id in ["r0", "r1", "r2", "r3", "r4"] {
            holds.take(id);
            counter.count(&LOGIN, 1, UnixMillis(2_000), 1_000);
        }
        match decide(&mut counter, &mut holds, &request, UnixMillis(3_000)) {
            Decision::Limited {
                retry_after_secs, ..
            } => assert_eq!(retry_after_secs, 899),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn holds_round_trip_and_are_bounded() {
        let holds = Holds(vec![Hold {
            id: "a".into(),
            until: 5,
        }]);
        let back: Holds = serde_json::from_str(&holds.to_json()).unwrap();
        assert_eq!(back, holds);
        let mut counter = Counter::load(LimiterState::default(), None, UnixMillis(0));
        let mut full = Holds(
            (0..MAX_HOLDS)
                .map(|i| Hold {
                    id: i.to_string(),
                    until: 1_000_000,
                })
                .collect(),
        );
        let wide = HoldRequest {
            id: "x".into(),
            windows: vec![Window {
                limit: 1_000_000,
                seconds: 60,
            }],
            hold_ms: 1,
        };
        assert!(matches!(
            decide(&mut counter, &mut full, &wide, UnixMillis(1)),
            Decision::Limited { .. }
        ));
    }
}
