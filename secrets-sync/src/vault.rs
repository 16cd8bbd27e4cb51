//! A small Vault / OpenBao HTTP client: AppRole and JWT login, token renewal, KV v1 and v2
//! reads. Errors name the path and Vault's own message, never a value.

use std::time::Duration;

use serde_json::Value;

use crate::clock::Clock;

/// Why a Vault call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultError {
    /// Connection refused, DNS, TLS: the server could not be talked to.
    Unreachable(String),
    /// The server is sealed (503).
    Sealed,
    /// 403 on this path.
    PermissionDenied(String),
    /// No secret (or no such version) at this path.
    NotFound(String),
    /// The secret exists but lacks the key.
    MissingKey {
        /// `mount/path`.
        path: String,
        /// The missing key.
        key: String,
    },
    /// Login refused (bad role id / secret id / JWT).
    Login(String),
    /// Anything else: status and Vault's error text.
    Other(String),
}

impl std::fmt::Display for VaultError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VaultError::Unreachable(d) => write!(f, "Vault is unreachable: {d}"),
            VaultError::Sealed => write!(f, "Vault is sealed"),
            VaultError::PermissionDenied(p) => write!(f, "permission denied reading {p}"),
            VaultError::NotFound(p) => write!(f, "no secret at {p}"),
            VaultError::MissingKey { path, key } => {
                write!(f, "the secret at {path} has no key '{key}'")
            }
            VaultError::Login(d) => write!(f, "Vault login failed: {d}"),
            VaultError::Other(d) => write!(f, "{d}"),
        }
    }
}

/// A Vault token and what is known about its lifetime.
#[derive(Clone)]
pub struct Token {
    client_token: String,
    /// The token's accessor (safe to log; it identifies, it does not authorise).
    pub accessor: String,
    /// Seconds the token lives from `obtained_at` (0: no expiry).
    pub lease_seconds: u64,
    /// Whether `renew-self` may extend it.
    pub renewable: bool,
    /// When it was obtained or last renewed (Unix seconds).
    pub obtained_at: u64,
    /// The role it was issued for (AppRole `role_name`, JWT `role`), from the login metadata.
    pub role: Option<String>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("accessor", &self.accessor)
            .field("lease_seconds", &self.lease_seconds)
            .field("renewable", &self.renewable)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// Seconds left at `now` (None: no expiry).
    pub fn remaining(&self, now: u64) -> Option<u64> {
        (self.lease_seconds > 0).then(|| {
            self.obtained_at
                .saturating_add(self.lease_seconds)
                .saturating_sub(now)
        })
    }

    /// Whether the token must be renewed (or replaced) before the next call: less than a
    /// fifth of its lifetime, or 10 s, left.
    pub fn needs_renewal(&self, now: u64) -> bool {
        self.remaining(now)
            .is_some_and(|left| left < (self.lease_seconds / 5).max(10))
    }
}

/// One version of a KV secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvSecret {
    /// The key/value pairs.
    pub data: serde_json::Map<String, Value>,
    /// KV v2 version (None for KV v1).
    pub version: Option<u64>,
    /// KV v2 `created_time` (RFC 3339).
    pub created_time: Option<String>,
    /// The lease Vault attached to the read (KV v1 `ttl`, dynamic secrets), seconds.
    pub lease_seconds: Option<u64>,
}

/// How to log in again when the token runs out.
#[derive(Clone)]
pub enum Login {
    /// AppRole.
    Approle {
        /// Mount.
        mount: String,
        /// Role id.
        role_id: String,
        /// Secret id.
        secret_id: String,
    },
    /// JWT.
    Jwt {
        /// Mount.
        mount: String,
        /// Role.
        role: String,
        /// The JWT.
        jwt: String,
    },
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Login::Approle { mount, .. } => write!(f, "Approle {{ mount: {mount:?}, .. }}"),
            Login::Jwt { mount, role, .. } => {
                write!(f, "Jwt {{ mount: {mount:?}, role: {role:?}, .. }}")
            }
        }
    }
}

/// The client.
pub struct Vault<'c> {
    agent: ureq::Agent,
    addr: String,
    namespace: Option<String>,
    login: Login,
    token: Option<Token>,
    clock: &'c dyn Clock,
    /// Logins made (1 plus re-logins), for the audit line.
    pub logins: u32,
    /// Renewals made.
    pub renewals: u32,
}

impl std::fmt::Debug for Vault<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("addr", &self.addr)
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

