//! Property tests of the counter object over its store, with crashes and failed writes
//! injected: what it answered is never admitted again by a restarted object.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use gateway_core::counter_object::{CounterObject, InMemoryStore, StoreError};
use gateway_core::limit::{ConsumeRequest, Decision};
use gateway_core::time::UnixMillis;
use gateway_core::window::Window;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    /// A request of `cost` after `gap` ms.
    Request { gap: u64, cost: u32 },
    /// The idle write's timer fires after `gap` ms.
    Timer { gap: u64 },
    /// The runtime dies after `gap` ms, keeping the first `kept` unconfirmed writes; a new
    /// instance starts over the same store.
    Restart { gap: u64, kept: usize },
    /// The next write fails to start.
    FailWrite,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let gap = || prop_oneof![4 => 0u64..40, 2 => 0u64..1_500, 1 => 0u64..70_000];
    prop::collection::vec(
        prop_oneof![
            12 => (gap(), 1u32..6).prop_map(|(gap, cost)| Step::Request { gap, cost }),
            2 => gap().prop_map(|gap| Step::Timer { gap }),
            2 => (gap(), 0usize..3).prop_map(|(gap, kept)| Step::Restart { gap, kept }),
            1 => Just(Step::FailWrite),
        ],
        1..300,
    )
}

fn tier() -> impl Strategy<Value = Vec<Window>> {
    let window = (1u32..120, 1u32..90).prop_map(|(limit, seconds)| Window { limit, seconds });
    prop::collection::vec(window, 1..3).prop_map(|mut windows| {
        windows.sort_by_key(|w| w.seconds);
        windows.dedup_by_key(|w| w.seconds);
        windows
    })
}

/// The cost answered `admitted` in the `seconds`-long interval ending at `t`.
fn answered(log: &[(u64, u64)], t: u64, seconds: u32) -> u64 {
    let length = u64::from(seconds) * 1_000;
    log.iter()
        .filter(|(at, _)| *at <= t && at + length > t)
        .map(|(_, cost)| cost)
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Across restarts (losing any unconfirmed write) and writes that fail to start, no
    /// interval of a window's length holds more admitted cost than its limit; a failed write
    /// answers an error and leaves nothing in memory, and storage is listed once per instance
    /// and once after each failed write.
    #[test]
    fn a_restarted_object_never_admits_beyond_the_limit(
        windows in tier(),
        steps in steps(),
        write_within_ms in prop_oneof![Just(0u32), Just(500u32), Just(2_000u32)],
    ) {
        let store = InMemoryStore::default();
        let mut object = CounterObject::new();
        let mut t = 1_700_000_000_000u64;
        let mut log = Vec::new();
        let mut lists = 0;
        for step in steps {
            match step {
                Step::Request { gap, cost } => {
                    t += gap;
                    let request = ConsumeRequest { cost, now: UnixMillis(0), windows: windows.clone(), caller: None, write_within_ms };
                    lists += usize::from(!object.is_loaded());
                    match object.consume(&store, &request, UnixMillis(t)) {
                        Ok(Decision::Admitted { .. }) => log.push((t, u64::from(cost))),
                        Ok(_) => {}
                        Err(e) => {
                            prop_assert!(matches!(e, StoreError::Failed(_)), "{e}");
                            prop_assert!(!object.is_loaded());
                        }
                    }
                    for w in &windows {
                        let used = answered(&log, t, w.seconds);
                        prop_assert!(used <= u64::from(w.limit), "{used} admitted in the {}s window of {} at {t}", w.seconds, w.limit);
                    }
                }
                Step::Timer { gap } => {
                    t += gap;
                    if object.write_scheduled(&store, UnixMillis(t)).is_err() {
                        prop_assert!(!object.is_loaded());
                    }
                }
                Step::Restart { gap, kept } => {
                    t += gap;
                    store.crash(kept);
                    object = CounterObject::new();
                }
                Step::FailWrite => store.fail_next_starts(1),
            }
            prop_assert_eq!(store.lists(), lists);
        }
    }
}
