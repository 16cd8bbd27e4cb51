//! Rate limiting end to end: real tokens, the real counter objects in workerd.

use std::sync::atomic::{AtomicU64, Ordering};

use gateway_e2e::{Stack, TokenSpec, http};

use crate::Case;
use crate::requests::assert_problem;

pub(crate) const CASES: &[Case] = &[
    (
        "limits::free_tier_admits_exactly_100_of_120",
        free_tier_admits_exactly_100_of_120,
    ),
    (
        "limits::costly_route_is_admitted_exactly_5_times",
        costly_route_is_admitted_exactly_5_times,
    ),
    (
        "limits::concurrent_clients_share_one_exact_budget",
        concurrent_clients_share_one_exact_budget,
    ),
    (
        "limits::orgs_and_issuers_do_not_share_buckets",
        orgs_and_issuers_do_not_share_buckets,
    ),
    (
        "limits::window_slides_and_retry_after_is_honest",
        window_slides_and_retry_after_is_honest,
    ),
    (
        "limits::shadow_tier_reports_but_never_refuses",
        shadow_tier_reports_but_never_refuses,
    ),
    (
        "limits::operator_override_beats_the_tier_claim",
        operator_override_beats_the_tier_claim,
    ),
    (
        "limits::failure_policies_when_the_limiter_is_down",
        failure_policies_when_the_limiter_is_down,
    ),
    ("limits::counts_survive_a_restart", counts_survive_a_restart),
    (
        "limits::log_lines_record_decisions_and_security_events",
        log_lines_record_decisions_and_security_events,
    ),
    (
        "limits::an_organisation_over_its_limit_is_refused_from_memory",
        an_organisation_over_its_limit_is_refused_from_memory,
    ),
];

/// A fresh organisation name per test (counter objects persist for the whole run).
pub(crate) fn org(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn list(stack: &Stack, token: &str) -> http::Response {
    stack.get_as("/api/transactions", token)
}

fn free_tier_admits_exactly_100_of_120(stack: &Stack) {
    let org = org("free");
    let token = stack.token(&TokenSpec {
        org: &org,
        tier: Some("free"),
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    let mut admitted = 0;
    let mut last_remaining = u64::MAX;
    for i in 0..120 {
        let resp = list(stack, &token);
        assert_eq!(resp.header("x-ratelimit-limit"), Some("100"), "request {i}");
        assert_eq!(
            resp.header("ratelimit-policy"),
            Some("\"free-60s\";q=100;w=60")
        );
        assert!(
            resp.header("ratelimit")
                .is_some_and(|v| v.starts_with("\"free-60s\";r="))
        );
        let reset: u64 = resp.header("x-ratelimit-reset").unwrap().parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            reset > now && reset <= now + 61,
            "reset {reset} is epoch seconds within the window"
        );
        match resp.status {
            200 => {
                admitted += 1;
                let remaining: u64 = resp
                    .header("x-ratelimit-remaining")
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(remaining < last_remaining);
                last_remaining = remaining;
            }
            429 => {
                let body = assert_problem(&resp, 429, "rate_limit_exceeded");
                let retry: u64 = resp.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=60).contains(&retry), "{retry}");
                assert_eq!(body["retryAfter"], retry);
                assert_eq!(
                    (body["limit"].as_u64(), body["remaining"].as_u64()),
                    (Some(100), Some(0))
                );
                assert_eq!(body["tier"], "free");
                assert_eq!(body["upgradeUrl"], "https://example.com/pricing");
                assert_eq!(resp.header("x-ratelimit-remaining"), Some("0"));
            }
            other => panic!("request {i}: {other} {}", resp.text()),
        }
    }
    assert_eq!(admitted, 100);
}

fn costly_route_is_admitted_exactly_5_times(stack: &Stack) {
    let org = org("reports");
    let token = stack.token(&TokenSpec {
        org: &org,
        tier: Some("free"),
        scopes: "reports:generate",
        ..TokenSpec::default()
    });
    let url = format!("{}/api/reports/generate", stack.gateway);
    let statuses: Vec<u16> = (0..8)
        .map(|_| {
            http::with_bearer("POST", &url, &token, Some(b"{}"))
                .unwrap()
                .status
        })
        .collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    let resp = http::with_bearer("POST", &url, &token, Some(b"{}")).unwrap();
    assert_eq!(resp.header("x-ratelimit-cost"), Some("20"));
}

