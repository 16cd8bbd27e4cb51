//! The sync job against a real OpenBao dev server: AppRole and JWT login, KV v2 versions and
//! rotation, idempotence, leases, and every failure leaving the target byte for byte untouched.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stderr,
    clippy::string_slice
)]

mod common;

use std::path::Path;

use common::{Bao, key, scratch, sync};
use serde_json::{Value, json};

const MAPPING: &str = r#"
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
name = "GATEWAY_STATIC_JWKS"
path = "gateway/dev/internal-issuer"
key = "hs256_key"
format = "oct_jwks"
issuer = "internal"
overlap_seconds = 0

[[environments.dev.secrets]]
name = "PARTNER_WEBHOOK_TOKEN"
path = "gateway/dev/partner"
key = "token"
"#;

struct Fixture {
    bao: Bao,
    dir: std::path::PathBuf,
    role_id: String,
    secret_id: String,
}

impl Fixture {
    fn new(name: &str, mapping: &str) -> Fixture {
        let dir = scratch(name);
        let bao = Bao::start(&dir);
        bao.put(
            "gateway/dev/origin-signing",
            json!({"secret": key("sign-1")}),
        );
        bao.put(
            "gateway/dev/internal-issuer",
            json!({"hs256_key": key("hs-1")}),
        );
        bao.put(
            "gateway/dev/partner",
            json!({"token": "partner-canary-token-0001"}),
        );
        let (role_id, secret_id) = bao.approle("sync-dev", &["secret/data/gateway/dev/*"]);
        std::fs::write(dir.join("secrets-sync.toml"), mapping).unwrap();
        Fixture {
            bao,
            dir,
            role_id,
            secret_id,
        }
    }

    fn run(&self, extra: &[&str]) -> common::Run {
        let mut args = vec!["--env", "dev", "--target", "dev-vars"];
        args.extend_from_slice(extra);
        sync(
            &self.dir,
            &args,
            &[
                ("VAULT_ADDR", &self.bao.addr),
                ("VAULT_ROLE_ID", &self.role_id),
                ("VAULT_SECRET_ID", &self.secret_id),
            ],
        )
    }

    fn dev_vars(&self) -> Vec<u8> {
        std::fs::read(self.dir.join(".dev.vars")).unwrap_or_default()
    }

    fn var(&self, name: &str) -> String {
        let text = String::from_utf8(self.dev_vars()).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} not in .dev.vars"));
        line[name.len() + 1..].trim_matches('\'').to_owned()
    }
}

/// No secret value may appear in what the job prints or logs.
fn assert_no_values(run: &common::Run, dir: &Path, values: &[&str]) {
    let audit_log = std::fs::read_to_string(dir.join("secrets-sync-audit.log")).unwrap_or_default();
    for v in values {
        for (place, text) in [
            ("stdout", &run.stdout),
            ("stderr", &run.stderr),
            ("audit log", &audit_log),
        ] {
            assert!(!text.contains(v), "a secret value reached the {place}");
        }
    }
}

