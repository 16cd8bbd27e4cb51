//! The `cloudflare` target: the Worker's secrets through the Cloudflare API, all of them in one
//! request that makes (and deploys) one new Worker version — the contract `wrangler secret bulk`
//! uses: `GET .../workers/scripts/<script>/settings`, then `PATCH` the same path with a
//! multipart body whose one part, `settings`, lists every binding: the existing ones by type and
//! name (kept as they are), the new secrets with their text.
//!
//! `SECRETS_VERSION` is written in the same request as a `plain_text` binding, so the next run
//! can read which Vault versions are live (and do nothing when they are the same).

use serde_json::{Value, json};

use crate::mapping::FINGERPRINT_SECRET;

/// The public API base (overridable with `CLOUDFLARE_API_BASE_URL`, as wrangler's).
pub const DEFAULT_API_BASE: &str = "https://api.cloudflare.com/client/v4";

/// A Cloudflare API client for one Worker script.
pub struct Api {
    agent: ureq::Agent,
    base: String,
    account: String,
    script: String,
    token: String,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("account", &self.account)
            .field("script", &self.script)
            .finish_non_exhaustive()
    }
}

/// The Worker's current settings, as far as the sync needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Every binding, `{type, name, ...}`.
    pub bindings: Vec<Value>,
}

impl Settings {
    /// The fingerprint the last sync left (the `SECRETS_VERSION` plain-text binding).
    pub fn live_fingerprint(&self) -> Option<&str> {
        self.bindings
            .iter()
            .find(|b| b["name"] == FINGERPRINT_SECRET && b["type"] == "plain_text")
            .and_then(|b| b["text"].as_str())
    }

    /// Whether a secret of this name exists.
    pub fn has_secret(&self, name: &str) -> bool {
        self.bindings
            .iter()
            .any(|b| b["name"] == name && b["type"] == "secret_text")
    }
}

/// The `settings` part of the PATCH: existing bindings by type and name, minus the ones being
/// replaced, then the new secrets in order, then the fingerprint.
pub fn patch_settings(
    current: &Settings,
    secrets: &[(String, String)],
    fingerprint: &str,
) -> Value {
    let replaced =
        |name: &str| name == FINGERPRINT_SECRET || secrets.iter().any(|(n, _)| n == name);
    let mut bindings: Vec<Value> = current
        .bindings
        .iter()
        .filter(|b| !replaced(b["name"].as_str().unwrap_or_default()))
        .map(|b| json!({"type": b["type"], "name": b["name"]}))
        .collect();
    for (name, value) in secrets {
        bindings.push(json!({"type": "secret_text", "name": name, "text": value}));
    }
    bindings.push(json!({"type": "plain_text", "name": FINGERPRINT_SECRET, "text": fingerprint}));
    json!({ "bindings": bindings })
}

/// A multipart/form-data body with one JSON part named `settings` (no part content type, as
/// wrangler sends it). Returns the content type and the body.
pub fn multipart(settings: &Value, boundary: &str) -> (String, Vec<u8>) {
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"settings\"\r\n\r\n{settings}\r\n--{boundary}--\r\n"
    );
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

fn api_errors(body: &Value) -> String {
    body["errors"]
        .as_array()
        .map(|errs| {
            errs.iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        e["code"],
                        e["message"].as_str().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "no error detail".to_owned())
}

impl Api {
    /// A client; `base` without a trailing slash.
    pub fn new(agent: ureq::Agent, base: &str, account: &str, script: &str, token: String) -> Api {
        Api {
            agent,
            base: base.trim_end_matches('/').to_owned(),
            account: account.to_owned(),
            script: script.to_owned(),
            token,
        }
    }

    fn settings_path(&self) -> String {
        format!(
            "/accounts/{}/workers/scripts/{}/settings",
            self.account, self.script
        )
    }

    fn send(
        &self,
        method: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Value, String> {
        let path = self.settings_path();
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token));
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        let req = req
            .body(body)
            .map_err(|e| format!("building {method} {path}: {e}"))?;
        let mut resp = self
            .agent
            .run(req)
            .map_err(|e| format!("{method} {path}: the Cloudflare API is unreachable: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status != 200 || value["success"] != true {
            return Err(format!(
                "{method} {path}: the Cloudflare API answered {status}: {}",
                api_errors(&value)
            ));
        }
        Ok(value)
    }

    /// `GET .../settings`.
    pub fn settings(&self) -> Result<Settings, String> {
        let value = self.send("GET", None, Vec::new())?;
        Ok(Settings {
            bindings: value["result"]["bindings"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        })
    }

    /// `PATCH .../settings` with every secret and the fingerprint: one new version, deployed.
    pub fn write(
        &self,
        current: &Settings,
        secrets: &[(String, String)],
        fingerprint: &str,
    ) -> Result<(), String> {
        let settings = patch_settings(current, secrets, fingerprint);
        let boundary = format!("secrets-sync-{}", crate::plan::fingerprint_tag(fingerprint));
        let (content_type, body) = multipart(&settings, &boundary);
        self.send("PATCH", Some(&content_type), body).map(|_| ())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn existing_bindings_are_kept_by_name_and_ours_replaced() {
        let current = Settings {
            bindings: vec![
                json!({"type": "plain_text", "name": "ENVIRONMENT", "text": "production"}),
                json!({"type": "secret_text", "name": "GATEWAY_SIGNING_KEYS"}),
                json!({"type": "secret_text", "name": "OTHER_SECRET"}),
                json!({"type": "durable_object_namespace", "name": "RATE_LIMITER", "class_name": "RateLimiter"}),
                json!({"type": "plain_text", "name": "SECRETS_VERSION", "text": "sv1;old"}),
            ],
        };
        assert_eq!(current.live_fingerprint(), Some("sv1;old"));
        assert!(current.has_secret("OTHER_SECRET"));
        let s = patch_settings(
            &current,
            &[("GATEWAY_SIGNING_KEYS".into(), "{}".into())],
            "sv1;new",
        );
        let names: Vec<(&str, &str)> = s["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| (b["type"].as_str().unwrap(), b["name"].as_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                ("plain_text", "ENVIRONMENT"),
                ("secret_text", "OTHER_SECRET"),
                ("durable_object_namespace", "RATE_LIMITER"),
                ("secret_text", "GATEWAY_SIGNING_KEYS"),
                ("plain_text", "SECRETS_VERSION"),
            ]
        );
        assert!(
            s["bindings"][0].get("text").is_none(),
            "kept bindings carry no value"
        );
        assert_eq!(s["bindings"][3]["text"], "{}");
        let (ct, body) = multipart(&s, "b0");
        assert_eq!(ct, "multipart/form-data; boundary=b0");
        let body = String::from_utf8(body).unwrap();
        assert!(
            body.starts_with("--b0\r\nContent-Disposition: form-data; name=\"settings\"\r\n\r\n{")
        );
        assert!(body.ends_with("\r\n--b0--\r\n"));
    }
}
