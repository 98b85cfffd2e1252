//! Running a package's checks (`[[preflight]]`, `[[verify]]`): each one read-only, in its own
//! READ ONLY transaction with a statement timeout, its rows compared with its expectation. The
//! apply pipeline, `verify` and `review --target` all run checks through here.

use crate::approval::Acknowledged;
use crate::expect::TextRows;
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
    /// The result as a reviewer acknowledges it (`--acknowledge ID=OBSERVED`): the one value of
    /// a one-row, one-column result (`NULL` for SQL NULL), else the rows as `output` shows them.
    /// None when the query failed or a gate covers the check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// Set when the check failed and passes because enough signers acknowledged `observed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<Acknowledged>,
}

/// What [`CheckResult::observed`] holds for `rows`.
pub(crate) fn observed_value(rows: &TextRows) -> String {
    match rows.rows.as_slice() {
        [row] if row.len() == 1 => row[0].clone().unwrap_or_else(|| "NULL".into()),
        _ => rows.render(),
    }
}

/// Runs one check read-only and compares it with its expectation.
pub(crate) fn evaluate_check(client: &mut postgres::Client, check: &Check) -> CheckResult {
    match &check.body {
        CheckBody::CoveredBy { gate } => CheckResult {
            id: check.id.clone(),
            holds: true,
            output: format!("covered by gate {gate}"),
            detail: None,
            observed: None,
            acknowledged: None,
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
                        observed: Some(observed_value(&rows)),
                        acknowledged: None,
                    }
                }
                Err(err) => CheckResult {
                    id: check.id.clone(),
                    holds: false,
                    output: String::new(),
                    detail: Some(target::pg_message(&err)),
                    observed: None,
                    acknowledged: None,
                },
            }
        }
    }
}
