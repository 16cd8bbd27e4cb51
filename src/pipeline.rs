//! The request's path, performed. Every stage is decided in `gateway_core::pipeline` (and the
//! modules it names); this module reads the request once, calls each stage in order, performs
//! the I/O a stage asks for (a token to verify, a counter object to call, the origin to
//! forward to) and hands the outcome back. The first refusal ends the request; `respond` turns
//! every outcome into the response, and one log line ends it.

use gateway_core::config::Policy;
use gateway_core::env::Environment;
use gateway_core::error::GatewayError;
use gateway_core::gate::{ClientCounter, Gate, Refusal, counts_as_failure, gate};
use gateway_core::identity::VerifiedClaims;
use gateway_core::pipeline::{
    self, Admitted, Credential, LogEnd, RequestView, Target, Trace, admit, forget_token_after,
};
use gateway_core::request::{BodyPlan, body_plan};
use gateway_core::route::Route;
use gateway_core::time::UnixMillis;
use worker::Env;

use crate::http::Incoming;
use crate::origin::Forward;
use crate::{admin, auth, client, limit, origin, respond, runtime, settings};

/// One request in flight: what every stage's I/O needs.
struct Flight<'a> {
    req: &'a Incoming,
    env: &'a Env,
    now: UnixMillis,
    request_id: &'a str,
}

/// The client's counter, once the request got far enough to fail authentication (`None`:
/// exempt, or refused before that), and whether the request holds a slot of its failure
/// budget (settled once the answer is known).
#[derive(Default)]
struct Failures {
    counter: Option<ClientCounter<'static>>,
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
    let flight = Flight {
        req: &req,
        env,
        now: started,
        request_id: &request_id,
    };
    let mut trace = Trace::start(&req.headers);
    let mut failures = Failures::default();
    let outcome = run(&flight, &mut trace, &mut failures).await;
    count_failure(&flight, &failures, &outcome).await;
    answer(&flight, &mut trace, outcome)
}

/// A failed authentication (or, on an auth route, any 401/403) counts against the client.
async fn count_failure(
    flight: &Flight<'_>,
    failures: &Failures,
    outcome: &Result<web_sys::Response, GatewayError>,
) {
    let (Some(counter), Ok(policy)) = (failures.counter.as_ref(), settings::policy()) else {
        return;
    };
    let status = match outcome {
        Ok(response) => response.status(),
        Err(e) => e.code().status(),
    };
    let failed = counts_as_failure(status, counter.failures_only);
    if failures.held {
        let id = (flight.request_id, failed);
        client::settle(flight.env, policy, counter, id, flight.now).await;
    } else if failed {
        client::record_failure(flight.env, policy, counter, flight.now).await;
    }
}

/// The response for the outcome, decorated, and the request's log line.
fn answer(
    flight: &Flight<'_>,
    trace: &mut Trace,
    outcome: Result<web_sys::Response, GatewayError>,
) -> web_sys::Response {
    let method = flight.req.method.as_str();
    let headers = trace.answer_headers(settings::policy().ok(), method, &flight.req.headers);
    let (response, error) = match outcome {
        Ok(response) => {
            let authenticated = trace.claims.is_some();
            let decorated = respond::decorate(response, flight.request_id, &headers, authenticated);
            (decorated, None)
        }
        Err(err) => (respond::error(&err, flight.request_id, &headers), Some(err)),
    };
    let environment = settings::environment(flight.env).map_or("unknown", |e| e.name.as_str());
    runtime::log_line(&trace.log_line(&LogEnd {
        started: flight.now,
        finished: runtime::now(),
        request_id: flight.request_id,
        environment,
        method,
        status: response.status(),
        error: error.as_ref(),
        headers: &headers,
    }));
    response
}

