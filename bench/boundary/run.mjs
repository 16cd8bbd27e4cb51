// The header-block micro-benchmark driver (`make bench-boundary`): starts the benchmark build in
// wrangler dev (workerd) and asks its /_gateway/bench/boundary endpoint to build, PASSES times
// each way, the two header blocks of a forwarded request (the origin request's and the client
// response's): rebuilt whole from a JSON init, or copied by the runtime and edited. The request
// carries the headers a typical API client sends, so the client's block is realistic. Rounds
// alternate; medians of per-operation microseconds, and each edited/rebuilt ratio.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { countersConfig, median, root, startWorker, stopAll } from '../lib.mjs';

const benchDir = join(root, 'bench');
const PASSES = Number(process.env.BENCH_PASSES ?? 20000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

// A valid configuration (one static-key issuer), though the endpoint uses none of it.
const staticJwks = { 'bench-hs256': { keys: [{ kty: 'oct', kid: 'hs', k: randomBytes(32).toString('base64url') }] } };
const issuers = JSON.stringify({
  'bench-hs256': { issuer: 'https://hs256.bench.example' }, 'bench-rs256': null, 'bench-es256': null, 'bench-eddsa': null,
});
writeFileSync(join(benchDir, '.dev.vars'), `GATEWAY_STATIC_JWKS='${JSON.stringify(staticJwks)}'\nGATEWAY_SIGNING_KEYS='${JSON.stringify({ current: 'bench', keys: [{ kid: 'bench', secret: randomBytes(32).toString('base64url') }] })}'\n`, { mode: 0o600 });
const { base } = await startWorker('boundary', [join(benchDir, 'wrangler.toml'), countersConfig], { ORIGIN_URL: 'http://127.0.0.1:9', GATEWAY_ISSUERS: issuers }, { okStatus: 200 });

const headers = {
  authorization: `Bearer ${randomBytes(300).toString('base64url')}`,
  accept: 'application/json',
  'accept-encoding': 'gzip, br',
  'user-agent': 'example-sdk/2.4.1 (node 22)',
  'content-type': 'application/json',
  'x-request-id': 'client-7f3a',
};
const rows = {};
for (let round = 0; round < ROUNDS; round += 1) {
  const res = await fetch(`${base}/_gateway/bench/boundary`, { method: 'POST', headers, body: JSON.stringify({ passes: PASSES }) });
  const out = await res.json();
  if (res.status !== 200) throw new Error(`boundary bench: ${res.status} ${JSON.stringify(out)}`);
  for (const r of out.results) (rows[r.mode] ??= []).push(r.per_op_us);
  console.log(`round ${round + 1}/${ROUNDS} done (${out.inbound_headers} inbound headers)`);
}
const m = Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, median(v)]));
const make = m.make_origin_response;
console.log(`\n${PASSES} operations per mode per round, medians of ${ROUNDS} rounds.\n`);
console.log('| block | rebuilt whole (JSON init), µs | copied and edited, µs | edited / rebuilt |');
console.log('|---|---|---|---|');
const resp = [m.response_rebuilt - make, m.response_edited - make];
const reqs = [m.request_rebuilt, m.request_edited];
console.log(`| client response (minus ${make.toFixed(2)} µs to make the stand-in origin response) | ${resp[0].toFixed(2)} | ${resp[1].toFixed(2)} | ${(resp[1] / resp[0]).toFixed(2)} |`);
console.log(`| origin request (read the client's block, build the init, new Request) | ${reqs[0].toFixed(2)} | ${reqs[1].toFixed(2)} | ${(reqs[1] / reqs[0]).toFixed(2)} |`);
stopAll();
process.exit(0);
