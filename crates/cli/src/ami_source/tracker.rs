//! The AMI source's sans-IO core: Asterisk's hints, device states, astdb
//! DND flags and channels in; each watched extension's facts out, only when
//! they change. No socket, no clock: times come in as arguments.
//!
//! How Asterisk's states become line states (`ExtensionStatus`'s `Status`):
//!
//! | Asterisk | line state |
//! |---|---|
//! | 0 `Idle` | idle |
//! | 1 `InUse`, 17 `InUse&Hold` | busy |
//! | 2 `Busy` | busy, or the other devices' state when the busy device is the DND device (below) |
//! | 4 `Unavailable` | offline |
//! | 8 `Ringing`, 9 `InUse&Ringing` | ringing |
//! | 16 `Hold` | hold |
//! | -1 / -2 (no hint, removed), other | unknown, with a notice naming the extension |
//!
//! DND is not a call. With FreePBX-style hints (`PJSIP/1001&Custom:DND1001`)
//! DND sets the custom device `BUSY`, which outranks every phone state, so
//! the hint says `Busy` whether the phone is idle or in a call. The tracker
//! reads DND from that device's state (`DeviceStateChange`, live) or, when
//! the PBX has no such device, from astdb (`DND/<ext>`, read at each full
//! state), reports it as a [`Fact::Dnd`], and takes the line state from the
//! hint's other devices as Asterisk aggregates them; if their states are not
//! known, a `Busy` hint with DND on reads idle (the DND device explains it).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use ami::{aggregate, channel_device};
use ami::{DeviceState, Event, ExtensionState, Hint};
use sip_blf_engine::{Direction, Fact, LineState, Observation, Party, QueueMember};

/// A new connection's full state, as the PBX listed it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lists<'a> {
    /// `ExtensionStateList`'s items.
    pub hints: &'a [Event],
    /// `DeviceStateList`'s items.
    pub devices: &'a [Event],
    /// astdb's DND flag of each extension read (`(extension, on)`).
    pub dnd_flags: &'a [(String, bool)],
    /// `QueueStatus`'s `QueueMember` items.
    pub members: &'a [Event],
}

/// Where DND lives on the PBX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DndScheme {
    /// The custom device whose `BUSY` means DND, before the extension
    /// (`Custom:DND` → `Custom:DND1001`).
    pub device_prefix: String,
    /// The astdb family whose key `<ext>` flags DND (`DND`, FreePBX), if any.
    pub db_family: Option<String>,
}

impl DndScheme {
    /// FreePBX: astdb `DND/<ext>` = `YES`, and `Custom:DND<ext>` `BUSY`.
    pub fn freepbx() -> Self {
        Self {
            device_prefix: "Custom:DND".into(),
            db_family: Some("DND".into()),
        }
    }

    /// Plain Asterisk: only the custom device state `Custom:DND<ext>`.
    pub fn device_only() -> Self {
        Self {
            device_prefix: "Custom:DND".into(),
            db_family: None,
        }
    }

    /// The DND device of `extension`.
    pub fn device(&self, extension: &str) -> String {
        format!("{}{extension}", self.device_prefix)
    }
}

/// Something about the PBX's configuration the user should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmiNotice {
    /// A listed extension has no hint: AMI reports nothing for it.
    NoHint {
        /// The extension.
        extension: String,
    },
    /// A listed extension's hint is gone (removed from the dialplan).
    HintRemoved {
        /// The extension.
        extension: String,
    },
}

impl std::fmt::Display for AmiNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoHint { extension } => write!(
                f,
                "extension {extension} has no hint on the PBX: AMI reports no state for it \
                 (add `exten => {extension},hint,PJSIP/{extension}` to its context)"
            ),
            Self::HintRemoved { extension } => write!(
                f,
                "extension {extension}'s hint disappeared from the PBX: its line is unknown"
            ),
        }
    }
}

/// What one extension last reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Facts {
    line: Option<(LineState, Option<Party>, Option<Direction>)>,
    dnd: Option<bool>,
    registered: Option<bool>,
    /// Queue memberships, by queue name (empty: none).
    queues: Vec<QueueMember>,
}

