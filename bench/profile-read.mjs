// Reads a profile kept by `BENCH_PROFILE=1 BENCH_PROFILE_OUT=<prefix> make bench`: self time per
// function per request, with wrangler-bundle frames named by the wasm-bindgen import they are
// (`__wbg_consume`, `__wbg_log`...) rather than by line number.
//   node bench/profile-read.mjs <prefix>-<port>.cpuprofile <prefix>-<port>-script-<id>.js <requests> [rows]
import { readFileSync } from 'node:fs';

const [file, script, requests, rows = 40] = process.argv.slice(2);
if (!file || !script || !requests) {
  console.error('usage: node bench/profile-read.mjs <profile.cpuprofile> <bundle-script.js> <requests> [rows]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8'));
const lines = readFileSync(script, 'utf8').split('\n');
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const label = (node) => {
  const f = node.callFrame;
  let name = f.functionName || '(anonymous)';
  if (f.url.endsWith('.js')) {
    const glue = /(__wbg_[A-Za-z0-9_]+|__wbindgen_[A-Za-z0-9_]+):\s*\/\*.*$/.exec((lines[f.lineNumber] ?? '').slice(0, f.columnNumber));
    name = glue ? glue[1].replace(/_[0-9a-f]{16}$/, '') : `${name}@${f.lineNumber}`;
  }
  return name.replace(/::h[0-9a-f]{16}/, '');
};
const self = new Map();
let busy = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  const name = label(byId.get(id));
  if (name === '(idle)' || name === '(program)') return;
  busy += dt;
  self.set(name, (self.get(name) ?? 0) + dt);
});
console.log(`busy: ${(busy / requests).toFixed(0)} µs per request`);
for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(rows))) {
  console.log(`${(us / requests).toFixed(0).padStart(6)} µs  ${name}`);
}
