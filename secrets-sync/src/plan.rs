//! Pure: from what was read in Vault to the Worker secrets' values, the fingerprint of the live
//! Vault versions, and what changes. No I/O; time is passed in.

use base64ct::Encoding as _;
use serde_json::json;

use crate::mapping::{FINGERPRINT_SECRET, Format, SecretMapping};

/// One version of a Vault value, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The key's value.
    pub value: String,
    /// KV v2 version (None for KV v1).
    pub version: Option<u64>,
    /// KV v2 `created_time`, Unix seconds.
    pub created: Option<u64>,
}

/// What was read for one mapping: the current version, the previous one (keysets), the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The current version.
    pub current: Read,
    /// The previous version, when the mapping is a keyset and it exists.
    pub previous: Option<Read>,
    /// The lease on the read, seconds (KV v1 `ttl`, dynamic secrets).
    pub lease_seconds: Option<u64>,
}

/// A Worker secret ready to write.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The Worker secret name.
    pub name: String,
    /// `mount/path#key`.
    pub source: String,
    /// The Vault versions it holds, newest first (empty for KV v1).
    pub versions: Vec<u64>,
    /// The value.
    pub value: String,
    /// The lease, seconds.
    pub lease_seconds: Option<u64>,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("versions", &self.versions)
            .finish_non_exhaustive()
    }
}

/// Whether the previous version is still inside its overlap at `now`.
pub fn previous_is_live(current_created: Option<u64>, overlap_seconds: u64, now: u64) -> bool {
    current_created.is_some_and(|created| now < created.saturating_add(overlap_seconds))
}

fn kid(read: &Read) -> String {
    read.version
        .map_or_else(|| "v0".to_owned(), |v| format!("v{v}"))
}

/// Checks a key secret: base64url (unpadded), at least 32 bytes.
fn check_key(name: &str, read: &Read) -> Result<(), String> {
    let bytes = base64ct::Base64UrlUnpadded::decode_vec(read.value.trim())
        .map_err(|_| format!("{name}: version {} is not unpadded base64url", kid(read)))?;
    if bytes.len() < 32 {
        return Err(format!(
            "{name}: version {} holds {} bytes; keys need at least 32",
            kid(read),
            bytes.len()
        ));
    }
    Ok(())
}

/// Renders one mapping's Worker secret at `now`.
pub fn render(mapping: &SecretMapping, fetched: &Fetched, now: u64) -> Result<Rendered, String> {
    let overlap = mapping.overlap_seconds.unwrap_or(0);
    let mut keys = vec![&fetched.current];
    if let Some(prev) = fetched
        .previous
        .as_ref()
        .filter(|_| mapping.format != Format::Value)
        .filter(|_| previous_is_live(fetched.current.created, overlap, now))
    {
        keys.push(prev);
    }
    let value = match mapping.format {
        Format::Value => fetched.current.value.clone(),
        Format::SigningKeyset => {
            for k in &keys {
                check_key(&mapping.name, k)?;
            }
            json!({
                "current": kid(&fetched.current),
                "keys": keys.iter().map(|k| json!({"kid": kid(k), "secret": k.value.trim()})).collect::<Vec<_>>(),
            })
            .to_string()
        }
        Format::OctJwks => {
            for k in &keys {
                check_key(&mapping.name, k)?;
            }
            let issuer = mapping.issuer.clone().unwrap_or_default();
            json!({ issuer: { "keys": keys.iter().map(|k| json!({"kty": "oct", "kid": kid(k), "alg": "HS256", "k": k.value.trim()})).collect::<Vec<_>>() } })
                .to_string()
        }
    };
    Ok(Rendered {
        name: mapping.name.clone(),
        source: mapping.source.display(),
        versions: keys.iter().filter_map(|k| k.version).collect(),
        value,
        lease_seconds: fetched.lease_seconds,
    })
}

/// The non-secret fingerprint of the live Vault versions, stored as `SECRETS_VERSION`:
/// `sv1;<NAME>=<mount/path#key>@<versions>;...` in mapping order (`@-` for unversioned KV v1).
pub fn fingerprint(rendered: &[Rendered]) -> String {
    let mut out = "sv1".to_owned();
    for r in rendered {
        let versions = if r.versions.is_empty() {
            "-".to_owned()
        } else {
            r.versions
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        out.push_str(&format!(";{}={}@{versions}", r.name, r.source));
    }
    out
}

/// The per-secret entries of a fingerprint: name -> `source@versions`.
pub fn fingerprint_entries(fp: &str) -> Vec<(String, String)> {
    fp.split(';')
        .skip(1)
        .filter_map(|e| e.split_once('='))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// A short tag for the fingerprint (`sv1-<12 hex of SHA-256>`), for places with little room.
pub fn fingerprint_tag(fp: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(fp.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("sv1-{hex}")
}

/// Whether a secret changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Not present before.
    Added,
    /// Present, different.
    Changed,
    /// Present, same.
    Unchanged,
}

impl Change {
    /// `added`, `changed`, `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Changed => "changed",
            Change::Unchanged => "unchanged",
        }
    }
}