#[derive(Debug, Clone, Default)]
struct Entry {
    /// The hint and its context, while the PBX has one.
    hint: Option<(Hint, String)>,
    status: Option<ExtensionState>,
    /// astdb's DND flag, as read at the last full state.
    dnd_db: Option<bool>,
    /// Queue memberships by queue name.
    queues: BTreeMap<String, QueueMember>,
    reported: Facts,
}

#[derive(Debug, Clone)]
struct Channel {
    uniqueid: String,
    device: String,
    direction: Option<Direction>,
    party: Option<Party>,
}

/// Every watched extension's state, from AMI.
#[derive(Debug)]
pub struct AmiTracker {
    system: String,
    dnd: DndScheme,
    context: Option<String>,
    entries: BTreeMap<String, Entry>,
    /// Device states by lower-case name.
    devices: HashMap<String, DeviceState>,
    /// Lower-case device name → the watched extensions whose hint has it.
    device_extensions: HashMap<String, Vec<String>>,
    /// Live channels, oldest first.
    channels: Vec<Channel>,
    /// PJSIP contacts by lower-case endpoint, since the connection: URI →
    /// reachable (`ContactStatus`). An endpoint here with none is known
    /// not registered.
    contacts: HashMap<String, BTreeMap<String, bool>>,
    /// Events that arrived while a full state was being read.
    held: Option<Vec<Event>>,
    notices: Vec<AmiNotice>,
}

impl AmiTracker {
    /// Tracks `extensions`, reported on `system`; hints only from `context`
    /// when given (else the first context listing the extension).
    pub fn new(
        system: impl Into<String>,
        extensions: impl IntoIterator<Item = String>,
        dnd: DndScheme,
        context: Option<String>,
    ) -> Self {
        Self {
            system: system.into(),
            dnd,
            context,
            entries: extensions
                .into_iter()
                .map(|e| (e, Entry::default()))
                .collect(),
            devices: HashMap::new(),
            device_extensions: HashMap::new(),
            channels: Vec::new(),
            contacts: HashMap::new(),
            held: None,
            notices: Vec::new(),
        }
    }

