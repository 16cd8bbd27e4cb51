//! Per-environment values, from `wrangler.toml` `[vars]` (or `wrangler dev --var`), so tests on
//! random ports need no rebuild. Read once per isolate by the Worker and validated here.
//!
//! | var | format |
//! |---|---|
//! | `ENVIRONMENT` | `dev`, `test`, `staging` or `production` |
//! | `ORIGIN_URL` | `http(s)://host[:port][/base]`; `https` unless the host is loopback |
//! | `GATEWAY_ISSUERS` | JSON: `{"<issuer name>": {"issuer": "<exact iss>", "jwks_uri": "<url>"}}`, one entry per `[[issuers]]` of the policy; `jwks_uri` may be omitted for an issuer whose keys come from the `GATEWAY_STATIC_JWKS` secret |

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::Policy;
use crate::issuer::{IssuerPolicy, JwksBounds};
use crate::jwks::JwksTiming;
use crate::names::vars;
use crate::path::NormalPath;
use crate::url::check_url;
use crate::validate::ConfigError;

/// The deployment environments.
pub const ENVIRONMENTS: [&str; 4] = ["dev", "test", "staging", "production"];

/// An origin base URL: scheme and authority, optional base path, no trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginUrl(String);

impl OriginUrl {
    /// Validates an origin base URL.
    pub fn parse(value: &str) -> Result<OriginUrl, String> {
        check_url(value).map(OriginUrl)
    }

    /// The URL to forward to: base + the matched normalised path + the raw query, unchanged.
    pub fn join(&self, path: &NormalPath, query: Option<&str>) -> String {
        match query {
            Some(q) if !q.is_empty() => format!("{}{}?{q}", self.0, path.as_str()),
            _ => format!("{}{}", self.0, path.as_str()),
        }
    }

    /// The request target the origin receives for this path and query: the base URL's own
    /// path, the matched normalised path, and the raw query (what the signature covers).
    pub fn request_target(&self, path: &NormalPath, query: Option<&str>) -> String {
        request_target_of(&self.join(path, query))
    }

    /// The base URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The request target (path and query) of an absolute URL.
pub fn request_target_of(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme
        .find('/')
        .and_then(|i| after_scheme.get(i..))
        .unwrap_or("/")
        .to_owned()
}

/// Where one issuer lives in this environment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerEndpoints {
    /// The exact `iss` value tokens carry.
    pub issuer: String,
    /// Where its JWKS is published.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Find the JWKS by OpenID Connect discovery (`<issuer>/.well-known/openid-configuration`)
    /// instead of a `jwks_uri`. Neither set: keys from the static JWKS secret.
    #[serde(default)]
    pub discovery: bool,
    /// Per-environment override of the policy's `jwks_default_ttl_seconds`.
    #[serde(default)]
    pub jwks_default_ttl_seconds: Option<u64>,
    /// Per-environment override of the policy's `jwks_min_ttl_seconds`.
    #[serde(default)]
    pub jwks_min_ttl_seconds: Option<u64>,
    /// Per-environment override of the policy's `jwks_max_ttl_seconds`.
    #[serde(default)]
    pub jwks_max_ttl_seconds: Option<u64>,
    /// Per-environment override of the policy's `jwks_refetch_interval_seconds`.
    #[serde(default)]
    pub jwks_refetch_interval_seconds: Option<u64>,
    /// Per-environment override of the policy's `jwks_max_stale_seconds`.
    #[serde(default)]
    pub jwks_max_stale_seconds: Option<u64>,
}

/// Where an issuer's verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A JWKS at this URL.
    JwksUri(String),
    /// OIDC discovery at this URL; its `jwks_uri` is then fetched.
    Discovery(String),
    /// The `GATEWAY_STATIC_JWKS` secret.
    Static,
}

impl IssuerEndpoints {
    /// Whether the keys are fetched (a `jwks_uri` or discovery) rather than static. Cheap: for
    /// the verified-token cache's hit path, where [`IssuerEndpoints::key_source`] would format a URL.
    pub fn has_remote_keys(&self) -> bool {
        self.jwks_uri.is_some() || self.discovery
    }

    /// Where the keys come from.
    pub fn key_source(&self) -> KeySource {
        match (&self.jwks_uri, self.discovery) {
            (Some(uri), _) => KeySource::JwksUri(uri.clone()),
            (None, true) => KeySource::Discovery(discovery_url(&self.issuer)),
            (None, false) => KeySource::Static,
        }
    }

