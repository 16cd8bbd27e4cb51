//! The request pipeline, in the order the contract fixes (ARCHITECTURE.md, "The request's
//! path"):
//!
//! request id -> normalise and check the request (method, path, size) -> match the route ->
//! authenticate -> authorise (scopes) -> rate limit -> sign and forward -> decorate the response
//! (security and rate-limit headers) -> log one line.
//!
//! Each stage is a call into `gateway-core` for the decision and, where needed, one piece of I/O.
//! Every stage returns `Result<_, GatewayError>`; the first error ends the pipeline and
//! `respond::error` turns it into the response.

use gateway_core::error::GatewayError;
use gateway_core::identity::VerifiedClaims;
use gateway_core::log::RequestLog;
use gateway_core::names::{HEALTH_PATH, RESERVED_PREFIX};
use gateway_core::path::{NormalPath, normalise};
use gateway_core::route::{AuthRequirement, Route, RouteMatch};
use gateway_core::shape;
use gateway_core::time::UnixMillis;
use worker::Env;

use crate::client::Counter;
use crate::http::{HeaderList, Incoming};
use crate::origin::Forward;
use crate::{admin, auth, limit, origin, respond, runtime, settings};

/// What the log line needs to know about how far the request got.
#[derive(Default)]
struct Trace {
    path: String,
    route: Option<String>,
    claims: Option<VerifiedClaims>,
    /// Rate-limit and CORS headers, added to whatever response the request gets.
    response_headers: Vec<(&'static str, String)>,
    /// The client's `X-Request-ID`, when safe.
    client_request_id: Option<String>,
    /// The connecting address (`CF-Connecting-IP`).
    client_ip: Option<String>,
    /// Headers every answer gets because of how the caller authenticated (a legacy API key's
    /// `Deprecation`, `Sunset` and `Link`).
    credential_headers: Vec<(&'static str, String)>,
    /// Where this client's failures count, once the request got far enough to fail
    /// authentication (`None`: exempt, or refused before that).
    failures: Option<Counter>,
    /// The request holds a slot of its client's failure budget (a route counting only
    /// failures): settled once the answer is known.
    held: bool,
}

/// Runs the pipeline for one request. Never fails: every outcome is a response.
pub(crate) async fn handle(req: web_sys::Request, env: &Env) -> web_sys::Response {
    let started = runtime::now();
    if let Ok(policy) = settings::policy() {
        runtime::pace_collections(policy.gateway.collection_pacing_kib);
    }
    let request_id = runtime::request_id();
    let req = Incoming::read(req);
    let method = req.method.as_str();
    let client_ip = req.headers.get("cf-connecting-ip").map(str::to_owned);
    let user_agent: Option<String> = req
        .headers
        .get("user-agent")
        .map(|ua| ua.chars().take(200).collect());
    let browser_origin = req.headers.get("origin").map(str::to_owned);
    let preflight = method == "OPTIONS" && req.headers.has("access-control-request-method");
    // A client's own id is a correlation id only: kept if safe, never used as ours.
    let client_request_id = req
        .headers
        .get(gateway_core::names::REQUEST_ID_HEADER)
        .and_then(|v| shape::client_request_id(v).map(str::to_owned));
    let mut trace = Trace {
        client_request_id,
        client_ip: client_ip.clone(),
        ..Trace::default()
    };

    let outcome = run(&req, env, started, &request_id, &mut trace).await;
    // A failed authentication (or, on an auth route, any 401/403) counts against the client.
    if let (Some(counter), Ok(policy)) = (trace.failures.as_ref(), settings::policy()) {
        let status = match &outcome {
            Ok(response) => response.status(),
            Err(e) => e.code().status(),
        };
        // Replays of a revoked token count too: each one costs a counter call.
        let failed = status == 401 || (counter.failures_only && status == 403);
        if trace.held {
            counter
                .settle(env, policy, &request_id, failed, started)
                .await;
        } else if failed {
            counter.record_failure(env, policy, started).await;
        }
    }
    let credential_headers = std::mem::take(&mut trace.credential_headers);
    trace.response_headers.extend(credential_headers);
    // CORS on every answer to a browser request (the preflight answer carries its own).
    if let (Ok(policy), false) = (settings::policy(), preflight) {
        trace
            .response_headers
            .extend(policy.cors.response_headers(browser_origin.as_deref()));
    }
    let (response, error) = match outcome {
        Ok(response) => (
            respond::decorate(
                response,
                &request_id,
                &trace.response_headers,
                trace.claims.is_some(),
            ),
            None,
        ),
        Err(err) => (
            respond::error(&err, &request_id, &trace.response_headers),
            Some(err),
        ),
    };

    let environment = settings::environment(env)
        .map(|e| e.name.as_str())
        .unwrap_or("unknown");
    let status = response.status();
    let header = |name: &str| {
        trace
            .response_headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    };
    let remaining =
        header(gateway_core::names::rate_limit_headers::REMAINING).and_then(|v| v.parse().ok());
    let cost = header(gateway_core::names::rate_limit_headers::COST).and_then(|v| v.parse().ok());
    let line = RequestLog {
        event: "request",
        ts: started,
        request_id: &request_id,
        client_request_id: trace.client_request_id.as_deref(),
        env: environment,
        method,
        path: &trace.path,
        route: trace.route.as_deref(),
        status,
        error: error.as_ref().map(|e| e.code().as_str()),
        // Why it was refused or failed: client-safe text for client faults (e.g. which token
        // rule failed), internal detail for the rest; never a token or a secret.
        detail: error.as_ref().map(GatewayError::log_detail),
        issuer: trace.claims.as_ref().map(|c| c.issuer().as_str()),
        sub: trace.claims.as_ref().map(|c| c.subject()),
        org: trace.claims.as_ref().map(|c| c.org().0.as_str()),
        tier: trace.claims.as_ref().map(|c| c.tier().as_str()),
        client_id: trace.claims.as_ref().map(|c| c.subject()),
        cost,
        remaining,
        decision: match (&error, &trace.route) {
            (Some(e), _) => e.code().as_str(),
            (None, Some(_)) => "forwarded",
            (None, None) => "answered",
        },
        security_event: gateway_core::log::is_security_event(status),
        client_ip: client_ip.as_deref(),
        user_agent: user_agent.as_deref(),
        duration_ms: runtime::now().saturating_since(started),
    }
    .to_line();
    runtime::log_line(&line);
    response
}

/// A raw path, cut to a loggable length on a character boundary.
fn loggable(raw: &str) -> String {
    raw.chars().take(256).collect()
}

async fn run(
    req: &Incoming,
    env: &Env,
    now: UnixMillis,
    request_id: &str,
    trace: &mut Trace,
) -> Result<web_sys::Response, GatewayError> {
    let method = req.method.as_str();
    // Check the request's shape: header block, host, then the URL.
    let policy = settings::policy()?;
    let environment = settings::environment(env)?;
    if !req.headers_read {
        return Err(GatewayError::InvalidRequest(
            "The request headers could not be read.",
        ));
    }
    gateway_core::request::check_header_size(req.headers.iter(), policy.gateway.max_header_bytes)?;
    if !environment.allowed_hosts.is_empty() {
        let host = req.headers.get("host").unwrap_or_default();
        if !shape::host_allowed(host, &environment.allowed_hosts) {
            return Err(GatewayError::MisdirectedRequest);
        }
    }
    let url = gateway_core::path::split_request_url(&req.url).ok_or(
        GatewayError::InvalidRequest("The request URL could not be parsed."),
    )?;
    trace.path = loggable(url.path);
    let path = normalise(url.path).map_err(GatewayError::InvalidPath)?;
    trace.path = path.as_str().to_owned();
    if path
        .as_str()
        .starts_with(&format!("{RESERVED_PREFIX}/admin/"))
        && policy.admin.is_some()
    {
        if let Some(counter) =
            Counter::for_client(trace.client_ip.as_deref(), None, environment, policy)
        {
            if let Some((refusal, headers)) = counter.blocked(now) {
                trace.response_headers = headers;
                return Err(refusal);
            }
            trace.failures = Some(counter);
        }
        return admin::handle(
            req,
            env,
            path.as_str(),
            (policy, environment),
            now,
            request_id,
            &mut trace.claims,
        )
        .await;
    }
    if path.as_str() == RESERVED_PREFIX || path.as_str().starts_with(&format!("{RESERVED_PREFIX}/"))
    {
        #[cfg(feature = "bench")]
        if path.as_str() == "/_gateway/bench/auth" && method == "POST" {
            return crate::bench::auth(req, env, request_id).await;
        }
        #[cfg(feature = "bench")]
        if path.as_str() == "/_gateway/bench/limit" && method == "POST" {
            return crate::bench::limit(req, request_id).await;
        }
        #[cfg(feature = "bench")]
        if path.as_str() == "/_gateway/bench/boundary" && method == "POST" {
            return crate::bench::boundary(req, request_id).await;
        }
        #[cfg(feature = "bench")]
        if path.as_str() == "/_gateway/bench/stats" && method == "GET" {
            return Ok(crate::bench::stats(request_id));
        }
        return gateway_endpoint(method, &path, env, request_id);
    }
    if path.has_dotfile() {
        // `/.env`, `/.git/...`: never forwarded, whatever a wildcard route would say.
        return Err(GatewayError::RouteNotFound);
    }

    // CORS preflight: answered here, without a token and without the origin.
    if let (true, Some(asked)) = (
        method == "OPTIONS",
        req.headers.get("access-control-request-method"),
    ) {
        let routed = matches!(
            policy.routes.match_request(asked, &path),
            RouteMatch::Found(_)
        );
        let origin = req.headers.get("origin");
        let asked_headers = req
            .headers
            .get("access-control-request-headers")
            .unwrap_or_default();
        let headers = policy.cors.preflight(origin, asked, asked_headers, routed);
        return Ok(respond::no_content(&headers));
    }

    // Match the route.
    let route = match policy.routes.match_request(method, &path) {
        RouteMatch::Found(route) => route,
        RouteMatch::MethodNotAllowed { allowed } => {
            return Err(GatewayError::MethodNotAllowed { allowed });
        }
        RouteMatch::NotFound => return Err(GatewayError::RouteNotFound),
    };
    trace.route = Some(route.id.0.clone());
    // A body is announced by its framing, or (HTTP/2, HTTP/3) simply present without a length.
    let has_body = check_body_framing(&req.headers, route)?
        || (req.body().is_some() && !req.headers.has("content-length"));
    let media_type = gateway_core::request::check_content_type(
        req.headers.get("content-type"),
        has_body,
        &route.content_types,
    )?;

    // Limits before authentication: a client this isolate knows is over its budget is refused
    // here (on bearer routes only a token already verified and cached still gets through: it
    // costs no signature check); public routes count every request.
    let mut verified = None;
    if let Some(counter) =
        Counter::for_client(trace.client_ip.as_deref(), Some(route), environment, policy)
    {
        if let Some((refusal, headers)) = counter.blocked(now) {
            verified = match route.auth {
                AuthRequirement::Bearer if !counter.failures_only => {
                    auth::cached_caller(req.headers.get("authorization"), policy, now)
                }
                _ => None,
            };
            if verified.is_none() {
                trace.response_headers = headers;
                return Err(refusal);
            }
        } else if counter.failures_only {
            // Attempts in flight count as possible failures: a slot is held before the origin
            // is asked, so parallel guesses cannot outrun the failure limit.
            match counter
                .hold(env, policy, request_id, environment.origin_timeout_ms, now)
                .await
            {
                Ok(held) => trace.held = held,
                Err((refusal, headers)) => {
                    trace.response_headers = headers;
                    return Err(refusal);
                }
            }
        } else if route.auth == AuthRequirement::Public && route.limited {
            match counter.count_request(env, policy, now).await {
                Ok(headers) => trace.response_headers = headers,
                Err((refusal, headers)) => {
                    trace.response_headers = headers;
                    return Err(refusal);
                }
            }
        }
        trace.failures = Some(counter);
    }

    // Authenticate and authorise.
    let claims = match route.auth {
        AuthRequirement::Public => None,
        AuthRequirement::Bearer => {
            let claims = match (verified, api_key(req, policy)) {
                (Some(claims), _) => claims,
                (None, Some((settings, presented))) => {
                    if req.headers.has("authorization") {
                        return Err(GatewayError::TwoCredentials);
                    }
                    let (claims, key) =
                        settings::api_keys(env)?.authenticate(&presented, settings, policy, now)?;
                    trace.credential_headers = gateway_core::api_key::deprecation_headers(
                        settings,
                        key.sunset,
                        settings.deprecated_since_secs(),
                    );
                    claims
                }
                (None, None) => {
                    auth::authenticate(
                        req.headers.get("authorization"),
                        policy,
                        environment,
                        env,
                        now,
                    )
                    .await?
                }
            };
            trace.claims = Some(claims.clone());
            claims.authorise(route)?;
            Some(claims)
        }
    };
    // Mutual TLS: the route's requirement and the token's certificate binding (RFC 8705).
    runtime::check_client_certificate(
        req.raw(),
        route.require_client_certificate,
        claims.as_ref(),
    )?;

    // Rate limit, and the organisation's revocations, in one round trip (routes that are not
    // limited check the revocations only).
    if let Some(claims) = claims.as_ref() {
        let outcome = limit::check(env, policy, claims, route, now).await;
        trace.response_headers = outcome.headers;
        if let Some(refusal) = outcome.refusal {
            if matches!(refusal, GatewayError::TokenRevoked { .. }) {
                auth::forget_token(req.headers.get("authorization"));
            }
            return Err(refusal);
        }
    }

    // Forward.
    let scheme = url.scheme.to_owned();
    let signing_key = settings::signing_keys(env)?.current().ok_or_else(|| {
        GatewayError::Misconfigured("the signing keyset has no current key".to_owned())
    })?;
    let origin_url = environment.origin.join(&path, url.query);
    let forward = Forward {
        target: gateway_core::env::request_target_of(&origin_url),
        url: origin_url,
        signing_key,
        now_secs: now.as_secs(),
        route,
        claims: claims.as_ref(),
        forward_authorization: policy.gateway.forward_authorization,
        timeout_ms: environment.origin_timeout_ms,
        request_id,
        scheme: &scheme,
        client_request_id: trace.client_request_id.as_deref(),
        strip_headers: &policy.gateway.strip_request_headers,
        json_depth: (route.accepts_json() && media_type.as_deref().is_some_and(shape::is_json))
            .then_some(policy.gateway.max_json_depth),
        via: runtime::Via::binding(env, gateway_core::names::bindings::ORIGIN_MTLS),
    };
    origin::forward(req, forward).await
}

/// The legacy API key the request carries, when the migration mode is on.
fn api_key<'p>(
    req: &Incoming,
    policy: &'p gateway_core::config::Policy,
) -> Option<(&'p gateway_core::config::ApiKeyPolicy, String)> {
    let settings = policy.api_keys.as_ref()?;
    let presented = req.headers.get(&settings.header)?;
    Some((settings, presented.to_owned()))
}

/// Body framing checked before anything is read: a parseable `Content-Length` within the
/// route's limit, and no body at all on methods that carry none. Returns whether the framing
/// announces a body (a non-zero `Content-Length`, or `Transfer-Encoding`).
fn check_body_framing(headers: &HeaderList, route: &Route) -> Result<bool, GatewayError> {
    let declared = declared_length(headers)?;
    let chunked = headers.has("transfer-encoding");
    if chunked && declared.is_some() {
        // The classic request-smuggling shape: two framings for one body.
        return Err(GatewayError::InvalidRequest(
            "A request must not carry both Content-Length and Transfer-Encoding.",
        ));
    }
    if !route.method.allows_body() && (declared.is_some_and(|n| n > 0) || chunked) {
        return Err(GatewayError::InvalidRequest(
            "This method must not carry a request body.",
        ));
    }
    if declared.is_some_and(|n| n > route.max_body_bytes) {
        return Err(GatewayError::PayloadTooLarge {
            limit: route.max_body_bytes,
        });
    }
    Ok(chunked || declared.is_some_and(|n| n > 0))
}

/// The `Content-Length` a request declares: `None` without one; 400 unless it is all digits.
pub(crate) fn declared_length(headers: &HeaderList) -> Result<Option<u64>, GatewayError> {
    match headers.get("content-length") {
        None => Ok(None),
        Some(value) => Ok(Some(
            value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|_| value.trim().bytes().all(|b| b.is_ascii_digit()))
                .ok_or(GatewayError::InvalidRequest(
                    "The Content-Length header is not a number.",
                ))?,
        )),
    }
}

/// The gateway's own endpoints under the reserved prefix. Never forwarded.
fn gateway_endpoint(
    method: &str,
    path: &NormalPath,
    env: &Env,
    request_id: &str,
) -> Result<web_sys::Response, GatewayError> {
    if path.as_str() != HEALTH_PATH {
        return Err(GatewayError::RouteNotFound);
    }
    if method != "GET" {
        return Err(GatewayError::MethodNotAllowed {
            allowed: vec![gateway_core::method::Method::Get],
        });
    }
    // Healthy only if the configuration this isolate runs with is valid.
    settings::policy()?;
    let environment = settings::environment(env)?;
    let build = gateway_core::health::Build {
        commit: env!("GATEWAY_BUILD_COMMIT"),
        policy: env!("GATEWAY_POLICY_DIGEST"),
    };
    let secrets_version = env
        .var(gateway_core::names::secrets::SECRETS_VERSION)
        .ok()
        .map(|v| v.to_string());
    Ok(respond::json(
        200,
        &gateway_core::health::report(&environment.name, build, secrets_version.as_deref()),
        request_id,
    ))
}
