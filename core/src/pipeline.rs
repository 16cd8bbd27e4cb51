//! The request's path, as named stages. Each stage is a pure function of what the Worker read
//! (the request's method, URL and header block), the policy, the environment, the time and
//! what the runtime answered (a counter object's decision, a verified token), and returns the
//! next step: an answer, a token to verify, a counter call to make, a plan to forward. The
//! Worker (`src/pipeline.rs`) performs the steps in this order and decides nothing itself:
//!
//! 1. [`admit`]: header block, size, `Host`, URL and path;
//! 2. [`target`]: the gateway's own endpoints, a CORS preflight, or a route;
//! 3. [`crate::request::body_plan`]: body framing and `Content-Type`;
//! 4. [`crate::gate::gate`]: limits before authentication;
//! 5. [`credential`]: which credential authenticates the request;
//! 6. [`authorise`]: scopes and the client certificate;
//! 7. [`limit_call`] and [`limited`]: the organisation's counter object and what its answer
//!    means (revocations included);
//! 8. [`forward_key`]: the key that signs the origin request;
//! 9. [`Trace`]: the answer's extra headers and the log line.

use crate::config::{ApiKeyPolicy, Policy};
use crate::env::Environment;
use crate::error::GatewayError;
use crate::gate::ExtraHeaders;
use crate::header_block::HeaderBlock;
use crate::identity::VerifiedClaims;
use crate::limit::{ConsumeRequest, Decision, response_headers};
use crate::log::RequestLog;
use crate::method::Method;
use crate::mtls::ClientCertificate;
use crate::names::{
    ADMIN_PREFIX, HEALTH_PATH, REQUEST_ID_HEADER, RESERVED_PREFIX, rate_limit_headers,
};
use crate::path::{NormalPath, normalise, split_request_url};
use crate::route::{AuthRequirement, Route, RouteMatch};
use crate::signing::{Keyset, SigningKey};
use crate::time::UnixMillis;

/// What the Worker read of the request, once.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// `request.method`.
    pub method: &'a str,
    /// `request.url`.
    pub url: &'a str,
    /// The header block; `None` if the runtime's could not be read.
    pub headers: Option<&'a HeaderBlock>,
}

/// A request past [`admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted<'a> {
    /// The normalised path.
    pub path: NormalPath,
    /// The raw query, without its `?`.
    pub query: Option<&'a str>,
    /// `http` or `https`, as the client used it.
    pub scheme: &'a str,
}

/// Stage 1: the request's shape before anything else is looked at: a readable header block
/// within `gateway.max_header_bytes` (431), a `Host` the environment serves (421), a parseable
/// URL and a path that normalises (400). `log_path` receives the path to log as soon as there
/// is one (raw and cut to 256 characters, then normalised).
pub fn admit<'a>(
    req: &RequestView<'a>,
    policy: &Policy,
    environment: &Environment,
    log_path: &mut String,
) -> Result<Admitted<'a>, GatewayError> {
    let headers = req.headers.ok_or(GatewayError::InvalidRequest(
        "The request headers could not be read.",
    ))?;
    crate::request::check_header_size(headers.iter(), policy.gateway.max_header_bytes)?;
    if !environment.allowed_hosts.is_empty() {
        let host = headers.get("host").unwrap_or_default();
        if !crate::shape::host_allowed(host, &environment.allowed_hosts) {
            return Err(GatewayError::MisdirectedRequest);
        }
    }
    let url = split_request_url(req.url).ok_or(GatewayError::InvalidRequest(
        "The request URL could not be parsed.",
    ))?;
    *log_path = url.path.chars().take(256).collect();
    let path = normalise(url.path).map_err(GatewayError::InvalidPath)?;
    path.as_str().clone_into(log_path);
    Ok(Admitted {
        path,
        query: url.query,
        scheme: url.scheme,
    })
}

