// A CPU profile of a Worker under load, through wrangler dev's V8 inspector port (Chrome DevTools
// protocol: Profiler.start / Profiler.stop), summarised as self time per function per request.
// Used by `BENCH_PROFILE=1 make bench` (bench/compare/run.mjs).
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { root } from './lib.mjs';

const WebSocket = createRequire(import.meta.url)(join(root, 'miniflare/node_modules/ws'));

function connect(url) {
  const ws = new WebSocket(url);
  let id = 0;
  const pending = new Map();
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString());
    if (msg.id && pending.has(msg.id)) { pending.get(msg.id)(msg); pending.delete(msg.id); }
  });
  const send = (method, params = {}) => new Promise((resolve) => {
    id += 1;
    pending.set(id, resolve);
    ws.send(JSON.stringify({ id, method, params }));
  });
  return new Promise((resolve, reject) => { ws.on('open', () => resolve({ send, close: () => ws.close() })); ws.on('error', reject); });
}

/**
 * The raw V8 CPU profile of the Worker behind `inspectorPort` while `load()` runs. With `every`,
 * every isolate the runtime lists (Miniflare's entry and proxy workers too) is profiled
 * meanwhile, returned as `others` by target id.
 */
export async function rawProfile(inspectorPort, load, keep = () => {}, { every = false } = {}) {
  const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json();
  // wrangler dev's inspector proxy lists the Worker; workerd's own inspector lists every service
  // (Miniflare's entry and proxy workers too): the Worker is `core:user:<name>`.
  const target = targets.find((t) => t.webSocketDebuggerUrl && /core:user:/.test(t.title ?? t.id ?? ''))
    ?? targets.find((t) => t.webSocketDebuggerUrl) ?? { webSocketDebuggerUrl: `ws://127.0.0.1:${inspectorPort}/` };
  const start = async (url) => {
    const cdp = await connect(url);
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
    await cdp.send('Profiler.start');
    return cdp;
  };
  const cdp = await start(target.webSocketDebuggerUrl);
  const rest = every ? await Promise.all(targets.filter((t) => t.webSocketDebuggerUrl && t !== target)
    .map(async (t) => [t.id ?? t.title, await start(t.webSocketDebuggerUrl)])) : [];
  const result = await load();
  const { result: { profile: p } } = await cdp.send('Profiler.stop');
  const others = {};
  for (const [id, c] of rest) { others[id] = (await c.send('Profiler.stop')).result.profile; c.close(); }
  await keep(cdp, p);
  cdp.close();
  return { p, result, others };
}

/** Profiles the Worker behind `inspectorPort` while `load()` runs; returns a markdown table. */
export async function profile(inspectorPort, load) {
  const { p, result } = await rawProfile(inspectorPort, load, async (cdp, p) => {
    // BENCH_PROFILE_OUT=<file prefix>: keep the raw profile and the bundled scripts it points into
    // (line and column numbers refer to them).
    const out = process.env.BENCH_PROFILE_OUT;
    if (out) {
      writeFileSync(`${out}-${inspectorPort}.cpuprofile`, JSON.stringify(p));
      await cdp.send('Debugger.enable');
      const ids = new Set(p.nodes.filter((n) => n.callFrame.url.endsWith('.js')).map((n) => n.callFrame.scriptId));
      for (const scriptId of ids) {
        const { result } = await cdp.send('Debugger.getScriptSource', { scriptId });
        if (result?.scriptSource) writeFileSync(`${out}-${inspectorPort}-script-${scriptId}.js`, result.scriptSource);
      }
    }
  });
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map();
  let total = 0;
  for (let i = 0; i < p.samples.length; i += 1) {
    const node = byId.get(p.samples[i]);
    const dt = p.timeDeltas[i] ?? 0;
    const f = node.callFrame;
    const where = f.url ? f.url.split('/').pop() : '';
    const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  }
  const requests = result.requests.total;
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 30);
  const busy = total - (self.get('(idle)') ?? 0) - (self.get('(program)') ?? 0);
  let table = `| function | µs per request | share of busy time |\n|---|---|---|\n`;
  for (const [name, us] of rows) table += `| ${name.replace(/\|/g, '\\|')} | ${(us / requests).toFixed(1)} | ${name === '(idle)' || name === '(program)' ? '-' : `${((100 * us) / busy).toFixed(1)}%`} |\n`;
  table += `| **busy (not idle, not program)** | **${(busy / requests).toFixed(1)}** | 100% |\n`;
  return { table, requests };
}
