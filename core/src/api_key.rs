//! API-key migration mode: the way off static API keys that does not break customers while
//! they move to OAuth.
//!
//! With `[api_keys]` in the policy (off by default), bearer routes also accept a listed legacy
//! key in the configured header. The keys are stored only as SHA-256 hashes, in the
//! `GATEWAY_API_KEYS` Worker secret; a presented key is hashed and compared with every listed
//! hash in constant time. Each key maps to an organisation (of the configured issuer, so its
//! requests share that organisation's rate-limit object and revocations), a tier and scopes.
//! Every answer to a key-authenticated request carries `Deprecation` (RFC 9745), `Sunset`
//! (RFC 8594) and a `Link` to the migration guide; from the key's sunset on it is refused with
//! 401 `api_key_expired`. Keys are high-entropy random strings (at least 128 bits), so a plain
//! SHA-256 is the right hash: nothing to brute-force.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{ApiKeyPolicy, Policy};
use crate::error::GatewayError;
use crate::identity::{IssuerName, KeyIdentity, OrgId, Scope, TierName, VerifiedClaims};
use crate::time::{UnixMillis, http_date, parse_rfc3339_utc};

/// The subject a legacy key's requests carry: `api-key:<id>`.
pub const SUBJECT_PREFIX: &str = "api-key:";

/// Longest key accepted in the header.
pub const MAX_KEY_LEN: usize = 256;

/// One listed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id (logs, `X-Gateway-Subject: api-key:<id>`); never the key.
    pub id: String,
    digest: [u8; 32],
    /// The organisation.
    pub org: String,
    /// The tier.
    pub tier: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The cut-off, Unix seconds: refused from then on.
    pub sunset: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    id: String,
    sha256: String,
    org: String,
    tier: String,
    #[serde(default)]
    scopes: Vec<String>,
    sunset: String,
}

/// The listed keys (the parsed `GATEWAY_API_KEYS` secret).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiKeySet {
    keys: Vec<ApiKey>,
}

impl ApiKeySet {
    /// Parses and checks the secret; errors name the entry and never echo a hash.
    pub fn from_json(text: &str, policy: &Policy) -> Result<ApiKeySet, String> {
        let file: KeyFile = serde_json::from_str(text)
            .map_err(|e| format!("not the API-key list format ({})", e.classify_text()))?;
        let mut keys: Vec<ApiKey> = Vec::with_capacity(file.keys.len());
        for (i, k) in file.keys.into_iter().enumerate() {
            let at = format!("keys[{i}]");
            let id_ok = !k.id.is_empty()
                && k.id.len() <= 64
                && k.id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !id_ok {
                return Err(format!("{at}.id: 1-64 of [A-Za-z0-9._-]"));
            }
            if keys.iter().any(|other| other.id == k.id) {
                return Err(format!("{at}.id: '{}' is listed twice", k.id));
            }
            let digest = crate::encoding::decode_hex32(&k.sha256)
                .ok_or_else(|| format!("{at}.sha256: not 64 hex digits"))?;
            if keys.iter().any(|other| other.digest == digest) {
                return Err(format!("{at}.sha256: the same key is listed twice"));
            }
            if k.org.is_empty() || k.org.len() > 256 {
                return Err(format!("{at}.org: 1-256 bytes"));
            }
            if !policy.tiers.contains_key(&k.tier) {
                return Err(format!("{at}.tier: no tier named '{}'", k.tier));
            }
            let sunset = parse_rfc3339_utc(&k.sunset)
                .ok_or_else(|| format!("{at}.sunset: not YYYY-MM-DDTHH:MM:SSZ"))?;
            keys.push(ApiKey {
                id: k.id,
                digest,
                org: k.org,
                tier: k.tier,
                scopes: k.scopes,
                sunset,
            });
        }
        Ok(ApiKeySet { keys })
    }

    /// The latest sunset among the keys of `org` (and, given, of the subject `api-key:<id>`):
    /// how long a revocation covering them must live.
    pub fn latest_sunset(&self, org: &str, subject: Option<&str>) -> Option<u64> {
        self.keys
            .iter()
            .filter(|k| k.org == org)
            .filter(|k| {
                subject.is_none_or(|s| s.strip_prefix(SUBJECT_PREFIX) == Some(k.id.as_str()))
            })
            .map(|k| k.sunset)
            .max()
    }

