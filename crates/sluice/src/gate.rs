//! The gates of the apply pipeline (SPEC §4) as one table. The pipeline, the review document,
//! `--json` and the evidence all read this list: adding a gate is one entry. A gate that did
//! not hold is a [`GateFailure`], the structured refusal run.json and `--json` carry.

use crate::exit::ExitCode;
use serde::{Deserialize, Serialize};

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

/// Every step of the apply and rollback pipelines, by what it is. Its name is the gate id (or
/// the step's name, for a step that only records) that messages, run.json and tests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepId {
    ExclusiveRun,
    TargetIdentity,
    SqlIntegrity,
    Scope,
    Approvals,
    Rehearsal,
    ClientVersion,
    BackupRestorable,
    PreSnapshots,
    Preflight,
    BackupFresh,
    MigrationAtomic,
    Verification,
    SchemaDiff,
    Probes,
    RollbackRun,
    FailedCheck,
    RollbackAtomic,
    SchemaEqualsPre,
    RestoreScript,
}

impl StepId {
    pub const fn name(self) -> &'static str {
        match self {
            StepId::ExclusiveRun => "exclusive-run",
            StepId::TargetIdentity => "target-identity",
            StepId::SqlIntegrity => "sql-integrity",
            StepId::Scope => "scope",
            StepId::Approvals => "approvals",
            StepId::Rehearsal => "rehearsal",
            StepId::ClientVersion => "client-version",
            StepId::BackupRestorable => "backup-restorable",
            StepId::PreSnapshots => "pre-snapshots",
            StepId::Preflight => "preflight",
            StepId::BackupFresh => "backup-fresh",
            StepId::MigrationAtomic => "migration-atomic",
            StepId::Verification => "verification",
            StepId::SchemaDiff => "schema-diff",
            StepId::Probes => "probes",
            StepId::RollbackRun => "rollback-run",
            StepId::FailedCheck => "failed-check",
            StepId::RollbackAtomic => "rollback-atomic",
            StepId::SchemaEqualsPre => "schema-equals-pre",
            StepId::RestoreScript => "restore-script",
        }
    }
}

impl std::fmt::Display for StepId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One step of the pipeline; most steps are gates with a stable id.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Step {
    #[serde(skip)]
    pub id: StepId,
    pub number: u8,
    /// The gate id, or `None` for a step that only records (snapshots, probe comparison).
    pub gate: Option<&'static str>,
    /// The step's name (its gate id when it is a gate).
    pub name: &'static str,
    /// The seed's own numbering that this step covers.
    pub seed: &'static str,
    pub holds_when: &'static str,
    pub phase: Phase,
}

/// Whether a step of the table is a gate (a refusal names it) or only records.
#[derive(Clone, Copy)]
enum Kind {
    Gate,
    Records,
}

const fn step(
    id: StepId,
    number: u8,
    kind: Kind,
    seed: &'static str,
    phase: Phase,
    holds_when: &'static str,
) -> Step {
    Step {
        id,
        number,
        gate: match kind {
            Kind::Gate => Some(id.name()),
            Kind::Records => None,
        },
        name: id.name(),
        seed,
        holds_when,
        phase,
    }
}

