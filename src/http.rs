//! The request and the response at the runtime boundary, read and written in as few calls as
//! possible.
//!
//! Every call between wasm and JavaScript costs more than most of the gateway's own decisions (a
//! string crossing each way, an externref slot, often an allocation on both sides: see
//! BENCHMARKS.md, "Where the time goes"). So a header block is read whole, in one call and one
//! string (`src/headers.js` joins it; `gateway_core::header_block` splits it without copying),
//! and looked up in Rust. The headers the gateway sends
//! are decided whole in Rust; for the origin request and the client response (the blocks that
//! mostly pass through) the runtime copies the block it already holds and gets only the edits
//! (`gateway_core::header_edit`, applied by `src/headers.js`; `make bench-boundary`: half the
//! cost of rebuilding the response's block, 0.63x the request's); the gateway's own responses
//! are built whole, as the `init` of one `new Response` (one `JSON.parse`). The raw `web_sys`
//! types are used instead of workers-rs' `Request`/`Response` wrappers on this path: converting
//! into those reads `request.cf` (an object the runtime builds on every read), the URL and the
//! method, whether they are needed or not.

use wasm_bindgen::{JsCast, JsValue};

/// A header block as the runtime iterates it: lower-case names, the values of a repeated name
/// combined (`Set-Cookie` apart), in order. Read in one call, as one string
/// (`gateway_core::header_block`).
pub(crate) use gateway_core::header_block::HeaderBlock as HeaderList;

/// Every header of `headers`, in one call; `None` if the runtime's block could not be read.
pub(crate) fn read_headers(headers: &web_sys::Headers) -> Option<HeaderList> {
    HeaderList::parse(header_block_js(headers).ok()?)
}

/// Whether the runtime accepts `value` as a header value (`Headers.append` throws a `TypeError`
/// for NUL, CR or LF, and for characters outside Latin-1, which a `ByteString` cannot hold).
pub(crate) fn valid_header_value(value: &str) -> bool {
    value
        .chars()
        .all(|c| !matches!(c, '\0' | '\r' | '\n') && u32::from(c) <= 0xFF)
}

/// Whether `name` is an HTTP token (RFC 9110 section 5.6.2), as the runtime requires of a header
/// name.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The JSON text of a `fetch`/`Response` init: `{<fields>, "headers": [[name, value], ...]}`.
#[derive(serde::Serialize)]
struct InitText<'a, F: serde::Serialize> {
    #[serde(flatten)]
    fields: F,
    headers: Vec<[&'a str; 2]>,
}

/// The init (`{"status": ..}` or `{"method": .., "redirect": ..}`, plus `headers` as `[name,
/// value]` pairs) as a JS object, in one call (`JSON.parse`). Pairs the runtime would refuse
/// are left out (the callers check the ones that must not be dropped).
fn init_object<F: serde::Serialize, N: AsRef<str>, V: AsRef<str>>(
    fields: F,
    headers: &[(N, V)],
) -> Result<js_sys::Object, String> {
    let headers = headers
        .iter()
        .map(|(n, v)| [n.as_ref(), v.as_ref()])
        .filter(|[n, v]| valid_header_name(n) && valid_header_value(v))
        .collect();
    let text = serde_json::to_string(&InitText { fields, headers }).map_err(|e| e.to_string())?;
    js_sys::JSON::parse(&text)
        .map_err(|e| format!("JSON.parse: {e:?}"))?
        .dyn_into::<js_sys::Object>()
        .map_err(|_| "not an object".to_owned())
}

#[derive(serde::Serialize)]
struct ResponseFields {
    status: u16,
}

#[cfg(feature = "bench")]
#[derive(serde::Serialize)]
struct RequestFields<'a> {
    method: &'a str,
    redirect: &'static str,
}

/// What a response's body is.
pub(crate) enum Body<'a> {
    /// None (204, 304, HEAD answers...).
    Empty,
    /// Bytes the gateway wrote.
    Bytes(&'a [u8]),
    /// A stream passed through untouched (the origin's body).
    Stream(Option<web_sys::ReadableStream>),
}

/// A response with these status, headers and body, built in one `new Response`. Never fails:
/// if the runtime refuses it (it cannot, for the statuses and checked headers the gateway
/// uses), a bare 500; if even that is refused, `undefined`, which the runtime answers with its
/// own 500.
pub(crate) fn response<N: AsRef<str>, V: AsRef<str>>(
    status: u16,
    headers: &[(N, V)],
    body: Body<'_>,
) -> web_sys::Response {
    build_response(status, headers, body)
        .or_else(|_| {
            let init = web_sys::ResponseInit::new();
            init.set_status(500);
            web_sys::Response::new_with_opt_str_and_init(None, &init).map_err(|e| format!("{e:?}"))
        })
        .unwrap_or_else(|_| JsValue::UNDEFINED.unchecked_into())
}

fn build_response<N: AsRef<str>, V: AsRef<str>>(
    status: u16,
    headers: &[(N, V)],
    body: Body<'_>,
) -> Result<web_sys::Response, String> {
    let init: web_sys::ResponseInit =
        init_object(ResponseFields { status }, headers)?.unchecked_into();
    match body {
        Body::Empty => web_sys::Response::new_with_opt_str_and_init(None, &init),
        Body::Bytes(bytes) => web_sys::Response::new_with_opt_buffer_source_and_init(
            Some(&js_sys::Uint8Array::from(bytes)),
            &init,
        ),
        Body::Stream(stream) => {
            web_sys::Response::new_with_opt_readable_stream_and_init(stream.as_ref(), &init)
        }
    }
    .map_err(|e| format!("{e:?}"))
}

