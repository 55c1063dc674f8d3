//! `sip-blf-sync check`: the whole chain once, as `run` would see it, with the
//! fix for each failure.
//!
//! 1. The settings, read exactly as `run` reads them ([`RunPlan::from_env`]):
//!    every problem at once, before anything connects.
//! 2. Microsoft Graph (when a tenant is configured): a token, then every user
//!    resolved.
//! 3. The PBX: REGISTER, one SUBSCRIBE per extension, the first NOTIFY of each;
//!    then un-SUBSCRIBE and un-REGISTER.
//!
//! Graph and the PBX are probed at the same time, both within one time limit,
//! and the outcome is one table: extension | user | PBX | Graph | fix, under
//! a line saying where the PBX must reach this machine (the Contact).
//!
//! A PBX that accepts a subscription to any extension passes that extension:
//! Kamailio's presence server reports an unknown user as idle, while Asterisk
//! answers 404 when the hint is missing.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use blf::LineState;
use graph_presence::{GraphClient, GraphError};
use serde::Serialize;
use sip_ua::{Event, EventPackage as Package};
use tokio::time::Instant;

use crate::extensions::Extension;
use crate::graph_cmd;
use crate::run::RunPlan;
use crate::settings::{SipSettings, SipTransport};
use crate::sip_source::{subscriptions, Notice, SipSource, SourceEvent};

/// The longest wait for un-SUBSCRIBE and un-REGISTER once the probe is over
/// (on top of the check's own time limit).
pub const SHUTDOWN_LIMIT: Duration = Duration::from_secs(3);

/// The PBX or Graph as a whole: the line above the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Whether this side works.
    pub ok: bool,
    /// What was found.
    pub text: String,
    /// What to do about it, when it failed.
    pub fix: Option<String>,
}

/// One extension's outcome: one row of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The extension.
    pub extension: String,
    /// The user (UPN or object id).
    pub user: String,
    /// Where the entry is (file:line).
    pub origin: String,
    /// The PBX side: the line state of the first NOTIFY (`idle`, `busy`…) or
    /// what went wrong (`404 no hint`, `timeout`…).
    pub pbx: String,
    /// The Graph side: `ok`, `not configured (dry run)` or what went wrong.
    pub graph: String,
    /// Whether both sides work for this extension.
    pub ok: bool,
    /// What to do, when something failed.
    pub fix: Option<String>,
}

/// Where the PBX must send its requests (NOTIFYs): the Contact address and
/// the local SIP socket, so that the operator knows what to open or forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reach {
    /// `udp` or `tcp`.
    pub transport: String,
    /// The local SIP socket: where it was opened, else `SIP_LISTEN` (or its default).
    pub listen: String,
    /// The Contact given to the PBX (`host:port`), once registered.
    pub contact: Option<String>,
    /// The line shown above the table.
    pub text: String,
}

impl Reach {
    fn new(settings: &SipSettings, opened: Option<SocketAddr>, contact_uri: Option<&str>) -> Self {
        let transport = transport_name(settings);
        let listen = opened.unwrap_or(settings.listen);
        let contact = contact_uri.map(contact_host_port);
        let socket = if listen.port() == 0 {
            format!("{}, on a port chosen at start", listen.ip())
        } else {
            listen.to_string()
        };
        let mut text = match &contact {
            Some(c) => format!(
                "the PBX sends its NOTIFYs to {c} ({transport}); this machine listens on {socket}"
            ),
            None => format!(
                "this machine listens on {socket} ({transport}); the PBX must reach it there"
            ),
        };
        let port = contact
            .as_deref()
            .and_then(|c| c.rsplit_once(':'))
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .unwrap_or(listen.port());
        if settings.transport == SipTransport::Udp && port != 0 {
            let _ = write!(
                text,
                "; behind NAT, forward UDP port {port} on the router to this machine"
            );
        }
        Self {
            transport: transport.to_string(),
            listen: listen.to_string(),
            contact,
            text,
        }
    }
}

