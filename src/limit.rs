//! The counter objects' I/O: one Workers RPC round trip to an object, with a deadline and no
//! retry. The rate-limit stage (`check`) and the admin API's revocation check make theirs here;
//! what to ask and what the answer means are `gateway_core::pipeline`'s.

use gateway_core::config::Policy;
use gateway_core::error::GatewayError;
use gateway_core::identity::VerifiedClaims;
use std::cell::RefCell;

use gateway_core::limit::Decision;
use gateway_core::names::bindings::RATE_LIMITER;
use gateway_core::pipeline::{self, Limited};
use gateway_core::protocol;
use gateway_core::refusals::RefusalCache;
use gateway_core::route::Route;
use gateway_core::time::UnixMillis;
use worker::Env;

use wasm_bindgen::JsCast as _;

use crate::runtime::{Raced, race_deadline};

thread_local! {
    /// The organisations' refusals this isolate answers without a call (`gateway_core::refusals`).
    static REFUSALS: RefCell<RefusalCache> = RefCell::new(RefusalCache::default());
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
    let (object, request) = pipeline::revocation_call(claims, now);
    let reply: Result<Decision, String> =
        call(env, policy, &object, Endpoint::Consume, &request).await;
    pipeline::revocation_checked(reply.as_ref().map_err(String::as_str))
}

/// The rate-limit stage: the route's cost for the caller's organisation, in every window of
/// its tier, and its revocations, in one call to its counter object
/// (`gateway_core::pipeline::limit_call`); the answer as `gateway_core::pipeline::limited`
/// reads it. A refusal the object gave this isolate is answered from memory until it ends
/// (`gateway_core::refusals`), with no call.
pub(crate) async fn check(
    env: &Env,
    policy: &Policy,
    claims: &VerifiedClaims,
    route: &Route,
    now: UnixMillis,
) -> Limited {
    let limit_call = match pipeline::limit_call(policy, claims, route, now) {
        Ok(limit_call) => limit_call,
        Err(refusal) => {
            return Limited {
                headers: Vec::new(),
                refusal: Some(refusal),
                shadowed: false,
                from_memory: false,
            };
        }
    };
    let remembered = pipeline::refusals_apply(policy, &limit_call, route);
    let key = (limit_call.object.as_str(), limit_call.tier);
    if remembered
        && let Some(refusal) = REFUSALS.with(|r| r.borrow_mut().refused(key, route.cost, now))
    {
        let outcome = pipeline::limited(policy, &limit_call, route, Ok(refusal), now);
        return Limited {
            from_memory: true,
            ..outcome
        };
    }
    let sent_at = crate::runtime::now();
    let answer = call(env, policy, key.0, Endpoint::Consume, &limit_call.request).await;
    if let (true, Ok(decision)) = (remembered, answer.as_ref()) {
        REFUSALS.with(|r| r.borrow_mut().remember(key, route.cost, decision, sent_at));
    }
    let outcome = pipeline::limited(policy, &limit_call, route, answer, now);
    if outcome.shadowed {
        worker::console_log!(
            "{}",
            serde_json::json!({"event": "rate_limit_shadow", "route": route.id.0, "issuer": claims.issuer(), "org": claims.org(), "tier": claims.tier(), "would_limit": true})
        );
    }
    outcome
}
