//! Authentication rules: everything about an access token that can be decided without I/O.
//!
//! The Worker does the I/O (JWKS fetch, WebCrypto verification, caches) and calls these in
//! order: [`bearer_token`] (header shape and size, before any parsing) -> [`parse`] (structure,
//! via `jwt-compact`) -> [`ParsedToken::issuer`] -> [`check_header`] (the algorithm is fixed by
//! the issuer's configuration and the key, never by the token) -> [`select_key`] -> signature
//! verification (Worker) -> [`validate_claims`].

use jwt_compact::{Claims, UntrustedToken};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::Policy;
use crate::env::{Environment, IssuerEndpoints};
use crate::error::GatewayError;
use crate::identity::{OrgId, VerifiedClaims};
use crate::issuer::{Algorithm, IssuerPolicy};
use crate::time::UnixMillis;

/// Tokens longer than this are refused before parsing.
pub const MAX_TOKEN_BYTES: usize = 8192;

fn is_token68_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// Extracts the bearer token from the `Authorization` header value (the runtime joins repeated
/// headers with `", "`, which this refuses, so exactly one header is accepted).
pub fn bearer_token(header: Option<&str>) -> Result<&str, GatewayError> {
    let Some(value) = header else {
        return Err(GatewayError::MissingToken);
    };
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Err(if value.eq_ignore_ascii_case("bearer") {
            GatewayError::InvalidRequest(
                "The Authorization header must be exactly one 'Bearer <token>'.",
            )
        } else {
            GatewayError::UnsupportedScheme
        });
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Basic, Digest, ApiKey...: only bearer access tokens are accepted.
        return Err(GatewayError::UnsupportedScheme);
    }
    let token = rest.trim_start_matches(' ');
    if token.len() > MAX_TOKEN_BYTES {
        return Err(GatewayError::InvalidToken("the token is too large"));
    }
    if token.is_empty() || !token.bytes().all(is_token68_byte) {
        return Err(GatewayError::InvalidRequest(
            "The Authorization header must be exactly one 'Bearer <token>'.",
        ));
    }
    Ok(token)
}

/// Header members the gateway reads beyond those `jwt-compact` models.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExtraHeader {
    /// RFC 7515 `crit`: extensions the recipient must understand. The gateway understands none.
    #[serde(default)]
    pub crit: Option<Value>,
}

/// A structurally valid, not yet verified, token.
#[derive(Debug)]
pub struct ParsedToken<'a> {
    token: UntrustedToken<'static, ExtraHeader>,
    claims: Claims<Map<String, Value>>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

/// Parses the compact serialisation. Nothing in it is trusted yet.
///
/// jwt-compact parses the structure, the header and the claims. The signature, which is public
/// and the longest part (342 characters for RS256), is decoded by [`decode_base64url`] instead of
/// jwt-compact's constant-time `base64ct`: the same strict rules, several times faster, which is
/// most of the gateway's own per-token cost (BENCHMARKS.md).
pub fn parse(token: &str) -> Result<ParsedToken<'_>, GatewayError> {
    const MALFORMED: GatewayError = GatewayError::InvalidToken("the token is malformed");
    let (signing_input, encoded_signature) = token.rsplit_once('.').ok_or(MALFORMED)?;
    let signature = crate::encoding::decode_base64url(encoded_signature).ok_or(MALFORMED)?;
    let untrusted = UntrustedToken::<ExtraHeader>::try_from(format!("{signing_input}.").as_str())
        .map_err(|_| MALFORMED)?
        .into_owned();
    let claims = untrusted
        .deserialize_claims_unchecked::<Map<String, Value>>()
        .map_err(|_| GatewayError::InvalidToken("the token's claims are malformed"))?;
    Ok(ParsedToken {
        token: untrusted,
        claims,
        signing_input,
        signature,
    })
}

