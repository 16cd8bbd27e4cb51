// `make bench`: the gateway against the JavaScript Worker a team would otherwise write
// (bench/peer: jose + a Durable Object limiter), side by side in the same local runtime, same
// run, same origin, same tokens (ES256 from a JWKS both fetch and cache).
//
// 1. The peer (and the gateway) must first pass the same end-to-end checks: 401 without a token,
//    200 with identity headers and a valid origin signature, 403 on a missing scope, 401 for an
//    expired token and for another audience, the sandbox tier's limit (5 per 2 s) with
//    X-RateLimit-* and a 429 with Retry-After. If the peer fails one, its numbers do not count.
// 2. Then ROUNDS alternating rounds of autocannon over: origin direct; gateway with the
//    verified-token cache hit (500 organisations' tokens, reused) and missed (a pool of distinct
//    tokens larger than the cache, so every request verifies); the peer with the same two token
//    streams; the gateway with every admission written before its answer (the `billed` tier:
//    no write-behind, as the peer writes); and one hot organisation. Medians, latency added over
//    direct, gateway/peer ratios, counter-object calls per request.
import { createHmac, generateKeyPairSync, randomBytes, sign as edSign } from 'node:crypto';
import { writeFileSync, statSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { createServer as createHttpServer } from 'node:http';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { hostShareDuring } from '../cpu.mjs';
import { countersConfig, freePort, median, originPid, root, startOrigin, startWorker, startWorkerd, stopAll } from '../lib.mjs';

const benchDir = join(root, 'bench');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8);
const POOL = Number(process.env.BENCH_TOKEN_POOL ?? 30000);
const ISSUER = 'https://es256.bench.example';
const AUD = 'https://api.example.com';

// --- keys, tokens, JWKS ---------------------------------------------------------------------
const b64 = (buf) => Buffer.from(buf).toString('base64url');
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const kid = `bench-${randomBytes(4).toString('hex')}`;
const jwk = { ...publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' };
function token(org, { tier = 'free', scope = 'transactions:read', exp = 900, aud = AUD } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64(JSON.stringify({ alg: 'ES256', typ: 'at+jwt', kid }))}.${b64(JSON.stringify({
    iss: ISSUER, aud, sub: `client-${org}`, org_id: org, tier, scope, iat: now - (exp < 0 ? 600 : 0), exp: now + exp,
    jti: randomBytes(6).toString('hex'),
  }))}`;
  return `${input}.${b64(edSign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }))}`;
}
const signingSecret = randomBytes(32);
const keyset = { current: 'bench', keys: [{ kid: 'bench', secret: b64(signingSecret) }] };

process.on('SIGINT', () => process.exit(130));

const jwksPort = await freePort();
const jwksServer = createHttpServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=300' });
  res.end(JSON.stringify({ keys: [jwk] }));
}).listen(jwksPort, '127.0.0.1');
const jwksUrl = `http://127.0.0.1:${jwksPort}/jwks`;

// --- the origin, the gateway, the peer -------------------------------------------------------
const originUrl = await startOrigin();
writeFileSync(join(benchDir, '.dev.vars'), `GATEWAY_SIGNING_KEYS='${JSON.stringify(keyset)}'\n`, { mode: 0o600 });
// The runtime: by default (BENCH_RUNTIME=workerd) both Workers are bundled as for a deployment
// (`wrangler deploy --dry-run`) and run by Miniflare in workerd without `wrangler dev` around
// them (bench/serve-workerd.mjs): no inspector attached, no Node.js process printing every
// request's log line (under `wrangler dev` that process spent ~2 ms per request, capped both
// Workers near 300 req/s on this machine and diluted the difference between them).
// BENCH_RUNTIME=wrangler: each in `wrangler dev`.
const runtimeName = process.env.BENCH_RUNTIME ?? 'workerd';
if (!['workerd', 'wrangler'].includes(runtimeName)) throw new Error(`BENCH_RUNTIME must be workerd or wrangler, not ${runtimeName}`);
const plainWorkerd = runtimeName === 'workerd';
const gatewayVars = {
  ORIGIN_URL: originUrl,
  GATEWAY_ISSUERS: JSON.stringify({ 'bench-es256': { issuer: ISSUER, jwks_uri: jwksUrl }, 'bench-rs256': null, 'bench-eddsa': null, 'bench-hs256': null }),
};
const peerVars = { ORIGIN_URL: originUrl, ISSUER, JWKS_URL: jwksUrl, AUDIENCE: AUD, SIGNING_KEYS: JSON.stringify(keyset) };
const { base: gateway, inspector: gatewayInspector, pid: gatewayPid } = plainWorkerd
  ? await startWorkerd('gateway', join(benchDir, 'wrangler.toml'), { ENVIRONMENT: 'test', GATEWAY_SIGNING_KEYS: JSON.stringify(keyset), ...gatewayVars }, ['RATE_LIMITER', 'RateLimiter', countersConfig, 'edge-gateway-counters'], { okStatus: 200, attempts: 900 })
  : await startWorker('gateway', [join(benchDir, 'wrangler.toml'), countersConfig], gatewayVars, { okStatus: 200, attempts: 900 });
