//! The configuration the Worker runs with, parsed once per isolate: the policy embedded at build
//! time (validated by `build.rs`) and the per-environment `[vars]`.

use std::sync::{LazyLock, OnceLock};

use gateway_core::api_key::ApiKeySet;
use gateway_core::config::Policy;
use gateway_core::env::Environment;
use gateway_core::error::GatewayError;
use gateway_core::names::secrets::{API_KEYS, SIGNING_KEYS, STATIC_JWKS};
use gateway_core::signing::Keyset;
use gateway_core::validate::ConfigError;
use worker::Env;

static POLICY: LazyLock<Result<Policy, ConfigError>> =
    LazyLock::new(|| Policy::from_json(include_str!(concat!(env!("OUT_DIR"), "/policy.json"))));

static ENVIRONMENT: OnceLock<Result<Environment, ConfigError>> = OnceLock::new();
static SIGNING: OnceLock<Result<Keyset, ConfigError>> = OnceLock::new();
static API_KEY_SET: OnceLock<Result<ApiKeySet, ConfigError>> = OnceLock::new();

/// The legacy API keys (the `GATEWAY_API_KEYS` secret; unset: none), parsed on first use.
pub(crate) fn api_keys(env: &Env) -> Result<&'static ApiKeySet, GatewayError> {
    let policy = policy()?;
    API_KEY_SET
        .get_or_init(|| match env.secret(API_KEYS) {
            Err(_) => Ok(ApiKeySet::default()),
            Ok(text) => ApiKeySet::from_json(&text.to_string(), policy).map_err(|reason| {
                ConfigError::Invalid {
                    key: API_KEYS.to_owned(),
                    reason,
                }
            }),
        })
        .as_ref()
        .map_err(|e| GatewayError::Misconfigured(format!("secrets: {e}")))
}

/// The validated policy.
pub(crate) fn policy() -> Result<&'static Policy, GatewayError> {
    POLICY
        .as_ref()
        .map_err(|e| GatewayError::Misconfigured(format!("embedded policy: {e}")))
}

/// The origin-signing keyset (the `GATEWAY_SIGNING_KEYS` secret), parsed on first use.
pub(crate) fn signing_keys(env: &Env) -> Result<&'static Keyset, GatewayError> {
    SIGNING
        .get_or_init(|| {
            let invalid = |reason: String| ConfigError::Invalid {
                key: SIGNING_KEYS.to_owned(),
                reason,
            };
            let text = env
                .secret(SIGNING_KEYS)
                .map_err(|_| invalid("is not set (the origin needs signed requests)".to_owned()))?
                .to_string();
            Keyset::from_json(&text).map_err(invalid)
        })
        .as_ref()
        .map_err(|e| GatewayError::Misconfigured(format!("secrets: {e}")))
}

/// The validated per-environment values and secrets (read from the bindings on first use).
pub(crate) fn environment(env: &Env) -> Result<&'static Environment, GatewayError> {
    signing_keys(env)?;
    let policy = policy()?;
    ENVIRONMENT
        .get_or_init(|| {
            let environment =
                Environment::from_vars(policy, |name| env.var(name).ok().map(|v| v.to_string()))?;
            let static_jwks = env.secret(STATIC_JWKS).ok().map(|s| s.to_string());
            environment.check_static_keys(policy, static_jwks.as_deref())?;
            Ok(environment)
        })
        .as_ref()
        .map_err(|e| GatewayError::Misconfigured(format!("vars: {e}")))
}