use Kind::{Gate, Records};
use Phase::*;
/// The pipeline, in order.
pub const STEPS: &[Step] = &[
    step(StepId::ExclusiveRun, 1, Gate, "—", BeforeMigration,
        "a session advisory lock for this package on the target is acquired (a second concurrent apply is refused, not queued)"),
    step(StepId::TargetIdentity, 2, Gate, "G-4, P-1", BeforeMigration,
        "every [target] key matches; the target is not a sluice rehearsal cluster"),
    step(StepId::SqlIntegrity, 3, Gate, "G-3, P-2, C-05", BeforeMigration,
        "migration (and rollback) file bytes hash to the pinned sha256"),
    step(StepId::Scope, 4, Gate, "—", BeforeMigration,
        "the operations derived from the SQL equal [scope].operations (when the section is present)"),
    step(StepId::Approvals, 5, Gate, "review gate", BeforeMigration,
        "enough valid signatures from allowed signers, bound to this digest, none reject, operator not among them unless allowed"),
    step(StepId::Rehearsal, 6, Gate, "G-10", BeforeMigration,
        "a passing rehearsal record exists for this digest (when required), and none of its statements held a lock blocking reads or writes of an existing table longer than [rehearsal] lock_budget_ms (when set)"),
    step(StepId::ClientVersion, 7, Gate, "—", BeforeMigration,
        "the pg_dump/pg_restore used are at least the server's major version"),
    step(StepId::BackupRestorable, 8, Gate, "G-1, C-01, C-02", BeforeMigration,
        "a fresh dump is written, is non-empty, pg_restore reads every byte of it back, the sha256 of each of its files is in SHA256SUMS"),
    step(StepId::PreSnapshots, 9, Records, "C-03, C-04", BeforeMigration,
        "pre snapshots: structural schema snapshot, row counts of every table, each probe's columns"),
    step(StepId::Preflight, 10, Gate, "G-5..G-8, P-3..P-10", BeforeMigration,
        "every preflight check holds (each run in a READ ONLY transaction), or returns exactly a value enough reviewers signed an acknowledgement of"),
    step(StepId::BackupFresh, 11, Gate, "G-2", BeforeMigration,
        "now − backup time ≤ max_age_minutes"),
    step(StepId::MigrationAtomic, 12, Gate, "G-11, C-07", Migration,
        "the migration runs and [migration.expect] matches before COMMIT; otherwise ROLLBACK, nothing changed"),
    step(StepId::Verification, 13, Gate, "G-9, C-08, V-α-1..15", AfterCommit,
        "every verify check holds (READ ONLY transactions)"),
    step(StepId::SchemaDiff, 14, Gate, "V-α-16", AfterCommit,
        "post snapshot minus pre snapshot holds no removed or changed objects (unless allowed), and every added object is explained by the scope"),
    step(StepId::Probes, 15, Records, "§5", AfterCommit,
        "probes compared: per column min, max, distinct before and after, rows changed/added/removed, against expect_changed"),
];

/// The rollback (SPEC §6), in order: refusals before it runs exit 3, the rollback and its
/// schema comparison exit 6.
pub const ROLLBACK_STEPS: &[Step] = &[
    step(StepId::SqlIntegrity, 1, Gate, "G-3", BeforeMigration,
        "the rollback file's bytes hash to its pinned sha256"),
    step(StepId::RollbackRun, 2, Gate, "§6", BeforeMigration,
        "the run folder is a completed apply (the migration committed) of this digest on this environment"),
    step(StepId::FailedCheck, 3, Gate, "§6 trigger", BeforeMigration,
        "the named check is a verify check recorded as failed in that run, or failing now (re-run read-only)"),
    step(StepId::Approvals, 4, Gate, "§6 Custodian co-sign", BeforeMigration,
        "at least rollback_required distinct allowed signers signed a rollback approval (namespace sluice-rollback) of this digest, run (id and run.json sha256), environment and failed check; none reject; the operator not among them unless allowed"),
    step(StepId::ExclusiveRun, 5, Gate, "—", BeforeMigration,
        "the package's advisory lock is acquired at once"),
    step(StepId::TargetIdentity, 6, Gate, "G-4", BeforeMigration,
        "every [target] key matches; the target is not a rehearsal cluster"),
    step(StepId::RollbackAtomic, 7, Gate, "C-09, R-1..R-5", Rollback,
        "the rollback runs in one transaction with the migration's lock discipline and commits"),
    step(StepId::SchemaEqualsPre, 8, Gate, "§6", Rollback,
        "the schema after the rollback equals the run's pre snapshot, structurally"),
    step(StepId::RestoreScript, 9, Records, "§5 restore", Rollback,
        "what the rollback cannot restore is measured against the pre capture, listed, and a restore script for it written (not run)"),
];

