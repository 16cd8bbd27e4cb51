// Runtime-level tests of the counters Worker (durable/build, as deployed) in workerd through
// Miniflare, called across scripts by Workers RPC as the gateway calls it, from a probe Worker
// that can send what no gateway sends: another protocol version, a caller's clock far off.
// Run by `make test` (phase "counters Worker (workerd)") after `make build`.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const compatibilityDate = '2026-04-01';
let mf;

// The probe: POST {name, body, protocol} -> the object's answer, or the error it threw.
const probe = `
export default {
  async fetch(request, env) {
    const { name, body, protocol } = await request.json();
    const stub = env.COUNTERS.getByName(name);
    try {
      const text = protocol === null ? await stub.consume(JSON.stringify(body)) : await stub.consume(JSON.stringify(body), protocol);
      return Response.json({ ok: true, decision: JSON.parse(text) });
    } catch (error) {
      return Response.json({ ok: false, error: String(error) });
    }
  },
};`;

before(async () => {
  mf = new Miniflare({
    workers: [
      {
        name: 'probe',
        modules: true,
        script: probe,
        compatibilityDate,
        durableObjects: { COUNTERS: { className: 'RateLimiter', scriptName: 'edge-gateway-counters' } },
      },
      {
        name: 'edge-gateway-counters',
        modules: true,
        modulesRoot: resolve(root, 'durable/build'),
        scriptPath: resolve(root, 'durable/build/entry.mjs'),
        modulesRules: [
          { type: 'ESModule', include: ['**/*.js', '**/*.mjs'] },
          { type: 'CompiledWasm', include: ['**/*.wasm'] },
        ],
        compatibilityDate,
        durableObjects: { RATE_LIMITER: { className: 'RateLimiter', useSQLite: true } },
      },
    ],
  });
  await mf.ready;
});

after(async () => {
  await mf?.dispose();
});

async function consume(name, { now = Date.now(), cost = 1, windows = [{ limit: 3, seconds: 2 }], protocol = 2 } = {}) {
  const response = await mf.dispatchFetch('http://probe/', {
    method: 'POST',
    body: JSON.stringify({ name, protocol, body: { cost, now, windows } }),
  });
  return response.json();
}

const decision = (answer) => {
  assert.ok(answer.ok, answer.error);
  return answer.decision.decision;
};

test('the current and the previous protocol are accepted, others refused with the reason', async () => {
  assert.equal(decision(await consume('protocol', { protocol: null })), 'admitted', 'no version: a gateway from before versions');
  assert.equal(decision(await consume('protocol', { protocol: 1 })), 'admitted');
  assert.equal(decision(await consume('protocol', { protocol: 2 })), 'admitted');
  for (const protocol of [0, 3]) {
    const answer = await consume('protocol', { protocol });
    assert.equal(answer.ok, false);
    assert.match(answer.error, new RegExp(`counter protocol ${protocol} is not supported .*accepts 1 and 2`));
  }
  // Refused calls counted nothing: the 2 s window still had room for exactly the three above.
  assert.equal(decision(await consume('protocol')), 'limited');
});

test('a caller whose clock is an hour ahead moves nothing: the object decides on its own clock', async () => {
  const ahead = () => Date.now() + 3_600_000;
  for (let i = 0; i < 3; i += 1) assert.equal(decision(await consume('ahead', { now: ahead() })), 'admitted');
  const limited = await consume('ahead', { now: ahead() });
  assert.equal(decision(limited), 'limited');
  assert.ok(limited.decision.retry_after_secs <= 2, `retry after ${limited.decision.retry_after_secs} s: the window is the object's 2 s, not an hour`);
  await new Promise((r) => setTimeout(r, 2_200));
  assert.equal(decision(await consume('ahead')), 'admitted', 'the window slid on the object\'s clock');
});

test('a caller whose clock is an hour behind cannot place admissions in the past', async () => {
  const behind = () => Date.now() - 3_600_000;
  for (let i = 0; i < 3; i += 1) assert.equal(decision(await consume('behind', { now: behind() })), 'admitted');
  // Counted now, not an hour ago: a caller with the right clock is refused.
  assert.equal(decision(await consume('behind')), 'limited');
});