/// `host:port` of a Contact URI (`sip:user@host:port;params`).
fn contact_host_port(uri: &str) -> String {
    let uri = uri.trim_start_matches('<').trim_end_matches('>');
    let after_user = uri.rsplit_once('@').map_or(uri, |(_, h)| h);
    let after_scheme = after_user.strip_prefix("sip:").unwrap_or(after_user);
    after_scheme
        .split([';', '>'])
        .next()
        .unwrap_or(after_scheme)
        .to_string()
}

/// Everything `check` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Whether everything works (exit status 0).
    pub ok: bool,
    /// The PBX: registration.
    pub sip: Summary,
    /// Where the PBX must reach this machine.
    pub contact: Reach,
    /// Microsoft Graph: the token.
    pub graph: Summary,
    /// One row per extension, in the list's order.
    pub extensions: Vec<Row>,
}

/// Runs the check within `timeout` (plus at most [`SHUTDOWN_LIMIT`] to
/// un-SUBSCRIBE and un-REGISTER).
pub async fn check(plan: &RunPlan, timeout: Duration) -> Report {
    let deadline = Instant::now() + timeout;
    let exts = plan.extensions();
    let (graph, sip) = tokio::join!(
        probe_graph(plan.graph(), exts, deadline, timeout),
        probe_sip(plan.sip(), exts, deadline, timeout)
    );
    let (graph_summary, graph_rows) = graph;
    let (sip_summary, sip_rows, reach) = sip;
    let extensions: Vec<Row> = exts
        .iter()
        .zip(sip_rows)
        .zip(graph_rows)
        .map(|((e, (pbx, pbx_fix)), (graph, graph_fix))| {
            let fixes: Vec<String> = pbx_fix.into_iter().chain(graph_fix).collect();
            Row {
                extension: e.extension.clone(),
                user: e.user().to_string(),
                origin: e.origin.clone(),
                pbx,
                graph,
                ok: fixes.is_empty(),
                fix: (!fixes.is_empty()).then(|| fixes.join("; ")),
            }
        })
        .collect();
    Report {
        ok: sip_summary.ok && graph_summary.ok && extensions.iter().all(|r| r.ok),
        sip: sip_summary,
        contact: reach,
        graph: graph_summary,
        extensions,
    }
}

/// One column of every row: its text and, when it failed, the fix.
type Column = Vec<(String, Option<String>)>;

async fn probe_graph(
    config: Option<&graph_presence::GraphConfig>,
    exts: &[Extension],
    deadline: Instant,
    timeout: Duration,
) -> (Summary, Column) {
    let every = |text: &str, fix: Option<&str>| -> Column {
        exts.iter()
            .map(|_| (text.to_string(), fix.map(str::to_string)))
            .collect()
    };
    let Some(config) = config else {
        let summary = Summary {
            ok: true,
            text: "not configured (dry run): AZURE_TENANT_ID is not set, presence is only printed"
                .into(),
            fix: None,
        };
        return (summary, every("not configured (dry run)", None));
    };
    let client = match GraphClient::new(config.clone()) {
        Ok(c) => c,
        Err(e) => {
            let summary = failed(
                e.to_string(),
                "check the AZURE_* and GRAPH_BASE_URL settings",
            );
            return (summary, every("not started", Some("see Graph above")));
        }
    };
    let outcome =
        match tokio::time::timeout_at(deadline, graph_cmd::check_users(&client, exts)).await {
            Ok(o) => o,
            Err(_) => {
                let summary = failed(
                    format!("no answer within {} s", timeout.as_secs_f32()),
                    "check GRAPH_BASE_URL, AZURE_AUTHORITY_HOST and the network (proxy, firewall)",
                );
                return (summary, every("timeout", Some("see Graph above")));
            }
        };
    let info = match outcome.token {
        Ok(info) => info,
        Err(e) => {
            let summary = failed(
                format!("no token: {e}"),
                "fix AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or the certificate)",
            );
            return (
                summary,
                every("no token", Some("get a Graph token first (see above)")),
            );
        }
    };
    let summary = Summary {
        ok: true,
        text: format!(
            "token ok (valid for {} more minutes)",
            info.expires_in.as_secs() / 60
        ),
        fix: None,
    };
    let rows = exts
        .iter()
        .zip(outcome.users)
        .map(|(ext, result)| match result {
            Ok(id) if ext.object_id.is_some() => (format!("ok (object id {id})"), None),
            Ok(_) => ("ok".to_string(), None),
            Err(e) => graph_failure(&e, ext),
        })
        .collect();
    (summary, rows)
}

