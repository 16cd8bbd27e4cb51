//! The route table: one list of routes shared by every stage of the pipeline.
//!
//! # Pattern syntax
//! A pattern is an absolute path of `/`-separated segments, each one of:
//! - a literal, matched exactly and case-sensitively against the normalised path segment
//!   (so it must itself be in normal form: `pchar`s, unreserved characters not escaped);
//! - `{name}`: any one non-empty segment;
//! - `{*name}`, last only: one or more remaining segments (possibly ending with a slash).
//!
//! A pattern has no trailing slash (except `/` itself). A request path with a trailing slash
//! therefore matches only a `{*name}` pattern: `/api/transactions/` is not `/api/transactions`.
//!
//! # Precedence
//! Of the routes whose pattern matches the path, the most specific wins, compared segment by
//! segment from the left: literal beats `{name}` beats `{*name}`. Two routes with the same method
//! and the same shape (same literals and kinds) are a configuration error, so the winner is
//! always unique. If patterns match but none has the request's method, the answer is 405 with
//! `Allow` listing the methods that would have matched; if no pattern matches, 404. `HEAD` is a
//! method like any other: a route answers `HEAD` only if it lists it.
//!
//! The gateway forwards exactly the normalised path it matched.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::method::Method;
use crate::path::NormalPath;
use crate::validate::ConfigError;
use crate::window::Window;

/// A route's stable identifier, from the policy file (`transactions.list`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RouteId(pub String);

impl fmt::Display for RouteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One segment of a [`PathPattern`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Matched exactly.
    Literal(String),
    /// `{name}`: one non-empty segment.
    Param(String),
    /// `{*name}`: the rest of the path, at least one segment.
    Rest(String),
}

impl Segment {
    /// Rank for precedence: lower is more specific.
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 0,
            Segment::Param(_) => 1,
            Segment::Rest(_) => 2,
        }
    }
}

/// A parsed route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    raw: String,
    segments: Vec<Segment>,
}

