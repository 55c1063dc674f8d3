//! The actions, answered as `main/manager.c`, `main/pbx.c`, `main/db.c`,
//! `res/res_manager_devicestate.c` and `res/res_pjsip/pjsip_options.c` of
//! Asterisk 22 answer them (header order and spelling as in the transcripts).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::{custom_name, extension_status_fields, Emitted};
use crate::request::Request;
use crate::shared::Inner;
use crate::state::status_text;
use crate::wire::{
    ack, error, get_perm, list_complete, list_start, strings_to_mask, Msg, CALL, REPORTING, SYSTEM,
};

/// The answer to one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// One response.
    Message(String),
    /// A response, then the server closes the connection (`Logoff`).
    Close(String),
    /// A list: the start response, the items, the `...Complete` event.
    List {
        start: String,
        items: Vec<String>,
        end: String,
    },
    /// `Authentication failed`, sent after a 1 s delay, then the connection closes.
    LoginFailed(String),
}

/// The write classes an action needs (`0`: any session); `None` for an
/// unknown action.
fn authority(action: &str) -> Option<i32> {
    Some(match action {
        "login" | "logoff" | "challenge" | "ping" | "events" | "queuestatus" => 0,
        "extensionstate" | "extensionstatelist" | "devicestatelist" | "getvar" => CALL | REPORTING,
        "dbget" => SYSTEM | REPORTING,
        "dbput" | "dbdel" | "pjsipshowcontacts" => SYSTEM,
        "setvar" => CALL,
        _ => return None,
    })
}

/// `process_message()`: checks, then the action itself.
pub(crate) fn handle(inner: &mut Inner, sid: u64, req: &Request, out: &mut Vec<Emitted>) -> Reply {
    let id = req.action_id();
    if let Some(text) = req.error {
        return Reply::Message(error(id, text));
    }
    let action = req.header("Action");
    if action.is_empty() {
        return Reply::Message(error(id, "Missing action in request"));
    }
    let lower = action.to_ascii_lowercase();
    let (logged_in, writeperm) = inner
        .sessions
        .get(&sid)
        .map_or((false, 0), |s| (s.logged_in, s.writeperm));
    if !logged_in && !matches!(lower.as_str(), "login" | "logoff" | "challenge") {
        return Reply::Message(error(id, "Permission denied"));
    }
    let Some(needed) = authority(&lower) else {
        return Reply::Message(error(
            id,
            &format!(
                "Invalid/unknown command: {action}. Use Action: ListCommands to show available commands."
            ),
        ));
    };
    if needed != 0 && writeperm & needed == 0 {
        return Reply::Message(error(id, "Permission denied"));
    }
    match lower.as_str() {
        "login" => login(inner, sid, req),
        "logoff" => Reply::Close(
            Msg::response("Goodbye", id)
                .h("Message", "Thanks for all the fish.")
                .done(),
        ),
        "challenge" => challenge(inner, sid, req),
        "ping" => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let ts = format!("{}.{:06}", now.as_secs(), now.subsec_micros());
            Reply::Message(
                Msg::response("Success", id)
                    .h("Ping", "Pong")
                    .h("Timestamp", &ts)
                    .done(),
            )
        }
        "events" => events(inner, sid, req),
        "extensionstate" => extension_state(inner, req),
        "extensionstatelist" => extension_state_list(inner, req),
        "devicestatelist" => device_state_list(inner, req),
        "dbget" => db_get(inner, req),
        "dbput" => db_put(inner, req),
        "dbdel" => db_del(inner, req),
        "setvar" => setvar(inner, req, out),
        "getvar" => getvar(inner, req),
        "pjsipshowcontacts" => contacts(inner, req),
        _ => queue_status(inner, req),
    }
}

