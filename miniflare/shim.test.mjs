// What the entry modules (src/entry.mjs, durable/entry.mjs) rely on in worker-build's generated
// code, checked on the real builds in workerd (`make test`, phase "runtime-level tests"): a
// worker-build or wasm-bindgen upgrade that changes it fails here instead of silently turning
// off crash recovery or the direct calls.
//   - `globalThis.__worker_init_state` is `{criticalError: boolean, instanceId: number}`;
//   - constructing through the shim's class after `criticalError` re-instantiates the module
//     first (a new instanceId, which durable/entry.mjs compares) — its crash recovery;
//   - the gateway's default export class has `prototype.fetch` (called directly);
//   - the counters' `RateLimiter` class behind the shim's Proxy (`prototype.constructor`) has the
//     wasm methods durable/entry.mjs calls.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const scratch = mkdtempSync(join(tmpdir(), 'shim-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Runs `probe` (a module importing ./index.js of the build in `dir`) and returns its JSON. */
async function probe(name, dir, source) {
  const copy = join(scratch, name);
  cpSync(dir, copy, { recursive: true });
  writeFileSync(join(copy, 'probe.mjs'), source);
  const mf = new Miniflare({
    modules: true,
    modulesRoot: copy,
    scriptPath: join(copy, 'probe.mjs'),
    modulesRules: [
      { type: 'ESModule', include: ['**/*.js', '**/*.mjs'] },
      { type: 'CompiledWasm', include: ['**/*.wasm'] },
    ],
    compatibilityDate: '2026-04-01',
  });
  try {
    const response = await mf.dispatchFetch('http://probe/');
    return await response.json();
  } finally {
    await mf.dispose();
  }
}

const stateShape = `
function shape() {
  const s = globalThis.__worker_init_state;
  return s && { criticalError: typeof s.criticalError, instanceId: typeof s.instanceId };
}`;

test('the gateway build has the init state and a default export with prototype.fetch', async () => {
  const got = await probe('gateway', join(root, 'build'), `
import gateway from './index.js';
${stateShape}
export default { fetch() { return Response.json({ state: shape(), fetch: typeof gateway?.prototype?.fetch }); } };`);
  assert.deepEqual(got, { state: { criticalError: 'boolean', instanceId: 'number' }, fetch: 'function' });
});

test('the counters build: the wasm methods, and re-instantiation after a crash is marked', async () => {
  const got = await probe('counters', join(root, 'durable/build'), `
import { RateLimiter } from './index.js';
${stateShape}
export default {
  fetch() {
    const rust = RateLimiter.prototype.constructor.prototype;
    const methods = ['consumeJsonInMemory', 'consumeJson', 'holdJson', 'settleJson', 'revocationsJson', 'takeWriteTimer', 'writeScheduled']
      .filter((m) => typeof rust[m] === 'function');
    const s = globalThis.__worker_init_state;
    const before = s.instanceId;
    s.criticalError = true;
    // The shim re-instantiates before constructing (the object may then refuse the fake state,
    // which the shim marks as a crash again: only the re-instantiation is looked at).
    try { new RateLimiter({}, {}); } catch { /* see above */ }
    return Response.json({ state: shape(), methods, reinstantiated: s.instanceId > before });
  },
};`);
  assert.deepEqual(got, {
    state: { criticalError: 'boolean', instanceId: 'number' },
    methods: ['consumeJsonInMemory', 'consumeJson', 'holdJson', 'settleJson', 'revocationsJson', 'takeWriteTimer', 'writeScheduled'],
    reinstantiated: true,
  });
});
