//! The committed OpenAPI spec (`openapi.json`) describes exactly the route table in
//! `gateway.toml` and every answer the gateway generates. The committed file is read; nothing is
//! regenerated here, so a route added without its spec (or the reverse) fails this test.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeSet;

use gateway_core::config::{Policy, PolicyFile};
use gateway_core::error::ErrorCode;
use gateway_core::names::{ADMIN_REVOCATIONS_PATH, HEALTH_PATH, rate_limit_headers};
use gateway_core::route::AuthRequirement;
use serde_json::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn load() -> (Policy, PolicyFile, Value) {
    let (policy, file) = Policy::from_toml(&read("gateway.toml")).unwrap();
    (
        policy,
        file,
        serde_json::from_str(&read("openapi.json")).unwrap(),
    )
}

#[test]
fn every_route_and_only_the_routes_are_in_the_spec() {
    let (_, file, spec) = load();
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1."))
    );
    let mut in_spec = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            in_spec.insert((path.clone(), method.to_uppercase()));
        }
    }
    let mut in_table: BTreeSet<(String, String)> = file
        .routes
        .iter()
        .map(|r| (r.path.clone(), r.method.as_str().to_owned()))
        .collect();
    in_table.insert((HEALTH_PATH.to_owned(), "GET".to_owned()));
    for method in ["GET", "POST", "DELETE"] {
        in_table.insert((ADMIN_REVOCATIONS_PATH.to_owned(), method.to_owned()));
    }
    assert_eq!(
        in_spec, in_table,
        "openapi.json and gateway.toml disagree on the operations"
    );
}

#[test]
fn operations_match_their_routes() {
    let (policy, file, spec) = load();
    for spec_route in &file.routes {
        let route = policy
            .routes
            .routes()
            .iter()
            .find(|r| r.id.0 == spec_route.id)
            .unwrap();
        let at = format!("{} {}", spec_route.method.as_str(), spec_route.path);
        let op = &spec["paths"][&spec_route.path][spec_route.method.as_str().to_lowercase()];
        assert_eq!(op["operationId"], spec_route.id.as_str(), "{at}");
        let bearer = route.auth == AuthRequirement::Bearer;
        let expected_security = if bearer {
            serde_json::json!([{ "bearerAuth": route.scopes }])
        } else {
            serde_json::json!([])
        };
        assert_eq!(op["security"], expected_security, "{at}: security/scopes");
        if bearer {
            assert_eq!(op["x-gateway-cost"], route.cost, "{at}: cost");
        }
        let statuses: BTreeSet<u16> = op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.parse().unwrap())
            .collect();
        for status in [200, 400, 404, 405, 414, 421, 431, 502, 504] {
            assert!(statuses.contains(&status), "{at}: no {status} response");
        }
        // An auth route's failures are 401/403 (from the origin); every route that is limited,
        // before or after authentication, can answer 429.
        let auth_route = !route.failure_limit.is_empty();
        for status in [401, 403] {
            assert_eq!(
                statuses.contains(&status),
                bearer || auth_route,
                "{at}: {status} iff bearer or an auth route"
            );
        }
        assert_eq!(
            statuses.contains(&429),
            bearer || route.limited || auth_route,
            "{at}: 429 iff limited"
        );
        assert_eq!(
            statuses.contains(&413),
            route.method.allows_body(),
            "{at}: 413"
        );
        assert_eq!(
            statuses.contains(&415),
            !route.content_types.is_empty(),
            "{at}: 415 iff a Content-Type allowlist"
        );
        let body_types: Vec<String> = op["requestBody"]["content"]
            .as_object()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default();
        let mut expected = route.content_types.clone();
        expected.sort();
        let mut body_types = body_types;
        body_types.sort();
        assert_eq!(body_types, expected, "{at}: request body media types");
        let ok_headers = op["responses"]["200"]["headers"].as_object().unwrap();
        // Headers on success: the organisation's windows (bearer), or the client's (public
        // routes, which count every request; not auth routes, which count failures only).
        let limited = route.limited && !auth_route;
        for h in [
            rate_limit_headers::LIMIT,
            rate_limit_headers::REMAINING,
            rate_limit_headers::RESET,
            rate_limit_headers::COST,
            rate_limit_headers::POLICY,
            rate_limit_headers::STATE,
        ] {
            let listed = ok_headers.keys().any(|k| k.eq_ignore_ascii_case(h));
            assert_eq!(listed, limited, "{at}: 200 header {h}");
        }
    }
}

#[test]
fn every_error_code_and_status_is_described() {
    let (_, _, spec) = load();
    let listed: BTreeSet<&str> =
        spec["components"]["schemas"]["Problem"]["properties"]["error"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
    let codes: BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(listed, codes, "Problem.error enum");
    for code in ErrorCode::ALL {
        let response = &spec["components"]["responses"][format!("E{}", code.status())];
        assert_eq!(
            response["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem",
            "{}",
            code.as_str()
        );
    }
}