const { base: peer, inspector: peerInspector, pid: peerPid } = plainWorkerd
  ? await startWorkerd('peer', join(benchDir, 'peer/wrangler.toml'), peerVars, ['LIMITER', 'PeerLimiter'], { health: '/api/health', attempts: 900 })
  : await startWorker('peer', join(benchDir, 'peer/wrangler.toml'), peerVars, { health: '/api/health', attempts: 900 });

// --- 1. the same end-to-end checks for both --------------------------------------------------
function verifySignature(echo) {
  const h = Object.fromEntries(echo.headers.map(([n, v]) => [n, v]));
  const m = /^t=(\d+),kid=([^,]+),v1=([0-9a-f]{64})$/.exec(h['x-gateway-signature'] ?? '');
  if (!m) return false;
  const target = echo.query ? `${echo.path}?${echo.query}` : echo.path;
  const ids = ['x-gateway-issuer', 'x-gateway-subject', 'x-gateway-org', 'x-gateway-tier', 'x-gateway-scopes', 'x-gateway-route'];
  const canonical = ['v1', echo.method, target, m[1], h['x-request-id'], ...ids.map((n) => `${n}:${h[n] ?? ''}`), echo.body.sha256].join('\n');
  return createHmac('sha256', signingSecret).update(canonical).digest('hex') === m[3];
}
async function checks(name, base) {
  const failures = [];
  const expect = (ok, what) => { if (!ok) failures.push(what); };
  const get = (path, tok, init = {}) => fetch(`${base}${path}`, { ...init, headers: { ...(tok ? { authorization: `Bearer ${tok}` } : {}), ...(init.headers ?? {}) } });
  let r = await get('/api/transactions');
  expect(r.status === 401 && (r.headers.get('www-authenticate') ?? '').startsWith('Bearer'), `no token -> 401 with a Bearer challenge (got ${r.status})`);
  r = await get('/api/transactions?x=1', token('check-org'), { headers: { 'x-user-id': 'admin', 'x-gateway-org': 'evil' } });
  const echo = r.status === 200 ? await r.json() : null;
  expect(r.status === 200, `valid token -> 200 (got ${r.status})`);
  if (echo) {
    const h = Object.fromEntries(echo.headers);
    expect(h['x-gateway-org'] === 'check-org' && h['x-gateway-scopes'] === 'transactions:read', 'identity headers forwarded');
    expect(!('x-user-id' in h) && !('authorization' in h), 'spoofed identity and the token not forwarded');
    expect(verifySignature(echo), 'the origin signature verifies');
    expect(r.headers.get('x-ratelimit-remaining') !== null, 'X-RateLimit-Remaining on a limited route');
  }
  r = await get('/api/reports/generate', token('check-org'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  const body403 = r.status === 403 ? await r.json() : {};
  expect(r.status === 403 && body403.error === 'insufficient_scope', `missing scope -> 403 insufficient_scope (got ${r.status})`);
  r = await get('/api/transactions', token('check-org', { exp: -60 }));
  expect(r.status === 401 && (await r.json()).error === 'token_expired', `expired -> 401 token_expired (got ${r.status})`);
  r = await get('/api/transactions', token('check-org', { aud: 'https://elsewhere.example' }));
  expect(r.status === 401, `other audience -> 401 (got ${r.status})`);
  const sandbox = token(`sandbox-${name}-${Date.now()}`, { tier: 'sandbox' });
  const statuses = [];
  let last;
  for (let i = 0; i < 6; i += 1) { last = await get('/api/transactions', sandbox); statuses.push(last.status); await last.arrayBuffer(); }
  expect(statuses.join() === '200,200,200,200,200,429', `sandbox tier (5 per 2 s): ${statuses.join()}`);
  expect(Number(last.headers.get('retry-after')) >= 1, '429 carries Retry-After');
  return failures;
}
const gatewayFailures = await checks('gateway', gateway);
const peerFailures = await checks('peer', peer);
if (gatewayFailures.length) throw new Error(`the gateway failed the checks: ${gatewayFailures.join('; ')}`);
if (peerFailures.length) throw new Error(`the peer failed the checks, its numbers would not count: ${peerFailures.join('; ')}`);
console.log('End-to-end checks: gateway and peer both pass all 12 (401, 200 + identity + signature, 403, expired, audience, sandbox limit + Retry-After).');

// --- 2. load -----------------------------------------------------------------------------------
const orgTokens = Array.from({ length: 500 }, (_, i) => token(`org-${i}`));
// The same organisations on the `billed` tier (bench/policy.toml: every admission written before
// it is answered, as the peer writes): the gateway without its write-behind.
const billedTokens = Array.from({ length: 500 }, (_, i) => token(`billed-${i}`, { tier: 'billed' }));
const hot = token('hot-org');
console.log(`Minting ${POOL} distinct tokens for the cache-miss runs...`);
const pool = Array.from({ length: POOL }, (_, i) => token(`org-${i % 500}`));
let poolAt = 0;
const scenarios = {
  'origin direct': { url: `${originUrl}/api/transactions` },
  'gateway, cache hit, 500 orgs': { url: `${gateway}/api/transactions`, tokens: orgTokens },
  'peer, 500 orgs': { url: `${peer}/api/transactions`, tokens: orgTokens },
  'gateway, cache miss, 500 orgs': { url: `${gateway}/api/transactions`, tokens: pool, fresh: true },
  'peer, fresh tokens, 500 orgs': { url: `${peer}/api/transactions`, tokens: pool, fresh: true },
  'gateway, cache hit, 500 orgs, written before every answer': { url: `${gateway}/api/transactions`, tokens: billedTokens },
  'gateway, not limited (token cache hit)': { url: `${gateway}/api/health`, tokens: orgTokens },
  'peer, not limited': { url: `${peer}/api/health`, tokens: orgTokens },
  'gateway, one hot org': { url: `${gateway}/api/transactions`, tokens: [hot] },
  'peer, one hot org': { url: `${peer}/api/transactions`, tokens: [hot] },
};
// Warm every path (JWKS, imported keys, counter objects) before timing.
for (const base of [gateway, peer]) for (const t of [hot, ...orgTokens, ...(base === gateway ? billedTokens : [])]) await (await fetch(`${base}/api/transactions`, { headers: { authorization: `Bearer ${t}` } })).arrayBuffer();

function run(s, onResponse) {
  const opts = { url: s.url, connections: CONNECTIONS, duration: SECONDS };
  if (s.tokens) {
    let i = 0;
    opts.requests = [{ setupRequest: (req) => {
      const t = s.fresh ? s.tokens[(poolAt += 1) % s.tokens.length] : s.tokens[(i += 1) % s.tokens.length];
      return { ...req, headers: { ...req.headers, authorization: `Bearer ${t}` } };
    } }];
  }
  return new Promise((resolve, reject) => {
    const instance = autocannon(opts, (err, res) => (err ? reject(err) : resolve(res)));
    if (onResponse) instance.on('response', onResponse);
  });
}
// BENCH_PROFILE=1: instead of the rounds, one CPU profile per worker (V8 sampling profiler through
// workerd's inspector port; under BENCH_RUNTIME=wrangler, wrangler's inspector proxy, which turns
// the debugger on, which V8 answers with unoptimised wasm code: wasm frames weigh several times
// more there) under the
// cache-hit, 500-org load, and the functions with the most
// self time: where each request's CPU goes (the Worker and its counter objects share the isolate).
if (process.env.BENCH_PROFILE) {
  const { profile } = await import('../profile.mjs');
  // BENCH_PROFILE=hot: under the one-hot-organisation load instead; BENCH_PROFILE=miss: under
  // fresh tokens (every one verified).
  const [g, p] = {
    hot: ['gateway, one hot org', 'peer, one hot org'],
    miss: ['gateway, cache miss, 500 orgs', 'peer, fresh tokens, 500 orgs'],
  }[process.env.BENCH_PROFILE] ?? ['gateway, cache hit, 500 orgs', 'peer, 500 orgs'];
  for (const [name, port, url] of [['gateway', gatewayInspector, scenarios[g]], ['peer', peerInspector, scenarios[p]]]) {
    const { table, requests } = await profile(port, () => run(url));
    console.log(`\n${name}: ${requests} requests; self time per request by function (top 30)\n`);
    console.log(table);
  }
  stopAll();
  process.exit(0);
}

// BENCH_CPU=1: instead of the rounds, CPU time per request by process (workerd, wrangler's
// Node.js, the origin, the load generator) for each scenario, ROUNDS times, medians: where the
// machine's cores go (req/s on a small machine follows the total). BENCH_ONLY=<regex> keeps the
// scenarios whose names match.
if (process.env.BENCH_CPU) {
  const only = new RegExp(process.env.BENCH_ONLY ?? '.');
  const { cpuPerRequest } = await import('../cpu.mjs');
  const groups = new Map([[gatewayPid, 'gateway'], [peerPid, 'peer'], [originPid, 'origin']]);
  const seen = {};
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const [name, s] of Object.entries(scenarios).filter(([n]) => only.test(n))) {
      const { rows, total, rps } = await cpuPerRequest(groups, () => run(s));
      const entry = (seen[name] ??= { total: [], rps: [], rows: {} });
      entry.total.push(total);
      entry.rps.push(rps);
      for (const [k, v] of rows) (entry.rows[k] ??= []).push(v);
    }
    console.log(`round ${round + 1}/${ROUNDS} done`);
  }
  for (const [name, e] of Object.entries(seen)) {
    console.log(`\n${name}: ${median(e.rps).toFixed(0)} req/s, ${(median(e.total) * 1000).toFixed(0)} us CPU per request in all`);
    const rows = Object.entries(e.rows).map(([k, v]) => [k, median(v)]).filter(([, v]) => v * 1000 >= 5).sort((a, b) => b[1] - a[1]);
    for (const [k, v] of rows) console.log(`  ${(v * 1000).toFixed(0).padStart(6)} us  ${k}`);
  }
  stopAll();
  process.exit(0);
}

