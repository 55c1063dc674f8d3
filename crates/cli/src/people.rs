//! People: the extension list as the engine's [`Directory`], and each
//! person's combined view as the one line the presence sinks (Teams, the
//! dry-run log) act on.
//!
//! A person is an extension list entry's user ([`Extension::user`]: the
//! object id when given, else the UPN); everyone listed on several
//! extensions (desk phone and softphone) is one person, whose presence is
//! the combination of all of their lines (the rule is
//! [`sip_blf_engine::View`]'s). The presence sinks key each person by their
//! extensions joined with [`KEY_SEPARATOR`] (`1001` alone, `1001, 1002` for
//! two phones), so that logs and `/status` keep naming extensions.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;

use sip_blf_engine::{Directory, FeedReport, PersonId, ViewFeed};

use crate::engine::LineSource;
use crate::extensions::Extension;
use crate::problems::{Problem, Problems};
use crate::sip_source::{LineChange, SourceEvent, PBX};
use crate::teams_source::TEAMS;

/// Joins a person's extensions into the key the presence sinks use for
/// them. A space never appears in a SIP user part, so the key splits back
/// ([`extensions_of_key`]).
pub const KEY_SEPARATOR: &str = ", ";

/// The extensions in a presence sink's key.
pub fn extensions_of_key(key: &str) -> impl Iterator<Item = &str> {
    key.split(KEY_SEPARATOR)
}

