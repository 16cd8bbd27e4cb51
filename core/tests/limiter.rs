//! Property tests for the limiter against an exact oracle (a sliding log written naively
//! here), and the false-denial rate on a committed reference trace.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stderr,
    clippy::cast_precision_loss
)]

use gateway_core::config::Window;
use std::collections::BTreeMap;

use gateway_core::limit::{BUCKET_KEY_PREFIX, Decision, LimiterState};
use gateway_core::time::UnixMillis;
use proptest::prelude::*;

/// The oracle: every admitted request, exactly.
#[derive(Default)]
struct SlidingLog {
    admitted: Vec<(u64, u64)>,
}

impl SlidingLog {
    /// Cost admitted in (t - w, t].
    fn used(&self, t: u64, w_ms: u64) -> u64 {
        self.admitted
            .iter()
            .filter(|(at, _)| *at + w_ms > t && *at <= t)
            .map(|(_, c)| c)
            .sum()
    }

    fn would_admit(&self, windows: &[Window], t: u64, cost: u64) -> bool {
        windows
            .iter()
            .all(|w| self.used(t, u64::from(w.seconds) * 1000) + cost <= u64::from(w.limit))
    }
}

fn windows_strategy() -> impl Strategy<Value = Vec<Window>> {
    prop_oneof![
        (1u32..200, 1u32..120).prop_map(|(limit, seconds)| vec![Window { limit, seconds }]),
        (1u32..50, 1u32..5, 50u32..400, 30u32..120).prop_map(|(l1, s1, l2, s2)| vec![
            Window {
                limit: l1,
                seconds: s1
            },
            Window {
                limit: l2,
                seconds: s2
            }
        ]),
    ]
}

