//! The SIP source as an engine [`Source`]: each line change becomes an
//! [`Observation`] about the extension on [`PBX`]; its health goes to the
//! log, `/status` and `/metrics` through [`crate::observe::sip_health`].

use std::time::Duration;

use sip_blf_engine::{Fact, Observation, Source};

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
        blf::LineState::Unknown => E::Unknown,
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
                    return Some(observation(&change));
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
    fn every_blf_state_has_the_engine_state_of_the_same_name() {
        for state in blf::LineState::ALL {
            assert_eq!(engine_line_state(state).as_str(), state.as_str());
        }
    }
}
