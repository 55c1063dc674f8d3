//! `SIP_TRANSPORT=tls`: the `SIP_TLS_*` settings, and the fix for each way the
//! PBX's certificate can be refused (for `check` and the log).

use std::path::PathBuf;

use sip_ua::{TlsConfig, TlsError};

use crate::problems::{Problem, Problems};
use crate::settings::Env;

/// The `SIP_TLS_*` settings (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// `SIP_TLS_CA_FILE`: PEM file of the CA that signed the PBX's certificate
    /// (unset: the system's trust store).
    pub ca_file: Option<PathBuf>,
    /// `SIP_TLS_SERVER_NAME`: the name the certificate must hold (unset: the
    /// host of `SIP_SERVER`).
    pub server_name: Option<String>,
    /// `SIP_TLS_CERT`: PEM file of a client certificate, for PBXs that want one.
    pub client_cert: Option<PathBuf>,
    /// `SIP_TLS_KEY`: PEM file of that certificate's key.
    pub client_key: Option<PathBuf>,
    /// `SIP_TLS_INSECURE=true`: the PBX's certificate is not verified at all
    /// (a warning at every start).
    pub insecure: bool,
}

/// Every `SIP_TLS_*` variable.
pub const TLS_VARS: [&str; 5] = [
    "SIP_TLS_CA_FILE",
    "SIP_TLS_SERVER_NAME",
    "SIP_TLS_CERT",
    "SIP_TLS_KEY",
    "SIP_TLS_INSECURE",
];

impl TlsSettings {
    /// Reads the `SIP_TLS_*` settings; `tls` says whether `SIP_TRANSPORT=tls`
    /// (they are refused with another transport, where they would do nothing).
    pub fn from_env(env: &Env, tls: bool, problems: &mut Problems) -> Self {
        if !tls {
            for var in TLS_VARS {
                if env.get(var).is_some() {
                    problems.push(Problem::in_var(
                        var,
                        "is only used with SIP_TRANSPORT=tls: set SIP_TRANSPORT=tls or remove it",
                    ));
                }
            }
            return Self::default();
        }
        let path = |var: &str| env.get(var).map(PathBuf::from);
        let insecure = match env.get("SIP_TLS_INSECURE").map(str::to_ascii_lowercase) {
            None => false,
            Some(v) if matches!(v.as_str(), "true" | "yes" | "1") => true,
            Some(v) if matches!(v.as_str(), "false" | "no" | "0") => false,
            Some(v) => {
                problems.push(Problem::in_var(
                    "SIP_TLS_INSECURE",
                    format!("{v:?} is not true or false"),
                ));
                false
            }
        };
        let settings = Self {
            ca_file: path("SIP_TLS_CA_FILE"),
            server_name: env.get("SIP_TLS_SERVER_NAME").map(str::to_string),
            client_cert: path("SIP_TLS_CERT"),
            client_key: path("SIP_TLS_KEY"),
            insecure,
        };
        match (&settings.client_cert, &settings.client_key) {
            (Some(_), None) => problems.push(Problem::in_var(
                "SIP_TLS_KEY",
                "is not set but SIP_TLS_CERT is: set it to the PEM file of the certificate's key",
            )),
            (None, Some(_)) => problems.push(Problem::in_var(
                "SIP_TLS_CERT",
                "is not set but SIP_TLS_KEY is: set it to the PEM file of the client certificate",
            )),
            _ => {}
        }
        for (var, file) in [
            ("SIP_TLS_CA_FILE", &settings.ca_file),
            ("SIP_TLS_CERT", &settings.client_cert),
            ("SIP_TLS_KEY", &settings.client_key),
        ] {
            if let Some(f) = file {
                if !f.is_file() {
                    problems.push(Problem::in_var(
                        var,
                        format!("{} is not a readable file", f.display()),
                    ));
                }
            }
        }
        settings
    }

    /// The user agent's TLS configuration.
    pub fn ua_config(&self) -> TlsConfig {
        TlsConfig {
            ca_file: self.ca_file.clone(),
            server_name: self.server_name.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
            insecure_skip_verify: self.insecure,
        }
    }

    /// Logs the warning of `SIP_TLS_INSECURE` (at every start).
    pub fn warn_if_insecure(&self) {
        if self.insecure {
            tracing::warn!(
                "SIP_TLS_INSECURE=true: the PBX's TLS certificate is NOT verified, anyone on the \
                 path can read and change the SIP traffic; set SIP_TLS_CA_FILE instead"
            );
        }
    }

