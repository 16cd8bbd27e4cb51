// Runs one bundled Worker (`wrangler deploy --dry-run --outdir`) in workerd through Miniflare,
// with no inspector: `node bench/serve-workerd.mjs <bundle dir> <entry> <port> <bindings json>
// <durable object binding> <class> [inspector port] [<counters bundle dir> <entry> <script name>]`.
// With a counters bundle, the Durable Object class is that Worker's (the gateway's counters
// Worker), run beside it in the same workerd, as deployed. Started by `startWorkerd`
// (bench/lib.mjs).
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { root } from './lib.mjs';

const { Miniflare } = createRequire(join(root, 'miniflare/node_modules/'))('miniflare');
const [dir, entry, port, bindings, binding, className, inspector, countersDir, countersEntry, countersName] = process.argv.slice(2);
const modulesRules = [{ type: 'CompiledWasm', include: ['**/*.wasm'] }];
const main = {
  modules: true,
  modulesRoot: dir,
  scriptPath: join(dir, entry),
  modulesRules,
  compatibilityDate: '2026-04-01',
  bindings: JSON.parse(bindings),
  durableObjects: { [binding]: countersDir ? { className, scriptName: countersName } : { className, useSQLite: true } },
};
const counters = countersDir
  ? [{
      name: countersName,
      modules: true,
      modulesRoot: countersDir,
      scriptPath: join(countersDir, countersEntry),
      modulesRules,
      compatibilityDate: '2026-04-01',
      durableObjects: { [binding]: { className, useSQLite: true } },
    }]
  : [];
const mf = new Miniflare({
  workers: [main, ...counters],
  host: '127.0.0.1',
  port: Number(port),
  // workerd's own output: every request's log line is still written (the Worker's cost, the
  // same for both Workers) and drained here, but not parsed, formatted and passed up a pipe to
  // the driver, whose process also runs the load generator: at 1,300 log lines a second that
  // relay put the driver's own delays into the latencies it measures. Errors still show.
  handleRuntimeStdio(stdout, stderr) {
    stdout.resume();
    stderr.pipe(process.stderr);
  },
  // For BENCH_PROFILE=1: the V8 inspector, nothing attached until the profiler connects.
  ...(inspector ? { inspectorPort: Number(inspector) } : {}),
});
await mf.ready;
process.on('SIGTERM', () => mf.dispose().finally(() => process.exit(0)));
