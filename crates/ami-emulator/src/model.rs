//! The PBX model: hints, the device-state cache, astdb, endpoints and their
//! contacts. Every change returns the events a real Asterisk 22 publishes for
//! it, in one consistent order (the transcripts show that Asterisk's own order
//! varies between runs, so clients must accept any).

use std::collections::{BTreeMap, HashMap};

use crate::calls::Channel;
use crate::queues::Queues;
use crate::state::{aggregate, hint_devices, status_text, DeviceState};
use crate::wire::{Msg, CALL, SYSTEM};

/// An event for the sessions: its class and its wire form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Emitted {
    pub class: i32,
    pub wire: String,
}

impl Emitted {
    pub(crate) fn new(class: i32, msg: Msg) -> Self {
        Self {
            class,
            wire: msg.done(),
        }
    }
}

/// A hint in the dialplan, with its last published status.
#[derive(Debug, Clone)]
pub(crate) struct HintEntry {
    pub exten: String,
    pub context: String,
    pub hint: String,
    devices: Vec<String>,
    pub status: i32,
}

/// A registered contact (what `PJSIPShowContacts` lists).
#[derive(Debug, Clone)]
pub(crate) struct Contact {
    pub port: u16,
    pub object_name: String,
    pub call_id: String,
    pub user_agent: String,
    pub expiration: u64,
}

