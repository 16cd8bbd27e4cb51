//! Abuse resistance end to end: revocation through the admin API, the limits before
//! authentication (per client IP, and an auth route's failures), in the real runtime.
//!
//! The suite's own address is exempt from the limits before authentication in the test
//! environment (`CLIENT_LIMIT_EXEMPT`); these tests send their own `CF-Connecting-IP` (which the
//! local runtime passes through, and Cloudflare's edge always sets), one address per test.

use std::time::Duration;

use gateway_e2e::{Stack, TokenSpec, http};

use crate::Case;
use crate::limits::org;
use crate::requests::assert_problem;

pub(crate) const CASES: &[Case] = &[
    (
        "abuse::revoking_a_jti_a_subject_and_an_org_cuts_them_off_at_once",
        revoking_a_jti_a_subject_and_an_org_cuts_them_off_at_once,
    ),
    (
        "abuse::revocations_expire_and_can_be_lifted",
        revocations_expire_and_can_be_lifted,
    ),
    (
        "abuse::admin_api_refuses_other_issuers_and_missing_scopes",
        admin_api_refuses_other_issuers_and_missing_scopes,
    ),
    (
        "abuse::a_flood_of_bad_tokens_is_stopped_per_client_ip",
        a_flood_of_bad_tokens_is_stopped_per_client_ip,
    ),
    (
        "abuse::ipv6_clients_are_counted_per_64",
        ipv6_clients_are_counted_per_64,
    ),
    (
        "abuse::auth_route_counts_only_failures",
        auth_route_counts_only_failures,
    ),
    (
        "abuse::parallel_guesses_cannot_outrun_the_failure_limit",
        parallel_guesses_cannot_outrun_the_failure_limit,
    ),
    (
        "abuse::legacy_keys_work_with_deprecation_headers_until_their_cut_off",
        legacy_keys_work_with_deprecation_headers_until_their_cut_off,
    ),
];

fn token(stack: &Stack, org: &str, claims: &str) -> String {
    stack.token(&TokenSpec {
        org,
        scopes: "transactions:read",
        claims: Some(claims),
        ..TokenSpec::default()
    })
}

fn admin(stack: &Stack, method: &str, token: &str, body: serde_json::Value) -> http::Response {
    http::with_bearer(
        method,
        &format!("{}/_gateway/admin/revocations", stack.gateway),
        token,
        Some(body.to_string().as_bytes()),
    )
    .expect("admin request")
}

/// `POST` a revocation as `ops`; it must be accepted (201).
fn revoke(stack: &Stack, ops: &str, body: serde_json::Value) -> http::Response {
    let resp = admin(stack, "POST", ops, body);
    assert_eq!(resp.status, 201, "{}", resp.text());
    resp
}

fn list(stack: &Stack, token: &str) -> http::Response {
    stack.get_as("/api/transactions", token)
}

