//! JWT login as in CI: the job asks the (emulated) GitHub Actions OIDC endpoint for a token with
//! the mapping's audience and exchanges it at OpenBao's `auth/jwt/login`, whose role trusts a key
//! this test generated and is bound to the repository and audience.

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

use std::sync::{Arc, Mutex};

use base64ct::Encoding as _;
use common::{Bao, key, scratch, sync};
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::EncodePublicKey as _;
use serde_json::json;

const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
const AUDIENCE: &str = "https://vault.example.com";
const REQUEST_TOKEN: &str = "gh-request-token-canary-0007";

fn mapping(audience: &str) -> String {
    format!(
        r#"
[environments.staging]
worker = "edge-gateway-staging"
auth = {{ method = "jwt", role = "edge-gateway-staging-sync", audience = "{audience}" }}

[[environments.staging.secrets]]
name = "GATEWAY_SIGNING_KEYS"
path = "gateway/staging/origin-signing"
key = "secret"
format = "signing_keyset"
overlap_seconds = 600
"#
    )
}

/// An ES256 JWT like GitHub's, for `aud`.
fn github_jwt(signing: &p256::ecdsa::SigningKey, aud: &str, repository: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let b64 =
        |v: serde_json::Value| base64ct::Base64UrlUnpadded::encode_string(v.to_string().as_bytes());
    let input = format!(
        "{}.{}",
        b64(json!({"alg": "ES256", "typ": "JWT", "kid": "gh-test"})),
        b64(json!({
            "iss": GITHUB_ISSUER, "aud": aud, "sub": format!("repo:{repository}:environment:staging"),
            "repository": repository, "ref": "refs/heads/main", "environment": "staging",
            "iat": now, "nbf": now - 5, "exp": now + 300,
        }))
    );
    let sig: p256::ecdsa::Signature = signing.sign(input.as_bytes());
    format!(
        "{input}.{}",
        base64ct::Base64UrlUnpadded::encode_string(&sig.to_bytes())
    )
}

#[test]
fn github_oidc_token_logs_in_and_a_wrong_audience_does_not() {
    let dir = scratch("jwt");
    let bao = Bao::start(&dir);
    bao.put(
        "gateway/staging/origin-signing",
        json!({"secret": key("jwt-1")}),
    );
    let signing = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap();
    let pem = signing
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    bao.api("POST", "sys/auth/jwt", json!({"type": "jwt"}));
    bao.api(
        "POST",
        "auth/jwt/config",
        json!({"jwt_validation_pubkeys": [pem], "bound_issuer": GITHUB_ISSUER}),
    );
    bao.api(
        "PUT",
        "sys/policies/acl/staging-sync",
        json!({"policy": "path \"secret/data/gateway/staging/*\" { capabilities = [\"read\"] }"}),
    );
    bao.api(
        "POST",
        "auth/jwt/role/edge-gateway-staging-sync",
        json!({
            "role_type": "jwt", "user_claim": "repository", "bound_audiences": [AUDIENCE],
            "bound_claims": {"repository": "acme/edge-gateway"},
            "token_policies": ["staging-sync"], "token_ttl": "10m",
        }),
    );

    // The GitHub Actions token endpoint: mints a token for the audience the job asks for.
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();
    let (asked2, signing2) = (asked.clone(), signing.clone());
    std::thread::spawn(move || {
        for req in server.incoming_requests() {
            let authorised = req.headers().iter().any(|h| {
                h.field
                    .as_str()
                    .as_str()
                    .eq_ignore_ascii_case("authorization")
                    && h.value.as_str() == format!("bearer {REQUEST_TOKEN}")
            });
            let audience = req
                .url()
                .split("audience=")
                .nth(1)
                .unwrap_or_default()
                .replace("%3A", ":")
                .replace("%2F", "/");
            asked2.lock().unwrap().push(audience.clone());
            let (status, body) = if authorised {
                (
                    200,
                    json!({"value": github_jwt(&signing2, &audience, "acme/edge-gateway")}),
                )
            } else {
                (401, json!({"message": "bad request token"}))
            };
            let _ = req.respond(
                tiny_http::Response::from_string(body.to_string()).with_status_code(status),
            );
        }
    });
    let url = format!("http://127.0.0.1:{port}/token?api-version=2.0");
    let run = |mapping_text: &str| {
        std::fs::write(dir.join("secrets-sync.toml"), mapping_text).unwrap();
        sync(
            &dir,
            &["--env", "staging", "--target", "dev-vars"],
            &[
                ("VAULT_ADDR", bao.addr.as_str()),
                ("ACTIONS_ID_TOKEN_REQUEST_URL", url.as_str()),
                ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN),
            ],
        )
    };

    let ok = run(&mapping(AUDIENCE));
    assert_eq!(ok.status, 0, "{}{}", ok.stdout, ok.stderr);
    assert_eq!(ok.audit["auth_method"], "jwt");
    assert_eq!(ok.audit["auth_role"], "edge-gateway-staging-sync");
    assert_eq!(ok.audit["result"], "written");
    assert_eq!(asked.lock().unwrap().as_slice(), [AUDIENCE]);
    assert!(!ok.stdout.contains(REQUEST_TOKEN) && !ok.stdout.contains("eyJ"));
    let vars = std::fs::read_to_string(dir.join(".dev.vars")).unwrap();
    assert!(vars.contains(&key("jwt-1")));

    // A token for another audience is refused by Vault; nothing is written.
    let before = std::fs::read(dir.join(".dev.vars")).unwrap();
    let wrong = run(&mapping("https://elsewhere.example.com"));
    assert_eq!(wrong.status, 1, "{}", wrong.stdout);
    assert!(
        wrong.stderr.contains("Vault login failed"),
        "{}",
        wrong.stderr
    );
    assert!(wrong.stderr.contains("audience"), "{}", wrong.stderr);
    assert_eq!(std::fs::read(dir.join(".dev.vars")).unwrap(), before);

    // No OIDC endpoint and no JWT: a clear error before anything is tried.
    std::fs::write(dir.join("secrets-sync.toml"), mapping(AUDIENCE)).unwrap();
    let none = sync(
        &dir,
        &["--env", "staging", "--target", "dev-vars"],
        &[("VAULT_ADDR", bao.addr.as_str())],
    );
    assert_eq!(none.status, 1);
    assert!(none.stderr.contains("id-token: write"), "{}", none.stderr);
}
