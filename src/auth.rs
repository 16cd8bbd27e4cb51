//! The authentication stage's I/O: JWKS retrieval and caching, and signature verification
//! with WebCrypto (10-25x cheaper than pure-Rust RSA/ECDSA in wasm). Every rule is in
//! `gateway_core::auth`; this module only fetches keys and checks signatures.
//!
//! Caches (per isolate):
//! - JWKS per issuer, fresh for [`JWKS_TTL_MS`]; a token naming an unknown `kid` triggers one
//!   refetch (the issuer may have rotated), at most once per [`JWKS_MIN_REFETCH_MS`] per issuer,
//!   so random `kid`s cannot turn into a fetch storm. A failed refresh keeps serving the last
//!   good set.
//! - Imported `CryptoKey`s by (issuer, algorithm, key material): `importKey` is expensive.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use gateway_core::auth::{
    Jwk, JwkSet, KeyMiss, bearer_token, check_header, parse, select_key, validate_claims,
};
use gateway_core::config::{Algorithm, IssuerPolicy, Policy};
use gateway_core::env::{Environment, IssuerEndpoints};
use gateway_core::error::GatewayError;
use gateway_core::identity::VerifiedClaims;
use gateway_core::names::secrets::STATIC_JWKS;
use gateway_core::time::UnixMillis;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use worker::{Env, Fetch, Headers, Url};

use crate::runtime::{FetchFailure, fetch_with_timeout, js_object, subtle};

/// How long a fetched JWKS is used without refetching.
const JWKS_TTL_MS: u64 = 5 * 60 * 1000;
/// Least time between two fetches of one issuer's JWKS.
const JWKS_MIN_REFETCH_MS: u64 = 10 * 1000;
/// Timeout of a JWKS fetch.
const JWKS_TIMEOUT_MS: u64 = 5_000;

struct CachedJwks {
    set: Rc<JwkSet>,
    fetched_at: UnixMillis,
}

thread_local! {
    static JWKS: RefCell<HashMap<String, CachedJwks>> = RefCell::new(HashMap::new());
    static KEYS: RefCell<HashMap<String, web_sys::CryptoKey>> = RefCell::new(HashMap::new());
}

/// Verifies the bearer token and returns the caller.
pub(crate) async fn authenticate(
    headers: &Headers,
    policy: &Policy,
    environment: &Environment,
    env: &Env,
    now: UnixMillis,
) -> Result<VerifiedClaims, GatewayError> {
    let header = headers
        .get("authorization")
        .map_err(|_| GatewayError::InvalidRequest("The Authorization header is unreadable."))?;
    let token = bearer_token(header.as_deref())?;
    let parsed = parse(token)?;
    let (issuer, endpoints) = parsed.issuer(policy, environment)?;
    let alg = check_header(&parsed, issuer)?;
    let key = verification_key(issuer, endpoints, env, alg, parsed.key_id(), now).await?;
    if !verify(alg, &key, parsed.signature(), parsed.signing_input()).await {
        return Err(GatewayError::InvalidToken(
            "the token's signature is invalid",
        ));
    }
    validate_claims(&parsed, issuer, policy, now)
}

async fn verification_key(
    issuer: &IssuerPolicy,
    endpoints: &IssuerEndpoints,
    env: &Env,
    alg: Algorithm,
    kid: Option<&str>,
    now: UnixMillis,
) -> Result<web_sys::CryptoKey, GatewayError> {
    let set = key_set(issuer, endpoints, env, now, false).await?;
    let jwk: Jwk = match select_key(&set, alg, kid) {
        Ok(jwk) => jwk.clone(),
        Err(KeyMiss::UnknownKid) => {
            let set = key_set(issuer, endpoints, env, now, true).await?;
            select_key(&set, alg, kid)
                .map_err(|_| GatewayError::InvalidToken("the token's signing key is unknown"))?
                .clone()
        }
        Err(KeyMiss::Ambiguous) => {
            return Err(GatewayError::InvalidToken(
                "the token does not identify its signing key (kid)",
            ));
        }
    };
    import(&issuer.name, alg, &jwk).await
}

/// The issuer's keys: the static JWKS secret, or its `jwks_uri` through the cache.
async fn key_set(
    issuer: &IssuerPolicy,
    endpoints: &IssuerEndpoints,
    env: &Env,
    now: UnixMillis,
    kid_missing: bool,
) -> Result<Rc<JwkSet>, GatewayError> {
    let cached = JWKS.with(|c| {
        c.borrow()
            .get(&issuer.name)
            .map(|e| (Rc::clone(&e.set), e.fetched_at))
    });
    if let Some((set, fetched_at)) = &cached {
        let age = now.saturating_since(*fetched_at);
        let fresh = age < JWKS_TTL_MS && !kid_missing;
        if fresh || (kid_missing && age < JWKS_MIN_REFETCH_MS) || endpoints.jwks_uri.is_none() {
            return Ok(Rc::clone(set));
        }
    }
    let fetched = match &endpoints.jwks_uri {
        None => static_key_set(env, &issuer.name),
        Some(uri) => fetch_key_set(uri).await,
    };
    match (fetched, cached) {
        (Ok(set), _) => {
            let set = Rc::new(set);
            JWKS.with(|c| {
                c.borrow_mut().insert(
                    issuer.name.clone(),
                    CachedJwks {
                        set: Rc::clone(&set),
                        fetched_at: now,
                    },
                )
            });
            Ok(set)
        }
        (Err(detail), Some((stale, _))) => {
            worker::console_warn!(
                "{}",
                serde_json::json!({"event": "jwks_refresh_failed", "issuer": issuer.name, "detail": detail})
            );
            Ok(stale)
        }
        (Err(detail), None) => Err(GatewayError::IssuerUnavailable(format!(
            "issuer '{}': {detail}",
            issuer.name
        ))),
    }
}

