//! People and their views: the [`Directory`] maps addresses to people, and
//! [`Views`] keeps each person's [`View`] combined from all their addresses.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::facts::{
    AddressKey, Direction, Fact, LineState, Observation, Party, QueueMember, TeamsPresence,
};

/// A person, as the extension list names them (an e-mail, a UPN, an id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonId(pub String);

impl PersonId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PersonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl From<&str> for PersonId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// The directory could not take an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// One address listed for two people.
    #[error(
        "{address} is listed for both {first} and {second}; an address belongs to one person: \
         fix the extension list"
    )]
    AddressTaken {
        /// The address.
        address: AddressKey,
        /// Who has it already.
        first: PersonId,
        /// Who was to get it too.
        second: PersonId,
    },
}

/// Who is behind each address (built from the extension list).
#[derive(Debug, Clone, Default)]
pub struct Directory {
    person_of: BTreeMap<AddressKey, PersonId>,
    /// Each person's addresses, sorted. A `Vec`, not a set: most people
    /// have one or two, and a set's node costs about half a kilobyte.
    addresses_of: BTreeMap<PersonId, Vec<AddressKey>>,
}

impl Directory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lists `address` on `system` for `person`. Listing it again for the
    /// same person is a no-op; for another person it is refused.
    pub fn add(
        &mut self,
        system: &str,
        address: &str,
        person: impl Into<PersonId>,
    ) -> Result<(), DirectoryError> {
        let key = AddressKey::new(system, address);
        let person = person.into();
        if let Some(first) = self.person_of.get(&key) {
            if *first == person {
                return Ok(());
            }
            return Err(DirectoryError::AddressTaken {
                address: key,
                first: first.clone(),
                second: person,
            });
        }
        let addresses = self.addresses_of.entry(person.clone()).or_default();
        if let Err(at) = addresses.binary_search(&key) {
            addresses.insert(at, key.clone());
        }
        self.person_of.insert(key, person);
        Ok(())
    }

    /// The person behind `address` on `system`, if listed.
    pub fn person_of(&self, key: &AddressKey) -> Option<&PersonId> {
        self.person_of.get(key)
    }

    /// Every address of `person` (in order), empty when unknown.
    pub fn addresses_of(&self, person: &PersonId) -> impl Iterator<Item = &AddressKey> {
        self.addresses_of.get(person).into_iter().flatten()
    }

    /// Every person (each once, in order).
    pub fn people(&self) -> impl Iterator<Item = &PersonId> {
        self.addresses_of.keys()
    }

    /// Number of listed addresses.
    pub fn len(&self) -> usize {
        self.person_of.len()
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.person_of.is_empty()
    }
}

/// Everything known about one person, combined from all their addresses on
/// all systems.
///
/// The rule:
/// - `line` is the highest-ranked line of the person's addresses by
///   [`LineState::person_rank`]: `Ringing > Busy > Hold > Idle > Offline >
///   Unknown`. A call on any phone wins; `Offline`/`Unknown` show only when
///   no line says more. An address with no line report yet counts as
///   `Unknown`; an address reported unregistered counts as `Offline` unless
///   it reports a call.
/// - `cause` is the address that gave `line`; among addresses of equal rank
///   the one that caused the view before keeps it (so a second call on
///   another phone does not move it), else the first in order.
///   `counterparty` and `direction` are the cause's.
/// - `dnd` is on when any address says so.
/// - `registered` is `Some(true)` when any address is registered,
///   `Some(false)` when every reporting address is not, `None` when none
///   reported.
/// - `queues` has one [`QueueMember`] per queue any address is a member of,
///   sorted by queue name. A queue on two addresses is `paused` only when
///   paused on all of them (the person still takes its calls on the
///   other), `in_call` when in a call on any, and has the `reason` of the
///   first paused one in address order.
/// - `presence` is the Teams presence last reported by any of the person's
///   addresses (in practice one address reports it: the person's Teams
///   address). An address that only ever reported a presence shows in
///   `lines` with line `Unknown` and takes no part in `line`, `cause`,
///   `dnd` or `registered`.
///
/// `lines` carries each address on its own (one [`LineView`] per address
/// of the person that has reported anything, in address order), for sinks
/// that show every phone (a table row per extension). A change on one phone
/// that leaves the combined fields as they were still changes the view; so
/// does a change of queue membership or of presence alone, as a DND change
/// does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// Whose view it is.
    pub person: PersonId,
    /// The combined line state.
    pub line: LineState,
    /// The other party of the cause's call, if known.
    pub counterparty: Option<Party>,
    /// The direction of the cause's call, if known.
    pub direction: Option<Direction>,
    /// Do-not-disturb on any address.
    pub dnd: bool,
    /// Registration, combined (see above).
    pub registered: Option<bool>,
    /// The address whose line gave `line`.
    pub cause: Option<AddressKey>,
    /// Each reporting address on its own, in address order.
    pub lines: Vec<LineView>,
    /// Every queue membership of the person's addresses, one per queue
    /// name, sorted (combined: see above).
    #[serde(default)]
    pub queues: Vec<QueueMember>,
    /// The Teams presence last reported for the person (see above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<TeamsPresence>,
}

