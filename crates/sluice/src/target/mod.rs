//! The target: reaching a PostgreSQL database the way libpq does (SPEC §10) — `--target` (a
//! keyword/value string or a URL), a service, the `PG*` variables, the passfile, a password
//! command, TLS — through one connector that every session and every client tool uses; showing
//! the target without its password; reading its identity; and running checks in READ ONLY
//! transactions.
//!
//! Submodules: `keyword` (libpq's keywords and their variables), `conninfo` (parsing
//! `--target`), `service` (service files), `settings` (resolution with sources), `endpoint`
//! (host/port lists), `passfile`, `tls` (sslmode and certificates on OpenSSL), `connect`
//! (opening sessions and recording their TLS state), `tools` (the environment of `pg_dump` and
//! `pg_restore`), `pg_error` (a server error as data).

mod connect;
mod conninfo;
mod endpoint;
mod keyword;
mod passfile;
mod pg_error;
mod service;
mod settings;
mod tls;
mod tools;

pub use connect::{ConnectError, SessionRecord};
pub use keyword::Keyword;
pub use pg_error::{PgError, LOCK_NOT_AVAILABLE};
pub use settings::{SettingsError, Source};
pub use tls::{SslMode, TlsError, Verification};
pub use tools::{child_command, ToolEnv};

use crate::expect::TextRows;
use crate::package::TargetSpec;
use crate::sql::hazards::TargetFacts;
use connect::Connector;
use postgres::{Client, SimpleQueryMessage};
use serde::Serialize;
use settings::Settings;
use std::sync::Arc;

/// How long one read-only check may run before it is cancelled.
pub const CHECK_TIMEOUT_MS: u64 = 60_000;

/// A target to connect to: its resolved settings and the sessions opened so far, shared by
/// every clone. Its `Display` never shows a secret.
#[derive(Clone)]
pub struct Target {
    connector: Arc<Connector>,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The settings cannot be used (unknown keyword, bad value, missing service or root
    /// certificate): nothing was attempted.
    #[error("{0}")]
    Settings(#[from] SettingsError),
    #[error("{0}")]
    Tls(#[from] TlsError),
    /// The settings ask for something that cannot be (TLS over a Unix-domain socket).
    #[error("{0}")]
    Invalid(ConnectError),
    #[error("cannot connect to {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: ConnectError,
    },
    #[error("query failed on {target}: {message}")]
    Query { target: String, message: String },
}

impl TargetError {
    /// Whether the error is in what the user gave (exit 2) rather than in reaching the server.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            TargetError::Settings(_) | TargetError::Tls(_) | TargetError::Invalid(_)
        )
    }
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
            self.dbname(),
            self.user()
        )
    }
}

/// How a run reached its target (run.json's `connection`). Never a secret.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionRecord {
    /// `keyword=value (from X)` for every setting but the secret ones.
    pub settings: Vec<String>,
    pub sessions: Vec<SessionRecord>,
    pub warnings: Vec<String>,
}

