//! Rollback approvals (SPEC §3 `approve-rollback`, §6 gate `approvals` of the rollback): the
//! seed's "Custodian co-sign" of a rollback, as SSH signatures. A rollback approval is signed with
//! the same keys as an approval and checked against the same `allowed_signers`, but in its own
//! namespace, `sluice-rollback`, so that an approval of the package can never pass for an
//! approval of its rollback (nor the other way round).
//!
//! It binds one rollback of one apply run: the package and its digest, the apply run (its run id,
//! which is its evidence folder's name, and the sha256 of its `run.json`), the environment that
//! run.json names, the failed check that triggers the rollback (a verify check id, or
//! `migration-atomic` for a non-atomic migration that failed after a statement committed), the
//! decision (`pass` or `reject`) and a note. The signed payload, one `key=value` per line, each
//! line ending in `\n`, values escaped as approvals' are (`\` → `\\`, newline → `\n`):
//!
//! ```text
//! sluice-rollback-approval-v1
//! package=<package id>
//! digest=<64 lowercase hex digits>
//! run=<run id: the apply's evidence folder name, e.g. 20250131T120000Z-production>
//! run_sha256=<64 lowercase hex digits: sha256 of that folder's run.json>
//! environment=<the environment run.json names>
//! failed_check=<verify check id, or migration-atomic>
//! signer=<principal as allowed_signers names it>
//! decision=<pass | reject>
//! signed_at=<UTC, YYYY-MM-DDTHH:MM:SSZ>
//! note=<text>
//! ```
//!
//! One file per approval, `<signer>-<decision>-<failed check>-<run id>.rollback-approval` (TOML,
//! mode 0600), by default in the apply run's `rollback-approvals/` folder (mode 0700). The
//! rollback's gate [`evaluate`]s every such file; the rollback's evidence keeps a copy of each it
//! used.

use super::{
    escape, file_name_safe, format_utc, parse_utc, read_allowed_signers, short_digest,
    verify_signed, AllowedSigners, ApprovalError, Refusal, RefusalKind, RefusedApproval, Signed,
    SigningKey,
};
use crate::package::{ApprovalPolicy, Package};
use serde::{Deserialize, Serialize};
use ssh_key::LineEnding;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// The record's version tag, the first line of the signed message.
pub const FORMAT: &str = "sluice-rollback-approval-v1";
/// The SSHSIG namespace rollback approvals are signed in.
pub const NAMESPACE: &str = "sluice-rollback";
/// The extension of rollback approval files.
pub const FILE_EXTENSION: &str = "rollback-approval";
/// The folder of an apply run where rollback approvals go by default.
pub const DIR: &str = "rollback-approvals";
/// The failed "check" of a non-atomic migration that failed after a statement committed.
pub const MIGRATION_TRIGGER: &str = "migration-atomic";
/// The comment written at the top of every rollback approval file.
const FILE_HEADER: &str = "# sluice rollback approval: SSH-signed (namespace sluice-rollback) over every field below. Editing any field breaks the signature.\n";

/// A rollback approver's decision: there are no notes to pass with, a rollback is run or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackDecision {
    Pass,
    Reject,
}

impl RollbackDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackDecision::Pass => "pass",
            RollbackDecision::Reject => "reject",
        }
    }
}

impl std::fmt::Display for RollbackDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a rollback approval cannot be made for this run.
#[derive(Debug, thiserror::Error)]
pub enum RollbackApprovalError {
    #[error("{}: {reason}", path.display())]
    Run { path: PathBuf, reason: String },
    #[error("{check} is not a rollback trigger of this package: {reason}")]
    Check { check: String, reason: String },
    #[error(transparent)]
    Approval(#[from] ApprovalError),
}

/// The apply run a rollback approval is for, as its evidence folder says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplyRun {
    /// The run id: the name of the run's evidence folder.
    pub id: String,
    /// The sha256 of the run's `run.json`, as read.
    pub run_sha256: String,
    pub environment: String,
    pub package: String,
    pub digest: String,
    pub kind: String,
    pub migration_committed: bool,
}

/// Reads the apply run in `run_dir`: its id (the folder's name) and its run.json.
pub fn read_run(run_dir: &Path) -> Result<ApplyRun, RollbackApprovalError> {
    let fail = |path: &Path, reason: String| RollbackApprovalError::Run {
        path: path.to_path_buf(),
        reason,
    };
    let dir = std::fs::canonicalize(run_dir)
        .map_err(|e| fail(run_dir, format!("cannot open the run folder: {e}")))?;
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| fail(run_dir, "is not a run folder".into()))?;
    let path = dir.join("run.json");
    let bytes = std::fs::read(&path).map_err(|e| fail(&path, format!("cannot read it: {e}")))?;
    run_from_bytes(&path, id, &bytes)
}

