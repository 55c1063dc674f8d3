//! The one place where the SIP source's health becomes log lines, `/status`
//! and `/metrics`: `run`, `watch` and `check` all hand each [`SipHealth`]
//! to [`sip_health`].

use std::time::SystemTime;

use super::{SubscriptionStatus, Telemetry};
use crate::sip_source::{Severity, SipHealth};

/// Logs `health` at its [`Severity`] and records what it tells in
/// `telemetry`: the registration (`sip_registered`, readiness), each
/// subscription's state, every NOTIFY and body not understood, and lines
/// unknown for a lost subscription.
pub fn sip_health(telemetry: &Telemetry, health: &SipHealth) {
    match health.severity() {
        Severity::Debug => tracing::debug!("{health}"),
        Severity::Info => tracing::info!("{health}"),
        Severity::Warn => tracing::warn!("{health}"),
    }
    record(telemetry, health);
}

fn record(t: &Telemetry, health: &SipHealth) {
    match health {
        SipHealth::Registered { .. } => t.set_registered(true),
        SipHealth::RegistrationFailed { .. } | SipHealth::Unreachable { .. } => {
            t.set_registered(false)
        }
        SipHealth::Subscribed { extension, .. } => {
            t.set_subscription(extension, SubscriptionStatus::Active)
        }
        SipHealth::Pending { extension, .. } => {
            t.set_subscription(extension, SubscriptionStatus::Pending)
        }
        SipHealth::SubscriptionFailed { extension, .. } => {
            t.set_subscription(extension, SubscriptionStatus::Failed)
        }
        SipHealth::EndedByPbx { extension, .. } => {
            t.set_subscription(extension, SubscriptionStatus::Terminated)
        }
        SipHealth::NotifyReceived {
            extension,
            received_at,
            ..
        } => t.notify_arrived(extension, SystemTime::now(), *received_at),
        SipHealth::NotifyNotUnderstood { extension, .. } => t.parse_error(extension),
        SipHealth::LineUnknown {
            extension,
            since,
            reason,
            ..
        } => t.set_stale(extension, *since, reason),
        // Every rejected NOTIFY is counted by the source as it comes: most
        // are held back from the log, none from `/metrics`.
        SipHealth::NotifyRejected { .. }
        | SipHealth::NotifiesRejected(_)
        | SipHealth::VersionGap { .. }
        | SipHealth::ContactChanged { .. }
        | SipHealth::StunServersInvalid { .. }
        | SipHealth::StunServerFailed { .. }
        | SipHealth::NoStunServer => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use sip_ua::EventPackage;

    use super::*;

    /// The log lines written while `f` runs.
    fn logged(f: impl FnOnce()) -> String {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let buffer = buffer.clone();
            move || Capture(buffer.clone())
        };
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buffer.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn line<'a>(log: &'a str, text: &str) -> &'a str {
        log.lines()
            .find(|l| l.contains(text))
            .unwrap_or_else(|| panic!("{text:?} not in {log}"))
    }

    #[test]
    fn a_health_is_logged_and_recorded_in_one_go() {
        let t = Telemetry::new();
        t.add_extension("1001", "user1@contoso.com");
        let log = logged(|| {
            sip_health(
                &t,
                &SipHealth::Registered {
                    contact: "sip:blf@127.0.0.1:5062".into(),
                    expires: 600,
                },
            );
            sip_health(
                &t,
                &SipHealth::Subscribed {
                    extension: "1001".into(),
                    package: EventPackage::Dialog,
                    expires: 600,
                },
            );
            sip_health(
                &t,
                &SipHealth::NotifyReceived {
                    extension: "1001".into(),
                    package: EventPackage::Dialog,
                    received_at: Instant::now(),
                },
            );
        });
        let status = t.status_json();
        assert_eq!(status["registered"], true);
        assert_eq!(status["extensions"][0]["subscription"], "active");
        assert_eq!(status["extensions"][0]["notifies"], 1);
        let metrics = t.metrics_text();
        assert!(metrics.contains("sip_registered 1"), "{metrics}");
        assert!(
            metrics.contains(r#"sip_subscriptions{state="active"} 1"#),
            "{metrics}"
        );
        assert!(line(&log, "subscribed to 1001 for 600 s").contains("INFO"));
        // A NOTIFY is counted, not logged at this level.
        assert!(!log.contains("NOTIFY"), "{log}");

        let log = logged(|| {
            sip_health(
                &t,
                &SipHealth::SubscriptionFailed {
                    extension: "1001".into(),
                    package: EventPackage::Dialog,
                    status: Some(404),
                    diagnosis: "no hint for 1001".into(),
                },
            )
        });
        assert_eq!(t.status_json()["extensions"][0]["subscription"], "failed");
        assert!(line(&log, "1001: no hint for 1001").contains("WARN"));
        sip_health(
            &t,
            &SipHealth::Unreachable {
                reason: "no answer".into(),
            },
        );
        assert_eq!(t.status_json()["registered"], false);
    }
}