/// Builds an HTTP agent: TLS verification always on, optionally with an extra CA bundle (PEM).
pub fn agent(ca_pem: Option<&[u8]>) -> Result<ureq::Agent, String> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(pem) = ca_pem {
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(pem) {
            if let ureq::tls::PemItem::Certificate(cert) =
                item.map_err(|e| format!("the CA file is not valid PEM: {e}"))?
            {
                certs.push(cert);
            }
        }
        if certs.is_empty() {
            return Err("the CA file holds no certificate".to_owned());
        }
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
    }
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .tls_config(tls.build())
        .build();
    Ok(ureq::Agent::new_with_config(config))
}

fn errors_of(body: &Value) -> String {
    body["errors"]
        .as_array()
        .map(|errs| {
            errs.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "no error detail".to_owned())
}

impl<'c> Vault<'c> {
    /// A client for `addr` (`VAULT_ADDR`), logging in with `login`.
    pub fn new(
        agent: ureq::Agent,
        addr: &str,
        namespace: Option<String>,
        login: Login,
        clock: &'c dyn Clock,
    ) -> Vault<'c> {
        Vault {
            agent,
            addr: addr.trim_end_matches('/').to_owned(),
            namespace,
            login,
            token: None,
            clock,
            logins: 0,
            renewals: 0,
        }
    }

    /// The current token's accessor (after login).
    pub fn accessor(&self) -> Option<&str> {
        self.token.as_ref().map(|t| t.accessor.as_str())
    }

    /// The current token's remaining lifetime (after login).
    pub fn token(&self) -> Option<&Token> {
        self.token.as_ref()
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), VaultError> {
        let url = format!("{}/v1/{path}", self.addr);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(ns) = &self.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some(token) = &self.token {
            req = req.header("X-Vault-Token", &token.client_token);
        }
        let payload = body.map(Value::to_string).unwrap_or_default();
        let req = req
            .header("Content-Type", "application/json")
            .body(payload)
            .map_err(|e| VaultError::Other(format!("building the request to {path}: {e}")))?;
        let mut resp = self
            .agent
            .run(req)
            .map_err(|e| VaultError::Unreachable(format!("{}: {e}", self.addr)))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == 503 && errors_of(&value).to_ascii_lowercase().contains("sealed") {
            return Err(VaultError::Sealed);
        }
        Ok((status, value))
    }

    /// Logs in (again).
    pub fn login(&mut self) -> Result<(), VaultError> {
        self.token = None;
        let (path, body) = match &self.login {
            Login::Approle {
                mount,
                role_id,
                secret_id,
            } => (
                format!("auth/{mount}/login"),
                serde_json::json!({"role_id": role_id, "secret_id": secret_id}),
            ),
            Login::Jwt { mount, role, jwt } => (
                format!("auth/{mount}/login"),
                serde_json::json!({"role": role, "jwt": jwt}),
            ),
        };
        let (status, value) = self.call("POST", &path, Some(&body))?;
        if status != 200 {
            return Err(VaultError::Login(format!(
                "{path} answered {status}: {}",
                errors_of(&value)
            )));
        }
        self.token = Some(token_from(&value["auth"], self.clock.now())?);
        self.logins = self.logins.saturating_add(1);
        Ok(())
    }

    /// Renews the token if it is close to expiry, or logs in again if it cannot be renewed.
    pub fn ensure_token(&mut self) -> Result<(), VaultError> {
        let now = self.clock.now();
        let Some(token) = &self.token else {
            return self.login();
        };
        if !token.needs_renewal(now) {
            return Ok(());
        }
        if token.renewable {
            let (status, value) = self.call(
                "POST",
                "auth/token/renew-self",
                Some(&serde_json::json!({})),
            )?;
            if status == 200 {
                let role = token.role.clone();
                let mut renewed = token_from(&value["auth"], now)?;
                renewed.role = renewed.role.or(role);
                self.token = Some(renewed);
                self.renewals = self.renewals.saturating_add(1);
                return Ok(());
            }
        }
        self.login()
    }

    /// Reads a KV secret (`version`: a KV v2 version; None: the current one).
    pub fn read(
        &mut self,
        mount: &str,
        kv_version: u8,
        path: &str,
        version: Option<u64>,
    ) -> Result<KvSecret, VaultError> {
        self.ensure_token()?;
        let shown = format!("{mount}/{path}");
        let api_path = match (kv_version, version) {
            (1, _) => format!("{mount}/{path}"),
            (_, Some(v)) => format!("{mount}/data/{path}?version={v}"),
            (_, None) => format!("{mount}/data/{path}"),
        };
        let (status, value) = self.call("GET", &api_path, None)?;
        match status {
            200 => {}
            403 => return Err(VaultError::PermissionDenied(shown)),
            404 => return Err(VaultError::NotFound(shown)),
            _ => {
                return Err(VaultError::Other(format!(
                    "reading {shown}: Vault answered {status}: {}",
                    errors_of(&value)
                )));
            }
        }
        let lease = value["lease_duration"].as_u64().filter(|l| *l > 0);
        if kv_version == 1 {
            let data = value["data"].as_object().cloned().unwrap_or_default();
            return Ok(KvSecret {
                data,
                version: None,
                created_time: None,
                lease_seconds: lease,
            });
        }
        let data = value["data"]["data"]
            .as_object()
            .cloned()
            .ok_or_else(|| VaultError::NotFound(shown.clone()))?;
        let meta = &value["data"]["metadata"];
        Ok(KvSecret {
            data,
            version: meta["version"].as_u64(),
            created_time: meta["created_time"].as_str().map(str::to_owned),
            lease_seconds: lease,
        })
    }

    /// Reads one string key of a secret.
    pub fn read_key(
        &mut self,
        mount: &str,
        kv_version: u8,
        path: &str,
        key: &str,
    ) -> Result<(String, KvSecret), VaultError> {
        let secret = self.read(mount, kv_version, path, None)?;
        let value = string_key(&secret, mount, path, key)?;
        Ok((value, secret))
    }
}

