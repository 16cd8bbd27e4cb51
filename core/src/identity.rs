//! The verified caller and what follows from it: the rate-limit key and the scope check; and
//! why a credential was refused ([`TokenRejection`], [`ScopeRejection`]).
//!
//! A [`VerifiedClaims`] exists only once a credential was checked: its fields are private, it
//! has no public constructor and does not implement `Deserialize`. Inside this crate two paths
//! build one: `auth::validate_claims`, from a token whose signature a verifier accepted
//! (`auth::SignatureChecked`), and `api_key::ApiKeySet::authenticate`, from a legacy API key
//! whose hash matched a listed one. Everything outside the crate reads it through accessors.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::issuer::Algorithm;
use crate::jwk::KeyMiss;
use crate::route::Route;

/// A name-like value: a transparent wrapper over a `String`, shown and serialised as its text.
macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps the text.
            pub fn new(text: impl Into<String>) -> $name {
                $name(text.into())
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
    };
}

name_type!(
    /// An issuer's configured name (`[[issuers]] name`, `[a-z0-9_-]`), never its URL.
    IssuerName
);
name_type!(
    /// A tier's name (`[tiers.<name>]`): in [`VerifiedClaims`], always a configured tier.
    TierName
);
name_type!(
    /// One granted scope (`transactions:read`, or a `<resource>:*` wildcard).
    Scope
);

/// An organisation id, from the issuer's org claim (default `org_id`) or, failing that, `sub`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrgId(pub String);

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the gateway knows about the caller after its credential was checked: a token whose
/// signature a verifier accepted and whose claims passed the issuer's rules, or a listed API
/// key. Built only inside this crate (see the module documentation); read through accessors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedClaims {
    issuer: IssuerName,
    subject: String,
    org: OrgId,
    tier: TierName,
    scopes: Vec<Scope>,
    token_id: Option<String>,
    permissions: Vec<String>,
    expires_at: u64,
    issued_at: Option<u64>,
    api_key: Option<String>,
    cert_thumbprint: Option<String>,
}

/// What claim validation read from a token whose signature was checked: the one input of
/// [`VerifiedClaims::from_checked_token`].
pub(crate) struct TokenIdentity {
    pub(crate) issuer: IssuerName,
    pub(crate) subject: String,
    pub(crate) org: OrgId,
    pub(crate) tier: TierName,
    pub(crate) scopes: Vec<Scope>,
    pub(crate) token_id: Option<String>,
    pub(crate) permissions: Vec<String>,
    pub(crate) expires_at: u64,
    pub(crate) issued_at: Option<u64>,
    pub(crate) cert_thumbprint: Option<String>,
}

/// What a listed API key stands for: the one input of [`VerifiedClaims::from_api_key`].
pub(crate) struct KeyIdentity {
    pub(crate) issuer: IssuerName,
    pub(crate) subject: String,
    pub(crate) key_id: String,
    pub(crate) org: OrgId,
    pub(crate) tier: TierName,
    pub(crate) scopes: Vec<Scope>,
    pub(crate) sunset: u64,
}

impl VerifiedClaims {
    /// The caller of a token: called by `auth::validate_claims` only, on a token whose signature
    /// a verifier accepted and whose claims it validated.
    pub(crate) fn from_checked_token(token: TokenIdentity) -> VerifiedClaims {
        VerifiedClaims {
            issuer: token.issuer,
            subject: token.subject,
            org: token.org,
            tier: token.tier,
            scopes: token.scopes,
            token_id: token.token_id,
            permissions: token.permissions,
            expires_at: token.expires_at,
            issued_at: token.issued_at,
            api_key: None,
            cert_thumbprint: token.cert_thumbprint,
        }
    }

    /// The caller of a legacy API key: called by `api_key::ApiKeySet::authenticate` only, once
    /// the presented key's hash matched a listed one and the key is before its sunset. It
    /// expires at the key's sunset.
    pub(crate) fn from_api_key(key: KeyIdentity) -> VerifiedClaims {
        VerifiedClaims {
            issuer: key.issuer,
            subject: key.subject,
            org: key.org,
            tier: key.tier,
            scopes: key.scopes,
            token_id: None,
            permissions: Vec::new(),
            expires_at: key.sunset,
            issued_at: None,
            api_key: Some(key.key_id),
            cert_thumbprint: None,
        }
    }

    /// The issuer's configured name (not its URL).
    pub fn issuer(&self) -> &IssuerName {
        &self.issuer
    }

    /// The token's `sub` (`api-key:<id>` for an API key).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The organisation.
    pub fn org(&self) -> &OrgId {
        &self.org
    }

    /// The tier the organisation is limited at (after overrides and the fallback to `free`).
    pub fn tier(&self) -> &TierName {
        &self.tier
    }

