//! The scripted day at the office: who calls whom and when, as the PBX
//! reports it (the dialogs of each extension after every change).

use std::collections::BTreeMap;
use std::time::Duration;

use sip_notifier::{DialogSpec, DialogState, Direction};

/// Someone in the office.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The extension, e.g. `1001`.
    pub extension: String,
    /// First name, for the table.
    pub name: String,
    /// The Microsoft 365 user (UPN).
    pub email: String,
}

/// One change on the PBX: an extension's dialogs from `at` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// When, at `--speed 1`, from the start of the day.
    pub at: Duration,
    /// The extension.
    pub extension: String,
    /// Every dialog it has now (terminated ones once, as Asterisk sends them).
    pub dialogs: Vec<DialogSpec>,
}

/// The day: the people, the changes in time order, its length.
#[derive(Debug, Clone)]
pub struct Script {
    /// Everyone watched (their extensions are subscribed to).
    pub people: Vec<Person>,
    /// The changes, in time order.
    pub steps: Vec<Step>,
    /// When the day is over, at `--speed 1`.
    pub length: Duration,
}

/// The length of the day at `--speed 1`.
pub const DAY: Duration = Duration::from_secs(60);

const CAST: [(&str, &str); 5] = [
    ("1001", "Alice"),
    ("1002", "Bob"),
    ("1003", "Carol"),
    ("1004", "Dave"),
    ("1005", "Erin"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Party {
    Ext(String),
    Outside(String),
}

impl Party {
    fn identity(&self) -> &str {
        match self {
            Party::Ext(e) | Party::Outside(e) => e,
        }
    }
    fn ext(&self) -> Option<&str> {
        match self {
            Party::Ext(e) => Some(e),
            Party::Outside(_) => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Call {
    caller: Party,
    callee: Party,
    state: DialogState,
    held_by: Option<String>,
}

/// Builds steps from call events: each event re-states the dialogs of the
/// extensions it touches.
#[derive(Debug, Default)]
struct Day {
    calls: BTreeMap<String, Call>,
    steps: Vec<Step>,
}

impl Day {
    fn dialogs_of(&self, ext: &str) -> Vec<DialogSpec> {
        let mut out = Vec::new();
        for (id, c) in &self.calls {
            let (direction, remote) = if c.caller.ext() == Some(ext) {
                (Direction::Initiator, &c.callee)
            } else if c.callee.ext() == Some(ext) {
                (Direction::Recipient, &c.caller)
            } else {
                continue;
            };
            let mut d = DialogSpec::new(id.clone(), direction, c.state.clone())
                .with_remote(remote.identity());
            d.held = c.held_by.as_deref() == Some(ext);
            out.push(d);
        }
        out
    }

    fn touch(&mut self, at: f64, id: &str) {
        let Some(c) = self.calls.get(id) else { return };
        let exts: Vec<String> = [c.caller.ext(), c.callee.ext()]
            .into_iter()
            .flatten()
            .map(str::to_string)
            .collect();
        for ext in exts {
            let dialogs = self.dialogs_of(&ext);
            self.steps.push(Step {
                at: Duration::from_secs_f64(at),
                extension: ext,
                dialogs,
            });
        }
    }

    /// `caller` dials `callee`: the caller's phone shows the call at once, the
    /// callee's rings.
    fn dial(&mut self, at: f64, id: &str, caller: Party, callee: Party) {
        self.calls.insert(
            id.to_string(),
            Call {
                caller,
                callee,
                state: DialogState::Early,
                held_by: None,
            },
        );
        self.touch(at, id);
    }

    fn set(&mut self, at: f64, id: &str, f: impl FnOnce(&mut Call)) {
        if let Some(c) = self.calls.get_mut(id) {
            f(c);
        }
        self.touch(at, id);
    }

    fn answer(&mut self, at: f64, id: &str) {
        self.set(at, id, |c| c.state = DialogState::Confirmed);
    }

    fn hold(&mut self, at: f64, id: &str, by: &str) {
        self.set(at, id, |c| c.held_by = Some(by.to_string()));
    }

    fn resume(&mut self, at: f64, id: &str) {
        self.set(at, id, |c| c.held_by = None);
    }

    /// The call ends: one NOTIFY shows it terminated, later ones leave it out.
    fn hang_up(&mut self, at: f64, id: &str) {
        self.set(at, id, |c| c.state = DialogState::Terminated);
        self.calls.remove(id);
    }
}

fn ext(e: &str) -> Party {
    Party::Ext(e.to_string())
}

fn outside(number: &str) -> Party {
    Party::Outside(format!("sip:{number}@trunk.example"))
}

/// A small deterministic generator (xorshift64*): the same day every run.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `lo..hi` seconds.
    fn secs(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        lo + unit * (hi - lo)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The day for `extensions` people: the five of the script (fewer when
/// `extensions` is smaller; their calls still happen on the PBX) and, above
/// five, generated people with seeded random calls to the outside world.
pub fn day(extensions: usize) -> Script {
    let mut d = Day::default();
    // Bob calls Alice; she answers, puts him on hold, resumes, they hang up.
    d.dial(2.0, "c1", ext("1002"), ext("1001"));
    d.answer(6.0, "c1");
    // Carol calls a customer.
    d.dial(8.0, "c2", ext("1003"), outside("+15550100"));
    d.answer(11.0, "c2");
    d.hold(14.0, "c1", "1001");
    // Erin calls Dave.
    d.dial(16.0, "c3", ext("1005"), ext("1004"));
    d.answer(19.0, "c3");
    d.resume(20.0, "c1");
    d.hang_up(26.0, "c1");
    // Two calls at once: Alice calls Carol, who is still with the customer.
    d.dial(30.0, "c4", ext("1001"), ext("1003"));
    d.hold(34.0, "c2", "1003");
    d.answer(34.0, "c4");
    d.hang_up(38.0, "c3");
    d.resume(42.0, "c2");
    d.hang_up(42.0, "c4");
    d.hang_up(47.0, "c2");
    // Bob calls Erin, who does not pick up.
    d.dial(50.0, "c5", ext("1002"), ext("1005"));
    d.hang_up(56.0, "c5");

    let mut people: Vec<Person> = CAST
        .iter()
        .take(extensions)
        .map(|(e, n)| Person {
            extension: e.to_string(),
            name: n.to_string(),
            email: format!("{}@contoso.com", n.to_ascii_lowercase()),
        })
        .collect();
    let mut rng = Rng(0x5eed_b1f0_0000_0001);
    for i in CAST.len()..extensions {
        let number = 1001 + i;
        let e = number.to_string();
        people.push(Person {
            extension: e.clone(),
            name: format!("user{number}"),
            email: format!("user{number}@contoso.com"),
        });
        let mut t = rng.secs(0.5, 8.0);
        let mut n = 0;
        loop {
            let ring = rng.secs(1.0, 4.0);
            let talk = rng.secs(3.0, 12.0);
            if t + ring + talk > 57.0 {
                break;
            }
            n += 1;
            let id = format!("g{number}-{n}");
            let other = outside(&format!("+1555{:04}", rng.next() % 10_000));
            if rng.chance(50) {
                d.dial(t, &id, ext(&e), other);
            } else {
                d.dial(t, &id, other, ext(&e));
            }
            t += ring;
            d.answer(t, &id);
            if rng.chance(30) {
                let at = t + talk / 3.0;
                d.hold(at, &id, &e);
                d.resume(at + talk / 3.0, &id);
            }
            t += talk;
            d.hang_up(t, &id);
            t += rng.secs(1.0, 8.0);
        }
    }
    let mut steps = d.steps;
    steps.sort_by_key(|s| s.at);
    Script {
        people,
        steps,
        length: DAY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blf::{LineState, Notification};

    fn line(dialogs: &[DialogSpec]) -> LineState {
        let mut body = String::new();
        sip_notifier::write_dialog_info(&mut body, "x", "demo", 1, dialogs);
        Notification::parse(Some("application/dialog-info+xml"), body.as_bytes())
            .map(|n| n.line_state())
            .unwrap_or(LineState::Unknown)
    }

    fn states_of(script: &Script, ext: &str) -> Vec<LineState> {
        let mut out: Vec<LineState> = Vec::new();
        for s in script.steps.iter().filter(|s| s.extension == ext) {
            let l = line(&s.dialogs);
            if out.last() != Some(&l) {
                out.push(l);
            }
        }
        out
    }

    #[test]
    fn the_scripted_day_shows_every_scene() {
        use LineState::*;
        let s = day(5);
        assert_eq!(s.people.len(), 5);
        assert_eq!(
            states_of(&s, "1001"),
            [Ringing, Busy, Hold, Busy, Idle, Busy, Idle]
        );
        assert_eq!(states_of(&s, "1002"), [Busy, Idle, Busy, Idle]);
        // Two calls at once: the second rings over the first, then one is held.
        assert_eq!(states_of(&s, "1003"), [Busy, Ringing, Busy, Idle]);
        assert_eq!(states_of(&s, "1004"), [Ringing, Busy, Idle]);
        assert_eq!(states_of(&s, "1005"), [Busy, Idle, Ringing, Idle]);
        assert!(s.steps.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(s.steps.iter().all(|st| st.at < s.length));
    }

    #[test]
    fn generated_people_are_deterministic_and_fit_the_day() {
        let a = day(40);
        let b = day(40);
        assert_eq!(a.people.len(), 40);
        assert_eq!(a.steps, b.steps);
        let generated = a.steps.iter().filter(|s| s.extension == "1040").count();
        assert!(generated >= 3, "{generated}");
        assert!(a.steps.iter().all(|st| st.at < a.length));
        assert_eq!(day(3).people.len(), 3);
    }
}
