//! The apply pipeline (SPEC §4): the steps of [`crate::gate::STEPS`] in order, each recorded in
//! `run.json` with its status, detail and timing; the first failure stops the run with its gate
//! id and the exit code of its phase. The evidence folder is written as the run goes.

pub use crate::gate::{FailureKind, GateFailure};
/// `run.json`'s types, kept where they were reachable before ([`crate::run_record`]).
pub use crate::run_record as record;
mod steps;
pub mod verify;

pub use steps::lock_key;

use crate::evidence::{EvidenceError, LedgerEntry, RunDir};
use crate::gate::{self, Step};
use crate::package::Package;
use crate::run_record::{RunRecord, RunStatus, Status, StepRecord};
use crate::target::Target;

use crate::evidence::Sync;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the operator asked for.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub environment: String,
    pub operator: String,
    pub evidence_root: PathBuf,
    /// Where pg_dump/pg_restore are, when not discovered.
    pub pg_dump_bindir: Option<PathBuf>,
    /// A rehearsal run: the target must be a sluice rehearsal cluster, and the approvals and
    /// rehearsal gates are skipped (recorded as skipped).
    pub rehearsal: bool,
}

/// Told about progress, for a terminal.
pub trait Observer {
    /// A pipeline run that is one part of a larger whole is about to start, e.g. the
    /// rehearsal's `apply` and `re-apply`: a heading for the steps that follow.
    fn phase(&self, _name: &str) {}
    fn step_started(&self, _step: &Step) {}
    fn step_finished(&self, _record: &StepRecord) {}
    /// Bytes written so far by a long copy (`pg_dump`), and the size it is measured against
    /// when known (`pg_database_size`: a compressed dump ends well below it).
    fn progress(&self, _label: &str, _bytes: u64, _database_bytes: Option<u64>) {}
    /// One attempt of the migration ended (a lock timeout is retried after it).
    fn attempt(&self, _attempt: &crate::migration::Attempt) {}
}

/// An observer that says nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// How a run ended.
#[derive(Debug)]
pub struct ApplyOutcome {
    pub exit_code: i32,
    pub run_dir: PathBuf,
    pub record: RunRecord,
    pub failure: Option<GateFailure>,
}

/// Why a run could not even start (no evidence folder, an environment name that cannot be one):
/// nothing was done to the target.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    #[error(transparent)]
    Environment(#[from] EnvironmentError),
}

/// The environment name the rehearsal's own runs use; no operator-named environment may use it.
pub const REHEARSAL_ENVIRONMENT: &str = "rehearsal";

/// Why a name cannot be an environment's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvironmentError {
    #[error("the environment name is empty: expected a name like `production` ([A-Za-z0-9][A-Za-z0-9._-]*)")]
    Empty,
    #[error("the environment name `{name}` has `{bad}` at character {at}: expected [A-Za-z0-9][A-Za-z0-9._-]* (a letter or digit first, then letters, digits, `.`, `_` or `-`)")]
    BadCharacter { name: String, bad: char, at: usize },
    #[error("the environment name `{name}` is reserved for `sluice rehearse` (its runs are recorded as `{REHEARSAL_ENVIRONMENT}`): name the target's real environment, e.g. `staging`")]
    Reserved { name: String },
}

