// The comparison peer for `make bench`: the edge gateway as a good team would write it as a
// JavaScript Worker. jose's jwtVerify with a cached remote JWKS (pinned ES256, issuer, audience,
// typ, clock tolerance), per-route scopes, a Durable Object sliding-window limiter per
// organisation with the same tiers, costs and headers as bench/policy.toml, and the same signed
// forwarding to the origin (identity headers + HMAC-SHA256 over the gateway's canonical string).
// Idiomatic, not a straw man: module-scope caches for the JWKS and the HMAC key, one RPC call to
// the limiter object per request, nothing awaited that need not be.
import { DurableObject } from 'cloudflare:workers';
import { createRemoteJWKSet, errors, jwtVerify } from 'jose';

// Same as bench/policy.toml.
const TIERS = { free: { limit: 1_000_000_000, seconds: 60 }, sandbox: { limit: 5, seconds: 2 } };
const ROUTES = [
  { id: 'bench', method: 'GET', path: '/api/transactions', scopes: ['transactions:read'], cost: 1, limited: true },
  { id: 'bench.unlimited', method: 'GET', path: '/api/health', scopes: [], cost: 1, limited: false },
  { id: 'bench.reports', method: 'POST', path: '/api/reports/generate', scopes: ['reports:generate'], cost: 20, limited: true },
];
const MAX_BODY = 1024 * 1024;
const SECURITY_HEADERS = {
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
};
const STRIPPED = new Set(['authorization', 'connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'host', 'content-length', 'x-user-id', 'x-user-roles', 'x-org-id', 'x-request-id', 'forwarded', 'x-http-method-override']);
const IDENTITY = ['x-gateway-issuer', 'x-gateway-subject', 'x-gateway-org', 'x-gateway-tier', 'x-gateway-scopes', 'x-gateway-route'];

let jwks;
let jwksUrl;
let hmacKey;
let hmacKid;

function problemResponse(status, error, message, extra = {}, headers = {}) {
  return new Response(JSON.stringify({ type: `urn:edge-gateway:error:${error}`, status, error, message, detail: message, ...extra }), {
    status, headers: { 'content-type': 'application/problem+json', 'cache-control': 'no-store', ...SECURITY_HEADERS, ...headers },
  });
}

const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');
const b64urlDecode = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));

