// The counter object's durability, side by side in one run (`make bench-reservations`, also the
// last part of `make bench`): this build's counters Worker (reservations, core::counter) against
// the previous release's counter object (write-behind: one write at most
// limiter_write_interval_ms after an admission; its enterprise tier wrote before every answer),
// tests/previous-gateway.rev, built by scripts/build-previous.sh.
//
// Both classes run in one workerd (Miniflare), called by Workers RPC from the same JavaScript
// front Worker, so only the object differs. For each shipped tier (free 100, pro 1,000,
// enterprise 10,000 per 60 s; every request cost 1, each organisation given exactly its limit
// so every request is admitted), rounds alternate between the two: req/s at BENCH_CONNECTIONS
// concurrent requests for BENCH_SECONDS, and storage writes per admitted request, counted by
// wrapping each object's `ctx.storage.put`/`delete` (the calls of one turn are one write: the
// runtime commits them together).
//
// BENCH_ROUNDS (3), BENCH_SECONDS (4), BENCH_CONNECTIONS (8).
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { freePort, median, root } from '../lib.mjs';

const { Miniflare } = createRequire(join(root, 'miniflare/node_modules/'))('miniflare');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8);

const rev = readFileSync(join(root, 'tests/previous-gateway.rev'), 'utf8').trim();
const previous = join(root, `target/previous-gateway/${rev}/src/build`);
const scratch = mkdtempSync(join(tmpdir(), 'bench-reservations-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));

// Each object class behind a wrapper that counts its storage writes (per isolate).
const wrapper = `
import * as inner from './entry.mjs';
export default inner.default;
let writes = 0;
let turn = false;
function counted(storage, name) {
  const original = storage[name].bind(storage);
  storage[name] = (...args) => {
    if (!turn) {
      turn = true;
      writes += 1;
      queueMicrotask(() => { turn = false; });
    }
    return original(...args);
  };
}
export class RateLimiter extends inner.RateLimiter {
  constructor(ctx, env) {
    counted(ctx.storage, 'put');
    counted(ctx.storage, 'delete');
    super(ctx, env);
  }
  writes() {
    return writes;
  }
}`;
function wrapped(name, dir) {
  const out = join(scratch, name);
  cpSync(dir, out, { recursive: true });
  writeFileSync(join(out, 'bench-wrapper.mjs'), wrapper);
  return out;
}
const current = wrapped('current', join(root, 'durable/build'));
const old = wrapped('previous', previous);

const front = `
const TIERS = {
  free: [{ limit: 100, seconds: 60 }],
  pro: [{ limit: 1000, seconds: 60 }],
  enterprise: [{ limit: 10000, seconds: 60 }],
};
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const ns = url.searchParams.get('impl') === 'previous' ? env.PREVIOUS : env.CURRENT;
    if (url.pathname === '/writes') return new Response(String(await ns.getByName('stats').writes()));
    const tier = url.searchParams.get('tier');
    const body = JSON.stringify({
      cost: 1,
      now: Date.now(),
      windows: TIERS[tier],
      write_within_ms: Number(url.searchParams.get('within')),
    });
    const answer = JSON.parse(await ns.getByName(url.searchParams.get('org')).consume(body, 2));
    return new Response(answer.decision, { status: answer.decision === 'admitted' ? 200 : 429 });
  },
};`;

const port = await freePort();
const modulesRules = [
  { type: 'ESModule', include: ['**/*.js', '**/*.mjs'] },
  { type: 'CompiledWasm', include: ['**/*.wasm'] },
];
const counterWorker = (name, dir) => ({
  name,
  modules: true,
  modulesRoot: dir,
  scriptPath: join(dir, 'bench-wrapper.mjs'),
  modulesRules,
  compatibilityDate: '2026-04-01',
  durableObjects: { RATE_LIMITER: { className: 'RateLimiter', useSQLite: true } },
  // The previous release's entry also serves requests: it reads these (never called here).
  bindings: { ENVIRONMENT: 'test', ORIGIN_URL: 'http://127.0.0.1:9', GATEWAY_ISSUERS: '{}' },
});
const mf = new Miniflare({
  host: '127.0.0.1',
  port,
  defaultPersistRoot: join(scratch, 'state'),
  workers: [
    {
      name: 'front',
      modules: true,
      script: front,
      compatibilityDate: '2026-04-01',
      durableObjects: {
        CURRENT: { className: 'RateLimiter', scriptName: 'counters-current' },
        PREVIOUS: { className: 'RateLimiter', scriptName: 'counters-previous' },
      },
    },
    counterWorker('counters-current', current),
    counterWorker('counters-previous', old),
  ],
  handleRuntimeStdio(stdout, stderr) {
    stdout.resume();
    stderr.pipe(process.stderr);
  },
});
await mf.ready;
const base = `http://127.0.0.1:${port}`;

const LIMITS = { free: 100, pro: 1000, enterprise: 10000 };
// The write-behind interval each implementation runs a tier with, as shipped.
const WITHIN = {
  current: { free: 1000, pro: 1000, enterprise: 1000 },
  previous: { free: 1000, pro: 1000, enterprise: 0 },
};

async function writes(impl) {
  return Number(await (await fetch(`${base}/writes?impl=${impl}`)).text());
}

let orgCounter = 0;
/** One round: req/s and admitted requests, every organisation given exactly its limit. */
async function round(impl, tier) {
  const limit = LIMITS[tier];
  const run = `${impl}-${tier}-${orgCounter += 1}`;
  let next = 0;
  let admitted = 0;
  let refused = 0;
  const before = await writes(impl);
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    while (performance.now() < deadline) {
      const n = next;
      next += 1;
      const org = `${run}-${Math.floor(n / limit)}`;
      const response = await fetch(`${base}/?impl=${impl}&tier=${tier}&org=${org}&within=${WITHIN[impl][tier]}`);
      await response.arrayBuffer();
      if (response.status === 200) admitted += 1;
      else refused += 1;
    }
  }));
  const elapsed = (performance.now() - started) / 1000;
  // The last writes of write-behind come up to 1 s after the last admission.
  await new Promise((r) => setTimeout(r, 1500));
  const written = (await writes(impl)) - before;
  return { rps: (admitted + refused) / elapsed, admitted, refused, writesPerAdmitted: written / Math.max(admitted, 1) };
}

