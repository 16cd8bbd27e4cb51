//! The end-to-end harness: starts the demo origin, the local issuer and the gateway in the real
//! local Workers runtime (`wrangler dev`, i.e. workerd) on ports it picks, waits for them by
//! polling (never a fixed sleep), and stops everything it started, by PID, when dropped.
//!
//! Each `wrangler dev` gets its own `--port`, `--inspector-port`, `--persist-to` and config
//! home, runs the `test` environment with `--var` overrides for the ports, and never rebuilds
//! the Worker (the config has no `[build]` step; `make build` runs first). As in production, it
//! runs two Workers: the gateway (`wrangler.toml`, serving the port) and the counters Worker
//! (`durable/wrangler.toml`), whose counter object the gateway reaches through its binding's
//! `script_name` (one `wrangler dev` with both configurations).

// Test tooling: a failed expectation panics, and that is how a test fails.
#![allow(
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::string_slice
)]

pub mod bao;
pub mod corpus;
pub mod http;
pub mod leaks;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64ct::Encoding as _;

/// The `iss` of the `internal` (HS256, static key) issuer in test runs.
pub const INTERNAL_ISSUER: &str = "urn:edge-gateway:internal-test";

/// The `SECRETS_VERSION` of a run's generated secrets (the Vault sync writes the real one).
pub const TEST_SECRETS_VERSION: &str =
    "sv1;GATEWAY_SIGNING_KEYS=secret/gateway/test/origin-signing#secret@1";

/// The audience the policy's `users` issuer accepts.
pub const AUDIENCE: &str = "https://api.example.com";

/// One process the harness started.
struct Service {
    name: &'static str,
    child: Child,
    /// Kill the whole process group (wrangler starts workerd as a child).
    group: bool,
    log: PathBuf,
}

impl Service {
    fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let target = if self.group { format!("-{pid}") } else { pid };
        let _ = Command::new("kill").args(["-TERM", "--", &target]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                if self.group {
                    // The leader is gone; make sure the rest of the group is too.
                    let _ = Command::new("kill")
                        .args(["-KILL", "--", &target])
                        .stderr(Stdio::null())
                        .status();
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &target])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }

    /// SIGKILL of the whole process group (wrangler and workerd): a crash, no shutdown.
    fn kill(&mut self) {
        let target = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &target])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// The gateway in Miniflare behind a loopback front ([`Stack::miniflare_front`]).
#[allow(missing_debug_implementations)]
pub struct Front {
    /// The front's base URL.
    pub url: String,
    service: Service,
}

impl Drop for Front {
    fn drop(&mut self) {
        self.service.stop();
    }
}

/// Options for a token minted by the local issuer.
#[derive(Debug, Clone)]
pub struct TokenSpec<'a> {
    /// `org_id`.
    pub org: &'a str,
    /// `tier` (None: omitted).
    pub tier: Option<&'a str>,
    /// Space-delimited scopes.
    pub scopes: &'a str,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// JSON object merged over the claims (`null` removes a claim).
    pub claims: Option<&'a str>,
}

impl Default for TokenSpec<'_> {
    fn default() -> Self {
        TokenSpec {
            org: "acme",
            tier: Some("pro"),
            scopes: "",
            expires_in: 900,
            claims: None,
        }
    }
}

