//! Small bridges to the Workers runtime: the clock and the random request id.

use gateway_core::time::UnixMillis;
use wasm_bindgen::{JsCast, JsValue};

/// The runtime clock (in production it advances only across I/O).
pub(crate) fn now() -> UnixMillis {
    UnixMillis(worker::Date::now().as_millis())
}

/// A random request id (`crypto.randomUUID()`), or a clock-based one if the runtime lacks it.
pub(crate) fn request_id() -> String {
    random_uuid().unwrap_or_else(|| format!("t{}-{:08x}", now().0, (js_sys::Math::random() * f64::from(u32::MAX)) as u32))
}

fn random_uuid() -> Option<String> {
    let crypto = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("crypto")).ok()?;
    let f = js_sys::Reflect::get(&crypto, &JsValue::from_str("randomUUID")).ok()?;
    let f: js_sys::Function = f.dyn_into().ok()?;
    f.call0(&crypto).ok()?.as_string()
}