async function signingKey(env) {
  if (!hmacKey) {
    const keyset = JSON.parse(env.SIGNING_KEYS);
    const current = keyset.keys.find((k) => k.kid === keyset.current);
    hmacKid = current.kid;
    hmacKey = await crypto.subtle.importKey('raw', b64urlDecode(current.secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  }
  return hmacKey;
}

export default {
  // One structured log line per request with the same fields as the gateway's (docs/logging.md):
  // who (issuer, sub, org, tier), what (route, cost, remaining), the decision and the error code;
  // the audit needs the same facts from either.
  async fetch(request, env) {
    const started = Date.now();
    const trace = {};
    const response = await handle(request, env, trace);
    const failed = response.status >= 400;
    const remaining = response.headers.get('x-ratelimit-remaining');
    const cost = response.headers.get('x-ratelimit-cost');
    const c = trace.claims;
    console.log(JSON.stringify({
      event: 'request', ts: started, request_id: response.headers.get('x-request-id'), env: env.ENVIRONMENT ?? 'test', method: request.method,
      path: trace.path ?? null, route: trace.route ?? null, status: response.status,
      error: failed ? trace.error ?? null : undefined, detail: failed ? trace.detail ?? null : undefined,
      issuer: c ? 'bench-es256' : undefined, sub: c?.sub, org: trace.org, tier: trace.tier, client_id: c?.sub,
      cost: cost === null ? undefined : Number(cost), remaining: remaining === null ? undefined : Number(remaining),
      decision: failed ? trace.error ?? 'error' : trace.route ? 'forwarded' : 'answered',
      security_event: [401, 403, 429].includes(response.status),
      client_ip: request.headers.get('cf-connecting-ip'), user_agent: request.headers.get('user-agent')?.slice(0, 200) ?? undefined,
      duration_ms: Date.now() - started,
    }));
    return response;
  },
};

async function handle(request, env, trace) {
  // Every refusal notes its code for the log line.
  const problem = (status, error, message, extra, headers) => {
    trace.error = error;
    trace.detail = `${error}: ${message}`;
    return problemResponse(status, error, message, extra, headers);
  };
  {
    const url = new URL(request.url);
    trace.path = url.pathname;
    const candidates = ROUTES.filter((r) => r.path === url.pathname);
    if (candidates.length === 0) return problem(404, 'route_not_found', 'No route matches this path.');
    const route = candidates.find((r) => r.method === request.method);
    if (!route) {
      const allow = candidates.map((r) => r.method).join(', ');
      return problem(405, 'method_not_allowed', `This path accepts only: ${allow}.`, {}, { allow });
    }
    trace.route = route.id;

    const auth = request.headers.get('authorization') ?? '';
    const [scheme, token] = auth.split(' ');
    if (scheme?.toLowerCase() !== 'bearer' || !token) {
      return problem(401, 'missing_token', "This route requires an access token in the 'Authorization: Bearer' header.", {},
        { 'www-authenticate': 'Bearer realm="api"' });
    }
    if (jwksUrl !== env.JWKS_URL) {
      jwks = createRemoteJWKSet(new URL(env.JWKS_URL), { cacheMaxAge: 300_000, cooldownDuration: 10_000 });
      jwksUrl = env.JWKS_URL;
    }
    let claims;
    try {
      ({ payload: claims } = await jwtVerify(token, jwks, {
        issuer: env.ISSUER, audience: env.AUDIENCE, algorithms: ['ES256'], typ: 'at+jwt', clockTolerance: 5,
        requiredClaims: ['exp', 'sub'], maxTokenAge: '1h',
      }));
    } catch (e) {
      const expired = e instanceof errors.JWTExpired;
      return problem(401, expired ? 'token_expired' : 'invalid_token', expired ? 'Access token has expired.' : 'The access token was rejected.',
        {}, { 'www-authenticate': `Bearer realm="api", error="invalid_token"` });
    }
    const granted = typeof claims.scope === 'string' ? claims.scope.split(' ').filter(Boolean) : [];
    const missing = route.scopes.filter((s) => !granted.includes(s));
    if (missing.length > 0) {
      return problem(403, 'insufficient_scope', `This route requires the scopes: ${route.scopes.join(' ')}.`,
        { required: route.scopes, granted }, { 'www-authenticate': `Bearer realm="api", error="insufficient_scope", scope="${route.scopes.join(' ')}"` });
    }
    const org = typeof claims.org_id === 'string' ? claims.org_id : claims.sub;
    const tierName = Object.hasOwn(TIERS, claims.tier) ? claims.tier : 'free';
    Object.assign(trace, { claims, org, tier: tierName });
    const tier = TIERS[tierName];

    const limitHeaders = {};
    if (route.limited) {
      const stub = env.LIMITER.get(env.LIMITER.idFromName(`es256:${org}`));
      const d = await stub.consume(route.cost, tier.limit, tier.seconds);
      limitHeaders['x-ratelimit-limit'] = String(tier.limit);
      limitHeaders['x-ratelimit-remaining'] = String(d.remaining);
      limitHeaders['x-ratelimit-reset'] = String(d.reset);
      limitHeaders['x-ratelimit-cost'] = String(route.cost);
      if (!d.allowed) {
        return problem(429, 'rate_limit_exceeded', `Rate limit exceeded: your organisation's ${tierName} tier allows ${tier.limit} cost units per window.`,
          { retryAfter: d.retryAfter, limit: tier.limit, remaining: 0, tier: tierName }, { ...limitHeaders, 'retry-after': String(d.retryAfter) });
      }
    }

    // Forward, signed.
    const body = ['GET', 'HEAD'].includes(request.method) ? new Uint8Array() : new Uint8Array(await request.arrayBuffer());
    if (body.byteLength > MAX_BODY) return problem(413, 'payload_too_large', 'The request body exceeds this route\'s limit.');
    const requestId = crypto.randomUUID();
    const headers = new Headers();
    for (const [name, value] of request.headers) {
      const n = name.toLowerCase().replace(/_/g, '-');
      if (!STRIPPED.has(n) && !n.startsWith('x-gateway-') && !n.startsWith('x-forwarded-') && !n.startsWith('cf-')) headers.set(name, value);
    }
    const identity = {
      'x-gateway-issuer': 'bench-es256', 'x-gateway-subject': claims.sub, 'x-gateway-org': org, 'x-gateway-tier': tierName,
      'x-gateway-scopes': granted.join(' '), 'x-gateway-route': route.id,
    };
    for (const [n, v] of Object.entries(identity)) headers.set(n, v);
    headers.set('x-request-id', requestId);
    headers.set('x-forwarded-proto', url.protocol.replace(':', ''));
    const target = `${url.pathname}${url.search}`;
    const t = Math.floor(Date.now() / 1000);
    const canonical = [`v1`, request.method, target, String(t), requestId, ...IDENTITY.map((n) => `${n}:${identity[n]}`),
      hex(await crypto.subtle.digest('SHA-256', body))].join('\n');
    const sig = hex(await crypto.subtle.sign('HMAC', await signingKey(env), new TextEncoder().encode(canonical)));
    headers.set('x-gateway-signature', `t=${t},kid=${hmacKid},v1=${sig}`);
    let upstream;
    try {
      upstream = await fetch(`${env.ORIGIN_URL}${target}`, { method: request.method, headers, body: body.byteLength ? body : undefined, redirect: 'manual' });
    } catch {
      return problem(502, 'origin_unreachable', 'The upstream service could not be reached.');
    }
    const out = new Response(upstream.body, upstream);
    out.headers.delete('server');
    out.headers.delete('x-powered-by');
    for (const [n, v] of Object.entries({ ...SECURITY_HEADERS, ...limitHeaders })) out.headers.set(n, v);
    out.headers.set('x-request-id', requestId);
    if (!out.headers.has('cache-control')) out.headers.set('cache-control', 'no-store');
    return out;
  }
}

// Sliding window counter (the weighted two-window approximation Cloudflare's own rate-limiting
// examples use): the previous fixed window's count, weighted by how much of it still overlaps
// the sliding window, plus the current one. One object per organisation; state kept in memory
// and persisted on every admitted request.
export class PeerLimiter extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.state = null;
    ctx.blockConcurrencyWhile(async () => { this.state = (await ctx.storage.get('w')) ?? null; });
  }

  consume(cost, limit, seconds) {
    const now = Date.now();
    const size = seconds * 1000;
    const index = Math.floor(now / size);
    let s = this.state;
    if (!s || s.size !== size) s = { size, index, current: 0, previous: 0 };
    if (index !== s.index) {
      s = { size, index, current: 0, previous: index === s.index + 1 ? s.current : 0 };
    }
    const overlap = 1 - (now - index * size) / size;
    const used = s.previous * overlap + s.current;
    const reset = Math.ceil(((index + 1) * size) / 1000);
    if (used + cost > limit) {
      const retryAfter = Math.max(1, Math.ceil(((index + 1) * size - now) / 1000));
      this.state = s;
      return { allowed: false, remaining: 0, reset, retryAfter };
    }
    s.current += cost;
    this.state = s;
    this.ctx.storage.put('w', s);
    return { allowed: true, remaining: Math.max(0, Math.floor(limit - used - cost)), reset, retryAfter: 0 };
  }
}
