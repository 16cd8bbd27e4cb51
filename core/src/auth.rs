//! Authentication rules: everything about an access token that can be decided without I/O.
//!
//! A token moves through three types, and only forward:
//!
//! ```text
//! &str ──parse──> UntrustedToken ──signature_check──> SignatureCheck ──verdict(verified)──> SignatureChecked ──validate_claims──> VerifiedClaims
//!                  (nothing trusted)                   (what to verify)   ^ the Worker verifies    (signature accepted)               (the caller)
//! ```
//!
//! - [`parse`] gives an [`UntrustedToken`]: structure, header and claims decoded, nothing
//!   trusted. It answers which issuer the token names ([`UntrustedToken::issuer`]), which
//!   algorithm that issuer's rules allow for it ([`check_header`]: the algorithm is fixed by the
//!   issuer's configuration, never by the token) and which key it names
//!   ([`UntrustedToken::key_id`], for `jwk::select_key`).
//! - [`UntrustedToken::signature_check`] consumes the token and gives a [`SignatureCheck`]:
//!   the request the I/O layer must carry out (algorithm, the RFC 7638 thumbprint of the key,
//!   the signing input, the signature). The issuer and the algorithm in it are derived here,
//!   from the token and the configuration, never chosen by the caller.
//! - [`SignatureCheck::verdict`] consumes the check and the verifier's answer and gives a
//!   [`SignatureChecked`] if and only if the answer is `true`; a `false` is
//!   [`TokenRejection::BadSignature`]. There is no other way to build a [`SignatureChecked`]:
//!   its fields are private, and it is neither `Clone` nor `Deserialize`.
//! - [`validate_claims`] takes a [`SignatureChecked`] (an [`UntrustedToken`] does not type-check)
//!   and gives the [`VerifiedClaims`], against the issuer the check was made for.
//!
//! **Where the trust boundary is.** This crate does no cryptography on request paths (the
//! Worker verifies with WebCrypto, asynchronously, outside it), so it cannot know that a
//! verifier was honest: the `verified` argument of [`SignatureCheck::verdict`] is the one place
//! where an outside answer is believed. What the types guarantee is everything around it: a
//! [`VerifiedClaims`] from a token exists only after a [`SignatureCheck`] of exactly that
//! token's signing input and signature, under the issuer its `iss` names, with an algorithm that
//! issuer allows and its header states, was answered `true`; a verdict cannot be moved to
//! another token (the check owns the token it was made for); and claims are never read as
//! trusted before that. Outside the Worker's verification, `verdict(true)` appears only where a
//! test or the fuzzer stands in for the verifier.
//!
//! The Worker does the I/O (JWKS fetch, WebCrypto verification, caches) and calls, in order:
//! [`bearer_token`] (header shape and size, before any parsing) -> [`parse`] ->
//! [`UntrustedToken::issuer`] -> [`check_header`] -> `jwk::select_key` ->
//! [`UntrustedToken::signature_check`] -> verification (Worker) -> [`SignatureCheck::verdict`]
//! -> [`validate_claims`]. Every refusal is a [`TokenRejection`].

use std::fmt;

use jwt_compact::Claims;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::Policy;
use crate::env::{Environment, IssuerEndpoints};
use crate::error::GatewayError;
use crate::identity::{
    IdentityClaim, IssuerName, OrgId, RequiredClaim, Scope, TierName, TokenIdentity,
    TokenRejection, VerifiedClaims,
};
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
        return Err(TokenRejection::TooLarge.into());
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

/// A structurally valid token whose signature has not been checked: nothing in it is trusted.
/// It names its issuer and key; its claims are read only by [`validate_claims`], after a
/// [`SignatureCheck`] of it was answered `true`. Its `Debug` shows the header's `alg` and `kid`
/// only, never the token.
pub struct UntrustedToken<'a> {
    token: jwt_compact::UntrustedToken<'static, ExtraHeader>,
    claims: Claims<Map<String, Value>>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