/// Stages 1 and 2: admit the request and send it where it goes.
async fn run(
    flight: &Flight<'_>,
    trace: &mut Trace,
    failures: &mut Failures,
) -> Result<web_sys::Response, GatewayError> {
    let req = flight.req;
    let policy = settings::policy()?;
    let environment = settings::environment(flight.env)?;
    let view = RequestView {
        method: &req.method,
        url: &req.url,
        headers: req.headers_read.then_some(&req.headers),
    };
    let admitted = admit(&view, policy, environment, &mut trace.path)?;
    match pipeline::target(&req.method, &admitted.path, &req.headers, policy)? {
        Target::Health => health(flight),
        Target::Preflight(headers) => Ok(respond::no_content(&headers)),
        Target::Admin => {
            let ip = trace.client_ip.as_deref();
            failures.counter = ClientCounter::for_request(ip, None, environment, policy);
            if let Some(refusal) = failures
                .counter
                .as_ref()
                .and_then(|c| client::blocked(c, flight.now))
            {
                return Err(refused(trace, refusal));
            }
            let path = admitted.path.as_str();
            let claims = &mut trace.claims;
            admin::handle(
                req,
                flight.env,
                path,
                (policy, environment),
                flight.now,
                flight.request_id,
                claims,
            )
            .await
        }
        Target::Route(route) => {
            trace.route = Some(route.id.0.clone());
            routed(
                flight,
                (policy, environment),
                route,
                &admitted,
                (trace, failures),
            )
            .await
        }
    }
}

/// Stages 3 to 8 for a route of the table.
async fn routed(
    flight: &Flight<'_>,
    (policy, environment): (&'static Policy, &'static Environment),
    route: &'static Route,
    admitted: &Admitted<'_>,
    (trace, failures): (&mut Trace, &mut Failures),
) -> Result<web_sys::Response, GatewayError> {
    let body = body_plan(
        &flight.req.headers,
        flight.req.body().is_some(),
        route,
        policy.gateway.max_json_depth,
    )?;
    let ip = trace.client_ip.as_deref();
    failures.counter = ClientCounter::for_request(ip, Some(route), environment, policy);
    let cached = match failures.counter.as_ref() {
        Some(counter) => {
            gatekeep(
                flight,
                policy,
                environment,
                counter,
                route,
                trace,
                &mut failures.held,
            )
            .await?
        }
        None => None,
    };
    let claims = authenticate(flight, (policy, environment), route, cached, trace).await?;
    pipeline::authorise(
        claims.as_ref(),
        route.require_client_certificate,
        Some(route),
        || runtime::client_certificate(flight.req.raw()),
    )?;
    if let Some(claims) = claims.as_ref() {
        let outcome = limit::check(flight.env, policy, claims, route, flight.now).await;
        trace.limit_headers = outcome.headers;
        trace.refused_from_memory = outcome.from_memory;
        if let Some(refusal) = outcome.refusal {
            if forget_token_after(&refusal) {
                auth::forget_token(flight.req.headers.get("authorization"));
            }
            return Err(refusal);
        }
    }
    forward(
        flight,
        (policy, environment),
        route,
        admitted,
        (claims.as_ref(), &body),
        trace,
    )
    .await
}

/// Stage 4: limits before authentication. Returns the caller if the gate let only an already
/// verified, cached token through.
async fn gatekeep(
    flight: &Flight<'_>,
    policy: &'static Policy,
    environment: &Environment,
    counter: &ClientCounter<'static>,
    route: &Route,
    trace: &mut Trace,
    held: &mut bool,
) -> Result<Option<VerifiedClaims>, GatewayError> {
    match gate(counter, client::blocked(counter, flight.now), route) {
        Gate::Refuse(refusal) => Err(refused(trace, refusal)),
        Gate::CachedTokenOnly(refusal) => {
            match auth::cached_caller(flight.req.headers.get("authorization"), policy, flight.now) {
                Some(claims) => Ok(Some(claims)),
                None => Err(refused(trace, refusal)),
            }
        }
        Gate::Hold => {
            let id = (flight.request_id, environment.origin_timeout_ms);
            match client::hold(flight.env, policy, counter, id, flight.now).await {
                Ok(is_held) => {
                    *held = is_held;
                    Ok(None)
                }
                Err(refusal) => Err(refused(trace, refusal)),
            }
        }
        Gate::Count => match client::count_request(flight.env, policy, counter, flight.now).await {
            Ok(headers) => {
                trace.limit_headers = headers;
                Ok(None)
            }
            Err(refusal) => Err(refused(trace, refusal)),
        },
        Gate::Pass => Ok(None),
    }
}

