//! `run.json`: the record of one run, rewritten after every step so that a killed run still
//! says how far it got.

use crate::backup::{ClientTools, DumpInfo};
use crate::checks::CheckResult;
use crate::migration::MigrationReport;
use crate::probe::ProbeSummary;
use crate::target::IdentityFacts;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Passed,
    Failed,
    Skipped,
}

/// One step of the pipeline as it happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    pub number: u8,
    pub gate: Option<String>,
    pub name: String,
    pub status: Status,
    pub detail: String,
    pub started_at: String,
    pub duration_ms: u128,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still going, or killed: the steps say how far it got.
    Running,
    Succeeded,
    Failed,
}

/// Everything a run did; serialized as `run.json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub format: &'static str,
    pub kind: String,
    pub sluice_version: &'static str,
    pub package: String,
    pub revision: String,
    pub digest: String,
    pub environment: String,
    pub operator: String,
    /// The target as `host=… port=… dbname=… user=…`, never with a password.
    pub target: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub failed_gate: Option<String>,
    pub failure: Option<String>,
    /// The failure as data: gate, kind, SQLSTATE, the server's error.
    pub error: Option<crate::gate::GateFailure>,
    /// True once the migration committed: the target has the change.
    pub migration_committed: bool,
    pub steps: Vec<StepRecord>,
    pub server: Option<IdentityFacts>,
    /// How the target was reached: settings, each session's TLS state.
    pub connection: Option<crate::target::ConnectionRecord>,
    pub client_tools: Option<ClientTools>,
    pub backup: Option<DumpInfo>,
    pub preflight: Vec<CheckResult>,
    pub migration: Option<MigrationReport>,
    pub verification: Vec<CheckResult>,
    pub schema_diff: Option<serde_json::Value>,
    pub probes: Vec<ProbeSummary>,
    /// For a rollback: the apply run it rolls back.
    pub rolls_back: Option<String>,
    /// For a rollback: the signed rollback approvals its `approvals` gate counted (copied into
    /// the run's `rollback-approvals/`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rollback_approvals: Vec<RollbackApprovalUsed>,
}

/// One rollback approval a rollback used, as run.json records it.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackApprovalUsed {
    pub signer: String,
    pub decision: String,
    pub note: String,
    pub signed_at: String,
    pub key_fingerprint: String,
    /// The copy in this run's evidence, relative to the run folder.
    pub file: String,
    /// The sha256 of the file, as read, verified and copied.
    pub sha256: String,
}

impl RunRecord {
    /// A record for a run that is starting.
    pub fn new(
        kind: &str,
        pkg: &crate::package::Package,
        digest: String,
        environment: &str,
        operator: &str,
        target: &crate::target::Target,
        started_at: String,
    ) -> Self {
        RunRecord {
            format: "sluice-run-v1",
            kind: kind.into(),
            sluice_version: env!("CARGO_PKG_VERSION"),
            package: pkg.info.id.clone(),
            revision: pkg.info.revision.clone(),
            digest,
            environment: environment.into(),
            operator: operator.into(),
            target: target.to_string(),
            started_at,
            finished_at: None,
            status: RunStatus::Running,
            exit_code: None,
            failed_gate: None,
            failure: None,
            error: None,
            migration_committed: false,
            steps: Vec::new(),
            server: None,
            connection: None,
            client_tools: None,
            backup: None,
            preflight: Vec::new(),
            migration: None,
            verification: Vec::new(),
            schema_diff: None,
            probes: Vec::new(),
            rolls_back: None,
            rollback_approvals: Vec::new(),
        }
    }
}

/// The parts of a `run.json` that rollback and verify read back.
#[derive(Debug, Clone, Deserialize)]
pub struct StoredRun {
    pub kind: String,
    #[serde(default)]
    pub started_at: String,
    #[serde(default)]
    pub server: Option<IdentityFacts>,
    pub package: String,
    pub digest: String,
    pub environment: String,
    #[serde(default)]
    pub operator: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub migration_committed: bool,
    #[serde(default)]
    pub failed_gate: Option<String>,
    /// For a rollback: the apply run it rolls back, as its operator named it.
    #[serde(default)]
    pub rolls_back: Option<String>,
    #[serde(default)]
    pub failure: Option<String>,
    #[serde(default)]
    pub verification: Vec<StoredCheck>,
    pub steps: Vec<StepRecord>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StoredCheck {
    pub id: String,
    pub holds: bool,
}
