//! The PBX half of `check`: REGISTER, one SUBSCRIBE per subscription and its
//! first NOTIFY, then un-SUBSCRIBE and un-REGISTER.

use std::collections::HashMap;
use std::time::Duration;

use blf::LineState;
use sip_ua::EventPackage as Package;
use tokio::time::Instant;

use super::{failed, Column, Reach, Summary, SHUTDOWN_LIMIT};
use crate::extensions::Extension;
use crate::observe::{sip_health, Telemetry};
use crate::settings::{SipSettings, SipTransport};
use crate::sip_source::{subscriptions, SipHealth, SipSource, SourceEvent};

/// The registration as the probe saw it.
pub(super) enum Registration {
    Waiting,
    Registered(String),
    Refused {
        status: Option<u16>,
        reason: String,
    },
    Unreachable(String),
    NotStarted {
        error: String,
        /// What to set when the local SIP socket could not be opened.
        listen_fix: Option<String>,
        /// What to set when the PBX's TLS certificate was refused.
        tls_fix: Option<String>,
    },
}

/// The probes, one per subscription: (extension, package).
pub(super) type Probes = HashMap<(String, Package), Probe>;

/// One subscription as the probe saw it.
#[derive(Default)]
pub(super) struct Probe {
    phase: Phase,
    notified: bool,
    line: Option<LineState>,
    notify_problem: Option<String>,
}

#[derive(Default, PartialEq)]
pub(super) enum Phase {
    #[default]
    Waiting,
    Active,
    Pending,
    Failed {
        status: Option<u16>,
        diagnosis: String,
    },
    Terminated(String),
}

impl Probe {
    /// Nothing more to wait for.
    fn settled(&self) -> bool {
        match self.phase {
            Phase::Waiting => false,
            Phase::Active | Phase::Pending => self.notified,
            Phase::Failed { .. } | Phase::Terminated(_) => true,
        }
    }
}

pub(super) async fn probe_sip(
    settings: &SipSettings,
    exts: &[Extension],
    deadline: Instant,
    timeout: Duration,
) -> (Summary, Column, Reach) {
    let mut probes: Probes = subscriptions(exts)
        .into_iter()
        .map(|s| ((s.user, s.package), Probe::default()))
        .collect();
    let mut registration = Registration::Waiting;
    let mut opened = None;
    match tokio::time::timeout_at(deadline, SipSource::start(settings, exts)).await {
        Err(_) => {}
        Ok(Err(e)) => {
            registration = Registration::NotStarted {
                error: e.to_string(),
                listen_fix: settings.listen_fix(&e),
                tls_fix: match &e {
                    sip_ua::Error::Tls(t) => Some(settings.tls.fix(t)),
                    _ => None,
                },
            }
        }
        Ok(Ok((mut source, health))) => {
            // Logged as `run` logs it (warnings only, at the check's level).
            let telemetry = Telemetry::new();
            source.set_telemetry(telemetry.clone());
            for h in &health {
                sip_health(&telemetry, h);
            }
            opened = source.local_addr();
            watch_until_settled(
                &mut source,
                &telemetry,
                &mut registration,
                &mut probes,
                deadline,
            )
            .await;
            source.shutdown(SHUTDOWN_LIMIT).await;
        }
    }
    let contact = match &registration {
        Registration::Registered(c) => Some(c.as_str()),
        _ => None,
    };
    let reach = Reach::new(settings, opened, contact);
    let summary = sip_summary(settings, &registration, timeout);
    let rows = exts
        .iter()
        .map(|e| extension_row(settings, e, &probes, &registration, timeout))
        .collect();
    (summary, rows, reach)
}

/// An extension's PBX cell: the first failed subscription of its packages,
/// else the (combined) line state.
pub(super) fn extension_row(
    settings: &SipSettings,
    ext: &Extension,
    probes: &Probes,
    registration: &Registration,
    timeout: Duration,
) -> (String, Option<String>) {
    let both = ext.event.packages().len() > 1;
    let mut cells = ext.event.packages().iter().map(|package| {
        let (text, fix) = match probes.get(&(ext.extension.clone(), *package)) {
            Some(p) => sip_row(settings, ext, p, registration, timeout),
            None => ("not subscribed".to_string(), Some("see SIP above".into())),
        };
        match fix {
            Some(fix) if both => (format!("{}: {text}", package.event_name()), Some(fix)),
            fix => (text, fix),
        }
    });
    let first = cells
        .next()
        .unwrap_or_else(|| ("not subscribed".to_string(), Some("see SIP above".into())));
    if first.1.is_some() {
        return first;
    }
    cells.find(|(_, fix)| fix.is_some()).unwrap_or(first)
}

