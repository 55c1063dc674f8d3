//! Call queues and their members, as `apps/app_queue.c` reports them: the
//! `QueueMemberAdded`/`Removed`/`Pause`/`Status` events (class `agent`) and
//! the items of `QueueStatus`.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::{Emitted, Pbx};
use crate::state::DeviceState;
use crate::wire::{Msg, AGENT};

/// The context FreePBX's queue members dial through (`Local/<exten>@from-queue/n`).
const MEMBER_CONTEXT: &str = "from-queue";

/// One member of a queue (`struct member`).
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// `MemberName` (QueueStatus: `Name`).
    pub name: String,
    /// `Interface` (QueueStatus: `Location`), the channel the queue dials.
    pub interface: String,
    /// The device whose state is the member's `Status`.
    pub state_interface: String,
    /// Added at run time (`AddQueueMember`) rather than in `queues.conf`.
    pub dynamic: bool,
    pub penalty: i32,
    pub paused: bool,
    /// `PausedReason`: empty unless paused with a reason.
    pub reason: String,
    pub calls_taken: u32,
    pub last_call: u64,
    pub last_pause: u64,
    pub login_time: u64,
    /// The state interface's device state.
    pub status: DeviceState,
    pub ringinuse: bool,
    pub wrapuptime: i32,
}

impl Member {
    /// FreePBX's member for an extension: `Local/<exten>@from-queue/n`,
    /// state interface `PJSIP/<exten>`, named `Ext <exten>`.
    fn for_exten(exten: &str, dynamic: bool, status: DeviceState) -> Self {
        Self {
            name: format!("Ext {exten}"),
            interface: format!("Local/{exten}@{MEMBER_CONTEXT}/n"),
            state_interface: format!("PJSIP/{exten}"),
            dynamic,
            penalty: 0,
            paused: false,
            reason: String::new(),
            calls_taken: 0,
            last_call: 0,
            last_pause: 0,
            login_time: now(),
            status,
            ringinuse: true,
            wrapuptime: 0,
        }
    }

    /// Busy on a call: the device is in use, on hold, or ringing while in use.
    pub fn in_call(&self) -> bool {
        matches!(
            self.status,
            DeviceState::InUse | DeviceState::OnHold | DeviceState::RingInUse
        )
    }

    fn membership(&self) -> &'static str {
        if self.dynamic {
            "dynamic"
        } else {
            "static"
        }
    }

    /// The fields of `queue_member_blob_create()` (the events), in the
    /// order the facts document (the event is built from JSON, so a client
    /// must not rely on it).
    fn event(&self, name: &str, queue: &str) -> Emitted {
        let msg = Msg::event(name, AGENT)
            .h("Queue", queue)
            .h("MemberName", &self.name)
            .h("Interface", &self.interface)
            .h("StateInterface", &self.state_interface)
            .h("Membership", self.membership())
            .h("Penalty", &self.penalty.to_string())
            .h("CallsTaken", &self.calls_taken.to_string())
            .h("LastCall", &self.last_call.to_string())
            .h("LastPause", &self.last_pause.to_string())
            .h("LoginTime", &self.login_time.to_string())
            .h("InCall", flag(self.in_call()))
            .h("Status", &self.status.number().to_string())
            .h("Paused", flag(self.paused))
            .h("PausedReason", &self.reason)
            .h("Ringinuse", flag(self.ringinuse))
            .h("Wrapuptime", &self.wrapuptime.to_string());
        Emitted::new(AGENT, msg)
    }

    /// A `QueueMember` item of `QueueStatus`: `Name`/`Location`, no
    /// `Ringinuse`, `ActionID` last (app_queue appends it after the fields).
    fn status_item(&self, queue: &str, action_id: Option<&str>) -> String {
        Msg::default()
            .h("Event", "QueueMember")
            .h("Queue", queue)
            .h("Name", &self.name)
            .h("Location", &self.interface)
            .h("StateInterface", &self.state_interface)
            .h("Membership", self.membership())
            .h("Penalty", &self.penalty.to_string())
            .h("CallsTaken", &self.calls_taken.to_string())
            .h("LastCall", &self.last_call.to_string())
            .h("LastPause", &self.last_pause.to_string())
            .h("LoginTime", &self.login_time.to_string())
            .h("InCall", flag(self.in_call()))
            .h("Status", &self.status.number().to_string())
            .h("Paused", flag(self.paused))
            .h("PausedReason", &self.reason)
            .h("Wrapuptime", &self.wrapuptime.to_string())
            .id(action_id)
            .done()
    }
}

