//! The rate-limit counter object (class `RateLimiter`, binding `RATE_LIMITER`).
//!
//! One object per rate-limit key: the Worker addresses it by
//! `RateLimitKey::object_name()` = `rl1:<issuer name>:<org id>` (see `gateway_core::identity`), so
//! two issuers never share counters even for the same org string.
//!
//! The same class also counts clients before authentication (objects named
//! `ip1:<class>:<client>`, `gateway_core::client`); those calls carry no caller.
//!
//! # Where it runs
//! In its own Worker, the counters Worker (`durable/wrangler.toml`: script `edge-gateway-counters`,
//! `edge-gateway-counters-<env>`), with no route, no workers.dev and no preview URL: the gateway
//! reaches it only through its `RATE_LIMITER` binding (`script_name`), so the gateway Worker
//! implements no Durable Object and gets preview URLs.
//!
//! # Calls
//! Workers RPC (the gateway's path): `consume(json, protocol)` and `revocations(json, protocol)`
//! take and return the JSON bodies below as strings; `protocol` is the caller's
//! `gateway_core::protocol` version (absent from gateways built before versions: 1), and a
//! version this build does not accept is an error. The runtime only allows RPC into classes that
//! `extends DurableObject`, which the `worker-build` shim's class does not, so `durable/entry.mjs`
//! (copied next to the build) exports a `RateLimiter` that extends it and delegates here.
//!
//! - `consume`: `gateway_core::limit::ConsumeRequest` (cost, the tier's windows, the caller's
//!   `sub`/`jti`/`iat`) -> `gateway_core::limit::Decision`. One call checks the organisation's
//!   revocations, then checks and counts atomically (no windows: revocations only).
//! - `revocations`: `gateway_core::revocation::RevocationCommand` (add, remove, list) ->
//!   `gateway_core::revocation::RevocationReply`.
//! - `hold`, `settle`: `gateway_core::holds` (attempts in flight on a route counting only
//!   failures). `fetch` answers 404: there is no HTTP interface.
//!
//! # Storage layout
//! - keys `b:<window seconds>:<bucket index>`: one per bucket of `gateway_core::limit::LimiterState`,
//!   value `[cost, first, last]` (JSON text); at most `BUCKETS + 1` per window the organisation
//!   used within that window's length. A write stores the buckets that changed since the last
//!   one and deletes the ones that left their window (`LimiterState::writes_since`).
//! - key `reservation`: `gateway_core::counter::Reservation` as JSON text, `{allow, windows}`:
//!   how many units may have been admitted beyond the stored buckets, and in which windows.
//! - key `revocations`: `gateway_core::revocation::RevocationList` as a JSON string — at most
//!   `MAX_ENTRIES` entries, each expiring with the tokens it covers; pruned on every change.
//!
//! # Time
//! Every decision is made on the object's own clock (`Date.now()` here), never on the caller's:
//! a gateway isolate with a clock far ahead or behind moves nothing for anyone else. The
//! caller's `now` stays in the request for the older counters Workers that read it.
//!
//! # When the counts are written: reservations
//! The state is read from storage once per object instance and then kept in memory (the object
//! is its only writer); each call decides on it with no other I/O awaited in between (the
//! runtime's input gate makes each call atomic). `gateway_core::counter::Counter` decides when a
//! write is due: an admission past the stored reservation writes every admission so far and a
//! new reservation before its answer leaves (a confirmed write: the output gate holds the answer
//! until it is durable), so a restarted object, which counts the stored reservation as admitted,
//! never admits again what was answered before a crash. An object idle for the caller's
//! `write_within_ms` writes its admissions and shrinks its reservation to zero (a timer of
//! `durable/entry.mjs`, asked for with `takeWriteTimer`, firing `writeScheduled`); that write
//! may go unconfirmed. A write that fails to start drops the state in memory, so the next call
//! reads storage again; one that fails later resets the object (the runtime's rule).

use std::cell::RefCell;

use gateway_core::counter::{Counter, CounterWrite, RESERVATION_KEY, Reservation};
use gateway_core::holds::{self, HOLDS_KEY, HoldRequest, Holds, SettleRequest};
use gateway_core::limit::{BUCKET_KEY_PREFIX, ConsumeRequest, Decision, LimiterState};
use gateway_core::protocol;
use gateway_core::revocation::{RevocationCommand, RevocationList, RevocationReply};
use gateway_core::time::UnixMillis;
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::{DurableObject, Env, Request, Response, Result, State, durable_object};