/// One address of a person, as it reported itself (part of a [`View`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineView {
    /// The address.
    pub address: AddressKey,
    /// Its effective line state: `Unknown` before a line report, `Offline`
    /// when reported unregistered and not in a call.
    pub line: LineState,
    /// The other party of its call, if known.
    pub counterparty: Option<Party>,
    /// The direction of its call, if known.
    pub direction: Option<Direction>,
    /// Its do-not-disturb, once reported.
    pub dnd: Option<bool>,
    /// Its registration, once reported.
    pub registered: Option<bool>,
    /// Its queue memberships, sorted by queue name, a reason only with a
    /// pause (empty: none, or none reported).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<QueueMember>,
    /// The Teams presence it reported, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<TeamsPresence>,
}

/// What one address reported last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct AddressState {
    line: Option<(LineState, Option<Party>, Option<Direction>)>,
    dnd: Option<bool>,
    registered: Option<bool>,
    /// Sorted by queue name, one per name. A boxed slice: most addresses
    /// are in no queue, and it is smaller than a `Vec`.
    queues: Box<[QueueMember]>,
    /// Boxed: most addresses are phones and never report one.
    presence: Option<Box<TeamsPresence>>,
}

/// What of an [`AddressState`] shows in its [`LineView`], queues aside
/// (compared without copying them).
type Shown = (
    LineState,
    Option<Party>,
    Option<Direction>,
    Option<bool>,
    Option<bool>,
);

impl AddressState {
    fn shown(&self) -> Shown {
        let (party, direction) = self.party();
        (
            self.effective_line(),
            party.cloned(),
            direction,
            self.dnd,
            self.registered,
        )
    }

    /// Takes `fact` in; says whether the address shows differently now.
    fn apply(&mut self, fact: &Fact) -> bool {
        if let Fact::Queues(members) = fact {
            let mut members = members.clone();
            // A reason says why a membership is paused; without a pause it
            // says nothing.
            for member in &mut members {
                if !member.paused {
                    member.reason = None;
                }
            }
            // Stable: of one queue listed twice, the first report stays.
            members.sort_by(|a, b| a.queue.cmp(&b.queue));
            members.dedup_by(|later, first| later.queue == first.queue);
            let changed = *self.queues != *members;
            self.queues = members.into_boxed_slice();
            return changed;
        }
        if let Fact::Presence(presence) = fact {
            let changed = self.presence.as_deref() != Some(presence);
            if changed {
                self.presence = Some(Box::new(presence.clone()));
            }
            return changed;
        }
        let before = self.shown();
        match fact {
            Fact::Line {
                state,
                counterparty,
                direction,
            } => self.line = Some((*state, counterparty.clone(), *direction)),
            Fact::Dnd(on) => self.dnd = Some(*on),
            Fact::Registration(on) => self.registered = Some(*on),
            Fact::Queues(_) | Fact::Presence(_) => {}
        }
        self.shown() != before
    }

