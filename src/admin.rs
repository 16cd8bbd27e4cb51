//! The admin API under the reserved prefix: `/_gateway/admin/revocations`.
//!
//! - `GET ?issuer=<name>&org=<org>`: the organisation's live revocations;
//! - `POST` `{"issuer","org"[,"sub"|"jti"][,"reason"]}`: revoke (201, the entry);
//! - `DELETE` with the same body: lift a revocation (200, `{"removed": bool}`).
//!
//! Only tokens of an issuer listed in `[admin].issuers`, holding `[admin].scope` exactly, get
//! in; any other valid token gets 403. Each change is one call to the organisation's counter
//! object, evicts the covered tokens from this isolate's verified-token cache (other isolates
//! hold cached tokens too, but every request asks the organisation's object, which answers
//! `token_revoked`), and is logged as a security event.

use gateway_core::config::Policy;
use gateway_core::env::Environment;
use gateway_core::error::GatewayError;
use gateway_core::identity::{OrgId, RateLimitKey, Scope, VerifiedClaims};
use gateway_core::method::Method;
use gateway_core::names::ADMIN_REVOCATIONS_PATH;
use gateway_core::revocation::{AdminRevocation, RevocationCommand, RevocationReply};
use gateway_core::time::UnixMillis;
use worker::Env;

use crate::http::Incoming;

use crate::{auth, limit, respond};

/// Largest admin request body.
const MAX_BODY: u64 = 4096;

/// Answers one admin request; `claims` receives the admin's identity for the log line.
pub(crate) async fn handle(
    req: &Incoming,
    env: &Env,
    path: &str,
    (policy, environment): (&Policy, &Environment),
    now: UnixMillis,
    request_id: &str,
    claims_out: &mut Option<VerifiedClaims>,
) -> Result<web_sys::Response, GatewayError> {
    let method = req.method.as_str();
    let Some(admin) = policy.admin.as_ref() else {
        return Err(GatewayError::RouteNotFound);
    };
    if path != ADMIN_REVOCATIONS_PATH {
        return Err(GatewayError::RouteNotFound);
    }
    if !matches!(method, "GET" | "POST" | "DELETE") {
        return Err(GatewayError::MethodNotAllowed {
            allowed: vec![Method::Get, Method::Post, Method::Delete],
        });
    }
    let claims = auth::authenticate(
        req.headers.get("authorization"),
        policy,
        environment,
        env,
        now,
    )
    .await?;
    *claims_out = Some(claims.clone());
    if !admin.issuers.iter().any(|i| claims.issuer() == i) {
        return Err(GatewayError::AdminIssuerRefused);
    }
    if !claims.scopes().iter().any(|s| s == &admin.scope) {
        return Err(GatewayError::InsufficientScope {
            required: vec![admin.scope.clone()],
            granted: claims.scopes().iter().map(Scope::to_string).collect(),
        });
    }
    // An admin token is a token like any other: bound to its certificate if it says so, and
    // subject to its own organisation's revocations.
    crate::runtime::check_client_certificate(req.raw(), false, Some(&claims))?;
    limit::check_revocations(env, policy, &claims, now).await?;
    let by = format!("{}/{}", claims.issuer(), claims.subject());

    let target = if method == "GET" {
        let url = worker::Url::parse(&req.url)
            .map_err(|_| GatewayError::InvalidRequest("The request URL could not be parsed."))?;
        let find = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        AdminRevocation {
            issuer: find("issuer").unwrap_or_default(),
            org: find("org").unwrap_or_default(),
            sub: None,
            jti: None,
            reason: None,
            ttl_seconds: None,
        }
    } else {
        read_body(req).await?
    };
    let scope = target.scope().map_err(GatewayError::InvalidAdminRequest)?;
    let issuer = policy.issuer(&target.issuer).ok_or_else(|| {
        GatewayError::InvalidAdminRequest(format!("no issuer named '{}'", target.issuer))
    })?;
    let now_secs = now.as_secs();
    let object = RateLimitKey {
        issuer: issuer.name.clone(),
        org: OrgId(target.org.clone()),
    }
    .object_name();
    let command = match method {
        "GET" => RevocationCommand::List { now_secs },
        "POST" => RevocationCommand::Add {
            entry: target.entry(
                scope.clone(),
                issuer,
                now_secs,
                by.clone(),
                legacy_keys_until(env, policy, &target)?,
            ),
            now_secs,
        },
        _ => RevocationCommand::Remove {
            scope: scope.clone(),
            now_secs,
        },
    };
    let adding = match &command {
        RevocationCommand::Add { entry, .. } => Some(entry.clone()),
        _ => None,
    };
    let reply: RevocationReply =
        limit::call(env, policy, &object, limit::Endpoint::Revocations, &command)
            .await
            .map_err(GatewayError::LimiterUnavailable)?;

    match (method, adding) {
        ("POST", Some(entry)) => {
            if reply.full {
                return Err(GatewayError::InvalidAdminRequest(format!(
                    "the organisation already holds {} revocations",
                    gateway_core::revocation::MAX_ENTRIES
                )));
            }
            let evicted = auth::evict_revoked(&issuer.name, &target.org, &entry);
            log_change(
                "revocation_added",
                &by,
                &target,
                &entry,
                request_id,
                evicted,
            );
            Ok(respond::json(
                201,
                &serde_json::json!({"issuer": issuer.name, "org": target.org, "revocation": entry}),
                request_id,
            ))
        }
        ("DELETE", _) => {
            if reply.removed {
                worker::console_log!(
                    "{}",
                    serde_json::json!({
                        "event": "revocation_removed", "security_event": true,
                        "request_id": request_id, "by": by, "issuer": issuer.name,
                        "org": target.org, "scope": scope,
                    })
                );
            }
            Ok(respond::json(
                200,
                &serde_json::json!({"removed": reply.removed, "revocations": reply.entries}),
                request_id,
            ))
        }
        _ => Ok(respond::json(
            200,
            &serde_json::json!({"issuer": issuer.name, "org": target.org, "revocations": reply.entries}),
            request_id,
        )),
    }
}

