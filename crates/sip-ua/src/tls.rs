//! SIP over TLS (RFC 3261 §26.2): how the driver verifies the PBX, and why a
//! handshake failed, in terms a user can act on.
//!
//! The sans-IO core only knows that [`Transport::Tls`](crate::Transport::Tls)
//! is a reliable stream written `SIP/2.0/TLS` in `Via` and `;transport=tls` in
//! `Contact`; everything here is used by the [`driver`](crate::driver).

use std::path::PathBuf;

/// How the PBX's certificate is verified and which client certificate is shown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file of the CA(s) that signed the PBX's certificate; `None`: the
    /// system's trust store (where PBX admins install their own CA).
    pub ca_file: Option<PathBuf>,
    /// The name the certificate must be valid for; `None`: the host of
    /// [`UaConfig::server`](crate::UaConfig::server) (a DNS name or an IP address).
    pub server_name: Option<String>,
    /// PEM file of the client certificate chain, for PBXs that ask for one.
    pub client_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub client_key: Option<PathBuf>,
    /// Accept any certificate from the PBX. Anyone on the path can then read
    /// and change the traffic, passwords' digests included: for tests only.
    /// The driver logs a warning every time it starts with this set.
    pub insecure_skip_verify: bool,
}

/// Why a TLS connection to the PBX was refused, told apart so that the user
/// can be given the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate is signed by a CA not in the trust store in use.
    #[error("the PBX's certificate is signed by a CA this machine does not trust ({detail})")]
    UnknownCa {
        /// What the TLS library said.
        detail: String,
    },
    /// The certificate is not valid for the name that was checked.
    #[error("the PBX's certificate is not valid for the name {name:?} ({detail})")]
    NameMismatch {
        /// The name checked (server host or configured server name).
        name: String,
        /// What the TLS library said (with the names the certificate holds).
        detail: String,
    },
    /// The certificate has expired.
    #[error("the PBX's certificate has expired ({detail})")]
    Expired {
        /// What the TLS library said (with the dates).
        detail: String,
    },
    /// The certificate is not valid yet (or this machine's clock is wrong).
    #[error("the PBX's certificate is not valid yet ({detail})")]
    NotYetValid {
        /// What the TLS library said (with the dates).
        detail: String,
    },
    /// No TLS version in common (this side speaks TLS 1.2 and 1.3).
    #[error("the PBX and this client have no TLS version in common (this client speaks TLS 1.2 and 1.3): {detail}")]
    ProtocolVersion {
        /// What the TLS library said.
        detail: String,
    },
    /// The PBX refused the client certificate (or wanted one and got none).
    #[error("the PBX wants a client certificate it accepts and refused the connection ({detail})")]
    ClientCertificate {
        /// What the TLS library said.
        detail: String,
    },
    /// The certificate is unusable for another reason (bad signature,
    /// revoked, wrong purpose…).
    #[error("the PBX's certificate was refused: {detail}")]
    BadCertificate {
        /// What the TLS library said.
        detail: String,
    },
    /// Any other handshake failure.
    #[error("TLS handshake with the PBX failed: {detail}")]
    Handshake {
        /// What the TLS library said.
        detail: String,
    },
    /// A file or name of the [`TlsConfig`] cannot be used.
    #[error("cannot use {what}: {detail}")]
    Setup {
        /// Which setting (e.g. `the CA file /etc/pbx-ca.pem`).
        what: String,
        /// Why.
        detail: String,
    },
}

#[cfg(feature = "tokio")]
pub(crate) use connect::TlsDialer;

#[cfg(feature = "tokio")]
mod connect {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::client::ResolvesClientCert;
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use rustls::sign::CertifiedKey;
    use rustls::{
        AlertDescription, CertificateError, DigitallySignedStruct, PeerIncompatible,
        ProtocolVersion, RootCertStore, SignatureScheme,
    };
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;
    use tokio_rustls::client::TlsStream;

