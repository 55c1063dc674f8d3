use std::time::Instant;

use sip_blf_engine::{Directory, Fact, LineState, Observation, Observed, Views};

use super::*;

const ALICE: &str = "alice@contoso.com";

struct World {
    views: Views,
    reverse: Reverse,
    own: OwnDnd,
    view: Option<View>,
}

impl World {
    fn new() -> World {
        let mut directory = Directory::new();
        directory.add("pbx", "1001", ALICE).unwrap();
        directory.add("teams", ALICE, ALICE).unwrap();
        let own = OwnDnd::default();
        let reverse = Reverse::new(
            TeamsRules::default(),
            own.clone(),
            [(PersonId(ALICE.into()), vec!["1001".to_string()])],
        );
        World {
            views: Views::new(directory),
            reverse,
            own,
            view: None,
        }
    }

    fn observe(&mut self, system: &str, address: &str, fact: Fact) {
        let o = Observation::new(system, address, fact, Instant::now());
        if let Observed::Changed(v) = self.views.observe(&o) {
            self.view = Some(v);
        }
    }

    /// Teams reads `a/b`; what the reverse sync does, with `held` our session's pair.
    fn teams(&mut self, a: &str, b: &str, held: Option<(&str, &str)>) -> Option<PbxAction> {
        self.observe(
            "teams",
            ALICE,
            Fact::Presence(TeamsPresence {
                availability: a.into(),
                activity: b.into(),
            }),
        );
        self.decide(held)
    }

    fn decide(&mut self, held: Option<(&str, &str)>) -> Option<PbxAction> {
        let view = self.view.clone().unwrap();
        self.reverse.view(&view, |_, p| {
            held.is_some_and(|(a, b)| p.availability == a && p.activity == b)
        })
    }

    fn finish(&mut self, action: &PbxAction) -> Option<PbxAction> {
        self.reverse.done(action, true, |_, _| false)
    }
}

#[test]
fn teams_dnd_turns_the_pbx_dnd_on_then_off_and_marks_it_ours() {
    let mut w = World::new();
    w.observe("pbx", "1001", Fact::line(LineState::Idle));
    let on = w.teams("DoNotDisturb", "DoNotDisturb", None).unwrap();
    assert!(on.dnd && on.extensions == ["1001"]);
    assert!(w.own.contains("1001"), "marked before the PBX answers");
    assert_eq!(w.finish(&on), None);
    // The PBX reports the DND we set: nothing more to do.
    w.observe("pbx", "1001", Fact::Dnd(true));
    assert_eq!(w.decide(None), None);
    let off = w.teams("Available", "Available", None).unwrap();
    assert!(!off.dnd);
    assert_eq!(w.finish(&off), None);
    assert!(!w.own.contains("1001"));
}

#[test]
fn our_own_session_causes_nothing() {
    let mut w = World::new();
    w.observe("pbx", "1001", Fact::line(LineState::Busy));
    // A desk-phone call: we set Busy/InACall; reading it back is not a Teams call.
    assert_eq!(w.teams("Busy", "InACall", Some(("Busy", "InACall"))), None);
    // DND set on the phone, shown in Teams by us: nothing goes back.
    w.observe("pbx", "1001", Fact::Dnd(true));
    assert_eq!(
        w.teams(
            "DoNotDisturb",
            "Presenting",
            Some(("DoNotDisturb", "Presenting"))
        ),
        None
    );
    assert!(w.own.all().is_empty());
}

#[test]
fn a_dnd_the_user_set_on_the_phone_stays() {
    let mut w = World::new();
    w.observe("pbx", "1001", Fact::Dnd(true));
    // Teams DND while the phone's own DND is on: already there, not ours.
    assert_eq!(w.teams("DoNotDisturb", "DoNotDisturb", None), None);
    // Teams back to available: the phone's DND is not ours to clear.
    assert_eq!(w.teams("Available", "Available", None), None);
}

#[test]
fn a_teams_call_while_the_desk_phone_is_idle_is_dnd_until_it_ends() {
    let mut w = World::new();
    w.observe("pbx", "1001", Fact::line(LineState::Idle));
    let on = w.teams("Busy", "InACall", None).unwrap();
    assert!(on.dnd);
    // The view moves while the PBX is asked: decided again when it is done.
    assert_eq!(w.teams("Available", "Available", None), None);
    let off = w.finish(&on).unwrap();
    assert!(!off.dnd, "the call ended meanwhile");
    assert_eq!(w.finish(&off), None);
}

#[test]
fn a_failed_dnd_is_not_ours_and_the_stop_releases_what_is() {
    let mut w = World::new();
    let on = w.teams("Busy", "InAMeeting", None).unwrap();
    assert_eq!(
        w.reverse.done(&on, false, |_, _| false),
        None,
        "no retry at once"
    );
    assert!(!w.own.contains("1001"));
    let person = PersonId(ALICE.into());
    assert_eq!(w.reverse.retry(&person, |_, _| false), Some(on.clone()));
    assert!(w.own.contains("1001"));
    assert_eq!(w.finish(&on), None);
    let released = w.reverse.release_all();
    assert_eq!(released.len(), 1);
    assert!(!released[0].dnd && released[0].because.is_none());
    assert!(w.reverse.release_all().is_empty());
}

#[test]
fn a_dnd_of_ours_from_before_a_restart_is_still_ours() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pbx-dnd.json");
    let own = OwnDnd::persisted(path.clone());
    own.set(&["1001".to_string()], true);
    drop(own);
    // The service restarts.
    let own = OwnDnd::persisted(path.clone());
    assert!(own.contains("1001"));
    let mut w = World::new();
    w.own = own.clone();
    w.reverse = Reverse::new(
        TeamsRules::default(),
        own,
        [(PersonId(ALICE.into()), vec!["1001".to_string()])],
    );
    w.observe("pbx", "1001", Fact::Dnd(true));
    let off = w.teams("Available", "Available", None).unwrap();
    assert!(!off.dnd, "the DND set before the restart comes off");
    w.finish(&off);
    assert!(OwnDnd::persisted(path.clone()).all().is_empty());
    std::fs::write(&path, "not json").unwrap();
    assert!(OwnDnd::persisted(path).all().is_empty());
}
