//! The committed mapping agrees with the gateway: every environment it syncs is one of
//! wrangler.toml's (script `edge-gateway` / `edge-gateway-<env>`), and every secret it writes is
//! one the Worker reads (`gateway_core::names::secrets`), in the format the Worker expects.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use gateway_core::names::secrets;
use secrets_sync::mapping::{Format, Mapping};

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn the_committed_mapping_matches_the_worker() {
    let mapping = Mapping::parse(&read("secrets-sync.toml")).unwrap();
    let wrangler: toml::Table = toml::from_str(&read("wrangler.toml")).unwrap();
    let base = wrangler["name"].as_str().unwrap();
    let policy = gateway_core::config::Policy::from_toml(&read("gateway.toml"))
        .unwrap()
        .0;
    for name in ["dev", "staging", "production"] {
        let env = mapping.environment(name).unwrap();
        let expected = if name == "dev" {
            base.to_owned()
        } else {
            assert!(
                wrangler["env"].get(name).is_some(),
                "wrangler.toml has no env.{name}"
            );
            format!("{base}-{name}")
        };
        assert_eq!(env.worker, expected, "{name}");
        if name != "dev" {
            assert!(
                env.cloudflare.is_some(),
                "{name} needs a [cloudflare] section"
            );
            assert_eq!(
                env.auth.method(),
                "jwt",
                "{name}: CI logs in with OIDC, no stored credential"
            );
        }
        for s in &env.secrets {
            assert!(
                secrets::ALL.contains(&s.name.as_str()),
                "{name}: the Worker does not read {}",
                s.name
            );
            match s.format {
                Format::SigningKeyset => assert_eq!(s.name, secrets::SIGNING_KEYS),
                Format::OctJwks => {
                    assert_eq!(s.name, secrets::STATIC_JWKS);
                    let issuer = s.issuer.as_deref().unwrap();
                    assert!(
                        policy.issuer(issuer).is_some(),
                        "no issuer {issuer} in gateway.toml"
                    );
                }
                Format::Value => {}
            }
        }
        assert!(
            env.secrets.iter().any(|s| s.name == secrets::SIGNING_KEYS),
            "{name} must sync the origin signing keyset"
        );
    }
}
