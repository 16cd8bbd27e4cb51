// The check that ends `make deploy`: the deployed gateway serves. Usage:
//   SMOKE_TOKEN=<access token> node scripts/smoke.mjs <base URL> <limited GET path> [<commit>]
// Passes when, within SMOKE_TIMEOUT_SECONDS (default 90; a new version reaches every data
// centre within seconds, https://developers.cloudflare.com/workers/configuration/versions-and-deployments/):
//   1. GET /_gateway/health answers 200 and names <commit> as its build (when given): the
//      version just deployed answers, with a valid configuration and its secrets;
//   2. GET <path> with the token answers 200 with the RateLimit headers (`ratelimit`,
//      `ratelimit-policy`), the answer of the counters Worker through the gateway's binding
//      (without it the gateway answers 503; gateways before that release marked an answer
//      admitted without it `x-ratelimit-status`, refused here too).
// The token is never printed. Exit status 0 (serves), 1 (does not serve: the last reason is
// printed), 2 (usage).
const [base, path, commit] = process.argv.slice(2);
const token = process.env.SMOKE_TOKEN ?? '';
if (!base || !path || !path.startsWith('/') || !token) {
  console.error('usage: SMOKE_TOKEN=<token> node scripts/smoke.mjs <base URL> </limited/path> [<commit>]');
  process.exit(2);
}
const timeoutMs = Number(process.env.SMOKE_TIMEOUT_SECONDS ?? 90) * 1000;
const url = (p) => new URL(p, base).toString();

/** One attempt: the reason it does not serve yet, or null. */
async function attempt() {
  const health = await fetch(url('/_gateway/health'), { signal: AbortSignal.timeout(10000) });
  const body = await health.text();
  if (health.status !== 200) return `health answered ${health.status}: ${body.slice(0, 300)}`;
  let report;
  try {
    report = JSON.parse(body);
  } catch {
    return `health answered 200 but not JSON: ${body.slice(0, 200)}`;
  }
  if (commit && report.build?.commit !== commit) return `health names build ${report.build?.commit}, not ${commit} (the new version is not live yet)`;
  const limited = await fetch(url(path), { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10000) });
  await limited.arrayBuffer();
  const requestId = limited.headers.get('x-request-id') ?? 'none';
  if (limited.status !== 200) return `GET ${path} answered ${limited.status} (request id ${requestId}; ${limited.headers.get('www-authenticate') ?? 'no www-authenticate'})`;
  if (limited.headers.get('x-ratelimit-status')) return `GET ${path} was admitted without the counters Worker (x-ratelimit-status: ${limited.headers.get('x-ratelimit-status')}, request id ${requestId})`;
  for (const name of ['ratelimit', 'ratelimit-policy']) {
    if (!limited.headers.get(name)) return `GET ${path} answered 200 without ${name}: is it a limited route? (request id ${requestId})`;
  }
  console.log(`smoke: ${base} serves: environment ${report.environment}, build ${report.build?.commit}, policy ${report.build?.policy}, secrets ${report.secrets_version ?? 'not from the Vault sync'}`);
  console.log(`smoke: GET ${path} -> 200, ratelimit-policy: ${limited.headers.get('ratelimit-policy')}, ratelimit: ${limited.headers.get('ratelimit')}`);
  return null;
}

const deadline = Date.now() + timeoutMs;
let reason = 'no attempt made';
for (;;) {
  try {
    reason = await attempt();
  } catch (error) {
    reason = `${error.name}: ${error.message}`;
  }
  if (reason === null) process.exit(0);
  if (Date.now() > deadline) break;
  console.error(`smoke: not yet: ${reason}`);
  await new Promise((r) => setTimeout(r, 2000));
}
console.error(`smoke: ${base} does not serve: ${reason}`);
process.exit(1);