impl ParsedToken<'_> {
    /// The claimed issuer: which issuer's rules and keys apply. Matched exactly against the
    /// configured `issuer` values; a token from anyone else is refused here.
    pub fn issuer<'e>(
        &self,
        policy: &'e Policy,
        environment: &'e Environment,
    ) -> Result<(&'e IssuerPolicy, &'e IssuerEndpoints), GatewayError> {
        let iss = self
            .claims
            .custom
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(GatewayError::InvalidToken("the token has no issuer"))?;
        environment
            .issuers
            .iter()
            .find(|(_, e)| e.issuer == iss)
            .and_then(|(name, e)| policy.issuer(name).map(|p| (p, e)))
            .ok_or(GatewayError::InvalidToken(
                "the token's issuer is not trusted",
            ))
    }

    /// The `kid` header.
    pub fn key_id(&self) -> Option<&str> {
        self.token.header().key_id.as_deref()
    }

    /// The bytes the signature covers (`base64url(header) . base64url(claims)`).
    pub fn signing_input(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }

    /// The decoded signature.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

/// Checks the header against the issuer's rules and returns the algorithm to verify with.
pub fn check_header(
    token: &ParsedToken<'_>,
    issuer: &IssuerPolicy,
) -> Result<Algorithm, GatewayError> {
    let alg = token.token.algorithm();
    if alg.eq_ignore_ascii_case("none") {
        return Err(GatewayError::InvalidToken(
            "unsigned tokens are not accepted",
        ));
    }
    let algorithm = issuer
        .algorithms
        .iter()
        .copied()
        .find(|a| a.as_str() == alg)
        .ok_or(GatewayError::InvalidToken(
            "the token's algorithm is not accepted for its issuer",
        ))?;
    if token.token.header().other_fields.crit.is_some() {
        return Err(GatewayError::InvalidToken(
            "the token has critical header parameters",
        ));
    }
    if let Some(required) = &issuer.typ {
        let typ = token
            .token
            .header()
            .token_type
            .as_deref()
            .unwrap_or_default();
        let typ = typ.strip_prefix("application/").unwrap_or(typ);
        if !typ.eq_ignore_ascii_case(required) {
            return Err(GatewayError::InvalidToken(
                "the token is not an access token (typ)",
            ));
        }
    }
    Ok(algorithm)
}

/// The namespace of organisations made from a subject (`org_from_subject`): `sub:<sub>`.
pub const SUBJECT_ORG_PREFIX: &str = "sub:";

/// The `cnf` claim (RFC 7800): absent, or an object whose only confirmation method is
/// `x5t#S256` (RFC 8705) with a SHA-256 thumbprint. A token bound by a method the gateway
/// cannot check (`jkt` for DPoP, `jwk`...) is refused rather than accepted unbound.
fn certificate_binding(cnf: Option<&Value>) -> Result<Option<String>, GatewayError> {
    const MALFORMED: &str =
        "the token's confirmation (cnf) claim is malformed or uses an unsupported method";
    let Some(cnf) = cnf else {
        return Ok(None);
    };
    let object = cnf
        .as_object()
        .ok_or(GatewayError::InvalidToken(MALFORMED))?;
    if object.keys().any(|k| k != "x5t#S256") {
        return Err(GatewayError::InvalidToken(MALFORMED));
    }
    match object.get("x5t#S256") {
        Some(Value::String(t))
            if crate::encoding::decode_base64url(t).is_some_and(|b| b.len() == 32) =>
        {
            Ok(Some(t.clone()))
        }
        _ => Err(GatewayError::InvalidToken(MALFORMED)),
    }
}

