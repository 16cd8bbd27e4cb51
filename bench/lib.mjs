// What the benchmark drivers share: free ports, the processes they start (each in its own
// process group, stopped on exit), the demo origin, a Worker in `wrangler dev`, medians.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export function freePort() {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

export const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

const children = [];
const scratch = [];
export function stopAll() {
  for (const c of children) { try { process.kill(-c.pid, 'SIGTERM'); } catch { /* gone */ } }
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
}
process.on('exit', stopAll);

/** The demo origin's process id, once started (for CPU accounting). */
export let originPid = null;

/** The demo origin (release build, 4 threads, no signature enforcement); resolves to its URL. */
export async function startOrigin() {
  const origin = spawn(join(root, 'target/release/gateway-demo'), ['origin', '--listen', '127.0.0.1:0', '--threads', '4'], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(origin);
  originPid = origin.pid;
  return new Promise((resolve, reject) => {
    createInterface({ input: origin.stdout }).once('line', (line) => resolve(line.replace('listening on ', '').trim()));
    origin.once('exit', () => reject(new Error('origin exited')));
  });
}

/** The counters Worker's configuration: the gateway's RATE_LIMITER binding names its class. */
export const countersConfig = join(root, 'durable/wrangler.toml');

/**
 * `wrangler dev --config <config>` on free ports with its own state folder and these `--var`s;
 * resolves once `health` answers below 500 (with `okStatus`, exactly that; polled every 100 ms,
 * `attempts` times) to `{ base, log }`:
 * its URL, its V8 inspector port, and a function returning the tail of its output (for error
 * messages).
 */
export async function startWorker(name, config, vars = {}, { health = '/_gateway/health', okStatus, attempts = 600 } = {}) {
  const port = await freePort();
  const inspector = await freePort();
  const state = mkdtempSync(join(tmpdir(), `bench-${name}-`));
  scratch.push(state);
  // Several configurations run in one `wrangler dev` (the first serves the port): the gateway
  // and the counters Worker its RATE_LIMITER binding names.
  const configs = Array.isArray(config) ? config : [config];
  const args = ['dev', ...configs.flatMap((c) => ['--config', c]), '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspector), '--persist-to', state];
  for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}:${v}`);
  const child = spawn(join(root, 'miniflare/node_modules/.bin/wrangler'), args, {
    cwd: dirname(configs[0]), detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', XDG_CONFIG_HOME: state },
  });
  return started(name, child, port, inspector, { health, okStatus, attempts });
}

/** Keeps `child`'s output tail and waits until its `health` answers (see `startWorker`). */
async function started(name, child, port, inspector, { health, okStatus, attempts }) {
  children.push(child);
  let log = '';
  // The tail of its output, for the error if it does not start (bounded: it logs every request).
  const keep = (d) => { log = (log + d).slice(-65536); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i += 1) {
    try {
      const r = await fetch(`${base}${health}`);
      if (okStatus === undefined ? r.status < 500 : r.status === okStatus) break;
    } catch { /* not yet */ }
    if (i > attempts) { console.error(log); throw new Error(`${name} did not start`); }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { base, inspector, pid: child.pid, log: () => log };
}

/** Bundles a Worker exactly as for a deployment (`wrangler deploy --dry-run --outdir`): its folder and entry file. */
function bundle(name, config, state) {
  const out = join(state, `bundle-${name}`);
  const wrangler = join(root, 'miniflare/node_modules/.bin/wrangler');
  const bundled = spawnSync(wrangler, ['deploy', '--dry-run', '--outdir', out, '--config', config], {
    cwd: dirname(config), encoding: 'utf8',
    env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false', XDG_CONFIG_HOME: state },
  });
  if (bundled.status !== 0) throw new Error(`bundling ${name} failed:\n${bundled.stdout}\n${bundled.stderr}`);
  return [out, readdirSync(out).find((f) => f.endsWith('.js'))];
}

/**
 * The same Worker in the same workerd, without `wrangler dev` around it: `wrangler deploy
 * --dry-run` bundles it exactly as for a deployment, and bench/serve-workerd.mjs runs the bundle
 * with Miniflare (the library `wrangler dev` itself drives) — no inspector attached, no Node.js
 * process printing a line per request. `vars` are every binding (wrangler.toml's [vars] are not
 * read); `durable` is `[binding, class]` for a class of the Worker itself, or `[binding, class,
 * counters config, counters script name]` for the class of another Worker (the gateway's counters
 * Worker), bundled and run beside it. Resolves like `startWorker`.
 */
export async function startWorkerd(name, config, vars, durable, { health = '/_gateway/health', okStatus, attempts = 600 } = {}) {
  const port = await freePort();
  const state = mkdtempSync(join(tmpdir(), `bench-${name}-`));
  scratch.push(state);
  const [out, entry] = bundle(name, config, state);
  const [binding, className, countersConfig, countersName] = durable;
  const counters = countersConfig ? [...bundle(`${name}-counters`, countersConfig, state), countersName] : [];
  const inspector = await freePort();
  const child = spawn(process.execPath, [join(root, 'bench/serve-workerd.mjs'), out, entry, String(port), JSON.stringify(vars), binding, className, String(inspector), ...counters], {
    detached: true, stdio: ['ignore', 'pipe', 'pipe'],
  });
  return started(name, child, port, inspector, { health, okStatus, attempts });
}
