//! Authentication and authorisation at the edge: only valid access tokens from the configured
//! issuer pass; everything else is refused with an RFC 6750 challenge.

use base64_url::{decode, encode};
use gateway_e2e::{Stack, TokenSpec, http};

use crate::Case;
use crate::requests::{assert_problem, assert_scope_denied};

pub(crate) const CASES: &[Case] = &[
    (
        "auth::missing_or_non_bearer_credentials_are_401",
        missing_or_non_bearer_credentials_are_401,
    ),
    (
        "auth::valid_token_with_scope_is_forwarded",
        valid_token_with_scope_is_forwarded,
    ),
    ("auth::insufficient_scope_is_403", insufficient_scope_is_403),
    (
        "auth::permissions_count_like_scopes",
        permissions_count_like_scopes,
    ),
    ("auth::bad_claims_are_401", bad_claims_are_401),
    ("auth::forged_tokens_are_401", forged_tokens_are_401),
    (
        "auth::malformed_authorization_is_refused",
        malformed_authorization_is_refused,
    ),
    (
        "auth::tokens_never_appear_in_answers_or_logs",
        tokens_never_appear_in_answers_or_logs,
    ),
];

mod base64_url {
    use base64ct::{Base64UrlUnpadded, Encoding};
    pub(crate) fn encode(bytes: &[u8]) -> String {
        Base64UrlUnpadded::encode_string(bytes)
    }
    pub(crate) fn decode(text: &str) -> Vec<u8> {
        Base64UrlUnpadded::decode_vec(text).unwrap()
    }
}

fn get_with_token(stack: &Stack, path: &str, token: &str) -> http::Response {
    stack.get_as(path, token)
}

