//! A server error as PostgreSQL sent it — SQLSTATE, severity, message, detail, hint, the error
//! cursor and, where sluice knows it, the `file:line:col` of the statement — built once where the
//! error is met and carried as data into run.json and `--json`; rendered to text only at the
//! edges (its `Display` is the one-line text messages use).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgError {
    /// Five characters (`55P03`); `None` when the error did not come from the server (a lost
    /// connection, a TLS failure).
    pub sqlstate: Option<String>,
    pub severity: Option<String>,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// The 1-based character position PostgreSQL's cursor points at, in the statement sent.
    pub position: Option<u32>,
    /// `file:line:col` in the package, when the statement came from one of its files.
    pub location: Option<String>,
}

/// SQLSTATE 55P03, lock_not_available: what `lock_timeout` raises.
pub const LOCK_NOT_AVAILABLE: &str = "55P03";

impl PgError {
    pub(crate) fn from_error(err: &postgres::Error) -> PgError {
        match err.as_db_error() {
            Some(db) => PgError {
                sqlstate: Some(db.code().code().to_string()),
                severity: Some(db.severity().to_string()),
                message: db.message().to_string(),
                detail: db.detail().map(str::to_string),
                hint: db.hint().map(str::to_string),
                position: match db.position() {
                    Some(postgres::error::ErrorPosition::Original(p)) => Some(*p),
                    _ => None,
                },
                location: None,
            },
            None => {
                let mut message = err.to_string();
                let mut source = std::error::Error::source(err);
                while let Some(cause) = source {
                    message.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                PgError {
                    sqlstate: None,
                    severity: None,
                    message,
                    detail: None,
                    hint: None,
                    position: None,
                    location: None,
                }
            }
        }
    }

    /// The same error, located in a package file.
    pub fn at(mut self, location: impl Into<String>) -> PgError {
        self.location = Some(location.into());
        self
    }

    pub(crate) fn is_lock_timeout(&self) -> bool {
        self.sqlstate.as_deref() == Some(LOCK_NOT_AVAILABLE)
    }
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(code) = &self.sqlstate {
            write!(f, " (SQLSTATE {code})")?;
        }
        if let Some(detail) = &self.detail {
            write!(f, "; detail: {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "; hint: {hint}")?;
        }
        Ok(())
    }
}
