//! The rate-limit counter object (class `RateLimiter`, binding `RATE_LIMITER`): a
//! `gateway_core::counter_object::CounterObject` over the object's storage, on the object's own
//! clock (`Date.now()`). Its calls, storage layout, time and reservations: that module's docs.
//! `durable/entry.mjs` exports the class the runtime calls, which relays to the exports below.

use std::cell::RefCell;

use gateway_core::counter::CounterWrite;
use gateway_core::counter_object::{Call, CallError, CounterObject, CounterStore, StoreError};
use gateway_core::time::UnixMillis;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{Array, JSON, Object, Promise, Reflect};
use worker::{DurableObject, Env, Request, Response, State, durable_object};

/// The most keys one `put` or `delete` takes.
const MAX_KEYS_PER_CALL: usize = 128;

type JsResult<T> = Result<T, JsValue>;
/// The caller's `gateway_core::protocol` version (none from gateways built before versions).
type Version = Option<u32>;

#[wasm_bindgen]
extern "C" {
    /// `DurableObjectStorage`, for the forms of `put` and `delete` that take options (which
    /// `worker-sys` does not declare).
    #[wasm_bindgen(extends = Object)]
    type RawStorage;
    #[wasm_bindgen(method, catch)]
    fn put(this: &RawStorage, entries: &Object, options: &Object) -> JsResult<Promise>;
    #[wasm_bindgen(method, catch)]
    fn delete(this: &RawStorage, keys: &Array, options: &Object) -> JsResult<Promise>;
}

/// The counter object. It is its own store: the listing is read (asynchronously) before the
/// call that needs it and handed to the core object once; writes start without being awaited,
/// so a write that fails after starting resets the object (the runtime's rule).
#[durable_object(fetch)]
#[derive(Debug)]
pub struct RateLimiter {
    storage: worker::Storage,
    listed: RefCell<Option<Vec<(String, String)>>>,
    object: RefCell<CounterObject>,
}

impl CounterStore for RateLimiter {
    fn list(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.listed.take().ok_or(StoreError::NotRead)
    }

    fn start(&self, write: &CounterWrite) -> Result<(), StoreError> {
        self.start_writes(write)
            .map_err(|e| StoreError::Failed(worker::Error::from(e).to_string()))
    }
}

fn rpc_error(e: impl std::fmt::Display) -> JsValue {
    worker::js_sys::Error::new(&e.to_string()).into()
}

impl RateLimiter {
    /// Starts the puts and deletes of `write`, unconfirmed ones with `allowUnconfirmed`.
    fn start_writes(&self, write: &CounterWrite) -> JsResult<()> {
        let raw: &RawStorage = self.storage.as_raw().unchecked_ref();
        let options = Object::new();
        if !write.confirmed {
            Reflect::set(&options, &"allowUnconfirmed".into(), &JsValue::TRUE)?;
        }
        for chunk in write.writes.put.chunks(MAX_KEYS_PER_CALL) {
            let pairs: Array = chunk
                .iter()
                .map(|(k, v)| Array::of2(&k.into(), &v.into()))
                .collect();
            drop(raw.put(&Object::from_entries(&pairs)?, &options)?);
        }
        for chunk in write.writes.delete.chunks(MAX_KEYS_PER_CALL) {
            drop(raw.delete(&chunk.iter().map(JsValue::from).collect(), &options)?);
        }
        Ok(())
    }

    /// `call` on the state in memory, at the object's clock; `None` if storage must be read.
    fn call_now(&self, call: Call, body: &str, protocol: Version) -> JsResult<Option<String>> {
        let now = UnixMillis(worker::Date::now().as_millis());
        let mut object = self.object.borrow_mut();
        match object.call_json(self, call, body, protocol, now) {
            Err(CallError::Store(StoreError::NotRead)) => Ok(None),
            answer => answer.map(Some).map_err(rpc_error),
        }
    }

    /// `call`, after reading storage (one `list`) if the state is not in memory. The listing
    /// goes to the core object, or nowhere if another call loaded it meanwhile.
    async fn call(&self, call: Call, body: &str, protocol: Version) -> JsResult<String> {
        if let Some(answer) = self.call_now(call, body, protocol)? {
            return Ok(answer);
        }
        let mut listed = Vec::new();
        for entry in self.storage.list().await.map_err(rpc_error)?.entries() {
            let pair: Array = entry?.into();
            // Keys are strings; values JSON text, or a structured value as its JSON.
            let (key, value) = (pair.get(0).as_string().unwrap_or_default(), pair.get(1));
            let text = value
                .as_string()
                .or_else(|| JSON::stringify(&value).ok()?.as_string());
            let text = text.ok_or_else(|| rpc_error(format!("decoding '{key}': not JSON")))?;
            listed.push((key, text));
        }
        self.listed.replace(Some(listed));
        let answer = self.call_now(call, body, protocol);
        self.listed.take();
        answer?.ok_or_else(|| rpc_error(StoreError::NotRead))
    }
}

/// The Workers RPC methods, JSON text in and out (`gateway_core::counter_object::Call`).
#[wasm_bindgen(wasm_bindgen_futures = worker::wasm_bindgen_futures, js_sys = worker::js_sys)]
impl RateLimiter {
    /// `consume`, answered synchronously when the state is in memory (every call but an
    /// instance's first); `undefined` when storage must be read first (then `consumeJson`).
    #[wasm_bindgen(js_name = consumeJsonInMemory)]
    pub fn consume_json_in_memory(
        &self,
        body: &str,
        protocol: Version,
    ) -> JsResult<Option<String>> {
        self.call_now(Call::Consume, body, protocol)
    }

    /// The idle write's timer delay (ms) the last call asked for, once.
    #[wasm_bindgen(js_name = takeWriteTimer)]
    pub fn take_write_timer(&self) -> Option<u32> {
        self.object.borrow_mut().take_write_timer()
    }

    /// The idle write's timer fired. Never throws.
    #[wasm_bindgen(js_name = writeScheduled)]
    pub fn write_scheduled(&self) {
        let now = UnixMillis(worker::Date::now().as_millis());
        if let Err(e) = self.object.borrow_mut().write_scheduled(self, now) {
            worker::console_error!("counter object: idle write failed: {e}");
        }
    }

    #[wasm_bindgen(js_name = consumeJson)]
    pub async fn consume_json(&self, body: String, protocol: Version) -> JsResult<String> {
        self.call(Call::Consume, &body, protocol).await
    }

    #[wasm_bindgen(js_name = holdJson)]
    pub async fn hold_json(&self, body: String, protocol: Version) -> JsResult<String> {
        self.call(Call::Hold, &body, protocol).await
    }

    #[wasm_bindgen(js_name = settleJson)]
    pub async fn settle_json(&self, body: String, protocol: Version) -> JsResult<String> {
        self.call(Call::Settle, &body, protocol).await
    }

    #[wasm_bindgen(js_name = revocationsJson)]
    pub async fn revocations_json(&self, command: String, protocol: Version) -> JsResult<String> {
        self.call(Call::Revocations, &command, protocol).await
    }
}

impl DurableObject for RateLimiter {
    fn new(state: State, _env: Env) -> Self {
        let (listed, object) = (RefCell::default(), RefCell::default());
        RateLimiter {
            storage: state.storage(),
            listed,
            object,
        }
    }

    /// Required by the trait; the object answers Workers RPC only.
    async fn fetch(&self, _req: Request) -> worker::Result<Response> {
        Response::error("the counter object answers Workers RPC only", 404)
    }
}
