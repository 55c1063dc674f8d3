use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use graph_emulator::{EmulatedUser, EmulatorConfig, GraphEmulator, Operation};
use graph_presence::{Credential, GraphConfig};

use super::*;

// ------------------------------------------------------------ settings

#[test]
fn the_poll_period_is_30_seconds_unless_set_within_range() {
    let env = |v: &str| Env::from_pairs([(POLL_VAR, v)]);
    assert_eq!(poll_interval(&Env::default()), Ok(DEFAULT_POLL));
    assert_eq!(poll_interval(&env("60")), Ok(Duration::from_secs(60)));
    for bad in ["0", "3601", "30s", "-1", "1.5"] {
        let problem = poll_interval(&env(bad)).unwrap_err();
        assert_eq!(problem.place, POLL_VAR);
        assert!(problem.message.contains("from 1 to 3600"), "{problem}");
        assert!(problem.message.contains(&format!("{bad:?}")), "{problem}");
    }
}

// ------------------------------------------------------------ the schedule, in virtual time

const ALICE: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const BOB: &str = "bbbbbbbb-0000-4000-8000-000000000002";
const PERIOD: Duration = Duration::from_secs(30);

/// Graph in memory: presences by object id, reads counted, failures on demand.
#[derive(Clone, Default)]
struct Fake(Arc<FakeInner>);

#[derive(Default)]
struct FakeInner {
    presences: Mutex<HashMap<String, (String, String)>>,
    reads: AtomicUsize,
    failing: AtomicBool,
}

impl Fake {
    fn set(&self, id: &str, availability: &str, activity: &str) {
        self.0
            .presences
            .lock()
            .unwrap()
            .insert(id.into(), (availability.into(), activity.into()));
    }

    fn reads(&self) -> usize {
        self.0.reads.load(Ordering::SeqCst)
    }

    fn fail(&self, on: bool) {
        self.0.failing.store(on, Ordering::SeqCst);
    }
}

impl PresenceReader for Fake {
    async fn resolve(&self, user: &str) -> Result<ObjectId, GraphError> {
        ObjectId::parse(user)
    }

    async fn read(&self, ids: &[ObjectId]) -> Result<Vec<Presence>, GraphError> {
        self.0.reads.fetch_add(1, Ordering::SeqCst);
        if self.0.failing.load(Ordering::SeqCst) {
            return Err(GraphError::Throttled {
                operation: "getPresencesByUserId",
                attempts: 1,
                retry_after: None,
            });
        }
        let presences = self.0.presences.lock().unwrap();
        Ok(ids
            .iter()
            .filter_map(|id| {
                let (availability, activity) = presences.get(id.as_str())?.clone();
                Some(Presence::new(id.as_str(), availability, activity))
            })
            .collect())
    }
}

