//! The admin API (`/_gateway/admin/revocations`), decided: which requests it takes, who may
//! call it, the command each request is for the organisation's counter object, and the answer
//! to each reply. `src/admin.rs` authenticates the caller, reads the body and makes the call.
//!
//! - `GET ?issuer=<name>&org=<org>`: the organisation's live revocations;
//! - `POST` `{"issuer","org"[,"sub"|"jti"][,"reason"][,"ttl_seconds"]}`: revoke (201, the entry);
//! - `DELETE` with the same body: lift a revocation (200, `{"removed": bool}`).
//!
//! Only tokens of an issuer listed in `[admin].issuers`, holding `[admin].scope` exactly, get
//! in; any other valid token gets 403.

use serde_json::{Value, json};

use crate::config::{AdminPolicy, Policy};
use crate::error::GatewayError;
use crate::identity::{IssuerName, OrgId, RateLimitKey, VerifiedClaims};
use crate::method::Method;
use crate::names::ADMIN_REVOCATIONS_PATH;
use crate::revocation::{
    AdminRevocation, MAX_ENTRIES, Revocation, RevocationCommand, RevocationReply,
};
use crate::time::UnixMillis;

/// Largest admin request body.
pub const MAX_BODY: u64 = 4096;

/// What an admin request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction {
    /// `GET`: list.
    List,
    /// `POST`: revoke.
    Add,
    /// `DELETE`: lift.
    Remove,
}

impl AdminAction {
    /// Whether the target comes in a JSON body (else in the query).
    pub fn has_body(self) -> bool {
        self != AdminAction::List
    }
}

/// The request's action: 404 for any path but the revocations endpoint, 405 for any other
/// method.
pub fn action(method: &str, path: &str) -> Result<AdminAction, GatewayError> {
    if path != ADMIN_REVOCATIONS_PATH {
        return Err(GatewayError::RouteNotFound);
    }
    match method {
        "GET" => Ok(AdminAction::List),
        "POST" => Ok(AdminAction::Add),
        "DELETE" => Ok(AdminAction::Remove),
        _ => Err(GatewayError::MethodNotAllowed {
            allowed: vec![Method::Get, Method::Post, Method::Delete],
        }),
    }
}

/// Whether the verified caller may use the admin API: a token of an admin issuer (403
/// `admin_issuer_refused`) holding the admin scope exactly (403 `insufficient_scope`).
/// Returns who acts, for the audit trail (`<issuer>/<sub>`).
pub fn admit_caller(admin: &AdminPolicy, claims: &VerifiedClaims) -> Result<String, GatewayError> {
    if !admin.issuers.iter().any(|i| claims.issuer() == i) {
        return Err(GatewayError::AdminIssuerRefused);
    }
    if !claims.scopes().iter().any(|s| s == &admin.scope) {
        return Err(GatewayError::InsufficientScope {
            required: vec![admin.scope.clone()],
            granted: claims
                .scopes()
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
        });
    }
    Ok(format!("{}/{}", claims.issuer(), claims.subject()))
}

/// The target of a `GET`, from its query's `issuer` and `org` (already decoded).
pub fn query_target(pairs: impl IntoIterator<Item = (String, String)>) -> AdminRevocation {
    let pairs: Vec<(String, String)> = pairs.into_iter().collect();
    let find = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    AdminRevocation {
        issuer: find("issuer"),
        org: find("org"),
        sub: None,
        jti: None,
        reason: None,
        ttl_seconds: None,
    }
}

/// The target of a `POST` or `DELETE`, from its JSON body (400 naming the line and column of a
/// malformed or mis-shaped body; never echoing it).
pub fn body_target(bytes: &[u8]) -> Result<AdminRevocation, GatewayError> {
    serde_json::from_slice(bytes).map_err(|e| {
        GatewayError::InvalidAdminRequest(format!(
            "the body is not a revocation ({}, line {} column {})",
            match e.classify() {
                serde_json::error::Category::Data => "unexpected or missing field",
                _ => "malformed JSON",
            },
            e.line(),
            e.column()
        ))
    })
}

/// One call to the target organisation's counter object.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminCall {
    /// The object's name (`rl1:<issuer>:<org>`).
    pub object: String,
    /// The command.
    pub command: RevocationCommand,
    /// The issuer's name (as the policy spells it).
    pub issuer: String,
}