/// Where an admitted request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'p> {
    /// `GET /_gateway/health`.
    Health,
    /// The admin API (`[admin]` configured, a path under `/_gateway/admin/`).
    Admin,
    /// A CORS preflight: answered 204 with these headers, without a token or the origin.
    Preflight(ExtraHeaders),
    /// A route of the table.
    Route(&'p Route),
}

/// Stage 2: the gateway's own endpoints under the reserved prefix (never forwarded; 404 for
/// any other path there), dotfiles (404 whatever a wildcard route says), a CORS preflight, or
/// the route the method and path match (405 with the allowed methods, or 404).
pub fn target<'p>(
    method: &str,
    path: &NormalPath,
    headers: &HeaderBlock,
    policy: &'p Policy,
) -> Result<Target<'p>, GatewayError> {
    let path_str = path.as_str();
    if path_str.starts_with(ADMIN_PREFIX) && policy.admin.is_some() {
        return Ok(Target::Admin);
    }
    if path_str == RESERVED_PREFIX || path_str.starts_with(&format!("{RESERVED_PREFIX}/")) {
        if path_str != HEALTH_PATH {
            return Err(GatewayError::RouteNotFound);
        }
        if method != Method::Get.as_str() {
            return Err(GatewayError::MethodNotAllowed {
                allowed: vec![Method::Get],
            });
        }
        return Ok(Target::Health);
    }
    if path.has_dotfile() {
        return Err(GatewayError::RouteNotFound);
    }
    if let (true, Some(asked)) = (
        method == Method::Options.as_str(),
        headers.get("access-control-request-method"),
    ) {
        let routed = matches!(
            policy.routes.match_request(asked, path),
            RouteMatch::Found(_)
        );
        let asked_headers = headers
            .get("access-control-request-headers")
            .unwrap_or_default();
        return Ok(Target::Preflight(policy.cors.preflight(
            headers.get("origin"),
            asked,
            asked_headers,
            routed,
        )));
    }
    match policy.routes.match_request(method, path) {
        RouteMatch::Found(route) => Ok(Target::Route(route)),
        RouteMatch::MethodNotAllowed { allowed } => Err(GatewayError::MethodNotAllowed { allowed }),
        RouteMatch::NotFound => Err(GatewayError::RouteNotFound),
    }
}

/// Whether the request is a CORS preflight (its answer carries its own CORS headers).
pub fn is_preflight(method: &str, headers: &HeaderBlock) -> bool {
    method == Method::Options.as_str() && headers.has("access-control-request-method")
}

/// How a request authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential<'r, 'p> {
    /// A public route: nobody.
    Public,
    /// A legacy API key (the migration mode), in `[api_keys].header`.
    ApiKey {
        /// The mode's settings.
        settings: &'p ApiKeyPolicy,
        /// The key as presented.
        presented: &'r str,
    },
    /// A bearer token: the `Authorization` value (verified against the token rules; a missing
    /// one is a 401 there).
    Bearer(Option<&'r str>),
}

/// Stage 5: the credential a request on `route` authenticates with: none on public routes; an
/// API key when the migration mode is on and the request carries one (400 if it carries an
/// `Authorization` header too: two credentials); else the bearer token.
pub fn credential<'r, 'p>(
    route: &Route,
    headers: &'r HeaderBlock,
    policy: &'p Policy,
) -> Result<Credential<'r, 'p>, GatewayError> {
    if route.auth == AuthRequirement::Public {
        return Ok(Credential::Public);
    }
    let authorization = headers.get("authorization");
    match policy
        .api_keys
        .as_ref()
        .and_then(|s| Some((s, headers.get(&s.header)?)))
    {
        Some(_) if authorization.is_some() => Err(GatewayError::TwoCredentials),
        Some((settings, presented)) => Ok(Credential::ApiKey {
            settings,
            presented,
        }),
        None => Ok(Credential::Bearer(authorization)),
    }
}

