//! Configuration of the user agent.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::error::ConfigError;
use crate::tls::TlsConfig;
use crate::transaction::Timers;

/// Transport towards the PBX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// UDP (retransmissions by the transaction layer).
    Udp,
    /// TCP (one connection, messages framed by `Content-Length`, CRLF keep-alive).
    Tcp,
    /// TLS over TCP (RFC 3261 §26.2): framed as TCP; the driver verifies the
    /// PBX's certificate as [`TlsConfig`](crate::tls::TlsConfig) says.
    Tls,
}

impl Transport {
    /// `UDP` / `TCP` / `TLS` as written in `Via` (`SIP/2.0/TLS`).
    pub fn via_name(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
        }
    }
    /// `true` for the stream transports (TCP, TLS): no retransmissions.
    pub fn is_reliable(self) -> bool {
        matches!(self, Self::Tcp | Self::Tls)
    }
    /// The `transport` URI parameter for `Contact` and out-of-dialog
    /// Request-URIs: none for UDP, `;transport=tcp`, `;transport=tls`.
    ///
    /// TLS uses a `sip:` URI with `;transport=tls`, not `sips:`: RFC 5630
    /// §3.1.3 deprecates the parameter in favour of `sips:`, but `sips:`
    /// demands TLS on every hop up to the phone, which a PBX cannot promise,
    /// and most PBXs (Asterisk, FreeSWITCH, Kamailio's usual set-ups, phones)
    /// expect and send the `;transport=tls` form.
    pub fn uri_param(self) -> &'static str {
        match self {
            Self::Udp => "",
            Self::Tcp => ";transport=tcp",
            Self::Tls => ";transport=tls",
        }
    }
    /// The port when the server names none: 5060, or 5061 for TLS.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Udp | Self::Tcp => 5060,
            Self::Tls => 5061,
        }
    }
}

impl std::str::FromStr for Transport {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "udp" => Ok(Self::Udp),
            "tcp" => Ok(Self::Tcp),
            "tls" => Ok(Self::Tls),
            other => Err(ConfigError::UnknownTransport(other.to_string())),
        }
    }
}

/// Which address goes into `Contact` (and `Via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContactAddress {
    /// This IP address, with the local port.
    Fixed(IpAddr),
    /// The local address until the PBX tells us, through `received`/`rport` in
    /// the `Via` of its responses (RFC 3581), how it sees us.
    Learned,
    /// The public address found by the [`AddressDiscovery`](crate::discovery::AddressDiscovery)
    /// (e.g. STUN), falling back to [`Learned`](Self::Learned).
    Discovered,
}

/// The event package of one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EventPackage {
    /// `Event: dialog`, `application/dialog-info+xml` (RFC 4235, BLF).
    Dialog,
    /// `Event: presence`, `application/pidf+xml` (RFC 3856).
    Presence,
}

impl EventPackage {
    /// The `Event` header value.
    pub fn event_name(self) -> &'static str {
        match self {
            Self::Dialog => "dialog",
            Self::Presence => "presence",
        }
    }
    /// The `Accept` header value.
    pub fn accept(self) -> &'static str {
        match self {
            Self::Dialog => "application/dialog-info+xml",
            Self::Presence => "application/pidf+xml",
        }
    }
}

/// One resource to watch: a user at the registrar's domain and an event package.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subscription {
    /// The user part of the watched resource's URI, e.g. `1001` (for BLF,
    /// the extension number).
    pub user: String,
    /// The event package.
    pub package: EventPackage,
}

impl Subscription {
    /// A BLF (`dialog`) subscription.
    pub fn dialog(user: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            package: EventPackage::Dialog,
        }
    }
    /// A `presence` subscription.
    pub fn presence(user: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            package: EventPackage::Presence,
        }
    }
}

/// The account password: kept out of `Debug` and `Display` output and out
/// of any public field; read only where a digest response is computed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// The password itself, for the digest computation.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

