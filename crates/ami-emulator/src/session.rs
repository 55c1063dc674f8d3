//! The listener and one task per TCP session: the banner, actions read and
//! answered in order, events written as they come, each write bounded by the
//! write time-out (a slow reader is closed, as Asterisk does).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::actions::{self, Reply};
use crate::request::{Request, RequestReader};
use crate::shared::{Out, SessionEntry, Shared};
use crate::ReceivedAction;

/// The first line of every session (AMI 11.0.0 is Asterisk 22).
pub(crate) const BANNER: &str = "Asterisk Call Manager/11.0.0\r\n";

/// How long a refused login waits before its answer (`sleep(1)` in `action_login`).
pub(crate) const LOGIN_FAILURE_DELAY: Duration = Duration::from_secs(1);

/// Accepts connections until the task is aborted.
pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: Arc<TcpListener>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            let current = shared
                .lock()
                .listener
                .as_ref()
                .is_some_and(|l| Arc::ptr_eq(l, &listener));
            if !current {
                return;
            }
            // e.g. out of file descriptors: try again
            tokio::task::yield_now().await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (tx, rx) = mpsc::unbounded_channel();
        let id = {
            let mut inner = shared.lock();
            if inner.stopped || inner.listener.is_none() {
                return;
            }
            let id = inner.next_session;
            inner.next_session += 1;
            let entry = SessionEntry::new(tx);
            entry.send(BANNER);
            inner.sessions.insert(id, entry);
            id
        };
        tokio::spawn(run_session(shared.clone(), id, stream, rx));
    }
}

async fn run_session(
    shared: Arc<Shared>,
    id: u64,
    stream: TcpStream,
    mut rx: mpsc::UnboundedReceiver<Out>,
) {
    let (mut rd, mut wr) = stream.into_split();
    let mut reader = RequestReader::default();
    let mut buf = vec![0u8; 8192];
    // after Logoff or a refused login: no more actions, only the queued output
    let mut closing = false;
    loop {
        tokio::select! {
            biased;
            out = rx.recv() => match out {
                Some(Out::Bytes(bytes)) => {
                    let limit = shared.lock().faults.write_timeout;
                    match tokio::time::timeout(limit, wr.write_all(&bytes)).await {
                        Ok(Ok(())) => {}
                        _ => break,
                    }
                }
                Some(Out::Close) | None => break,
            },
            n = rd.read(&mut buf), if !closing => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    reader.push(buf.get(..n).unwrap_or_default());
                    while !closing {
                        let Some(req) = reader.next_request() else { break };
                        closing = handle_request(&shared, id, req).await;
                    }
                }
            },
        }
    }
    let _ = wr.shutdown().await;
    let mut inner = shared.lock();
    inner.sessions.remove(&id);
    shared.publish_count(&inner);
}

/// Answers one action; `true` when the session is to close after its output.
async fn handle_request(shared: &Arc<Shared>, id: u64, req: Request) -> bool {
    let record = ReceivedAction::from_request(id, &req);
    let (reply, close) = {
        let mut guard = shared.lock();
        let inner = &mut *guard;
        inner.actions.push(record.clone());
        let mut events = Vec::new();
        let reply = actions::handle(inner, id, &req, &mut events);
        let (wire, close) = match &reply {
            Reply::Message(text) => (Some(text.clone()), false),
            Reply::Close(text) => (Some(text.clone()), true),
            Reply::List { start, items, end } => {
                let cut = inner.faults.cut_list_after.take();
                let shown = cut.unwrap_or(items.len()).min(items.len());
                let mut wire = start.clone();
                for item in items.iter().take(shown) {
                    wire.push_str(item);
                }
                if cut.is_none() {
                    wire.push_str(end);
                }
                (Some(wire), cut.is_some())
            }
            Reply::LoginFailed(_) => (None, false),
        };
        // the answer first, then the events the action raised
        if let Some(s) = inner.sessions.get(&id) {
            if let Some(wire) = wire {
                s.send(wire);
            }
            if close {
                s.close();
            }
        }
        inner.broadcast(&events);
        shared.publish_count(inner);
        (reply, close)
    };
    let _ = shared.actions_tx.send(record);
    if let Reply::LoginFailed(text) = reply {
        tokio::time::sleep(LOGIN_FAILURE_DELAY).await;
        let inner = shared.lock();
        if let Some(s) = inner.sessions.get(&id) {
            s.send(text);
            s.close();
        }
        return true;
    }
    close
}