/// The `init` of an outbound `fetch` built whole: method, headers (all checked by the caller),
/// manual redirects, and the body if any. The way the origin request was built before
/// `forwarding_init`; kept for the header-block benchmark's comparison (`make bench-boundary`).
#[cfg(feature = "bench")]
pub(crate) fn request_init<N: AsRef<str>, V: AsRef<str>>(
    method: &str,
    headers: &[(N, V)],
    body: Option<&[u8]>,
) -> Result<web_sys::RequestInit, String> {
    let init = init_object(
        RequestFields {
            method,
            redirect: "manual",
        },
        headers,
    )?;
    if let Some(bytes) = body {
        js_sys::Reflect::set(
            &init,
            &JsValue::from_str("body"),
            &js_sys::Uint8Array::from(bytes),
        )
        .map_err(|e| format!("{e:?}"))?;
    }
    Ok(init.unchecked_into())
}

#[wasm_bindgen::prelude::wasm_bindgen(module = "/src/headers.js")]
extern "C" {
    /// The entries of `headers` as `name\0value\0...` (`gateway_core::header_block`).
    #[wasm_bindgen(catch, js_name = block)]
    fn header_block_js(headers: &web_sys::Headers) -> Result<String, JsValue>;

    /// `new Response(upstream.body, upstream)` with the edits applied to its headers.
    #[wasm_bindgen(catch, js_name = decorated)]
    fn decorated_js(
        upstream: &web_sys::Response,
        edits: &str,
    ) -> Result<web_sys::Response, JsValue>;

    /// `{method, headers: [...inbound] + edits, redirect: "manual", body}`.
    #[wasm_bindgen(catch, js_name = outboundInit)]
    fn outbound_init_js(
        method: &str,
        inbound: &web_sys::Headers,
        edits: &str,
        body: Option<js_sys::Uint8Array>,
    ) -> Result<web_sys::RequestInit, JsValue>;
}

/// The edits that turn `base` into `wanted` (pairs the runtime would refuse left out of
/// `wanted`, as `init_object` leaves them out), encoded for `src/headers.js`.
fn encoded_edits(base: &[(&str, &str)], wanted: &[(String, String)]) -> String {
    use gateway_core::header_edit::{HeaderEdit, header_edits};
    let valid = |(n, v): &&(String, String)| valid_header_name(n) && valid_header_value(v);
    // Copied only if a pair must go (the callers check theirs, so on the request path none does).
    let wanted: std::borrow::Cow<'_, [(String, String)]> = if wanted.iter().all(|p| valid(&p)) {
        wanted.into()
    } else {
        wanted
            .iter()
            .filter(valid)
            .cloned()
            .collect::<Vec<_>>()
            .into()
    };
    let mut out = String::new();
    for edit in header_edits(base, &wanted) {
        let (op, name, value) = match edit {
            HeaderEdit::Delete(name) => ('d', name, ""),
            HeaderEdit::Set(name, value) => ('s', name, value),
            HeaderEdit::Append(name, value) => ('a', name, value),
        };
        if !out.is_empty() {
            out.push('\0');
        }
        out.push(op);
        out.push('\0');
        out.push_str(name);
        out.push('\0');
        out.push_str(value);
    }
    out
}

/// The client's response from the origin's: its status, status text and body (streamed
/// untouched), and its headers (`base`, as read) copied by the runtime and changed into `wanted`.
pub(crate) fn decorated(
    upstream: &web_sys::Response,
    base: &[(&str, &str)],
    wanted: &[(String, String)],
) -> Result<web_sys::Response, String> {
    decorated_js(upstream, &encoded_edits(base, wanted)).map_err(|e| format!("{e:?}"))
}

/// The `init` of the origin `fetch`: the client's header block (`inbound`, read as `base`)
/// listed as pairs and changed into `wanted`, manual redirects, the body if any.
pub(crate) fn forwarding_init(
    method: &str,
    inbound: &web_sys::Headers,
    base: &[(&str, &str)],
    wanted: &[(String, String)],
    body: Option<&[u8]>,
) -> Result<web_sys::RequestInit, String> {
    outbound_init_js(
        method,
        inbound,
        &encoded_edits(base, wanted),
        body.map(js_sys::Uint8Array::from),
    )
    .map_err(|e| format!("{e:?}"))
}

/// The request as the pipeline reads it: method, URL and header block read once.
pub(crate) struct Incoming {
    raw: web_sys::Request,
    /// `request.method`.
    pub(crate) method: String,
    /// `request.url`.
    pub(crate) url: String,
    /// `request.headers`, whole.
    pub(crate) headers: HeaderList,
    /// The runtime's `request.headers` (copied for the origin request).
    headers_object: web_sys::Headers,
    /// Whether `headers` could be read (the pipeline answers 400 if not).
    pub(crate) headers_read: bool,
}

impl Incoming {
    /// Reads the request's method, URL and headers (three calls).
    pub(crate) fn read(raw: web_sys::Request) -> Incoming {
        let headers_object = raw.headers();
        let headers = read_headers(&headers_object);
        Incoming {
            headers_object,
            method: raw.method(),
            url: raw.url(),
            headers_read: headers.is_some(),
            headers: headers.unwrap_or_default(),
            raw,
        }
    }

    /// The runtime's request (for `request.cf`).
    pub(crate) fn raw(&self) -> &web_sys::Request {
        &self.raw
    }

    /// The runtime's header block, as the client sent it.
    pub(crate) fn headers_object(&self) -> &web_sys::Headers {
        &self.headers_object
    }

    /// The body, if the request has one.
    pub(crate) fn body(&self) -> Option<web_sys::ReadableStream> {
        self.raw.body()
    }
}
