//! Secrets and tokens stay out of the logs, at every level, through token fetches, a 401
//! renewal, retries and Entra errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use graph_emulator::{EmulatorConfig, Fault, GraphEmulator};
use graph_presence::{Credential, GraphClient, GraphConfig, ObjectId, PresenceState, RetryPolicy};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn nothing_secret_is_logged() {
    let buf = Buf::default();
    let w = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || w.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let c = emu.config().clone();
    let cfg = GraphConfig::new(
        &c.tenant_id,
        &c.client_id,
        Credential::Secret(c.client_secret.clone().into()),
    )
    .with_authority_url(emu.authority_url())
    .with_graph_url(emu.base_url())
    .with_retry_policy(
        RetryPolicy::retries(2).with_backoff(Duration::from_millis(1), Duration::from_millis(1)),
    );
    let graph = GraphClient::new(cfg.clone()).unwrap();
    let alice = ObjectId::parse(&c.users[0].object_id).unwrap();
    graph
        .set_presence(&alice, PresenceState::Away, None)
        .await
        .unwrap();
    emu.expire_all_tokens();
    emu.inject(Fault::ServiceUnavailable { times: 1 });
    emu.inject(Fault::TooManyRequests {
        retry_after: Duration::from_secs(0),
        times: 1,
    });
    graph.get_presence(&alice).await.unwrap();
    let wrong = cfg
        .clone()
        .with_credential(Credential::Secret("wrong-secret-value".into()));
    assert!(GraphClient::new(wrong)
        .unwrap()
        .token_check()
        .await
        .is_err());

    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("401 from Graph"),
        "the flow was logged:\n{logs}"
    );
    assert!(logs.contains("token request refused"), "{logs}");
    assert!(!logs.contains(&c.client_secret), "{logs}");
    assert!(!logs.contains("wrong-secret-value"), "{logs}");
    assert!(
        !logs.contains("emu."),
        "an access token was logged:\n{logs}"
    );
    assert!(!logs.contains("Bearer"), "{logs}");
}
