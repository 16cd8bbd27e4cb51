//! The command line: options and environment in, one audit line out, exit status 0 (written,
//! unchanged or dry run), 1 (the sync failed; nothing was written) or 2 (usage).

// `serde_json::Value` indexing is used for JSON documents: reads of a missing member give
// `Null`, writes go only to objects this crate builds. Nothing here indexes slices.
#![allow(clippy::indexing_slicing)]

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::process::ExitCode;

use secrets_sync::clock::SystemClock;
use secrets_sync::cloudflare::DEFAULT_API_BASE;
use secrets_sync::mapping::{Auth, Mapping};
use secrets_sync::sync::{self, Credentials, Options, Target};

const USAGE: &str = "\
usage: gateway-secrets-sync --env <name> --target <dev-vars|cloudflare|secrets-file> [options]

  --env NAME          environment in the mapping file (dev, staging, production)
  --target T          dev-vars: write .dev.vars for wrangler dev
                      cloudflare: write the Worker's secrets as one new version
                      secrets-file: write them to --out as JSON (mode 0600) for
                        `wrangler deploy --secrets-file` (make deploy); the audit
                        line's fingerprint is the SECRETS_VERSION to deploy with
  --mapping FILE      mapping file (default secrets-sync.toml)
  --out FILE          dev-vars or secrets file (default .dev.vars)
  --audit-log FILE    append the audit line here too (default secrets-sync-audit.log)
  --dry-run           show names, paths, versions and what would change; write nothing

environment:
  VAULT_ADDR (required), VAULT_NAMESPACE, VAULT_CACERT (PEM file; TLS is always verified)
  AppRole: VAULT_ROLE_ID, VAULT_SECRET_ID, or VAULT_ROLE_ID_FILE, VAULT_SECRET_ID_FILE
  JWT:     VAULT_JWT or VAULT_JWT_FILE, else the GitHub Actions OIDC token
           (ACTIONS_ID_TOKEN_REQUEST_URL, ACTIONS_ID_TOKEN_REQUEST_TOKEN)
  CLOUDFLARE_API_BASE_URL (default https://api.cloudflare.com/client/v4)
";

struct Args {
    env: String,
    target: String,
    mapping: PathBuf,
    out: PathBuf,
    audit_log: PathBuf,
    dry_run: bool,
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        env: String::new(),
        target: String::new(),
        mapping: PathBuf::from("secrets-sync.toml"),
        out: PathBuf::from(".dev.vars"),
        audit_log: PathBuf::from("secrets-sync-audit.log"),
        dry_run: false,
    };
    while let Some(arg) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--env" => args.env = value("--env")?,
            "--target" => args.target = value("--target")?,
            "--mapping" => args.mapping = value("--mapping")?.into(),
            "--out" => args.out = value("--out")?.into(),
            "--audit-log" => args.audit_log = value("--audit-log")?.into(),
            "--dry-run" => args.dry_run = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if args.env.is_empty() || args.target.is_empty() {
        return Err("--env and --target are required".to_owned());
    }
    Ok(args)
}

/// A value from the environment, or from the file a `<NAME>_FILE` variable names.
fn env_or_file(name: &str) -> Result<Option<String>, String> {
    if let Some(v) = std::env::var(name).ok().filter(|v| !v.is_empty()) {
        return Ok(Some(v));
    }
    match std::env::var(format!("{name}_FILE"))
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(path) => std::fs::read_to_string(&path)
            .map(|v| Some(v.trim().to_owned()))
            .map_err(|e| format!("{name}_FILE ({path}): {e}")),
        None => Ok(None),
    }
}

