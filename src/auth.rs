//! The authentication stage's I/O: JWKS retrieval and caching, signature verification with
//! WebCrypto (10-25x cheaper than pure-Rust RSA/ECDSA in wasm), and the verified-token cache.
//! Every rule is in `gateway_core` (`auth`, `jwks`, `token_cache`); this module only fetches,
//! verifies and remembers.
//!
//! Per-isolate state:
//! - each issuer's JWKS with its [`JwksStamp`] (freshness from `Cache-Control` within the
//!   issuer's bounds, refetch throttling, bounded stale-if-error), and the fetch in flight per
//!   issuer: concurrent requests wait for it rather than fetch again (single flight);
//! - imported `CryptoKey`s by (issuer, algorithm, key material): `importKey` is expensive;
//! - the verified-token cache (digest of the token -> verified claims), pruned when a key leaves
//!   its issuer's JWKS.
//!
//! Nothing downstream sees a token: only [`VerifiedClaims`], which core's claim validation
//! produces from a [`SignatureChecked`] token, itself built only from WebCrypto's answer to the
//! [`gateway_core::auth::SignatureCheck`] core asked for (see `gateway_core::auth`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use gateway_core::auth::{
    SignatureChecked, UntrustedToken, bearer_token, check_header, parse, validate_claims,
};
use gateway_core::config::Policy;
use gateway_core::env::{Environment, IssuerEndpoints, KeySource, jwks_uri_from_discovery};
use gateway_core::error::GatewayError;
use gateway_core::identity::{TokenRejection, VerifiedClaims};
use gateway_core::issuer::{Algorithm, IssuerPolicy};
use gateway_core::jwk::{Jwk, JwkSet, KeyMiss, select_key};
use gateway_core::jwks::{JwksStamp, JwksTiming};
use gateway_core::names::secrets::STATIC_JWKS;
use gateway_core::time::UnixMillis;
use gateway_core::token_cache::{CachedToken, VerifiedTokenCache, digest};
use wasm_bindgen::JsCast;
use worker::{Env, Url};

use crate::runtime::{FetchFailure, fetch_with_deadline, js_object, subtle};

/// Timeout of a JWKS fetch.
const JWKS_TIMEOUT_MS: u64 = 5_000;

struct IssuerKeys {
    set: Rc<JwkSet>,
    stamp: JwksStamp,
}

/// A JWKS fetch in flight for one issuer: requests that need the same issuer's keys meanwhile
/// wait for it ([`Landed`]) instead of starting their own (single flight per issuer and
/// isolate), then read what it stored.
#[derive(Default)]
struct Flight {
    landed: bool,
}

/// A request waiting for another request's flight. It polls the flight on timers of its own
/// (every [`LANDING_POLL_MS`]): a waker of the fetching request's context must not resume
/// another request, whose continuation the runtime would cancel.
struct Landed(Rc<RefCell<Flight>>);

/// How often a waiting request looks whether the flight landed.
const LANDING_POLL_MS: u64 = 5;

impl Landed {
    /// Returns once the flight landed (succeeded, failed or was dropped), or after the fetch's
    /// own deadline at the latest.
    async fn wait(self) {
        let mut waited = 0u64;
        while !self.0.borrow().landed && waited < JWKS_TIMEOUT_MS {
            crate::runtime::sleep(LANDING_POLL_MS).await;
            waited = waited.saturating_add(LANDING_POLL_MS);
        }
    }
}

/// The fetching request's hold on its issuer's flight: it lands when dropped, whatever the
/// outcome, even if the request itself is cancelled.
struct Pilot {
    issuer: String,
    flight: Rc<RefCell<Flight>>,
}

impl Pilot {
    /// The flight for `issuer`: `Err` with the one already in the air, or a new one to fly.
    fn board(issuer: &str) -> Result<Pilot, Landed> {
        FLIGHTS.with(|f| {
            let mut flights = f.borrow_mut();
            if let Some(flight) = flights.get(issuer) {
                return Err(Landed(Rc::clone(flight)));
            }
            let flight = Rc::new(RefCell::new(Flight::default()));
            flights.insert(issuer.to_owned(), Rc::clone(&flight));
            Ok(Pilot {
                issuer: issuer.to_owned(),
                flight,
            })
        })
    }
}

