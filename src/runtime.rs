//! Small bridges to the Workers runtime: the clock, the random request id, WebCrypto, and
//! subrequests with a timeout.

use std::time::Duration;

use futures_util::future::{Either, select};
use gateway_core::time::UnixMillis;
use wasm_bindgen::{JsCast, JsValue};
use worker::{AbortController, Delay, Fetch, Response};

/// The runtime clock (in production it advances only across I/O).
pub(crate) fn now() -> UnixMillis {
    UnixMillis(worker::Date::now().as_millis())
}

/// A random request id (`crypto.randomUUID()`), or a clock-based one if the runtime lacks it.
pub(crate) fn request_id() -> String {
    random_uuid().unwrap_or_else(|| {
        let salt = (js_sys::Math::random() * 1e9).floor();
        format!("t{}-{salt}", now().0)
    })
}

fn random_uuid() -> Option<String> {
    let crypto = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("crypto")).ok()?;
    let f = js_sys::Reflect::get(&crypto, &JsValue::from_str("randomUUID")).ok()?;
    let f: js_sys::Function = f.dyn_into().ok()?;
    f.call0(&crypto).ok()?.as_string()
}

/// `crypto.subtle`.
pub(crate) fn subtle() -> Result<web_sys::SubtleCrypto, String> {
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    global
        .crypto()
        .map(|c| c.subtle())
        .map_err(|e| format!("no WebCrypto: {e:?}"))
}

/// A JSON text as a JS object (for WebCrypto parameters and JWKs).
pub(crate) fn js_object(json: &str) -> Result<js_sys::Object, String> {
    js_sys::JSON::parse(json)
        .map_err(|e| format!("JSON.parse: {e:?}"))?
        .dyn_into::<js_sys::Object>()
        .map_err(|_| "not a JSON object".to_owned())
}

/// Why a subrequest produced no response.
pub(crate) enum FetchFailure {
    /// The peer could not be reached (connection refused, DNS, TLS...).
    Unreachable(String),
    /// No response headers within the timeout (the request was aborted).
    TimedOut,
}

/// Runs `work`, giving up after `timeout_ms` (`None`).
pub(crate) async fn within<T>(
    timeout_ms: u64,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    let work = Box::pin(work);
    let timeout = Box::pin(Delay::from(Duration::from_millis(timeout_ms)));
    match select(work, timeout).await {
        Either::Left((value, _)) => Some(value),
        Either::Right(((), _)) => None,
    }
}

/// A binding with a `fetch` method that subrequests go through instead of the global `fetch`:
/// the origin's mTLS certificate binding (`mtls_certificates` in `wrangler.toml`), which
/// presents the gateway's client certificate to the origin.
pub(crate) struct Via(js_sys::Object);

impl Via {
    /// The binding `name`, if this deployment has one with a `fetch` method.
    pub(crate) fn binding(env: &worker::Env, name: &str) -> Option<Via> {
        let value =
            js_sys::Reflect::get(env.as_ref(), &wasm_bindgen::JsValue::from_str(name)).ok()?;
        let object = value.dyn_into::<js_sys::Object>().ok()?;
        let fetch =
            js_sys::Reflect::get(&object, &wasm_bindgen::JsValue::from_str("fetch")).ok()?;
        fetch.is_function().then_some(Via(object))
    }

    async fn send(
        &self,
        request: &worker::Request,
        signal: &worker::AbortSignal,
    ) -> worker::Result<Response> {
        let fetch: js_sys::Function =
            js_sys::Reflect::get(&self.0, &wasm_bindgen::JsValue::from_str("fetch"))?.dyn_into()?;
        let init = js_sys::Object::new();
        js_sys::Reflect::set(&init, &"signal".into(), std::ops::Deref::deref(signal))?;
        let promise: js_sys::Promise = fetch.call2(&self.0, request.inner(), &init)?.dyn_into()?;
        let response: web_sys::Response = wasm_bindgen_futures::JsFuture::from(promise)
            .await?
            .dyn_into()?;
        Ok(Response::from(response))
    }
}

/// Sends a subrequest (through `via` when given), giving up (and aborting it) after
/// `timeout_ms`.
pub(crate) async fn fetch_via_with_timeout(
    request: worker::Request,
    via: Option<&Via>,
    timeout_ms: u64,
) -> Result<Response, FetchFailure> {
    let Some(via) = via else {
        return fetch_with_timeout(Fetch::Request(request), timeout_ms).await;
    };
    let controller = AbortController::default();
    let signal = controller.signal();
    match within(timeout_ms, via.send(&request, &signal)).await {
        Some(Ok(response)) => Ok(response),
        Some(Err(e)) => Err(FetchFailure::Unreachable(e.to_string())),
        None => {
            controller.abort();
            Err(FetchFailure::TimedOut)
        }
    }
}

/// Sends a subrequest, giving up (and aborting it) after `timeout_ms`.
pub(crate) async fn fetch_with_timeout(
    request: Fetch,
    timeout_ms: u64,
) -> Result<Response, FetchFailure> {
    let controller = AbortController::default();
    let signal = controller.signal();
    match within(timeout_ms, request.send_with_signal(&signal)).await {
        Some(Ok(response)) => Ok(response),
        Some(Err(e)) => Err(FetchFailure::Unreachable(e.to_string())),
        None => {
            controller.abort();
            Err(FetchFailure::TimedOut)
        }
    }
}

/// The mTLS checks (`gateway_core::mtls`): a route's requirement of a verified client
/// certificate and the caller's certificate binding. The edge's report is read only when one of
/// them applies.
pub(crate) fn check_client_certificate(
    req: &worker::Request,
    route_requires: bool,
    claims: Option<&gateway_core::identity::VerifiedClaims>,
) -> Result<(), gateway_core::error::GatewayError> {
    let bound_to = claims.and_then(|c| c.cert_thumbprint.as_deref());
    if !route_requires && bound_to.is_none() {
        return Ok(());
    }
    gateway_core::mtls::check(route_requires, bound_to, &client_certificate(req))
}

/// What the edge reported about the client's TLS certificate (`request.cf.tlsClientAuth`),
/// read field by field so a missing or odd `cf` object is simply "no certificate".
fn client_certificate(req: &worker::Request) -> gateway_core::mtls::ClientCertificate {
    let get = |target: &wasm_bindgen::JsValue, key: &str| {
        js_sys::Reflect::get(target, &wasm_bindgen::JsValue::from_str(key)).ok()
    };
    let auth = get(req.inner(), "cf")
        .filter(|cf| cf.is_object())
        .and_then(|cf| get(&cf, "tlsClientAuth"))
        .filter(|a| a.is_object());
    let Some(auth) = auth else {
        return gateway_core::mtls::ClientCertificate::default();
    };
    let field = |key: &str| get(&auth, key).and_then(|v| v.as_string());
    gateway_core::mtls::ClientCertificate {
        presented: field("certPresented").as_deref() == Some("1"),
        // Cloudflare reports a revoked certificate as verified, with `certRevoked: "1"`.
        verified: field("certVerified").as_deref() == Some("SUCCESS")
            && field("certRevoked").as_deref() != Some("1"),
        fingerprint_sha256: field("certFingerprintSHA256"),
    }
}
