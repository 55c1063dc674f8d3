//! What goes on the wire: messages with their header order, event classes
//! and the mask grammar of `manager.c`.

/// `EVENT_FLAG_SYSTEM`.
pub const SYSTEM: i32 = 1;
/// `EVENT_FLAG_CALL`.
pub const CALL: i32 = 1 << 1;
/// `EVENT_FLAG_AGENT` (queue members).
pub const AGENT: i32 = 1 << 5;
/// `EVENT_FLAG_REPORTING`.
pub const REPORTING: i32 = 1 << 9;

/// `perms[]` of `main/manager.c`, in its order (`all` is `INT_MAX`).
const PERMS: &[(i32, &str)] = &[
    (1, "system"),
    (1 << 1, "call"),
    (1 << 2, "log"),
    (1 << 3, "verbose"),
    (1 << 4, "command"),
    (1 << 5, "agent"),
    (1 << 6, "user"),
    (1 << 7, "config"),
    (1 << 8, "dtmf"),
    (1 << 9, "reporting"),
    (1 << 10, "cdr"),
    (1 << 11, "dialplan"),
    (1 << 12, "originate"),
    (1 << 13, "agi"),
    (1 << 15, "cc"),
    (1 << 16, "aoc"),
    (1 << 17, "test"),
    (1 << 18, "security"),
    (1 << 30, "message"),
    (i32::MAX, "all"),
    (0, "none"),
];

/// `ast_instring()`: a comma list holds `small`. Every item but the last is
/// compared on its own length only (`strncmp`), so `sys,call` holds `system`
/// as in Asterisk.
fn instring(big: &str, small: &str) -> bool {
    let mut rest = big;
    loop {
        match rest.find(',') {
            Some(i) => {
                let item = rest.as_bytes().get(..i).unwrap_or_default();
                let n = item.len();
                let s = small.as_bytes();
                // strncmp(item, small, n): equal when the first n bytes agree
                // and `small` is not shorter than n
                if s.len() >= n && s.get(..n) == Some(item) {
                    return true;
                }
                rest = rest.get(i + 1..).unwrap_or_default();
                if rest.is_empty() {
                    return false;
                }
            }
            None => return rest == small,
        }
    }
}

/// `get_perm()`: the classes named in a comma list (`read =`/`write =` of a user).
pub fn get_perm(list: &str) -> i32 {
    PERMS
        .iter()
        .filter(|(_, label)| instring(list, label))
        .fold(0, |acc, (num, _)| acc | num)
}

/// `strings_to_mask()`: digits → the number, a false word → 0, a true word →
/// every class, anything else a class list. `-1` for an empty mask (invalid).
pub fn strings_to_mask(mask: &str) -> i32 {
    if mask.is_empty() {
        return -1;
    }
    if mask.bytes().all(|b| b.is_ascii_digit()) {
        return atoi(mask);
    }
    if is_false(mask) {
        return 0;
    }
    if is_true(mask) {
        return PERMS.iter().fold(0, |acc, (num, _)| acc | num);
    }
    get_perm(mask)
}

fn atoi(s: &str) -> i32 {
    s.bytes().fold(0i32, |acc, b| {
        acc.wrapping_mul(10).wrapping_add(i32::from(b - b'0'))
    })
}

/// `ast_true()`.
fn is_true(s: &str) -> bool {
    ["yes", "true", "y", "t", "1", "on"]
        .iter()
        .any(|w| s.eq_ignore_ascii_case(w))
}

/// `ast_false()`.
fn is_false(s: &str) -> bool {
    ["no", "false", "n", "f", "0", "off"]
        .iter()
        .any(|w| s.eq_ignore_ascii_case(w))
}

/// The `Privilege:` text of an event class, e.g. `call,all`.
pub fn privilege(class: i32) -> String {
    let mut out = String::new();
    for (num, label) in PERMS.iter().take(PERMS.len() - 2) {
        if class & num == *num {
            out.push_str(label);
            out.push(',');
        }
    }
    out.push_str("all");
    out
}

/// A message under construction: `Key: Value` lines in the order added.
#[derive(Debug, Clone, Default)]
pub struct Msg {
    buf: String,
}

impl Msg {
    /// `Response: <kind>` then `ActionID` if the action had one.
    pub fn response(kind: &str, action_id: Option<&str>) -> Self {
        Self::default().h("Response", kind).id(action_id)
    }

    /// An async event: `Event:` then `Privilege: <class>,all`.
    pub fn event(name: &str, class: i32) -> Self {
        Self::default()
            .h("Event", name)
            .h("Privilege", &privilege(class))
    }

    /// A list item: `Event:` then the list's `ActionID` (no `Privilege`).
    pub fn item(name: &str, action_id: Option<&str>) -> Self {
        Self::default().h("Event", name).id(action_id)
    }

    /// One header line.
    pub fn h(mut self, key: &str, value: &str) -> Self {
        self.buf.push_str(key);
        self.buf.push_str(": ");
        self.buf.push_str(value);
        self.buf.push_str("\r\n");
        self
    }

    /// `ActionID: <id>` when there is one (Asterisk skips an empty one).
    pub fn id(self, action_id: Option<&str>) -> Self {
        match action_id {
            Some(id) if !id.is_empty() => self.h("ActionID", id),
            _ => self,
        }
    }

    /// The finished message, closed by its blank line.
    pub fn done(mut self) -> String {
        self.buf.push_str("\r\n");
        self.buf
    }
}

/// `astman_send_error`: `Response: Error`, `ActionID`, `Message`.
pub fn error(action_id: Option<&str>, text: &str) -> String {
    Msg::response("Error", action_id).h("Message", text).done()
}

/// `astman_send_ack`: `Response: Success`, `ActionID`, `Message`.
pub fn ack(action_id: Option<&str>, text: &str) -> String {
    Msg::response("Success", action_id)
        .h("Message", text)
        .done()
}

/// `astman_send_listack`: the start of a list.
pub fn list_start(action_id: Option<&str>, text: &str) -> String {
    Msg::response("Success", action_id)
        .h("EventList", "start")
        .h("Message", text)
        .done()
}

/// `astman_send_list_complete_start/end`: the end of a list.
pub fn list_complete(name: &str, action_id: Option<&str>, items: usize) -> String {
    Msg::item(name, action_id)
        .h("EventList", "Complete")
        .h("ListItems", &items.to_string())
        .done()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(strings_to_mask(""), -1);
        assert_eq!(strings_to_mask("off"), 0);
        assert_eq!(strings_to_mask("on"), i32::MAX);
        assert_eq!(strings_to_mask("all"), i32::MAX);
        assert_eq!(strings_to_mask("6"), 6);
        assert_eq!(strings_to_mask("system,call"), SYSTEM | CALL);
        assert_eq!(strings_to_mask("sys,call"), SYSTEM | CALL);
        // names are case-sensitive
        assert_eq!(strings_to_mask("Call"), 0);
        assert_eq!(get_perm("system,call,agent"), SYSTEM | CALL | AGENT);
        assert_eq!(get_perm("call,"), CALL);
    }

    #[test]
    fn privileges() {
        assert_eq!(privilege(CALL), "call,all");
        assert_eq!(privilege(SYSTEM), "system,all");
        assert_eq!(privilege(AGENT), "agent,all");
    }
}
