//! Mutual TLS from clients: routes that require a verified client certificate, and
//! certificate-bound access tokens (RFC 8705): a token whose `cnf` claim carries `x5t#S256` is
//! accepted only on a request whose verified client certificate has that SHA-256 thumbprint.
//!
//! Cloudflare terminates TLS and reports the client certificate in `request.cf.tlsClientAuth`
//! (`certPresented` "1", `certVerified` "SUCCESS", `certFingerprintSHA256` in hex); the Worker
//! reads those values into [`ClientCertificate`] and this module decides.

use crate::error::GatewayError;

/// What the edge reported about the client's certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCertificate {
    /// `certPresented == "1"`.
    pub presented: bool,
    /// `certVerified == "SUCCESS"` (the chain checked against the zone's mTLS CA).
    pub verified: bool,
    /// `certFingerprintSHA256`: hex of the SHA-256 of the certificate's DER encoding.
    pub fingerprint_sha256: Option<String>,
}

impl ClientCertificate {
    /// The SHA-256 of a verified certificate (what RFC 8705's `x5t#S256` encodes).
    pub fn thumbprint(&self) -> Option<[u8; 32]> {
        if !(self.presented && self.verified) {
            return None;
        }
        crate::encoding::decode_hex32(self.fingerprint_sha256.as_deref()?.trim())
    }
}

/// The mTLS checks for one request: the route's requirement, then the token's binding.
pub fn check(
    route_requires_certificate: bool,
    bound_to: Option<&str>,
    certificate: &ClientCertificate,
) -> Result<(), GatewayError> {
    let thumbprint = certificate.thumbprint();
    if route_requires_certificate && thumbprint.is_none() {
        return Err(GatewayError::ClientCertificateRequired);
    }
    if let Some(bound) = bound_to {
        let bound = crate::encoding::decode_base64url(bound);
        let matches = match (thumbprint, bound) {
            (Some(t), Some(b)) if b.len() == t.len() => {
                t.iter()
                    .zip(b.iter())
                    .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                    == 0
            }
            _ => false,
        };
        if !matches {
            return Err(GatewayError::CertificateMismatch);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    // base64url of the same 32 bytes.
    const X5T: &str = "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg";

    fn cert(presented: bool, verified: bool, hex: Option<&str>) -> ClientCertificate {
        ClientCertificate {
            presented,
            verified,
            fingerprint_sha256: hex.map(str::to_owned),
        }
    }

    #[test]
    fn thumbprints_come_only_from_verified_certificates() {
        let bytes = crate::encoding::decode_base64url(X5T).unwrap();
        assert_eq!(
            cert(true, true, Some(HEX)).thumbprint().map(|t| t.to_vec()),
            Some(bytes.clone())
        );
        assert_eq!(
            cert(true, true, Some(&HEX.to_uppercase()))
                .thumbprint()
                .map(|t| t.to_vec()),
            Some(bytes)
        );
        assert_eq!(cert(true, false, Some(HEX)).thumbprint(), None);
        assert_eq!(cert(false, true, Some(HEX)).thumbprint(), None);
        assert_eq!(cert(true, true, Some("abc")).thumbprint(), None);
        assert_eq!(cert(true, true, None).thumbprint(), None);
    }

    #[test]
    fn bound_tokens_need_the_same_verified_certificate() {
        let good = cert(true, true, Some(HEX));
        assert_eq!(check(false, Some(X5T), &good), Ok(()));
        assert_eq!(check(true, Some(X5T), &good), Ok(()));
        let other = cert(true, true, Some(&HEX.replace('9', "8")));
        assert_eq!(
            check(false, Some(X5T), &other),
            Err(GatewayError::CertificateMismatch)
        );
        assert_eq!(
            check(false, Some(X5T), &cert(true, false, Some(HEX))),
            Err(GatewayError::CertificateMismatch)
        );
        assert_eq!(
            check(false, Some(X5T), &ClientCertificate::default()),
            Err(GatewayError::CertificateMismatch)
        );
        // Unbound tokens: only the route's requirement.
        assert_eq!(check(false, None, &ClientCertificate::default()), Ok(()));
        assert_eq!(
            check(true, None, &cert(true, false, Some(HEX))),
            Err(GatewayError::ClientCertificateRequired)
        );
        assert_eq!(check(true, None, &good), Ok(()));
    }
}
