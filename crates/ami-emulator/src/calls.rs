//! Calls between two endpoints: channels and their events (`Newchannel`,
//! `Newstate`, `Hold`, `MusicOnHoldStart`, `Hangup`...), with the channel
//! block of `ast_manager_build_channel_state_string_prefix()` as the
//! transcripts show it.

use crate::model::{Emitted, Pbx};
use crate::state::ChannelState;
use crate::wire::{Msg, CALL};

/// One channel (`PJSIP/<endpoint>-<8 hex digits>`).
#[derive(Debug, Clone)]
pub(crate) struct Channel {
    pub name: String,
    pub endpoint: String,
    pub state: ChannelState,
    pub connected: Option<String>,
    pub context: String,
    pub exten: String,
    pub uniqueid: String,
    pub linkedid: String,
    pub held: bool,
}

impl Channel {
    /// The channel block of an event.
    fn block(&self, msg: Msg) -> Msg {
        let (cl_num, cl_name) = match &self.connected {
            Some(n) => (n.clone(), format!("Ext {n}")),
            None => ("<unknown>".to_string(), "<unknown>".to_string()),
        };
        msg.h("Channel", &self.name)
            .h("ChannelState", &self.state.number().to_string())
            .h("ChannelStateDesc", self.state.desc())
            .h("CallerIDNum", &self.endpoint)
            .h("CallerIDName", &format!("Ext {}", self.endpoint))
            .h("ConnectedLineNum", &cl_num)
            .h("ConnectedLineName", &cl_name)
            .h("Language", "en")
            .h("AccountCode", "")
            .h("Context", &self.context)
            .h("Exten", &self.exten)
            .h("Priority", "1")
            .h("Uniqueid", &self.uniqueid)
            .h("Linkedid", &self.linkedid)
    }

    fn event(&self, name: &str) -> Emitted {
        self.event_with(name, |m| m)
    }

    fn event_with(&self, name: &str, extra: impl FnOnce(Msg) -> Msg) -> Emitted {
        Emitted {
            class: CALL,
            wire: extra(self.block(Msg::event(name, CALL))).done(),
        }
    }
}

impl Pbx {
    fn new_channel(
        &mut self,
        endpoint: &str,
        state: ChannelState,
        exten: &str,
        linkedid: Option<&str>,
    ) -> u64 {
        let n = self.next_channel;
        self.next_channel += 1;
        let uniqueid = format!("{}.{n}", self.uniqueid_base);
        let chan = Channel {
            name: format!("PJSIP/{endpoint}-{n:08x}"),
            endpoint: endpoint.to_string(),
            state,
            connected: None,
            context: self.default_context.clone(),
            exten: exten.to_string(),
            linkedid: linkedid.map_or_else(|| uniqueid.clone(), str::to_string),
            uniqueid,
            held: false,
        };
        self.channels.insert(n, chan);
        n
    }

    /// `from` calls `to`: Newchannel ×2, Newstate Ringing, then the device and
    /// hint states (`to` RINGING / 8, `from` INUSE / 1).
    pub fn call(&mut self, from: &str, to: &str, out: &mut Vec<Emitted>) -> u64 {
        let a = self.new_channel(from, ChannelState::Ring, to, None);
        let linked = self.channels.get(&a).map(|c| c.uniqueid.clone());
        let b = self.new_channel(to, ChannelState::Down, "s", linked.as_deref());
        if let Some(c) = self.channels.get(&a) {
            out.push(c.event("Newchannel"));
        }
        if let Some(c) = self.channels.get(&b) {
            out.push(c.event("Newchannel"));
        }
        if let Some(c) = self.channels.get_mut(&a) {
            c.connected = Some(to.to_string());
        }
        if let Some(c) = self.channels.get_mut(&b) {
            c.connected = Some(from.to_string());
            c.exten = to.to_string();
            c.state = ChannelState::Ringing;
            out.push(c.event("Newstate"));
        }
        self.refresh_pjsip(to, out);
        self.refresh_pjsip(from, out);
        let id = self.next_call;
        self.next_call += 1;
        self.calls.insert(id, (a, b));
        id
    }

