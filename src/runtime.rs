//! Small bridges to the Workers runtime: the clock, the random request id, WebCrypto, and
//! subrequests with a timeout.

use gateway_core::time::UnixMillis;
use wasm_bindgen::{JsCast, JsValue};

/// The runtime clock (in production it advances only across I/O): `Date.now()`, one call (no
/// `Date` object made and read).
pub(crate) fn now() -> UnixMillis {
    // Milliseconds since 1970 as an integral f64, far inside u64; a clock before 1970 (never)
    // saturates to 0.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let millis = js_sys::Date::now().max(0.0) as u64;
    UnixMillis(millis)
}

/// Allocates `kib` KiB of short-lived JavaScript (holey arrays of at most 64 KiB, dropped at
/// once): paces the isolate's minor collections (`gateway.collection_pacing_kib`). The runtime
/// destroys the request and response objects a collection frees inside that collection's pause,
/// so the number of requests served between two collections sets the pause's length; the
/// gateway allocates little JavaScript of its own, so without this its collections came
/// seldom and paused long (BENCHMARKS.md, "collection pauses").
pub(crate) fn pace_collections(kib: u32) {
    const CHUNK_KIB: u32 = 64;
    let mut left = kib;
    while left > 0 {
        let chunk = left.min(CHUNK_KIB);
        // 1 KiB is 256 elements of 4 bytes (V8's compressed pointers; 8 bytes without them).
        drop(js_sys::Array::new_with_length(chunk.saturating_mul(256)));
        left = left.saturating_sub(chunk);
    }
}

/// A random request id (`crypto.randomUUID()`), or a clock-based one if the runtime lacks it.
pub(crate) fn request_id() -> String {
    random_uuid().unwrap_or_else(|| {
        let salt = (js_sys::Math::random() * 1e9).floor();
        format!("t{}-{salt}", now().0)
    })
}

/// `globalThis[object]` and its method `method`, if the runtime has them (looked up once per
/// isolate by the thread-locals below).
fn global_method(object: &str, method: &str) -> Option<(JsValue, js_sys::Function)> {
    let target = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str(object)).ok()?;
    let f = js_sys::Reflect::get(&target, &JsValue::from_str(method)).ok()?;
    Some((target, f.dyn_into().ok()?))
}

thread_local! {
    /// `crypto.randomUUID`.
    static RANDOM_UUID: Option<(JsValue, js_sys::Function)> = global_method("crypto", "randomUUID");

    /// `console.log`.
    static CONSOLE_LOG: Option<js_sys::Function> = global_method("console", "log").map(|(_, f)| f);

    /// Bindings already looked up on `env`, by name.
    static BINDINGS: std::cell::RefCell<Vec<(&'static str, JsValue)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// A promise, seen only for `then` with a JavaScript function (js-sys' takes Rust closures).
    type Thenable;

    #[wasm_bindgen(method, js_name = then)]
    fn then_call(this: &Thenable, f: &js_sys::Function);
}

/// Writes a request's log line to the Workers log from a microtask of its own, once the current
/// call into the wasm module has returned. With an inspector attached (as `wrangler dev` always
/// attaches one), the runtime captures the calling stack with every console call and sends it
/// along; called from inside the module, that stack is the request's whole chain of wasm frames,
/// each named from the module (the call was 0.4 ms of sampled time per request, BENCHMARKS.md).
/// Lines keep their order (microtasks run in order), and are
/// written before the runtime moves on to the request's next I/O.
pub(crate) fn log_line(line: &str) {
    let queued = CONSOLE_LOG.with(|log| {
        log.as_ref().map(|log| {
            js_sys::Promise::resolve(&JsValue::from_str(line))
                .unchecked_ref::<Thenable>()
                .then_call(log);
        })
    });
    if queued.is_none() {
        worker::console_log!("{line}");
    }
}

fn random_uuid() -> Option<String> {
    RANDOM_UUID.with(|f| {
        let (crypto, f) = f.as_ref()?;
        f.call0(crypto).ok()?.as_string()
    })
}

/// `env[name]` (`undefined` if there is no such binding), looked up once per isolate: `env` and
/// its bindings are the isolate's (its values are read once per isolate too,
/// `settings::environment`), and a lookup on it costs tens of microseconds under load.
pub(crate) fn binding(env: &worker::Env, name: &'static str) -> JsValue {
    let known = BINDINGS.with(|known| {
        known
            .borrow()
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value.clone())
    });
    known.unwrap_or_else(|| {
        let value = js_sys::Reflect::get(env.as_ref(), &JsValue::from_str(name))
            .unwrap_or(JsValue::UNDEFINED);
        BINDINGS.with(|known| known.borrow_mut().push((name, value.clone())));
        value
    })
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