impl Drop for Pilot {
    fn drop(&mut self) {
        FLIGHTS.with(|f| f.borrow_mut().remove(&self.issuer));
        self.flight.borrow_mut().landed = true;
    }
}

thread_local! {
    static FLIGHTS: RefCell<HashMap<String, Rc<RefCell<Flight>>>> = RefCell::new(HashMap::new());
    static JWKS: RefCell<HashMap<String, IssuerKeys>> = RefCell::new(HashMap::new());
    static KEYS: RefCell<HashMap<String, web_sys::CryptoKey>> = RefCell::new(HashMap::new());
    static TOKENS: RefCell<Option<VerifiedTokenCache>> = const { RefCell::new(None) };
    static DISCOVERED: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
}

fn cached_claims(token: &str, policy: &Policy, now: UnixMillis) -> Option<VerifiedClaims> {
    let key = digest(token);
    TOKENS.with(|t| {
        t.borrow_mut()
            .get_or_insert_with(|| VerifiedTokenCache::new(policy.gateway.token_cache_entries))
            .get(&key, now)
            .cloned()
    })
}

fn remember(
    token: &str,
    claims: &VerifiedClaims,
    key: String,
    issuer: &IssuerPolicy,
    now: UnixMillis,
) {
    let entry = CachedToken {
        claims: claims.clone(),
        key,
        valid_until: claims.expires_at().saturating_add(issuer.leeway_seconds),
    };
    TOKENS.with(|t| {
        if let Some(cache) = t.borrow_mut().as_mut() {
            cache.insert(digest(token), entry, now);
        }
    });
}

/// The caller, if the request's bearer token is in this isolate's verified-token cache (no
/// signature check, no JWKS refresh: for clients refused everything else).
pub(crate) fn cached_caller(
    authorization: Option<&str>,
    policy: &Policy,
    now: UnixMillis,
) -> Option<VerifiedClaims> {
    let token = bearer_token(authorization).ok()?;
    cached_claims(token, policy, now)
}

/// Forgets the request's token (its organisation's object answered that it is revoked).
pub(crate) fn forget_token(authorization: Option<&str>) {
    if let Ok(token) = bearer_token(authorization) {
        let key = digest(token);
        TOKENS.with(|t| {
            if let Some(cache) = t.borrow_mut().as_mut() {
                cache.remove(&key);
            }
        });
    }
}

/// Drops this isolate's cached tokens a new revocation covers; returns how many.
pub(crate) fn evict_revoked(
    issuer: &str,
    org: &str,
    revocation: &gateway_core::revocation::Revocation,
) -> usize {
    TOKENS.with(|t| {
        t.borrow_mut()
            .as_mut()
            .map_or(0, |cache| cache.evict_revoked(issuer, org, revocation))
    })
}

/// Verifies the bearer token (the request's `Authorization` value) and returns the caller.
pub(crate) async fn authenticate(
    authorization: Option<&str>,
    policy: &Policy,
    environment: &Environment,
    env: &Env,
    now: UnixMillis,
) -> Result<VerifiedClaims, GatewayError> {
    let token = bearer_token(authorization)?;
    authenticate_token(token, policy, environment, env, now, true).await
}

/// Verifies one compact token (already taken from the header). `use_cache: false` always
/// verifies (the benchmark's "cache off" column); the pipeline always uses the cache.
pub(crate) async fn authenticate_token(
    token: &str,
    policy: &Policy,
    environment: &Environment,
    env: &Env,
    now: UnixMillis,
    use_cache: bool,
) -> Result<VerifiedClaims, GatewayError> {
    let hit = if use_cache {
        cached_claims(token, policy, now)
    } else {
        None
    };
    if let Some(claims) = hit {
        // A hit skips verification, but not the issuer's key lifecycle: when its JWKS is due,
        // refresh it (which drops tokens whose key left) and look again.
        let due = match (
            policy.issuer(claims.issuer().as_str()),
            environment.issuers.get(claims.issuer().as_str()),
        ) {
            (Some(issuer), Some(endpoints)) => {
                Some((issuer, endpoints)).filter(|(issuer, endpoints)| {
                    endpoints.has_remote_keys()
                        && refresh_due(issuer, timing_of(environment, issuer), now)
                })
            }
            _ => None,
        };
        match due {
            None => return Ok(claims),
            Some((issuer, endpoints)) => {
                key_set(
                    issuer,
                    endpoints,
                    timing_of(environment, issuer),
                    env,
                    now,
                    false,
                )
                .await?;
                if let Some(claims) = cached_claims(token, policy, now) {
                    return Ok(claims);
                }
            }
        }
    }

    let checked = check_signature(token, policy, environment, env, now).await?;
    let claims = validate_claims(&checked, policy, now)?;
    if use_cache {
        let key = checked.key_thumbprint().to_owned();
        remember(token, &claims, key, checked.issuer(), now);
    }
    Ok(claims)
}