impl fmt::Debug for UntrustedToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UntrustedToken")
            .field("alg", &self.token.algorithm())
            .field("kid", &self.key_id())
            .finish_non_exhaustive()
    }
}

/// Parses the compact serialisation. Nothing in it is trusted yet.
///
/// jwt-compact parses the structure, the header and the claims. The signature, which is public
/// and the longest part (342 characters for RS256), is decoded by
/// [`crate::encoding::decode_base64url`] instead of jwt-compact's constant-time `base64ct`: the
/// same strict rules, several times faster, which is most of the gateway's own per-token cost
/// (BENCHMARKS.md).
pub fn parse(token: &str) -> Result<UntrustedToken<'_>, TokenRejection> {
    let (signing_input, encoded_signature) =
        token.rsplit_once('.').ok_or(TokenRejection::Malformed)?;
    let signature =
        crate::encoding::decode_base64url(encoded_signature).ok_or(TokenRejection::Malformed)?;
    let untrusted =
        jwt_compact::UntrustedToken::<ExtraHeader>::try_from(format!("{signing_input}.").as_str())
            .map_err(|_| TokenRejection::Malformed)?
            .into_owned();
    let claims = untrusted
        .deserialize_claims_unchecked::<Map<String, Value>>()
        .map_err(|_| TokenRejection::MalformedClaims)?;
    Ok(UntrustedToken {
        token: untrusted,
        claims,
        signing_input,
        signature,
    })
}

impl<'a> UntrustedToken<'a> {
    /// The claimed issuer: which issuer's rules and keys apply. Matched exactly against the
    /// configured `issuer` values; a token from anyone else is refused here.
    pub fn issuer<'e>(
        &self,
        policy: &'e Policy,
        environment: &'e Environment,
    ) -> Result<(&'e IssuerPolicy, &'e IssuerEndpoints), TokenRejection> {
        let iss = self
            .claims
            .custom
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(TokenRejection::MissingClaim {
                name: RequiredClaim::Issuer,
            })?;
        environment
            .issuers
            .iter()
            .find(|(_, e)| e.issuer == iss)
            .and_then(|(name, e)| policy.issuer(name).map(|p| (p, e)))
            .ok_or(TokenRejection::WrongIssuer)
    }

    /// The `kid` header.
    pub fn key_id(&self) -> Option<&str> {
        self.token.header().key_id.as_deref()
    }

    /// What must be verified before the claims may be read: the token's issuer (from its
    /// `iss`), the algorithm that issuer allows for its header ([`check_header`]), the key the
    /// verifier will use (its RFC 7638 thumbprint), the signing input and the signature. The
    /// check owns the token: its verdict applies to this token only.
    pub fn signature_check<'p>(
        self,
        policy: &'p Policy,
        environment: &'p Environment,
        key_thumbprint: String,
    ) -> Result<SignatureCheck<'a, 'p>, TokenRejection> {
        let (issuer, _) = self.issuer(policy, environment)?;
        let algorithm = check_header(&self, issuer)?;
        Ok(SignatureCheck {
            token: self,
            issuer,
            algorithm,
            key_thumbprint,
        })
    }
}

/// A request to the verifier (the Worker's WebCrypto): is [`SignatureCheck::signature`] a valid
/// signature of [`SignatureCheck::signing_input`] under [`SignatureCheck::algorithm`] and the
/// key with [`SignatureCheck::key_thumbprint`]? Its answer goes to [`SignatureCheck::verdict`].
#[derive(Debug)]
pub struct SignatureCheck<'a, 'p> {
    token: UntrustedToken<'a>,
    issuer: &'p IssuerPolicy,
    algorithm: Algorithm,
    key_thumbprint: String,
}

impl<'a, 'p> SignatureCheck<'a, 'p> {
    /// The algorithm to verify with (allowed by the issuer, stated by the header).
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The RFC 7638 thumbprint of the key to verify with.
    pub fn key_thumbprint(&self) -> &str {
        &self.key_thumbprint
    }

    /// The bytes the signature covers (`base64url(header) . base64url(claims)`).
    pub fn signing_input(&self) -> &[u8] {
        self.token.signing_input.as_bytes()
    }