fn concurrent_clients_share_one_exact_budget(stack: &Stack) {
    let org = org("burst");
    let token = stack.token(&TokenSpec {
        org: &org,
        tier: Some("free"),
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..30)
            .map(|_| {
                s.spawn(|| {
                    (0..5)
                        .map(|_| list(stack, &token).status)
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(statuses.len(), 150);
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        100,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        50,
        "{statuses:?}"
    );
}

fn orgs_and_issuers_do_not_share_buckets(stack: &Stack) {
    let name = org("shared");
    let users = stack.token(&TokenSpec {
        org: &name,
        tier: Some("free"),
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    let other_org = org("other");
    let other = stack.token(&TokenSpec {
        org: &other_org,
        tier: Some("free"),
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    // The same org string from another issuer.
    let internal = stack.internal_token(serde_json::json!({"org_id": name, "tier": "free"}));
    for _ in 0..100 {
        assert_eq!(list(stack, &users).status, 200);
    }
    assert_eq!(list(stack, &users).status, 429);
    assert_eq!(
        list(stack, &other).status,
        200,
        "another org has its own budget"
    );
    assert_eq!(
        list(stack, &internal).status,
        200,
        "the same org name from another issuer has its own budget"
    );
    assert_eq!(
        list(stack, &internal).header("x-ratelimit-remaining"),
        Some("98")
    );
}

/// The sandbox tier (5 units per 2 s) shows the window sliding and Retry-After in real time.
fn window_slides_and_retry_after_is_honest(stack: &Stack) {
    let org = org("sandbox");
    let token = stack.token(&TokenSpec {
        org: &org,
        tier: Some("sandbox"),
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    let started = std::time::Instant::now();
    for _ in 0..5 {
        assert_eq!(list(stack, &token).status, 200);
    }
    let limited = list(stack, &token);
    assert_eq!(limited.status, 429);
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Retrying after Retry-After works; before the window slid, it did not.
    std::thread::sleep(std::time::Duration::from_secs(retry));
    let resp = list(stack, &token);
    assert_eq!(
        resp.status,
        200,
        "after Retry-After ({retry} s, {} ms since the burst)",
        started.elapsed().as_millis()
    );
}

fn shadow_tier_reports_but_never_refuses(stack: &Stack) {
    let org = org("preview");
    let token = stack.token(&TokenSpec {
        org: &org,
        tier: Some("preview"),
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    let mut would_limit = 0;
    for _ in 0..110 {
        let resp = list(stack, &token);
        assert_eq!(resp.status, 200, "shadow mode never refuses");
        assert_eq!(resp.header("x-ratelimit-limit"), Some("100"));
        if resp.header("x-ratelimit-shadow") == Some("would-limit") {
            would_limit += 1;
            assert_eq!(resp.header("x-ratelimit-remaining"), Some("0"));
        }
    }
    assert_eq!(would_limit, 10);
}

fn operator_override_beats_the_tier_claim(stack: &Stack) {
    // `globex` is overridden to enterprise in gateway.toml, whatever its token says.
    let token = stack.token(&TokenSpec {
        org: "globex",
        tier: Some("free"),
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    let resp = list(stack, &token);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-ratelimit-limit"), Some("10000"));
    let headers = crate::forwarding::echoed_headers(&resp.json());
    assert!(
        headers.contains(&("x-gateway-tier".to_owned(), "enterprise".to_owned())),
        "{headers:?}"
    );
}

/// Faults come from configuration only: in the `test-limiter-down` environment the counter
/// binding points at a Worker that is not running. Without the counter object's answer there is
/// no revocation check, so every authenticated route answers 503 with Retry-After (a revoked
/// token is never served while the object is unreachable); nothing is a 500.
fn failure_policies_when_the_limiter_is_down(_shared: &Stack) {
    let stack = Stack::start_in("limiter-down", "test-limiter-down").expect("fault stack");
    let token = stack.token(&TokenSpec {
        scopes: "transactions:read transactions:write",
        ..TokenSpec::default()
    });
    let read = list(&stack, &token);
    assert_problem(&read, 503, "limiter_unavailable");
    assert!(read.header("retry-after").is_some());
    assert!(read.header("x-ratelimit-status").is_none());
    let closed = http::with_bearer(
        "POST",
        &format!("{}/api/transactions", stack.gateway),
        &token,
        Some(b"{}"),
    )
    .unwrap();
    assert_problem(&closed, 503, "limiter_unavailable");
    assert!(closed.header("retry-after").is_some());
    assert!(
        !closed.text().contains("not-running"),
        "no internal detail in the answer"
    );
}

/// Counts live in the counter objects' storage: a restarted runtime (new isolates, same
/// persisted state) still knows what each organisation spent, whether it was stopped or killed.
/// A SIGKILL of workerd right after the last answer forgets no admission (each was written, or
/// covered by a reservation written, before it was answered: `core::counter`): a free
/// organisation that spent its 100 units is refused all of the next 30 requests, and one that
/// spent 50 gets between 48 and 50 more (a restart charges at most its reservation, max(1, 2%
/// of 100) units).
fn counts_survive_a_restart(_shared: &Stack) {
    let mut stack = Stack::start("restart").expect("restart stack");
    let list = |stack: &Stack, org: &str| {
        let token = stack.token(&TokenSpec {
            org,
            tier: Some("free"),
            scopes: "transactions:read",
            ..TokenSpec::default()
        });
        move |stack: &Stack| {
            let url = format!("{}/api/transactions", stack.gateway);
            http::with_bearer("GET", &url, &token, None).unwrap()
        }
    };
    let spent = org("crash-spent");
    let half = org("crash-half");
    let spent_call = list(&stack, &spent);
    let half_call = list(&stack, &half);
    for i in 0..100 {
        let resp = spent_call(&stack);
        assert_eq!(resp.status, 200, "{i}: {}", resp.text());
    }
    for i in 0..50 {
        let resp = half_call(&stack);
        assert_eq!(resp.status, 200, "{i}: {}", resp.text());
    }
    stack.crash_gateway().expect("restart after SIGKILL");
    let admitted = (0..30).filter(|_| spent_call(&stack).status == 200).count();
    assert_eq!(
        admitted, 0,
        "admitted after the crash, within the same minute"
    );
    assert_problem(&spent_call(&stack), 429, "rate_limit_exceeded");
    let mut more = 0;
    while half_call(&stack).status == 200 {
        more += 1;
        assert!(more <= 50, "more than the budget left");
    }
    assert!(
        (48..=50).contains(&more),
        "{more} admitted after the crash for 50 left: at most 2 units of false denials"
    );

    // A stop that lets the runtime shut down loses nothing either.
    let stopped = org("restart-stopped");
    let call = list(&stack, &stopped);
    for _ in 0..40 {
        assert_eq!(call(&stack).status, 200);
    }
    stack.restart_gateway().expect("restart");
    let mut more = 0;
    while call(&stack).status == 200 {
        more += 1;
        assert!(more <= 60);
    }
    assert!(
        (58..=60).contains(&more),
        "{more} admitted after a restart for 60 left"
    );
}

/// The one log line per request carries the decision and is marked as a security event on
/// 401/403/429 (the SOC 2 evidence), with cost and remaining on limited routes.
fn log_lines_record_decisions_and_security_events(stack: &Stack) {
    let org = org("logs");
    let token = stack.token(&TokenSpec {
        org: &org,
        tier: Some("sandbox"),
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    let ids: Vec<(u16, String)> = (0..7)
        .map(|_| {
            let resp = list(stack, &token);
            (resp.status, resp.header("x-request-id").unwrap().to_owned())
        })
        .collect();
    let line_for = |id: &str| stack.log_line(id);
    let (status, id) = &ids[0];
    assert_eq!(*status, 200);
    let ok = line_for(id);
    assert_eq!(
        (ok["decision"].as_str(), ok["security_event"].as_bool()),
        (Some("forwarded"), Some(false))
    );
    assert_eq!(
        (
            ok["tier"].as_str(),
            ok["cost"].as_u64(),
            ok["remaining"].as_u64()
        ),
        (Some("sandbox"), Some(1), Some(4))
    );
    assert_eq!(ok["org"].as_str(), Some(org.as_str()));
    let (status, id) = ids.iter().find(|(s, _)| *s == 429).expect("a 429");
    assert_eq!(*status, 429);
    let limited = line_for(id);
    assert_eq!(limited["decision"], "rate_limit_exceeded");
    assert_eq!(limited["security_event"], true);
    assert_eq!(limited["remaining"], 0);
    assert!(limited.get("authorization").is_none());
}

/// Once its counter object refused an organisation, the isolate refuses it again with no call
/// until the refusal ends (`gateway_core::refusals`), with the same answer, and admits it after.
fn an_organisation_over_its_limit_is_refused_from_memory(stack: &Stack) {
    let org = org("memory");
    let token = stack.token(&TokenSpec {
        org: &org,
        tier: Some("sandbox"),
        scopes: "transactions:read",
        ..TokenSpec::default()
    });
    // The sandbox tier: 5 per 2 s.
    for i in 0..5 {
        assert_eq!(list(stack, &token).status, 200, "request {i}");
    }
    let first = list(stack, &token);
    assert_problem(&first, 429, "rate_limit_exceeded");
    let first_line = stack.log_line(first.header("x-request-id").unwrap());
    assert!(
        first_line.get("refused_from_memory").is_none(),
        "{first_line}"
    );
    let first_retry: u64 = first.header("retry-after").unwrap().parse().unwrap();
    let again = list(stack, &token);
    let body = assert_problem(&again, 429, "rate_limit_exceeded");
    let retry: u64 = again.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=first_retry).contains(&retry),
        "{retry} after {first_retry}"
    );
    assert_eq!(body["tier"], "sandbox");
    assert_eq!(again.header("x-ratelimit-remaining"), Some("0"));
    let line = stack.log_line(again.header("x-request-id").unwrap());
    assert_eq!(line["refused_from_memory"], true, "{line}");
    assert_eq!(line["decision"], "rate_limit_exceeded");
    // Nothing was counted: once the window slid, the organisation is admitted again.
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    assert_eq!(list(stack, &token).status, 200);
}