/// Parses the token and has WebCrypto verify its signature with its issuer's key (fetched,
/// imported and cached as needed): the token, ready for claim validation.
pub(crate) async fn check_signature<'t, 'p>(
    token: &'t str,
    policy: &'p Policy,
    environment: &'p Environment,
    env: &Env,
    now: UnixMillis,
) -> Result<SignatureChecked<'t, 'p>, GatewayError> {
    let parsed = parse(token)?;
    let (issuer, endpoints) = parsed.issuer(policy, environment)?;
    let alg = check_header(&parsed, issuer)?;
    let (key, thumbprint) = verification_key(
        issuer,
        endpoints,
        timing_of(environment, issuer),
        env,
        alg,
        &parsed,
        now,
    )
    .await?;
    let check = parsed.signature_check(policy, environment, thumbprint)?;
    let verified = verify(
        check.algorithm(),
        &key,
        check.signature(),
        check.signing_input(),
    )
    .await;
    Ok(check.verdict(verified)?)
}

/// The issuer's JWKS timing in this environment.
pub(crate) fn timing_of(environment: &Environment, issuer: &IssuerPolicy) -> JwksTiming {
    environment
        .jwks_timing
        .get(&issuer.name)
        .copied()
        .unwrap_or_else(|| JwksTiming::from_bounds(issuer.jwks_bounds()))
}

fn refresh_due(issuer: &IssuerPolicy, timing: JwksTiming, now: UnixMillis) -> bool {
    let stamp = cached_keys(&issuer.name).map(|(_, stamp)| stamp);
    timing.should_fetch(stamp.as_ref(), now, false)
}

pub(crate) async fn verification_key(
    issuer: &IssuerPolicy,
    endpoints: &IssuerEndpoints,
    timing: JwksTiming,
    env: &Env,
    alg: Algorithm,
    token: &UntrustedToken<'_>,
    now: UnixMillis,
) -> Result<(web_sys::CryptoKey, String), GatewayError> {
    let kid = token.key_id();
    let mut set = key_set(issuer, endpoints, timing, env, now, false).await?;
    if select_key(&set, alg, kid) == Err(KeyMiss::UnknownKid) {
        // The issuer may have rotated: one (throttled) refetch.
        set = key_set(issuer, endpoints, timing, env, now, true).await?;
    }
    let jwk = select_key(&set, alg, kid).map_err(TokenRejection::from)?;
    // The key material itself, for the verified-token cache (a `kid` can be reused).
    let thumbprint = jwk.thumbprint().ok_or_else(|| {
        GatewayError::IssuerUnavailable(format!(
            "issuer '{}': a JWK lacks a required member",
            issuer.name
        ))
    })?;
    let key = import(&issuer.name, alg, jwk).await?;
    Ok((key, thumbprint))
}

fn store_keys(issuer: &str, set: &Rc<JwkSet>, stamp: JwksStamp) {
    JWKS.with(|c| {
        let keys = IssuerKeys {
            set: Rc::clone(set),
            stamp,
        };
        c.borrow_mut().insert(issuer.to_owned(), keys)
    });
}