    /// The issuer's JWKS bounds in this environment: the policy's, with these overrides.
    pub fn jwks_bounds(&self, policy: &IssuerPolicy) -> JwksBounds {
        let base = policy.jwks_bounds();
        JwksBounds {
            default_ttl_seconds: self
                .jwks_default_ttl_seconds
                .unwrap_or(base.default_ttl_seconds),
            min_ttl_seconds: self.jwks_min_ttl_seconds.unwrap_or(base.min_ttl_seconds),
            max_ttl_seconds: self.jwks_max_ttl_seconds.unwrap_or(base.max_ttl_seconds),
            refetch_interval_seconds: self
                .jwks_refetch_interval_seconds
                .unwrap_or(base.refetch_interval_seconds),
            max_stale_seconds: self
                .jwks_max_stale_seconds
                .unwrap_or(base.max_stale_seconds),
        }
    }
}

/// The validated per-environment values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// `ENVIRONMENT`.
    pub name: String,
    /// `ORIGIN_URL`.
    pub origin: OriginUrl,
    /// `GATEWAY_ISSUERS`, by issuer name.
    pub issuers: BTreeMap<String, IssuerEndpoints>,
    /// Each issuer's effective JWKS timing (policy bounds with this environment's overrides).
    pub jwks_timing: BTreeMap<String, JwksTiming>,
    /// `ALLOWED_HOSTS`: the `Host` values this deployment serves (empty: any).
    pub allowed_hosts: Vec<String>,
    /// The origin timeout: `ORIGIN_TIMEOUT_MS` if set, else the policy's
    /// `gateway.origin_timeout_ms`.
    pub origin_timeout_ms: u64,
    /// `CLIENT_LIMIT_EXEMPT`: client addresses the limits before authentication skip (e.g. the
    /// operator's monitors or scanners; empty: none).
    pub client_limit_exempt: Vec<crate::ip::IpBlock>,
}

impl Environment {
    /// Reads and validates every var; `get` looks one up by name. Errors name the var.
    pub fn from_vars(
        policy: &Policy,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Environment, ConfigError> {
        let required = |name: &str| {
            get(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ConfigError::Invalid {
                    key: name.to_owned(),
                    reason: "is not set".to_owned(),
                })
        };
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            key: key.to_owned(),
            reason,
        };

        let name = required(vars::ENVIRONMENT)?;
        if !ENVIRONMENTS.contains(&name.as_str()) {
            return Err(invalid(
                vars::ENVIRONMENT,
                format!("must be one of {}", ENVIRONMENTS.join(", ")),
            ));
        }
        let origin = OriginUrl::parse(&required(vars::ORIGIN_URL)?)
            .map_err(|e| invalid(vars::ORIGIN_URL, e))?;

        // `null` disables a policy issuer in this environment (its tokens are untrusted here);
        // leaving it out is an error, so an issuer is never dropped by accident.
        let entries: BTreeMap<String, Option<IssuerEndpoints>> =
            match get(vars::ISSUERS).filter(|v| !v.is_empty()) {
                Some(json) => serde_json::from_str(&json).map_err(|e| {
                    invalid(
                        vars::ISSUERS,
                        format!("is not valid JSON of the documented shape: {e}"),
                    )
                })?,
                None => BTreeMap::new(),
            };
        let mut jwks_timing = BTreeMap::new();
        let mut issuers = BTreeMap::new();
        for issuer in &policy.issuers {
            let endpoints = match entries.get(&issuer.name) {
                None => {
                    return Err(invalid(
                        vars::ISSUERS,
                        format!(
                            "has no entry for issuer '{}' (give its endpoints, or null to disable it in this environment)",
                            issuer.name
                        ),
                    ));
                }
                Some(None) => continue,
                Some(Some(endpoints)) => endpoints,
            };
            let key = format!("{}.{}", vars::ISSUERS, issuer.name);
            if endpoints.issuer.is_empty() {
                return Err(invalid(&key, "'issuer' must not be empty".to_owned()));
            }
            if let Some(uri) = &endpoints.jwks_uri {
                check_url(uri).map_err(|e| invalid(&format!("{key}.jwks_uri"), e))?;
                if endpoints.discovery {
                    return Err(invalid(
                        &format!("{key}.discovery"),
                        "give either jwks_uri or discovery, not both".to_owned(),
                    ));
                }
            }
            if endpoints.discovery {
                check_url(&endpoints.issuer).map_err(|e| {
                    invalid(
                        &format!("{key}.issuer"),
                        format!("discovery needs an http(s) issuer URL: {e}"),
                    )
                })?;
            }
            let bounds = endpoints.jwks_bounds(issuer);
            bounds
                .check()
                .map_err(|(field, reason)| invalid(&format!("{key}.{field}"), reason.to_owned()))?;
            jwks_timing.insert(issuer.name.clone(), JwksTiming::from_bounds(bounds));
            issuers.insert(issuer.name.clone(), endpoints.clone());
        }
        if let Some(extra) = entries.keys().find(|k| policy.issuer(k).is_none()) {
            return Err(invalid(
                vars::ISSUERS,
                format!("names issuer '{extra}', which the policy file does not define"),
            ));
        }
        let allowed_hosts: Vec<String> = get(vars::ALLOWED_HOSTS)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect();
        for host in &allowed_hosts {
            crate::shape::check_host_entry(host).map_err(|e| invalid(vars::ALLOWED_HOSTS, e))?;
        }
        let origin_timeout_ms = match get(vars::ORIGIN_TIMEOUT_MS).filter(|v| !v.is_empty()) {
            None => policy.gateway.origin_timeout_ms,
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| (100..=120_000).contains(ms))
                .ok_or_else(|| {
                    invalid(
                        vars::ORIGIN_TIMEOUT_MS,
                        format!("'{v}' is not a number of milliseconds between 100 and 120000"),
                    )
                })?,
        };
        let client_limit_exempt = get(vars::CLIENT_LIMIT_EXEMPT)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(crate::ip::IpBlock::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(vars::CLIENT_LIMIT_EXEMPT, e))?;
        Ok(Environment {
            name,
            origin,
            issuers,
            jwks_timing,
            allowed_hosts,
            origin_timeout_ms,
            client_limit_exempt,
        })
    }
}

