//! The rate-limit stage's I/O: one round trip to the organisation's counter object, with a
//! deadline; a request it does not answer is refused (503), since its answer carries the
//! revocation check. The same round trip checks
//! the organisation's revocations (on routes that are not limited it does only that).

use gateway_core::config::Policy;
use gateway_core::error::GatewayError;
use gateway_core::identity::VerifiedClaims;
use gateway_core::limit::{ConsumeRequest, Decision, response_headers};
use gateway_core::names::bindings::RATE_LIMITER;
use gateway_core::protocol;
use gateway_core::route::Route;
use gateway_core::time::UnixMillis;
use worker::Env;

use wasm_bindgen::JsCast as _;

use crate::runtime::{Raced, race_deadline};

/// Header marking a response the limits would have refused (shadow mode).
const SHADOW_HEADER: &str = "x-ratelimit-shadow";

/// What the stage decided: headers for the response (success or error), and the refusal, if any.
pub(crate) struct LimitOutcome {
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) refusal: Option<GatewayError>,
}

/// Counter-object calls made by this isolate (read by the benchmark build only).
#[cfg(feature = "bench")]
pub(crate) static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The counter objects' namespace and RPC surface (the counters Worker's `durable/entry.mjs`,
/// reached across scripts through the binding's `script_name`): JSON text and the
/// `gateway_core::protocol` version in, JSON text out. Bound directly rather than through workers-rs' `ObjectNamespace`/`Stub`, whose
/// binding lookup also checks the object's constructor name on every call.
#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    #[wasm_bindgen(extends = js_sys::Object)]
    type CounterNamespace;

    #[wasm_bindgen(method, catch, js_name = getByName)]
    fn get_by_name(
        this: &CounterNamespace,
        name: &str,
    ) -> Result<CounterStub, wasm_bindgen::JsValue>;

    #[wasm_bindgen(extends = js_sys::Object)]
    type CounterStub;

    #[wasm_bindgen(method, catch)]
    fn consume(
        this: &CounterStub,
        body: &str,
        protocol: u32,
    ) -> Result<js_sys::Promise, wasm_bindgen::JsValue>;

    #[wasm_bindgen(method, catch)]
    fn revocations(
        this: &CounterStub,
        command: &str,
        protocol: u32,
    ) -> Result<js_sys::Promise, wasm_bindgen::JsValue>;

    #[wasm_bindgen(method, catch)]
    fn hold(
        this: &CounterStub,
        body: &str,
        protocol: u32,
    ) -> Result<js_sys::Promise, wasm_bindgen::JsValue>;

    #[wasm_bindgen(method, catch)]
    fn settle(
        this: &CounterStub,
        body: &str,
        protocol: u32,
    ) -> Result<js_sys::Promise, wasm_bindgen::JsValue>;
}

/// The counter object's two calls.
#[derive(Clone, Copy)]
pub(crate) enum Endpoint {
    /// `consume`: `ConsumeRequest` -> `Decision`.
    Consume,
    /// `revocations`: `RevocationCommand` -> `RevocationReply`.
    Revocations,
    /// `hold`: `HoldRequest` -> `Decision` (a client counting only failures).
    Hold,
    /// `settle`: `SettleRequest` -> `Decision`.
    Settle,
}

/// One call to the counter object named `object`, by Workers RPC, within
/// `gateway.limiter_timeout_ms`. Never retried: an overloaded object must shed load, not get
/// more of it.
pub(crate) async fn call<B: serde::Serialize, R: serde::de::DeserializeOwned>(
    env: &Env,
    policy: &Policy,
    object: &str,
    endpoint: Endpoint,
    body: &B,
) -> Result<R, String> {
    #[cfg(feature = "bench")]
    CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let timeout_ms = policy.gateway.limiter_timeout_ms;
    let namespace: CounterNamespace = crate::runtime::binding(env, RATE_LIMITER).unchecked_into();
    let stub = namespace
        .get_by_name(object)
        .map_err(|e| format!("counter binding: {e:?}"))?;
    let json = serde_json::to_string(body).map_err(|e| e.to_string())?;
    let promise = match endpoint {
        Endpoint::Consume => stub.consume(&json, protocol::CURRENT),
        Endpoint::Revocations => stub.revocations(&json, protocol::CURRENT),
        Endpoint::Hold => stub.hold(&json, protocol::CURRENT),
        Endpoint::Settle => stub.settle(&json, protocol::CURRENT),
    }
    .map_err(|e| format!("counter call: {e:?}"))?;
    let reply = match race_deadline(promise, timeout_ms).await {
        Raced::Settled(Ok(reply)) => reply.as_string().ok_or("counter reply: not a string")?,
        Raced::Settled(Err(e)) => return Err(format!("counter call: {e:?}")),
        Raced::DeadlinePassed => {
            return Err(format!("counter did not answer within {timeout_ms} ms"));
        }
    };
    serde_json::from_str(&reply).map_err(|e| format!("counter reply: {e}"))
}

