//! The deployed shape, end to end: two Workers (the gateway and the counters Worker) in one
//! runtime, as `make deploy` deploys them. Counts admitted through the gateway are stored by the
//! counters Worker; the health endpoint names what runs; the smoke check that ends a deploy
//! passes only when the counters Worker answered; and the gateway of the previous release runs
//! against this counters Worker (a rolled-back or not yet deployed gateway).

use std::path::{Path, PathBuf};
use std::process::Command;

use gateway_e2e::{Stack, TEST_SECRETS_VERSION, TokenSpec, http, workspace_root};
use sha2::Digest as _;

use crate::Case;
use crate::limits::org;

pub(crate) const CASES: &[Case] = &[
    (
        "deploy::counts_are_stored_by_the_counters_worker",
        counts_are_stored_by_the_counters_worker,
    ),
    (
        "deploy::health_names_the_build_the_policy_and_the_secrets_version",
        health_names_the_build_the_policy_and_the_secrets_version,
    ),
    (
        "deploy::smoke_check_passes_only_through_the_counters_worker",
        smoke_check_passes_only_through_the_counters_worker,
    ),
    (
        "deploy::previous_gateway_runs_against_this_counters_worker",
        previous_gateway_runs_against_this_counters_worker,
    ),
];

/// Every Durable Object folder under `state` (`<persist>/v3/do/<script>-<class>/`), by name.
fn object_folders(state: &Path) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    let mut stack = vec![state.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with("-RateLimiter") {
                    found.push((name, path));
                } else {
                    stack.push(path);
                }
            }
        }
    }
    found
}

/// The total cost of the bucket keys (`b:<window>:<index>` = `[cost, first, last]`) stored in
/// the objects' SQLite files under `folder`, per window length (Python's sqlite3 reads the
/// runtime's files; values are the runtime's serialisation of the JSON text).
fn stored_costs(folder: &Path) -> serde_json::Value {
    let script = r#"
import glob, json, re, sqlite3, sys
costs = {}
for path in glob.glob(sys.argv[1] + "/*.sqlite"):
    db = sqlite3.connect("file:" + path + "?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT key, value FROM _cf_KV WHERE key LIKE 'b:%'").fetchall()
    except sqlite3.Error:
        rows = []
    for key, value in rows:
        m = re.search(rb"\[(\d+),(\d+),(\d+)\]", bytes(value))
        window = key.split(":")[1]
        costs[window] = costs.get(window, 0) + int(m.group(1))
print(json.dumps(costs))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(folder)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// The success path across scripts: what the gateway admits is counted and stored by the
/// counters Worker's objects (its own folder of persisted state), and the gateway script holds
/// no Durable Object state at all.
fn counts_are_stored_by_the_counters_worker(_shared: &Stack) {
    let stack = Stack::start("cross-script").expect("stack");
    let org = org("cross-script");
    let token = stack.token(&TokenSpec {
        org: &org,
        tier: Some("enterprise"),
        scopes: "reports:generate",
        ..TokenSpec::default()
    });
    let url = format!("{}/api/reports/generate", stack.gateway);
    for expected in ["9980", "9960", "9940"] {
        let resp = http::with_bearer("POST", &url, &token, Some(b"{}")).unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.header("x-ratelimit-remaining"), Some(expected));
        assert!(resp.header("x-ratelimit-status").is_none());
    }
    let folders = object_folders(&stack.state_dir());
    let names: Vec<&str> = folders.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["edge-gateway-counters-test-RateLimiter"],
        "only the counters Worker holds counter objects"
    );
    // The first admission is written before its answer with a reservation for the next ones;
    // once the object has been idle for limiter_write_interval_ms (1 s), all three are written.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let costs = stored_costs(&folders[0].1);
        let windows = costs.as_object().unwrap();
        assert!(!windows.is_empty(), "no bucket stored: {costs}");
        if windows.values().all(|c| c == 60) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "3 admissions of cost 20 not all written after the idle delay: {costs}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// `/_gateway/health` names exactly what runs: the commit the Makefile built, the policy's
