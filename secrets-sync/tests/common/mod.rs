//! Test harness: the real OpenBao dev server (shared with the end-to-end suite:
//! `gateway_e2e::bao`), scratch folders, and a runner for the `gateway-secrets-sync` binary.

#![allow(
    dead_code,
    unreachable_pub,
    missing_debug_implementations,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stderr
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64ct::Encoding as _;
pub use gateway_e2e::bao::Bao;
pub use gateway_e2e::workspace_root as root;
use serde_json::Value;

/// A scratch folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = root()
        .join("target/secrets-sync-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A base64url key of 32 bytes derived from a label.
pub fn key(label: &str) -> String {
    let mut bytes = [0u8; 32];
    for ((slot, b), i) in bytes.iter_mut().zip(label.bytes().cycle()).zip(0u8..) {
        *slot = b ^ i;
    }
    base64ct::Base64UrlUnpadded::encode_string(&bytes)
}

/// The result of one CLI run.
pub struct Run {
    pub status: i32,
    pub audit: Value,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the CLI in `dir` with these arguments and environment (nothing inherited from the test
/// process's Vault or Cloudflare variables).
pub fn sync(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway-secrets-sync"));
    cmd.current_dir(dir).args(args);
    for var in [
        "VAULT_ADDR",
        "VAULT_TOKEN",
        "VAULT_NAMESPACE",
        "VAULT_CACERT",
        "VAULT_ROLE_ID",
        "VAULT_SECRET_ID",
        "VAULT_JWT",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "CLOUDFLARE_API_BASE_URL",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out: Output = cmd.output().expect("run gateway-secrets-sync");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let audit = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    Run {
        status: out.status.code().unwrap_or(-1),
        audit,
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