/// Validates the claims of a token whose signature has been verified, and derives the caller.
pub fn validate_claims(
    token: &ParsedToken<'_>,
    issuer: &IssuerPolicy,
    policy: &Policy,
    now: UnixMillis,
) -> Result<VerifiedClaims, GatewayError> {
    let now_s = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let leeway = i64::try_from(issuer.leeway_seconds).unwrap_or(0);
    let claims = &token.claims;
    let custom = &claims.custom;

    let exp = claims
        .expiration
        .map(|t| t.timestamp())
        .ok_or(GatewayError::InvalidToken("the token has no expiry"))?;
    if now_s > exp.saturating_add(leeway) {
        return Err(GatewayError::TokenExpired);
    }
    if claims
        .not_before
        .is_some_and(|nbf| nbf.timestamp() > now_s.saturating_add(leeway))
    {
        return Err(GatewayError::InvalidToken("the token is not valid yet"));
    }
    // Every issuer caps lifetimes (`max_lifetime_seconds`), and the cap is measured from `iat`;
    // revocations by issue time need it too. RFC 9068 access tokens always carry it.
    let iat = claims
        .issued_at
        .map(|t| t.timestamp())
        .ok_or(GatewayError::InvalidToken(
            "the token has no issue time (iat)",
        ))?;
    if iat > now_s.saturating_add(leeway) {
        return Err(GatewayError::InvalidToken(
            "the token was issued in the future",
        ));
    }
    let lifetime = exp.saturating_sub(iat);
    if lifetime > i64::try_from(issuer.max_lifetime_seconds).unwrap_or(i64::MAX) {
        return Err(GatewayError::InvalidToken(
            "the token's lifetime exceeds the allowed maximum",
        ));
    }

    let audience_ok = match custom.get("aud") {
        Some(Value::String(aud)) => issuer.audiences.contains(aud),
        Some(Value::Array(auds)) => auds
            .iter()
            .filter_map(Value::as_str)
            .any(|a| issuer.audiences.iter().any(|x| x == a)),
        _ => false,
    };
    if !audience_ok {
        return Err(GatewayError::InvalidToken(
            "the token is not for this API (audience)",
        ));
    }

    let subject = match custom.get("sub") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(GatewayError::InvalidToken("the token has no subject")),
    };
    let org = match custom.get(&issuer.org_claim) {
        Some(Value::String(s)) if s.starts_with(SUBJECT_ORG_PREFIX) => {
            return Err(GatewayError::InvalidToken(
                "the token's organisation claim uses the reserved sub: namespace",
            ));
        }
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        None | Some(Value::Null) if issuer.org_from_subject => {
            format!("{SUBJECT_ORG_PREFIX}{subject}")
        }
        None | Some(Value::Null) => {
            return Err(GatewayError::InvalidToken(
                "the token has no organisation claim",
            ));
        }
        Some(_) => {
            return Err(GatewayError::InvalidToken(
                "the token's organisation claim is malformed",
            ));
        }
    };
    let claimed_tier = custom.get(&issuer.tier_claim).and_then(Value::as_str);
    // An operator's override for the organisation wins over the token's claim.
    let tier = match policy.override_tier(&issuer.name, &org) {
        Some(tier) => tier,
        None => policy.tier_or_fallback(claimed_tier).0,
    };
    let scopes = match (custom.get("scope"), custom.get("scp")) {
        (Some(Value::String(s)), _) => s
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        (None, Some(Value::Array(a))) => {
            let scopes: Option<Vec<String>> =
                a.iter().map(|v| v.as_str().map(str::to_owned)).collect();
            scopes.ok_or(GatewayError::InvalidToken(
                "the token's scopes are malformed",
            ))?
        }
        (None, None) => Vec::new(),
        _ => {
            return Err(GatewayError::InvalidToken(
                "the token's scopes are malformed",
            ));
        }
    };
    let token_id = custom.get("jti").and_then(Value::as_str).map(str::to_owned);
    let permissions = match issuer
        .permissions_claim
        .as_ref()
        .and_then(|c| custom.get(c))
    {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(GatewayError::InvalidToken(
                "the token's permissions are malformed",
            ))?,
        Some(_) => {
            return Err(GatewayError::InvalidToken(
                "the token's permissions are malformed",
            ));
        }
    };

    Ok(VerifiedClaims {
        issuer: issuer.name.clone(),
        subject,
        org: OrgId(org),
        tier: tier.to_owned(),
        scopes,
        token_id,
        permissions,
        expires_at: u64::try_from(exp).unwrap_or(0),
        issued_at: u64::try_from(iat).ok(),
        api_key: None,
        cert_thumbprint: certificate_binding(custom.get("cnf"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwk::{Jwk, JwkSet, KeyMiss, select_key};
    use base64ct::{Base64UrlUnpadded, Encoding};
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn policy() -> Policy {
        Policy::from_toml(include_str!("../../gateway.toml"))
            .unwrap()
            .0
    }

    fn environment(policy: &Policy) -> Environment {
        let issuers = r#"{"users": {"issuer": "https://issuer.example.com", "jwks_uri": "https://issuer.example.com/jwks"},
                          "machines": {"issuer": "https://machines.example.com", "jwks_uri": "https://machines.example.com/jwks"},
                          "internal": null}"#;
        Environment::from_vars(policy, |name| {
            match name {
                "ENVIRONMENT" => Some("test"),
                "ORIGIN_URL" => Some("https://origin.example.com"),
                "GATEWAY_ISSUERS" => Some(issuers),
                _ => None,
            }
            .map(str::to_owned)
        })
        .unwrap()
    }

    fn b64(v: &Value) -> String {
        Base64UrlUnpadded::encode_string(v.to_string().as_bytes())
    }

    fn good_header() -> Value {
        json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1"})
    }

    fn good_claims() -> Value {
        json!({
            "iss": "https://issuer.example.com", "aud": "https://api.example.com", "sub": "client-acme",
            "org_id": "acme", "tier": "pro", "scope": "transactions:read reports:generate",
            "iat": NOW - 10, "exp": NOW + 890, "jti": "j1"
        })
    }

    fn token(header: &Value, claims: &Value) -> String {
        format!("{}.{}.c2ln", b64(header), b64(claims))
    }

    fn with(mut v: Value, key: &str, value: Value) -> Value {
        if value.is_null() {
            v.as_object_mut().unwrap().remove(key);
        } else {
            v[key] = value;
        }
        v
    }

    /// Runs every pure step; `Ok` holds the verified caller.
    fn check_all(header: &Value, claims: &Value, now: u64) -> Result<VerifiedClaims, GatewayError> {
        let policy = policy();
        let env = environment(&policy);
        let text = token(header, claims);
        let parsed = parse(&text)?;
        let (issuer, _) = parsed.issuer(&policy, &env)?;
        check_header(&parsed, issuer)?;
        validate_claims(&parsed, issuer, &policy, UnixMillis(now * 1000))
    }

    fn check(header: Value, claims: Value, expected: Result<(), GatewayError>) {
        let got = check_all(&header, &claims, NOW).map(|_| ());
        assert_eq!(got, expected, "header {header} claims {claims}");
    }

    fn invalid(why: &'static str) -> Result<(), GatewayError> {
        Err(GatewayError::InvalidToken(why))
    }

    #[test]
    fn certificate_binding_is_read_from_cnf_and_other_bindings_are_refused() {
        let h = || json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1"});
        let x5t = Base64UrlUnpadded::encode_string(&[7u8; 32]);
        let bound = check_all(
            &h(),
            &with(good_claims(), "cnf", json!({"x5t#S256": x5t})),
            NOW,
        )
        .unwrap();
        assert_eq!(bound.cert_thumbprint.as_deref(), Some(x5t.as_str()));
        assert_eq!(bound.issued_at, Some(NOW - 10));
        let unbound = check_all(&h(), &good_claims(), NOW).unwrap();
        assert_eq!(unbound.cert_thumbprint, None);
        let refused = invalid(
            "the token's confirmation (cnf) claim is malformed or uses an unsupported method",
        );
        for cnf in [
            json!("x5t"),
            json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}),
            json!({"x5t#S256": x5t, "jkt": "abc"}),
            json!({"x5t#S256": Base64UrlUnpadded::encode_string(&[7u8; 20])}),
            json!({"x5t#S256": "not base64url!"}),
            json!({"x5t#S256": 5}),
            json!({}),
        ] {
            check(h(), with(good_claims(), "cnf", cnf), refused.clone());
        }
    }

    #[test]
    fn base64url_decoding_agrees_with_base64ct() {
        // Exhaustive over short strings of a small alphabet that includes every edge: the last
        // characters with and without spare bits set, padding, and the standard alphabet.
        let alphabet = b"AQgw-_=+/aB9";
        let mut checked = 0;
        for len in 0..=5u32 {
            let count = alphabet.len().pow(len);
            for mut index in 0..count {
                let mut s = String::new();
                for _ in 0..len {
                    s.push(char::from(alphabet[index % alphabet.len()]));
                    index /= alphabet.len();
                }
                assert_eq!(
                    crate::encoding::decode_base64url(&s),
                    Base64UrlUnpadded::decode_vec(&s).ok(),
                    "{s:?}"
                );
                checked += 1;
            }
        }
        assert!(checked > 200_000);
        // Long inputs: every byte value round-trips.
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for cut in [0, 1, 2, 3, 256, 999, 1000] {
            let encoded = Base64UrlUnpadded::encode_string(&data[..cut]);
            assert_eq!(
                crate::encoding::decode_base64url(&encoded).as_deref(),
                Some(&data[..cut])
            );
        }
    }

    #[test]
    fn bearer_header_shapes() {
        let malformed = Err(GatewayError::InvalidRequest(
            "The Authorization header must be exactly one 'Bearer <token>'.",
        ));
        for (header, expected) in [
            (None, Err(GatewayError::MissingToken)),
            (
                Some("Basic YWxpY2U6c2VjcmV0"),
                Err(GatewayError::UnsupportedScheme),
            ),
            (Some("Token abc"), Err(GatewayError::UnsupportedScheme)),
            (Some("ApiKey"), Err(GatewayError::UnsupportedScheme)),
            (Some("Bearer"), malformed.clone()),
            (Some("Bearer "), malformed.clone()),
            (Some("Bearer a b"), malformed.clone()),
            (Some("Bearer a.b.c, Bearer d.e.f"), malformed.clone()),
            (Some("Bearer a\"b"), malformed),
            (Some("Bearer a.b.c"), Ok("a.b.c")),
            (Some("bearer a.b.c"), Ok("a.b.c")),
            (Some("BEARER  a-b_c.d~e+f/g=="), Ok("a-b_c.d~e+f/g==")),
        ] {
            assert_eq!(bearer_token(header), expected, "{header:?}");
        }
        let big = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert_eq!(
            bearer_token(Some(&big)),
            Err(GatewayError::InvalidToken("the token is too large"))
        );
        let limit = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES));
        assert!(bearer_token(Some(&limit)).is_ok());
    }

    #[test]
    fn a_good_token_yields_the_caller() {
        let caller = check_all(&good_header(), &good_claims(), NOW).unwrap();
        assert_eq!(caller.issuer, "users");
        assert_eq!(caller.subject, "client-acme");
        assert_eq!(caller.org, OrgId("acme".into()));
        assert_eq!(caller.tier, "pro");
        assert_eq!(caller.scopes, ["transactions:read", "reports:generate"]);
        assert_eq!(caller.token_id.as_deref(), Some("j1"));
        assert_eq!(caller.expires_at, NOW + 890);
    }

    #[test]
    fn header_attacks_are_refused() {
        let c = good_claims;
        check(
            with(good_header(), "alg", json!("none")),
            c(),
            invalid("unsigned tokens are not accepted"),
        );
        check(
            with(good_header(), "alg", json!("NONE")),
            c(),
            invalid("unsigned tokens are not accepted"),
        );
        let wrong_alg = invalid("the token's algorithm is not accepted for its issuer");
        for alg in ["HS256", "RS256", "ES384", "es256", ""] {
            check(
                with(good_header(), "alg", json!(alg)),
                c(),
                wrong_alg.clone(),
            );
        }
        check(
            with(good_header(), "crit", json!(["b64"])),
            c(),
            invalid("the token has critical header parameters"),
        );
        let not_at = invalid("the token is not an access token (typ)");
        check(
            with(good_header(), "typ", json!("JWT")),
            c(),
            not_at.clone(),
        );
        check(with(good_header(), "typ", Value::Null), c(), not_at);
        check(
            with(good_header(), "typ", json!("application/at+jwt")),
            c(),
            Ok(()),
        );
        check(with(good_header(), "typ", json!("AT+JWT")), c(), Ok(()));
        // Key-location headers are never used: the token is judged as if they were absent.
        check(
            with(good_header(), "jku", json!("https://evil.example.com/jwks")),
            c(),
            Ok(()),
        );
        check(
            with(good_header(), "x5u", json!("https://evil.example.com/cert")),
            c(),
            Ok(()),
        );
    }

    #[test]
    fn structure_is_checked_before_anything_else() {
        for text in [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            "!!.e30.c2ln",
            "e30.!!.c2ln",
            "e30.e30.!!",
            "bm90IGpzb24.e30.c2ln",
        ] {
            assert!(
                matches!(parse(text), Err(GatewayError::InvalidToken(_))),
                "{text}"
            );
        }
        let claims_not_object = format!("{}.{}.c2ln", b64(&good_header()), b64(&json!([1, 2])));
        assert!(parse(&claims_not_object).is_err());
    }

    #[test]
    fn claim_rules() {
        let h = good_header;
        let c = good_claims;
        check(
            h(),
            with(c(), "exp", Value::Null),
            invalid("the token has no expiry"),
        );
        check(
            h(),
            with(c(), "exp", json!("soon")),
            invalid("the token's claims are malformed"),
        );
        check(
            h(),
            with(c(), "exp", json!(NOW - 6)),
            Err(GatewayError::TokenExpired),
        );
        check(h(), with(c(), "exp", json!(NOW - 5)), Ok(()));
        check(
            h(),
            with(c(), "nbf", json!(NOW + 6)),
            invalid("the token is not valid yet"),
        );
        check(h(), with(c(), "nbf", json!(NOW + 5)), Ok(()));
        check(
            h(),
            with(c(), "iat", json!(NOW + 6)),
            invalid("the token was issued in the future"),
        );
        let too_long = invalid("the token's lifetime exceeds the allowed maximum");
        check(
            h(),
            with(with(c(), "iat", json!(NOW)), "exp", json!(NOW + 3601)),
            too_long.clone(),
        );
        check(
            h(),
            with(with(c(), "iat", json!(NOW)), "exp", json!(NOW + 3600)),
            Ok(()),
        );
        check(
            h(),
            with(with(c(), "iat", json!(NOW - 3000)), "exp", json!(NOW + 601)),
            too_long,
        );
        // Without `iat` no lifetime can be checked, however short `exp` is: refused.
        for exp in [NOW + 1, NOW + 60, NOW + 3601] {
            check(
                h(),
                with(with(c(), "iat", Value::Null), "exp", json!(exp)),
                invalid("the token has no issue time (iat)"),
            );
        }
        let wrong_aud = invalid("the token is not for this API (audience)");
        check(h(), with(c(), "aud", Value::Null), wrong_aud.clone());
        check(
            h(),
            with(c(), "aud", json!("https://api.example.com/")),
            wrong_aud.clone(),
        );
        check(h(), with(c(), "aud", json!(["a", "b"])), wrong_aud.clone());
        check(
            h(),
            with(c(), "aud", json!({"aud": "https://api.example.com"})),
            wrong_aud,
        );
        check(
            h(),
            with(c(), "aud", json!(["a", "https://api.example.com"])),
            Ok(()),
        );
        check(
            h(),
            with(c(), "iss", json!("https://issuer.example.com/")),
            invalid("the token's issuer is not trusted"),
        );
        check(
            h(),
            with(c(), "iss", Value::Null),
            invalid("the token has no issuer"),
        );
        check(
            h(),
            with(c(), "sub", Value::Null),
            invalid("the token has no subject"),
        );
        check(
            h(),
            with(c(), "sub", json!("")),
            invalid("the token has no subject"),
        );
        check(
            h(),
            with(c(), "org_id", json!(42)),
            invalid("the token's organisation claim is malformed"),
        );
        check(
            h(),
            with(c(), "scope", json!(["a"])),
            invalid("the token's scopes are malformed"),
        );
        check(
            h(),
            with(with(c(), "scope", Value::Null), "scp", json!(["a", 1])),
            invalid("the token's scopes are malformed"),
        );
    }

    #[test]
    fn permissions_claim() {
        let caller = check_all(
            &good_header(),
            &with(good_claims(), "permissions", json!(["reports:*", "*"])),
            NOW,
        )
        .unwrap();
        assert_eq!(caller.permissions, ["reports:*", "*"]);
        assert!(
            check_all(&good_header(), &good_claims(), NOW)
                .unwrap()
                .permissions
                .is_empty()
        );
        check(
            good_header(),
            with(good_claims(), "permissions", json!("reports:*")),
            invalid("the token's permissions are malformed"),
        );
        check(
            good_header(),
            with(good_claims(), "permissions", json!(["a", 1])),
            invalid("the token's permissions are malformed"),
        );
    }

    #[test]
    fn an_issuer_may_make_the_subject_its_own_organisation_in_a_namespace() {
        let policy = policy();
        let env = environment(&policy);
        let claims = with(
            with(good_claims(), "org_id", Value::Null),
            "sub",
            json!("acme"),
        );
        let text = token(&good_header(), &claims);
        let parsed = parse(&text).unwrap();
        let (issuer, _) = parsed.issuer(&policy, &env).unwrap();
        let mut issuer = issuer.clone();
        issuer.org_from_subject = true;
        let caller = validate_claims(&parsed, &issuer, &policy, UnixMillis(NOW * 1000)).unwrap();
        // Subject "acme" is not organisation "acme": no shared budget, no shared revocations.
        assert_eq!(caller.org, OrgId("sub:acme".into()));
    }

    #[test]
    fn identity_fallbacks() {
        // No organisation claim: refused, unless the issuer makes the subject its own
        // organisation, in a namespace no claimed organisation can enter.
        assert_eq!(
            check_all(
                &good_header(),
                &with(good_claims(), "org_id", Value::Null),
                NOW,
            )
            .map(|c| c.org),
            Err(GatewayError::InvalidToken(
                "the token has no organisation claim"
            ))
        );
        assert_eq!(
            check_all(
                &good_header(),
                &with(good_claims(), "org_id", json!("sub:client-acme")),
                NOW,
            )
            .map(|c| c.org),
            Err(GatewayError::InvalidToken(
                "the token's organisation claim uses the reserved sub: namespace"
            ))
        );
        for tier in [json!("platinum"), json!(7), Value::Null] {
            let caller = check_all(
                &good_header(),
                &with(good_claims(), "tier", tier.clone()),
                NOW,
            )
            .unwrap();
            assert_eq!(caller.tier, "free", "{tier}");
        }
        let claims = with(
            with(good_claims(), "scope", Value::Null),
            "scp",
            json!(["x:read", "y:write"]),
        );
        assert_eq!(
            check_all(&good_header(), &claims, NOW).unwrap().scopes,
            ["x:read", "y:write"]
        );
        let claims = with(good_claims(), "scope", json!("  a   b "));
        assert_eq!(
            check_all(&good_header(), &claims, NOW).unwrap().scopes,
            ["a", "b"]
        );
    }

    fn jwk(v: Value) -> Jwk {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn key_selection() {
        let ec = |kid: &str| json!({"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": kid});
        let set = JwkSet {
            keys: vec![
                jwk(ec("a")),
                jwk(with(ec("b"), "use", json!("enc"))),
                jwk(with(ec("c"), "alg", json!("ES384"))),
                jwk(json!({"kty": "RSA", "n": "n", "e": "AQAB", "kid": "r"})),
                jwk(json!({"kty": "EC", "crv": "P-384", "x": "x", "y": "y", "kid": "p384"})),
            ],
        };
        assert_eq!(
            select_key(&set, Algorithm::ES256, Some("a"))
                .unwrap()
                .kid
                .as_deref(),
            Some("a")
        );
        for kid in ["b", "c", "r", "p384", "missing"] {
            assert_eq!(
                select_key(&set, Algorithm::ES256, Some(kid)),
                Err(KeyMiss::UnknownKid),
                "{kid}"
            );
        }
        // Without a kid, only an unambiguous fit is used.
        assert_eq!(
            select_key(&set, Algorithm::ES256, None)
                .unwrap()
                .kid
                .as_deref(),
            Some("a")
        );
        assert_eq!(
            select_key(&set, Algorithm::RS256, None)
                .unwrap()
                .kid
                .as_deref(),
            Some("r")
        );
        assert_eq!(
            select_key(&set, Algorithm::PS256, Some("r"))
                .unwrap()
                .kid
                .as_deref(),
            Some("r")
        );
        let two = JwkSet {
            keys: vec![jwk(ec("a")), jwk(ec("z"))],
        };
        assert_eq!(
            select_key(&two, Algorithm::ES256, None),
            Err(KeyMiss::Ambiguous)
        );
        assert_eq!(
            select_key(&set, Algorithm::HS256, None),
            Err(KeyMiss::Ambiguous)
        );
    }

    #[test]
    fn jwks_parsing_skips_unusable_keys_and_import_form_drops_metadata() {
        let set = JwkSet::from_json(
            r#"{"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": "a", "alg": "ES256", "use": "sig", "key_ops": ["verify"]}, {"nonsense": true}, 7]}"#,
        )
        .unwrap();
        assert_eq!(set.keys.len(), 1);
        assert_eq!(
            set.keys[0].import_form(),
            json!({"kty": "EC", "crv": "P-256", "x": "x", "y": "y"})
        );
        assert!(JwkSet::from_json("{}").is_err());
        assert!(JwkSet::from_json("[]").is_err());
        let statics = JwkSet::from_static_secret(
            r#"{"partners": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}"#,
        )
        .unwrap();
        assert_eq!(statics["partners"].keys[0].kty, "oct");
        assert!(JwkSet::from_static_secret(r#"{"partners": 1}"#).is_err());
    }

    /// RFC 7638 §3.1's example: the thumbprint of its RSA key, whatever the `kid`.
    #[test]
    fn jwk_thumbprints_follow_rfc_7638() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let expected: String =
            crate::encoding::decode_base64url("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
                .unwrap()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
        for kid in [Some("2011-04-29"), None, Some("renamed")] {
            let mut jwk = json!({"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256"});
            if let Some(kid) = kid {
                jwk["kid"] = kid.into();
            }
            let jwk: Jwk = serde_json::from_value(jwk).unwrap();
            assert_eq!(jwk.thumbprint().as_deref(), Some(expected.as_str()));
        }
        let ec: Jwk =
            serde_json::from_value(json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AQ"}))
                .unwrap();
        let other: Jwk =
            serde_json::from_value(json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "Ag"}))
                .unwrap();
        assert_ne!(
            ec.thumbprint(),
            other.thumbprint(),
            "other material, other thumbprint"
        );
        let partial: Jwk =
            serde_json::from_value(json!({"kty": "EC", "crv": "P-256", "x": "AA"})).unwrap();
        assert_eq!(partial.thumbprint(), None);
    }

    /// A malformed static JWKS secret is described, never echoed: serde's messages would quote
    /// the values it read (`invalid type: string "…"`).
    #[test]
    fn static_jwks_errors_never_quote_the_secret() {
        let canary = "c4nary-k3y-m4terial-0123456789";
        for text in [
            format!(r#"{{"internal": {{"keys": "{canary}"}}}}"#),
            format!(r#"{{"internal": "{canary}"}}"#),
            format!(r#"{{"{canary}": {{"keys": []}}, "x": 1}}"#),
            format!(r#"{{"internal": {{"keys": [], "{canary}": true}}, "b": {{"keys": 7}}}}"#),
            format!(r#"["{canary}"]"#),
            format!(r#"{{"internal": {{"keys": [{{"kty": "oct", "k": "{canary}"}}]}}, "y": [1]}}"#),
            canary.to_owned(),
            format!(r#"{{"internal": {{"keys": ["{canary}"#),
        ] {
            let err = JwkSet::from_static_secret(&text).unwrap_err();
            assert!(!err.contains("c4nary"), "{err}");
            assert!(
                err.contains("malformed JSON") || err.contains("wrong shape"),
                "{err}"
            );
        }
    }
}