    /// Whether the address reported nothing but a presence: it then says
    /// nothing about the person's line.
    fn presence_only(&self) -> bool {
        self.presence.is_some()
            && self.line.is_none()
            && self.dnd.is_none()
            && self.registered.is_none()
            && self.queues.is_empty()
    }

    fn party(&self) -> (Option<&Party>, Option<Direction>) {
        self.line
            .as_ref()
            .map_or((None, None), |l| (l.1.as_ref(), l.2))
    }

    fn effective_line(&self) -> LineState {
        let state = self.line.as_ref().map_or(LineState::Unknown, |l| l.0);
        if self.registered == Some(false) && !state.is_call() {
            LineState::Offline
        } else {
            state
        }
    }
}

/// What an observation did.
// Returned once per observation and matched at once: boxing the view would
// cost an allocation for every change to save a copy of a few hundred bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Observed {
    /// The person's view changed to this.
    Changed(View),
    /// The person's view is as it was.
    Unchanged,
    /// The address is in no one's list: ignored.
    UnknownAddress,
}

/// Every person's view, kept up to date from observations (sans-IO: no
/// clock, no I/O).
///
/// Memory is one entry per address and per person, with no copy of an
/// address or a person: views are built when asked for, not kept (a view
/// changes exactly when one of its lines does, so none is needed to tell).
#[derive(Debug, Clone, Default)]
pub struct Views {
    /// Every listed address, sorted by key (found by binary search).
    addresses: Vec<(AddressKey, Slot)>,
    /// Every person, sorted by id.
    people: Vec<Person>,
}

/// One address: whose it is and what it reported last.
#[derive(Debug, Clone)]
struct Slot {
    person: usize,
    state: Option<AddressState>,
}

/// One person: their addresses (indices into `Views::addresses`, in key
/// order), the address that caused their last view and the one that
/// reported a presence last.
#[derive(Debug, Clone)]
struct Person {
    id: PersonId,
    addresses: Vec<usize>,
    cause: Option<usize>,
    presence_from: Option<usize>,
}

impl Views {
    /// Views for the people of `directory`; a person has a view from their
    /// first observation on.
    pub fn new(directory: Directory) -> Self {
        let Directory {
            person_of,
            addresses_of,
        } = directory;
        let mut people: Vec<Person> = addresses_of
            .into_keys()
            .map(|id| Person {
                id,
                addresses: Vec::new(),
                cause: None,
                presence_from: None,
            })
            .collect();
        let mut addresses = Vec::with_capacity(person_of.len());
        for (key, id) in person_of {
            // Every listed address has its person in `addresses_of`.
            let Ok(person) = people.binary_search_by(|p| p.id.cmp(&id)) else {
                continue;
            };
            people[person].addresses.push(addresses.len());
            addresses.push((
                key,
                Slot {
                    person,
                    state: None,
                },
            ));
        }
        Self { addresses, people }
    }

    /// Takes an observation in; says whether its person's view changed.
    pub fn observe(&mut self, observation: &Observation) -> Observed {
        let wanted = (observation.system.as_str(), observation.address.as_str());
        let Ok(at) = self
            .addresses
            .binary_search_by(|(k, _)| (k.system.as_str(), k.address.as_str()).cmp(&wanted))
        else {
            return Observed::UnknownAddress;
        };
        let slot = &mut self.addresses[at].1;
        // The first report of an address adds it to the view.
        let first = slot.state.is_none();
        let mut changed = slot
            .state
            .get_or_insert_with(AddressState::default)
            .apply(&observation.fact);
        let person = slot.person;
        if let Fact::Presence(_) = observation.fact {
            // The view shows the last reported presence: one from another
            // address than before changes it even if this one's is as it was.
            let from = &mut self.people[person].presence_from;
            changed |= *from != Some(at);
            *from = Some(at);
        }
        if !first && !changed {
            return Observed::Unchanged;
        }
        let (view, cause) = self.combine(person);
        self.people[person].cause = cause;
        Observed::Changed(view)
    }

