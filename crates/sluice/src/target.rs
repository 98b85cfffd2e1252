//! The target: reaching a PostgreSQL database from `--target` (a libpq key/value string or a
//! URL) or the usual `PG*` variables, showing it without its password, reading its identity,
//! and running checks in READ ONLY transactions.

use crate::expect::TextRows;
use crate::package::TargetSpec;
use crate::sql::hazards::TargetFacts;
use postgres::{Client, NoTls, SimpleQueryMessage};
use serde::Serialize;
use std::str::FromStr;
use tokio_postgres::Config;

/// How long one read-only check may run before it is cancelled.
pub const CHECK_TIMEOUT_MS: u64 = 60_000;

/// A target to connect to. Its `Display` never shows the password.
#[derive(Clone)]
pub struct Target {
    config: Config,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("--target is not a valid connection string or URL: {0}")]
    BadConnectionString(String),
    #[error("cannot connect to {target}: {message}")]
    Connect { target: String, message: String },
    #[error("query failed on {target}: {message}")]
    Query { target: String, message: String },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({self})")
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "host={} port={} dbname={} user={}",
            self.hosts(),
            self.ports(),
            self.config.get_dbname().unwrap_or("?"),
            self.config.get_user().unwrap_or("?")
        )
    }
}

impl Target {
    /// From `--target`, or from `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD` when it
    /// is absent. Missing parts default as libpq does (unix socket, 5432, the OS user).
    pub fn resolve(spec: Option<&str>) -> Result<Target, TargetError> {
        let mut config = match spec {
            Some(s) => Config::from_str(s)
                .map_err(|e| TargetError::BadConnectionString(redact_error(&e.to_string())))?,
            None => Config::new(),
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if config.get_hosts().is_empty() {
            let host = env("PGHOST").unwrap_or_else(default_socket_dir);
            config.host(&host);
        }
        if config.get_ports().is_empty() {
            if let Some(port) = env("PGPORT").and_then(|p| p.parse().ok()) {
                config.port(port);
            }
        }
        if config.get_user().is_none() {
            let user = env("PGUSER")
                .or_else(|| env("USER"))
                .unwrap_or_else(|| "postgres".into());
            config.user(&user);
        }
        if config.get_dbname().is_none() {
            let db = env("PGDATABASE")
                .unwrap_or_else(|| config.get_user().unwrap_or("postgres").to_string());
            config.dbname(&db);
        }
        if config.get_password().is_none() {
            if let Some(pw) = env("PGPASSWORD") {
                config.password(pw);
            }
        }
        if config.get_application_name().is_none() {
            config.application_name("sluice");
        }
        Ok(Target { config })
    }

    pub fn connect(&self) -> Result<Client, TargetError> {
        postgres::Config::from(self.config.clone())
            .connect(NoTls)
            .map_err(|e| TargetError::Connect {
                target: self.to_string(),
                message: pg_message(&e),
            })
    }

    /// The same target for the async client a probe's rows stream over.
    pub fn async_config(&self) -> &Config {
        &self.config
    }

    /// Every host, comma-separated, as libpq's `PGHOST` takes them (a socket folder is a host).
    pub fn hosts(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .collect();
        if hosts.is_empty() {
            "?".into()
        } else {
            hosts.join(",")
        }
    }

    /// Every port, comma-separated, as libpq's `PGPORT` takes them.
    pub fn ports(&self) -> String {
        let ports: Vec<String> = self.config.get_ports().iter().map(u16::to_string).collect();
        if ports.is_empty() {
            "5432".into()
        } else {
            ports.join(",")
        }
    }

    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or("")
    }

    /// The password, for handing to a child process through its environment only.
    pub fn password(&self) -> Option<&[u8]> {
        self.config.get_password()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn query_error(&self, err: &postgres::Error) -> TargetError {
        TargetError::Query {
            target: self.to_string(),
            message: pg_message(err),
        }
    }
}

fn default_socket_dir() -> String {
    ["/var/run/postgresql", "/tmp"]
        .into_iter()
        .find(|d| std::path::Path::new(d).is_dir())
        .unwrap_or("/tmp")
        .to_string()
}

/// Error text from the connection string parser, which may quote a password: keep only the
/// parser's reason.
fn redact_error(message: &str) -> String {
    message.split(':').next().unwrap_or("invalid").to_string()
}

/// PostgreSQL's own message with its SQLSTATE, detail and hint when the server sent one.
pub fn pg_message(err: &postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => {
            let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                s.push_str(&format!("; detail: {detail}"));
            }
            if let Some(hint) = db.hint() {
                s.push_str(&format!("; hint: {hint}"));
            }
            s
        }
        None => {
            let mut s = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                s.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            s
        }
    }
}

/// What the target says about itself.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityFacts {
    pub database: String,
    pub role: String,
    pub server_version: String,
    pub server_version_num: u32,
    /// `None` when the role may not read `pg_control_system()`.
    pub system_identifier: Option<String>,
    /// Whether the server is a sluice rehearsal cluster (`sluice.rehearsal = on`).
    pub rehearsal_cluster: bool,
}

impl IdentityFacts {
    pub fn server_major(&self) -> u32 {
        self.server_version_num / 10000
    }
}

/// One `[target]` key compared with the target.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityItem {
    pub key: String,
    pub expected: String,
    pub actual: String,
    pub holds: bool,
}

fn scalar(client: &mut Client, sql: &str) -> Result<Option<String>, postgres::Error> {
    let rows = text_query(client, sql)?;
    Ok(rows
        .rows
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten()))
}

