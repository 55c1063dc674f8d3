//! Device and extension states, and hint aggregation, as `main/devicestate.c`
//! and `main/pbx.c` compute them.
//!
//! Written from the facts file apart from the `ami` crate's states on purpose: the
//! emulator is the oracle the client is tested against, and a shared
//! mistake would pass unseen.

use std::fmt;

/// A device state (`enum ast_device_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceState {
    /// `UNKNOWN` (0).
    Unknown,
    /// `NOT_INUSE` (1).
    NotInUse,
    /// `INUSE` (2).
    InUse,
    /// `BUSY` (3).
    Busy,
    /// `INVALID` (4).
    Invalid,
    /// `UNAVAILABLE` (5).
    Unavailable,
    /// `RINGING` (6).
    Ringing,
    /// `RINGINUSE` (7).
    RingInUse,
    /// `ONHOLD` (8).
    OnHold,
}

impl DeviceState {
    /// Every state, in enum order.
    pub const ALL: [DeviceState; 9] = [
        Self::Unknown,
        Self::NotInUse,
        Self::InUse,
        Self::Busy,
        Self::Invalid,
        Self::Unavailable,
        Self::Ringing,
        Self::RingInUse,
        Self::OnHold,
    ];

    /// The AMI `State:` string (`ast_devstate_str`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "UNKNOWN",
            Self::NotInUse => "NOT_INUSE",
            Self::InUse => "INUSE",
            Self::Busy => "BUSY",
            Self::Invalid => "INVALID",
            Self::Unavailable => "UNAVAILABLE",
            Self::Ringing => "RINGING",
            Self::RingInUse => "RINGINUSE",
            Self::OnHold => "ONHOLD",
        }
    }

    /// The enum number (as in `QueueMemberStatus`'s `Status`).
    pub fn number(self) -> i32 {
        match self {
            Self::Unknown => 0,
            Self::NotInUse => 1,
            Self::InUse => 2,
            Self::Busy => 3,
            Self::Invalid => 4,
            Self::Unavailable => 5,
            Self::Ringing => 6,
            Self::RingInUse => 7,
            Self::OnHold => 8,
        }
    }

    /// `ast_devstate_val`: a state name, ASCII case ignored; anything else is `Unknown`.
    pub fn parse(name: &str) -> Self {
        Self::ALL
            .into_iter()
            .skip(1)
            .find(|s| s.as_str().eq_ignore_ascii_case(name))
            .unwrap_or(Self::Unknown)
    }

    /// The rank used by aggregation (`state_order[]`).
    fn rank(self) -> u8 {
        match self {
            Self::Invalid => 0,
            Self::Unknown => 1,
            Self::Unavailable => 2,
            Self::NotInUse => 3,
            Self::OnHold => 4,
            Self::Ringing => 5,
            Self::InUse => 6,
            Self::Busy => 7,
            Self::RingInUse => 8,
        }
    }

    /// `ast_devstate_to_extenstate`: the hint `Status` number for this state.
    pub fn to_extension_status(self) -> i32 {
        match self {
            Self::OnHold => 16,
            Self::Busy => 2,
            Self::Unknown | Self::NotInUse => 0,
            Self::Unavailable | Self::Invalid => 4,
            Self::RingInUse => 9,
            Self::Ringing => 8,
            Self::InUse => 1,
        }
    }
}

impl fmt::Display for DeviceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `ast_devstate_aggregate_add` over several devices (a hint `A&B`): starts at
/// `INVALID`, keeps the highest rank; RINGING with INUSE, ONHOLD or BUSY is
/// `RINGINUSE`.
pub fn aggregate(states: impl IntoIterator<Item = DeviceState>) -> DeviceState {
    let mut agg = DeviceState::Invalid;
    let (mut ringing, mut inuse) = (false, false);
    for state in states {
        match state {
            DeviceState::Ringing => ringing = true,
            DeviceState::InUse | DeviceState::OnHold | DeviceState::Busy => inuse = true,
            _ => {}
        }
        if ringing && inuse {
            agg = DeviceState::RingInUse;
        } else if state.rank() > agg.rank() {
            agg = state;
        }
    }
    agg
}

/// The `StatusText` of a hint `Status` (`extension_states[]`); `Unknown` for
/// any other value.
pub fn status_text(status: i32) -> &'static str {
    match status {
        0 => "Idle",
        1 => "InUse",
        2 => "Busy",
        4 => "Unavailable",
        8 => "Ringing",
        9 => "InUse&Ringing",
        16 => "Hold",
        17 => "InUse&Hold",
        _ => "Unknown",
    }
}

/// The devices of a hint: the part before the first `,` (the rest is the
/// presence provider), split on `&`.
pub fn hint_devices(hint: &str) -> Vec<String> {
    let devices = hint.split(',').next().unwrap_or_default();
    devices
        .split('&')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect()
}

/// A channel state (`enum ast_channel_state`), with `ChannelStateDesc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    /// 0 `Down`.
    Down,
    /// 4 `Ring`: the caller's leg, hearing ringback.
    Ring,
    /// 5 `Ringing`: the device is alerting.
    Ringing,
    /// 6 `Up`.
    Up,
}

impl ChannelState {
    /// `ChannelState:` number.
    pub fn number(self) -> u8 {
        match self {
            Self::Down => 0,
            Self::Ring => 4,
            Self::Ringing => 5,
            Self::Up => 6,
        }
    }

    /// `ChannelStateDesc:` (`ast_state2str`).
    pub fn desc(self) -> &'static str {
        match self {
            Self::Down => "Down",
            Self::Ring => "Ring",
            Self::Ringing => "Ringing",
            Self::Up => "Up",
        }
    }

    /// `ast_state_chan2dev`.
    pub fn device_state(self) -> DeviceState {
        match self {
            Self::Down => DeviceState::NotInUse,
            Self::Ring | Self::Up => DeviceState::InUse,
            Self::Ringing => DeviceState::Ringing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeviceState::*;

    #[test]
    fn aggregation_table() {
        assert_eq!(aggregate([]), Invalid);
        assert_eq!(aggregate([NotInUse, Unknown]), NotInUse);
        assert_eq!(aggregate([Unavailable, Unknown]), Unavailable);
        assert_eq!(aggregate([NotInUse, Busy]), Busy);
        assert_eq!(aggregate([Unavailable, Busy]), Busy);
        assert_eq!(aggregate([Ringing, Busy]), RingInUse);
        assert_eq!(aggregate([InUse, OnHold]), InUse);
        assert_eq!(aggregate([Ringing, OnHold]), RingInUse);
        assert_eq!(aggregate([Ringing, Unavailable]), Ringing);
        assert_eq!(aggregate([Invalid, Invalid]), Invalid);
    }

    #[test]
    fn mapping() {
        assert_eq!(Unknown.to_extension_status(), 0);
        assert_eq!(RingInUse.to_extension_status(), 9);
        assert_eq!(status_text(9), "InUse&Ringing");
        assert_eq!(status_text(3), "Unknown");
        assert_eq!(DeviceState::parse("busy"), Busy);
        assert_eq!(DeviceState::parse("UNKNOWN"), Unknown);
        assert_eq!(DeviceState::parse("garbage"), Unknown);
        assert_eq!(
            hint_devices("PJSIP/1001&Custom:DND1001,CustomPresence:1001"),
            ["PJSIP/1001", "Custom:DND1001"]
        );
    }
}
