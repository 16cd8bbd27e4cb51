// The gateway Worker's entry module: the `worker-build` output (./index.js), called the cheap
// way. `make build` copies this file next to the build (build/entry.mjs, build-bench/entry.mjs);
// wrangler.toml's `main` points at the copy. The gateway implements no Durable Object: its
// counter objects live in the counters Worker (durable/, reached through the RATE_LIMITER
// binding's `script_name`).
//
// 1. Requests go straight to the shim's `fetch` (the wasm export) instead of through the shim's
//    default export, a `WorkerEntrypoint` class wrapped in a Proxy for crash recovery: the
//    runtime constructs an entrypoint per request, and the Proxy then builds a handler object
//    and wraps every method it hands out in another Proxy (~0.15 ms per request under load).
// 2. The wake-ups of the Rust side's tasks are queued inside V8, not through the runtime's
//    `queueMicrotask` (below).
// The crash recovery is kept: wasm-bindgen's own guard (every call checks that the instance was
// not terminated by a panic) is inside the calls; and when a call fails with a
// `WebAssembly.RuntimeError`, the shim's shared state (`globalThis.__worker_init_state`) is
// marked as the shim's Proxy would mark it, and the next request goes through the shim's class,
// which re-instantiates the wasm module first.
import gateway from './index.js';

const shared = globalThis.__worker_init_state;
const rustFetch = gateway.prototype.fetch;

/** Marks the shim's shared state when `error` is a crash of the wasm module, and rethrows. */
function noteCrash(error) {
  if (error instanceof WebAssembly.RuntimeError && shared) shared.criticalError = true;
  throw error;
}

// 2. wasm-bindgen's future executor schedules every wake-up of a Rust task (each settled
//    promise the gateway awaits, and each request's first poll) with the global
//    `queueMicrotask`, which in workerd is a runtime API: every call crosses out of V8 into the
//    runtime and back (0.25-0.3 ms of sampled time per request). A settled promise's `then`
//    queues the same microtask, in the same order, inside V8. Only this Worker's code runs in
//    its isolate; a callback that throws still surfaces (as an unhandled rejection), and a crash
//    of the wasm module is noted as the shim notes it.
const settled = Promise.resolve();
globalThis.queueMicrotask = function queueMicrotask(callback) {
  settled.then(() => {
    try {
      callback();
    } catch (error) {
      noteCrash(error);
    }
  });
};

/** Runs a call into the wasm module, noting a crash whether it throws or its promise rejects. */
function guarded(call) {
  try {
    const result = call();
    return result instanceof Promise ? result.catch(noteCrash) : result;
  } catch (error) {
    return noteCrash(error);
  }
}

export default {
  fetch(request, env, ctx) {
    if (shared?.criticalError) return new gateway(ctx, env).fetch(request);
    return guarded(() => rustFetch.call({ env, ctx }, request));
  },
};
