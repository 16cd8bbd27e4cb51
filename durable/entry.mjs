// The counters Worker's entry module: the `worker-build` output of durable/ (./index.js) behind
// a Durable Object class the runtime accepts Workers RPC into. `make build` copies this file
// next to the build (durable/build/entry.mjs); durable/wrangler.toml's `main` points at the copy.
//
// 1. The counter object is exported as a class that `extends DurableObject`, which Workers RPC
//    requires of the receiving class (the shim's own class does not). Its RPC methods call the
//    Rust object's wasm exports (durable/src/rate_limiter.rs) with JSON text and the caller's
//    protocol version (gateway_core::protocol; gateways built before versions send none).
// 2. The Worker itself answers nothing: it has no route, no workers.dev and no preview URL, and
//    its default `fetch` returns 404 to anything that reaches it some other way.
// Crash recovery: when a call fails with a `WebAssembly.RuntimeError`, the shim's shared state
// (`globalThis.__worker_init_state`) is marked as the shim's Proxy would mark it; the next call
// to any object constructs its Rust half through the shim's class, which re-instantiates the
// wasm module first, and every other object rebuilds its Rust half when it sees the new
// instance (re-reading its state from storage).
import { DurableObject } from 'cloudflare:workers';
import { RateLimiter as ShimRateLimiter } from './index.js';

const shared = globalThis.__worker_init_state;
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
  fetch() {
    return new Response('not found', { status: 404 });
  },
};

export class RateLimiter extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.build();
  }

  build() {
    if (shared?.criticalError) {
      // After a crash: constructing through the shim's class re-instantiates the wasm module
      // first (its `checkReinitialize`); this object then keeps the shim's wrapped instance.
      this.rust = new ShimRateLimiter(this.ctx, this.env);
    } else {
      this.rust = new RustRateLimiter(this.ctx, this.env);
    }
    this.instanceId = shared?.instanceId;
  }

  /**
   * The Rust object, rebuilt after a crash of the wasm module (this object's own, or another
   * object's that re-instantiated the module since): it re-reads its state from storage.
   */
  get inner() {
    if (shared && (shared.criticalError || shared.instanceId !== this.instanceId)) this.build();
    return this.rust;
  }

  /**
   * ConsumeRequest (JSON text) -> Decision (JSON text): at once when the object's state is in
   * memory (every call but an instance's first), else after reading storage.
   */
  consume(body, protocol) {
    return guarded(() => {
      const inner = this.inner;
      const answer = inner.consumeJsonInMemory(body, protocol);
      if (answer === undefined) {
        return inner.consumeJson(body, protocol).then((cold) => {
          this.scheduleWrite(inner);
          return cold;
        });
      }
      this.scheduleWrite(inner);
      return answer;
    });
  }

  /**
   * The idle write (core::counter): when the object asks for a timer, it calls back
   * `writeScheduled` then, which writes the admissions down and shrinks the reservation once the
   * object has been idle long enough, or asks for a later timer. A timer of a Rust object since
   * rebuilt does nothing (the rebuilt one re-read storage).
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
        console.error(`counter object: idle write failed: ${error}`);
        return;
      }
      this.scheduleWrite(inner);
    }, ms);
  }

  /** HoldRequest (JSON text) -> Decision (JSON text): a slot for a request about to be forwarded. */
  hold(body, protocol) {
    return guarded(() => this.inner.holdJson(body, protocol));
  }

  /** SettleRequest (JSON text) -> Decision (JSON text): the origin answered a held request. */
  settle(body, protocol) {
    return guarded(() => {
      const inner = this.inner;
      return inner.settleJson(body, protocol).then((answer) => {
        this.scheduleWrite(inner);
        return answer;
      });
    });
  }

  /** RevocationCommand (JSON text) -> RevocationReply (JSON text). */
  revocations(command, protocol) {
    return guarded(() => this.inner.revocationsJson(command, protocol));
  }
}
