//! The rate limiter: cost-weighted sliding windows that never over-admit, and the contract
//! between the Worker and the counter object (one request, one reply, one round trip).
//!
//! # The guarantee
//! For every window (`limit` cost units per `seconds`), the admitted cost in **any** interval of
//! the window's length is at most `limit`. A request at time `t` is admitted only if the cost
//! admitted in `(t - W, t]` plus its own fits, in every window of its tier. That single check is
//! enough: for any interval, look at the last request admitted in it; at its admission, every
//! other request of the interval lay in its `(t - W, t]`.
//!
//! # Bounded state
//! Exact timestamps would need up to `limit` entries per window. Instead each window keeps at
//! most [`BUCKETS`] + 1 buckets of width `W / BUCKETS`, each with its total cost and the first and
//! last millisecond it saw. A bucket counts while its *last* request is inside `(t - W, t]`, so
//! the check is conservative (never over-admits); the only imprecision is the oldest bucket when
//! it straddles `t - W`, which is counted whole (a possible false denial; `tests/limiter.rs`
//! measures how rare against an exact sliding log).
//!
//! # Retry-After
//! Without new traffic, the counted cost only falls, at each bucket's `last + W`. The earliest
//! moment the request's own cost fits is therefore one of those instants; [`Decision::Limited`]
//! carries it, rounded up to whole seconds, so a retry at that second is admitted and one a
//! second earlier is not.

use serde::{Deserialize, Serialize};

use crate::time::UnixMillis;
use crate::window::Window;

/// Buckets per window (so 500 ms buckets for a 60 s window). 60 buckets falsely denied 2.6% of
/// the reference trace's requests, 120 none (`tests/limiter.rs`).
pub const BUCKETS: u64 = 120;

/// One bucket of a window. Counter objects store each bucket under its own key
/// ([`BUCKET_KEY_PREFIX`], [`LimiterState::writes_since`]); the whole state as one JSON value is
/// the form earlier versions wrote, still read once to migrate: buckets as `[index, cost, first,
/// last]` arrays, or as objects before that (serde reads a struct from either).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Bucket {
    /// `time / bucket width`.
    pub index: u64,
    /// Cost admitted in it.
    pub cost: u64,
    /// First admission in it, ms.
    pub first: u64,
    /// Last admission in it, ms.
    pub last: u64,
}

impl Serialize for Bucket {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        [self.index, self.cost, self.first, self.last].serialize(serializer)
    }
}

/// The state of one window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowState {
    /// The window's length in seconds (identifies it).
    pub seconds: u32,
    /// Buckets, oldest first.
    pub buckets: Vec<Bucket>,
}

impl WindowState {
    fn length_ms(&self) -> u64 {
        u64::from(self.seconds).saturating_mul(1000)
    }

    fn width_ms(&self) -> u64 {
        (self.length_ms() / BUCKETS).max(1)
    }

    /// Drops buckets whose last admission is outside `(now - W, now]`.
    fn prune(&mut self, now: u64) {
        let w = self.length_ms();
        self.buckets.retain(|b| b.last.saturating_add(w) > now);
    }

    /// Cost counted at `now` (buckets whose last admission is within the window).
    fn counted(&self, now: u64) -> u64 {
        let w = self.length_ms();
        self.buckets
            .iter()
            .filter(|b| b.last.saturating_add(w) > now)
            .map(|b| b.cost)
            .fold(0, u64::saturating_add)
    }

    /// The earliest time `>= now` at which `cost` more fits under `limit`, with no new traffic.
    fn fits_at(&self, now: u64, cost: u64, limit: u64) -> u64 {
        if self.counted(now).saturating_add(cost) <= limit {
            return now;
        }
        let w = self.length_ms();
        let mut drops: Vec<(u64, u64)> = self
            .buckets
            .iter()
            .map(|b| (b.last.saturating_add(w), b.cost))
            .filter(|(at, _)| *at > now)
            .collect();
        drops.sort_unstable();
        let mut counted = self.counted(now);
        for (at, freed) in drops {
            counted = counted.saturating_sub(freed);
            if counted.saturating_add(cost) <= limit {
                return at;
            }
        }
        now
    }

