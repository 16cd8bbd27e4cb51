//! The authentication micro-benchmark, compiled only with `--features bench` (`make bench-auth`
//! builds it into `build-bench/`; a deployed build has no such endpoint).
//!
//! `POST /_gateway/bench/auth` with `{"tokens": [...], "passes": N}` (tokens of one algorithm,
//! from one issuer of the bench policy, keys in the static JWKS secret) times, over the same
//! tokens, in this isolate:
//! - `cache_off`: the gateway's whole verification (parse, issuer, header, key, WebCrypto
//!   signature, claims) with the verified-token cache bypassed;
//! - `cache_on`: the same with the cache warm (every token seen once before timing);
//! - `subtle_raw`: `crypto.subtle.verify` alone on the same signatures, key imported once;
//! - `rust_side_only`: the cache-off path minus the signature check (parse, rules, key lookup);
//! - `pure_rules_only`: of which the pure rules alone (parse, header and claim rules);
//!   in these two modes the claims are validated on the same tokens, each checked once
//!   beforehand (untimed) through the real path, WebCrypto included: claims are never read
//!   from a token whose signature was not checked;
//! - `pure_rust`: jwt-compact's signature check in wasm (RSA, P-256, Ed25519 or HMAC in Rust).
//!
//! Local workerd advances `Date.now()` during execution (production does not), so loop times are
//! real; each mode runs `passes` times over all tokens to get well above the 1 ms resolution.

use gateway_core::auth::{check_header, parse, validate_claims};
use gateway_core::error::GatewayError;
use gateway_core::issuer::Algorithm;
use gateway_core::jwk::{JwkSet, select_key};
use jwt_compact::alg::{Ed25519, Es256, Hs256, Hs256Key, Rsa, RsaPublicKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt, UntrustedToken};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use worker::Env;

use crate::http::Incoming;

use crate::auth::{authenticate_token, check_signature, static_key_set, verification_key, verify};
use crate::{respond, runtime, settings};

#[derive(Deserialize)]
struct BenchRequest {
    tokens: Vec<String>,
    passes: u32,
}

#[derive(Serialize)]
struct ModeResult {
    mode: &'static str,
    ops: u64,
    total_ms: u64,
    per_op_us: f64,
}

fn result(mode: &'static str, ops: u64, started: u64) -> ModeResult {
    let total_ms = runtime::now().0.saturating_sub(started);
    #[allow(clippy::cast_precision_loss)]
    let per_op_us = total_ms as f64 * 1000.0 / ops.max(1) as f64;
    ModeResult {
        mode,
        ops,
        total_ms,
        per_op_us,
    }
}

fn bad(why: &'static str) -> GatewayError {
    GatewayError::InvalidRequest(why)
}

/// Pure-Rust signature check with jwt-compact (the comparison column).
fn pure_rust_verify(alg: Algorithm, jwk: &Value, token: &str) -> Result<bool, String> {
    let jwk: JsonWebKey<'_> = serde_json::from_value(jwk.clone()).map_err(|e| e.to_string())?;
    let untrusted = UntrustedToken::new(token).map_err(|e| e.to_string())?;
    let ok = match alg {
        Algorithm::RS256 => {
            let key = RsaPublicKey::try_from(&jwk).map_err(|e| e.to_string())?;
            Rsa::rs256()
                .validator::<Map<String, Value>>(&key)
                .validate(&untrusted)
                .is_ok()
        }
        Algorithm::PS256 => {
            let key = RsaPublicKey::try_from(&jwk).map_err(|e| e.to_string())?;
            Rsa::ps256()
                .validator::<Map<String, Value>>(&key)
                .validate(&untrusted)
                .is_ok()
        }
        Algorithm::ES256 => {
            let key = p256::ecdsa::VerifyingKey::try_from(&jwk).map_err(|e| e.to_string())?;
            Es256
                .validator::<Map<String, Value>>(&key)
                .validate(&untrusted)
                .is_ok()
        }
        Algorithm::EdDSA => {
            let key = ed25519_compact::PublicKey::try_from(&jwk).map_err(|e| e.to_string())?;
            Ed25519
                .validator::<Map<String, Value>>(&key)
                .validate(&untrusted)
                .is_ok()
        }
        Algorithm::HS256 => {
            let key = Hs256Key::try_from(&jwk).map_err(|e| e.to_string())?;
            Hs256
                .validator::<Map<String, Value>>(&key)
                .validate(&untrusted)
                .is_ok()
        }
    };
    Ok(ok)
}