/// The rehearsal's cycle (SPEC §3, `sluice rehearse`), in order: the steps its sealed record
/// lists. The apply and re-apply run the pipeline of [`STEPS`]; the rollback runs the rollback's
/// SQL on the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CycleStep {
    Backup,
    Restore,
    Apply,
    Verify,
    Rollback,
    SchemaEqualsPre,
    ReApply,
    /// The cycle stopped by an error outside its steps (the record says which).
    Cycle,
}

impl CycleStep {
    /// The name the rehearsal record gives the step.
    pub const fn name(self) -> &'static str {
        match self {
            CycleStep::Backup => "backup",
            CycleStep::Restore => "restore",
            CycleStep::Apply => "apply",
            CycleStep::Verify => "verify",
            CycleStep::Rollback => "rollback",
            CycleStep::SchemaEqualsPre => StepId::SchemaEqualsPre.name(),
            CycleStep::ReApply => "re-apply",
            CycleStep::Cycle => "cycle",
        }
    }
}

/// The steps of a full rehearsal, in the order its record lists them.
pub const REHEARSAL_CYCLE: [CycleStep; 7] = [
    CycleStep::Backup,
    CycleStep::Restore,
    CycleStep::Apply,
    CycleStep::Verify,
    CycleStep::Rollback,
    CycleStep::SchemaEqualsPre,
    CycleStep::ReApply,
];

/// The step whose gate has this id.
pub(crate) fn by_id(id: &str) -> Option<&'static Step> {
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
        for (i, step) in ROLLBACK_STEPS.iter().enumerate() {
            assert_eq!(step.number as usize, i + 1);
        }
    }

    #[test]
    fn the_rollback_is_approved_before_it_takes_the_lock() {
        let names: Vec<&str> = ROLLBACK_STEPS.iter().map(|s| s.name).collect();
        let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
        assert!(at("failed-check") < at("approvals"));
        assert!(at("approvals") < at("exclusive-run"));
        assert_eq!(
            ROLLBACK_STEPS[at("approvals")].phase.exit_code(),
            3,
            "a refused rollback approval leaves the target unchanged"
        );
    }
}

/// What kind of failure ended a run, for run.json and `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// A gate's condition did not hold.
    GateDidNotHold,
    /// The server refused a statement: its SQLSTATE says why.
    ServerError,
    /// A lock was not granted within `lock_timeout`, after every retry.
    LockTimeout,
    /// The evidence could not be written.
    Evidence,
}

/// A gate that did not hold, as data: run.json's `error` and `--json`'s `error` object; its
/// message is the text the terminal shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateFailure {
    pub gate: String,
    pub kind: FailureKind,
    pub exit_code: i32,
    /// The server's SQLSTATE, when the server refused (also in `pg`).
    pub sqlstate: Option<String>,
    pub message: String,
    /// The server's error, with its detail, hint and `file:line:col`.
    pub pg: Option<Box<crate::target::PgError>>,
}

impl GateFailure {
    pub(crate) fn new(
        gate: &str,
        exit: crate::exit::ExitCode,
        message: String,
        pg: Option<crate::target::PgError>,
    ) -> GateFailure {
        let kind = match &pg {
            Some(e) if e.is_lock_timeout() => FailureKind::LockTimeout,
            Some(e) if e.sqlstate.is_some() => FailureKind::ServerError,
            _ => FailureKind::GateDidNotHold,
        };
        GateFailure {
            gate: gate.to_string(),
            kind,
            exit_code: i32::from(exit.code()),
            sqlstate: pg.as_ref().and_then(|e| e.sqlstate.clone()),
            message,
            pg: pg.map(Box::new),
        }
    }
}