/// Gaps (ms) and costs of a trace.
fn trace_strategy() -> impl Strategy<Value = Vec<(u64, u32)>> {
    prop::collection::vec(
        (
            prop_oneof![3 => 0u64..50, 2 => 0u64..2_000, 1 => 0u64..90_000],
            1u32..25,
        ),
        1..400,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// No interval of a window's length ever holds more than its limit; a denied request
    /// consumes nothing; never-fitting costs are recognised.
    #[test]
    fn never_admits_more_than_the_limit_in_any_window(windows in windows_strategy(), trace in trace_strategy()) {
        let mut limiter = LimiterState::default();
        let mut log = SlidingLog::default();
        let mut t = 1_700_000_000_000u64;
        for (gap, cost) in trace {
            t += gap;
            let before = limiter.clone();
            match limiter.decide(&windows, cost, UnixMillis(t)) {
                Decision::Admitted { full_for_ms, .. } => {
                    prop_assert!(log.would_admit(&windows, t, u64::from(cost)), "over-admitted at {t}");
                    log.admitted.push((t, u64::from(cost)));
                    // `full_for_ms` is exact: one unit fits then, and not a millisecond earlier.
                    let mut probe = limiter.clone();
                    let fits = matches!(probe.decide(&windows, 1, UnixMillis(t + full_for_ms)), Decision::Admitted { .. });
                    prop_assert!(fits, "one unit refused after full_for_ms = {full_for_ms}");
                    if full_for_ms > 0 {
                        let mut probe = limiter.clone();
                        let early = probe.decide(&windows, 1, UnixMillis(t + full_for_ms - 1));
                        prop_assert!(matches!(early, Decision::Limited { .. }), "one unit fit before full_for_ms");
                    }
                }
                Decision::Revoked { .. } => prop_assert!(false, "no caller, no revocation"),
                Decision::Limited { .. } => {
                    // Nothing consumed: the same request decided on the old state at the same time
                    // is limited too, and the counted use did not grow.
                    let mut replay = before.clone();
                    let limited = matches!(replay.decide(&windows, cost, UnixMillis(t)), Decision::Limited { .. });
                    prop_assert!(limited, "a replay on the old state was admitted");
                }
                Decision::NeverFits { limit, .. } => {
                    prop_assert!(windows.iter().any(|w| cost > w.limit && w.limit == limit));
                }
            }
        }
        // Every interval, checked at every admitted request (the worst intervals end there).
        for &(at, _) in &log.admitted {
            for w in &windows {
                prop_assert!(log.used(at, u64::from(w.seconds) * 1000) <= u64::from(w.limit));
            }
        }
    }

    /// A counter object writes only the buckets a decision changed: replaying those writes
    /// into a key-value store, at any point, rebuilds a state holding the same buckets and
    /// deciding every later request exactly as the live one does.
    #[test]
    fn stored_bucket_keys_rebuild_a_state_that_decides_the_same(
        windows in windows_strategy(),
        trace in trace_strategy(),
        reload_every in 1usize..40,
    ) {
        let mut live = LimiterState::default();
        let mut store: BTreeMap<String, String> = BTreeMap::new();
        let mut reloaded = LimiterState::default();
        let mut t = 1_700_000_000_000u64;
        for (i, (gap, cost)) in trace.into_iter().enumerate() {
            t += gap;
            let before = live.clone();
            let decision = live.decide(&windows, cost, UnixMillis(t));
            let writes = live.writes_since(&before);
            for key in &writes.delete {
                prop_assert!(store.remove(key).is_some(), "deleted a key never written: {key}");
            }
            for (key, value) in writes.put {
                prop_assert!(key.starts_with(BUCKET_KEY_PREFIX));
                store.insert(key, value);
            }
            // The rebuilt copy (as a restarted object would read it) decides the same.
            prop_assert_eq!(reloaded.decide(&windows, cost, UnixMillis(t)), decision);
            if i % reload_every == 0 {
                reloaded = LimiterState::from_stored_buckets(store.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
                for window in &live.windows {
                    let stored = reloaded.windows.iter().find(|w| w.seconds == window.seconds);
                    prop_assert_eq!(stored.map_or(&[][..], |w| &w.buckets[..]), &window.buckets[..]);
                }
                prop_assert!(reloaded.clock <= live.clock);
            }
        }
        // What is stored is bounded by the state, not by the traffic.
        let held: usize = live.windows.iter().map(|w| w.buckets.len()).sum();
        prop_assert_eq!(store.len(), held);
    }

    /// With no other traffic, the same request retried after Retry-After seconds is admitted,
    /// and one second earlier it is not.
    #[test]
    fn retry_after_is_exact_to_the_second(windows in windows_strategy(), trace in trace_strategy(), cost in 1u32..25) {
        let mut limiter = LimiterState::default();
        let mut t = 1_700_000_000_000u64;
        for (gap, c) in trace {
            t += gap;
            limiter.decide(&windows, c, UnixMillis(t));
        }
        let probe = limiter.clone().decide(&windows, cost, UnixMillis(t));
        if let Decision::Limited { retry_after_secs, .. } = probe {
            prop_assert!(retry_after_secs >= 1);
            let at = t + retry_after_secs * 1000;
            let admitted = limiter.clone().decide(&windows, cost, UnixMillis(at));
            let admitted = matches!(admitted, Decision::Admitted { .. });
            prop_assert!(admitted, "not admitted after Retry-After {}", retry_after_secs);
            let early = limiter.clone().decide(&windows, cost, UnixMillis(at - 1000));
            let early = matches!(early, Decision::Limited { .. });
            prop_assert!(early, "admitted a second before Retry-After {}", retry_after_secs);
        }
    }
}

fn reference_trace() -> Vec<(u64, u32)> {
    include_str!("data/reference_trace.csv")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (t, c) = l.split_once(',').unwrap();
            (t.parse().unwrap(), c.parse().unwrap())
        })
        .collect()
}