/// Each person (by [`Extension::user`]) with their extension list entries,
/// in the order of first appearance in the list.
pub fn group_by_person(extensions: &[Extension]) -> Vec<(String, Vec<&Extension>)> {
    let mut order: Vec<(String, Vec<&Extension>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for ext in extensions {
        match index.get(ext.user()) {
            Some(&i) => order[i].1.push(ext),
            None => {
                index.insert(ext.user(), order.len());
                order.push((ext.user().to_owned(), vec![ext]));
            }
        }
    }
    order
}

/// The presence sinks' key for a person's entries.
pub fn person_key(entries: &[&Extension]) -> String {
    entries
        .iter()
        .map(|e| e.extension.as_str())
        .collect::<Vec<_>>()
        .join(KEY_SEPARATOR)
}

/// The engine's directory: every extension on [`PBX`] for its person.
pub fn directory(extensions: &[Extension]) -> Result<Directory, Problems> {
    let mut directory = Directory::new();
    let mut problems = Problems::default();
    for ext in extensions {
        if let Err(e) = directory.add(PBX, &ext.extension, ext.user()) {
            problems.push(Problem::plain(format!("{}: {e}", ext.origin)));
        }
    }
    problems.into_result(directory)
}

/// [`directory`], with each person's Teams address too: `(TEAMS, user)`
/// for every person (by [`Extension::user`]), for when the Teams source
/// runs ([`crate::teams_source`]).
pub fn directory_with_teams(extensions: &[Extension]) -> Result<Directory, Problems> {
    let mut directory = directory(extensions)?;
    let mut problems = Problems::default();
    for (user, entries) in group_by_person(extensions) {
        if let Err(e) = directory.add(TEAMS, &user, user.as_str()) {
            let origin = entries.first().map_or("", |e| e.origin.as_str());
            problems.push(Problem::plain(format!("{origin}: {e}")));
        }
    }
    problems.into_result(directory)
}

/// Adds each extension's desk phone, `(PHONE, extension)`, for its person:
/// for when the action-URL source runs ([`crate::action_url`]).
pub fn add_phones(directory: &mut Directory, extensions: &[Extension]) -> Result<(), Problems> {
    let mut problems = Problems::default();
    for ext in extensions {
        if let Err(e) = directory.add(crate::action_url::PHONE, &ext.extension, ext.user()) {
            problems.push(Problem::plain(format!("{}: {e}", ext.origin)));
        }
    }
    problems.into_result(())
}

/// A [`ViewFeed`] as the [`LineSource`] of the presence engine: each
/// person's combined line, under their key.
#[derive(Debug)]
pub struct PersonLines {
    feed: ViewFeed,
    keys: BTreeMap<PersonId, String>,
    queued: VecDeque<SourceEvent>,
    own_dnd: Option<crate::teams_to_pbx::OwnDnd>,
}

impl PersonLines {
    /// The feed's views keyed for the people of `extensions`.
    pub fn new(feed: ViewFeed, extensions: &[Extension]) -> Self {
        let keys = group_by_person(extensions)
            .into_iter()
            .map(|(user, entries)| (PersonId(user), person_key(&entries)))
            .collect();
        Self {
            feed,
            keys,
            queued: VecDeque::new(),
            own_dnd: None,
        }
    }

    /// Leaves out the DND that Teams → PBX set (`own`): it came from Teams,
    /// and must not go back to Teams as DoNotDisturb.
    pub fn without_own_dnd(mut self, own: crate::teams_to_pbx::OwnDnd) -> Self {
        self.own_dnd = Some(own);
        self
    }

    /// The person's DND as the Teams sink sees it.
    fn dnd(&self, view: &sip_blf_engine::View) -> bool {
        match &self.own_dnd {
            None => view.dnd,
            Some(own) => view
                .lines
                .iter()
                .any(|l| l.dnd == Some(true) && !own.contains(&l.address.address)),
        }
    }

    async fn next(&mut self) -> Option<SourceEvent> {
        // A feed hands over thousands of views at once after a burst; each
        // one handed on counts against the task's budget, so that the
        // driver takes a backlog in slices and the SIP socket's task gets
        // its turn in between (else NOTIFYs wait for their 200 OK and the
        // PBX retransmits them). Cancel-safe: nothing is taken before it.
        tokio::task::consume_budget().await;
        loop {
            if let Some(event) = self.queued.pop_front() {
                return Some(event);
            }
            for fed in self.feed.next().await? {
                let Some(key) = self.keys.get(&fed.view.person) else {
                    continue;
                };
                self.queued.push_back(SourceEvent::Line(LineChange {
                    extension: key.clone(),
                    line_state: blf_line_state(fed.view.line),
                    dnd: self.dnd(&fed.view),
                    received_at: Some(fed.observed_at),
                    stale: None,
                }));
            }
        }
    }
}

impl LineSource for PersonLines {
    fn next_event(&mut self) -> impl Future<Output = Option<SourceEvent>> + Send {
        self.next()
    }

    fn report(&self, report: FeedReport) {
        self.feed.report(report);
    }
}

/// BLF's name for an engine line state (the two enums match one to one).
pub fn blf_line_state(state: sip_blf_engine::LineState) -> blf::LineState {
    use sip_blf_engine::LineState as E;
    match state {
        E::Idle => blf::LineState::Idle,
        E::Ringing => blf::LineState::Ringing,
        E::Busy => blf::LineState::Busy,
        E::Hold => blf::LineState::Hold,
        E::Offline => blf::LineState::Offline,
        E::Unknown => blf::LineState::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(json: &str) -> Vec<Extension> {
        crate::extensions::parse_json(std::path::Path::new("extensions.json"), json).unwrap()
    }

    #[test]
    fn a_person_on_two_extensions_is_one_key_naming_both() {
        let exts = list(
            r#"[{"extension":"1001","email":"alice@contoso.com"},
                {"extension":"1003","email":"bob@contoso.com"},
                {"extension":"1002","email":"alice@contoso.com"}]"#,
        );
        let people = group_by_person(&exts);
        let keys: Vec<(String, String)> = people
            .iter()
            .map(|(user, entries)| (user.clone(), person_key(entries)))
            .collect();
        assert_eq!(
            keys,
            [
                ("alice@contoso.com".to_owned(), "1001, 1002".to_owned()),
                ("bob@contoso.com".to_owned(), "1003".to_owned()),
            ]
        );
        assert_eq!(
            extensions_of_key("1001, 1002").collect::<Vec<_>>(),
            ["1001", "1002"]
        );
        let d = directory(&exts).unwrap();
        assert_eq!(d.people().count(), 2);
        assert_eq!(d.len(), 3, "three addresses");
    }

    #[test]
    fn with_teams_every_person_has_a_teams_address_under_their_key() {
        let exts = list(
            r#"[{"extension":"1001","email":"alice@contoso.com"},
                {"extension":"1002","email":"alice@contoso.com"},
                {"extension":"1003","email":"bob@contoso.com",
                 "object_id":"bbbbbbbb-0000-4000-8000-000000000002"}]"#,
        );
        let d = directory_with_teams(&exts).unwrap();
        assert_eq!(d.len(), 5, "three phones, two Teams addresses");
        let alice = sip_blf_engine::AddressKey::new(TEAMS, "alice@contoso.com");
        assert_eq!(
            d.person_of(&alice),
            Some(&PersonId::from("alice@contoso.com"))
        );
        let bob = sip_blf_engine::AddressKey::new(TEAMS, "bbbbbbbb-0000-4000-8000-000000000002");
        assert_eq!(
            d.person_of(&bob),
            Some(&PersonId::from("bbbbbbbb-0000-4000-8000-000000000002"))
        );
    }

    #[test]
    fn every_engine_state_has_the_blf_state_of_the_same_name() {
        for state in sip_blf_engine::LineState::ALL {
            assert_eq!(blf_line_state(state).as_str(), state.as_str());
        }
    }
}