    /// When the counted cost falls to zero with no new traffic.
    fn empty_at(&self, now: u64) -> u64 {
        let w = self.length_ms();
        self.buckets
            .iter()
            .map(|b| b.last.saturating_add(w))
            .filter(|at| *at > now)
            .max()
            .unwrap_or(now)
    }

    fn add(&mut self, now: u64, cost: u64) {
        let index = now.checked_div(self.width_ms()).unwrap_or(0);
        match self.buckets.last_mut() {
            Some(b) if b.index == index => {
                b.cost = b.cost.saturating_add(cost);
                b.last = b.last.max(now);
            }
            _ => self.buckets.push(Bucket {
                index,
                cost,
                first: now,
                last: now,
            }),
        }
    }
}

/// Everything one counter object stores.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimiterState {
    /// Latest time seen: the object's clock never goes backwards.
    pub clock: u64,
    /// One state per configured window.
    pub windows: Vec<WindowState>,
}

/// Where one window stands after a decision (for the response headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowStatus {
    /// Window length, seconds.
    pub seconds: u32,
    /// Its limit, cost units.
    pub limit: u32,
    /// Cost units still available now.
    pub remaining: u64,
    /// Seconds until the window is empty again (no new traffic).
    pub reset_secs: u64,
}

/// The limiter's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Admitted; the cost was consumed in every window.
    Admitted {
        /// Every window after consumption.
        windows: Vec<WindowStatus>,
        /// Milliseconds until one more unit fits every window (0: it fits now). Lets a caller
        /// counting failures refuse the next attempt without asking again.
        #[serde(default)]
        full_for_ms: u64,
    },
    /// Over a limit now; nothing consumed.
    Limited {
        /// Whole seconds until this request's cost fits every window.
        retry_after_secs: u64,
        /// Every window, unchanged.
        windows: Vec<WindowStatus>,
        /// Milliseconds from the decision until this cost fits every window, if nothing else is
        /// admitted meanwhile (0: not said; counters Workers before it do not send it). A caller
        /// may refuse the same cost or more for the same windows until then without asking
        /// (`crate::refusals`).
        #[serde(default)]
        retry_after_ms: u64,
    },
    /// The caller is covered by a revocation; nothing consumed.
    Revoked {
        /// What the entry covers: `org`, `subject` or `token`.
        scope: crate::revocation::RevocationKind,
    },
    /// The cost exceeds a window's whole limit: it can never be admitted.
    NeverFits {
        /// The request's cost.
        cost: u32,
        /// The smallest limit it exceeds.
        limit: u32,
    },
}

fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

impl LimiterState {
    /// The state of the window `seconds` long, created empty if there is none. States of other
    /// lengths are kept: the counts belong to the organisation, whatever tier a request names,
    /// and a state is dropped only once everything it counted has left its window
    /// ([`LimiterState::prune`]).
    fn window_mut(&mut self, seconds: u32) -> &mut WindowState {
        let i = match self.windows.iter().position(|s| s.seconds == seconds) {
            Some(i) => i,
            None => {
                self.windows.push(WindowState {
                    seconds,
                    buckets: Vec::new(),
                });
                self.windows.len().saturating_sub(1)
            }
        };
        // `i` is in bounds: found, or the state just pushed.
        #[allow(clippy::indexing_slicing)]
        &mut self.windows[i]
    }

    fn window(&self, seconds: u32) -> Option<&WindowState> {
        self.windows.iter().find(|s| s.seconds == seconds)
    }

    /// Drops what left its window in every state, and the states left empty.
    fn prune(&mut self, now: u64) {
        for state in &mut self.windows {
            state.prune(now);
        }
        self.windows.retain(|s| !s.buckets.is_empty());
    }

    fn statuses(&self, windows: &[Window], now: u64) -> Vec<WindowStatus> {
        windows
            .iter()
            .map(|w| {
                let state = self.window(w.seconds);
                WindowStatus {
                    seconds: w.seconds,
                    limit: w.limit,
                    remaining: u64::from(w.limit)
                        .saturating_sub(state.map_or(0, |s| s.counted(now))),
                    reset_secs: ceil_secs(
                        state.map_or(now, |s| s.empty_at(now)).saturating_sub(now),
                    ),
                }
            })
            .collect()
    }