impl Environment {
    /// Every enabled issuer without a `jwks_uri` must have a usable key in the static JWKS
    /// secret (`secret`: its value, if set). Checked when the configuration is loaded, so a
    /// missing secret shows as an unhealthy gateway at once, never as a 5xx for some token.
    pub fn check_static_keys(
        &self,
        policy: &Policy,
        secret: Option<&str>,
    ) -> Result<(), ConfigError> {
        let needing: Vec<&String> = self
            .issuers
            .iter()
            .filter(|(_, e)| !e.has_remote_keys())
            .map(|(name, _)| name)
            .collect();
        let Some(first) = needing.first() else {
            return Ok(());
        };
        let key = crate::names::secrets::STATIC_JWKS;
        let invalid = |reason: String| ConfigError::Invalid {
            key: key.to_owned(),
            reason,
        };
        let sets =
            crate::jwk::JwkSet::from_static_secret(secret.ok_or_else(|| {
                invalid(format!("is not set, but issuer '{first}' has no jwks_uri"))
            })?)
            .map_err(invalid)?;
        for name in needing {
            let usable = policy.issuer(name).is_some_and(|issuer| {
                sets.get(name.as_str()).is_some_and(|set| {
                    set.keys
                        .iter()
                        .any(|k| issuer.algorithms.iter().any(|a| k.fits(*a)))
                })
            });
            if !usable {
                return Err(invalid(format!(
                    "has no key usable by issuer '{name}' (which has no jwks_uri)"
                )));
            }
        }
        Ok(())
    }
}

