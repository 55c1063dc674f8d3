//! The tokio helpers against small scripted STUN servers on 127.0.0.1: lost
//! requests, wrong transaction ids, garbage, error responses, SIP on the same
//! socket.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stun_lite::{query, query_on, query_on_with, Failure, StunError, MAGIC_COOKIE};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// A Binding success response to `request` with XOR-MAPPED-ADDRESS `mapped`.
fn success(request: &[u8], mapped: SocketAddr) -> Vec<u8> {
    let mut key = MAGIC_COOKIE.to_be_bytes().to_vec();
    key.extend_from_slice(&request[8..20]);
    let (family, ip): (u8, Vec<u8>) = match mapped {
        SocketAddr::V4(v4) => (1, v4.ip().octets().to_vec()),
        SocketAddr::V6(v6) => (2, v6.ip().octets().to_vec()),
    };
    let value_len = 4 + ip.len();
    let mut r = vec![0x01, 0x01];
    r.extend_from_slice(&((4 + value_len) as u16).to_be_bytes());
    r.extend_from_slice(&key);
    r.extend_from_slice(&[0x00, 0x20]);
    r.extend_from_slice(&(value_len as u16).to_be_bytes());
    r.extend_from_slice(&[0x00, family]);
    r.extend_from_slice(&(mapped.port() ^ 0x2112).to_be_bytes());
    r.extend(ip.iter().zip(&key).map(|(a, k)| a ^ k));
    r
}

/// A Binding error response to `request` with ERROR-CODE `code` and reason `reason`.
fn error(request: &[u8], code: u16, reason: &str) -> Vec<u8> {
    let mut value = vec![0, 0, (code / 100) as u8, (code % 100) as u8];
    value.extend_from_slice(reason.as_bytes());
    let attr_len = value.len();
    while value.len() % 4 != 0 {
        value.push(0);
    }
    let mut r = vec![0x01, 0x11];
    r.extend_from_slice(&((4 + value.len()) as u16).to_be_bytes());
    r.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    r.extend_from_slice(&request[8..20]);
    r.extend_from_slice(&[0x00, 0x09]);
    r.extend_from_slice(&(attr_len as u16).to_be_bytes());
    r.extend_from_slice(&value);
    r
}

/// A scripted server: for the n-th request (0-based) `script(n, request, from)`
/// returns the datagrams to send back. Every request is reported on the channel.
async fn scripted_server<F>(script: F) -> (SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>)
where
    F: FnMut(usize, &[u8], SocketAddr) -> Vec<Vec<u8>> + Send + 'static,
{
    scripted_server_on("127.0.0.1:0", script).await
}

async fn scripted_server_on<F>(
    bind: &str,
    mut script: F,
) -> (SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>)
where
    F: FnMut(usize, &[u8], SocketAddr) -> Vec<Vec<u8>> + Send + 'static,
{
    let socket = UdpSocket::bind(bind).await.unwrap();
    let addr = socket.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        let mut n = 0;
        while let Ok((len, from)) = socket.recv_from(&mut buf).await {
            let request = buf[..len].to_vec();
            for reply in script(n, &request, from) {
                socket.send_to(&reply, from).await.unwrap();
            }
            n += 1;
            if tx.send(request).is_err() {
                break;
            }
        }
    });
    (addr, rx)
}

fn drain(rx: &mut mpsc::UnboundedReceiver<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    while let Ok(r) = rx.try_recv() {
        all.push(r);
    }
    all
}

#[tokio::test]
async fn lost_requests_wrong_ids_and_garbage_then_the_answer() {
    let (server, mut seen) = scripted_server(|n, request, from| match n {
        0 => vec![], // lost
        1 => {
            let mut wrong = request.to_vec();
            wrong[10] ^= 0xff;
            let mut garbage = vec![0x01, 0x01, 0x00, 0x08];
            garbage.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
            garbage.extend_from_slice(&[0xee; 20]);
            vec![
                success(&wrong, "6.6.6.6:666".parse().unwrap()), // wrong transaction id
                garbage,                                         // STUN-looking garbage
                b"\x00\x01".to_vec(),                            // runt
                request.to_vec(),                                // an echoed request
            ]
        }
        _ => vec![success(request, from)],
    })
    .await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let started = Instant::now();
    let found = query_on(&socket, &[server], Duration::from_secs(10))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(found.public, socket.local_addr().unwrap());
    assert_eq!(found.server, server);
    // Requests at 0, 0.5 and 1.5 s: the third one is answered.
    assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
    let requests = drain(&mut seen);
    assert_eq!(requests.len(), 3);
    assert!(
        requests.iter().all(|r| r == &requests[0]),
        "retransmissions repeat the request"
    );
}

