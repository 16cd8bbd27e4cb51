//! The gateway's health report (`GET /_gateway/health`): whether this isolate's configuration is
//! valid, and exactly what it runs, so a scan or a smoke check names what it tested: the build
//! (git commit), a digest of the policy it was built with, and a digest of the live
//! `SECRETS_VERSION` (its text names Vault paths and versions, so only its digest is shown).

use serde::Serialize;
use serde_json::{Value, json};

/// `sha256:<hex>` of `text`.
pub fn digest(text: &str) -> String {
    format!("sha256:{}", crate::encoding::sha256_hex(text.as_bytes()))
}

/// What the deployed build is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Build<'a> {
    /// The git commit it was built from (`<sha>`, `<sha>-dirty` with uncommitted changes, or
    /// `unknown` outside a git checkout).
    pub commit: &'a str,
    /// [`digest`] of the validated policy it embeds (the JSON the Worker loads).
    pub policy: &'a str,
}

/// The health answer's body, for an isolate whose configuration is valid: `{"status": "ok",
/// "environment", "build": {"commit", "policy"}, "secrets_version"}`, where `secrets_version` is
/// the [`digest`] of the live `SECRETS_VERSION`, or `null` when it is not set (secrets set by
/// hand, outside the Vault sync).
pub fn report(environment: &str, build: Build<'_>, secrets_version: Option<&str>) -> Value {
    json!({
        "status": "ok",
        "environment": environment,
        "build": build,
        "secrets_version": secrets_version.map(digest),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_hex() {
        // FIPS 180-2 test vector ("abc").
        assert_eq!(
            digest("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn the_report_shows_the_secrets_version_only_as_a_digest() {
        let fingerprint =
            "sv1;GATEWAY_SIGNING_KEYS=secret/gateway/production/origin-signing#secret@7";
        let build = Build {
            commit: "0123abcd",
            policy: "sha256:00",
        };
        let json = report("production", build, Some(fingerprint));
        assert_eq!(json["status"], "ok");
        assert_eq!(json["environment"], "production");
        assert_eq!(json["build"]["commit"], "0123abcd");
        assert_eq!(json["build"]["policy"], "sha256:00");
        assert_eq!(json["secrets_version"], digest(fingerprint).as_str());
        assert!(!json.to_string().contains("secret/gateway"));
        let unset = report("dev", build, None);
        assert!(unset["secrets_version"].is_null());
    }
}
