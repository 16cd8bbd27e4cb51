//! The stages, table by table, against a policy of their own.

use super::*;
use crate::limit::WindowStatus;
use crate::revocation::RevocationKind;
use crate::testing::{self, route};

fn policy() -> Policy {
    testing::policy()
}

fn environment(policy: &Policy, hosts: &str) -> Environment {
    testing::environment(policy, &[("ALLOWED_HOSTS", hosts)])
}

fn claims(tier: &str, scopes: &[&str], cert: Option<&str>) -> VerifiedClaims {
    testing::claims("local", tier, scopes, cert)
}

fn code(result: Result<impl std::fmt::Debug, GatewayError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.code().as_str(),
    }
}

#[test]
fn admit_checks_headers_host_url_and_path_in_that_order() {
    let p = policy();
    let any_host = environment(&p, "");
    let one_host = environment(&p, "api.example.com");
    let ok = HeaderBlock::from_pairs(&[("host", "api.example.com")]);
    let big_value = "x".repeat(20_000);
    let big = HeaderBlock::from_pairs(&[("host", "api.example.com"), ("x-big", &big_value)]);
    let other = HeaderBlock::from_pairs(&[("host", "evil.example.net")]);
    let cases: [(Option<&HeaderBlock>, &str, &Environment, &str, &str); 8] = [
        (
            None,
            "https://api.example.com/a",
            &any_host,
            "invalid_request",
            "",
        ),
        (
            Some(&big),
            "https://api.example.com/a",
            &any_host,
            "headers_too_large",
            "",
        ),
        (
            Some(&other),
            "https://api.example.com/a",
            &one_host,
            "misdirected_request",
            "",
        ),
        (
            Some(&other),
            "https://api.example.com/a",
            &any_host,
            "ok",
            "/a",
        ),
        (Some(&ok), "not a url", &any_host, "invalid_request", ""),
        (
            Some(&ok),
            "https://api.example.com/a/%2e%2e/b",
            &one_host,
            "invalid_path",
            "/a/%2e%2e/b",
        ),
        (
            Some(&ok),
            "https://api.example.com/api/transactions?x=1",
            &one_host,
            "ok",
            "/api/transactions",
        ),
        (
            Some(&ok),
            "https://api.example.com/a/%7Eb",
            &one_host,
            "ok",
            "/a/~b",
        ),
    ];
    for (headers, url, env, expected, logged) in cases {
        let mut log_path = String::new();
        let view = RequestView {
            method: "GET",
            url,
            headers,
        };
        let got = admit(&view, &p, env, &mut log_path);
        assert_eq!(code(got.clone()), expected, "{url}");
        assert_eq!(log_path, logged, "{url}");
        if let Ok(admitted) = got {
            assert_eq!(admitted.scheme, "https");
        }
    }
}

#[test]
fn target_sorts_requests_between_the_gateway_preflights_and_routes() {
    let p = policy();
    let none = HeaderBlock::default();
    let preflight = HeaderBlock::from_pairs(&[
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "GET"),
    ]);
    let path = |s: &str| normalise(s).unwrap();
    let cases = [
        ("GET", "/_gateway/health", &none, "health"),
        ("POST", "/_gateway/health", &none, "method_not_allowed"),
        ("GET", "/_gateway", &none, "route_not_found"),
        ("GET", "/_gateway/bench/auth", &none, "route_not_found"),
        ("GET", "/_gateway/admin/revocations", &none, "admin"),
        ("GET", "/_gateway/admin/other", &none, "admin"),
        ("GET", "/api/.env", &none, "route_not_found"),
        ("OPTIONS", "/api/transactions", &preflight, "preflight"),
        ("OPTIONS", "/api/transactions", &none, "method_not_allowed"),
        ("GET", "/api/transactions", &none, "tx.list"),
        ("DELETE", "/api/transactions", &none, "method_not_allowed"),
        ("GET", "/nowhere", &none, "route_not_found"),
    ];
    for (method, raw, headers, expected) in cases {
        let got = match target(method, &path(raw), headers, &p) {
            Ok(Target::Health) => "health".to_owned(),
            Ok(Target::Admin) => "admin".to_owned(),
            Ok(Target::Preflight(h)) => {
                assert!(
                    h.iter().any(|(n, _)| *n == "access-control-allow-origin"),
                    "{h:?}"
                );
                "preflight".to_owned()
            }
            Ok(Target::Route(r)) => r.id.0.clone(),
            Err(e) => e.code().as_str().to_owned(),
        };
        assert_eq!(got, expected, "{method} {raw}");
    }
    // Without `[admin]` the admin API does not exist.
    let mut no_admin = policy();
    no_admin.admin = None;
    assert_eq!(
        target(
            "GET",
            &path("/_gateway/admin/revocations"),
            &none,
            &no_admin
        ),
        Err(GatewayError::RouteNotFound)
    );
    assert!(is_preflight("OPTIONS", &preflight));
    assert!(!is_preflight("GET", &preflight));
}

