//! Validates the policy file at build time and embeds it: a bad `gateway.toml` fails the build
//! with the file, the key and the reason. The Worker loads the validated policy as JSON
//! (`$OUT_DIR/policy.json`), so no TOML parser ships in the wasm.

use std::path::PathBuf;
use std::process::ExitCode;

use gateway_core::config::Policy;

fn main() -> ExitCode {
    let file = std::env::var("GATEWAY_POLICY").unwrap_or_else(|_| "gateway.toml".to_owned());
    println!("cargo::rerun-if-changed={file}");
    println!("cargo::rerun-if-env-changed=GATEWAY_POLICY");
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) => {
            println!("cargo::error={file}: cannot read the policy file: {e}");
            return ExitCode::FAILURE;
        }
    };
    let model = match Policy::from_toml(&text) {
        Ok((_, model)) => model,
        Err(e) => {
            for line in format!("{file}: {e}").lines() {
                println!("cargo::error={line}");
            }
            return ExitCode::FAILURE;
        }
    };
    let json = match serde_json::to_string(&model) {
        Ok(json) => json,
        Err(e) => {
            println!("cargo::error={file}: cannot serialise the validated policy: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(out_dir) = std::env::var_os("OUT_DIR") else {
        println!("cargo::error=OUT_DIR is not set");
        return ExitCode::FAILURE;
    };
    // What `/_gateway/health` reports: the policy's digest, and the commit the Makefile passes
    // (GATEWAY_BUILD_COMMIT; `unknown` when built some other way).
    println!(
        "cargo::rustc-env=GATEWAY_POLICY_DIGEST={}",
        gateway_core::health::digest(&json)
    );
    println!("cargo::rerun-if-env-changed=GATEWAY_BUILD_COMMIT");
    let commit = std::env::var("GATEWAY_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo::rustc-env=GATEWAY_BUILD_COMMIT={commit}");
    if let Err(e) = std::fs::write(PathBuf::from(out_dir).join("policy.json"), json) {
        println!("cargo::error=cannot write policy.json: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