/// The issuer's keys: the static JWKS secret, or its `jwks_uri` under the lifecycle rules.
async fn key_set(
    issuer: &IssuerPolicy,
    endpoints: &IssuerEndpoints,
    timing: JwksTiming,
    env: &Env,
    now: UnixMillis,
    kid_unknown: bool,
) -> Result<Rc<JwkSet>, GatewayError> {
    let mut current = cached_keys(&issuer.name);
    let source = endpoints.key_source();
    if source == KeySource::Static {
        if let Some((set, _)) = current {
            return Ok(set);
        }
        let set = Rc::new(static_key_set(env, &issuer.name).map_err(|d| {
            GatewayError::IssuerUnavailable(format!("issuer '{}': {d}", issuer.name))
        })?);
        let stamp = JwksStamp {
            fetched_at: Some(now),
            ttl_ms: u64::MAX,
            last_attempt: now,
        };
        store_keys(&issuer.name, &set, stamp);
        return Ok(set);
    }

    if timing.should_fetch(current.as_ref().map(|(_, s)| s), now, kid_unknown) {
        match Pilot::board(&issuer.name) {
            Ok(pilot) => {
                fetch_keys(issuer, endpoints, &source, timing, now, pilot).await;
                current = cached_keys(&issuer.name).or(current);
            }
            Err(landed) => {
                // Another request of this isolate is fetching this issuer's keys. A set still
                // usable serves a request whose key it holds at once; one that needs a new key
                // (or has no usable set) waits for the fetch and uses what it stored (or, if it
                // failed, what was usable before).
                let known_and_usable = !kid_unknown
                    && current
                        .as_ref()
                        .is_some_and(|(_, stamp)| timing.usable(stamp, now));
                if !known_and_usable {
                    landed.wait().await;
                    current = cached_keys(&issuer.name).or(current);
                }
            }
        }
    }
    match current {
        Some((set, stamp)) if timing.usable(&stamp, now) => Ok(set),
        _ => Err(GatewayError::IssuerUnavailable(format!(
            "issuer '{}': no usable JWKS (fetch failed or throttled, nothing fresh enough cached)",
            issuer.name
        ))),
    }
}

/// This isolate's copy of the issuer's keys, with its stamp.
fn cached_keys(issuer: &str) -> Option<(Rc<JwkSet>, JwksStamp)> {
    JWKS.with(|c| c.borrow().get(issuer).map(|e| (Rc::clone(&e.set), e.stamp)))
}

/// One fetch of the issuer's JWKS by the request holding its flight (`_pilot`: the flight lands
/// when this returns): on success the set is stored and the imported keys and cached tokens of
/// keys no longer published are dropped; on failure the attempt is recorded (refetch
/// throttling) and what is cached stays.
async fn fetch_keys(
    issuer: &IssuerPolicy,
    endpoints: &IssuerEndpoints,
    source: &KeySource,
    timing: JwksTiming,
    now: UnixMillis,
    _pilot: Pilot,
) {
    match fetch_from(source, &issuer.name, &endpoints.issuer).await {
        Ok((set, cache_control)) => {
            let set = Rc::new(set);
            let stamp = JwksStamp {
                fetched_at: Some(now),
                ttl_ms: timing.ttl_ms(cache_control.as_deref()),
                last_attempt: now,
            };
            store_keys(&issuer.name, &set, stamp);
            let prefix = format!("{}|", issuer.name);
            KEYS.with(|k| k.borrow_mut().retain(|name, _| !name.starts_with(&prefix)));
            let live: Vec<String> = set.keys.iter().filter_map(Jwk::thumbprint).collect();
            TOKENS.with(|t| {
                if let Some(cache) = t.borrow_mut().as_mut() {
                    cache.retain_live_keys(&issuer.name, &live);
                }
            });
        }
        Err(detail) => {
            worker::console_warn!(
                "{}",
                serde_json::json!({"event": "jwks_fetch_failed", "issuer": issuer.name, "detail": detail})
            );
            JWKS.with(|c| {
                let mut cache = c.borrow_mut();
                let entry = cache
                    .entry(issuer.name.clone())
                    .or_insert_with(|| IssuerKeys {
                        set: Rc::new(JwkSet::default()),
                        stamp: JwksStamp {
                            fetched_at: None,
                            ttl_ms: 0,
                            last_attempt: now,
                        },
                    });
                entry.stamp.last_attempt = now;
            });
        }
    }
}

pub(crate) fn static_key_set(env: &Env, issuer: &str) -> Result<JwkSet, String> {
    let secret = env
        .secret(STATIC_JWKS)
        .map_err(|_| format!("secret {STATIC_JWKS} is not set"))?
        .to_string();
    JwkSet::from_static_secret(&secret)
        .map_err(|e| format!("secret {STATIC_JWKS}: {e}"))?
        .remove(issuer)
        .ok_or_else(|| format!("secret {STATIC_JWKS} has no keys for issuer '{issuer}'"))
}

