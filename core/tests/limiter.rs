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

use gateway_core::window::Window;
use std::collections::BTreeMap;

use gateway_core::counter::{Counter, RESERVATION_KEY, Reservation};
use gateway_core::counter_object::{CounterStore, InMemoryStore};
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

/// What a (re)started object reads back from `store` (the runtime's storage for one object:
/// `InMemoryStore` keeps confirmed and unconfirmed writes as the runtime does).
fn load(store: &InMemoryStore, now: u64) -> Counter {
    let entries = store.entries();
    let buckets = LimiterState::from_stored_buckets(
        entries
            .iter()
            .filter(|(k, _)| k.starts_with(BUCKET_KEY_PREFIX))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
    .unwrap();
    let reservation: Option<Reservation> = entries
        .get(RESERVATION_KEY)
        .map(|text| serde_json::from_str(text).unwrap());
    Counter::load(buckets, reservation, UnixMillis(now))
}

#[derive(Debug, Clone)]
enum Op {
    /// A request of one of the two tiers.
    Request { gap: u64, tier: usize, cost: u32 },
    /// The object's idle timer fires.
    Idle { gap: u64 },
    /// The runtime dies (a crash, a deploy, an eviction) and the object restarts.
    Crash { gap: u64, kept: usize },
}

fn ops_strategy() -> impl Strategy<Value = Vec<Op>> {
    let gap = || prop_oneof![3 => 0u64..50, 2 => 0u64..2_000, 1 => 0u64..90_000];
    prop::collection::vec(
        prop_oneof![
            12 => (gap(), 0usize..2, 1u32..25).prop_map(|(gap, tier, cost)| Op::Request { gap, tier, cost }),
            2 => gap().prop_map(|gap| Op::Idle { gap }),
            1 => (gap(), 0usize..3).prop_map(|(gap, kept)| Op::Crash { gap, kept }),
        ],
        1..400,
    )
}

/// Every admission of the run, with the window lengths its tier counts in.
#[derive(Default)]
struct TierLog {
    admitted: Vec<(u64, u64, Vec<u32>)>,
}

impl TierLog {
    /// Cost admitted in (t - w, t] by requests whose tier has a window of this length.
    fn used(&self, t: u64, seconds: u32) -> u64 {
        let w = u64::from(seconds) * 1000;
        self.admitted
            .iter()
            .filter(|(at, _, lengths)| *at + w > t && *at <= t && lengths.contains(&seconds))
            .map(|(_, c, _)| c)
            .sum()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Reservations: with crashes at any point (losing any unconfirmed write), requests of two
    /// tiers against one organisation's object, and idle writes, no interval of any window's
    /// length ever holds more than that window's limit; each stored allowance is at most
    /// max(1, 2%) of the smallest limit it lists; and an answer never waits for a write the
    /// allowance covers.
    #[test]
    fn reservations_never_over_admit_across_crashes(
        tiers in (windows_strategy(), windows_strategy()),
        ops in ops_strategy(),
        idle_ms in prop_oneof![Just(0u32), Just(500u32), Just(2_000u32)],
    ) {
        let tiers = [tiers.0, tiers.1];
        let storage = InMemoryStore::default();
        let mut t = 1_700_000_000_000u64;
        let mut counter = load(&storage, t);
        let mut log = TierLog::default();
        for op in ops {
            match op {
                Op::Request { gap, tier, cost } => {
                    t += gap;
                    let windows = &tiers[tier];
                    let (decision, write) = counter.consume(windows, cost, UnixMillis(t), idle_ms);
                    if let Some(write) = write {
                        prop_assert!(write.confirmed, "an extension holds its answer");
                        if let Some((_, text)) = write.writes.put.iter().find(|(k, _)| k == RESERVATION_KEY) {
                            let r: Reservation = serde_json::from_str(text).unwrap();
                            let bound = r.windows.iter().map(|w| u64::from(w.limit / 50).max(1)).min().unwrap_or(0);
                            prop_assert!(r.allow <= bound, "allowance {} over {bound}", r.allow);
                            if idle_ms == 0 { prop_assert_eq!(r.allow, 0); }
                        }
                        storage.start(&write).unwrap();
                    } else if idle_ms == 0 {
                        prop_assert!(!matches!(decision, Decision::Admitted { .. }), "idle_ms 0 writes every admission");
                    }
                    if let Decision::Admitted { .. } = decision {
                        let lengths: Vec<u32> = windows.iter().map(|w| w.seconds).collect();
                        log.admitted.push((t, u64::from(cost), lengths));
                        for w in windows {
                            prop_assert!(
                                log.used(t, w.seconds) <= u64::from(w.limit),
                                "over-admitted at {t} in the {}s window ({} > {})", w.seconds, log.used(t, w.seconds), w.limit
                            );
                        }
                    }
                }
                Op::Idle { gap } => {
                    t += gap;
                    if let Some(write) = counter.idle(UnixMillis(t)) {
                        prop_assert!(!write.confirmed);
                        storage.start(&write).unwrap();
                        prop_assert_eq!(counter.idle_due(), None, "nothing pending after the idle write");
                    }
                }
                Op::Crash { gap, kept } => {
                    storage.crash(kept);
                    t += gap;
                    counter = load(&storage, t);
                }
            }
        }
    }
}

/// Storage writes per admitted request on the shipped tiers' minute windows, one unit per
/// request: each write covers its own admission and an allowance of `max(1, 2%)` of the limit
/// (free: 2 units, pro: 20, enterprise: 200), so one write per 3, 21 and 201 requests.
#[test]
fn writes_per_admitted_request_by_tier() {
    for (tier, limit, expected) in [
        ("free", 100u32, 34usize),
        ("pro", 1_000, 48),
        ("enterprise", 10_000, 50),
    ] {
        let windows = [Window { limit, seconds: 60 }];
        let mut counter = Counter::load(LimiterState::default(), None, UnixMillis(0));
        let mut writes = 0;
        for i in 0..u64::from(limit) {
            let (decision, write) = counter.consume(&windows, 1, UnixMillis(1_000 + i), 1_000);
            assert!(matches!(decision, Decision::Admitted { .. }), "{tier} {i}");
            writes += usize::from(write.is_some());
        }
        assert_eq!(
            writes, expected,
            "{tier}: {writes} writes for {limit} admissions"
        );
        eprintln!(
            "{tier}: {:.3} writes per admitted request",
            writes as f64 / f64::from(limit)
        );
    }
}

/// A request naming another tier no longer wipes the organisation's counts: spending a free
/// minute, sending one request on a tier with a 2 s window, then going on with free stays
/// limited until the minute's admissions leave it.
#[test]
fn another_tier_does_not_reset_the_counts() {
    let free = [Window {
        limit: 100,
        seconds: 60,
    }];
    let sandbox = [Window {
        limit: 10,
        seconds: 2,
    }];
    let mut state = LimiterState::default();
    let t = 1_700_000_000_000u64;
    for i in 0..100 {
        let admitted = state.decide(&free, 1, UnixMillis(t + i));
        assert!(matches!(admitted, Decision::Admitted { .. }), "{i}");
    }
    assert!(matches!(
        state.decide(&sandbox, 1, UnixMillis(t + 1_000)),
        Decision::Admitted { .. }
    ));
    for at in [t + 2_000, t + 30_000, t + 59_000] {
        assert!(
            matches!(
                state.decide(&free, 1, UnixMillis(at)),
                Decision::Limited { .. }
            ),
            "admitted at +{} ms after another tier's request",
            at - t
        );
    }
    // The 2 s window's state is dropped once empty, the minute's once it has passed.
    assert!(matches!(
        state.decide(&free, 1, UnixMillis(t + 60_100)),
        Decision::Admitted { .. }
    ));
    assert!(state.windows.iter().all(|w| w.seconds == 60));
}

/// A restart charges exactly the stored allowance: a free organisation that spent 50 units
/// keeps between 48 and 50 after a crash at any point (max(1, 2% of 100) = 2 units of false
/// denials at most), and a crash right after an idle write charges nothing.
#[test]
fn a_restart_costs_at_most_the_allowance() {
    let free = [Window {
        limit: 100,
        seconds: 60,
    }];
    let t = 1_700_000_000_000u64;
    for spent in 1..=60u64 {
        let storage = InMemoryStore::default();
        let mut counter = load(&storage, t);
        for i in 0..spent {
            let (decision, write) = counter.consume(&free, 1, UnixMillis(t + i), 1_000);
            assert!(matches!(decision, Decision::Admitted { .. }));
            if let Some(write) = write {
                storage.start(&write).unwrap();
            }
        }
        let mut restarted = load(&storage, t + 100);
        let mut more = 0u64;
        while let (Decision::Admitted { .. }, write) =
            restarted.consume(&free, 1, UnixMillis(t + 200 + more), 1_000)
        {
            if let Some(write) = write {
                storage.start(&write).unwrap();
            }
            more += 1;
        }
        assert!(
            (98..=100).contains(&(spent + more)),
            "spent {spent}, then {more} more after the restart"
        );
        // Idle, written down, restarted: nothing is charged.
        let storage = InMemoryStore::default();
        let mut counter = load(&storage, t);
        for i in 0..spent {
            if let (_, Some(write)) = counter.consume(&free, 1, UnixMillis(t + i), 1_000) {
                storage.start(&write).unwrap();
            }
        }
        let due = counter.idle_due().expect("an allowance to shrink");
        assert!(counter.idle(UnixMillis(due - 1)).is_none());
        storage
            .start(&counter.idle(UnixMillis(due)).unwrap())
            .unwrap();
        storage.crash(1);
        let mut restarted = load(&storage, due + 10);
        let mut more = 0;
        while let (Decision::Admitted { .. }, Some(_) | None) =
            restarted.consume(&free, 1, UnixMillis(due + 20), 1_000)
        {
            more += 1;
        }
        assert_eq!(
            spent + more,
            100,
            "an idle object's restart charges nothing"
        );
    }
}
