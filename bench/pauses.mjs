// The runtime's garbage-collection pauses, from `perf record -g` of a workerd process
// (`BENCH_TIMELINE=perf make bench`, bench/compare/run.mjs): every run of consecutive samples of
// its main thread inside V8's `Heap::CollectGarbage` is one pause, and for each, what started it
// (a scheduled `MinorGCJob`, an allocation) and how much of it was workerd destroying the API
// objects the collection freed (`Response`, `Request`, `Headers`: the C++ objects behind
// JavaScript wrappers are destroyed in the collection's epilogue). Lined up with the timeline's
// stalls (same monotonic clock): how many stalls held a pause.
import { spawnSync } from 'node:child_process';

/** perf's samples: thread, time in ms (CLOCK_MONOTONIC), stack (innermost first). */
function samples(dataFile) {
  const run = spawnSync('perf', ['script', '-i', dataFile, '-F', 'comm,tid,time,ip,sym'], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (run.status !== 0) throw new Error(`perf script failed: ${run.stderr}`);
  const out = [];
  let cur = null;
  for (const line of run.stdout.split('\n')) {
    const head = /^\s*(\S+)\s+(\d+)\s+([\d.]+):\s*$/.exec(line);
    if (head) {
      cur = { comm: head[1], tid: Number(head[2]), t: Number(head[3]) * 1000, stack: '' };
      out.push(cur);
    } else if (cur && line.trim()) {
      cur.stack += `${line.trim()}\n`;
    }
  }
  return out;
}

const IN_GC = /Heap::CollectGarbage/;
const TRIGGER = /MinorGCJob|ScavengeJob|IncrementalMarkingJob|MemoryReducer|AllocateRaw|RetryCustomAllocate|StackGuard|HandleInterrupts/;
const DESTROYING = /api::Response::~Response|api::Request::~Request|api::Headers::~Headers/;

/**
 * The pauses in `dataFile` (sampled at `hz`) and how they meet `stalls` ({start, end} in ms):
 * counts over 5 and 10 ms, the longest, their total, what started the long ones, the share of
 * the long ones spent destroying API objects, and the stalls that held a pause over 5 ms.
 */
export function pauses(dataFile, stalls, hz = 1999) {
  const all = samples(dataFile).filter((s) => s.comm === 'workerd');
  const perThread = new Map();
  for (const s of all) perThread.set(s.tid, (perThread.get(s.tid) ?? 0) + 1);
  const main = [...perThread].sort((a, b) => b[1] - a[1])[0]?.[0];
  const mainSamples = all.filter((s) => s.tid === main);
  const gap = 2.5 * (1000 / hz);
  const found = [];
  let cur = null;
  for (const s of mainSamples) {
    if (!IN_GC.test(s.stack)) continue;
    if (cur && s.t - cur.last <= gap) {
      cur.last = s.t;
      cur.samples.push(s);
    } else {
      cur = { start: s.t, last: s.t, samples: [s] };
      found.push(cur);
    }
  }
  const ms = (p) => p.samples.length * (1000 / hz);
  const long = found.filter((p) => ms(p) > 10);
  const triggers = {};
  let destroying = 0;
  let longSamples = 0;
  for (const p of long) {
    const trigger = TRIGGER.exec(p.samples.map((s) => s.stack).join(''))?.[0] ?? 'other';
    triggers[trigger] = (triggers[trigger] ?? 0) + 1;
    for (const s of p.samples) {
      longSamples += 1;
      if (DESTROYING.test(s.stack)) destroying += 1;
    }
  }
  const over5 = found.filter((p) => ms(p) > 5);
  const held = stalls.filter((st) => over5.some((p) => p.start <= st.end && p.last >= st.start)).length;
  return {
    pauses: found.length,
    over5ms: over5.length,
    over10ms: long.length,
    longestMs: found.map(ms).sort((a, b) => b - a).slice(0, 5),
    totalMs: found.reduce((n, p) => n + ms(p), 0),
    longStartedBy: triggers,
    longDestroyingApiObjects: longSamples ? destroying / longSamples : 0,
    stallsHoldingAPause: `${held} of ${stalls.length}`,
  };
}