/// A configured timeout as the milliseconds JavaScript takes (small integers: exact as f64).
#[allow(clippy::cast_precision_loss)]
fn millis(timeout_ms: u64) -> f64 {
    timeout_ms as f64
}

/// Waits `ms` on a timer of the calling request's own (`scheduler.wait`, a workerd global): what
/// a request polls with while another request of the isolate does the work it waits for (a
/// promise or waker of another request's context must not resume it: the runtime cancels such
/// continuations). Returns at once if the timer cannot be set.
pub(crate) async fn sleep(ms: u64) {
    let wait = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("scheduler"))
        .and_then(|scheduler| {
            let wait: js_sys::Function =
                js_sys::Reflect::get(&scheduler, &JsValue::from_str("wait"))?.dyn_into()?;
            wait.call1(&scheduler, &JsValue::from_f64(millis(ms)))
        })
        .and_then(|p| p.dyn_into::<js_sys::Promise>());
    if let Ok(promise) = wait {
        let _ = crate::settle::settled(&promise).await;
    }
}

/// How a promise raced against a deadline ended.
pub(crate) enum Raced {
    /// It settled first: its value or its rejection.
    Settled(Result<JsValue, JsValue>),
    /// The deadline passed first.
    DeadlinePassed,
}

/// Awaits `promise` for at most `timeout_ms`: one timer, set up with the watch in one call and
/// cleared when the promise settles in time (`crate::settle`). A deadline is reported as
/// `undefined`, which neither `fetch` nor the counter object's RPC methods ever fulfil with.
pub(crate) async fn race_deadline(promise: js_sys::Promise, timeout_ms: u64) -> Raced {
    match crate::settle::settled_within(&promise, millis(timeout_ms)).await {
        Ok(value) if value.is_undefined() => Raced::DeadlinePassed,
        settled => Raced::Settled(settled),
    }
}

/// A binding with a `fetch` method that subrequests go through instead of the global `fetch`:
/// the origin's mTLS certificate binding (`mtls_certificates` in `wrangler.toml`), which
/// presents the gateway's client certificate to the origin.
pub(crate) struct Via(js_sys::Object);

impl Via {
    /// The binding `name`, if this deployment has one with a `fetch` method.
    pub(crate) fn binding(env: &worker::Env, name: &'static str) -> Option<Via> {
        let value = binding(env, name);
        if value.is_undefined() {
            return None;
        }
        let object = value.dyn_into::<js_sys::Object>().ok()?;
        let fetch =
            js_sys::Reflect::get(&object, &wasm_bindgen::JsValue::from_str("fetch")).ok()?;
        fetch.is_function().then_some(Via(object))
    }
}

/// A rejection as text (`TypeError: ...` for an `Error`).
fn describe(error: JsValue) -> String {
    worker::Error::from(error).to_string()
}

/// `fetch(url, init)` (through `via` when given), giving up and aborting it when no response
/// headers arrived within `timeout_ms`; the body then streams without a deadline, as before.
pub(crate) async fn fetch_with_deadline(
    url: &str,
    init: &web_sys::RequestInit,
    via: Option<&Via>,
    timeout_ms: u64,
) -> Result<web_sys::Response, FetchFailure> {
    let response = crate::settle::fetched_within(via.map(|v| &v.0), url, init, millis(timeout_ms))
        .map_err(|e| FetchFailure::Unreachable(describe(e)))?;
    match response.await {
        Ok(value) if value.is_undefined() => Err(FetchFailure::TimedOut),
        Ok(value) => value
            .dyn_into::<web_sys::Response>()
            .map_err(|_| FetchFailure::Unreachable("fetch gave no Response".to_owned())),
        Err(e) => Err(FetchFailure::Unreachable(describe(e))),
    }
}

/// The mTLS checks (`gateway_core::mtls`): a route's requirement of a verified client
/// certificate and the caller's certificate binding. The edge's report is read only when one of
/// them applies.
pub(crate) fn check_client_certificate(
    req: &web_sys::Request,
    route_requires: bool,
    claims: Option<&gateway_core::identity::VerifiedClaims>,
) -> Result<(), gateway_core::error::GatewayError> {
    let bound_to = claims.and_then(|c| c.cert_thumbprint());
    if !route_requires && bound_to.is_none() {
        return Ok(());
    }
    gateway_core::mtls::check(route_requires, bound_to, &client_certificate(req))
}

/// What the edge reported about the client's TLS certificate (`request.cf.tlsClientAuth`),
/// read field by field so a missing or odd `cf` object is simply "no certificate".
fn client_certificate(req: &web_sys::Request) -> gateway_core::mtls::ClientCertificate {
    let get = |target: &wasm_bindgen::JsValue, key: &str| {
        js_sys::Reflect::get(target, &wasm_bindgen::JsValue::from_str(key)).ok()
    };
    let auth = get(req, "cf")
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
