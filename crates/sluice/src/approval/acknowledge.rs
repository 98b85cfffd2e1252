//! Acknowledged deviations (the seed's G-7: "ABORT if count ≠ 86 … without a documented,
//! acknowledged explanation"). An approval may acknowledge one preflight check's exact observed
//! result (`sluice approve PKG --acknowledge P-8=87 --note "…"`); the acknowledgement is in the
//! signed message, so it is bound to the digest like the approval itself.
//!
//! This module owns the acknowledgement, reading `CHECK=OBSERVED` against a package (only
//! preflight checks can be acknowledged: a verify check runs after COMMIT and the migration's
//! expectation is the atomic guarantee before it), and the preflight gate's rule: a failed check
//! passes "as acknowledged" when at least `[approvals] required` (at least one) distinct signers
//! acknowledged exactly the value it returned.

use super::{AcceptedApproval, ApprovalVerdict};
use crate::checks::CheckResult;
use crate::package::Package;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// One preflight check's observed result, acknowledged by a signer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// The preflight check's id, e.g. `P-8`.
    pub check: String,
    /// The result acknowledged, exactly as the check shows it when it fails (its
    /// [`CheckResult::observed`]): `87` for one value, `col=value …` lines otherwise.
    pub observed: String,
}

/// Why `--acknowledge CHECK=OBSERVED` cannot be signed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AcknowledgeError {
    #[error("--acknowledge `{given}`: expected CHECK=OBSERVED, e.g. P-8=87, where CHECK is a preflight check of the package ({checks})")]
    Malformed { given: String, checks: String },
    #[error("--acknowledge {check}: {check} is a verify check; it runs after COMMIT, when the change is already made, so a deviation cannot be acknowledged there: fix the check or roll back")]
    VerifyCheck { check: String },
    #[error("--acknowledge {given}: the migration's [migration.expect] cannot be acknowledged: the expectation checked before COMMIT is the atomic guarantee (a different row rolls the change back); edit the expectation and have the package approved again")]
    MigrationExpect { given: String },
    #[error("--acknowledge {check}: {check} is covered by gate {gate}, which an acknowledgement cannot pass")]
    CoveredByGate { check: String, gate: String },
    #[error("--acknowledge {check} is given twice")]
    Twice { check: String },
    #[error("an acknowledgement needs --note explaining the deviation (what changed on the target, and why it is safe)")]
    NoteRequired,
    #[error(
        "an acknowledgement comes with an approving decision (pass or pass-with-notes), not reject"
    )]
    WithReject,
}

impl Acknowledgement {
    /// Reads `CHECK=OBSERVED` against `pkg`: CHECK must be one of its SQL preflight checks.
    pub fn parse(given: &str, pkg: &Package) -> Result<Acknowledgement, AcknowledgeError> {
        let named = |id: &str| {
            given
                .strip_prefix(id)
                .and_then(|rest| rest.strip_prefix('='))
                .map(|observed| (id.to_string(), observed.to_string()))
        };
        if let Some((check, _)) = pkg.verify.iter().find_map(|c| named(&c.id)) {
            return Err(AcknowledgeError::VerifyCheck { check });
        }
        let id = given.split('=').next().unwrap_or_default().trim();
        if matches!(id, "migration" | "migration.expect" | "migration-atomic") {
            return Err(AcknowledgeError::MigrationExpect {
                given: given.to_string(),
            });
        }
        let found = pkg
            .preflight
            .iter()
            .find_map(|c| named(&c.id).map(|parsed| (c, parsed)));
        let Some((check, (id, observed))) = found else {
            return Err(AcknowledgeError::Malformed {
                given: given.to_string(),
                checks: pkg
                    .preflight
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        if let crate::package::CheckBody::CoveredBy { gate } = &check.body {
            return Err(AcknowledgeError::CoveredByGate {
                check: id,
                gate: gate.clone(),
            });
        }
        Ok(Acknowledgement {
            check: id,
            observed,
        })
    }

    /// `P-8=87`, as `--acknowledge` takes it and the signed message holds it.
    pub fn to_arg(&self) -> String {
        format!("{}={}", self.check, self.observed)
    }
}

/// The checks an approval makes on its acknowledgements: each check once, a note saying why,
/// an approving decision.
pub(super) fn check_fields(
    acknowledgements: &[Acknowledgement],
    note: &str,
    approves: bool,
) -> Result<(), AcknowledgeError> {
    if acknowledgements.is_empty() {
        return Ok(());
    }
    if !approves {
        return Err(AcknowledgeError::WithReject);
    }
    if note.trim().is_empty() {
        return Err(AcknowledgeError::NoteRequired);
    }
    let mut seen = HashSet::new();
    for ack in acknowledgements {
        if ack.check.is_empty() || ack.check.contains('=') {
            return Err(AcknowledgeError::Malformed {
                given: ack.to_arg(),
                checks: "an id without `=`".into(),
            });
        }
        if !seen.insert(&ack.check) {
            return Err(AcknowledgeError::Twice {
                check: ack.check.clone(),
            });
        }
    }
    Ok(())
}

/// A preflight check that passed because its observed result was acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Acknowledged {
    /// The value the check returned, which the signers acknowledged.
    pub observed: String,
    /// What the check expected, as it failed without the acknowledgement.
    pub deviation: String,
    /// How many distinct signers must acknowledge it.
    pub required: u32,
    pub signers: Vec<AcknowledgedBy>,
}

/// One signer's acknowledgement, with the note explaining it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AcknowledgedBy {
    pub signer: String,
    pub note: String,
    pub key_fingerprint: String,
}

impl Acknowledged {
    /// `P-8 passes AS ACKNOWLEDGED: observed 87 (expected 86, got '87'), acknowledged by …`.
    pub fn describe(&self, check: &str) -> String {
        let by: Vec<String> = self
            .signers
            .iter()
            .map(|s| format!("{} (\"{}\")", s.signer, s.note.replace('\n', " ")))
            .collect();
        format!(
            "{check} passes AS ACKNOWLEDGED: observed {} ({}), acknowledged by {}",
            self.observed,
            self.deviation,
            by.join(", ")
        )
    }
}

/// How many distinct signers must acknowledge a value: `[approvals] required`, at least one.
pub(crate) fn required_signers(verdict: &ApprovalVerdict) -> u32 {
    verdict.required.max(1)
}

impl ApprovalVerdict {
    /// The accepted approving approvals that acknowledge exactly `check = observed`, one per
    /// signer (without case) and per key, as approvals are counted.
    pub(crate) fn acknowledgers(&self, check: &str, observed: &str) -> Vec<&AcceptedApproval> {
        let acknowledging = self.accepted.iter().filter(|a| {
            a.decision.approves()
                && a.acknowledge
                    .iter()
                    .any(|k| k.check == check && k.observed == observed)
        });
        super::distinct_signers(acknowledging, |a| (&a.signer, &a.key_fingerprint))
    }