    /// The earliest time `>= now` at which `cost` fits every window, with no new traffic.
    fn fits_at(&self, windows: &[Window], now: u64, cost: u64) -> u64 {
        windows
            .iter()
            .map(|w| {
                self.window(w.seconds)
                    .map_or(now, |s| s.fits_at(now, cost, u64::from(w.limit)))
            })
            .max()
            .unwrap_or(now)
    }

    /// Counts `cost` at `now` in each of `seconds` (no check).
    pub fn add(&mut self, seconds: impl IntoIterator<Item = u32>, now: u64, cost: u64) {
        let at = self.clock.max(now);
        self.clock = at;
        for s in seconds {
            self.window_mut(s).add(at, cost);
        }
    }

    /// Where the windows stand at `now`, nothing counted: `Admitted` with every window's status
    /// and how long until one more unit fits (0: it fits now).
    pub fn standing(&mut self, windows: &[Window], now: UnixMillis) -> Decision {
        let now = now.0.max(self.clock);
        self.prune(now);
        Decision::Admitted {
            windows: self.statuses(windows, now),
            full_for_ms: self.fits_at(windows, now, 1).saturating_sub(now),
        }
    }

    /// Checks `cost` against every window at `now` and consumes it if it fits all of them.
    /// `now` earlier than a time already seen is taken as that time. States of windows the
    /// request does not name are kept (and still pruned).
    pub fn decide(&mut self, windows: &[Window], cost: u32, now: UnixMillis) -> Decision {
        if let Some(w) = windows
            .iter()
            .filter(|w| cost > w.limit)
            .min_by_key(|w| w.limit)
        {
            return Decision::NeverFits {
                cost,
                limit: w.limit,
            };
        }
        let now = now.0.max(self.clock);
        self.clock = now;
        self.prune(now);
        let cost64 = u64::from(cost);
        let fits_at = self.fits_at(windows, now, cost64);
        if fits_at > now {
            return Decision::Limited {
                retry_after_secs: ceil_secs(fits_at.saturating_sub(now)).max(1),
                windows: self.statuses(windows, now),
                retry_after_ms: fits_at.saturating_sub(now),
            };
        }
        self.add(windows.iter().map(|w| w.seconds), now, cost64);
        let next_unit_at = self.fits_at(windows, now, 1);
        Decision::Admitted {
            windows: self.statuses(windows, now),
            full_for_ms: next_unit_at.saturating_sub(now),
        }
    }
}

/// Prefix of a counter object's bucket keys in storage: one key per bucket,
/// `b:<window seconds>:<bucket index>`, value `[cost, first, last]` (JSON text). A decision
/// changes at most one bucket per window and drops the ones that left it, so the object writes
/// those few keys instead of its whole state (up to [`BUCKETS`] + 1 buckets per window).
pub const BUCKET_KEY_PREFIX: &str = "b:";

/// The storage key of one bucket.
pub fn bucket_key(seconds: u32, index: u64) -> String {
    format!("{BUCKET_KEY_PREFIX}{seconds}:{index}")
}

/// What a counter object writes after a decision: the buckets that are new or changed (key,
/// `[cost, first, last]`) and the keys of the buckets that are gone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateWrites {
    /// Keys to write, with their values.
    pub put: Vec<(String, String)>,
    /// Keys to delete.
    pub delete: Vec<String>,
}

impl StateWrites {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.put.is_empty() && self.delete.is_empty()
    }
}

impl LimiterState {
    /// The writes that turn the stored form of `before` into this state's.
    pub fn writes_since(&self, before: &LimiterState) -> StateWrites {
        // Buckets are kept in index order, so each lookup is a binary search.
        fn buckets_of(state: &LimiterState, seconds: u32) -> &[Bucket] {
            state
                .windows
                .iter()
                .find(|w| w.seconds == seconds)
                .map_or(&[], |w| w.buckets.as_slice())
        }
        fn find(buckets: &[Bucket], index: u64) -> Option<&Bucket> {
            buckets
                .binary_search_by_key(&index, |b| b.index)
                .ok()
                .and_then(|i| buckets.get(i))
        }
        let mut writes = StateWrites::default();
        for window in &self.windows {
            let old = buckets_of(before, window.seconds);
            for bucket in &window.buckets {
                if find(old, bucket.index) != Some(bucket) {
                    writes.put.push((
                        bucket_key(window.seconds, bucket.index),
                        format!("[{},{},{}]", bucket.cost, bucket.first, bucket.last),
                    ));
                }
            }
        }
        for window in &before.windows {
            let new = buckets_of(self, window.seconds);
            for bucket in &window.buckets {
                if find(new, bucket.index).is_none() {
                    writes.delete.push(bucket_key(window.seconds, bucket.index));
                }
            }
        }
        writes
    }

