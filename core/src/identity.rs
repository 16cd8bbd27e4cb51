//! The verified caller and what follows from it: the rate-limit key and the scope check.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::route::Route;

/// An organisation id, from the issuer's org claim (default `org_id`) or, failing that, `sub`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrgId(pub String);

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the gateway knows about the caller after the token was verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedClaims {
    /// The issuer's configured name (not its URL).
    pub issuer: String,
    /// The token's `sub`.
    pub subject: String,
    /// The organisation.
    pub org: OrgId,
    /// The tier the organisation is limited at (after the fallback to `free`).
    pub tier: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The token's `jti`, if any.
    pub token_id: Option<String>,
    /// Permissions from the issuer's `permissions_claim` (empty when it has none).
    #[serde(default)]
    pub permissions: Vec<String>,
    /// The token's `exp`, seconds since the epoch.
    pub expires_at: u64,
    /// The token's `iat`, if any (revocations cover tokens issued up to their time).
    #[serde(default)]
    pub issued_at: Option<u64>,
    /// Set when the caller used a legacy API key (migration mode): the key's id.
    #[serde(default)]
    pub api_key: Option<String>,
    /// The certificate the token is bound to (`cnf.x5t#S256`, RFC 8705), if any.
    #[serde(default)]
    pub cert_thumbprint: Option<String>,
}

impl VerifiedClaims {
    /// What revocation needs to know about the token.
    pub fn caller(&self) -> crate::revocation::Caller {
        crate::revocation::Caller {
            sub: self.subject.clone(),
            jti: self.token_id.clone(),
            iat: self.issued_at,
        }
    }

    /// The rate-limit key: (issuer, organisation), never the bare org string.
    pub fn rate_limit_key(&self) -> RateLimitKey {
        RateLimitKey {
            issuer: self.issuer.clone(),
            org: self.org.clone(),
        }
    }

    /// The authorisation stage: every scope the route requires must be granted, exactly or by
    /// a `resource:*` wildcard (see [`scope_grants`]).
    pub fn authorise(&self, route: &Route) -> Result<(), ScopeRejection> {
        let held = |required: &String| {
            self.scopes.iter().any(|g| scope_grants(g, required))
                || self
                    .permissions
                    .iter()
                    .any(|p| p == "*" || scope_grants(p, required))
        };
        if route.scopes.iter().all(held) {
            Ok(())
        } else {
            Err(ScopeRejection {
                required: route.scopes.clone(),
                granted: self.scopes.clone(),
            })
        }
    }
}

/// A token without every scope a route requires (403 `insufficient_scope`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeRejection {
    /// The route's scopes.
    pub required: Vec<String>,
    /// The token's scopes.
    pub granted: Vec<String>,
}

/// Whether a granted scope covers a required one: equal, or `<resource>:*` covering every
/// `<resource>:<anything>`. A bare `*` grants nothing (no token should hold everything), and the
/// wildcard never crosses resources (`transactions:*` does not grant `transactionsx:read`).
pub fn scope_grants(granted: &str, required: &str) -> bool {
    if granted == required {
        return true;
    }
    match granted.strip_suffix('*') {
        Some(prefix) if prefix.len() > 1 && prefix.ends_with(':') => {
            required.len() > prefix.len() && required.starts_with(prefix)
        }
        _ => false,
    }
}

/// The key one counter object is addressed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateLimitKey {
    /// Issuer name: `[a-z0-9_-]`, so it never contains `:`.
    pub issuer: String,
    /// Organisation id: any string.
    pub org: OrgId,
}

