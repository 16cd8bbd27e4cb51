// Deadlines on the runtime's promises, set up in one call from wasm each (`crate::runtime`):
// a `Promise.race` against a timer built here costs one crossing of the wasm boundary, where
// building it from Rust cost four (the timer, the array, the race, a type check). No decision is
// made here: the Rust side reads `undefined` as "the deadline passed" (neither `fetch` nor the
// counter object's methods ever resolve to it) and maps every outcome.

function timer(ms) {
  return typeof scheduler === 'object' && typeof scheduler?.wait === 'function'
    ? scheduler.wait(ms)
    : new Promise((resolve) => setTimeout(resolve, ms));
}

// `promise`'s outcome, or `undefined` once `ms` milliseconds passed first.
export function within(promise, ms) {
  return Promise.race([promise, timer(ms)]);
}

// `fetch(url, init)` (through `via`, a binding with a `fetch` method, when given) with an abort
// signal: if no response headers arrived within `ms`, the request is aborted and the promise
// resolves to `undefined`. Once the headers are in, the body streams without a deadline.
export function fetchWithin(via, url, init, ms) {
  const controller = new AbortController();
  init.signal = controller.signal;
  const sent = via === undefined ? fetch(url, init) : via.fetch(url, init);
  return within(sent, ms).then((response) => {
    if (response === undefined) controller.abort();
    return response;
  });
}
