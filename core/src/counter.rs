//! A counter object's counts and when it must store them: reservations.
//!
//! The counts in the object's memory ([`LimiterState`]) decide every request; storage is what a
//! restarted object (a crash, a redeploy, an eviction) starts from. Storing every admission
//! before its answer costs one storage commit per admitted request. Storing them later would let
//! a crash forget admissions already answered, and the restarted object admit them again. A
//! reservation gets both: few writes and no over-admission, whatever the moment of the crash.
//!
//! # The rule
//! Storage holds the buckets as last written and a [`Reservation`]: up to `allow` units may have
//! been admitted beyond what those buckets show, in the listed windows. The object admits from
//! memory alone while the units admitted since the last write fit that stored allowance (and the
//! request's windows are all listed). The admission that would go past it first writes the
//! buckets (every admission so far) and a new reservation `slack` units ahead, and its answer
//! waits until that write is durable (the runtime's output gate: a confirmed write, never
//! `allowUnconfirmed`). A restarted object counts the whole stored allowance as admitted at its
//! restart instant, in every listed window ([`Counter::load`]).
//!
//! # The bounds
//! - **Never over-admits**: every admission the object answered is either in the stored buckets
//!   or within the stored allowance, which a restart counts (later than the admissions it stands
//!   for, so for at least as long). Property-tested against the exact sliding log with a crash
//!   injected at every point (`tests/limiter.rs`).
//! - **False denials after a restart** are the unused part of the allowance: at most `slack`
//!   units, `max(1, 2% of the smallest limit listed)`, counted for one window length.
//! - **Writes**: at most one per `slack` admitted units (free tier, 100 per minute: one write per
//!   2 units; pro 1,000: per 20; enterprise 10,000: per 200), plus one when the object falls idle.
//! - **An idle object costs nothing on eviction**: `idle_ms` after its last admission it writes
//!   its buckets and an allowance of 0 ([`Counter::idle`]); that write may go unconfirmed (it only
//!   shrinks what a restart would count).
//! - `idle_ms` 0 (a tier's `write_interval_ms = 0`) means a slack of 0: every admission is
//!   written before its answer.

use serde::{Deserialize, Serialize};

use crate::limit::{Decision, LimiterState, StateWrites};
use crate::time::UnixMillis;
use crate::window::Window;

/// Storage key of the reservation (JSON text of [`Reservation`]).
pub const RESERVATION_KEY: &str = "reservation";

/// What a restarted object must count as admitted beyond the stored buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Units that may have been admitted and not yet written.
    pub allow: u64,
    /// The windows they count in (length and the smallest limit seen for it).
    pub windows: Vec<Window>,
}

impl Reservation {
    fn covers(&self, windows: &[Window]) -> bool {
        windows
            .iter()
            .all(|w| self.windows.iter().any(|r| r.seconds == w.seconds))
    }
}

/// The allowance a new reservation takes: `max(1, 2%)` of the smallest listed limit (0 when
/// every admission must be written before its answer).
fn slack(windows: &[Window], idle_ms: u32) -> u64 {
    if idle_ms == 0 {
        return 0;
    }
    windows
        .iter()
        .map(|w| (u64::from(w.limit) / 50).max(1))
        .min()
        .unwrap_or(1)
}

/// A write the object must start: `confirmed` writes hold the answer until they are durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterWrite {
    /// The bucket keys and the reservation key to write, and the bucket keys to delete.
    pub writes: StateWrites,
    /// Hold the answer until it is durable (an extension); false for the idle write.
    pub confirmed: bool,
}

/// One counter object's counts: what decides (in memory), what storage holds, and the stored
/// reservation. Time is the object's own clock, passed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    live: LimiterState,
    stored: LimiterState,
    reservation: Reservation,
    /// Units admitted since the last write (the restart charge, right after a load); never
    /// more than the stored allowance.
    unrecorded: u64,
    /// The last admission, for the idle write.
    last_admission: u64,
    /// The idle delay the last call asked for.
    idle_ms: u32,
}

impl Counter {
    /// The counter a (re)started object reads back: the stored buckets and reservation. The
    /// stored allowance is counted as admitted at `now` in every listed window: the units it
    /// stands for may have been admitted, unwritten, just before the restart.
    pub fn load(
        stored: LimiterState,
        reservation: Option<Reservation>,
        now: UnixMillis,
    ) -> Counter {
        let reservation = reservation.unwrap_or_default();
        let mut live = stored.clone();
        if reservation.allow > 0 {
            live.add(
                reservation.windows.iter().map(|w| w.seconds),
                now.0,
                reservation.allow,
            );
        }
        Counter {
            live,
            stored,
            unrecorded: reservation.allow,
            reservation,
            last_admission: now.0,
            idle_ms: 0,
        }
    }