/// Checks an operator-given environment name (SPEC §1: a rehearsal cluster can never pass as a
/// named environment, so no named environment may look like one): non-empty,
/// `[A-Za-z0-9][A-Za-z0-9._-]*`, and not `rehearsal` in any case.
pub fn check_environment(name: &str) -> Result<(), EnvironmentError> {
    if name.is_empty() {
        return Err(EnvironmentError::Empty);
    }
    let bad = name.chars().enumerate().find(|&(i, c)| {
        let allowed = c.is_ascii_alphanumeric() || (i > 0 && matches!(c, '.' | '_' | '-'));
        !allowed
    });
    if let Some((i, c)) = bad {
        return Err(EnvironmentError::BadCharacter {
            name: name.to_string(),
            bad: c,
            at: i + 1,
        });
    }
    if name.eq_ignore_ascii_case(REHEARSAL_ENVIRONMENT) {
        return Err(EnvironmentError::Reserved {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// The environment of a run: an operator's name checked, the rehearsal's own name only for a
/// rehearsal run.
fn run_environment(environment: &str, rehearsal: bool) -> Result<(), EnvironmentError> {
    if rehearsal && environment == REHEARSAL_ENVIRONMENT {
        return Ok(());
    }
    check_environment(environment)
}

/// UTC now as RFC 3339 and as the evidence STAMP.
pub fn now_utc() -> (String, String) {
    let now = time::OffsetDateTime::now_utc();
    let rfc = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    (rfc, stamp)
}

/// A run in progress: its folder, its record, and who watches.
pub(crate) struct Run<'a> {
    /// The target, whose sessions' TLS state the record keeps.
    pub target: Target,
    /// The table of steps this run follows.
    pub table: &'static [Step],
    pub dir: RunDir,
    pub record: RunRecord,
    pub observer: &'a dyn Observer,
    pub stamp: String,
    /// Evidence files streamed through `WriteBehind` (dump, probe captures, restore scripts),
    /// relative path → the SHA-256 computed while they were written.
    pub streamed: std::collections::BTreeMap<String, String>,
    /// Evidence writes that failed; any fails the run (exit 1) when it finishes.
    pub evidence_errors: std::cell::RefCell<Vec<String>>,
}

impl Run<'_> {
    /// Rewrites run.json; a failure is kept for [`Run::finish`], which fails the run with it.
    /// Writes run.json again: atomically (a synced temporary renamed over it).
    pub fn save(&self) {
        let written = serde_json::to_vec_pretty(&self.record)
            .map_err(|e| format!("run.json: {e}"))
            .and_then(|text| {
                self.dir
                    .replace("run.json", &text)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            self.evidence_failed(e);
        }
    }

    pub fn log(&self, event: &str, data: serde_json::Value) {
        self.log_with(event, data, Sync::Now);
    }

    fn log_with(&self, event: &str, data: serde_json::Value, sync: Sync) {
        let line = serde_json::json!({ "at": now_utc().0, "event": event, "data": data });
        if let Err(e) = self
            .dir
            .append_line_with("log.jsonl", &line.to_string(), sync)
        {
            self.evidence_failed(e.to_string());
        }
    }

    /// Records an evidence write that failed: the run will end with exit 1 saying so.
    pub(crate) fn evidence_failed(&self, message: String) {
        let mut errors = self.evidence_errors.borrow_mut();
        if !errors.contains(&message) {
            errors.push(message);
        }
    }

    /// A step whose success hands a value on to the steps after it (the sessions
    /// `exclusive-run` opens): they run only with that value, so the order is the data's. The
    /// body's `Err` is the step's failure.
    pub(crate) fn step_yielding<T, F>(
        &mut self,
        id: gate::StepId,
        body: F,
    ) -> Result<T, GateFailure>
    where
        F: FnOnce(&mut Self) -> Result<(String, T), String>,
    {
        let (result, value) = self.step_handing(id, |run| match body(run) {
            Ok((detail, v)) => (StepResult::Passed(detail), Some(v)),
            Err(why) => (StepResult::Failed(why), None),
        });
        result?;
        value.ok_or_else(|| {
            GateFailure::new(
                id.name(),
                crate::exit::ExitCode::Internal,
                "the step passed without handing its value on".into(),
                None,
            )
        })
    }

    /// A step that hands a value on when it passes and none when it is skipped (the client
    /// tools, when a backup is taken).
    pub(crate) fn step_maybe<T, F>(
        &mut self,
        id: gate::StepId,
        body: F,
    ) -> Result<Option<T>, GateFailure>
    where
        F: FnOnce(&mut Self) -> Yield<T>,
    {
        let (result, value) = self.step_handing(id, |run| match body(run) {
            Yield::Passed(detail, v) => (StepResult::Passed(detail), Some(v)),
            Yield::Skipped(why) => (StepResult::Skipped(why), None),
            Yield::Failed(why) => (StepResult::Failed(why), None),
        });
        result.map(|()| value)
    }

    /// Runs one step: records its start, its outcome and timing, and turns a failure into the
    /// gate failure of its phase.
    pub fn step<F>(&mut self, id: gate::StepId, body: F) -> Result<(), GateFailure>
    where
        F: FnOnce(&mut Self) -> StepResult,
    {
        self.step_handing(id, |run| (body(run), ())).0
    }

    /// A step that hands a value on whatever its result: after COMMIT every step runs even
    /// when one before it failed, and what a failed step read (the post snapshot) is still the
    /// next one's to use.
    pub(crate) fn step_handing<T, F>(
        &mut self,
        id: gate::StepId,
        body: F,
    ) -> (Result<(), GateFailure>, T)
    where
        F: FnOnce(&mut Self) -> (StepResult, T),
    {
        let step = self
            .table
            .iter()
            .find(|s| s.id == id)
            .copied()
            .expect("a step of the gate table");
        self.observer.step_started(&step);
        self.record.steps.push(StepRecord {
            number: step.number,
            gate: step.gate.map(str::to_string),
            name: step.name.to_string(),
            status: Status::Running,
            detail: String::new(),
            started_at: now_utc().0,
            duration_ms: 0,
        });
        // run.json is always synced (a rename over it must not leave it empty after a power
        // loss); the log line that the step started is synced with the step's end line
        self.save();
        self.log_with(
            "step.start",
            serde_json::json!({ "step": step.name }),
            Sync::Later,
        );
        crate::fault::step_boundary(step.name, false);
        let started = Instant::now();
        let (result, value) = body(self);
        self.record.connection = Some(self.target.connection_record());
        let index = self.record.steps.len() - 1;
        let (status, detail) = match &result {
            StepResult::Passed(d) => (Status::Passed, d.clone()),
            StepResult::Skipped(d) => (Status::Skipped, d.clone()),
            StepResult::Failed(d)
            | StepResult::FailedPg(d, _)
            | StepResult::FailedAfterCommit(d, _)
            | StepResult::FailedAs(_, d) => (Status::Failed, d.clone()),
        };
        let rec = &mut self.record.steps[index];
        rec.status = status;
        rec.detail = detail.clone();
        rec.duration_ms = started.elapsed().as_millis();
        let rec = rec.clone();
        self.observer.step_finished(&rec);
        self.log(
            "step.end",
            serde_json::json!({ "step": step.name, "status": status, "detail": detail }),
        );
        self.save();
        crate::fault::step_boundary(step.name, true);
        let id = step.gate.unwrap_or(step.name);
        let result = match result {
            StepResult::Failed(message) => {
                Err(GateFailure::new(id, step.phase.exit(), message, None))
            }
            StepResult::FailedPg(message, pg) => {
                Err(GateFailure::new(id, step.phase.exit(), message, Some(pg)))
            }
            StepResult::FailedAs(other, message) => {
                Err(GateFailure::new(other, step.phase.exit(), message, None))
            }
            StepResult::FailedAfterCommit(message, pg) => Err(GateFailure::new(
                id,
                gate::Phase::AfterCommit.exit(),
                message,
                pg,
            )),
            _ => Ok(()),
        };
        (result, value)
    }

    /// Closes the run: final record, report, SHA256SUMS, ledger line. An evidence write that
    /// failed at any point fails the run (exit 1, gate `evidence`), saying whether the
    /// migration committed; what could still be written says so too.
    fn finish(&mut self, failure: Option<GateFailure>, kind: &str) -> Option<GateFailure> {
        self.close_record(failure.as_ref());
        self.write_reports();
        let sums = match self.dir.write_sums(&self.streamed) {
            Ok(sums) => sums,
            Err(e) => {
                self.evidence_failed(e.to_string());
                String::new()
            }
        };
        let failure = self.evidence_failure().or(failure);
        if failure.as_ref().is_some_and(|f| f.gate == EVIDENCE) {
            // say it where it can still be said; a disk that is full may refuse this too
            self.close_record(failure.as_ref());
            self.save();
        }
        let exit_code = failure.as_ref().map_or(0, |f| f.exit_code);
        let entry = LedgerEntry {
            run: String::new(),
            kind: kind.to_string(),
            package: self.record.package.clone(),
            digest: self.record.digest.clone(),
            environment: self.record.environment.clone(),
            status: format!("{:?}", self.record.status).to_lowercase(),
            exit_code,
            finished_at: self.record.finished_at.clone().unwrap_or_default(),
            sha256sums: sums,
            prev: String::new(),
        };
        if let Err(e) = self.dir.append_to_ledger(entry) {
            self.evidence_failed(e.to_string());
        }
        self.evidence_failure().or(failure)
    }

    /// `report.md` and `report.html`, each an evidence file like any other: a write that fails
    /// fails the run, and both are listed in SHA256SUMS.
    fn write_reports(&self) {
        let reports = [
            ("report.md", crate::report::markdown::render(&self.record)),
            ("report.html", crate::report::html::render(&self.record)),
        ];
        for (name, text) in reports {
            if let Err(e) = self.dir.write(name, text.as_bytes()) {
                self.evidence_failed(e.to_string());
            }
        }
    }

    fn close_record(&mut self, failure: Option<&GateFailure>) {
        self.record.finished_at = Some(now_utc().0);
        self.record.status = if failure.is_some() {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        self.record.exit_code = Some(failure.map_or(0, |f| f.exit_code));
        self.record.failed_gate = failure.map(|f| f.gate.clone());
        self.record.failure = failure.map(|f| f.message.clone());
        self.record.error = failure.cloned();
        self.record.connection = Some(self.target.connection_record());
        self.save();
    }

    /// The run's failure when an evidence write failed: exit 1, naming what was not written and
    /// the state of the target.
    fn evidence_failure(&self) -> Option<GateFailure> {
        let errors = self.evidence_errors.borrow();
        if errors.is_empty() {
            return None;
        }
        let state = if self.record.migration_committed {
            "the migration COMMITTED: the target has the change"
        } else {
            "the migration did not commit: the target is unchanged"
        };
        let mut failure = GateFailure::new(
            EVIDENCE,
            crate::exit::ExitCode::Internal,
            format!(
                "the evidence is incomplete ({state}): {}",
                errors.join("; ")
            ),
            None,
        );
        failure.kind = FailureKind::Evidence;
        Some(failure)
    }
}

/// The failure id of a run whose evidence could not be written.
pub const EVIDENCE: &str = "evidence";

/// How a step that hands a value on ended ([`Run::step_maybe`]).
pub(crate) enum Yield<T> {
    Passed(String, T),
    Skipped(String),
    Failed(String),
}

/// What a step's body returns.
pub(crate) enum StepResult {
    Passed(String),
    Skipped(String),
    Failed(String),
    /// Failed because the server refused: the message and the server's error.
    FailedPg(String, crate::target::PgError),
    /// Failed with part of the change committed (`transaction = "none"`): exit 5, whatever the
    /// step's phase.
    FailedAfterCommit(String, Option<crate::target::PgError>),
    /// Failed on behalf of another gate, run early (the preflight checks before the backup).
    FailedAs(&'static str, String),
}

/// What distinguishes one kind of run from another when it starts.
struct RunKind<'a> {
    /// `apply`, `rehearsal-apply` or `rollback`: run.json's kind and the ledger's.
    kind: &'a str,
    table: &'static [Step],
    /// The environment part of the folder name (`production`, `production-rollback`).
    folder: String,
    start: serde_json::Value,
}

/// Opens the evidence folder and the record, runs `steps`, and closes the run.
fn execute(
    pkg: &Package,
    target: &Target,
    who: (&str, &str, &Path),
    spec: RunKind,
    observer: &dyn Observer,
    steps: impl FnOnce(&mut Run) -> Result<(), GateFailure>,
) -> Result<ApplyOutcome, PipelineError> {
    let (environment, operator, evidence_root) = who;
    let digest = crate::digest::package_digest(pkg);
    let (started_at, stamp) = now_utc();
    let dir = RunDir::create(evidence_root, &pkg.info.id, &stamp, &spec.folder)?;
    copy_package(pkg, &dir)?;
    let record = RunRecord::new(
        spec.kind,
        pkg,
        digest,
        environment,
        operator,
        target,
        started_at,
    );
    let mut run = Run {
        target: target.clone(),
        table: spec.table,
        dir,
        record,
        observer,
        stamp,
        streamed: Default::default(),
        evidence_errors: Default::default(),
    };
    run.save();
    run.log("run.start", spec.start);
    let failure = steps(&mut run).err();
    let failure = run.finish(failure, spec.kind);
    Ok(ApplyOutcome {
        exit_code: failure.as_ref().map_or(0, |f| f.exit_code),
        run_dir: run.dir.path().to_path_buf(),
        record: run.record,
        failure,
    })
}

/// Runs the apply pipeline on a target.
pub fn apply(
    pkg: &Package,
    target: &Target,
    options: &ApplyOptions,
    observer: &dyn Observer,
) -> Result<ApplyOutcome, PipelineError> {
    run_environment(&options.environment, options.rehearsal)?;
    let spec = RunKind {
        kind: if options.rehearsal {
            "rehearsal-apply"
        } else {
            "apply"
        },
        table: gate::STEPS,
        folder: options.environment.clone(),
        start: serde_json::json!({ "package": pkg.info.id, "environment": options.environment }),
    };
    let who = (
        options.environment.as_str(),
        options.operator.as_str(),
        options.evidence_root.as_path(),
    );
    execute(pkg, target, who, spec, observer, |run| {
        steps::run_all(run, pkg, target, options)
    })
}

/// What the operator asked of a rollback.
#[derive(Debug, Clone)]
pub struct RollbackOptions {
    pub environment: String,
    pub operator: String,
    pub evidence_root: PathBuf,
    /// The apply run being rolled back.
    pub run_dir: PathBuf,
    /// The verify check whose failure triggers the rollback.
    pub failed_check: String,
    /// Where the signed rollback approvals are (default: the run's `rollback-approvals/`).
    pub approvals_dir: Option<PathBuf>,
}

impl RollbackOptions {
    /// The folder the rollback's `approvals` gate reads.
    pub fn approvals_dir(&self) -> PathBuf {
        self.approvals_dir
            .clone()
            .unwrap_or_else(|| self.run_dir.join(crate::approval::rollback::DIR))
    }
}

/// Runs the gated rollback of SPEC §6; it gets its own evidence folder and ledger line.
pub fn rollback(
    pkg: &Package,
    target: &Target,
    options: &RollbackOptions,
    observer: &dyn Observer,
) -> Result<ApplyOutcome, PipelineError> {
    check_environment(&options.environment)?;
    let spec = RunKind {
        kind: "rollback",
        table: gate::ROLLBACK_STEPS,
        folder: format!("{}-rollback", options.environment),
        start: serde_json::json!({ "kind": "rollback", "run": options.run_dir, "failed_check": options.failed_check }),
    };
    let who = (
        options.environment.as_str(),
        options.operator.as_str(),
        options.evidence_root.as_path(),
    );
    execute(pkg, target, who, spec, observer, |run| {
        run.record.rolls_back = Some(options.run_dir.display().to_string());
        steps::run_rollback(run, pkg, target, options)
    })
}

/// `package/`: the package as applied (the loaded bytes, not a re-read of the folder).
fn copy_package(pkg: &Package, dir: &RunDir) -> Result<(), EvidenceError> {
    dir.write("package/sluice.toml", pkg.manifest.text.as_bytes())?;
    dir.write(
        &format!("package/{}", pkg.migration.file.rel.display()),
        &pkg.migration.file.bytes,
    )?;
    if let Some(r) = &pkg.rollback {
        dir.write(&format!("package/{}", r.rel.display()), &r.bytes)?;
    }
    if let Some(s) = &pkg.approvals.allowed_signers {
        dir.write(&format!("package/{}", s.rel.display()), &s.bytes)?;
    }
    for (from, _) in crate::approval::load_dir(&pkg.dir.join("approvals")) {
        if let (Ok(bytes), Some(name)) = (std::fs::read(&from), from.file_name()) {
            dir.write(
                &format!("package/approvals/{}", name.to_string_lossy()),
                &bytes,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names() {
        for ok in ["production", "staging-2", "eu.prod_1", "Prod", "rehearsal2"] {
            assert_eq!(check_environment(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_environment(""), Err(EnvironmentError::Empty));
        for bad in ["-x", ".hidden", "a/b", "a b", "prod\n", "é"] {
            assert!(
                matches!(
                    check_environment(bad),
                    Err(EnvironmentError::BadCharacter { .. })
                ),
                "{bad:?}"
            );
        }
        for reserved in ["rehearsal", "Rehearsal", "REHEARSAL"] {
            assert!(matches!(
                check_environment(reserved),
                Err(EnvironmentError::Reserved { .. })
            ));
        }
        // only a rehearsal run may use the rehearsal's own name
        assert!(run_environment("rehearsal", true).is_ok());
        assert!(run_environment("rehearsal", false).is_err());
    }
}
