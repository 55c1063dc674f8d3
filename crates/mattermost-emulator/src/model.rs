//! The emulated server's data: accounts, statuses, custom statuses,
//! channels and posts, and the permission rules of the real server.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What an account may do, as far as this API is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// System Admin (`manage_system`): may change anyone.
    SystemAdmin,
    /// A member with `edit_other_users` (a custom role): may change anyone
    /// but a System Admin.
    EditOtherUsers,
    /// A plain member (the default role of a bot): may change only itself.
    Member,
}

/// An account (a person or a bot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The user id (26 characters in Mattermost; any text here).
    pub id: String,
    /// The username.
    pub username: String,
    /// The e-mail address.
    pub email: String,
    /// What it may do.
    pub role: Role,
}

impl Account {
    /// An account with `role`.
    pub fn new(id: &str, username: &str, email: &str, role: Role) -> Self {
        Self {
            id: id.to_owned(),
            username: username.to_owned(),
            email: email.to_owned(),
            role,
        }
    }
}

/// A user's status, as `GET /users/{id}/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The user id.
    pub user_id: String,
    /// `online`, `away`, `offline` or `dnd`.
    pub status: String,
    /// Set by hand (not by activity): anything but `online` set through the API.
    pub manual: bool,
    /// Milliseconds since the epoch.
    pub last_activity_at: i64,
    /// When a timed DND ends, in epoch **seconds** (0: no end).
    pub dnd_end_time: i64,
}

/// A custom status (emoji and text), as stored in the user's props.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CustomStatus {
    /// The emoji's name (`telephone_receiver`).
    #[serde(default)]
    pub emoji: String,
    /// The text (at most 100 characters are kept).
    #[serde(default)]
    pub text: String,
    /// `thirty_minutes`, `one_hour`, `four_hours`, `today`, `this_week`,
    /// `date_and_time`, or empty.
    #[serde(default)]
    pub duration: String,
    /// RFC 3339; empty or the zero time for none.
    #[serde(default)]
    pub expires_at: String,
}

/// The durations the server accepts.
pub const DURATIONS: [&str; 6] = [
    "thirty_minutes",
    "one_hour",
    "four_hours",
    "today",
    "this_week",
    "date_and_time",
];

/// A post in a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// The channel's id.
    pub channel_id: String,
    /// Who posted (the token's account).
    pub user_id: String,
    /// The Markdown text.
    pub message: String,
}

/// A channel of a team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// The channel id.
    pub id: String,
    /// The team's URL name.
    pub team: String,
    /// The channel's URL name.
    pub name: String,
    /// Accounts that may post (bots must be members).
    pub members: Vec<String>,
}

/// Everything the emulator stores.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub accounts: Vec<Account>,
    pub statuses: BTreeMap<String, Status>,
    pub custom: BTreeMap<String, CustomStatus>,
    pub channels: Vec<Channel>,
    pub posts: Vec<Post>,
}

impl Store {
    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }

    pub fn by_email(&self, email: &str) -> Option<&Account> {
        self.accounts
            .iter()
            .find(|a| a.email.eq_ignore_ascii_case(email))
    }

    /// The status shown: a user never seen is `offline` (as the server makes up).
    pub fn status(&self, id: &str) -> Status {
        self.statuses.get(id).cloned().unwrap_or_else(|| Status {
            user_id: id.to_owned(),
            status: "offline".into(),
            manual: false,
            last_activity_at: 0,
            dnd_end_time: 0,
        })
    }

    /// `SessionHasPermissionToUser`: self, System Admin, or
    /// `edit_other_users` for a target that is not a System Admin.
    pub fn may_change(&self, caller: &Account, target: &str) -> bool {
        if caller.id == target {
            return true;
        }
        match caller.role {
            Role::SystemAdmin => true,
            Role::EditOtherUsers => self
                .account(target)
                .is_none_or(|t| t.role != Role::SystemAdmin),
            Role::Member => false,
        }
    }

    /// The user object, with the custom status in the props as a JSON
    /// string (as the server stores it).
    pub fn user_json(&self, account: &Account) -> serde_json::Value {
        let mut props = serde_json::Map::new();
        if let Some(c) = self.custom.get(&account.id) {
            let text = serde_json::to_string(c).unwrap_or_default();
            props.insert("customStatus".into(), text.into());
        }
        serde_json::json!({
            "id": account.id,
            "username": account.username,
            "email": account.email,
            "roles": match account.role {
                Role::SystemAdmin => "system_user system_admin",
                _ => "system_user",
            },
            "props": props,
        })
    }
}