// BENCH_TIMELINE=1|profile|perf: instead of the rounds, where each Worker's slow requests fall in
// time (bench/timeline.mjs): ROUNDS alternating rounds of the chosen scenarios (BENCH_ONLY), the
// stalls (slow requests, over BENCH_SLOW_MS = 20, overlapping), the runtime's threads' CPU and
// run-queue waits; `profile` adds what each isolate did during the stalls (V8 profiles of every
// isolate of the runtime), `perf` the runtime's collection pauses (bench/pauses.mjs).
if (process.env.BENCH_TIMELINE) {
  const { timelines } = await import('../timeline.mjs');
  await timelines({
    mode: process.env.BENCH_TIMELINE, scenarios, run, rounds: ROUNDS,
    only: new RegExp(process.env.BENCH_ONLY ?? '.'), slowMs: Number(process.env.BENCH_SLOW_MS ?? 20),
    workers: { gateway: { pid: gatewayPid, inspector: gatewayInspector }, peer: { pid: peerPid, inspector: peerInspector } },
  });
  stopAll();
  process.exit(0);
}

const calls = async () => (await (await fetch(`${gateway}/_gateway/bench/stats`)).json()).limiter_calls;
const results = {};
// BENCH_ONLY=<regex>: only the scenarios whose names match (for a quick look; the full table
// needs them all). The origin alone is always measured.
const only = new RegExp(process.env.BENCH_ONLY ?? '.');
for (let round = 0; round < ROUNDS; round += 1) {
  for (const [name, s] of Object.entries(scenarios).filter(([n]) => n === 'origin direct' || only.test(n))) {
    const before = name.startsWith('gateway') ? await calls() : 0;
    // The share of the machine's CPU its host took meanwhile, printed so a run's noise shows.
    const { result: r, steal } = await hostShareDuring(() => run(s));
    const bad = r.non2xx + r.errors + r.timeouts;
    if (bad > 0) throw new Error(`${name}: ${bad} failed requests (non-2xx ${r.non2xx}, errors ${r.errors}, timeouts ${r.timeouts})`);
    const perRequest = name.startsWith('gateway') ? (await calls() - before) / r.requests.total : null;
    (results[name] ??= []).push({ rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, calls: perRequest, steal });
    if (process.env.BENCH_LATENCY) console.log(`${name}: ${r.requests.average.toFixed(0)} req/s, latency ms ${JSON.stringify(r.latency)}`);
  }
  console.log(`round ${round + 1}/${ROUNDS} done`);
}

