//! CORS at the edge: preflights answered without a token and without calling the origin, and
//! `Access-Control-*` headers on answers to allowed origins only.

use serde::{Deserialize, Serialize};

use crate::method::Method;

/// `[cors]` in the policy file (absent: no CORS headers at all; browsers then refuse every
/// cross-origin call, which is the safe default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsPolicy {
    /// Exact origins (`https://app.example.com`) allowed to call the API from a browser.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Methods a preflight may ask for (each must also be routed for the path).
    #[serde(default)]
    pub allowed_methods: Vec<Method>,
    /// Request headers a preflight may ask for (compared case-insensitively).
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// Send `Access-Control-Allow-Credentials: true` (default false).
    #[serde(default)]
    pub allow_credentials: bool,
    /// `Access-Control-Max-Age`, seconds (default 600).
    #[serde(default = "default_max_age")]
    pub max_age_seconds: u32,
}

fn default_max_age() -> u32 {
    600
}

/// Response headers clients may read cross-origin.
pub const EXPOSED_HEADERS: &str = "x-request-id, x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset, x-ratelimit-cost, ratelimit, ratelimit-policy, retry-after";

impl CorsPolicy {
    /// Checks the policy; the error names the key.
    pub fn check(&self) -> Result<(), (String, String)> {
        for (i, origin) in self.allowed_origins.iter().enumerate() {
            let ok = crate::url::check_url(origin).is_ok_and(|u| {
                u == *origin
                    && !origin
                        .trim_start_matches("https://")
                        .trim_start_matches("http://")
                        .contains('/')
            });
            if !ok || origin == "*" {
                return Err((
                    format!("cors.allowed_origins[{i}]"),
                    format!(
                        "'{origin}' must be an exact origin like https://app.example.com (no path, no wildcard)"
                    ),
                ));
            }
        }
        if self.allow_credentials && self.allowed_origins.is_empty() {
            return Err((
                "cors.allow_credentials".into(),
                "needs allowed_origins".into(),
            ));
        }
        Ok(())
    }

    fn allows(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
    }

    /// Headers for an actual (non-preflight) answer to a request with this `Origin`.
    pub fn response_headers(&self, origin: Option<&str>) -> Vec<(&'static str, String)> {
        let mut headers = vec![("vary", "Origin".to_owned())];
        if let Some(origin) = origin.filter(|o| self.allows(o)) {
            headers.push(("access-control-allow-origin", origin.to_owned()));
            headers.push(("access-control-expose-headers", EXPOSED_HEADERS.to_owned()));
            if self.allow_credentials {
                headers.push(("access-control-allow-credentials", "true".to_owned()));
            }
        }
        headers
    }

    /// Headers of a preflight answer (always 204): the allowance only when the origin, the
    /// method (also `routed` for the path) and every requested header are allowed.
    pub fn preflight(
        &self,
        origin: Option<&str>,
        method: &str,
        requested_headers: &str,
        routed: bool,
    ) -> Vec<(&'static str, String)> {
        let mut headers = vec![(
            "vary",
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers".to_owned(),
        )];
        let Some(origin) = origin.filter(|o| self.allows(o)) else {
            return headers;
        };
        let method_ok =
            routed && Method::from_token(method).is_some_and(|m| self.allowed_methods.contains(&m));
        let headers_ok = requested_headers
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .all(|h| {
                self.allowed_headers
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(h))
            });
        if !(method_ok && headers_ok) {
            return headers;
        }
        headers.push(("access-control-allow-origin", origin.to_owned()));
        headers.push(("access-control-allow-methods", method.to_owned()));
        if !requested_headers.trim().is_empty() {
            headers.push((
                "access-control-allow-headers",
                requested_headers.trim().to_ascii_lowercase(),
            ));
        }
        headers.push(("access-control-max-age", self.max_age_seconds.to_string()));
        if self.allow_credentials {
            headers.push(("access-control-allow-credentials", "true".to_owned()));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CorsPolicy {
        CorsPolicy {
            allowed_origins: vec!["https://app.example.com".into()],
            allowed_methods: vec![Method::Get, Method::Post],
            allowed_headers: vec!["authorization".into(), "content-type".into()],
            allow_credentials: false,
            max_age_seconds: 600,
        }
    }

    fn get<'a>(headers: &'a [(&str, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn preflights() {
        let p = policy();
        let ok = p.preflight(
            Some("https://app.example.com"),
            "POST",
            "Authorization, Content-Type",
            true,
        );
        assert_eq!(
            get(&ok, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(get(&ok, "access-control-allow-methods"), Some("POST"));
        assert_eq!(
            get(&ok, "access-control-allow-headers"),
            Some("authorization, content-type")
        );
        assert_eq!(get(&ok, "access-control-max-age"), Some("600"));
        assert!(get(&ok, "access-control-allow-credentials").is_none());
        for refused in [
            p.preflight(Some("https://evil.example.com"), "POST", "", true),
            p.preflight(Some("https://app.example.com.evil.com"), "POST", "", true),
            p.preflight(None, "POST", "", true),
            p.preflight(Some("https://app.example.com"), "DELETE", "", true),
            p.preflight(Some("https://app.example.com"), "POST", "x-user-id", true),
            p.preflight(Some("https://app.example.com"), "POST", "", false),
        ] {
            assert!(
                get(&refused, "access-control-allow-origin").is_none(),
                "{refused:?}"
            );
            assert!(get(&refused, "vary").is_some());
        }
    }

    #[test]
    fn actual_answers() {
        let p = policy();
        let ok = p.response_headers(Some("https://app.example.com"));
        assert_eq!(
            get(&ok, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert!(
            get(&ok, "access-control-expose-headers")
                .unwrap()
                .contains("x-ratelimit-remaining")
        );
        let foreign = p.response_headers(Some("https://evil.example.com"));
        assert_eq!(foreign, vec![("vary", "Origin".to_owned())]);
        let with_credentials = CorsPolicy {
            allow_credentials: true,
            ..policy()
        };
        assert_eq!(
            get(
                &with_credentials.response_headers(Some("https://app.example.com")),
                "access-control-allow-credentials"
            ),
            Some("true")
        );
    }

    #[test]
    fn policy_is_checked() {
        for bad in [
            "*",
            "https://app.example.com/",
            "https://app.example.com/path",
            "app.example.com",
            "http://app.example.com",
        ] {
            let p = CorsPolicy {
                allowed_origins: vec![bad.into()],
                ..policy()
            };
            assert!(p.check().is_err(), "{bad}");
        }
        policy().check().unwrap();
        assert!(
            CorsPolicy {
                allow_credentials: true,
                ..CorsPolicy::default()
            }
            .check()
            .is_err()
        );
    }
}