/// Fetches the issuer's JWKS from its source: the `jwks_uri`, or the one its discovery document
/// names (resolved once per isolate, and again after a failed fetch).
async fn fetch_from(
    source: &KeySource,
    issuer_name: &str,
    expected_iss: &str,
) -> Result<(JwkSet, Option<String>), String> {
    let uri = match source {
        KeySource::JwksUri(uri) => uri.clone(),
        KeySource::Static => return Err("the issuer has no remote key source".to_owned()),
        KeySource::Discovery(url) => {
            match DISCOVERED.with(|d| d.borrow().get(issuer_name).cloned()) {
                Some(uri) => uri,
                None => {
                    let uri = discover(url, expected_iss).await?;
                    DISCOVERED.with(|d| d.borrow_mut().insert(issuer_name.to_owned(), uri.clone()));
                    uri
                }
            }
        }
    };
    let fetched = fetch_key_set(&uri).await;
    if fetched.is_err() {
        DISCOVERED.with(|d| d.borrow_mut().remove(issuer_name));
    }
    fetched
}

/// A `GET` of an issuer's document (discovery, JWKS), redirects followed, within
/// `JWKS_TIMEOUT_MS`.
async fn fetch_document(url: &str) -> Result<worker::Response, FetchFailure> {
    fetch_with_deadline(url, &web_sys::RequestInit::new(), None, JWKS_TIMEOUT_MS)
        .await
        .map(worker::Response::from)
}

/// Resolves the `jwks_uri` from an OIDC discovery document.
async fn discover(url: &str, expected_iss: &str) -> Result<String, String> {
    let parsed = Url::parse(url).map_err(|e| format!("discovery URL: {e}"))?;
    let mut response = match fetch_document(parsed.as_str()).await {
        Ok(response) => response,
        Err(FetchFailure::Unreachable(detail)) => {
            return Err(format!("discovery fetch failed: {detail}"));
        }
        Err(FetchFailure::TimedOut) => {
            return Err(format!(
                "discovery fetch timed out after {JWKS_TIMEOUT_MS} ms"
            ));
        }
    };
    if response.status_code() != 200 {
        return Err(format!(
            "discovery endpoint answered {}",
            response.status_code()
        ));
    }
    let text = response
        .text()
        .await
        .map_err(|e| format!("discovery body: {e}"))?;
    jwks_uri_from_discovery(&text, expected_iss)
}

/// Fetches a JWKS; returns it with the response's `Cache-Control`.
async fn fetch_key_set(uri: &str) -> Result<(JwkSet, Option<String>), String> {
    let url = Url::parse(uri).map_err(|e| format!("jwks_uri: {e}"))?;
    let mut response = match fetch_document(url.as_str()).await {
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
    let cache_control = response.headers().get("cache-control").ok().flatten();
    let text = response
        .text()
        .await
        .map_err(|e| format!("JWKS body: {e}"))?;
    Ok((JwkSet::from_json(&text)?, cache_control))
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
    // Keyed by (issuer, algorithm, kid): a kid names one key within one JWKS version, and a
    // JWKS refresh drops the issuer's imported keys. Keys without a kid are keyed by material.
    let cache_key = match &jwk.kid {
        Some(kid) => format!("{issuer}|{}|kid:{kid}", alg.as_str()),
        None => format!("{issuer}|{}|jwk:{}", alg.as_str(), jwk.import_form()),
    };
    if let Some(key) = KEYS.with(|k| k.borrow().get(&cache_key).cloned()) {
        return Ok(key);
    }
    let material = jwk.import_form().to_string();
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
    let key: web_sys::CryptoKey = crate::settle::settled(&promise)
        .await
        .map_err(|e| bad_key(format!("{e:?}")))?
        .dyn_into()
        .map_err(|_| bad_key("importKey returned no key".to_owned()))?;
    KEYS.with(|k| k.borrow_mut().insert(cache_key, key.clone()));
    Ok(key)
}

/// WebCrypto signature check. A rejected promise (malformed signature) counts as invalid.
pub(crate) async fn verify(
    alg: Algorithm,
    key: &web_sys::CryptoKey,
    signature: &[u8],
    data: &[u8],
) -> bool {
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
        crate::settle::settled(&promise).await.map(|v| v.as_bool()),
        Ok(Some(true))
    )
}
