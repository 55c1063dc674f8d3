//! Certificate credentials: a client assertion JWT signed with the app's private key.
//!
//! Per Entra's certificate-credentials page (FACTS §6): header `alg` = `PS256`, `typ` = `JWT`,
//! `x5t#S256` = base64url SHA-256 of the certificate's DER; claims `aud` = the token URL,
//! `iss` = `sub` = client id, `jti` = a GUID, `nbf` = `iat` = now, `exp` = now + 5 minutes.
//!
//! Why hand-written: the JWT is three base64url parts and one PSS signature. `jsonwebtoken`
//! would need a second crypto stack (its `rust_crypto` backend pulls `rsa`, `p256`, `p384`,
//! `ed25519-dalek`; `aws_lc_rs` needs a C toolchain), while `ring`, already in the tree
//! through rustls, signs RSA-PSS.

use crate::error::GraphError;
use base64::Engine as _;
use ring::signature::{RsaKeyPair, RSA_PSS_SHA256};
use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// How long an assertion is valid ("5-10 minutes after `nbf` at most").
const ASSERTION_LIFETIME_SECS: u64 = 300;

/// An app certificate: the RSA private key and the certificate registered with the app.
/// `Debug` shows only the thumbprint.
#[derive(Clone)]
pub struct CertificateCredential {
    key: Arc<RsaKeyPair>,
    thumbprint_s256: String,
}

impl fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateCredential")
            .field("x5t#S256", &self.thumbprint_s256)
            .finish_non_exhaustive()
    }
}

impl PartialEq for CertificateCredential {
    fn eq(&self, other: &Self) -> bool {
        self.thumbprint_s256 == other.thumbprint_s256
            && self.key.public().as_ref() == other.key.public().as_ref()
    }
}

impl Eq for CertificateCredential {}

fn pem_block(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem.get(start..)?.find(&end)?;
    let b64: String = pem
        .get(start..stop)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl CertificateCredential {
    /// Loads an RSA private key (PEM, `PRIVATE KEY` (PKCS#8) or `RSA PRIVATE KEY` (PKCS#1))
    /// and the certificate uploaded to the app registration (PEM `CERTIFICATE`).
    pub fn from_pem(private_key_pem: &str, certificate_pem: &str) -> Result<Self, GraphError> {
        let bad = |m: &str| GraphError::Config(format!("certificate credential: {m}"));
        let key = if let Some(der) = pem_block(private_key_pem, "PRIVATE KEY") {
            RsaKeyPair::from_pkcs8(&der)
        } else if let Some(der) = pem_block(private_key_pem, "RSA PRIVATE KEY") {
            RsaKeyPair::from_der(&der)
        } else {
            return Err(bad("no PEM 'PRIVATE KEY' or 'RSA PRIVATE KEY' block found"));
        }
        .map_err(|e| bad(&format!("the private key is not a usable RSA key ({e})")))?;
        let cert = pem_block(certificate_pem, "CERTIFICATE")
            .ok_or_else(|| bad("no PEM 'CERTIFICATE' block found"))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, &cert);
        Ok(CertificateCredential {
            key: Arc::new(key),
            thumbprint_s256: b64url(digest.as_ref()),
        })
    }

    /// The certificate's `x5t#S256` thumbprint (base64url SHA-256 of its DER).
    pub fn thumbprint_sha256(&self) -> &str {
        &self.thumbprint_s256
    }

    /// A signed client assertion for `client_id` at the token endpoint `token_url`.
    pub fn assertion(
        &self,
        client_id: &str,
        token_url: &str,
        now: SystemTime,
    ) -> Result<String, GraphError> {
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let jti: u128 = rand::random();
        let jti = format!("{jti:032x}");
        let header =
            serde_json::json!({"alg": "PS256", "typ": "JWT", "x5t#S256": self.thumbprint_s256});
        let claims = serde_json::json!({
            "aud": token_url,
            "iss": client_id,
            "sub": client_id,
            "jti": format!("{}-{}-{}-{}-{}", &jti[0..8], &jti[8..12], &jti[12..16], &jti[16..20], &jti[20..32]),
            "nbf": iat,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PSS_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| {
                GraphError::Config(
                    "certificate credential: signing the client assertion failed".into(),
                )
            })?;
        Ok(format!("{signing_input}.{}", b64url(&sig)))
    }

    #[cfg(test)]
    pub(crate) fn public_key_der(&self) -> Vec<u8> {
        self.key.public().as_ref().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../tests/fixtures/test-app.key.pem");
    const CERT: &str = include_str!("../tests/fixtures/test-app.cert.pem");

    #[test]
    fn assertion_is_a_verifiable_ps256_jwt() {
        let c = CertificateCredential::from_pem(KEY, CERT).unwrap();
        let der = pem_block(CERT, "CERTIFICATE").unwrap();
        assert_eq!(
            c.thumbprint_sha256(),
            b64url(ring::digest::digest(&ring::digest::SHA256, &der).as_ref())
        );
        let url = "https://login.microsoftonline.com/t/oauth2/v2.0/token";
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let jwt = c.assertion("client-1", url, now).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let dec = |s: &str| -> serde_json::Value {
            serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(s)
                    .unwrap(),
            )
            .unwrap()
        };
        let (h, claims) = (dec(parts[0]), dec(parts[1]));
        assert_eq!(h["alg"], "PS256");
        assert_eq!(h["x5t#S256"], c.thumbprint_sha256());
        assert_eq!(
            (
                claims["aud"].as_str(),
                claims["iss"].as_str(),
                claims["sub"].as_str()
            ),
            (Some(url), Some("client-1"), Some("client-1"))
        );
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["nbf"].as_u64().unwrap(),
            300
        );
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[2])
            .unwrap();
        let pk = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PSS_2048_8192_SHA256,
            c.public_key_der(),
        );
        pk.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        assert!(pk.verify(b"tampered", &sig).is_err());
        assert!(!format!("{c:?}").contains("PRIVATE"));
    }

    #[test]
    fn bad_pem_is_a_config_error() {
        assert!(matches!(
            CertificateCredential::from_pem("nope", CERT),
            Err(GraphError::Config(_))
        ));
        assert!(matches!(
            CertificateCredential::from_pem(KEY, "nope"),
            Err(GraphError::Config(_))
        ));
    }
}
