//! The lines of `check` that send nothing: the action-URL listener (bound
//! once and released, its certificate and key loaded) and the SIP MESSAGE
//! sink (its recipient read; a MESSAGE would show on the phones).

use std::io::ErrorKind;
use std::net::SocketAddr;

use super::{failed, Summary};
use crate::action_url::{check_listener, ActionUrlSettings, ServeError};
use crate::sip_message::SipMessageSettings;

pub(super) async fn probe_action_url(settings: &ActionUrlSettings) -> Summary {
    action_url_line(settings, check_listener(settings).await)
}

/// The line for the listener's trial: the address bound, or why not.
pub(super) fn action_url_line(
    settings: &ActionUrlSettings,
    bound: Result<SocketAddr, ServeError>,
) -> Summary {
    let listen = settings.listen;
    match bound {
        Ok(addr) => {
            let scheme = if settings.tls.is_some() {
                "https (certificate and key load)"
            } else {
                "http"
            };
            let secret = match &settings.secret {
                Some(_) => "requests must carry ACTION_URL_SECRET",
                None => "loopback only, no secret",
            };
            let port = if listen.port() == 0 {
                format!("{} (any free port; {addr} now)", listen.ip())
            } else {
                listen.to_string()
            };
            Summary {
                ok: true,
                text: format!("{port} can be listened on, {scheme}; {secret}"),
                fix: None,
            }
        }
        Err(ServeError::Tls { var, path, message }) => failed(
            format!("{var} {path}: {message}"),
            &format!(
                "set {var} to a readable PEM file: the certificate chain (leaf first) in \
                 ACTION_URL_TLS_CERT and its private key in ACTION_URL_TLS_KEY"
            ),
        ),
        Err(ServeError::Bind { addr, source }) => {
            let fix = match source.kind() {
                ErrorKind::AddrInUse => format!(
                    "port {} is in use (another program, or sip-blf-sync already running): \
                     stop it, or choose a free port in ACTION_URL_LISTEN",
                    addr.port()
                ),
                ErrorKind::PermissionDenied => format!(
                    "ports below 1024 need privileges: choose a port from 1024 in \
                     ACTION_URL_LISTEN (e.g. {}:8088), or give the service \
                     CAP_NET_BIND_SERVICE",
                    match addr {
                        SocketAddr::V4(a) => a.ip().to_string(),
                        SocketAddr::V6(a) => format!("[{}]", a.ip()),
                    }
                ),
                ErrorKind::AddrNotAvailable => format!(
                    "{} is not an address of this machine: set ACTION_URL_LISTEN to one of its \
                     addresses, or 0.0.0.0",
                    addr.ip()
                ),
                _ => "check ACTION_URL_LISTEN".to_owned(),
            };
            failed(format!("ACTION_URL_LISTEN {addr}: {source}"), &fix)
        }
    }
}

/// The SIP MESSAGE line: the recipient, read again; nothing is sent.
pub(super) fn sip_message_line(settings: &SipMessageSettings) -> Summary {
    let to = &settings.to;
    match crate::sip_message::check_uri(to) {
        Ok(()) => Summary {
            ok: true,
            text: format!(
                "to {to}; none sent (it would show on the phones): MESSAGEs go through the \
                 account registered on the SIP line"
            ),
            fix: None,
        },
        Err(why) => failed(
            format!("SIP_MESSAGE_TO {why}"),
            "use the SIP URI of the account the web phones listen on, e.g. \
             sip:webphones@pbx.example.com",
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::action_url::TlsFiles;
    use crate::settings::Secret;

    fn settings(listen: &str, secret: Option<&str>) -> ActionUrlSettings {
        ActionUrlSettings {
            listen: listen.parse().unwrap(),
            secret: secret.map(Secret::new),
            tls: None,
        }
    }

    fn bind_error(listen: &str, kind: ErrorKind) -> Summary {
        let s = settings(listen, Some("s3cr3t-value"));
        let error = ServeError::Bind {
            addr: s.listen,
            source: io::Error::from(kind),
        };
        action_url_line(&s, Err(error))
    }

    #[test]
    fn a_free_address_is_ok_and_says_how_requests_are_let_in() {
        let s = settings("0.0.0.0:8088", Some("s3cr3t-value"));
        let line = action_url_line(&s, Ok("0.0.0.0:8088".parse().unwrap()));
        assert!(line.ok);
        assert_eq!(
            line.text,
            "0.0.0.0:8088 can be listened on, http; requests must carry ACTION_URL_SECRET"
        );
        let s = settings("127.0.0.1:0", None);
        let line = action_url_line(&s, Ok("127.0.0.1:41234".parse().unwrap()));
        assert_eq!(
            line.text,
            "127.0.0.1 (any free port; 127.0.0.1:41234 now) can be listened on, http; loopback \
             only, no secret"
        );
    }

    #[test]
    fn a_port_in_use_or_forbidden_says_which_setting_to_change() {
        let line = bind_error("0.0.0.0:8088", ErrorKind::AddrInUse);
        assert!(!line.ok);
        assert!(
            line.text.starts_with("ACTION_URL_LISTEN 0.0.0.0:8088: "),
            "{}",
            line.text
        );
        let fix = line.fix.unwrap();
        assert!(fix.contains("port 8088 is in use"), "{fix}");
        assert!(fix.contains("free port in ACTION_URL_LISTEN"), "{fix}");
        let fix = bind_error("0.0.0.0:80", ErrorKind::PermissionDenied)
            .fix
            .unwrap();
        assert!(
            fix.contains("ACTION_URL_LISTEN (e.g. 0.0.0.0:8088)"),
            "{fix}"
        );
        let fix = bind_error("192.0.2.7:8088", ErrorKind::AddrNotAvailable)
            .fix
            .unwrap();
        assert!(fix.starts_with("192.0.2.7 is not an address"), "{fix}");
    }

    #[tokio::test]
    async fn a_missing_certificate_names_its_variable_and_never_the_secret() {
        let mut s = settings("127.0.0.1:0", Some("s3cr3t-value"));
        s.tls = Some(TlsFiles {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        });
        let line = probe_action_url(&s).await;
        assert!(!line.ok);
        assert!(
            line.text
                .starts_with("ACTION_URL_TLS_CERT /nonexistent/cert.pem: "),
            "{}",
            line.text
        );
        assert!(!format!("{line:?}").contains("s3cr3t"));
    }

    #[test]
    fn the_sip_message_line_names_the_recipient_and_sends_nothing() {
        let line = sip_message_line(&SipMessageSettings {
            to: "sip:webphones@pbx.example.com".into(),
        });
        assert!(line.ok);
        assert_eq!(
            line.text,
            "to sip:webphones@pbx.example.com; none sent (it would show on the phones): \
             MESSAGEs go through the account registered on the SIP line"
        );
        let line = sip_message_line(&SipMessageSettings {
            to: "webphones".into(),
        });
        assert!(!line.ok);
        assert!(line
            .text
            .starts_with("SIP_MESSAGE_TO \"webphones\" is not a SIP URI"));
    }
}