/// An [`ApplyRun`] from the bytes of its run.json (`path` names it in errors).
pub(crate) fn run_from_bytes(
    path: &Path,
    id: String,
    bytes: &[u8],
) -> Result<ApplyRun, RollbackApprovalError> {
    let stored: crate::run_record::StoredRun =
        serde_json::from_slice(bytes).map_err(|e| RollbackApprovalError::Run {
            path: path.to_path_buf(),
            reason: format!("not a sluice run record: {e}"),
        })?;
    Ok(ApplyRun {
        id,
        run_sha256: crate::digest::sha256_hex(bytes),
        environment: stored.environment,
        package: stored.package,
        digest: stored.digest,
        kind: stored.kind,
        migration_committed: stored.migration_committed,
    })
}

/// What `approve-rollback` checks before anything is signed: the run is a committed apply of
/// this package at its digest, and the check is one that can trigger its rollback.
pub fn check_rollbackable(
    pkg: &Package,
    digest: &str,
    run: &ApplyRun,
    run_dir: &Path,
    failed_check: &str,
) -> Result<(), RollbackApprovalError> {
    let mut problems = Vec::new();
    if run.kind != "apply" {
        problems.push(format!("the run is a {}, not an apply", run.kind));
    }
    if !run.migration_committed {
        problems.push("its migration never committed: there is nothing to roll back".into());
    }
    if run.package != pkg.info.id {
        problems.push(format!(
            "it applied package {}, not {}",
            run.package, pkg.info.id
        ));
    }
    if run.digest != digest {
        problems.push(format!(
            "it applied digest {}…, the package is now {}…",
            short_digest(&run.digest),
            short_digest(digest)
        ));
    }
    if pkg.rollback.is_none() {
        problems.push("the package has no [rollback] file".into());
    }
    if !problems.is_empty() {
        return Err(RollbackApprovalError::Run {
            path: run_dir.to_path_buf(),
            reason: format!("no rollback of it can be approved: {}", problems.join("; ")),
        });
    }
    if failed_check != MIGRATION_TRIGGER && !pkg.verify.iter().any(|c| c.id == failed_check) {
        let ids: Vec<&str> = pkg.verify.iter().map(|c| c.id.as_str()).collect();
        return Err(RollbackApprovalError::Check {
            check: failed_check.to_string(),
            reason: format!(
                "its verify checks are {}; or {MIGRATION_TRIGGER} for a partly committed non-atomic migration",
                if ids.is_empty() { "none".to_string() } else { ids.join(", ") }
            ),
        });
    }
    Ok(())
}

/// One signed rollback approval, as its file holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackApproval {
    pub format: String,
    pub package: String,
    pub digest: String,
    /// The apply run's id (its evidence folder's name).
    pub run: String,
    /// The sha256 of the apply run's run.json.
    pub run_sha256: String,
    pub environment: String,
    pub failed_check: String,
    pub signer: String,
    pub decision: RollbackDecision,
    #[serde(default)]
    pub note: String,
    pub signed_at: String,
    #[serde(default)]
    pub signature: String,
}

/// A rollback approval of `run` for `failed_check`, dated now, unsigned: what
/// [`RollbackApproval::signed_by`] signs.
pub fn unsigned(
    pkg: &Package,
    digest: &str,
    run: &ApplyRun,
    failed_check: &str,
    signer: &str,
    decision: RollbackDecision,
    note: &str,
) -> Result<RollbackApproval, ApprovalError> {
    let approval = RollbackApproval {
        format: FORMAT.to_string(),
        package: pkg.info.id.clone(),
        digest: digest.to_string(),
        run: run.id.clone(),
        run_sha256: run.run_sha256.clone(),
        environment: run.environment.clone(),
        failed_check: failed_check.to_string(),
        signer: signer.to_string(),
        decision,
        note: note.to_string(),
        signed_at: format_utc(OffsetDateTime::now_utc()),
        signature: String::new(),
    };
    approval.check_fields()?;
    Ok(approval)
}

impl RollbackApproval {
    /// The exact bytes that are signed (see the module's documentation).
    pub fn signed_message(&self) -> String {
        format!(
            "{FORMAT}\npackage={}\ndigest={}\nrun={}\nrun_sha256={}\nenvironment={}\nfailed_check={}\nsigner={}\ndecision={}\nsigned_at={}\nnote={}\n",
            escape(&self.package),
            escape(&self.digest),
            escape(&self.run),
            escape(&self.run_sha256),
            escape(&self.environment),
            escape(&self.failed_check),
            escape(&self.signer),
            self.decision,
            escape(&self.signed_at),
            escape(&self.note),
        )
    }

