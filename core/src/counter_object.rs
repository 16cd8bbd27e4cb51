//! The rate-limit counter object (class `RateLimiter` of the counters Worker, binding
//! `RATE_LIMITER`) as a type fed its storage and its clock: [`CounterObject`] decides every
//! call and says what to write; a [`CounterStore`] lists and writes. The Durable Object
//! (`durable/src/rate_limiter.rs`) implements the store over the runtime's storage and relays
//! calls; [`InMemoryStore`] stands in for it in tests, crashes included.
//!
//! One object per rate-limit key: the gateway addresses it by `RateLimitKey::object_name()` =
//! `rl1:<issuer name>:<org id>` ([`crate::identity`]), so two issuers never share counters even
//! for the same org string. The same class counts clients before authentication (objects named
//! `ip1:<class>:<client>`, [`crate::client`]); those calls carry no caller.
//!
//! # Where it runs
//! In its own Worker, the counters Worker (`durable/wrangler.toml`: script
//! `edge-gateway-counters`, `edge-gateway-counters-<env>`), with no route, no workers.dev and no
//! preview URL: the gateway reaches it only through its `RATE_LIMITER` binding (`script_name`).
//!
//! # Calls
//! Workers RPC, JSON text in and out with the caller's [`crate::protocol`] version
//! ([`CounterObject::call_json`]; a version this build does not accept is an error). The
//! runtime only allows RPC into classes that `extends DurableObject`, so `durable/entry.mjs`
//! exports a `RateLimiter` that does and delegates to the wasm object.
//! - [`Call::Consume`]: [`ConsumeRequest`] -> [`Decision`]. The organisation's revocations
//!   first (nothing is counted for a revoked caller), then check and count (no windows:
//!   revocations only).
//! - [`Call::Revocations`]: [`RevocationCommand`] -> [`RevocationReply`].
//! - [`Call::Hold`], [`Call::Settle`]: [`crate::holds`] (attempts in flight on a route counting
//!   only failures) -> [`Decision`].
//!
//! # Storage layout
//! - keys `b:<window seconds>:<bucket index>`: one per bucket of [`LimiterState`], value
//!   `[cost, first, last]` (JSON text); at most `BUCKETS + 1` per window the organisation used
//!   within that window's length. A write stores the buckets that changed since the last one and
//!   deletes the ones that left their window ([`LimiterState::writes_since`]).
//! - key [`RESERVATION_KEY`] (`reservation`): [`Reservation`] as JSON text, `{allow, windows}`:
//!   how many units may have been admitted beyond the stored buckets, and in which windows.
//! - key [`REVOCATIONS_KEY`] (`revocations`): [`RevocationList`] as JSON text, at most
//!   [`crate::revocation::MAX_ENTRIES`] entries, each expiring with the tokens it covers.
//! - key [`HOLDS_KEY`] (`holds`): [`Holds`] as JSON text.
//!
//! Values are read as JSON text; a store that holds the structured form earlier versions wrote
//! lists it as the same JSON. Other keys are ignored.
//!
//! # Time
//! Every decision is made on the object's own clock (the `now` passed to each method), never on
//! the caller's: a gateway isolate with a clock far ahead or behind moves nothing for anyone
//! else. The caller's `now` stays in the request for older counters Workers that read it.
//!
//! # When the counts are written: reservations
//! The state is listed once per object instance and then kept in memory (the object is its
//! only writer); each call decides on it with no other I/O in between (the runtime's input gate
//! makes each call atomic). [`crate::counter::Counter`] decides when a write is due: an
//! admission past the stored reservation writes every admission so far and a new reservation
//! before its answer leaves (a confirmed write: the output gate holds the answer until it is
//! durable), so a restarted object, which counts the stored reservation as admitted, never
//! admits again what was answered before a crash. An object idle for the caller's
//! `write_within_ms` writes its admissions and shrinks its reservation to zero (a timer the
//! object asks for with [`CounterObject::take_write_timer`], firing
//! [`CounterObject::write_scheduled`]); that write may go unconfirmed. A write that fails to start
//! drops that part of the state from memory, so the next call lists storage again; one that
//! fails later resets the object (the runtime's rule).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::counter::{Counter, CounterWrite, RESERVATION_KEY, Reservation};
use crate::holds::{self, HOLDS_KEY, HoldRequest, Holds, SettleRequest};
use crate::limit::{BUCKET_KEY_PREFIX, ConsumeRequest, Decision, LimiterState, StateWrites};
use crate::protocol::{self, UnsupportedProtocol};
use crate::revocation::{RevocationCommand, RevocationList, RevocationReply};
use crate::time::UnixMillis;