/// False denials versus the exact oracle given the same history: requests the limiter refused
/// that an exact sliding log, holding exactly what the limiter had admitted, would have taken.
#[test]
fn false_denials_on_the_reference_trace_are_rare() {
    let trace = reference_trace();
    assert!(
        trace.len() > 1_500,
        "reference trace has {} requests",
        trace.len()
    );
    for windows in [
        vec![Window {
            limit: 100,
            seconds: 60,
        }],
        vec![
            Window {
                limit: 20,
                seconds: 1,
            },
            Window {
                limit: 100,
                seconds: 60,
            },
        ],
    ] {
        let mut limiter = LimiterState::default();
        let mut log = SlidingLog::default();
        let (mut admitted, mut denied, mut false_denials) = (0u64, 0u64, 0u64);
        for &(t, cost) in &trace {
            let fits = log.would_admit(&windows, t, u64::from(cost));
            match limiter.decide(&windows, cost, UnixMillis(t)) {
                Decision::Admitted { .. } => {
                    assert!(fits, "over-admission at {t}");
                    admitted += 1;
                    log.admitted.push((t, u64::from(cost)));
                }
                _ => {
                    denied += 1;
                    if fits {
                        false_denials += 1;
                    }
                }
            }
        }
        let rate = false_denials as f64 / trace.len() as f64;
        eprintln!(
            "reference trace ({} requests, windows {windows:?}): admitted {admitted}, denied {denied}, false denials {false_denials} ({:.2}% of requests)",
            trace.len(),
            rate * 100.0
        );
        assert!(denied > 0, "the trace must exercise the limit");
        assert!(rate < 0.005, "false-denial rate {rate:.4}");
    }
}

/// Under steady traffic one admission writes one key per window (the bucket it counted in) and
/// deletes at most one per window, whatever the state holds.
#[test]
fn one_admission_writes_one_bucket_per_window() {
    let windows = [
        Window {
            limit: 1_000_000,
            seconds: 60,
        },
        Window {
            limit: 10_000_000,
            seconds: 3600,
        },
    ];
    let mut state = LimiterState::default();
    let mut t = 1_700_000_000_000u64;
    for _ in 0..20_000 {
        t += 7;
        state.decide(&windows, 1, UnixMillis(t));
    }
    assert!(
        state.windows[0].buckets.len() > 100,
        "the 60 s window holds its 120 buckets"
    );
    for _ in 0..500 {
        t += 7;
        let before = state.clone();
        state.decide(&windows, 1, UnixMillis(t));
        let writes = state.writes_since(&before);
        assert_eq!(writes.put.len(), 2, "{writes:?}");
        assert!(writes.delete.len() <= 2, "{writes:?}");
        assert!(writes.put.iter().all(|(_, v)| v.len() < 40), "{writes:?}");
    }
}

/// A stored key or value that does not parse is an error naming it, not a silently empty state.
#[test]
fn stored_buckets_that_do_not_parse_are_errors() {
    for (key, value) in [
        ("b:60", "[1,2,3]"),
        ("b:x:5", "[1,2,3]"),
        ("limiter", "[1,2,3]"),
        ("b:60:5", "[1,2]"),
        ("b:60:5", "{\"cost\":1}"),
        ("b:60:5", "not json"),
    ] {
        let err = LimiterState::from_stored_buckets([(key, value)]).unwrap_err();
        assert!(err.contains(key), "{err}");
    }
    let state =
        LimiterState::from_stored_buckets([("b:60:2", "[3,120,130]"), ("b:60:1", "[2,60,70]")])
            .unwrap();
    assert_eq!(state.clock, 130);
    assert_eq!(
        state.windows[0]
            .buckets
            .iter()
            .map(|b| b.index)
            .collect::<Vec<_>>(),
        [1, 2]
    );
}

/// Migrating an object that earlier versions stored as one key: the writes from an empty state
/// put every bucket, and reading them back gives the same buckets.
#[test]
fn writes_from_an_empty_state_store_every_bucket() {
    let windows = [Window {
        limit: 1_000,
        seconds: 60,
    }];
    let mut state = LimiterState::default();
    for i in 0..300u64 {
        state.decide(&windows, 1, UnixMillis(1_700_000_000_000 + i * 170));
    }
    let writes = state.writes_since(&LimiterState::default());
    assert!(writes.delete.is_empty());
    assert_eq!(writes.put.len(), state.windows[0].buckets.len());
    let back =
        LimiterState::from_stored_buckets(writes.put.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .unwrap();
    assert_eq!(back.windows, state.windows);
    assert_eq!(back.clock, state.clock);
}
