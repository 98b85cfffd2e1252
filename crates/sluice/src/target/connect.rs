//! Opening sessions: each endpoint in turn with the transports its `sslmode` allows (never
//! cleartext under `require` or stronger), the password from the connection string, the
//! password command, `PGPASSWORD` or the passfile, `target_session_attrs` checked on the
//! session itself, and what the session turned out to be (TLS or not, protocol, cipher, what of
//! the certificate was checked) read back from `pg_stat_ssl` for the evidence. Once one
//! endpoint has served a session every later session goes to it, so that the lock session,
//! the working session and the probes are all on one server.

use super::endpoint::{Endpoint, Host};
use super::keyword::Keyword;
use super::passfile;
use super::settings::{Settings, SettingsError};
use super::tls::{SessionTls, SslMode, TlsSettings, Verification};
use postgres::SimpleQueryMessage;
use serde::Serialize;
use std::sync::Mutex;
use std::time::Duration;

/// libpq's `target_session_attrs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionAttrs {
    Any,
    ReadWrite,
    ReadOnly,
    Primary,
    Standby,
    PreferStandby,
}

impl SessionAttrs {
    fn from_settings(settings: &Settings) -> Result<SessionAttrs, SettingsError> {
        const ALLOWED: &[&str] = &[
            "any",
            "read-write",
            "read-only",
            "primary",
            "standby",
            "prefer-standby",
        ];
        Ok(
            match settings.choice(
                Keyword::TargetSessionAttrs,
                ALLOWED,
                "any, read-write, read-only, primary, standby or prefer-standby",
            )? {
                None | Some("any") => SessionAttrs::Any,
                Some("read-write") => SessionAttrs::ReadWrite,
                Some("read-only") => SessionAttrs::ReadOnly,
                Some("primary") => SessionAttrs::Primary,
                Some("standby") => SessionAttrs::Standby,
                _ => SessionAttrs::PreferStandby,
            },
        )
    }

    /// Whether a session with these facts may be used, on the first pass (`prefer-standby`
    /// takes any server on a second pass).
    fn accepts(self, facts: &ServerFacts) -> bool {
        match self {
            SessionAttrs::Any => true,
            SessionAttrs::ReadWrite => !facts.read_only,
            SessionAttrs::ReadOnly => facts.read_only,
            SessionAttrs::Primary => !facts.in_recovery,
            SessionAttrs::Standby | SessionAttrs::PreferStandby => facts.in_recovery,
        }
    }
}

/// How one attempt reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Plain,
    /// TLS; with `fallback`, cleartext when the server does not offer TLS (`prefer`).
    Tls {
        fallback: bool,
    },
}

/// What the server says about the session after it is opened.
#[derive(Debug, Clone)]
struct ServerFacts {
    ssl: bool,
    protocol: Option<String>,
    cipher: Option<String>,
    in_recovery: bool,
    read_only: bool,
}

const FACTS_SQL: &str =
    "SELECT s.ssl::text, s.version, s.cipher, pg_catalog.pg_is_in_recovery()::text, \
     pg_catalog.current_setting('transaction_read_only') \
     FROM pg_catalog.pg_stat_ssl s WHERE s.pid = pg_catalog.pg_backend_pid()";

fn server_facts(messages: Vec<SimpleQueryMessage>) -> Option<ServerFacts> {
    messages.into_iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => Some(ServerFacts {
            ssl: row.get(0) == Some("true"),
            protocol: row.get(1).map(str::to_string),
            cipher: row.get(2).map(str::to_string),
            in_recovery: row.get(3) == Some("true"),
            read_only: row.get(4) == Some("on"),
        }),
        _ => None,
    })
}

/// One session sluice opened, as the evidence records it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionRecord {
    /// What the session was for (`lock`, `work`, `probe rows`, `pg_dump`…).
    pub purpose: String,
    pub endpoint: String,
    pub sslmode: SslMode,
    #[serde(flatten)]
    pub tls: SessionTls,
    pub in_recovery: bool,
}