/// The Graph column and the fix for a user that could not be resolved.
fn graph_failure(e: &GraphError, ext: &Extension) -> (String, Option<String>) {
    let (text, fix) = match e {
        GraphError::NotFound { .. } => (
            "404 no such user".to_string(),
            format!(
                "no such user in tenant: check the e-mail in {}",
                ext.origin
            ),
        ),
        GraphError::Forbidden { permission, .. } => (
            "403 forbidden".to_string(),
            format!(
                "give the app registration the {permission} application permission and grant admin consent"
            ),
        ),
        GraphError::InvalidInput(m) => (
            "invalid user".to_string(),
            format!("{m}: check the e-mail in {}", ext.origin),
        ),
        other => ("failed".to_string(), other.to_string()),
    };
    (text, Some(fix))
}

fn failed(text: String, fix: &str) -> Summary {
    Summary {
        ok: false,
        text,
        fix: Some(fix.to_string()),
    }
}

/// The registration as the probe saw it.
enum Registration {
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
    },
}

/// The probes, one per subscription: (extension, package).
type Probes = HashMap<(String, Package), Probe>;

/// One subscription as the probe saw it.
#[derive(Default)]
struct Probe {
    phase: Phase,
    notified: bool,
    line: Option<LineState>,
    notify_problem: Option<String>,
}

