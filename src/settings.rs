//! The configuration the Worker runs with, parsed once per isolate: the policy embedded at build
//! time (validated by `build.rs`) and the per-environment `[vars]`.

use std::sync::{LazyLock, OnceLock};

use gateway_core::config::{ConfigError, Policy};
use gateway_core::env::Environment;
use gateway_core::error::GatewayError;
use gateway_core::names::secrets::STATIC_JWKS;
use worker::Env;

static POLICY: LazyLock<Result<Policy, ConfigError>> =
    LazyLock::new(|| Policy::from_json(include_str!(concat!(env!("OUT_DIR"), "/policy.json"))));

static ENVIRONMENT: OnceLock<Result<Environment, ConfigError>> = OnceLock::new();

/// The validated policy.
pub(crate) fn policy() -> Result<&'static Policy, GatewayError> {
    POLICY
        .as_ref()
        .map_err(|e| GatewayError::Misconfigured(format!("embedded policy: {e}")))
}

/// The validated per-environment values (read from the bindings on first use).
pub(crate) fn environment(env: &Env) -> Result<&'static Environment, GatewayError> {
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
