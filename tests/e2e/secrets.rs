//! Secrets from Vault end to end: OpenBao holds the origin-signing key, `gateway-secrets-sync`
//! writes the `.dev.vars` the gateway in `wrangler dev` runs with, and the demo origin verifies
//! with the synced keyset. A rotation in Vault, a sync and a reload: the gateway signs with the
//! new key, a signature made with the previous key is still accepted during the overlap, and
//! once the overlap is over the previous key is gone.

use std::path::{Path, PathBuf};
use std::process::Command;

use gateway_e2e::bao::Bao;
use gateway_e2e::{Stack, http, workspace_root};
use serde_json::{Value, json};

use crate::Case;

pub(crate) const CASES: &[Case] = &[(
    "secrets::vault_rotation_reaches_the_gateway_and_the_origin",
    vault_rotation_reaches_the_gateway_and_the_origin,
)];

fn key(seed: u8) -> Vec<u8> {
    (0..32u8).map(|i| i.wrapping_mul(29) ^ seed).collect()
}

fn b64(bytes: &[u8]) -> String {
    <base64ct::Base64UrlUnpadded as base64ct::Encoding>::encode_string(bytes)
}

fn sync(dir: &Path, bao: &Bao, ids: &(String, String), out: &Path) -> Value {
    let bin = workspace_root().join("target/debug/gateway-secrets-sync");
    assert!(
        bin.exists(),
        "{} is missing (make test builds it)",
        bin.display()
    );
    let output = Command::new(bin)
        .current_dir(dir)
        .args(["--env", "dev", "--target", "dev-vars", "--out"])
        .arg(out)
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_ROLE_ID", &ids.0)
        .env("VAULT_SECRET_ID", &ids.1)
        .env_remove("VAULT_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "sync failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn mapping(overlap: u64) -> String {
    format!(
        r#"
[environments.dev]
worker = "edge-gateway"
auth = {{ method = "approle" }}

[[environments.dev.secrets]]
name = "GATEWAY_SIGNING_KEYS"
path = "gateway/dev/origin-signing"
key = "secret"
format = "signing_keyset"
overlap_seconds = {overlap}

[[environments.dev.secrets]]
name = "GATEWAY_STATIC_JWKS"
path = "gateway/dev/internal-issuer"
key = "hs256_key"
format = "oct_jwks"
issuer = "internal"
overlap_seconds = {overlap}
"#
    )
}

/// The kid the gateway signed a forwarded request with, from the origin's echo.
fn signed_kid(stack: &Stack) -> String {
    let resp = http::get(&format!("{}/api/health", stack.gateway), &[]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let headers = resp.json()["headers"].clone();
    let sig = headers
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "x-gateway-signature")
        .unwrap()[1]
        .as_str()
        .unwrap()
        .to_owned();
    sig.split(',')
        .find_map(|p| p.strip_prefix("kid="))
        .unwrap()
        .to_owned()
}

/// A request straight to the origin, signed by hand with `key` as `kid`.
fn signed_directly(stack: &Stack, key: &[u8], kid: &str) -> http::Response {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let request_id = format!("direct-{kid}-{t}");
    let headers = [
        ("x-request-id", request_id.as_str()),
        ("x-gateway-route", "health"),
    ];
    let sig = gateway_e2e::origin_signature(key, kid, "GET", "/api/health", t, &headers, b"");
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    all.push(("x-gateway-signature", &sig));
    http::get(&format!("{}/api/health", stack.origin), &all).unwrap()
}

fn vault_rotation_reaches_the_gateway_and_the_origin(_shared: &Stack) {
    let dir: PathBuf = workspace_root()
        .join("target/e2e")
        .join(format!("vault-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bao = Bao::start(&dir);
    bao.put(
        "gateway/dev/origin-signing",
        json!({"secret": b64(&key(1))}),
    );
    bao.put(
        "gateway/dev/internal-issuer",
        json!({"hs256_key": b64(&key(9))}),
    );
    let ids = bao.approle("sync", &["secret/data/gateway/dev/*"]);
    std::fs::write(dir.join("secrets-sync.toml"), mapping(600)).unwrap();
    let vars = dir.join("synced.dev.vars");

    // First sync, then the gateway and the origin on the synced secrets.
    let first = sync(&dir, &bao, &ids, &vars);
    assert_eq!(first["result"], "written");
    let mut stack = Stack::start_with_secrets("vault-sync", &vars).expect("stack");
    assert_eq!(signed_kid(&stack), "v1");

    // Rotate in Vault, sync, reload: the gateway signs with v2; the origin still accepts v1
    // during the overlap (and rejects a key it never had).
    bao.put(
        "gateway/dev/origin-signing",
        json!({"secret": b64(&key(2))}),
    );
    let rotated = sync(&dir, &bao, &ids, &vars);
    assert_eq!(rotated["result"], "written");
    assert!(
        rotated["fingerprint"]
            .as_str()
            .unwrap()
            .contains("origin-signing#secret@2,1"),
        "{rotated}"
    );
    stack.reload_secrets().expect("reload");
    assert_eq!(signed_kid(&stack), "v2");
    let old = signed_directly(&stack, &key(1), "v1");
    assert_eq!(
        old.status,
        200,
        "previous key during the overlap: {}",
        old.text()
    );
    let forged = signed_directly(&stack, &key(3), "v1");
    assert_eq!(forged.status, 401, "{}", forged.text());

    // After the overlap (here: a mapping with none), the previous key is gone everywhere.
    std::fs::write(dir.join("secrets-sync.toml"), mapping(0)).unwrap();
    let dropped = sync(&dir, &bao, &ids, &vars);
    assert_eq!(dropped["result"], "written");
    stack.reload_secrets().expect("reload");
    assert_eq!(signed_kid(&stack), "v2");
    let old = signed_directly(&stack, &key(1), "v1");
    assert_eq!(
        old.status,
        401,
        "the previous key must be refused now: {}",
        old.text()
    );
    assert_eq!(signed_directly(&stack, &key(2), "v2").status, 200);
    // And a further sync changes nothing.
    assert_eq!(sync(&dir, &bao, &ids, &vars)["result"], "unchanged");
}
