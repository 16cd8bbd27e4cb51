//! One sync run: log in, read every mapped secret (all or nothing), render, compare with what is
//! live, write to the target in one step (or not at all), and describe the run in one audit line.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::clock::{Clock, parse_rfc3339};
use crate::cloudflare;
use crate::devvars;
use crate::mapping::{Auth, Environment, Format, Mapping, SecretMapping};
use crate::plan::{self, Change, Fetched, Read, Rendered};
use crate::vault::{self, Login, Vault, VaultError};

/// Where the secrets go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A `.dev.vars` file.
    DevVars(PathBuf),
    /// The Worker's secrets through the Cloudflare API (`api_base`: the API root).
    Cloudflare {
        /// `https://api.cloudflare.com/client/v4` or `CLOUDFLARE_API_BASE_URL`.
        api_base: String,
    },
    /// A JSON file (`{"NAME": "value"}`, mode 0600) for `wrangler deploy --secrets-file`, so a
    /// deploy uploads the secrets with the version itself (`make deploy`). The fingerprint is
    /// not in it: the audit line carries it, and the deploy sets it as the `SECRETS_VERSION` var.
    SecretsFile(PathBuf),
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::DevVars(_) => "dev-vars",
            Target::Cloudflare { .. } => "cloudflare",
            Target::SecretsFile(_) => "secrets-file",
        }
    }
}

/// Everything a run needs besides the clock.
#[derive(Debug, Clone)]
pub struct Options {
    /// The mapping file's text.
    pub mapping: String,
    /// The environment to sync.
    pub environment: String,
    /// The target.
    pub target: Target,
    /// Show what would change; write nothing.
    pub dry_run: bool,
    /// `VAULT_ADDR`.
    pub vault_addr: String,
    /// `VAULT_NAMESPACE`.
    pub namespace: Option<String>,
    /// `VAULT_CACERT` contents.
    pub ca_pem: Option<Vec<u8>>,
    /// The login credentials (from the environment or files; see `main.rs`).
    pub credentials: Credentials,
}

/// Login material, by method.
#[derive(Clone)]
pub enum Credentials {
    /// AppRole role id and secret id.
    Approle {
        /// Role id.
        role_id: String,
        /// Secret id.
        secret_id: String,
    },
    /// A JWT (GitHub Actions OIDC token, or a file).
    Jwt(String),
    /// Nothing given.
    None,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credentials::Approle { .. } => "Approle(..)",
            Credentials::Jwt(_) => "Jwt(..)",
            Credentials::None => "None",
        })
    }
}

/// The outcome: the audit line and whether the run succeeded.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The audit line (JSON).
    pub audit: Value,
    /// Exit status: 0 ok, 1 failed.
    pub ok: bool,
}

fn login_for(auth: &Auth, credentials: &Credentials) -> Result<Login, String> {
    match (auth, credentials) {
        (Auth::Approle { mount }, Credentials::Approle { role_id, secret_id }) => Ok(Login::Approle {
            mount: mount.clone(),
            role_id: role_id.clone(),
            secret_id: secret_id.clone(),
        }),
        (Auth::Jwt { mount, role, .. }, Credentials::Jwt(jwt)) => Ok(Login::Jwt {
            mount: mount.clone(),
            role: role.clone(),
            jwt: jwt.clone(),
        }),
        (Auth::Approle { .. }, _) => Err(
            "AppRole login needs VAULT_ROLE_ID and VAULT_SECRET_ID (or VAULT_ROLE_ID_FILE and VAULT_SECRET_ID_FILE)"
                .to_owned(),
        ),
        (Auth::Jwt { .. }, _) => Err(
            "JWT login needs VAULT_JWT or VAULT_JWT_FILE, or a GitHub Actions OIDC token (permissions: id-token: write)"
                .to_owned(),
        ),
    }
}