    /// `person`'s view, once something was observed for them.
    pub fn get(&self, person: &PersonId) -> Option<View> {
        let at = self.people.binary_search_by(|p| p.id.cmp(person)).ok()?;
        self.view_of(at)
    }

    /// Every view there is (in person order).
    pub fn iter(&self) -> impl Iterator<Item = View> + '_ {
        (0..self.people.len()).filter_map(|at| self.view_of(at))
    }

    fn view_of(&self, person: usize) -> Option<View> {
        let observed = self.people[person]
            .addresses
            .iter()
            .any(|&a| self.addresses[a].1.state.is_some());
        observed.then(|| self.combine(person).0)
    }

    /// The view of `person` by the rule documented on [`View`], and the
    /// index of the address that causes it.
    fn combine(&self, person: usize) -> (View, Option<usize>) {
        let person = &self.people[person];
        let earlier = person.cause;
        let mut best: Option<(usize, &AddressState, LineState)> = None;
        let mut dnd = false;
        let mut registered = None;
        let mut lines = Vec::new();
        for &at in &person.addresses {
            let (key, slot) = &self.addresses[at];
            let Some(state) = &slot.state else {
                continue;
            };
            let (counterparty, direction) = state.party();
            lines.push(LineView {
                address: key.clone(),
                line: state.effective_line(),
                counterparty: counterparty.cloned(),
                direction,
                dnd: state.dnd,
                registered: state.registered,
                queues: state.queues.to_vec(),
                presence: state.presence.as_deref().cloned(),
            });
            if state.presence_only() {
                continue;
            }
            dnd |= state.dnd == Some(true);
            registered = match (registered, state.registered) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (_, Some(false)) => Some(false),
                (r, None) => r,
            };
            let line = state.effective_line();
            let better = match best {
                None => true,
                Some((b_at, _, b)) => {
                    line.person_rank() > b.person_rank()
                        || (line.person_rank() == b.person_rank()
                            && earlier == Some(at)
                            && earlier != Some(b_at))
                }
            };
            if better {
                best = Some((at, state, line));
            }
        }
        let (cause, line, counterparty, direction) = match best {
            Some((at, state, line)) => {
                let (counterparty, direction) = state.party();
                (Some(at), line, counterparty.cloned(), direction)
            }
            None => (None, LineState::Unknown, None, None),
        };
        let view = View {
            person: person.id.clone(),
            line,
            counterparty,
            direction,
            dnd,
            registered,
            cause: cause.map(|at| self.addresses[at].0.clone()),
            queues: combine_queues(&lines),
            presence: person
                .presence_from
                .and_then(|at| self.addresses[at].1.state.as_ref())
                .and_then(|state| state.presence.as_deref().cloned()),
            lines,
        };
        (view, cause)
    }
}

/// The queues of `lines` (each sorted by name, in address order), one per
/// queue name by the rule documented on [`View`].
fn combine_queues(lines: &[LineView]) -> Vec<QueueMember> {
    let mut all: Vec<&QueueMember> = lines.iter().flat_map(|l| &l.queues).collect();
    // Stable: within a queue, the memberships stay in address order.
    all.sort_by(|a, b| a.queue.cmp(&b.queue));
    let mut combined: Vec<QueueMember> = Vec::new();
    // Whether the last combined queue has a paused membership yet.
    let mut any_paused = false;
    for member in all {
        match combined.last_mut() {
            Some(last) if last.queue == member.queue => {
                last.paused &= member.paused;
                last.in_call |= member.in_call;
                if member.paused && !any_paused {
                    last.reason.clone_from(&member.reason);
                    any_paused = true;
                }
            }
            _ => {
                any_paused = member.paused;
                combined.push(member.clone());
            }
        }
    }
    combined
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