/// The TLS keywords of resolved settings.
fn tls_keywords(s: &Settings) -> tls::TlsKeywords<'_> {
    tls::TlsKeywords {
        sslmode: s.get(Keyword::Sslmode),
        sslrootcert: s.get(Keyword::Sslrootcert),
        sslcert: s.get(Keyword::Sslcert),
        sslkey: s.get(Keyword::Sslkey),
        sslpassword: s.secret(Keyword::Sslpassword),
        sslcrl: s.get(Keyword::Sslcrl),
        sslcrldir: s.get(Keyword::Sslcrldir),
        sslsni: s.get(Keyword::Sslsni),
        sslcertmode: s.get(Keyword::Sslcertmode),
        min_protocol: s.get(Keyword::SslMinProtocolVersion),
        max_protocol: s.get(Keyword::SslMaxProtocolVersion),
    }
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Target {
    /// A production (or any user-named) target: `--target`, then a service, then the `PG*`
    /// variables, then libpq's defaults; `password_command` (from `--password-command` or
    /// `SLUICE_PASSWORD_COMMAND`) supplies short-lived passwords, run once per connection.
    pub fn resolve(
        spec: Option<&str>,
        password_command: Option<&str>,
    ) -> Result<Target, TargetError> {
        Self::resolve_in(spec, password_command, &process_env)
    }

    /// A throwaway cluster sluice started itself: only `conninfo`, none of the user's `PG*`
    /// variables (a `PGSSLMODE` or `PGSERVICE` meant for production must not steer it).
    pub fn local(conninfo: &str) -> Result<Target, TargetError> {
        Self::resolve_in(Some(conninfo), None, &|_| None)
    }

    fn resolve_in(
        spec: Option<&str>,
        password_command: Option<&str>,
        env: settings::Env<'_>,
    ) -> Result<Target, TargetError> {
        let settings = Settings::resolve(spec, env)?;
        let command = password_command
            .filter(|c| !c.trim().is_empty())
            .map(str::to_string);
        let connector = Connector::new(settings, command).map_err(|e| match e {
            ConnectError::Settings(e) => TargetError::Settings(e),
            ConnectError::Tls(e) => TargetError::Tls(e),
            other => TargetError::Invalid(other),
        })?;
        Ok(Target {
            connector: Arc::new(connector),
        })
    }

    /// Opens a session for `purpose` (`lock`, `work`, `helper`, `check`…), recorded with its
    /// TLS state for the evidence.
    pub fn connect(&self, purpose: &str) -> Result<Client, TargetError> {
        self.connector
            .connect(purpose)
            .map_err(|source| self.connect_error(source))
    }

    /// An async session for `purpose`, its connection driven by a task of the current tokio
    /// runtime.
    pub async fn connect_async(
        &self,
        purpose: &str,
    ) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), TargetError> {
        self.connector
            .connect_async(purpose)
            .await
            .map_err(|source| self.connect_error(source))
    }

    fn connect_error(&self, source: ConnectError) -> TargetError {
        match source {
            ConnectError::Settings(e) => TargetError::Settings(e),
            ConnectError::Tls(e) => TargetError::Tls(e),
            source => TargetError::Connect {
                target: self.to_string(),
                source,
            },
        }
    }

    /// Every session opened so far, with its TLS state (never a secret).
    pub fn sessions(&self) -> Vec<SessionRecord> {
        self.connector.sessions()
    }

    /// How the target was reached, for the evidence: the settings with their sources, every
    /// session with its TLS state, and the warnings met.
    pub(crate) fn connection_record(&self) -> ConnectionRecord {
        ConnectionRecord {
            settings: self.settings_shown(),
            sessions: self.sessions(),
            warnings: self.warnings(),
        }
    }

    /// Whether any session to this target was encrypted, or the settings demand encryption:
    /// a client tool started for it must then speak TLS.
    pub(crate) fn needs_tls(&self) -> bool {
        self.connector.tls.mode.requires_tls() || self.sessions().iter().any(|s| s.tls.ssl)
    }

    /// Every non-secret setting with where it came from, as `keyword=value (from X)`.
    pub(crate) fn settings_shown(&self) -> Vec<String> {
        self.connector
            .settings
            .public()
            .into_iter()
            .map(|(k, _)| self.connector.settings.shown(k))
            .collect()
    }

    /// Warnings met while connecting (a passfile ignored for its permissions…).
    pub fn warnings(&self) -> Vec<String> {
        self.connector.warnings()
    }

    /// The environment that points a libpq client tool at the endpoint the sessions use.
    pub fn tool_env(&self) -> Result<ToolEnv, TargetError> {
        tools::tool_env(&self.connector).map_err(|source| self.connect_error(source))
    }

    /// Every host, comma-separated, as libpq's `PGHOST` takes them (a socket folder is a host).
    pub(crate) fn hosts(&self) -> String {
        let hosts: Vec<String> = self
            .connector
            .endpoints
            .iter()
            .map(|e| {
                e.host_value()
                    .unwrap_or_else(|| e.hostaddr.map(|a| a.to_string()).unwrap_or_default())
            })
            .collect();
        hosts.join(",")
    }

    /// Every port, comma-separated.
    pub fn ports(&self) -> String {
        let ports: Vec<String> = self
            .connector
            .endpoints
            .iter()
            .map(|e| e.port.to_string())
            .collect();
        ports.join(",")
    }

    pub fn dbname(&self) -> &str {
        self.connector.settings.get(Keyword::Dbname).unwrap_or("")
    }

    pub fn user(&self) -> &str {
        self.connector.settings.get(Keyword::User).unwrap_or("")
    }

    pub fn query_error(&self, err: &postgres::Error) -> TargetError {
        TargetError::Query {
            target: self.to_string(),
            message: pg_message(err),
        }
    }
}

