//! What the decision modules' tests share: one policy with a route of every kind, an
//! environment for it, and callers.

use crate::config::Policy;
use crate::env::Environment;
use crate::identity::{IssuerName, OrgId, Scope, TierName, TokenIdentity, VerifiedClaims};
use crate::route::Route;

/// Issuers `local` (the admin issuer) and `users` (the legacy API keys'); tiers `free` (with
/// an upgrade URL) and `trial` (shadow mode); a route of every kind.
pub(crate) const POLICY: &str = r#"
[tiers.free]
windows = [{ limit = 10, seconds = 60 }]
upgrade_url = "https://example.com/pricing"

[tiers.trial]
windows = [{ limit = 5, seconds = 60 }]
shadow = true

[[issuers]]
name = "local"
audiences = ["https://api.example.com"]
algorithms = ["ES256"]
max_lifetime_seconds = 600

[[issuers]]
name = "users"
audiences = ["https://api.example.com"]
algorithms = ["ES256"]

[admin]
issuers = ["local"]

[api_keys]
issuer = "users"
migration_guide = "https://example.com/migrate"
deprecated_since = "2026-01-01T00:00:00Z"

[cors]
allowed_origins = ["https://app.example.com"]
allowed_methods = ["GET"]

[client_limits]
windows = [{ limit = 3, seconds = 60 }]

[[routes]]
id = "health"
method = "GET"
path = "/api/health"
auth = "public"

[[routes]]
id = "public.unlimited"
method = "GET"
path = "/api/unlimited"
auth = "public"
limited = false

[[routes]]
id = "tx.list"
method = "GET"
path = "/api/transactions"
scopes = ["transactions:read"]
cost = 2

[[routes]]
id = "tx.shadow"
method = "GET"
path = "/api/shadow"
rate_limit_shadow = true

[[routes]]
id = "status"
method = "GET"
path = "/api/status"
limited = false

[[routes]]
id = "tx.create"
method = "POST"
path = "/api/transactions"
content_types = ["application/json"]
max_body_bytes = 1000

[[routes]]
id = "mtls"
method = "GET"
path = "/api/mtls"
require_client_certificate = true

[[routes]]
id = "login"
method = "POST"
path = "/login"
auth = "public"
failure_limit = [{ limit = 5, seconds = 300 }]
"#;

/// [`POLICY`], validated.
pub(crate) fn policy() -> Policy {
    Policy::from_toml(POLICY).unwrap().0
}

/// An environment for `policy` with these extra vars (`ALLOWED_HOSTS`, `CLIENT_LIMIT_EXEMPT`).
pub(crate) fn environment(policy: &Policy, extra: &[(&str, &str)]) -> Environment {
    let issuers = r#"{"local": {"issuer": "https://id.example.com", "jwks_uri": "https://id.example.com/jwks"},
                      "users": {"issuer": "https://users.example.com", "jwks_uri": "https://users.example.com/jwks"}}"#;
    let vars = [
        ("ENVIRONMENT", "test"),
        ("ORIGIN_URL", "https://origin.example.com"),
        ("GATEWAY_ISSUERS", issuers),
    ];
    Environment::from_vars(policy, |name| {
        vars.iter()
            .chain(extra)
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap()
}

/// The route with this id.
pub(crate) fn route<'p>(policy: &'p Policy, id: &str) -> &'p Route {
    policy
        .routes
        .routes()
        .iter()
        .find(|r| r.id.0 == id)
        .unwrap()
}

/// A caller of `issuer`, org `acme`, subject `alice`, on `tier`, with these scopes and
/// certificate binding.
pub(crate) fn claims(
    issuer: &str,
    tier: &str,
    scopes: &[&str],
    cert: Option<&str>,
) -> VerifiedClaims {
    VerifiedClaims::from_checked_token(TokenIdentity {
        issuer: IssuerName::new(issuer),
        subject: "alice".into(),
        org: OrgId("acme".into()),
        tier: TierName::new(tier),
        scopes: scopes.iter().map(|s| Scope::new(*s)).collect(),
        token_id: Some("t1".into()),
        permissions: Vec::new(),
        expires_at: 2_000_000_000,
        issued_at: Some(1_000),
        cert_thumbprint: cert.map(str::to_owned),
    })
}
