//! Settings from environment variables (and a `.env` file), drop-in compatible
//! with the original tool's variable names.
//!
//! Values are read from a snapshot ([`Env`]) instead of the process
//! environment directly, so tests can build one without touching global state.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::problems::{Problem, Problems};
use graph_presence::RetryPolicy;

/// A snapshot of variables: the process environment, plus a `.env` file whose
/// values never override variables that are already set.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
    /// Which `.env` file was read, if any (for messages).
    pub dotenv_file: Option<PathBuf>,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: list the names only.
        let mut names: Vec<&String> = self.vars.keys().collect();
        names.sort();
        f.debug_struct("Env")
            .field("names", &names)
            .field("dotenv_file", &self.dotenv_file)
            .finish()
    }
}

impl Env {
    /// The process environment, completed from `dotenv` (default: `.env` in the
    /// current directory when it exists), read as python-dotenv reads it (see
    /// [`crate::dotenv`]). Each line that cannot be read is a problem that gives
    /// the file, line and variable name, never the value.
    pub fn load(dotenv: Option<&Path>) -> Result<Self, Problems> {
        // A variable whose name or value is not Unicode cannot be a setting: skipped.
        let mut vars: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let file = match dotenv {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from(".env")).filter(|p| p.exists()),
        };
        if let Some(path) = &file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Problems::from(Problem::in_file(path, None, format!("cannot read: {e}")))
            })?;
            crate::dotenv::load_into(&text, &mut vars).map_err(|errors| {
                Problems(
                    errors
                        .into_iter()
                        .map(|e| Problem::in_file(path, Some(e.line), e.message))
                        .collect(),
                )
            })?;
        }
        Ok(Self {
            vars,
            dotenv_file: file,
        })
    }

    /// A snapshot made of the given pairs only (for tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dotenv_file: None,
        }
    }

    /// A variable's value, trimmed; `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// The value of `name`, or a problem saying it is not set and `what` it
/// should hold (then an empty string).
pub fn required_var(env: &Env, problems: &mut Problems, name: &str, what: &str) -> String {
    env.get(name).map(str::to_string).unwrap_or_else(|| {
        problems.push(Problem::in_var(name, format!("is not set: {what}")));
        String::new()
    })
}

/// A secret value: never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// SIP transport to the PBX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SipTransport {
    /// UDP (the default).
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP (port 5061 when `SIP_SERVER` names none).
    Tls,
}

/// How the Contact address is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactSetting {
    /// `SIP_CONTACT_IP` empty, `auto` or `stun`: discover the public address of
    /// the SIP socket with STUN, falling back to what the PBX reports
    /// (`received`/`rport`).
    Auto,
    /// A fixed address.
    Fixed(IpAddr),
}

/// The PBX side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipSettings {
    /// `SIP_SERVER`: host or host:port of the PBX.
    pub server: String,
    /// `SIP_TRANSPORT`: `udp` (default), `tcp` or `tls`.
    pub transport: SipTransport,
    /// `SIP_TLS_*`: how the PBX is verified over TLS.
    pub tls: crate::sip_tls::TlsSettings,
    /// `SIP_USERNAME`.
    pub username: String,
    /// `SIP_PASSWORD`.
    pub password: Secret,
    /// `SIP_CONTACT_IP`.
    pub contact: ContactSetting,
    /// `SIP_LISTEN`: local address of the SIP socket. Unset, the original
    /// tool's: `0.0.0.0:5060`, or `SIP_CONTACT_IP:5060` for a fixed contact
    /// address. A port 0 (`0.0.0.0:0`, `127.0.0.1:0`) takes any free port.
    pub listen: SocketAddr,
    /// `STUN_SERVERS`: comma-separated `host:port`.
    pub stun_servers: Vec<String>,
    /// `SIP_SUBSCRIBE_EXPIRES`: requested subscription lifetime, seconds. Over
    /// UDP a PBX that restarts and forgets its subscriptions is noticed at the
    /// next refresh, so a shorter lifetime recovers sooner at the price of more
    /// SUBSCRIBEs.
    pub subscribe_expires: u32,
    /// `SIP_SUBSCRIBE_RATE`: most new SUBSCRIBEs per second (default 50; 0 = no pacing).
    pub subscribe_rate: u32,
    /// `SIP_STALE_AFTER`: seconds a subscription may stay lost before its
    /// line becomes `unknown` (default 120; `None` for 0 = never).
    pub stale_after: Option<std::time::Duration>,
}