    /// The watched extensions, in order.
    pub fn extensions(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The DND scheme.
    pub fn dnd_scheme(&self) -> &DndScheme {
        &self.dnd
    }

    /// A new connection is reading the full state: events are held until
    /// [`finish_resync`](Self::finish_resync), which applies them after the
    /// lists (they are newer).
    pub fn begin_resync(&mut self) {
        self.held = Some(Vec::new());
    }

    /// The full state of a new connection: `ExtensionStateList`'s items,
    /// `DeviceStateList`'s items and astdb's DND flags (`None`: not set).
    /// Everything known before is replaced, and every fact is reported.
    pub fn finish_resync(&mut self, state: Lists<'_>, now: Instant) -> Vec<Observation> {
        let Lists {
            hints,
            devices,
            dnd_flags,
            members,
        } = state;
        self.devices.clear();
        self.channels.clear();
        self.contacts.clear();
        for event in devices {
            self.device_changed(event);
        }
        let mut listed: HashMap<&str, (Hint, String, Option<ExtensionState>)> = HashMap::new();
        for event in hints {
            let (Some(exten), Some(hint)) = (event.get("Exten"), event.get("Hint")) else {
                continue;
            };
            let context = event.get("Context").unwrap_or_default();
            if !self.entries.contains_key(exten) || listed.contains_key(exten) {
                continue;
            }
            if self.context.as_deref().is_some_and(|c| c != context) {
                continue;
            }
            let status = event.get("Status").and_then(ExtensionState::parse);
            listed.insert(exten, (Hint::parse(hint), context.to_owned(), status));
        }
        let flags: HashMap<&str, bool> = dnd_flags.iter().map(|(e, f)| (e.as_str(), *f)).collect();
        let mut listed: HashMap<String, _> =
            listed.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        for (extension, entry) in &mut self.entries {
            entry.dnd_db = flags.get(extension.as_str()).copied();
            match listed.remove(extension) {
                Some((hint, context, status)) => {
                    entry.hint = Some((hint, context));
                    entry.status = status;
                }
                None => {
                    let notice = if entry.hint.is_some() {
                        AmiNotice::HintRemoved {
                            extension: extension.clone(),
                        }
                    } else {
                        AmiNotice::NoHint {
                            extension: extension.clone(),
                        }
                    };
                    // Said once per extension and connection, not at every reconnect
                    // for an extension that never had a hint.
                    if entry.hint.is_some() || entry.reported == Facts::default() {
                        self.notices.push(notice);
                    }
                    entry.hint = None;
                    entry.status = None;
                }
            }
        }
        self.index_devices();
        for entry in self.entries.values_mut() {
            entry.queues.clear();
        }
        for member in members {
            self.member_changed(member);
        }
        let held = self.held.take().unwrap_or_default();
        for event in &held {
            self.apply(event);
        }
        // Everything is said again, changed or not: another source (SIP)
        // may have spoken for these lines while AMI was away. (Queues are
        // AMI's alone: a change is enough.)
        for entry in self.entries.values_mut() {
            let queues = std::mem::take(&mut entry.reported.queues);
            entry.reported = Facts {
                queues,
                ..Facts::default()
            };
        }
        let all: Vec<String> = self.entries.keys().cloned().collect();
        self.report(all, now)
    }

    /// An asynchronous event; the facts it changed.
    pub fn event(&mut self, event: &Event, now: Instant) -> Vec<Observation> {
        if let Some(held) = &mut self.held {
            held.push(event.clone());
            return Vec::new();
        }
        let touched = self.apply(event);
        self.report(touched, now)
    }

    /// astdb's DND flags read again (`(extension, on)`; extensions absent
    /// from `flags` keep theirs); what changed.
    pub fn dnd_refreshed(&mut self, flags: &[(String, bool)], now: Instant) -> Vec<Observation> {
        if self.held.is_some() {
            return Vec::new();
        }
        let flags: HashMap<&str, bool> = flags.iter().map(|(e, f)| (e.as_str(), *f)).collect();
        for (extension, entry) in &mut self.entries {
            if let Some(flag) = flags.get(extension.as_str()) {
                entry.dnd_db = Some(*flag);
            }
        }
        let all: Vec<String> = self.entries.keys().cloned().collect();
        self.report(all, now)
    }

    /// Every extension as `unknown`: the PBX has been out of reach too long
    /// to vouch for what was known. The next full state reports afresh.
    pub fn all_unknown(&mut self, now: Instant) -> Vec<Observation> {
        let mut out = Vec::new();
        for (extension, entry) in &mut self.entries {
            if entry.reported.line.as_ref().map(|l| l.0) != Some(LineState::Unknown) {
                entry.reported.line = Some((LineState::Unknown, None, None));
                out.push(Observation::new(
                    self.system.clone(),
                    extension.clone(),
                    Fact::line(LineState::Unknown),
                    now,
                ));
            }
            entry.status = None;
        }
        out
    }

    /// Notices gathered since the last call.
    pub fn take_notices(&mut self) -> Vec<AmiNotice> {
        std::mem::take(&mut self.notices)
    }

    /// The DND state of `extension` as last reported.
    pub fn dnd(&self, extension: &str) -> Option<bool> {
        self.entries.get(extension)?.reported.dnd
    }

    /// Applies an event; the extensions it may have changed.
    fn apply(&mut self, event: &Event) -> Vec<String> {
        let name = event.name.as_str();
        if name.eq_ignore_ascii_case("ExtensionStatus") {
            return self.extension_status(event);
        }
        if name.eq_ignore_ascii_case("DeviceStateChange") {
            return self
                .device_changed(event)
                .map(|d| self.extensions_of(&d))
                .unwrap_or_default();
        }
        if name.eq_ignore_ascii_case("Hangup") {
            let Some(id) = event.get("Uniqueid") else {
                return Vec::new();
            };
            let Some(at) = self.channels.iter().position(|c| c.uniqueid == id) else {
                return Vec::new();
            };
            let channel = self.channels.remove(at);
            return self.extensions_of(&channel.device);
        }
        if name.eq_ignore_ascii_case("ContactStatus") {
            return self.contact_changed(event);
        }
        if ["QueueMemberStatus", "QueueMemberAdded", "QueueMemberPause"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            return self.member_changed(event);
        }
        if name.eq_ignore_ascii_case("QueueMemberRemoved") {
            let Some(queue) = event.get("Queue") else {
                return Vec::new();
            };
            let extensions = self.member_extensions(event);
            for extension in &extensions {
                if let Some(entry) = self.entries.get_mut(extension) {
                    entry.queues.remove(queue);
                }
            }
            return extensions;
        }
        if ["Newchannel", "Newstate", "NewConnectedLine"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            return self.channel_changed(event);
        }
        Vec::new()
    }

    fn extension_status(&mut self, event: &Event) -> Vec<String> {
        let (Some(exten), Some(status)) = (
            event.get("Exten"),
            event.get("Status").and_then(ExtensionState::parse),
        ) else {
            return Vec::new();
        };
        let context = event.get("Context").unwrap_or_default();
        let Some(entry) = self.entries.get_mut(exten) else {
            return Vec::new();
        };
        let hint = event.get("Hint").map(Hint::parse);
        match &entry.hint {
            Some((_, known)) if known != context => return Vec::new(),
            None if self.context.as_deref().is_some_and(|c| c != context) => return Vec::new(),
            _ => {}
        }
        if matches!(status, ExtensionState::NoHint | ExtensionState::Removed) {
            if entry.hint.take().is_some() {
                self.notices.push(AmiNotice::HintRemoved {
                    extension: exten.to_owned(),
                });
            }
            entry.status = None;
        } else {
            entry.status = Some(status);
            // A new or changed hint; an event without one keeps the known one.
            let new = match (hint, &entry.hint) {
                (Some(h), Some((known, _))) if *known == h => None,
                (None, Some(_)) => None,
                (h, _) => Some(h.unwrap_or_else(|| Hint::parse(""))),
            };
            if let Some(hint) = new {
                entry.hint = Some((hint, context.to_owned()));
                self.index_devices();
            }
        }
        vec![exten.to_owned()]
    }

    /// Records a `DeviceStateChange` (live or a list item); the device's
    /// lower-case name.
    fn device_changed(&mut self, event: &Event) -> Option<String> {
        let device = event.get("Device")?.to_ascii_lowercase();
        let state = DeviceState::from_name(event.get("State")?);
        self.devices.insert(device.clone(), state);
        Some(device)
    }

    fn channel_changed(&mut self, event: &Event) -> Vec<String> {
        let (Some(id), Some(name)) = (event.get("Uniqueid"), event.get("Channel")) else {
            return Vec::new();
        };
        let state = event
            .get("ChannelState")
            .and_then(|s| s.trim().parse::<u8>().ok());
        let party = connected_party(event);
        let at = match self.channels.iter().position(|c| c.uniqueid == id) {
            Some(at) => at,
            None => {
                // A channel seen first here: a device that dialled starts in
                // `Ring` (4), one being called in `Down` (0).
                let direction = match state {
                    Some(4) => Some(Direction::Outbound),
                    Some(0) | Some(5) => Some(Direction::Inbound),
                    _ => None,
                };
                self.channels.push(Channel {
                    uniqueid: id.to_owned(),
                    device: channel_device(name).to_ascii_lowercase(),
                    direction,
                    party: None,
                });
                self.channels.len() - 1
            }
        };
        let channel = &mut self.channels[at];
        if party.is_some() {
            channel.party = party;
        }
        let device = channel.device.clone();
        self.extensions_of(&device)
    }

    /// A PJSIP contact came, went or changed reachability; the extensions
    /// whose hint has its endpoint.
    fn contact_changed(&mut self, event: &Event) -> Vec<String> {
        let (Some(endpoint), Some(uri), Some(status)) = (
            event.get("EndpointName").or_else(|| event.get("AOR")),
            event.get("URI"),
            event.get("ContactStatus"),
        ) else {
            return Vec::new();
        };
        let contacts = self
            .contacts
            .entry(endpoint.to_ascii_lowercase())
            .or_default();
        // Asterisk 16+: Reachable, Unreachable, Unknown, NonQualified, Removed
        // (13: Created for NonQualified).
        match status.trim().to_ascii_lowercase().as_str() {
            "removed" => {
                contacts.remove(uri);
            }
            "unreachable" => {
                contacts.insert(uri.to_owned(), false);
            }
            _ => {
                contacts.insert(uri.to_owned(), true);
            }
        }
        self.extensions_of(&format!("pjsip/{}", endpoint.to_ascii_lowercase()))
    }

    /// A queue member's state (an event, or a `QueueStatus` item); the
    /// extensions it belongs to.
    fn member_changed(&mut self, event: &Event) -> Vec<String> {
        let Some(queue) = event.get("Queue").map(str::to_owned) else {
            return Vec::new();
        };
        let flag = |key: &str| event.get(key).is_some_and(|v| v.trim() == "1");
        let paused = flag("Paused");
        let member = QueueMember {
            queue: queue.clone(),
            paused,
            reason: event
                .get("PausedReason")
                .map(str::trim)
                .filter(|r| paused && !r.is_empty())
                .map(str::to_owned),
            in_call: flag("InCall"),
        };
        let extensions = self.member_extensions(event);
        for extension in &extensions {
            if let Some(entry) = self.entries.get_mut(extension) {
                entry.queues.insert(queue.clone(), member.clone());
            }
        }
        extensions
    }

    /// The watched extensions a queue member is: those whose hint has its
    /// state interface (`PJSIP/1001`), else the extension of a FreePBX
    /// member interface (`Local/1001@from-queue/n`).
    fn member_extensions(&self, event: &Event) -> Vec<String> {
        if let Some(device) = event.get("StateInterface") {
            let found = self.extensions_of(&device.to_ascii_lowercase());
            if !found.is_empty() {
                return found;
            }
        }
        ["Interface", "Location"]
            .iter()
            .filter_map(|k| event.get(k))
            .filter_map(|i| i.strip_prefix("Local/"))
            .filter_map(|rest| rest.split(['@', '/']).next())
            .filter(|ext| self.entries.contains_key(*ext))
            .map(str::to_owned)
            .take(1)
            .collect()
    }

    fn extensions_of(&self, device: &str) -> Vec<String> {
        self.device_extensions
            .get(device)
            .cloned()
            .unwrap_or_default()
    }

    fn index_devices(&mut self) {
        self.device_extensions.clear();
        for (extension, entry) in &self.entries {
            let mut devices: Vec<String> = entry
                .hint
                .iter()
                .flat_map(|(h, _)| h.devices.iter().map(|d| d.to_ascii_lowercase()))
                .collect();
            devices.push(self.dnd.device(extension).to_ascii_lowercase());
            for device in devices {
                let list = self.device_extensions.entry(device).or_default();
                if !list.contains(extension) {
                    list.push(extension.clone());
                }
            }
        }
    }

    /// Reports what changed for `extensions`.
    fn report(&mut self, extensions: Vec<String>, now: Instant) -> Vec<Observation> {
        let mut out = Vec::new();
        for extension in extensions {
            let Some(facts) = self.facts(&extension) else {
                continue;
            };
            let Some(entry) = self.entries.get_mut(&extension) else {
                continue;
            };
            let before = std::mem::replace(&mut entry.reported, facts.clone());
            let mut push = |fact| {
                out.push(Observation::new(
                    self.system.clone(),
                    extension.clone(),
                    fact,
                    now,
                ))
            };
            if facts.dnd != before.dnd {
                if let Some(dnd) = facts.dnd {
                    push(Fact::Dnd(dnd));
                }
            }
            if facts.registered != before.registered {
                if let Some(registered) = facts.registered {
                    push(Fact::Registration(registered));
                }
            }
            if facts.queues != before.queues {
                push(Fact::Queues(facts.queues.clone()));
            }
            if facts.line != before.line {
                if let Some((state, counterparty, direction)) = facts.line {
                    push(Fact::Line {
                        state,
                        counterparty,
                        direction,
                    });
                }
            }
        }
        out
    }

    /// What `extension` shows now.
    fn facts(&self, extension: &str) -> Option<Facts> {
        let entry = self.entries.get(extension)?;
        let dnd_device = self.dnd.device(extension).to_ascii_lowercase();
        let device_dnd = match self.devices.get(&dnd_device) {
            Some(DeviceState::Unknown | DeviceState::Invalid) | None => None,
            Some(state) => Some(*state == DeviceState::Busy),
        };
        let dnd = device_dnd.or(entry.dnd_db.filter(|_| self.dnd.db_family.is_some()));
        let queues: Vec<QueueMember> = entry.queues.values().cloned().collect();
        let Some((hint, _)) = &entry.hint else {
            return Some(Facts {
                line: Some((LineState::Unknown, None, None)),
                dnd,
                registered: None,
                queues,
            });
        };
        let phones: Vec<&String> = hint
            .devices
            .iter()
            .filter(|d| !d.to_ascii_lowercase().starts_with("custom:"))
            .collect();
        let phone_states: Option<Vec<DeviceState>> = phones
            .iter()
            .map(|d| self.devices.get(&d.to_ascii_lowercase()).copied())
            .collect();
        let state = entry.status.map(|status| {
            if dnd != Some(true) || !hint.has_device(&self.dnd.device(extension)) {
                return status;
            }
            // The DND device's BUSY hides the phones' state: take theirs.
            match &phone_states {
                Some(states) if !states.is_empty() => {
                    aggregate(states.iter().copied()).to_extension_state()
                }
                _ => match status {
                    ExtensionState::Busy => ExtensionState::Idle,
                    ExtensionState::InUseRinging => ExtensionState::Ringing,
                    other => other,
                },
            }
        });
        let line = state.map_or(LineState::Unknown, line_state);
        // Contacts when AMI has said anything of the endpoints' (live),
        // else the phones' device states (which PJSIP derives from them).
        let endpoints: Vec<&BTreeMap<String, bool>> = phones
            .iter()
            .filter_map(|d| {
                let d = d.to_ascii_lowercase();
                self.contacts.get(d.strip_prefix("pjsip/")?)
            })
            .collect();
        let registered = if endpoints.is_empty() {
            phone_states
                .filter(|s| !s.is_empty() && s.iter().all(|s| *s != DeviceState::Unknown))
                .map(|s| {
                    !s.iter()
                        .all(|s| matches!(s, DeviceState::Unavailable | DeviceState::Invalid))
                })
        } else {
            Some(
                endpoints
                    .iter()
                    .any(|c| c.values().any(|reachable| *reachable)),
            )
        };
        let (counterparty, direction) = if line.is_call() {
            self.channels
                .iter()
                .rev()
                .find(|c| hint.has_device(&c.device))
                .map_or((None, None), |c| (c.party.clone(), c.direction))
        } else {
            (None, None)
        };
        Some(Facts {
            line: Some((line, counterparty, direction)),
            dnd,
            registered,
            queues,
        })
    }
}

/// The line state of a hint state (the table in the module docs).
pub fn line_state(state: ExtensionState) -> LineState {
    match state {
        ExtensionState::Idle => LineState::Idle,
        ExtensionState::InUse | ExtensionState::Busy | ExtensionState::InUseHold => LineState::Busy,
        ExtensionState::Unavailable => LineState::Offline,
        ExtensionState::Ringing | ExtensionState::InUseRinging => LineState::Ringing,
        ExtensionState::Hold => LineState::Hold,
        ExtensionState::NoHint | ExtensionState::Removed | ExtensionState::Other(_) => {
            LineState::Unknown
        }
    }
}

/// The channel's connected line (`<unknown>` and empty mean none).
fn connected_party(event: &Event) -> Option<Party> {
    let known = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty() && *v != "<unknown>")
            .map(str::to_owned)
    };
    let number = known(event.get("ConnectedLineNum"))?;
    Some(Party {
        number,
        name: known(event.get("ConnectedLineName")),
    })
}

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