/// Stage 6: the caller may use the route: every scope it requires (403), and the client
/// certificate the route requires or the token is bound to (RFC 8705; 403/401). The
/// certificate is read (`certificate`) only when one of the two asks for it.
pub fn authorise(
    claims: Option<&VerifiedClaims>,
    route_requires_certificate: bool,
    scopes_of: Option<&Route>,
    certificate: impl FnOnce() -> ClientCertificate,
) -> Result<(), GatewayError> {
    if let (Some(claims), Some(route)) = (claims, scopes_of) {
        claims.authorise(route)?;
    }
    let bound_to = claims.and_then(VerifiedClaims::cert_thumbprint);
    if !route_requires_certificate && bound_to.is_none() {
        return Ok(());
    }
    crate::mtls::check(route_requires_certificate, bound_to, &certificate())
}

/// One call to an organisation's counter object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitCall<'p> {
    /// The object's name (`rl1:<issuer>:<org>`).
    pub object: String,
    /// What it is asked.
    pub request: ConsumeRequest,
    /// The tier the request counts at (named in the headers and the 429).
    pub tier: &'p str,
}

/// Stage 7, the call: the route's cost in every window of the caller's tier (after the
/// operator's override and the fallback to `free`), with the caller's identity for the
/// revocation check. A route that is not limited asks for the revocation check only. 500
/// `gateway_misconfigured` if the tier does not exist.
pub fn limit_call<'p>(
    policy: &'p Policy,
    claims: &VerifiedClaims,
    route: &Route,
    now: UnixMillis,
) -> Result<LimitCall<'p>, GatewayError> {
    let (tier_name, tier) = policy.tier_or_fallback(Some(claims.tier().as_str()));
    let tier = tier
        .ok_or_else(|| GatewayError::Misconfigured(format!("tier '{tier_name}' is not defined")))?;
    Ok(LimitCall {
        object: claims.rate_limit_key().object_name(),
        request: ConsumeRequest {
            cost: route.cost,
            now,
            windows: if route.limited {
                tier.windows.clone()
            } else {
                Vec::new()
            },
            caller: Some(claims.caller()),
            write_within_ms: policy.write_interval_ms(tier),
        },
        tier: tier_name,
    })
}

/// The revocation check alone (nothing counted), for requests outside the route table (the
/// admin API).
pub fn revocation_call(claims: &VerifiedClaims, now: UnixMillis) -> (String, ConsumeRequest) {
    (
        claims.rate_limit_key().object_name(),
        ConsumeRequest {
            cost: 0,
            now,
            windows: Vec::new(),
            caller: Some(claims.caller()),
            write_within_ms: 0,
        },
    )
}

/// What the revocation check's answer means: the caller is revoked (401), or the object did not
/// answer (503: fails closed).
pub fn revocation_checked(answer: Result<&Decision, &str>) -> Result<(), GatewayError> {
    match answer {
        Ok(Decision::Revoked { scope }) => Err(GatewayError::TokenRevoked { scope: *scope }),
        Ok(_) => Ok(()),
        Err(detail) => Err(GatewayError::LimiterUnavailable(detail.to_owned())),
    }
}

/// What the organisation's counter object answered, as the stage's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// Rate-limit headers for the answer (success or refusal).
    pub headers: ExtraHeaders,
    /// The refusal, if any.
    pub refusal: Option<GatewayError>,
    /// Shadow mode turned a refusal into an admission: log "would limit".
    pub shadowed: bool,
    /// The answer was the isolate's memory of a refusal, not a call (`crate::refusals`).
    pub from_memory: bool,
}

/// Header marking a response the limits would have refused (shadow mode).
pub const SHADOW_HEADER: &str = "x-ratelimit-shadow";

