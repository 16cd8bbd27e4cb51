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
use gateway_core::limit::{Decision, LimiterState};
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