/// Reads the source's health until the registration failed, every
/// subscription settled, or `deadline`.
async fn watch_until_settled(
    source: &mut SipSource,
    telemetry: &Telemetry,
    registration: &mut Registration,
    probes: &mut Probes,
    deadline: Instant,
) {
    loop {
        let registered = matches!(registration, Registration::Registered(_));
        if registered && probes.values().all(Probe::settled) {
            return;
        }
        if matches!(
            registration,
            Registration::Refused { .. } | Registration::Unreachable(_)
        ) {
            return;
        }
        let health = match tokio::time::timeout_at(deadline, source.next()).await {
            Ok(Some(SourceEvent::Health(h))) => h,
            // The line comes with each NOTIFY's health, below.
            Ok(Some(SourceEvent::Line(_))) => continue,
            Ok(None) | Err(_) => return,
        };
        sip_health(telemetry, &health);
        probe(source, registration, probes, health);
    }
}

/// What one health tells about the registration or a subscription.
fn probe(source: &SipSource, registration: &mut Registration, probes: &mut Probes, h: SipHealth) {
    match h {
        SipHealth::Registered { contact, .. } => *registration = Registration::Registered(contact),
        SipHealth::RegistrationFailed {
            status: Some(status),
            reason,
        } => {
            *registration = Registration::Refused {
                status: Some(status),
                reason,
            }
        }
        SipHealth::Unreachable { reason } => *registration = Registration::Unreachable(reason),
        SipHealth::Subscribed {
            extension, package, ..
        } => set_phase(probes, extension, package, Phase::Active),
        SipHealth::Pending { extension, package } => {
            set_phase(probes, extension, package, Phase::Pending)
        }
        SipHealth::SubscriptionFailed {
            extension,
            package,
            status,
            diagnosis,
        } => set_phase(
            probes,
            extension,
            package,
            Phase::Failed { status, diagnosis },
        ),
        SipHealth::EndedByPbx {
            extension,
            package,
            reason,
        } => {
            let reason = reason.map_or_else(|| "no reason given".into(), |r| r.to_string());
            set_phase(probes, extension, package, Phase::Terminated(reason))
        }
        SipHealth::NotifyReceived {
            extension, package, ..
        } => {
            // The extension's line combines its packages: every probe of it
            // shows it (the source has read the NOTIFY by now).
            let line = source.line_state(&extension);
            for p in [Package::Dialog, Package::Presence] {
                if let Some(probe) = probes.get_mut(&(extension.clone(), p)) {
                    probe.line = Some(line);
                }
            }
            if let Some(probe) = probes.get_mut(&(extension, package)) {
                probe.notified = true;
            }
        }
        problem @ (SipHealth::NotifyNotUnderstood { .. } | SipHealth::VersionGap { .. }) => {
            if let Some((extension, package)) = problem.subscription() {
                if let Some(probe) = probes.get_mut(&(extension.to_owned(), package)) {
                    probe.notify_problem = Some(problem.to_string());
                }
            }
        }
        SipHealth::RegistrationFailed { status: None, .. }
        | SipHealth::NotifyRejected { .. }
        | SipHealth::NotifiesRejected(_)
        | SipHealth::ContactChanged { .. }
        | SipHealth::LineUnknown { .. }
        | SipHealth::StunServersInvalid { .. }
        | SipHealth::StunServerFailed { .. }
        | SipHealth::NoStunServer => {}
    }
}

/// Records a subscription's outcome; the first failure is kept.
pub(super) fn set_phase(probes: &mut Probes, extension: String, package: Package, phase: Phase) {
    if let Some(p) = probes.get_mut(&(extension, package)) {
        if !matches!(p.phase, Phase::Failed { .. } | Phase::Terminated(_)) {
            p.phase = phase;
        }
    }
}

pub(super) fn transport_name(settings: &SipSettings) -> &'static str {
    match settings.transport {
        SipTransport::Udp => "udp",
        SipTransport::Tcp => "tcp",
        SipTransport::Tls => "tls",
    }
}

/// Wrong credentials: the PBX challenged again, or refused the account.
pub(super) fn credentials_refused(status: Option<u16>) -> bool {
    matches!(status, Some(401 | 403 | 404 | 407))
}