/// The OpenID Connect discovery URL of an issuer (OIDC Discovery 1.0, section 4).
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// The `jwks_uri` of a discovery document, which must name exactly the configured issuer
/// (OIDC Discovery 1.0, section 4.3) and a valid URL.
pub fn jwks_uri_from_discovery(document: &str, expected_issuer: &str) -> Result<String, String> {
    #[derive(Deserialize)]
    struct Discovery {
        issuer: String,
        jwks_uri: String,
    }
    let doc: Discovery =
        serde_json::from_str(document).map_err(|e| format!("not a discovery document: {e}"))?;
    if doc.issuer != expected_issuer {
        return Err(format!(
            "the discovery document names issuer '{}', not '{expected_issuer}'",
            doc.issuer
        ));
    }
    check_url(&doc.jwks_uri)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::normalise;

    fn policy() -> Policy {
        Policy::from_toml(include_str!("../../gateway.toml"))
            .unwrap()
            .0
    }

    fn env(vars: &[(&str, &str)]) -> Result<Environment, String> {
        Environment::from_vars(&policy(), |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
        .map_err(|e| e.to_string())
    }

    const ISSUERS: &str = r#"{"users": {"issuer": "http://127.0.0.1:9100", "jwks_uri": "http://127.0.0.1:9100/jwks"},
                              "machines": {"issuer": "http://127.0.0.1:9102", "jwks_uri": "http://127.0.0.1:9102/jwks",
                                           "jwks_min_ttl_seconds": 1, "jwks_default_ttl_seconds": 2},
                              "internal": {"issuer": "urn:example:internal"}}"#;

    #[test]
    fn valid_vars_parse() {
        let e = env(&[
            ("ENVIRONMENT", "test"),
            ("ORIGIN_URL", "http://127.0.0.1:9000/"),
            ("GATEWAY_ISSUERS", ISSUERS),
        ])
        .unwrap();
        assert_eq!(e.origin.as_str(), "http://127.0.0.1:9000");
        assert_eq!(e.issuers["users"].issuer, "http://127.0.0.1:9100");
        assert!(e.allowed_hosts.is_empty());
        assert_eq!(e.origin_timeout_ms, policy().gateway.origin_timeout_ms);
        let e = env(&[
            ("ENVIRONMENT", "test"),
            ("ORIGIN_URL", "http://127.0.0.1:9000/"),
            ("GATEWAY_ISSUERS", ISSUERS),
            (
                "ALLOWED_HOSTS",
                " api.example.com ,*.preview.example.com,, ",
            ),
            ("ORIGIN_TIMEOUT_MS", "1500"),
        ])
        .unwrap();
        assert_eq!(
            e.allowed_hosts,
            ["api.example.com", "*.preview.example.com"]
        );
        assert_eq!(e.origin_timeout_ms, 1500);
        assert!(e.client_limit_exempt.is_empty());
    }

    #[test]
    fn errors_name_the_var() {
        let ok_origin = ("ORIGIN_URL", "https://origin.example.com");
        for (vars, needle) in [
            (
                vec![ok_origin, ("GATEWAY_ISSUERS", ISSUERS)],
                "ENVIRONMENT: is not set",
            ),
            (
                vec![
                    ("ENVIRONMENT", "prod"),
                    ok_origin,
                    ("GATEWAY_ISSUERS", ISSUERS),
                ],
                "ENVIRONMENT: must be one of",
            ),
            (
                vec![("ENVIRONMENT", "test"), ("GATEWAY_ISSUERS", ISSUERS)],
                "ORIGIN_URL: is not set",
            ),
            (
                vec![
                    ("ENVIRONMENT", "test"),
                    ("ORIGIN_URL", "http://origin.example.com"),
                    ("GATEWAY_ISSUERS", ISSUERS),
                ],
                "plain http is only allowed for loopback",
            ),
            (
                vec![
                    ("ENVIRONMENT", "test"),
                    ("ORIGIN_URL", "https://u:p@origin.example.com"),
                    ("GATEWAY_ISSUERS", ISSUERS),
                ],
                "user info",
            ),
            (
                vec![
                    ("ENVIRONMENT", "test"),
                    ("ORIGIN_URL", "https://o.example.com/?a=1"),
                    ("GATEWAY_ISSUERS", ISSUERS),
                ],
                "query",
            ),
            (
                vec![
                    ("ENVIRONMENT", "test"),
                    ("ORIGIN_URL", "ftp://o.example.com"),
                ],
                "only http and https",
            ),
            (
                vec![("ENVIRONMENT", "test"), ok_origin],
                "GATEWAY_ISSUERS: has no entry for issuer 'users'",
            ),
            (
                vec![
                    ("ENVIRONMENT", "test"),
                    ok_origin,
                    ("GATEWAY_ISSUERS", ISSUERS),
                    ("ALLOWED_HOSTS", "api.example.com, Evil.Example.com"),
                ],
                "ALLOWED_HOSTS: 'Evil.Example.com' is not a lower-case host name",
            ),
            (
                vec![
                    ("ENVIRONMENT", "test"),
                    ok_origin,
                    ("GATEWAY_ISSUERS", ISSUERS),
                    ("ORIGIN_TIMEOUT_MS", "50"),
                ],
                "ORIGIN_TIMEOUT_MS: '50' is not a number of milliseconds between 100 and 120000",
            ),
            (
                vec![("ENVIRONMENT", "test"), ok_origin, ("GATEWAY_ISSUERS", "{")],
                "GATEWAY_ISSUERS: is not valid JSON",
            ),
            (
                vec![
                    ("ENVIRONMENT", "test"),
                    ok_origin,
                    (
                        "GATEWAY_ISSUERS",
                        r#"{"users": {"issuer": "x", "jwks_uri": "http://evil.example.com/jwks"}, "machines": {"issuer": "y"}, "internal": null}"#,
                    ),
                ],
                "GATEWAY_ISSUERS.users.jwks_uri",
            ),
            (
                vec![
                    ("ENVIRONMENT", "test"),
                    ok_origin,
                    (
                        "GATEWAY_ISSUERS",
                        r#"{"users": {"issuer": "x"}, "machines": {"issuer": "z"}, "internal": null, "other": {"issuer": "y"}}"#,
                    ),
                ],
                "names issuer 'other'",
            ),
        ] {
            let err = env(&vars).unwrap_err();
            assert!(err.contains(needle), "{err:?} lacks {needle:?}");
        }
    }

    #[test]
    fn jwks_timing_overrides_apply_per_environment_and_are_checked() {
        let e = env(&[
            ("ENVIRONMENT", "test"),
            ("ORIGIN_URL", "http://127.0.0.1:9000"),
            ("GATEWAY_ISSUERS", ISSUERS),
        ])
        .unwrap();
        assert_eq!(e.jwks_timing["machines"].default_ttl_ms, 2_000);
        assert_eq!(e.jwks_timing["machines"].min_ttl_ms, 1_000);
        assert_eq!(
            e.jwks_timing["users"].default_ttl_ms, 300_000,
            "policy default"
        );
        let bad = r#"{"users": {"issuer": "x", "jwks_refetch_interval_seconds": 0}, "machines": {"issuer": "y"}, "internal": null}"#;
        let err = env(&[
            ("ENVIRONMENT", "test"),
            ("ORIGIN_URL", "http://127.0.0.1:9000"),
            ("GATEWAY_ISSUERS", bad),
        ])
        .unwrap_err();
        assert!(
            err.contains("GATEWAY_ISSUERS.users.jwks_refetch_interval_seconds: must be between"),
            "{err}"
        );
        let typo = r#"{"users": {"issuer": "x", "jwks_ttl": 5}, "machines": {"issuer": "y"}, "internal": null}"#;
        let err = env(&[
            ("ENVIRONMENT", "test"),
            ("ORIGIN_URL", "http://127.0.0.1:9000"),
            ("GATEWAY_ISSUERS", typo),
        ])
        .unwrap_err();
        assert!(err.contains("unknown field `jwks_ttl`"), "{err}");
    }

    #[test]
    fn issuers_without_jwks_uri_need_static_keys() {
        let policy = policy();
        let e = env(&[
            ("ENVIRONMENT", "test"),
            ("ORIGIN_URL", "http://127.0.0.1:9000"),
            ("GATEWAY_ISSUERS", ISSUERS),
        ])
        .unwrap();
        let check = |secret: Option<&str>| {
            e.check_static_keys(&policy, secret)
                .map_err(|e| e.to_string())
        };
        assert!(
            check(None)
                .unwrap_err()
                .contains("GATEWAY_STATIC_JWKS: is not set, but issuer 'internal'")
        );
        assert!(
            check(Some("{"))
                .unwrap_err()
                .contains("GATEWAY_STATIC_JWKS: not a JSON object")
        );
        assert!(
            check(Some(r#"{"users": {"keys": []}}"#))
                .unwrap_err()
                .contains("no key usable by issuer 'internal'")
        );
        let ec_key =
            r#"{"internal": {"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}]}}"#;
        assert!(
            check(Some(ec_key)).is_err(),
            "an EC key cannot serve an HS256 issuer"
        );
        check(Some(
            r#"{"internal": {"keys": [{"kty": "oct", "k": "c2VjcmV0c2VjcmV0", "kid": "i1"}]}}"#,
        ))
        .unwrap();
    }

    #[test]
    fn discovery() {
        assert_eq!(
            discovery_url("https://auth.example.com/"),
            "https://auth.example.com/.well-known/openid-configuration"
        );
        let doc = r#"{"issuer": "https://auth.example.com/", "jwks_uri": "https://auth.example.com/keys", "x": 1}"#;
        assert_eq!(
            jwks_uri_from_discovery(doc, "https://auth.example.com/").unwrap(),
            "https://auth.example.com/keys"
        );
        assert!(
            jwks_uri_from_discovery(doc, "https://auth.example.com")
                .unwrap_err()
                .contains("names issuer")
        );
        let evil =
            r#"{"issuer": "https://a.example.com", "jwks_uri": "http://evil.example.com/keys"}"#;
        assert!(
            jwks_uri_from_discovery(evil, "https://a.example.com")
                .unwrap_err()
                .contains("plain http")
        );
        assert!(jwks_uri_from_discovery("{}", "x").is_err());
        let both = r#"{"users": {"issuer": "https://u.example.com", "jwks_uri": "https://u.example.com/k", "discovery": true}, "machines": null, "internal": null}"#;
        let err = env(&[
            ("ENVIRONMENT", "test"),
            ("ORIGIN_URL", "http://127.0.0.1:9000"),
            ("GATEWAY_ISSUERS", both),
        ])
        .unwrap_err();
        assert!(
            err.contains("GATEWAY_ISSUERS.users.discovery: give either"),
            "{err}"
        );
        let bad_issuer = r#"{"users": {"issuer": "urn:x", "discovery": true}, "machines": null, "internal": null}"#;
        let err = env(&[
            ("ENVIRONMENT", "test"),
            ("ORIGIN_URL", "http://127.0.0.1:9000"),
            ("GATEWAY_ISSUERS", bad_issuer),
        ])
        .unwrap_err();
        assert!(
            err.contains("GATEWAY_ISSUERS.users.issuer: discovery needs"),
            "{err}"
        );
        let ok = r#"{"users": {"issuer": "https://u.example.com", "discovery": true}, "machines": null, "internal": null}"#;
        let e = env(&[
            ("ENVIRONMENT", "test"),
            ("ORIGIN_URL", "http://127.0.0.1:9000"),
            ("GATEWAY_ISSUERS", ok),
        ])
        .unwrap();
        assert_eq!(
            e.issuers["users"].key_source(),
            KeySource::Discovery("https://u.example.com/.well-known/openid-configuration".into())
        );
    }

    #[test]
    fn null_disables_an_issuer_in_one_environment() {
        let issuers =
            r#"{"users": {"issuer": "https://u.example.com"}, "machines": null, "internal": null}"#;
        let e = env(&[
            ("ENVIRONMENT", "test"),
            ("ORIGIN_URL", "http://127.0.0.1:9000"),
            ("GATEWAY_ISSUERS", issuers),
        ])
        .unwrap();
        assert!(e.issuers.contains_key("users"));
        assert!(!e.issuers.contains_key("machines"));
        assert!(!e.jwks_timing.contains_key("machines"));
    }

    #[test]
    fn origin_join_keeps_the_matched_path_and_raw_query() {
        let o = OriginUrl::parse("https://origin.example.com/base/").unwrap();
        let p = normalise("/api/transactions").unwrap();
        assert_eq!(
            o.join(&p, Some("a=%20b&c")),
            "https://origin.example.com/base/api/transactions?a=%20b&c"
        );
        assert_eq!(
            o.join(&p, Some("")),
            "https://origin.example.com/base/api/transactions"
        );
        assert_eq!(
            o.join(&p, None),
            "https://origin.example.com/base/api/transactions"
        );
        assert_eq!(
            o.request_target(&p, Some("a=1")),
            "/base/api/transactions?a=1"
        );
        let bare = OriginUrl::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(bare.request_target(&p, None), "/api/transactions");
    }

    #[test]
    fn loopback_hosts() {
        for ok in [
            "http://127.0.0.1:1",
            "http://localhost",
            "http://[::1]:8080/x",
            "http://127.5.5.5",
        ] {
            check_url(ok).unwrap();
        }
        for bad in [
            "http://127.example.com",
            "http://localhost.evil.com",
            "http://[::2]",
        ] {
            check_url(bad).unwrap_err();
        }
    }
}