/// The GitHub Actions OIDC token for `audience` (the job needs `permissions: id-token: write`).
fn github_oidc_token(audience: &str) -> Result<Option<String>, String> {
    let (Ok(url), Ok(bearer)) = (
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL"),
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
    ) else {
        return Ok(None);
    };
    let encoded: String = audience
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let sep = if url.contains('?') { '&' } else { '?' };
    let agent = secrets_sync::vault::agent(None)?;
    let mut resp = agent
        .get(format!("{url}{sep}audience={encoded}"))
        .header("Authorization", format!("bearer {bearer}"))
        .call()
        .map_err(|e| format!("requesting the GitHub OIDC token: {e}"))?;
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp
        .body_mut()
        .read_json()
        .map_err(|e| format!("the GitHub OIDC answer ({status}) is not JSON: {e}"))?;
    body["value"]
        .as_str()
        .map(|v| Some(v.to_owned()))
        .ok_or_else(|| format!("the GitHub OIDC answer ({status}) has no token"))
}

fn options(args: &Args) -> Result<Options, String> {
    let mapping_text = std::fs::read_to_string(&args.mapping)
        .map_err(|e| format!("{}: {e}", args.mapping.display()))?;
    let mapping =
        Mapping::parse(&mapping_text).map_err(|e| format!("{}: {e}", args.mapping.display()))?;
    let env = mapping.environment(&args.env)?;
    let vault_addr = std::env::var("VAULT_ADDR")
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or("VAULT_ADDR is not set")?;
    secrets_sync::transport::check("VAULT_ADDR", &vault_addr)?;
    let ca_pem = match std::env::var("VAULT_CACERT").ok().filter(|v| !v.is_empty()) {
        Some(path) => {
            Some(std::fs::read(&path).map_err(|e| format!("VAULT_CACERT ({path}): {e}"))?)
        }
        None => None,
    };
    let credentials = match &env.auth {
        Auth::Approle { .. } => match (
            env_or_file("VAULT_ROLE_ID")?,
            env_or_file("VAULT_SECRET_ID")?,
        ) {
            (Some(role_id), Some(secret_id)) => Credentials::Approle { role_id, secret_id },
            _ => Credentials::None,
        },
        Auth::Jwt { audience, .. } => match env_or_file("VAULT_JWT")? {
            Some(jwt) => Credentials::Jwt(jwt),
            None => github_oidc_token(audience)?.map_or(Credentials::None, Credentials::Jwt),
        },
    };
    let target = match args.target.as_str() {
        "dev-vars" => Target::DevVars(args.out.clone()),
        "cloudflare" => {
            let api_base = std::env::var("CLOUDFLARE_API_BASE_URL")
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| DEFAULT_API_BASE.to_owned());
            secrets_sync::transport::check("CLOUDFLARE_API_BASE_URL", &api_base)?;
            Target::Cloudflare { api_base }
        }
        "secrets-file" => Target::SecretsFile(args.out.clone()),
        other => {
            return Err(format!(
                "unknown target '{other}' (dev-vars, cloudflare or secrets-file)"
            ));
        }
    };
    Ok(Options {
        mapping: mapping_text,
        environment: args.env.clone(),
        target,
        dry_run: args.dry_run,
        vault_addr,
        namespace: std::env::var("VAULT_NAMESPACE")
            .ok()
            .filter(|v| !v.is_empty()),
        ca_pem,
        credentials,
    })
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(msg) => {
            let mut err = std::io::stderr();
            if !msg.is_empty() {
                let _ = writeln!(err, "gateway-secrets-sync: {msg}");
            }
            let _ = write!(err, "{USAGE}");
            return ExitCode::from(2);
        }
    };
    let outcome = match options(&args) {
        Ok(opts) => sync::run(&opts, &SystemClock),
        Err(msg) => sync::Outcome {
            audit: serde_json::json!({
                "event": "secrets_sync", "environment": args.env, "target": args.target,
                "result": "failed", "written": false, "error": msg,
            }),
            ok: false,
        },
    };
    let line = outcome.audit.to_string();
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}");
    // Mode 0600 when created: the line names Vault paths, versions and the token's accessor.
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&args.audit_log)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = appended {
        let _ = writeln!(
            std::io::stderr(),
            "gateway-secrets-sync: audit log {}: {e}",
            args.audit_log.display()
        );
        return ExitCode::from(1);
    }
    if !outcome.ok {
        if let Some(error) = outcome.audit["error"].as_str() {
            let _ = writeln!(std::io::stderr(), "gateway-secrets-sync: {error}");
        }
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