/// digest, and the live SECRETS_VERSION as a digest only (its text names Vault paths).
fn health_names_the_build_the_policy_and_the_secrets_version(stack: &Stack) {
    let resp = http::get(&format!("{}/_gateway/health", stack.gateway), &[]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    let built = std::fs::read_to_string(workspace_root().join("target/build-commit")).unwrap();
    assert_eq!(body["build"]["commit"], built.trim(), "{body}");
    let policy = body["build"]["policy"].as_str().unwrap();
    assert!(
        policy.len() == 71
            && policy.starts_with("sha256:")
            && policy[7..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{policy}"
    );
    let digest: String = sha2::Sha256::digest(TEST_SECRETS_VERSION.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(body["secrets_version"], format!("sha256:{digest}"));
    assert!(!resp.text().contains("secret/gateway"), "{}", resp.text());
    assert_eq!(body["environment"], "test");
}

/// Runs scripts/smoke.mjs (the end of `make deploy`) against `base`.
fn smoke(base: &str, token: &str, commit: &str) -> (bool, String) {
    let out = Command::new("node")
        .arg(workspace_root().join("scripts/smoke.mjs"))
        .args([base, "/api/transactions", commit])
        .env("SMOKE_TOKEN", token)
        .env("SMOKE_TIMEOUT_SECONDS", "0")
        .output()
        .expect("node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The smoke check passes against a gateway whose limited route was counted by the counters
/// Worker, and fails (saying why) when the build is not the one deployed, when the counters
/// Worker is unreachable, and without a valid token. The token never appears in its output.
fn smoke_check_passes_only_through_the_counters_worker(stack: &Stack) {
    let token = stack.token(&TokenSpec {
        org: &org("smoke"),
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    let built = std::fs::read_to_string(workspace_root().join("target/build-commit")).unwrap();
    let (ok, text) = smoke(&stack.gateway, &token, built.trim());
    assert!(ok, "{text}");
    assert!(text.contains("ratelimit-policy"), "{text}");
    assert!(!text.contains(&token), "the token was printed");

    let (ok, text) = smoke(&stack.gateway, &token, "0000000");
    assert!(!ok && text.contains("not 0000000"), "{text}");
    let (ok, text) = smoke(&stack.gateway, "not-a-token", built.trim());
    assert!(!ok && text.contains("answered 401"), "{text}");
    assert!(!text.contains("not-a-token"), "the token was printed");

    let down = Stack::start_in("smoke-limiter-down", "test-limiter-down").expect("fault stack");
    let token = down.token(&TokenSpec {
        org: &org("smoke-down"),
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    let (ok, text) = smoke(&down.gateway, &token, built.trim());
    assert!(!ok && text.contains("answered 503"), "{text}");
}

/// The previous release's gateway (built by scripts/build-previous.sh from
/// tests/previous-gateway.rev) against this build's counters Worker: it sends the previous
/// protocol (no version argument), which the counters Worker still accepts, so a rollback of the
/// gateway, or the window between the two deploys, keeps limiting and revocation checks exact.
fn previous_gateway_runs_against_this_counters_worker(_shared: &Stack) {
    let root = workspace_root();
    let rev = std::fs::read_to_string(root.join("tests/previous-gateway.rev")).unwrap();
    let build = root.join(format!("target/previous-gateway/{}/src/build", rev.trim()));
    assert!(
        build.join("entry.mjs").exists(),
        "{} is missing: run scripts/build-previous.sh (make test does)",
        build.display()
    );
    // This build's gateway configuration, with the previous build as its entry module.
    let config_text = std::fs::read_to_string(root.join("wrangler.toml"))
        .unwrap()
        .replace(
            "main = \"build/entry.mjs\"",
            &format!("main = \"{}\"", build.join("entry.mjs").display()),
        );
    assert!(config_text.contains(&build.display().to_string()));
    let dir = root.join("target/e2e");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join(format!("previous-gateway-{}.toml", std::process::id()));
    std::fs::write(&config, config_text).unwrap();
    let stack = Stack::start_with_gateway_config("previous-gateway", &config).expect("stack");
    // It is the previous build that answers (its health report predates the build fields).
    let health = http::get(&format!("{}/_gateway/health", stack.gateway), &[]).unwrap();
    let health: serde_json::Value = serde_json::from_slice(&health.body).unwrap();
    assert_eq!(health["status"], "ok");
    assert!(
        health.get("build").is_none(),
        "not the previous build: {health}"
    );

    let org = org("previous");
    let token = stack.token(&TokenSpec {
        org: &org,
        tier: Some("free"),
        scopes: "reports:generate",
        ..TokenSpec::default()
    });
    let url = format!("{}/api/reports/generate", stack.gateway);
    let mut remaining = Vec::new();
    for _ in 0..5 {
        let resp = http::with_bearer("POST", &url, &token, Some(b"{}")).unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert!(resp.header("x-ratelimit-status").is_none(), "counted");
        remaining.push(resp.header("x-ratelimit-remaining").unwrap().to_owned());
    }
    assert_eq!(remaining, ["80", "60", "40", "20", "0"]);
    let refused = http::with_bearer("POST", &url, &token, Some(b"{}")).unwrap();
    assert_eq!(refused.status, 429, "{}", refused.text());
    let folders = object_folders(&stack.state_dir());
    assert!(
        folders
            .iter()
            .all(|(n, _)| n == "edge-gateway-counters-test-RateLimiter"),
        "the previous gateway's counts are the counters Worker's: {folders:?}"
    );
    let _ = std::fs::remove_file(&config);
}
