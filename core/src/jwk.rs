//! JSON Web Keys (RFC 7517) as issuers publish them, their RFC 7638 thumbprints, and the choice
//! of the key that verifies a token.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::issuer::Algorithm;

/// A JSON Web Key as published; only public members are kept (and `k` for HS256 secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type.
    pub kty: String,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Intended algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Curve (EC, OKP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x / OKP public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Symmetric key (HS256, from the static JWKS secret only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<String>,
}

impl Jwk {
    /// The key's RFC 7638 thumbprint (SHA-256 over its required members, in lexicographic order
    /// with no whitespace), as hex: what identifies the key material itself, whatever `kid` it
    /// is published under. `None` for a key missing a required member.
    pub fn thumbprint(&self) -> Option<String> {
        let text = |v: &Option<String>| {
            v.as_deref()
                .map(|s| Value::String(s.to_owned()).to_string())
        };
        let kty = Value::String(self.kty.clone()).to_string();
        let canonical = match self.kty.as_str() {
            "EC" => format!(
                r#"{{"crv":{},"kty":{kty},"x":{},"y":{}}}"#,
                text(&self.crv)?,
                text(&self.x)?,
                text(&self.y)?
            ),
            "RSA" => format!(
                r#"{{"e":{},"kty":{kty},"n":{}}}"#,
                text(&self.e)?,
                text(&self.n)?
            ),
            "OKP" => format!(
                r#"{{"crv":{},"kty":{kty},"x":{}}}"#,
                text(&self.crv)?,
                text(&self.x)?
            ),
            "oct" => format!(r#"{{"k":{},"kty":{kty}}}"#, text(&self.k)?),
            _ => return None,
        };
        Some(crate::encoding::sha256_hex(canonical.as_bytes()))
    }

    /// Whether this key can verify `alg` (key type, curve, declared `alg` and `use`).
    pub fn fits(&self, alg: Algorithm) -> bool {
        let kind = match alg {
            Algorithm::RS256 | Algorithm::PS256 => {
                self.kty == "RSA" && self.n.is_some() && self.e.is_some()
            }
            Algorithm::ES256 => {
                self.kty == "EC"
                    && self.crv.as_deref() == Some("P-256")
                    && self.x.is_some()
                    && self.y.is_some()
            }
            Algorithm::EdDSA => {
                self.kty == "OKP" && self.crv.as_deref() == Some("Ed25519") && self.x.is_some()
            }
            Algorithm::HS256 => self.kty == "oct" && self.k.is_some(),
        };
        kind && self.alg.as_deref().is_none_or(|a| a == alg.as_str())
            && self.use_.as_deref().is_none_or(|u| u == "sig")
    }

    /// The members WebCrypto's JWK import needs (no `alg`/`use`/`key_ops`, which it would
    /// cross-check against the import parameters).
    pub fn import_form(&self) -> Value {
        let mut m = Map::new();
        m.insert("kty".into(), Value::from(self.kty.clone()));
        for (name, value) in [
            ("crv", &self.crv),
            ("x", &self.x),
            ("y", &self.y),
            ("n", &self.n),
            ("e", &self.e),
            ("k", &self.k),
        ] {
            if let Some(v) = value {
                m.insert(name.into(), Value::from(v.clone()));
            }
        }
        Value::Object(m)
    }
}

/// A JWKS. Keys that do not parse are skipped (a provider may publish key types we don't use).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwkSet {
    /// The usable keys.
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    /// Parses `{"keys": [...]}`.
    pub fn from_json(text: &str) -> Result<JwkSet, String> {
        #[derive(Deserialize)]
        struct Raw {
            keys: Vec<Value>,
        }
        let raw: Raw = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
        Ok(JwkSet {
            keys: raw
                .keys
                .into_iter()
                .filter_map(|k| serde_json::from_value(k).ok())
                .collect(),
        })
    }

    /// Parses the static JWKS secret: `{"<issuer name>": {"keys": [...]}}`. Its text is secret,
    /// so a refusal says what kind of mistake it is and where, never what it read (serde's own
    /// messages quote the values they did not expect).
    pub fn from_static_secret(text: &str) -> Result<BTreeMap<String, JwkSet>, String> {
        let raw: BTreeMap<String, Value> = serde_json::from_str(text).map_err(|e| {
            format!(
                "not a JSON object of issuer names to JWKS ({})",
                crate::encoding::classify_json_error(&e)
            )
        })?;
        raw.into_iter()
            .map(|(name, v)| {
                // Issuer names are [a-z0-9_-]; anything else may be a pasted key.
                let shown = if !name.is_empty()
                    && name.len() <= 64
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_".contains(&b))
                {
                    format!("issuer '{name}'")
                } else {
                    "an entry whose name is not an issuer name".to_owned()
                };
                #[derive(Deserialize)]
                struct Raw {
                    keys: Vec<Value>,
                }
                let raw: Raw = serde_json::from_value(v).map_err(|e| {
                    format!(
                        "{shown}: not a JWKS ({})",
                        crate::encoding::classify_json_error(&e)
                    )
                })?;
                let set = JwkSet {
                    keys: raw
                        .keys
                        .into_iter()
                        .filter_map(|k| serde_json::from_value(k).ok())
                        .collect(),
                };
                Ok((name, set))
            })
            .collect()
    }
}

/// Why no key was selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMiss {
    /// The token names a `kid` the set does not have (refetch the JWKS: the issuer may have rotated).
    UnknownKid,
    /// No `kid`, and not exactly one key fits the algorithm.
    Ambiguous,
}

/// Picks the verification key: by `kid` when the token names one (and the key must fit the
/// algorithm), otherwise the only key that fits.
pub fn select_key<'k>(
    set: &'k JwkSet,
    alg: Algorithm,
    kid: Option<&str>,
) -> Result<&'k Jwk, KeyMiss> {
    match kid {
        Some(kid) => set
            .keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid) && k.fits(alg))
            .ok_or(KeyMiss::UnknownKid),
        None => {
            let mut fitting = set.keys.iter().filter(|k| k.fits(alg));
            match (fitting.next(), fitting.next()) {
                (Some(key), None) => Ok(key),
                _ => Err(KeyMiss::Ambiguous),
            }
        }
    }
}
