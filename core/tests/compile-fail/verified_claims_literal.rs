//! A caller written down by hand, with no credential behind it.

use gateway_core::identity::{IssuerName, OrgId, Scope, TierName, VerifiedClaims};

fn main() {
    let _forged = VerifiedClaims {
        issuer: IssuerName::new("users"),
        subject: "admin".to_owned(),
        org: OrgId("acme".to_owned()),
        tier: TierName::new("enterprise"),
        scopes: vec![Scope::new("admin:revocations")],
        token_id: None,
        permissions: vec!["*".to_owned()],
        expires_at: u64::MAX,
        issued_at: None,
        api_key: None,
        cert_thumbprint: None,
    };
}
