//! A failed command: its exit code (SPEC §8) and the message for the user. Library errors are
//! classified here, once.

use owo_colors::{OwoColorize, Stream};
use sluice::exit::ExitCode;
use sluice::package::PackageError;
use sluice::sql::SqlError;
use sluice::target::TargetError;

#[derive(Debug)]
pub struct Failure {
    pub code: ExitCode,
    pub message: String,
    /// The gate whose refusal this is, when one.
    pub gate: Option<String>,
}

impl Failure {
    pub fn new(code: ExitCode, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            gate: None,
        }
    }

    pub fn gate(gate: impl Into<String>, code: ExitCode, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            gate: Some(gate.into()),
        }
    }

    pub fn print(&self, json: bool) {
        if json {
            let doc = serde_json::json!({
                "ok": false,
                "exit_code": self.code.code(),
                "error": {
                    "gate": self.gate,
                    "kind": self.code,
                    "sqlstate": null,
                    "message": self.message,
                },
            });
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        let label = match &self.gate {
            Some(gate) => format!("error[{gate}]"),
            None => "error".to_string(),
        };
        eprintln!(
            "{}: {}",
            label.if_supports_color(Stream::Stderr, |t| t.red().bold().to_string()),
            self.message
        );
    }
}

impl From<PackageError> for Failure {
    fn from(err: PackageError) -> Self {
        Failure::new(ExitCode::Usage, format!("invalid package:\n{err}"))
    }
}

impl From<SqlError> for Failure {
    fn from(err: SqlError) -> Self {
        Failure::new(ExitCode::Usage, err.to_string())
    }
}

impl From<TargetError> for Failure {
    fn from(err: TargetError) -> Self {
        if err.is_usage() {
            Failure::new(ExitCode::Usage, err.to_string())
        } else {
            Failure::gate("target-identity", ExitCode::Refused, err.to_string())
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Self {
        Failure::new(ExitCode::Internal, err.to_string())
    }
}
