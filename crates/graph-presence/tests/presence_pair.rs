//! The five presence pairs: Graph's spelling, lenient parsing, and the
//! conversion to and from the client's `PresenceState`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use graph_presence::{PresencePair, PresenceState};

#[test]
fn exactly_five_pairs_with_graph_spelling() {
    let pairs: Vec<String> = PresencePair::ALL.iter().map(ToString::to_string).collect();
    assert_eq!(
        pairs,
        [
            "Available/Available",
            "Busy/InACall",
            "Busy/InAConferenceCall",
            "Away/Away",
            "DoNotDisturb/Presenting"
        ]
    );
    assert_eq!(PresencePair::BusyInACall.availability(), "Busy");
    assert_eq!(PresencePair::BusyInACall.activity(), "InACall");
    assert_eq!(PresencePair::from_parts("Busy", "Away"), None);
    assert_eq!(
        PresencePair::from_parts("Away", "Away"),
        Some(PresencePair::AwayAway)
    );
    assert_eq!(
        PresencePair::from_parts(" busy ", "inacall"),
        Some(PresencePair::BusyInACall)
    );
}

#[test]
fn pairs_and_states_convert_both_ways_with_the_same_values() {
    for (pair, state) in PresencePair::ALL.into_iter().zip(PresenceState::ALL) {
        assert_eq!(PresenceState::from(pair), state);
        assert_eq!(PresencePair::from(state), pair);
        assert_eq!(pair.availability(), state.availability());
        assert_eq!(pair.activity(), state.activity());
        assert_eq!(pair.to_string(), state.to_string());
    }
}

#[test]
fn serialises_as_the_variant_name() {
    assert_eq!(
        serde_json::to_value(PresencePair::AvailableAvailable).unwrap(),
        "AvailableAvailable"
    );
}