/// The key's value as a string (numbers and booleans as written; objects as JSON).
pub fn string_key(
    secret: &KvSecret,
    mount: &str,
    path: &str,
    key: &str,
) -> Result<String, VaultError> {
    match secret.data.get(key) {
        None | Some(Value::Null) => Err(VaultError::MissingKey {
            path: format!("{mount}/{path}"),
            key: key.to_owned(),
        }),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Ok(other.to_string()),
    }
}

fn token_from(auth: &Value, now: u64) -> Result<Token, VaultError> {
    let client_token = auth["client_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| VaultError::Login("the login answer has no client_token".to_owned()))?;
    Ok(Token {
        client_token: client_token.to_owned(),
        accessor: auth["accessor"].as_str().unwrap_or_default().to_owned(),
        lease_seconds: auth["lease_duration"].as_u64().unwrap_or(0),
        renewable: auth["renewable"].as_bool().unwrap_or(false),
        obtained_at: now,
        role: auth["metadata"]["role_name"]
            .as_str()
            .or_else(|| auth["metadata"]["role"].as_str())
            .map(str::to_owned),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn token(lease: u64, obtained: u64) -> Token {
        Token {
            client_token: "s.x".into(),
            accessor: "a".into(),
            lease_seconds: lease,
            renewable: true,
            obtained_at: obtained,
            role: None,
        }
    }

    #[test]
    fn renewal_is_due_in_the_last_fifth_or_ten_seconds() {
        let t = token(3600, 1000);
        assert!(!t.needs_renewal(1000 + 2879));
        assert!(t.needs_renewal(1000 + 2881));
        let short = token(20, 0);
        assert!(!short.needs_renewal(9));
        assert!(short.needs_renewal(11));
        assert!(!token(0, 0).needs_renewal(u64::MAX), "no expiry");
    }

    #[test]
    fn tokens_never_print() {
        let t = token(10, 0);
        assert!(!format!("{t:?}").contains("s.x"));
        let l = Login::Approle {
            mount: "approle".into(),
            role_id: "rid-123".into(),
            secret_id: "sid-456".into(),
        };
        let shown = format!("{l:?}");
        assert!(
            !shown.contains("sid-456") && !shown.contains("rid-123"),
            "{shown}"
        );
    }

    #[test]
    fn keys_are_read_as_strings_and_missing_ones_are_named() {
        let mut data = serde_json::Map::new();
        data.insert("a".into(), Value::String("x".into()));
        data.insert("n".into(), serde_json::json!(5));
        let s = KvSecret {
            data,
            version: Some(1),
            created_time: None,
            lease_seconds: None,
        };
        assert_eq!(string_key(&s, "secret", "p", "a").unwrap(), "x");
        assert_eq!(string_key(&s, "secret", "p", "n").unwrap(), "5");
        assert_eq!(
            string_key(&s, "secret", "p", "b"),
            Err(VaultError::MissingKey {
                path: "secret/p".into(),
                key: "b".into()
            })
        );
    }
}