fn is_param_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl PathPattern {
    /// Parses a pattern, or says what is wrong with it.
    pub fn parse(raw: &str) -> Result<PathPattern, String> {
        if raw == "/" {
            return Ok(PathPattern {
                raw: raw.to_owned(),
                segments: vec![Segment::Literal(String::new())],
            });
        }
        if !raw.starts_with('/') {
            return Err("must start with '/'".to_owned());
        }
        if raw.ends_with('/') {
            return Err(
                "must not end with '/' (trailing slashes are significant; use {*rest})".to_owned(),
            );
        }
        let parts: Vec<&str> = raw.split('/').skip(1).collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let is_last = parts.len().checked_sub(1) == Some(i);
            let segment =
                if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    if let Some(name) = inner.strip_prefix('*') {
                        if !is_last {
                            return Err(format!("'{{*{name}}}' must be the last segment"));
                        }
                        if !is_param_name(name) {
                            return Err(format!("bad parameter name in '{part}'"));
                        }
                        Segment::Rest(name.to_owned())
                    } else {
                        if !is_param_name(inner) {
                            return Err(format!("bad parameter name in '{part}'"));
                        }
                        Segment::Param(inner.to_owned())
                    }
                } else {
                    if part.is_empty() {
                        return Err("must not contain empty segments ('//')".to_owned());
                    }
                    if part.contains(['{', '}']) {
                        return Err(format!("'{part}': a parameter must be a whole segment"));
                    }
                    let normal = crate::path::normalise(&format!("/{part}"))
                        .map_err(|e| format!("'{part}': {e}"))?;
                    if normal.as_str().get(1..) != Some(*part) {
                        return Err(format!(
                            "'{part}' is not in normal form (write '{}')",
                            normal.as_str().trim_start_matches('/')
                        ));
                    }
                    Segment::Literal((*part).to_owned())
                };
            segments.push(segment);
        }
        Ok(PathPattern {
            raw: raw.to_owned(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether the pattern matches the (normalised) path.
    pub fn matches(&self, path: &NormalPath) -> bool {
        let mut parts = path.segments();
        for segment in &self.segments {
            match segment {
                Segment::Rest(_) => return parts.next().is_some(),
                Segment::Literal(lit) => {
                    if parts.next() != Some(lit.as_str()) {
                        return false;
                    }
                }
                Segment::Param(_) => match parts.next() {
                    Some(p) if !p.is_empty() => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }

    /// Precedence key: lexicographically smaller is more specific.
    fn specificity(&self) -> Vec<u8> {
        self.segments.iter().map(Segment::rank).collect()
    }

    /// The shape: same shape means the two patterns match exactly the same paths.
    fn shape(&self) -> Vec<Option<&str>> {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => Some(l.as_str()),
                Segment::Param(_) => None,
                Segment::Rest(_) => Some("{*}"),
            })
            .collect()
    }
}

/// Whether a route needs a verified bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthRequirement {
    /// A valid access token from a configured issuer (`Authorization: Bearer`).
    Bearer,
    /// No authentication; the request is forwarded without identity headers.
    Public,
}

/// What a route asks for when the counter store cannot answer (`on_limiter_error`). Only
/// `closed` is accepted: the counter object's answer carries the caller's revocation check, so
/// admitting without it would serve revoked tokens. `open` is parsed to be refused by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Refuse the request (503 `limiter_unavailable`, with `Retry-After`).
    Closed,
    /// Admit without the answer: refused by the policy validation.
    Open,
}

/// One entry of the route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Stable id, used in logs, metrics and the identity headers.
    pub id: RouteId,
    /// The method it answers.
    pub method: Method,
    /// The path pattern.
    pub pattern: PathPattern,
    /// Authentication requirement.
    pub auth: AuthRequirement,
    /// Scopes the token must all hold (empty: any valid token).
    pub scopes: Vec<String>,
    /// Cost in rate-limit units (>= 1).
    pub cost: u32,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: u64,
    /// Shadow mode for this route's limits.
    pub rate_limit_shadow: bool,
    /// Whether the rate-limit stage runs for this route.
    pub limited: bool,
    /// Accepted body media types (empty: any).
    pub content_types: Vec<String>,
    /// An auth route's failure windows, per client IP (empty: an ordinary route).
    pub failure_limit: Vec<Window>,
    /// Whether a verified TLS client certificate is required.
    pub require_client_certificate: bool,
}

impl Route {
    /// Whether the route accepts JSON bodies (and so checks them).
    pub fn accepts_json(&self) -> bool {
        self.content_types.iter().any(|m| crate::shape::is_json(m))
    }
}

/// The outcome of matching a request against the table.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteMatch<'a> {
    /// The most specific route for this method and path.
    Found(&'a Route),
    /// The path is routed, but not for this method; `allowed` is sorted and deduplicated.
    MethodNotAllowed {
        /// Methods that would have matched.
        allowed: Vec<Method>,
    },
    /// No route's pattern matches the path.
    NotFound,
}

/// The validated route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Builds a table, refusing duplicate ids and ambiguous routes (same method and shape).
    /// Errors name the offending route by index.
    pub fn new(routes: Vec<Route>) -> Result<RouteTable, (usize, String)> {
        for (i, route) in routes.iter().enumerate() {
            for (j, earlier) in routes.iter().enumerate().take(i) {
                if earlier.id == route.id {
                    return Err((
                        i,
                        format!("duplicate route id '{}' (also routes[{j}])", route.id),
                    ));
                }
                if earlier.method == route.method
                    && earlier.pattern.shape() == route.pattern.shape()
                {
                    return Err((
                        i,
                        format!(
                            "{} {} is ambiguous with routes[{j}] ('{}', {} {})",
                            route.method,
                            route.pattern.as_str(),
                            earlier.id,
                            earlier.method,
                            earlier.pattern.as_str()
                        ),
                    ));
                }
            }
        }
        Ok(RouteTable { routes })
    }

    /// All routes, in file order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Finds the route for a request. `method` is the raw request method token.
    pub fn match_request(&self, method: &str, path: &NormalPath) -> RouteMatch<'_> {
        let method = Method::from_token(method);
        let mut best: Option<(&Route, Vec<u8>)> = None;
        let mut allowed: Vec<Method> = Vec::new();
        for route in self.routes.iter().filter(|r| r.pattern.matches(path)) {
            allowed.push(route.method);
            if Some(route.method) != method {
                continue;
            }
            let key = route.pattern.specificity();
            if best.as_ref().is_none_or(|(_, k)| key < *k) {
                best = Some((route, key));
            }
        }
        match best {
            Some((route, _)) => RouteMatch::Found(route),
            None if allowed.is_empty() => RouteMatch::NotFound,
            None => {
                allowed.sort();
                allowed.dedup();
                RouteMatch::MethodNotAllowed { allowed }
            }
        }
    }
}