#[derive(Deserialize)]
struct LimitBench {
    decisions: u32,
}

/// `POST /_gateway/bench/limit` with `{"decisions": N}`: the cost of one limiter decision
/// (`gateway_core::limit::LimiterState::decide`, the pure part of the counter object's work) on
/// a state kept warm by one admission per millisecond.
pub(crate) async fn limit(
    req: &Incoming,
    request_id: &str,
) -> Result<web_sys::Response, GatewayError> {
    use gateway_core::limit::LimiterState;
    use gateway_core::window::Window;
    let body: LimitBench = json_body(req)
        .await
        .map_err(|_| bad("body must be {\"decisions\": N}"))?;
    let windows = [
        Window {
            limit: 1_000_000_000,
            seconds: 60,
        },
        Window {
            limit: 1_000_000,
            seconds: 1,
        },
    ];
    let mut state = LimiterState::default();
    let start = runtime::now();
    // Fill a minute of buckets first (untimed).
    for i in 0..60_000u64 {
        state.decide(
            &windows,
            1,
            gateway_core::time::UnixMillis(start.0.saturating_add(i)),
        );
    }
    let base = start.0.saturating_add(60_000);
    let started = runtime::now().0;
    for i in 0..u64::from(body.decisions) {
        state.decide(
            &windows,
            1,
            gateway_core::time::UnixMillis(base.saturating_add(i)),
        );
    }
    let r = result("limiter_decision", u64::from(body.decisions), started);
    let value = serde_json::json!({"decisions": body.decisions, "per_decision_us": r.per_op_us, "total_ms": r.total_ms});
    Ok(respond::json(200, &value, request_id))
}

/// `GET /_gateway/bench/stats`: counter-object calls this isolate has made so far.
pub(crate) fn stats(request_id: &str) -> web_sys::Response {
    let calls = crate::limit::CALLS.load(std::sync::atomic::Ordering::Relaxed);
    respond::json(
        200,
        &serde_json::json!({"limiter_calls": calls}),
        request_id,
    )
}

/// A benchmark request's JSON body (up to 16 MB: the token lists are long).
async fn json_body<T: serde::de::DeserializeOwned>(req: &Incoming) -> Result<T, GatewayError> {
    let bytes = crate::origin::read_body(req.body(), 16 << 20).await?;
    serde_json::from_slice(&bytes).map_err(|_| bad("malformed JSON"))
}

/// `POST /_gateway/bench/auth`.
pub(crate) async fn auth(
    req: &Incoming,
    env: &Env,
    request_id: &str,
) -> Result<web_sys::Response, GatewayError> {
    let body: BenchRequest = json_body(req)
        .await
        .map_err(|_| bad("body must be {\"tokens\": [...], \"passes\": N}"))?;
    let first = body.tokens.first().ok_or(bad("no tokens"))?;
    let run = AuthRun {
        env,
        policy: settings::policy()?,
        environment: settings::environment(env)?,
        now: runtime::now(),
        tokens: &body.tokens,
        passes: body.passes,
        ops: u64::try_from(body.tokens.len())
            .unwrap_or(0)
            .saturating_mul(u64::from(body.passes)),
    };
    // Every token must verify, through the real path, before anything is timed.
    for token in run.tokens {
        authenticate_token(token, run.policy, run.environment, env, run.now, false).await?;
    }
    let mut results = Vec::new();
    for use_cache in [false, true] {
        results.push(run.gateway(use_cache).await?);
    }
    let parsed_first = parse(first)?;
    let (issuer, _) = parsed_first.issuer(run.policy, run.environment)?;
    let alg = check_header(&parsed_first, issuer)?;
    results.push(run.subtle_raw(first).await?);
    results.extend(run.rust_side().await?);
    let set: JwkSet = static_key_set(env, &issuer.name).map_err(GatewayError::Internal)?;
    let jwk =
        select_key(&set, alg, parsed_first.key_id()).map_err(|_| bad("no key for the tokens"))?;
    let jwk_json = serde_json::to_value(jwk).map_err(|e| GatewayError::Internal(e.to_string()))?;
    results.push(run.pure_rust(alg, &jwk_json)?);
    let value = serde_json::json!({"algorithm": alg.as_str(), "tokens": body.tokens.len(), "passes": body.passes, "results": results});
    Ok(respond::json(200, &value, request_id))
}

