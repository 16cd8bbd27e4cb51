//! The local token issuer: an ES256 keyset generated on first run into a git-ignored folder
//! (`.local/issuer/keys.json`, mode 0600), served as OpenID discovery + JWKS, and used to mint
//! RFC 9068 access tokens (`typ: at+jwt`) for `make token` and the test suite.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64ct::{Base64UrlUnpadded, Encoding};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::args::Args;
use crate::server::{self, Reply};

const KEYS_FILE: &str = "keys.json";

#[derive(Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    alg: String,
    /// The P-256 private scalar, base64url.
    d: String,
}

#[derive(Serialize, Deserialize)]
struct StoredKeySet {
    active: String,
    keys: Vec<StoredKey>,
}

struct Key {
    kid: String,
    signing: SigningKey,
}

/// The issuer's signing keys.
pub(crate) struct KeySet {
    active: usize,
    keys: Vec<Key>,
}

fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

/// The public JWK (members in RFC 7638 thumbprint order).
fn public_jwk(signing: &SigningKey) -> Result<(String, String), String> {
    let point = signing.verifying_key().to_encoded_point(false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err("cannot encode the public key".to_owned());
    };
    Ok((b64(x), b64(y)))
}

/// RFC 7638 thumbprint of the public key: the key id.
fn thumbprint(signing: &SigningKey) -> Result<String, String> {
    let (x, y) = public_jwk(signing)?;
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    Ok(b64(&Sha256::digest(canonical.as_bytes())))
}

impl KeySet {
    /// Loads `<dir>/keys.json`, creating a fresh keyset there if it does not exist.
    pub(crate) fn load_or_create(dir: &Path) -> Result<KeySet, String> {
        let file = dir.join(KEYS_FILE);
        if file.exists() {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let stored: StoredKeySet = serde_json::from_str(&text)
                .map_err(|e| format!("{}: not a keyset: {e}", file.display()))?;
            return KeySet::from_stored(stored).map_err(|e| format!("{}: {e}", file.display()));
        }
        let signing = SigningKey::random(&mut OsRng);
        let kid = thumbprint(&signing)?;
        let stored = StoredKeySet {
            active: kid.clone(),
            keys: vec![StoredKey {
                kid,
                alg: "ES256".to_owned(),
                d: b64(&signing.to_bytes()),
            }],
        };
        write_private(
            dir,
            &file,
            &serde_json::to_vec_pretty(&stored).map_err(|e| e.to_string())?,
        )?;
        KeySet::from_stored(stored)
    }

    fn from_stored(stored: StoredKeySet) -> Result<KeySet, String> {
        let mut keys = Vec::new();
        for key in stored.keys {
            if key.alg != "ES256" {
                return Err(format!("key '{}': only ES256 keys are supported", key.kid));
            }
            let d = Base64UrlUnpadded::decode_vec(&key.d)
                .map_err(|_| format!("key '{}': bad 'd'", key.kid))?;
            let signing = SigningKey::from_slice(&d)
                .map_err(|_| format!("key '{}': bad P-256 scalar", key.kid))?;
            keys.push(Key {
                kid: key.kid,
                signing,
            });
        }
        let active = keys
            .iter()
            .position(|k| k.kid == stored.active)
            .ok_or_else(|| format!("the active key '{}' is not in the keyset", stored.active))?;
        Ok(KeySet { active, keys })
    }

