//! The demo origin's check of the gateway's request signature — written independently of the
//! gateway's signer (`gateway_core::signing`), from the published description
//! (`docs/origin-signing.md`), and tested against the published vectors. This is what an origin
//! team would write: recompute the canonical string from the request as received, HMAC it with
//! the key named by `kid`, compare in constant time, refuse stale timestamps and replays.

use std::collections::HashMap;
use std::sync::Mutex;

use base64ct::{Base64UrlUnpadded, Encoding};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const WINDOW_SECS: u64 = 300;
const IDENTITY: [&str; 6] = [
    "x-gateway-issuer",
    "x-gateway-subject",
    "x-gateway-org",
    "x-gateway-tier",
    "x-gateway-scopes",
    "x-gateway-route",
];

/// Keys by id, and the signatures already seen (until they expire).
pub(crate) struct Verifier {
    keys: HashMap<String, Vec<u8>>,
    seen: Mutex<HashMap<String, u64>>,
}

impl Verifier {
    /// Reads a keyset file (`{"current": ..., "keys": [{"kid": ..., "secret": <base64url>}]}`).
    pub(crate) fn load(path: &str) -> Result<Verifier, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        Verifier::from_json(&text).map_err(|e| format!("{path}: {e}"))
    }

    pub(crate) fn from_json(text: &str) -> Result<Verifier, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|_| "not JSON".to_owned())?;
        let mut keys = HashMap::new();
        let listed = value
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or("no keys")?;
        for key in listed {
            let kid = key["kid"].as_str().ok_or("a key without kid")?;
            let secret = key["secret"].as_str().ok_or("a key without secret")?;
            let secret = Base64UrlUnpadded::decode_vec(secret)
                .map_err(|_| format!("key {kid}: bad secret"))?;
            keys.insert(kid.to_owned(), secret);
        }
        Ok(Verifier {
            keys,
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// Checks a received request. `headers` are (lower-case name, value) pairs.
    pub(crate) fn check(
        &self,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body: &[u8],
        now: u64,
    ) -> Result<(), &'static str> {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let signature = header("x-gateway-signature").ok_or("unsigned")?;
        let mut fields = HashMap::new();
        for part in signature.split(',') {
            let (k, v) = part.split_once('=').ok_or("malformed signature")?;
            fields.insert(k.trim(), v.trim());
        }
        let t: u64 = fields
            .get("t")
            .and_then(|t| t.parse().ok())
            .ok_or("malformed signature")?;
        let kid = fields.get("kid").ok_or("malformed signature")?;
        let v1 = fields.get("v1").ok_or("malformed signature")?;
        let key = self.keys.get(*kid).ok_or("unknown key")?;
        if now.abs_diff(t) > WINDOW_SECS {
            return Err("expired");
        }
        let mut canonical = format!(
            "v1\n{method}\n{target}\n{t}\n{}",
            header("x-request-id").unwrap_or_default()
        );
        for name in IDENTITY {
            canonical.push_str(&format!("\n{name}:{}", header(name).unwrap_or_default()));
        }
        let body_hash: String = Sha256::digest(body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        canonical.push('\n');
        canonical.push_str(&body_hash);
        let expected: Vec<u8> = v1
            .as_bytes()
            .chunks(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<_>>()
            .ok_or("malformed signature")?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| "bad key")?;
        mac.update(canonical.as_bytes());
        mac.verify_slice(&expected).map_err(|_| "bad signature")?;
        // Replays: the same signature twice within its window.
        let mut seen = self.seen.lock().map_err(|_| "state")?;
        seen.retain(|_, expires| *expires >= now);
        if seen
            .insert(format!("{kid}:{v1}"), t.saturating_add(WINDOW_SECS))
            .is_some()
        {
            return Err("replayed");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_published_vectors_once_and_refuses_changes() {
        let vectors: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../docs/signing-vectors.json")).unwrap();
        assert!(vectors.len() >= 3);
        for v in &vectors {
            let verifier = Verifier::from_json(&v["keyset"].to_string()).unwrap();
            let mut headers = vec![
                (
                    "x-gateway-signature".to_owned(),
                    v["signature_header"].as_str().unwrap().to_owned(),
                ),
                (
                    "x-request-id".to_owned(),
                    v["request_id"].as_str().unwrap().to_owned(),
                ),
            ];
            for (name, value) in IDENTITY.iter().zip(v["identity"].as_array().unwrap()) {
                if !value.as_str().unwrap().is_empty() {
                    headers.push(((*name).to_owned(), value.as_str().unwrap().to_owned()));
                }
            }
            let method = v["method"].as_str().unwrap();
            let target = v["path_and_query"].as_str().unwrap();
            let body = v["body_utf8"].as_str().unwrap().as_bytes();
            let now = v["timestamp"].as_u64().unwrap() + 5;
            let name = v["name"].as_str().unwrap();
            assert_eq!(
                verifier.check(method, target, &headers, b"tampered", now),
                Err("bad signature"),
                "{name}"
            );
            assert_eq!(
                verifier.check(method, target, &headers, body, now + 400),
                Err("expired"),
                "{name}"
            );
            assert_eq!(
                verifier.check(method, target, &headers, body, now),
                Ok(()),
                "{name}"
            );
            assert_eq!(
                verifier.check(method, target, &headers, body, now),
                Err("replayed"),
                "{name}"
            );
            assert_eq!(
                verifier.check(method, target, &headers[1..], body, now),
                Err("unsigned"),
                "{name}"
            );
        }
    }
}