/// Largest body limit a route may set (the Workers platform's own request limit is 100 MB).
pub const MAX_BODY_LIMIT: u64 = 100 * 1024 * 1024;

fn default_limited() -> bool {
    true
}
fn default_cost() -> u32 {
    1
}
fn default_auth() -> AuthRequirement {
    AuthRequirement::Bearer
}
fn default_failure_policy() -> FailurePolicy {
    FailurePolicy::Closed
}

/// `[[routes]]` as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Stable id (`[a-z0-9._-]`).
    pub id: String,
    /// Method.
    pub method: Method,
    /// Path pattern (see [`crate::route`]).
    pub path: String,
    /// `bearer` (default) or `public`.
    #[serde(default = "default_auth")]
    pub auth: AuthRequirement,
    /// Required scopes (all of them).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Cost in rate-limit units (default 1).
    #[serde(default = "default_cost")]
    pub cost: u32,
    /// Body limit in bytes (default `gateway.max_body_bytes`).
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// `closed` (the default and the only value accepted: 503 when the counter store fails).
    #[serde(default = "default_failure_policy")]
    pub on_limiter_error: FailurePolicy,
    /// Shadow mode: decide and send the headers, log "would limit", but admit (default false).
    #[serde(default)]
    pub rate_limit_shadow: bool,
    /// Whether the route is rate limited at all (default true; `false` for e.g. a cheap
    /// internal status route — the token is still required).
    #[serde(default = "default_limited")]
    pub limited: bool,
    /// Media types a request body may have (`application/json`, ...); other types, or a body
    /// without `Content-Type`, get 415. Empty (default): any type. When a JSON type is listed,
    /// JSON bodies are checked for well-formedness and `gateway.max_json_depth`.
    #[serde(default)]
    pub content_types: Vec<String>,
    /// Makes this an auth route (e.g. a login route the origin answers): per client IP, only
    /// its failures (401/403 from the gateway or the origin) count, against these windows;
    /// once they run out the client gets 429 before reaching the origin. Empty (default): an
    /// ordinary route.
    #[serde(default)]
    pub failure_limit: Vec<Window>,
    /// Requests must present a client certificate the edge verified (mTLS); others get 403
    /// `client_certificate_required` (default false).
    #[serde(default)]
    pub require_client_certificate: bool,
}

