//! Local DAST (ZAP cannot run here): schemathesis drives the committed OpenAPI spec against the
//! gateway in `wrangler dev` — with a token holding every scope on the enterprise tier, and with
//! no token — and must find no server error and no answer that breaks the spec. The run only
//! counts if answers really came from the origin.

use std::path::{Path, PathBuf};
use std::process::Command;

use gateway_e2e::{Stack, TokenSpec, workspace_root};
use serde_json::Value;

use crate::Case;

pub(crate) const CASES: &[Case] = &[
    (
        "dast::schemathesis_with_a_token_finds_nothing_and_reaches_the_origin",
        schemathesis_with_a_token,
    ),
    (
        "dast::schemathesis_without_a_token_finds_nothing",
        schemathesis_without_a_token,
    ),
];

/// Run by `make scan` only (`--include-ignored`): wapiti is a Debian package `make test` does
/// not install.
pub(crate) const SCAN_CASES: &[Case] = &[(
    "dast::wapiti_finds_no_vulnerability",
    wapiti_finds_no_vulnerability,
)];

/// The names of [`SCAN_CASES`].
pub(crate) const SCAN_ONLY: &[&str] = &["dast::wapiti_finds_no_vulnerability"];

/// Every scope of the route table.
pub(crate) const ALL_SCOPES: &str =
    "transactions:read transactions:write transactions:export reports:generate documents:write";