/// One run of the authentication benchmark: the same tokens through each mode.
struct AuthRun<'a> {
    env: &'a Env,
    policy: &'static gateway_core::config::Policy,
    environment: &'static gateway_core::env::Environment,
    now: gateway_core::time::UnixMillis,
    tokens: &'a [String],
    passes: u32,
    ops: u64,
}

impl AuthRun<'_> {
    /// The gateway's whole verification, with the verified-token cache bypassed or warm.
    async fn gateway(&self, use_cache: bool) -> Result<ModeResult, GatewayError> {
        let verify_all = || async {
            for token in self.tokens {
                authenticate_token(
                    token,
                    self.policy,
                    self.environment,
                    self.env,
                    self.now,
                    use_cache,
                )
                .await?;
            }
            Ok::<(), GatewayError>(())
        };
        if use_cache {
            verify_all().await?;
        }
        let started = runtime::now().0;
        for _ in 0..self.passes {
            verify_all().await?;
        }
        let mode = if use_cache { "cache_on" } else { "cache_off" };
        Ok(result(mode, self.ops, started))
    }

    /// The same signatures through `crypto.subtle.verify` alone, the key imported once.
    async fn subtle_raw(&self, first: &str) -> Result<ModeResult, GatewayError> {
        let parsed_first = parse(first)?;
        let (issuer, endpoints) = parsed_first.issuer(self.policy, self.environment)?;
        let alg = check_header(&parsed_first, issuer)?;
        let timing = crate::auth::timing_of(self.environment, issuer);
        let (key, _) = verification_key(
            issuer,
            endpoints,
            timing,
            self.env,
            alg,
            &parsed_first,
            self.now,
        )
        .await?;
        let checks = self
            .tokens
            .iter()
            .map(|t| parse(t)?.signature_check(self.policy, self.environment, String::new()))
            .collect::<Result<Vec<_>, _>>()?;
        let started = runtime::now().0;
        for _ in 0..self.passes {
            for check in &checks {
                if !verify(alg, &key, check.signature(), check.signing_input()).await {
                    return Err(GatewayError::Internal(
                        "subtle_raw: a signature did not verify".to_owned(),
                    ));
                }
            }
        }
        Ok(result("subtle_raw", self.ops, started))
    }

    /// The gateway's own work without the signature check, and of that the pure rules. Claims
    /// are validated only on tokens whose signature was checked: each once, through the real
    /// path, untimed.
    async fn rust_side(&self) -> Result<[ModeResult; 2], GatewayError> {
        let (policy, environment, now) = (self.policy, self.environment, self.now);
        let mut verified = Vec::with_capacity(self.tokens.len());
        for token in self.tokens {
            verified.push(check_signature(token, policy, environment, self.env, now).await?);
        }
        let started = runtime::now().0;
        for _ in 0..self.passes {
            for (token, checked) in self.tokens.iter().zip(&verified) {
                let parsed = parse(token)?;
                let (issuer, endpoints) = parsed.issuer(policy, environment)?;
                let alg = check_header(&parsed, issuer)?;
                let timing = crate::auth::timing_of(environment, issuer);
                let (_, thumbprint) =
                    verification_key(issuer, endpoints, timing, self.env, alg, &parsed, now)
                        .await?;
                drop(parsed.signature_check(policy, environment, thumbprint)?);
                validate_claims(checked, policy, now)?;
            }
        }
        let rust_side = result("rust_side_only", self.ops, started);
        // Parse with jwt-compact, header and claim rules: no I/O, no JavaScript.
        let started = runtime::now().0;
        for _ in 0..self.passes {
            for (token, checked) in self.tokens.iter().zip(&verified) {
                drop(parse(token)?.signature_check(policy, environment, String::new())?);
                validate_claims(checked, policy, now)?;
            }
        }
        Ok([rust_side, result("pure_rules_only", self.ops, started)])
    }

    /// jwt-compact's signature check in wasm, same tokens.
    fn pure_rust(&self, alg: Algorithm, jwk: &Value) -> Result<ModeResult, GatewayError> {
        let started = runtime::now().0;
        for _ in 0..self.passes {
            for token in self.tokens {
                if !pure_rust_verify(alg, jwk, token).map_err(GatewayError::Internal)? {
                    return Err(GatewayError::Internal(
                        "pure_rust: a signature did not verify".to_owned(),
                    ));
                }
            }
        }
        Ok(result("pure_rust", self.ops, started))
    }
}