impl RouteSpec {
    /// Checks one `[[routes]]` entry (at `key`, e.g. `routes[2]`) and builds its [`Route`];
    /// `has_issuers`: whether any issuer exists (bearer routes need one).
    pub fn build(
        &self,
        key: &str,
        has_issuers: bool,
        default_max_body_bytes: u64,
    ) -> Result<Route, ConfigError> {
        if !crate::validate::is_name(&self.id, 64, b"._-") {
            return Err(ConfigError::invalid(
                format!("{key}.id"),
                "route ids are [a-z0-9._-], at most 64 characters",
            ));
        }
        let pattern = PathPattern::parse(&self.path)
            .map_err(|reason| ConfigError::invalid(format!("{key}.path"), reason))?;
        if self.path == crate::names::RESERVED_PREFIX
            || self
                .path
                .starts_with(&format!("{}/", crate::names::RESERVED_PREFIX))
        {
            return Err(ConfigError::invalid(
                format!("{key}.path"),
                format!(
                    "'{}' is reserved for the gateway's own endpoints",
                    crate::names::RESERVED_PREFIX
                ),
            ));
        }
        match self.auth {
            AuthRequirement::Bearer if !has_issuers => {
                return Err(ConfigError::invalid(
                    format!("{key}.auth"),
                    "'bearer' routes need at least one [[issuers]] entry",
                ));
            }
            AuthRequirement::Public if !self.scopes.is_empty() => {
                return Err(ConfigError::invalid(
                    format!("{key}.scopes"),
                    "a public route cannot require scopes",
                ));
            }
            _ => {}
        }
        if let Some(bad) = self
            .scopes
            .iter()
            .find(|s| !crate::validate::is_scope_token(s))
        {
            return Err(ConfigError::invalid(
                format!("{key}.scopes"),
                format!("'{bad}' is not a valid scope token (RFC 6749 section 3.3)"),
            ));
        }
        if self.cost == 0 {
            return Err(ConfigError::invalid(
                format!("{key}.cost"),
                "must be at least 1",
            ));
        }
        let max_body_bytes = self.max_body_bytes.unwrap_or(default_max_body_bytes);
        if max_body_bytes > MAX_BODY_LIMIT {
            return Err(ConfigError::invalid(
                format!("{key}.max_body_bytes"),
                format!("must be at most {MAX_BODY_LIMIT}"),
            ));
        }
        for (j, media) in self.content_types.iter().enumerate() {
            crate::shape::check_media_type_entry(media).map_err(|reason| {
                ConfigError::invalid(format!("{key}.content_types[{j}]"), reason)
            })?;
        }
        if !self.content_types.is_empty() && !self.method.allows_body() {
            return Err(ConfigError::invalid(
                format!("{key}.content_types"),
                format!("{} requests carry no body", self.method.as_str()),
            ));
        }
        if !self.failure_limit.is_empty() {
            crate::window::check_windows(&format!("{key}.failure_limit"), &self.failure_limit)?;
        }
        if self.on_limiter_error == FailurePolicy::Open {
            return Err(ConfigError::invalid(
                format!("{key}.on_limiter_error"),
                "\"open\" is not offered: the counter object's answer carries the revocation check, so admitting without it would serve revoked tokens; use \"closed\" (503 with Retry-After)",
            ));
        }
        Ok(Route {
            id: RouteId(self.id.clone()),
            method: self.method,
            pattern,
            auth: self.auth,
            scopes: self.scopes.clone(),
            cost: self.cost,
            max_body_bytes,
            rate_limit_shadow: self.rate_limit_shadow,
            limited: self.limited,
            content_types: self.content_types.clone(),
            failure_limit: self.failure_limit.clone(),
            require_client_certificate: self.require_client_certificate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::normalise;

    fn route(id: &str, method: Method, pattern: &str) -> Route {
        Route {
            id: RouteId(id.to_owned()),
            method,
            pattern: PathPattern::parse(pattern).unwrap(),
            auth: AuthRequirement::Bearer,
            scopes: vec![],
            cost: 1,
            max_body_bytes: 1024,
            rate_limit_shadow: false,
            limited: true,
            content_types: Vec::new(),
            failure_limit: Vec::new(),
            require_client_certificate: false,
        }
    }

    fn table() -> RouteTable {
        RouteTable::new(vec![
            route("root", Method::Get, "/"),
            route("health", Method::Get, "/api/health"),
            route("tx.list", Method::Get, "/api/transactions"),
            route("tx.create", Method::Post, "/api/transactions"),
            route("tx.export", Method::Post, "/api/transactions/export"),
            route("tx.get", Method::Get, "/api/transactions/{id}"),
            route("tx.delete", Method::Delete, "/api/transactions/{id}"),
            route("files", Method::Get, "/files/{*rest}"),
            route("files.meta", Method::Get, "/files/{name}/meta"),
        ])
        .unwrap()
    }

    /// `expected`: `Ok(route id)`, `Err(allowed methods)` for 405, or `Err([])` for 404.
    fn check(method: &str, path: &str, expected: Result<&str, &[Method]>) {
        let t = table();
        let p = normalise(path).unwrap();
        let got = match t.match_request(method, &p) {
            RouteMatch::Found(r) => Ok(r.id.0.as_str()),
            RouteMatch::MethodNotAllowed { allowed } => {
                assert!(!allowed.is_empty());
                Err(allowed)
            }
            RouteMatch::NotFound => Err(vec![]),
        };
        assert_eq!(got, expected.map_err(<[Method]>::to_vec), "{method} {path}");
    }

    #[test]
    fn literal_routes_match_exactly() {
        check("GET", "/", Ok("root"));
        check("GET", "/api/health", Ok("health"));
        check("GET", "/api/transactions", Ok("tx.list"));
        check("POST", "/api/transactions", Ok("tx.create"));
        check("POST", "/api/transactions/export", Ok("tx.export"));
    }

    #[test]
    fn literals_beat_params_beat_rest() {
        check("GET", "/api/transactions/42", Ok("tx.get"));
        check("GET", "/files/a/meta", Ok("files.meta"));
        check("GET", "/files/a/b/meta", Ok("files"));
        check("GET", "/files/a", Ok("files"));
        check("GET", "/files/a/", Ok("files"));
    }

    #[test]
    fn trailing_slash_and_case_are_significant() {
        check("GET", "/api/transactions/", Err(&[]));
        check("GET", "/API/transactions", Err(&[]));
        check("GET", "/api/health/", Err(&[]));
        check("GET", "/files", Err(&[]));
    }

    #[test]
    fn wrong_method_is_405_with_the_allowed_list() {
        check(
            "PUT",
            "/api/transactions",
            Err(&[Method::Get, Method::Post]),
        );
        // GET is routed here through the {id} pattern, POST through the literal.
        check("GET", "/api/transactions/export", Ok("tx.get"));
        check(
            "PUT",
            "/api/transactions/export",
            Err(&[Method::Get, Method::Post, Method::Delete]),
        );
        check(
            "POST",
            "/api/transactions/42",
            Err(&[Method::Get, Method::Delete]),
        );
        check("TRACE", "/api/health", Err(&[Method::Get]));
        check("get", "/api/health", Err(&[Method::Get]));
        check("HEAD", "/api/health", Err(&[Method::Get]));
    }

    #[test]
    fn unknown_paths_are_404() {
        check("GET", "/api", Err(&[]));
        check("GET", "/api/transactions/42/extra", Err(&[]));
        check("GET", "/other", Err(&[]));
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        for (pattern, needle) in [
            ("api", "start with '/'"),
            ("/api/", "end with '/'"),
            ("/api//x", "empty segments"),
            ("/{*rest}/x", "last segment"),
            ("/a{id}", "whole segment"),
            ("/{}", "bad parameter name"),
            ("/{a-b}", "bad parameter name"),
            ("/%74x", "normal form"),
            ("/a b", "percent-encoded"),
            ("/a/..", "'..'"),
        ] {
            let err = PathPattern::parse(pattern).unwrap_err();
            assert!(err.contains(needle), "{pattern}: {err}");
        }
    }

    #[test]
    fn ambiguous_and_duplicate_routes_are_refused() {
        let err = RouteTable::new(vec![
            route("a", Method::Get, "/x/{id}"),
            route("b", Method::Get, "/x/{other}"),
        ])
        .unwrap_err();
        assert_eq!(err.0, 1);
        assert!(err.1.contains("ambiguous"), "{}", err.1);
        let err = RouteTable::new(vec![
            route("a", Method::Get, "/x"),
            route("a", Method::Post, "/y"),
        ])
        .unwrap_err();
        assert!(err.1.contains("duplicate route id"), "{}", err.1);
        // Same shape, different methods: fine.
        RouteTable::new(vec![
            route("a", Method::Get, "/x/{id}"),
            route("b", Method::Put, "/x/{id}"),
        ])
        .unwrap();
    }
}