fn change_of(audit: &Value, name: &str) -> String {
    audit["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()["change"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn approle_sync_writes_dev_vars_rotates_and_is_then_a_no_op() {
    let f = Fixture::new("approle", MAPPING);
    let first = f.run(&[]);
    assert_eq!(first.status, 0, "{}{}", first.stdout, first.stderr);
    let a = &first.audit;
    assert_eq!(a["result"], "written");
    assert_eq!(a["written"], true);
    assert_eq!(a["auth_method"], "approle");
    assert_eq!(a["auth_role"], "sync-dev");
    assert!(a["token_accessor"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(change_of(a, "GATEWAY_SIGNING_KEYS"), "added");
    assert_eq!(
        a["fingerprint"],
        "sv1;GATEWAY_SIGNING_KEYS=secret/gateway/dev/origin-signing#secret@1;\
GATEWAY_STATIC_JWKS=secret/gateway/dev/internal-issuer#hs256_key@1;\
PARTNER_WEBHOOK_TOKEN=secret/gateway/dev/partner#token@1"
    );
    // The file: mode 0600, the rendered secrets and the fingerprint.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(f.dir.join(".dev.vars"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let keyset: Value = serde_json::from_str(&f.var("GATEWAY_SIGNING_KEYS")).unwrap();
    assert_eq!(
        keyset,
        json!({"current": "v1", "keys": [{"kid": "v1", "secret": key("sign-1")}]})
    );
    let jwks: Value = serde_json::from_str(&f.var("GATEWAY_STATIC_JWKS")).unwrap();
    assert_eq!(jwks["internal"]["keys"][0]["k"], key("hs-1"));
    assert_eq!(f.var("PARTNER_WEBHOOK_TOKEN"), "partner-canary-token-0001");
    assert_eq!(f.var("SECRETS_VERSION"), a["fingerprint"].as_str().unwrap());
    assert_no_values(
        &first,
        &f.dir,
        &[&key("sign-1"), &key("hs-1"), "partner-canary-token-0001"],
    );

    // Unchanged: a no-op, the file untouched.
    let before = f.dev_vars();
    let modified = std::fs::metadata(f.dir.join(".dev.vars"))
        .unwrap()
        .modified()
        .unwrap();
    let again = f.run(&[]);
    assert_eq!(again.status, 0, "{}", again.stderr);
    assert_eq!(again.audit["result"], "unchanged");
    assert_eq!(again.audit["written"], false);
    assert_eq!(f.dev_vars(), before);
    assert_eq!(
        std::fs::metadata(f.dir.join(".dev.vars"))
            .unwrap()
            .modified()
            .unwrap(),
        modified
    );

    // Rotation: a new version in Vault; the keyset holds the new key as current and the previous
    // one during the overlap; the HS256 mapping (overlap 0) holds only the new key.
    f.bao.put(
        "gateway/dev/origin-signing",
        json!({"secret": key("sign-2")}),
    );
    f.bao.put(
        "gateway/dev/internal-issuer",
        json!({"hs256_key": key("hs-2")}),
    );
    let dry = f.run(&["--dry-run"]);
    assert_eq!(dry.audit["result"], "would_write");
    assert_eq!(change_of(&dry.audit, "GATEWAY_SIGNING_KEYS"), "changed");
    assert_eq!(change_of(&dry.audit, "PARTNER_WEBHOOK_TOKEN"), "unchanged");
    assert_eq!(f.dev_vars(), before, "a dry run writes nothing");
    assert_no_values(&dry, &f.dir, &[&key("sign-2"), &key("hs-2")]);
    let rotated = f.run(&[]);
    assert_eq!(rotated.audit["result"], "written", "{}", rotated.stderr);
    let keyset: Value = serde_json::from_str(&f.var("GATEWAY_SIGNING_KEYS")).unwrap();
    assert_eq!(
        keyset,
        json!({"current": "v2", "keys": [
            {"kid": "v2", "secret": key("sign-2")},
            {"kid": "v1", "secret": key("sign-1")}
        ]})
    );
    let jwks: Value = serde_json::from_str(&f.var("GATEWAY_STATIC_JWKS")).unwrap();
    assert_eq!(jwks["internal"]["keys"].as_array().unwrap().len(), 1);
    assert!(
        rotated.audit["fingerprint"]
            .as_str()
            .unwrap()
            .contains("origin-signing#secret@2,1")
    );
    let after = f.run(&[]);
    assert_eq!(after.audit["result"], "unchanged");

    // Vault's own trail shows this role's token reading the paths.
    let audit = std::fs::read_to_string(&f.bao.audit_log).unwrap();
    let accessor = f
        .bao
        .audit_hash(rotated.audit["token_accessor"].as_str().unwrap());
    assert!(
        audit
            .lines()
            .any(|l| l.contains("secret/data/gateway/dev/origin-signing") && l.contains(&accessor)),
        "the Vault audit log has no read of the signing key by the sync's token"
    );
    assert!(
        !audit.contains(&key("sign-2")),
        "Vault's audit log holds values only as HMACs"
    );
    // Our own audit log: one line per run.
    let ours = std::fs::read_to_string(f.dir.join("secrets-sync-audit.log")).unwrap();
    assert_eq!(ours.lines().count(), 5);
}

#[test]
fn any_failure_writes_nothing_and_names_the_path() {
    let mut f = Fixture::new("failures", MAPPING);
    assert_eq!(f.run(&[]).status, 0);
    let before = f.dev_vars();
    let unchanged = |f: &Fixture, run: &common::Run, what: &str| {
        assert_eq!(run.status, 1, "{what}: {}", run.stdout);
        assert_eq!(run.audit["result"], "failed", "{what}");
        assert_eq!(run.audit["written"], false, "{what}");
        assert_eq!(f.dev_vars(), before, "{what}: the target changed");
    };

    // One key missing among several (a new version without it).
    f.bao.put(
        "gateway/dev/partner",
        json!({"renamed": "partner-canary-token-0002"}),
    );
    let run = f.run(&[]);
    unchanged(&f, &run, "missing key");
    assert!(
        run.stderr.contains("secret/gateway/dev/partner") && run.stderr.contains("'token'"),
        "{}",
        run.stderr
    );
    assert_no_values(&run, &f.dir, &["partner-canary-token-0002"]);
    f.bao.put(
        "gateway/dev/partner",
        json!({"token": "partner-canary-token-0001"}),
    );

    // A path outside the role's policy.
    let outside = MAPPING.replace("gateway/dev/partner", "gateway/prod/partner");
    f.bao.put(
        "gateway/prod/partner",
        json!({"token": "prod-canary-token-0003"}),
    );
    std::fs::write(f.dir.join("secrets-sync.toml"), &outside).unwrap();
    let run = f.run(&[]);
    unchanged(&f, &run, "permission denied");
    assert!(
        run.stderr
            .contains("permission denied reading secret/gateway/prod/partner"),
        "{}",
        run.stderr
    );
    std::fs::write(f.dir.join("secrets-sync.toml"), MAPPING).unwrap();

    // A path that does not exist.
    std::fs::write(
        f.dir.join("secrets-sync.toml"),
        MAPPING.replace("gateway/dev/partner", "gateway/dev/nope"),
    )
    .unwrap();
    let run = f.run(&[]);
    unchanged(&f, &run, "missing path");
    assert!(
        run.stderr.contains("no secret at secret/gateway/dev/nope"),
        "{}",
        run.stderr
    );
    std::fs::write(f.dir.join("secrets-sync.toml"), MAPPING).unwrap();

    // Wrong AppRole credentials.
    let run = sync(
        &f.dir,
        &["--env", "dev", "--target", "dev-vars"],
        &[
            ("VAULT_ADDR", &f.bao.addr),
            ("VAULT_ROLE_ID", &f.role_id),
            ("VAULT_SECRET_ID", "wrong"),
        ],
    );
    unchanged(&f, &run, "bad secret id");
    assert!(run.stderr.contains("Vault login failed"), "{}", run.stderr);

    // A namespace that does not exist: the header reaches Vault, which refuses.
    let run = sync(
        &f.dir,
        &["--env", "dev", "--target", "dev-vars"],
        &[
            ("VAULT_ADDR", &f.bao.addr),
            ("VAULT_NAMESPACE", "no-such-team"),
            ("VAULT_ROLE_ID", &f.role_id),
            ("VAULT_SECRET_ID", &f.secret_id),
        ],
    );
    unchanged(&f, &run, "unknown namespace");
    assert!(run.stderr.contains("namespace not found"), "{}", run.stderr);
    assert_eq!(run.audit["vault_namespace"], "no-such-team");

    // A CA file that holds no certificate: refused before any connection.
    std::fs::write(f.dir.join("ca.pem"), "not a certificate").unwrap();
    let ca = f.dir.join("ca.pem");
    let run = sync(
        &f.dir,
        &["--env", "dev", "--target", "dev-vars"],
        &[
            ("VAULT_ADDR", &f.bao.addr),
            ("VAULT_CACERT", ca.to_str().unwrap()),
            ("VAULT_ROLE_ID", &f.role_id),
            ("VAULT_SECRET_ID", &f.secret_id),
        ],
    );
    unchanged(&f, &run, "bad CA file");
    assert!(run.stderr.contains("CA file"), "{}", run.stderr);

    // Sealed, then stopped.
    f.bao.seal();
    let run = f.run(&[]);
    unchanged(&f, &run, "sealed");
    assert!(run.stderr.contains("sealed"), "{}", run.stderr);
    f.bao.stop();
    let run = f.run(&[]);
    unchanged(&f, &run, "stopped");
    assert!(run.stderr.contains("unreachable"), "{}", run.stderr);
}

#[test]
fn a_leased_path_reports_its_ttl_and_the_next_sync() {
    let mapping = format!(
        "{MAPPING}\n[[environments.dev.secrets]]\nname = \"LEASED_DB_PASSWORD\"\nmount = \"kv1\"\nkv_version = 1\npath = \"gateway/dev/db\"\nkey = \"password\"\n"
    );
    let f = Fixture::new("leased", &mapping);
    f.bao.api(
        "POST",
        "sys/mounts/kv1",
        json!({"type": "kv", "options": {"version": "1"}}),
    );
    f.bao.api(
        "POST",
        "kv1/gateway/dev/db",
        json!({"password": "leased-canary-pw-0004", "ttl": "1h"}),
    );
    f.bao.api(
        "PUT",
        "sys/policies/acl/sync-dev",
        json!({"policy": "path \"secret/data/gateway/dev/*\" { capabilities = [\"read\"] }\npath \"kv1/gateway/dev/*\" { capabilities = [\"read\"] }\n"}),
    );
    let run = f.run(&[]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let leased = run.audit["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "LEASED_DB_PASSWORD")
        .unwrap()
        .clone();
    assert_eq!(leased["lease_seconds"], 3600);
    let ts = run.audit["ts"].as_u64().unwrap();
    let due = run.audit["next_sync_due"].as_u64().unwrap();
    assert!((ts + 2700..=ts + 2705).contains(&due), "due {due}, ts {ts}");
    assert!(
        run.audit["fingerprint"]
            .as_str()
            .unwrap()
            .contains("kv1/gateway/dev/db#password@-")
    );
    assert_no_values(&run, &f.dir, &["leased-canary-pw-0004"]);
}

/// A clock the test moves.
struct ManualClock(std::sync::atomic::AtomicU64);

impl secrets_sync::clock::Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl ManualClock {
    fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn tokens_are_renewed_or_replaced_as_their_ttl_requires() {
    use secrets_sync::vault::{Login, Vault, agent};
    let dir = scratch("renewal");
    let bao = Bao::start(&dir);
    bao.put(
        "gateway/dev/partner",
        json!({"token": "renewal-canary-0008"}),
    );
    let (role_id, secret_id) = bao.approle("sync-dev", &["secret/data/gateway/dev/*"]);
    let clock = ManualClock(std::sync::atomic::AtomicU64::new(1_000_000));
    let login = Login::Approle {
        mount: "approle".into(),
        role_id,
        secret_id,
    };
    let mut vault = Vault::new(agent(None).unwrap(), &bao.addr, None, login, &clock);
    let read = |v: &mut Vault<'_>| {
        let (value, _) = v
            .read_key("secret", 2, "gateway/dev/partner", "token")
            .unwrap();
        assert_eq!(value, "renewal-canary-0008");
    };
    read(&mut vault);
    let token = vault.token().unwrap().clone();
    assert_eq!((vault.logins, vault.renewals), (1, 0));
    assert_eq!((token.lease_seconds, token.renewable), (1200, true));
    // Early in its life: used as it is.
    clock.advance(600);
    read(&mut vault);
    assert_eq!((vault.logins, vault.renewals), (1, 0));
    // In its last fifth: renewed (renew-self), same token.
    clock.advance(400);
    read(&mut vault);
    assert_eq!((vault.logins, vault.renewals), (1, 1));
    assert_eq!(vault.accessor(), Some(token.accessor.as_str()));

    // A role whose tokens cannot be renewed (batch tokens): a fresh login instead.
    bao.api(
        "POST",
        "auth/approle/role/sync-batch",
        json!({"token_policies": ["sync-dev"], "token_ttl": "20m", "token_type": "batch"}),
    );
    let (role_id, secret_id) = bao.approle_ids("sync-batch");
    let login = Login::Approle {
        mount: "approle".into(),
        role_id,
        secret_id,
    };
    let mut batch = Vault::new(agent(None).unwrap(), &bao.addr, None, login, &clock);
    read(&mut batch);
    assert!(!batch.token().unwrap().renewable);
    clock.advance(1100);
    read(&mut batch);
    assert_eq!((batch.logins, batch.renewals), (2, 0));
}

/// The `secrets-file` target (`make deploy`): one JSON object of every mapped secret, mode
/// 0600, for `wrangler deploy --secrets-file`; the fingerprint stays out of it (the deploy sets
/// it as the `SECRETS_VERSION` var) and no value reaches the output. A dry run and a failed read
/// write no file.
#[test]
fn secrets_file_target_writes_one_json_object_for_the_deploy() {
    use std::os::unix::fs::PermissionsExt as _;
    let f = Fixture::new("secrets-file", MAPPING);
    let out = f.dir.join("deploy-secrets.json");
    let out_arg = out.to_string_lossy().into_owned();
    let env = [
        ("VAULT_ADDR", f.bao.addr.as_str()),
        ("VAULT_ROLE_ID", f.role_id.as_str()),
        ("VAULT_SECRET_ID", f.secret_id.as_str()),
    ];
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--env",
            "dev",
            "--target",
            "secrets-file",
            "--out",
            &out_arg,
        ];
        args.extend_from_slice(extra);
        sync(&f.dir, &args, &env)
    };

    let dry = run(&["--dry-run"]);
    assert_eq!(dry.status, 0, "{}{}", dry.stdout, dry.stderr);
    assert_eq!(dry.audit["result"], "would_write");
    assert!(!out.exists(), "a dry run writes no file");

    let written = run(&[]);
    assert_eq!(written.status, 0, "{}{}", written.stdout, written.stderr);
    assert_eq!(written.audit["target"], "secrets-file");
    assert_eq!(written.audit["result"], "written");
    assert!(
        written.audit["fingerprint"]
            .as_str()
            .is_some_and(|fp| fp.starts_with("sv1;GATEWAY_SIGNING_KEYS="))
    );
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let names: Vec<&String> = file.as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        [
            "GATEWAY_SIGNING_KEYS",
            "GATEWAY_STATIC_JWKS",
            "PARTNER_WEBHOOK_TOKEN"
        ],
        "every mapped secret, and no SECRETS_VERSION"
    );
    assert_eq!(file["PARTNER_WEBHOOK_TOKEN"], "partner-canary-token-0001");
    let keyset: Value =
        serde_json::from_str(file["GATEWAY_SIGNING_KEYS"].as_str().unwrap()).unwrap();
    assert_eq!(keyset["keys"][0]["secret"], key("sign-1"));
    assert_no_values(
        &written,
        &f.dir,
        &[&key("sign-1"), &key("hs-1"), "partner-canary-token-0001"],
    );

    // A secret that cannot be read: nothing is written, the earlier file stays as it was.
    std::fs::remove_file(&out).unwrap();
    f.bao
        .put("gateway/dev/partner", json!({"not-the-token": "x"}));
    let failed = run(&[]);
    assert_eq!(failed.status, 1);
    assert_eq!(failed.audit["written"], false);
    assert!(!out.exists(), "a failed sync writes no file");
}

/// Credentials and secrets never travel on plain http:// beyond this machine: a remote
/// http:// VAULT_ADDR or CLOUDFLARE_API_BASE_URL is refused before anything is sent (no server
/// listens at either address here, so a request would fail differently); the audit log is
/// created with mode 0600.
#[test]
fn plain_http_beyond_loopback_is_refused_and_the_audit_log_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = scratch("transport");
    std::fs::write(dir.join("secrets-sync.toml"), MAPPING).unwrap();
    let run = sync(
        &dir,
        &["--env", "dev", "--target", "dev-vars"],
        &[
            ("VAULT_ADDR", "http://vault.invalid:8200"),
            ("VAULT_ROLE_ID", "r"),
            ("VAULT_SECRET_ID", "s"),
        ],
    );
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    let error = run.audit["error"].as_str().unwrap();
    assert!(error.contains("VAULT_ADDR is plain http://"), "{error}");
    assert!(
        !error.contains("dns") && !error.contains("resolve"),
        "{error}"
    );
    let mode = std::fs::metadata(dir.join("secrets-sync-audit.log"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let run = sync(
        &dir,
        &["--env", "dev", "--target", "cloudflare"],
        &[
            ("VAULT_ADDR", "http://127.0.0.1:9"),
            ("VAULT_ROLE_ID", "r"),
            ("VAULT_SECRET_ID", "s"),
            ("CLOUDFLARE_API_BASE_URL", "http://api.invalid/client/v4"),
        ],
    );
    assert_eq!(run.status, 1);
    let error = run.audit["error"].as_str().unwrap();
    assert!(
        error.contains("CLOUDFLARE_API_BASE_URL is plain http://"),
        "{error}"
    );
}