/// A refusal's error, its headers kept for the answer.
fn refused(trace: &mut Trace, refusal: Refusal) -> GatewayError {
    trace.limit_headers = refusal.headers;
    refusal.error
}

/// Stage 5: the caller, by the credential `gateway_core::pipeline::credential` names (or the
/// cached token the gate let through).
async fn authenticate(
    flight: &Flight<'_>,
    (policy, environment): (&'static Policy, &'static Environment),
    route: &Route,
    cached: Option<VerifiedClaims>,
    trace: &mut Trace,
) -> Result<Option<VerifiedClaims>, GatewayError> {
    // The gate let a cached token through only on a bearer route: no other credential counts.
    if let Some(claims) = cached {
        trace.claims = Some(claims.clone());
        return Ok(Some(claims));
    }
    let claims = match pipeline::credential(route, &flight.req.headers, policy)? {
        Credential::Public => return Ok(None),
        Credential::ApiKey {
            settings,
            presented,
        } => {
            let keys = settings::api_keys(flight.env)?;
            let (claims, key) = keys.authenticate(presented, settings, policy, flight.now)?;
            let since = settings.deprecated_since_secs();
            trace.credential_headers =
                gateway_core::api_key::deprecation_headers(settings, key.sunset, since);
            claims
        }
        Credential::Bearer(authorization) => {
            auth::authenticate(authorization, policy, environment, flight.env, flight.now).await?
        }
    };
    trace.claims = Some(claims.clone());
    Ok(Some(claims))
}

/// Stage 8: sign and forward.
async fn forward(
    flight: &Flight<'_>,
    (policy, environment): (&'static Policy, &'static Environment),
    route: &'static Route,
    admitted: &Admitted<'_>,
    (claims, body): (Option<&VerifiedClaims>, &BodyPlan),
    trace: &Trace,
) -> Result<web_sys::Response, GatewayError> {
    let signing_key = pipeline::forward_key(settings::signing_keys(flight.env)?)?;
    let origin_url = environment.origin.join(&admitted.path, admitted.query);
    let plan = Forward {
        target: gateway_core::env::request_target_of(&origin_url),
        url: origin_url,
        signing_key,
        now_secs: flight.now.as_secs(),
        route,
        claims,
        forward_authorization: policy.gateway.forward_authorization,
        timeout_ms: environment.origin_timeout_ms,
        request_id: flight.request_id,
        scheme: admitted.scheme,
        client_request_id: trace.client_request_id.as_deref(),
        strip_headers: &policy.gateway.strip_request_headers,
        json_depth: body.json_depth,
        via: runtime::Via::binding(flight.env, gateway_core::names::bindings::ORIGIN_MTLS),
    };
    origin::forward(flight.req, plan).await
}

/// `GET /_gateway/health`: healthy only if the configuration this isolate runs with is valid.
fn health(flight: &Flight<'_>) -> Result<web_sys::Response, GatewayError> {
    let environment = settings::environment(flight.env)?;
    let build = gateway_core::health::Build {
        commit: env!("GATEWAY_BUILD_COMMIT"),
        policy: env!("GATEWAY_POLICY_DIGEST"),
    };
    let secrets_version = flight
        .env
        .var(gateway_core::names::secrets::SECRETS_VERSION)
        .ok()
        .map(|v| v.to_string());
    let report = gateway_core::health::report(&environment.name, build, secrets_version.as_deref());
    Ok(respond::json(200, &report, flight.request_id))
}
