//! The demo origin: the demo API's endpoints, each answering with a JSON echo of exactly
//! what it received (method, path, raw query, headers in order, body size and SHA-256), so tests
//! can assert what crossed the gateway byte for byte.

use sha2::{Digest, Sha256};
use tiny_http::Request;

use crate::server::{self, Reply};
use crate::signature::Verifier;

/// The endpoints the demo API serves.
pub(crate) const ENDPOINTS: [(&str, &str); 8] = [
    ("GET", "/api/health"),
    ("GET", "/api/transactions"),
    ("POST", "/api/transactions"),
    ("POST", "/api/transactions/export"),
    ("POST", "/api/reports/generate"),
    ("POST", "/api/documents"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/payouts"),
];

/// The login endpoint: the legacy password login the old API had (an "auth route" at the
/// gateway). 200 for `{"password": LOGIN_PASSWORD}`, 401 for anything else.
pub(crate) const LOGIN_PATH: &str = "/api/auth/login";
/// The demo login's one accepted password.
pub(crate) const LOGIN_PASSWORD: &str = "demo-password";

/// A request header that makes the demo origin wait this many milliseconds (at most 30 000)
/// before answering, so a slow origin can be shown (the gateway's 504).
pub(crate) const DELAY_HEADER: &str = "x-demo-delay-ms";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn echo(request: &mut Request, verifier: Option<&Verifier>) -> Reply {
    let method = request.method().as_str().to_owned();
    let target = request.url().to_owned();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.clone(), None),
    };
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    let read = request.as_reader().read_to_end(&mut body);
    if let Some(ms) = headers
        .iter()
        .find(|(n, _)| n == DELAY_HEADER)
        .and_then(|(_, v)| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms.min(30_000)));
    }
    if let Some(verifier) = verifier {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if let Err(reason) = verifier.check(&method, &target, &headers, &body, now) {
            let mut reply = Reply::json(
                401,
                &serde_json::json!({"origin": "demo", "error": "invalid_signature", "reason": reason}),
            );
            reply
                .headers
                .push(("x-powered-by", "demo-origin/1.0".to_owned()));
            return reply;
        }
    }
    let known = ENDPOINTS.iter().any(|(m, p)| *m == method && *p == path);
    let login_refused = path == LOGIN_PATH
        && serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("password")
                    .and_then(|p| p.as_str())
                    .map(|p| p == LOGIN_PASSWORD)
            })
            != Some(true);
    let status = if read.is_err() {
        400
    } else if login_refused {
        401
    } else if known {
        200
    } else {
        404
    };
    let value = serde_json::json!({
        "origin": "demo",
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "body": { "size": body.len(), "sha256": hex(&Sha256::digest(&body)) },
    });
    let mut reply = Reply::json(status, &value);
    // Headers a real origin leaks; the gateway must strip them.
    reply
        .headers
        .push(("x-powered-by", "demo-origin/1.0".to_owned()));
    reply
}

/// Serves the echo origin until killed; with a verifier, only correctly signed requests.
pub(crate) fn serve(
    listen: &str,
    threads: usize,
    verifier: Option<Verifier>,
) -> Result<(), String> {
    server::serve(listen, threads, move |request| {
        echo(request, verifier.as_ref())
    })
}