#[derive(Default, PartialEq)]
enum Phase {
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

async fn probe_sip(
    settings: &SipSettings,
    exts: &[Extension],
    deadline: Instant,
    timeout: Duration,
) -> (Summary, Column, Reach) {
    let mut probes: Probes = subscriptions(exts)
        .into_iter()
        .map(|s| ((s.extension, s.package), Probe::default()))
        .collect();
    let mut registration = Registration::Waiting;
    let mut opened = None;
    match tokio::time::timeout_at(deadline, SipSource::start(settings, exts)).await {
        Err(_) => {}
        Ok(Err(e)) => {
            registration = Registration::NotStarted {
                error: e.to_string(),
                listen_fix: settings.listen_fix(&e),
            }
        }
        Ok(Ok((mut source, _))) => {
            opened = source.local_addr();
            watch_until_settled(&mut source, &mut registration, &mut probes, deadline).await;
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
fn extension_row(
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

/// Reads the user agent's events until the registration failed, every
/// subscription settled, or `deadline`.
async fn watch_until_settled(
    source: &mut SipSource,
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
        let (event, translated) = match tokio::time::timeout_at(deadline, source.next_raw()).await {
            Ok(Some(e)) => e,
            Ok(None) | Err(_) => return,
        };
        match event {
            Event::Registered { contact, .. } => *registration = Registration::Registered(contact),
            Event::RegistrationFailed {
                status: Some(status),
                reason,
                ..
            } => {
                *registration = Registration::Refused {
                    status: Some(status),
                    reason,
                }
            }
            Event::RegistrationFailed { status: None, .. } => {}
            Event::Unreachable { reason, .. } => *registration = Registration::Unreachable(reason),
            Event::SubscriptionActive {
                extension, package, ..
            } => set_phase(probes, extension, package, Phase::Active),
            Event::SubscriptionPending { extension, package } => {
                set_phase(probes, extension, package, Phase::Pending)
            }
            Event::SubscriptionFailed {
                extension,
                package,
                status,
                diagnosis,
                ..
            } => set_phase(
                probes,
                extension,
                package,
                Phase::Failed { status, diagnosis },
            ),
            Event::SubscriptionTerminated {
                extension,
                package,
                reason,
                ..
            } => {
                let reason = reason.map_or_else(|| "no reason given".into(), |r| r.to_string());
                set_phase(probes, extension, package, Phase::Terminated(reason))
            }
            Event::Notify(n) => {
                // The extension's line combines its packages: every probe of it shows it.
                let line = source.line_state(&n.extension);
                for package in [Package::Dialog, Package::Presence] {
                    if let Some(p) = probes.get_mut(&(n.extension.clone(), package)) {
                        p.line = Some(line);
                    }
                }
                if let Some(p) = probes.get_mut(&(n.extension, n.package)) {
                    p.notified = true;
                    if let Some(SourceEvent::Notice(Notice::Warning(w))) = translated {
                        p.notify_problem = Some(w);
                    }
                }
            }
            Event::Unregistered
            | Event::ShutDown
            | Event::NotifyRejected { .. }
            | Event::ContactChanged { .. } => {}
        }
    }
}

/// Records a subscription's outcome; the first failure is kept.
fn set_phase(probes: &mut Probes, extension: String, package: Package, phase: Phase) {
    if let Some(p) = probes.get_mut(&(extension, package)) {
        if !matches!(p.phase, Phase::Failed { .. } | Phase::Terminated(_)) {
            p.phase = phase;
        }
    }
}

fn transport_name(settings: &SipSettings) -> &'static str {
    match settings.transport {
        SipTransport::Udp => "udp",
        SipTransport::Tcp => "tcp",
    }
}

/// Wrong credentials: the PBX challenged again, or refused the account.
fn credentials_refused(status: Option<u16>) -> bool {
    matches!(status, Some(401 | 403 | 404 | 407))
}

fn sip_summary(settings: &SipSettings, registration: &Registration, timeout: Duration) -> Summary {
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
            listen_fix: Some(fix),
        } => failed(
            format!("cannot open the SIP socket on {}: {error}", settings.listen),
            fix,
        ),
        Registration::NotStarted {
            error,
            listen_fix: None,
        } => failed(
            format!("cannot reach the PBX at {server}: {error}"),
            unreachable,
        ),
    }
}

fn sip_row(
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

impl Report {
    /// The report as text: the PBX and Graph lines, then the table.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (name, s) in [("SIP:  ", &self.sip), ("Graph:", &self.graph)] {
            let _ = write!(
                out,
                "{name} {}{}",
                if s.ok { "" } else { "FAILED: " },
                s.text
            );
            if let Some(fix) = &s.fix {
                let _ = write!(out, "; {fix}");
            }
            out.push('\n');
        }
        let _ = writeln!(out, "Contact: {}", self.contact.text);
        out.push('\n');
        let header = ["extension", "user", "PBX", "Graph", "fix"];
        let rows: Vec<[&str; 5]> = self
            .extensions
            .iter()
            .map(|r| {
                [
                    r.extension.as_str(),
                    r.user.as_str(),
                    r.pbx.as_str(),
                    r.graph.as_str(),
                    r.fix.as_deref().unwrap_or(""),
                ]
            })
            .collect();
        let mut widths = header.map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&header).chain(&rows) {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let _ = write!(line, "{cell:<w$}  ");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        let failed = self.extensions.iter().filter(|r| !r.ok).count();
        let _ = writeln!(
            out,
            "\n{} extension(s) checked: {} ok, {failed} failed",
            self.extensions.len(),
            self.extensions.len() - failed
        );
        out
    }

