//! Asterisk's state enumerations as AMI reports them: device states
//! (`DeviceStateChange`'s `State:`), extension (hint) states
//! (`ExtensionStatus`'s `Status:`), hints, and how Asterisk aggregates the
//! devices of a hint (`ast_devstate_aggregate_add`, `ast_devstate_to_extenstate`
//! in `main/devicestate.c`). Pure functions: no I/O.

use std::fmt;

/// A device's state (`enum ast_device_state`), by its AMI name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceState {
    /// `UNKNOWN` (0), also any name Asterisk does not know.
    Unknown,
    /// `NOT_INUSE` (1).
    NotInUse,
    /// `INUSE` (2).
    InUse,
    /// `BUSY` (3).
    Busy,
    /// `INVALID` (4): no such device.
    Invalid,
    /// `UNAVAILABLE` (5): e.g. no registered contact.
    Unavailable,
    /// `RINGING` (6).
    Ringing,
    /// `RINGINUSE` (7).
    RingInUse,
    /// `ONHOLD` (8).
    OnHold,
}

impl DeviceState {
    /// Every state, in Asterisk's numeric order (0 to 8).
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

    /// The AMI name (`NOT_INUSE`, `RINGINUSE`, ...).
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

    /// Parses a name as `ast_devstate_val` does: ASCII case ignored, any
    /// other text is `Unknown`.
    pub fn from_name(name: &str) -> Self {
        let name = name.trim();
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name))
            .unwrap_or(Self::Unknown)
    }

    /// The state of number `n` (`QueueMemberStatus`'s `Status:`), if 0 to 8.
    pub fn from_number(n: i64) -> Option<Self> {
        usize::try_from(n)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// The rank Asterisk aggregates by: the highest wins.
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

    /// The extension state a hint with this aggregate device state reports
    /// (`ast_devstate_to_extenstate`).
    pub fn to_extension_state(self) -> ExtensionState {
        match self {
            Self::OnHold => ExtensionState::Hold,
            Self::Busy => ExtensionState::Busy,
            Self::Unknown | Self::NotInUse => ExtensionState::Idle,
            Self::Unavailable | Self::Invalid => ExtensionState::Unavailable,
            Self::RingInUse => ExtensionState::InUseRinging,
            Self::Ringing => ExtensionState::Ringing,
            Self::InUse => ExtensionState::InUse,
        }
    }
}

impl fmt::Display for DeviceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The aggregate of several devices' states, as Asterisk computes a hint
/// `A&B`: the highest rank, except that ringing together with a device in
/// use, on hold or busy is `RINGINUSE`. No device at all is `INVALID`.
pub fn aggregate(states: impl IntoIterator<Item = DeviceState>) -> DeviceState {
    let (mut best, mut ringing, mut in_use) = (DeviceState::Invalid, false, false);
    for state in states {
        ringing |= state == DeviceState::Ringing;
        in_use |= matches!(
            state,
            DeviceState::InUse | DeviceState::OnHold | DeviceState::Busy
        );
        if state.rank() > best.rank() {
            best = state;
        }
    }
    if ringing && in_use {
        DeviceState::RingInUse
    } else {
        best
    }
}

/// An extension (hint) state: `ExtensionStatus`'s `Status:` number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtensionState {
    /// -2: the extension was removed.
    Removed,
    /// -1: the hint was removed, or the extension has none.
    NoHint,
    /// 0 `Idle`.
    Idle,
    /// 1 `InUse`.
    InUse,
    /// 2 `Busy`.
    Busy,
    /// 4 `Unavailable`.
    Unavailable,
    /// 8 `Ringing`.
    Ringing,
    /// 9 `InUse&Ringing`.
    InUseRinging,
    /// 16 `Hold`.
    Hold,
    /// 17 `InUse&Hold` (defined, but no Asterisk code path reports it).
    InUseHold,
    /// Any other number (`StatusText: Unknown`).
    Other(i64),
}

impl ExtensionState {
    /// The state of a `Status:` number.
    pub fn from_code(code: i64) -> Self {
        match code {
            -2 => Self::Removed,
            -1 => Self::NoHint,
            0 => Self::Idle,
            1 => Self::InUse,
            2 => Self::Busy,
            4 => Self::Unavailable,
            8 => Self::Ringing,
            9 => Self::InUseRinging,
            16 => Self::Hold,
            17 => Self::InUseHold,
            n => Self::Other(n),
        }
    }

    /// Parses a `Status:` field (surrounding blanks ignored).
    pub fn parse(status: &str) -> Option<Self> {
        status.trim().parse::<i64>().ok().map(Self::from_code)
    }

    /// The `Status:` number.
    pub fn code(self) -> i64 {
        match self {
            Self::Removed => -2,
            Self::NoHint => -1,
            Self::Idle => 0,
            Self::InUse => 1,
            Self::Busy => 2,
            Self::Unavailable => 4,
            Self::Ringing => 8,
            Self::InUseRinging => 9,
            Self::Hold => 16,
            Self::InUseHold => 17,
            Self::Other(n) => n,
        }
    }

