// The rate-limiting benchmark driver (`make bench-limit`): the demo origin, and the benchmark
// build of the gateway in wrangler dev (workerd), loaded by autocannon. Side by side, alternating
// over ROUNDS rounds, it measures req/s, p50 and p99 for:
//   origin direct              the demo origin alone (it must not be the bottleneck);
//   gateway, not limited       a bearer route with `limited = false` (token verified, cached);
//   gateway, limited, hot org  the same request on a limited route, one organisation;
//   gateway, limited, 500 orgs the same, cycling 500 organisations' tokens;
//   gateway, org over its limit one organisation on the `sandbox` tier (5 per 2 s): nearly every
//                              answer a 429, from the isolate's memory of the object's refusal;
// and asks the Worker for the limiter decision's own cost. Prints Markdown tables of medians.
import { createHmac, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { countersConfig, median, root, startOrigin, startWorker, stopAll } from '../lib.mjs';

const benchDir = join(root, 'bench');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8);

const b64 = (buf) => Buffer.from(buf).toString('base64url');
const secret = randomBytes(32);
function token(org, tier = 'free') {
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64(JSON.stringify({ alg: 'HS256', typ: 'at+jwt', kid: 'hs' }))}.${b64(JSON.stringify({
    iss: 'https://hs256.bench.example', aud: 'https://api.example.com', sub: `client-${org}`, org_id: org,
    tier, scope: 'transactions:read', iat: now, exp: now + 900,
  }))}`;
  return `${input}.${b64(createHmac('sha256', secret).update(input).digest())}`;
}
const staticJwks = { 'bench-hs256': { keys: [{ kty: 'oct', kid: 'hs', k: b64(secret) }] } };
// Only the HS256 issuer is enabled in this run (the others are set to null below).
const issuers = JSON.stringify({
  'bench-hs256': { issuer: 'https://hs256.bench.example' }, 'bench-rs256': null, 'bench-es256': null, 'bench-eddsa': null,
});
writeFileSync(join(benchDir, '.dev.vars'), `GATEWAY_STATIC_JWKS='${JSON.stringify(staticJwks)}'\nGATEWAY_SIGNING_KEYS='${JSON.stringify({ current: 'bench', keys: [{ kid: 'bench', secret: randomBytes(32).toString('base64url') }] })}'\n`, { mode: 0o600 });

// The demo origin (release build) and the benchmark Worker, on ports they pick.
const originUrl = await startOrigin();
const { base } = await startWorker('limit', [join(benchDir, 'wrangler.toml'), countersConfig], { ORIGIN_URL: originUrl, GATEWAY_ISSUERS: issuers }, { okStatus: 200 });

const hot = token('hot-org');
const flood = token('flood-org', 'sandbox');
const many = Array.from({ length: 500 }, (_, i) => token(`org-${i}`));
const scenarios = {
  'origin direct': { url: `${originUrl}/api/transactions`, headers: {} },
  'gateway, not limited': { url: `${base}/api/health`, headers: { authorization: `Bearer ${hot}` } },
  'gateway, limited, hot org': { url: `${base}/api/transactions`, headers: { authorization: `Bearer ${hot}` } },
  'gateway, limited, 500 orgs': { url: `${base}/api/transactions`, tokens: many },
  'gateway, org over its limit': { url: `${base}/api/transactions`, headers: { authorization: `Bearer ${flood}` }, refused: true },
};

// Warm every path (token cache, imported keys, counter objects) before timing.
for (const t of [hot, flood, ...many]) await fetch(`${base}/api/transactions`, { headers: { authorization: `Bearer ${t}` } });

function run(s) {
  const opts = { url: s.url, connections: CONNECTIONS, duration: SECONDS, headers: s.headers ?? {} };
  if (s.tokens) {
    let i = 0;
    opts.requests = [{ setupRequest: (req) => ({ ...req, headers: { ...req.headers, authorization: `Bearer ${s.tokens[(i += 1) % s.tokens.length]}` } }) }];
  }
  return new Promise((resolve, reject) => autocannon(opts, (err, res) => (err ? reject(err) : resolve(res))));
}

const calls = async () => (await (await fetch(`${base}/_gateway/bench/stats`)).json()).limiter_calls;
const results = {};
for (let round = 0; round < ROUNDS; round += 1) {
  for (const [name, s] of Object.entries(scenarios)) {
    const before = await calls();
    const r = await run(s);
    const perRequest = (await calls() - before) / r.requests.total;
    // The flood's answers are 429s (a few admissions each window); every other answer is a 2xx.
    const bad = (s.refused ? 0 : r.non2xx) + r.errors + r.timeouts;
    if (s.refused && r.non2xx < r.requests.total * 0.9) throw new Error(`${name}: only ${r.non2xx} of ${r.requests.total} refused`);
    if (bad > 0) throw new Error(`${name}: ${bad} failed requests (non-2xx ${r.non2xx}, errors ${r.errors}, timeouts ${r.timeouts})`);
    (results[name] ??= []).push({ rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, calls: perRequest });
  }
}

const decision = await (await fetch(`${base}/_gateway/bench/limit`, { method: 'POST', body: '{"decisions": 200000}' })).json();

const m = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, {
  rps: median(v.map((x) => x.rps)), p50: median(v.map((x) => x.p50)), p99: median(v.map((x) => x.p99)),
  calls: median(v.map((x) => x.calls)),
}]));
const direct = m['origin direct'];
console.log(`\nLoad: autocannon, ${CONNECTIONS} connections, ${SECONDS} s per scenario, medians of ${ROUNDS} alternating rounds; every response 2xx but the flood's (429s).\n`);
console.log('| scenario | req/s | p50 ms | p99 ms | p50 added over direct, ms | counter-object calls per request |');
console.log('|---|---|---|---|---|---|');
for (const [name, r] of Object.entries(m)) {
  console.log(`| ${name} | ${r.rps.toFixed(0)} | ${r.p50} | ${r.p99} | ${name === 'origin direct' ? '-' : (r.p50 - direct.p50).toFixed(1)} | ${name === 'origin direct' ? '-' : r.calls.toFixed(3)} |`);
}
const on = m['gateway, limited, hot org'];
const off = m['gateway, not limited'];
console.log(`\nLimiting on / off (hot org): ${(on.rps / off.rps).toFixed(2)}x req/s, p99 ${on.p99} vs ${off.p99} ms.`);
const fl = m['gateway, org over its limit'];
console.log(`Org over its limit: ${(fl.rps / on.rps).toFixed(2)}x the req/s of an admitted org, ${fl.calls.toFixed(3)} counter-object calls per request.`);
console.log(`Limiter decision (core, in wasm, ${decision.decisions} decisions on a warm state): ${decision.per_decision_us.toFixed(2)} µs each.`);
stopAll();
process.exit(0);