/// The latest sunset of the legacy API keys an org or subject revocation covers (keys carry no
/// `iat` and live until their sunset): the entry must live at least that long.
fn legacy_keys_until(
    env: &Env,
    policy: &Policy,
    target: &AdminRevocation,
) -> Result<Option<u64>, GatewayError> {
    match &policy.api_keys {
        Some(keys) if keys.issuer == target.issuer && target.jti.is_none() => {
            Ok(crate::settings::api_keys(env)?.latest_sunset(&target.org, target.sub.as_deref()))
        }
        _ => Ok(None),
    }
}

fn log_change(
    event: &str,
    by: &str,
    target: &AdminRevocation,
    entry: &gateway_core::revocation::Revocation,
    request_id: &str,
    evicted: usize,
) {
    worker::console_log!(
        "{}",
        serde_json::json!({
            "event": event, "security_event": true, "request_id": request_id, "by": by,
            "issuer": target.issuer, "org": target.org, "revocation": entry,
            "evicted_from_isolate_cache": evicted,
        })
    );
}

async fn read_body(req: &Incoming) -> Result<AdminRevocation, GatewayError> {
    gateway_core::request::check_content_type(
        req.headers.get("content-type"),
        true,
        &["application/json".to_owned()],
    )?;
    let Some(declared) = crate::pipeline::declared_length(&req.headers)? else {
        return Err(GatewayError::InvalidRequest(
            "An admin request body needs a Content-Length header.",
        ));
    };
    if declared > MAX_BODY {
        return Err(GatewayError::PayloadTooLarge { limit: MAX_BODY });
    }
    let bytes = crate::origin::read_body(req.body(), MAX_BODY).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
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