/// Reads one mapping: the current version, the previous one for keysets.
fn fetch(vault: &mut Vault<'_>, m: &SecretMapping) -> Result<Fetched, VaultError> {
    let src = &m.source;
    let (value, secret) = vault.read_key(&src.mount, src.kv_version, &src.path, &src.key)?;
    let current = Read {
        value,
        version: secret.version,
        created: secret.created_time.as_deref().and_then(parse_rfc3339),
    };
    let mut previous = None;
    let keyset = matches!(m.format, Format::SigningKeyset | Format::OctJwks);
    let previous_version = current
        .version
        .and_then(|v| v.checked_sub(1))
        .filter(|v| keyset && *v > 0);
    if let Some(prev) = previous_version {
        match vault.read(&src.mount, 2, &src.path, Some(prev)) {
            Ok(old) => {
                previous = Some(Read {
                    value: vault::string_key(&old, &src.mount, &src.path, &src.key)?,
                    version: old.version,
                    created: old.created_time.as_deref().and_then(parse_rfc3339),
                });
            }
            // Deleted or destroyed: there is no previous key to keep.
            Err(VaultError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Fetched {
        current,
        previous,
        lease_seconds: secret.lease_seconds,
    })
}

fn secrets_json(rendered: &[Rendered], changes: &[(String, Change)]) -> Value {
    rendered
        .iter()
        .map(|r| {
            let mut entry = json!({"name": r.name, "source": r.source, "versions": r.versions});
            if let Some((_, change)) = changes.iter().find(|(n, _)| *n == r.name) {
                entry["change"] = change.as_str().into();
            }
            if let Some(lease) = r.lease_seconds {
                entry["lease_seconds"] = lease.into();
            }
            entry
        })
        .collect()
}

/// Runs one sync.
pub fn run(opts: &Options, clock: &dyn Clock) -> Outcome {
    let started = clock.now();
    let mut audit = json!({
        "event": "secrets_sync",
        "ts": started,
        "environment": opts.environment,
        "target": opts.target.name(),
        "dry_run": opts.dry_run,
        "vault_addr": opts.vault_addr,
    });
    if let Some(ns) = &opts.namespace {
        audit["vault_namespace"] = ns.clone().into();
    }
    let result = run_inner(opts, clock, &mut audit);
    match result {
        Ok(result) => {
            audit["result"] = result.into();
            Outcome { audit, ok: true }
        }
        Err(error) => {
            audit["result"] = "failed".into();
            audit["error"] = error.into();
            audit["written"] = false.into();
            Outcome { audit, ok: false }
        }
    }
}

fn run_inner(opts: &Options, clock: &dyn Clock, audit: &mut Value) -> Result<&'static str, String> {
    let mapping = Mapping::parse(&opts.mapping).map_err(|e| format!("mapping file: {e}"))?;
    let env: &Environment = mapping.environment(&opts.environment)?;
    audit["worker"] = env.worker.clone().into();
    audit["auth_method"] = env.auth.method().into();
    audit["auth_mount"] = env.auth.mount().into();
    if let Auth::Jwt { role, .. } = &env.auth {
        audit["auth_role"] = role.clone().into();
    }
    let cf_mapping = match (&opts.target, &env.cloudflare) {
        (Target::Cloudflare { .. }, None) => {
            return Err(format!(
                "environment '{}' has no [cloudflare] section (account id and API token path)",
                opts.environment
            ));
        }
        (Target::Cloudflare { .. }, Some(cf)) => Some(cf),
        (Target::DevVars(_) | Target::SecretsFile(_), _) => None,
    };

    let login = login_for(&env.auth, &opts.credentials)?;
    let agent = vault::agent(opts.ca_pem.as_deref())?;
    let mut vault = Vault::new(
        agent,
        &opts.vault_addr,
        opts.namespace.clone(),
        login,
        clock,
    );
    vault.login().map_err(|e| e.to_string())?;
    if let Some(token) = vault.token() {
        audit["token_accessor"] = token.accessor.clone().into();
        if let Some(role) = &token.role {
            audit["auth_role"] = role.clone().into();
        }
        audit["token_ttl_seconds"] = token.lease_seconds.into();
    }

    // Read everything first; any failure stops the run before a byte is written.
    let mut fetched = Vec::new();
    let mut failures = Vec::new();
    for m in &env.secrets {
        match fetch(&mut vault, m) {
            Ok(f) => fetched.push((m, f)),
            Err(e) => failures.push(format!("{}: {e}", m.name)),
        }
    }
    let cf_token = match cf_mapping {
        Some(cf) => {
            let t = &cf.api_token;
            match vault.read_key(&t.mount, t.kv_version, &t.path, &t.key) {
                Ok((token, _)) => Some(token),
                Err(e) => {
                    failures.push(format!("Cloudflare API token: {e}"));
                    None
                }
            }
        }
        None => None,
    };
    audit["vault_logins"] = vault.logins.into();
    audit["vault_renewals"] = vault.renewals.into();
    if !failures.is_empty() {
        return Err(format!("nothing written: {}", failures.join("; ")));
    }

    let now = clock.now();
    let rendered = fetched
        .iter()
        .map(|(m, f)| plan::render(m, f, now))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("nothing written: {e}"))?;
    let fingerprint = plan::fingerprint(&rendered);
    audit["fingerprint"] = fingerprint.clone().into();
    if let Some(due) = plan::next_sync_due(&rendered, now) {
        audit["next_sync_due"] = due.into();
    }
    let desired = plan::with_fingerprint(&rendered);

    match (&opts.target, cf_mapping, cf_token) {
        (Target::DevVars(path), _, _) => {
            let existing = match std::fs::read_to_string(path) {
                Ok(text) => devvars::parse(&text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(format!("reading {}: {e}", path.display())),
            };
            let changes = devvars::changes(&existing, &desired);
            audit["secrets"] = secrets_json(&rendered, &changes);
            let stale = existing
                .iter()
                .any(|(n, _)| !desired.iter().any(|(d, _)| d == n));
            let unchanged = !stale && changes.iter().all(|(_, c)| *c == Change::Unchanged);
            audit["written"] = false.into();
            if unchanged {
                return Ok("unchanged");
            }
            if opts.dry_run {
                return Ok("would_write");
            }
            let text = devvars::encode(&desired)?;
            devvars::write_atomic(path, &text)?;
            audit["written"] = true.into();
            Ok("written")
        }
        (Target::SecretsFile(path), _, _) => {
            // Nothing to compare with: the file is uploaded with the next version whole.
            audit["secrets"] = secrets_json(&rendered, &[]);
            audit["written"] = false.into();
            if opts.dry_run {
                return Ok("would_write");
            }
            let secrets: serde_json::Map<String, Value> = rendered
                .iter()
                .map(|r| (r.name.clone(), Value::String(r.value.clone())))
                .collect();
            devvars::write_atomic(path, &Value::Object(secrets).to_string())?;
            audit["written"] = true.into();
            Ok("written")
        }
        (Target::Cloudflare { api_base }, Some(cf), Some(token)) => {
            let agent = vault::agent(None)?;
            let api = cloudflare::Api::new(agent, api_base, &cf.account_id, &env.worker, token);
            let settings = api.settings()?;
            let live = settings.live_fingerprint().map(str::to_owned);
            let live_entries = live
                .as_deref()
                .map(plan::fingerprint_entries)
                .unwrap_or_default();
            let changes: Vec<(String, Change)> = plan::fingerprint_entries(&fingerprint)
                .into_iter()
                .map(|(name, now_at)| {
                    let change = match live_entries.iter().find(|(n, _)| *n == name) {
                        // Unversioned (KV v1) values cannot be compared: always rewritten.
                        Some((_, was)) if *was == now_at && !now_at.ends_with("@-") => {
                            Change::Unchanged
                        }
                        _ if settings.has_secret(&name) => Change::Changed,
                        _ => Change::Added,
                    };
                    (name, change)
                })
                .collect();
            audit["secrets"] = secrets_json(&rendered, &changes);
            if let Some(live) = &live {
                audit["live_fingerprint"] = live.clone().into();
            }
            audit["written"] = false.into();
            if changes.iter().all(|(_, c)| *c == Change::Unchanged)
                && live.as_deref() == Some(fingerprint.as_str())
            {
                return Ok("unchanged");
            }
            if opts.dry_run {
                return Ok("would_write");
            }
            let secrets: Vec<(String, String)> = rendered
                .iter()
                .map(|r| (r.name.clone(), r.value.clone()))
                .collect();
            api.write(&settings, &secrets, &fingerprint)?;
            audit["written"] = true.into();
            Ok("written")
        }
        (Target::Cloudflare { .. }, _, _) => {
            Err("the Cloudflare API token could not be read".to_owned())
        }
    }
}