    /// Adds a fresh key and makes it the signing key; with `keep_previous` false, every other
    /// key is dropped from the set (and so from the JWKS). Returns the new key id.
    /// A new signing key, made active; `kid`: publish it under that key id instead of its
    /// thumbprint (an issuer reusing a key id for new material, which the gateway must not
    /// mistake for the old key).
    pub(crate) fn rotate(
        dir: &Path,
        keep_previous: bool,
        kid: Option<&str>,
    ) -> Result<String, String> {
        let file = dir.join(KEYS_FILE);
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut stored: StoredKeySet = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a keyset: {e}", file.display()))?;
        let signing = SigningKey::random(&mut OsRng);
        let kid = match kid {
            Some(kid) => kid.to_owned(),
            None => thumbprint(&signing)?,
        };
        stored.keys.retain(|k| k.kid != kid);
        if !keep_previous {
            stored.keys.clear();
        }
        stored.keys.insert(
            0,
            StoredKey {
                kid: kid.clone(),
                alg: "ES256".to_owned(),
                d: b64(&signing.to_bytes()),
            },
        );
        stored.active = kid.clone();
        std::fs::remove_file(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        write_private(
            dir,
            &file,
            &serde_json::to_vec_pretty(&stored).map_err(|e| e.to_string())?,
        )?;
        Ok(kid)
    }

    pub(crate) fn active_kid(&self) -> &str {
        self.keys
            .get(self.active)
            .map(|k| k.kid.as_str())
            .unwrap_or_default()
    }

    /// The public JWKS.
    pub(crate) fn jwks(&self) -> Result<Value, String> {
        let mut keys = Vec::new();
        for key in &self.keys {
            let (x, y) = public_jwk(&key.signing)?;
            keys.push(json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": key.kid, "alg": "ES256", "use": "sig"}));
        }
        Ok(json!({ "keys": keys }))
    }

    /// Signs a JWS with the active key.
    pub(crate) fn sign(&self, typ: &str, claims: &Map<String, Value>) -> Result<String, String> {
        let key = self.keys.get(self.active).ok_or("no active key")?;
        let header = json!({"alg": "ES256", "typ": typ, "kid": key.kid});
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(Value::Object(claims.clone()).to_string().as_bytes())
        );
        let signature: Signature = key.signing.sign(signing_input.as_bytes());
        Ok(format!("{signing_input}.{}", b64(&signature.to_bytes())))
    }
}

/// Writes a file readable only by its owner, atomically (temp file + rename).
fn write_private(dir: &Path, file: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp: PathBuf = dir.join(format!(".{KEYS_FILE}.{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, file).map_err(|e| format!("{}: {e}", file.display()))
}

/// What an access token says.
pub(crate) struct TokenSpec<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub subject: String,
    pub org: &'a str,
    pub tier: Option<&'a str>,
    pub scopes: &'a str,
    pub expires_in: u64,
    pub extra: Map<String, Value>,
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_secs() -> Result<u64, String> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|e| e.to_string())
}

/// Mints an access token: `iss`, `aud`, `sub`, `org_id`, `tier`, `scope`, `iat`, `exp`, `jti`,
/// then `extra` merged over them (so tests can override or remove any claim: `null` removes).
pub(crate) fn mint(keys: &KeySet, spec: TokenSpec<'_>, now: u64) -> Result<String, String> {
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(spec.issuer));
    claims.insert("aud".into(), json!(spec.audience));
    claims.insert("sub".into(), json!(spec.subject));
    claims.insert("org_id".into(), json!(spec.org));
    if let Some(tier) = spec.tier {
        claims.insert("tier".into(), json!(tier));
    }
    claims.insert("scope".into(), json!(spec.scopes));
    claims.insert("client_id".into(), json!(spec.subject));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now.saturating_add(spec.expires_in)));
    claims.insert("jti".into(), json!(random_id()));
    for (k, v) in spec.extra {
        if v.is_null() {
            claims.remove(&k);
        } else {
            claims.insert(k, v);
        }
    }
    keys.sign("at+jwt", &claims)
}

/// `gateway-demo token ...`
pub(crate) fn mint_from_args(args: &Args) -> Result<String, String> {
    let keys = KeySet::load_or_create(Path::new(&args.required("keys")?))?;
    let org = args.required("org")?;
    let extra = match args.get("claims") {
        None => Map::new(),
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(map)) => map,
            _ => return Err(format!("--claims must be a JSON object, got: {text}")),
        },
    };
    let issuer = args.required("issuer")?;
    let audience = args.required("audience")?;
    let spec = TokenSpec {
        issuer: &issuer,
        audience: &audience,
        subject: args
            .get("sub")
            .map_or_else(|| format!("client-{org}"), str::to_owned),
        org: &org,
        tier: args.get("tier"),
        scopes: args.get("scopes").unwrap_or_default(),
        expires_in: args.number("expires-in", 900)?,
        extra,
    };
    mint(&keys, spec, now_secs()?)
}

