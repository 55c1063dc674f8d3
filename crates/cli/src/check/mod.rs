//! `sip-blf-sync check`: the whole chain once, as `run` would see it, with the
//! fix for each failure.
//!
//! 1. The settings, read exactly as `run` reads them ([`RunPlan::from_env`]):
//!    every problem at once, before anything connects.
//! 2. Microsoft Graph (when a tenant is configured): a token, then every user
//!    resolved; when Teams presence goes to the PBX, one presence read.
//! 3. The PBX: REGISTER, one SUBSCRIBE per extension, the first NOTIFY of each;
//!    then un-SUBSCRIBE and un-REGISTER.
//! 4. Each other part that is configured, one line each: the AMI, the
//!    database, the action-URL listener (bound once and released), the
//!    webhook (one signed ping), Mattermost (the token and each e-mail), the
//!    SIP MESSAGE recipient (nothing sent: it would show on the phones).
//!
//! Graph and the PBX are probed at the same time, both within one time limit,
//! and the outcome is one table: extension | user | PBX | Graph | fix, under
//! a line saying where the PBX must reach this machine (the Contact).
//!
//! A PBX that accepts a subscription to any extension passes that extension:
//! Kamailio's presence server reports an unknown user as idle, while Asterisk
//! answers 404 when the hint is missing.

mod ami;
mod graph;
mod listen;
mod mattermost;
mod sip;
mod webhook;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::run::RunPlan;
use crate::settings::{SipSettings, SipTransport};

use ami::probe_ami;
use graph::probe_graph;
use listen::{probe_action_url, sip_message_line};
use mattermost::probe_mattermost;
use sip::{probe_sip, transport_name};
use webhook::probe_webhook;

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
    /// The PBX's manager interface, when `SOURCES` lists `ami`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ami: Option<Summary>,
    /// The database sink, when `SINKS` lists it: connection, schema, rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<Summary>,
    /// The desk phones' listener, when `SOURCES` lists `action-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_url: Option<Summary>,
    /// The webhook sink, when `SINKS` lists it: one signed ping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Summary>,
    /// The Mattermost sink, when `SINKS` lists it: the token, the e-mails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mattermost: Option<Summary>,
    /// The SIP MESSAGE sink, when `SINKS` lists it: the recipient.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_message: Option<Summary>,
    /// One row per extension, in the list's order.
    pub extensions: Vec<Row>,
}

/// Runs the check within `timeout` (plus at most [`SHUTDOWN_LIMIT`] to
/// un-SUBSCRIBE and un-REGISTER). With `read_presence` (Teams presence goes
/// to the PBX: `TEAMS_TO_PBX` is not `off`), the Graph line also says
/// whether presence can be read back (`Presence.Read.All`).
pub async fn check(plan: &RunPlan, timeout: Duration, read_presence: bool) -> Report {
    let deadline = Instant::now() + timeout;
    let exts = plan.extensions();
    let sip = async {
        match plan.sip() {
            Some(settings) => Some(probe_sip(settings, exts, deadline, timeout).await),
            None => None,
        }
    };
    let ami = async {
        match plan.ami() {
            Some(settings) => Some(probe_ami(settings, exts, deadline).await),
            None => None,
        }
    };
    let action_url = async {
        match plan.action_url() {
            Some(settings) => Some(probe_action_url(settings).await),
            None => None,
        }
    };
    let webhook = async {
        match plan.webhook() {
            Some(settings) => Some(probe_webhook(settings, deadline).await),
            None => None,
        }
    };
    let mattermost = async {
        match plan.mattermost() {
            Some(settings) => Some(probe_mattermost(settings, exts, deadline).await),
            None => None,
        }
    };
    let (graph, sip, ami, database, action_url, webhook, mattermost) = tokio::join!(
        probe_graph(plan.graph(), exts, deadline, timeout, read_presence),
        sip,
        ami,
        probe_database(plan.database(), deadline),
        action_url,
        webhook,
        mattermost
    );
    let sip_message = plan.sip_message().map(sip_message_line);
    let (graph_summary, graph_rows) = graph;
    let (ami_summary, ami_rows) = ami.unzip();
    // The PBX column: SIP's first NOTIFY when SIP runs, else AMI's hint;
    // AMI's fixes (a missing hint) count either way.
    let (sip_summary, pbx_rows, reach) = match sip {
        Some((summary, rows, reach)) => {
            let rows = match &ami_rows {
                Some(ami_rows) => rows
                    .into_iter()
                    .zip(ami_rows)
                    .map(|((text, fix), (_, ami_fix))| {
                        let fixes: Vec<String> = fix.into_iter().chain(ami_fix.clone()).collect();
                        (text, (!fixes.is_empty()).then(|| fixes.join("; ")))
                    })
                    .collect(),
                None => rows,
            };
            (summary, rows, reach)
        }
        None => (
            Summary {
                ok: true,
                text: "not used (SOURCES does not list sip)".into(),
                fix: None,
            },
            // Only the phones report (action-url): nothing to ask the PBX,
            // every row still shows its Graph side.
            ami_rows
                .clone()
                .unwrap_or_else(|| exts.iter().map(|_| ("-".to_owned(), None)).collect()),
            Reach {
                transport: "-".into(),
                listen: "-".into(),
                contact: None,
                text: "no SIP source: the PBX sends nothing to this machine".into(),
            },
        ),
    };
    let extensions: Vec<Row> = exts
        .iter()
        .zip(pbx_rows)
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
        ok: sip_summary.ok
            && graph_summary.ok
            && ami_summary.as_ref().is_none_or(|a| a.ok)
            && [&database, &action_url, &webhook, &mattermost, &sip_message]
                .iter()
                .all(|s| s.as_ref().is_none_or(|s| s.ok))
            && extensions.iter().all(|r| r.ok),
        sip: sip_summary,
        contact: reach,
        graph: graph_summary,
        ami: ami_summary,
        database,
        action_url,
        webhook,
        mattermost,
        sip_message,
        extensions,
    }
}

