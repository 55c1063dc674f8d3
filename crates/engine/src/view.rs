//! People and their views: the [`Directory`] maps addresses to people, and
//! [`Views`] keeps each person's [`View`] combined from all their addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::facts::{AddressKey, Direction, Fact, LineState, Observation, Party};

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
    addresses_of: BTreeMap<PersonId, BTreeSet<AddressKey>>,
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
        self.addresses_of
            .entry(person.clone())
            .or_default()
            .insert(key.clone());
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
///
/// `lines` carries each address on its own (one [`LineView`] per address
/// of the person that has reported anything, in address order), for sinks
/// that show every phone (a table row per extension). A change on one phone
/// that leaves the combined fields as they were still changes the view.
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
}

/// What one address reported last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct AddressState {
    line: Option<(LineState, Option<Party>, Option<Direction>)>,
    dnd: Option<bool>,
    registered: Option<bool>,
}

impl AddressState {
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, Default)]
pub struct Views {
    directory: Directory,
    addresses: BTreeMap<AddressKey, AddressState>,
    views: BTreeMap<PersonId, View>,
}

impl Views {
    /// Views for the people of `directory`; a person has a view from their
    /// first observation on.
    pub fn new(directory: Directory) -> Self {
        Self {
            directory,
            addresses: BTreeMap::new(),
            views: BTreeMap::new(),
        }
    }

    /// The directory.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Takes an observation in; says whether its person's view changed.
    pub fn observe(&mut self, observation: &Observation) -> Observed {
        let key = observation.key();
        let Some(person) = self.directory.person_of(&key).cloned() else {
            return Observed::UnknownAddress;
        };
        let entry = self.addresses.entry(key).or_default();
        match &observation.fact {
            Fact::Line {
                state,
                counterparty,
                direction,
            } => entry.line = Some((*state, counterparty.clone(), *direction)),
            Fact::Dnd(on) => entry.dnd = Some(*on),
            Fact::Registration(on) => entry.registered = Some(*on),
        }
        let view = self.combine(&person);
        if self.views.get(&person) == Some(&view) {
            return Observed::Unchanged;
        }
        self.views.insert(person, view.clone());
        Observed::Changed(view)
    }

    /// `person`'s view, once something was observed for them.
    pub fn get(&self, person: &PersonId) -> Option<&View> {
        self.views.get(person)
    }

    /// Every view there is (in person order).
    pub fn iter(&self) -> impl Iterator<Item = &View> {
        self.views.values()
    }

    /// The view of `person` by the rule documented on [`View`].
    fn combine(&self, person: &PersonId) -> View {
        let earlier = self.views.get(person).and_then(|v| v.cause.clone());
        let mut best: Option<(&AddressKey, &AddressState, LineState)> = None;
        let mut dnd = false;
        let mut registered = None;
        let mut lines = Vec::new();
        for key in self.directory.addresses_of(person) {
            let Some(state) = self.addresses.get(key) else {
                continue;
            };
            let (counterparty, direction) = state
                .line
                .as_ref()
                .map_or((None, None), |l| (l.1.clone(), l.2));
            lines.push(LineView {
                address: key.clone(),
                line: state.effective_line(),
                counterparty,
                direction,
                dnd: state.dnd,
                registered: state.registered,
            });
            dnd |= state.dnd == Some(true);
            registered = match (registered, state.registered) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (_, Some(false)) => Some(false),
                (r, None) => r,
            };
            let line = state.effective_line();
            let better = match best {
                None => true,
                Some((k, _, b)) => {
                    line.person_rank() > b.person_rank()
                        || (line.person_rank() == b.person_rank()
                            && earlier.as_ref() == Some(key)
                            && earlier.as_ref() != Some(k))
                }
            };
            if better {
                best = Some((key, state, line));
            }
        }
        let (cause, line, counterparty, direction) = match best {
            Some((key, state, line)) => {
                let (counterparty, direction) = state
                    .line
                    .as_ref()
                    .map_or((None, None), |l| (l.1.clone(), l.2));
                (Some(key.clone()), line, counterparty, direction)
            }
            None => (None, LineState::Unknown, None, None),
        };
        View {
            person: person.clone(),
            line,
            counterparty,
            direction,
            dnd,
            registered,
            cause,
            lines,
        }
    }
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