#[derive(Deserialize)]
struct BoundaryBench {
    passes: u32,
}

/// A response like the demo origin's.
fn origin_like() -> web_sys::Response {
    crate::http::response(
        200,
        &[
            ("content-type", "application/json"),
            ("content-length", "412"),
            ("date", "Mon, 23 Nov 2026 20:00:00 GMT"),
            ("server", "tiny-http (Rust)"),
        ],
        crate::http::Body::Bytes(b"{\"ok\":true}"),
    )
}

/// `POST /_gateway/bench/boundary` with `{"passes": N}`: the two header blocks the gateway
/// builds on every forwarded request (the origin request's, from the client's; the client
/// response's, from the origin's), built each way, in this isolate:
/// - `response_rebuilt`: every header read, decided, and handed to `new Response` as a JSON init
///   (what `respond::decorate` did before header edits);
/// - `response_edited`: every header read and decided, the origin's block copied by the runtime
///   (`new Response(body, upstream)`) and only the changes sent (`http::decorated`, what
///   `respond::decorate` does);
/// - `request_rebuilt` / `request_edited`: the same for the origin `fetch` init, measured as
///   `new Request(url, init)` (what `fetch` does with it first);
/// - `make_origin_response`: building the stand-in origin response alone (in both response modes;
///   subtract it).
pub(crate) async fn boundary(
    req: &Incoming,
    request_id: &str,
) -> Result<web_sys::Response, GatewayError> {
    let body: BoundaryBench = json_body(req)
        .await
        .map_err(|_| bad("body must be {\"passes\": N}"))?;
    let passes = u64::from(body.passes);
    let mut results = response_modes(passes, request_id)?;
    let inbound = req.raw().headers();
    let base = crate::http::read_headers(&inbound).unwrap_or_default();
    let wanted = origin_request_headers(&base, request_id);
    results.extend(request_modes(passes, &inbound, &wanted)?);
    let value =
        serde_json::json!({"passes": passes, "inbound_headers": base.len(), "results": results});
    Ok(respond::json(200, &value, request_id))
}

fn failed(what: &str, e: String) -> GatewayError {
    GatewayError::Internal(format!("{what}: {e}"))
}

/// The response's block, rebuilt whole and edited.
fn response_modes(passes: u64, request_id: &str) -> Result<Vec<ModeResult>, GatewayError> {
    use crate::http::{Body, decorated, read_headers, response};
    use gateway_core::forward::response_headers;
    let extra: Vec<(&'static str, String)> = vec![
        ("x-ratelimit-limit", "100".to_owned()),
        ("x-ratelimit-remaining", "87".to_owned()),
        ("x-ratelimit-reset", "1795464060".to_owned()),
        ("x-ratelimit-cost", "1".to_owned()),
        ("ratelimit-policy", "\"free-60s\";q=100;w=60".to_owned()),
        ("ratelimit", "\"free-60s\";r=87;t=60".to_owned()),
    ];
    let mut results = Vec::new();
    let owned = |block: &crate::http::HeaderList| {
        block
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect::<Vec<_>>()
    };

    let started = runtime::now().0;
    for _ in 0..passes {
        drop(origin_like());
    }
    results.push(result("make_origin_response", passes, started));

    let started = runtime::now().0;
    for _ in 0..passes {
        // What `respond::decorate` did before header edits.
        let upstream = origin_like();
        let base = read_headers(&upstream.headers()).unwrap_or_default();
        let wanted = response_headers(owned(&base), request_id, &extra, true);
        drop(response(
            upstream.status(),
            &wanted,
            Body::Stream(upstream.body()),
        ));
    }
    results.push(result("response_rebuilt", passes, started));

    let started = runtime::now().0;
    for _ in 0..passes {
        let upstream = origin_like();
        let base = read_headers(&upstream.headers()).unwrap_or_default();
        let wanted = response_headers(owned(&base), request_id, &extra, true);
        decorated(&upstream, &base.pairs(), &wanted).map_err(|e| failed("decorated", e))?;
    }
    results.push(result("response_edited", passes, started));

    Ok(results)
}