/// The running stack.
#[allow(missing_debug_implementations)]
pub struct Stack {
    /// Gateway base URL.
    pub gateway: String,
    /// Demo origin base URL.
    pub origin: String,
    /// Local issuer base URL (also its `iss`).
    pub issuer: String,
    /// The real OpenID provider's base URL (the `machines` issuer).
    pub machines: String,
    /// The `internal` issuer's HS256 key (raw bytes), as held in GATEWAY_STATIC_JWKS.
    pub internal_key: Vec<u8>,
    /// The run's scratch folder.
    pub run_dir: PathBuf,
    /// The `wrangler.toml` environment the gateway runs in.
    wrangler_env: String,
    /// The gateway's wrangler configuration (the workspace's `wrangler.toml`, or another
    /// build's, see [`Stack::start_with_gateway_config`]).
    gateway_config: PathBuf,
    /// Whether the counters Worker runs beside the gateway (not in the fault environment, whose
    /// binding names a script that is not running).
    counters: bool,
    /// Extra `--var NAME:value` overrides for the gateway.
    vars: Vec<(String, String)>,
    /// A secrets file written by the Vault sync (`.dev.vars` format), used instead of the
    /// run's generated secrets: the gateway reads it, the origin verifies with its keyset.
    synced_secrets: Option<PathBuf>,
    /// The `GATEWAY_API_KEYS` secret for this run, if any.
    api_keys: Option<String>,
    keys_dir: PathBuf,
    demo_bin: PathBuf,
    services: Vec<Service>,
}

/// The `X-Gateway-Signature` value an origin expects, computed here by hand from the published
/// canonical string (docs/origin-signing.md), independently of the gateway's signer:
/// `headers` are the forwarded request's `x-request-id` and identity headers.
pub fn origin_signature(
    key: &[u8],
    kid: &str,
    method: &str,
    target: &str,
    t: u64,
    headers: &[(&str, &str)],
    body: &[u8],
) -> String {
    use hmac::Mac;
    use sha2::Digest;
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| *k == n)
            .map_or("", |(_, v)| *v)
    };
    let mut canonical = format!("v1\n{method}\n{target}\n{t}\n{}", header("x-request-id"));
    for name in [
        "x-gateway-issuer",
        "x-gateway-subject",
        "x-gateway-org",
        "x-gateway-tier",
        "x-gateway-scopes",
        "x-gateway-route",
    ] {
        canonical.push_str(&format!("\n{name}:{}", header(name)));
    }
    let digest: String = sha2::Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    canonical.push_str(&format!("\n{digest}"));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("an HMAC key");
    mac.update(canonical.as_bytes());
    let sig: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},kid={kid},v1={sig}")
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

impl Stack {
    /// Starts origin, issuer and gateway; `name` separates this stack's scratch folder.
    pub fn start(name: &str) -> Result<Stack, String> {
        Stack::start_in(name, "test")
    }

    /// [`Stack::start`] with the gateway in another `wrangler.toml` environment (e.g. the fault
    /// environment `test-limiter-down`).
    pub fn start_in(name: &str, wrangler_env: &str) -> Result<Stack, String> {
        Stack::start_with(name, wrangler_env, &[])
    }

    /// [`Stack::start_in`] with extra per-environment var overrides (e.g. a short
    /// `ORIGIN_TIMEOUT_MS`).
    pub fn start_with(
        name: &str,
        wrangler_env: &str,
        vars: &[(&str, &str)],
    ) -> Result<Stack, String> {
        Stack::start_full(name, wrangler_env, vars, None, None)
    }

    /// [`Stack::start`] with the `GATEWAY_API_KEYS` secret set to `keys` (JSON).
    pub fn start_with_api_keys(name: &str, keys: &str) -> Result<Stack, String> {
        Stack::start_full(name, "test", &[], None, Some(keys.to_owned()))
    }

    /// [`Stack::start`] with the Worker secrets from `secrets` (a `.dev.vars` written by
    /// `gateway-secrets-sync`); the demo origin verifies with the keyset it holds.
    pub fn start_with_secrets(name: &str, secrets: &Path) -> Result<Stack, String> {
        Stack::start_full(name, "test", &[], Some(secrets.to_path_buf()), None)
    }

    /// [`Stack::start`] with the gateway from another wrangler configuration (e.g. an earlier
    /// build of the gateway, against this build's counters Worker).
    pub fn start_with_gateway_config(name: &str, config: &Path) -> Result<Stack, String> {
        Stack::start_configured(name, "test", &[], None, None, config.to_path_buf())
    }

