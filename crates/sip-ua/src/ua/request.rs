//! Requests of the account outside any dialog, one transaction each
//! (MESSAGE, PUBLISH): the headers they share and their credentials, built
//! in one place so that both stay alike.

use super::*;
use crate::message::Headers;

/// A new branch, its `Via` and the account, taken from the user agent before
/// the request's own state is borrowed.
pub(super) struct OutOfDialog {
    /// The branch of the new client transaction.
    pub(super) branch: String,
    via: String,
    user: String,
    password: String,
    domain: String,
    user_agent: String,
}

/// What differs between the requests built by [`OutOfDialog::request`].
pub(super) struct RequestFields<'a> {
    pub(super) method: &'static str,
    /// The Request-URI, also `To` and the URI the credentials are for.
    pub(super) uri: &'a str,
    pub(super) call_id: &'a str,
    pub(super) from_tag: &'a str,
    pub(super) cseq: u32,
    /// The method's own headers, after `CSeq` and before `User-Agent`.
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: Vec<u8>,
}

impl UserAgent {
    /// A new branch and what every out-of-dialog request carries.
    pub(super) fn out_of_dialog(&self) -> OutOfDialog {
        let branch = format!("z9hG4bK{}", random_hex(10));
        OutOfDialog {
            via: self.via(&branch),
            branch,
            user: self.cfg.username.clone(),
            password: self.cfg.password().expose().to_string(),
            domain: self.domain.clone(),
            user_agent: self.cfg.user_agent.clone(),
        }
    }
}

impl OutOfDialog {
    /// The request: `Via`, `Max-Forwards`, `From` (the account), `To`,
    /// `Call-ID`, `CSeq`, the method's headers, `User-Agent`, and the
    /// credentials `auth` has for it (or none, noted in `auth`).
    pub(super) fn request(&self, f: RequestFields<'_>, auth: &mut DigestSession) -> Message {
        let (user, domain) = (&self.user, &self.domain);
        let mut h = Headers::new();
        h.push("Via", self.via.clone());
        h.push("Max-Forwards", "70");
        h.push("From", format!("<sip:{user}@{domain}>;tag={}", f.from_tag));
        h.push("To", format!("<{}>", f.uri));
        h.push("Call-ID", f.call_id.to_string());
        h.push("CSeq", format!("{} {}", f.cseq, f.method));
        for (name, value) in f.headers {
            h.push(name, value);
        }
        h.push("User-Agent", self.user_agent.clone());
        match auth.authorize(user, &self.password, f.method, f.uri, &f.body) {
            Some((name, value)) => h.push(name, value),
            None => auth.sent_without_credentials(),
        }
        Message {
            start: StartLine::Request {
                method: f.method.into(),
                uri: f.uri.to_string(),
            },
            headers: h,
            body: f.body,
        }
    }
}