impl SessionRecord {
    /// `TLSv1.3 (TLS_AES_256_GCM_SHA384), certificate chain and host name verified` or
    /// `cleartext (not encrypted)`, with the sslmode.
    pub fn describe(&self) -> String {
        let what = if self.tls.ssl {
            let checked = match self.tls.verified {
                Verification::None => "certificate not verified",
                Verification::Chain => "certificate chain verified",
                Verification::ChainAndHostName => "certificate chain and host name verified",
            };
            format!(
                "TLS {} ({}), {checked}",
                self.tls.protocol.as_deref().unwrap_or("?"),
                self.tls.cipher.as_deref().unwrap_or("?")
            )
        } else {
            "cleartext (not encrypted)".to_string()
        };
        format!("{what}; sslmode={}", self.sslmode.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Settings(#[from] SettingsError),
    #[error("{0}")]
    Tls(#[from] super::tls::TlsError),
    #[error("{shown} asks for TLS, which is never used over a Unix-domain socket ({endpoint}); connect over TCP (host=127.0.0.1 or the server's name) or choose sslmode=prefer")]
    TlsOverSocket { shown: String, endpoint: String },
    #[error("the password command failed: {0}")]
    PasswordCommand(String),
    #[error("{endpoint}: {message}")]
    Attempt { endpoint: String, message: String },
    #[error("{0}")]
    Attempts(String),
    #[error("cannot write a 0600 file for a client tool's secret: {0}")]
    ToolSecret(String),
}

/// Everything needed to open sessions to one target; shared by every clone of a `Target`.
#[derive(Debug)]
pub struct Connector {
    pub settings: Settings,
    pub endpoints: Vec<Endpoint>,
    pub tls: TlsSettings,
    attrs: SessionAttrs,
    pub password_command: Option<String>,
    /// The endpoint that served the first session.
    chosen: Mutex<Option<usize>>,
    sessions: Mutex<Vec<SessionRecord>>,
    warnings: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Connector {
    pub fn new(
        settings: Settings,
        password_command: Option<String>,
    ) -> Result<Connector, ConnectError> {
        let endpoints = super::endpoint::endpoints(&settings)?;
        let tls = TlsSettings::resolve(&super::tls_keywords(&settings), settings.home.as_deref())?;
        let attrs = SessionAttrs::from_settings(&settings)?;
        for keyword in [
            Keyword::ConnectTimeout,
            Keyword::KeepalivesIdle,
            Keyword::KeepalivesInterval,
            Keyword::KeepalivesCount,
            Keyword::TcpUserTimeout,
        ] {
            settings.number(keyword)?;
        }
        settings.choice(
            Keyword::ChannelBinding,
            &["disable", "prefer", "require"],
            "disable, prefer or require",
        )?;
        settings.choice(
            Keyword::Sslnegotiation,
            &["postgres", "direct"],
            "postgres or direct",
        )?;
        settings.choice(Keyword::Keepalives, &["0", "1"], "0 or 1")?;
        if tls.mode.requires_tls() && endpoints.iter().all(Endpoint::is_unix) {
            return Err(ConnectError::TlsOverSocket {
                shown: settings.shown(Keyword::Sslmode),
                endpoint: endpoints[0].to_string(),
            });
        }
        Ok(Connector {
            settings,
            endpoints,
            tls,
            attrs,
            password_command,
            chosen: Mutex::new(None),
            sessions: Mutex::new(Vec::new()),
            warnings: Mutex::new(Vec::new()),
        })
    }

    pub fn sessions(&self) -> Vec<SessionRecord> {
        lock(&self.sessions).clone()
    }

    pub fn warnings(&self) -> Vec<String> {
        lock(&self.warnings).clone()
    }

    fn warn(&self, warning: String) {
        let mut warnings = lock(&self.warnings);
        if !warnings.contains(&warning) {
            eprintln!("warning: {warning}");
            warnings.push(warning);
        }
    }

    /// The endpoint sessions go to: the one that served the first, else the first named.
    pub(crate) fn current_endpoint(&self) -> &Endpoint {
        let chosen = *lock(&self.chosen);
        &self.endpoints[chosen.unwrap_or(0)]
    }

    /// The endpoints to try, in order: only the chosen one once a session has been opened.
    fn candidates(&self) -> Vec<usize> {
        match *lock(&self.chosen) {
            Some(i) => vec![i],
            None => (0..self.endpoints.len()).collect(),
        }
    }

    fn transports(&self, endpoint: &Endpoint) -> Result<Vec<Transport>, ConnectError> {
        let mode = self.tls.mode;
        if endpoint.is_unix() {
            if mode.requires_tls() {
                return Err(ConnectError::TlsOverSocket {
                    shown: self.settings.shown(Keyword::Sslmode),
                    endpoint: endpoint.to_string(),
                });
            }
            return Ok(vec![Transport::Plain]);
        }
        Ok(match mode {
            SslMode::Disable => vec![Transport::Plain],
            SslMode::Allow => vec![Transport::Plain, Transport::Tls { fallback: false }],
            SslMode::Prefer => vec![Transport::Tls { fallback: true }],
            _ => vec![Transport::Tls { fallback: false }],
        })
    }

    /// The password for one connection to `endpoint`: `password=` (the string or a service),
    /// else the password command (run now), else `PGPASSWORD`, else the passfile.
    pub fn password(&self, endpoint: &Endpoint) -> Result<Option<String>, ConnectError> {
        use super::settings::Source;
        let given = self.settings.secret(Keyword::Password);
        let from_env = matches!(
            self.settings.source(Keyword::Password),
            Some(Source::Env(_))
        );
        if let Some(pw) = given.filter(|_| !from_env) {
            return Ok(Some(pw.to_string()));
        }
        if let Some(command) = &self.password_command {
            return run_password_command(command).map(Some);
        }
        if let Some(pw) = given {
            return Ok(Some(pw.to_string()));
        }
        let path = match self.settings.get(Keyword::Passfile) {
            Some(p) => std::path::PathBuf::from(p),
            None => match &self.settings.home {
                Some(home) => home.join(".pgpass"),
                None => return Ok(None),
            },
        };
        let port = endpoint.port.to_string();
        let want = passfile::Want {
            host: &endpoint.passfile_host(),
            port: &port,
            database: self.settings.get(Keyword::Dbname).unwrap_or(""),
            user: self.settings.get(Keyword::User).unwrap_or(""),
        };
        match passfile::lookup(&path, want) {
            Ok(found) => Ok(found),
            Err(skipped) => {
                self.warn(skipped.to_string());
                Ok(None)
            }
        }
    }

    /// The driver's settings for one attempt at `endpoint`.
    fn config(&self, endpoint: &Endpoint, password: Option<&str>) -> tokio_postgres::Config {
        use tokio_postgres::config::{ChannelBinding, SslNegotiation};
        let s = &self.settings;
        let mut c = tokio_postgres::Config::new();
        match &endpoint.host {
            Host::Tcp(h) => c.host(h),
            Host::Unix(d) => c.host_path(d),
            Host::None => c.host(endpoint.hostaddr.map(|a| a.to_string()).unwrap_or_default()),
        };
        if let Some(addr) = endpoint.hostaddr {
            c.hostaddr(addr);
        }
        c.port(endpoint.port);
        c.user(s.get(Keyword::User).unwrap_or("postgres"));
        c.dbname(s.get(Keyword::Dbname).unwrap_or("postgres"));
        c.application_name(s.get(Keyword::ApplicationName).unwrap_or("sluice"));
        if let Some(options) = s.get(Keyword::Options) {
            c.options(options);
        }
        if let Some(pw) = password {
            c.password(pw);
        }
        let number = |k| s.number(k).ok().flatten();
        // libpq: 0 waits for ever, anything below 2 s is 2 s
        if let Some(secs) = number(Keyword::ConnectTimeout).filter(|s| *s > 0) {
            c.connect_timeout(Duration::from_secs(secs.max(2)));
        }
        c.keepalives(s.get(Keyword::Keepalives) != Some("0"));
        if let Some(secs) = number(Keyword::KeepalivesIdle) {
            c.keepalives_idle(Duration::from_secs(secs));
        }
        if let Some(secs) = number(Keyword::KeepalivesInterval) {
            c.keepalives_interval(Duration::from_secs(secs));
        }
        if let Some(count) = number(Keyword::KeepalivesCount) {
            c.keepalives_retries(count as u32);
        }
        if let Some(ms) = number(Keyword::TcpUserTimeout) {
            c.tcp_user_timeout(Duration::from_millis(ms));
        }
        c.channel_binding(match s.get(Keyword::ChannelBinding) {
            Some("disable") => ChannelBinding::Disable,
            Some("require") => ChannelBinding::Require,
            _ => ChannelBinding::Prefer,
        });
        if s.get(Keyword::Sslnegotiation) == Some("direct") {
            c.ssl_negotiation(SslNegotiation::Direct);
        }
        c
    }

    /// Opens a synchronous session for `purpose`.
    pub fn connect(&self, purpose: &str) -> Result<postgres::Client, ConnectError> {
        self.open(purpose, |endpoint, transport, password| {
            let mut config = self.config(endpoint, password);
            let mut client = match transport {
                Transport::Plain => {
                    config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                    postgres::Config::from(config)
                        .connect(postgres::NoTls)
                        .map_err(|e| self.attempt_error(endpoint, &e, None, password))?
                }
                Transport::Tls { fallback } => {
                    config.ssl_mode(ssl_mode(fallback));
                    let (tls, failure) = self.tls.connector()?;
                    postgres::Config::from(config)
                        .connect(tls)
                        .map_err(|e| self.attempt_error(endpoint, &e, Some(&failure), password))?
                }
            };
            let facts = client
                .simple_query(FACTS_SQL)
                .map_err(|e| self.attempt_error(endpoint, &e, None, password))
                .and_then(|m| server_facts(m).ok_or_else(|| no_facts(endpoint)))?;
            Ok((client, facts))
        })
    }

    /// Opens an async session for `purpose`, its connection driven by a task of the current
    /// tokio runtime (returned, to be awaited after the client is dropped).
    pub async fn connect_async(
        &self,
        purpose: &str,
    ) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), ConnectError> {
        let mut failures = Vec::new();
        for (pass, index) in self.rounds() {
            let endpoint = &self.endpoints[index];
            let password = self.password(endpoint)?;
            for transport in self.transports(endpoint)? {
                let outcome = self
                    .attempt_async(endpoint, transport, password.as_deref())
                    .await
                    .map(|(client, driver, facts)| ((client, driver), facts));
                match self.settle(pass, index, purpose, outcome, &mut failures)? {
                    Settled::Open(session) => return Ok(session),
                    Settled::NextEndpoint => break,
                    Settled::NextTransport => {}
                }
            }
        }
        Err(ConnectError::Attempts(failures.join("; ")))
    }

    async fn attempt_async(
        &self,
        endpoint: &Endpoint,
        transport: Transport,
        password: Option<&str>,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio::task::JoinHandle<()>,
            ServerFacts,
        ),
        ConnectError,
    > {
        let mut config = self.config(endpoint, password);
        let (client, driver) = match transport {
            Transport::Plain => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                let (client, connection) = config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| self.attempt_error(endpoint, &e, None, password))?;
                (
                    client,
                    tokio::spawn(async move {
                        let _ = connection.await;
                    }),
                )
            }
            Transport::Tls { fallback } => {
                config.ssl_mode(ssl_mode(fallback));
                let (tls, failure) = self.tls.connector()?;
                let (client, connection) = config
                    .connect(tls)
                    .await
                    .map_err(|e| self.attempt_error(endpoint, &e, Some(&failure), password))?;
                (
                    client,
                    tokio::spawn(async move {
                        let _ = connection.await;
                    }),
                )
            }
        };
        let facts = client
            .simple_query(FACTS_SQL)
            .await
            .map_err(|e| self.attempt_error(endpoint, &e, None, password))?;
        let facts = server_facts(facts).ok_or_else(|| no_facts(endpoint))?;
        Ok((client, driver, facts))
    }

    fn passes(&self) -> Vec<Pass> {
        match self.attrs {
            SessionAttrs::PreferStandby => vec![Pass::Attrs, Pass::Any],
            _ => vec![Pass::Attrs],
        }
    }

    /// Tries every endpoint with every transport its mode allows, until one opens a session
    /// the attributes accept.
    fn open(
        &self,
        purpose: &str,
        attempt: impl Fn(
            &Endpoint,
            Transport,
            Option<&str>,
        ) -> Result<(postgres::Client, ServerFacts), ConnectError>,
    ) -> Result<postgres::Client, ConnectError> {
        let mut failures = Vec::new();
        for (pass, index) in self.rounds() {
            let endpoint = &self.endpoints[index];
            let password = self.password(endpoint)?;
            for transport in self.transports(endpoint)? {
                let outcome = attempt(endpoint, transport, password.as_deref());
                match self.settle(pass, index, purpose, outcome, &mut failures)? {
                    Settled::Open(client) => return Ok(client),
                    Settled::NextEndpoint => break,
                    Settled::NextTransport => {}
                }
            }
        }
        Err(ConnectError::Attempts(failures.join("; ")))
    }

    /// Every pass over the candidate endpoints, in order.
    fn rounds(&self) -> Vec<(Pass, usize)> {
        let candidates = self.candidates();
        self.passes()
            .into_iter()
            .flat_map(|pass| candidates.iter().map(move |&index| (pass, index)))
            .collect()
    }

    /// What one attempt comes to: a session the attributes accept (recorded), a server of the
    /// wrong kind (try the next endpoint), or a failure to reach it (noted; try on). A failure
    /// that is not about this endpoint (TLS settings, the password command) ends the search.
    fn settle<S>(
        &self,
        pass: Pass,
        index: usize,
        purpose: &str,
        outcome: Result<(S, ServerFacts), ConnectError>,
        failures: &mut Vec<String>,
    ) -> Result<Settled<S>, ConnectError> {
        match outcome {
            Ok((session, facts)) if pass == Pass::Any || self.attrs.accepts(&facts) => {
                self.record(index, purpose, &facts);
                Ok(Settled::Open(session))
            }
            Ok(_) => {
                failures.push(self.unsuitable(&self.endpoints[index]));
                Ok(Settled::NextEndpoint)
            }
            Err(ConnectError::Attempt { endpoint, message }) => {
                failures.push(format!("{endpoint}: {message}"));
                Ok(Settled::NextTransport)
            }
            Err(other) => Err(other),
        }
    }

    fn unsuitable(&self, endpoint: &Endpoint) -> String {
        format!(
            "{endpoint}: the server is not {} ({})",
            serde_plain(self.attrs),
            self.settings.shown(Keyword::TargetSessionAttrs)
        )
    }

    fn record(&self, index: usize, purpose: &str, facts: &ServerFacts) {
        lock(&self.chosen).get_or_insert(index);
        let verified = if facts.ssl {
            self.tls.verification()
        } else {
            Verification::None
        };
        lock(&self.sessions).push(SessionRecord {
            purpose: purpose.to_string(),
            endpoint: self.endpoints[index].to_string(),
            sslmode: self.tls.mode,
            tls: SessionTls {
                ssl: facts.ssl,
                protocol: facts.protocol.clone(),
                cipher: facts.cipher.clone(),
                verified,
            },
            in_recovery: facts.in_recovery,
        });
    }

    /// The driver's error in words a DBA acts on: which certificate check failed, or that no
    /// password was found and where sluice looked.
    fn attempt_error(
        &self,
        endpoint: &Endpoint,
        err: &tokio_postgres::Error,
        failure: Option<&super::tls::VerifyFailure>,
        password: Option<&str>,
    ) -> ConnectError {
        let mut message = super::pg_message(err);
        if let Some(why) =
            failure.and_then(|f| f.explain(&endpoint.tls_name(), self.tls.root.as_ref()))
        {
            message = format!("{why} ({})", self.settings.shown(Keyword::Sslmode));
        } else if password.is_none() && message.contains("password missing") {
            message = format!(
                "the server asks for a password and none was found: give password= in --target or the service, --password-command, PGPASSWORD, or a line in {} matching {}:{}:{}:{}",
                self.passfile_shown(),
                endpoint.passfile_host(),
                endpoint.port,
                self.settings.get(Keyword::Dbname).unwrap_or(""),
                self.settings.get(Keyword::User).unwrap_or("")
            );
        } else if let Some(secret) = password.filter(|p| !p.is_empty()) {
            message = message.replace(secret, "***");
        }
        ConnectError::Attempt {
            endpoint: endpoint.to_string(),
            message,
        }
    }

    fn passfile_shown(&self) -> String {
        match (self.settings.get(Keyword::Passfile), &self.settings.home) {
            (Some(p), _) => p.to_string(),
            (None, Some(h)) => h.join(".pgpass").display().to_string(),
            (None, None) => "~/.pgpass".into(),
        }
    }
}

enum Settled<S> {
    Open(S),
    NextEndpoint,
    NextTransport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Attrs,
    Any,
}

fn ssl_mode(fallback: bool) -> tokio_postgres::config::SslMode {
    if fallback {
        tokio_postgres::config::SslMode::Prefer
    } else {
        tokio_postgres::config::SslMode::Require
    }
}

fn no_facts(endpoint: &Endpoint) -> ConnectError {
    ConnectError::Attempt {
        endpoint: endpoint.to_string(),
        message: "pg_stat_ssl has no row for this session".into(),
    }
}

fn serde_plain(attrs: SessionAttrs) -> String {
    serde_json::to_value(attrs)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Runs the password command with `sh -c` and takes the first line of its output; its error
/// output is passed on (it may say how to log in), the token never is.
fn run_password_command(command: &str) -> Result<String, ConnectError> {
    let out = super::child_command("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| ConnectError::PasswordCommand(format!("cannot run sh: {e}")))?;
    if !out.status.success() {
        return Err(ConnectError::PasswordCommand(format!(
            "it exited with {}",
            out.status
        )));
    }
    let text = String::from_utf8(out.stdout)
        .map_err(|_| ConnectError::PasswordCommand("its output is not UTF-8".into()))?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        return Err(ConnectError::PasswordCommand(
            "it printed no password".into(),
        ));
    }
    Ok(line.to_string())
}