/// Stage 7, the answer: admitted (headers), limited (429 naming the tightest window's limit,
/// the tier and its upgrade URL), never fits (the cost exceeds a whole window), revoked (401),
/// or no answer (503 on every route: without the answer there is no revocation check). In
/// shadow mode (the route's or the tier's), a 429 becomes an admission marked
/// [`SHADOW_HEADER`].
pub fn limited(
    policy: &Policy,
    call: &LimitCall<'_>,
    route: &Route,
    answer: Result<Decision, String>,
    now: UnixMillis,
) -> Limited {
    let (headers, refusal) = match answer {
        Ok(Decision::Revoked { scope }) => (Vec::new(), Some(GatewayError::TokenRevoked { scope })),
        Ok(Decision::Admitted { windows, .. }) => {
            (response_headers(call.tier, &windows, route.cost, now), None)
        }
        Ok(Decision::Limited {
            retry_after_secs,
            windows,
            ..
        }) => {
            let limit = windows
                .iter()
                .filter(|w| w.remaining < u64::from(route.cost))
                .map(|w| w.limit)
                .min()
                .unwrap_or_default();
            let upgrade_url = policy
                .tiers
                .get(call.tier)
                .and_then(|t| t.upgrade_url.clone());
            (
                response_headers(call.tier, &windows, route.cost, now),
                Some(GatewayError::RateLimited {
                    retry_after_secs,
                    limit,
                    tier: call.tier.to_owned(),
                    upgrade_url,
                }),
            )
        }
        Ok(Decision::NeverFits { cost, limit }) => (
            Vec::new(),
            Some(GatewayError::CostExceedsLimit { cost, limit }),
        ),
        Err(detail) => (Vec::new(), Some(GatewayError::LimiterUnavailable(detail))),
    };
    let shadow = route.rate_limit_shadow || policy.tiers.get(call.tier).is_some_and(|t| t.shadow);
    let would_limit = matches!(
        refusal,
        Some(GatewayError::RateLimited { .. } | GatewayError::CostExceedsLimit { .. })
    );
    if shadow && would_limit {
        let mut headers = headers;
        headers.push((SHADOW_HEADER, "would-limit".to_owned()));
        return Limited {
            headers,
            refusal: None,
            shadowed: true,
            from_memory: false,
        };
    }
    Limited {
        headers,
        refusal,
        shadowed: false,
        from_memory: false,
    }
}

/// Whether this call's refusals may be remembered by the isolate and answered from memory
/// (`crate::refusals`): a limited route outside shadow mode (a shadowed refusal admits, and
/// must keep asking the object, whose answer carries the revocation check).
pub fn refusals_apply(policy: &Policy, call: &LimitCall<'_>, route: &Route) -> bool {
    route.limited
        && !route.rate_limit_shadow
        && !policy.tiers.get(call.tier).is_some_and(|t| t.shadow)
}

/// Whether a refusal means the presented token must leave this isolate's verified-token cache
/// (its organisation's object says it is revoked).
pub fn forget_token_after(refusal: &GatewayError) -> bool {
    matches!(refusal, GatewayError::TokenRevoked { .. })
}

/// Stage 8: the key that signs the origin request (500 if the keyset has no current key).
pub fn forward_key(keys: &Keyset) -> Result<&SigningKey, GatewayError> {
    keys.current().ok_or_else(|| {
        GatewayError::Misconfigured("the signing keyset has no current key".to_owned())
    })
}

/// What the log line and the answer's headers need to know about how far the request got.
#[derive(Debug, Default)]
pub struct Trace {
    /// The path as logged ([`admit`]).
    pub path: String,
    /// The matched route's id.
    pub route: Option<String>,
    /// The caller, once verified.
    pub claims: Option<VerifiedClaims>,
    /// Rate-limit headers, added to whatever answer the request gets.
    pub limit_headers: ExtraHeaders,
    /// Headers every answer gets because of how the caller authenticated (a legacy API key's
    /// `Deprecation`, `Sunset` and `Link`).
    pub credential_headers: ExtraHeaders,
    /// The client's `X-Request-ID`, when safe.
    pub client_request_id: Option<String>,
    /// The connecting address (`CF-Connecting-IP`).
    pub client_ip: Option<String>,
    /// The client's `User-Agent`, cut to 200 characters.
    pub user_agent: Option<String>,
    /// The organisation's 429 came from this isolate's memory (`crate::refusals`).
    pub refused_from_memory: bool,
}

