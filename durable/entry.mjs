// The Worker's entry module: the `worker-build` output (./index.js), called the cheap way.
// `make build` copies this file next to the build (build/entry.mjs, build-bench/entry.mjs);
// wrangler.toml's `main` points at the copy.
//
// 1. The counter object is re-exported as a class that `extends DurableObject`, which Workers RPC
//    requires of the receiving class (the shim's own class does not). Its RPC methods call the
//    Rust object's wasm exports (durable/src/rate_limiter.rs) with JSON text; `fetch` is kept for
//    the same endpoints over HTTP.
// 2. Requests go straight to the shim's `fetch` (the wasm export) instead of through the shim's
//    default export, a `WorkerEntrypoint` class wrapped in a Proxy for crash recovery: the
//    runtime constructs an entrypoint per request, and the Proxy then builds a handler object
//    and wraps every method it hands out in another Proxy (measured: ~0.15 ms per request under
//    load, BENCHMARKS.md). The Rust objects are likewise held unwrapped.
// 3. The wake-ups of the Rust side's tasks are queued inside V8, not through the runtime's
//    `queueMicrotask` (below).
// The crash recovery is kept: wasm-bindgen's own guard (every call checks that the instance was
// not terminated by a panic) is inside the calls; and when a call fails with a
// `WebAssembly.RuntimeError`, the shim's shared state (`globalThis.__worker_init_state`) is
// marked as the shim's Proxy would mark it, and the next request goes through the shim's class,
// which re-instantiates the wasm module first; objects rebuild their Rust half when the instance
// changed (they re-read their state from storage).
import { DurableObject } from 'cloudflare:workers';
import gateway, { RateLimiter as ShimRateLimiter } from './index.js';

const shared = globalThis.__worker_init_state;
const rustFetch = gateway.prototype.fetch;
// The class behind the shim's Proxy (its prototype's constructor).
const RustRateLimiter = ShimRateLimiter.prototype.constructor;

/** Marks the shim's shared state when `error` is a crash of the wasm module. */
function markCrash(error) {
  if (error instanceof WebAssembly.RuntimeError && shared) shared.criticalError = true;
}

function noteCrash(error) {
  markCrash(error);
  throw error;
}

// 3. wasm-bindgen's future executor schedules every wake-up of a Rust task (each settled
//    promise the gateway awaits, and each request's first poll) with the global
//    `queueMicrotask`, which in workerd is a runtime API: every call crosses out of V8 into the
//    runtime and back (0.25-0.3 ms of sampled time per request, BENCHMARKS.md). A settled
//    promise's `then` queues the same microtask, in the same order, inside V8. Only this
//    Worker's code runs in its isolate; a callback that throws still surfaces (as an unhandled
//    rejection), and a crash of the wasm module is noted as the shim notes it.
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

export class RateLimiter extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.build();
  }

  build() {
    this.instanceId = shared?.instanceId;
    this.rust = new RustRateLimiter(this.ctx, this.env);
  }

  /**
   * The Rust object, rebuilt if the wasm module was re-instantiated since (which the next
   * Worker request after a crash does, before it calls any object).
   */
  get inner() {
    if (shared && shared.instanceId !== this.instanceId) this.build();
    return this.rust;
  }

  fetch(request) {
    return guarded(() => this.inner.fetch(request));
  }

  /**
   * ConsumeRequest (JSON text) -> Decision (JSON text): at once when the object's state is in
   * memory (every call but an instance's first), else after reading storage.
   */
  consume(body) {
    return guarded(() => {
      const inner = this.inner;
      const answer = inner.consumeJsonInMemory(body);
      if (answer === undefined) {
        return inner.consumeJson(body).then((cold) => {
          this.scheduleWrite(inner);
          return cold;
        });
      }
      this.scheduleWrite(inner);
      return answer;
    });
  }

  /**
   * The counts an admission changed are written within the caller's `write_within_ms`
   * (core::limit::WriteBehind): when a decision asks for a write later, one timer per interval
   * writes everything admitted meanwhile. A timer of a Rust object since rebuilt does nothing
   * (the rebuilt one re-read storage).
   */
  scheduleWrite(inner) {
    const ms = inner.takeWriteTimer();
    if (ms === undefined) return;
    setTimeout(() => {
      if (this.rust !== inner) return;
      try {
        inner.writeScheduled();
      } catch (error) {
        markCrash(error);
        console.error(`counter object: scheduled write failed: ${error}`);
      }
    }, ms);
  }

  /** RevocationCommand (JSON text) -> RevocationReply (JSON text). */
  revocations(command) {
    return guarded(() => this.inner.revocationsJson(command));
  }
}