impl RateLimitKey {
    /// The Durable Object name: `rl1:<issuer name>:<org id>`. The issuer name cannot contain `:`,
    /// so the first two colons split it unambiguously and two issuers never share an object.
    /// `rl1` versions the scheme: changing it starts every organisation on fresh counters.
    pub fn object_name(&self) -> String {
        format!("rl1:{}:{}", self.issuer, self.org.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::Method;
    use crate::route::{AuthRequirement, PathPattern, RouteId};

    fn claims(issuer: &str, org: &str, scopes: &[&str]) -> VerifiedClaims {
        VerifiedClaims {
            issuer: issuer.into(),
            subject: "client-1".into(),
            org: OrgId(org.into()),
            tier: "pro".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            token_id: None,
            permissions: vec![],
            expires_at: 0,
            issued_at: None,
            api_key: None,
            cert_thumbprint: None,
        }
    }

    fn route(scopes: &[&str]) -> Route {
        Route {
            id: RouteId("r".into()),
            method: Method::Get,
            pattern: PathPattern::parse("/r").unwrap(),
            auth: AuthRequirement::Bearer,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            cost: 1,
            max_body_bytes: 0,
            rate_limit_shadow: false,
            limited: true,
            content_types: Vec::new(),
            failure_limit: Vec::new(),
            require_client_certificate: false,
        }
    }

    #[test]
    fn two_issuers_never_share_a_bucket() {
        let a = claims("partners", "acme", &[])
            .rate_limit_key()
            .object_name();
        let b = claims("internal", "acme", &[])
            .rate_limit_key()
            .object_name();
        assert_ne!(a, b);
        // An org id containing ':' cannot impersonate another issuer's key.
        let tricky = claims("a", "b:c", &[]).rate_limit_key().object_name();
        let other = claims("a-b", "c", &[]).rate_limit_key().object_name();
        assert_ne!(tricky, other);
        assert_eq!(a, "rl1:partners:acme");
    }

    #[test]
    fn scopes_must_all_be_granted() {
        let c = claims("i", "o", &["transactions:read", "reports:generate"]);
        assert_eq!(c.authorise(&route(&[])), Ok(()));
        assert_eq!(c.authorise(&route(&["transactions:read"])), Ok(()));
        assert_eq!(
            c.authorise(&route(&["transactions:read", "reports:generate"])),
            Ok(())
        );
        assert_eq!(
            c.authorise(&route(&["transactions:read", "transactions:write"])),
            Err(ScopeRejection {
                required: vec!["transactions:read".into(), "transactions:write".into()],
                granted: vec!["transactions:read".into(), "reports:generate".into()],
            })
        );
        // Prefixes and case variants are not the same scope.
        assert!(
            claims("i", "o", &["transactions"])
                .authorise(&route(&["transactions:read"]))
                .is_err()
        );
        assert!(
            claims("i", "o", &["Transactions:Read"])
                .authorise(&route(&["transactions:read"]))
                .is_err()
        );
    }

    #[test]
    fn permissions_grant_like_scopes_and_star_grants_all() {
        let mut c = claims("i", "o", &[]);
        c.permissions = vec!["reports:*".into()];
        assert_eq!(c.authorise(&route(&["reports:generate"])), Ok(()));
        assert!(c.authorise(&route(&["transactions:read"])).is_err());
        c.permissions = vec!["*".into()];
        assert_eq!(
            c.authorise(&route(&["transactions:read", "reports:generate"])),
            Ok(())
        );
        // A scope of `*` is not a permission of `*`: scopes never grant everything.
        assert!(
            claims("i", "o", &["*"])
                .authorise(&route(&["transactions:read"]))
                .is_err()
        );
    }

    #[test]
    fn resource_wildcards() {
        for (granted, required, expected) in [
            ("transactions:*", "transactions:read", true),
            ("transactions:*", "transactions:export", true),
            ("transactions:*", "transactions:read:all", true),
            ("transactions:*", "transactions:", false),
            ("transactions:*", "transactionsx:read", false),
            ("transactions:*", "reports:generate", false),
            ("*", "transactions:read", false),
            (":*", "x:read", false),
            ("transactions*", "transactions:read", false),
            ("transactions:read", "transactions:*", false),
            ("reports:generate", "reports:generate", true),
        ] {
            assert_eq!(
                scope_grants(granted, required),
                expected,
                "{granted} grants {required}"
            );
        }
        let c = claims("i", "o", &["transactions:*"]);
        assert_eq!(
            c.authorise(&route(&["transactions:read", "transactions:export"])),
            Ok(())
        );
        assert!(
            c.authorise(&route(&["transactions:read", "reports:generate"]))
                .is_err()
        );
    }
}