const m = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, {
  rps: median(v.map((x) => x.rps)), p50: median(v.map((x) => x.p50)), p99: median(v.map((x) => x.p99)),
  calls: v[0].calls === null ? null : median(v.map((x) => x.calls)),
  steal: v.some((x) => x.steal === null) ? null : median(v.map((x) => x.steal)),
}]));
const direct = m['origin direct'];
console.log(`\nRuntime: ${plainWorkerd ? 'workerd (Miniflare, no wrangler dev)' : 'wrangler dev'}. Load: autocannon, ${CONNECTIONS} connections, ${SECONDS} s per scenario, medians of ${ROUNDS} alternating rounds; every response 2xx.\n`);
console.log('| scenario | req/s | p50 ms | p99 ms | p50 added over direct, ms | counter-object calls per request | CPU taken by the host, % |');
console.log('|---|---|---|---|---|---|---|');
for (const [name, r] of Object.entries(m)) {
  console.log(`| ${name} | ${r.rps.toFixed(0)} | ${r.p50} | ${r.p99} | ${name === 'origin direct' ? '-' : (r.p50 - direct.p50).toFixed(1)} | ${r.calls === null ? '-' : r.calls.toFixed(3)} | ${r.steal === null ? '-' : r.steal.toFixed(1)} |`);
}
// Each round's own ratio too (the two scenarios of a pairing ran minutes apart at most): their
// spread is the run's noise, which one median hides.
console.log('\n| pairing | gateway/peer req/s | per round | gateway p99 vs peer p99, ms | per round, ms |');
console.log('|---|---|---|---|---|');
for (const [label, g, p] of [
  ['500 orgs, gateway cache hit', 'gateway, cache hit, 500 orgs', 'peer, 500 orgs'],
  ['500 orgs, gateway cache miss (every token verified)', 'gateway, cache miss, 500 orgs', 'peer, fresh tokens, 500 orgs'],
  ['500 orgs, gateway cache hit, every admission written before its answer (as the peer does)', 'gateway, cache hit, 500 orgs, written before every answer', 'peer, 500 orgs'],
  ['one hot org', 'gateway, one hot org', 'peer, one hot org'],
  ['not limited (authentication and forwarding only)', 'gateway, not limited (token cache hit)', 'peer, not limited'],
].filter(([, g, p]) => m[g] && m[p])) {
  const rounds = results[g].map((x, i) => [x, results[p][i]]);
  const ratios = rounds.map(([a, b]) => (a.rps / b.rps).toFixed(2)).join(', ');
  const p99s = rounds.map(([a, b]) => `${a.p99}/${b.p99}`).join(', ');
  console.log(`| ${label} | ${(m[g].rps / m[p].rps).toFixed(2)}x | ${ratios} | ${m[g].p99} vs ${m[p].p99} | ${p99s} |`);
}
const wasm = readFileSync(join(root, 'build/index_bg.wasm'));
console.log(`\nDeployable wasm (build/index_bg.wasm): ${(statSync(join(root, 'build/index_bg.wasm')).size / 1024).toFixed(0)} KiB raw, ${(gzipSync(wasm, { level: 9 }).length / 1024).toFixed(0)} KiB gzip.`);
jwksServer.close();
stopAll();
process.exit(0);
