//! STUN server lists (`STUN_SERVERS="stun.example.com:3478, 127.0.0.1"`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::error::StunError;

/// The default STUN port (RFC 8489 §9).
pub const DEFAULT_PORT: u16 = 3478;

/// Longest server entry accepted (a DNS name is at most 253 characters).
const MAX_ENTRY_LEN: usize = 300;

/// A STUN server as configured: a host name or IP literal and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerSpec {
    host: String,
    port: u16,
}

impl ServerSpec {
    /// A server from its parts.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }

    /// Host name or IP literal (without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address, when the host is an IP literal (no DNS needed).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }
}

impl fmt::Display for ServerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for ServerSpec {
    type Err = StunError;

    /// `host`, `host:port`, `1.2.3.4[:port]`, `[::1][:port]`, bare `::1`; an
    /// optional `stun:` scheme (RFC 7064) is accepted. The port defaults to 3478.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| StunError::InvalidServer {
            input: input.to_owned(),
            reason,
        };
        let s = input.trim();
        let s = s.strip_prefix("stun:").unwrap_or(s);
        if s.is_empty() {
            return Err(invalid("empty"));
        }
        if s.len() > MAX_ENTRY_LEN {
            return Err(invalid("too long"));
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| invalid("missing ']'"))?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| invalid("expected ':' after ']'"))?,
                ),
            };
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(invalid("not an IPv6 address inside [...]"));
            }
            (host, port)
        } else if s.parse::<std::net::Ipv6Addr>().is_ok() {
            (s, None)
        } else {
            match s.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (s, None),
            }
        };
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(invalid("port must be 1..=65535")),
                Ok(p) => p,
            },
        };
        if host.is_empty() {
            return Err(invalid("empty host"));
        }
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
        if !host.chars().all(valid_char) {
            return Err(invalid(
                "host may contain only letters, digits, '.', '-', '_'",
            ));
        }
        if host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(invalid("unexpected ':' in host"));
        }
        Ok(Self::new(host, port))
    }
}

/// Parses a comma-separated server list such as the `STUN_SERVERS` setting.
/// Empty entries are skipped; the result may be empty.
///
/// ```
/// let servers = stun_lite::parse_server_list("stun.example.com:3478, 127.0.0.1, [::1]:3479")?;
/// let shown: Vec<String> = servers.iter().map(ToString::to_string).collect();
/// assert_eq!(shown, ["stun.example.com:3478", "127.0.0.1:3478", "[::1]:3479"]);
/// # Ok::<(), stun_lite::StunError>(())
/// ```
pub fn parse_server_list(list: &str) -> Result<Vec<ServerSpec>, StunError> {
    list.split(',')
        .filter(|entry| !entry.trim().is_empty())
        .map(str::parse)
        .collect()
}

/// The servers a socket bound to `local` can reach, in order: the same address
/// family, IPv4 servers as IPv4-mapped addresses from an IPv6 socket, IPv6
/// servers dropped for an IPv4 socket. Use it before handing resolved servers to
/// a [`BindingClient`](crate::BindingClient) that runs on an existing socket, so
/// no round waits for a server the socket cannot send to.
pub fn servers_for_socket(servers: &[SocketAddr], local: SocketAddr) -> Vec<SocketAddr> {
    servers
        .iter()
        .filter_map(|server| reachable_from(*server, local))
        .collect()
}

/// `server` as a socket bound to `local` must address it, if it can.
pub(crate) fn reachable_from(server: SocketAddr, local: SocketAddr) -> Option<SocketAddr> {
    match (local, server) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => {
            Some(server)
        }
        (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
            Some(SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()))
        }
        (SocketAddr::V4(_), SocketAddr::V6(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> ServerSpec {
        s.parse().unwrap()
    }

    #[test]
    fn forms_and_default_port() {
        assert_eq!(
            spec("stun.example.com"),
            ServerSpec::new("stun.example.com", 3478)
        );
        assert_eq!(
            spec(" stun.example.com:19302 "),
            ServerSpec::new("stun.example.com", 19302)
        );
        assert_eq!(spec("127.0.0.1:3479"), ServerSpec::new("127.0.0.1", 3479));
        assert_eq!(spec("[::1]:3479"), ServerSpec::new("::1", 3479));
        assert_eq!(spec("[::1]"), ServerSpec::new("::1", 3478));
        assert_eq!(spec("::1"), ServerSpec::new("::1", 3478));
        assert_eq!(spec("stun:10.0.0.1:1"), ServerSpec::new("10.0.0.1", 1));
        assert_eq!(
            spec("[::1]:3479").socket_addr(),
            Some("[::1]:3479".parse().unwrap())
        );
        assert_eq!(spec("stun.example.com").socket_addr(), None);
        assert_eq!(spec("[2001:db8::1]:5").to_string(), "[2001:db8::1]:5");
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "",
            " ",
            "host:",
            "host:0",
            "host:65536",
            "host:x",
            "[::1",
            "[::1]x",
            "[nothost]:1",
            "a b:1",
            "1:2:3:x",
            "ho/st",
        ] {
            assert!(
                matches!(
                    bad.parse::<ServerSpec>(),
                    Err(StunError::InvalidServer { .. })
                ),
                "{bad:?} accepted"
            );
        }
        assert!("x".repeat(400).parse::<ServerSpec>().is_err());
    }

    #[test]
    fn servers_by_socket_family() {
        let servers: Vec<SocketAddr> = vec![
            "[2001:db8::1]:3478".parse().unwrap(),
            "192.0.2.1:3478".parse().unwrap(),
        ];
        assert_eq!(
            servers_for_socket(&servers, "0.0.0.0:5060".parse().unwrap()),
            vec!["192.0.2.1:3478".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            servers_for_socket(&servers, "[::]:5060".parse().unwrap()),
            vec![
                "[2001:db8::1]:3478".parse::<SocketAddr>().unwrap(),
                "[::ffff:192.0.2.1]:3478".parse().unwrap()
            ]
        );
    }

    #[test]
    fn lists() {
        assert_eq!(
            parse_server_list("a:1, b ,,[::1]").unwrap(),
            vec![
                ServerSpec::new("a", 1),
                ServerSpec::new("b", 3478),
                ServerSpec::new("::1", 3478)
            ]
        );
        assert!(parse_server_list("").unwrap().is_empty());
        assert!(parse_server_list("a, b:z").is_err());
    }
}
