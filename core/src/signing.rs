//! Signing forwarded requests, so the origin can trust what the gateway says about the caller.
//!
//! Every request the gateway forwards carries
//! `X-Gateway-Signature: t=<unix seconds>,kid=<key id>,v1=<hex HMAC-SHA256>` over the canonical
//! string (lines joined with `\n`, no trailing newline):
//!
//! ```text
//! v1
//! <METHOD>
//! <path and query exactly as forwarded>
//! <t>
//! <x-request-id>
//! x-gateway-issuer:<value or empty>
//! x-gateway-subject:<value or empty>
//! x-gateway-org:<value or empty>
//! x-gateway-tier:<value or empty>
//! x-gateway-scopes:<value or empty>
//! x-gateway-route:<value>
//! <lower-case hex SHA-256 of the body; of the empty string when there is none>
//! ```
//!
//! The key is the current key of the `GATEWAY_SIGNING_KEYS` keyset (current + previous during a
//! rotation). An origin verifies with [`verify`]: the key named by `kid`, `|now - t| <= 300 s`,
//! a constant-time comparison, and it remembers `(kid, v1)` until `t + 300 s` to refuse replays.
//! Test vectors: `docs/signing-vectors.json` (see `docs/origin-signing.md`).

use std::fmt;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::names::identity_headers;

/// The replay window an origin should apply, seconds either side.
pub const REPLAY_WINDOW_SECS: u64 = 300;

/// Shortest accepted key, bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// One signing key. Its secret never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// Key id, sent in the signature header.
    pub kid: String,
    secret: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The keyset from the `GATEWAY_SIGNING_KEYS` secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyset {
    keys: Vec<SigningKey>,
    current: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysetFile {
    current: String,
    keys: Vec<KeyFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    kid: String,
    secret: String,
}

impl Keyset {
    /// Parses `{"current": "<kid>", "keys": [{"kid": "<kid>", "secret": "<base64url>"}]}`.
    /// Errors never include a secret.
    pub fn from_json(text: &str) -> Result<Keyset, String> {
        let file: KeysetFile = serde_json::from_str(text).map_err(|e| {
            format!(
                "not a signing keyset ({})",
                crate::encoding::classify_json_error(&e)
            )
        })?;
        let mut keys = Vec::with_capacity(file.keys.len());
        for key in file.keys {
            if key.kid.is_empty()
                || !key
                    .kid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err("a key id must be non-empty [A-Za-z0-9._-]".to_owned());
            }
            let secret = crate::encoding::decode_base64url(&key.secret)
                .ok_or_else(|| format!("key '{}': the secret is not base64url", key.kid))?;
            if secret.len() < MIN_KEY_BYTES {
                return Err(format!(
                    "key '{}': the secret must be at least {MIN_KEY_BYTES} bytes",
                    key.kid
                ));
            }
            if keys.iter().any(|k: &SigningKey| k.kid == key.kid) {
                return Err(format!("key id '{}' appears twice", key.kid));
            }
            keys.push(SigningKey {
                kid: key.kid,
                secret,
            });
        }
        let current = keys
            .iter()
            .position(|k| k.kid == file.current)
            .ok_or_else(|| format!("the current key '{}' is not in the keyset", file.current))?;
        Ok(Keyset { keys, current })
    }

    /// The key new signatures use.
    pub fn current(&self) -> Option<&SigningKey> {
        self.keys.get(self.current)
    }

    /// A key by id (current or previous).
    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

/// What a signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedParts<'a> {
    /// The request method.
    pub method: &'a str,
    /// Path and query exactly as sent to the origin.
    pub path_and_query: &'a str,
    /// Unix seconds.
    pub timestamp: u64,
    /// The request id header's value.
    pub request_id: &'a str,
    /// Identity header values, in [`identity_headers::ALL`] order (empty when absent).
    pub identity: [&'a str; 6],
    /// Lower-case hex SHA-256 of the body.
    pub body_sha256: String,
}

/// The canonical string (see the module documentation).
pub fn canonical_string(parts: &SignedParts<'_>) -> String {
    let mut lines = vec![
        "v1".to_owned(),
        parts.method.to_owned(),
        parts.path_and_query.to_owned(),
        parts.timestamp.to_string(),
        parts.request_id.to_owned(),
    ];
    for (name, value) in identity_headers::ALL.iter().zip(parts.identity) {
        lines.push(format!("{name}:{value}"));
    }
    lines.push(parts.body_sha256.clone());
    lines.join("\n")
}

fn mac(key: &SigningKey, canonical: &str) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key.secret).ok()?;
    mac.update(canonical.as_bytes());
    Some(mac)
}

/// The signature header value for these parts, with `key`.
pub fn sign(key: &SigningKey, parts: &SignedParts<'_>) -> Option<String> {
    let tag = mac(key, &canonical_string(parts))?.finalize().into_bytes();
    Some(format!(
        "t={},kid={},v1={}",
        parts.timestamp,
        key.kid,
        crate::encoding::hex(&tag)
    ))
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// No or malformed signature header.
    Malformed,
    /// `kid` not in the keyset.
    UnknownKey,
    /// `t` outside the replay window.
    Stale,
    /// The MAC does not match.
    Mismatch,
}

