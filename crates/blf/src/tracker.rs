//! Per-subscription state: applies successive NOTIFY bodies following RFC 4235 §4.1
//! versioning, and knows what an empty body means for this subscription.

use crate::dialog_info::{aggregate, Dialog, DialogInfo, DialogState, DocState};
use crate::notification::Notification;
use crate::state::LineState;

/// How a [`Tracker`] reads a NOTIFY without a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum EmptyBody {
    /// "No dialogs": the line is idle and the known dialogs are dropped. Kamailio's
    /// presence server sends a body-less NOTIFY when the extension has no dialog (initial
    /// NOTIFY, and when the last `terminated` state expires). The default.
    #[default]
    NoDialogs,
    /// Nothing is known: the line state becomes `Unknown` (RFC-strict reading).
    Unknown,
}

/// What applying one notification did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TrackerEvent {
    /// A full dialog-info document replaced the known dialogs.
    Full,
    /// A partial document was merged by dialog id.
    Partial,
    /// Same version as the last applied document: ignored.
    Duplicate {
        /// The repeated version.
        version: u64,
    },
    /// A partial document older than the last applied one: ignored (RFC 4235 §4.1).
    Stale {
        /// Version of the ignored document.
        version: u64,
        /// Version last applied.
        current: u64,
    },
    /// A full document whose version went backwards (the notifier restarted): accepted.
    Restarted {
        /// Version before.
        previous: u64,
        /// The new, lower version now in force.
        version: u64,
    },
    /// A partial document cannot be applied: a version was skipped, or no full document
    /// was seen yet. Not applied; the caller should refresh the subscription (re-SUBSCRIBE)
    /// to get a full document.
    ResyncNeeded {
        /// Version the tracker expected (`None`: no full document yet).
        expected: Option<u64>,
        /// Version received.
        received: Option<u64>,
    },
    /// A body-less NOTIFY, read per [`EmptyBody`].
    Empty,
    /// A PIDF document replaced the state.
    Presence,
}

/// Result of [`Tracker::apply`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct TrackerUpdate {
    /// What happened.
    pub event: TrackerEvent,
    /// The line state after applying.
    pub line_state: LineState,
    /// True when `line_state` differs from the state before.
    pub changed: bool,
    /// The subscription should be refreshed now (an in-dialog re-SUBSCRIBE,
    /// which makes the notifier send the full state, RFC 4235 §4.1): set on
    /// the first [`TrackerEvent::ResyncNeeded`] since the last applied
    /// document, not on the partials that follow it while the full one is
    /// on its way.
    pub refresh: bool,
}

/// State of one subscription.
///
/// ```
/// use blf::{LineState, Notification, Tracker, TrackerEvent};
///
/// let mut t = Tracker::new();
/// let ringing = br#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full">
///   <dialog id="a" direction="recipient"><state>early</state></dialog></dialog-info>"#;
/// let u = t.apply(Notification::parse(Some("application/dialog-info+xml"), ringing)?);
/// assert_eq!((u.event, u.line_state), (TrackerEvent::Full, LineState::Ringing));
///
/// // A body-less NOTIFY (Kamailio, no dialogs) makes the line idle by default.
/// let u = t.apply(Notification::parse(None, b"")?);
/// assert_eq!(u.line_state, LineState::Idle);
/// # Ok::<(), blf::ParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tracker {
    empty_body: EmptyBody,
    /// Version of the last applied dialog-info document.
    version: Option<u64>,
    /// A full state is known (a full document, or an empty body read as "no dialogs").
    have_base: bool,
    dialogs: Vec<Dialog>,
    line_state: Option<LineState>,
    /// A refresh was asked for since the last applied document.
    refresh_asked: bool,
}

impl Tracker {
    /// A tracker that reads empty bodies as "no dialogs" ([`EmptyBody::NoDialogs`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// A tracker with an explicit reading of empty bodies.
    pub fn with_empty_body(empty_body: EmptyBody) -> Self {
        Self {
            empty_body,
            ..Self::default()
        }
    }

