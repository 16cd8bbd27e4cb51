//! The committed mapping file (`secrets-sync.toml`): for each environment, which Vault path and
//! key becomes which Worker secret, how the job authenticates, and where the Cloudflare API token
//! lives. It holds no secret values.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// By environment name (`dev`, `staging`, `production`).
    pub environments: BTreeMap<String, Environment>,
}

/// One environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// The Worker script the secrets belong to (`edge-gateway`, `edge-gateway-staging`, ...).
    pub worker: String,
    /// How the job logs in to Vault here.
    pub auth: Auth,
    /// The Cloudflare account and API token (the `cloudflare` target only).
    #[serde(default)]
    pub cloudflare: Option<Cloudflare>,
    /// The secrets, in the order they are read.
    pub secrets: Vec<SecretMapping>,
}

/// Vault authentication for an environment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum Auth {
    /// AppRole: role id and secret id from the environment or files.
    Approle {
        /// Mount path of the AppRole auth method (default `approle`).
        #[serde(default = "default_approle_mount")]
        mount: String,
    },
    /// JWT auth (GitHub Actions OIDC in CI).
    Jwt {
        /// Mount path of the JWT auth method (default `jwt`).
        #[serde(default = "default_jwt_mount")]
        mount: String,
        /// The Vault role to log in as.
        role: String,
        /// The audience to request the GitHub OIDC token for (must match the role's
        /// `bound_audiences`).
        audience: String,
    },
}

fn default_approle_mount() -> String {
    "approle".to_owned()
}
fn default_jwt_mount() -> String {
    "jwt".to_owned()
}

impl Auth {
    /// `approle` or `jwt`.
    pub fn method(&self) -> &'static str {
        match self {
            Auth::Approle { .. } => "approle",
            Auth::Jwt { .. } => "jwt",
        }
    }

    /// The mount path.
    pub fn mount(&self) -> &str {
        match self {
            Auth::Approle { mount } | Auth::Jwt { mount, .. } => mount,
        }
    }
}

/// Where a value lives in Vault.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultRef {
    /// The secrets engine mount (default `secret`).
    #[serde(default = "default_mount")]
    pub mount: String,
    /// KV version of that mount: 2 (default) or 1.
    #[serde(default = "default_kv_version")]
    pub kv_version: u8,
    /// The path under the mount.
    pub path: String,
    /// The key inside the secret.
    pub key: String,
}

fn default_mount() -> String {
    "secret".to_owned()
}
fn default_kv_version() -> u8 {
    2
}

impl VaultRef {
    /// `mount/path#key`, how messages and the audit line name it.
    pub fn display(&self) -> String {
        format!("{}/{}#{}", self.mount, self.path, self.key)
    }
}

/// The Cloudflare side of an environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cloudflare {
    /// The account id (not a secret).
    pub account_id: String,
    /// Where the API token (Workers Scripts Edit) lives in Vault.
    pub api_token: VaultRef,
}

/// How the Vault value(s) become the Worker secret's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The value as it is.
    Value,
    /// The gateway's origin signing keyset (`GATEWAY_SIGNING_KEYS`): the current version's
    /// value as the current key and, during the overlap, the previous version's too.
    SigningKeyset,
    /// A static JWKS for one HS256 issuer (`GATEWAY_STATIC_JWKS`): `{"<issuer>": {"keys":
    /// [oct JWKs]}}` with the current and, during the overlap, the previous key.
    OctJwks,
}

/// One Worker secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretMapping {
    /// The Worker secret name.
    pub name: String,
    /// Where its value lives.
    #[serde(flatten)]
    pub source: VaultRef,
    /// How it is rendered (default `value`).
    #[serde(default = "default_format")]
    pub format: Format,
    /// For keysets: how long after a new version is written the previous one stays live
    /// (seconds). It must cover the longest lifetime of what the old key signed.
    #[serde(default)]
    pub overlap_seconds: Option<u64>,
    /// For `oct_jwks`: the issuer name from `gateway.toml`.
    #[serde(default)]
    pub issuer: Option<String>,
}

fn default_format() -> Format {
    Format::Value
}

/// The secret name the job writes itself: the fingerprint of the Vault versions that are live.
pub const FINGERPRINT_SECRET: &str = "SECRETS_VERSION";

fn is_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

fn is_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.ends_with('/')
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
}

impl VaultRef {
    fn check(&self, at: &str) -> Result<(), String> {
        if !is_path(&self.mount) {
            return Err(format!("{at}.mount: '{}' is not a mount path", self.mount));
        }
        if !is_path(&self.path) {
            return Err(format!(
                "{at}.path: '{}' is not a relative path of [A-Za-z0-9._-] segments",
                self.path
            ));
        }
        if self.key.is_empty() {
            return Err(format!("{at}.key: must not be empty"));
        }
        if !matches!(self.kv_version, 1 | 2) {
            return Err(format!("{at}.kv_version: must be 1 or 2"));
        }
        Ok(())
    }
}