    /// The decoded signature.
    pub fn signature(&self) -> &[u8] {
        &self.token.signature
    }

    /// The verifier's answer for exactly this check: `true` gives the [`SignatureChecked`]
    /// token, `false` refuses it ([`TokenRejection::BadSignature`]). This is the trust
    /// boundary (module documentation): `verified` must be the outcome of verifying this
    /// check's signature over its signing input with its algorithm and key.
    pub fn verdict(self, verified: bool) -> Result<SignatureChecked<'a, 'p>, TokenRejection> {
        if !verified {
            return Err(TokenRejection::BadSignature);
        }
        Ok(SignatureChecked {
            token: self.token,
            issuer: self.issuer,
            key_thumbprint: self.key_thumbprint,
        })
    }
}

/// A token whose signature the verifier accepted, under the issuer its `iss` names and a key of
/// that issuer. Its claims are not validated yet: [`validate_claims`] does that. Built only by
/// [`SignatureCheck::verdict`].
#[derive(Debug)]
pub struct SignatureChecked<'a, 'p> {
    token: UntrustedToken<'a>,
    issuer: &'p IssuerPolicy,
    key_thumbprint: String,
}

impl<'p> SignatureChecked<'_, 'p> {
    /// The issuer whose key verified the token (and whose rules its claims must pass).
    pub fn issuer(&self) -> &'p IssuerPolicy {
        self.issuer
    }

    /// The RFC 7638 thumbprint of the key that verified it (the verified-token cache drops the
    /// token when that key leaves the issuer's JWKS).
    pub fn key_thumbprint(&self) -> &str {
        &self.key_thumbprint
    }
}

/// Checks the header against the issuer's rules and returns the algorithm to verify with.
pub fn check_header(
    token: &UntrustedToken<'_>,
    issuer: &IssuerPolicy,
) -> Result<Algorithm, TokenRejection> {
    let alg = token.token.algorithm();
    if alg.eq_ignore_ascii_case("none") {
        return Err(TokenRejection::Unsigned);
    }
    let algorithm = issuer
        .algorithms
        .iter()
        .copied()
        .find(|a| a.as_str() == alg)
        .ok_or_else(|| TokenRejection::AlgorithmMismatch {
            expected: issuer.algorithms.clone(),
            actual: Algorithm::from_name(alg),
        })?;
    if token.token.header().other_fields.crit.is_some() {
        return Err(TokenRejection::CriticalHeader);
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
            return Err(TokenRejection::NotAnAccessToken);
        }
    }
    Ok(algorithm)
}

/// The namespace of organisations made from a subject (`org_from_subject`): `sub:<sub>`.
pub const SUBJECT_ORG_PREFIX: &str = "sub:";

/// The `cnf` claim (RFC 7800): absent, or an object whose only confirmation method is
/// `x5t#S256` (RFC 8705) with a SHA-256 thumbprint. A token bound by a method the gateway
/// cannot check (`jkt` for DPoP, `jwk`...) is refused rather than accepted unbound.
fn certificate_binding(cnf: Option<&Value>) -> Result<Option<String>, TokenRejection> {
    const MALFORMED: TokenRejection = TokenRejection::MalformedClaim {
        name: IdentityClaim::Confirmation,
    };
    let Some(cnf) = cnf else {
        return Ok(None);
    };
    let object = cnf.as_object().ok_or(MALFORMED)?;
    if object.keys().any(|k| k != "x5t#S256") {
        return Err(MALFORMED);
    }
    match object.get("x5t#S256") {
        Some(Value::String(t))
            if crate::encoding::decode_base64url(t).is_some_and(|b| b.len() == 32) =>
        {
            Ok(Some(t.clone()))
        }
        _ => Err(MALFORMED),
    }
}

/// A list of strings (`scp`, the permissions claim), or `malformed`.
fn strings(items: &[Value], malformed: IdentityClaim) -> Result<Vec<String>, TokenRejection> {
    items
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()
        .ok_or(TokenRejection::MalformedClaim { name: malformed })
}