impl Trace {
    /// The trace of a request with these headers, before any stage ran. A client's own
    /// request id is a correlation id only: kept if safe, never used as the gateway's.
    pub fn start(headers: &HeaderBlock) -> Trace {
        Trace {
            client_request_id: headers
                .get(REQUEST_ID_HEADER)
                .and_then(crate::shape::client_request_id)
                .map(str::to_owned),
            client_ip: headers.get("cf-connecting-ip").map(str::to_owned),
            user_agent: headers
                .get("user-agent")
                .map(|ua| ua.chars().take(200).collect()),
            ..Trace::default()
        }
    }

    /// Every extra header of the answer: rate-limit headers, the credential's headers, and CORS
    /// on every answer to a browser request (a preflight's answer carries its own).
    pub fn answer_headers(
        &mut self,
        policy: Option<&Policy>,
        method: &str,
        headers: &HeaderBlock,
    ) -> ExtraHeaders {
        let mut out = std::mem::take(&mut self.limit_headers);
        out.append(&mut self.credential_headers);
        if let (Some(policy), false) = (policy, is_preflight(method, headers)) {
            out.extend(policy.cors.response_headers(headers.get("origin")));
        }
        out
    }

    /// The request's log line (one JSON object).
    pub fn log_line(&self, end: &LogEnd<'_>) -> String {
        let header = |name: &str| {
            end.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        let claims = self.claims.as_ref();
        RequestLog {
            event: "request",
            ts: end.started,
            request_id: end.request_id,
            client_request_id: self.client_request_id.as_deref(),
            env: end.environment,
            method: end.method,
            path: &self.path,
            route: self.route.as_deref(),
            status: end.status,
            refused_from_memory: self.refused_from_memory,
            error: end.error.map(|e| e.code().as_str()),
            // Why it was refused or failed: client-safe text for client faults, internal detail
            // for the rest; never a token or a secret.
            detail: end.error.map(GatewayError::log_detail),
            issuer: claims.map(|c| c.issuer().as_str()),
            sub: claims.map(VerifiedClaims::subject),
            org: claims.map(|c| c.org().0.as_str()),
            tier: claims.map(|c| c.tier().as_str()),
            client_id: claims.map(VerifiedClaims::subject),
            cost: header(rate_limit_headers::COST).and_then(|v| v.parse().ok()),
            remaining: header(rate_limit_headers::REMAINING).and_then(|v| v.parse().ok()),
            decision: decision(end.error, self.route.is_some()),
            security_event: crate::log::is_security_event(end.status),
            client_ip: self.client_ip.as_deref(),
            user_agent: self.user_agent.as_deref(),
            duration_ms: end.finished.saturating_since(end.started),
        }
        .to_line()
    }
}

/// How the request ended, for its log line.
#[derive(Debug)]
pub struct LogEnd<'a> {
    /// When it started.
    pub started: UnixMillis,
    /// When it was answered.
    pub finished: UnixMillis,
    /// The gateway's request id.
    pub request_id: &'a str,
    /// The environment's name (`unknown` if the environment is misconfigured).
    pub environment: &'a str,
    /// The request method.
    pub method: &'a str,
    /// The answer's status.
    pub status: u16,
    /// The error, if it was refused or failed.
    pub error: Option<&'a GatewayError>,
    /// The answer's extra headers ([`Trace::answer_headers`]).
    pub headers: &'a [(&'static str, String)],
}

/// The log line's `decision`: the error code, `forwarded` (a route's answer) or `answered` (the
/// gateway's own).
pub fn decision(error: Option<&GatewayError>, routed: bool) -> &'static str {
    match (error, routed) {
        (Some(e), _) => e.code().as_str(),
        (None, true) => "forwarded",
        (None, false) => "answered",
    }
}

#[cfg(test)]
mod tests;