#[test]
fn credential_is_none_a_key_or_a_bearer_token_never_two() {
    let p = policy();
    let bearer = route(&p, "tx.list");
    let key = HeaderBlock::from_pairs(&[("x-api-key", "k1")]);
    let token = HeaderBlock::from_pairs(&[("authorization", "Bearer t")]);
    let both = HeaderBlock::from_pairs(&[("authorization", "Bearer t"), ("x-api-key", "k1")]);
    let none = HeaderBlock::default();
    assert_eq!(
        credential(route(&p, "health"), &both, &p),
        Ok(Credential::Public)
    );
    assert!(matches!(
        credential(bearer, &key, &p),
        Ok(Credential::ApiKey {
            presented: "k1",
            ..
        })
    ));
    assert_eq!(
        credential(bearer, &token, &p),
        Ok(Credential::Bearer(Some("Bearer t")))
    );
    assert_eq!(credential(bearer, &none, &p), Ok(Credential::Bearer(None)));
    assert_eq!(
        credential(bearer, &both, &p),
        Err(GatewayError::TwoCredentials)
    );
    // Without the migration mode a key header is just a header.
    let mut no_keys = policy();
    no_keys.api_keys = None;
    assert_eq!(
        credential(bearer, &both, &no_keys),
        Ok(Credential::Bearer(Some("Bearer t")))
    );
}

#[test]
fn authorise_checks_scopes_then_certificates() {
    let p = policy();
    let reader = claims("free", &["transactions:read"], None);
    let nobody = claims("free", &[], None);
    let thumb = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
    let bound = claims("free", &["transactions:read"], Some(thumb));
    let no_cert = ClientCertificate::default;
    let list = route(&p, "tx.list");
    let mtls = route(&p, "mtls");
    assert_eq!(authorise(Some(&reader), false, Some(list), no_cert), Ok(()));
    assert_eq!(
        code(authorise(Some(&nobody), false, Some(list), no_cert)),
        "insufficient_scope"
    );
    assert_eq!(
        code(authorise(None, true, Some(mtls), no_cert)),
        "client_certificate_required"
    );
    assert_ne!(
        code(authorise(Some(&bound), false, Some(list), no_cert)),
        "ok"
    );
    // The certificate is not read unless asked for.
    assert_eq!(
        authorise(Some(&reader), false, Some(list), || panic!(
            "certificate read"
        )),
        Ok(())
    );
}

