//! The admin API's I/O (`gateway_core::admin` decides): authenticate the caller, read the
//! target, make the one call to the organisation's counter object, evict covered tokens from
//! this isolate's verified-token cache, and log each change as a security event. Other
//! isolates hold cached tokens too, but every request asks the organisation's object, which
//! answers `token_revoked`.

use gateway_core::admin::{self, AdminAction, AdminCall, MAX_BODY};
use gateway_core::config::Policy;
use gateway_core::env::Environment;
use gateway_core::error::GatewayError;
use gateway_core::identity::VerifiedClaims;
use gateway_core::revocation::{AdminRevocation, Revocation, RevocationReply};
use gateway_core::time::UnixMillis;
use worker::Env;

use crate::http::Incoming;
use crate::{auth, limit, respond};

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
    let Some(admin_policy) = policy.admin.as_ref() else {
        return Err(GatewayError::RouteNotFound);
    };
    let action = admin::action(req.method.as_str(), path)?;
    let authorization = req.headers.get("authorization");
    let claims = auth::authenticate(authorization, policy, environment, env, now).await?;
    *claims_out = Some(claims.clone());
    let by = admin::admit_caller(admin_policy, &claims)?;
    // An admin token is a token like any other: bound to its certificate if it says so, and
    // subject to its own organisation's revocations.
    gateway_core::pipeline::authorise(Some(&claims), false, None, || {
        crate::runtime::client_certificate(req.raw())
    })?;
    limit::check_revocations(env, policy, &claims, now).await?;
    let target = read_target(req, action).await?;
    let legacy_keys_until = legacy_keys_until(env, policy, &target)?;
    let call = admin::call(action, &target, policy, &by, legacy_keys_until, now)?;
    let reply: RevocationReply = limit::call(
        env,
        policy,
        &call.object,
        limit::Endpoint::Revocations,
        &call.command,
    )
    .await
    .map_err(GatewayError::LimiterUnavailable)?;
    let removed = reply.removed;
    let (status, body, added) = admin::answer(&call, &target, reply)?;
    audit(&call, &target, (added.as_ref(), removed), &by, request_id);
    Ok(respond::json(status, &body, request_id))
}

/// The target: from the query (`GET`) or the JSON body.
async fn read_target(req: &Incoming, action: AdminAction) -> Result<AdminRevocation, GatewayError> {
    if !action.has_body() {
        let url = worker::Url::parse(&req.url)
            .map_err(|_| GatewayError::InvalidRequest("The request URL could not be parsed."))?;
        return Ok(admin::query_target(
            url.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned())),
        ));
    }
    gateway_core::request::check_content_type(
        req.headers.get("content-type"),
        true,
        &["application/json".to_owned()],
    )?;
    let Some(declared) = gateway_core::request::declared_length(&req.headers)? else {
        return Err(GatewayError::InvalidRequest(
            "An admin request body needs a Content-Length header.",
        ));
    };
    if declared > MAX_BODY {
        return Err(GatewayError::PayloadTooLarge { limit: MAX_BODY });
    }
    let bytes = crate::origin::read_body(req.body(), MAX_BODY).await?;
    admin::body_target(&bytes)
}

/// The latest sunset of the legacy API keys an organisation or subject revocation covers.
fn legacy_keys_until(
    env: &Env,
    policy: &Policy,
    target: &AdminRevocation,
) -> Result<Option<u64>, GatewayError> {
    if !admin::covers_legacy_keys(policy, target) {
        return Ok(None);
    }
    Ok(crate::settings::api_keys(env)?.latest_sunset(&target.org, target.sub.as_deref()))
}

/// Evicts the tokens a new revocation covers from this isolate, and logs every change.
fn audit(
    call: &AdminCall,
    target: &AdminRevocation,
    (added, removed): (Option<&Revocation>, bool),
    by: &str,
    request_id: &str,
) {
    if let Some(entry) = added {
        let evicted = auth::evict_revoked(&call.issuer, &target.org, entry);
        worker::console_log!(
            "{}",
            serde_json::json!({
                "event": "revocation_added", "security_event": true, "request_id": request_id,
                "by": by, "issuer": target.issuer, "org": target.org, "revocation": entry,
                "evicted_from_isolate_cache": evicted,
            })
        );
    } else if removed {
        let scope = target.scope().ok();
        worker::console_log!(
            "{}",
            serde_json::json!({
                "event": "revocation_removed", "security_event": true,
                "request_id": request_id, "by": by, "issuer": call.issuer,
                "org": target.org, "scope": scope,
            })
        );
    }
}