fn presence_of(o: &Observation) -> (&str, &str, &str) {
    match &o.fact {
        Fact::Presence(p) => (o.address.as_str(), &p.availability, &p.activity),
        other => panic!("not a presence: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_first_poll_reports_everyone_then_only_changes_one_period_later() {
    let fake = Fake::default();
    fake.set(ALICE, "Available", "Available");
    fake.set(BOB, "Away", "Away");
    let mut source = TeamsSource::with_reader(fake.clone(), [ALICE.into(), BOB.into()], PERIOD);
    assert_eq!(source.name(), TEAMS);
    let t0 = Instant::now();
    let first = source.next().await.unwrap();
    let second = source.next().await.unwrap();
    assert_eq!(first.system, TEAMS);
    assert_eq!(
        [presence_of(&first), presence_of(&second)],
        [(ALICE, "Available", "Available"), (BOB, "Away", "Away")]
    );
    assert_eq!(t0.elapsed(), Duration::ZERO, "the first poll is at once");
    assert_eq!(source.poll_lag(), Duration::ZERO);

    // Alice starts a call; Bob stays away: only Alice, at the next poll.
    fake.set(ALICE, "Busy", "InACall");
    let change = source.next().await.unwrap();
    assert_eq!(presence_of(&change), (ALICE, "Busy", "InACall"));
    assert_eq!(t0.elapsed(), PERIOD);
    assert_eq!(fake.reads(), 2);

    // Nothing changes: polls go on, nothing is reported.
    let quiet = tokio::time::timeout(3 * PERIOD + PERIOD / 2, source.next()).await;
    assert!(quiet.is_err(), "no change, no observation");
    assert_eq!(fake.reads(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_failed_poll_is_tried_again_next_period_and_the_lag_grows_meanwhile() {
    let fake = Fake::default();
    fake.set(ALICE, "Available", "Available");
    let mut source = TeamsSource::with_reader(fake.clone(), [ALICE.into()], PERIOD);
    let status = source.status();
    source.next().await.unwrap();
    let t0 = Instant::now();
    fake.fail(true);
    fake.set(ALICE, "DoNotDisturb", "Presenting");
    let failing = tokio::time::timeout(2 * PERIOD + PERIOD / 2, source.next()).await;
    assert!(failing.is_err(), "failed polls report nothing");
    assert_eq!(status.failed_polls(), 2);
    assert_eq!(status.lag(), 2 * PERIOD + PERIOD / 2);
    assert_eq!(status.last_success(), Some(t0));
    // Graph answers again: the change shows at the next period.
    fake.fail(false);
    let change = source.next().await.unwrap();
    assert_eq!(presence_of(&change), (ALICE, "DoNotDisturb", "Presenting"));
    assert_eq!(t0.elapsed(), 3 * PERIOD);
    assert_eq!(status.lag(), Duration::ZERO);
}

// ------------------------------------------------------------ against the Graph emulator

async fn client_for(emu: &GraphEmulator) -> GraphClient {
    let c = emu.config();
    let g = GraphConfig::new(
        &c.tenant_id,
        &c.client_id,
        Credential::Secret(c.client_secret.clone().into()),
    )
    .with_authority_url(emu.authority_url())
    .with_graph_url(emu.base_url());
    GraphClient::new(g).unwrap()
}

fn extensions(csv: &str) -> Vec<Extension> {
    crate::extensions::parse_csv(std::path::Path::new("extensions.csv"), csv).unwrap()
}

fn drain(source: &mut TeamsSource) -> Vec<(String, String, String)> {
    source
        .queued
        .drain(..)
        .map(|o| {
            let (address, availability, activity) = presence_of(&o);
            (address.into(), availability.into(), activity.into())
        })
        .collect()
}

#[tokio::test]
async fn a_preferred_presence_set_in_teams_shows_after_one_poll_under_the_person_key() {
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    emu.set_client_session(ALICE, "Available", "Available");
    emu.set_client_session(BOB, "Available", "Available");
    let exts = extensions(&format!(
        "extension,email,object_id\n1001,alice@contoso.com,\n1002,alice@contoso.com,\n1003,,{BOB}\n"
    ));
    let mut source = TeamsSource::new(client_for(&emu).await, &exts, PERIOD);
    let first = source.poll_once().await;
    assert_eq!((first.changed, first.requests, first.error), (2, 1, None));
    assert_eq!(
        drain(&mut source),
        [
            (
                "alice@contoso.com".into(),
                "Available".into(),
                "Available".into()
            ),
            (BOB.into(), "Available".into(), "Available".into()),
        ]
    );
    assert_eq!(
        emu.count(Operation::GetUser),
        1,
        "bob is given by object id"
    );

    // No change: a poll, no observation, no new lookup.
    assert_eq!(source.poll_once().await.changed, 0);
    assert!(drain(&mut source).is_empty());
    assert_eq!(emu.count(Operation::GetUser), 1, "the lookup is cached");

    emu.set_user_preferred(
        ALICE,
        "DoNotDisturb",
        "DoNotDisturb",
        Duration::from_secs(3600),
    );
    emu.start_teams_call(BOB);
    source.poll_once().await;
    assert_eq!(
        drain(&mut source),
        [
            (
                "alice@contoso.com".into(),
                "DoNotDisturb".into(),
                "DoNotDisturb".into()
            ),
            (BOB.into(), "Busy".into(), "InACall".into()),
        ]
    );
    assert_eq!(emu.count(Operation::GetPresencesByUserId), 3);
}

#[tokio::test]
async fn thirteen_hundred_people_cost_two_requests_a_poll() {
    let users: Vec<EmulatedUser> = (0..1300)
        .map(|i| {
            EmulatedUser::new(
                &format!("user{i}@contoso.com"),
                &format!("eeeeeeee-0000-4000-8000-{i:012}"),
            )
        })
        .collect();
    let csv: String = std::iter::once("extension,email,object_id\n".to_owned())
        .chain(
            users
                .iter()
                .enumerate()
                .map(|(i, u)| format!("{},,{}\n", 2000 + i, u.object_id)),
        )
        .collect();
    let emu = GraphEmulator::start(EmulatorConfig {
        users,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let mut source = TeamsSource::new(client_for(&emu).await, &extensions(&csv), PERIOD);
    for _ in 0..2 {
        let outcome = source.poll_once().await;
        assert_eq!((outcome.requests, outcome.error), (2, None));
    }
    let counts: Vec<Option<usize>> = emu
        .requests()
        .iter()
        .filter(|r| r.operation == Operation::GetPresencesByUserId)
        .map(|r| r.id_count)
        .collect();
    assert_eq!(counts, [Some(650), Some(650), Some(650), Some(650)]);
    assert_eq!(
        drain(&mut source).len(),
        1300,
        "reported once, on the first poll"
    );
}

#[tokio::test]
async fn a_withheld_permission_fails_the_poll_with_the_fix_and_an_unknown_user_does_not() {
    let emu = GraphEmulator::start(EmulatorConfig {
        presence_read_withheld: true,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let exts = extensions("extension,email\n1001,alice@contoso.com\n1009,nobody@contoso.com\n");
    let mut source = TeamsSource::new(client_for(&emu).await, &exts, PERIOD);
    let outcome = source.poll_once().await;
    assert_eq!(outcome.unresolved, 1);
    let error = outcome.error.unwrap();
    assert!(
        error.contains("Presence.Read.All") && error.contains("admin consent"),
        "{error}"
    );
    assert_eq!(source.status().failed_polls(), 1);
    assert_eq!(source.status().last_success(), None);

    emu.set_presence_read_withheld(false);
    let outcome = source.poll_once().await;
    assert_eq!(
        (outcome.error, outcome.unresolved, outcome.changed),
        (None, 1, 1)
    );
    assert!(source.status().last_success().is_some());
}
