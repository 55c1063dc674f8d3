//! What a line looks like: the dialogs of one extension, and the bodies that
//! describe them (`application/dialog-info+xml`, RFC 4235, and
//! `application/pidf+xml` with RPID, RFC 3863/4480).

use std::fmt::Write as _;

// One home for the RFC 4235 vocabulary: the types the watcher side parses
// (`blf`) are the ones this side writes.
pub use blf::{DialogState, Direction};

/// One call leg of an extension, as the PBX reports it.
///
/// ```
/// use sip_notifier::{DialogSpec, DialogState, Direction};
///
/// // 1002 rings 1001; then 1001 answers and puts the call on hold.
/// let ringing = DialogSpec::new("c1", Direction::Recipient, DialogState::Early).with_remote("1002");
/// let held = DialogSpec { state: DialogState::Confirmed, held: true, ..ringing.clone() };
/// assert_eq!(held.remote.as_deref(), Some("1002"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogSpec {
    /// Dialog id, unique within the extension (also used to make its Call-ID).
    pub id: String,
    /// Outgoing or incoming.
    pub direction: Direction,
    /// Where the call stands.
    pub state: DialogState,
    /// The other party: a SIP URI, or an extension (made `sip:EXT@realm`).
    pub remote: Option<String>,
    /// The extension put the call on hold: its local target carries
    /// `+sip.rendering=no` (RFC 4235 §4.1.6.2), as Asterisk and FreeSWITCH send it.
    pub held: bool,
}

impl DialogSpec {
    /// A dialog without remote identity, not held.
    pub fn new(id: impl Into<String>, direction: Direction, state: DialogState) -> Self {
        Self {
            id: id.into(),
            direction,
            state,
            remote: None,
            held: false,
        }
    }

    /// The same dialog with the other party set.
    pub fn with_remote(mut self, remote: impl Into<String>) -> Self {
        self.remote = Some(remote.into());
        self
    }

    /// The same dialog, on hold.
    pub fn on_hold(mut self) -> Self {
        self.held = true;
        self
    }
}

/// The SIP URI of an extension or of a `remote` value.
pub(crate) fn push_uri(out: &mut String, who: &str, realm: &str) {
    if who.contains(':') {
        push_escaped(out, who);
    } else {
        out.push_str("sip:");
        push_escaped(out, who);
        out.push('@');
        push_escaped(out, realm);
    }
}

/// XML-escapes `s` into `out` (text and attribute values).
pub(crate) fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

/// Writes a full-state `dialog-info` document in the manner of Kamailio's
/// `pua_dialoginfo` (identities and targets for both sides, `call-id`,
/// `direction`), with Asterisk's `+sip.rendering=no` for held calls. An
/// idle line is a document without `<dialog>`.
pub fn write_dialog_info(
    out: &mut String,
    extension: &str,
    realm: &str,
    version: u32,
    dialogs: &[DialogSpec],
) {
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"");
    let _ = write!(out, "{version}");
    out.push_str("\" state=\"full\" entity=\"");
    push_uri(out, extension, realm);
    if dialogs.is_empty() {
        out.push_str("\"/>\n");
        return;
    }
    out.push_str("\">\n");
    for d in dialogs {
        out.push_str(" <dialog id=\"");
        push_escaped(out, &d.id);
        out.push_str("\" call-id=\"");
        push_escaped(out, &d.id);
        out.push('-');
        push_escaped(out, extension);
        out.push('@');
        push_escaped(out, realm);
        out.push_str("\" direction=\"");
        out.push_str(d.direction.as_str());
        out.push_str("\">\n  <state>");
        push_escaped(out, d.state.as_str());
        out.push_str("</state>\n");
        if let Some(remote) = &d.remote {
            out.push_str("  <remote>\n   <identity>");
            push_uri(out, remote, realm);
            out.push_str("</identity>\n   <target uri=\"");
            push_uri(out, remote, realm);
            out.push_str("\"/>\n  </remote>\n");
        }
        out.push_str("  <local>\n   <identity>");
        push_uri(out, extension, realm);
        out.push_str("</identity>\n   <target uri=\"");
        push_uri(out, extension, realm);
        if d.held {
            out.push_str(
                "\">\n    <param pname=\"+sip.rendering\" pvalue=\"no\"/>\n   </target>\n",
            );
        } else {
            out.push_str("\"/>\n");
        }
        out.push_str("  </local>\n </dialog>\n");
    }
    out.push_str("</dialog-info>\n");
}

/// Writes a PIDF document in the manner of Asterisk's `pidf+xml` body: an
/// RPID `on-the-phone` activity with the note `Ringing`, `On hold` or
/// `On the phone` while a call is up, `open` and `Ready` when idle.
pub fn write_pidf(out: &mut String, extension: &str, realm: &str, dialogs: &[DialogSpec]) {
    let live: Vec<&DialogSpec> = dialogs
        .iter()
        .filter(|d| d.state != DialogState::Terminated)
        .collect();
    let ringing = live.iter().any(|d| {
        d.direction == Direction::Recipient
            && matches!(
                d.state,
                DialogState::Trying | DialogState::Proceeding | DialogState::Early
            )
    });
    let all_held = !live.is_empty() && live.iter().all(|d| d.held);
    let note = if live.is_empty() {
        "Ready"
    } else if ringing {
        "Ringing"
    } else if all_held {
        "On hold"
    } else {
        "On the phone"
    };
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence entity=\"");
    push_uri(out, extension, realm);
    out.push_str("\" xmlns=\"urn:ietf:params:xml:ns:pidf\" xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\">\n");
    if !live.is_empty() {
        out.push_str(" <dm:person id=\"p1\">\n  <rpid:activities><rpid:on-the-phone/></rpid:activities>\n </dm:person>\n");
    }
    out.push_str(" <note>");
    out.push_str(note);
    out.push_str("</note>\n <tuple id=\"");
    push_escaped(out, extension);
    out.push_str("\">\n  <status>\n   <basic>");
    out.push_str(if live.is_empty() { "open" } else { "closed" });
    out.push_str("</basic>\n  </status>\n  <contact priority=\"1\">");
    push_uri(out, extension, realm);
    out.push_str("</contact>\n </tuple>\n</presence>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_builds_uris() {
        let mut s = String::new();
        push_uri(&mut s, "10\"01<&>", "r");
        assert_eq!(s, "sip:10&quot;01&lt;&amp;&gt;@r");
        let mut s = String::new();
        push_uri(&mut s, "sip:bob@example.com", "r");
        assert_eq!(s, "sip:bob@example.com");
    }

    #[test]
    fn idle_document_has_no_dialog() {
        let mut s = String::new();
        write_dialog_info(&mut s, "1001", "pbx.test", 4, &[]);
        assert!(
            s.contains("version=\"4\" state=\"full\" entity=\"sip:1001@pbx.test\"/>"),
            "{s}"
        );
    }
}
