//! Line state → presence action mapping, defaults and file errors.

use super::*;

#[test]
fn defaults() {
    let m = Mapping::default();
    assert_eq!(
        m.action(LineState::Busy),
        PresenceAction::Set(PresenceState::BusyInACall)
    );
    assert_eq!(
        m.action(LineState::Hold),
        PresenceAction::Set(PresenceState::BusyInACall)
    );
    assert_eq!(m.action(LineState::Idle), PresenceAction::Clear);
    assert_eq!(m.action(LineState::Offline), PresenceAction::Clear);
    assert_eq!(m.action(LineState::Ringing), PresenceAction::Keep);
    assert_eq!(m.action(LineState::Unknown), PresenceAction::Keep);
}

#[test]
fn example_file_equals_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/mapping.example.toml");
    assert_eq!(Mapping::load(&path).unwrap(), Mapping::default());
}

#[test]
fn file_overrides_and_missing_keys_keep_defaults() {
    let m = Mapping::from_toml_str(
        "# comment\nringing = \"Busy/InAConferenceCall\"\nhold = \"DoNotDisturb/Presenting\"\nidle = \"Available/Available\"\noffline = \"Away/Away\"\nunknown = \"clear\"\n",
    )
    .unwrap();
    assert_eq!(
        m.action(LineState::Ringing),
        PresenceAction::Set(PresenceState::BusyInAConferenceCall)
    );
    assert_eq!(
        m.action(LineState::Hold),
        PresenceAction::Set(PresenceState::DoNotDisturbPresenting)
    );
    assert_eq!(
        m.action(LineState::Idle),
        PresenceAction::Set(PresenceState::Available)
    );
    assert_eq!(
        m.action(LineState::Offline),
        PresenceAction::Set(PresenceState::Away)
    );
    assert_eq!(m.action(LineState::Unknown), PresenceAction::Clear);
    assert_eq!(
        m.action(LineState::Busy),
        PresenceAction::Set(PresenceState::BusyInACall)
    );
    assert_eq!(Mapping::from_toml_str("").unwrap(), Mapping::default());
}

fn invalid(text: &str) -> (u32, u32, String) {
    match Mapping::from_toml_str(text).unwrap_err() {
        e @ MappingError::Invalid { line, column, .. } => (line, column, e.to_string()),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn invalid_pair_names_line_and_lists_valid_pairs() {
    let (line, column, msg) = invalid("busy = \"Busy/InACall\"\n\nhold = \"Busy/OnHold\"\n");
    assert_eq!((line, column), (3, 8));
    assert!(msg.contains("line 3, column 8"), "{msg}");
    assert!(msg.contains("\"Busy/OnHold\""), "{msg}");
    assert!(msg.contains("hold"), "{msg}");
    for valid in [
        "Available/Available",
        "Busy/InACall",
        "Busy/InAConferenceCall",
        "Away/Away",
        "DoNotDisturb/Presenting",
        "clear",
        "keep",
    ] {
        assert!(msg.contains(valid), "{valid} missing in {msg}");
    }
}

#[test]
fn unknown_key_and_syntax_errors_name_the_line() {
    let (line, _, msg) = invalid("busy = \"keep\"\ntalking = \"keep\"\n");
    assert_eq!(line, 2);
    assert!(
        msg.contains("talking") && msg.contains("Busy/InACall"),
        "{msg}"
    );

    let (line, _, msg) = invalid("busy = \"keep\"\nidle = \n");
    assert_eq!(line, 2, "{msg}");

    let (line, _, msg) = invalid("idle = 3\n");
    assert_eq!(line, 1, "{msg}");
}

#[test]
fn load_reports_path_and_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mapping.toml");
    std::fs::write(&path, "ringing = \"Away\"\n").unwrap();
    let msg = Mapping::load(&path).unwrap_err().to_string();
    assert!(
        msg.contains("mapping.toml") && msg.contains("line 1"),
        "{msg}"
    );
    let missing = Mapping::load(dir.path().join("nope.toml")).unwrap_err();
    assert!(matches!(missing, MappingError::Io { .. }), "{missing}");
}

#[test]
fn actions_parse_and_display() {
    assert_eq!(PresenceAction::parse(" Keep "), Some(PresenceAction::Keep));
    assert_eq!(PresenceAction::parse("CLEAR"), Some(PresenceAction::Clear));
    assert_eq!(
        PresenceAction::parse("busy/inacall"),
        Some(PresenceAction::Set(PresenceState::BusyInACall))
    );
    assert_eq!(PresenceAction::parse("Busy"), None);
    assert_eq!(
        PresenceAction::Set(PresenceState::Away).to_string(),
        "Away/Away"
    );
    let json = serde_json::to_value(PresenceAction::Set(PresenceState::BusyInACall)).unwrap();
    assert_eq!(json["action"], "set");
    assert_eq!(json["pair"], "Busy/InACall");
    let values: Vec<String> = valid_values().map(|v| v.to_string()).collect();
    assert_eq!(values.len(), 7);
    assert_eq!(values[5..], ["clear", "keep"]);
}

#[test]
fn dnd_wins_over_every_line_state_unless_kept() {
    let m = Mapping::default();
    let dnd = PresenceAction::Set(PresenceState::DoNotDisturbPresenting);
    assert_eq!(m.dnd, dnd);
    for state in [
        LineState::Idle,
        LineState::Ringing,
        LineState::Busy,
        LineState::Hold,
        LineState::Offline,
        LineState::Unknown,
    ] {
        assert_eq!(m.action_for(state, true), dnd, "{state}");
        assert_eq!(m.action_for(state, false), m.action(state), "{state}");
    }

    let kept = Mapping::from_toml_str("dnd = \"keep\"\n").unwrap();
    assert_eq!(kept.dnd, PresenceAction::Keep);
    assert_eq!(
        kept.action_for(LineState::Busy, true),
        PresenceAction::Set(PresenceState::BusyInACall)
    );
    assert_eq!(
        kept.action_for(LineState::Idle, true),
        PresenceAction::Clear
    );
}

#[test]
fn dnd_key_parses_a_pair_or_clear() {
    let m = Mapping::from_toml_str("dnd = \"Away/Away\"\n").unwrap();
    assert_eq!(m.dnd, PresenceAction::Set(PresenceState::Away));
    assert_eq!(
        Mapping {
            dnd: PresenceAction::Set(PresenceState::DoNotDisturbPresenting),
            ..m
        },
        Mapping::default()
    );
    let m = Mapping::from_toml_str("dnd = \"clear\"\n").unwrap();
    assert_eq!(m.action_for(LineState::Busy, true), PresenceAction::Clear);
}

#[test]
fn invalid_dnd_value_names_the_key() {
    let (line, column, msg) = invalid("busy = \"keep\"\ndnd = \"DoNotDisturb\"\n");
    assert_eq!((line, column), (2, 7));
    assert!(msg.contains("for dnd"), "{msg}");
    assert!(msg.contains("DoNotDisturb/Presenting"), "{msg}");
    // A misspelt key lists dnd among the keys.
    let (_, _, msg) = invalid("do_not_disturb = \"keep\"\n");
    assert!(msg.contains("unknown, dnd"), "{msg}");
}