    /// Decides a request at the object's time `now`; an admission past the stored allowance
    /// returns the write its answer must wait for.
    pub fn consume(
        &mut self,
        windows: &[Window],
        cost: u32,
        now: UnixMillis,
        idle_ms: u32,
    ) -> (Decision, Option<CounterWrite>) {
        let decision = self.live.decide(windows, cost, now);
        if !matches!(decision, Decision::Admitted { .. }) {
            return (decision, None);
        }
        (decision, self.admitted(windows, cost, now, idle_ms))
    }

    /// Counts `cost` at `now` in `windows` without a check: something that already happened (a
    /// failed login the origin answered). The same durability rule as an admission.
    pub fn count(
        &mut self,
        windows: &[Window],
        cost: u32,
        now: UnixMillis,
        idle_ms: u32,
    ) -> Option<CounterWrite> {
        self.live
            .add(windows.iter().map(|w| w.seconds), now.0, u64::from(cost));
        self.admitted(windows, cost, now, idle_ms)
    }

    /// Whether `cost` more fits every window at `now` (nothing is counted).
    pub fn fits(&self, windows: &[Window], cost: u32, now: UnixMillis) -> Decision {
        self.live.clone().decide(windows, cost, now)
    }

    /// Where the windows stand at `now` (nothing is counted).
    pub fn standing(&mut self, windows: &[Window], now: UnixMillis) -> Decision {
        self.live.standing(windows, now)
    }

    /// The durability rule after `cost` was counted: the write an answer must wait for, if the
    /// stored allowance does not cover it.
    fn admitted(
        &mut self,
        windows: &[Window],
        cost: u32,
        now: UnixMillis,
        idle_ms: u32,
    ) -> Option<CounterWrite> {
        self.idle_ms = idle_ms;
        self.last_admission = self.last_admission.max(now.0);
        self.unrecorded = self.unrecorded.saturating_add(u64::from(cost));
        if self.unrecorded <= self.reservation.allow && self.reservation.covers(windows) {
            return None;
        }
        let listed = self.listed(windows);
        let allow = slack(&listed, idle_ms);
        Some(self.record(listed, allow, true))
    }

    /// The windows a new reservation lists: the stored list and the request's, those still
    /// counting something, each with the smallest limit seen.
    fn listed(&self, request: &[Window]) -> Vec<Window> {
        let mut listed: Vec<Window> = self.reservation.windows.clone();
        for w in request {
            match listed.iter_mut().find(|l| l.seconds == w.seconds) {
                Some(l) => l.limit = l.limit.min(w.limit),
                None => listed.push(*w),
            }
        }
        listed.retain(|w| self.live.windows.iter().any(|s| s.seconds == w.seconds));
        listed
    }

    /// Stores every admission so far and a reservation of `allow` units.
    fn record(&mut self, windows: Vec<Window>, allow: u64, confirmed: bool) -> CounterWrite {
        let mut writes = self.live.writes_since(&self.stored);
        let reservation = Reservation { allow, windows };
        if reservation != self.reservation {
            // A Reservation always serialises (plain numbers).
            let text = serde_json::to_string(&reservation).unwrap_or_default();
            writes.put.push((RESERVATION_KEY.to_owned(), text));
        }
        self.stored = self.live.clone();
        self.reservation = reservation;
        self.unrecorded = 0;
        CounterWrite { writes, confirmed }
    }

    /// When the idle write is due (object time), if one is pending: the stored allowance is not
    /// yet shrunk to zero (while it is above zero, admissions may be unwritten).
    pub fn idle_due(&self) -> Option<u64> {
        (self.reservation.allow > 0)
            .then(|| self.last_admission.saturating_add(u64::from(self.idle_ms)))
    }

    /// The idle write, once `idle_ms` passed since the last admission: every admission written
    /// and an allowance of 0, so an evicted object's restart charges nothing. `None` when it is
    /// not due yet (ask [`Counter::idle_due`] again) or nothing is pending.
    pub fn idle(&mut self, now: UnixMillis) -> Option<CounterWrite> {
        let due = self.idle_due()?;
        (now.0 >= due).then(|| self.record(Vec::new(), 0, false))
    }
}
