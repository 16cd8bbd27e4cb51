// What scripts/deploy.sh and the security workflow read from the two Workers' configurations
// and from wrangler's structured output, in one place (tested by scripts/deploy-config.test.mjs):
//
//   node scripts/deploy-config.mjs placeholders <env>      placeholders still in <env>'s config
//   node scripts/deploy-config.mjs gateway-script <env>    the gateway's script name in <env>
//   node scripts/deploy-config.mjs counters-script <env>   the counters Worker's script name
//   node scripts/deploy-config.mjs transfer <env>          durable/wrangler.toml with its
//                                                          migration replaced by a transfer from
//                                                          the gateway script (stdout)
//   node scripts/deploy-config.mjs deployed-url <file>     the https URL a `wrangler deploy`
//                                                          reported (WRANGLER_OUTPUT_FILE_PATH)
//   node scripts/deploy-config.mjs preview-url <file>      the preview alias URL a `wrangler
//                                                          versions upload --preview-alias`
//                                                          reported (WRANGLER_OUTPUT_FILE_PATH)
//   node scripts/deploy-config.mjs counters-changed <base> <head>
//                                                          `true` when what the counters Worker
//                                                          is built from differs between the two
//                                                          commits, or <base> is unknown
//
// wrangler's output file is ND-JSON, one entry per line; a `version-upload` entry carries
// `preview_alias_url` (and `preview_url`) only when Cloudflare generated previews for the
// version, and a `deploy` entry its `targets` (wrangler 4.86, src/output.ts; documented at
// https://developers.cloudflare.com/workers/wrangler/system-environment-variables/).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { parse } = createRequire(join(root, 'miniflare/node_modules/'))('smol-toml');

const GATEWAY = join(root, 'wrangler.toml');
const COUNTERS = join(root, 'durable/wrangler.toml');
const SYNC = join(root, 'secrets-sync.toml');
const ENVIRONMENTS = ['staging', 'production'];
/** Values in the committed configuration that stand for the adopter's own. */
const PLACEHOLDER = /example\.(com|workers\.dev)|\b0{32}\b/;

export function fail(message) {
  const error = new Error(message);
  error.userFacing = true;
  throw error;
}

function load(path) {
  return parse(readFileSync(path, 'utf8'));
}

function checkEnv(env) {
  if (!ENVIRONMENTS.includes(env)) fail(`unknown environment '${env}' (${ENVIRONMENTS.join(' or ')})`);
}

/** The name wrangler deploys `config` as in `env` (`<name>-<env>` unless the env names itself). */
export function scriptName(config, env) {
  return config.env?.[env]?.name ?? `${config.name}-${env}`;
}

/** Every string value under `value` whose text matches the placeholder pattern, as `path = value`. */
function findPlaceholders(value, path, out) {
  if (typeof value === 'string') {
    if (PLACEHOLDER.test(value)) out.push(`${path} = ${value.length > 80 ? `${value.slice(0, 77)}...` : value}`);
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => findPlaceholders(v, `${path}[${i}]`, out));
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) findPlaceholders(v, path ? `${path}.${k}` : k, out);
  }
}

/** The placeholders a deploy of `env` would ship: its gateway env section and its sync mapping. */
export function placeholders(env, gateway = load(GATEWAY), sync = load(SYNC)) {
  checkEnv(env);
  const out = [];
  findPlaceholders(gateway.env?.[env] ?? {}, `wrangler.toml env.${env}`, out);
  findPlaceholders(sync.environments?.[env]?.cloudflare ?? {}, `secrets-sync.toml environments.${env}.cloudflare`, out);
  return out;
}

const BEGIN = '# BEGIN migrations';
const END = '# END migrations';

/**
 * durable/wrangler.toml with the marked migration block replaced by a transfer of the class
 * from the gateway script of `env` (Durable Objects migrations: `transferred_classes`,
 * https://developers.cloudflare.com/durable-objects/reference/durable-object-class-migrations-legacy/).
 * The tag stays `v1`: the counters script records it as applied, so later deploys of the
 * committed configuration (whose v1 creates the class) send no migration.
 */