impl Contact {
    pub fn uri(&self, endpoint: &str) -> String {
        format!("sip:{endpoint}@127.0.0.1:{}", self.port)
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Endpoint {
    pub contact: Option<Contact>,
}

/// The whole PBX state.
#[derive(Debug)]
pub(crate) struct Pbx {
    pub hints: Vec<HintEntry>,
    device_order: Vec<String>,
    devices: HashMap<String, DeviceState>,
    /// astdb, keyed by (family, key).
    pub db: BTreeMap<(String, String), String>,
    pub endpoints: BTreeMap<String, Endpoint>,
    pub globals: HashMap<String, String>,
    pub queues: Queues,
    pub channels: BTreeMap<u64, Channel>,
    pub calls: HashMap<u64, (u64, u64)>,
    pub next_channel: u64,
    pub next_call: u64,
    pub uniqueid_base: u64,
    next_port: u16,
    pub default_context: String,
}

impl Pbx {
    /// A PBX with these hints (exten, context, hint); every `PJSIP/<x>` device
    /// named in a hint is an endpoint with no contact (UNAVAILABLE).
    pub fn new(
        hints: impl IntoIterator<Item = (String, String, String)>,
        default_context: String,
        uniqueid_base: u64,
    ) -> Self {
        let mut pbx = Self {
            hints: Vec::new(),
            device_order: Vec::new(),
            devices: HashMap::new(),
            db: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            globals: HashMap::new(),
            queues: Queues::new(),
            channels: BTreeMap::new(),
            calls: HashMap::new(),
            next_channel: 0,
            next_call: 1,
            uniqueid_base,
            next_port: 5171,
            default_context,
        };
        for (exten, context, hint) in hints {
            pbx.insert_hint(exten, context, hint);
        }
        pbx
    }

    fn insert_hint(&mut self, exten: String, context: String, hint: String) -> usize {
        let devices = hint_devices(&hint);
        for d in &devices {
            if let Some(ext) = pjsip_endpoint(d) {
                if !self.endpoints.contains_key(ext) {
                    self.endpoints.insert(ext.to_string(), Endpoint::default());
                    self.cache(d, DeviceState::Unavailable);
                }
            }
        }
        let mut entry = HintEntry {
            exten,
            context,
            hint,
            devices,
            status: 0,
        };
        entry.status = self.hint_status(&entry.devices);
        self.hints
            .retain(|h| !(h.exten == entry.exten && h.context == entry.context));
        self.hints.push(entry);
        self.hints.len() - 1
    }

    fn hint_status(&self, devices: &[String]) -> i32 {
        aggregate(devices.iter().map(|d| self.device_state(d))).to_extension_status()
    }

    fn cache(&mut self, device: &str, state: DeviceState) {
        if self.devices.insert(device.to_string(), state).is_none() {
            self.device_order.push(device.to_string());
        }
    }

    /// The state of any device: the cache, else what a query would answer.
    pub fn device_state(&self, device: &str) -> DeviceState {
        if let Some(s) = self.devices.get(device) {
            return *s;
        }
        if let Some(name) = custom_name(device) {
            return self
                .db
                .get(&("CustomDevstate".to_string(), name.to_string()))
                .map(|v| DeviceState::parse(v))
                .unwrap_or(DeviceState::Unknown);
        }
        if let Some(ext) = pjsip_endpoint(device) {
            if self.endpoints.contains_key(ext) {
                return self.pjsip_state(ext);
            }
            return DeviceState::Invalid;
        }
        DeviceState::Unknown
    }

    /// The cached devices, in the order they were first published (`DeviceStateList`).
    pub fn cached_devices(&self) -> impl Iterator<Item = (&str, DeviceState)> + '_ {
        self.device_order
            .iter()
            .filter_map(|d| self.devices.get(d).map(|s| (d.as_str(), *s)))
    }

    /// Publishes a device state: `DeviceStateChange` (always when `force`,
    /// else only on a change), then `ExtensionStatus` for each hint whose
    /// status changed, then (when published) `QueueMemberStatus` for each
    /// queue member whose state interface it is.
    pub fn publish_device(
        &mut self,
        device: &str,
        state: DeviceState,
        force: bool,
        out: &mut Vec<Emitted>,
    ) {
        let old = self.devices.get(device).copied();
        self.cache(device, state);
        let published = force || old != Some(state);
        if published {
            out.push(Emitted::new(
                CALL,
                Msg::event("DeviceStateChange", CALL)
                    .h("Device", device)
                    .h("State", state.as_str()),
            ));
        }
        self.refresh_hints(device, out);
        if published {
            self.refresh_queue_members(device, state, out);
        }
    }

    fn refresh_hints(&mut self, device: &str, out: &mut Vec<Emitted>) {
        for i in 0..self.hints.len() {
            let Some(h) = self.hints.get(i) else { continue };
            if !h.devices.iter().any(|d| d == device) {
                continue;
            }
            let status = self.hint_status(&h.devices);
            if let Some(h) = self.hints.get_mut(i) {
                if h.status != status {
                    h.status = status;
                    out.push(extension_status_event(h));
                }
            }
        }
    }

    /// `chan_pjsip_devicestate`: offline → UNAVAILABLE, online → NOT_INUSE,
    /// else the aggregate of its channels (a held one counts ONHOLD).
    pub fn pjsip_state(&self, ext: &str) -> DeviceState {
        let Some(ep) = self.endpoints.get(ext) else {
            return DeviceState::Invalid;
        };
        let base = if ep.contact.is_some() {
            DeviceState::NotInUse
        } else {
            DeviceState::Unavailable
        };
        let chans: Vec<DeviceState> = self
            .channels
            .values()
            .filter(|c| c.endpoint == ext)
            .map(|c| {
                if c.held {
                    DeviceState::OnHold
                } else {
                    c.state.device_state()
                }
            })
            .collect();
        if chans.is_empty() {
            return base;
        }
        match aggregate(chans) {
            DeviceState::Invalid => base,
            s => s,
        }
    }

    /// Recomputes `PJSIP/<ext>` and publishes it if it changed.
    pub fn refresh_pjsip(&mut self, ext: &str, out: &mut Vec<Emitted>) {
        let state = self.pjsip_state(ext);
        self.publish_device(&format!("PJSIP/{ext}"), state, false, out);
    }

    /// A phone registers: PeerStatus Reachable, ContactStatus NonQualified,
    /// DeviceStateChange, ExtensionStatus. Nothing if already registered.
    pub fn register(&mut self, ext: &str, out: &mut Vec<Emitted>) {
        let port = self.next_port;
        let ep = self.endpoints.entry(ext.to_string()).or_default();
        if ep.contact.is_some() {
            return;
        }
        let digest = hex::encode(md5_of(ext.as_bytes()));
        let contact = Contact {
            port,
            object_name: format!("{ext};@{digest}"),
            call_id: format!("1-{}@127.0.0.1", 22000 + u32::from(port)),
            user_agent: "sipp-blf-lab".to_string(),
            expiration: self.uniqueid_base + 3600,
        };
        let uri = contact.uri(ext);
        ep.contact = Some(contact);
        self.next_port = self.next_port.wrapping_add(1).max(1024);
        out.push(peer_status(ext, "Reachable"));
        out.push(contact_status(ext, &uri, "NonQualified"));
        self.refresh_pjsip(ext, out);
    }

    /// A phone un-registers: PeerStatus Unreachable, ContactStatus Removed,
    /// DeviceStateChange UNAVAILABLE (unless busy with channels), ExtensionStatus.
    pub fn unregister(&mut self, ext: &str, out: &mut Vec<Emitted>) {
        let Some(contact) = self.endpoints.get_mut(ext).and_then(|ep| ep.contact.take()) else {
            return;
        };
        out.push(peer_status(ext, "Unreachable"));
        out.push(contact_status(ext, &contact.uri(ext), "Removed"));
        self.refresh_pjsip(ext, out);
    }

    /// `Set(DEVICE_STATE(Custom:<name>)=<value>)` (`devstate_write`): only
    /// `Custom:` devices, a known state other than UNKNOWN; writes astdb
    /// `CustomDevstate/<name>` and publishes. `false` when refused.
    pub fn write_custom_state(
        &mut self,
        device: &str,
        value: &str,
        out: &mut Vec<Emitted>,
    ) -> bool {
        let Some(name) = custom_name(device) else {
            return false;
        };
        if name.is_empty() {
            return false;
        }
        let state = DeviceState::parse(value);
        if state == DeviceState::Unknown {
            return false;
        }
        self.db.insert(
            ("CustomDevstate".to_string(), name.to_string()),
            value.to_string(),
        );
        self.publish_device(&format!("Custom:{name}"), state, true, out);
        true
    }

    /// DND the FreePBX way: astdb `DND/<ext>` = `YES` (deleted when off), and
    /// `Custom:DND<ext>` BUSY / UNAVAILABLE.
    pub fn set_dnd(&mut self, ext: &str, on: bool, out: &mut Vec<Emitted>) {
        let key = ("DND".to_string(), ext.to_string());
        if on {
            self.db.insert(key, "YES".to_string());
        } else {
            self.db.remove(&key);
        }
        let value = if on { "BUSY" } else { "UNAVAILABLE" };
        self.write_custom_state(&format!("Custom:DND{ext}"), value, out);
    }

    /// Adds (or replaces) a hint; `ExtensionStatus` for it.
    pub fn add_hint(&mut self, exten: &str, context: &str, hint: &str, out: &mut Vec<Emitted>) {
        let i = self.insert_hint(exten.to_string(), context.to_string(), hint.to_string());
        if let Some(h) = self.hints.get(i) {
            out.push(extension_status_event(h));
        }
    }

    /// Removes every hint of `exten` (no event, as Asterisk's AMI callback does not run).
    pub fn remove_hint(&mut self, exten: &str) {
        self.hints.retain(|h| h.exten != exten);
    }

    /// The hint of `exten` in `context`.
    pub fn hint(&self, exten: &str, context: &str) -> Option<&HintEntry> {
        self.hints
            .iter()
            .find(|h| h.exten == exten && h.context == context)
    }
}

/// `Event: ExtensionStatus` for a hint.
pub(crate) fn extension_status_event(h: &HintEntry) -> Emitted {
    Emitted::new(
        CALL,
        extension_status_fields(Msg::event("ExtensionStatus", CALL), h),
    )
}

/// The five fields of `ExtensionStatus`, in their fixed order.
pub(crate) fn extension_status_fields(msg: Msg, h: &HintEntry) -> Msg {
    msg.h("Exten", &h.exten)
        .h("Context", &h.context)
        .h("Hint", &h.hint)
        .h("Status", &h.status.to_string())
        .h("StatusText", status_text(h.status))
}

fn peer_status(ext: &str, status: &str) -> Emitted {
    Emitted::new(
        SYSTEM,
        Msg::event("PeerStatus", SYSTEM)
            .h("ChannelType", "PJSIP")
            .h("Peer", &format!("PJSIP/{ext}"))
            .h("PeerStatus", status),
    )
}

fn contact_status(ext: &str, uri: &str, status: &str) -> Emitted {
    Emitted::new(
        SYSTEM,
        Msg::event("ContactStatus", SYSTEM)
            .h("URI", uri)
            .h("ContactStatus", status)
            .h("AOR", ext)
            .h("EndpointName", ext)
            .h("RoundtripUsec", "0"),
    )
}

/// `Custom:<name>` (prefix case-insensitive) → `<name>`.
pub(crate) fn custom_name(device: &str) -> Option<&str> {
    let prefix = device.get(..7)?;
    prefix
        .eq_ignore_ascii_case("Custom:")
        .then(|| device.get(7..))
        .flatten()
}

/// `PJSIP/<endpoint>` → `<endpoint>`.
pub(crate) fn pjsip_endpoint(device: &str) -> Option<&str> {
    device.strip_prefix("PJSIP/")
}

fn md5_of(data: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pbx() -> Pbx {
        Pbx::new(
            [
                ("1001", "PJSIP/1001&Custom:DND1001,CustomPresence:1001"),
                ("1002", "PJSIP/1002"),
            ]
            .map(|(e, h)| (e.to_string(), "ext-local".to_string(), h.to_string())),
            "ext-local".into(),
            1_700_000_000,
        )
    }

    #[test]
    fn register_dnd_unregister() {
        let mut p = pbx();
        assert_eq!(p.hint("1001", "ext-local").map(|h| h.status), Some(4));
        let mut out = Vec::new();
        p.register("1001", &mut out);
        assert_eq!(out.len(), 4, "{out:?}");
        assert_eq!(p.hint("1001", "ext-local").map(|h| h.status), Some(0));
        out.clear();
        p.set_dnd("1001", true, &mut out);
        assert_eq!(p.hint("1001", "ext-local").map(|h| h.status), Some(2));
        assert_eq!(out.len(), 2);
        out.clear();
        p.unregister("1001", &mut out);
        // DND BUSY still outranks UNAVAILABLE: no ExtensionStatus
        assert_eq!(out.len(), 3);
        assert_eq!(p.hint("1001", "ext-local").map(|h| h.status), Some(2));
        out.clear();
        p.set_dnd("1001", false, &mut out);
        assert_eq!(p.hint("1001", "ext-local").map(|h| h.status), Some(4));
        assert!(!p.db.contains_key(&("DND".into(), "1001".into())));
        assert!(!p.write_custom_state("Custom:X", "UNKNOWN", &mut out));
        assert!(!p.write_custom_state("PJSIP/1001", "BUSY", &mut out));
    }
}