fn login(inner: &mut Inner, sid: u64, req: &Request) -> Reply {
    let id = req.action_id();
    let challenge = match inner.sessions.get(&sid) {
        Some(s) if s.logged_in => return Reply::Message(ack(id, "Already authenticated")),
        Some(s) => s.challenge.clone(),
        None => None,
    };
    let user = inner
        .users
        .iter()
        .find(|u| u.username.eq_ignore_ascii_case(req.header("Username")));
    let accepted = user.filter(|u| {
        if req.header("AuthType").eq_ignore_ascii_case("MD5") {
            let key = req.header("Key");
            challenge
                .as_deref()
                .is_some_and(|c| !key.is_empty() && !c.is_empty() && key == md5_key(c, &u.secret))
        } else {
            req.header("Secret") == u.secret
        }
    });
    let Some(user) = accepted.filter(|_| !inner.faults.refuse_logins) else {
        return Reply::LoginFailed(error(id, "Authentication failed"));
    };
    let (read, write) = (get_perm(&user.read), get_perm(&user.write));
    let uptime = inner.booted_at.elapsed().as_secs().to_string();
    let Some(s) = inner.sessions.get_mut(&sid) else {
        return Reply::LoginFailed(error(id, "Authentication failed"));
    };
    s.logged_in = true;
    s.readperm = read;
    s.writeperm = write;
    let mask = req.header("Events");
    if !mask.is_empty() {
        let m = strings_to_mask(mask);
        if m >= 0 {
            s.send_events = m;
        }
    }
    let mut wire = ack(id, "Authentication accepted");
    if s.send_events & SYSTEM != 0 && s.readperm & SYSTEM != 0 {
        wire.push_str(
            &Msg::event("FullyBooted", SYSTEM)
                .h("Uptime", &uptime)
                .h("LastReload", &uptime)
                .h("Status", "Fully Booted")
                .done(),
        );
    }
    Reply::Message(wire)
}

