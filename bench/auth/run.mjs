// The authentication micro-benchmark driver (`make bench-auth`): mints distinct tokens for
// RS256, ES256, EdDSA and HS256 with fresh keys, writes the static JWKS secret to .dev.vars,
// starts the bench build in wrangler dev (workerd), and asks its /_gateway/bench/auth endpoint
// to time, side by side in one isolate: the gateway's verification with the verified-token cache
// off and on, crypto.subtle.verify alone, and pure-Rust verification in wasm. Prints a Markdown
// table of per-verification microseconds and ratios. Every run alternates the algorithms over
// ROUNDS rounds and reports medians.
import { createHash, createHmac, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { countersConfig, median, root, startWorker, stopAll } from '../lib.mjs';

const benchDir = join(root, 'bench');
const TOKENS = Number(process.env.BENCH_TOKENS ?? 200);
const PASSES = Number(process.env.BENCH_PASSES ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const AUD = 'https://api.example.com';

const b64 = (buf) => Buffer.from(buf).toString('base64url');
const json64 = (obj) => b64(JSON.stringify(obj));

function keysFor(alg) {
  if (alg === 'HS256') {
    const secret = randomBytes(32);
    return { jwk: { kty: 'oct', k: b64(secret), kid: 'hs' }, signer: (input) => createHmac('sha256', secret).update(input).digest() };
  }
  const [type, options] = {
    RS256: ['rsa', { modulusLength: 2048 }],
    ES256: ['ec', { namedCurve: 'P-256' }],
    EdDSA: ['ed25519', {}],
  }[alg];
  const { privateKey, publicKey } = generateKeyPairSync(type, options);
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: alg.toLowerCase() };
  const signer = {
    RS256: (input) => sign('sha256', input, privateKey),
    ES256: (input) => sign('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' }),
    EdDSA: (input) => sign(null, input, privateKey),
  }[alg];
  return { jwk, signer };
}

function mint(alg, issuer, kid, signer, i) {
  const now = Math.floor(Date.now() / 1000);
  const header = json64({ alg, typ: 'at+jwt', kid });
  const claims = json64({ iss: issuer, aud: AUD, sub: `client-${i}`, org_id: `org-${i % 50}`, tier: 'pro', scope: 'transactions:read', iat: now, exp: now + 900, jti: `${alg}-${i}-${randomBytes(6).toString('hex')}` });
  const input = `${header}.${claims}`;
  return `${input}.${b64(signer(Buffer.from(input)))}`;
}


const ALGS = { RS256: 'bench-rs256', ES256: 'bench-es256', EdDSA: 'bench-eddsa', HS256: 'bench-hs256' };
const ISSUERS = { RS256: 'https://rs256.bench.example', ES256: 'https://es256.bench.example', EdDSA: 'https://eddsa.bench.example', HS256: 'https://hs256.bench.example' };

const staticJwks = {};
const tokens = {};
for (const [alg, name] of Object.entries(ALGS)) {
  const { jwk, signer } = keysFor(alg);
  staticJwks[name] = { keys: [jwk] };
  tokens[alg] = Array.from({ length: TOKENS }, (_, i) => mint(alg, ISSUERS[alg], jwk.kid, signer, i));
}
writeFileSync(join(benchDir, '.dev.vars'), `GATEWAY_STATIC_JWKS='${JSON.stringify(staticJwks)}'\nGATEWAY_SIGNING_KEYS='${JSON.stringify({ current: 'bench', keys: [{ kid: 'bench', secret: randomBytes(32).toString('base64url') }] })}'\n`, { mode: 0o600 });

const { base, log } = await startWorker('auth', [join(benchDir, 'wrangler.toml'), countersConfig], {}, { okStatus: 200 });

const perMode = {};
for (let round = 0; round < ROUNDS; round += 1) {
  for (const alg of Object.keys(ALGS)) {
    const resp = await fetch(`${base}/_gateway/bench/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tokens: tokens[alg], passes: PASSES }) });
    const body = await resp.json();
    if (resp.status !== 200) { console.error(log()); throw new Error(`${alg}: ${JSON.stringify(body)}`); }
    for (const r of body.results) {
      ((perMode[alg] ??= {})[r.mode] ??= []).push(r.per_op_us);
    }
  }
}

const fmt = (x) => x.toFixed(x < 10 ? 2 : 1);
console.log(`\nVerification cost per token in workerd (wrangler dev), µs: median of ${ROUNDS} alternating rounds, ${TOKENS} distinct tokens x ${PASSES} passes per mode and round.\n`);
console.log('| alg | gateway, cache off | gateway, cache hit | crypto.subtle.verify alone | gateway minus signature | of which parse + rules |  pure Rust in wasm | cache off / subtle | pure Rust / cache off |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const alg of Object.keys(ALGS)) {
  const m = Object.fromEntries(Object.entries(perMode[alg]).map(([k, v]) => [k, median(v)]));
  console.log(`| ${alg} | ${fmt(m.cache_off)} | ${fmt(m.cache_on)} | ${fmt(m.subtle_raw)} | ${fmt(m.rust_side_only)} | ${fmt(m.pure_rules_only)} | ${fmt(m.pure_rust)} | ${(m.cache_off / m.subtle_raw).toFixed(2)}x | ${(m.pure_rust / m.cache_off).toFixed(1)}x |`);
}
stopAll();
process.exit(0);