    /// This approval with its signature made by `key` in the `sluice-rollback` namespace.
    pub fn signed_by(mut self, key: &mut SigningKey) -> Result<RollbackApproval, ApprovalError> {
        self.check_fields()?;
        self.signature = key
            .sign(NAMESPACE, self.signed_message().as_bytes())?
            .to_pem(LineEnding::LF)
            .map_err(|err| ApprovalError::Encoding {
                reason: format!("cannot armor the signature: {err}"),
            })?;
        Ok(self)
    }

    /// Whether allowed_signers lets this approval's signer sign rollback approvals with the key
    /// that signed it: the gate's own check, so that `approve-rollback` refuses what the gate
    /// would. Returns the key's fingerprint.
    pub fn check_allowed(&self, policy: &ApprovalPolicy) -> Result<String, ApprovalError> {
        let not_allowed = |reason: String| ApprovalError::NotAllowed {
            signer: self.signer.clone(),
            reason,
        };
        let signers = read_allowed_signers(policy).map_err(not_allowed)?;
        self.verify(&signers, OffsetDateTime::now_utc())
            .map_err(|refusal| not_allowed(refusal.reason))
    }

    fn verify(&self, signers: &AllowedSigners, now: OffsetDateTime) -> Result<String, Refusal> {
        if self.format != FORMAT {
            return Err(Refusal::new(
                RefusalKind::Unreadable,
                format!("format is \"{}\", expected \"{FORMAT}\"", self.format),
            ));
        }
        verify_signed(
            Signed {
                signer: &self.signer,
                signed_at: &self.signed_at,
                signature: &self.signature,
                message: self.signed_message().as_bytes(),
                namespace: NAMESPACE,
            },
            signers,
            now,
        )
    }

    /// `<signer>-<decision>-<failed check>-<run id>.rollback-approval`, made file-name safe.
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}-{}-{}.{FILE_EXTENSION}",
            file_name_safe(&self.signer),
            self.decision,
            file_name_safe(&self.failed_check),
            file_name_safe(&self.run)
        )
    }

    /// The file's text.
    pub(crate) fn to_toml(&self) -> Result<String, ApprovalError> {
        let body = toml::to_string(self).map_err(|err| ApprovalError::Encoding {
            reason: err.to_string(),
        })?;
        Ok(format!("{FILE_HEADER}{body}"))
    }

    /// Writes the approval into `dir` (created with mode 0700 if missing) as a new file with
    /// mode 0600, and returns its path. An existing file is never overwritten.
    pub fn write_into(&self, dir: &Path) -> Result<PathBuf, ApprovalError> {
        self.check_fields()?;
        let text = self.to_toml()?;
        create_private_dir(dir).map_err(|source| ApprovalError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        super::persist_new(&dir.join(self.file_name()), &text, ".rollback-approval-")
    }

    /// The checks made before signing, so that the file name and the message are unambiguous.
    fn check_fields(&self) -> Result<(), ApprovalError> {
        let invalid = |field, value: &str, expected| {
            Err(ApprovalError::InvalidField {
                field,
                value: value.to_string(),
                expected,
            })
        };
        let principal_char =
            |c: char| !c.is_whitespace() && !c.is_control() && !",\"*?!#".contains(c);
        if self.signer.is_empty() || !self.signer.chars().all(principal_char) {
            return invalid(
                "signer",
                &self.signer,
                "a principal as allowed_signers names it, e.g. alice@example.com (no spaces, commas, quotes, wildcards, ! or #)",
            );
        }
        let plain = |v: &str| !v.is_empty() && !v.chars().any(|c| c.is_control());
        if !plain(&self.failed_check) {
            return invalid("failed check", &self.failed_check, "a verify check id");
        }
        if !plain(&self.run) {
            return invalid("run id", &self.run, "the run folder's name");
        }
        Ok(())
    }
}

/// Creates `dir` (and missing parents) with mode 0700; an existing folder is left as it is.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// What a rollback approval must match to count.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub package_id: &'a str,
    pub digest: &'a str,
    /// The apply run being rolled back.
    pub run: &'a ApplyRun,
    /// The environment the rollback runs on.
    pub environment: &'a str,
    pub failed_check: &'a str,
    /// The rollback's operator.
    pub operator: &'a str,
}