/// User agent configuration: [`UaConfig::new`] gives the defaults, the
/// `with_*` setters (or the public fields) change them. `Debug` never prints
/// the password, which has no public field ([`UaConfig::set_password`]).
/// New fields may come in minor releases (hence `#[non_exhaustive]`).
#[derive(Clone)]
#[non_exhaustive]
pub struct UaConfig {
    /// PBX as `host`, `host:port`, `ip:port` or `[v6]:port` (port 5060 when absent).
    pub server: String,
    /// Transport.
    pub transport: Transport,
    /// Account user name (also the digest user name).
    pub username: String,
    /// Account password (no public field: see [`UaConfig::set_password`]).
    password: Password,
    /// SIP domain and default realm; the server host when `None`.
    pub domain: Option<String>,
    /// Local socket address; when `None` the driver binds `127.0.0.1:0` / `[::1]:0`
    /// for a PBX on loopback, else `0.0.0.0:0` / `[::]:0`.
    pub listen: Option<SocketAddr>,
    /// Which address goes into `Contact`.
    pub contact: ContactAddress,
    /// Send REGISTER (some PBXs accept SUBSCRIBE from unregistered users).
    pub register: bool,
    /// Requested registration expiry, seconds.
    pub register_expires: u32,
    /// Requested subscription expiry, seconds.
    pub subscribe_expires: u32,
    /// Most new SUBSCRIBEs per second.
    pub subscribe_rate: u32,
    /// Requested publication expiry (RFC 3903 PUBLISH), seconds.
    pub publish_expires: u32,
    /// `User-Agent` header.
    pub user_agent: String,
    /// RFC 3261 timer values.
    pub timers: Timers,
    /// First retry delay after a failure (doubles up to `retry_max`, with jitter).
    pub retry_min: Duration,
    /// Longest retry delay after failures.
    pub retry_max: Duration,
    /// Retry delay after a failure that needs the PBX admin (404, 403, 489, 603, rejected).
    pub slow_retry: Duration,
    /// Interval of CRLF keep-alives to the server (RFC 5626); `None`: none.
    pub keepalive_interval: Option<Duration>,
    /// How the driver verifies the PBX with [`Transport::Tls`] (unused otherwise).
    pub tls: TlsConfig,
    /// How many events the tokio driver queues for a reader that does not
    /// keep up (at least 1; [`DEFAULT_EVENT_CAPACITY`] by default). What
    /// happens beyond it is documented on the driver's `spawn`.
    pub event_capacity: usize,
}

/// The default [`UaConfig::event_capacity`].
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

impl UaConfig {
    /// A configuration with defaults: UDP, learned contact, REGISTER for 600 s,
    /// subscriptions for 600 s, 50 new SUBSCRIBEs per second, publications for 3600 s.
    pub fn new(
        server: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Self {
            server: server.into(),
            transport: Transport::Udp,
            username: username.into(),
            password: Password::new(password),
            domain: None,
            listen: None,
            contact: ContactAddress::Learned,
            register: true,
            register_expires: 600,
            subscribe_expires: 600,
            subscribe_rate: 50,
            publish_expires: 3600,
            user_agent: concat!("sip-ua/", env!("CARGO_PKG_VERSION")).to_string(),
            timers: Timers::default(),
            retry_min: Duration::from_secs(2),
            retry_max: Duration::from_secs(120),
            slow_retry: Duration::from_secs(300),
            keepalive_interval: Some(Duration::from_secs(30)),
            tls: TlsConfig::default(),
            event_capacity: DEFAULT_EVENT_CAPACITY,
        }
    }

    /// The account password.
    pub fn password(&self) -> &Password {
        &self.password
    }

    /// Replaces the account password.
    pub fn set_password(&mut self, password: impl Into<Password>) {
        self.password = password.into();
    }

    /// With this transport.
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// With this SIP domain (and default realm) instead of the server host.
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// Bound to this local address.
    pub fn with_listen(mut self, listen: SocketAddr) -> Self {
        self.listen = Some(listen);
        self
    }

    /// With this address in `Contact`.
    pub fn with_contact(mut self, contact: ContactAddress) -> Self {
        self.contact = contact;
        self
    }

