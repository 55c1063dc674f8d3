//! Free ports for peers started in parallel by several test threads and binaries.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use crate::Error;

/// Ports are drawn from below Linux's ephemeral range (32768–60999) so that
/// the kernel's own choices for client sockets never land on them.
const LOW: u16 = 20000;
const HIGH: u16 = 32000;

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static SET: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    SET.get_or_init(|| Mutex::new(HashSet::new()))
}

fn random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(d) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}

/// Is `port` free on every address in `ips` (UDP, and TCP when `tcp`)?
fn is_free(ips: &[IpAddr], port: u16, tcp: bool) -> bool {
    ips.iter().all(|&ip| {
        let addr = SocketAddr::new(ip, port);
        UdpSocket::bind(addr).is_ok() && (!tcp || TcpListener::bind(addr).is_ok())
    })
}

/// A port that is free on all `ips` right now (UDP, and TCP when `tcp`) and
/// that this process has not handed out before. Another process may still take
/// it before the peer binds it: starters retry with a new port when that happens.
pub(crate) fn free_port(ips: &[IpAddr], tcp: bool) -> Result<u16, Error> {
    let span = u64::from(HIGH - LOW);
    for _ in 0..500 {
        let port = LOW + u16::try_from(random() % span).unwrap_or(0);
        let mut set = handed_out().lock().unwrap_or_else(|e| e.into_inner());
        if set.contains(&port) || !is_free(ips, port, tcp) {
            continue;
        }
        set.insert(port);
        return Ok(port);
    }
    Err(Error::NoFreePort)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn ports_are_distinct_free_and_below_the_ephemeral_range() {
        let ip = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
        let ports: Vec<u16> = (0..50).map(|_| free_port(&ip, true).unwrap()).collect();
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len());
        assert!(ports.iter().all(|p| (LOW..HIGH).contains(p)));
        assert!(ports
            .iter()
            .all(|&p| UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).is_ok()));
    }
}