/// The command for `target` (400 for a malformed target or an unknown issuer). A new entry
/// lives as long as any token it covers could (`legacy_keys_until`: the latest sunset of the
/// legacy API keys it covers, if any).
pub fn call(
    action: AdminAction,
    target: &AdminRevocation,
    policy: &Policy,
    by: &str,
    legacy_keys_until: Option<u64>,
    now: UnixMillis,
) -> Result<AdminCall, GatewayError> {
    let scope = target.scope().map_err(GatewayError::InvalidAdminRequest)?;
    let issuer = policy.issuer(&target.issuer).ok_or_else(|| {
        GatewayError::InvalidAdminRequest(format!("no issuer named '{}'", target.issuer))
    })?;
    let now_secs = now.as_secs();
    let command = match action {
        AdminAction::List => RevocationCommand::List { now_secs },
        AdminAction::Add => RevocationCommand::Add {
            entry: target.entry(scope, issuer, now_secs, by.to_owned(), legacy_keys_until),
            now_secs,
        },
        AdminAction::Remove => RevocationCommand::Remove { scope, now_secs },
    };
    Ok(AdminCall {
        object: RateLimitKey {
            issuer: IssuerName::new(issuer.name.clone()),
            org: OrgId(target.org.clone()),
        }
        .object_name(),
        command,
        issuer: issuer.name.clone(),
    })
}

/// Whether `target` needs the legacy API keys' latest sunset: an organisation or subject
/// revocation of the keys' issuer (keys carry no `iat` and live until their sunset).
pub fn covers_legacy_keys(policy: &Policy, target: &AdminRevocation) -> bool {
    policy
        .api_keys
        .as_ref()
        .is_some_and(|keys| keys.issuer == target.issuer && target.jti.is_none())
}