/// The full set to write: the mapped secrets plus `SECRETS_VERSION`.
pub fn with_fingerprint(rendered: &[Rendered]) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = rendered
        .iter()
        .map(|r| (r.name.clone(), r.value.clone()))
        .collect();
    all.push((FINGERPRINT_SECRET.to_owned(), fingerprint(rendered)));
    all
}

/// When the next sync is due for leased values: the earliest lease end minus a quarter of that
/// lease (the margin), as Unix seconds; None when nothing is leased.
pub fn next_sync_due(rendered: &[Rendered], now: u64) -> Option<u64> {
    rendered
        .iter()
        .filter_map(|r| r.lease_seconds)
        .map(|lease| now.saturating_add(lease.saturating_sub(lease / 4)))
        .min()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::mapping::VaultRef;

    fn mapping(format: Format, overlap: Option<u64>) -> SecretMapping {
        SecretMapping {
            name: "GATEWAY_SIGNING_KEYS".into(),
            source: VaultRef {
                mount: "secret".into(),
                kv_version: 2,
                path: "gateway/dev/origin-signing".into(),
                key: "secret".into(),
            },
            format,
            overlap_seconds: overlap,
            issuer: (format == Format::OctJwks).then(|| "internal".to_owned()),
        }
    }

    fn key(n: u8) -> String {
        base64ct::Base64UrlUnpadded::encode_string(&[n; 32])
    }

    fn fetched() -> Fetched {
        Fetched {
            current: Read {
                value: key(2),
                version: Some(4),
                created: Some(1000),
            },
            previous: Some(Read {
                value: key(1),
                version: Some(3),
                created: Some(100),
            }),
            lease_seconds: None,
        }
    }

    #[test]
    fn a_keyset_holds_the_previous_key_only_during_the_overlap() {
        let m = mapping(Format::SigningKeyset, Some(900));
        let during = render(&m, &fetched(), 1899).unwrap();
        assert_eq!(during.versions, vec![4, 3]);
        let v: serde_json::Value = serde_json::from_str(&during.value).unwrap();
        assert_eq!(v["current"], "v4");
        assert_eq!(v["keys"][0]["secret"], key(2));
        assert_eq!(v["keys"][1]["kid"], "v3");
        let after = render(&m, &fetched(), 1900).unwrap();
        assert_eq!(after.versions, vec![4]);
        let v: serde_json::Value = serde_json::from_str(&after.value).unwrap();
        assert_eq!(v["keys"].as_array().unwrap().len(), 1);
        assert_ne!(fingerprint(&[during]), fingerprint(&[after]));
    }

    #[test]
    fn oct_jwks_for_an_issuer() {
        let m = mapping(Format::OctJwks, Some(60));
        let r = render(&m, &fetched(), 1000).unwrap();
        let v: serde_json::Value = serde_json::from_str(&r.value).unwrap();
        assert_eq!(v["internal"]["keys"][0]["kty"], "oct");
        assert_eq!(v["internal"]["keys"][0]["k"], key(2));
        assert_eq!(v["internal"]["keys"][1]["kid"], "v3");
    }

    #[test]
    fn weak_or_malformed_keys_are_refused_by_name() {
        let m = mapping(Format::SigningKeyset, Some(900));
        let mut f = fetched();
        f.current.value = base64ct::Base64UrlUnpadded::encode_string(&[1; 16]);
        let err = render(&m, &f, 1000).unwrap_err();
        assert!(
            err.contains("GATEWAY_SIGNING_KEYS") && err.contains("16 bytes"),
            "{err}"
        );
        f.current.value = "not base64!".into();
        let err = render(&m, &f, 1000).unwrap_err();
        assert!(
            !err.contains("not base64!"),
            "the value must not be echoed: {err}"
        );
    }

    #[test]
    fn fingerprints_name_sources_and_versions_only() {
        let m = mapping(Format::Value, None);
        let mut f = fetched();
        f.current.value = "hunter2-very-secret".into();
        let r = render(&m, &f, 0).unwrap();
        let fp = fingerprint(std::slice::from_ref(&r));
        assert_eq!(
            fp,
            "sv1;GATEWAY_SIGNING_KEYS=secret/gateway/dev/origin-signing#secret@4"
        );
        assert!(!fp.contains("hunter2"));
        assert_eq!(
            fingerprint_entries(&fp),
            vec![(
                "GATEWAY_SIGNING_KEYS".to_owned(),
                "secret/gateway/dev/origin-signing#secret@4".to_owned()
            )]
        );
        assert!(fingerprint_tag(&fp).starts_with("sv1-"));
        assert_eq!(fingerprint_tag(&fp).len(), 16);
        let all = with_fingerprint(&[r]);
        assert_eq!(all[1].0, "SECRETS_VERSION");
        assert!(!format!("{all:?}").is_empty());
    }

    #[test]
    fn leased_values_set_the_next_sync() {
        let m = mapping(Format::Value, None);
        let mut f = fetched();
        f.lease_seconds = Some(3600);
        let r = render(&m, &f, 0).unwrap();
        assert_eq!(next_sync_due(&[r], 10_000), Some(10_000 + 2700));
        let unleased = render(&m, &fetched(), 0).unwrap();
        assert_eq!(next_sync_due(&[unleased], 0), None);
    }
}
