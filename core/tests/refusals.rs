//! Refusals answered from an isolate's memory (`gateway_core::refusals`) against the counter
//! object's own decisions (`LimiterState::decide`): whatever the isolates, their send times,
//! the delays to the object and the costs, a remembered refusal is never given to a request the
//! object would have admitted at that moment, and a flood over the limit costs few calls.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use gateway_core::limit::{Decision, LimiterState};
use gateway_core::refusals::RefusalCache;
use gateway_core::time::UnixMillis;
use gateway_core::window::Window;
use proptest::prelude::*;

const WINDOWS: [Window; 2] = [
    Window {
        limit: 20,
        seconds: 10,
    },
    Window {
        limit: 6,
        seconds: 1,
    },
];
const KEY: (&str, &str) = ("rl1:local:acme", "free");

/// One request: which isolate, after how long (ms since the previous one), its cost, and the
/// delay before the object decides it.
#[derive(Debug, Clone)]
struct Arrival {
    isolate: usize,
    gap_ms: u64,
    cost: u32,
    delay_ms: u64,
}

fn arrivals() -> impl Strategy<Value = (usize, Vec<Arrival>)> {
    (1usize..=8).prop_flat_map(|isolates| {
        let one = (0..isolates, 0u64..400, 1u32..=4, 0u64..80).prop_map(
            |(isolate, gap_ms, cost, delay_ms)| Arrival {
                isolate,
                gap_ms,
                cost,
                delay_ms,
            },
        );
        (Just(isolates), prop::collection::vec(one, 1..400))
    })
}

/// What one run found.
#[derive(Debug, Default)]
struct Run {
    calls: u64,
    refused_from_memory: u64,
    false_denials: u64,
}

/// Sends at their times; the object decides each call `delay_ms` after its send, in the order
/// the calls arrive; the answer reaches the isolate `delay_ms` after that. A refusal from
/// memory is compared with what the object would decide at that moment (every call that
/// arrived before it decided).
fn run(isolates: usize, arrivals: &[Arrival], remember_from: impl Fn(u64, u64) -> u64) -> Run {
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    enum Event {
        // At equal times: answers, then decisions, then sends.
        Answer {
            isolate: usize,
            cost: u32,
            sent: u64,
            delay: u64,
            answer: usize,
        },
        Decide {
            isolate: usize,
            cost: u32,
            sent: u64,
            delay: u64,
        },
        Send {
            isolate: usize,
            cost: u32,
            delay: u64,
        },
    }
    let mut object = LimiterState::default();
    let mut caches: Vec<RefusalCache> = (0..isolates).map(|_| RefusalCache::default()).collect();
    let mut answers: Vec<Decision> = Vec::new();
    let mut queue = BinaryHeap::new();
    let mut now = 0u64;
    for a in arrivals {
        now += a.gap_ms;
        let send = Event::Send {
            isolate: a.isolate,
            cost: a.cost,
            delay: a.delay_ms,
        };
        queue.push(Reverse((now, send)));
    }
    let mut found = Run::default();
    while let Some(Reverse((at, event))) = queue.pop() {
        match event {
            Event::Send {
                isolate,
                cost,
                delay,
            } => {
                if caches[isolate].refused(KEY, cost, UnixMillis(at)).is_some() {
                    found.refused_from_memory += 1;
                    let mut probe = object.clone();
                    if matches!(
                        probe.decide(&WINDOWS, cost, UnixMillis(at)),
                        Decision::Admitted { .. }
                    ) {
                        found.false_denials += 1;
                    }
                    continue;
                }
                found.calls += 1;
                queue.push(Reverse((
                    at + delay,
                    Event::Decide {
                        isolate,
                        cost,
                        sent: at,
                        delay,
                    },
                )));
            }
            Event::Decide {
                isolate,
                cost,
                sent,
                delay,
            } => {
                answers.push(object.decide(&WINDOWS, cost, UnixMillis(at)));
                let answer = answers.len() - 1;
                queue.push(Reverse((
                    at + delay,
                    Event::Answer {
                        isolate,
                        cost,
                        sent,
                        delay,
                        answer,
                    },
                )));
            }
            Event::Answer {
                isolate,
                cost,
                sent,
                delay,
                answer,
            } => {
                let from = UnixMillis(remember_from(sent, delay));
                caches[isolate].remember(KEY, cost, &answers[answer], from);
            }
        }
    }
    found
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_remembered_refusal_is_never_a_false_denial((isolates, arrivals) in arrivals()) {
        let found = run(isolates, &arrivals, |sent, _| sent);
        prop_assert_eq!(found.false_denials, 0, "{:?}", found);
    }
}

/// A flood at fifty times the limit from one isolate: almost every refusal comes from memory.
#[test]
fn a_flood_over_the_limit_costs_few_calls() {
    let flood: Vec<Arrival> = (0..6_000)
        .map(|_| Arrival {
            isolate: 0,
            gap_ms: 10,
            cost: 1,
            delay_ms: 5,
        })
        .collect();
    let found = run(1, &flood, |sent, _| sent);
    println!("flood: {found:?}");
    assert_eq!(found.false_denials, 0);
    // 60 s at 100 requests per second against 2 per second (20 per 10 s): one call per
    // admission (about 120) and one per refusal period; without memory, 6,000 calls.
    assert!(found.calls < 200, "{found:?}");
    assert!(found.refused_from_memory > 5_800, "{found:?}");
}

/// Counting the refusal from the decision instead of the send time (the delay added) refuses
/// requests the object would admit: the property above would fail.
#[test]
fn counting_from_the_decision_would_deny_falsely() {
    let arrivals: Vec<Arrival> = (0..2_000u32)
        .map(|i| Arrival {
            isolate: usize::try_from(i % 3).unwrap(),
            gap_ms: 7 + u64::from(i * 13) % 50,
            cost: 1 + i % 3,
            delay_ms: 40 + u64::from(i * 7) % 40,
        })
        .collect();
    let late = run(3, &arrivals, |sent, delay| sent + delay + 200);
    assert!(late.false_denials > 0, "{late:?}");
    let exact = run(3, &arrivals, |sent, _| sent);
    assert_eq!(exact.false_denials, 0, "{exact:?}");
}
