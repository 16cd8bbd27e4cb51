//! The `cloudflare` target against a local stand-in for the Cloudflare API (which cannot be
//! reached here). The stand-in is kept honest: the real `wrangler secret bulk` is pointed at it
//! too (`CLOUDFLARE_API_BASE_URL`), and our request must have the same method, path and body
//! shape as wrangler's.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stderr,
    clippy::string_slice
)]

mod common;

use std::sync::{Arc, Mutex};

use common::{Bao, key, scratch, sync};
use serde_json::{Value, json};

const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
const CF_TOKEN: &str = "cf-canary-api-token-0005";

/// One request the stand-in received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    url: String,
    authorization: String,
    content_type: String,
    body: Vec<u8>,
}

/// The stand-in API: answers GET/PATCH on a script's settings like Cloudflare's envelope.
struct Api {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Bindings GET settings returns.
    bindings: Arc<Mutex<Vec<Value>>>,
    /// Status PATCH answers with.
    patch_status: Arc<Mutex<u16>>,
}

impl Api {
    fn start() -> Api {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let bindings = Arc::new(Mutex::new(vec![
            json!({"type": "plain_text", "name": "ENVIRONMENT", "text": "staging"}),
            json!({"type": "secret_text", "name": "GATEWAY_SIGNING_KEYS"}),
            json!({"type": "secret_text", "name": "UNRELATED_SECRET"}),
            json!({"type": "durable_object_namespace", "name": "RATE_LIMITER", "class_name": "RateLimiter"}),
        ]));
        let patch_status = Arc::new(Mutex::new(200u16));
        let (s, b, p) = (seen.clone(), bindings.clone(), patch_status.clone());
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let mut body = Vec::new();
                let _ = req.as_reader().read_to_end(&mut body);
                let header = |name: &str| {
                    req.headers()
                        .iter()
                        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
                        .map(|h| h.value.as_str().to_owned())
                        .unwrap_or_default()
                };
                let entry = Seen {
                    method: req.method().as_str().to_owned(),
                    url: req.url().to_owned(),
                    authorization: header("Authorization"),
                    content_type: header("Content-Type"),
                    body,
                };
                s.lock().unwrap().push(entry.clone());
                let ok = |result: Value| json!({"success": true, "errors": [], "messages": [], "result": result});
                let (status, reply) = match entry.method.as_str() {
                    "GET" if entry.url.ends_with("/settings") => {
                        (200, ok(json!({"bindings": *b.lock().unwrap()})))
                    }
                    "PATCH" if entry.url.ends_with("/settings") => {
                        let status = *p.lock().unwrap();
                        if status == 200 {
                            (200, ok(json!({})))
                        } else {
                            (
                                status,
                                json!({"success": false, "errors": [{"code": 10013, "message": "An unknown error has occurred"}], "messages": [], "result": null}),
                            )
                        }
                    }
                    _ => (
                        404,
                        json!({"success": false, "errors": [{"code": 7003, "message": "No route"}]}),
                    ),
                };
                let response = tiny_http::Response::from_string(reply.to_string())
                    .with_status_code(status)
                    .with_header(
                        tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap(),
                    );
                let _ = req.respond(response);
            }
        });
        Api {
            base: format!("http://127.0.0.1:{port}/client/v4"),
            seen,
            bindings,
            patch_status,
        }
    }

    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// The `settings` part of a multipart body, parsed; panics unless it is the only part.
fn settings_part(seen: &Seen) -> Value {
    let boundary = seen
        .content_type
        .split("boundary=")
        .nth(1)
        .unwrap_or_else(|| panic!("no boundary in {}", seen.content_type))
        .trim_matches('"')
        .to_owned();
    let body = String::from_utf8(seen.body.clone()).unwrap();
    let parts: Vec<&str> = body
        .split(&format!("--{boundary}"))
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != "--")
        .collect();
    assert_eq!(parts.len(), 1, "one part: {body}");
    let (head, json) = parts[0].split_once("\r\n\r\n").unwrap();
    assert!(head.contains("form-data; name=\"settings\""), "{head}");
    serde_json::from_str(json.trim()).unwrap()
}

const MAPPING: &str = r#"
[environments.staging]
worker = "edge-gateway-staging"
auth = { method = "approle" }
cloudflare = { account_id = "0123456789abcdef0123456789abcdef", api_token = { path = "gateway/staging/cloudflare", key = "api_token" } }

[[environments.staging.secrets]]
name = "GATEWAY_SIGNING_KEYS"
path = "gateway/staging/origin-signing"
key = "secret"
format = "signing_keyset"
overlap_seconds = 900

[[environments.staging.secrets]]
name = "PARTNER_WEBHOOK_TOKEN"
path = "gateway/staging/partner"
key = "token"
"#;

