// The Worker's entry module: the `worker-build` output, with the counter object re-exported as a
// class that `extends DurableObject`, which Workers RPC requires of the receiving class (the
// shim's own class does not). Its RPC methods delegate to the Rust object's wasm exports
// (durable/src/rate_limiter.rs); `fetch` is kept for the same endpoints over HTTP.
// `make build` copies this file next to the build (build/entry.mjs, build-bench/entry.mjs);
// wrangler.toml's `main` points at the copy.
import { DurableObject } from 'cloudflare:workers';
import gateway, { RateLimiter as RustRateLimiter } from './index.js';

export default gateway;

export class RateLimiter extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.inner = new RustRateLimiter(ctx, env);
  }

  fetch(request) {
    return this.inner.fetch(request);
  }

  /** ConsumeRequest (JSON text) -> Decision (JSON text). */
  consume(body) {
    return this.inner.consumeJson(body);
  }

  /** RevocationCommand (JSON text) -> RevocationReply (JSON text). */
  revocations(command) {
    return this.inner.revocationsJson(command);
  }
}