    /// Keys listed.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is listed.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The listed key matching `presented`: its SHA-256 is compared with every listed hash,
    /// each comparison in constant time and none skipped.
    pub fn find(&self, presented: &str) -> Option<&ApiKey> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for key in &self.keys {
            let diff = key
                .digest
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if std::hint::black_box(diff) == 0 {
                found = Some(key);
            }
        }
        found
    }

    /// Authenticates a presented key: the caller, or 401 `invalid_api_key` /
    /// `api_key_expired`.
    pub fn authenticate(
        &self,
        presented: &str,
        settings: &ApiKeyPolicy,
        policy: &Policy,
        now: UnixMillis,
    ) -> Result<(VerifiedClaims, &ApiKey), GatewayError> {
        let well_formed = !presented.is_empty()
            && presented.len() <= MAX_KEY_LEN
            && presented.bytes().all(|b| b.is_ascii_graphic());
        let key = well_formed
            .then(|| self.find(presented))
            .flatten()
            .ok_or(GatewayError::InvalidApiKey)?;
        if now.as_secs() >= key.sunset {
            return Err(GatewayError::ApiKeyExpired {
                sunset: http_date(key.sunset),
                guide: settings.migration_guide.clone(),
            });
        }
        let tier = policy
            .override_tier(&settings.issuer, &key.org)
            .unwrap_or(&key.tier);
        let caller = VerifiedClaims::from_api_key(KeyIdentity {
            issuer: IssuerName::new(settings.issuer.as_str()),
            subject: format!("{SUBJECT_PREFIX}{}", key.id),
            key_id: key.id.clone(),
            org: OrgId(key.org.clone()),
            tier: TierName::new(tier),
            scopes: key.scopes.iter().map(|s| Scope::new(s.as_str())).collect(),
            sunset: key.sunset,
        });
        Ok((caller, key))
    }
}

/// The headers on every answer to a request made with a legacy key: `Deprecation` (since
/// when), `Sunset` (the key's cut-off) and `Link`s to the migration guide.
pub fn deprecation_headers(
    settings: &ApiKeyPolicy,
    sunset: u64,
    deprecated_since: u64,
) -> Vec<(&'static str, String)> {
    vec![
        ("deprecation", format!("@{deprecated_since}")),
        ("sunset", http_date(sunset)),
        (
            "link",
            format!(
                "<{guide}>; rel=\"deprecation\"; type=\"text/html\", <{guide}>; rel=\"sunset\"; type=\"text/html\"",
                guide = settings.migration_guide
            ),
        ),
    ]
}

trait ClassifyText {
    fn classify_text(&self) -> &'static str;
}

impl ClassifyText for serde_json::Error {
    fn classify_text(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Data => "an unexpected, missing or mistyped field",
            _ => "malformed JSON",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::from_json(
            &serde_json::json!({
                "tiers": {"free": {"windows": [{"limit": 100, "seconds": 60}]},
                          "pro": {"windows": [{"limit": 1000, "seconds": 60}]}},
                "issuers": [{"name": "machines", "audiences": ["a"], "algorithms": ["RS256"]}],
                "routes": [{"id": "r", "method": "GET", "path": "/r"}],
                "org_overrides": [{"org": "globex", "tier": "free"}],
                "api_keys": {"issuer": "machines", "migration_guide": "https://example.com/migrate",
                             "deprecated_since": "2026-11-01T00:00:00Z"}
            })
            .to_string(),
        )
        .unwrap()
    }