/// A queue member as the emulator holds it ([`crate::AmiEmulator::queue_member`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMemberInfo {
    /// The queue's name as created.
    pub queue: String,
    /// `MemberName`, e.g. `Ext 1001`.
    pub name: String,
    /// `Interface`, e.g. `Local/1001@from-queue/n`.
    pub interface: String,
    /// `StateInterface`, e.g. `PJSIP/1001`.
    pub state_interface: String,
    /// `Membership: dynamic` (else `static`).
    pub dynamic: bool,
    /// `Paused: 1`.
    pub paused: bool,
    /// `PausedReason` (empty when not paused).
    pub reason: String,
    /// `InCall: 1`.
    pub in_call: bool,
    /// The state interface's device state (`Status` is its number).
    pub status: DeviceState,
}

/// A call queue (`struct call_queue`); no callers wait in the model.
#[derive(Debug, Clone)]
pub(crate) struct Queue {
    pub name: String,
    pub strategy: String,
    pub members: Vec<Member>,
}

impl Queue {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            strategy: "ringall".to_string(),
            members: Vec::new(),
        }
    }

    /// The `QueueParams` item of `QueueStatus` (`ActionID` last); no calls
    /// have been queued, so every counter is 0.
    fn params_item(&self, action_id: Option<&str>) -> String {
        Msg::default()
            .h("Event", "QueueParams")
            .h("Queue", &self.name)
            .h("Max", "0")
            .h("Strategy", &self.strategy)
            .h("Calls", "0")
            .h("Holdtime", "0")
            .h("TalkTime", "0")
            .h("Completed", "0")
            .h("Abandoned", "0")
            .h("ServiceLevel", "0")
            .h("ServicelevelPerf", "0.0")
            .h("ServicelevelPerf2", "0.0")
            .h("Weight", "0")
            .id(action_id)
            .done()
    }

    fn member_index(&self, exten: &str) -> Option<usize> {
        let interface = format!("Local/{exten}@{MEMBER_CONTEXT}/n");
        self.members
            .iter()
            .position(|m| m.interface.eq_ignore_ascii_case(&interface))
    }
}

/// The queues, by lower-case name (queue names are matched ignoring case).
pub(crate) type Queues = BTreeMap<String, Queue>;

