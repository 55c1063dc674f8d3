//! View feeds (sinks that drive themselves) and source stops, in paused
//! tokio time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use sip_blf_engine::{
    ChannelSource, Directory, Fact, FeedReport, LineState, Observation, Runtime, RuntimeConfig,
    Source, ViewFeed,
};
use tokio::sync::oneshot;

fn directory() -> Directory {
    let mut d = Directory::new();
    d.add("pbx", "1001", "alice").unwrap();
    d.add("pbx", "1002", "alice").unwrap();
    d.add("pbx", "1003", "bob").unwrap();
    d
}

fn line(address: &str, state: LineState) -> Observation {
    Observation::new("pbx", address, Fact::line(state), Instant::now())
}

/// The feed's next batch as (person, line, replay), sorted by person.
async fn batch(feed: &mut ViewFeed) -> Option<Vec<(String, LineState, bool)>> {
    let views = tokio::time::timeout(Duration::from_secs(60), feed.next())
        .await
        .expect("a batch within the wait")?;
    let mut seen: Vec<_> = views
        .into_iter()
        .map(|f| (f.view.person.0, f.view.line, f.replay))
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    Some(seen)
}

#[tokio::test(start_paused = true)]
async fn a_feed_gets_the_replay_then_the_latest_view_per_person_then_none_at_stop() {
    let mut rt = Runtime::start(directory(), RuntimeConfig::default()).unwrap();
    rt.observe(line("1001", LineState::Busy)).await.unwrap();
    let mut feed = rt.add_feed("teams").await.unwrap();
    assert_eq!(feed.name(), "teams");
    assert_eq!(
        batch(&mut feed).await,
        Some(vec![("alice".into(), LineState::Busy, true)])
    );

    // Three changes for bob while the feed does not read: one view, the last.
    for state in [LineState::Ringing, LineState::Busy, LineState::Idle] {
        rt.observe(line("1003", state)).await.unwrap();
    }
    rt.observe(line("1002", LineState::Ringing)).await.unwrap();
    // `views` answers after every observation before it: all are in the mailbox.
    rt.views().await.unwrap();
    assert_eq!(
        batch(&mut feed).await,
        Some(vec![
            ("alice".into(), LineState::Ringing, false),
            ("bob".into(), LineState::Idle, false),
        ])
    );

    rt.observe(line("1002", LineState::Idle)).await.unwrap();
    rt.stop(Duration::from_secs(5)).await;
    // What came before the stop is handed out, then the feed ends.
    assert_eq!(
        batch(&mut feed).await,
        Some(vec![("alice".into(), LineState::Busy, false)])
    );
    assert_eq!(batch(&mut feed).await, None);
}

#[tokio::test(start_paused = true)]
async fn a_feed_that_never_reads_does_not_hold_up_the_hub_or_another_feed() {
    let mut rt = Runtime::start(directory(), RuntimeConfig::default()).unwrap();
    let _stalled = rt.add_feed("stalled").await.unwrap();
    let mut live = rt.add_feed("live").await.unwrap();
    assert_eq!(batch(&mut live).await, Some(vec![]));
    // Far more changes than any channel capacity in the runtime.
    for i in 0..20_000 {
        let state = if i % 2 == 0 {
            LineState::Busy
        } else {
            LineState::Idle
        };
        rt.observe(line("1003", state)).await.unwrap();
        if i % 5_000 == 4_999 {
            rt.views().await.unwrap();
            let got = batch(&mut live).await.unwrap();
            assert_eq!(got, vec![("bob".into(), LineState::Idle, false)]);
        }
    }
    let status = rt.sink_status();
    let stalled = status.iter().find(|s| s.name == "stalled").unwrap();
    assert_eq!(stalled.queue_depth, 0, "nothing reported yet");
    rt.stop(Duration::from_secs(5)).await;
}

#[tokio::test(start_paused = true)]
async fn what_a_feed_reports_shows_in_sink_status() {
    let mut rt = Runtime::start(directory(), RuntimeConfig::default()).unwrap();
    let feed = rt.add_feed("teams").await.unwrap();
    feed.report(FeedReport::Queue {
        waiting: 3,
        in_flight: 2,
    });
    feed.report(FeedReport::Failed);
    feed.report(FeedReport::Connected(false));
    let s = rt.sink_status().pop().unwrap();
    assert_eq!(
        (s.name.as_str(), s.queue_depth, s.in_flight, s.failures),
        ("teams", 3, 2, 1)
    );
    assert!(s.paused);
    assert_eq!(s.last_success, None);
    feed.report(FeedReport::Succeeded);
    let s = rt.sink_status().pop().unwrap();
    assert!(s.last_success.is_some());
    assert!(!s.paused, "a success means connected");
    rt.stop(Duration::from_secs(5)).await;
}

/// A source that tells the test when it is stopped, and with what limit.
struct Unsubscribing {
    inner: ChannelSource,
    stopped: Option<oneshot::Sender<Duration>>,
}

impl Source for Unsubscribing {
    fn name(&self) -> &str {
        "sip"
    }

    fn next(&mut self) -> impl std::future::Future<Output = Option<Observation>> + Send {
        self.inner.next()
    }

    async fn stop(&mut self, limit: Duration) {
        if let Some(tx) = self.stopped.take() {
            let _ = tx.send(limit);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_stop_asks_each_running_source_to_let_go_with_the_limit() {
    let mut rt = Runtime::start(directory(), RuntimeConfig::default()).unwrap();
    let (feed_tx, inner) = ChannelSource::channel("sip", 8);
    let (tx, stopped) = oneshot::channel();
    rt.add_source(Unsubscribing {
        inner,
        stopped: Some(tx),
    });
    let mut feed = rt.add_feed("teams").await.unwrap();
    assert_eq!(batch(&mut feed).await, Some(vec![]));
    feed_tx.send(line("1001", LineState::Busy)).await.unwrap();
    assert_eq!(
        batch(&mut feed).await,
        Some(vec![("alice".into(), LineState::Busy, false)])
    );
    rt.stop(Duration::from_secs(7)).await;
    assert_eq!(stopped.await, Ok(Duration::from_secs(7)));
}
