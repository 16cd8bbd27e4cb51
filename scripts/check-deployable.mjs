// Deployability, offline (`make test`, phase "deployability"): `wrangler deploy --dry-run` of both
// Workers in every environment. A dry run bundles the Worker and checks its configuration as a
// deploy would, and looks nothing up in an account: it does not check that the bound script
// exists, and it skips migrations (wrangler 4.86: `--dry-run` makes no API call). So this
// proves that both Workers bundle and that their configurations are what we mean, no more:
//   - the gateway's RATE_LIMITER binding resolves to the counters Worker of the same
//     environment (`env.RATE_LIMITER (RateLimiter, defined in edge-gateway-counters-<env>)`);
//   - the gateway's bundle exports no Durable Object class (only `default`), so Cloudflare
//     generates preview URLs for it; the counters Worker's bundle exports `RateLimiter`.
// Exports are read from esbuild's metafile of the deploy bundle (`--metafile`).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { scriptName } from './deploy-config.mjs';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { parse } = createRequire(join(root, 'miniflare/node_modules/'))('smol-toml');
const wrangler = join(root, 'miniflare/node_modules/.bin/wrangler');
const scratch = mkdtempSync(join(tmpdir(), 'deployable-'));
const counters = parse(readFileSync(join(root, 'durable/wrangler.toml'), 'utf8'));
const failures = [];

/** A dry-run deploy: wrangler's output and the bundle's exports. */
function dryRun(config, env) {
  const tag = `${config.replace(/\W/g, '_')}-${env ?? 'top'}`;
  const meta = join(scratch, `${tag}.meta.json`);
  const args = ['deploy', '--dry-run', '-c', config, '--outdir', join(scratch, tag), '--metafile', meta];
  if (env) args.push('--env', env);
  const run = spawnSync(wrangler, args, {
    cwd: root, encoding: 'utf8',
    env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false', XDG_CONFIG_HOME: scratch, NO_COLOR: '1' },
  });
  const output = `${run.stdout}\n${run.stderr}`;
  if (run.status !== 0) {
    failures.push(`${config} --env ${env}: the dry run failed:\n${output}`);
    return { output, exports: [] };
  }
  const outputs = JSON.parse(readFileSync(meta, 'utf8')).outputs;
  const entry = Object.values(outputs).find((o) => o.entryPoint);
  return { output, exports: entry ? [...entry.exports].sort() : [] };
}

function expect(ok, message) {
  if (!ok) failures.push(message);
}

for (const env of [undefined, 'staging', 'production']) {
  const name = env ?? '(top level)';
  const countersName = env ? scriptName(counters, env) : counters.name;
  const gateway = dryRun('wrangler.toml', env);
  const binding = `env.RATE_LIMITER (RateLimiter, defined in ${countersName})`;
  expect(gateway.output.includes(binding), `${name}: the gateway's dry run does not show ${binding}:\n${gateway.output}`);
  expect(JSON.stringify(gateway.exports) === '["default"]', `${name}: the gateway bundle must export only default (no Durable Object class), it exports ${gateway.exports.join(', ')}`);
  const own = dryRun('durable/wrangler.toml', env);
  expect(own.exports.includes('RateLimiter') && own.exports.includes('default'), `${name}: the counters bundle must export RateLimiter and default, it exports ${own.exports.join(', ')}`);
  expect(/env\.RATE_LIMITER \(RateLimiter\)/.test(own.output), `${name}: the counters Worker's dry run does not show its own RateLimiter binding:\n${own.output}`);
  console.log(`${name}: gateway exports [${gateway.exports}] and binds ${countersName}; counters exports [${own.exports}]`);
}

rmSync(scratch, { recursive: true, force: true });
if (failures.length) {
  for (const f of failures) console.error(`deployability: ${f}`);
  process.exit(1);
}
console.log('deployability: both Workers bundle in every environment (dry run: no account was contacted, no migration applied)');