/// Default of `SIP_SUBSCRIBE_EXPIRES`, seconds.
pub const DEFAULT_SUBSCRIBE_EXPIRES: u32 = 600;

/// Default of `SIP_SUBSCRIBE_RATE`: new SUBSCRIBEs per second.
pub const DEFAULT_SUBSCRIBE_RATE: u32 = 50;

/// Default of `SIP_STALE_AFTER`, seconds.
pub const DEFAULT_STALE_AFTER: u64 = 120;

/// Default STUN servers when `STUN_SERVERS` is unset.
pub const DEFAULT_STUN_SERVERS: &str = "stun.l.google.com:19302,stun1.l.google.com:19302";

impl SipSettings {
    /// Reads the SIP settings; every problem is collected.
    pub fn from_env(env: &Env) -> Result<Self, Problems> {
        let mut problems = Problems::default();
        let mut required = |name: &str, what: &str| required_var(env, &mut problems, name, what);
        let server = required(
            "SIP_SERVER",
            "the PBX address, e.g. pbx.example.com or 192.0.2.10:5060",
        );
        let username = required("SIP_USERNAME", "the SIP account the service registers with");
        let password = Secret::new(required("SIP_PASSWORD", "that account's password"));
        let transport = match env
            .get("SIP_TRANSPORT")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("udp") => SipTransport::Udp,
            Some("tcp") => SipTransport::Tcp,
            Some("tls") => SipTransport::Tls,
            Some(other) => {
                problems.push(Problem::in_var(
                    "SIP_TRANSPORT",
                    format!("{other:?} is not supported; use udp, tcp or tls"),
                ));
                SipTransport::Udp
            }
        };
        let tls = crate::sip_tls::TlsSettings::from_env(
            env,
            transport == SipTransport::Tls,
            &mut problems,
        );
        let contact = match env.get("SIP_CONTACT_IP") {
            None => ContactSetting::Auto,
            Some(v) if v.eq_ignore_ascii_case("auto") || v.eq_ignore_ascii_case("stun") => {
                ContactSetting::Auto
            }
            Some(v) => match v.parse::<IpAddr>() {
                Ok(ip) => ContactSetting::Fixed(ip),
                Err(_) => {
                    problems.push(Problem::in_var(
                        "SIP_CONTACT_IP",
                        format!("{v:?} is not an IP address; use an address, or auto for STUN"),
                    ));
                    ContactSetting::Auto
                }
            },
        };
        let listen = match env.get("SIP_LISTEN") {
            None => default_listen(&contact),
            Some(v) => parse_listen(v).unwrap_or_else(|| {
                problems.push(Problem::in_var(
                    "SIP_LISTEN",
                    format!("{v:?} is not an address; use e.g. 0.0.0.0:5062 or :5062"),
                ));
                SocketAddr::from(([0, 0, 0, 0], 0))
            }),
        };
        let stun_servers = Self::stun_servers_from_env(env);
        let subscribe_expires = match env.get("SIP_SUBSCRIBE_EXPIRES") {
            None => DEFAULT_SUBSCRIBE_EXPIRES,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if (10..=86_400).contains(&n) => n,
                _ => {
                    problems.push(Problem::in_var(
                        "SIP_SUBSCRIBE_EXPIRES",
                        format!("{v:?} is not a number of seconds from 10 to 86400"),
                    ));
                    DEFAULT_SUBSCRIBE_EXPIRES
                }
            },
        };
        let subscribe_rate = match env.get("SIP_SUBSCRIBE_RATE") {
            None => DEFAULT_SUBSCRIBE_RATE,
            Some(v) => v.trim().parse::<u32>().unwrap_or_else(|_| {
                problems.push(Problem::in_var(
                    "SIP_SUBSCRIBE_RATE",
                    format!("{v:?} is not a whole number (SUBSCRIBEs per second, 0 = no pacing)"),
                ));
                DEFAULT_SUBSCRIBE_RATE
            }),
        };
        let stale_after = match env.get("SIP_STALE_AFTER") {
            None => Some(DEFAULT_STALE_AFTER),
            Some(v) => match v.parse::<u64>() {
                Ok(0) => None,
                Ok(n) if n <= 86_400 => Some(n),
                _ => {
                    problems.push(Problem::in_var(
                        "SIP_STALE_AFTER",
                        format!("{v:?} is not a number of seconds from 0 (never) to 86400"),
                    ));
                    Some(DEFAULT_STALE_AFTER)
                }
            },
        }
        .map(std::time::Duration::from_secs);
        problems.into_result(Self {
            server,
            transport,
            tls,
            username,
            password,
            contact,
            listen,
            stun_servers,
            subscribe_expires,
            subscribe_rate,
            stale_after,
        })
    }
}

