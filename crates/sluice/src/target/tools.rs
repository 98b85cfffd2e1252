//! The environment of the libpq programs sluice starts for a target (`pg_dump`, `pg_restore`):
//! the endpoint the sessions use and every resolved setting as libpq's own variables, so that a
//! tool reaches the same server the same way — over TLS when the sessions were encrypted, with
//! the same certificates — and nothing inherited from the user's environment steers it
//! elsewhere. Secrets reach it only through 0600 files that live as long as the [`ToolEnv`]:
//! the password through a passfile, a passphrase-protected client key decrypted into a key
//! file. Never through its command line or its environment.

use super::connect::{ConnectError, Connector};
use super::endpoint::Host;
use super::keyword::Keyword;
use super::tls::{RootCert, SslMode};
use std::io::Write;
use std::process::Command;

/// Variables libpq reads that are not connection keywords; removed from every child.
const OTHER_LIBPQ_VARS: &[&str] = &["PGSYSCONFDIR", "PGREQUIRESSL", "PGTZ", "PGDATESTYLE"];

/// A command for a child process that inherits none of libpq's variables from sluice's own
/// environment (no `PGPASSWORD`, no `PGSERVICE`…): every child sluice starts (version probes,
/// initdb, pg_ctl, pg_dump, pg_restore, the password command) is made here.
pub fn child_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for keyword in Keyword::ALL {
        if let Some(var) = keyword.env() {
            cmd.env_remove(var);
        }
    }
    for var in OTHER_LIBPQ_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// The variables that point a libpq tool at the target, and the 0600 files behind them.
pub struct ToolEnv {
    pub vars: Vec<(&'static str, String)>,
    _secrets: Vec<tempfile::NamedTempFile>,
}

impl ToolEnv {
    /// Adds the variables to `cmd` (made by [`child_command`]).
    pub fn apply(&self, cmd: &mut Command) {
        cmd.envs(self.vars.iter().map(|(k, v)| (k, v)));
    }
}

fn secret_file(prefix: &str, contents: &[u8]) -> Result<tempfile::NamedTempFile, ConnectError> {
    let io = |e: std::io::Error| ConnectError::ToolSecret(e.to_string());
    // tempfile creates the file 0600
    let mut file = tempfile::Builder::new()
        .prefix(prefix)
        .tempfile()
        .map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(file)
}

/// The sslmode a tool gets: what the user asked for, raised to `require` once a session was
/// encrypted, so that a tool never talks in cleartext to a server sluice reached over TLS.
fn tool_sslmode(connector: &Connector) -> SslMode {
    let mode = connector.tls.mode;
    let encrypted = connector.sessions().iter().any(|s| s.tls.ssl);
    if encrypted && mode < SslMode::Require {
        SslMode::Require
    } else {
        mode
    }
}

pub(super) fn tool_env(connector: &Connector) -> Result<ToolEnv, ConnectError> {
    let s = &connector.settings;
    let endpoint = connector.current_endpoint();
    let mut vars: Vec<(&'static str, String)> = Vec::new();
    match &endpoint.host {
        Host::Tcp(h) => vars.push(("PGHOST", h.clone())),
        Host::Unix(dir) => vars.push(("PGHOST", dir.display().to_string())),
        Host::None => {}
    }
    if let Some(addr) = endpoint.hostaddr {
        vars.push(("PGHOSTADDR", addr.to_string()));
    }
    vars.push(("PGPORT", endpoint.port.to_string()));
    for keyword in [
        Keyword::User,
        Keyword::Dbname,
        Keyword::ApplicationName,
        Keyword::Options,
        Keyword::ConnectTimeout,
        Keyword::ChannelBinding,
        Keyword::Sslnegotiation,
        Keyword::Sslsni,
        Keyword::SslMinProtocolVersion,
        Keyword::SslMaxProtocolVersion,
        Keyword::Sslcrldir,
    ] {
        if let (Some(value), Some(var)) = (s.get(keyword), keyword.env()) {
            vars.push((var, value.to_string()));
        }
    }
    // sluice speaks no GSSAPI; its tools do not either
    vars.push(("PGGSSENCMODE", "disable".into()));
    if endpoint.is_unix() {
        vars.push(("PGSSLMODE", "disable".into()));
    } else {
        vars.push(("PGSSLMODE", tool_sslmode(connector).name().into()));
    }
    let tls = &connector.tls;
    match &tls.root {
        Some(RootCert::System) => vars.push(("PGSSLROOTCERT", "system".into())),
        Some(RootCert::File(p)) => vars.push(("PGSSLROOTCERT", p.display().to_string())),
        None => {}
    }
    if let Some(crl) = &tls.crl {
        vars.push(("PGSSLCRL", crl.display().to_string()));
    }
    let mut secrets = Vec::new();
    match &tls.client {
        Some((cert, key)) => {
            vars.push(("PGSSLCERT", cert.display().to_string()));
            if tls.key_password.is_some() {
                // libpq takes a passphrase only as a keyword; the tool gets the key decrypted
                let pem = tls.decrypted_key_pem(key)?;
                let file = secret_file("sluice-sslkey-", &pem)?;
                vars.push(("PGSSLKEY", file.path().display().to_string()));
                secrets.push(file);
            } else {
                vars.push(("PGSSLKEY", key.display().to_string()));
            }
        }
        // no certificate to present: point libpq away from its default one
        None => vars.push(("PGSSLCERTMODE", "disable".into())),
    }
    match connector.password(endpoint)? {
        Some(password) => {
            let escaped = password.replace('\\', "\\\\").replace(':', "\\:");
            let file = secret_file("sluice-pgpass-", format!("*:*:*:*:{escaped}\n").as_bytes())?;
            vars.push(("PGPASSFILE", file.path().display().to_string()));
            secrets.push(file);
        }
        None => {
            if let Some(passfile) = s.get(Keyword::Passfile) {
                vars.push(("PGPASSFILE", passfile.to_string()));
            }
        }
    }
    Ok(ToolEnv {
        vars,
        _secrets: secrets,
    })
}
