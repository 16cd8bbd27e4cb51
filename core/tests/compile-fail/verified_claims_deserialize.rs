//! A caller read from JSON, with no credential behind it.

use gateway_core::identity::VerifiedClaims;

fn main() {
    let text = r#"{"issuer": "users", "subject": "admin", "org": "acme", "tier": "enterprise",
                   "scopes": ["admin:revocations"], "expires_at": 4102444800}"#;
    let _forged: Result<VerifiedClaims, _> = serde_json::from_str(text);
}
