//! The gates of the apply pipeline (SPEC §4) as one table. The pipeline, the review document,
//! `--json` and the evidence all read this list: adding a gate is one entry.

use crate::exit::ExitCode;
use serde::Serialize;

/// What a failing gate means for the target, and so the exit code (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Before the migration: the target is unchanged (exit 3).
    BeforeMigration,
    /// The migration itself: rolled back, the target is unchanged (exit 4).
    Migration,
    /// After COMMIT: the change is in, rollback is available (exit 5).
    AfterCommit,
    /// The rollback itself, or its schema comparison (exit 6).
    Rollback,
}

impl Phase {
    pub fn exit(self) -> ExitCode {
        match self {
            Phase::BeforeMigration => ExitCode::Refused,
            Phase::Migration => ExitCode::RolledBack,
            Phase::AfterCommit => ExitCode::CommittedButFailed,
            Phase::Rollback => ExitCode::RollbackFailed,
        }
    }

    pub fn exit_code(self) -> i32 {
        i32::from(self.exit().code())
    }
}

/// One step of the pipeline; most steps are gates with a stable id.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Step {
    pub number: u8,
    /// The gate id, or `None` for a step that only records (snapshots, probe comparison).
    pub gate: Option<&'static str>,
    /// The step's name when it is not a gate.
    pub name: &'static str,
    /// The seed's own numbering that this step covers.
    pub seed: &'static str,
    pub holds_when: &'static str,
    pub phase: Phase,
}

use Phase::*;

/// The pipeline, in order.
pub const STEPS: &[Step] = &[
    Step { number: 1, gate: Some("exclusive-run"), name: "exclusive-run", seed: "—", phase: BeforeMigration,
        holds_when: "a session advisory lock for this package on the target is acquired (a second concurrent apply is refused, not queued)" },
    Step { number: 2, gate: Some("target-identity"), name: "target-identity", seed: "G-4, P-1", phase: BeforeMigration,
        holds_when: "every [target] key matches; the target is not a sluice rehearsal cluster" },
    Step { number: 3, gate: Some("sql-integrity"), name: "sql-integrity", seed: "G-3, P-2, C-05", phase: BeforeMigration,
        holds_when: "migration (and rollback) file bytes hash to the pinned sha256" },
    Step { number: 4, gate: Some("scope"), name: "scope", seed: "—", phase: BeforeMigration,
        holds_when: "the operations derived from the SQL equal [scope].operations (when the section is present)" },
    Step { number: 5, gate: Some("approvals"), name: "approvals", seed: "review gate", phase: BeforeMigration,
        holds_when: "enough valid signatures from allowed signers, bound to this digest, none reject, operator not among them unless allowed" },
    Step { number: 6, gate: Some("rehearsal"), name: "rehearsal", seed: "G-10", phase: BeforeMigration,
        holds_when: "a passing rehearsal record exists for this digest (when required)" },
    Step { number: 7, gate: Some("client-version"), name: "client-version", seed: "—", phase: BeforeMigration,
        holds_when: "the pg_dump/pg_restore used are at least the server's major version" },
    Step { number: 8, gate: Some("backup-restorable"), name: "backup-restorable", seed: "G-1, C-01, C-02", phase: BeforeMigration,
        holds_when: "a fresh custom-format dump is written, is non-empty, pg_restore --list reads it, its sha256 is in SHA256SUMS" },
    Step { number: 9, gate: None, name: "pre-snapshots", seed: "C-03, C-04", phase: BeforeMigration,
        holds_when: "pre snapshots: structural schema snapshot, row counts of every table, each probe's columns" },
    Step { number: 10, gate: Some("preflight"), name: "preflight", seed: "G-5..G-8, P-3..P-10", phase: BeforeMigration,
        holds_when: "every preflight check holds (each run in a READ ONLY transaction)" },
    Step { number: 11, gate: Some("backup-fresh"), name: "backup-fresh", seed: "G-2", phase: BeforeMigration,
        holds_when: "now − backup time ≤ max_age_minutes" },
    Step { number: 12, gate: Some("migration-atomic"), name: "migration-atomic", seed: "G-11, C-07", phase: Migration,
        holds_when: "the migration runs and [migration.expect] matches before COMMIT; otherwise ROLLBACK, nothing changed" },
    Step { number: 13, gate: Some("verification"), name: "verification", seed: "G-9, C-08, V-α-1..15", phase: AfterCommit,
        holds_when: "every verify check holds (READ ONLY transactions)" },
    Step { number: 14, gate: Some("schema-diff"), name: "schema-diff", seed: "V-α-16", phase: AfterCommit,
        holds_when: "post snapshot minus pre snapshot holds no removed or changed objects (unless allowed), and every added object is explained by the scope" },
    Step { number: 15, gate: None, name: "probes", seed: "§5", phase: AfterCommit,
        holds_when: "probes compared: per column min, max, distinct before and after, rows changed/added/removed, against expect_changed" },
];

/// The rollback (SPEC §6), in order: refusals before it runs exit 3, the rollback and its
/// schema comparison exit 6.
pub const ROLLBACK_STEPS: &[Step] = &[
    Step { number: 1, gate: Some("sql-integrity"), name: "sql-integrity", seed: "G-3", phase: BeforeMigration,
        holds_when: "the rollback file's bytes hash to its pinned sha256" },
    Step { number: 2, gate: Some("rollback-run"), name: "rollback-run", seed: "§6", phase: BeforeMigration,
        holds_when: "the run folder is a completed apply (the migration committed) of this digest on this environment" },
    Step { number: 3, gate: Some("failed-check"), name: "failed-check", seed: "§6 trigger", phase: BeforeMigration,
        holds_when: "the named check is a verify check recorded as failed in that run, or failing now (re-run read-only)" },
    Step { number: 4, gate: Some("exclusive-run"), name: "exclusive-run", seed: "—", phase: BeforeMigration,
        holds_when: "the package's advisory lock is acquired at once" },
    Step { number: 5, gate: Some("target-identity"), name: "target-identity", seed: "G-4", phase: BeforeMigration,
        holds_when: "every [target] key matches; the target is not a rehearsal cluster" },
    Step { number: 6, gate: Some("rollback-atomic"), name: "rollback-atomic", seed: "C-09, R-1..R-5", phase: Rollback,
        holds_when: "the rollback runs in one transaction with the migration's lock discipline and commits" },
    Step { number: 7, gate: Some("schema-equals-pre"), name: "schema-equals-pre", seed: "§6", phase: Rollback,
        holds_when: "the schema after the rollback equals the run's pre snapshot, structurally" },
    Step { number: 8, gate: None, name: "restore-script", seed: "§5 restore", phase: Rollback,
        holds_when: "what the rollback cannot restore is measured against the pre capture, listed, and a restore script for it written (not run)" },
];

/// The step whose gate has this id.
pub fn by_id(id: &str) -> Option<&'static Step> {
    STEPS.iter().find(|s| s.gate == Some(id))
}

/// Every gate id, in pipeline order.
pub fn ids() -> Vec<&'static str> {
    STEPS.iter().filter_map(|s| s.gate).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_ids_are_unique_and_steps_numbered_in_order() {
        let ids = ids();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
        for (i, step) in STEPS.iter().enumerate() {
            assert_eq!(step.number as usize, i + 1);
        }
        assert_eq!(by_id("migration-atomic").unwrap().phase.exit_code(), 4);
    }
}
