//! Rehearsal records (`PKG/rehearsals/`): what a rehearsal proved, bound to the package digest
//! and sealed by nothing but the sha256 of its own content. The `rehearsal` gate of apply needs
//! a passing record for the current digest.

use crate::digest::sha256_hex;
use crate::gate::CycleStep;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "sluice-rehearsal-v1";

/// One step of a rehearsal, with its timing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RehearsalStep {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    pub duration_ms: u128,
}

/// The record: everything in it is covered by `content_sha256`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RehearsalRecord {
    pub format: String,
    pub package: String,
    pub digest: String,
    pub passed: bool,
    pub rehearsed_at: String,
    pub server_version: String,
    pub backup_sha256: String,
    /// How long the migration held its locks in the rehearsal: the forecast for production.
    pub lock_holding_ms: Option<u128>,
    pub steps: Vec<RehearsalStep>,
    /// What each statement locked, rewrote and wrote, measured in the apply and the re-apply
    /// ([`crate::locktrace`]). Absent from records of an older sluice, whose seal still holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<RehearsalTrace>,
    /// sha256 of this record serialized with this field empty.
    #[serde(default)]
    pub content_sha256: String,
}

/// The lock traces of a rehearsal's two applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RehearsalTrace {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<crate::locktrace::LockTrace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub re_apply: Option<crate::locktrace::LockTrace>,
}

impl RehearsalTrace {
    /// The traces there are, named by run.
    pub fn runs(&self) -> Vec<(&'static str, &crate::locktrace::LockTrace)> {
        [
            (CycleStep::Apply.name(), &self.apply),
            (CycleStep::ReApply.name(), &self.re_apply),
        ]
        .into_iter()
        .filter_map(|(name, t)| t.as_ref().map(|t| (name, t)))
        .collect()
    }
}

impl RehearsalRecord {
    /// The hash of the content: the record as compact JSON with `content_sha256` empty.
    pub(crate) fn content_hash(&self) -> String {
        let mut unsealed = self.clone();
        unsealed.content_sha256 = String::new();
        sha256_hex(
            serde_json::to_string(&unsealed)
                .unwrap_or_default()
                .as_bytes(),
        )
    }

    pub fn seal(mut self) -> Self {
        self.content_sha256 = self.content_hash();
        self
    }

    pub(crate) fn is_sealed(&self) -> bool {
        self.content_sha256 == self.content_hash()
    }
}

/// What the rehearsal gate found.
#[derive(Debug, Clone, Serialize)]
pub struct RehearsalVerdict {
    pub holds: bool,
    pub record: Option<PathBuf>,
    pub detail: String,
}

/// A record file, read; None when it is not one.
pub(crate) fn read_record(path: &Path) -> Option<RehearsalRecord> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<RehearsalRecord>(&t).ok())
}

/// Looks for a passing, intact record of this digest in `dir`.
pub(crate) fn find_passing(dir: &Path, digest: &str) -> RehearsalVerdict {
    let mut seen = Vec::new();
    let entries = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut paths: Vec<PathBuf> = entries
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    for path in paths.iter().rev() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match read_record(path) {
            None => seen.push(format!("{name}: not a rehearsal record")),
            Some(r) if !r.is_sealed() => seen.push(format!(
                "{name}: content does not match its content_sha256 (edited)"
            )),
            Some(r) if r.digest != digest => seen.push(format!(
                "{name}: for another digest {}",
                &r.digest[..r.digest.len().min(12)]
            )),
            Some(r) if !r.passed => seen.push(format!("{name}: the rehearsal failed")),
            Some(_) => {
                return RehearsalVerdict {
                    holds: true,
                    record: Some(path.clone()),
                    detail: format!("passing rehearsal {name}"),
                }
            }
        }
    }
    RehearsalVerdict {
        holds: false,
        record: None,
        detail: if seen.is_empty() {
            format!(
                "no rehearsal record for digest {} in {}; run `sluice rehearse` first",
                &digest[..digest.len().min(12)],
                dir.display()
            )
        } else {
            format!("no passing rehearsal for this digest: {}", seen.join("; "))
        },
    }
}
