//! The human report of a run, written beside `run.json` as `report.md` ([`markdown`]) and
//! `report.html` ([`html`]): outcome, every gate with its status and timing, the migration's
//! trailing row, the seed's §5 side-effect measurement and the schema diff. Both are rendered
//! from the [`RunRecord`], in the same order.

pub mod html;
pub mod markdown;

use crate::run_record::{RunRecord, RunStatus, Status};

/// How a run ended, in words: `word` (`SUCCEEDED`, `FAILED`, `INTERRUPTED`) at `gate`, then
/// what it means for the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub word: &'static str,
    pub gate: Option<String>,
    pub meaning: String,
}

impl Outcome {
    pub fn of(r: &RunRecord) -> Outcome {
        let gate = || Some(r.failed_gate.clone().unwrap_or_else(|| "?".into()));
        match (r.status, r.migration_committed) {
            (RunStatus::Succeeded, _) => Outcome {
                word: "SUCCEEDED",
                gate: None,
                meaning: "every gate held".into(),
            },
            (RunStatus::Failed, false) => Outcome {
                word: "FAILED",
                gate: gate(),
                meaning: "the migration did not commit: the target is unchanged".into(),
            },
            (RunStatus::Failed, true) if r.failed_gate.as_deref() == Some("migration-atomic") => {
                Outcome {
                    word: "FAILED",
                    gate: gate(),
                    meaning: partly_committed(r),
                }
            }
            (RunStatus::Failed, true) => Outcome {
                word: "FAILED",
                gate: gate(),
                meaning: "the migration COMMITTED; `sluice rollback` is available".into(),
            },
            (RunStatus::Running, _) => Outcome {
                word: "INTERRUPTED",
                gate: None,
                meaning: "the run did not finish; the steps below say how far it got".into(),
            },
        }
    }
}

fn partly_committed(r: &RunRecord) -> String {
    let m = r.migration.as_ref();
    format!(
        "the non-atomic migration PARTLY COMMITTED ({} statement(s) committed){}; `sluice rollback … --failed-check migration-atomic` is available",
        m.map_or(0, |m| m.statements_committed()),
        m.filter(|m| !m.invalid_indexes.is_empty())
            .map(|m| format!(", left INVALID: {}", m.invalid_indexes.join(", ")))
            .unwrap_or_default()
    )
}

/// A step's status as the report says it.
pub(crate) fn status_word(status: Status) -> &'static str {
    match status {
        Status::Passed => "passed",
        Status::Failed => "FAILED",
        Status::Skipped => "skipped",
        Status::Running => "running (interrupted)",
    }
}

/// The connection states of a run, one per distinct state: every session is normally the same.
pub(crate) fn connection_states(r: &RunRecord) -> Vec<String> {
    let mut states: Vec<String> = r
        .connection
        .iter()
        .flat_map(|c| c.sessions.iter().map(|s| s.describe()))
        .collect();
    states.dedup();
    states
}

/// What the last section says of the evidence folder.
pub const EVIDENCE_NOTE: &str = "Every file of this folder is listed with its sha256 in `SHA256SUMS`; `sluice evidence check` re-hashes them and walks `ledger.jsonl`.";

/// The preflight checks that passed only because reviewers acknowledged their observed result,
/// one sentence each; shown loudly near the top of both reports.
pub(crate) fn acknowledged_deviations(r: &RunRecord) -> Vec<String> {
    r.preflight
        .iter()
        .filter_map(|c| c.acknowledged.as_ref().map(|a| a.describe(&c.id)))
        .collect()
}