    /// With (`true`, the default) or without REGISTER.
    pub fn with_register(mut self, register: bool) -> Self {
        self.register = register;
        self
    }

    /// With these RFC 3261 timer values.
    pub fn with_timers(mut self, timers: Timers) -> Self {
        self.timers = timers;
        self
    }

    /// With this TLS verification (for [`Transport::Tls`]).
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// With room for this many events between the driver and its reader
    /// (see [`UaConfig::event_capacity`]).
    pub fn with_event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    /// The server host (without port or brackets).
    pub fn server_host(&self) -> &str {
        split_host_port(&self.server).0
    }

    /// The server port (when absent, 5060, or 5061 for TLS).
    pub fn server_port(&self) -> u16 {
        split_host_port(&self.server)
            .1
            .unwrap_or(self.transport.default_port())
    }

    /// The SIP domain: `domain`, or the server host.
    pub fn sip_domain(&self) -> String {
        match &self.domain {
            Some(d) if !d.is_empty() => d.clone(),
            _ => {
                let h = self.server_host();
                if h.contains(':') {
                    format!("[{h}]")
                } else {
                    h.to_string()
                }
            }
        }
    }
}

impl fmt::Debug for UaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UaConfig")
            .field("server", &self.server)
            .field("transport", &self.transport)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("domain", &self.domain)
            .field("listen", &self.listen)
            .field("contact", &self.contact)
            .field("register", &self.register)
            .field("register_expires", &self.register_expires)
            .field("subscribe_expires", &self.subscribe_expires)
            .field("subscribe_rate", &self.subscribe_rate)
            .field("publish_expires", &self.publish_expires)
            .field("user_agent", &self.user_agent)
            .field("tls", &self.tls)
            .field("event_capacity", &self.event_capacity)
            .finish_non_exhaustive()
    }
}

/// Splits `host`, `host:port`, `[v6]`, `[v6]:port`, bare `v6`.
pub fn split_host_port(s: &str) -> (&str, Option<u16>) {
    let s = s.trim();
    let s = s
        .strip_prefix("sip:")
        .or_else(|| s.strip_prefix("SIP:"))
        .unwrap_or(s);
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (host, port);
        }
    }
    if s.matches(':').count() == 1 {
        if let Some((h, p)) = s.split_once(':') {
            return (h, p.parse().ok());
        }
    }
    (s, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_password() {
        let c = UaConfig::new("pbx.example:5070", "blf", "s3cr3t-pw");
        let d = format!("{c:?}");
        assert!(!d.contains("s3cr3t-pw"), "{d}");
        assert!(d.contains("<redacted>"));
        assert_eq!(c.server_host(), "pbx.example");
        assert_eq!(c.server_port(), 5070);
        assert_eq!(c.sip_domain(), "pbx.example");
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("10.0.0.1"), ("10.0.0.1", None));
        assert_eq!(split_host_port("[::1]:5080"), ("::1", Some(5080)));
        assert_eq!(split_host_port("::1"), ("::1", None));
        assert_eq!(split_host_port("sip:pbx:5060"), ("pbx", Some(5060)));
        let mut c = UaConfig::new("[::1]:5060", "u", "p");
        assert_eq!(c.sip_domain(), "[::1]");
        c.domain = Some("example.org".into());
        assert_eq!(c.sip_domain(), "example.org");
        assert_eq!("TCP".parse::<Transport>(), Ok(Transport::Tcp));
        assert_eq!("tls".parse::<Transport>(), Ok(Transport::Tls));
        assert!("sctp".parse::<Transport>().is_err());
    }

    #[test]
    fn tls_defaults_to_port_5061_and_the_tls_forms() {
        let mut c = UaConfig::new("pbx.example", "u", "p");
        assert_eq!(c.server_port(), 5060);
        c.transport = Transport::Tls;
        assert_eq!(c.server_port(), 5061);
        assert_eq!(c.transport.via_name(), "TLS");
        assert_eq!(c.transport.uri_param(), ";transport=tls");
        assert!(c.transport.is_reliable());
        c.server = "pbx.example:5071".into();
        assert_eq!(c.server_port(), 5071);
    }
}
