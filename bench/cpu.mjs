// CPU accounting for `BENCH_CPU=1 make bench`: the CPU time each process spends per request under
// load, read from /proc (utime + stime of every process in a process group). On a machine with
// few cores the load generator, the origin, wrangler's own Node.js process and workerd share
// them, so req/s follows the total CPU per request; this shows which process spends it. It is as
// noisy as req/s on a shared machine (one build against itself: 7.5% apart, BENCHMARKS.md).
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