/// The answer to the object's reply: status and JSON body, and the entry added (to evict
/// from the isolate's token cache and log), if any. 400 when the organisation's list is full.
pub fn answer(
    call: &AdminCall,
    target: &AdminRevocation,
    reply: RevocationReply,
) -> Result<(u16, Value, Option<Revocation>), GatewayError> {
    match &call.command {
        RevocationCommand::Add { entry, .. } => {
            if reply.full {
                return Err(GatewayError::InvalidAdminRequest(format!(
                    "the organisation already holds {MAX_ENTRIES} revocations"
                )));
            }
            Ok((
                201,
                json!({"issuer": call.issuer, "org": target.org, "revocation": entry}),
                Some(entry.clone()),
            ))
        }
        RevocationCommand::Remove { .. } => Ok((
            200,
            json!({"removed": reply.removed, "revocations": reply.entries}),
            None,
        )),
        RevocationCommand::List { .. } => Ok((
            200,
            json!({"issuer": call.issuer, "org": target.org, "revocations": reply.entries}),
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::RevocationKind;

    use crate::testing::policy;

    fn caller(issuer: &str, scopes: &[&str]) -> VerifiedClaims {
        crate::testing::claims(issuer, "free", scopes, None)
    }

    fn target(body: &str) -> AdminRevocation {
        body_target(body.as_bytes()).unwrap()
    }

    #[test]
    fn actions_by_path_and_method() {
        let p = ADMIN_REVOCATIONS_PATH;
        assert_eq!(action("GET", p), Ok(AdminAction::List));
        assert_eq!(action("POST", p), Ok(AdminAction::Add));
        assert_eq!(action("DELETE", p), Ok(AdminAction::Remove));
        assert!(matches!(
            action("PUT", p),
            Err(GatewayError::MethodNotAllowed { .. })
        ));
        assert_eq!(
            action("GET", "/_gateway/admin/other"),
            Err(GatewayError::RouteNotFound)
        );
        assert!(!AdminAction::List.has_body());
        assert!(AdminAction::Add.has_body());
    }

    #[test]
    fn only_admin_issuers_with_the_exact_scope_get_in() {
        let admin = policy().admin.unwrap();
        assert_eq!(
            admit_caller(&admin, &caller("local", &["gateway:admin"])),
            Ok("local/alice".into())
        );
        assert_eq!(
            admit_caller(&admin, &caller("users", &["gateway:admin"])),
            Err(GatewayError::AdminIssuerRefused)
        );
        for scopes in [&[][..], &["gateway:*"], &["gateway:admin:x"]] {
            assert!(
                matches!(
                    admit_caller(&admin, &caller("local", scopes)),
                    Err(GatewayError::InsufficientScope { .. })
                ),
                "{scopes:?}"
            );
        }
    }

    #[test]
    fn targets_from_the_query_or_the_body() {
        let t = query_target([
            ("org".to_owned(), "acme".to_owned()),
            ("issuer".to_owned(), "users".to_owned()),
        ]);
        assert_eq!((t.issuer.as_str(), t.org.as_str()), ("users", "acme"));
        assert_eq!(
            target(r#"{"issuer":"users","org":"acme","sub":"bob"}"#)
                .sub
                .as_deref(),
            Some("bob")
        );
        for bad in [
            r#"{"issuer":"users""#,
            r#"{"issuer":"users","org":"acme","extra":1}"#,
            "[]",
        ] {
            let e = body_target(bad.as_bytes()).unwrap_err();
            assert!(
                matches!(&e, GatewayError::InvalidAdminRequest(d) if d.contains("line 1")),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn commands_for_each_action() {
        let p = policy();
        let now = UnixMillis(1_000_000);
        let org = target(r#"{"issuer":"local","org":"acme"}"#);
        let add = call(AdminAction::Add, &org, &p, "local/alice", None, now).unwrap();
        assert_eq!(add.object, "rl1:local:acme");
        let RevocationCommand::Add { entry, now_secs } = &add.command else {
            panic!("{add:?}")
        };
        assert_eq!(*now_secs, 1_000);
        assert_eq!(entry.by, "local/alice");
        // It outlives every token it covers: lifetime plus leeway past now.
        assert!(entry.expires_at > 1_000 + 600);
        let list = call(AdminAction::List, &org, &p, "x", None, now).unwrap();
        assert!(matches!(
            list.command,
            RevocationCommand::List { now_secs: 1_000 }
        ));
        assert!(matches!(
            call(AdminAction::Remove, &org, &p, "x", None, now)
                .unwrap()
                .command,
            RevocationCommand::Remove { .. }
        ));
        let unknown = target(r#"{"issuer":"nobody","org":"acme"}"#);
        assert!(matches!(
            call(AdminAction::Add, &unknown, &p, "x", None, now),
            Err(GatewayError::InvalidAdminRequest(_))
        ));
        let empty = target(r#"{"issuer":"local","org":""}"#);
        assert!(matches!(
            call(AdminAction::Add, &empty, &p, "x", None, now),
            Err(GatewayError::InvalidAdminRequest(_))
        ));
        // Legacy keys live until their sunset: org and subject revocations of their issuer wait for it.
        assert!(covers_legacy_keys(
            &p,
            &target(r#"{"issuer":"users","org":"acme"}"#)
        ));
        assert!(!covers_legacy_keys(
            &p,
            &target(r#"{"issuer":"users","org":"acme","jti":"t"}"#)
        ));
        assert!(!covers_legacy_keys(&p, &org));
        let until = call(
            AdminAction::Add,
            &target(r#"{"issuer":"users","org":"acme"}"#),
            &p,
            "x",
            Some(9_999_999),
            now,
        )
        .unwrap();
        let RevocationCommand::Add { entry, .. } = until.command else {
            panic!()
        };
        assert!(entry.expires_at > 9_999_999);
    }

    #[test]
    fn answers_to_each_reply() {
        let p = policy();
        let now = UnixMillis(1_000_000);
        let org = target(r#"{"issuer":"local","org":"acme"}"#);
        let reply = |full: bool, removed: bool| RevocationReply {
            changed: !full,
            full,
            removed,
            entries: Vec::new(),
        };
        let add = call(AdminAction::Add, &org, &p, "x", None, now).unwrap();
        let (status, body, added) = answer(&add, &org, reply(false, false)).unwrap();
        assert_eq!(status, 201);
        assert_eq!(body["org"], "acme");
        assert_eq!(added.map(|e| e.scope.kind()), Some(RevocationKind::Org));
        assert!(matches!(
            answer(&add, &org, reply(true, false)),
            Err(GatewayError::InvalidAdminRequest(_))
        ));
        let remove = call(AdminAction::Remove, &org, &p, "x", None, now).unwrap();
        let (status, body, added) = answer(&remove, &org, reply(false, true)).unwrap();
        assert_eq!(
            (status, body["removed"].as_bool(), added),
            (200, Some(true), None)
        );
        let list = call(AdminAction::List, &org, &p, "x", None, now).unwrap();
        assert_eq!(
            answer(&list, &org, reply(false, false)).unwrap().1["issuer"],
            "local"
        );
    }
}