/// Reads the identity facts: those every role may read in one statement, the system
/// identifier (which needs pg_monitor or a superuser) in its own, so that its refusal spoils
/// no other.
pub fn identity(client: &mut Client) -> Result<IdentityFacts, postgres::Error> {
    let row = client.query_one(
        "SELECT pg_catalog.current_database()::text, current_user::text, \
                pg_catalog.current_setting('server_version'), \
                pg_catalog.current_setting('server_version_num'), \
                pg_catalog.current_setting('sluice.rehearsal', true)",
        &[],
    )?;
    let server_version_num: String = row.get(3);
    let rehearsal: Option<String> = row.get(4);
    let system_identifier = scalar(
        client,
        "SELECT system_identifier::text FROM pg_control_system()",
    )
    .ok()
    .flatten();
    Ok(IdentityFacts {
        database: row.get(0),
        role: row.get(1),
        server_version: row.get(2),
        server_version_num: server_version_num.parse().unwrap_or(0),
        system_identifier,
        rehearsal_cluster: rehearsal.as_deref() == Some("on"),
    })
}

/// Compares `[target]` with the facts. The rehearsal marker is always compared: a named
/// environment must never be a rehearsal cluster, and a rehearsal run (`rehearsal`) must be on
/// one.
pub fn compare_identity(
    spec: &TargetSpec,
    facts: &IdentityFacts,
    rehearsal: bool,
) -> Vec<IdentityItem> {
    let mut items = Vec::new();
    let mut push = |key: &str, expected: String, actual: String| {
        items.push(IdentityItem {
            holds: expected == actual,
            key: key.into(),
            expected,
            actual,
        })
    };
    if let Some(db) = &spec.database {
        push("database", db.clone(), facts.database.clone());
    }
    if let Some(role) = &spec.role {
        push("role", role.clone(), facts.role.clone());
    }
    if let Some(major) = spec.server_major {
        push(
            "server_major",
            major.to_string(),
            facts.server_major().to_string(),
        );
    }
    if let Some(id) = &spec.system_identifier {
        push(
            "system_identifier",
            id.clone(),
            facts.system_identifier.clone().unwrap_or_else(|| {
                "(not readable by this role: grant pg_monitor or use a superuser)".into()
            }),
        );
    }
    let (key, expected) = if rehearsal {
        ("is a rehearsal cluster", "sluice.rehearsal = on")
    } else {
        ("not a rehearsal cluster", "sluice.rehearsal unset")
    };
    items.push(IdentityItem {
        key: key.into(),
        expected: expected.into(),
        actual: if facts.rehearsal_cluster {
            "sluice.rehearsal = on".into()
        } else {
            "unset".into()
        },
        holds: facts.rehearsal_cluster == rehearsal,
    });
    items
}

/// Runs a query with the simple protocol and returns its text output.
pub fn text_query(client: &mut Client, sql: &str) -> Result<TextRows, postgres::Error> {
    Ok(collect_text_rows(client.simple_query(sql)?))
}

/// `SET TRANSACTION SNAPSHOT` of the snapshot another session exported (the id
/// `pg_export_snapshot()` returned), the first statement of a REPEATABLE READ transaction that
/// is to read the same moment.
pub fn import_snapshot_sql(exported: &str) -> String {
    format!("SET TRANSACTION SNAPSHOT '{}'", exported.replace('\'', ""))
}

/// [`text_query`] inside a transaction.
pub fn text_query_tx(
    tx: &mut postgres::Transaction<'_>,
    sql: &str,
) -> Result<TextRows, postgres::Error> {
    Ok(collect_text_rows(tx.simple_query(sql)?))
}

fn collect_text_rows(messages: Vec<SimpleQueryMessage>) -> TextRows {
    let mut result = TextRows::default();
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(cols) if result.columns.is_empty() => {
                result.columns = cols.iter().map(|c| c.name().to_string()).collect();
            }
            SimpleQueryMessage::Row(row) => {
                if result.columns.is_empty() {
                    result.columns = row.columns().iter().map(|c| c.name().to_string()).collect();
                }
                result.rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                );
            }
            _ => {}
        }
    }
    result
}

/// Runs one check in its own `BEGIN READ ONLY` transaction with a statement timeout, and always
/// rolls back: a check cannot write, even if it tries.
pub fn read_only_query(
    client: &mut Client,
    sql: &str,
    timeout_ms: u64,
) -> Result<TextRows, postgres::Error> {
    client.batch_execute(&format!(
        "BEGIN READ ONLY; SET LOCAL statement_timeout = {timeout_ms}; SET LOCAL lock_timeout = {timeout_ms}"
    ))?;
    let result = text_query(client, sql);
    let rollback = client.batch_execute("ROLLBACK");
    let rows = result?;
    rollback?;
    Ok(rows)
}

/// Row-level triggers that fire on INSERT, UPDATE or DELETE, per table, for the
/// `trigger-side-effect` hazard.
pub fn facts(client: &mut Client) -> Result<TargetFacts, postgres::Error> {
    let rows = read_only_query(
        client,
        "SELECT n.nspname || '.' || c.relname, t.tgname
           FROM pg_trigger t
           JOIN pg_class c ON c.oid = t.tgrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE NOT t.tgisinternal AND (t.tgtype & 1) = 1 AND (t.tgtype & 28) <> 0
          ORDER BY 1, 2",
        CHECK_TIMEOUT_MS,
    )?;
    let mut facts = TargetFacts::default();
    for row in rows.rows {
        if let [Some(table), Some(trigger)] = row.as_slice() {
            facts
                .row_triggers
                .entry(table.clone())
                .or_default()
                .push(trigger.clone());
        }
    }
    Ok(facts)
}

/// A command for a child process that does not inherit the password sluice was given: every
/// child sluice starts (version probes, initdb, pg_ctl, pg_dump, pg_restore) is made here.
pub fn child_command(program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    cmd.env_remove("PGPASSWORD");
    cmd
}