    /// What to change when the PBX's certificate (or TLS set-up) was refused.
    pub fn fix(&self, error: &TlsError) -> String {
        match error {
            TlsError::UnknownCa { .. } => match &self.ca_file {
                Some(ca) => format!(
                    "the PBX's certificate is not signed by the CA in SIP_TLS_CA_FILE={}: \
                     set SIP_TLS_CA_FILE to the PEM file of the CA that signed it",
                    ca.display()
                ),
                None => "the PBX's certificate is signed by a CA this machine does not trust: \
                         set SIP_TLS_CA_FILE=/path/to/ca.pem (the PBX's CA), or install that CA \
                         in the system's trust store"
                    .to_string(),
            },
            TlsError::NameMismatch { name, .. } => format!(
                "the PBX's certificate is not made out to {name:?}: set SIP_SERVER to a name the \
                 certificate holds, or SIP_TLS_SERVER_NAME to that name (keeping SIP_SERVER), \
                 or have the PBX's certificate include {name:?}"
            ),
            TlsError::Expired { .. } => "the PBX's certificate has expired: renew it on the PBX \
                 (and check that this machine's clock is right)"
                .to_string(),
            TlsError::NotYetValid { .. } => "the PBX's certificate is not valid yet: check this \
                 machine's clock (and the certificate's start date on the PBX)"
                .to_string(),
            TlsError::ProtocolVersion { .. } => "enable TLS 1.2 or 1.3 on the PBX (this service \
                 does not speak TLS 1.0 or 1.1)"
                .to_string(),
            TlsError::ClientCertificate { .. } => match &self.client_cert {
                None => "the PBX asks for a client certificate and none is set: set \
                         SIP_TLS_CERT and SIP_TLS_KEY to the PEM files of a certificate signed \
                         by a CA the PBX accepts, and of its key"
                    .to_string(),
                Some(cert) => format!(
                    "the PBX does not accept the client certificate in SIP_TLS_CERT={}: set \
                     SIP_TLS_CERT and SIP_TLS_KEY to one signed by a CA the PBX accepts (and \
                     still valid), or add its CA to the PBX's client CAs",
                    cert.display()
                ),
            },
            TlsError::BadCertificate { .. } => {
                "the PBX's certificate is unusable: replace it on the PBX".to_string()
            }
            TlsError::Handshake { .. } => "check that SIP_SERVER names the PBX's TLS port \
                 (usually 5061) and look at the PBX's TLS log"
                .to_string(),
            TlsError::Setup { .. } => {
                "fix the file or name in the message (SIP_TLS_CA_FILE, SIP_TLS_CERT, SIP_TLS_KEY, \
                 SIP_TLS_SERVER_NAME)"
                    .to_string()
            }
            // A refusal a newer sip-ua tells apart: the message says what it is.
            _ => "look at the PBX's TLS set-up and log for the cause in the message".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        Env::from_pairs(vars.iter().copied())
    }

    #[test]
    fn tls_settings_only_with_tls_and_cert_with_key() {
        let mut p = Problems::default();
        TlsSettings::from_env(&env(&[("SIP_TLS_CA_FILE", "/x")]), false, &mut p);
        assert!(format!("{p:?}").contains("SIP_TRANSPORT=tls"), "{p:?}");
        let mut p = Problems::default();
        let s = TlsSettings::from_env(
            &env(&[
                ("SIP_TLS_CERT", "/nonexistent.pem"),
                ("SIP_TLS_INSECURE", "yes"),
            ]),
            true,
            &mut p,
        );
        assert!(s.insecure);
        let text = format!("{p:?}");
        assert!(text.contains("SIP_TLS_KEY"), "{text}");
        assert!(text.contains("not a readable file"), "{text}");
        let mut p = Problems::default();
        let s = TlsSettings::from_env(&env(&[("SIP_TLS_SERVER_NAME", "pbx.lan")]), true, &mut p);
        assert!(p.0.is_empty());
        assert_eq!(s.ua_config().server_name.as_deref(), Some("pbx.lan"));
        assert!(!s.ua_config().insecure_skip_verify);
    }

    #[test]
    fn each_refusal_has_its_fix() {
        let d = || "x".to_string();
        let s = TlsSettings::default();
        assert!(s
            .fix(&TlsError::UnknownCa { detail: d() })
            .contains("set SIP_TLS_CA_FILE=/path/to/ca.pem"));
        let with_ca = TlsSettings {
            ca_file: Some("/etc/ca.pem".into()),
            ..TlsSettings::default()
        };
        assert!(with_ca
            .fix(&TlsError::UnknownCa { detail: d() })
            .contains("SIP_TLS_CA_FILE=/etc/ca.pem"));
        assert!(s
            .fix(&TlsError::NameMismatch {
                name: "pbx".into(),
                detail: d()
            })
            .contains("SIP_TLS_SERVER_NAME"));
        assert!(s.fix(&TlsError::Expired { detail: d() }).contains("renew"));
        assert!(s
            .fix(&TlsError::ProtocolVersion { detail: d() })
            .contains("TLS 1.2 or 1.3"));
        let fix = s.fix(&TlsError::ClientCertificate { detail: d() });
        assert!(fix.contains("asks for a client certificate"), "{fix}");
        assert!(fix.contains("SIP_TLS_CERT and SIP_TLS_KEY"), "{fix}");
        let with_cert = TlsSettings {
            client_cert: Some("/etc/client.pem".into()),
            client_key: Some("/etc/client.key".into()),
            ..TlsSettings::default()
        };
        let fix = with_cert.fix(&TlsError::ClientCertificate { detail: d() });
        assert!(fix.contains("does not accept"), "{fix}");
        assert!(fix.contains("SIP_TLS_CERT=/etc/client.pem"), "{fix}");
    }
}