/// The database line: connects, runs the migrations, counts the rows.
async fn probe_database(
    settings: Option<&crate::database::DatabaseSettings>,
    deadline: Instant,
) -> Option<Summary> {
    let settings = settings?;
    let checked =
        tokio::time::timeout_at(deadline, crate::database::check_database(settings)).await;
    Some(match checked {
        Ok(Ok(text)) => Summary {
            ok: true,
            text,
            fix: None,
        },
        Ok(Err(fix)) => failed(settings.redacted_url(), &fix),
        Err(_) => failed(
            format!("{}: no answer in time", settings.redacted_url()),
            "check that the database server runs and that this machine may reach it",
        ),
    })
}

/// One column of every row: its text and, when it failed, the fix.
type Column = Vec<(String, Option<String>)>;

fn failed(text: String, fix: &str) -> Summary {
    Summary {
        ok: false,
        text,
        fix: Some(fix.to_string()),
    }
}

impl Report {
    /// The report as text: the PBX and Graph lines, one line per other
    /// configured part, then the table.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let summary = |out: &mut String, name: &str, s: &Summary| {
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
        };
        summary(&mut out, "SIP:  ", &self.sip);
        summary(&mut out, "Graph:", &self.graph);
        if let Some(a) = &self.ami {
            summary(&mut out, "AMI:  ", a);
        }
        let _ = writeln!(out, "Contact: {}", self.contact.text);
        let others = [
            ("Database:", &self.database),
            ("Action URL:", &self.action_url),
            ("Webhook:", &self.webhook),
            ("Mattermost:", &self.mattermost),
            ("SIP MESSAGE:", &self.sip_message),
        ];
        for (name, line) in others {
            if let Some(s) = line {
                summary(&mut out, name, s);
            }
        }
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

    /// The report as one JSON object (`ok`, `sip`, `contact`, `graph`,
    /// `extensions`, and `ami`, `database`, `action_url`, `webhook`,
    /// `mattermost`, `sip_message` when configured).
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
            database: None,
            ami: None,
            action_url: None,
            webhook: None,
            mattermost: None,
            sip_message: None,
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
    fn each_configured_part_has_its_line_and_absent_ones_none() {
        let mut r = report();
        let text = r.to_text();
        for name in ["Action URL:", "Webhook:", "Mattermost:", "SIP MESSAGE:"] {
            assert!(!text.contains(name), "{name} without configuration: {text}");
        }
        r.action_url = Some(Summary {
            ok: true,
            text: "127.0.0.1:8088 can be listened on, http; loopback only, no secret".into(),
            fix: None,
        });
        r.webhook = Some(failed(
            "https://hooks.example.com/blf answered the signed ping with 401 Unauthorized".into(),
            "the receiver refused the signature: check WEBHOOK_SECRET",
        ));
        r.mattermost = Some(Summary {
            ok: true,
            text: "https://chat.example.com: signed in as @sipbot; 2 e-mail(s) found".into(),
            fix: None,
        });
        r.sip_message = Some(Summary {
            ok: true,
            text: "to sip:webphones@pbx.example.com; none sent".into(),
            fix: None,
        });
        let text = r.to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[3..7],
            [
                "Action URL: 127.0.0.1:8088 can be listened on, http; loopback only, no secret",
                "Webhook: FAILED: https://hooks.example.com/blf answered the signed ping with 401 \
                 Unauthorized; the receiver refused the signature: check WEBHOOK_SECRET",
                "Mattermost: https://chat.example.com: signed in as @sipbot; 2 e-mail(s) found",
                "SIP MESSAGE: to sip:webphones@pbx.example.com; none sent",
            ],
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["webhook"]["ok"], false);
        assert_eq!(v["action_url"]["ok"], true);
        assert_eq!(v["sip_message"]["fix"], serde_json::Value::Null);
        let v: serde_json::Value = serde_json::from_str(&report().to_json()).unwrap();
        assert!(v.get("webhook").is_none() && v.get("mattermost").is_none());
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

    pub(super) fn settings(pairs: &[(&str, &str)]) -> SipSettings {
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
}