fn static_key_set(env: &Env, issuer: &str) -> Result<JwkSet, String> {
    let secret = env
        .secret(STATIC_JWKS)
        .map_err(|_| format!("secret {STATIC_JWKS} is not set"))?
        .to_string();
    JwkSet::from_static_secret(&secret)
        .map_err(|e| format!("secret {STATIC_JWKS}: {e}"))?
        .remove(issuer)
        .ok_or_else(|| format!("secret {STATIC_JWKS} has no keys for issuer '{issuer}'"))
}

async fn fetch_key_set(uri: &str) -> Result<JwkSet, String> {
    let url = Url::parse(uri).map_err(|e| format!("jwks_uri: {e}"))?;
    let mut response = match fetch_with_timeout(Fetch::Url(url), JWKS_TIMEOUT_MS).await {
        Ok(response) => response,
        Err(FetchFailure::Unreachable(detail)) => {
            return Err(format!("JWKS fetch failed: {detail}"));
        }
        Err(FetchFailure::TimedOut) => {
            return Err(format!("JWKS fetch timed out after {JWKS_TIMEOUT_MS} ms"));
        }
    };
    if response.status_code() != 200 {
        return Err(format!("JWKS endpoint answered {}", response.status_code()));
    }
    let text = response
        .text()
        .await
        .map_err(|e| format!("JWKS body: {e}"))?;
    JwkSet::from_json(&text)
}

/// WebCrypto import and verify parameters for each algorithm.
fn webcrypto_params(alg: Algorithm) -> (&'static str, &'static str) {
    match alg {
        Algorithm::RS256 => (
            r#"{"name":"RSASSA-PKCS1-v1_5","hash":"SHA-256"}"#,
            r#"{"name":"RSASSA-PKCS1-v1_5"}"#,
        ),
        Algorithm::PS256 => (
            r#"{"name":"RSA-PSS","hash":"SHA-256"}"#,
            r#"{"name":"RSA-PSS","saltLength":32}"#,
        ),
        Algorithm::ES256 => (
            r#"{"name":"ECDSA","namedCurve":"P-256"}"#,
            r#"{"name":"ECDSA","hash":"SHA-256"}"#,
        ),
        Algorithm::EdDSA => (r#"{"name":"Ed25519"}"#, r#"{"name":"Ed25519"}"#),
        Algorithm::HS256 => (r#"{"name":"HMAC","hash":"SHA-256"}"#, r#"{"name":"HMAC"}"#),
    }
}

async fn import(
    issuer: &str,
    alg: Algorithm,
    jwk: &Jwk,
) -> Result<web_sys::CryptoKey, GatewayError> {
    let material = jwk.import_form().to_string();
    let cache_key = format!("{issuer}|{}|{material}", alg.as_str());
    if let Some(key) = KEYS.with(|k| k.borrow().get(&cache_key).cloned()) {
        return Ok(key);
    }
    let bad_key = |detail: String| {
        GatewayError::IssuerUnavailable(format!("issuer '{issuer}': unusable JWK: {detail}"))
    };
    let (import_params, _) = webcrypto_params(alg);
    let usages = js_sys::Array::of1(&"verify".into());
    let promise = subtle()
        .map_err(GatewayError::Internal)?
        .import_key_with_object(
            "jwk",
            &js_object(&material).map_err(bad_key)?,
            &js_object(import_params).map_err(bad_key)?,
            false,
            &usages,
        )
        .map_err(|e| bad_key(format!("{e:?}")))?;
    let key: web_sys::CryptoKey = JsFuture::from(promise)
        .await
        .map_err(|e| bad_key(format!("{e:?}")))?
        .dyn_into()
        .map_err(|_| bad_key("importKey returned no key".to_owned()))?;
    KEYS.with(|k| k.borrow_mut().insert(cache_key, key.clone()));
    Ok(key)
}

/// WebCrypto signature check. A rejected promise (malformed signature) counts as invalid.
async fn verify(alg: Algorithm, key: &web_sys::CryptoKey, signature: &[u8], data: &[u8]) -> bool {
    let (_, verify_params) = webcrypto_params(alg);
    let (Ok(subtle), Ok(params)) = (subtle(), js_object(verify_params)) else {
        return false;
    };
    let Ok(promise) =
        subtle.verify_with_object_and_u8_array_and_u8_array(&params, key, signature, data)
    else {
        return false;
    };
    matches!(
        JsFuture::from(promise).await.map(|v| v.as_bool()),
        Ok(Some(true))
    )
}
