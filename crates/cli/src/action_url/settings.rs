//! `ACTION_URL_LISTEN`, `ACTION_URL_SECRET`, `ACTION_URL_TLS_CERT` and
//! `ACTION_URL_TLS_KEY`.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::problems::{Problem, Problems};
use crate::settings::{Env, Secret};

/// Every variable of the action-URL source.
pub const VARS: [&str; 4] = [
    "ACTION_URL_LISTEN",
    "ACTION_URL_SECRET",
    "ACTION_URL_TLS_CERT",
    "ACTION_URL_TLS_KEY",
];

/// The listener the desk phones call.
#[derive(Debug, Clone)]
pub struct ActionUrlSettings {
    /// Where to listen (`ACTION_URL_LISTEN`).
    pub listen: SocketAddr,
    /// What each request must present (`ACTION_URL_SECRET`); needed unless
    /// `listen` is a loopback address.
    pub secret: Option<Secret>,
    /// Certificate chain and key (PEM), for HTTPS.
    pub tls: Option<TlsFiles>,
}

/// The PEM files of `ACTION_URL_TLS_CERT` and `ACTION_URL_TLS_KEY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

impl ActionUrlSettings {
    /// Reads the variables: `Ok(None)` when none is set; every problem
    /// otherwise (no `ACTION_URL_LISTEN`, an address that is not `ip:port`,
    /// a non-loopback address without a secret, half of the TLS pair).
    pub fn from_env(env: &Env) -> Result<Option<Self>, Problems> {
        let given = |name: &str| env.get(name).map(str::trim).filter(|v| !v.is_empty());
        if VARS.iter().all(|v| given(v).is_none()) {
            return Ok(None);
        }
        let mut problems = Problems::default();
        let listen = match given("ACTION_URL_LISTEN") {
            None => {
                problems.push(Problem::in_var(
                    "ACTION_URL_LISTEN",
                    "is needed by the action-url source: the address the desk phones call, \
                     e.g. 127.0.0.1:8088 behind a reverse proxy, or 0.0.0.0:8088 with \
                     ACTION_URL_SECRET",
                ));
                None
            }
            Some(v) => match v.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    problems.push(Problem::in_var(
                        "ACTION_URL_LISTEN",
                        format!("{v:?} is not an address like 127.0.0.1:8088 or [::]:8088"),
                    ));
                    None
                }
            },
        };
        let secret = given("ACTION_URL_SECRET").map(Secret::new);
        if let (Some(addr), None) = (listen, &secret) {
            if !addr.ip().is_loopback() {
                problems.push(Problem::in_var(
                    "ACTION_URL_LISTEN",
                    format!(
                        "{addr} takes requests from the network: set ACTION_URL_SECRET (a long \
                         random string, e.g. from `openssl rand -hex 24`) and put it in the \
                         phones' URLs as ?secret=…, or listen on 127.0.0.1"
                    ),
                ));
            }
        }
        let tls = match (given("ACTION_URL_TLS_CERT"), given("ACTION_URL_TLS_KEY")) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            (None, None) => None,
            (Some(_), None) => {
                problems.push(Problem::in_var(
                    "ACTION_URL_TLS_KEY",
                    "is needed with ACTION_URL_TLS_CERT: the certificate's private key (PEM)",
                ));
                None
            }
            (None, Some(_)) => {
                problems.push(Problem::in_var(
                    "ACTION_URL_TLS_CERT",
                    "is needed with ACTION_URL_TLS_KEY: the certificate chain (PEM)",
                ));
                None
            }
        };
        match listen {
            Some(listen) if problems.is_empty() => Ok(Some(Self {
                listen,
                secret,
                tls,
            })),
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<Option<ActionUrlSettings>, String> {
        ActionUrlSettings::from_env(&Env::from_pairs(pairs.iter().copied()))
            .map_err(|p| p.to_string())
    }

    #[test]
    fn nothing_set_is_none_and_a_loopback_listener_needs_no_secret() {
        assert!(read(&[]).unwrap().is_none());
        let s = read(&[("ACTION_URL_LISTEN", "127.0.0.1:8088")])
            .unwrap()
            .unwrap();
        assert_eq!(s.listen, "127.0.0.1:8088".parse().unwrap());
        assert!(s.secret.is_none() && s.tls.is_none());
    }

    #[test]
    fn the_network_without_a_secret_is_refused_and_says_what_to_set() {
        let e = read(&[("ACTION_URL_LISTEN", "0.0.0.0:8088")]).unwrap_err();
        assert!(e.contains("ACTION_URL_SECRET"), "{e}");
        let s = read(&[
            ("ACTION_URL_LISTEN", "0.0.0.0:8088"),
            ("ACTION_URL_SECRET", "s3cr3t-value"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.secret.unwrap().expose(), "s3cr3t-value");
    }

    #[test]
    fn a_missing_listener_bad_address_or_half_tls_pair_is_named() {
        let e = read(&[("ACTION_URL_SECRET", "x")]).unwrap_err();
        assert!(
            e.contains("ACTION_URL_LISTEN") && e.contains("127.0.0.1:8088"),
            "{e}"
        );
        let e = read(&[("ACTION_URL_LISTEN", "localhost")]).unwrap_err();
        assert!(e.contains("\"localhost\""), "{e}");
        let e = read(&[
            ("ACTION_URL_LISTEN", "127.0.0.1:8088"),
            ("ACTION_URL_TLS_CERT", "cert.pem"),
        ])
        .unwrap_err();
        assert!(e.contains("ACTION_URL_TLS_KEY"), "{e}");
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let s = read(&[
            ("ACTION_URL_LISTEN", "127.0.0.1:8088"),
            ("ACTION_URL_SECRET", "s3cr3t-value"),
        ])
        .unwrap()
        .unwrap();
        assert!(!format!("{s:?}").contains("s3cr3t"));
    }
}
