// Tests of scripts/deploy-config.mjs (run by `make test`, phase "deploy scripts": `node --test`):
// the preview URL the security workflow scans, the URL `make deploy` smoke-checks, the transfer
// configuration and the placeholder check, on wrangler output files written in the documented
// format (tests/fixtures/wrangler-output/).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { countersChanged, deployedUrl, placeholders, previewUrl, scriptName, transferConfig } from './deploy-config.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { parse } = createRequire(join(root, 'miniflare/node_modules/'))('smol-toml');
const fixture = (name) => readFileSync(join(root, 'tests/fixtures/wrangler-output', name), 'utf8');

test('the preview alias URL comes from the version-upload entry', () => {
  assert.equal(previewUrl(fixture('version-upload-preview.ndjson')), 'https://scan-1234567890-edge-gateway-staging.example.workers.dev');
});

test('a version without previews fails and says why', () => {
  assert.throws(() => previewUrl(fixture('version-upload-no-preview.ndjson')), /no preview alias URL: .*Durable Object/);
  assert.throws(() => previewUrl(fixture('deploy.ndjson')), /no version-upload entry/);
  assert.throws(() => previewUrl('{"type":"version-upload"\n'), /line 1 is not JSON/);
  // Only a workers.dev https URL is scanned, whatever else the field might hold.
  const odd = JSON.stringify({ type: 'version-upload', version: 1, preview_alias_url: 'http://evil.example/x' });
  assert.throws(() => previewUrl(odd), /no preview alias URL/);
});

test('the deployed URL is the https target of the deploy entry', () => {
  assert.equal(deployedUrl(fixture('deploy.ndjson')), 'https://edge-gateway-staging.example.workers.dev');
  const routesOnly = JSON.stringify({ type: 'deploy', version: 1, targets: ['api.example.com/*'] });
  assert.equal(deployedUrl(routesOnly), '');
  assert.equal(deployedUrl(fixture('version-upload-preview.ndjson')), '');
});

test('the transfer configuration moves the class from the gateway script of the environment', () => {
  const committed = readFileSync(join(root, 'durable/wrangler.toml'), 'utf8');
  for (const env of ['staging', 'production']) {
    const text = transferConfig(env);
    const config = parse(text);
    assert.deepEqual(JSON.parse(JSON.stringify(config.migrations)), [
      { tag: 'v1', transferred_classes: [{ from: 'RateLimiter', from_script: `edge-gateway-${env}`, to: 'RateLimiter' }] },
    ]);
    // Everything else is the committed configuration.
    const { migrations: _a, ...rest } = config;
    const { migrations: _b, ...committedRest } = parse(committed);
    assert.deepEqual(rest, committedRest);
  }
  assert.throws(() => transferConfig('dev'), /unknown environment/);
  assert.throws(() => transferConfig('staging', committed.replace('# BEGIN migrations', '')), /one marked migrations block/);
});

test('script names follow wrangler environments, and the gateway binds the counters script', () => {
  const gateway = parse(readFileSync(join(root, 'wrangler.toml'), 'utf8'));
  const counters = parse(readFileSync(join(root, 'durable/wrangler.toml'), 'utf8'));
  for (const env of ['staging', 'production']) {
    assert.equal(scriptName(gateway, env), `edge-gateway-${env}`);
    const binding = gateway.env[env].durable_objects.bindings.find((b) => b.name === 'RATE_LIMITER');
    assert.equal(binding.script_name, scriptName(counters, env));
  }
  assert.equal(scriptName({ name: 'x', env: { staging: { name: 'own' } } }, 'staging'), 'own');
});

test('placeholders are found in the environment being deployed, and only there', () => {
  const found = placeholders('production');
  assert.ok(found.some((p) => p.startsWith('wrangler.toml env.production.routes[0].pattern = api.example.com/*')), found.join('\n'));
  assert.ok(found.some((p) => p.startsWith('secrets-sync.toml environments.production.cloudflare.account_id')), found.join('\n'));
  const gateway = { env: { production: { vars: { ORIGIN_URL: 'https://origin.acme.io' }, routes: [{ pattern: 'api.acme.io/*' }] }, staging: { vars: { ORIGIN_URL: 'https://origin.example.com' } } } };
  const sync = { environments: { production: { cloudflare: { account_id: '0123456789abcdef0123456789abcdef' } } } };
  assert.deepEqual(placeholders('production', gateway, sync), []);
  assert.deepEqual(placeholders('staging', gateway, sync), ['wrangler.toml env.staging.vars.ORIGIN_URL = https://origin.example.com']);
});

test('the counters Worker is redeployed by the scan job only when its sources changed', () => {
  assert.equal(countersChanged('HEAD', 'HEAD'), true, 'a ref name is not a commit id: unknown base');
  const head = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).stdout.trim();
  assert.equal(countersChanged(head, head), false);
  // The commit before the counters Worker existed.
  assert.equal(countersChanged(readFileSync(join(root, 'tests/previous-gateway.rev'), 'utf8').trim(), head), true);
  assert.equal(countersChanged('0000000000000000000000000000000000000000', head), true, 'a new branch');
  assert.equal(countersChanged('', head), true);
  assert.equal(countersChanged('1234567890abcdef1234567890abcdef12345678', head), true, 'not in this clone');
});
