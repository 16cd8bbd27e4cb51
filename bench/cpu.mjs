// CPU accounting for `BENCH_CPU=1 make bench`: the CPU time each process spends per request under
// load, read from /proc (utime + stime of every process in a process group). On a machine with
// few cores the load generator, the origin, wrangler's own Node.js process and workerd share
// them, so req/s follows the total CPU per request; this shows which process spends it. It is as
// noisy as req/s on a shared machine (one build against itself: 7.5% apart, BENCHMARKS.md).
// Also, for every `make bench` scenario, the share of the machine's CPU its host took.
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // Linux USER_HZ

/** CPU milliseconds so far per `${group} ${command}` for the process groups asked about. */
function snapshot(groups) {
  const out = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat;
    try { stat = readFileSync(`/proc/${entry}/stat`, 'utf8'); } catch { continue; }
    // "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after the last ')'.
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' ');
    const pgrp = Number(fields[2]);
    const label = groups.get(pgrp);
    if (!label) continue;
    const ms = ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
    const key = `${label} ${comm}`;
    out.set(key, (out.get(key) ?? 0) + ms);
  }
  return out;
}

/**
 * Runs `load()` (resolving to autocannon's result) and returns rows of CPU ms per request by
 * process, the load generator (this process) included.
 * `groups`: Map of process-group id -> label.
 */
export async function cpuPerRequest(groups, load) {
  const before = snapshot(groups);
  const self = process.cpuUsage();
  const result = await load();
  const after = snapshot(groups);
  const mine = process.cpuUsage(self);
  const requests = result.requests.total;
  const rows = [];
  for (const [key, ms] of after) {
    const used = ms - (before.get(key) ?? 0);
    if (used > 0) rows.push([key, used / requests]);
  }
  rows.push(['load generator (autocannon, node)', (mine.user + mine.system) / 1000 / requests]);
  rows.sort((a, b) => b[1] - a[1]);
  const total = rows.reduce((sum, [, v]) => sum + v, 0);
  return { requests, rps: result.requests.average, rows, total };
}

/** The machine's CPU ticks so far: all of them, and those its host took (`steal`); null off Linux. */
function machineTicks() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return { steal: f[7] ?? 0, total: f.reduce((a, b) => a + b, 0) };
  } catch {
    return null;
  }
}

/**
 * Runs `load()` and returns its result with `steal`: the percentage of the machine's CPU time its
 * host took meanwhile (a virtual machine on a shared host loses it at random, and the scenarios
 * it hits look slower), or null where /proc/stat cannot tell.
 */
export async function hostShareDuring(load) {
  const a = machineTicks();
  const result = await load();
  const b = machineTicks();
  const steal = a && b && b.total > a.total ? (100 * (b.steal - a.steal)) / (b.total - a.total) : null;
  return { result, steal };
}