    /// The report as one JSON object (`ok`, `sip`, `contact`, `graph`, `extensions`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ext: &str, pbx: &str, fix: Option<&str>) -> Row {
        Row {
            extension: ext.into(),
            user: format!("u{ext}@contoso.com"),
            origin: format!("config/extensions.json:{ext}"),
            pbx: pbx.into(),
            graph: "ok".into(),
            ok: fix.is_none(),
            fix: fix.map(str::to_string),
        }
    }

    fn report() -> Report {
        Report {
            ok: false,
            sip: Summary {
                ok: true,
                text: "registered".into(),
                fix: None,
            },
            contact: Reach {
                transport: "udp".into(),
                listen: "0.0.0.0:5060".into(),
                contact: Some("192.0.2.1:5060".into()),
                text: "the PBX sends its NOTIFYs to 192.0.2.1:5060".into(),
            },
            graph: Summary {
                ok: true,
                text: "token ok".into(),
                fix: None,
            },
            extensions: vec![
                row("1001", "idle", None),
                row("1002", "404 no hint", Some("add a hint")),
            ],
        }
    }

    #[test]
    fn text_is_one_aligned_table_with_a_count() {
        let text = report().to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "SIP:   registered");
        assert_eq!(lines[1], "Graph: token ok");
        assert_eq!(
            lines[2],
            "Contact: the PBX sends its NOTIFYs to 192.0.2.1:5060"
        );
        let header = lines[4];
        let second = lines[6];
        assert!(header.starts_with("extension  user"), "{text}");
        // Columns line up: "PBX" starts where each row's PBX cell starts.
        assert_eq!(header.find("PBX"), second.find("404 no hint"), "{text}");
        assert!(second.ends_with("add a hint"), "{text}");
        assert!(
            text.contains("2 extension(s) checked: 1 ok, 1 failed"),
            "{text}"
        );
    }

    #[test]
    fn json_has_the_report_shape() {
        let v: serde_json::Value = serde_json::from_str(&report().to_json()).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["sip"]["ok"], true);
        assert_eq!(v["contact"]["listen"], "0.0.0.0:5060");
        assert_eq!(v["contact"]["contact"], "192.0.2.1:5060");
        assert_eq!(v["extensions"][1]["pbx"], "404 no hint");
        assert_eq!(v["extensions"][1]["fix"], "add a hint");
        assert!(v["extensions"][0]["fix"].is_null());
    }

    fn settings(pairs: &[(&str, &str)]) -> SipSettings {
        let mut all = vec![
            ("SIP_SERVER", "192.0.2.10"),
            ("SIP_USERNAME", "blf"),
            ("SIP_PASSWORD", "p"),
        ];
        all.extend_from_slice(pairs);
        SipSettings::from_env(&crate::settings::Env::from_pairs(all)).unwrap()
    }

    #[test]
    fn the_contact_line_says_what_the_pbx_must_reach() {
        // Registered: the Contact the PBX was given, and the port to forward.
        let s = settings(&[]);
        let opened = Some("192.168.1.20:5060".parse().unwrap());
        let r = Reach::new(&s, opened, Some("sip:blf@203.0.113.7:5060"));
        assert_eq!(r.contact.as_deref(), Some("203.0.113.7:5060"));
        assert_eq!(r.listen, "192.168.1.20:5060");
        assert_eq!(
            r.text,
            "the PBX sends its NOTIFYs to 203.0.113.7:5060 (udp); this machine listens on \
             192.168.1.20:5060; behind NAT, forward UDP port 5060 on the router to this machine"
        );
        // Not started: the configured default (the original tool's 0.0.0.0:5060).
        let r = Reach::new(&s, None, None);
        assert_eq!(r.listen, "0.0.0.0:5060");
        assert!(
            r.text
                .starts_with("this machine listens on 0.0.0.0:5060 (udp)"),
            "{}",
            r.text
        );
        assert!(r.text.contains("forward UDP port 5060"), "{}", r.text);
        // A fixed contact address, over TCP: no port to forward is claimed.
        let s = settings(&[("SIP_CONTACT_IP", "192.0.2.5"), ("SIP_TRANSPORT", "tcp")]);
        let r = Reach::new(&s, None, Some("<sip:blf@[2001:db8::5]:5062;transport=tcp>"));
        assert_eq!(r.contact.as_deref(), Some("[2001:db8::5]:5062"));
        assert_eq!(r.listen, "192.0.2.5:5060");
        assert!(!r.text.contains("forward"), "{}", r.text);
        // Any free port, not opened yet: no port 0 to forward.
        let s = settings(&[("SIP_LISTEN", "127.0.0.1:0")]);
        let r = Reach::new(&s, None, None);
        assert_eq!(
            r.text,
            "this machine listens on 127.0.0.1, on a port chosen at start (udp); the PBX must reach it there"
        );
    }

    #[test]
    fn a_socket_that_cannot_be_opened_names_sip_listen() {
        let s = settings(&[]);
        let e = sip_ua::Error::Io(std::io::ErrorKind::AddrInUse.into());
        let reg = Registration::NotStarted {
            error: e.to_string(),
            listen_fix: s.listen_fix(&e),
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
