import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rawProfile } from './profile.mjs';
import { pauses } from './pauses.mjs';
// Per-request timelines for `BENCH_TIMELINE=1 make bench`: where a Worker's slow requests fall in
// time. Every response autocannon sees is recorded (its connection, when it ended, how long it
// took); the slow ones (over SLOW ms) are merged into stalls (slow requests whose spans overlap).
// A stall that holds most connections at once is the runtime's thread not serving anyone (a
// collection, a long task); stalls of one connection each are requests slow on their own (a
// queue, a subrequest).

/** Now on the monotonic clock V8's profiler stamps its samples with, in milliseconds. */
const monotonicMs = () => Number(process.hrtime.bigint() / 1000n) / 1000;

/** Runs `start(onResponse)` (a promise of autocannon's result) and records every response. */
export async function timeline(start) {
  const rows = [];
  const clients = new Map();
  const result = await start((client, status, bytes, ms) => {
    const id = clients.get(client) ?? clients.set(client, clients.size).get(client);
    rows.push({ client: id, end: monotonicMs(), ms });
  });
  return { rows, result };
}

/**
 * What the profiled isolate's thread did during the stalls, in ms summed over them: collecting
 * garbage, running JavaScript or wasm, in V8's own code (`program`), idle, or not sampled at all
 * (`unsampled`: a gap of over 1 ms between samples taken every 0.2 ms; the thread was elsewhere:
 * another isolate of the same runtime, the runtime's own C++ (storage, I/O), or descheduled).
 */
export function attribute(stalls, profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const out = { gc: 0, js: 0, program: 0, idle: 0, unsampled: 0 };
  const top = new Map();
  let t = profile.startTime / 1000;
  let k = 0;
  for (let i = 0; i < profile.samples.length; i += 1) {
    const dt = (profile.timeDeltas[i] ?? 0) / 1000;
    const from = t;
    t += dt;
    while (k < stalls.length && stalls[k].end < from) k += 1;
    const s = stalls[k];
    if (!s || t < s.start || from > s.end) continue;
    const name = byId.get(profile.samples[i]).callFrame.functionName;
    if (dt > 1) out.unsampled += dt;
    else if (name === '(garbage collector)') out.gc += dt;
    else if (name === '(program)') out.program += dt;
    else if (name === '(idle)') out.idle += dt;
    else { out.js += dt; top.set(name || '(anonymous)', (top.get(name || '(anonymous)') ?? 0) + dt); }
  }
  out.topJs = [...top].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([n, ms]) => `${n} ${ms.toFixed(1)}`);
  return out;
}

/** What the rows say: latency quantiles, the stalls, how many connections each held. */
export function summarise(rows, slowMs) {
  const lat = rows.map((r) => r.ms).sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
  const slow = rows
    .filter((r) => r.ms > slowMs)
    .map((r) => ({ start: r.end - r.ms, end: r.end, client: r.client }))
    .sort((a, b) => a.start - b.start);
  const stalls = [];
  for (const s of slow) {
    const last = stalls[stalls.length - 1];
    if (last && s.start <= last.end) {
      last.end = Math.max(last.end, s.end);
      last.requests += 1;
      last.clients.add(s.client);
    } else {
      stalls.push({ start: s.start, end: s.end, requests: 1, clients: new Set([s.client]) });
    }
  }
  const width = stalls.map((s) => s.clients.size);
  const wide = stalls.filter((s) => s.clients.size >= 4);
  const gaps = stalls.slice(1).map((s, i) => s.start - stalls[i].start).sort((a, b) => a - b);
  return {
    list: wide,
    requests: rows.length,
    p50: q(0.5),
    p99: q(0.99),
    max: lat[lat.length - 1],
    slow: slow.length,
    stalls: stalls.length,
    // Stalls holding 4 or more connections at once, and the slow requests inside them.
    wideStalls: wide.length,
    slowInWide: wide.reduce((n, s) => n + s.requests, 0),
    meanConnectionsPerStall: width.length ? width.reduce((a, b) => a + b, 0) / width.length : 0,
    medianGapMs: gaps.length ? gaps[Math.floor(gaps.length / 2)] : null,
    longestStallMs: stalls.reduce((m, s) => Math.max(m, s.end - s.start), 0),
  };
}