#[test]
fn the_limit_call_counts_the_route_in_the_tier_s_windows() {
    let p = policy();
    let c = claims("free", &[], None);
    let now = UnixMillis(5_000);
    let call = limit_call(&p, &c, route(&p, "tx.list"), now).unwrap();
    assert_eq!(call.object, "rl1:local:acme");
    assert_eq!(call.tier, "free");
    assert_eq!(call.request.cost, 2);
    assert_eq!(call.request.windows, p.tiers["free"].windows);
    assert_eq!(call.request.caller, Some(c.caller()));
    // A route that is not limited asks for the revocation check only.
    assert!(
        limit_call(&p, &c, route(&p, "status"), now)
            .unwrap()
            .request
            .windows
            .is_empty()
    );
    // An unknown tier falls back to free.
    assert_eq!(
        limit_call(&p, &claims("gold", &[], None), route(&p, "tx.list"), now)
            .unwrap()
            .tier,
        "free"
    );
    let mut broken = policy();
    broken.tiers.remove("free");
    assert_eq!(
        code(limit_call(&broken, &c, route(&p, "tx.list"), now)),
        "gateway_misconfigured"
    );
    let (object, only) = revocation_call(&c, now);
    assert_eq!(object, "rl1:local:acme");
    assert_eq!((only.cost, only.windows.len()), (0, 0));
}

#[test]
fn what_each_answer_of_the_counter_object_means() {
    let p = policy();
    let now = UnixMillis(5_000);
    let list = route(&p, "tx.list");
    let free = claims("free", &[], None);
    let call = limit_call(&p, &free, list, now).unwrap();
    let window = |remaining| WindowStatus {
        seconds: 60,
        limit: 10,
        remaining,
        reset_secs: 30,
    };
    let admitted = Decision::Admitted {
        windows: vec![window(8)],
        full_for_ms: 0,
    };
    let limited_answer = Decision::Limited {
        retry_after_secs: 12,
        windows: vec![window(1)],
        retry_after_ms: 0,
    };
    let cases: [(Result<Decision, String>, Option<&str>, bool); 5] = [
        (Ok(admitted), None, true),
        (
            Ok(limited_answer.clone()),
            Some("rate_limit_exceeded"),
            true,
        ),
        (
            Ok(Decision::NeverFits {
                cost: 20,
                limit: 10,
            }),
            Some("cost_exceeds_limit"),
            false,
        ),
        (
            Ok(Decision::Revoked {
                scope: RevocationKind::Org,
            }),
            Some("token_revoked"),
            false,
        ),
        (
            Err("no answer".to_owned()),
            Some("limiter_unavailable"),
            false,
        ),
    ];
    for (answer, expected, has_headers) in cases {
        let out = limited(&p, &call, list, answer.clone(), now);
        assert_eq!(
            out.refusal.as_ref().map(|e| e.code().as_str()),
            expected,
            "{answer:?}"
        );
        assert_eq!(!out.headers.is_empty(), has_headers, "{answer:?}");
        assert!(!out.shadowed);
    }
    let out = limited(&p, &call, list, Ok(limited_answer.clone()), now);
    assert_eq!(
        out.refusal,
        Some(GatewayError::RateLimited {
            retry_after_secs: 12,
            limit: 10,
            tier: "free".into(),
            upgrade_url: Some("https://example.com/pricing".into()),
        })
    );
    // Shadow mode, by route or by tier: admitted, marked, logged.
    let shadow_route = route(&p, "tx.shadow");
    let call = limit_call(&p, &free, shadow_route, now).unwrap();
    let out = limited(&p, &call, shadow_route, Ok(limited_answer.clone()), now);
    assert_eq!((out.refusal, out.shadowed), (None, true));
    assert!(
        out.headers
            .contains(&(SHADOW_HEADER, "would-limit".to_owned()))
    );
    let trial = claims("trial", &[], None);
    let call = limit_call(&p, &trial, list, now).unwrap();
    assert!(limited(&p, &call, list, Ok(limited_answer), now).shadowed);
    // Shadow mode never admits a revoked token or an unanswered call.
    let out = limited(&p, &call, list, Err("down".into()), now);
    assert_eq!(
        out.refusal.map(|e| e.code().as_str()),
        Some("limiter_unavailable")
    );
    assert!(forget_token_after(&GatewayError::TokenRevoked {
        scope: RevocationKind::Token
    }));
    assert!(!forget_token_after(&GatewayError::RouteNotFound));
}

