//! Certificates for the SIP-over-TLS tests: a CA of the test's own, a
//! server and a client certificate it signed, and a client certificate
//! signed by another CA, as PEM files in a directory of their own.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

use crate::{Error, Result};

/// A test CA with one server and one client certificate signed by it (PEM
/// files), plus a second, unrelated CA and a client certificate it signed
/// (for "unknown CA" cases on either side). Removed on `Drop`.
#[derive(Debug)]
pub struct TestPki {
    dir: tempfile::TempDir,
}

/// What the server certificate looks like.
#[derive(Debug, Clone)]
pub struct ServerCertOptions {
    /// Subject alternative names (IP addresses or DNS names).
    pub names: Vec<String>,
    /// Validity ended in 2001.
    pub expired: bool,
}

impl Default for ServerCertOptions {
    fn default() -> Self {
        Self {
            names: vec!["127.0.0.1".into(), "localhost".into(), "pbx.test".into()],
            expired: false,
        }
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Failed {
        what: format!("making the test {what}"),
        detail: e.to_string(),
        log: PathBuf::new(),
        tail: String::new(),
    }
}

fn ca(name: &str) -> Result<(rcgen::Certificate, KeyPair)> {
    let key = KeyPair::generate().map_err(|e| failed("CA key", e))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| failed("CA", e))?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).map_err(|e| failed("CA", e))?;
    Ok((cert, key))
}

/// A client certificate (for TLS client authentication) signed by `ca`.
fn client_cert(
    name: &str,
    ca_cert: &rcgen::Certificate,
    ca_key: &KeyPair,
) -> Result<(rcgen::Certificate, KeyPair)> {
    let key = KeyPair::generate().map_err(|e| failed("client key", e))?;
    let mut params = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| failed("client certificate", e))?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params
        .signed_by(&key, ca_cert, ca_key)
        .map_err(|e| failed("client certificate", e))?;
    Ok((cert, key))
}

impl TestPki {
    /// Makes the CA, the server and client certificates (and their keys),
    /// another CA and its client certificate.
    pub fn new(opts: ServerCertOptions) -> Result<TestPki> {
        let dir = tempfile::Builder::new()
            .prefix("testbed-pki-")
            .tempdir()
            .map_err(|e| Error::io("creating the PKI directory", e))?;
        let (ca_cert, ca_key) = ca("sip-blf-sync test CA")?;
        let (other_ca, other_ca_key) = ca("some other CA")?;
        let (client, client_key) = client_cert("blf", &ca_cert, &ca_key)?;
        let (other_client, other_client_key) = client_cert("blf", &other_ca, &other_ca_key)?;
        let key = KeyPair::generate().map_err(|e| failed("server key", e))?;
        let mut params = CertificateParams::new(opts.names.clone())
            .map_err(|e| failed("server certificate", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "kamailio-blf-lab");
        if opts.expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let cert = params
            .signed_by(&key, &ca_cert, &ca_key)
            .map_err(|e| failed("server certificate", e))?;
        let pki = TestPki { dir };
        let files = [
            ("ca.pem", ca_cert.pem()),
            ("other-ca.pem", other_ca.pem()),
            ("server.pem", cert.pem()),
            ("server.key", key.serialize_pem()),
            ("client.pem", client.pem()),
            ("client.key", client_key.serialize_pem()),
            ("other-client.pem", other_client.pem()),
            ("other-client.key", other_client_key.serialize_pem()),
        ];
        for (name, pem) in files {
            fs::write(pki.dir.path().join(name), pem)
                .map_err(|e| Error::io(format!("writing {name}"), e))?;
        }
        Ok(pki)
    }

    /// The directory of the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    /// The CA that signed the server certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
    /// Another CA, which signed only [`TestPki::other_client_cert_file`].
    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }
    /// The server certificate.
    pub fn cert_file(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }
    /// The server certificate's private key.
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
    /// A client certificate signed by the CA of [`TestPki::ca_file`].
    pub fn client_cert_file(&self) -> PathBuf {
        self.dir.path().join("client.pem")
    }
    /// Its private key.
    pub fn client_key_file(&self) -> PathBuf {
        self.dir.path().join("client.key")
    }
    /// A client certificate signed by the other CA ([`TestPki::other_ca_file`]).
    pub fn other_client_cert_file(&self) -> PathBuf {
        self.dir.path().join("other-client.pem")
    }
    /// Its private key.
    pub fn other_client_key_file(&self) -> PathBuf {
        self.dir.path().join("other-client.key")
    }
}
