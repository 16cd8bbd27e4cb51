// A loopback HTTP front for the gateway running in Miniflare, for what `wrangler dev` cannot
// show: values Cloudflare's edge puts in `request.cf`. Each request's `x-test-tls-presented`,
// `x-test-tls-verified`, `x-test-tls-sha256` and `x-test-tls-revoked` headers are removed and
// become `cf.tlsClientAuth` (certPresented, certVerified, certFingerprintSHA256, certRevoked) through Miniflare's
// `dispatchFetch`, as the edge reports a client certificate after mTLS. Used by the end-to-end
// suite (tests/src/lib.rs, `Stack::miniflare_front`).
//
// Usage: node miniflare/dispatch-front.mjs <config.json>
//   config: {"port": <port>, "bindings": {<var or secret name>: <string>, ...},
//            "origin_mtls": <bool>}
// With "origin_mtls", the Worker gets an ORIGIN_MTLS binding standing in for Cloudflare's
// mTLS certificate binding (a fetcher that would present the gateway's client certificate):
// it forwards to the real origin, adding `x-test-via-origin-mtls: 1` so tests can see which
// path a request took.
// Prints "ready <url>" once it serves. Listens on 127.0.0.1 only; stops on SIGTERM.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

const modulesRules = [
  { type: 'ESModule', include: ['**/*.js', '**/*.mjs'] },
  { type: 'CompiledWasm', include: ['**/*.wasm'] },
];
// Two Workers, as deployed: the gateway (first: it serves dispatchFetch) and the counters
// Worker, whose RateLimiter class the gateway's RATE_LIMITER binding names by `scriptName`.
const mf = new Miniflare({
  workers: [
    {
      name: 'edge-gateway-test',
      modules: true,
      scriptPath: resolve(root, 'build/entry.mjs'),
      modulesRules,
      compatibilityDate: '2026-04-01',
      bindings: config.bindings,
      durableObjects: { RATE_LIMITER: { className: 'RateLimiter', scriptName: 'edge-gateway-counters-test' } },
      serviceBindings: config.origin_mtls
        ? {
            ORIGIN_MTLS: async (request) => {
              const headers = new Headers(request.headers);
              headers.set('x-test-via-origin-mtls', '1');
              return fetch(request.url, {
                method: request.method,
                headers,
                body: ['GET', 'HEAD'].includes(request.method) ? undefined : await request.arrayBuffer(),
                redirect: 'manual',
              });
            },
          }
        : {},
    },
    {
      name: 'edge-gateway-counters-test',
      modules: true,
      scriptPath: resolve(root, 'durable/build/entry.mjs'),
      modulesRules,
      compatibilityDate: '2026-04-01',
      durableObjects: { RATE_LIMITER: { className: 'RateLimiter', useSQLite: true } },
    },
  ],
});
await mf.ready;

const TEST_HEADERS = ['x-test-tls-presented', 'x-test-tls-verified', 'x-test-tls-sha256', 'x-test-tls-revoked'];

const server = http.createServer(async (req, res) => {
  try {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const body = Buffer.concat(chunks);
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (TEST_HEADERS.includes(name)) continue;
      for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
    }
    const cf = {};
    if (req.headers['x-test-tls-presented'] !== undefined) {
      cf.tlsClientAuth = {
        certPresented: req.headers['x-test-tls-presented'],
        certVerified: req.headers['x-test-tls-verified'] ?? 'NONE',
        certFingerprintSHA256: req.headers['x-test-tls-sha256'] ?? '',
        certRevoked: req.headers['x-test-tls-revoked'] ?? '0',
      };
    }
    const response = await mf.dispatchFetch(`http://${req.headers.host}${req.url}`, {
      method: req.method,
      headers,
      body: ['GET', 'HEAD'].includes(req.method) ? undefined : body,
      cf,
      redirect: 'manual',
    });
    const out = {};
    response.headers.forEach((value, name) => { out[name] = value; });
    res.writeHead(response.status, out);
    res.end(Buffer.from(await response.arrayBuffer()));
  } catch (e) {
    res.writeHead(599, { 'content-type': 'text/plain' });
    res.end(`front error: ${e}`);
  }
});

server.listen(config.port, '127.0.0.1', () => console.log(`ready http://127.0.0.1:${config.port}`));
const stop = async () => { server.close(); await mf.dispose(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