/// Verifies a signature header against the parts the origin received (their `timestamp` is
/// ignored: the header's `t` is used), at `now` (unix seconds).
pub fn verify(
    keyset: &Keyset,
    header: &str,
    parts: &SignedParts<'_>,
    now: u64,
) -> Result<(), VerifyError> {
    let mut t = None;
    let mut kid = None;
    let mut v1 = None;
    for field in header.split(',') {
        match field.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("kid", v)) => kid = Some(v),
            Some(("v1", v)) => v1 = Some(v),
            _ => return Err(VerifyError::Malformed),
        }
    }
    let (Some(t), Some(kid), Some(v1)) = (t, kid, v1) else {
        return Err(VerifyError::Malformed);
    };
    let key = keyset.get(kid).ok_or(VerifyError::UnknownKey)?;
    if now.abs_diff(t) > REPLAY_WINDOW_SECS {
        return Err(VerifyError::Stale);
    }
    let tag = crate::encoding::decode_hex(v1).ok_or(VerifyError::Malformed)?;
    let signed = SignedParts {
        timestamp: t,
        ..parts.clone()
    };
    mac(key, &canonical_string(&signed))
        .ok_or(VerifyError::Mismatch)?
        .verify_slice(&tag)
        .map_err(|_| VerifyError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::sha256_hex;

    #[derive(Deserialize)]
    struct Vector {
        name: String,
        keyset: serde_json::Value,
        method: String,
        path_and_query: String,
        timestamp: u64,
        request_id: String,
        identity: [String; 6],
        body_utf8: String,
        canonical: String,
        signature_header: String,
    }

    fn vectors() -> Vec<Vector> {
        serde_json::from_str(include_str!("../../docs/signing-vectors.json")).unwrap()
    }

    fn parts(v: &Vector) -> SignedParts<'_> {
        SignedParts {
            method: &v.method,
            path_and_query: &v.path_and_query,
            timestamp: v.timestamp,
            request_id: &v.request_id,
            identity: [
                &v.identity[0],
                &v.identity[1],
                &v.identity[2],
                &v.identity[3],
                &v.identity[4],
                &v.identity[5],
            ],
            body_sha256: sha256_hex(v.body_utf8.as_bytes()),
        }
    }

    #[test]
    fn published_vectors_sign_and_verify() {
        let vectors = vectors();
        assert!(vectors.len() >= 3);
        for v in &vectors {
            let keyset = Keyset::from_json(&v.keyset.to_string()).unwrap();
            let p = parts(v);
            assert_eq!(canonical_string(&p), v.canonical, "{}", v.name);
            assert_eq!(
                sign(keyset.current().unwrap(), &p).unwrap(),
                v.signature_header,
                "{}",
                v.name
            );
            assert_eq!(
                verify(&keyset, &v.signature_header, &p, v.timestamp + 10),
                Ok(()),
                "{}",
                v.name
            );
        }
    }

    #[test]
    fn tampering_staleness_and_unknown_keys_are_refused() {
        let v = &vectors()[0];
        let keyset = Keyset::from_json(&v.keyset.to_string()).unwrap();
        let p = parts(v);
        let header = &v.signature_header;
        let at = v.timestamp;
        assert_eq!(
            verify(
                &keyset,
                header,
                &SignedParts {
                    method: "DELETE",
                    ..p.clone()
                },
                at
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(
                &keyset,
                header,
                &SignedParts {
                    path_and_query: "/api/transactions?x=2",
                    ..p.clone()
                },
                at
            ),
            Err(VerifyError::Mismatch)
        );
        let mut identity = p.identity;
        identity[2] = "evil-corp";
        assert_eq!(
            verify(
                &keyset,
                header,
                &SignedParts {
                    identity,
                    ..p.clone()
                },
                at
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(
                &keyset,
                header,
                &SignedParts {
                    body_sha256: sha256_hex(b"other"),
                    ..p.clone()
                },
                at
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(&keyset, header, &p, at + 301),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(&keyset, header, &p, at - 301),
            Err(VerifyError::Stale)
        );
        assert_eq!(verify(&keyset, header, &p, at + 300), Ok(()));
        let other_kid = header.replace("kid=", "kid=x");
        assert_eq!(
            verify(&keyset, &other_kid, &p, at),
            Err(VerifyError::UnknownKey)
        );
        for bad in [
            "",
            "t=1",
            "t=x,kid=a,v1=00",
            "t=1,kid=a,v1=zz",
            "t=1,kid=a,v1=00,extra=1",
        ] {
            assert!(verify(&keyset, bad, &p, at).is_err(), "{bad}");
        }
    }

    #[test]
    fn keysets_are_checked_without_revealing_secrets() {
        let long = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";
        for (text, needle) in [
            ("{", "malformed JSON"),
            (
                r#"{"current": "a", "keys": []}"#,
                "the current key 'a' is not in the keyset",
            ),
            (
                r#"{"current": "a", "keys": [{"kid": "a", "secret": "c2hvcnQ"}]}"#,
                "at least 32 bytes",
            ),
            (
                r#"{"current": "a", "keys": [{"kid": "a", "secret": "!!"}]}"#,
                "not base64url",
            ),
            (
                r#"{"current": "a", "keys": [{"kid": "a b", "secret": "x"}]}"#,
                "key id",
            ),
        ] {
            let err = Keyset::from_json(text).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        let dup = format!(
            r#"{{"current": "a", "keys": [{{"kid": "a", "secret": "{long}"}}, {{"kid": "a", "secret": "{long}"}}]}}"#
        );
        assert!(Keyset::from_json(&dup).unwrap_err().contains("twice"));
        let ok = Keyset::from_json(&format!(r#"{{"current": "b", "keys": [{{"kid": "a", "secret": "{long}"}}, {{"kid": "b", "secret": "{long}"}}]}}"#)).unwrap();
        assert_eq!(ok.current().unwrap().kid, "b");
        assert!(ok.get("a").is_some());
        assert!(
            !format!("{ok:?}").contains("secret-secret"),
            "Debug must not show secrets"
        );
    }
}