    /// The callee answers: Newstate Up for both legs; `to` INUSE / 1.
    pub fn answer(&mut self, call: u64, out: &mut Vec<Emitted>) {
        let Some(&(a, b)) = self.calls.get(&call) else {
            return;
        };
        for id in [b, a] {
            if let Some(c) = self.channels.get_mut(&id) {
                if c.state != ChannelState::Up {
                    c.state = ChannelState::Up;
                    out.push(c.event("Newstate"));
                }
            }
        }
        if let Some(c) = self.channels.get_mut(&b) {
            // the callee's leg continues in the bridge, outside the dialplan
            c.exten = String::new();
        }
        self.refresh_endpoints(a, b, out);
    }

    /// The caller puts the callee on hold: Hold (caller's leg),
    /// MusicOnHoldStart (callee's leg); the **held** party goes ONHOLD / 16.
    pub fn hold(&mut self, call: u64, on: bool, out: &mut Vec<Emitted>) {
        let Some(&(a, b)) = self.calls.get(&call) else {
            return;
        };
        let changed = self.channels.get(&b).is_some_and(|c| c.held != on);
        if !changed {
            return;
        }
        if let Some(c) = self.channels.get(&a) {
            out.push(if on {
                c.event_with("Hold", |m| m.h("MusicClass", "default"))
            } else {
                c.event("Unhold")
            });
        }
        if let Some(c) = self.channels.get_mut(&b) {
            c.held = on;
            out.push(if on {
                c.event_with("MusicOnHoldStart", |m| m.h("Class", "default"))
            } else {
                c.event("MusicOnHoldStop")
            });
        }
        if let Some(to) = self.channels.get(&b).map(|c| c.endpoint.clone()) {
            self.refresh_pjsip(&to, out);
        }
    }

    /// Either side hangs up: Hangup ×2 (Cause 16), then both back to their
    /// idle states.
    pub fn hangup(&mut self, call: u64, out: &mut Vec<Emitted>) {
        let Some((a, b)) = self.calls.remove(&call) else {
            return;
        };
        let mut ends = Vec::new();
        for id in [a, b] {
            if let Some(c) = self.channels.remove(&id) {
                out.push(c.event_with("Hangup", |m| {
                    m.h("Cause", "16").h("Cause-txt", "Normal Clearing")
                }));
                ends.push(c.endpoint);
            }
        }
        for ep in ends {
            self.refresh_pjsip(&ep, out);
        }
    }

    fn refresh_endpoints(&mut self, a: u64, b: u64, out: &mut Vec<Emitted>) {
        for id in [b, a] {
            if let Some(ep) = self.channels.get(&id).map(|c| c.endpoint.clone()) {
                self.refresh_pjsip(&ep, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_flow_states() {
        let mut p = Pbx::new(
            ["1001", "1002"].map(|e| {
                (
                    e.to_string(),
                    "from-internal".to_string(),
                    format!("PJSIP/{e}"),
                )
            }),
            "from-internal".into(),
            1_796_232_729,
        );
        let mut out = Vec::new();
        p.register("1001", &mut out);
        p.register("1002", &mut out);
        out.clear();
        let status = |p: &Pbx, e: &str| p.hint(e, "from-internal").map(|h| h.status);
        let call = p.call("1001", "1002", &mut out);
        assert_eq!((status(&p, "1001"), status(&p, "1002")), (Some(1), Some(8)));
        assert!(out[0].wire.contains(
            "Channel: PJSIP/1001-00000000\r\nChannelState: 4\r\nChannelStateDesc: Ring\r\n"
        ));
        p.answer(call, &mut out);
        assert_eq!(status(&p, "1002"), Some(1));
        p.hold(call, true, &mut out);
        assert_eq!(status(&p, "1002"), Some(16));
        assert_eq!(status(&p, "1001"), Some(1));
        p.hold(call, false, &mut out);
        assert_eq!(status(&p, "1002"), Some(1));
        out.clear();
        p.hangup(call, &mut out);
        assert_eq!((status(&p, "1001"), status(&p, "1002")), (Some(0), Some(0)));
        let names: Vec<&str> = out
            .iter()
            .map(|e| e.wire.lines().next().unwrap_or_default())
            .collect();
        assert_eq!(
            names,
            [
                "Event: Hangup",
                "Event: Hangup",
                "Event: DeviceStateChange",
                "Event: ExtensionStatus",
                "Event: DeviceStateChange",
                "Event: ExtensionStatus"
            ]
        );
    }
}