// Warm both (wasm instantiation, first object creation).
for (const impl of ['current', 'previous']) await round(impl, 'pro');

const results = {};
for (const tier of ['free', 'pro', 'enterprise']) {
  results[tier] = { current: [], previous: [] };
  for (let r = 0; r < ROUNDS; r += 1) {
    const order = r % 2 === 0 ? ['current', 'previous'] : ['previous', 'current'];
    for (const impl of order) results[tier][impl].push(await round(impl, tier));
  }
}
await mf.dispose();

const fmt = (x, d = 0) => x.toFixed(d);
console.log(`\nCounter object durability: reservations (this build) vs write-behind (${rev.slice(0, 7)}), ${ROUNDS} alternating rounds x ${SECONDS} s, ${CONNECTIONS} concurrent, medians`);
console.log('| tier | req/s reservations | req/s write-behind | ratio | writes per admitted request, reservations | write-behind | refused (should be 0) |');
console.log('|---|---|---|---|---|---|---|');
for (const tier of Object.keys(results)) {
  const c = results[tier].current;
  const p = results[tier].previous;
  const rc = median(c.map((x) => x.rps));
  const rp = median(p.map((x) => x.rps));
  const refused = [...c, ...p].reduce((a, x) => a + x.refused, 0);
  console.log(`| ${tier} | ${fmt(rc)} | ${fmt(rp)} | ${fmt(rc / rp, 2)}x | ${fmt(median(c.map((x) => x.writesPerAdmitted)), 3)} | ${fmt(median(p.map((x) => x.writesPerAdmitted)), 3)} | ${refused} |`);
}
for (const tier of Object.keys(results)) {
  const per = (xs) => xs.map((x) => `${fmt(x.rps)}`).join(' / ');
  console.log(`  ${tier}: rounds req/s reservations ${per(results[tier].current)}; write-behind ${per(results[tier].previous)}`);
}
