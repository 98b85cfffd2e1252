//! Running a package's checks (`[[preflight]]`, `[[verify]]`): each one read-only, in its own
//! READ ONLY transaction with a statement timeout, its rows compared with its expectation. The
//! apply pipeline, `verify` and `review --target` all run checks through here.

use crate::package::{Check, CheckBody};
use crate::target;
use serde::Serialize;

/// A check evaluated live on the target.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub id: String,
    pub holds: bool,
    /// The rows, as text, or the error PostgreSQL gave.
    pub output: String,
    pub detail: Option<String>,
}

/// Runs one check read-only and compares it with its expectation.
pub fn evaluate_check(client: &mut postgres::Client, check: &Check) -> CheckResult {
    match &check.body {
        CheckBody::CoveredBy { gate } => CheckResult {
            id: check.id.clone(),
            holds: true,
            output: format!("covered by gate {gate}"),
            detail: None,
        },
        CheckBody::Sql { sql, expect } => {
            match target::read_only_query(client, sql, target::CHECK_TIMEOUT_MS) {
                Ok(rows) => {
                    let verdict = expect.compare(&rows);
                    CheckResult {
                        id: check.id.clone(),
                        holds: verdict.is_ok(),
                        output: rows.render(),
                        detail: verdict.err(),
                    }
                }
                Err(err) => CheckResult {
                    id: check.id.clone(),
                    holds: false,
                    output: String::new(),
                    detail: Some(target::pg_message(&err)),
                },
            }
        }
    }
}
