//! Sans-IO: each extension's calls, rebuilt from its phone's events, as the
//! engine's facts.
//!
//! Action URLs are edge events, and a phone's requests may overtake each
//! other on the network. The ordering rule, per extension:
//! 1. a request with a `seq` (or `time`) lower than the highest one seen
//!    from that extension is stale and changes nothing;
//! 2. a request about a call (by its call id) that has already ended is
//!    stale and changes nothing (an `established` that arrives after the
//!    call's `terminated`);
//! 3. otherwise requests apply in the order they arrive.
//!
//! Calls are counted, not flipped: with call ids, one call's end leaves the
//! others (a second call while the first is up). Without a call id a call's
//! end, `on_hook` and `setup_completed` end every call.

use std::collections::{BTreeMap, HashMap, VecDeque};

use sip_blf_engine::{Direction, Fact, LineState, Party};

use super::event::{EventKind, PhoneEvent};

/// Ended call ids remembered per extension (for rule 2).
const ENDED_KEPT: usize = 32;

/// What an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// These facts about the extension now hold (the engine drops those
    /// that change nothing).
    Facts(Vec<Fact>),
    /// The event came after a later one (see the module's rule); ignored.
    Stale(&'static str),
}

/// One call on a line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    state: LineState,
    party: Option<Party>,
    direction: Option<Direction>,
}

/// One extension's calls and ordering marks.
#[derive(Debug, Default)]
struct Line {
    /// By call id; `""` is the call the phone gave no id for.
    calls: BTreeMap<String, Call>,
    ended: VecDeque<String>,
    seq: Option<u64>,
    /// Whether a line state has been reported for it.
    reported: bool,
}

/// Every extension's calls.
#[derive(Debug, Default)]
pub struct Tracker {
    lines: HashMap<String, Line>,
}

impl Tracker {
    /// No calls known.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes `event` for `extension` in; says which facts now hold.
    pub fn apply(&mut self, extension: &str, event: &PhoneEvent) -> Outcome {
        let line = self.lines.entry(extension.to_owned()).or_default();
        if let (Some(seq), Some(last)) = (event.seq, line.seq) {
            if seq < last {
                return Outcome::Stale("an event with a higher seq came first");
            }
        }
        let id = event.call_id.clone().unwrap_or_default();
        let ends = matches!(
            event.kind,
            EventKind::CallEnded | EventKind::RingingEnded | EventKind::OnHook
        );
        if !id.is_empty() && !ends && line.ended.contains(&id) {
            return Outcome::Stale("the call has already ended");
        }
        if let Some(seq) = event.seq {
            line.seq = Some(seq);
        }
        let facts = match event.kind {
            EventKind::Dnd(on) => return Outcome::Facts(vec![Fact::Dnd(on)]),
            EventKind::Registration(on) => {
                let mut facts = vec![Fact::Registration(on)];
                // A phone that registers and has told nothing else is free.
                if on && !line.reported {
                    line.reported = true;
                    facts.push(Fact::line(LineState::Idle));
                }
                return Outcome::Facts(facts);
            }
            EventKind::Other => return Outcome::Facts(Vec::new()),
            kind => {
                line.call_event(kind, id, event.remote.clone());
                line.reported = true;
                vec![line.fact()]
            }
        };
        Outcome::Facts(facts)
    }
}

impl Line {
    fn call_event(&mut self, kind: EventKind, id: String, remote: Option<Party>) {
        match kind {
            EventKind::Ringing => {
                let call = self.calls.entry(id).or_insert(Call {
                    state: LineState::Ringing,
                    party: None,
                    direction: Some(Direction::Inbound),
                });
                call.state = LineState::Ringing;
                call.party = remote.or(call.party.take());
            }
            EventKind::OffHook => {
                let ringing = self
                    .calls
                    .values_mut()
                    .filter(|c| c.state == LineState::Ringing);
                let mut answered = false;
                for call in ringing {
                    call.state = LineState::Busy;
                    answered = true;
                }
                if !answered && self.calls.is_empty() {
                    self.calls.insert(
                        id,
                        Call {
                            state: LineState::Busy,
                            party: remote,
                            direction: None,
                        },
                    );
                }
            }
            EventKind::Established | EventKind::Resume | EventKind::Hold
                if id.is_empty() && !self.calls.is_empty() && !self.calls.contains_key("") =>
            {
                // No id, and every known call has one: the event is about
                // the calls in the state it leaves.
                let (from, to) = match kind {
                    EventKind::Established => (LineState::Ringing, LineState::Busy),
                    EventKind::Hold => (LineState::Busy, LineState::Hold),
                    _ => (LineState::Hold, LineState::Busy),
                };
                for call in self.calls.values_mut().filter(|c| c.state == from) {
                    call.state = to;
                }
            }
            EventKind::Outgoing | EventKind::Established | EventKind::Resume | EventKind::Hold => {
                let state = if kind == EventKind::Hold {
                    LineState::Hold
                } else {
                    LineState::Busy
                };
                // The call without an id (lifted handset, or an event without
                // `$call_id`) is this one once an id is known.
                let anonymous = if id.is_empty() {
                    None
                } else {
                    self.calls.remove("")
                };
                let direction = (kind == EventKind::Outgoing).then_some(Direction::Outbound);
                let call = self.calls.entry(id).or_insert_with(|| {
                    anonymous.unwrap_or(Call {
                        state,
                        party: None,
                        direction: None,
                    })
                });
                call.state = state;
                call.direction = direction.or(call.direction);
                call.party = remote.or(call.party.take());
            }
            EventKind::RingingEnded if id.is_empty() => {
                self.calls.retain(|_, c| c.state != LineState::Ringing);
            }
            EventKind::CallEnded | EventKind::RingingEnded if !id.is_empty() => {
                self.calls.remove(&id);
                self.calls.remove("");
                self.ended.push_back(id);
                if self.ended.len() > ENDED_KEPT {
                    self.ended.pop_front();
                }
            }
            _ => {
                for (id, _) in std::mem::take(&mut self.calls) {
                    if !id.is_empty() {
                        self.ended.push_back(id);
                    }
                }
                while self.ended.len() > ENDED_KEPT {
                    self.ended.pop_front();
                }
            }
        }
    }

    /// The line: its most telling call by [`LineState::person_rank`]
    /// (ringing over busy over hold), else idle.
    fn fact(&self) -> Fact {
        match self.calls.values().max_by_key(|c| c.state.person_rank()) {
            None => Fact::line(LineState::Idle),
            Some(call) => Fact::Line {
                state: call.state,
                counterparty: call.party.clone(),
                direction: call.direction,
            },
        }
    }
}

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