/// PostgreSQL's own message with its SQLSTATE, detail and hint when the server sent one.
pub fn pg_message(err: &postgres::Error) -> String {
    PgError::from_error(err).to_string()
}

/// What the target says about itself.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
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
pub(crate) fn compare_identity(
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
pub(crate) fn text_query(client: &mut Client, sql: &str) -> Result<TextRows, postgres::Error> {
    Ok(collect_text_rows(client.simple_query(sql)?))
}

/// `SET TRANSACTION SNAPSHOT` of the snapshot another session exported (the id
/// `pg_export_snapshot()` returned), the first statement of a REPEATABLE READ transaction that
/// is to read the same moment.
pub(crate) fn import_snapshot_sql(exported: &str) -> String {
    format!("SET TRANSACTION SNAPSHOT '{}'", exported.replace('\'', ""))
}

/// [`text_query`] inside a transaction.
pub(crate) fn text_query_tx(
    tx: &mut postgres::Transaction<'_>,
    sql: &str,
) -> Result<TextRows, postgres::Error> {
    Ok(collect_text_rows(tx.simple_query(sql)?))
}

pub(crate) fn collect_text_rows(messages: Vec<SimpleQueryMessage>) -> TextRows {
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
///
/// `sql` is one statement (a package's check is parsed as exactly one by `package::validate`):
/// the transaction, the query and the ROLLBACK go as one simple-protocol Query, one round trip.
/// The statement starts on a line of its own and the ROLLBACK on the next, so a trailing `--`
/// comment cannot reach past it. When the query fails the server skips the rest of the message
/// and the transaction stays open, aborted: a ROLLBACK of its own ends it.
pub(crate) fn read_only_query(
    client: &mut Client,
    sql: &str,
    timeout_ms: u64,
) -> Result<TextRows, postgres::Error> {
    let whole = format!(
        "BEGIN READ ONLY; SET LOCAL statement_timeout = {timeout_ms}; SET LOCAL lock_timeout = {timeout_ms};\n{sql}\n;ROLLBACK"
    );
    match client.simple_query(&whole) {
        Ok(messages) => Ok(collect_text_rows(messages)),
        Err(err) => {
            // ends the aborted transaction; harmless (a warning) when there is none
            let _ = client.batch_execute("ROLLBACK");
            Err(err)
        }
    }
}

/// Row-level triggers that fire on INSERT, UPDATE or DELETE, per table, for the
/// `trigger-side-effect` hazard, and the row-level security policies of each table, for
/// `privilege-change`.
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
    let policies = read_only_query(
        client,
        "SELECT n.nspname || '.' || c.relname, p.polname
           FROM pg_policy p
           JOIN pg_class c ON c.oid = p.polrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
          ORDER BY 1, 2",
        CHECK_TIMEOUT_MS,
    )?;
    for row in policies.rows {
        if let [Some(table), Some(policy)] = row.as_slice() {
            facts
                .policies
                .entry(table.clone())
                .or_default()
                .push(policy.clone());
        }
    }
    Ok(facts)
}
