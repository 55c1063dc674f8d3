//! The webhook line of `check`: one signed ping (`{"type":"ping",…}`,
//! which receivers ignore) and what its answer means.

use tokio::time::Instant;

use super::{failed, Summary};
use crate::webhook::ping::PingAnswer;
use crate::webhook::{ping, refusal_hint, PingError, WebhookSettings};

const FIX_SIGNATURE: &str = "the receiver refused the signature: check WEBHOOK_SECRET (the \
     receiver must use the same secret) and that the receiver's clock is right (X-Timestamp)";
const FIX_CONNECT: &str = "check WEBHOOK_URL (host and port), that the receiver runs, and that \
     this machine may reach it";
const FIX_TLS: &str = "the receiver's certificate must be valid for WEBHOOK_URL's host and issued \
     by a CA this machine trusts";
const FIX_FAILED: &str = "the receiver failed or is overloaded: see its log";

pub(super) async fn probe_webhook(settings: &WebhookSettings, deadline: Instant) -> Summary {
    let answer = tokio::time::timeout_at(deadline, ping(settings)).await;
    webhook_line(&settings.redacted_url(), answer.ok())
}

/// The line for the ping's outcome; `None`: the check's time was up first.
pub(super) fn webhook_line(url: &str, outcome: Option<Result<PingAnswer, PingError>>) -> Summary {
    let answer = match outcome {
        None => {
            return failed(
                format!("WEBHOOK_URL {url}: no answer to the ping within the check's time limit"),
                "check that the receiver answers quickly, or give check more --timeout",
            )
        }
        Some(Err(e)) => {
            let fix = match &e {
                PingError::Timeout(_) => {
                    "the receiver must answer within WEBHOOK_TIMEOUT_SECONDS: check that it \
                     runs and answers quickly, or raise WEBHOOK_TIMEOUT_SECONDS"
                }
                PingError::Tls(_) => FIX_TLS,
                _ => FIX_CONNECT,
            };
            return failed(format!("WEBHOOK_URL {url}: {e}"), fix);
        }
        Some(Ok(answer)) => answer,
    };
    let status = answer.status;
    if status.is_success() {
        return Summary {
            ok: true,
            text: format!("{url} answered the signed ping with {status}"),
            fix: None,
        };
    }
    let text = format!("{url} answered the signed ping with {status}");
    match status.as_u16() {
        401 | 403 => failed(text, FIX_SIGNATURE),
        408 | 429 | 500..=599 => failed(text, FIX_FAILED),
        _ => failed(text, &refusal_hint(status, &answer.headers)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reqwest::header::{HeaderMap, LOCATION};
    use reqwest::StatusCode;

    use super::*;

    const URL: &str = "https://hooks.example.com/blf?***";

    fn answered(code: u16, headers: HeaderMap) -> Summary {
        let status = StatusCode::from_u16(code).unwrap();
        webhook_line(URL, Some(Ok(PingAnswer { status, headers })))
    }

    #[test]
    fn a_2xx_is_ok_and_a_refused_signature_names_the_secret() {
        let ok = answered(204, HeaderMap::new());
        assert!(ok.ok && ok.fix.is_none(), "{ok:?}");
        assert_eq!(
            ok.text,
            "https://hooks.example.com/blf?*** answered the signed ping with 204 No Content"
        );
        for code in [401, 403] {
            let s = answered(code, HeaderMap::new());
            assert!(!s.ok);
            assert!(s.text.contains(&format!("with {code} ")), "{}", s.text);
            let fix = s.fix.unwrap();
            assert!(
                fix.starts_with("the receiver refused the signature: check WEBHOOK_SECRET"),
                "{fix}"
            );
        }
    }

    #[test]
    fn other_answers_say_the_status_and_what_it_means() {
        let mut headers = HeaderMap::new();
        headers.insert(LOCATION, "https://elsewhere/x".parse().unwrap());
        let s = answered(308, headers);
        assert!(s.text.contains("308 Permanent Redirect"), "{}", s.text);
        assert!(s.fix.unwrap().contains("to https://elsewhere/x"));
        let s = answered(404, HeaderMap::new());
        assert_eq!(
            s.fix.as_deref(),
            Some("nothing is there: check WEBHOOK_URL")
        );
        let s = answered(503, HeaderMap::new());
        assert!(s.text.ends_with("503 Service Unavailable"), "{}", s.text);
        assert_eq!(s.fix.as_deref(), Some(FIX_FAILED));
    }

    #[test]
    fn no_answer_names_webhook_url_and_what_happened() {
        let refused = PingError::Connect("tcp connect error: Connection refused".into());
        let s = webhook_line(URL, Some(Err(refused)));
        assert_eq!(
            s.text,
            "WEBHOOK_URL https://hooks.example.com/blf?***: cannot connect: tcp connect error: \
             Connection refused"
        );
        assert_eq!(s.fix.as_deref(), Some(FIX_CONNECT));
        let s = webhook_line(URL, Some(Err(PingError::Timeout(Duration::from_secs(10)))));
        assert!(s.text.ends_with("no answer within 10 s"), "{}", s.text);
        assert!(s.fix.unwrap().contains("WEBHOOK_TIMEOUT_SECONDS"));
        let s = webhook_line(URL, Some(Err(PingError::Tls("UnknownIssuer".into()))));
        assert!(s.text.contains("the TLS handshake failed: UnknownIssuer"));
        assert_eq!(s.fix.as_deref(), Some(FIX_TLS));
        let s = webhook_line(URL, None);
        assert!(s.text.starts_with("WEBHOOK_URL "), "{}", s.text);
        assert!(!s.ok);
    }
}