#[tokio::test]
async fn error_response_falls_back_to_the_next_server() {
    let (refusing, mut refused) =
        scripted_server(|_, request, _| vec![error(request, 500, "Server Error")]).await;
    let (answering, _r2) = scripted_server(|_, request, from| vec![success(request, from)]).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let started = Instant::now();
    let found = query_on(&socket, &[refusing, answering], Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(found.server, answering);
    assert_eq!(found.public, socket.local_addr().unwrap());
    // No waiting after a refusal: no retransmission to the refusing server
    // (the first is due after 500 ms), and well within its 5 s share. Not a
    // bound of 500 ms on the whole query: a loaded machine may take that long.
    assert_eq!(
        drain(&mut refused).len(),
        1,
        "retransmitted after a refusal"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited for the refusing server's share"
    );
}

#[tokio::test]
async fn silent_server_is_given_up_within_its_share_of_the_timeout() {
    let (silent, mut seen) = scripted_server(|_, _, _| vec![]).await;
    let (answering, _r) = scripted_server(|_, request, from| vec![success(request, from)]).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let started = Instant::now();
    let found = query_on(&socket, &[silent, answering], Duration::from_secs(2))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(found.server, answering);
    // 1 s each: requests at 0 and 0.5 s to the silent one, then the next.
    // No third request (due at 1.5 s) shows that it moved on in time; an
    // upper bound on the elapsed time would also measure the machine's load.
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert_eq!(drain(&mut seen).len(), 2);
}

#[tokio::test]
async fn no_answer_is_a_clear_error() {
    let (silent, _r) = scripted_server(|_, _, _| vec![]).await;
    let err = query(&[silent.to_string()], Duration::from_millis(600))
        .await
        .unwrap_err();
    match &err {
        StunError::NoAnswer(failures) => {
            assert_eq!(failures, &[Failure::Timeout { server: silent }]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!("no STUN server answered ({silent}: no response)")
    );
    assert!(matches!(
        query(&["not a host"], Duration::from_secs(1)).await,
        Err(StunError::InvalidServer { .. })
    ));
    let none: [&str; 0] = [];
    assert!(matches!(
        query(&none, Duration::from_secs(1)).await,
        Err(StunError::NoServers)
    ));
}

#[tokio::test]
async fn standalone_query_resolves_names() {
    let (server, _r) = scripted_server(|_, request, from| vec![success(request, from)]).await;
    // "localhost" may resolve to ::1 first; that one gets no answer and the
    // query falls back to 127.0.0.1.
    let found = query(
        &[format!("localhost:{}", server.port())],
        Duration::from_secs(4),
    )
    .await
    .unwrap();
    assert_eq!(found.server, server);
    assert!(found.public.ip().is_loopback());
}

#[tokio::test]
async fn sip_on_the_same_socket_is_handed_over_untouched() {
    // The server also sends a SIP request to the client socket before answering,
    // like a PBX sending a NOTIFY while the query runs.
    let notify = b"NOTIFY sip:blf@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n".to_vec();
    let to_send = notify.clone();
    let (server, _r) = scripted_server(move |n, request, from| match n {
        0 => vec![to_send.clone(), b"\r\n\r\n".to_vec()],
        _ => vec![to_send.clone(), success(request, from)],
    })
    .await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut sip = Vec::new();
    let found = query_on_with(&socket, &[server], Duration::from_secs(5), |from, data| {
        sip.push((from, data.to_vec()))
    })
    .await
    .unwrap();
    assert_eq!(found.public, socket.local_addr().unwrap());
    assert_eq!(
        sip,
        vec![
            (server, notify.clone()),
            (server, b"\r\n\r\n".to_vec()),
            (server, notify)
        ]
    );
}

#[tokio::test]
async fn ipv6_socket_and_server() {
    let (server, _r) =
        scripted_server_on("[::1]:0", |_, request, from| vec![success(request, from)]).await;
    let socket = UdpSocket::bind("[::1]:0").await.unwrap();
    let found = query_on(&socket, &[server], Duration::from_secs(5))
        .await
        .unwrap();
    assert!(found.public.is_ipv6());
    assert_eq!(found.public, socket.local_addr().unwrap());
    // The one-shot form picks an IPv6 socket for an IPv6 server.
    let found = query(&[server.to_string()], Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(found.server, server);
    assert_eq!(found.public.ip(), server.ip());
}

#[tokio::test]
async fn an_ipv4_socket_skips_ipv6_servers() {
    let (v4, _r) = scripted_server(|_, request, from| vec![success(request, from)]).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let v6: SocketAddr = "[::1]:9".parse().unwrap();
    let found = query_on(&socket, &[v6, v4], Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(found.server, v4);
    let err = query_on(&socket, &[v6], Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no STUN server answered ([::1]:9: cannot send: IPv6 server, IPv4 socket)"
    );
}

#[tokio::test]
async fn an_ipv6_socket_reaches_ipv4_servers() {
    let (v4, _r) = scripted_server(|_, request, from| vec![success(request, from)]).await;
    let Ok(socket) = UdpSocket::bind("[::]:0").await else {
        panic!("no IPv6 socket")
    };
    let found = query_on(&socket, &[v4], Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(found.server, v4, "reported as given, not IPv4-mapped");
    assert_eq!(found.public.ip(), v4.ip());
    assert_eq!(found.public.port(), socket.local_addr().unwrap().port());
}