pub(super) fn sip_summary(
    settings: &SipSettings,
    registration: &Registration,
    timeout: Duration,
) -> Summary {
    let server = format!("{} ({})", settings.server, transport_name(settings));
    let unreachable = "check SIP_SERVER and SIP_TRANSPORT, that the PBX is running, \
                       and that no firewall drops SIP between here and the PBX";
    match registration {
        Registration::Registered(contact) => Summary {
            ok: true,
            text: format!(
                "registered at {server} as {} (contact {contact})",
                settings.username
            ),
            fix: None,
        },
        Registration::Refused { status, reason } if credentials_refused(*status) => failed(
            format!("registration at {server} refused: {reason}"),
            "fix SIP_USERNAME/SIP_PASSWORD",
        ),
        Registration::Refused { reason, .. } => failed(
            format!("registration at {server} refused: {reason}"),
            "see the PBX's log for why it refuses the REGISTER",
        ),
        Registration::Unreachable(reason) => {
            failed(format!("PBX unreachable: {reason}"), unreachable)
        }
        Registration::Waiting => failed(
            format!(
                "no answer from the PBX at {server} within {} s",
                timeout.as_secs_f32()
            ),
            unreachable,
        ),
        Registration::NotStarted {
            error,
            tls_fix: Some(fix),
            ..
        } => failed(
            format!("TLS connection to the PBX at {server} refused: {error}"),
            fix,
        ),
        Registration::NotStarted {
            error,
            listen_fix: Some(fix),
            ..
        } => failed(
            format!("cannot open the SIP socket on {}: {error}", settings.listen),
            fix,
        ),
        Registration::NotStarted {
            error,
            listen_fix: None,
            ..
        } => failed(
            format!("cannot reach the PBX at {server}: {error}"),
            unreachable,
        ),
    }
}