/**
 * Per thread of the processes in `pgrp`, nanoseconds on a CPU and waiting for one (runnable but
 * not running: the machine's other processes had the cores), from /proc/<pid>/task/<tid>/schedstat.
 */
export function schedstats(pgrp) {
  const out = new Map();
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    let stat;
    try { stat = readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { continue; }
    if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) !== pgrp) continue;
    let tids = [];
    try { tids = readdirSync(`/proc/${pid}/task`); } catch { continue; }
    for (const tid of tids) {
      try {
        const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
        const [run, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
        out.set(`${pid}/${tid} ${comm}`, { run, wait });
      } catch { /* gone */ }
    }
  }
  return out;
}

/** The threads that ran between two `schedstats` snapshots: ms on a CPU and ms waiting for one. */
export function schedDelta(before, after) {
  const rows = [];
  for (const [k, a] of after) {
    const b = before.get(k) ?? { run: 0, wait: 0 };
    const run = (a.run - b.run) / 1e6;
    const wait = (a.wait - b.wait) / 1e6;
    if (run > 20) rows.push(`${k.split(' ').slice(1).join(' ')}: run ${run.toFixed(0)} wait ${wait.toFixed(0)}`);
  }
  return rows;
}

const round1 = (k, v) => (typeof v === 'number' ? Math.round(v * 10) / 10 : v);

/**
 * `BENCH_TIMELINE=<mode>`: `rounds` alternating rounds of the scenarios matching `only`, each
 * one's timeline summarised; the runtime's threads (CPU, run-queue waits) and the load
 * generator's; with `profile` in `mode`, what every isolate of the runtime did in the stalls;
 * with `perf`, the runtime's collection pauses (kept in $TMPDIR/bench-timeline/).
 */
export async function timelines({ mode, scenarios, run, rounds, only, slowMs, workers }) {
  const driverGroup = Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[2]);
  const dir = join(tmpdir(), 'bench-timeline');
  mkdirSync(dir, { recursive: true });
  for (let round = 0; round < rounds; round += 1) {
    for (const [name, s] of Object.entries(scenarios).filter(([n]) => only.test(n))) {
      const worker = workers[name.split(',')[0]];
      const groups = worker ? [worker.pid, driverGroup] : [driverGroup];
      const threads = () => new Map(groups.flatMap((g) => [...schedstats(g)]));
      const before = threads();
      let perf = null;
      const data = join(dir, `${name.replace(/[^a-z0-9]+/gi, '-')}-${round + 1}.data`);
      if (mode.includes('perf') && worker) {
        const pids = [...new Set([...schedstats(worker.pid).keys()].filter((k) => k.endsWith(' workerd')).map((k) => k.split('/')[0]))];
        perf = spawn('perf', ['record', '-q', '-k', 'CLOCK_MONOTONIC', '-F', '1999', '-g', '-p', pids.join(','), '-o', data], { stdio: 'ignore' });
        await new Promise((r) => setTimeout(r, 500));
      }
      let profiles = null;
      const load = () => timeline((on) => run(s, on));
      const { rows } = mode.includes('profile') && worker
        ? await rawProfile(worker.inspector, load, undefined, { every: true }).then(({ p, result, others }) => { profiles = { worker: p, ...others }; return result; })
        : await load();
      if (perf) {
        perf.kill('SIGINT');
        await new Promise((r) => perf.once('exit', r));
      }
      const { list, ...summary } = summarise(rows, slowMs);
      console.log(`${name} (round ${round + 1}): ${JSON.stringify(summary, round1)}`);
      console.log(`  threads, ms on a CPU / waiting for one: ${schedDelta(before, threads()).join('; ')}`);
      for (const [id, p] of Object.entries(profiles ?? {})) console.log(`  ${id} in the stalls: ${JSON.stringify(attribute(list, p), round1)}`);
      if (perf) console.log(`  collection pauses: ${JSON.stringify(pauses(data, list), round1)}`);
    }
  }
}