/// The caller's revocations alone (one call to its organisation's object, nothing counted), for
/// requests outside the route table (the admin API). Fails closed.
pub(crate) async fn check_revocations(
    env: &Env,
    policy: &Policy,
    claims: &VerifiedClaims,
    now: UnixMillis,
) -> Result<(), GatewayError> {
    let request = ConsumeRequest {
        cost: 0,
        now,
        windows: Vec::new(),
        caller: Some(claims.caller()),
        // Nothing is counted.
        write_within_ms: 0,
    };
    let object = claims.rate_limit_key().object_name();
    match call(env, policy, &object, Endpoint::Consume, &request).await {
        Ok(Decision::Revoked { scope }) => Err(GatewayError::TokenRevoked { scope }),
        Ok(_) => Ok(()),
        Err(detail) => Err(GatewayError::LimiterUnavailable(detail)),
    }
}

/// Checks and consumes the route's cost for the caller's organisation, in every window of its
/// tier, with one call to its counter object.
pub(crate) async fn check(
    env: &Env,
    policy: &Policy,
    claims: &VerifiedClaims,
    route: &Route,
    now: UnixMillis,
) -> LimitOutcome {
    let mut outcome = enforce(env, policy, claims, route, now).await;
    let shadow = route.rate_limit_shadow
        || policy
            .tier_or_fallback(Some(claims.tier().as_str()))
            .1
            .is_some_and(|t| t.shadow);
    let would_limit = matches!(
        outcome.refusal,
        Some(GatewayError::RateLimited { .. } | GatewayError::CostExceedsLimit { .. })
    );
    if shadow && would_limit {
        worker::console_log!(
            "{}",
            serde_json::json!({"event": "rate_limit_shadow", "route": route.id.0, "issuer": claims.issuer(), "org": claims.org(), "tier": claims.tier(), "would_limit": true})
        );
        outcome.refusal = None;
        outcome
            .headers
            .push((SHADOW_HEADER, "would-limit".to_owned()));
    }
    outcome
}

async fn enforce(
    env: &Env,
    policy: &Policy,
    claims: &VerifiedClaims,
    route: &Route,
    now: UnixMillis,
) -> LimitOutcome {
    let (tier_name, tier) = policy.tier_or_fallback(Some(claims.tier().as_str()));
    let Some(tier) = tier else {
        return LimitOutcome {
            headers: Vec::new(),
            refusal: Some(GatewayError::Misconfigured(format!(
                "tier '{tier_name}' is not defined"
            ))),
        };
    };
    let request = ConsumeRequest {
        cost: route.cost,
        now,
        // A route that is not limited still has the caller's revocations checked.
        windows: if route.limited {
            tier.windows.clone()
        } else {
            Vec::new()
        },
        caller: Some(claims.caller()),
        write_within_ms: policy.write_interval_ms(tier),
    };
    let object = claims.rate_limit_key().object_name();
    match call(env, policy, &object, Endpoint::Consume, &request).await {
        Ok(Decision::Revoked { scope }) => LimitOutcome {
            headers: Vec::new(),
            refusal: Some(GatewayError::TokenRevoked { scope }),
        },
        Ok(Decision::Admitted { windows, .. }) => LimitOutcome {
            headers: response_headers(tier_name, &windows, route.cost, now),
            refusal: None,
        },
        Ok(Decision::Limited {
            retry_after_secs,
            windows,
        }) => {
            let limit = windows
                .iter()
                .filter(|w| w.remaining < u64::from(route.cost))
                .map(|w| w.limit)
                .min()
                .unwrap_or_default();
            LimitOutcome {
                headers: response_headers(tier_name, &windows, route.cost, now),
                refusal: Some(GatewayError::RateLimited {
                    retry_after_secs,
                    limit,
                    tier: tier_name.to_owned(),
                    upgrade_url: tier.upgrade_url.clone(),
                }),
            }
        }
        Ok(Decision::NeverFits { cost, limit }) => LimitOutcome {
            headers: Vec::new(),
            refusal: Some(GatewayError::CostExceedsLimit { cost, limit }),
        },
        // No answer, no revocation check: refused on every route (a token revoked before the
        // object became unreachable must not be served). Counting fails closed with it.
        Err(detail) => LimitOutcome {
            headers: Vec::new(),
            refusal: Some(GatewayError::LimiterUnavailable(detail)),
        },
    }
}