fn assert_revoked(resp: &http::Response, scope: &str) {
    let body = assert_problem(resp, 401, "token_revoked");
    assert!(body["message"].as_str().unwrap().contains(scope), "{body}");
    let challenge = resp.header("www-authenticate").unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

fn revocation_logged(stack: &Stack, org: &str, scope: &str) -> serde_json::Value {
    stack
        .find_log_line(|line| {
            line["event"] == "revocation_added"
                && line["org"] == org
                && line["revocation"]["scope"] == scope
        })
        .unwrap_or_else(|| panic!("no revocation_added line for {org}/{scope}"))
}

fn revoking_a_jti_a_subject_and_an_org_cuts_them_off_at_once(stack: &Stack) {
    let ops = stack.machine_token("ops-admin", "gateway:admin");
    let org = org("revoke");

    // A token, used once (now cached as verified in the isolate), then revoked by its jti.
    let stolen = token(stack, &org, r#"{"sub":"alice","jti":"stolen-jti-1"}"#);
    let other = token(stack, &org, r#"{"sub":"alice"}"#);
    assert_eq!(list(stack, &stolen).status, 200);
    let resp = revoke(
        stack,
        &ops,
        serde_json::json!({"issuer": "users", "org": org, "jti": "stolen-jti-1", "reason": "laptop stolen"}),
    );
    let entry = resp.json()["revocation"].clone();
    assert_eq!(entry["scope"], "token");
    assert_eq!(entry["by"], "machines/ops-admin");
    // It lives as long as any token of the issuer could: max_lifetime (3600) + leeway (5) + 1.
    let revoked_at = entry["revoked_at"].as_u64().unwrap();
    assert_eq!(entry["expires_at"].as_u64().unwrap(), revoked_at + 3606);
    assert_revoked(&list(stack, &stolen), "token");
    assert_eq!(list(stack, &other).status, 200, "another token of alice");
    let line = revocation_logged(stack, &org, "token");
    assert_eq!(line["security_event"], true);
    assert_eq!(line["by"], "machines/ops-admin");

    // A subject: every token of alice issued until now, not bob's.
    let bob = token(stack, &org, r#"{"sub":"bob"}"#);
    assert_eq!(list(stack, &bob).status, 200);
    revoke(
        stack,
        &ops,
        serde_json::json!({"issuer": "users", "org": org, "sub": "alice"}),
    );
    assert_revoked(&list(stack, &other), "subject");
    assert_eq!(list(stack, &bob).status, 200);
    revocation_logged(stack, &org, "subject");
    // Alice signs in again after the revocation: her new token is served.
    std::thread::sleep(Duration::from_millis(1100));
    let fresh = token(stack, &org, r#"{"sub":"alice"}"#);
    assert_eq!(list(stack, &fresh).status, 200);

    // The whole organisation, through the machines issuer's real provider too.
    revoke(
        stack,
        &ops,
        serde_json::json!({"issuer": "users", "org": org}),
    );
    assert_revoked(&list(stack, &bob), "org");
    assert_revoked(&list(stack, &fresh), "org");
    let listed = http::with_bearer(
        "GET",
        &format!(
            "{}/_gateway/admin/revocations?issuer=users&org={org}",
            stack.gateway
        ),
        &ops,
        None,
    )
    .unwrap();
    assert_eq!(listed.status, 200, "{}", listed.text());
    let scopes: Vec<String> = listed.json()["revocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["scope"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(scopes, ["token", "subject", "org"]);

    // Another issuer's organisation of the same name is untouched.
    let machines = stack.machine_token("acme-batch", "transactions:read");
    assert_eq!(list(stack, &machines).status, 200);
}

fn revocations_expire_and_can_be_lifted(stack: &Stack) {
    let ops = stack.machine_token("ops-admin", "gateway:admin");
    let org = org("expire");
    let t = token(stack, &org, r#"{"sub":"carol"}"#);
    assert_eq!(list(stack, &t).status, 200);
    // A two-second suspension of the organisation.
    revoke(
        stack,
        &ops,
        serde_json::json!({"issuer": "users", "org": org, "ttl_seconds": 2}),
    );
    assert_revoked(&list(stack, &t), "org");
    std::thread::sleep(Duration::from_millis(3100));
    assert_eq!(list(stack, &t).status, 200, "the entry expired");

    // Lifted by hand.
    revoke(
        stack,
        &ops,
        serde_json::json!({"issuer": "users", "org": org, "sub": "carol"}),
    );
    assert_revoked(&list(stack, &t), "subject");
    let resp = admin(
        stack,
        "DELETE",
        &ops,
        serde_json::json!({"issuer": "users", "org": org, "sub": "carol"}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["removed"], true);
    assert_eq!(list(stack, &t).status, 200, "lifted");
    let again = admin(
        stack,
        "DELETE",
        &ops,
        serde_json::json!({"issuer": "users", "org": org, "sub": "carol"}),
    );
    assert_eq!(again.json()["removed"], false);
    assert!(
        stack
            .find_log_line(|l| l["event"] == "revocation_removed" && l["org"] == org.as_str())
            .is_some()
    );
}

fn admin_api_refuses_other_issuers_and_missing_scopes(stack: &Stack) {
    let org = org("admin");
    let body = serde_json::json!({"issuer": "users", "org": org});
    let url = format!("{}/_gateway/admin/revocations", stack.gateway);

    // No token.
    let resp = http::request(
        "POST",
        &url,
        &[("Content-Type", "application/json")],
        Some(body.to_string().as_bytes()),
    )
    .unwrap();
    assert_problem(&resp, 401, "missing_token");
    // A users-issuer token claiming the admin scope: wrong issuer.
    let forged_admin = stack.token(&TokenSpec {
        org: &org,
        scopes: "gateway:admin",
        ..TokenSpec::default()
    });
    let resp = admin(stack, "POST", &forged_admin, body.clone());
    let problem = assert_problem(&resp, 403, "insufficient_scope");
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("admin issuer")
    );
    // The admin issuer, without the admin scope.
    let partner = stack.machine_token("acme-batch", "transactions:read");
    let resp = admin(stack, "POST", &partner, body.clone());
    let problem = assert_problem(&resp, 403, "insufficient_scope");
    assert_eq!(problem["required"], serde_json::json!(["gateway:admin"]));
    // The provider refuses the admin scope to a client not registered for it.
    let denied = http::request(
        "POST",
        &format!("{}/token", stack.machines),
        &[
            (
                "Authorization",
                &format!(
                    "Basic {}",
                    <base64ct::Base64 as base64ct::Encoding>::encode_string(
                        b"acme-batch:acme-batch-secret"
                    )
                ),
            ),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(b"grant_type=client_credentials&scope=gateway%3Aadmin&resource=https%3A%2F%2Fapi.example.com"),
    )
    .unwrap();
    assert_eq!(denied.status, 400, "{}", denied.text());

    // Nothing was revoked by any of them.
    let t = token(stack, &org, r#"{"sub":"dave"}"#);
    assert_eq!(list(stack, &t).status, 200);

    // Malformed admin requests: precise 4xx.
    let ops = stack.machine_token("ops-admin", "gateway:admin");

    // An admin token is revocable like any other: revoked by its jti, it no longer gets in.
    let doomed = stack.machine_token("ops-admin", "gateway:admin");
    let payload = doomed.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &<base64ct::Base64UrlUnpadded as base64ct::Encoding>::decode_vec(payload).unwrap(),
    )
    .unwrap();
    revoke(
        stack,
        &ops,
        serde_json::json!({"issuer": "machines", "org": "operator", "jti": claims["jti"]}),
    );
    let resp = admin(
        stack,
        "POST",
        &doomed,
        serde_json::json!({"issuer": "users", "org": org}),
    );
    assert_problem(&resp, 401, "token_revoked");
    for (body, needle) in [
        (
            serde_json::json!({"issuer": "nobody", "org": "x"}),
            "no issuer named",
        ),
        (
            serde_json::json!({"issuer": "users", "org": "x", "sub": "a", "jti": "b"}),
            "not both",
        ),
        (serde_json::json!({"issuer": "users", "org": ""}), "'org'"),
        (
            serde_json::json!({"issuer": "users", "org": "x", "extra": 1}),
            "unexpected or missing field",
        ),
    ] {
        let resp = admin(stack, "POST", &ops, body);
        let problem = assert_problem(&resp, 400, "invalid_request");
        assert!(
            problem["message"].as_str().unwrap().contains(needle),
            "{problem}"
        );
    }
    let resp = http::request(
        "POST",
        &url,
        &[
            ("Authorization", &format!("Bearer {ops}")),
            ("Content-Type", "text/plain"),
        ],
        Some(b"issuer=users"),
    )
    .unwrap();
    assert_problem(&resp, 415, "unsupported_media_type");
    let resp = http::with_bearer("PUT", &url, &ops, None).unwrap();
    assert_problem(&resp, 405, "method_not_allowed");
}

fn bad_token_from(stack: &Stack, ip: &str) -> http::Response {
    http::get(
        &format!("{}/api/transactions", stack.gateway),
        &[
            ("Authorization", "Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln"),
            ("CF-Connecting-IP", ip),
        ],
    )
    .unwrap()
}

fn valid_from(stack: &Stack, token: &str, ip: &str) -> http::Response {
    http::get(
        &format!("{}/api/transactions", stack.gateway),
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("CF-Connecting-IP", ip),
        ],
    )
    .unwrap()
}

fn a_flood_of_bad_tokens_is_stopped_per_client_ip(stack: &Stack) {
    let attacker = "198.51.100.7";
    let neighbour = "198.51.100.8";
    let org = org("flood");
    // A customer behind the attacker's address used its token before the flood.
    let cached = token(stack, &org, r#"{"sub":"erin"}"#);
    assert_eq!(valid_from(stack, &cached, attacker).status, 200);
    let uncached = token(stack, &org, r#"{"sub":"frank"}"#);

    // 120 failures per minute are answered 401; the next is 429 without a signature check.
    for i in 0..120 {
        let resp = bad_token_from(stack, attacker);
        assert_eq!(resp.status, 401, "failure {i}: {}", resp.text());
    }
    let resp = bad_token_from(stack, attacker);
    let body = assert_problem(&resp, 429, "rate_limit_exceeded");
    assert_eq!(body["limit"], 120);
    assert_eq!(body["remaining"], 0);
    let retry: u64 = resp.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(body["retryAfter"], retry);
    assert_eq!(resp.header("x-ratelimit-limit"), Some("120"));
    assert_eq!(resp.header("x-ratelimit-remaining"), Some("0"));
    assert!(
        resp.header("ratelimit-policy")
            .unwrap()
            .contains("\"client-60s\";q=120;w=60")
    );
    assert!(body["message"].as_str().unwrap().contains("Too many"));
    // A fresh valid token from the same address is refused too (it would cost a signature
    // check); the token that was already verified still works.
    assert_problem(
        &valid_from(stack, &uncached, attacker),
        429,
        "rate_limit_exceeded",
    );
    assert_eq!(valid_from(stack, &cached, attacker).status, 200);
    // Public routes from that address are refused as well.
    let public = http::get(
        &format!("{}/api/health", stack.gateway),
        &[("CF-Connecting-IP", attacker)],
    )
    .unwrap();
    assert_problem(&public, 429, "rate_limit_exceeded");

    // Another address is unaffected.
    assert_eq!(bad_token_from(stack, neighbour).status, 401);
    assert_eq!(valid_from(stack, &uncached, neighbour).status, 200);
    // Every refusal is a logged security event with the client's address.
    assert!(
        stack
            .find_log_line(|l| l["status"] == 429
                && l["client_ip"] == attacker
                && l["security_event"] == true)
            .is_some()
    );
}

fn ipv6_clients_are_counted_per_64(stack: &Stack) {
    // Public requests count too: the health route reports the client budget.
    let first = http::get(
        &format!("{}/api/health", stack.gateway),
        &[("CF-Connecting-IP", "2001:db8:77:1::1")],
    )
    .unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-ratelimit-remaining"), Some("119"));
    let same_64 = http::get(
        &format!("{}/api/health", stack.gateway),
        &[("CF-Connecting-IP", "2001:db8:77:1:ffff::9")],
    )
    .unwrap();
    assert_eq!(same_64.header("x-ratelimit-remaining"), Some("118"));
    let other_64 = http::get(
        &format!("{}/api/health", stack.gateway),
        &[("CF-Connecting-IP", "2001:db8:77:2::1")],
    )
    .unwrap();
    assert_eq!(other_64.header("x-ratelimit-remaining"), Some("119"));
}

fn login(stack: &Stack, ip: &str, password: &str) -> http::Response {
    login_slowly(stack, ip, password, 0)
}

/// A login the demo origin answers only after `delay_ms`.
fn login_slowly(stack: &Stack, ip: &str, password: &str, delay_ms: u64) -> http::Response {
    let delay = delay_ms.to_string();
    http::request(
        "POST",
        &format!("{}/api/auth/login", stack.gateway),
        &[
            ("Content-Type", "application/json"),
            ("CF-Connecting-IP", ip),
            ("X-Demo-Delay-Ms", &delay),
        ],
        Some(
            serde_json::json!({"user": "ops", "password": password})
                .to_string()
                .as_bytes(),
        ),
    )
    .unwrap()
}

fn auth_route_counts_only_failures(stack: &Stack) {
    let ip = "203.0.113.50";
    // Successes are free.
    for _ in 0..8 {
        assert_eq!(login(stack, ip, "demo-password").status, 200);
    }
    // Five failures reach the origin (its 401s)...
    for i in 0..5 {
        let resp = login(stack, ip, "guess");
        assert_eq!(resp.status, 401, "failure {i}");
        assert_eq!(resp.json()["origin"], "demo");
    }
    // ...the sixth attempt does not, even with the right password, for 15 minutes.
    let resp = login(stack, ip, "demo-password");
    let body = assert_problem(&resp, 429, "rate_limit_exceeded");
    assert_eq!(body["limit"], 5);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("failed attempts")
    );
    let retry: u64 = resp.header("retry-after").unwrap().parse().unwrap();
    assert!((890..=900).contains(&retry), "{retry}");
    assert!(
        resp.header("ratelimit-policy")
            .unwrap()
            .contains("\"failures-900s\";q=5;w=900")
    );
    // Another address logs in.
    assert_eq!(login(stack, "203.0.113.51", "demo-password").status, 200);
}

/// "5 failures per 15 minutes" holds against parallel guesses: twenty wrong passwords sent at
/// once, each answered by the origin only after 800 ms, and five reach the origin; the other
/// fifteen are refused before it (429), because attempts in flight hold slots of the failure
/// budget. Successes free their slots: a client that logs in correctly in parallel is never
/// refused. On a stack of its own, so no other test's slow requests hold the origin's threads.
fn parallel_guesses_cannot_outrun_the_failure_limit(_shared: &Stack) {
    let stack = &Stack::start("login-holds").expect("stack");
    let parallel = |ip: &str, password: &str, n: usize| -> Vec<u16> {
        let barrier = std::sync::Barrier::new(n);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        login_slowly(stack, ip, password, 800).status
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    let statuses = parallel("203.0.113.60", "guess", 20);
    let refused = statuses.iter().filter(|s| **s == 429).count();
    let failed = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(refused, 15, "refused before the origin: {statuses:?}");
    assert_eq!(failed, 5, "reached the origin and failed: {statuses:?}");
    // And the budget is spent: the right password is refused too.
    assert_eq!(login(stack, "203.0.113.60", "demo-password").status, 429);
    // Five correct logins at once, twice: each frees its slot when it succeeds.
    for _ in 0..2 {
        let ok = parallel("203.0.113.61", "demo-password", 5);
        assert!(ok.iter().all(|s| *s == 200), "{ok:?}");
    }
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn rfc3339(unix: u64) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{unix}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn with_key(stack: &Stack, key: &str) -> http::Response {
    http::get(
        &format!("{}/api/transactions", stack.gateway),
        &[("X-API-Key", key)],
    )
    .unwrap()
}

fn legacy_keys_work_with_deprecation_headers_until_their_cut_off(_: &Stack) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let live = format!("sk_live_{}", "a1b2c3d4e5f60718293a4b5c6d7e8f90");
    let retired = format!("sk_live_{}", "ffeeddccbbaa99887766554433221100");
    let long_lived = format!("sk_live_{}", "0a1b2c3d4e5f60718293a4b5c6d7e8f9");
    gateway_e2e::leaks::canary(&long_lived);
    let cutoff = now + 20;
    gateway_e2e::leaks::canary(&live);
    gateway_e2e::leaks::canary(&retired);
    let keys = serde_json::json!({"keys": [
        {"id": "acme-legacy", "sha256": sha256_hex(&live), "org": "legacy-acme", "tier": "pro",
         "scopes": ["transactions:read"], "sunset": rfc3339(cutoff)},
        {"id": "old-partner", "sha256": sha256_hex(&retired), "org": "legacy-old", "tier": "free",
         "scopes": ["transactions:read"], "sunset": "2025-01-01T00:00:00Z"},
        {"id": "acme-long", "sha256": sha256_hex(&long_lived), "org": "legacy-acme", "tier": "pro",
         "scopes": ["transactions:read"], "sunset": "2030-01-01T00:00:00Z"}
    ]});
    let stack = Stack::start_with_api_keys("api-keys", &keys.to_string()).expect("stack");

    let resp = with_key(&stack, &live);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("deprecation"), Some("@1793491200"));
    let sunset = resp.header("sunset").unwrap();
    assert!(sunset.ends_with(" GMT") && sunset.len() == 29, "{sunset}");
    let link = resp.header("link").unwrap();
    assert!(
        link.contains("<https://example.com/docs/migrate-to-oauth>; rel=\"deprecation\""),
        "{link}"
    );
    // The origin sees the key's organisation, never the key.
    let echo = resp.json();
    let headers = echo["headers"].as_array().unwrap();
    let get = |name: &str| {
        headers
            .iter()
            .find(|h| h[0] == name)
            .map(|h| h[1].as_str().unwrap().to_owned())
    };
    assert_eq!(get("x-gateway-org").as_deref(), Some("legacy-acme"));
    assert_eq!(get("x-gateway-issuer").as_deref(), Some("machines"));
    assert_eq!(
        get("x-gateway-subject").as_deref(),
        Some("api-key:acme-legacy")
    );
    assert_eq!(get("x-api-key"), None);
    assert!(!echo.to_string().contains(&live));
    // Rate limited as that organisation (pro tier).
    assert_eq!(resp.header("x-ratelimit-limit"), Some("1000"));

    // Scopes come from the key: another route is 403 (with the headers still on it).
    let export = http::request(
        "POST",
        &format!("{}/api/transactions/export", stack.gateway),
        &[("X-API-Key", &live), ("Content-Type", "application/json")],
        Some(b"{}"),
    )
    .unwrap();
    assert_problem(&export, 403, "insufficient_scope");
    assert_eq!(export.header("deprecation"), Some("@1793491200"));

    // Unknown, retired, and doubled credentials.
    assert_problem(&with_key(&stack, "sk_live_guess"), 401, "invalid_api_key");
    let old = with_key(&stack, &retired);
    let body = assert_problem(&old, 401, "api_key_expired");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("migrate-to-oauth"),
        "{body}"
    );
    let token = stack.token(&TokenSpec {
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    let both = http::get(
        &format!("{}/api/transactions", stack.gateway),
        &[
            ("X-API-Key", &live),
            ("Authorization", &format!("Bearer {token}")),
        ],
    )
    .unwrap();
    assert_problem(&both, 400, "invalid_request");

    // Revoking the organisation covers its keys too.
    let ops = stack.machine_token("ops-admin", "gateway:admin");
    revoke(
        &stack,
        &ops,
        serde_json::json!({"issuer": "machines", "org": "legacy-acme", "ttl_seconds": 2}),
    );
    assert_revoked(&with_key(&stack, &live), "org");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(with_key(&stack, &live).status, 200);
    // A key's own revocation lives as long as the key could (its sunset, 2030-01-01), not just
    // as long as the issuer's tokens; the organisation's other key is unaffected.
    assert_eq!(with_key(&stack, &long_lived).status, 200);
    let resp = revoke(
        &stack,
        &ops,
        serde_json::json!({"issuer": "machines", "org": "legacy-acme", "sub": "api-key:acme-long"}),
    );
    assert_eq!(resp.json()["revocation"]["expires_at"], 1_893_456_001u64);
    assert_revoked(&with_key(&stack, &long_lived), "subject");
    assert_eq!(with_key(&stack, &live).status, 200);

    // At the cut-off the key stops working.
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        < cutoff
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = with_key(&stack, &live);
    assert_problem(&after, 401, "api_key_expired");
    // Keys never reach the log.
    let log = stack.gateway_log();
    assert!(!log.contains(&live) && !log.contains(&retired));
    assert!(log.contains("api-key:acme-legacy"));
}