fn missing_or_non_bearer_credentials_are_401(stack: &Stack) {
    let url = format!("{}/api/transactions", stack.gateway);
    let resp = http::get(&url, &[]).unwrap();
    assert_problem(&resp, 401, "missing_token");
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer realm=\"api\"")
    );
    // Basic auth (passwords in headers) is exactly what the audit flagged.
    let resp = http::get(&url, &[("Authorization", "Basic YWxpY2U6c2VjcmV0")]).unwrap();
    let body = assert_problem(&resp, 401, "missing_token");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("Only Bearer access tokens are accepted"),
        "{body}"
    );
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer realm=\"api\"")
    );
    // Tokens in the query string or a cookie are not looked at.
    let token = stack.token(&TokenSpec {
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    let resp = http::get(&format!("{url}?access_token={token}"), &[]).unwrap();
    assert_problem(&resp, 401, "missing_token");
    let cookie = format!("access_token={token}");
    let resp = http::get(&url, &[("Cookie", &cookie)]).unwrap();
    assert_problem(&resp, 401, "missing_token");
}

fn valid_token_with_scope_is_forwarded(stack: &Stack) {
    let token = stack.token(&TokenSpec {
        org: "globex",
        tier: Some("enterprise"),
        scopes: "transactions:read reports:generate",
        ..TokenSpec::default()
    });
    let resp = get_with_token(stack, "/api/transactions?limit=5", &token);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let echo = resp.json();
    assert_eq!(echo["query"], "limit=5");
    let headers = crate::forwarding::echoed_headers(&echo);
    assert!(
        headers.contains(&("x-gateway-org".into(), "globex".into())),
        "{headers:?}"
    );
    assert!(
        headers.contains(&("x-gateway-tier".into(), "enterprise".into())),
        "{headers:?}"
    );
    // An unknown tier claim is limited as `free`.
    let token = stack.token(&TokenSpec {
        tier: Some("platinum"),
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    let resp = get_with_token(stack, "/api/transactions", &token);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let headers = crate::forwarding::echoed_headers(&resp.json());
    assert!(
        headers.contains(&("x-gateway-tier".into(), "free".into())),
        "{headers:?}"
    );
    // A missing organisation claim is refused (the users issuer does not make a subject its own
    // organisation): a subject named like another organisation never shares its budget or
    // revocations. So is a claimed organisation in the reserved `sub:` namespace.
    for claims in [
        r#"{"org_id": null, "sub": "globex"}"#,
        r#"{"org_id": "sub:svc-42"}"#,
    ] {
        let token = stack.token(&TokenSpec {
            scopes: "transactions:read",
            claims: Some(claims),
            ..TokenSpec::default()
        });
        let resp = get_with_token(stack, "/api/transactions", &token);
        crate::requests::assert_problem(&resp, 401, "invalid_token");
    }
    // `scp` as an array is accepted too.
    let token = stack.token(&TokenSpec {
        scopes: "",
        claims: Some(r#"{"scope": null, "scp": ["transactions:read"]}"#),
        ..TokenSpec::default()
    });
    assert_eq!(
        get_with_token(stack, "/api/transactions", &token).status,
        200
    );
}

fn insufficient_scope_is_403(stack: &Stack) {
    let token = stack.token(&TokenSpec {
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    let resp = http::with_bearer(
        "POST",
        &format!("{}/api/reports/generate", stack.gateway),
        &token,
        Some(b"{}"),
    )
    .unwrap();
    assert_scope_denied(&resp, "reports:generate", "transactions:read");
    let challenge = resp.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"reports:generate\""),
        "{challenge}"
    );
}

fn bad_claims_are_401(stack: &Stack) {
    let read = "transactions:read";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = format!(r#"{{"iat": {}, "exp": {}}}"#, now - 600, now - 60);
    let future_nbf = format!(r#"{{"nbf": {}}}"#, now + 600);
    let future_iat = format!(r#"{{"iat": {}, "exp": {}}}"#, now + 600, now + 900);
    let long_lived = format!(r#"{{"iat": {now}, "exp": {}}}"#, now + 7200);
    let just_expired_within_leeway = format!(r#"{{"iat": {}, "exp": {}}}"#, now - 100, now - 2);
    let cases: [(&str, &str); 9] = [
        (&expired, "token_expired"),
        (r#"{"exp": null}"#, "invalid_token"),
        (r#"{"exp": "tomorrow"}"#, "invalid_token"),
        (&future_nbf, "invalid_token"),
        (&future_iat, "invalid_token"),
        (&long_lived, "invalid_token"),
        (r#"{"aud": "https://other.example.com"}"#, "invalid_token"),
        (r#"{"iss": "https://evil.example.com"}"#, "invalid_token"),
        (r#"{"sub": null}"#, "invalid_token"),
    ];
    for (claims, code) in cases {
        let token = stack.token(&TokenSpec {
            scopes: read,
            claims: Some(claims),
            ..TokenSpec::default()
        });
        let resp = get_with_token(stack, "/api/transactions", &token);
        let body = assert_problem(&resp, 401, code);
        if code == "token_expired" {
            let expected = "Access token has expired. Use your refresh token to get a new one.";
            assert_eq!(body["message"], expected);
        }
        assert!(
            resp.header("www-authenticate")
                .unwrap()
                .contains("error=\"invalid_token\""),
            "{claims}"
        );
    }
    // Within the 5 s leeway: accepted. An audience array containing ours: accepted.
    for claims in [
        just_expired_within_leeway.as_str(),
        r#"{"aud": ["https://other.example.com", "https://api.example.com"]}"#,
    ] {
        let token = stack.token(&TokenSpec {
            scopes: read,
            claims: Some(claims),
            ..TokenSpec::default()
        });
        assert_eq!(
            get_with_token(stack, "/api/transactions", &token).status,
            200,
            "{claims}"
        );
    }
}

/// Re-encodes a token part after editing its JSON.
fn edit(part: &str, f: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut value: serde_json::Value = serde_json::from_slice(&decode(part)).unwrap();
    f(&mut value);
    encode(value.to_string().as_bytes())
}

fn forged_tokens_are_401(stack: &Stack) {
    let token = stack.token(&TokenSpec {
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    let parts: Vec<&str> = token.split('.').collect();
    let (header, claims, sig) = (parts[0], parts[1], parts[2]);
    let forged = [
        // Payload changed after signing (escalating tier).
        format!(
            "{header}.{}.{sig}",
            edit(claims, |c| c["tier"] = "enterprise".into())
        ),
        // alg none, with and without a signature.
        format!("{}.{claims}.", edit(header, |h| h["alg"] = "none".into())),
        format!(
            "{}.{claims}.{sig}",
            edit(header, |h| h["alg"] = "none".into())
        ),
        // Algorithm confusion: HS256 keyed with the public key.
        format!(
            "{}.{claims}.{sig}",
            edit(header, |h| h["alg"] = "HS256".into())
        ),
        // A signature of the wrong length, and one flipped bit.
        format!("{header}.{claims}.{}", encode(&decode(sig)[..32])),
        format!("{header}.{claims}.{}", {
            let mut s = decode(sig);
            s[10] ^= 1;
            encode(&s)
        }),
        // An unknown key id; a header that names a key URL to fetch.
        format!(
            "{}.{claims}.{sig}",
            edit(header, |h| h["kid"] = "rotated-away".into())
        ),
        format!(
            "{}.{claims}.{sig}",
            edit(header, |h| h["jku"] = "http://127.0.0.1:1/jwks".into())
        ),
        // Critical extensions the gateway does not understand; not an access token.
        format!(
            "{}.{claims}.{sig}",
            edit(header, |h| h["crit"] = serde_json::json!(["exp"]))
        ),
        format!(
            "{}.{claims}.{sig}",
            edit(header, |h| h["typ"] = "JWT".into())
        ),
        // Structure.
        format!("{header}.{claims}"),
        "not-a-jwt".to_owned(),
        format!("{header}.!!!.{sig}"),
    ];
    for (i, token) in forged.iter().enumerate() {
        let resp = get_with_token(stack, "/api/transactions", token);
        let status = resp.status;
        assert!(
            status == 401 || status == 400,
            "forged token #{i} got {status}: {}",
            resp.text()
        );
        if status == 401 {
            assert_problem(&resp, 401, "invalid_token");
        }
    }
    // The untouched token still works (the forgeries failed for their forgery).
    assert_eq!(
        get_with_token(stack, "/api/transactions", &token).status,
        200
    );
}

fn malformed_authorization_is_refused(stack: &Stack) {
    let url = format!("{}/api/transactions", stack.gateway);
    let token = stack.token(&TokenSpec {
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    let bearer = format!("Bearer {token}");
    // Two Authorization headers.
    let resp = http::get(
        &url,
        &[("Authorization", &bearer), ("Authorization", &bearer)],
    )
    .unwrap();
    assert_problem(&resp, 400, "invalid_request");
    // Bearer with nothing, or with spaces inside.
    assert_problem(
        &http::get(&url, &[("Authorization", "Bearer ")]).unwrap(),
        400,
        "invalid_request",
    );
    assert_problem(
        &http::get(&url, &[("Authorization", "Bearer")]).unwrap(),
        400,
        "invalid_request",
    );
    assert_problem(
        &http::get(&url, &[("Authorization", "Bearer a b")]).unwrap(),
        400,
        "invalid_request",
    );
    // Over the size limit: refused before parsing.
    let huge = format!("Bearer {}", "a".repeat(9000));
    assert_problem(
        &http::get(&url, &[("Authorization", &huge)]).unwrap(),
        401,
        "invalid_token",
    );
    // Scheme is case-insensitive.
    let lower = format!("bearer {token}");
    assert_eq!(
        http::get(&url, &[("Authorization", &lower)])
            .unwrap()
            .status,
        200
    );
}

fn tokens_never_appear_in_answers_or_logs(stack: &Stack) {
    let token = stack.token(&TokenSpec {
        scopes: "transactions:read",
        claims: Some(r#"{"aud": "https://other.example.com"}"#),
        ..TokenSpec::default()
    });
    let resp = get_with_token(stack, "/api/transactions", &token);
    assert_eq!(resp.status, 401);
    let signature = token.rsplit('.').next().unwrap();
    assert!(!resp.text().contains(signature));
    assert!(resp.headers.iter().all(|(_, v)| !v.contains(signature)));
    // Give the log a moment to be flushed by polling for this request's line.
    let rid = resp.header("x-request-id").unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let log = loop {
        let log = stack.gateway_log();
        if log.contains(&rid) || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(log.contains(&rid), "no log line for {rid}");
    assert!(!log.contains(signature), "a token reached the log");
    assert!(!log.contains(&token[..40]), "a token reached the log");
}

fn permissions_count_like_scopes(stack: &Stack) {
    let post = |token: &str| {
        let url = format!("{}/api/reports/generate", stack.gateway);
        http::with_bearer("POST", &url, token, Some(b"{}")).unwrap()
    };
    let analyst = stack.token(&TokenSpec {
        scopes: "transactions:read",
        claims: Some(r#"{"permissions": ["reports:*"]}"#),
        ..TokenSpec::default()
    });
    assert_eq!(post(&analyst).status, 200);
    let admin = stack.token(&TokenSpec {
        scopes: "",
        claims: Some(r#"{"permissions": ["*"]}"#),
        ..TokenSpec::default()
    });
    assert_eq!(post(&admin).status, 200);
    let other = stack.token(&TokenSpec {
        scopes: "",
        claims: Some(r#"{"permissions": ["transactions:*"]}"#),
        ..TokenSpec::default()
    });
    assert_problem(&post(&other), 403, "insufficient_scope");
    let malformed = stack.token(&TokenSpec {
        scopes: "",
        claims: Some(r#"{"permissions": "*"}"#),
        ..TokenSpec::default()
    });
    assert_problem(&post(&malformed), 401, "invalid_token");
}
