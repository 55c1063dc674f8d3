//! A thin tokio driver around [`BindingClient`] for one-shot queries.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use crate::client::{BindingClient, ClientConfig, Discovery, Event, Handled};
use crate::error::{Failure, StunError};
use crate::server::{reachable_from, ServerSpec};

/// Shortest time given to one server by [`query`] and [`query_on`].
const MIN_PER_SERVER: Duration = Duration::from_millis(200);
/// Receive buffer: large enough for any UDP datagram, so SIP handed to the
/// caller in [`query_on_with`] is never truncated.
const RECV_BUF: usize = 65_535;

/// Resolves server entries (DNS names through the system resolver, IP
/// literals as they are), keeping the order and dropping duplicates.
/// Returns the addresses and the entries that failed.
pub async fn resolve_servers(servers: &[ServerSpec]) -> (Vec<SocketAddr>, Vec<Failure>) {
    let mut addrs = Vec::new();
    let mut failures = Vec::new();
    for spec in servers {
        let found: Vec<SocketAddr> = match spec.socket_addr() {
            Some(addr) => vec![addr],
            None => match tokio::net::lookup_host((spec.host(), spec.port())).await {
                Ok(found) => found.collect(),
                Err(error) => {
                    failures.push(Failure::Unresolved {
                        server: spec.to_string(),
                        reason: error.to_string(),
                    });
                    continue;
                }
            },
        };
        if found.is_empty() {
            failures.push(Failure::Unresolved {
                server: spec.to_string(),
                reason: "no address".to_owned(),
            });
        }
        for addr in found {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
    }
    (addrs, failures)
}

/// Asks the servers in order, from a fresh socket, for that socket's public
/// address: the one-shot `sip-blf-sync stun`. Entries are `host[:port]`
/// (default port 3478), DNS names are resolved. `timeout` bounds the whole
/// query; each server gets an equal share of it.
///
/// The address is that of *this* socket. For the SIP socket's own mapping use
/// [`query_on`] with the SIP socket, or run a [`BindingClient`] inside the SIP
/// driver.
pub async fn query<S: AsRef<str>>(
    servers: &[S],
    timeout: Duration,
) -> Result<Discovery, StunError> {
    let specs = servers
        .iter()
        .map(|s| s.as_ref().parse::<ServerSpec>())
        .collect::<Result<Vec<_>, _>>()?;
    if specs.is_empty() {
        return Err(StunError::NoServers);
    }
    let started = tokio::time::Instant::now();
    let (addrs, mut failures) = resolve_servers(&specs).await;
    let budget = timeout.saturating_sub(started.elapsed());
    let per_server = per_server(budget, addrs.len());
    let mut v4: Option<UdpSocket> = None;
    let mut v6: Option<UdpSocket> = None;
    for server in addrs {
        let slot = if server.is_ipv4() { &mut v4 } else { &mut v6 };
        let socket = match slot {
            Some(socket) => socket,
            None => {
                let bind: SocketAddr = if server.is_ipv4() {
                    (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                match UdpSocket::bind(bind).await {
                    Ok(socket) => slot.insert(socket),
                    Err(error) => {
                        failures.push(Failure::SendFailed {
                            server,
                            reason: format!("cannot open a socket: {error}"),
                        });
                        continue;
                    }
                }
            }
        };
        match query_on(socket, &[server], per_server).await {
            Ok(discovery) => return Ok(discovery),
            Err(StunError::NoAnswer(more)) => failures.extend(more),
            Err(other) => return Err(other),
        }
    }
    Err(StunError::NoAnswer(failures))
}

/// Asks the servers in order for the public address of `socket` itself, e.g.
/// the SIP socket before the user agent starts. Datagrams that are not STUN
/// are dropped; use [`query_on_with`] to keep them.
pub async fn query_on(
    socket: &UdpSocket,
    servers: &[SocketAddr],
    timeout: Duration,
) -> Result<Discovery, StunError> {
    query_on_with(socket, servers, timeout, |_, _| {}).await
}

/// Like [`query_on`], handing every datagram that is not STUN (SIP arriving on
/// the same socket meanwhile) to `other`.
///
/// Servers of the other address family than the socket are skipped (an IPv6
/// socket reaches IPv4 servers through IPv4-mapped addresses).
pub async fn query_on_with<F>(
    socket: &UdpSocket,
    servers: &[SocketAddr],
    timeout: Duration,
    mut other: F,
) -> Result<Discovery, StunError>
where
    F: FnMut(SocketAddr, &[u8]),
{
    if servers.is_empty() {
        return Err(StunError::NoServers);
    }
    let local = socket.local_addr()?;
    let mut skipped = Vec::new();
    let mut usable = Vec::new();
    for server in servers {
        match reachable_from(*server, local) {
            Some(server) => usable.push(server),
            None => skipped.push(Failure::SendFailed {
                server: *server,
                reason: "IPv6 server, IPv4 socket".to_owned(),
            }),
        }
    }
    let servers = usable;
    if servers.is_empty() {
        return Err(StunError::NoAnswer(skipped));
    }
    let config =
        ClientConfig::one_shot().with_transaction_timeout(Some(per_server(timeout, servers.len())));
    let mut client = BindingClient::new(servers, config, Instant::now());
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        let now = Instant::now();
        while let Some(transmit) = client.poll_transmit(now) {
            if let Err(error) = socket
                .send_to(&transmit.payload, transmit.destination)
                .await
            {
                tracing::debug!(server = %transmit.destination, %error, "STUN send failed");
                client.handle_send_failure(transmit.destination, error.to_string(), Instant::now());
            }
        }
        while let Some(event) = client.poll_event() {
            match event {
                Event::Discovered(discovery) => {
                    return Ok(Discovery {
                        public: canonical(discovery.public),
                        server: canonical(discovery.server),
                    })
                }
                Event::Failed { failures } => {
                    skipped.extend(failures);
                    return Err(StunError::NoAnswer(skipped));
                }
                Event::Changed { .. } => {}
            }
        }
        let Some(deadline) = client.poll_timeout() else {
            // One-shot client idle without an event: cannot happen; do not hang.
            return Err(StunError::NoAnswer(Vec::new()));
        };
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, from)) => {
                    let data = buf.get(..len).unwrap_or_default();
                    if let Handled::NotStun = client.handle_datagram(from, data, Instant::now()) {
                        other(from, data);
                    }
                }
                // ICMP errors reported on the socket (Windows reports them on
                // unconnected UDP sockets): the timers decide.
                Err(error) if matches!(error.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionRefused) => {
                    tracing::debug!(%error, "ICMP error on the STUN socket");
                }
                Err(error) => return Err(StunError::Io(error)),
            },
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                client.handle_timeout(Instant::now());
            }
        }
    }
}

/// `::ffff:a.b.c.d` (an IPv4 server reached from an IPv6 socket) as `a.b.c.d`.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

fn per_server(budget: Duration, servers: usize) -> Duration {
    let n = u32::try_from(servers.max(1)).unwrap_or(u32::MAX);
    (budget / n).max(MIN_PER_SERVER)
}