    fn sha(key: &str) -> String {
        Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn set(entries: serde_json::Value) -> Result<ApiKeySet, String> {
        ApiKeySet::from_json(
            &serde_json::json!({ "keys": entries }).to_string(),
            &policy(),
        )
    }

    #[test]
    fn a_listed_key_maps_to_its_org_tier_and_scopes_until_its_sunset() {
        let p = policy();
        let settings = p.api_keys.clone().unwrap();
        let keys = set(serde_json::json!([
            {"id": "acme-legacy", "sha256": sha("sk_live_acme_0123456789abcdef"), "org": "acme",
             "tier": "pro", "scopes": ["transactions:read"], "sunset": "2026-12-15T00:00:00Z"},
            {"id": "globex-legacy", "sha256": sha("sk_live_globex_0123456789abcdef").to_uppercase(),
             "org": "globex", "tier": "pro", "sunset": "2026-12-15T00:00:00Z"}
        ]))
        .unwrap();
        let before = UnixMillis(parse_rfc3339_utc("2026-12-14T23:59:59Z").unwrap() * 1000);
        let (claims, key) = keys
            .authenticate("sk_live_acme_0123456789abcdef", &settings, &p, before)
            .unwrap();
        assert_eq!(key.id, "acme-legacy");
        assert_eq!(claims.issuer(), "machines");
        assert_eq!(claims.subject(), "api-key:acme-legacy");
        assert_eq!(claims.org().0, "acme");
        assert_eq!(claims.tier(), "pro");
        assert_eq!(claims.scopes(), ["transactions:read"]);
        assert_eq!(claims.api_key(), Some("acme-legacy"));
        // The operator's override applies to keys as to tokens.
        let (claims, _) = keys
            .authenticate("sk_live_globex_0123456789abcdef", &settings, &p, before)
            .unwrap();
        assert_eq!(claims.tier(), "free");
        let dec15 = parse_rfc3339_utc("2026-12-15T00:00:00Z").unwrap();
        assert_eq!(keys.latest_sunset("acme", None), Some(dec15));
        assert_eq!(
            keys.latest_sunset("acme", Some("api-key:acme-legacy")),
            Some(dec15)
        );
        assert_eq!(
            keys.latest_sunset("acme", Some("api-key:globex-legacy")),
            None
        );
        assert_eq!(keys.latest_sunset("acme", Some("alice")), None);
        assert_eq!(keys.latest_sunset("initech", None), None);
        // At the sunset: refused, saying when and where to go.
        let at = UnixMillis(parse_rfc3339_utc("2026-12-15T00:00:00Z").unwrap() * 1000);
        let err = keys
            .authenticate("sk_live_acme_0123456789abcdef", &settings, &p, at)
            .unwrap_err();
        assert_eq!(
            err,
            GatewayError::ApiKeyExpired {
                sunset: "Tue, 15 Dec 2026 00:00:00 GMT".into(),
                guide: "https://example.com/migrate".into()
            }
        );
        for wrong in [
            "sk_live_acme_0123456789abcdeF",
            "",
            "sk live",
            &"x".repeat(300),
        ] {
            assert_eq!(
                keys.authenticate(wrong, &settings, &p, before).unwrap_err(),
                GatewayError::InvalidApiKey,
                "{wrong}"
            );
        }
    }

    #[test]
    fn the_secret_is_checked_entry_by_entry_without_echoing_hashes() {
        let ok = |over: serde_json::Value| {
            let mut e = serde_json::json!({"id": "k", "sha256": sha("a"), "org": "o", "tier": "pro",
                                           "sunset": "2026-12-15T00:00:00Z"});
            for (k, v) in over.as_object().unwrap() {
                e[k] = v.clone();
            }
            set(serde_json::json!([e]))
        };
        assert!(ok(serde_json::json!({})).is_ok());
        let bad = [
            (serde_json::json!({"id": ""}), "keys[0].id"),
            (serde_json::json!({"sha256": "abc"}), "keys[0].sha256"),
            (serde_json::json!({"tier": "gold"}), "no tier named 'gold'"),
            (serde_json::json!({"sunset": "next year"}), "keys[0].sunset"),
            (serde_json::json!({"org": ""}), "keys[0].org"),
            (serde_json::json!({"key": "sk_plain"}), "unexpected"),
        ];
        for (over, needle) in bad {
            let err = ok(over.clone()).unwrap_err();
            assert!(err.contains(needle), "{over}: {err}");
            assert!(!err.contains(&sha("a")), "{err}");
        }
        let twice = set(serde_json::json!([
            {"id": "a", "sha256": sha("x"), "org": "o", "tier": "pro", "sunset": "2026-12-15T00:00:00Z"},
            {"id": "b", "sha256": sha("x"), "org": "o", "tier": "pro", "sunset": "2026-12-15T00:00:00Z"}
        ]));
        assert!(twice.unwrap_err().contains("listed twice"));
        assert!(ApiKeySet::from_json("not json", &policy()).is_err());
    }

    #[test]
    fn responses_carry_deprecation_sunset_and_the_guide() {
        let p = policy();
        let headers =
            deprecation_headers(p.api_keys.as_ref().unwrap(), 1_797_292_800, 1_793_491_200);
        assert_eq!(headers[0], ("deprecation", "@1793491200".to_owned()));
        assert_eq!(
            headers[1],
            ("sunset", "Tue, 15 Dec 2026 00:00:00 GMT".to_owned())
        );
        assert!(
            headers[2]
                .1
                .contains("<https://example.com/migrate>; rel=\"deprecation\"")
        );
    }
}
