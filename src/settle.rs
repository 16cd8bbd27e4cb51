//! Awaiting a JavaScript promise with no closure made per await.
//!
//! `wasm_bindgen_futures::JsFuture` makes two Rust closures for each promise, each wrapped in a
//! JavaScript function registered with a `FinalizationRegistry`, then unregistered and destroyed
//! (BENCHMARKS.md: the per-await machinery was among the largest wasm-side costs of a request,
//! and finalization work lands on the garbage collector). Here one callback, made once per
//! instance, hears every outcome (`src/settle.js`): a promise gets a key, its outcome is stored
//! under the key, and the task waiting on it is woken.
//!
//! A [`Settled`] dropped before its promise settles (a cancelled future) removes its key; the
//! outcome that arrives later finds no key and is dropped. Keys are never reused while waiting
//! (a counter that wraps after 2^32 awaits, far beyond what is ever pending at once).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::{Closure, wasm_bindgen};

#[wasm_bindgen(module = "/src/settle.js")]
extern "C" {
    #[wasm_bindgen(js_name = install)]
    fn install_js(callback: &Closure<dyn FnMut(u32, JsValue, bool)>);

    #[wasm_bindgen(js_name = watch)]
    fn watch_js(promise: &js_sys::Promise, key: u32);

    #[wasm_bindgen(js_name = watchWithin)]
    fn watch_within_js(promise: &js_sys::Promise, ms: f64, key: u32);

    #[wasm_bindgen(catch, js_name = fetchWithin)]
    fn fetch_within_js(
        via: Option<&js_sys::Object>,
        url: &str,
        init: &web_sys::RequestInit,
        ms: f64,
        key: u32,
    ) -> Result<(), JsValue>;
}

/// A promise's state, by key.
enum Slot {
    /// Not settled yet; the waker of the task that last polled.
    Waiting(Option<Waker>),
    /// Settled: fulfilled (`Ok`) or rejected (`Err`).
    Settled(Result<JsValue, JsValue>),
}

thread_local! {
    static SLOTS: RefCell<HashMap<u32, Slot>> = RefCell::new(HashMap::new());
    static NEXT_KEY: Cell<u32> = const { Cell::new(0) };
    /// The one callback, made and installed on the first await of this instance.
    static CALLBACK: Closure<dyn FnMut(u32, JsValue, bool)> = {
        let callback = Closure::<dyn FnMut(u32, JsValue, bool)>::new(on_settled);
        install_js(&callback);
        callback
    };
}

/// Stores the first outcome reported under `key` and wakes its task. A later one (the promise
/// settling after its deadline was reported) is dropped, as is one for a key no future waits on
/// (it was dropped).
fn on_settled(key: u32, value: JsValue, fulfilled: bool) {
    let waker = SLOTS.with(|slots| {
        let mut slots = slots.borrow_mut();
        let slot = slots.get_mut(&key)?;
        let Slot::Waiting(waker) = slot else {
            return None;
        };
        let waker = waker.take();
        *slot = Slot::Settled(if fulfilled { Ok(value) } else { Err(value) });
        waker
    });
    // Waking only queues the task (a microtask): no poll runs inside this call.
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// The outcome of a promise, as a future: `Ok(value)` when it fulfils, `Err(reason)` when it
/// rejects.
pub(crate) struct Settled {
    key: u32,
}

/// `promise`'s outcome.
pub(crate) fn settled(promise: &js_sys::Promise) -> Settled {
    let settled = Settled::waiting();
    watch_js(promise, settled.key);
    settled
}

/// `promise`'s outcome, or `Ok(undefined)` once `ms` milliseconds passed first (one timer,
/// cleared when the promise settles in time).
pub(crate) fn settled_within(promise: &js_sys::Promise, ms: f64) -> Settled {
    let settled = Settled::waiting();
    watch_within_js(promise, ms, settled.key);
    settled
}

/// The response of `fetch(url, init)` (through `via` when given), or `Ok(undefined)` when no
/// response headers arrived within `ms` milliseconds (the request is then aborted). `Err` if
/// `fetch` threw at once (an init the runtime refuses).
pub(crate) fn fetched_within(
    via: Option<&js_sys::Object>,
    url: &str,
    init: &web_sys::RequestInit,
    ms: f64,
) -> Result<Settled, JsValue> {
    let settled = Settled::waiting();
    // On failure, dropping `settled` removes its slot.
    fetch_within_js(via, url, init, ms, settled.key)?;
    Ok(settled)
}

impl Settled {
    /// A new key, waiting (the callback installed first if this is the instance's first await).
    fn waiting() -> Settled {
        CALLBACK.with(|_| ());
        let key = NEXT_KEY.with(|next| {
            let key = next.get();
            next.set(key.wrapping_add(1));
            key
        });
        SLOTS.with(|slots| slots.borrow_mut().insert(key, Slot::Waiting(None)));
        Settled { key }
    }
}

impl Future for Settled {
    type Output = Result<JsValue, JsValue>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let key = self.key;
        SLOTS.with(|slots| {
            let mut slots = slots.borrow_mut();
            match slots.get_mut(&key) {
                Some(Slot::Waiting(waker)) => {
                    if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *waker = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }
                _ => match slots.remove(&key) {
                    Some(Slot::Settled(outcome)) => Poll::Ready(outcome),
                    // Taken by an earlier poll that returned Ready (a future is not polled
                    // again).
                    _ => Poll::Ready(Err(JsValue::from_str("promise outcome already taken"))),
                },
            }
        })
    }
}

impl Drop for Settled {
    fn drop(&mut self) {
        SLOTS.with(|slots| slots.borrow_mut().remove(&self.key));
    }
}