/// Where the scanners' reports go (`make scan` uploads this folder in CI).
pub(crate) fn report_dir(name: &str) -> PathBuf {
    let dir = workspace_root().join("target/scan").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One schemathesis run; returns its exit status and `(status, method, path)` per answer.
fn schemathesis(
    stack: &Stack,
    token: Option<&str>,
    dir: &Path,
) -> (i32, Vec<(u16, String, String)>, String) {
    let st = workspace_root().join(".tools/py/bin/st");
    assert!(st.exists(), "{} is missing: run `make setup`", st.display());
    let har = dir.join("run.har");
    let mut cmd = Command::new(st);
    cmd.current_dir(dir)
        .arg("run")
        .arg(workspace_root().join("openapi.json"))
        .args(["--url", &stack.gateway])
        .args(["--max-examples", "10", "--workers", "2", "--seed", "20261123"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,response_headers_conformance",
        ])
        .args(["--request-timeout", "15", "--max-time", "60", "--no-color"])
        .args(["--report", "har,junit"])
        .arg("--report-har-path")
        .arg(&har)
        .arg("--report-junit-path")
        .arg(dir.join("junit.xml"));
    if let Some(token) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = cmd.output().expect("run schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.join("output.txt"), &text).unwrap();
    let har: Value = serde_json::from_str(&std::fs::read_to_string(&har).unwrap_or_default())
        .unwrap_or(Value::Null);
    let answers = har["log"]["entries"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    let url = e["request"]["url"].as_str().unwrap_or_default();
                    let path = url
                        .split_once("://")
                        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
                        .unwrap_or_default();
                    (
                        u16::try_from(e["response"]["status"].as_u64().unwrap_or(0)).unwrap_or(0),
                        e["request"]["method"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        path,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (out.status.code().unwrap_or(-1), answers, text)
}

fn summary(answers: &[(u16, String, String)]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for (status, _, _) in answers {
        *counts.entry(*status).or_insert(0u32) += 1;
    }
    format!("{counts:?}")
}

fn schemathesis_with_a_token(stack: &Stack) {
    let token = stack.token(&TokenSpec {
        org: "dast-scan",
        tier: Some("enterprise"),
        scopes: ALL_SCOPES,
        expires_in: 3600,
        ..TokenSpec::default()
    });
    let dir = report_dir("schemathesis-token");
    let (status, answers, text) = schemathesis(stack, Some(&token), &dir);
    assert_eq!(status, 0, "schemathesis found problems:\n{text}");
    assert!(!answers.is_empty(), "no answers recorded:\n{text}");
    assert!(
        answers.iter().all(|(s, _, _)| *s < 500),
        "server errors: {}",
        summary(&answers)
    );
    let from_origin = answers
        .iter()
        .filter(|(s, _, p)| (200..300).contains(s) && p.starts_with("/api/"))
        .count();
    let share = from_origin * 100 / answers.len();
    let line = format!(
        "schemathesis (token): {} answers, {from_origin} from the origin ({share}%), statuses {}",
        answers.len(),
        summary(&answers)
    );
    std::fs::write(dir.join("summary.txt"), &line).unwrap();
    eprintln!("{line}");
    assert!(
        share >= 20,
        "too few answers came from the origin for the run to count: {line}"
    );
}

fn schemathesis_without_a_token(stack: &Stack) {
    let dir = report_dir("schemathesis-anonymous");
    let (status, answers, text) = schemathesis(stack, None, &dir);
    assert_eq!(status, 0, "schemathesis found problems:\n{text}");
    assert!(
        answers.iter().all(|(s, _, _)| *s < 500),
        "server errors: {}",
        summary(&answers)
    );
    let protected_ok = answers
        .iter()
        .filter(|(s, _, p)| (200..300).contains(s) && p.starts_with("/api/") && p != "/api/health")
        .count();
    assert_eq!(
        protected_ok, 0,
        "a protected route answered without a token"
    );
    let line = format!(
        "schemathesis (no token): {} answers, statuses {}",
        answers.len(),
        summary(&answers)
    );
    std::fs::write(dir.join("summary.txt"), &line).unwrap();
    eprintln!("{line}");
}

/// wapiti's crawler and attack modules against the gateway with a valid token: no vulnerability
/// and no anomaly (server error). Its update checks, bug reports and out-of-band endpoints are
/// pointed at nothing: the scan stays on loopback.
fn wapiti_finds_no_vulnerability(stack: &Stack) {
    let token = stack.token(&TokenSpec {
        org: "dast-wapiti",
        tier: Some("enterprise"),
        scopes: ALL_SCOPES,
        expires_in: 3600,
        ..TokenSpec::default()
    });
    let dir = report_dir("wapiti");
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    // An empty application database: the `wapp` module would otherwise download one.
    std::fs::write(config.join("apps.json"), "{}").unwrap();
    let report = dir.join("report.json");
    let out = Command::new("wapiti")
        .current_dir(&dir)
        .args(["-u", &format!("{}/api/", stack.gateway)])
        // A JSON API has no links to crawl: start from every GET route, with a parameter for the
        // attack modules to inject into.
        .args([
            "-s",
            &format!("{}/api/transactions?note=x&limit=10", stack.gateway),
        ])
        .args(["-s", &format!("{}/api/health?probe=x", stack.gateway)])
        .args(["-s", &format!("{}/api/unknown?probe=x", stack.gateway)])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args([
            "--flush-session",
            "-m",
            "xss,sql,exec,file,http_headers,csp,cookieflags,redirect,crlf,methods",
            "-f",
            "json",
            "--max-scan-time",
            "120",
            "--max-attack-time",
            "30",
            "-t",
            "10",
            "-d",
            "3",
            "--scope",
            "folder",
            "--no-bugreport",
            "--endpoint",
            "http://127.0.0.1:9/",
            "-v",
            "0",
        ])
        .arg("-o")
        .arg(&report)
        .arg("--store-session")
        .arg(dir.join("session"))
        .arg("--store-config")
        .arg(&config)
        .output()
        .expect("run wapiti (Debian package `wapiti`; make scan installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap_or_default())
        .unwrap_or_else(|_| panic!("wapiti wrote no report:\n{text}"));
    // Every finding of a report section as (where, wapiti's description), in one walk.
    let findings = |key: &str| -> Vec<(String, String)> {
        json[key]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(category, list)| {
                list.as_array().into_iter().flatten().map(move |v| {
                    (
                        format!("{category}: {} {}", v["method"], v["path"]),
                        v["info"].as_str().unwrap_or_default().to_owned(),
                    )
                })
            })
            .collect()
    };
    // Findings we accept, each with its reason (as .zap/rules.tsv does for ZAP).
    const ACCEPTED: &[(&str, &str)] = &[(
        "X-XSS-Protection is not set",
        "wapiti 3.0 wants `X-XSS-Protection: 1`; the gateway sends `0` as OWASP advises (the \
         auditor's block mode enabled cross-site leaks; browsers ignore it; CSP is set)",
    )];
    let (accepted, vulns): (Vec<_>, Vec<_>) = findings("vulnerabilities")
        .into_iter()
        .partition(|(_, info)| ACCEPTED.iter().any(|(a, _)| info == a));
    let accepted = accepted.len();
    let vulns: Vec<String> = vulns.into_iter().map(|(at, _)| at).collect();
    let anomalies: Vec<String> = findings("anomalies")
        .into_iter()
        .map(|(at, _)| at)
        .collect();
    let line = format!(
        "wapiti: {} vulnerabilities ({accepted} accepted with a reason), {} anomalies{}",
        vulns.len(),
        anomalies.len(),
        if vulns.is_empty() && anomalies.is_empty() {
            String::new()
        } else {
            format!(": {:?} {:?}", vulns, anomalies)
        }
    );
    std::fs::write(dir.join("summary.txt"), &line).unwrap();
    eprintln!("{line}");
    assert!(vulns.is_empty() && anomalies.is_empty(), "{line}");
}
