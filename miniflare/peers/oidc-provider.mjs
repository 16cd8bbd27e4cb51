// A real OpenID provider (npm `oidc-provider`) for the gateway's `machines` issuer: it issues
// RFC 9068 JWT access tokens (RS256, typ at+jwt) by the client-credentials grant for the resource
// https://api.example.com, with the client's org_id and tier as claims. Used by `make dev` and the
// end-to-end suite, on loopback only.
//
//   node oidc-provider.mjs serve  --port P --keys FILE [--jwks-max-age S]
//       prints "listening on http://127.0.0.1:P" once ready; serves until killed.
//   node oidc-provider.mjs rotate --keys FILE [--keep-previous true|false]
//       creates FILE with one RSA key if missing; otherwise puts a new key first (it signs from
//       then on) and keeps or drops the previous ones. Prints the new kid. A running provider
//       picks the file up only when restarted (the suite restarts it on the same port).
import { generateKeyPairSync, createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import Provider from 'oidc-provider';

export const AUDIENCE = 'https://api.example.com';
export const SCOPES = 'transactions:read transactions:write transactions:export reports:generate';
// The gateway's admin API scope ([admin] in gateway.toml), registered for 'ops-admin' only.
export const ADMIN_SCOPE = 'gateway:admin';
// Registered machine clients: each is one organisation's automation.
export const CLIENTS = {
  'acme-batch': { secret: 'acme-batch-secret', org_id: 'acme', tier: 'pro' },
  'globex-etl': { secret: 'globex-etl-secret', org_id: 'globex', tier: 'enterprise' },
  'initech-script': { secret: 'initech-script-secret', org_id: 'initech', tier: 'free' },
  // Tokens that live one second, for expiry tests.
  'short-lived': { secret: 'short-lived-secret', org_id: 'umbrella', tier: 'free', ttl: 1 },
  // Clients whose tokens are signed with the other algorithms the machines issuer accepts.
  'pss-client': { secret: 'pss-client-secret', org_id: 'hooli', tier: 'pro', alg: 'PS256' },
  'ed-client': { secret: 'ed-client-secret', org_id: 'piedpiper', tier: 'pro', alg: 'EdDSA' },
  // The operators' automation: the only client allowed the gateway's admin scope.
  'ops-admin': { secret: 'ops-admin-secret', org_id: 'operator', tier: 'enterprise', scope: ADMIN_SCOPE },
};

function flags(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) {
      throw new Error(`expected --flag value pairs, got ${argv.slice(i).join(' ')}`);
    }
    out[argv[i].slice(2)] = argv[i + 1];
  }
  return out;
}

// An RSA key (no `alg`: it signs RS256 and PS256) and an Ed25519 key, kids by RFC 7638.
function newKeys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ed = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
  const kid = (members) => createHash('sha256').update(JSON.stringify(members)).digest('base64url');
  return [
    { ...rsa, kid: kid({ e: rsa.e, kty: 'RSA', n: rsa.n }), use: 'sig' },
    { ...ed, kid: kid({ crv: ed.crv, kty: 'OKP', x: ed.x }), use: 'sig' },
  ];
}

function rotate(file, keepPrevious) {
  const existing = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')).keys : [];
  const fresh = newKeys();
  const [key] = fresh;
  const keys = [...fresh, ...(keepPrevious ? existing : [])];
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ keys }, null, 2), { mode: 0o600 });
  renameSync(tmp, file);
  return key.kid;
}

async function serve({ port, keys, 'jwks-max-age': maxAge = '300' }) {
  if (!port || !keys) throw new Error('serve needs --port and --keys');
  if (!existsSync(keys)) rotate(keys, false);
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: Object.entries(CLIENTS).map(([id, c]) => ({
      client_id: id,
      client_secret: c.secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: c.scope ?? SCOPES,
    })),
    scopes: ['openid', ...SCOPES.split(' '), ADMIN_SCOPE],
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256', 'PS256', 'EdDSA'],
    },
    jwks: JSON.parse(readFileSync(keys, 'utf8')),
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => AUDIENCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, _resource, client) => ({
          scope: CLIENTS[client.clientId]?.scope ?? SCOPES,
          audience: AUDIENCE,
          accessTokenTTL: CLIENTS[client.clientId]?.ttl ?? 900,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: CLIENTS[client.clientId]?.alg ?? 'RS256' } },
        }),
      },
    },
    extraTokenClaims: (_ctx, token) => {
      const client = CLIENTS[token.clientId];
      return client ? { org_id: client.org_id, tier: client.tier } : undefined;
    },
  });
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/jwks') ctx.set('cache-control', `public, max-age=${Number(maxAge)}`);
  });
  const server = provider.listen(Number(port), '127.0.0.1', () => {
    process.stdout.write(`listening on ${issuer}\n`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

const [command, ...rest] = process.argv.slice(2);
try {
  const args = flags(rest);
  if (command === 'serve') {
    await serve(args);
  } else if (command === 'rotate') {
    if (!args.keys) throw new Error('rotate needs --keys');
    process.stdout.write(`${rotate(args.keys, (args['keep-previous'] ?? 'true') === 'true')}\n`);
  } else {
    throw new Error('usage: oidc-provider.mjs serve --port P --keys FILE [--jwks-max-age S] | rotate --keys FILE [--keep-previous true|false]');
  }
} catch (e) {
  process.stderr.write(`oidc-provider: ${e.message}\n`);
  process.exit(2);
}
