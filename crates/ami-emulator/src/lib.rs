//! An emulator of the Asterisk 22 manager interface (AMI), for tests.
//!
//! It listens on `127.0.0.1:<ephemeral port>`, greets with
//! `Asterisk Call Manager/11.0.0` and answers actions byte for byte as the
//! recorded Asterisk 22.10.1 transcripts show, over a small in-process PBX:
//!
//! * **Hints** (exten, context, hint string such as
//!   `PJSIP/1001&Custom:DND1001,CustomPresence:1001`), aggregated over their
//!   devices exactly as `ast_devstate_aggregate_add()` does (highest rank wins,
//!   RINGING with INUSE/ONHOLD/BUSY is RINGINUSE) and mapped to the hint
//!   `Status` by `ast_devstate_to_extenstate()` (UNKNOWN → 0 Idle!).
//! * **Devices**: `PJSIP/<n>` follows its endpoint (no contact → UNAVAILABLE,
//!   registered → NOT_INUSE, else its channels: ringing, in use, held);
//!   `Custom:<name>` is set by `Setvar DEVICE_STATE(Custom:<name>)` (astdb
//!   `CustomDevstate/<name>`; UNKNOWN or garbage → `Variable not set`).
//! * **astdb** (`DBGet`/`DBPut`/`DBDel`), **contacts** (`PJSIPShowContacts`),
//!   FreePBX-style **DND** ([`AmiEmulator::set_dnd`]: `DND/<ext>` = `YES`,
//!   `Custom:DND<ext>` BUSY / UNAVAILABLE).
//! * **Queues**: members the FreePBX way (`Local/<exten>@from-queue/n`,
//!   state interface `PJSIP/<exten>`), added, removed and paused
//!   ([`AmiEmulator::add_queue_member`], [`AmiEmulator::pause_queue_member`]),
//!   their `Status` following the state interface; `QueueMember*` events
//!   (class `agent`) and the `QueueStatus` list.
//! * **Sessions**: plain and MD5-challenge login, `Events:` masks and read
//!   permissions (an event goes to a session only if both hold its class),
//!   write permissions per action, `Permission denied` before login, the
//!   exact error texts, `Privilege: <class>,all` on async events.
//! * **Faults**: refused logins (answered after 1 s, then closed), a list cut
//!   mid-way, shutdown (`Shutdown` event, connections refused) and boot,
//!   dropped connections, a slow reader closed after the write time-out, raw
//!   bytes (garbage, oversized lines, recorded transcripts).
//! * **Observation**: [`AmiEmulator::sessions`], [`AmiEmulator::wait_sessions`],
//!   [`AmiEmulator::actions`], [`AmiEmulator::subscribe_actions`].
//!
//! The facts behind each reply are in the project's `AMI-FACTS.md` (from the
//! Asterisk sources) and the transcripts it was checked against.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use ami_emulator::{AmiEmulator, DeviceState, EmulatorConfig};
//!
//! let emu = AmiEmulator::start(
//!     EmulatorConfig::new()
//!         .user("blf", "secret")
//!         .freepbx_dnd(true)
//!         .extensions(1001..=1003),
//! )
//! .await?;
//! // connect an AMI client to emu.addr() ...
//! emu.register("1001");
//! assert_eq!(emu.extension_status("1001"), Some(0));
//! let call = emu.call("1001", "1002");
//! assert_eq!(emu.device_state("PJSIP/1001"), DeviceState::InUse);
//! emu.hangup(call);
//! emu.set_dnd("1001", true);
//! assert_eq!(emu.extension_status("1001"), Some(2));
//! assert_eq!(emu.db_get("DND", "1001").as_deref(), Some("YES"));
//! emu.stop().await;
//! # Ok(())
//! # }
//! ```

mod actions;
mod calls;
mod config;
mod emulator;
mod model;
mod queues;
mod request;
mod session;
mod shared;
mod state;
mod transcript;
mod wire;

pub use config::{EmulatorConfig, Hint, ManagerUser, QueueSetup, DEFAULT_CONTEXT};
pub use emulator::{AmiEmulator, CallId, ReceivedAction};
pub use queues::QueueMemberInfo;
pub use state::{aggregate, status_text, DeviceState};
pub use transcript::{parse_transcript, read_transcript};

/// The README's example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