    fn start_full(
        name: &str,
        wrangler_env: &str,
        vars: &[(&str, &str)],
        synced_secrets: Option<PathBuf>,
        api_keys: Option<String>,
    ) -> Result<Stack, String> {
        let config = workspace_root().join("wrangler.toml");
        Stack::start_configured(name, wrangler_env, vars, synced_secrets, api_keys, config)
    }

    fn start_configured(
        name: &str,
        wrangler_env: &str,
        vars: &[(&str, &str)],
        synced_secrets: Option<PathBuf>,
        api_keys: Option<String>,
        gateway_config: PathBuf,
    ) -> Result<Stack, String> {
        let root = workspace_root();
        let demo_bin = std::env::var_os("GATEWAY_DEMO_BIN")
            .map_or_else(|| root.join("target/debug/gateway-demo"), PathBuf::from);
        if !demo_bin.exists() {
            return Err(format!(
                "{} is missing: run `cargo build -p gateway-demo` (make test does)",
                demo_bin.display()
            ));
        }
        for built in ["build/index.js", "durable/build/index.js"] {
            if !root.join(built).exists() {
                return Err(format!(
                    "{built} is missing: run `make build` first (make test does)"
                ));
            }
        }
        let run_dir = root
            .join("target/e2e")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&run_dir);
        std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
        let keys_dir = run_dir.join("issuer-keys");