export function transferConfig(env, text = readFileSync(COUNTERS, 'utf8'), gateway = load(GATEWAY)) {
  checkEnv(env);
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (start < 0 || end < start || text.indexOf(BEGIN, start + 1) >= 0) fail('durable/wrangler.toml must hold one marked migrations block');
  const counters = parse(text);
  const tags = (counters.migrations ?? []).map((m) => m.tag);
  if (tags.length !== 1) fail(`durable/wrangler.toml must hold exactly one migration to replace (found ${tags.length})`);
  const binding = (gateway.env?.[env]?.durable_objects?.bindings ?? []).find((b) => b.name === 'RATE_LIMITER');
  if (!binding) fail(`wrangler.toml env.${env} has no RATE_LIMITER binding`);
  const className = binding.class_name;
  const block = [
    BEGIN,
    `# A one-time transfer: the ${className} objects of the gateway script move here with their storage.`,
    '[[migrations]]',
    `tag = "${tags[0]}"`,
    `transferred_classes = [{ from = "${className}", from_script = "${scriptName(gateway, env)}", to = "${className}" }]`,
  ].join('\n');
  const out = text.slice(0, start) + block + '\n' + text.slice(end);
  // Parse the result: the deploy must never upload a configuration wrangler would misread.
  const migrations = parse(out).migrations;
  if (migrations.length !== 1 || !migrations[0].transferred_classes) fail('the transfer configuration did not come out as one transfer migration');
  return out;
}

/** The ND-JSON entries of a wrangler output file. */
export function outputEntries(text) {
  return text.split('\n').filter((l) => l.trim()).map((line, i) => {
    try {
      return JSON.parse(line);
    } catch {
      return fail(`wrangler output line ${i + 1} is not JSON`);
    }
  });
}

/** The preview alias URL of the last `version-upload` entry, or a precise failure. */
export function previewUrl(text) {
  const uploads = outputEntries(text).filter((e) => e.type === 'version-upload');
  if (uploads.length === 0) fail('wrangler wrote no version-upload entry: did `wrangler versions upload` run?');
  const upload = uploads[uploads.length - 1];
  const url = upload.preview_alias_url;
  if (typeof url !== 'string' || !/^https:\/\/[a-z0-9-]+\.[a-z0-9.-]+\.workers\.dev$/.test(url)) {
    fail(`the version upload (${upload.version_id ?? 'no version id'}) has no preview alias URL: Cloudflare generates none for a Worker that implements a Durable Object, or with preview_urls off`);
  }
  return url;
}

/** The first https URL among the targets of the last `deploy` entry ('' when there is none). */
export function deployedUrl(text) {
  const deploys = outputEntries(text).filter((e) => e.type === 'deploy');
  const targets = deploys.length ? deploys[deploys.length - 1].targets ?? [] : [];
  return targets.find((t) => typeof t === 'string' && t.startsWith('https://')) ?? '';
}

/** What the counters Worker is built from (its crate, the core it links, the workspace's lock). */
export const COUNTERS_SOURCES = ['durable', 'core/src', 'core/Cargo.toml', 'Cargo.toml', 'Cargo.lock'];

/** Whether the counters Worker's sources differ between `base` and `head` (true when `base` is unknown). */
export function countersChanged(base, head) {
  const git = (...args) => spawnSync('git', args, { cwd: root, encoding: 'utf8' });
  if (!/^[0-9a-f]{7,40}$/.test(base ?? '') || /^0+$/.test(base) || git('cat-file', '-e', `${base}^{commit}`).status !== 0) return true;
  const diff = git('diff', '--quiet', base, head, '--', ...COUNTERS_SOURCES);
  if (diff.status === 0) return false;
  if (diff.status === 1) return true;
  return fail(`git diff ${base} ${head} failed: ${diff.stderr}`);
}

function main([command, arg, arg2]) {
  switch (command) {
    case 'placeholders':
      return placeholders(arg).join('\n');
    case 'gateway-script':
      checkEnv(arg);
      return scriptName(load(GATEWAY), arg);
    case 'counters-script':
      checkEnv(arg);
      return scriptName(load(COUNTERS), arg);
    case 'transfer':
      return transferConfig(arg);
    case 'deployed-url':
      return deployedUrl(readFileSync(arg, 'utf8'));
    case 'preview-url':
      return previewUrl(readFileSync(arg, 'utf8'));
    case 'counters-changed':
      return String(countersChanged(arg, arg2 ?? 'HEAD'));
    default:
      return fail(`unknown command '${command ?? ''}'`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    const out = main(process.argv.slice(2));
    if (out) process.stdout.write(`${out}\n`);
  } catch (error) {
    if (!error.userFacing) throw error;
    process.stderr.write(`deploy-config: ${error.message}\n`);
    process.exit(1);
  }
}