#[test]
fn the_revocation_check_fails_closed() {
    let ok = Decision::Admitted {
        windows: Vec::new(),
        full_for_ms: 0,
    };
    assert_eq!(revocation_checked(Ok(&ok)), Ok(()));
    assert_eq!(
        code(revocation_checked(Ok(&Decision::Revoked {
            scope: RevocationKind::Subject
        }))),
        "token_revoked"
    );
    assert_eq!(
        code(revocation_checked(Err("timeout"))),
        "limiter_unavailable"
    );
}

#[test]
fn the_forward_key_is_the_current_one() {
    let keys = Keyset::from_json(r#"{"current":"k2","keys":[{"kid":"k1","secret":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"},{"kid":"k2","secret":"ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA"}]}"#).unwrap();
    assert_eq!(forward_key(&keys).unwrap().kid, "k2");
}

#[test]
fn answers_carry_limit_credential_and_cors_headers_and_one_log_line() {
    let p = policy();
    let browser = HeaderBlock::from_pairs(&[
        ("origin", "https://app.example.com"),
        ("x-request-id", "client-1"),
        ("cf-connecting-ip", "203.0.113.9"),
        ("user-agent", &"u".repeat(300)),
    ]);
    let mut trace = Trace::start(&browser);
    assert_eq!(trace.client_request_id.as_deref(), Some("client-1"));
    assert_eq!(trace.user_agent.as_ref().map(String::len), Some(200));
    trace.limit_headers = vec![
        (rate_limit_headers::REMAINING, "7".to_owned()),
        (rate_limit_headers::COST, "2".to_owned()),
    ];
    trace.credential_headers = vec![("deprecation", "@1".to_owned())];
    trace.route = Some("tx.list".into());
    trace.claims = Some(claims("free", &[], None));
    let headers = trace.answer_headers(Some(&p), "GET", &browser);
    let names: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        &names[..3],
        &[
            rate_limit_headers::REMAINING,
            rate_limit_headers::COST,
            "deprecation"
        ]
    );
    assert!(names.contains(&"access-control-allow-origin"), "{names:?}");
    let err = GatewayError::RouteNotFound;
    let line = trace.log_line(&LogEnd {
        started: UnixMillis(1_000),
        finished: UnixMillis(1_012),
        request_id: "gw-1",
        environment: "test",
        method: "GET",
        status: 404,
        error: Some(&err),
        headers: &headers,
    });
    let json: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(json["decision"], "route_not_found");
    assert_eq!(json["org"], "acme");
    assert_eq!(json["remaining"], 7);
    assert_eq!(json["cost"], 2);
    assert_eq!(json["duration_ms"], 12);
    assert!(json.get("refused_from_memory").is_none());
    trace.refused_from_memory = true;
    let from_memory = trace.log_line(&LogEnd {
        started: UnixMillis(1_000),
        finished: UnixMillis(1_001),
        request_id: "gw-2",
        environment: "test",
        method: "GET",
        status: 429,
        error: None,
        headers: &[],
    });
    assert!(
        from_memory.contains("\"refused_from_memory\":true"),
        "{from_memory}"
    );
    assert_eq!(decision(None, true), "forwarded");
    assert_eq!(decision(None, false), "answered");
    // A preflight's answer carries its own CORS headers.
    let preflight = HeaderBlock::from_pairs(&[
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "GET"),
    ]);
    assert!(
        Trace::start(&preflight)
            .answer_headers(Some(&p), "OPTIONS", &preflight)
            .is_empty()
    );
}

#[test]
fn refusals_are_remembered_only_outside_shadow_mode_on_limited_routes() {
    let p = policy();
    let now = UnixMillis(5_000);
    let free = claims("free", &[], None);
    let trial = claims("trial", &[], None);
    for (who, id, applies) in [
        (&free, "tx.list", true),
        (&free, "tx.shadow", false),
        (&free, "status", false),
        (&trial, "tx.list", false),
    ] {
        let r = route(&p, id);
        let call = limit_call(&p, who, r, now).unwrap();
        assert_eq!(refusals_apply(&p, &call, r), applies, "{id}");
    }
}