    /// The state stored as bucket keys (`entries`: key and value, as listed under
    /// [`BUCKET_KEY_PREFIX`]). The clock restarts at the latest admission stored (the clock only
    /// ever moves the counted interval later, so this is the conservative choice). A key or value
    /// that does not parse is an error naming it: the object then refuses rather than forget
    /// what it counted.
    pub fn from_stored_buckets<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<LimiterState, String> {
        let mut state = LimiterState::default();
        for (key, value) in entries {
            let parsed = key
                .strip_prefix(BUCKET_KEY_PREFIX)
                .and_then(|rest| rest.split_once(':'))
                .and_then(|(seconds, index)| Some((seconds.parse().ok()?, index.parse().ok()?)));
            let Some((seconds, index)) = parsed else {
                return Err(format!("bucket key '{key}' does not parse"));
            };
            let [cost, first, last]: [u64; 3] = serde_json::from_str(value)
                .map_err(|e| format!("bucket '{key}' does not parse: {e}"))?;
            let bucket = Bucket {
                index,
                cost,
                first,
                last,
            };
            match state.windows.iter_mut().find(|w| w.seconds == seconds) {
                Some(window) => window.buckets.push(bucket),
                None => state.windows.push(WindowState {
                    seconds,
                    buckets: vec![bucket],
                }),
            }
            state.clock = state.clock.max(last);
        }
        for window in &mut state.windows {
            window.buckets.sort_unstable_by_key(|b| b.index);
        }
        Ok(state)
    }
}

/// The rate-limit headers for a limited route's response (also on 429s): the
/// `X-RateLimit-*` for the most restrictive window (least remaining; `Reset` in Unix epoch
/// seconds), and the IETF structured fields (draft-ietf-httpapi-ratelimit-headers) listing every
/// window, named `"<tier>-<seconds>s"`.
pub fn response_headers(
    tier: &str,
    windows: &[WindowStatus],
    cost: u32,
    now: UnixMillis,
) -> Vec<(&'static str, String)> {
    use crate::names::rate_limit_headers as h;
    let Some(tightest) = windows.iter().min_by(|a, b| {
        a.remaining
            .cmp(&b.remaining)
            .then(b.reset_secs.cmp(&a.reset_secs))
    }) else {
        return Vec::new();
    };
    let name = |w: &WindowStatus| format!("\"{tier}-{}s\"", w.seconds);
    let policy: Vec<String> = windows
        .iter()
        .map(|w| format!("{};q={};w={}", name(w), w.limit, w.seconds))
        .collect();
    let state: Vec<String> = windows
        .iter()
        .map(|w| format!("{};r={};t={}", name(w), w.remaining, w.reset_secs))
        .collect();
    vec![
        (h::LIMIT, tightest.limit.to_string()),
        (h::REMAINING, tightest.remaining.to_string()),
        (
            h::RESET,
            now.as_secs()
                .saturating_add(tightest.reset_secs)
                .to_string(),
        ),
        (h::COST, cost.to_string()),
        (h::POLICY, policy.join(", ")),
        (h::STATE, state.join(", ")),
    ]
}