    /// How this tracker reads empty bodies.
    pub fn empty_body(&self) -> EmptyBody {
        self.empty_body
    }

    /// Current line state (`Unknown` before the first notification).
    pub fn line_state(&self) -> LineState {
        self.line_state.unwrap_or(LineState::Unknown)
    }

    /// Live dialogs currently known (terminated ones are dropped once applied).
    pub fn dialogs(&self) -> &[Dialog] {
        &self.dialogs
    }

    /// Version of the last applied dialog-info document.
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// Forgets everything (e.g. the subscription was re-created).
    pub fn reset(&mut self) {
        *self = Self::with_empty_body(self.empty_body);
    }

    /// Applies one notification and reports what happened.
    pub fn apply(&mut self, notification: Notification) -> TrackerUpdate {
        let before = self.line_state();
        let event = match notification {
            Notification::DialogInfo(doc) => self.apply_dialog_info(doc),
            Notification::Pidf(p) => {
                self.dialogs.clear();
                self.version = None;
                self.have_base = false;
                self.line_state = Some(p.line_state());
                TrackerEvent::Presence
            }
            Notification::Empty => {
                match self.empty_body {
                    EmptyBody::NoDialogs => {
                        self.dialogs.clear();
                        self.have_base = true;
                        self.line_state = Some(LineState::Idle);
                    }
                    EmptyBody::Unknown => {
                        self.line_state = Some(LineState::Unknown);
                    }
                }
                // Kamailio bumps `version` on body-less NOTIFYs too; accept whatever comes next.
                self.version = None;
                TrackerEvent::Empty
            }
        };
        let resync = matches!(event, TrackerEvent::ResyncNeeded { .. });
        let refresh = resync && !self.refresh_asked;
        self.refresh_asked = resync
            || (self.refresh_asked
                && matches!(
                    event,
                    TrackerEvent::Duplicate { .. } | TrackerEvent::Stale { .. }
                ));
        let line_state = self.line_state();
        TrackerUpdate {
            event,
            line_state,
            changed: line_state != before,
            refresh,
        }
    }

    fn apply_dialog_info(&mut self, doc: DialogInfo) -> TrackerEvent {
        match doc.state {
            DocState::Full => {
                let event = match (self.version, doc.version) {
                    (Some(current), Some(v)) if v == current => {
                        return TrackerEvent::Duplicate { version: v };
                    }
                    (Some(current), Some(v)) if v < current => TrackerEvent::Restarted {
                        previous: current,
                        version: v,
                    },
                    _ => TrackerEvent::Full,
                };
                self.dialogs = doc.dialogs;
                self.finish(doc.version);
                event
            }
            DocState::Partial => {
                if !self.have_base {
                    return TrackerEvent::ResyncNeeded {
                        expected: None,
                        received: doc.version,
                    };
                }
                if let (Some(current), Some(v)) = (self.version, doc.version) {
                    if v == current {
                        return TrackerEvent::Duplicate { version: v };
                    }
                    if v < current {
                        return TrackerEvent::Stale {
                            version: v,
                            current,
                        };
                    }
                    if v > current.saturating_add(1) {
                        return TrackerEvent::ResyncNeeded {
                            expected: Some(current.saturating_add(1)),
                            received: Some(v),
                        };
                    }
                }
                for dialog in doc.dialogs {
                    match self.dialogs.iter_mut().find(|d| d.id == dialog.id) {
                        Some(known) => *known = dialog,
                        None => self.dialogs.push(dialog),
                    }
                }
                self.finish(doc.version);
                TrackerEvent::Partial
            }
        }
    }

    fn finish(&mut self, version: Option<u64>) {
        // Terminated dialogs contribute nothing and are reported only once (RFC 4235 §3.7.1).
        self.dialogs.retain(|d| d.state != DialogState::Terminated);
        self.have_base = true;
        self.version = version;
        self.line_state = Some(aggregate(&self.dialogs));
    }
}