/// Validates the claims of a token whose signature the verifier accepted, against the rules of
/// the issuer it was verified for, and derives the caller.
pub fn validate_claims(
    token: &SignatureChecked<'_, '_>,
    policy: &Policy,
    now: UnixMillis,
) -> Result<VerifiedClaims, TokenRejection> {
    let issuer = token.issuer;
    let now_s = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let leeway = i64::try_from(issuer.leeway_seconds).unwrap_or(0);
    let claims = &token.token.claims;
    let custom = &claims.custom;
    let missing = |name| TokenRejection::MissingClaim { name };
    let malformed = |name| TokenRejection::MalformedClaim { name };

    let exp = claims
        .expiration
        .map(|t| t.timestamp())
        .ok_or(missing(RequiredClaim::Expiry))?;
    let expired_by = now_s.saturating_sub(exp.saturating_add(leeway));
    if expired_by > 0 {
        return Err(TokenRejection::Expired {
            by_secs: u64::try_from(expired_by).unwrap_or(u64::MAX),
        });
    }
    if claims
        .not_before
        .is_some_and(|nbf| nbf.timestamp() > now_s.saturating_add(leeway))
    {
        return Err(TokenRejection::NotYetValid);
    }
    // Every issuer caps lifetimes (`max_lifetime_seconds`), and the cap is measured from `iat`;
    // revocations by issue time need it too. RFC 9068 access tokens always carry it.
    let iat = claims
        .issued_at
        .map(|t| t.timestamp())
        .ok_or(missing(RequiredClaim::IssuedAt))?;
    if iat > now_s.saturating_add(leeway) {
        return Err(TokenRejection::IssuedInFuture);
    }
    let lifetime = exp.saturating_sub(iat);
    if lifetime > i64::try_from(issuer.max_lifetime_seconds).unwrap_or(i64::MAX) {
        return Err(TokenRejection::LifetimeTooLong);
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
        return Err(TokenRejection::WrongAudience);
    }

    let subject = match custom.get("sub") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(missing(RequiredClaim::Subject)),
    };
    let org = match custom.get(&issuer.org_claim) {
        Some(Value::String(s)) if s.starts_with(SUBJECT_ORG_PREFIX) => {
            return Err(TokenRejection::ReservedOrganisation);
        }
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        None | Some(Value::Null) if issuer.org_from_subject => {
            format!("{SUBJECT_ORG_PREFIX}{subject}")
        }
        None | Some(Value::Null) => return Err(missing(RequiredClaim::Organisation)),
        Some(_) => return Err(malformed(IdentityClaim::Organisation)),
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
        (None, Some(Value::Array(a))) => strings(a, IdentityClaim::Scopes)?,
        (None, None) => Vec::new(),
        _ => return Err(malformed(IdentityClaim::Scopes)),
    };
    let token_id = custom.get("jti").and_then(Value::as_str).map(str::to_owned);
    let permissions = match issuer
        .permissions_claim
        .as_ref()
        .and_then(|c| custom.get(c))
    {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => strings(items, IdentityClaim::Permissions)?,
        Some(_) => return Err(malformed(IdentityClaim::Permissions)),
    };

    Ok(VerifiedClaims::from_checked_token(TokenIdentity {
        issuer: IssuerName::new(issuer.name.as_str()),
        subject,
        org: OrgId(org),
        tier: TierName::new(tier),
        scopes: scopes.into_iter().map(Scope::new).collect(),
        token_id,
        permissions,
        expires_at: u64::try_from(exp).unwrap_or(0),
        issued_at: u64::try_from(iat).ok(),
        cert_thumbprint: certificate_binding(custom.get("cnf"))?,
    }))
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

    /// Runs every pure step under `policy`, with `verdict(true)` standing in for the Worker's
    /// signature check; `Ok` holds the verified caller.
    fn check_with(
        policy: &Policy,
        header: &Value,
        claims: &Value,
        now: u64,
    ) -> Result<VerifiedClaims, TokenRejection> {
        let env = environment(policy);
        let text = token(header, claims);
        let parsed = parse(&text)?;
        let (issuer, _) = parsed.issuer(policy, &env)?;
        check_header(&parsed, issuer)?;
        let checked = parsed
            .signature_check(policy, &env, "k1-thumbprint".into())?
            .verdict(true)?;
        validate_claims(&checked, policy, UnixMillis(now * 1000))
    }

    fn check_all(
        header: &Value,
        claims: &Value,
        now: u64,
    ) -> Result<VerifiedClaims, TokenRejection> {
        check_with(&policy(), header, claims, now)
    }

    fn check(header: Value, claims: Value, expected: Result<(), TokenRejection>) {
        let got = check_all(&header, &claims, NOW).map(|_| ());
        assert_eq!(got, expected, "header {header} claims {claims}");
    }

    fn missing(name: RequiredClaim) -> TokenRejection {
        TokenRejection::MissingClaim { name }
    }

    fn malformed(name: IdentityClaim) -> TokenRejection {
        TokenRejection::MalformedClaim { name }
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
        assert_eq!(bound.cert_thumbprint(), Some(x5t.as_str()));
        assert_eq!(bound.issued_at(), Some(NOW - 10));
        let unbound = check_all(&h(), &good_claims(), NOW).unwrap();
        assert_eq!(unbound.cert_thumbprint(), None);
        let refused = Err(malformed(IdentityClaim::Confirmation));
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
            Err(TokenRejection::TooLarge.into())
        );
        let limit = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES));
        assert!(bearer_token(Some(&limit)).is_ok());
    }

    #[test]
    fn a_good_token_yields_the_caller() {
        let caller = check_all(&good_header(), &good_claims(), NOW).unwrap();
        assert_eq!(caller.issuer(), "users");
        assert_eq!(caller.subject(), "client-acme");
        assert_eq!(caller.org(), &OrgId("acme".into()));
        assert_eq!(caller.tier(), "pro");
        assert_eq!(caller.scopes(), ["transactions:read", "reports:generate"]);
        assert_eq!(caller.token_id(), Some("j1"));
        assert_eq!(caller.expires_at(), NOW + 890);
        assert_eq!(caller.api_key(), None);
    }

    #[test]
    fn header_attacks_are_refused() {
        let c = good_claims;
        check(
            with(good_header(), "alg", json!("none")),
            c(),
            Err(TokenRejection::Unsigned),
        );
        check(
            with(good_header(), "alg", json!("NONE")),
            c(),
            Err(TokenRejection::Unsigned),
        );
        for (alg, actual) in [
            ("HS256", Some(Algorithm::HS256)),
            ("RS256", Some(Algorithm::RS256)),
            ("ES384", None),
            ("es256", None),
            ("", None),
        ] {
            check(
                with(good_header(), "alg", json!(alg)),
                c(),
                Err(TokenRejection::AlgorithmMismatch {
                    expected: vec![Algorithm::ES256],
                    actual,
                }),
            );
        }
        check(
            with(good_header(), "crit", json!(["b64"])),
            c(),
            Err(TokenRejection::CriticalHeader),
        );
        let not_at = Err(TokenRejection::NotAnAccessToken);
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
    fn debug_output_never_shows_the_token() {
        let text = token(&good_header(), &good_claims());
        let parsed = parse(&text).unwrap();
        let shown = format!("{parsed:?}");
        assert_eq!(
            shown,
            r#"UntrustedToken { alg: "ES256", kid: Some("k1"), .. }"#
        );
        let policy = policy();
        let env = environment(&policy);
        let check = parsed
            .signature_check(&policy, &env, "k1-thumbprint".into())
            .unwrap();
        let checked = format!("{:?}", check.verdict(true).unwrap());
        for part in text.split('.') {
            assert!(!checked.contains(part), "{checked}");
        }
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
                matches!(parse(text), Err(TokenRejection::Malformed)),
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
            Err(missing(RequiredClaim::Expiry)),
        );
        check(
            h(),
            with(c(), "exp", json!("soon")),
            Err(TokenRejection::MalformedClaims),
        );
        check(
            h(),
            with(c(), "exp", json!(NOW - 6)),
            Err(TokenRejection::Expired { by_secs: 1 }),
        );
        check(h(), with(c(), "exp", json!(NOW - 5)), Ok(()));
        check(
            h(),
            with(c(), "nbf", json!(NOW + 6)),
            Err(TokenRejection::NotYetValid),
        );
        check(h(), with(c(), "nbf", json!(NOW + 5)), Ok(()));
        check(
            h(),
            with(c(), "iat", json!(NOW + 6)),
            Err(TokenRejection::IssuedInFuture),
        );
        let too_long = Err(TokenRejection::LifetimeTooLong);
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
                Err(missing(RequiredClaim::IssuedAt)),
            );
        }
        let wrong_aud = Err(TokenRejection::WrongAudience);
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
            Err(TokenRejection::WrongIssuer),
        );
        check(
            h(),
            with(c(), "iss", Value::Null),
            Err(missing(RequiredClaim::Issuer)),
        );
        check(
            h(),
            with(c(), "sub", Value::Null),
            Err(missing(RequiredClaim::Subject)),
        );
        check(
            h(),
            with(c(), "sub", json!("")),
            Err(missing(RequiredClaim::Subject)),
        );
        check(
            h(),
            with(c(), "org_id", json!(42)),
            Err(malformed(IdentityClaim::Organisation)),
        );
        check(
            h(),
            with(c(), "scope", json!(["a"])),
            Err(malformed(IdentityClaim::Scopes)),
        );
        check(
            h(),
            with(with(c(), "scope", Value::Null), "scp", json!(["a", 1])),
            Err(malformed(IdentityClaim::Scopes)),
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
        assert_eq!(caller.permissions(), ["reports:*", "*"]);
        assert!(
            check_all(&good_header(), &good_claims(), NOW)
                .unwrap()
                .permissions()
                .is_empty()
        );
        check(
            good_header(),
            with(good_claims(), "permissions", json!("reports:*")),
            Err(malformed(IdentityClaim::Permissions)),
        );
        check(
            good_header(),
            with(good_claims(), "permissions", json!(["a", 1])),
            Err(malformed(IdentityClaim::Permissions)),
        );
    }

    #[test]
    fn an_issuer_may_make_the_subject_its_own_organisation_in_a_namespace() {
        let mut policy = policy();
        for issuer in &mut policy.issuers {
            issuer.org_from_subject = true;
        }
        let claims = with(
            with(good_claims(), "org_id", Value::Null),
            "sub",
            json!("acme"),
        );
        let caller = check_with(&policy, &good_header(), &claims, NOW).unwrap();
        // Subject "acme" is not organisation "acme": no shared budget, no shared revocations.
        assert_eq!(caller.org(), &OrgId("sub:acme".into()));
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
            .map(|c| c.org().clone()),
            Err(missing(RequiredClaim::Organisation))
        );
        assert_eq!(
            check_all(
                &good_header(),
                &with(good_claims(), "org_id", json!("sub:client-acme")),
                NOW,
            )
            .map(|c| c.org().clone()),
            Err(TokenRejection::ReservedOrganisation)
        );
        for tier in [json!("platinum"), json!(7), Value::Null] {
            let caller = check_all(
                &good_header(),
                &with(good_claims(), "tier", tier.clone()),
                NOW,
            )
            .unwrap();
            assert_eq!(caller.tier(), "free", "{tier}");
        }
        let claims = with(
            with(good_claims(), "scope", Value::Null),
            "scp",
            json!(["x:read", "y:write"]),
        );
        assert_eq!(
            check_all(&good_header(), &claims, NOW).unwrap().scopes(),
            ["x:read", "y:write"]
        );
        let claims = with(good_claims(), "scope", json!("  a   b "));
        assert_eq!(
            check_all(&good_header(), &claims, NOW).unwrap().scopes(),
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
