//! Reading presence back (`getPresencesByUserId`) against the Graph emulator on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use graph_emulator::{EmulatedUser, EmulatorConfig, GraphEmulator, Operation};
use graph_presence::{Credential, GraphClient, GraphConfig, GraphError, ObjectId};

const ALICE: &str = "aaaaaaaa-0000-4000-8000-000000000001";

fn client(emu: &GraphEmulator) -> GraphClient {
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

#[tokio::test]
async fn a_withheld_read_permission_is_a_forbidden_error_naming_presence_read_all() {
    let emu = GraphEmulator::start(EmulatorConfig {
        presence_read_withheld: true,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let graph = client(&emu);
    let e = graph
        .get_presences(&[ObjectId::parse(ALICE).unwrap()])
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            GraphError::Forbidden {
                operation: "getPresencesByUserId",
                permission: "Presence.Read.All",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.missing_permission(), Some("Presence.Read.All"));
    assert!(!e.is_transient(), "a missing permission is not retried");
    let text = e.to_string();
    assert!(
        text.contains("Presence.Read.All application permission") && text.contains("admin consent"),
        "{text}"
    );
    // One request: a 403 is final.
    assert_eq!(emu.count(Operation::GetPresencesByUserId), 1);
}

#[tokio::test]
async fn many_users_are_read_in_calls_of_650() {
    let users: Vec<EmulatedUser> = (0..1300)
        .map(|i| {
            EmulatedUser::new(
                &format!("user{i}@contoso.com"),
                &format!("eeeeeeee-0000-4000-8000-{i:012}"),
            )
        })
        .collect();
    let emu = GraphEmulator::start(EmulatorConfig {
        users: users.clone(),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let ids: Vec<ObjectId> = users
        .iter()
        .map(|u| ObjectId::parse(&u.object_id).unwrap())
        .collect();
    let read = client(&emu).get_presences(&ids).await.unwrap();
    assert_eq!(read.len(), 1300);
    let counts: Vec<Option<usize>> = emu
        .requests()
        .iter()
        .filter(|r| r.operation == Operation::GetPresencesByUserId)
        .map(|r| r.id_count)
        .collect();
    assert_eq!(counts, [Some(650), Some(650)]);
}