/// Storage key of the deny list (JSON text of [`RevocationList`]).
pub const REVOCATIONS_KEY: &str = "revocations";

/// Why a store could not list or start a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The listing needs I/O that has not been performed yet (a Durable Object reads its
    /// storage asynchronously). Nothing changed: read it, then make the same call again.
    NotRead,
    /// The store failed, or what it holds does not parse (the message names the key).
    Failed(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NotRead => f.write_str("the counter object's storage is not read yet"),
            StoreError::Failed(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for StoreError {}

/// The object's storage, as the object sees it: synchronous. A store whose reads are
/// asynchronous answers [`StoreError::NotRead`] until its I/O layer has read the listing.
pub trait CounterStore {
    /// Every stored key with its value as JSON text. Called once per object instance, and
    /// again after a write failed to start.
    fn list(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Starts `write` without waiting for it. A confirmed write holds every answer the object
    /// sends until it is durable; an unconfirmed one lets answers go out meanwhile (a crash may
    /// lose it). An error: the write did not start.
    fn start(&self, write: &CounterWrite) -> Result<(), StoreError>;
}

/// Why a call was not answered: the message is what the caller's error says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The caller speaks a protocol version this build does not accept.
    Protocol(UnsupportedProtocol),
    /// The body did not parse, or the answer did not encode.
    Json(String),
    /// Storage could not be listed or written.
    Store(StoreError),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Protocol(e) => e.fmt(f),
            CallError::Json(message) => f.write_str(message),
            CallError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CallError {}

/// The object's calls (Workers RPC methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// [`ConsumeRequest`] -> [`Decision`].
    Consume,
    /// [`HoldRequest`] -> [`Decision`].
    Hold,
    /// [`SettleRequest`] -> [`Decision`].
    Settle,
    /// [`RevocationCommand`] -> [`RevocationReply`].
    Revocations,
}

/// Everything a listing holds, decoded.
struct Stored {
    revocations: RevocationList,
    limiter: LimiterState,
    reservation: Option<Reservation>,
    holds: Holds,
}

fn decode<T: DeserializeOwned>(key: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Failed(format!("decoding '{key}': {e}")))
}

impl Stored {
    fn decode(listed: &[(String, String)]) -> Result<Stored, StoreError> {
        let mut revocations = RevocationList::default();
        let mut reservation = None;
        let mut holds = Holds::default();
        let mut buckets = Vec::new();
        for (key, text) in listed {
            match key.as_str() {
                REVOCATIONS_KEY => revocations = decode(key, text)?,
                RESERVATION_KEY => reservation = Some(decode(key, text)?),
                HOLDS_KEY => holds = decode(key, text)?,
                _ if key.starts_with(BUCKET_KEY_PREFIX) => {
                    buckets.push((key.as_str(), text.as_str()))
                }
                _ => {}
            }
        }
        let limiter = LimiterState::from_stored_buckets(buckets).map_err(StoreError::Failed)?;
        Ok(Stored {
            revocations,
            limiter,
            reservation,
            holds,
        })
    }
}

/// A write of one key (`confirmed`: stored before the answer leaves).
fn put_one(key: &str, value: String, confirmed: bool) -> CounterWrite {
    CounterWrite {
        writes: StateWrites {
            put: vec![(key.to_owned(), value)],
            delete: Vec::new(),
        },
        confirmed,
    }
}

/// Starts `write`; if it does not start, `part` leaves memory (the next call lists storage).
fn start_or_drop<T>(
    store: &impl CounterStore,
    write: &CounterWrite,
    part: &mut Option<T>,
) -> Result<(), StoreError> {
    store.start(write).inspect_err(|_| *part = None)
}

/// Parses `body`, runs `call`, encodes its answer.
fn answer<B: DeserializeOwned, R: Serialize>(
    body: &str,
    call: impl FnOnce(B) -> Result<R, StoreError>,
) -> Result<String, CallError> {
    let body = serde_json::from_str(body).map_err(|e| CallError::Json(e.to_string()))?;
    let answer = call(body).map_err(CallError::Store)?;
    serde_json::to_string(&answer).map_err(|e| CallError::Json(e.to_string()))
}

/// One counter object's state in memory: each part once listed (`None` before, and after a
/// write of it failed to start), and the idle write's timer.
#[derive(Debug, Clone, Default)]
pub struct CounterObject {
    /// The counts: what decides, what storage holds and the stored reservation.
    counter: Option<Counter>,
    /// The deny list.
    revocations: Option<RevocationList>,
    /// The live holds of a client counting only failures.
    holds: Option<Holds>,
    /// The idle write's timer is set.
    timer_set: bool,
    /// A timer to set, in ms, until taken.
    timer_wanted: Option<u32>,
}

impl CounterObject {
    /// An object with nothing read yet (a new instance).
    pub fn new() -> CounterObject {
        CounterObject::default()
    }

    /// Whether every part of the state is in memory (a call then lists nothing).
    pub fn is_loaded(&self) -> bool {
        self.counter.is_some() && self.revocations.is_some() && self.holds.is_some()
    }

    /// Lists storage, once, if a part is not in memory; the parts in memory are kept (they are
    /// what storage holds plus what was decided since). A cold counter counts its stored
    /// reservation as admitted at `now`.
    fn load(&mut self, store: &impl CounterStore, now: UnixMillis) -> Result<(), StoreError> {
        if self.is_loaded() {
            return Ok(());
        }
        let stored = Stored::decode(&store.list()?)?;
        self.revocations.get_or_insert(stored.revocations);
        self.holds.get_or_insert(stored.holds);
        self.counter
            .get_or_insert_with(|| Counter::load(stored.limiter, stored.reservation, now));
        Ok(())
    }

    /// The parts, loaded.
    fn parts(&mut self) -> Result<(&mut Counter, &mut RevocationList, &mut Holds), StoreError> {
        match (&mut self.counter, &mut self.revocations, &mut self.holds) {
            (Some(counter), Some(revocations), Some(holds)) => Ok((counter, revocations, holds)),
            _ => Err(StoreError::Failed("state not loaded".to_owned())),
        }
    }

    /// One RPC call: the caller's protocol version checked (in [`protocol::accept`]), its JSON
    /// body parsed, the call made at the object's time `now`, its answer as JSON. Nothing
    /// changes when it fails with [`StoreError::NotRead`].
    pub fn call_json(
        &mut self,
        store: &impl CounterStore,
        call: Call,
        body: &str,
        protocol: Option<u32>,
        now: UnixMillis,
    ) -> Result<String, CallError> {
        protocol::accept(protocol).map_err(CallError::Protocol)?;
        match call {
            Call::Consume => answer(body, |request| self.consume(store, &request, now)),
            Call::Hold => answer(body, |request| self.hold(store, &request, now)),
            Call::Settle => answer(body, |request| self.settle(store, &request, now)),
            Call::Revocations => answer(body, |command| self.revocations(store, command, now)),
        }
    }

    /// Decides at `now`: the revocations first (nothing is counted for a revoked caller), then
    /// the windows. An admission past the stored reservation starts the write its answer waits
    /// for.
    pub fn consume(
        &mut self,
        store: &impl CounterStore,
        request: &ConsumeRequest,
        now: UnixMillis,
    ) -> Result<Decision, StoreError> {
        self.load(store, now)?;
        let (counter, revocations, _) = self.parts()?;
        if let Some(caller) = &request.caller
            && let Some(entry) = revocations.check(caller, now.as_secs())
        {
            return Ok(Decision::Revoked {
                scope: entry.scope.kind(),
            });
        }
        if request.windows.is_empty() {
            return Ok(Decision::Admitted {
                windows: Vec::new(),
                full_for_ms: 0,
            });
        }
        let (decision, write) =
            counter.consume(&request.windows, request.cost, now, request.write_within_ms);
        if let Some(write) = write {
            start_or_drop(store, &write, &mut self.counter)?;
        }
        self.want_timer(now);
        Ok(decision)
    }

    /// A hold for a request about to be forwarded ([`holds::decide`]): a granted hold is stored
    /// before its answer leaves.
    pub fn hold(
        &mut self,
        store: &impl CounterStore,
        request: &HoldRequest,
        now: UnixMillis,
    ) -> Result<Decision, StoreError> {
        self.load(store, now)?;
        let (counter, _, held) = self.parts()?;
        let decision = holds::decide(counter, held, request, now);
        if matches!(decision, Decision::Admitted { .. }) {
            let write = put_one(HOLDS_KEY, held.to_json(), true);
            start_or_drop(store, &write, &mut self.holds)?;
        }
        Ok(decision)
    }

    /// The origin answered a held request: its hold goes, and a failure is counted in its
    /// place. Answers where the client's failures stand.
    pub fn settle(
        &mut self,
        store: &impl CounterStore,
        request: &SettleRequest,
        now: UnixMillis,
    ) -> Result<Decision, StoreError> {
        self.load(store, now)?;
        let (counter, _, held) = self.parts()?;
        let changed = held.take(&request.id) | held.prune(now.0);
        let counted = request
            .failed
            .then(|| counter.count(&request.windows, 1, now, request.write_within_ms))
            .flatten();
        let holds_write = changed.then(|| put_one(HOLDS_KEY, held.to_json(), false));
        if let Some(write) = counted {
            start_or_drop(store, &write, &mut self.counter)?;
        }
        if let Some(write) = holds_write {
            start_or_drop(store, &write, &mut self.holds)?;
        }
        self.want_timer(now);
        let (counter, ..) = self.parts()?;
        Ok(counter.standing(&request.windows, now))
    }

    /// Runs one command on the deny list at `now`; a change is stored before the answer leaves.
    pub fn revocations(
        &mut self,
        store: &impl CounterStore,
        command: RevocationCommand,
        now: UnixMillis,
    ) -> Result<RevocationReply, StoreError> {
        self.load(store, now)?;
        let (_, list, _) = self.parts()?;
        let reply = list.apply(command, now.as_secs());
        if reply.changed {
            let text = serde_json::to_string(list)
                .map_err(|e| StoreError::Failed(format!("encoding '{REVOCATIONS_KEY}': {e}")))?;
            start_or_drop(
                store,
                &put_one(REVOCATIONS_KEY, text, true),
                &mut self.revocations,
            )?;
        }
        Ok(reply)
    }

    /// When the idle write is due (object time), if one is pending.
    pub fn write_due(&self) -> Option<UnixMillis> {
        self.counter
            .as_ref()
            .and_then(Counter::idle_due)
            .map(UnixMillis)
    }

    /// Asks for the idle write's timer when one is pending and none is set.
    fn want_timer(&mut self, now: UnixMillis) {
        if self.timer_set {
            return;
        }
        if let Some(due) = self.write_due() {
            let ms = due.0.saturating_sub(now.0).clamp(1, u64::from(u32::MAX));
            self.timer_wanted = u32::try_from(ms).ok();
            self.timer_set = true;
        }
    }

    /// The delay (ms) of the idle write's timer the last call asked for, once; `None` when none
    /// is wanted. The I/O layer asks after every call and calls [`Self::write_scheduled`] when
    /// the timer fires.
    pub fn take_write_timer(&mut self) -> Option<u32> {
        self.timer_wanted.take()
    }

    /// The idle write's timer fired at `now`: once the object has been idle long enough, every
    /// admission is written and the reservation shrunk to zero; otherwise a timer for the new
    /// due time is asked for. Lists nothing: an object whose counts are not in memory has
    /// nothing to write.
    pub fn write_scheduled(
        &mut self,
        store: &impl CounterStore,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.timer_set = false;
        let Some(counter) = self.counter.as_mut() else {
            return Ok(());
        };
        if let Some(write) = counter.idle(now) {
            start_or_drop(store, &write, &mut self.counter)?;
        }
        self.want_timer(now);
        Ok(())
    }
}

/// A [`CounterStore`] in memory, kept as the runtime keeps an object's storage: a confirmed
/// write is durable when it starts (with every write started before it); an unconfirmed one
/// stays pending, and a crash keeps only the pending writes it is told to. Dropping a
/// [`CounterObject`] and building a new one over the same store is a restart.
#[derive(Debug, Clone, Default)]
pub struct InMemoryStore {
    durable: RefCell<BTreeMap<String, String>>,
    pending: RefCell<Vec<StateWrites>>,
    fail_starts: Cell<usize>,
    lists: Cell<usize>,
}

impl InMemoryStore {
    /// A store holding `entries` (key, JSON text), durable.
    pub fn with(entries: impl IntoIterator<Item = (String, String)>) -> InMemoryStore {
        let store = InMemoryStore::default();
        store.durable.borrow_mut().extend(entries);
        store
    }

    /// The next `count` writes fail to start.
    pub fn fail_next_starts(&self, count: usize) {
        self.fail_starts.set(count);
    }

    /// A crash: the first `kept` pending (unconfirmed) writes reached the disk, the rest are
    /// lost.
    pub fn crash(&self, kept: usize) {
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        let mut durable = self.durable.borrow_mut();
        for writes in pending.iter().take(kept) {
            apply(&mut durable, writes);
        }
    }

    /// What survives a crash that keeps no pending write.
    pub fn durable(&self) -> BTreeMap<String, String> {
        self.durable.borrow().clone()
    }

    /// What a read sees now: the durable entries and every pending write.
    pub fn entries(&self) -> BTreeMap<String, String> {
        let mut entries = self.durable();
        for writes in self.pending.borrow().iter() {
            apply(&mut entries, writes);
        }
        entries
    }

    /// How many times the store was listed.
    pub fn lists(&self) -> usize {
        self.lists.get()
    }
}

fn apply(entries: &mut BTreeMap<String, String>, writes: &StateWrites) {
    for key in &writes.delete {
        entries.remove(key);
    }
    for (key, value) in &writes.put {
        entries.insert(key.clone(), value.clone());
    }
}

impl CounterStore for InMemoryStore {
    fn list(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.lists.set(self.lists.get().saturating_add(1));
        Ok(self.entries().into_iter().collect())
    }

    fn start(&self, write: &CounterWrite) -> Result<(), StoreError> {
        if let Some(failing) = self.fail_starts.get().checked_sub(1) {
            self.fail_starts.set(failing);
            return Err(StoreError::Failed("the write did not start".to_owned()));
        }
        if write.confirmed {
            let pending = std::mem::take(&mut *self.pending.borrow_mut());
            let mut durable = self.durable.borrow_mut();
            for writes in &pending {
                apply(&mut durable, writes);
            }
            apply(&mut durable, &write.writes);
        } else {
            self.pending.borrow_mut().push(write.writes.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::Window;
    use serde_json::{Value, json};

    const T0: u64 = 1_700_000_000_000;

    /// An object over its store; `restart` is a crash keeping the store.
    #[derive(Default)]
    struct Run<S = InMemoryStore> {
        store: S,
        object: CounterObject,
    }

    impl<S: CounterStore> Run<S> {
        /// One call as the gateway sends it (protocol 2), `at` ms after `T0`.
        fn call(&mut self, call: Call, body: &Value, at: u64) -> Result<Value, CallError> {
            let body = body.to_string();
            let answer =
                (self.object).call_json(&self.store, call, &body, Some(2), UnixMillis(T0 + at))?;
            Ok(serde_json::from_str(&answer).unwrap())
        }

        /// The `decision` of an answered call.
        fn decide(&mut self, call: Call, body: &Value, at: u64) -> String {
            let answer = self.call(call, body, at).unwrap();
            answer["decision"].as_str().unwrap().to_owned()
        }

        fn restart(&mut self) {
            self.object = CounterObject::new();
        }
    }

    impl Run {
        fn new() -> Run {
            Run::over(&[])
        }

        fn over(entries: &[(&str, String)]) -> Run {
            let entries = entries.iter().map(|(k, v)| ((*k).to_owned(), v.clone()));
            Run {
                store: InMemoryStore::with(entries),
                object: CounterObject::new(),
            }
        }
    }

    fn minute(limit: u32) -> Value {
        json!([{"limit": limit, "seconds": 60}])
    }

    fn consume(limit: u32, write_within_ms: u32) -> Value {
        json!({"cost": 1, "now": 0, "windows": minute(limit), "write_within_ms": write_within_ms})
    }

    fn hold(id: &str, windows: &Value, hold_ms: u64) -> Value {
        json!({"id": id, "windows": windows, "hold_ms": hold_ms})
    }

    fn settle(id: &str, failed: bool, windows: &Value) -> Value {
        json!({"id": id, "failed": failed, "windows": windows})
    }

    fn revoke_sub(sub: &str) -> Value {
        json!({"op": "add", "now_secs": 0, "entry": {
            "scope": "subject", "sub": sub, "revoked_at": T0 / 1000 + 10,
            "expires_at": T0 / 1000 + 3_600, "by": "admin/ops"}})
    }

    fn as_caller(sub: &str) -> Value {
        json!({"cost": 1, "now": 0, "windows": [], "caller": {"sub": sub, "iat": T0 / 1000}})
    }

    #[test]
    fn what_is_written_keeps_the_storage_layout() {
        let mut run = Run::new();
        // Every admission written before its answer (write_within_ms 0).
        run.call(Call::Consume, &consume(10, 0), 0).unwrap();
        run.call(Call::Revocations, &revoke_sub("alice"), 0)
            .unwrap();
        run.call(Call::Hold, &hold("r1", &minute(5), 1_000), 0)
            .unwrap();
        let stored = run.store.durable();
        let keys: Vec<&str> = stored.keys().map(String::as_str).collect();
        let bucket = format!("b:60:{}", T0 / 500);
        assert_eq!(
            keys,
            [bucket.as_str(), "holds", "reservation", "revocations"]
        );
        assert_eq!(stored[&bucket], format!("[1,{T0},{T0}]"));
        let reservation = r#"{"allow":0,"windows":[{"limit":10,"seconds":60}]}"#;
        assert_eq!(stored["reservation"], reservation);
        let holds = format!(r#"[{{"id":"r1","until":{}}}]"#, T0 + 1_000);
        assert_eq!(stored["holds"], holds);
        let list: RevocationList = serde_json::from_str(&stored["revocations"]).unwrap();
        assert_eq!(list.entries.len(), 1);
    }

    /// Data as deployed objects hold it reads back and decides.
    #[test]
    fn stored_data_reads_back() {
        let revocations = format!(
            r#"{{"entries":[{{"scope":"org","revoked_at":{},"expires_at":{},"by":"admin/ops"}}]}}"#,
            T0 / 1000,
            T0 / 1000 + 60
        );
        let mut run = Run::over(&[
            ("b:60:3400000000000", format!("[3,{T0},{T0}]")),
            (
                "reservation",
                r#"{"allow":2,"windows":[{"limit":100,"seconds":60}]}"#.to_owned(),
            ),
            ("revocations", revocations),
            (
                "holds",
                format!(r#"[{{"id":"r1","until":{}}}]"#, T0 + 60_000),
            ),
            ("an-unknown-key", "not even JSON".to_owned()),
        ]);
        let revoked = run.call(Call::Consume, &as_caller("bob"), 0).unwrap();
        assert_eq!(revoked, json!({"decision": "revoked", "scope": "org"}));
        // 3 stored and 2 reserved: 5 of 6 used, so one more fits and the next does not.
        assert_eq!(run.decide(Call::Consume, &consume(6, 0), 1), "admitted");
        assert_eq!(run.decide(Call::Consume, &consume(6, 0), 2), "limited");
        // The stored hold counts: another fits a budget of 6, not one of 1.
        let hour = |limit: u32| json!([{"limit": limit, "seconds": 3600}]);
        assert_eq!(
            run.decide(Call::Hold, &hold("r2", &hour(6), 1), 3),
            "admitted"
        );
        assert_eq!(
            run.decide(Call::Hold, &hold("r3", &hour(1), 1), 4),
            "limited"
        );
        assert_eq!(run.store.lists(), 1);
    }

    #[test]
    fn a_stored_value_that_does_not_parse_is_an_error_naming_its_key() {
        let check = |key: &str, value: &str, expected: &str| {
            let mut run = Run::over(&[(key, value.to_owned())]);
            let error = run.call(Call::Consume, &consume(5, 0), 0).unwrap_err();
            assert!(error.to_string().contains(expected), "{key}: {error}");
            assert!(!run.object.is_loaded(), "{key}");
        };
        check("revocations", "[1]", "decoding 'revocations'");
        check("reservation", "{}", "decoding 'reservation'");
        check("holds", "{", "decoding 'holds'");
        check("b:60:x", "[1,2,3]", "bucket key 'b:60:x' does not parse");
        check("b:60:1", "[1,2]", "bucket 'b:60:1' does not parse");
    }

    #[test]
    fn storage_is_listed_once_per_instance() {
        let mut run = Run::new();
        for at in 0..20 {
            run.call(Call::Consume, &consume(100, 1_000), at).unwrap();
        }
        let list = json!({"op": "list", "now_secs": 0});
        run.call(Call::Revocations, &list, 30).unwrap();
        assert_eq!(run.store.lists(), 1);
        run.restart();
        run.call(Call::Consume, &consume(100, 1_000), 40).unwrap();
        assert_eq!(run.store.lists(), 2);
    }

    /// A write that fails to start answers an error, and the next call lists storage again
    /// (deciding on what storage holds, not on what memory held).
    #[test]
    fn a_failed_write_makes_the_next_call_list_storage_again() {
        let cases = [
            (Call::Consume, consume(10, 0)),
            (Call::Hold, hold("r1", &minute(5), 1_000)),
            (Call::Settle, settle("r1", true, &minute(5))),
            (Call::Revocations, revoke_sub("alice")),
        ];
        let failed = CallError::Store(StoreError::Failed("the write did not start".to_owned()));
        for (call, body) in cases {
            let mut run = Run::new();
            run.call(Call::Consume, &as_caller("bob"), 0).unwrap();
            let before = run.store.entries();
            run.store.fail_next_starts(1);
            assert_eq!(run.call(call, &body, 1), Err(failed.clone()), "{call:?}");
            assert_eq!(run.store.entries(), before, "{call:?}: nothing written");
            assert!(!run.object.is_loaded(), "{call:?}");
            run.call(call, &body, 2).unwrap();
            assert_eq!(run.store.lists(), 2, "{call:?}");
        }
    }

    #[test]
    fn a_failed_idle_write_makes_the_next_call_list_storage_again() {
        let mut run = Run::new();
        run.call(Call::Consume, &consume(100, 1_000), 0).unwrap();
        run.store.fail_next_starts(1);
        let due = UnixMillis(T0 + 1_000);
        assert!(run.object.write_scheduled(&run.store, due).is_err());
        assert!(!run.object.is_loaded());
        assert_eq!(run.object.write_due(), None);
        run.call(Call::Consume, &consume(100, 1_000), 1_001)
            .unwrap();
        assert_eq!(run.store.lists(), 2);
    }

    #[test]
    fn revocations_persist_across_a_restart() {
        let mut run = Run::new();
        let added = run
            .call(Call::Revocations, &revoke_sub("alice"), 0)
            .unwrap();
        assert_eq!(added["changed"], json!(true));
        let scopes = |run: &mut Run, at| {
            ["alice", "bob"]
                .map(|sub| run.call(Call::Consume, &as_caller(sub), at).unwrap()["scope"].clone())
        };
        assert_eq!(scopes(&mut run, 1), [json!("subject"), Value::Null]);
        run.store.crash(0);
        run.restart();
        assert_eq!(scopes(&mut run, 2), [json!("subject"), Value::Null]);
        let remove = json!({"op": "remove", "scope": "subject", "sub": "alice", "now_secs": 0});
        let removed = run.call(Call::Revocations, &remove, 3).unwrap();
        assert_eq!(removed["removed"], json!(true));
        run.store.crash(0);
        run.restart();
        assert_eq!(scopes(&mut run, 4), [Value::Null, Value::Null]);
    }

    /// The object's clock decides, not the caller's `now`.
    #[test]
    fn entries_expire_on_the_object_clock() {
        let mut run = Run::new();
        run.call(Call::Revocations, &revoke_sub("alice"), 0)
            .unwrap();
        assert_eq!(
            run.decide(Call::Consume, &as_caller("alice"), 3_599_999),
            "revoked"
        );
        assert_eq!(
            run.decide(Call::Consume, &as_caller("alice"), 3_600_000),
            "admitted"
        );
    }

    #[test]
    fn protocol_versions_are_decided_before_anything_is_read() {
        let check = |protocol: Option<u32>, accepted: bool| {
            let run = Run::new();
            let body = consume(5, 0).to_string();
            let mut object = run.object;
            let answer =
                object.call_json(&run.store, Call::Consume, &body, protocol, UnixMillis(T0));
            assert_eq!(answer.is_ok(), accepted, "{protocol:?}: {answer:?}");
            assert_eq!(run.store.lists(), usize::from(accepted), "{protocol:?}");
            if let Err(e) = answer {
                let sent = protocol.unwrap_or(1);
                assert_eq!(e, CallError::Protocol(UnsupportedProtocol { sent }));
                assert!(e.to_string().contains("accepts 1 and 2"), "{e}");
            }
        };
        check(None, true);
        check(Some(1), true);
        check(Some(2), true);
        check(Some(0), false);
        check(Some(3), false);
    }

    #[test]
    fn a_body_that_does_not_parse_is_an_error() {
        let check = |call: Call, body: &str| {
            let mut run = Run::new();
            let answer = run
                .object
                .call_json(&run.store, call, body, Some(2), UnixMillis(T0));
            assert!(
                matches!(answer, Err(CallError::Json(_))),
                "{call:?} {body}: {answer:?}"
            );
            assert_eq!(run.store.lists(), 0);
        };
        check(Call::Consume, "{}");
        check(
            Call::Consume,
            r#"{"cost": 1, "now": 0, "windows": [], "extra": 1}"#,
        );
        check(Call::Hold, r#"{"id": "r1"}"#);
        check(Call::Settle, "null");
        check(Call::Revocations, r#"{"op": "purge"}"#);
    }

    /// A store whose listing needs I/O not done yet.
    #[derive(Default)]
    struct Unread {
        inner: InMemoryStore,
        read: Cell<bool>,
    }

    impl CounterStore for Unread {
        fn list(&self) -> Result<Vec<(String, String)>, StoreError> {
            if self.read.get() {
                self.inner.list()
            } else {
                Err(StoreError::NotRead)
            }
        }

        fn start(&self, write: &CounterWrite) -> Result<(), StoreError> {
            self.inner.start(write)
        }
    }

    /// The call changes nothing and is made again once the listing is there; then the object
    /// needs no other.
    #[test]
    fn a_store_not_read_yet_changes_nothing() {
        let mut run = Run::<Unread>::default();
        let answer = run.call(Call::Consume, &consume(5, 1_000), 0);
        assert_eq!(answer, Err(CallError::Store(StoreError::NotRead)));
        assert!(!run.object.is_loaded());
        assert_eq!(run.object.take_write_timer(), None);
        run.store.read.set(true);
        assert_eq!(run.decide(Call::Consume, &consume(5, 1_000), 0), "admitted");
        run.store.read.set(false);
        assert_eq!(run.decide(Call::Consume, &consume(5, 1_000), 1), "admitted");
    }

    /// The idle write: one timer asked for at a time, re-armed while admissions keep coming,
    /// and the write (unconfirmed, allowance 0) once the object is idle.
    #[test]
    fn the_idle_write_timer() {
        let mut run = Run::new();
        run.call(Call::Consume, &consume(100, 1_000), 0).unwrap();
        assert_eq!(run.object.write_due(), Some(UnixMillis(T0 + 1_000)));
        assert_eq!(run.object.take_write_timer(), Some(1_000));
        assert_eq!(run.object.take_write_timer(), None, "taken once");
        run.call(Call::Consume, &consume(100, 1_000), 400).unwrap();
        assert_eq!(
            run.object.take_write_timer(),
            None,
            "a timer is already set"
        );
        run.object
            .write_scheduled(&run.store, UnixMillis(T0 + 1_000))
            .unwrap();
        assert_eq!(
            run.object.take_write_timer(),
            Some(400),
            "not idle yet: the rest of the wait"
        );
        run.object
            .write_scheduled(&run.store, UnixMillis(T0 + 1_400))
            .unwrap();
        assert_eq!(run.object.take_write_timer(), None, "nothing pending");
        assert_eq!(run.object.write_due(), None);
        let written: Reservation =
            serde_json::from_str(&run.store.entries()["reservation"]).unwrap();
        assert_eq!(written.allow, 0);
        assert_ne!(
            run.store.durable(),
            run.store.entries(),
            "the idle write is unconfirmed"
        );
        run.store.crash(1);
        assert_eq!(
            run.store.durable()["reservation"],
            r#"{"allow":0,"windows":[]}"#
        );
    }

    #[test]
    fn a_timer_on_an_object_with_nothing_in_memory_does_nothing() {
        let mut run = Run::new();
        run.object
            .write_scheduled(&run.store, UnixMillis(T0))
            .unwrap();
        assert_eq!(run.store.lists(), 0);
        assert_eq!(run.object.take_write_timer(), None);
    }

    /// A settled failure counts; a success frees its hold; both are stored.
    #[test]
    fn settles_count_failures_and_free_holds() {
        let mut run = Run::new();
        let windows = json!([Window {
            limit: 2,
            seconds: 60
        }]);
        assert_eq!(
            run.decide(Call::Hold, &hold("a", &windows, 10_000), 0),
            "admitted"
        );
        assert_eq!(
            run.decide(Call::Hold, &hold("b", &windows, 10_000), 1),
            "admitted"
        );
        assert_eq!(
            run.decide(Call::Hold, &hold("c", &windows, 10_000), 2),
            "limited"
        );
        run.call(Call::Settle, &settle("a", false, &windows), 3)
            .unwrap();
        let held = format!(r#"[{{"id":"b","until":{}}}]"#, T0 + 10_001);
        assert_eq!(run.store.entries()["holds"], held);
        let standing = run
            .call(Call::Settle, &settle("b", true, &windows), 4)
            .unwrap();
        assert_eq!(standing["windows"][0]["remaining"], json!(1));
        run.store.crash(2);
        run.restart();
        assert_eq!(
            run.decide(Call::Hold, &hold("d", &windows, 10_000), 5),
            "admitted"
        );
        assert_eq!(
            run.decide(Call::Hold, &hold("e", &windows, 10_000), 6),
            "limited"
        );
    }
}