impl Mapping {
    /// Parses and checks the file; errors name the key.
    pub fn parse(text: &str) -> Result<Mapping, String> {
        let mapping: Mapping = toml::from_str(text).map_err(|e| e.to_string())?;
        if mapping.environments.is_empty() {
            return Err("environments: at least one is required".to_owned());
        }
        for (env, e) in &mapping.environments {
            let at = format!("environments.{env}");
            if e.worker.is_empty() {
                return Err(format!("{at}.worker: must not be empty"));
            }
            if let Some(cf) = &e.cloudflare {
                if cf.account_id.len() != 32
                    || !cf.account_id.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    return Err(format!(
                        "{at}.cloudflare.account_id: a Cloudflare account id is 32 hex digits"
                    ));
                }
                cf.api_token.check(&format!("{at}.cloudflare.api_token"))?;
            }
            if e.secrets.is_empty() {
                return Err(format!("{at}.secrets: at least one is required"));
            }
            let mut names = BTreeSet::new();
            for (i, s) in e.secrets.iter().enumerate() {
                let at = format!("{at}.secrets[{i}]");
                if !is_secret_name(&s.name) {
                    return Err(format!(
                        "{at}.name: '{}' is not an upper-case secret name ([A-Z0-9_])",
                        s.name
                    ));
                }
                if s.name == FINGERPRINT_SECRET {
                    return Err(format!(
                        "{at}.name: {FINGERPRINT_SECRET} is written by the job itself"
                    ));
                }
                if !names.insert(s.name.as_str()) {
                    return Err(format!("{at}.name: '{}' is mapped twice", s.name));
                }
                s.source.check(&at)?;
                let keyset = matches!(s.format, Format::SigningKeyset | Format::OctJwks);
                match (keyset, s.overlap_seconds) {
                    (true, None) => {
                        return Err(format!(
                            "{at}.overlap_seconds: required for a keyset (how long the previous key stays live)"
                        ));
                    }
                    (false, Some(_)) => {
                        return Err(format!("{at}.overlap_seconds: only for keyset formats"));
                    }
                    _ => {}
                }
                if keyset && s.source.kv_version != 2 {
                    return Err(format!(
                        "{at}.kv_version: keysets need KV v2 (the previous key is the previous version)"
                    ));
                }
                match (s.format, &s.issuer) {
                    (Format::OctJwks, None) => {
                        return Err(format!("{at}.issuer: required for oct_jwks"));
                    }
                    (Format::OctJwks, Some(_)) | (_, None) => {}
                    (_, Some(_)) => return Err(format!("{at}.issuer: only for oct_jwks")),
                }
            }
        }
        Ok(mapping)
    }

    /// One environment, or an error listing the defined ones.
    pub fn environment(&self, name: &str) -> Result<&Environment, String> {
        self.environments.get(name).ok_or_else(|| {
            format!(
                "no environment '{name}' in the mapping (defined: {})",
                self.environments
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[environments.dev]
worker = "edge-gateway"
auth = { method = "approle" }

[[environments.dev.secrets]]
name = "GATEWAY_SIGNING_KEYS"
path = "gateway/dev/origin-signing"
key = "secret"
format = "signing_keyset"
overlap_seconds = 900

[[environments.dev.secrets]]
name = "PLAIN"
mount = "kv1"
kv_version = 1
path = "gateway/dev/plain"
key = "value"
"#;

    #[test]
    fn parses_the_documented_shape() {
        let m = Mapping::parse(GOOD).unwrap();
        let dev = m.environment("dev").unwrap();
        assert_eq!(dev.auth.method(), "approle");
        assert_eq!(dev.auth.mount(), "approle");
        assert_eq!(dev.secrets[0].source.mount, "secret");
        assert_eq!(dev.secrets[0].format, Format::SigningKeyset);
        assert_eq!(
            dev.secrets[1].source.display(),
            "kv1/gateway/dev/plain#value"
        );
        assert!(m.environment("prod").unwrap_err().contains("defined: dev"));
    }

    #[test]
    fn mistakes_name_the_key() {
        for (from, to, expect) in [
            ("name = \"PLAIN\"", "name = \"plain\"", "secrets[1].name"),
            (
                "name = \"PLAIN\"",
                "name = \"SECRETS_VERSION\"",
                "written by the job",
            ),
            (
                "name = \"PLAIN\"",
                "name = \"GATEWAY_SIGNING_KEYS\"",
                "mapped twice",
            ),
            (
                "path = \"gateway/dev/plain\"",
                "path = \"../x\"",
                "secrets[1].path",
            ),
            ("overlap_seconds = 900", "", "overlap_seconds: required"),
            ("kv_version = 1", "kv_version = 3", "kv_version"),
            (
                "method = \"approle\"",
                "method = \"token\"",
                "unknown variant",
            ),
            (
                "key = \"value\"",
                "key = \"value\"\nextra = 1",
                "unknown field",
            ),
        ] {
            let text = GOOD.replacen(from, to, 1);
            let err = Mapping::parse(&text).unwrap_err();
            assert!(err.contains(expect), "{to}: {err}");
        }
    }
}