/// Combines the gateway's rate-limit headers with any the origin sent, so the origin's can only
/// make them more restrictive: the structured-field lists keep the origin's members after ours
/// (a client honours every listed policy), and the `X-RateLimit-*` triple is the origin's when it
/// reports fewer remaining units. `origin` looks up an origin response header.
pub fn merge_origin_headers(
    ours: &[(&'static str, String)],
    origin: impl Fn(&str) -> Option<String>,
) -> Vec<(&'static str, String)> {
    use crate::names::rate_limit_headers as h;
    let ours_remaining = ours
        .iter()
        .find(|(n, _)| *n == h::REMAINING)
        .and_then(|(_, v)| v.parse::<u64>().ok());
    let origin_remaining = origin(h::REMAINING).and_then(|v| v.trim().parse::<u64>().ok());
    let origin_tighter = matches!((origin_remaining, ours_remaining), (Some(o), Some(g)) if o < g);
    ours.iter()
        .map(|(name, value)| {
            let merged = match *name {
                h::POLICY | h::STATE => match origin(name).filter(|v| !v.trim().is_empty()) {
                    Some(theirs) => format!("{value}, {theirs}"),
                    None => value.clone(),
                },
                h::LIMIT | h::REMAINING | h::RESET if origin_tighter => {
                    origin(name).unwrap_or_else(|| value.clone())
                }
                _ => value.clone(),
            };
            (*name, merged)
        })
        .collect()
}

/// Worker -> counter object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumeRequest {
    /// Cost units to consume.
    pub cost: u32,
    /// The Worker's clock at the request (the object never reads its own).
    pub now: UnixMillis,
    /// The windows of the caller's tier (empty: check revocations only, count nothing).
    pub windows: Vec<Window>,
    /// The token, for the organisation's revocations (absent for client-IP counters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<crate::revocation::Caller>,
    /// How long the object waits, idle, before it writes its admissions down and shrinks its
    /// reservation (ms; 0, or absent as from earlier Workers: every admission is written before
    /// its answer). See `crate::counter`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub write_within_ms: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Counter object -> Worker.
pub type ConsumeReply = Decision;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_sent_only_when_set() {
        let mut request = ConsumeRequest {
            cost: 1,
            now: UnixMillis(5),
            windows: Vec::new(),
            caller: None,
            write_within_ms: 0,
        };
        let text = serde_json::to_string(&request).unwrap();
        assert!(!text.contains("write_within_ms"), "{text}");
        assert_eq!(
            serde_json::from_str::<ConsumeRequest>(&text).unwrap(),
            request
        );
        request.write_within_ms = 1_000;
        let text = serde_json::to_string(&request).unwrap();
        assert!(text.contains(r#""write_within_ms":1000"#), "{text}");
        assert_eq!(
            serde_json::from_str::<ConsumeRequest>(&text).unwrap(),
            request
        );
    }

    #[test]
    fn buckets_are_stored_as_arrays_and_read_in_either_form() {
        let bucket = Bucket {
            index: 3_527_800_123,
            cost: 5,
            first: 1_763_900_061_500,
            last: 1_763_900_061_999,
        };
        let text = serde_json::to_string(&bucket).unwrap();
        assert_eq!(text, "[3527800123,5,1763900061500,1763900061999]");
        assert_eq!(serde_json::from_str::<Bucket>(&text).unwrap(), bucket);
        let earlier = r#"{"index":3527800123,"cost":5,"first":1763900061500,"last":1763900061999}"#;
        assert_eq!(serde_json::from_str::<Bucket>(earlier).unwrap(), bucket);
        let mut state = LimiterState::default();
        for t in 0..50 {
            state.decide(&[w(1_000, 60)], 1, at(1_000_000 + t * 700));
        }
        let text = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<LimiterState>(&text).unwrap(), state);
    }

    fn w(limit: u32, seconds: u32) -> Window {
        Window { limit, seconds }
    }

    fn at(ms: u64) -> UnixMillis {
        UnixMillis(ms)
    }

    #[test]
    fn admits_up_to_the_limit_then_limits_with_the_exact_wait() {
        let windows = [w(100, 60)];
        let mut s = LimiterState::default();
        for i in 0..100 {
            assert!(
                matches!(
                    s.decide(&windows, 1, at(1_000 + i)),
                    Decision::Admitted { .. }
                ),
                "{i}"
            );
        }
        let Decision::Limited {
            retry_after_secs,
            windows: status,
            retry_after_ms,
        } = s.decide(&windows, 1, at(1_100))
        else {
            panic!("expected a limit");
        };
        // All 100 share one bucket, last at 1.099 s: it leaves the window at 61.099 s, 59.999 s
        // from now, which rounds up to 60.
        assert_eq!(retry_after_secs, 60);
        assert_eq!(retry_after_ms, 59_999);
        assert_eq!(status[0].remaining, 0);
        // The milliseconds are exact: one before, it does not fit; at them, it does.
        let mut probe = s.clone();
        assert!(matches!(
            probe.decide(&windows, 1, at(1_100 + 59_998)),
            Decision::Limited { .. }
        ));
        assert!(matches!(
            probe.decide(&windows, 1, at(1_100 + 59_999)),
            Decision::Admitted { .. }
        ));
        assert!(matches!(
            s.decide(&windows, 1, at(1_100 + 59_000)),
            Decision::Limited { .. }
        ));
        assert!(matches!(
            s.decide(&windows, 1, at(1_100 + 60_000)),
            Decision::Admitted { .. }
        ));
    }

    #[test]
    fn costs_are_weighted_and_never_fitting_costs_are_their_own_answer() {
        let windows = [w(100, 60)];
        let mut s = LimiterState::default();
        for i in 0..5 {
            assert!(
                matches!(s.decide(&windows, 20, at(i)), Decision::Admitted { .. }),
                "{i}"
            );
        }
        assert!(matches!(
            s.decide(&windows, 20, at(10)),
            Decision::Limited { .. }
        ));
        assert!(matches!(
            s.decide(&windows, 1, at(10)),
            Decision::Limited { .. }
        ));
        assert_eq!(
            s.decide(&windows, 101, at(10)),
            Decision::NeverFits {
                cost: 101,
                limit: 100
            }
        );
        assert_eq!(
            s.decide(&[w(1000, 60), w(20, 1)], 25, at(10)),
            Decision::NeverFits {
                cost: 25,
                limit: 20
            }
        );
    }

    #[test]
    fn every_window_must_fit() {
        let windows = [w(3, 1), w(5, 60)];
        let mut s = LimiterState::default();
        for t in [0, 10, 20] {
            assert!(matches!(
                s.decide(&windows, 1, at(t)),
                Decision::Admitted { .. }
            ));
        }
        assert!(matches!(
            s.decide(&windows, 1, at(30)),
            Decision::Limited {
                retry_after_secs: 1,
                ..
            }
        ));
        for t in [1_100, 1_200] {
            assert!(
                matches!(s.decide(&windows, 1, at(t)), Decision::Admitted { .. }),
                "{t}"
            );
        }
        // The per-second window has room again, the minute window does not.
        let Decision::Limited {
            retry_after_secs, ..
        } = s.decide(&windows, 1, at(2_500))
        else {
            panic!("the 60 s window is full");
        };
        assert_eq!(retry_after_secs, 58);
    }

    #[test]
    fn a_clock_going_backwards_is_clamped() {
        let windows = [w(2, 60)];
        let mut s = LimiterState::default();
        assert!(matches!(
            s.decide(&windows, 1, at(100_000)),
            Decision::Admitted { .. }
        ));
        assert!(matches!(
            s.decide(&windows, 1, at(50_000)),
            Decision::Admitted { .. }
        ));
        assert!(matches!(
            s.decide(&windows, 1, at(1)),
            Decision::Limited { .. }
        ));
        assert_eq!(s.clock, 100_000);
    }

    #[test]
    fn state_stays_bounded_and_windows_follow_the_configuration() {
        let windows = [w(1_000_000, 60)];
        let mut s = LimiterState::default();
        for i in 0..100_000u64 {
            s.decide(&windows, 1, at(i * 7));
            assert!(s.windows[0].buckets.len() as u64 <= BUCKETS + 1);
        }
        s.decide(&[w(10, 1)], 1, at(800_000));
        assert_eq!(s.windows.len(), 1);
        assert_eq!(s.windows[0].seconds, 1);
    }

    #[test]
    fn headers_name_the_tightest_window_and_list_every_window() {
        let windows = [
            WindowStatus {
                seconds: 1,
                limit: 20,
                remaining: 15,
                reset_secs: 1,
            },
            WindowStatus {
                seconds: 60,
                limit: 1000,
                remaining: 7,
                reset_secs: 42,
            },
        ];
        let headers = response_headers("pro", &windows, 2, UnixMillis(1_800_000_000_500));
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("x-ratelimit-limit"), "1000");
        assert_eq!(get("x-ratelimit-remaining"), "7");
        assert_eq!(get("x-ratelimit-reset"), "1800000042");
        assert_eq!(get("x-ratelimit-cost"), "2");
        // Parse the structured fields back with a Structured Field Values parser.
        let policy = sfv::Parser::new(&get("ratelimit-policy"))
            .parse::<sfv::List>()
            .unwrap();
        let state = sfv::Parser::new(&get("ratelimit"))
            .parse::<sfv::List>()
            .unwrap();
        assert_eq!(policy.len(), 2);
        assert_eq!(state.len(), 2);
        let member = |list: &sfv::List, i: usize| match &list[i] {
            sfv::ListEntry::Item(item) => item.clone(),
            other => panic!("{other:?}"),
        };
        let p = member(&policy, 1);
        assert_eq!(
            p.bare_item,
            sfv::BareItem::String(sfv::String::from_string("pro-60s".into()).unwrap())
        );
        assert_eq!(
            p.params.get("q"),
            Some(&sfv::BareItem::Integer(sfv::Integer::constant(1000)))
        );
        assert_eq!(
            p.params.get("w"),
            Some(&sfv::BareItem::Integer(sfv::Integer::constant(60)))
        );
        let s = member(&state, 0);
        assert_eq!(
            s.params.get("r"),
            Some(&sfv::BareItem::Integer(sfv::Integer::constant(15)))
        );
        assert_eq!(
            s.params.get("t"),
            Some(&sfv::BareItem::Integer(sfv::Integer::constant(1)))
        );
        assert!(response_headers("free", &[], 1, UnixMillis(0)).is_empty());
    }

    #[test]
    fn the_origin_can_only_tighten_the_headers() {
        let ours = response_headers(
            "pro",
            &[WindowStatus {
                seconds: 60,
                limit: 1000,
                remaining: 900,
                reset_secs: 30,
            }],
            1,
            UnixMillis(1_000_000),
        );
        let get = |hs: &[(&str, String)], n: &str| {
            hs.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        // No origin fields: ours unchanged.
        assert_eq!(merge_origin_headers(&ours, |_| None), ours);
        // A looser origin never wins.
        let looser = |n: &str| match n {
            "x-ratelimit-remaining" => Some("5000".to_owned()),
            "x-ratelimit-limit" => Some("9000".to_owned()),
            _ => None,
        };
        assert_eq!(
            get(
                &merge_origin_headers(&ours, looser),
                "x-ratelimit-remaining"
            ),
            "900"
        );
        // A tighter origin does, and its structured policies are added to ours.
        let tighter = |n: &str| match n {
            "x-ratelimit-remaining" => Some("3".to_owned()),
            "x-ratelimit-limit" => Some("10".to_owned()),
            "x-ratelimit-reset" => Some("1000050".to_owned()),
            "ratelimit-policy" => Some("\"origin\";q=10;w=60".to_owned()),
            "ratelimit" => Some("\"origin\";r=3;t=50".to_owned()),
            _ => None,
        };
        let merged = merge_origin_headers(&ours, tighter);
        assert_eq!(get(&merged, "x-ratelimit-remaining"), "3");
        assert_eq!(get(&merged, "x-ratelimit-limit"), "10");
        assert_eq!(
            get(&merged, "ratelimit-policy"),
            "\"pro-60s\";q=1000;w=60, \"origin\";q=10;w=60"
        );
        let state = sfv::Parser::new(&get(&merged, "ratelimit"))
            .parse::<sfv::List>()
            .unwrap();
        assert_eq!(state.len(), 2);
    }

    #[test]
    fn statuses_report_remaining_and_reset() {
        let windows = [w(10, 60)];
        let mut s = LimiterState::default();
        let Decision::Admitted { windows: st, .. } = s.decide(&windows, 4, at(5_000)) else {
            panic!()
        };
        assert_eq!(
            st[0],
            WindowStatus {
                seconds: 60,
                limit: 10,
                remaining: 6,
                reset_secs: 60
            }
        );
        let Decision::Admitted { windows: st, .. } = s.decide(&windows, 1, at(35_000)) else {
            panic!()
        };
        assert_eq!((st[0].remaining, st[0].reset_secs), (5, 60));
    }
}