        let mut stack = Stack {
            gateway: String::new(),
            origin: String::new(),
            issuer: String::new(),
            machines: String::new(),
            wrangler_env: wrangler_env.to_owned(),
            gateway_config,
            counters: wrangler_env != "test-limiter-down",
            vars: vars
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            synced_secrets,
            api_keys,
            // Canary values: unmistakable if they ever show up in a log or a response.
            internal_key: b"canary-internal-hs256-key-7c1e94d2a8".to_vec(),
            run_dir: run_dir.clone(),
            keys_dir: keys_dir.clone(),
            demo_bin: demo_bin.clone(),
            services: Vec::new(),
        };
        let t = Instant::now();
        stack.start_origin()?;
        let keys = keys_dir.to_string_lossy().into_owned();
        // A 1 s JWKS max-age: key rotations show within seconds (the local issuer's policy
        // allows it).
        stack.issuer = stack.spawn_demo(
            "issuer",
            &[
                "issuer",
                "--listen",
                "127.0.0.1:0",
                "--keys",
                &keys,
                "--jwks-max-age",
                "1",
            ],
        )?;
        // The provider must know its own URL, so its port is picked first.
        let machines_port = free_port()?;
        stack.machines = stack.spawn_machines_issuer(machines_port)?;
        stack.start_gateway()?;
        eprintln!(
            "e2e: stack '{name}' up in {} ms (gateway {}, origin {}, issuer {}, machines {})",
            ms(t.elapsed()),
            stack.gateway,
            stack.origin,
            stack.issuer,
            stack.machines
        );
        Ok(stack)
    }

    /// Starts the demo origin, enforcing the gateway's request signatures with this run's keyset.
    fn start_origin(&mut self) -> Result<(), String> {
        let signing_keys = self.run_dir.join("signing-keys.json");
        std::fs::write(&signing_keys, self.signing_keyset().to_string())
            .map_err(|e| e.to_string())?;
        let signing_keys = signing_keys.to_string_lossy().into_owned();
        self.origin = self.spawn_demo(
            "origin",
            &[
                "origin",
                "--listen",
                "127.0.0.1:0",
                "--signing-keys",
                &signing_keys,
            ],
        )?;
        Ok(())
    }

    /// After the synced secrets file changed (a rotation): restarts the origin with its new
    /// keyset and the gateway with the new secrets, as a redeploy of both would.
    pub fn reload_secrets(&mut self) -> Result<(), String> {
        self.stop_service("origin");
        self.services.retain(|s| s.name != "origin");
        self.start_origin()?;
        self.restart_gateway()
    }

    /// Starts a demo server and reads back the URL from its first line.
    fn spawn_demo(&mut self, name: &'static str, args: &[&str]) -> Result<String, String> {
        let demo = self.demo_bin.clone();
        self.spawn_service(name, Command::new(demo).args(args))
    }

    /// Starts the real OpenID provider (`miniflare/peers/oidc-provider.mjs`) for the
    /// `machines` issuer on `port`, with the keyset at `<run dir>/machines-keys.json`.
    fn spawn_machines_issuer(&mut self, port: u16) -> Result<String, String> {
        let script = workspace_root().join("miniflare/peers/oidc-provider.mjs");
        let keys = self.run_dir.join("machines-keys.json");
        let mut cmd = Command::new("node");
        cmd.arg(script)
            .args([
                "serve",
                "--port",
                &port.to_string(),
                "--jwks-max-age",
                "1",
                "--keys",
            ])
            .arg(keys);
        self.spawn_service("machines", &mut cmd)
    }

    /// Starts a server and reads back the URL from its first line (`listening on <url>`).
    fn spawn_service(&mut self, name: &'static str, cmd: &mut Command) -> Result<String, String> {
        let log = self.run_dir.join(format!("{name}.log"));
        if name == "origin" {
            // What reached the origin must not hold a token or a secret either.
            leaks::log_file(log.clone());
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(File::create(&log).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("starting {name}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        self.services.push(Service {
            name,
            child,
            group: false,
            log: log.clone(),
        });
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("{name}: {e}"))?;
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| {
                format!(
                    "{name} did not start: {line:?}; log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })?
            .to_owned();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        Ok(url)
    }

    /// The gateway's `GATEWAY_ISSUERS` for this run's issuers.
    fn issuers_var(&self) -> String {
        // Short JWKS timings for this environment, so rotations show within seconds.
        let issuer = |url: &str| {
            serde_json::json!({
                "issuer": url, "jwks_uri": format!("{url}/jwks"),
                "jwks_min_ttl_seconds": 1, "jwks_default_ttl_seconds": 2,
                "jwks_refetch_interval_seconds": 1
            })
        };
        // The real provider is found by OIDC discovery, the demo issuer by its jwks_uri.
        let mut machines = issuer(&self.machines);
        machines["jwks_uri"] = serde_json::Value::Null;
        machines["discovery"] = true.into();
        serde_json::json!({
            "users": issuer(&self.issuer), "machines": machines,
            "internal": { "issuer": INTERNAL_ISSUER }
        })
        .to_string()
    }

    /// Starts the gateway (this run's build) in Miniflare behind a loopback front that turns
    /// `x-test-tls-*` request headers into `request.cf.tlsClientAuth`
    /// (`miniflare/dispatch-front.mjs`), with this stack's origin, issuers and secrets. Stopped
    /// when the returned value is dropped.
    /// `origin_mtls`: give the Worker an `ORIGIN_MTLS` binding standing in for the origin's
    /// mTLS certificate binding (it marks what it forwards with `x-test-via-origin-mtls: 1`).
    pub fn miniflare_front(&self, name: &str, origin_mtls: bool) -> Result<Front, String> {
        let root = workspace_root();
        let port = free_port()?;
        let mut bindings = serde_json::json!({
            "ENVIRONMENT": "test",
            "ORIGIN_URL": self.origin,
            "GATEWAY_ISSUERS": self.issuers_var(),
        });
        let secrets = std::fs::read_to_string(self.secrets_file()?).map_err(|e| e.to_string())?;
        for line in secrets.lines() {
            if let Some((key, value)) = line.split_once('=') {
                bindings[key] = value.trim_matches('\'').into();
            }
        }
        let config = self.run_dir.join(format!("front-{name}.json"));
        std::fs::write(
            &config,
            serde_json::json!({"port": port, "bindings": bindings, "origin_mtls": origin_mtls})
                .to_string(),
        )
        .map_err(|e| e.to_string())?;
        let log = self.run_dir.join(format!("front-{name}.log"));
        leaks::log_file(log.clone());
        let out = File::create(&log).map_err(|e| e.to_string())?;
        let child = Command::new("node")
            .current_dir(&root)
            .arg(root.join("miniflare/dispatch-front.mjs"))
            .arg(&config)
            .env("NODE_PATH", root.join("miniflare/node_modules"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(|e| e.to_string())?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting the Miniflare front: {e}"))?;
        let mut front = Front {
            url: format!("http://127.0.0.1:{port}"),
            service: Service {
                name: "front",
                child,
                group: true,
                log,
            },
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let health = format!("{}/_gateway/health", front.url);
        loop {
            if http::get(&health, &[]).is_ok_and(|r| r.status == 200) {
                return Ok(front);
            }
            if let Ok(Some(status)) = front.service.child.try_wait() {
                return Err(format!(
                    "the Miniflare front exited ({status}):\n{}",
                    front.service.log_tail()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the Miniflare front did not become healthy in 60 s:\n{}",
                    front.service.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn start_gateway(&mut self) -> Result<(), String> {
        let root = workspace_root();
        let port = free_port()?;
        let inspector = free_port()?;
        let persist = self.state_dir();
        let xdg = self.run_dir.join("config-home");
        std::fs::create_dir_all(&xdg).map_err(|e| e.to_string())?;
        let issuers = self.issuers_var();
        let log = self.run_dir.join(format!("wrangler-{port}.log"));
        leaks::log_file(log.clone());
        let wrangler = root.join("miniflare/node_modules/.bin/wrangler");
        let mut configs = vec!["-c".into(), self.gateway_config.clone().into_os_string()];
        if self.counters {
            configs.push("-c".into());
            configs.push(root.join("durable/wrangler.toml").into_os_string());
        }
        let child = Command::new(&wrangler)
            .current_dir(&root)
            .arg("dev")
            .args(&configs)
            .args(["--env", &self.wrangler_env, "--ip", "127.0.0.1"])
            .args([
                "--port",
                &port.to_string(),
                "--inspector-port",
                &inspector.to_string(),
            ])
            .arg("--persist-to")
            .arg(&persist)
            // The Worker secrets of this run (never the developer's .dev.vars).
            .arg("--env-file")
            .arg(self.secrets_file()?)
            .args(["--var", &format!("ORIGIN_URL:{}", self.origin)])
            .args(["--var", &format!("GATEWAY_ISSUERS:{issuers}")])
            .args(
                self.vars
                    .iter()
                    .flat_map(|(n, v)| ["--var".to_owned(), format!("{n}:{v}")]),
            )
            .env("CI", "true")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("XDG_CONFIG_HOME", &xdg)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(
                File::options()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .map_err(|e| e.to_string())?,
            )
            .stderr(Stdio::from(
                File::options()
                    .append(true)
                    .open(&log)
                    .map_err(|e| e.to_string())?,
            ))
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", wrangler.display()))?;
        self.services.push(Service {
            name: "gateway",
            child,
            group: true,
            log,
        });
        self.gateway = format!("http://127.0.0.1:{port}");
        leaks::gateway(&self.gateway);

        let health = format!("{}/_gateway/health", self.gateway);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if http::get(&health, &[]).is_ok_and(|resp| resp.status == 200) {
                return Ok(());
            }
            let service = self.services.last_mut().ok_or("no gateway")?;
            if let Ok(Some(status)) = service.child.try_wait() {
                return Err(format!(
                    "wrangler dev exited ({status}):\n{}",
                    service.log_tail()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the gateway did not become healthy in 120 s:\n{}",
                    service.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Mints an access token from the local issuer.
    pub fn token(&self, spec: &TokenSpec<'_>) -> String {
        let mut cmd = Command::new(&self.demo_bin);
        cmd.arg("token")
            .arg("--keys")
            .arg(&self.keys_dir)
            .args([
                "--issuer",
                &self.issuer,
                "--audience",
                AUDIENCE,
                "--org",
                spec.org,
            ])
            .args([
                "--scopes",
                spec.scopes,
                "--expires-in",
                &spec.expires_in.to_string(),
            ]);
        if let Some(tier) = spec.tier {
            cmd.args(["--tier", tier]);
        }
        if let Some(claims) = spec.claims {
            cmd.args(["--claims", claims]);
        }
        let out = cmd.output().expect("run gateway-demo token");
        assert!(
            out.status.success(),
            "token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        leaks::canary(&token);
        token
    }

    /// The issuer's active signing key, read from its keyset file, for building tokens the way
    /// an attacker with a stolen token (or the issuer itself) would.
    pub fn signer(&self) -> corpus::Signer {
        let text = std::fs::read_to_string(self.keys_dir.join("keys.json")).expect("keys.json");
        let keyset: serde_json::Value = serde_json::from_str(&text).expect("keyset JSON");
        let active = keyset["active"].as_str().expect("active kid").to_owned();
        let d = keyset["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["kid"] == active.as_str())
            .and_then(|k| k["d"].as_str())
            .expect("active key");
        let d = base64ct::Base64UrlUnpadded::decode_vec(d).expect("d");
        corpus::Signer {
            key: p256::ecdsa::SigningKey::from_slice(&d).expect("P-256 key"),
            kid: active,
            issuer: self.issuer.clone(),
        }
    }

    /// Rotates the issuer's signing key (`keep_previous`: the old keys stay published);
    /// returns the new key id. The running issuer serves the new JWKS at once.
    pub fn rotate_keys(&self, keep_previous: bool) -> String {
        self.rotate_keys_with(keep_previous, None)
    }

    /// [`Stack::rotate_keys`], publishing the new key under `kid` (new material, old key id).
    pub fn rotate_keys_with(&self, keep_previous: bool, kid: Option<&str>) -> String {
        let mut cmd = Command::new(&self.demo_bin);
        cmd.arg("rotate").arg("--keys").arg(&self.keys_dir).args([
            "--keep-previous",
            if keep_previous { "true" } else { "false" },
        ]);
        if let Some(kid) = kid {
            cmd.args(["--kid", kid]);
        }
        let out = cmd.output().expect("run gateway-demo rotate");
        assert!(
            out.status.success(),
            "rotate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// `GET <gateway><path>` with `Authorization: Bearer <token>`.
    pub fn get_as(&self, path: &str, token: &str) -> http::Response {
        http::with_bearer("GET", &format!("{}{path}", self.gateway), token, None).expect("request")
    }

    /// This run's origin-signing keyset (the GATEWAY_SIGNING_KEYS secret and the origin's file).
    pub fn signing_keyset(&self) -> serde_json::Value {
        if let Some(path) = &self.synced_secrets {
            let text = std::fs::read_to_string(path).expect("the synced secrets file");
            let value = text
                .lines()
                .find_map(|l| l.strip_prefix("GATEWAY_SIGNING_KEYS="))
                .expect("GATEWAY_SIGNING_KEYS in the synced secrets")
                .trim_matches('\'');
            return serde_json::from_str(value).expect("a keyset");
        }
        let secret = b"canary-origin-signing-key-3f9b07e5d6";
        serde_json::json!({
            "current": "e2e-1",
            "keys": [{"kid": "e2e-1", "secret": base64ct::Base64UrlUnpadded::encode_string(secret)}]
        })
    }

    /// Writes this run's Worker secrets (`KEY=value` lines) and returns the file.
    fn secrets_file(&self) -> Result<PathBuf, String> {
        if let Some(path) = &self.synced_secrets {
            for key in self.signing_keyset()["keys"]
                .as_array()
                .into_iter()
                .flatten()
            {
                leaks::canary(key["secret"].as_str().unwrap_or_default());
            }
            return Ok(path.clone());
        }
        let jwks = serde_json::json!({
            "internal": { "keys": [{
                "kty": "oct", "kid": "internal-1",
                "k": base64ct::Base64UrlUnpadded::encode_string(&self.internal_key)
            }]}
        });
        for value in [
            base64ct::Base64UrlUnpadded::encode_string(&self.internal_key),
            String::from_utf8_lossy(&self.internal_key).into_owned(),
            self.signing_keyset()["keys"][0]["secret"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            "canary-origin-signing-key-3f9b07e5d6".to_owned(),
        ] {
            leaks::canary(&value);
        }
        let path = self.run_dir.join("secrets.env");
        let mut secrets = format!(
            "GATEWAY_STATIC_JWKS='{jwks}'\nGATEWAY_SIGNING_KEYS='{}'\nSECRETS_VERSION='{TEST_SECRETS_VERSION}'\n",
            self.signing_keyset()
        );
        if let Some(keys) = &self.api_keys {
            secrets.push_str(&format!("GATEWAY_API_KEYS='{keys}'\n"));
        }
        std::fs::write(&path, secrets).map_err(|e| e.to_string())?;
        Ok(path)
    }

    /// An HS256 access token from the `internal` issuer (its key is this run's static JWKS),
    /// with `claims` merged over the usual ones (`null` removes a claim).
    pub fn internal_token(&self, claims: serde_json::Value) -> String {
        self.internal_token_with_key(&self.internal_key, claims)
    }

    /// [`Stack::internal_token`] signed with another key (a forgery).
    pub fn internal_token_with_key(&self, key: &[u8], claims: serde_json::Value) -> String {
        use hmac::Mac;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let mut body = serde_json::json!({
            "iss": INTERNAL_ISSUER, "aud": AUDIENCE, "sub": "svc-ledger", "org_id": "internal",
            "tier": "enterprise", "scope": "transactions:read", "iat": now, "exp": now + 300,
        });
        for (k, v) in claims.as_object().cloned().unwrap_or_default() {
            if v.is_null() {
                body.as_object_mut().expect("object").remove(&k);
            } else {
                body[k] = v;
            }
        }
        let header = serde_json::json!({"alg": "HS256", "typ": "at+jwt", "kid": "internal-1"});
        let b64 = |v: &serde_json::Value| {
            base64ct::Base64UrlUnpadded::encode_string(v.to_string().as_bytes())
        };
        let input = format!("{}.{}", b64(&header), b64(&body));
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("key");
        mac.update(input.as_bytes());
        let sig = base64ct::Base64UrlUnpadded::encode_string(&mac.finalize().into_bytes());
        let token = format!("{input}.{sig}");
        leaks::canary(&token);
        token
    }

    /// Gets an access token from the real OpenID provider by the client-credentials grant.
    pub fn machine_token(&self, client: &str, scope: &str) -> String {
        let secret = format!("{client}-secret");
        let basic = base64ct::Base64::encode_string(format!("{client}:{secret}").as_bytes());
        let body = format!(
            "grant_type=client_credentials&scope={}&resource={}",
            scope.replace(' ', "+"),
            AUDIENCE.replace(':', "%3A").replace('/', "%2F")
        );
        let auth = format!("Basic {basic}");
        let resp = http::request(
            "POST",
            &format!("{}/token", self.machines),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            Some(body.as_bytes()),
        )
        .expect("token request");
        assert_eq!(resp.status, 200, "token endpoint: {}", resp.text());
        let token = resp.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned();
        leaks::canary(&token);
        token
    }

    /// Rotates the provider's keys (new key first; previous kept or dropped) and restarts it on
    /// the same port, as a real provider's key rollover would look from outside.
    pub fn rotate_machine_keys(&mut self, keep_previous: bool) {
        let script = workspace_root().join("miniflare/peers/oidc-provider.mjs");
        let out = Command::new("node")
            .arg(script)
            .args([
                "rotate",
                "--keep-previous",
                if keep_previous { "true" } else { "false" },
                "--keys",
            ])
            .arg(self.run_dir.join("machines-keys.json"))
            .output()
            .expect("rotate machine keys");
        assert!(
            out.status.success(),
            "rotate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.stop_service("machines");
        self.services.retain(|s| s.name != "machines");
        let port = self
            .machines
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        self.machines = self
            .spawn_machines_issuer(port)
            .expect("restart the provider");
    }

    /// The folder `wrangler dev` persists both Workers' state in (`--persist-to`).
    pub fn state_dir(&self) -> PathBuf {
        self.run_dir.join("state")
    }

    /// Stops the gateway and starts it again on a new port with the same persisted state (the
    /// counter objects' storage survives, as in a redeploy or an eviction). The counters Worker
    /// runs in the same `wrangler dev`, so it restarts too.
    pub fn restart_gateway(&mut self) -> Result<(), String> {
        self.stop_service("gateway");
        self.services.retain(|s| s.name != "gateway");
        self.start_gateway()
    }

    /// Kills the runtime (SIGKILL of `wrangler dev` and workerd, both Workers: a crash, an
    /// eviction, no shutdown) and starts it again on a new port with the same persisted state.
    pub fn crash_gateway(&mut self) -> Result<(), String> {
        for service in self.services.iter_mut().filter(|s| s.name == "gateway") {
            service.kill();
        }
        self.services.retain(|s| s.name != "gateway");
        self.start_gateway()
    }

    /// Stops one of the stack's services (`origin`, `issuer`, `gateway`) now.
    pub fn stop_service(&mut self, name: &str) {
        for service in self.services.iter_mut().filter(|s| s.name == name) {
            service.stop();
        }
    }

    /// The first JSON line of the gateway's log that `matches` (polls for up to 5 s: the log is
    /// written asynchronously).
    pub fn find_log_line(
        &self,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.gateway_log();
            let found = json_lines(&log)
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| matches(v));
            if found.is_some() || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The gateway's JSON log line for a request id (polls for up to 10 s: the log is written
    /// asynchronously).
    pub fn log_line(&self, request_id: &str) -> serde_json::Value {
        let needle = format!("\"request_id\":\"{request_id}\"");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.gateway_log();
            if let Some(line) = json_lines(&log).find(|l| l.contains(&needle)) {
                return serde_json::from_str(line).expect("a JSON log line");
            }
            assert!(Instant::now() < deadline, "no log line for {request_id}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The gateway's log so far (wrangler's output, including the Worker's log lines).
    pub fn gateway_log(&self) -> String {
        self.services
            .iter()
            .find(|s| s.name == "gateway")
            .map(|s| std::fs::read_to_string(&s.log).unwrap_or_default())
            .unwrap_or_default()
    }
}

/// The Worker's JSON log lines in `wrangler dev`'s output. With several Workers in one `wrangler
/// dev` (the gateway and the counters Worker), it prefixes each Worker's lines with its name
/// (`[edge-gateway-test] {...}`); the prefix is dropped.
pub fn json_lines(log: &str) -> impl Iterator<Item = &str> {
    log.lines()
        .map(
            |l| match l.strip_prefix('[').and_then(|r| r.split_once("] ")) {
                Some((_, rest)) if rest.starts_with('{') => rest,
                _ => l,
            },
        )
        .filter(|l| l.starts_with('{'))
}

impl Drop for Stack {
    fn drop(&mut self) {
        for service in self.services.iter_mut().rev() {
            service.stop();
        }
    }
}