pub(super) fn sip_row(
    settings: &SipSettings,
    ext: &Extension,
    probe: &Probe,
    registration: &Registration,
    timeout: Duration,
) -> (String, Option<String>) {
    let x = &ext.extension;
    let secs = timeout.as_secs_f32();
    match registration {
        Registration::Registered(_) => {}
        Registration::Refused { status, .. } if credentials_refused(*status) => {
            return (
                "not registered".into(),
                Some("fix SIP_USERNAME/SIP_PASSWORD".into()),
            )
        }
        Registration::Refused { .. } => {
            return ("not registered".into(), Some("see SIP above".into()))
        }
        Registration::Waiting | Registration::Unreachable(_) | Registration::NotStarted { .. } => {
            return ("PBX unreachable".into(), Some("see SIP above".into()))
        }
    }
    match &probe.phase {
        Phase::Waiting => (
            "timeout".into(),
            Some(format!(
                "no answer to SUBSCRIBE for {x} within {secs} s: see the PBX's log"
            )),
        ),
        Phase::Failed {
            status: None,
            diagnosis,
        } => ("timeout".into(), Some(diagnosis.clone())),
        Phase::Failed {
            status: Some(s),
            diagnosis,
        } => {
            let text = match s {
                404 => "404 no hint".to_string(),
                403 => "403 forbidden".to_string(),
                489 => "489 bad event".to_string(),
                603 => "603 declined".to_string(),
                s => format!("{s} refused"),
            };
            (text, Some(diagnosis.clone()))
        }
        Phase::Terminated(reason) => (
            format!("terminated ({reason})"),
            Some(format!(
                "the PBX ended the subscription to {x} at once: check that extension {x} exists and has a BLF hint"
            )),
        ),
        Phase::Active | Phase::Pending if !probe.notified => (
            "no NOTIFY".into(),
            Some(format!(
                "subscribed to {x} but no NOTIFY within {secs} s: the PBX cannot reach our Contact \
                 (check SIP_CONTACT_IP, NAT and firewall)"
            )),
        ),
        Phase::Pending => (
            "pending".into(),
            Some(format!(
                "the PBX holds the subscription to {x} as pending: allow user {} to watch {x}",
                settings.username
            )),
        ),
        Phase::Active => match &probe.notify_problem {
            Some(w) => ("NOTIFY not understood".into(), Some(w.clone())),
            None => (
                probe
                    .line
                    .unwrap_or(LineState::Unknown)
                    .as_str()
                    .to_string(),
                None,
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::settings;

    #[test]
    fn a_refused_tls_certificate_names_the_fix() {
        let s = settings(&[("SIP_TRANSPORT", "tls")]);
        let e = sip_ua::Error::Tls(sip_ua::TlsError::UnknownCa {
            detail: "invalid peer certificate: UnknownIssuer".into(),
        });
        let reg = Registration::NotStarted {
            error: e.to_string(),
            listen_fix: None,
            tls_fix: Some(s.tls.fix(match &e {
                sip_ua::Error::Tls(t) => t,
                _ => unreachable!(),
            })),
        };
        let summary = sip_summary(&s, &reg, Duration::from_secs(1));
        assert!(
            summary.text.contains("192.0.2.10 (tls)"),
            "{}",
            summary.text
        );
        assert!(summary.text.contains("does not trust"), "{}", summary.text);
        assert!(
            summary.fix.as_deref().unwrap().contains("SIP_TLS_CA_FILE"),
            "{:?}",
            summary.fix
        );
    }

    #[test]
    fn a_socket_that_cannot_be_opened_names_sip_listen() {
        let s = settings(&[]);
        let e = sip_ua::Error::Io(std::io::ErrorKind::AddrInUse.into());
        let reg = Registration::NotStarted {
            error: e.to_string(),
            listen_fix: s.listen_fix(&e),
            tls_fix: None,
        };
        let summary = sip_summary(&s, &reg, Duration::from_secs(1));
        assert!(
            summary
                .text
                .starts_with("cannot open the SIP socket on 0.0.0.0:5060"),
            "{summary:?}"
        );
        assert!(summary.fix.unwrap().contains("SIP_LISTEN=0.0.0.0:5062"));
    }

    #[test]
    fn wrong_credentials_name_the_variables_on_every_row() {
        let settings = SipSettings::from_env(&crate::settings::Env::from_pairs([
            ("SIP_SERVER", "127.0.0.1:5060"),
            ("SIP_USERNAME", "blf"),
            ("SIP_PASSWORD", "wrong"),
        ]))
        .unwrap();
        let reg = Registration::Refused {
            status: Some(401),
            reason: "the PBX rejected the password for user blf".into(),
        };
        let t = Duration::from_secs(10);
        let s = sip_summary(&settings, &reg, t);
        assert!(!s.ok);
        assert_eq!(s.fix.as_deref(), Some("fix SIP_USERNAME/SIP_PASSWORD"));
        let ext = Extension {
            extension: "1001".into(),
            email: "a@contoso.com".into(),
            object_id: None,
            event: crate::extensions::EventPackage::Dialog,
            mapping: None,
            name: None,
            group: None,
            origin: "x:2".into(),
        };
        let (pbx, fix) = sip_row(&settings, &ext, &Probe::default(), &reg, t);
        assert_eq!(pbx, "not registered");
        assert_eq!(fix.as_deref(), Some("fix SIP_USERNAME/SIP_PASSWORD"));
    }

    #[test]
    fn an_extension_with_both_packages_shows_the_failed_one_or_its_line() {
        let settings = SipSettings::from_env(&crate::settings::Env::from_pairs([
            ("SIP_SERVER", "127.0.0.1:5060"),
            ("SIP_USERNAME", "blf"),
            ("SIP_PASSWORD", "secret"),
        ]))
        .unwrap();
        let ext = Extension {
            extension: "1001".into(),
            email: "a@contoso.com".into(),
            object_id: None,
            event: crate::extensions::EventPackage::DialogAndPresence,
            mapping: None,
            name: None,
            group: None,
            origin: "x:2".into(),
        };
        let reg = Registration::Registered("sip:blf@127.0.0.1".into());
        let t = Duration::from_secs(5);
        let up = || Probe {
            phase: Phase::Active,
            notified: true,
            line: Some(LineState::Offline),
            notify_problem: None,
        };
        let mut probes: Probes = HashMap::new();
        probes.insert(("1001".into(), Package::Dialog), up());
        probes.insert(("1001".into(), Package::Presence), up());
        assert_eq!(
            extension_row(&settings, &ext, &probes, &reg, t),
            ("offline".to_string(), None)
        );
        probes.insert(
            ("1001".into(), Package::Presence),
            Probe {
                phase: Phase::Failed {
                    status: Some(489),
                    diagnosis: "no presence".into(),
                },
                ..Probe::default()
            },
        );
        assert_eq!(
            extension_row(&settings, &ext, &probes, &reg, t),
            (
                "presence: 489 bad event".to_string(),
                Some("no presence".into())
            )
        );
    }
}