/// A rollback approval the gate accepted.
#[derive(Debug, Clone, Serialize)]
pub struct UsedRollbackApproval {
    /// Where it was read.
    pub file: PathBuf,
    pub signer: String,
    pub decision: RollbackDecision,
    pub note: String,
    pub signed_at: String,
    pub key_fingerprint: String,
    /// The sha256 of the file's bytes, as read and verified.
    pub sha256: String,
    /// The file's bytes, as read and verified: what the rollback's evidence copies.
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

/// What the rollback's `approvals` gate found.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackVerdict {
    /// `[approvals].rollback_required`.
    pub required: u32,
    /// Valid approvals of this rollback (pass and reject), first per signer.
    pub accepted: Vec<UsedRollbackApproval>,
    pub refused: Vec<RefusedApproval>,
    pub rejected_by: Vec<String>,
    pub holds: bool,
    pub summary: String,
}

impl RollbackVerdict {
    /// The accepted pass approvals that count: the first of each signer (without case) whose
    /// key has not counted already.
    pub fn counted(&self) -> Vec<&UsedRollbackApproval> {
        super::distinct_signers(
            self.accepted
                .iter()
                .filter(|a| a.decision == RollbackDecision::Pass),
            |a| (&a.signer, &a.key_fingerprint),
        )
    }
}

/// The rollback's `approvals` gate: reads every `*.rollback-approval` of `dir` and decides whether
/// at least `rollback_required` distinct allowed signers approved this rollback (same package
/// and digest, run id and run.json sha256, environment and failed check), none rejected it, and
/// (unless `operator_may_approve`) the operator is not among them. A valid reject blocks even
/// when none are required.
pub fn evaluate(policy: &ApprovalPolicy, expected: &Expected<'_>, dir: &Path) -> RollbackVerdict {
    let signers = read_allowed_signers(policy);
    let now = OffsetDateTime::now_utc();
    let mut verdict = RollbackVerdict {
        required: policy.rollback_required,
        accepted: Vec::new(),
        refused: Vec::new(),
        rejected_by: Vec::new(),
        holds: false,
        summary: String::new(),
    };
    for (file, loaded) in load_dir(dir) {
        let (approval, bytes) = match loaded {
            Ok(read) => read,
            Err(reason) => {
                verdict.refused.push(RefusedApproval {
                    file,
                    signer: None,
                    kind: RefusalKind::Unreadable,
                    reason,
                });
                continue;
            }
        };
        let checked = match &signers {
            Ok(signers) => approval
                .verify(signers, now)
                .and_then(|fp| check_binding(&approval, expected).map(|_| fp))
                .and_then(|fp| {
                    check_operator(&approval, expected, policy.operator_may_approve).map(|_| fp)
                }),
            Err(problem) => Err(Refusal::new(
                RefusalKind::NotChecked,
                format!("not checked: {problem}"),
            )),
        };
        match checked {
            Ok(key_fingerprint) => verdict.accepted.push(UsedRollbackApproval {
                file,
                signer: approval.signer,
                decision: approval.decision,
                note: approval.note,
                signed_at: approval.signed_at,
                key_fingerprint,
                sha256: crate::digest::sha256_hex(&bytes),
                bytes,
            }),
            Err(refusal) => verdict.refused.push(RefusedApproval {
                file,
                signer: Some(approval.signer),
                kind: refusal.kind,
                reason: refusal.reason,
            }),
        }
    }
    verdict.conclude(signers.as_ref().err().map(String::as_str), dir);
    verdict
}

impl RollbackVerdict {
    fn conclude(&mut self, signers_problem: Option<&str>, dir: &Path) {
        for a in &self.accepted {
            if a.decision == RollbackDecision::Reject && !self.rejected_by.contains(&a.signer) {
                self.rejected_by.push(a.signer.clone());
            }
        }
        let counted: Vec<String> = self.counted().iter().map(|a| a.signer.clone()).collect();
        let required = self.required as usize;
        let enough = required == 0 || (signers_problem.is_none() && counted.len() >= required);
        self.holds = enough && self.rejected_by.is_empty();
        let mut parts: Vec<String> = self
            .accepted
            .iter()
            .filter(|a| a.decision == RollbackDecision::Reject)
            .map(|a| match a.note.trim() {
                "" => format!("rollback rejected by {}", a.signer),
                note => format!("rollback rejected by {} (\"{note}\")", a.signer),
            })
            .collect();
        parts.push(if required == 0 {
            "rollback approvals are not required ([approvals] rollback_required = 0)".to_string()
        } else if let Some(problem) = signers_problem {
            format!("{required} rollback approval(s) required but none can be checked: {problem}")
        } else if counted.is_empty() {
            format!(
                "0 of {required} required rollback approval(s) in {} (sign them with `sluice approve-rollback PKG --run RUN_DIR --failed-check ID --signer NAME --key KEY --decision pass`)",
                dir.display()
            )
        } else {
            format!(
                "{} of {required} required rollback approval(s): {}",
                counted.len(),
                counted.join(", ")
            )
        });
        if !self.refused.is_empty() {
            let items: Vec<String> = self
                .refused
                .iter()
                .map(|r| {
                    let name = r.file.file_name().map_or_else(
                        || r.file.display().to_string(),
                        |n| n.to_string_lossy().into_owned(),
                    );
                    match &r.signer {
                        Some(signer) => format!("{signer} in {name} ({})", r.reason),
                        None => format!("{name} ({})", r.reason),
                    }
                })
                .collect();
            parts.push(format!("refused: {}", items.join(", ")));
        }
        self.summary = parts.join("; ");
    }
}

