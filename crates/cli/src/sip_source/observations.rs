//! The SIP source as an engine [`Source`]: each line change becomes an
//! [`Observation`] about the extension on [`PBX`]; its health goes to the
//! log, `/status` and `/metrics` through [`crate::observe::sip_health`].

use std::time::Duration;

use blf::DialogState;
use sip_blf_engine::{Direction, Fact, Observation, Party, Source};
use sip_ua::EventPackage;

use super::{LineChange, SipSource, SourceEvent};

/// The system name under which PBX sources report extensions: every source
/// that watches the PBX's extensions (BLF subscriptions, AMI) reports on
/// the same addresses.
pub const PBX: &str = "pbx";

/// The engine's name for a BLF line state (the two enums match one to one).
pub fn engine_line_state(state: blf::LineState) -> sip_blf_engine::LineState {
    use sip_blf_engine::LineState as E;
    match state {
        blf::LineState::Idle => E::Idle,
        blf::LineState::Ringing => E::Ringing,
        blf::LineState::Busy => E::Busy,
        blf::LineState::Hold => E::Hold,
        blf::LineState::Offline => E::Offline,
        // `Unknown`, and any state a newer blf adds: nothing usable yet.
        _ => E::Unknown,
    }
}

/// A line change as the engine's observation.
pub fn observation(change: &LineChange) -> Observation {
    let at = change
        .received_at
        .unwrap_or_else(|| tokio::time::Instant::now().into_std());
    Observation::new(
        PBX,
        change.extension.clone(),
        Fact::line(engine_line_state(change.line_state)),
        at,
    )
}

/// The user part of a SIP URI (`sip:1002@pbx` → `1002`), else the text.
fn user_part(uri: &str) -> &str {
    let rest = uri
        .strip_prefix("sips:")
        .or_else(|| uri.strip_prefix("sip:"))
        .or_else(|| uri.strip_prefix("tel:"))
        .unwrap_or(uri);
    let user = rest.split(['@', ';', '?']).next().unwrap_or(rest);
    if user.is_empty() {
        uri
    } else {
        user
    }
}

impl SipSource {
    /// The other party and the direction of `extension`'s live call, from
    /// the last dialog-info document (RFC 4235 `<remote>` and `direction`),
    /// where the PBX gives them.
    pub fn call_party(&self, extension: &str) -> (Option<Party>, Option<Direction>) {
        let Some(tracker) = self
            .trackers
            .get(&(extension.to_owned(), EventPackage::Dialog))
        else {
            return (None, None);
        };
        let live = tracker
            .dialogs()
            .iter()
            .find(|d| d.state != DialogState::Terminated);
        let Some(dialog) = live else {
            return (None, None);
        };
        let party = dialog.remote.as_ref().and_then(|r| {
            let number = r.identity.as_deref().map(user_part)?.to_owned();
            Some(Party {
                number,
                name: r.display.clone().filter(|d| !d.trim().is_empty()),
            })
        });
        let direction = dialog.direction.and_then(|d| match d {
            blf::Direction::Initiator => Some(Direction::Outbound),
            blf::Direction::Recipient => Some(Direction::Inbound),
            _ => None,
        });
        (party, direction)
    }

    /// A line change as the engine's observation, with the call's other
    /// party and direction while the line is in a call.
    fn observation(&self, change: &LineChange) -> Observation {
        let mut observation = observation(change);
        if engine_line_state(change.line_state).is_call() {
            let (party, way) = self.call_party(&change.extension);
            observation.fact = Fact::Line {
                state: engine_line_state(change.line_state),
                counterparty: party,
                direction: way,
            };
        }
        observation
    }
}

impl Source for SipSource {
    fn name(&self) -> &str {
        "sip"
    }

    async fn next(&mut self) -> Option<Observation> {
        loop {
            match SipSource::next(self).await? {
                SourceEvent::Line(change) => {
                    self.telemetry
                        .set_line_state(&change.extension, change.line_state);
                    return Some(self.observation(&change));
                }
                SourceEvent::Health(health) => crate::observe::sip_health(&self.telemetry, &health),
            }
        }
    }

    async fn stop(&mut self, limit: Duration) {
        tracing::info!("stopping: un-subscribing and un-registering");
        self.shutdown(limit).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_part_of_a_uri_is_the_number() {
        assert_eq!(user_part("sip:1002@127.0.0.1:5060;transport=udp"), "1002");
        assert_eq!(user_part("sips:+4930123@pbx"), "+4930123");
        assert_eq!(user_part("tel:+4930123;phone-context=x"), "+4930123");
        assert_eq!(user_part("1003"), "1003");
        assert_eq!(user_part("sip:@pbx"), "sip:@pbx");
    }

    #[test]
    fn a_call_reports_its_other_party_and_direction_from_the_dialog() {
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        let mut source = SipSource::new(None, rx, &[sip_ua::Subscription::dialog("1001")]);
        let body = r#"<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" entity="sip:1001@pbx">
 <dialog id="a1" call-id="c1" local-tag="l" remote-tag="r" direction="recipient">
  <state>confirmed</state>
  <remote><identity display="Bob">sip:1002@pbx</identity></remote>
 </dialog>
</dialog-info>"#;
        let event = sip_ua::Event::Notify(sip_ua::Notify {
            user: "1001".into(),
            package: EventPackage::Dialog,
            content_type: Some("application/dialog-info+xml".into()),
            body: body.as_bytes().to_vec(),
            subscription_state: None,
            received_at: std::time::Instant::now(),
        });
        let change = source
            .translate(event)
            .into_iter()
            .find_map(|e| match e {
                SourceEvent::Line(change) => Some(change),
                SourceEvent::Health(_) => None,
            })
            .expect("a line change");
        let observation = source.observation(&change);
        assert_eq!(
            observation.fact,
            Fact::Line {
                state: sip_blf_engine::LineState::Busy,
                counterparty: Some(Party {
                    number: "1002".into(),
                    name: Some("Bob".into()),
                }),
                direction: Some(Direction::Inbound),
            }
        );
    }

    #[test]
    fn every_blf_state_has_the_engine_state_of_the_same_name() {
        for state in blf::LineState::ALL {
            assert_eq!(engine_line_state(state).as_str(), state.as_str());
        }
    }
}
