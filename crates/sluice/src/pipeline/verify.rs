//! `sluice verify`: the verify checks again, read-only, and the live schema compared with the
//! post snapshot of the run that applied the change — drift reported object by object.

use crate::catalog::{self, diff::SchemaDiff, Snapshot};
use crate::package::Package;
use crate::review::{evaluate_check, CheckResult};
use crate::target::{Target, TargetError};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub target: String,
    pub checks: Vec<CheckResult>,
    /// The run whose post snapshot the live schema was compared with.
    pub run: Option<PathBuf>,
    /// Live schema minus the run's post snapshot: empty means no drift.
    pub drift: Option<SchemaDiff>,
    pub holds: bool,
}

/// The newest completed apply of this package in the evidence root that has a post snapshot.
pub fn latest_applied_run(evidence_root: &Path, package_id: &str) -> Option<PathBuf> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(evidence_root.join(package_id))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("schema/post.json").is_file())
        .collect();
    runs.sort();
    runs.pop()
}

/// Runs the verification read-only.
pub fn verify(
    pkg: &Package,
    target: &Target,
    run_dir: Option<&Path>,
) -> Result<VerifyReport, TargetError> {
    let mut client = target.connect("check")?;
    let checks: Vec<CheckResult> = pkg
        .verify
        .iter()
        .map(|c| evaluate_check(&mut client, c))
        .collect();
    let drift = match run_dir {
        Some(dir) => {
            let text = std::fs::read_to_string(dir.join("schema/post.json")).map_err(|e| {
                TargetError::Query {
                    target: target.to_string(),
                    message: format!(
                        "cannot read {}: {e}",
                        dir.join("schema/post.json").display()
                    ),
                }
            })?;
            let post: Snapshot = serde_json::from_str(&text).map_err(|e| TargetError::Query {
                target: target.to_string(),
                message: format!(
                    "{} is not a sluice snapshot: {e}",
                    dir.join("schema/post.json").display()
                ),
            })?;
            let mut helper = target.connect("helper").ok();
            let live = catalog::snapshot_with(
                &mut client,
                helper.as_mut(),
                &pkg.schema_diff.ignore_schemas,
            )
            .map_err(|e| target.query_error(&e))?;
            Some(catalog::diff::diff(&post, &live))
        }
        None => None,
    };
    let holds = checks.iter().all(|c| c.holds) && drift.as_ref().is_none_or(|d| d.is_empty());
    Ok(VerifyReport {
        target: target.to_string(),
        checks,
        run: run_dir.map(Path::to_path_buf),
        drift,
        holds,
    })
}