fn flag(on: bool) -> &'static str {
    if on {
        "1"
    } else {
        "0"
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl Pbx {
    fn queue_mut(&mut self, name: &str) -> &mut Queue {
        self.queues
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| Queue::new(name))
    }

    /// Creates an empty queue (as `queues.conf` would); nothing if it exists.
    pub fn add_queue(&mut self, name: &str) {
        self.queue_mut(name);
    }

    /// Adds `exten` to `queue` (created if missing): the pause device
    /// `Queue:<queue>_pause_<interface>` NOT_INUSE, then `QueueMemberAdded`.
    /// Nothing if it is a member already (`MEMBERALREADY`).
    pub fn add_queue_member(
        &mut self,
        queue: &str,
        exten: &str,
        dynamic: bool,
        out: &mut Vec<Emitted>,
    ) {
        let status = self.device_state(&format!("PJSIP/{exten}"));
        let q = self.queue_mut(queue);
        if q.member_index(exten).is_some() {
            return;
        }
        let member = Member::for_exten(exten, dynamic, status);
        let pause_device = format!("Queue:{}_pause_{}", q.name, member.interface);
        let added = member.event("QueueMemberAdded", &q.name);
        q.members.push(member);
        self.publish_device(&pause_device, DeviceState::NotInUse, false, out);
        out.push(added);
    }

    /// Removes the dynamic member `exten` from `queue`: `QueueMemberRemoved`.
    /// A static member stays (`NOTDYNAMIC`), as does an unknown one.
    pub fn remove_queue_member(&mut self, queue: &str, exten: &str, out: &mut Vec<Emitted>) {
        let Some(q) = self.queues.get_mut(&queue.to_ascii_lowercase()) else {
            return;
        };
        let Some(i) = q.member_index(exten) else {
            return;
        };
        if q.members.get(i).is_some_and(|m| m.dynamic) {
            let m = q.members.remove(i);
            out.push(m.event("QueueMemberRemoved", &q.name));
        }
    }

    /// Pauses or unpauses `exten` in `queue` (`set_queue_member_pause()`):
    /// the pause device INUSE / NOT_INUSE, `QueueMemberPause`, then
    /// `QueueMemberStatus`. The reason is kept only while paused.
    pub fn pause_queue_member(
        &mut self,
        queue: &str,
        exten: &str,
        paused: bool,
        reason: &str,
        out: &mut Vec<Emitted>,
    ) {
        let Some(q) = self.queues.get_mut(&queue.to_ascii_lowercase()) else {
            return;
        };
        let Some(m) = q.member_index(exten).and_then(|i| q.members.get_mut(i)) else {
            return;
        };
        if paused && !m.paused {
            m.last_pause = now();
        }
        m.paused = paused;
        m.reason = if paused {
            reason.to_string()
        } else {
            String::new()
        };
        let events = [
            m.event("QueueMemberPause", &q.name),
            m.event("QueueMemberStatus", &q.name),
        ];
        let pause_device = format!("Queue:{}_pause_{}", q.name, m.interface);
        let state = if paused {
            DeviceState::InUse
        } else {
            DeviceState::NotInUse
        };
        self.publish_device(&pause_device, state, false, out);
        out.extend(events);
    }

    /// A device state was published: every member whose state interface it
    /// is takes it as its `Status` and gets a `QueueMemberStatus`.
    pub(crate) fn refresh_queue_members(
        &mut self,
        device: &str,
        state: DeviceState,
        out: &mut Vec<Emitted>,
    ) {
        for q in self.queues.values_mut() {
            for m in &mut q.members {
                if m.state_interface.eq_ignore_ascii_case(device) {
                    m.status = state;
                    out.push(m.event("QueueMemberStatus", &q.name));
                }
            }
        }
    }

    /// The items of `QueueStatus`: per queue (name matched ignoring case)
    /// its `QueueParams`, then a `QueueMember` per member whose interface or
    /// name is exactly `member` (every member when empty).
    pub fn queue_status_items(
        &self,
        queue: &str,
        member: &str,
        action_id: Option<&str>,
    ) -> Vec<String> {
        let mut items = Vec::new();
        for q in self
            .queues
            .values()
            .filter(|q| queue.is_empty() || q.name.eq_ignore_ascii_case(queue))
        {
            items.push(q.params_item(action_id));
            items.extend(
                q.members
                    .iter()
                    .filter(|m| member.is_empty() || m.interface == member || m.name == member)
                    .map(|m| m.status_item(&q.name, action_id)),
            );
        }
        items
    }

    /// The member `exten` of `queue`, as seen from outside.
    pub fn queue_member(&self, queue: &str, exten: &str) -> Option<QueueMemberInfo> {
        let q = self.queues.get(&queue.to_ascii_lowercase())?;
        let m = q.member_index(exten).and_then(|i| q.members.get(i))?;
        Some(QueueMemberInfo {
            queue: q.name.clone(),
            name: m.name.clone(),
            interface: m.interface.clone(),
            state_interface: m.state_interface.clone(),
            dynamic: m.dynamic,
            paused: m.paused,
            reason: m.reason.clone(),
            in_call: m.in_call(),
            status: m.status,
        })
    }
}