/// `MD5(challenge || secret)` in lowercase hex.
pub(crate) fn md5_key(challenge: &str, secret: &str) -> String {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    h.update(challenge.as_bytes());
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

fn challenge(inner: &mut Inner, sid: u64, req: &Request) -> Reply {
    let id = req.action_id();
    if !req.header("AuthType").eq_ignore_ascii_case("MD5") {
        return Reply::Message(error(id, "Must specify AuthType"));
    }
    let Some(s) = inner.sessions.get_mut(&sid) else {
        return Reply::Message(error(id, "Must specify AuthType"));
    };
    // one challenge per session, reused if asked again
    let c = s
        .challenge
        .get_or_insert_with(|| {
            inner
                .challenges
                .pop_front()
                // ast_random() is a long in 0..2^31
                .unwrap_or_else(|| (rand::random::<u32>() >> 1).to_string())
        })
        .clone();
    Reply::Message(Msg::response("Success", id).h("Challenge", &c).done())
}

fn events(inner: &mut Inner, sid: u64, req: &Request) -> Reply {
    let id = req.action_id();
    let mask = strings_to_mask(req.header("EventMask"));
    if let Some(s) = inner.sessions.get_mut(&sid) {
        if mask >= 0 {
            s.send_events = mask;
        }
    }
    let state = match mask {
        m if m > 0 => "On",
        0 => "Off",
        _ => return Reply::Message(error(id, "Invalid event mask")),
    };
    Reply::Message(Msg::response("Success", id).h("Events", state).done())
}

fn extension_state(inner: &Inner, req: &Request) -> Reply {
    let id = req.action_id();
    let exten = req.header("Exten");
    if exten.is_empty() {
        return Reply::Message(error(id, "Extension not specified"));
    }
    let context = match req.header("Context") {
        "" => "default",
        c => c,
    };
    let (hint, status) = inner
        .pbx
        .hint(exten, context)
        .map_or(("", -1), |h| (h.hint.as_str(), h.status));
    Reply::Message(
        Msg::response("Success", id)
            .h("Message", "Extension Status")
            .h("Exten", exten)
            .h("Context", context)
            .h("Hint", hint)
            .h("Status", &status.to_string())
            .h("StatusText", status_text(status))
            .done(),
    )
}

fn extension_state_list(inner: &Inner, req: &Request) -> Reply {
    let id = req.action_id();
    if inner.pbx.hints.is_empty() {
        return Reply::Message(error(id, "No dialplan hints are available"));
    }
    let items: Vec<String> = inner
        .pbx
        .hints
        .iter()
        .filter(|h| !h.exten.starts_with('_'))
        .map(|h| extension_status_fields(Msg::item("ExtensionStatus", id), h).done())
        .collect();
    list(
        id,
        "Extension Statuses will follow",
        "ExtensionStateListComplete",
        items,
    )
}

fn list(id: Option<&str>, text: &str, complete: &str, items: Vec<String>) -> Reply {
    Reply::List {
        start: list_start(id, text),
        end: list_complete(complete, id, items.len()),
        items,
    }
}

fn device_state_list(inner: &Inner, req: &Request) -> Reply {
    let id = req.action_id();
    let items = inner
        .pbx
        .cached_devices()
        .map(|(d, s)| {
            Msg::item("DeviceStateChange", id)
                .h("Device", d)
                .h("State", s.as_str())
                .done()
        })
        .collect();
    list(
        id,
        "Device State Changes will follow",
        "DeviceStateListComplete",
        items,
    )
}

fn family_key(req: &Request) -> (&str, &str) {
    (req.header("Family"), req.header("Key"))
}

fn db_get(inner: &Inner, req: &Request) -> Reply {
    let id = req.action_id();
    let (family, key) = family_key(req);
    if family.is_empty() {
        return Reply::Message(error(id, "No family specified."));
    }
    if key.is_empty() {
        return Reply::Message(error(id, "No key specified."));
    }
    let Some(val) = inner.pbx.db.get(&(family.to_string(), key.to_string())) else {
        return Reply::Message(error(id, "Database entry not found"));
    };
    // DBGetResponse puts ActionID last
    let item = Msg::default()
        .h("Event", "DBGetResponse")
        .h("Family", family)
        .h("Key", key)
        .h("Val", val)
        .id(id)
        .done();
    list(id, "Result will follow", "DBGetComplete", vec![item])
}

fn db_put(inner: &mut Inner, req: &Request) -> Reply {
    let id = req.action_id();
    let (family, key) = family_key(req);
    if family.is_empty() {
        return Reply::Message(error(id, "No family specified"));
    }
    if key.is_empty() {
        return Reply::Message(error(id, "No key specified"));
    }
    inner.pbx.db.insert(
        (family.to_string(), key.to_string()),
        req.header("Val").to_string(),
    );
    Reply::Message(ack(id, "Updated database successfully"))
}

fn db_del(inner: &mut Inner, req: &Request) -> Reply {
    let id = req.action_id();
    let (family, key) = family_key(req);
    if family.is_empty() {
        return Reply::Message(error(id, "No family specified."));
    }
    if key.is_empty() {
        return Reply::Message(error(id, "No key specified."));
    }
    match inner.pbx.db.remove(&(family.to_string(), key.to_string())) {
        Some(_) => Reply::Message(ack(id, "Key deleted successfully")),
        None => Reply::Message(error(id, "Database entry could not be deleted")),
    }
}

/// `NAME(args)` → (`NAME`, `args`) for a dialplan function.
fn function(var: &str) -> Option<(&str, &str)> {
    let inner = var.strip_suffix(')')?;
    inner.split_once('(')
}

/// A `Channel` header naming no channel of the model.
fn no_such_channel(inner: &Inner, req: &Request) -> bool {
    let chan = req.header("Channel");
    !chan.is_empty() && !inner.pbx.channels.values().any(|c| c.name == chan)
}

fn setvar(inner: &mut Inner, req: &Request, out: &mut Vec<Emitted>) -> Reply {
    let id = req.action_id();
    let var = req.header("Variable");
    if var.is_empty() {
        return Reply::Message(error(id, "No variable specified"));
    }
    if no_such_channel(inner, req) {
        return Reply::Message(error(id, "No such channel"));
    }
    let value = req.header("Value");
    let ok = match function(var) {
        Some((f, dev)) if f.eq_ignore_ascii_case("DEVICE_STATE") => {
            inner.pbx.write_custom_state(dev, value, out)
        }
        Some((f, path)) if f.eq_ignore_ascii_case("DB") => match path.split_once('/') {
            Some((family, key)) if !family.is_empty() && !key.is_empty() => {
                inner
                    .pbx
                    .db
                    .insert((family.to_string(), key.to_string()), value.to_string());
                true
            }
            _ => false,
        },
        // a function the emulator does not have: the write fails
        Some(_) => false,
        None => {
            inner.pbx.globals.insert(var.to_string(), value.to_string());
            true
        }
    };
    if ok {
        Reply::Message(ack(id, "Variable Set"))
    } else {
        Reply::Message(error(id, "Variable not set"))
    }
}

fn getvar(inner: &Inner, req: &Request) -> Reply {
    let id = req.action_id();
    let var = req.header("Variable");
    if var.is_empty() {
        return Reply::Message(error(id, "No variable specified"));
    }
    if no_such_channel(inner, req) {
        return Reply::Message(error(id, "No such channel"));
    }
    let value = match function(var) {
        Some((f, dev)) if f.eq_ignore_ascii_case("DEVICE_STATE") => {
            let state = match custom_name(dev) {
                Some(name) => inner.pbx.device_state(&format!("Custom:{name}")),
                None => inner.pbx.device_state(dev),
            };
            state.as_str().to_string()
        }
        Some((f, path)) if f.eq_ignore_ascii_case("DB") => path
            .split_once('/')
            .and_then(|(fam, key)| inner.pbx.db.get(&(fam.to_string(), key.to_string())))
            .cloned()
            .unwrap_or_default(),
        Some(_) => String::new(),
        None => inner.pbx.globals.get(var).cloned().unwrap_or_default(),
    };
    Reply::Message(
        Msg::response("Success", id)
            .h("Variable", var)
            .h("Value", &value)
            .done(),
    )
}

fn contacts(inner: &Inner, req: &Request) -> Reply {
    let id = req.action_id();
    let items: Vec<String> = inner
        .pbx
        .endpoints
        .iter()
        .filter_map(|(name, ep)| ep.contact.as_ref().map(|c| (name, c)))
        .map(|(name, c)| {
            Msg::item("ContactList", id)
                .h("ObjectType", "contact")
                .h("ObjectName", &c.object_name)
                .h("ViaAddr", "127.0.0.1")
                .h("QualifyTimeout", "3.000000")
                .h("Qualify2xxOnly", "false")
                .h("CallId", &c.call_id)
                .h("RegServer", "")
                .h("PruneOnBoot", "no")
                .h("Path", "")
                .h("Endpoint", name)
                .h("ViaPort", &c.port.to_string())
                .h("AuthenticateQualify", "no")
                .h("Uri", &c.uri(name))
                .h("QualifyFrequency", "0")
                .h("UserAgent", &c.user_agent)
                .h("ExpirationTime", &c.expiration.to_string())
                .h("OutboundProxy", "")
                .h("Status", "NonQualified")
                .h("RoundtripUsec", "N/A")
                .done()
        })
        .collect();
    if items.is_empty() {
        // the stray LF is Asterisk's ("No Contacts found\n")
        return Reply::Message(error(id, "No Contacts found\n"));
    }
    list(
        id,
        "A listing of Contacts follows, presented as ContactList events",
        "ContactListComplete",
        items,
    )
}

/// `manager_queues_status()`: per queue `QueueParams` and its `QueueMember`s
/// (optional filters `Queue` and `Member`); no caller waits, so no `QueueEntry`.
fn queue_status(inner: &Inner, req: &Request) -> Reply {
    let id = req.action_id();
    let items = inner
        .pbx
        .queue_status_items(req.header("Queue"), req.header("Member"), id);
    list(id, "Queue status will follow", "QueueStatusComplete", items)
}