/// The most keys one `put` or `delete` takes.
const MAX_KEYS_PER_CALL: usize = 128;
const REVOCATIONS_KEY: &str = "revocations";

/// A stored value: JSON text, or the structured form earlier versions wrote (read back as the
/// same JSON).
fn decode<T: DeserializeOwned>(key: &str, value: &wasm_bindgen::JsValue) -> Result<T> {
    let text = match value.as_string() {
        Some(text) => text,
        None => worker::js_sys::JSON::stringify(value)
            .ok()
            .and_then(|s| s.as_string())
            .ok_or_else(|| worker::Error::RustError(format!("decoding '{key}': not JSON")))?,
    };
    serde_json::from_str(&text)
        .map_err(|e| worker::Error::RustError(format!("decoding '{key}': {e}")))
}

async fn store<T: Serialize>(storage: &worker::Storage, key: &str, value: &T) -> Result<()> {
    let text = serde_json::to_string(value)
        .map_err(|e| worker::Error::RustError(format!("encoding '{key}': {e}")))?;
    storage.put(key, text).await
}

/// Everything an object stores, as read by [`read_all`].
struct Stored {
    revocations: RevocationList,
    limiter: LimiterState,
    reservation: Option<Reservation>,
    holds: Holds,
}

/// Everything the object stores, in one `list`: a cold object (the runtime evicts idle ones)
/// makes one storage round trip before it decides, whatever the call needs. An object holds at
/// most its deny list, its reservation and `BUCKETS + 1` buckets per window, so the listing is
/// small.
async fn read_all(storage: &worker::Storage) -> Result<Stored> {
    let listed = storage.list().await?;
    let mut revocations = RevocationList::default();
    let mut reservation = None;
    let mut holds = Holds::default();
    let mut buckets = Vec::with_capacity(usize::try_from(listed.size()).unwrap_or(0));
    for entry in listed.entries() {
        let pair: worker::js_sys::Array = entry?.into();
        let Some(key) = pair.get(0).as_string() else {
            continue;
        };
        let value = pair.get(1);
        if key == REVOCATIONS_KEY {
            revocations = decode(&key, &value)?;
        } else if key == RESERVATION_KEY {
            reservation = Some(decode(&key, &value)?);
        } else if key == HOLDS_KEY {
            holds = decode(&key, &value)?;
        } else if key.starts_with(BUCKET_KEY_PREFIX) {
            let text = value.as_string().ok_or_else(|| {
                worker::Error::RustError(format!("bucket '{key}' is not JSON text"))
            })?;
            buckets.push((key, text));
        }
    }
    let limiter =
        LimiterState::from_stored_buckets(buckets.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(worker::Error::RustError)?;
    Ok(Stored {
        revocations,
        limiter,
        reservation,
        holds,
    })
}

#[wasm_bindgen]
extern "C" {
    /// `DurableObjectStorage`, for the forms of `put` and `delete` that take options (which
    /// `worker-sys` does not declare).
    #[wasm_bindgen(extends = worker::js_sys::Object)]
    type StorageWithOptions;

    /// `storage.put(entries, options)`.
    #[wasm_bindgen(method, catch, js_name = put)]
    fn put_entries(
        this: &StorageWithOptions,
        entries: &JsValue,
        options: &JsValue,
    ) -> std::result::Result<worker::js_sys::Promise, JsValue>;

    /// `storage.delete(keys, options)`.
    #[wasm_bindgen(method, catch, js_name = delete)]
    fn delete_keys(
        this: &StorageWithOptions,
        keys: &worker::js_sys::Array,
        options: &JsValue,
    ) -> std::result::Result<worker::js_sys::Promise, JsValue>;
}

/// Starts a write without waiting for it. `confirmed`: the runtime's output gate holds every
/// answer this object sends until it is durable (an admission past the reservation); otherwise
/// (`allowUnconfirmed`, the idle write, which only shrinks what a restart would count) answers go
/// out meanwhile. Either way a failed write resets the object, so the next call reads storage
/// again.
fn start_writes(storage: &worker::Storage, write: &CounterWrite) -> Result<()> {
    use wasm_bindgen::JsCast;
    let raw: &StorageWithOptions = storage.as_raw().unchecked_ref();
    let options = worker::js_sys::Object::new();
    if !write.confirmed {
        worker::js_sys::Reflect::set(&options, &"allowUnconfirmed".into(), &JsValue::TRUE)?;
    }
    for chunk in write.writes.put.chunks(MAX_KEYS_PER_CALL) {
        let entries = worker::js_sys::Object::new();
        for (key, value) in chunk {
            worker::js_sys::Reflect::set(
                &entries,
                &JsValue::from_str(key),
                &JsValue::from_str(value),
            )?;
        }
        drop(raw.put_entries(&entries, &options)?);
    }
    for chunk in write.writes.delete.chunks(MAX_KEYS_PER_CALL) {
        let keys: worker::js_sys::Array = chunk.iter().map(|k| JsValue::from_str(k)).collect();
        drop(raw.delete_keys(&keys, &options)?);
    }
    Ok(())
}

/// The write of the live holds (`confirmed`: a granted hold, stored before its answer).
fn holds_write(holds: &Holds, confirmed: bool) -> CounterWrite {
    CounterWrite {
        writes: gateway_core::limit::StateWrites {
            put: vec![(HOLDS_KEY.to_owned(), holds.to_json())],
            delete: Vec::new(),
        },
        confirmed,
    }
}

/// The object's own clock.
fn object_now() -> UnixMillis {
    UnixMillis(worker::Date::now().as_millis())
}

/// The counter object.
#[durable_object(fetch)]
pub struct RateLimiter {
    state: State,
    /// The counts, once read: what decides, what storage holds and the stored reservation.
    counter: RefCell<Option<Counter>>,
    /// The idle write's timer is set (by `durable/entry.mjs`).
    timer_set: std::cell::Cell<bool>,
    /// A timer to set, in ms: taken by `durable/entry.mjs` after each call (`takeWriteTimer`),
    /// which calls `writeScheduled` when it fires.
    timer_wanted: std::cell::Cell<Option<u32>>,
    /// The stored deny list, once read.
    revocations: RefCell<Option<RevocationList>>,
    /// The live holds of a client counting only failures (`gateway_core::holds`), once read.
    holds: RefCell<Option<Holds>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// Reads storage (one `list`) if the deny list or the counts are not in memory yet.
    async fn ensure_loaded(&self) -> Result<()> {
        if self.revocations.borrow().is_some() && self.counter.borrow().is_some() {
            return Ok(());
        }
        let stored = read_all(&self.state.storage()).await?;
        // Another call may have loaded one of them meanwhile (what is in memory is what is
        // stored, plus what it decided since: the one in memory is kept).
        self.revocations
            .borrow_mut()
            .get_or_insert(stored.revocations);
        self.holds.borrow_mut().get_or_insert(stored.holds);
        self.counter
            .borrow_mut()
            .get_or_insert_with(|| Counter::load(stored.limiter, stored.reservation, object_now()));
        Ok(())
    }

    /// The deny list, from memory or storage. Taken out of the cell: the caller puts it back
    /// once any write succeeded (a failed write leaves it out, so the next call reads storage).
    async fn take_revocations(&self) -> Result<RevocationList> {
        self.ensure_loaded().await?;
        self.revocations
            .borrow_mut()
            .take()
            .ok_or_else(|| worker::Error::RustError("deny list not loaded".to_owned()))
    }

    /// Reads from storage what is not in memory yet, then decides.
    async fn consume(&self, body: ConsumeRequest) -> Result<Decision> {
        self.ensure_loaded().await?;
        self.consume_loaded(&body)
            .unwrap_or_else(|| Err(worker::Error::RustError("state not loaded".to_owned())))
    }

    /// Decides on the state in memory, on the object's own clock: the revocations first
    /// (nothing is counted for a revoked caller), then the windows. An admission past the
    /// stored reservation starts the write its answer waits for. `None` if what `body` needs is
    /// not in memory (the caller reads storage first).
    fn consume_loaded(&self, body: &ConsumeRequest) -> Option<Result<Decision>> {
        let now = object_now();
        if let Some(caller) = &body.caller {
            let revocations = self.revocations.borrow();
            let hit = revocations
                .as_ref()?
                .check(caller, now.as_secs())
                .map(|e| e.scope.kind());
            if let Some(scope) = hit {
                return Some(Ok(Decision::Revoked { scope }));
            }
        }
        if body.windows.is_empty() {
            return Some(Ok(Decision::Admitted {
                windows: Vec::new(),
                full_for_ms: 0,
            }));
        }
        let mut cell = self.counter.borrow_mut();
        let counter = cell.as_mut()?;
        let (decision, write) =
            counter.consume(&body.windows, body.cost, now, body.write_within_ms);
        if let Some(write) = write
            && let Err(e) = start_writes(&self.state.storage(), &write)
        {
            *cell = None;
            return Some(Err(e));
        }
        self.want_timer(counter, now);
        Some(Ok(decision))
    }

    /// Asks for the idle write's timer when one is pending and none is set.
    fn want_timer(&self, counter: &Counter, now: UnixMillis) {
        if self.timer_set.get() {
            return;
        }
        if let Some(due) = counter.idle_due() {
            let ms = due.saturating_sub(now.0).clamp(1, u64::from(u32::MAX));
            self.timer_wanted.set(u32::try_from(ms).ok());
            self.timer_set.set(true);
        }
    }

    /// A hold for a request about to be forwarded (`gateway_core::holds`): granted holds are
    /// stored before the answer leaves.
    async fn hold(&self, request: HoldRequest) -> Result<Decision> {
        self.ensure_loaded().await?;
        let now = object_now();
        let mut counter_cell = self.counter.borrow_mut();
        let mut holds_cell = self.holds.borrow_mut();
        let (Some(counter), Some(held)) = (counter_cell.as_mut(), holds_cell.as_mut()) else {
            return Err(worker::Error::RustError("state not loaded".to_owned()));
        };
        let decision = holds::decide(counter, held, &request, now);
        if matches!(decision, Decision::Admitted { .. }) {
            let write = holds_write(held, true);
            if let Err(e) = start_writes(&self.state.storage(), &write) {
                *holds_cell = None;
                return Err(e);
            }
        }
        Ok(decision)
    }

    /// The origin answered a held request: its hold goes, and a failure is counted in its
    /// place. Answers where the client's failures stand.
    async fn settle(&self, request: SettleRequest) -> Result<Decision> {
        self.ensure_loaded().await?;
        let now = object_now();
        let mut counter_cell = self.counter.borrow_mut();
        let mut holds_cell = self.holds.borrow_mut();
        let (Some(counter), Some(held)) = (counter_cell.as_mut(), holds_cell.as_mut()) else {
            return Err(worker::Error::RustError("state not loaded".to_owned()));
        };
        let changed = held.take(&request.id) | held.prune(now.0);
        if request.failed
            && let Some(write) = counter.count(&request.windows, 1, now, request.write_within_ms)
            && let Err(e) = start_writes(&self.state.storage(), &write)
        {
            *counter_cell = None;
            return Err(e);
        }
        if changed && let Err(e) = start_writes(&self.state.storage(), &holds_write(held, false)) {
            *holds_cell = None;
            return Err(e);
        }
        self.want_timer(counter, now);
        Ok(counter.standing(&request.windows, now))
    }

    async fn revoke(&self, command: RevocationCommand) -> Result<RevocationReply> {
        let mut list = self.take_revocations().await?;
        let reply = list.apply(command, object_now().as_secs());
        if reply.changed {
            store(&self.state.storage(), REVOCATIONS_KEY, &list).await?;
        }
        *self.revocations.borrow_mut() = Some(list);
        Ok(reply)
    }
}

fn rpc_error(e: impl std::fmt::Display) -> wasm_bindgen::JsValue {
    worker::js_sys::Error::new(&e.to_string()).into()
}

/// One RPC call: the caller's protocol version checked, its JSON body parsed, `call` run, its
/// answer as JSON; any failure an `Error` for the caller.
async fn rpc<B, R, F>(
    body: &str,
    protocol: Option<u32>,
    call: impl FnOnce(B) -> F,
) -> std::result::Result<String, wasm_bindgen::JsValue>
where
    B: DeserializeOwned,
    R: Serialize,
    F: std::future::Future<Output = Result<R>>,
{
    protocol::accept(protocol).map_err(rpc_error)?;
    let body: B = serde_json::from_str(body).map_err(rpc_error)?;
    let answer = call(body).await.map_err(rpc_error)?;
    serde_json::to_string(&answer).map_err(rpc_error)
}

/// The Workers RPC methods (called through `durable/entry.mjs`).
#[wasm_bindgen(wasm_bindgen_futures = worker::wasm_bindgen_futures, js_sys = worker::js_sys)]
impl RateLimiter {
    /// `consume` answered synchronously when the object's state is in memory (every call but
    /// an instance's first): no promise, no task on the Rust side. `undefined` when storage
    /// must be read first; the caller then uses `consumeJson`.
    #[wasm_bindgen(js_name = consumeJsonInMemory)]
    pub fn consume_json_in_memory(
        &self,
        body: &str,
        protocol: Option<u32>,
    ) -> std::result::Result<Option<String>, wasm_bindgen::JsValue> {
        protocol::accept(protocol).map_err(rpc_error)?;
        let body: ConsumeRequest = serde_json::from_str(body).map_err(rpc_error)?;
        match self.consume_loaded(&body) {
            None => Ok(None),
            Some(decision) => serde_json::to_string(&decision.map_err(rpc_error)?)
                .map(Some)
                .map_err(rpc_error),
        }
    }

    /// The delay of the idle write's timer (ms) the last call asked for, once; `undefined`
    /// when none is wanted. `durable/entry.mjs` asks after every call and calls
    /// [`Self::write_scheduled`] when the timer fires.
    #[wasm_bindgen(js_name = takeWriteTimer)]
    pub fn take_write_timer(&self) -> Option<u32> {
        self.timer_wanted.take()
    }

    /// The idle write's timer fired: once the object has been idle long enough, every admission
    /// is written and the reservation shrunk to zero; otherwise a timer for the new due time is
    /// asked for. Never throws (a write that fails to start makes the next call read storage
    /// again; one that fails later resets the object).
    #[wasm_bindgen(js_name = writeScheduled)]
    pub fn write_scheduled(&self) {
        self.timer_set.set(false);
        let now = object_now();
        let mut cell = self.counter.borrow_mut();
        let Some(counter) = cell.as_mut() else {
            return;
        };
        if let Some(write) = counter.idle(now)
            && let Err(e) = start_writes(&self.state.storage(), &write)
        {
            *cell = None;
            worker::console_error!("counter object: idle write failed: {e}");
            return;
        }
        self.want_timer(counter, now);
    }

    /// `consume(ConsumeRequest as JSON) -> Decision as JSON`.
    #[wasm_bindgen(js_name = consumeJson)]
    pub async fn consume_json(
        &self,
        body: String,
        protocol: Option<u32>,
    ) -> std::result::Result<String, wasm_bindgen::JsValue> {
        rpc(&body, protocol, |body| self.consume(body)).await
    }

    /// `hold(HoldRequest as JSON) -> Decision as JSON` (`gateway_core::holds`).
    #[wasm_bindgen(js_name = holdJson)]
    pub async fn hold_json(
        &self,
        body: String,
        protocol: Option<u32>,
    ) -> std::result::Result<String, wasm_bindgen::JsValue> {
        rpc(&body, protocol, |body| self.hold(body)).await
    }

    /// `settle(SettleRequest as JSON) -> Decision as JSON` (`gateway_core::holds`).
    #[wasm_bindgen(js_name = settleJson)]
    pub async fn settle_json(
        &self,
        body: String,
        protocol: Option<u32>,
    ) -> std::result::Result<String, wasm_bindgen::JsValue> {
        rpc(&body, protocol, |body| self.settle(body)).await
    }

    /// `revocations(RevocationCommand as JSON) -> RevocationReply as JSON`.
    #[wasm_bindgen(js_name = revocationsJson)]
    pub async fn revocations_json(
        &self,
        command: String,
        protocol: Option<u32>,
    ) -> std::result::Result<String, wasm_bindgen::JsValue> {
        rpc(&command, protocol, |command| self.revoke(command)).await
    }
}

impl DurableObject for RateLimiter {
    fn new(state: State, _env: Env) -> Self {
        RateLimiter {
            state,
            counter: RefCell::new(None),
            timer_set: std::cell::Cell::new(false),
            timer_wanted: std::cell::Cell::new(None),
            revocations: RefCell::new(None),
            holds: RefCell::new(None),
        }
    }

    /// No HTTP interface: the object is called by Workers RPC only (and the counters Worker has
    /// no route).
    async fn fetch(&self, _req: Request) -> Result<Response> {
        Response::error("the counter object answers Workers RPC only", 404)
    }
}
