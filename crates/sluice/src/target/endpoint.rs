//! The servers a target names: libpq's comma-separated `host`, `hostaddr` and `port` lists
//! zipped into endpoints, tried in order (or shuffled with `load_balance_hosts=random`).

use super::keyword::Keyword;
use super::settings::{Settings, SettingsError};
use std::net::IpAddr;
use std::path::PathBuf;

/// How one endpoint is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A host name, also what TLS checks the certificate against.
    Tcp(String),
    /// A folder holding the server's Unix-domain socket.
    Unix(PathBuf),
    /// Only `hostaddr` was given.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: Host,
    pub hostaddr: Option<IpAddr>,
    pub port: u16,
}

impl Endpoint {
    pub(crate) fn is_unix(&self) -> bool {
        matches!(self.host, Host::Unix(_))
    }

    /// The host as libpq's passfile matches it: `localhost` for the default socket folder.
    pub(crate) fn passfile_host(&self) -> String {
        match (&self.host, self.hostaddr) {
            (Host::Tcp(h), _) => h.clone(),
            (Host::Unix(dir), _) => {
                let dir = dir.display().to_string();
                if dir == super::settings::default_socket_dir() || dir == "/tmp" {
                    "localhost".into()
                } else {
                    dir
                }
            }
            (Host::None, Some(addr)) => addr.to_string(),
            (Host::None, None) => "localhost".into(),
        }
    }

    /// The name TLS checks the certificate against.
    pub(crate) fn tls_name(&self) -> String {
        match (&self.host, self.hostaddr) {
            (Host::Tcp(h), _) => h.clone(),
            (_, Some(addr)) => addr.to_string(),
            _ => String::new(),
        }
    }

    /// The value `PGHOST` takes for a client tool reaching this endpoint.
    pub(crate) fn host_value(&self) -> Option<String> {
        match &self.host {
            Host::Tcp(h) => Some(h.clone()),
            Host::Unix(dir) => Some(dir.display().to_string()),
            Host::None => None,
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.host, self.hostaddr) {
            (Host::Tcp(h), Some(a)) => write!(f, "{h} ({a}) port {}", self.port),
            (Host::Tcp(h), None) => write!(f, "{h} port {}", self.port),
            (Host::Unix(d), _) => write!(f, "socket {} port {}", d.display(), self.port),
            (Host::None, Some(a)) => write!(f, "{a} port {}", self.port),
            (Host::None, None) => write!(f, "? port {}", self.port),
        }
    }
}

fn list(value: Option<&str>) -> Vec<String> {
    value
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default()
}

fn bad(settings: &Settings, keyword: Keyword, expected: &'static str) -> SettingsError {
    SettingsError::BadValue {
        keyword,
        value: settings.get(keyword).unwrap_or("").to_string(),
        origin: settings
            .source(keyword)
            .cloned()
            .unwrap_or(super::settings::Source::Default),
        expected,
    }
}

/// The endpoints, in libpq's order: one per `host` (or `hostaddr`) entry, a single port
/// applying to all.
pub(crate) fn endpoints(settings: &Settings) -> Result<Vec<Endpoint>, SettingsError> {
    let hosts = list(settings.get(Keyword::Host));
    let addrs = list(settings.get(Keyword::Hostaddr));
    let ports = list(settings.get(Keyword::Port));
    let count = hosts.len().max(addrs.len()).max(1);
    if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
        return Err(bad(
            settings,
            Keyword::Hostaddr,
            "as many addresses as host names",
        ));
    }
    if ports.len() > 1 && ports.len() != count {
        return Err(bad(settings, Keyword::Port, "one port, or one per host"));
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let host = match hosts.get(i).map(String::as_str) {
            None | Some("") if !addrs.is_empty() => Host::None,
            None | Some("") => Host::Unix(super::settings::default_socket_dir().into()),
            Some(h) if h.starts_with('/') || h.starts_with('@') => Host::Unix(h.into()),
            Some(h) => Host::Tcp(h.into()),
        };
        let hostaddr = match addrs.get(i).map(String::as_str) {
            None | Some("") => None,
            Some(a) => Some(
                a.parse()
                    .map_err(|_| bad(settings, Keyword::Hostaddr, "numeric IP addresses"))?,
            ),
        };
        let port = match ports
            .get(if ports.len() == 1 { 0 } else { i })
            .map(String::as_str)
        {
            None | Some("") => 5432,
            Some(p) => p
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(settings, Keyword::Port, "port numbers 1 to 65535"))?,
        };
        out.push(Endpoint {
            host,
            hostaddr,
            port,
        });
    }
    if settings.choice(
        Keyword::LoadBalanceHosts,
        &["disable", "random"],
        "disable or random",
    )? == Some("random")
    {
        shuffle(&mut out);
    }
    Ok(out)
}

/// A shuffle good enough to spread connections (not cryptographic): seeded by the clock.
fn shuffle(endpoints: &mut [Endpoint]) {
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    for i in (1..endpoints.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        endpoints.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints_of(spec: &str) -> Result<Vec<Endpoint>, SettingsError> {
        endpoints(&Settings::resolve(Some(spec), &|_| None).unwrap())
    }

    #[test]
    fn hosts_and_ports_zip_as_in_libpq() {
        let e = endpoints_of("host=a,b,/sock port=1,2,3").unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[1].host, Host::Tcp("b".into()));
        assert_eq!(e[1].port, 2);
        assert!(e[2].is_unix());
        let e = endpoints_of("host=a,b port=7").unwrap();
        assert!(e.iter().all(|e| e.port == 7));
        assert!(endpoints_of("host=a,b port=1,2,3").is_err());
        let e = endpoints_of("hostaddr=127.0.0.1").unwrap();
        assert_eq!(e[0].host, Host::None);
        assert_eq!(e[0].passfile_host(), "127.0.0.1");
        assert!(endpoints_of("hostaddr=db.example").is_err());
    }

    #[test]
    fn the_default_socket_folder_matches_localhost_in_the_passfile() {
        let e = endpoints_of("").unwrap();
        assert_eq!(e[0].passfile_host(), "localhost");
        let e = endpoints_of("host=/srv/pg").unwrap();
        assert_eq!(e[0].passfile_host(), "/srv/pg");
    }
}
