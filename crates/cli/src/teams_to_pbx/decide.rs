//! The decisions, sans-IO: a person's view (Teams presence read back, the
//! PBX's DND) in; DND on or off for their extensions out.
//!
//! No loops:
//! - a presence our own Teams session explains (what the Teams sink holds,
//!   or what the person's lines would make it set) is not the user's: it
//!   causes nothing;
//! - DND is turned off only where this service turned it on: a DND the user
//!   set on the phone stays;
//! - the DND this service sets is in [`OwnDnd`], which the Teams sink reads
//!   so that it never shows it back in Teams as DoNotDisturb.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use sip_blf_engine::{PersonId, TeamsPresence, View};

use super::rules::{PbxWish, TeamsRules};

/// The extensions whose DND this service set (shared with the Teams sink),
/// kept in a file when given one, so that a DND set before a crash or a
/// `kill -9` is still known as ours (and taken off) after the restart.
#[derive(Debug, Clone, Default)]
pub struct OwnDnd(
    Arc<Mutex<BTreeSet<String>>>,
    Option<Arc<std::path::PathBuf>>,
);

impl OwnDnd {
    /// Kept in `path` (a JSON list of extensions), starting from what it
    /// holds; a missing or unreadable file starts empty (with a warning
    /// for an unreadable one).
    pub fn persisted(path: std::path::PathBuf) -> Self {
        let set: BTreeSet<String> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!("{}: {e}; starting with no DND of ours", path.display());
                BTreeSet::new()
            }),
            Err(_) => BTreeSet::new(),
        };
        Self(Arc::new(Mutex::new(set)), Some(Arc::new(path)))
    }

    /// Whether this service set `extension`'s DND.
    pub fn contains(&self, extension: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(extension)
    }

    fn set(&self, extensions: &[String], on: bool) {
        let mut set = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for e in extensions {
            if on {
                set.insert(e.clone());
            } else {
                set.remove(e);
            }
        }
        if let Some(path) = &self.1 {
            // Written before the PBX is asked: a crash in between leaves a
            // DND we may not have set marked ours, which the next "off" clears.
            let written = serde_json::to_vec(&*set)
                .map_err(std::io::Error::other)
                .and_then(|json| {
                    let tmp = path.with_extension("tmp");
                    std::fs::write(&tmp, json)?;
                    std::fs::rename(&tmp, path.as_path())
                });
            if let Err(e) = written {
                tracing::warn!("cannot write {}: {e}", path.display());
            }
        }
    }

    /// Every extension whose DND this service set.
    pub fn all(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }
}

/// DND on or off for a person's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbxAction {
    /// Whose.
    pub person: PersonId,
    /// The extensions.
    pub extensions: Vec<String>,
    /// On or off.
    pub dnd: bool,
    /// The Teams presence that asked for it (`None`: the service stops).
    pub because: Option<TeamsPresence>,
}

#[derive(Debug, Default)]
struct Person {
    extensions: Vec<String>,
    /// This service has DND on for the person (asked or done).
    we_set: bool,
    /// An action is under way: decide again when it is done.
    busy: bool,
    /// The last view, to decide again after an action.
    last: Option<View>,
}

/// Every person's Teams → PBX state.
#[derive(Debug)]
pub struct Reverse {
    rules: TeamsRules,
    own: OwnDnd,
    people: BTreeMap<PersonId, Person>,
}

impl Reverse {
    /// For `people` (each with their extensions), with `rules`; `own` is
    /// kept up to date.
    pub fn new(
        rules: TeamsRules,
        own: OwnDnd,
        people: impl IntoIterator<Item = (PersonId, Vec<String>)>,
    ) -> Self {
        let people = people
            .into_iter()
            .map(|(id, extensions)| {
                // A DND of ours from before a restart is still ours.
                let we_set = extensions.iter().any(|e| own.contains(e));
                (
                    id,
                    Person {
                        extensions,
                        we_set,
                        ..Person::default()
                    },
                )
            })
            .collect();
        Self { rules, own, people }
    }

    /// A person's view changed; `ours(view, presence)` says whether our own
    /// Teams session explains the presence. The action to take, if any.
    pub fn view(
        &mut self,
        view: &View,
        ours: impl Fn(&View, &TeamsPresence) -> bool,
    ) -> Option<PbxAction> {
        let person = self.people.get_mut(&view.person)?;
        person.last = Some(view.clone());
        if person.busy {
            return None;
        }
        let presence = view.presence.as_ref()?;
        if ours(view, presence) {
            return None;
        }
        let on = match self.rules.wish(presence) {
            PbxWish::Keep => return None,
            // The user's own DND on the phone: already there, and not ours.
            PbxWish::Dnd if person.we_set || view.dnd => return None,
            PbxWish::Dnd => true,
            PbxWish::Off if !person.we_set => return None,
            PbxWish::Off => false,
        };
        person.we_set = on;
        person.busy = true;
        // Marked before the PBX is asked: its DND event may come first.
        if on {
            self.own.set(&person.extensions, true);
        }
        Some(PbxAction {
            person: view.person.clone(),
            extensions: person.extensions.clone(),
            dnd: on,
            because: Some(presence.clone()),
        })
    }

    /// `action` is done (`ok`) or failed; the next action, if the view moved
    /// on meanwhile. After a failure nothing follows: the caller waits, then
    /// asks [`retry`](Self::retry).
    pub fn done(
        &mut self,
        action: &PbxAction,
        ok: bool,
        ours: impl Fn(&View, &TeamsPresence) -> bool,
    ) -> Option<PbxAction> {
        let person = self.people.get_mut(&action.person)?;
        person.busy = false;
        match (action.dnd, ok) {
            (false, true) => self.own.set(&action.extensions, false),
            (true, false) => {
                person.we_set = false;
                self.own.set(&action.extensions, false);
            }
            // A failed "off": still ours, tried again at the next change.
            (false, false) => person.we_set = true,
            (true, true) => {}
        }
        if !ok {
            return None;
        }
        let last = person.last.clone()?;
        self.view(&last, ours)
    }

    /// Decides `person` again from their last view (after a failure).
    pub fn retry(
        &mut self,
        person: &PersonId,
        ours: impl Fn(&View, &TeamsPresence) -> bool,
    ) -> Option<PbxAction> {
        let last = self.people.get(person)?.last.clone()?;
        self.view(&last, ours)
    }

    /// At the stop: DND off wherever this service set it.
    pub fn release_all(&mut self) -> Vec<PbxAction> {
        self.people
            .iter_mut()
            .filter(|(_, p)| p.we_set)
            .map(|(id, p)| {
                p.we_set = false;
                self.own.set(&p.extensions, false);
                PbxAction {
                    person: id.clone(),
                    extensions: p.extensions.clone(),
                    dnd: false,
                    because: None,
                }
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
