//! Refusals an isolate remembers, so a flood from an organisation over its limit costs no
//! counter-object calls. When an organisation's object answers that a cost does not fit its
//! tier's windows (`Decision::Limited` with `retry_after_ms`), the isolate refuses that cost, and
//! any larger one, for the same object and tier, until the time the object gave, counted from
//! when the isolate sent the call.
//!
//! Why it never refuses what the object would admit: counts in a sliding window only leave it
//! with time, and admissions by other isolates only make the next fit later, so a cost that did
//! not fit at the decision does not fit before `decision + retry_after_ms`; a larger cost does
//! not fit either. The isolate counts from the call's send time, which is no later than the
//! decision, so its refusal ends no later than the object's would (a clock rate, not a clock
//! offset, matters: only durations are compared). It never admits anything: what it does not
//! refuse goes to the object as before.

use std::collections::HashMap;

use crate::limit::{Decision, WindowStatus};
use crate::time::UnixMillis;

/// Largest number of refusals one isolate remembers (the earliest to end dropped first).
pub const MAX_REMEMBERED: usize = 10_000;

/// One remembered refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Remembered {
    /// Until when (isolate clock) the cost does not fit.
    until: u64,
    /// The smallest cost refused.
    cost: u32,
    /// When the call was sent, and the windows as the object answered.
    sent_at: u64,
    windows: Vec<WindowStatus>,
}

/// The refusals of one isolate, by (counter object, tier).
#[derive(Debug, Default)]
pub struct RefusalCache {
    entries: HashMap<(String, String), Remembered>,
}

impl RefusalCache {
    /// Remembers the object's answer to a call of `cost` sent at `sent_at`, if it is a refusal
    /// that says until when. Replaces what was remembered for the same object and tier.
    pub fn remember(
        &mut self,
        (object, tier): (&str, &str),
        cost: u32,
        answer: &Decision,
        sent_at: UnixMillis,
    ) {
        let Decision::Limited {
            retry_after_ms,
            windows,
            ..
        } = answer
        else {
            return;
        };
        if *retry_after_ms == 0 {
            return;
        }
        let key = (object.to_owned(), tier.to_owned());
        if self.entries.len() >= MAX_REMEMBERED && !self.entries.contains_key(&key) {
            self.entries.retain(|_, r| r.until > sent_at.0);
            if self.entries.len() >= MAX_REMEMBERED {
                let first = self
                    .entries
                    .iter()
                    .min_by_key(|(_, r)| r.until)
                    .map(|(k, _)| k.clone());
                if let Some(first) = first {
                    self.entries.remove(&first);
                }
            }
        }
        let remembered = Remembered {
            until: sent_at.0.saturating_add(*retry_after_ms),
            cost,
            sent_at: sent_at.0,
            windows: windows.clone(),
        };
        self.entries.insert(key, remembered);
    }

    /// The refusal of a call of `cost` for this object and tier at `now`, as the object would
    /// answer it, if one is remembered and still holds.
    pub fn refused(
        &mut self,
        (object, tier): (&str, &str),
        cost: u32,
        now: UnixMillis,
    ) -> Option<Decision> {
        let key = (object.to_owned(), tier.to_owned());
        let remembered = self.entries.get(&key)?;
        if remembered.until <= now.0 {
            self.entries.remove(&key);
            return None;
        }
        if cost < remembered.cost {
            return None;
        }
        let left = remembered.until.saturating_sub(now.0);
        let elapsed_secs = now.0.saturating_sub(remembered.sent_at) / 1000;
        let windows = remembered
            .windows
            .iter()
            .map(|w| WindowStatus {
                reset_secs: w.reset_secs.saturating_sub(elapsed_secs).max(1),
                ..*w
            })
            .collect();
        Some(Decision::Limited {
            retry_after_secs: left.div_ceil(1000).max(1),
            windows,
            retry_after_ms: left,
        })
    }

    /// Refusals remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: (&str, &str) = ("rl1:local:acme", "free");

    fn limited(retry_after_ms: u64) -> Decision {
        Decision::Limited {
            retry_after_secs: retry_after_ms.div_ceil(1000),
            windows: vec![WindowStatus {
                seconds: 60,
                limit: 10,
                remaining: 1,
                reset_secs: 30,
            }],
            retry_after_ms,
        }
    }

    #[test]
    fn a_refusal_holds_for_the_same_cost_or_more_until_its_end() {
        let mut cache = RefusalCache::default();
        cache.remember(KEY, 2, &limited(5_500), UnixMillis(1_000));
        // Until 6 500: the same cost and more are refused; less is asked.
        let Some(Decision::Limited {
            retry_after_secs,
            retry_after_ms,
            windows,
        }) = cache.refused(KEY, 2, UnixMillis(3_000))
        else {
            panic!("not refused")
        };
        assert_eq!((retry_after_secs, retry_after_ms), (4, 3_500));
        assert_eq!(windows[0].reset_secs, 28);
        assert!(cache.refused(KEY, 9, UnixMillis(6_499)).is_some());
        assert_eq!(cache.refused(KEY, 1, UnixMillis(3_000)), None);
        // Another tier, another object: not this refusal.
        assert_eq!(
            cache.refused(("rl1:local:acme", "pro"), 2, UnixMillis(3_000)),
            None
        );
        assert_eq!(
            cache.refused(("rl1:local:other", "free"), 2, UnixMillis(3_000)),
            None
        );
        // At its end it is gone.
        assert_eq!(cache.refused(KEY, 2, UnixMillis(6_500)), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn only_refusals_that_say_until_when_are_remembered() {
        let mut cache = RefusalCache::default();
        let admitted = Decision::Admitted {
            windows: Vec::new(),
            full_for_ms: 0,
        };
        cache.remember(KEY, 1, &admitted, UnixMillis(0));
        cache.remember(KEY, 1, &limited(0), UnixMillis(0));
        cache.remember(
            KEY,
            1,
            &Decision::NeverFits { cost: 1, limit: 0 },
            UnixMillis(0),
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut cache = RefusalCache::default();
        for i in 0..MAX_REMEMBERED + 5 {
            let object = format!("rl1:local:org{i}");
            let ms = 1_000 + u64::try_from(i).unwrap();
            cache.remember((&object, "free"), 1, &limited(ms), UnixMillis(0));
        }
        assert_eq!(cache.len(), MAX_REMEMBERED);
        // The earliest to end went first.
        assert_eq!(
            cache.refused(("rl1:local:org0", "free"), 1, UnixMillis(10)),
            None
        );
        let last = format!("rl1:local:org{}", MAX_REMEMBERED + 4);
        assert!(cache.refused((&last, "free"), 1, UnixMillis(10)).is_some());
    }
}