/// The approval is for this rollback: package, digest, run, environment and check.
fn check_binding(approval: &RollbackApproval, expected: &Expected<'_>) -> Result<(), Refusal> {
    let other = |reason: String| Err(Refusal::new(RefusalKind::OtherBinding, reason));
    if approval.package != expected.package_id {
        return other(format!(
            "signed for package {}, not {}",
            approval.package, expected.package_id
        ));
    }
    if approval.digest != expected.digest {
        return other(format!(
            "signed for digest {}…, the package is now {}…",
            short_digest(&approval.digest),
            short_digest(expected.digest)
        ));
    }
    if approval.run != expected.run.id {
        return other(format!(
            "signed for run {}, not {}",
            approval.run, expected.run.id
        ));
    }
    if approval.environment != expected.environment {
        return other(format!(
            "signed for environment {}, not {}",
            approval.environment, expected.environment
        ));
    }
    if approval.failed_check != expected.failed_check {
        return other(format!(
            "signed for failed check {}, not {}",
            approval.failed_check, expected.failed_check
        ));
    }
    if approval.run_sha256 != expected.run.run_sha256 {
        return other(format!(
            "signed for a run.json with sha256 {}…, this run's is {}… (the run record changed since it was signed)",
            short_digest(&approval.run_sha256),
            short_digest(&expected.run.run_sha256)
        ));
    }
    Ok(())
}

/// The rollback's operator may not co-sign it, unless the policy allows it.
fn check_operator(
    approval: &RollbackApproval,
    expected: &Expected<'_>,
    operator_may_approve: bool,
) -> Result<(), Refusal> {
    if approval.decision == RollbackDecision::Pass
        && !operator_may_approve
        && approval.signer.eq_ignore_ascii_case(expected.operator)
    {
        return Err(Refusal::new(
            RefusalKind::SeparationOfDuties,
            format!(
                "separation of duties: the operator {} may not approve their own rollback ([approvals] operator_may_approve = false)",
                expected.operator
            ),
        ));
    }
    Ok(())
}

type Loaded = Result<(RollbackApproval, Vec<u8>), String>;

/// Every `*.rollback-approval` file of `dir`, sorted by path, each read (with its bytes) or with
/// the reason it cannot be. A missing folder holds none.
pub(crate) fn load_dir(dir: &Path) -> Vec<(PathBuf, Loaded)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(err) => {
            return vec![(
                dir.to_path_buf(),
                Err(format!("cannot read the rollback approvals folder: {err}")),
            )]
        }
    };
    let mut loaded = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == FILE_EXTENSION) {
            let read = read_file(&path);
            loaded.push((path, read));
        }
    }
    loaded.sort_by(|a, b| a.0.cmp(&b.0));
    loaded
}

fn read_file(path: &Path) -> Loaded {
    let bytes = std::fs::read(path).map_err(|err| format!("cannot read the file: {err}"))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| "not a sluice rollback approval: the file is not UTF-8 text".to_string())?;
    let approval: RollbackApproval = toml::from_str(text).map_err(|err| {
        format!(
            "not a sluice rollback approval: {}",
            super::describe_toml_error(text, &err)
        )
    })?;
    if approval.format != FORMAT {
        return Err(format!(
            "not a sluice rollback approval: format is \"{}\", expected \"{FORMAT}\"",
            approval.format
        ));
    }
    if parse_utc(&approval.signed_at).is_none() {
        return Err(format!(
            "signed_at `{}` is not a UTC time like 2025-01-31T12:00:00Z",
            approval.signed_at
        ));
    }
    Ok((approval, bytes))
}