#[test]
fn one_patch_like_wranglers_then_a_no_op_and_api_errors_write_nothing() {
    let dir = scratch("cloudflare");
    let bao = Bao::start(&dir);
    bao.put(
        "gateway/staging/origin-signing",
        json!({"secret": key("stg-1")}),
    );
    bao.put(
        "gateway/staging/partner",
        json!({"token": "partner-canary-token-0006"}),
    );
    bao.put("gateway/staging/cloudflare", json!({"api_token": CF_TOKEN}));
    let (role_id, secret_id) = bao.approle("sync-staging", &["secret/data/gateway/staging/*"]);
    std::fs::write(dir.join("secrets-sync.toml"), MAPPING).unwrap();
    let api = Api::start();
    let run = || {
        sync(
            &dir,
            &["--env", "staging", "--target", "cloudflare"],
            &[
                ("VAULT_ADDR", bao.addr.as_str()),
                ("VAULT_ROLE_ID", role_id.as_str()),
                ("VAULT_SECRET_ID", secret_id.as_str()),
                ("CLOUDFLARE_API_BASE_URL", api.base.as_str()),
            ],
        )
    };

    // First run: GET settings, then one PATCH with every secret.
    let first = run();
    assert_eq!(first.status, 0, "{}{}", first.stdout, first.stderr);
    assert_eq!(first.audit["result"], "written");
    let ours = api.take();
    let path =
        format!("/client/v4/accounts/{ACCOUNT}/workers/scripts/edge-gateway-staging/settings");
    let calls: Vec<(&str, &str)> = ours
        .iter()
        .map(|s| (s.method.as_str(), s.url.as_str()))
        .collect();
    assert_eq!(calls, [("GET", path.as_str()), ("PATCH", path.as_str())]);
    assert!(
        ours.iter()
            .all(|s| s.authorization == format!("Bearer {CF_TOKEN}"))
    );
    let settings = settings_part(&ours[1]);
    let bindings = settings["bindings"].as_array().unwrap();
    let fingerprint = first.audit["fingerprint"].as_str().unwrap();
    assert_eq!(
        bindings.last().unwrap(),
        &json!({"type": "plain_text", "name": "SECRETS_VERSION", "text": fingerprint})
    );
    assert!(!first.stdout.contains(CF_TOKEN) && !first.stdout.contains(&key("stg-1")));

    // The real wrangler, with the same secrets, against the same stand-in.
    let ours_without_fp: Vec<Value> = bindings[..bindings.len() - 1].to_vec();
    let secrets: serde_json::Map<String, Value> = ours_without_fp
        .iter()
        .filter(|b| b.get("text").is_some())
        .map(|b| (b["name"].as_str().unwrap().to_owned(), b["text"].clone()))
        .collect();
    assert_eq!(secrets.len(), 2);
    let wdir = std::env::temp_dir().join(format!("wrangler-bulk-{}", std::process::id()));
    std::fs::create_dir_all(&wdir).unwrap();
    std::fs::write(
        wdir.join("secrets.json"),
        Value::Object(secrets).to_string(),
    )
    .unwrap();
    let wrangler = common::root().join("miniflare/node_modules/.bin/wrangler");
    let out = std::process::Command::new(wrangler)
        .current_dir(&wdir)
        .args([
            "secret",
            "bulk",
            "secrets.json",
            "--name",
            "edge-gateway-staging",
        ])
        .env("CLOUDFLARE_API_BASE_URL", &api.base)
        .env("CLOUDFLARE_API_TOKEN", CF_TOKEN)
        .env("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_HIDE_BANNER", "true")
        .env("XDG_CONFIG_HOME", wdir.join("config"))
        .env("CI", "true")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "wrangler secret bulk: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = api.take();
    let calls: Vec<(&str, &str)> = theirs
        .iter()
        .map(|s| (s.method.as_str(), s.url.as_str()))
        .collect();
    assert_eq!(
        calls,
        [("GET", path.as_str()), ("PATCH", path.as_str())],
        "wrangler's calls"
    );
    assert!(
        theirs[1]
            .content_type
            .starts_with("multipart/form-data; boundary=")
    );
    let theirs_settings = settings_part(&theirs[1]);
    assert_eq!(
        theirs_settings["bindings"].as_array().unwrap(),
        &ours_without_fp,
        "our bindings (without SECRETS_VERSION) must be exactly wrangler's"
    );
    let _ = std::fs::remove_dir_all(&wdir);

    // The stand-in now reports what we wrote: the next run reads the fingerprint and is a no-op.
    {
        let mut live = api.bindings.lock().unwrap();
        live.push(json!({"type": "secret_text", "name": "PARTNER_WEBHOOK_TOKEN"}));
        live.push(json!({"type": "plain_text", "name": "SECRETS_VERSION", "text": fingerprint}));
    }
    let again = run();
    assert_eq!(again.audit["result"], "unchanged", "{}", again.stdout);
    let calls: Vec<String> = api.take().iter().map(|s| s.method.clone()).collect();
    assert_eq!(calls, ["GET"], "no write when nothing changed");

    // A rotation with the API failing mid-run: exit 1, nothing reported as written.
    bao.put(
        "gateway/staging/origin-signing",
        json!({"secret": key("stg-2")}),
    );
    *api.patch_status.lock().unwrap() = 500;
    let failed = run();
    assert_eq!(failed.status, 1);
    assert_eq!(failed.audit["result"], "failed");
    assert_eq!(failed.audit["written"], false);
    assert!(
        failed.audit["error"].as_str().unwrap().contains("500"),
        "{}",
        failed.audit
    );
    let calls: Vec<String> = api.take().iter().map(|s| s.method.clone()).collect();
    assert_eq!(calls, ["GET", "PATCH"]);
    // Dry run: says what would change, sends no write.
    *api.patch_status.lock().unwrap() = 200;
    let dry = sync(
        &dir,
        &["--env", "staging", "--target", "cloudflare", "--dry-run"],
        &[
            ("VAULT_ADDR", bao.addr.as_str()),
            ("VAULT_ROLE_ID", role_id.as_str()),
            ("VAULT_SECRET_ID", secret_id.as_str()),
            ("CLOUDFLARE_API_BASE_URL", api.base.as_str()),
        ],
    );
    assert_eq!(dry.audit["result"], "would_write");
    let changes: Vec<(String, String)> = dry.audit["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["change"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("GATEWAY_SIGNING_KEYS".to_owned(), "changed".to_owned()),
            ("PARTNER_WEBHOOK_TOKEN".to_owned(), "unchanged".to_owned())
        ]
    );
    let calls: Vec<String> = api.take().iter().map(|s| s.method.clone()).collect();
    assert_eq!(calls, ["GET"]);
}
