// Awaiting a promise from wasm without a closure made per await (`crate::settle`), and the
// deadlines on the runtime's promises.
//
// wasm-bindgen's `JsFuture` makes two Rust closures for every promise it awaits, each wrapped in
// a JavaScript function and registered with a `FinalizationRegistry` (then unregistered and
// destroyed once one of them ran). Here one callback, installed once per wasm instance, hears
// every outcome, keyed by the number the Rust side gave the promise; the first outcome reported
// under a key is the one the Rust side keeps. No decision is made here: the Rust side reads
// `undefined` as "the deadline passed" (neither `fetch` nor the counter object's methods ever
// fulfil with it) and maps every outcome.

let settle;

// The Rust callback `(key, value, fulfilled)`; installed again by a new wasm instance.
export function install(callback) {
  settle = callback;
}

// Reports `promise`'s outcome under `key`.
export function watch(promise, key) {
  promise.then(
    (value) => settle(key, value, true),
    (error) => settle(key, error, false),
  );
}

// Reports `promise`'s outcome under `key`, or `undefined` once `ms` milliseconds passed first
// (the timer is cleared when the promise settles in time; `onLate` runs when it did not).
export function watchWithin(promise, ms, key, onLate) {
  const timer = setTimeout(() => {
    if (onLate !== undefined) onLate();
    settle(key, undefined, true);
  }, ms);
  promise.then(
    (value) => {
      clearTimeout(timer);
      settle(key, value, true);
    },
    (error) => {
      clearTimeout(timer);
      settle(key, error, false);
    },
  );
}

// `fetch(url, init)` (through `via`, a binding with a `fetch` method, when given) with an abort
// signal, reported under `key`: if no response headers arrived within `ms`, the request is
// aborted and `undefined` reported. Once the headers are in, the body streams without a
// deadline.
export function fetchWithin(via, url, init, ms, key) {
  const controller = new AbortController();
  init.signal = controller.signal;
  const sent = via === undefined ? fetch(url, init) : via.fetch(url, init);
  watchWithin(sent, ms, key, () => controller.abort());
}