impl SipSettings {
    /// `STUN_SERVERS` split at commas, or the defaults when unset.
    pub fn stun_servers_from_env(env: &Env) -> Vec<String> {
        env.get("STUN_SERVERS")
            .unwrap_or(DEFAULT_STUN_SERVERS)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// The SIP port of the original tool, which its users forward on their router.
pub const DEFAULT_SIP_PORT: u16 = 5060;

/// Where the SIP socket listens when `SIP_LISTEN` is unset, as in the
/// original tool: every interface, or the fixed contact address, on 5060.
pub fn default_listen(contact: &ContactSetting) -> SocketAddr {
    match contact {
        ContactSetting::Auto => SocketAddr::from(([0, 0, 0, 0], DEFAULT_SIP_PORT)),
        ContactSetting::Fixed(ip) => SocketAddr::new(*ip, DEFAULT_SIP_PORT),
    }
}

impl SipSettings {
    /// What to change when the SIP socket cannot be opened on `listen`
    /// (`None` when the error is not about the local address).
    pub fn listen_fix(&self, error: &sip_ua::Error) -> Option<String> {
        let sip_ua::Error::Io(e) = error else {
            return None;
        };
        let at = self.listen;
        match e.kind() {
            std::io::ErrorKind::AddrInUse => Some(format!(
                "another program already uses {at} (a PBX or softphone on this machine?): \
                 set SIP_LISTEN to a free port, e.g. SIP_LISTEN=0.0.0.0:5062, and have the PBX reach that one"
            )),
            std::io::ErrorKind::AddrNotAvailable => Some(format!(
                "{} is not an address of this machine: set SIP_LISTEN=0.0.0.0:{} \
                 (SIP_CONTACT_IP stays the address the PBX reaches)",
                at.ip(),
                at.port()
            )),
            // Over TCP it may as well be the connection to the PBX that was denied.
            std::io::ErrorKind::PermissionDenied if self.transport == SipTransport::Udp => Some(format!(
                "no permission to open {at}: set SIP_LISTEN to another address or port"
            )),
            _ => None,
        }
    }
}

/// `ip:port`, `:port` or a bare port.
fn parse_listen(v: &str) -> Option<SocketAddr> {
    if let Ok(a) = v.parse() {
        return Some(a);
    }
    let port = v.strip_prefix(':').unwrap_or(v).parse::<u16>().ok()?;
    Some(SocketAddr::from(([0, 0, 0, 0], port)))
}

/// Retries the Graph client makes by itself in the one-shot commands (`graph`,
/// `check`), which have no retry loop of their own.
pub const ONE_SHOT_GRAPH_RETRIES: u32 = 3;

/// The Microsoft Graph client configuration from `AZURE_TENANT_ID`,
/// `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` (or `AZURE_CLIENT_CERTIFICATE_PATH`),
/// `AZURE_AUTHORITY_HOST` and `GRAPH_BASE_URL`. Every missing variable is named
/// at once; the rest is `graph-presence`'s own reading of the same variables.
///
/// The client does not retry ([`RetryPolicy::none`]): this is the service's
/// configuration, and the presence engine is its one retry layer. A one-shot
/// command opts in with [`one_shot`].
pub fn graph_config(env: &Env) -> Result<graph_presence::GraphConfig, Problems> {
    let mut problems = Problems::default();
    for (name, what) in [
        (
            "AZURE_TENANT_ID",
            "the Entra tenant id (Directory (tenant) ID)",
        ),
        (
            "AZURE_CLIENT_ID",
            "the app registration's Application (client) ID",
        ),
    ] {
        if env.get(name).is_none() {
            problems.push(Problem::in_var(name, format!("is not set: {what}")));
        }
    }
    if env.get("AZURE_CLIENT_SECRET").is_none()
        && env.get("AZURE_CLIENT_CERTIFICATE_PATH").is_none()
    {
        problems.push(Problem::in_var(
            "AZURE_CLIENT_SECRET",
            "is not set: a client secret's Value (not its Secret ID), \
             or set AZURE_CLIENT_CERTIFICATE_PATH to a PEM with key and certificate",
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let config = graph_presence::GraphConfig::from_env_with(|k| env.get(k).map(str::to_string))
        .map_err(|e| Problems::from(Problem::plain(e.to_string())))?;
    // Set explicitly, not left to the client's default: the presence engine
    // retries (after Retry-After, else with its own backoff), and a call that
    // retried inside the client could be in flight for minutes, holding the
    // user's next change and a clean stop.
    Ok(config.with_retry_policy(RetryPolicy::none()))
}

/// `config` for a one-shot command without a retry loop of its own: the
/// client retries 429, 5xx, timeouts and connection errors itself
/// ([`ONE_SHOT_GRAPH_RETRIES`] times, waiting at most a minute per call in all).
pub fn one_shot(config: graph_presence::GraphConfig) -> graph_presence::GraphConfig {
    config.with_retry_policy(RetryPolicy::retries(ONE_SHOT_GRAPH_RETRIES))
}

/// Where the extension list is: `EXTENSIONS_JSON`, default `config/extensions.json`
/// (the `.csv` beside it is used when the `.json` is missing).
pub fn extensions_path(env: &Env) -> PathBuf {
    PathBuf::from(
        env.get("EXTENSIONS_JSON")
            .unwrap_or("config/extensions.json"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_settings_defaults_and_problems() {
        let env = Env::from_pairs([
            ("SIP_SERVER", "127.0.0.1:5060"),
            ("SIP_USERNAME", "blf"),
            ("SIP_PASSWORD", "blfsecret"),
        ]);
        let s = SipSettings::from_env(&env).unwrap();
        assert_eq!(s.transport, SipTransport::Udp);
        assert_eq!(s.contact, ContactSetting::Auto);
        assert_eq!(s.listen, "0.0.0.0:5060".parse().unwrap());
        assert_eq!(s.stun_servers.len(), 2);
        assert_eq!(s.subscribe_expires, DEFAULT_SUBSCRIBE_EXPIRES);
        assert_eq!(s.subscribe_rate, DEFAULT_SUBSCRIBE_RATE);
        assert_eq!(
            s.stale_after.map(|d| d.as_secs()),
            Some(DEFAULT_STALE_AFTER)
        );
        assert!(!format!("{s:?}").contains("blfsecret"));

        let env = Env::from_pairs([
            ("SIP_TRANSPORT", "sctp"),
            ("SIP_CONTACT_IP", "nope"),
            ("SIP_LISTEN", ":5062x"),
            ("SIP_SUBSCRIBE_EXPIRES", "5"),
            ("SIP_SUBSCRIBE_RATE", "fast"),
            ("SIP_STALE_AFTER", "2m"),
        ]);
        let err = SipSettings::from_env(&env).unwrap_err().to_string();
        for needle in [
            "SIP_SERVER: is not set",
            "SIP_USERNAME: is not set",
            "SIP_PASSWORD: is not set",
            "SIP_TRANSPORT: \"sctp\" is not supported",
            "SIP_CONTACT_IP: \"nope\" is not an IP address",
            "SIP_LISTEN: \":5062x\" is not an address",
            "SIP_SUBSCRIBE_EXPIRES: \"5\" is not a number of seconds",
            "SIP_SUBSCRIBE_RATE: \"fast\" is not a whole number",
            "SIP_STALE_AFTER: \"2m\" is not a number of seconds",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in {err}");
        }
    }

    #[test]
    fn contact_and_listen_forms() {
        let base = [
            ("SIP_SERVER", "pbx"),
            ("SIP_USERNAME", "u"),
            ("SIP_PASSWORD", "p"),
        ];
        let with = |k, v| {
            let mut pairs = base.to_vec();
            pairs.push((k, v));
            SipSettings::from_env(&Env::from_pairs(pairs)).unwrap()
        };
        assert_eq!(with("SIP_CONTACT_IP", "STUN").contact, ContactSetting::Auto);
        assert_eq!(
            with("SIP_CONTACT_IP", "203.0.113.5").contact,
            ContactSetting::Fixed("203.0.113.5".parse().unwrap())
        );
        assert_eq!(with("SIP_LISTEN", ":5062").listen.port(), 5062);
        assert_eq!(with("SIP_LISTEN", "0.0.0.0:0").listen, addr("0.0.0.0:0"));
        assert_eq!(with("SIP_TRANSPORT", "TCP").transport, SipTransport::Tcp);
        assert_eq!(with("SIP_STALE_AFTER", "0").stale_after, None);
        assert_eq!(
            with("SIP_STALE_AFTER", "5").stale_after,
            Some(std::time::Duration::from_secs(5))
        );
        assert_eq!(
            with("STUN_SERVERS", " a:1, ,b:2 ").stun_servers,
            vec!["a:1".to_string(), "b:2".to_string()]
        );
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn listen_with(pairs: &[(&str, &str)]) -> SocketAddr {
        let mut all = vec![
            ("SIP_SERVER", "pbx"),
            ("SIP_USERNAME", "u"),
            ("SIP_PASSWORD", "p"),
        ];
        all.extend_from_slice(pairs);
        SipSettings::from_env(&Env::from_pairs(all)).unwrap().listen
    }

    #[test]
    fn listen_defaults_to_the_original_tools_port() {
        // SIP_CONTACT_IP unset, auto, stun or empty: every interface on 5060.
        assert_eq!(listen_with(&[]), addr("0.0.0.0:5060"));
        for contact in ["auto", "STUN", "stun", "", "  "] {
            assert_eq!(
                listen_with(&[("SIP_CONTACT_IP", contact)]),
                addr("0.0.0.0:5060"),
                "{contact:?}"
            );
        }
        // A fixed contact address: that address on 5060.
        assert_eq!(
            listen_with(&[("SIP_CONTACT_IP", "192.0.2.7")]),
            addr("192.0.2.7:5060")
        );
        assert_eq!(
            listen_with(&[("SIP_CONTACT_IP", "2001:db8::7")]),
            addr("[2001:db8::7]:5060")
        );
        // An empty SIP_LISTEN is unset (as the example file leaves it).
        assert_eq!(
            listen_with(&[("SIP_LISTEN", ""), ("SIP_CONTACT_IP", "192.0.2.7")]),
            addr("192.0.2.7:5060")
        );
    }

    #[test]
    fn listen_set_wins_over_the_default() {
        for contact in ["auto", "192.0.2.7"] {
            let with = |listen| listen_with(&[("SIP_CONTACT_IP", contact), ("SIP_LISTEN", listen)]);
            assert_eq!(with(":5062"), addr("0.0.0.0:5062"));
            assert_eq!(with("5062"), addr("0.0.0.0:5062"));
            assert_eq!(with("10.0.0.2:5062"), addr("10.0.0.2:5062"));
            // Port 0: any free port, as before.
            assert_eq!(with("0.0.0.0:0"), addr("0.0.0.0:0"));
            assert_eq!(with("127.0.0.1:0"), addr("127.0.0.1:0"));
        }
    }

    #[test]
    fn a_listen_address_that_cannot_be_opened_says_what_to_set() {
        let mut s = SipSettings::from_env(&Env::from_pairs([
            ("SIP_SERVER", "pbx"),
            ("SIP_USERNAME", "u"),
            ("SIP_PASSWORD", "p"),
        ]))
        .unwrap();
        let io = |k: std::io::ErrorKind| sip_ua::Error::Io(std::io::Error::from(k));
        let fix = s.listen_fix(&io(std::io::ErrorKind::AddrInUse)).unwrap();
        assert!(
            fix.contains("0.0.0.0:5060") && fix.contains("SIP_LISTEN=0.0.0.0:5062"),
            "{fix}"
        );
        s.listen = addr("203.0.113.9:5060");
        let fix = s
            .listen_fix(&io(std::io::ErrorKind::AddrNotAvailable))
            .unwrap();
        assert!(
            fix.starts_with(
                "203.0.113.9 is not an address of this machine: set SIP_LISTEN=0.0.0.0:5060"
            ),
            "{fix}"
        );
        assert_eq!(
            s.listen_fix(&io(std::io::ErrorKind::ConnectionRefused)),
            None
        );
    }

    #[test]
    fn graph_config_names_every_missing_variable() {
        let err = graph_config(&Env::default()).unwrap_err().to_string();
        for v in ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"] {
            assert!(err.contains(&format!("{v}: is not set")), "{err}");
        }
        let env = Env::from_pairs([
            ("AZURE_TENANT_ID", "contoso.onmicrosoft.com"),
            ("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555"),
            ("AZURE_CLIENT_SECRET", "s3cr3t"),
            ("GRAPH_BASE_URL", "http://127.0.0.1:8080/v1.0"),
        ]);
        let g = graph_config(&env).unwrap();
        assert_eq!(g.graph_url(), "http://127.0.0.1:8080/v1.0");
        assert_eq!(
            g.retry_policy(),
            RetryPolicy::none(),
            "the engine retries, not the client"
        );
        assert_eq!(
            one_shot(g.clone()).retry_policy().max_retries(),
            ONE_SHOT_GRAPH_RETRIES
        );
        assert!(!format!("{g:?}").contains("s3cr3t"));
    }

    #[test]
    fn dotenv_never_overrides_and_reports_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "SIP_SERVER=from-file\nSIP_USERNAME=fileuser\n").unwrap();
        let env = Env::load(Some(&path)).unwrap();
        assert_eq!(env.get("SIP_USERNAME"), Some("fileuser"));
        assert!(!format!("{env:?}").contains("fileuser"));
        std::fs::write(&path, "GOOD=1\nBAD LINE WITHOUT EQUALS\n").unwrap();
        let err = Env::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains(".env:2: BAD has no '='"), "{err}");
    }

    #[test]
    fn dotenv_value_with_spaces_is_read_and_a_bad_one_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        // Unquoted with a space: python-dotenv reads the whole value, so do we.
        std::fs::write(
            &path,
            "# settings\nSIP_SERVER=pbx\n\nXSECRET_UNQUOTED=Xy9~Q8 sR7.k # note\n",
        )
        .unwrap();
        let env = Env::load(Some(&path)).unwrap();
        assert_eq!(env.get("XSECRET_UNQUOTED"), Some("Xy9~Q8 sR7.k"));
        // A multi-line value above, then an unclosed quote: the file, the right
        // line and the name, with how to quote; never the value.
        std::fs::write(
            &path,
            "SIP_SERVER=pbx\nNOTE=\"two\nlines\"\n\nexport SIP_USERNAME=blf\nSIP_PASSWORD=\"Xy9~Q8 sR7.k\n",
        )
        .unwrap();
        let err = Env::load(Some(&path)).unwrap_err().to_string();
        assert!(!err.contains("Xy9") && !err.contains("sR7"), "{err}");
        let place = format!("{}:6: SIP_PASSWORD: ", path.display());
        assert!(err.starts_with(&place), "{err}");
        assert!(err.contains("SIP_PASSWORD=\"...\""), "{err}");
    }

    #[test]
    fn extensions_path_default() {
        assert_eq!(
            extensions_path(&Env::default()),
            PathBuf::from("config/extensions.json")
        );
    }
}
