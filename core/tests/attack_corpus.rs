//! The committed attack corpus (`tests/corpus/tokens.json`), natively: every pure stage of
//! `gateway_core::auth`, with p256 standing in for the Worker's WebCrypto signature check.
//! The same cases run end to end in `tests/e2e/corpus.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64ct::{Base64UrlUnpadded, Encoding};
use gateway_core::auth::{bearer_token, check_header, parse, validate_claims};
use gateway_core::config::Policy;
use gateway_core::env::Environment;
use gateway_core::error::GatewayError;
use gateway_core::identity::TokenRejection;
use gateway_core::jwk::{JwkSet, select_key};
use gateway_core::path::normalise;
use gateway_core::route::RouteMatch;
use gateway_core::time::UnixMillis;
use gateway_e2e::corpus::{self, Carried, Signer};
use p256::ecdsa::signature::Verifier;

const ISSUER: &str = "https://issuer.example.com";
const NOW: u64 = 1_800_000_000;

fn answer(
    carried: &Carried,
    policy: &Policy,
    env: &Environment,
    jwks: &JwkSet,
) -> (u16, Option<String>) {
    // The runtime joins repeated headers with ", "; the query string and cookies are never read.
    let header = (!carried.authorization.is_empty()).then(|| carried.authorization.join(", "));
    let route = match policy
        .routes
        .match_request("GET", &normalise("/api/transactions").unwrap())
    {
        RouteMatch::Found(route) => route,
        other => panic!("{other:?}"),
    };
    let outcome = (|| -> Result<(), GatewayError> {
        let token = bearer_token(header.as_deref())?;
        let parsed = parse(token)?;
        let (issuer, _) = parsed.issuer(policy, env)?;
        let alg = check_header(&parsed, issuer)?;
        let jwk = select_key(jwks, alg, parsed.key_id()).map_err(TokenRejection::from)?;
        let check = parsed.signature_check(policy, env, jwk.thumbprint().unwrap())?;
        // Stand-in for crypto.subtle.verify (ES256 is the only algorithm this issuer allows).
        let mut sec1 = vec![4u8];
        for coordinate in [&jwk.x, &jwk.y] {
            let text = coordinate.as_deref().unwrap();
            sec1.extend(<Base64UrlUnpadded as Encoding>::decode_vec(text).unwrap());
        }
        let verifying = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
        let valid = p256::ecdsa::Signature::from_slice(check.signature())
            .is_ok_and(|sig| verifying.verify(check.signing_input(), &sig).is_ok());
        let checked = check.verdict(valid)?;
        let claims = validate_claims(&checked, policy, UnixMillis(NOW * 1000))?;
        claims.authorise(route).map_err(GatewayError::from)
    })();
    match outcome {
        Ok(()) => (200, None),
        Err(e) => (e.code().status(), Some(e.code().as_str().to_owned())),
    }
}

#[test]
fn every_case_gets_its_expected_answer() {
    let policy = Policy::from_toml(include_str!("../../gateway.toml"))
        .unwrap()
        .0;
    let issuers = format!(
        r#"{{"users": {{"issuer": "{ISSUER}", "jwks_uri": "https://issuer.example.com/jwks"}},
             "machines": {{"issuer": "https://machines.example.com", "jwks_uri": "https://machines.example.com/jwks"}},
             "internal": null}}"#
    );
    let env = Environment::from_vars(&policy, |name| match name {
        "ENVIRONMENT" => Some("test".to_owned()),
        "ORIGIN_URL" => Some("https://origin.example.com".to_owned()),
        "GATEWAY_ISSUERS" => Some(issuers.clone()),
        _ => None,
    })
    .unwrap();
    let signer = Signer {
        key: p256::ecdsa::SigningKey::from_slice(&[42u8; 32]).unwrap(),
        kid: "corpus-key".to_owned(),
        issuer: ISSUER.to_owned(),
    };
    let jwks = JwkSet::from_json(&serde_json::json!({ "keys": [signer.public_jwk()] }).to_string())
        .unwrap();

    corpus::check_all(&signer, NOW, |carried| {
        answer(carried, &policy, &env, &jwks)
    });
}