    /// Asterisk's `StatusText` (`InUse&Ringing` for 9; there is no `RingInUse`).
    pub fn text(self) -> &'static str {
        match self {
            Self::Idle => "Idle",
            Self::InUse => "InUse",
            Self::Busy => "Busy",
            Self::Unavailable => "Unavailable",
            Self::Ringing => "Ringing",
            Self::InUseRinging => "InUse&Ringing",
            Self::Hold => "Hold",
            Self::InUseHold => "InUse&Hold",
            Self::Removed | Self::NoHint | Self::Other(_) => "Unknown",
        }
    }
}

/// A hint as `ExtensionStatus` shows it: devices joined by `&`, then
/// optionally `,` and a presence provider
/// (`PJSIP/1001&Custom:DND1001,CustomPresence:1001`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hint {
    /// The devices, in order (`PJSIP/1001`, `Custom:DND1001`).
    pub devices: Vec<String>,
    /// The presence provider (`CustomPresence:1001`), if any.
    pub presence: Option<String>,
}

impl Hint {
    /// Splits a hint string; blanks around parts are dropped, empty parts
    /// skipped.
    pub fn parse(hint: &str) -> Self {
        let (devices, presence) = match hint.split_once(',') {
            Some((d, p)) => (d, Some(p.trim()).filter(|p| !p.is_empty())),
            None => (hint, None),
        };
        Self {
            devices: devices
                .split('&')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_owned)
                .collect(),
            presence: presence.map(str::to_owned),
        }
    }

    /// Whether `device` is one of the hint's devices (ASCII case ignored,
    /// as Asterisk compares technology names).
    pub fn has_device(&self, device: &str) -> bool {
        self.devices.iter().any(|d| d.eq_ignore_ascii_case(device))
    }
}

/// The device a channel belongs to: its name without the `-<sequence>`
/// suffix (`PJSIP/1001-00000004` → `PJSIP/1001`).
pub fn channel_device(channel: &str) -> &str {
    match channel.rfind('-') {
        Some(at) if channel[..at].contains('/') => &channel[..at],
        _ => channel,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeviceState as D;

    #[test]
    fn names_and_numbers_round_trip() {
        for (n, state) in DeviceState::ALL.into_iter().enumerate() {
            assert_eq!(DeviceState::from_name(state.as_str()), state);
            assert_eq!(DeviceState::from_number(n as i64), Some(state));
        }
        assert_eq!(DeviceState::from_name(" not_inuse "), D::NotInUse);
        assert_eq!(DeviceState::from_name("garbage"), D::Unknown);
        assert_eq!(DeviceState::from_number(9), None);
        assert_eq!(DeviceState::from_number(-1), None);
        for code in [-2, -1, 0, 1, 2, 4, 8, 9, 16, 17, 3, 99] {
            assert_eq!(ExtensionState::from_code(code).code(), code);
        }
        assert_eq!(
            ExtensionState::parse(" 9"),
            Some(ExtensionState::InUseRinging)
        );
        assert_eq!(ExtensionState::InUseRinging.text(), "InUse&Ringing");
        assert_eq!(ExtensionState::parse("x"), None);
    }

    #[test]
    fn aggregation_follows_asterisk() {
        // FreePBX DND on: Custom:DND BUSY outranks an idle or offline phone.
        assert_eq!(aggregate([D::NotInUse, D::Busy]), D::Busy);
        assert_eq!(aggregate([D::Unavailable, D::Busy]), D::Busy);
        // DND off (UNAVAILABLE): the phone's state shows.
        assert_eq!(aggregate([D::NotInUse, D::Unavailable]), D::NotInUse);
        assert_eq!(aggregate([D::InUse, D::Unavailable]), D::InUse);
        // Ringing with a device in use, on hold or busy.
        assert_eq!(aggregate([D::Ringing, D::Busy]), D::RingInUse);
        assert_eq!(aggregate([D::OnHold, D::Ringing]), D::RingInUse);
        assert_eq!(aggregate([D::InUse, D::OnHold]), D::InUse);
        assert_eq!(aggregate([]), D::Invalid);
        assert_eq!(
            aggregate([D::Busy]).to_extension_state(),
            ExtensionState::Busy
        );
        assert_eq!(D::Unknown.to_extension_state(), ExtensionState::Idle);
        assert_eq!(D::Invalid.to_extension_state(), ExtensionState::Unavailable);
    }

    #[test]
    fn hints_and_channels() {
        let h = Hint::parse("PJSIP/1001&Custom:DND1001,CustomPresence:1001");
        assert_eq!(h.devices, ["PJSIP/1001", "Custom:DND1001"]);
        assert_eq!(h.presence.as_deref(), Some("CustomPresence:1001"));
        assert!(h.has_device("custom:dnd1001"));
        assert_eq!(Hint::parse("").devices, Vec::<String>::new());
        assert_eq!(channel_device("PJSIP/1001-00000004"), "PJSIP/1001");
        assert_eq!(channel_device("PJSIP/trunk-a-0000000a"), "PJSIP/trunk-a");
        assert_eq!(
            channel_device("Local/1001@from-internal-0001;1"),
            "Local/1001@from-internal"
        );
        assert_eq!(channel_device("no-slash"), "no-slash");
    }
}