/// Serves discovery and the JWKS until killed. The keyset is re-read for every JWKS request, so
/// `gateway-demo rotate` shows without a restart. `jwks_max_age` is the JWKS `Cache-Control`
/// max-age in seconds.
pub(crate) fn serve(
    listen: &str,
    keys_dir: &str,
    issuer: Option<&str>,
    jwks_max_age: u64,
) -> Result<(), String> {
    KeySet::load_or_create(Path::new(keys_dir))?;
    let keys_dir = PathBuf::from(keys_dir);
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let issuer = issuer.map_or_else(
        || format!("http://{addr}"),
        |i| i.trim_end_matches('/').to_owned(),
    );
    let discovery = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "grant_types_supported": ["client_credentials"],
    });
    // What tests read of the issuer's side: how many JWKS requests reached it (GET /stats), and
    // a delay before each JWKS answer (POST /jwks-delay?ms=N), so concurrent fetches overlap.
    let jwks_requests = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let jwks_delay_ms = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    server::serve_on(listener, 8, move |request| {
        use std::sync::atomic::Ordering::SeqCst;
        let (path, query) = request
            .url()
            .split_once('?')
            .map_or((request.url().to_owned(), String::new()), |(p, q)| {
                (p.to_owned(), q.to_owned())
            });
        match (request.method().as_str(), path.as_str()) {
            ("GET", "/.well-known/openid-configuration") => Reply::json(200, &discovery),
            ("GET", "/stats") => {
                Reply::json(200, &json!({"jwks_requests": jwks_requests.load(SeqCst)}))
            }
            ("POST", "/jwks-delay") => {
                let ms = query
                    .strip_prefix("ms=")
                    .and_then(|v| v.parse::<u64>().ok())
                    .filter(|ms| *ms <= 10_000);
                match ms {
                    Some(ms) => {
                        jwks_delay_ms.store(ms, SeqCst);
                        Reply::json(200, &json!({"jwks_delay_ms": ms}))
                    }
                    None => Reply::json(400, &json!({"error": "ms=0..10000"})),
                }
            }
            ("GET", "/jwks") => match KeySet::load_or_create(&keys_dir).and_then(|k| {
                jwks_requests.fetch_add(1, SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(jwks_delay_ms.load(SeqCst)));
                k.jwks()
            }) {
                Ok(jwks) => {
                    let mut reply = Reply::json(200, &jwks);
                    let cache_control = format!("public, max-age={jwks_max_age}");
                    reply.headers.push(("cache-control", cache_control));
                    reply
                }
                Err(e) => Reply::json(500, &json!({ "error": e })),
            },
            _ => Reply::json(404, &json!({"error": "not_found"})),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;

    fn spec(extra: Map<String, Value>) -> TokenSpec<'static> {
        TokenSpec {
            issuer: "http://127.0.0.1:1",
            audience: "https://api.example.com",
            subject: "client-acme".into(),
            org: "acme",
            tier: Some("pro"),
            scopes: "a b",
            expires_in: 900,
            extra,
        }
    }

    fn decode(part: &str) -> Value {
        serde_json::from_slice(&Base64UrlUnpadded::decode_vec(part).unwrap()).unwrap()
    }

    #[test]
    fn keys_persist_and_tokens_verify_against_the_jwks() {
        let dir = std::env::temp_dir().join(format!("gateway-demo-test-{}", random_id()));
        let keys = KeySet::load_or_create(&dir).unwrap();
        let again = KeySet::load_or_create(&dir).unwrap();
        assert_eq!(keys.active_kid(), again.active_kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEYS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let token = mint(&keys, spec(Map::new()), 1_000).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode(parts[0]);
        assert_eq!(
            (header["alg"].as_str(), header["typ"].as_str()),
            (Some("ES256"), Some("at+jwt"))
        );
        assert_eq!(header["kid"], keys.active_kid());
        let claims = decode(parts[1]);
        assert_eq!(claims["exp"], 1_900);
        assert_eq!(claims["iat"], 1_000);
        assert_eq!(claims["org_id"], "acme");
        assert_eq!(claims["scope"], "a b");
        assert_eq!(claims["jti"].as_str().unwrap().len(), 32);

        // Verify with the key published in the JWKS, not the private key.
        let jwks = keys.jwks().unwrap();
        let jwk = &jwks["keys"][0];
        let mut sec1 = vec![4u8];
        sec1.extend(Base64UrlUnpadded::decode_vec(jwk["x"].as_str().unwrap()).unwrap());
        sec1.extend(Base64UrlUnpadded::decode_vec(jwk["y"].as_str().unwrap()).unwrap());
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
        let sig = Signature::from_slice(&Base64UrlUnpadded::decode_vec(parts[2]).unwrap()).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        vk.verify(input.as_bytes(), &sig).unwrap();
        assert!(vk.verify(b"tampered", &sig).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rotation_adds_a_signing_key_and_can_drop_the_old_ones() {
        let dir = std::env::temp_dir().join(format!("gateway-demo-test-{}", random_id()));
        let first = KeySet::load_or_create(&dir)
            .unwrap()
            .active_kid()
            .to_owned();
        let second = KeySet::rotate(&dir, true, None).unwrap();
        let keys = KeySet::load_or_create(&dir).unwrap();
        assert_eq!(keys.active_kid(), second);
        let kids: Vec<String> = keys.jwks().unwrap()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kids, [second.clone(), first.clone()]);
        let third = KeySet::rotate(&dir, false, None).unwrap();
        let keys = KeySet::load_or_create(&dir).unwrap();
        assert_eq!(keys.jwks().unwrap()["keys"].as_array().unwrap().len(), 1);
        assert_eq!(keys.active_kid(), third);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn extra_claims_override_and_null_removes() {
        let dir = std::env::temp_dir().join(format!("gateway-demo-test-{}", random_id()));
        let keys = KeySet::load_or_create(&dir).unwrap();
        let extra: Map<String, Value> =
            serde_json::from_str(r#"{"tier": "enterprise", "org_id": null, "exp": 5, "k": "v"}"#)
                .unwrap();
        let token = mint(&keys, spec(extra), 1_000).unwrap();
        let claims = decode(token.split('.').nth(1).unwrap());
        assert_eq!(claims["tier"], "enterprise");
        assert!(claims.get("org_id").is_none());
        assert_eq!(claims["exp"], 5);
        assert_eq!(claims["k"], "v");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