    /// What the accepted approvals acknowledge for `check` other than `observed`, for the
    /// message of a check that still fails: `88 (alice@example.com)`.
    fn other_values(&self, check: &str, observed: &str) -> Vec<String> {
        self.accepted
            .iter()
            .flat_map(|a| {
                a.acknowledge
                    .iter()
                    .filter(|k| k.check == check && k.observed != observed)
                    .map(|k| format!("{} ({})", k.observed, a.signer))
            })
            .collect()
    }
}

/// The preflight gate's rule, applied to its results: every failed SQL check whose observed
/// result enough distinct signers acknowledged passes, marked acknowledged; a failed check that
/// some acknowledged too few times, or another value, keeps failing and its detail says so; a
/// failed check nobody acknowledged gets the command that would acknowledge it.
pub fn apply(results: &mut [CheckResult], verdict: &ApprovalVerdict) {
    let required = required_signers(verdict);
    for result in results.iter_mut().filter(|r| !r.holds) {
        let Some(observed) = result.observed.clone() else {
            continue;
        };
        let by = verdict.acknowledgers(&result.id, &observed);
        let deviation = result.detail.clone().unwrap_or_default();
        if by.len() >= required as usize {
            result.holds = true;
            result.acknowledged = Some(Acknowledged {
                observed,
                deviation,
                required,
                signers: by
                    .into_iter()
                    .map(|a| AcknowledgedBy {
                        signer: a.signer.clone(),
                        note: a.note.clone(),
                        key_fingerprint: a.key_fingerprint.clone(),
                    })
                    .collect(),
            });
            continue;
        }
        let mut notes = Vec::new();
        if !by.is_empty() {
            let names: Vec<&str> = by.iter().map(|a| a.signer.as_str()).collect();
            notes.push(format!(
                "{} of {required} required acknowledgement(s) of {}={observed}: {}",
                by.len(),
                result.id,
                names.join(", ")
            ));
        }
        let others = verdict.other_values(&result.id, &observed);
        if !others.is_empty() {
            notes.push(format!(
                "acknowledged values that are not the observed {observed}: {}",
                others.join(", ")
            ));
        }
        if by.is_empty() {
            notes.push(format!(
                "a reviewed deviation can be acknowledged: `sluice approve PKG --acknowledge {}={observed} --note …` by {required} signer(s)",
                result.id
            ));
        }
        result.detail = Some(format!("{deviation} ({})", notes.join("; ")));
    }
}

/// For a verify check that failed: the accepted approvals that acknowledge it, which never
/// count (`; an acknowledgement of V-3 does not count: …`), so the message says why.
pub(crate) fn refuse_after_commit(results: &mut [CheckResult], verdict: &ApprovalVerdict) {
    for result in results.iter_mut().filter(|r| !r.holds) {
        let by: Vec<&str> = verdict
            .accepted
            .iter()
            .filter(|a| a.acknowledge.iter().any(|k| k.check == result.id))
            .map(|a| a.signer.as_str())
            .collect();
        if by.is_empty() {
            continue;
        }
        let detail = result.detail.clone().unwrap_or_default();
        result.detail = Some(format!(
            "{detail} (the acknowledgement of {} by {} does not count: a verify check runs after COMMIT and cannot be acknowledged)",
            result.id,
            by.join(", ")
        ));
    }
}