    use super::{TlsConfig, TlsError};
    use crate::config::UaConfig;
    use crate::error::Error;

    fn setup(what: impl Into<String>, detail: impl ToString) -> TlsError {
        TlsError::Setup {
            what: what.into(),
            detail: detail.to_string(),
        }
    }

    /// The name checked against the certificate: `server_name`, else the server host.
    pub(crate) fn server_name(config: &UaConfig) -> Result<ServerName<'static>, TlsError> {
        let name = config
            .tls
            .server_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| config.server_host())
            .to_string();
        ServerName::try_from(name.clone())
            .map_err(|e| setup(format!("the TLS server name {name:?}"), e))
    }

    /// Opens TLS sessions to the PBX, one at a time (the driver holds one
    /// connection), and tells why the PBX refused one.
    pub(crate) struct TlsDialer {
        connector: tokio_rustls::TlsConnector,
        name: ServerName<'static>,
        /// The PBX asked for a client certificate in the last handshake.
        asked: Arc<AtomicBool>,
    }

    /// Longest wait for the PBX's verdict on the client certificate (the
    /// answer to a keep-alive); a PBX that does not answer keep-alives is
    /// taken to have accepted it.
    const VERDICT_WAIT: Duration = Duration::from_secs(5);

    impl TlsDialer {
        /// The connector and the name checked, for `config`.
        pub(crate) fn new(config: &UaConfig) -> Result<Self, TlsError> {
            let asked = Arc::new(AtomicBool::new(false));
            Ok(Self {
                connector: connector(&config.tls, asked.clone())?,
                name: server_name(config)?,
                asked,
            })
        }

        /// The handshake over `tcp` (within `limit`), then, when the PBX asked
        /// for a client certificate under TLS 1.3, its verdict: it comes only
        /// after the handshake (RFC 8446 §4.4.2), as an alert instead of the
        /// answer to a CRLF keep-alive sent at once (RFC 5626 §3.5.1).
        /// Returns the stream and what the PBX sent besides that answer.
        pub(crate) async fn connect(
            &self,
            tcp: TcpStream,
            limit: Duration,
        ) -> Result<(TlsStream<TcpStream>, Vec<u8>), Error> {
            self.asked.store(false, Ordering::SeqCst);
            let stream =
                tokio::time::timeout(limit, self.connector.connect(self.name.clone(), tcp))
                    .await
                    .map_err(|_| Error::Io(std::io::Error::from(std::io::ErrorKind::TimedOut)))?;
            let asked = self.asked.load(Ordering::SeqCst);
            let mut stream = stream.map_err(|e| classify_io(e, &self.name, asked))?;
            let tls13 = stream.get_ref().1.protocol_version() == Some(ProtocolVersion::TLSv1_3);
            if !(asked && tls13) {
                return Ok((stream, Vec::new()));
            }
            let early = self.verdict(&mut stream).await?;
            Ok((stream, early))
        }

        async fn verdict(&self, stream: &mut TlsStream<TcpStream>) -> Result<Vec<u8>, Error> {
            let refused = |e| classify_io(e, &self.name, true);
            stream.write_all(b"\r\n\r\n").await.map_err(refused)?;
            stream.flush().await.map_err(refused)?;
            let mut buf = vec![0u8; 4096];
            match tokio::time::timeout(VERDICT_WAIT, stream.read(&mut buf)).await {
                Err(_) => Ok(Vec::new()),
                Ok(Ok(0)) => Err(Error::Tls(TlsError::ClientCertificate {
                    detail: "the PBX asked for a client certificate and closed the connection \
                             after the handshake"
                        .into(),
                })),
                Ok(Ok(n)) => {
                    buf.truncate(n);
                    Ok(match buf.strip_prefix(b"\r\n") {
                        Some(rest) => rest.to_vec(),
                        None => buf,
                    })
                }
                Ok(Err(e)) => Err(refused(e)),
            }
        }
    }

    /// The client certificate shown when the PBX asks for one (none if not
    /// configured), noting that it asked.
    #[derive(Debug)]
    struct ClientCert {
        key: Option<Arc<CertifiedKey>>,
        asked: Arc<AtomicBool>,
    }

    impl ResolvesClientCert for ClientCert {
        fn resolve(
            &self,
            _root_hint_subjects: &[&[u8]],
            _sigschemes: &[SignatureScheme],
        ) -> Option<Arc<CertifiedKey>> {
            self.asked.store(true, Ordering::SeqCst);
            self.key.clone()
        }

        fn has_certs(&self) -> bool {
            self.key.is_some()
        }
    }

    /// The rustls connector for `tls` (ring, TLS 1.2 and 1.3); `asked` is
    /// set when a PBX asks for a client certificate.
    pub(crate) fn connector(
        tls: &TlsConfig,
        asked: Arc<AtomicBool>,
    ) -> Result<tokio_rustls::TlsConnector, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| setup("the TLS library", e))?;
        let builder = if tls.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider.clone())))
        } else {
            builder.with_root_certificates(roots(tls)?)
        };
        let key = match (&tls.client_cert, &tls.client_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let what = format!("the client certificate {}", cert.display());
                let chain = CertificateDer::pem_file_iter(cert)
                    .map_err(|e| setup(what.clone(), e))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| setup(what.clone(), e))?;
                if chain.is_empty() {
                    return Err(setup(what, "no certificate in the file"));
                }
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| setup(format!("the client key {}", key.display()), e))?;
                let key =
                    CertifiedKey::from_der(chain, key, &provider).map_err(|e| setup(what, e))?;
                Some(Arc::new(key))
            }
            _ => {
                return Err(setup(
                    "the client certificate",
                    "a certificate and its key go together: give both or neither",
                ))
            }
        };
        let config = builder.with_client_cert_resolver(Arc::new(ClientCert { key, asked }));
        Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }

    fn roots(tls: &TlsConfig) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        match &tls.ca_file {
            Some(path) => {
                let what = format!("the CA file {}", path.display());
                for cert in CertificateDer::pem_file_iter(path).map_err(|e| setup(&what, e))? {
                    let cert = cert.map_err(|e| setup(&what, e))?;
                    roots.add(cert).map_err(|e| setup(&what, e))?;
                }
                if roots.is_empty() {
                    return Err(setup(what, "no certificate in the file"));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for e in &found.errors {
                    tracing::debug!(error = %e, "while loading the system's CA certificates");
                }
                // Certificates the TLS library cannot parse are skipped, as browsers do.
                let (_added, _skipped) = roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(setup(
                        "the system's trust store",
                        "no CA certificate found (install ca-certificates or give a CA file)",
                    ));
                }
            }
        }
        Ok(roots)
    }

    /// Turns a failed handshake into [`Error::Tls`] when rustls says why;
    /// `asked`: the PBX had asked for a client certificate.
    pub(crate) fn classify_io(e: std::io::Error, name: &ServerName<'_>, asked: bool) -> Error {
        let inner = e
            .get_ref()
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .cloned();
        match inner {
            Some(r) => Error::Tls(classify(&r, &name.to_str(), asked)),
            None => Error::Io(e),
        }
    }

    /// What a rustls error means for the user.
    pub(crate) fn classify(e: &rustls::Error, name: &str, asked: bool) -> TlsError {
        let detail = e.to_string();
        match e {
            // A TLS 1.2 PBX that wants a client certificate and got none (or
            // one it cannot use) says only that the handshake failed.
            rustls::Error::AlertReceived(AlertDescription::HandshakeFailure) if asked => {
                TlsError::ClientCertificate { detail }
            }
            rustls::Error::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer => TlsError::UnknownCa { detail },
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => TlsError::NameMismatch {
                    name: name.to_string(),
                    detail,
                },
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    TlsError::Expired { detail }
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    TlsError::NotYetValid { detail }
                }
                _ => TlsError::BadCertificate { detail },
            },
            rustls::Error::AlertReceived(
                AlertDescription::ProtocolVersion | AlertDescription::InsufficientSecurity,
            ) => TlsError::ProtocolVersion { detail },
            rustls::Error::PeerIncompatible(
                PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
                | PeerIncompatible::ServerDoesNotSupportTls12Or13
                | PeerIncompatible::SupportedVersionsExtensionRequired
                | PeerIncompatible::Tls12NotOffered
                | PeerIncompatible::Tls12NotOfferedOrEnabled
                | PeerIncompatible::Tls13RequiredForQuic,
            ) => TlsError::ProtocolVersion { detail },
            rustls::Error::AlertReceived(
                AlertDescription::CertificateRequired
                | AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown
                | AlertDescription::CertificateExpired
                | AlertDescription::AccessDenied,
            ) => TlsError::ClientCertificate { detail },
            _ => TlsError::Handshake { detail },
        }
    }

    /// The verifier of `insecure_skip_verify`: any certificate, but the
    /// handshake signatures are still checked (the connection is encrypted,
    /// only the peer is unknown).
    #[derive(Debug)]
    struct AcceptAnyCertificate(Arc<CryptoProvider>);

    impl ServerCertVerifier for AcceptAnyCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn rustls_errors_map_to_what_the_user_can_fix() {
            let cert = |c| rustls::Error::InvalidCertificate(c);
            assert!(matches!(
                classify(&cert(CertificateError::UnknownIssuer), "pbx", false),
                TlsError::UnknownCa { .. }
            ));
            assert!(matches!(
                classify(&cert(CertificateError::NotValidForName), "pbx", false),
                TlsError::NameMismatch { name, .. } if name == "pbx"
            ));
            assert!(matches!(
                classify(&cert(CertificateError::Expired), "pbx", false),
                TlsError::Expired { .. }
            ));
            assert!(matches!(
                classify(&cert(CertificateError::NotValidYet), "pbx", false),
                TlsError::NotYetValid { .. }
            ));
            assert!(matches!(
                classify(
                    &rustls::Error::AlertReceived(AlertDescription::ProtocolVersion),
                    "pbx",
                    false
                ),
                TlsError::ProtocolVersion { .. }
            ));
            assert!(matches!(
                classify(
                    &rustls::Error::PeerIncompatible(
                        PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
                    ),
                    "pbx",
                    false
                ),
                TlsError::ProtocolVersion { .. }
            ));
            assert!(matches!(
                classify(
                    &rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
                    "pbx",
                    false
                ),
                TlsError::ClientCertificate { .. }
            ));
            let alert = rustls::Error::AlertReceived(AlertDescription::HandshakeFailure);
            assert!(matches!(
                classify(&alert, "pbx", true),
                TlsError::ClientCertificate { .. }
            ));
            assert!(matches!(
                classify(&alert, "pbx", false),
                TlsError::Handshake { .. }
            ));
            let io = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                cert(CertificateError::UnknownIssuer),
            );
            let name = ServerName::try_from("pbx.example").unwrap();
            assert!(matches!(
                classify_io(io, &name, false),
                Error::Tls(TlsError::UnknownCa { .. })
            ));
        }

        #[test]
        fn setup_errors_name_the_file() {
            let tls = TlsConfig {
                ca_file: Some("/nonexistent/ca.pem".into()),
                ..TlsConfig::default()
            };
            let asked = Arc::new(AtomicBool::new(false));
            let e = connector(&tls, asked.clone()).err().unwrap();
            assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
            let tls = TlsConfig {
                client_cert: Some("/x.pem".into()),
                ..TlsConfig::default()
            };
            assert!(matches!(
                connector(&tls, asked),
                Err(TlsError::Setup { .. })
            ));
        }
    }
}
