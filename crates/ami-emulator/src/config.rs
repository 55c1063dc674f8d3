//! What the emulated PBX is set up with: manager users and hints.

use std::fmt;

/// A `manager.conf` user.
#[derive(Clone, PartialEq, Eq)]
pub struct ManagerUser {
    /// The user name (matched ignoring ASCII case, as `strcasecmp` does).
    pub username: String,
    /// The secret (compared case-sensitively). Never shown by `Debug`.
    pub secret: String,
    /// `read =` classes, e.g. `system,call,agent` or `all`.
    pub read: String,
    /// `write =` classes, e.g. `system,call,reporting` or `all`.
    pub write: String,
}

impl ManagerUser {
    /// A user with `read = all` and `write = all`.
    pub fn new(username: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            secret: secret.into(),
            read: "all".into(),
            write: "all".into(),
        }
    }

    /// Sets the `read =` classes (builder style).
    pub fn read(mut self, classes: impl Into<String>) -> Self {
        self.read = classes.into();
        self
    }

    /// Sets the `write =` classes (builder style).
    pub fn write(mut self, classes: impl Into<String>) -> Self {
        self.write = classes.into();
        self
    }
}

impl fmt::Debug for ManagerUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagerUser")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .field("read", &self.read)
            .field("write", &self.write)
            .finish()
    }
}

/// A dialplan hint: `exten => <exten>,hint,<hint>` in `<context>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// The extension, e.g. `1001`.
    pub exten: String,
    /// The context, e.g. `ext-local` (FreePBX) or `from-internal`.
    pub context: String,
    /// The hint, e.g. `PJSIP/1001&Custom:DND1001,CustomPresence:1001`.
    pub hint: String,
}

/// A queue of `queues.conf`: its name and the extensions that are static
/// members (`member => Local/<exten>@from-queue/n,0,Ext <exten>,PJSIP/<exten>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSetup {
    /// The queue's name, e.g. `support`.
    pub name: String,
    /// Extensions that are static members.
    pub static_members: Vec<String>,
}

/// The context FreePBX puts its extension hints in.
pub const DEFAULT_CONTEXT: &str = "ext-local";

/// How the emulator starts.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Manager users.
    pub users: Vec<ManagerUser>,
    /// Hints, in the order `ExtensionStateList` lists them.
    pub hints: Vec<Hint>,
    /// FreePBX-style extensions: [`EmulatorConfig::extensions`] writes hints
    /// `PJSIP/<n>&Custom:DND<n>,CustomPresence:<n>` instead of `PJSIP/<n>`.
    /// ([`crate::AmiEmulator::set_dnd`] always works the FreePBX way.)
    pub freepbx_dnd: bool,
    /// The context of hints added by [`EmulatorConfig::hint`],
    /// [`EmulatorConfig::extensions`] and [`crate::AmiEmulator::add_hint`]
    /// (default [`DEFAULT_CONTEXT`]).
    pub context: String,
    /// Queues as `queues.conf` defines them, with their static members.
    pub queues: Vec<QueueSetup>,
    /// MD5 challenges to hand out, in order, one per session that asks,
    /// before random ones (to compare replies with a transcript byte for byte).
    pub challenges: Vec<String>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl EmulatorConfig {
    /// No users, no hints, plain hints, context `ext-local`.
    pub fn new() -> Self {
        Self {
            users: Vec::new(),
            hints: Vec::new(),
            freepbx_dnd: false,
            context: DEFAULT_CONTEXT.into(),
            queues: Vec::new(),
            challenges: Vec::new(),
        }
    }

    /// Adds a user with `read = all`, `write = all`.
    pub fn user(mut self, name: impl Into<String>, secret: impl Into<String>) -> Self {
        self.users.push(ManagerUser::new(name, secret));
        self
    }

    /// Adds a user as given (e.g. with `read = system,call`).
    pub fn manager_user(mut self, user: ManagerUser) -> Self {
        self.users.push(user);
        self
    }

    /// Sets the context of the hints added after this call.
    pub fn context(mut self, context: impl Into<String>) -> Self {
        self.context = context.into();
        self
    }

    /// Sets [`EmulatorConfig::freepbx_dnd`].
    pub fn freepbx_dnd(mut self, on: bool) -> Self {
        self.freepbx_dnd = on;
        self
    }

    /// Queues an MD5 challenge for the next session that asks for one.
    pub fn fixed_challenge(mut self, challenge: impl Into<String>) -> Self {
        self.challenges.push(challenge.into());
        self
    }

    /// Adds a queue with no static member (nothing if it is there already).
    pub fn queue(mut self, name: impl Into<String>) -> Self {
        self.queue_setup(name.into());
        self
    }

    /// Adds `exten` as a static member of `queue` (the queue is created if
    /// needed); dynamic members come with [`crate::AmiEmulator::add_queue_member`].
    pub fn static_queue_member(
        mut self,
        queue: impl Into<String>,
        exten: impl Into<String>,
    ) -> Self {
        self.queue_setup(queue.into())
            .static_members
            .push(exten.into());
        self
    }

    fn queue_setup(&mut self, name: String) -> &mut QueueSetup {
        let i = match self
            .queues
            .iter()
            .position(|q| q.name.eq_ignore_ascii_case(&name))
        {
            Some(i) => i,
            None => {
                self.queues.push(QueueSetup {
                    name,
                    static_members: Vec::new(),
                });
                self.queues.len() - 1
            }
        };
        &mut self.queues[i]
    }

    /// Adds a hint in the current context.
    pub fn hint(mut self, exten: impl Into<String>, hint: impl Into<String>) -> Self {
        self.hints.push(Hint {
            exten: exten.into(),
            context: self.context.clone(),
            hint: hint.into(),
        });
        self
    }

    /// Adds one hint per extension: `PJSIP/<n>` (or the FreePBX form when
    /// [`EmulatorConfig::freepbx_dnd`] is set), e.g. `extensions(1000..11000)`.
    pub fn extensions<I>(mut self, extens: I) -> Self
    where
        I: IntoIterator,
        I::Item: fmt::Display,
    {
        for n in extens {
            let hint = if self.freepbx_dnd {
                format!("PJSIP/{n}&Custom:DND{n},CustomPresence:{n}")
            } else {
                format!("PJSIP/{n}")
            };
            self = self.hint(n.to_string(), hint);
        }
        self
    }
}
