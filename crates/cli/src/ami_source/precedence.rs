//! SIP and AMI together (`SOURCES=sip,ami`): both report the same
//! extensions on the same PBX, and they disagree where AMI knows more (with
//! FreePBX-style hints, DND is `busy` over BLF, `idle` with DND over AMI).
//! The rule: while AMI has the current state (logged in, full state read),
//! it speaks for every extension's line and the SIP source's line reports
//! are dropped; while AMI is down, SIP's pass, so lines stay current through
//! an AMI outage, and AMI's full state replaces them when it is back.
//! SIP's other facts (registration) always pass.

use std::time::Duration;

use sip_blf_engine::{Fact, Observation, Source};
use tokio::sync::watch;

use super::AmiStatus;

/// A source whose line reports give way to AMI's while AMI is current.
pub struct DeferToAmi<S> {
    inner: S,
    ami: watch::Receiver<AmiStatus>,
}

impl<S: Source> DeferToAmi<S> {
    /// `inner`, deferring to the AMI source whose status is `ami`.
    pub fn new(inner: S, ami: watch::Receiver<AmiStatus>) -> Self {
        Self { inner, ami }
    }

    async fn next_kept(&mut self) -> Option<Observation> {
        loop {
            // Cancel-safe: nothing is held between the awaits.
            let o = self.inner.next().await?;
            let ami_current = self.ami.borrow().current;
            if !(ami_current && matches!(o.fact, Fact::Line { .. })) {
                return Some(o);
            }
        }
    }
}

impl<S: Source + Send> Source for DeferToAmi<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn next(&mut self) -> impl std::future::Future<Output = Option<Observation>> + Send {
        self.next_kept()
    }

    fn stop(&mut self, limit: Duration) -> impl std::future::Future<Output = ()> + Send {
        self.inner.stop(limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_blf_engine::{ChannelSource, LineState};
    use std::time::Instant;

    #[tokio::test]
    async fn sip_lines_pass_only_while_ami_is_not_current() {
        let (send, source) = ChannelSource::channel("sip", 8);
        let (status, ami) = watch::channel(AmiStatus::default());
        let mut deferred = DeferToAmi::new(source, ami);
        let line = |s| Observation::new("pbx", "1001", Fact::line(s), Instant::now());
        send.send(line(LineState::Busy)).await.unwrap();
        assert_eq!(
            deferred.next().await.map(|o| o.fact),
            Some(Fact::line(LineState::Busy))
        );
        status.send_modify(|s| s.current = true);
        send.send(line(LineState::Idle)).await.unwrap();
        let registered = Observation::new("pbx", "1001", Fact::Registration(true), Instant::now());
        send.send(registered.clone()).await.unwrap();
        assert_eq!(
            deferred.next().await,
            Some(registered),
            "the line was dropped"
        );
        status.send_modify(|s| s.current = false);
        send.send(line(LineState::Ringing)).await.unwrap();
        assert_eq!(
            deferred.next().await.map(|o| o.fact),
            Some(Fact::line(LineState::Ringing))
        );
        assert_eq!(deferred.name(), "sip");
    }
}
