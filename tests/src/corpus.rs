//! The attack corpus (`tests/corpus/tokens.json`): building each case's request from a real
//! signing key. Shared by the native runner (`core/tests/attack_corpus.rs`) and the end-to-end
//! runner (`tests/e2e/corpus.rs`), so both judge exactly the same bytes.

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The committed corpus.
pub const CORPUS_JSON: &str = include_str!("../corpus/tokens.json");

/// The audience every base token carries.
pub const AUDIENCE: &str = "https://api.example.com";

/// One case as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What it tries.
    pub name: String,
    /// Merged into the header before signing.
    #[serde(default)]
    pub header: Map<String, Value>,
    /// Merged into the claims before signing.
    #[serde(default)]
    pub claims: Map<String, Value>,
    /// What is done to the signature.
    #[serde(default)]
    pub signature: Option<String>,
    /// A replacement token template.
    #[serde(default)]
    pub raw: Option<String>,
    /// Where the token travels.
    #[serde(default)]
    pub transport: Option<String>,
    /// Expected status and error code.
    pub expect: (u16, Option<String>),
}

#[derive(Debug, Deserialize)]
struct Corpus {
    cases: Vec<Case>,
}

/// Every case of the corpus.
pub fn cases() -> Vec<Case> {
    serde_json::from_str::<Corpus>(CORPUS_JSON)
        .expect("tests/corpus/tokens.json")
        .cases
}

/// Runs every case through `answer` (status and error code for the case's request) and fails
/// with the list of every case whose answer differs from its expectation, or that got a 5xx.
pub fn check_all(
    signer: &Signer,
    now: u64,
    mut answer: impl FnMut(&Carried) -> (u16, Option<String>),
) {
    let cases = cases();
    assert!(cases.len() >= 50, "the corpus shrank to {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let got = answer(&case.build(signer, now));
        if got != case.expect {
            failures.push(format!(
                "{}: got {got:?}, expected {:?}",
                case.name, case.expect
            ));
        }
        if got.0 >= 500 {
            failures.push(format!("{}: a 5xx for token input", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The issuer's key and identity.
#[derive(Debug, Clone)]
pub struct Signer {
    /// The issuer's private key.
    pub key: SigningKey,
    /// Its key id.
    pub kid: String,
    /// The `iss` value.
    pub issuer: String,
}

impl Signer {
    /// The public key as a JWK.
    pub fn public_jwk(&self) -> Value {
        public_jwk(&self.key, Some(&self.kid))
    }
}

fn public_jwk(key: &SigningKey, kid: Option<&str>) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    let mut jwk = json!({
        "kty": "EC", "crv": "P-256",
        "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y")),
    });
    if let Some(kid) = kid {
        jwk["kid"] = kid.into();
    }
    jwk
}

/// A fixed key playing the attacker.
fn attacker() -> SigningKey {
    SigningKey::from_slice(&[7u8; 32]).expect("attacker key")
}

fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

/// How the request carries the token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carried {
    /// `Authorization` header values (zero, one, or two).
    pub authorization: Vec<String>,
    /// Query string to append.
    pub query: Option<String>,
    /// `Cookie` header.
    pub cookie: Option<String>,
}

fn resolve(value: &Value, signer: &Signer, now: u64) -> Value {
    match value {
        Value::Object(m) if m.len() == 1 && m.contains_key("now") => {
            let offset = m["now"].as_i64().expect("now offset");
            json!(i64::try_from(now).expect("now") + offset)
        }
        Value::String(s) if s == "$attacker_jwk" => public_jwk(&attacker(), None),
        Value::String(s) if s == "$issuer/" => json!(format!("{}/", signer.issuer)),
        Value::String(s) if s == "$8k" => json!("a".repeat(9000)),
        other => other.clone(),
    }
}

fn merge(base: &mut Map<String, Value>, changes: &Map<String, Value>, signer: &Signer, now: u64) {
    for (k, v) in changes {
        if v.is_null() {
            base.remove(k);
        } else {
            base.insert(k.clone(), resolve(v, signer, now));
        }
    }
}

impl Case {
    /// Builds the request for this case at `now` (unix seconds).
    pub fn build(&self, signer: &Signer, now: u64) -> Carried {
        let mut header = Map::new();
        header.insert("alg".into(), json!("ES256"));
        header.insert("typ".into(), json!("at+jwt"));
        header.insert("kid".into(), json!(signer.kid));
        merge(&mut header, &self.header, signer, now);
        let mut claims = json!({
            "iss": signer.issuer, "aud": AUDIENCE, "sub": "client-corpus", "org_id": "corpus",
            "tier": "enterprise", "scope": "transactions:read",
            "iat": now, "exp": now + 900, "jti": "corpus-jti",
        })
        .as_object()
        .cloned()
        .expect("object");
        merge(&mut claims, &self.claims, signer, now);

        let header_json = Value::Object(header).to_string();
        let h = b64(header_json.as_bytes());
        let c = b64(Value::Object(claims).to_string().as_bytes());
        let input = format!("{h}.{c}");
        let real: Signature = signer.key.sign(input.as_bytes());
        let real = real.to_bytes().to_vec();
        let s = match self.signature.as_deref().unwrap_or("keep") {
            "keep" => b64(&real),
            "empty" => String::new(),
            "zero" => b64(&[0u8; 64]),
            "truncate" => b64(&real[..32]),
            "flip" => {
                let mut sig = real.clone();
                sig[10] ^= 1;
                b64(&sig)
            }
            "pad" => format!("{}==", b64(&real)),
            "attacker" => {
                let sig: Signature = attacker().sign(input.as_bytes());
                b64(&sig.to_bytes())
            }
            "hmac-public-key" => {
                let public = signer.key.verifying_key().to_encoded_point(false);
                let mut mac =
                    Hmac::<sha2::Sha256>::new_from_slice(public.as_bytes()).expect("hmac key");
                mac.update(input.as_bytes());
                b64(&mac.finalize().into_bytes())
            }
            other => panic!("{}: unknown signature operation '{other}'", self.name),
        };
        let token = match &self.raw {
            None => format!("{input}.{s}"),
            Some(template) => {
                let mut std = Base64::encode_string(header_json.as_bytes());
                if !std.contains(['+', '/', '=']) {
                    std.push_str("==");
                }
                template
                    .replace("{header_std}", &std)
                    .replace("{header}", &h)
                    .replace("{claims}", &c)
                    .replace("{signature}", &s)
            }
        };
        let bearer = format!("Bearer {token}");
        match self.transport.as_deref().unwrap_or("header") {
            "header" => Carried {
                authorization: vec![bearer],
                ..Carried::default()
            },
            "two-headers" => Carried {
                authorization: vec![bearer.clone(), bearer],
                ..Carried::default()
            },
            "query" => Carried {
                query: Some(format!("access_token={token}")),
                ..Carried::default()
            },
            "cookie" => Carried {
                cookie: Some(format!("access_token={token}")),
                ..Carried::default()
            },
            other => panic!("{}: unknown transport '{other}'", self.name),
        }
    }
}
