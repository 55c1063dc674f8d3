//! Actions to send, and the identifiers that tie responses to them.

use std::fmt;

/// An action: a name and `Key: Value` fields in order. The client adds the
/// `ActionID` itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// The action name (`Action:`), e.g. `ExtensionStateList`.
    pub name: String,
    /// The other fields, in order. An `ActionID` here is refused.
    pub fields: Vec<(String, String)>,
}

impl Action {
    /// An action with no fields.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            fields: Vec::new(),
        }
    }

    /// Adds a field (builder style).
    pub fn field(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.push((key.into(), value.into()));
        self
    }

    /// `Ping` (the client pings by itself; see [`crate::Config::ping_interval`]).
    pub fn ping() -> Self {
        Self::new("Ping")
    }

    /// `ExtensionStateList`: one `ExtensionStatus` per hint, as one list.
    pub fn extension_state_list() -> Self {
        Self::new("ExtensionStateList")
    }

    /// `DeviceStateList`: one `DeviceStateChange` per cached device, as one list.
    pub fn device_state_list() -> Self {
        Self::new("DeviceStateList")
    }

    /// `ExtensionState` for one extension.
    pub fn extension_state(exten: impl Into<String>, context: impl Into<String>) -> Self {
        Self::new("ExtensionState")
            .field("Exten", exten)
            .field("Context", context)
    }

    /// `DBGet` (answered as a list of one `DBGetResponse`).
    pub fn db_get(family: impl Into<String>, key: impl Into<String>) -> Self {
        Self::new("DBGet").field("Family", family).field("Key", key)
    }

    /// `Events` with an `EventMask` (e.g. `system,call`, `on`, `off`).
    pub fn events(mask: impl Into<String>) -> Self {
        Self::new("Events").field("EventMask", mask)
    }
}

/// The `ActionID` the client gave an action.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActionId(pub(crate) String);

impl ActionId {
    /// The identifier as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