    /// Granted scopes.
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// The token's `jti`, if any.
    pub fn token_id(&self) -> Option<&str> {
        self.token_id.as_deref()
    }

    /// Permissions from the issuer's `permissions_claim` (empty when it has none).
    pub fn permissions(&self) -> &[String] {
        &self.permissions
    }

    /// The token's `exp` (an API key's sunset), seconds since the epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The token's `iat` (revocations cover tokens issued up to their time); none for an API key.
    pub fn issued_at(&self) -> Option<u64> {
        self.issued_at
    }

    /// The legacy API key's id, when the caller used one (migration mode).
    pub fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    /// The certificate the token is bound to (`cnf.x5t#S256`, RFC 8705), if any.
    pub fn cert_thumbprint(&self) -> Option<&str> {
        self.cert_thumbprint.as_deref()
    }

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
            self.scopes
                .iter()
                .any(|g| scope_grants(g.as_str(), required))
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
                granted: self.scopes.iter().map(|s| s.0.clone()).collect(),
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

/// Why a bearer token was refused. Each reason maps to a stable error code (`invalid_token`, or
/// `token_expired` for [`TokenRejection::Expired`]) and a fixed client-facing description
/// (`error::GatewayError::TokenRejected`); nothing in a rejection echoes the token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenRejection {
    /// The token is longer than `auth::MAX_TOKEN_BYTES`.
    TooLarge,
    /// Not a compact JWS: segments, base64url or header JSON.
    Malformed,
    /// The claims are not a JSON object, or a registered claim (`exp`, `nbf`, `iat`) has the
    /// wrong type.
    MalformedClaims,
    /// `alg: none`, in any case.
    Unsigned,
    /// The header's `alg` is not one the issuer is pinned to.
    AlgorithmMismatch {
        /// The issuer's algorithms.
        expected: Vec<Algorithm>,
        /// The header's algorithm, when it is one the gateway knows.
        actual: Option<Algorithm>,
    },
    /// The header has `crit` (the gateway understands no extension).
    CriticalHeader,
    /// The issuer requires a `typ` (`at+jwt`) the header does not carry.
    NotAnAccessToken,
    /// The `iss` names no configured issuer.
    WrongIssuer,
    /// No key of the issuer's JWKS has the token's `kid` (for its algorithm).
    UnknownKey,
    /// No `kid`, and not exactly one of the issuer's keys fits the algorithm.
    AmbiguousKey,
    /// The verifier did not accept the signature.
    BadSignature,
    /// `exp` is past, beyond the issuer's leeway.
    Expired {
        /// Seconds past `exp` + leeway.
        by_secs: u64,
    },
    /// `nbf` is ahead, beyond the leeway.
    NotYetValid,
    /// `iat` is ahead, beyond the leeway.
    IssuedInFuture,
    /// `exp - iat` exceeds the issuer's `max_lifetime_seconds`.
    LifetimeTooLong,
    /// No `aud` value is one of the issuer's audiences.
    WrongAudience,
    /// A claim the gateway requires is absent.
    MissingClaim {
        /// Which one.
        name: RequiredClaim,
    },
    /// A claim that shapes the caller has the wrong type or form.
    MalformedClaim {
        /// Which one.
        name: IdentityClaim,
    },
    /// The organisation claim is in the `sub:` namespace, reserved for organisations made from
    /// a subject (`org_from_subject`).
    ReservedOrganisation,
}

/// A claim every token must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequiredClaim {
    /// `iss`.
    Issuer,
    /// `sub` (non-empty).
    Subject,
    /// `exp`.
    Expiry,
    /// `iat`.
    IssuedAt,
    /// The issuer's `org_claim` (unless `org_from_subject`).
    Organisation,
}

/// A claim the caller is made from, whose form is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentityClaim {
    /// The issuer's `org_claim`: a non-empty string.
    Organisation,
    /// `scope` (a space-separated string) or `scp` (an array of strings).
    Scopes,
    /// The issuer's `permissions_claim`: an array of strings.
    Permissions,
    /// `cnf`: an object whose only member is `x5t#S256`, a base64url SHA-256.
    Confirmation,
}

impl From<KeyMiss> for TokenRejection {
    fn from(miss: KeyMiss) -> TokenRejection {
        match miss {
            KeyMiss::UnknownKid => TokenRejection::UnknownKey,
            KeyMiss::Ambiguous => TokenRejection::AmbiguousKey,
        }
    }
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
    pub issuer: IssuerName,
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
            issuer: IssuerName::new(issuer),
            subject: "client-1".into(),
            org: OrgId(org.into()),
            tier: TierName::new("pro"),
            scopes: scopes.iter().map(|s| Scope::new(*s)).collect(),
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