/// What the origin gets from this request: its headers minus the authorization, plus the
/// forwarding, identity and signature headers.
fn origin_request_headers(
    base: &crate::http::HeaderList,
    request_id: &str,
) -> Vec<(String, String)> {
    let mut wanted: Vec<(String, String)> = base
        .iter()
        .filter(|(n, _)| gateway_core::forward::forwards_inbound_header(n, false, &[]))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    for (name, value) in [
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-host", "api.example.com"),
        ("x-forwarded-proto", "https"),
        ("x-request-id", request_id),
        ("x-gateway-issuer", "bench-es256"),
        ("x-gateway-subject", "client-org-17"),
        ("x-gateway-org", "org-17"),
        ("x-gateway-tier", "free"),
        ("x-gateway-scopes", "transactions:read"),
        ("x-gateway-route", "list-transactions"),
        (
            "x-gateway-signature",
            "t=1795464000,kid=bench,v1=0f3c9a3e4b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c",
        ),
    ] {
        wanted.push((name.to_owned(), value.to_owned()));
    }
    wanted
}

/// The origin request's block, rebuilt whole and edited.
fn request_modes(
    passes: u64,
    inbound: &web_sys::Headers,
    wanted: &[(String, String)],
) -> Result<Vec<ModeResult>, GatewayError> {
    use crate::http::{forwarding_init, read_headers, request_init};
    let mut results = Vec::new();
    let url = "http://127.0.0.1:1/api/transactions?limit=10";

    let started = runtime::now().0;
    for _ in 0..passes {
        let base = read_headers(inbound).unwrap_or_default();
        let init = request_init("GET", wanted, None).map_err(|e| failed("request_init", e))?;
        web_sys::Request::new_with_str_and_init(url, &init)
            .map_err(|e| failed("new Request", format!("{e:?}")))?;
        drop(base);
    }
    results.push(result("request_rebuilt", passes, started));

    let started = runtime::now().0;
    for _ in 0..passes {
        let base = read_headers(inbound).unwrap_or_default();
        let init = forwarding_init("GET", inbound, &base.pairs(), wanted, None)
            .map_err(|e| failed("forwarding_init", e))?;
        web_sys::Request::new_with_str_and_init(url, &init)
            .map_err(|e| failed("new Request", format!("{e:?}")))?;
    }
    results.push(result("request_edited", passes, started));

    Ok(results)
}

/// The benchmark endpoints, dispatched before the request pipeline, which has no benchmark
/// code: `Err` gives back a request that is for none of them.
pub(crate) async fn dispatch(
    raw: web_sys::Request,
    env: &Env,
) -> Result<web_sys::Response, web_sys::Request> {
    let url = raw.url();
    let path = gateway_core::path::split_request_url(&url).map(|u| u.path);
    let endpoint = match (raw.method().as_str(), path) {
        ("POST", Some("/_gateway/bench/auth")) => "auth",
        ("POST", Some("/_gateway/bench/limit")) => "limit",
        ("POST", Some("/_gateway/bench/boundary")) => "boundary",
        ("GET", Some("/_gateway/bench/stats")) => "stats",
        _ => return Err(raw),
    };
    let req = Incoming::read(raw);
    let request_id = runtime::request_id();
    let outcome = match endpoint {
        "auth" => auth(&req, env, &request_id).await,
        "limit" => limit(&req, &request_id).await,
        "boundary" => boundary(&req, &request_id).await,
        _ => Ok(stats(&request_id)),
    };
    Ok(outcome.unwrap_or_else(|e| respond::error(&e, &request_id, &[])))
}
