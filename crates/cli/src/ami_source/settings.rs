//! The AMI settings: `AMI_HOST`, `AMI_USERNAME`, `AMI_SECRET` and the
//! optional `AMI_AUTH`, `AMI_CONTEXT`, `AMI_DND`, `AMI_STALE_AFTER`,
//! `AMI_DND_REFRESH`.

use std::time::Duration;

use super::DndScheme;
use crate::problems::{Problem, Problems};
use crate::settings::{required_var, Env, Secret};

/// AMI's TCP port when `AMI_HOST` names none.
pub const DEFAULT_AMI_PORT: u16 = 5038;

/// How long the PBX may be out of reach before every line reads `unknown`.
pub const DEFAULT_AMI_STALE_AFTER: Duration = Duration::from_secs(60);

/// How often astdb's DND flags are read again (DBPut raises no event).
pub const DEFAULT_AMI_DND_REFRESH: Duration = Duration::from_secs(300);

/// How to reach and read the PBX's manager interface.
#[derive(Debug, Clone)]
pub struct AmiSettings {
    /// `host:port` (`AMI_HOST`; port 5038 when none is given).
    pub address: String,
    /// The `manager.conf` user (`AMI_USERNAME`).
    pub username: String,
    /// Its secret (`AMI_SECRET`, never logged).
    pub secret: Secret,
    /// `AMI_AUTH=md5` (default: the secret never crosses the wire) or `plain`.
    pub auth: ami::Auth,
    /// Only hints of this context count (`AMI_CONTEXT`; default: the
    /// first context listing the extension).
    pub context: Option<String>,
    /// Where DND lives (`AMI_DND=freepbx`, the default, or `devstate`).
    pub dnd: DndScheme,
    /// `AMI_STALE_AFTER` seconds (0: never).
    pub stale_after: Option<Duration>,
    /// `AMI_DND_REFRESH` seconds (0: only at each connection).
    pub dnd_refresh: Option<Duration>,
}

impl AmiSettings {
    /// Reads the AMI settings; every problem is collected.
    pub fn from_env(env: &Env) -> Result<Self, Problems> {
        let mut problems = Problems::default();
        let mut required = |name: &str, what: &str| required_var(env, &mut problems, name, what);
        let host = required(
            "AMI_HOST",
            "the PBX's manager interface, e.g. pbx.example.com or 192.0.2.10:5038",
        );
        let username = required(
            "AMI_USERNAME",
            "a manager.conf user with read = system,call (see docs/ami.md)",
        );
        let secret = Secret::new(required("AMI_SECRET", "that user's secret"));
        let address = with_default_port(&host);
        let auth = match env.get("AMI_AUTH").map(str::to_ascii_lowercase).as_deref() {
            None | Some("md5") => ami::Auth::Md5,
            Some("plain") => ami::Auth::Plain,
            Some(other) => {
                problems.push(Problem::in_var(
                    "AMI_AUTH",
                    format!("{other:?} is not supported; use md5 or plain"),
                ));
                ami::Auth::Md5
            }
        };
        let dnd = match env.get("AMI_DND").map(str::to_ascii_lowercase).as_deref() {
            None | Some("freepbx") => DndScheme::freepbx(),
            Some("devstate") => DndScheme::device_only(),
            Some(other) => {
                problems.push(Problem::in_var(
                    "AMI_DND",
                    format!(
                        "{other:?} is not supported; use freepbx (astdb DND/<ext> and \
                         Custom:DND<ext>) or devstate (Custom:DND<ext> only)"
                    ),
                ));
                DndScheme::freepbx()
            }
        };
        let mut seconds = |name: &str, default: Duration| match env.get(name) {
            None => Some(default),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(0) => None,
                Ok(n) if n <= 86_400 => Some(Duration::from_secs(n)),
                _ => {
                    problems.push(Problem::in_var(
                        name,
                        format!("{v:?} is not a number of seconds from 0 (never) to 86400"),
                    ));
                    Some(default)
                }
            },
        };
        let stale_after = seconds("AMI_STALE_AFTER", DEFAULT_AMI_STALE_AFTER);
        let dnd_refresh = seconds("AMI_DND_REFRESH", DEFAULT_AMI_DND_REFRESH);
        problems.into_result(Self {
            address,
            username,
            secret,
            auth,
            context: env.get("AMI_CONTEXT").map(str::to_owned),
            dnd,
            stale_after,
            dnd_refresh,
        })
    }

    /// The client configuration: the event classes the source reads
    /// (`system` for boot and shutdown, `call` for hints, devices and
    /// channels, `agent` for queue members), never the `dialplan` flood of
    /// `VarSet`.
    pub fn client_config(&self) -> ami::Config {
        let mut config = ami::Config::new(self.username.clone(), self.secret.expose().to_owned());
        config.auth = self.auth;
        config.events = Some("system,call,agent".into());
        config.action_id_prefix = "blf-".into();
        config
    }
}

/// `host` with AMI's port appended when it names none (IPv6 in brackets).
pub fn with_default_port(host: &str) -> String {
    let host = host.trim();
    let has_port = match host.rsplit_once(':') {
        Some((h, p)) => p.parse::<u16>().is_ok() && (!h.contains(':') || h.ends_with(']')),
        None => false,
    };
    if has_port || host.is_empty() {
        host.to_owned()
    } else if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{DEFAULT_AMI_PORT}")
    } else {
        format!("{host}:{DEFAULT_AMI_PORT}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_port_is_added_only_when_missing() {
        assert_eq!(with_default_port("pbx.example.com"), "pbx.example.com:5038");
        assert_eq!(with_default_port("192.0.2.10:6000"), "192.0.2.10:6000");
        assert_eq!(with_default_port("::1"), "[::1]:5038");
        assert_eq!(with_default_port("[::1]:5039"), "[::1]:5039");
        assert_eq!(with_default_port("[::1]"), "[::1]:5038");
    }

    #[test]
    fn every_missing_or_invalid_setting_is_named_and_the_secret_is_not() {
        let env = Env::from_pairs([("AMI_AUTH", "sha"), ("AMI_STALE_AFTER", "soon")]);
        let text = AmiSettings::from_env(&env).unwrap_err().to_string();
        for name in [
            "AMI_HOST",
            "AMI_USERNAME",
            "AMI_SECRET",
            "AMI_AUTH",
            "AMI_STALE_AFTER",
        ] {
            assert!(text.contains(name), "{name} missing in {text}");
        }
        let env = Env::from_pairs([
            ("AMI_HOST", "127.0.0.1"),
            ("AMI_USERNAME", "blf"),
            ("AMI_SECRET", "s3cret-value"),
            ("AMI_DND", "devstate"),
            ("AMI_STALE_AFTER", "0"),
        ]);
        let s = AmiSettings::from_env(&env).unwrap();
        assert_eq!(s.address, "127.0.0.1:5038");
        assert_eq!(s.dnd, DndScheme::device_only());
        assert_eq!(s.stale_after, None);
        assert_eq!(s.dnd_refresh, Some(DEFAULT_AMI_DND_REFRESH));
        assert!(!format!("{s:?}").contains("s3cret-value"));
        assert!(!format!("{:?}", s.client_config()).contains("s3cret-value"));
        assert_eq!(
            s.client_config().events.as_deref(),
            Some("system,call,agent")
        );
    }
}
