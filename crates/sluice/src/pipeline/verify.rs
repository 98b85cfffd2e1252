//! `sluice verify`: the verify checks again, read-only, and the live schema compared with the
//! post snapshot of the run that applied the change — drift reported object by object.

use crate::catalog::{self, diff::SchemaDiff, Snapshot};
use crate::checks::{evaluate_check, CheckResult};
use crate::package::Package;
use crate::target::{IdentityFacts, Target, TargetError};
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

/// Why there is nothing to compare the live schema with.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("no successful apply of digest {digest} to this target (database {database}{system}) in {root}: verify compares with the run that applied the change; give --run RUN_DIR or --evidence DIR")]
    NotFound {
        digest: String,
        database: String,
        system: String,
        root: String,
    },
    #[error("{run} is not a baseline for verify: {why}")]
    NotAnApply { run: String, why: String },
}

fn stored(run_dir: &Path) -> Option<crate::run_record::StoredRun> {
    let text = std::fs::read_to_string(run_dir.join("run.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether `run` applied `digest` to the target whose identity is `live`, successfully, and
/// left a post snapshot: never a rehearsal, never another database or cluster.
fn baseline_problem(run_dir: &Path, digest: &str, live: &IdentityFacts) -> Option<String> {
    let Some(run) = stored(run_dir) else {
        return Some("it has no readable run.json".into());
    };
    let same_cluster = match (
        run.server
            .as_ref()
            .and_then(|s| s.system_identifier.as_deref()),
        live.system_identifier.as_deref(),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => true, // not readable by this role: the database name and the rest must do
    };
    let problem = if run.kind != "apply" {
        format!("it is a {} run, not an apply to a real target", run.kind)
    } else if run.digest != digest {
        format!("it applied digest {}, the package is {digest}", run.digest)
    } else if run.status != crate::run_record::RunStatus::Succeeded {
        "its apply did not succeed".into()
    } else if run.server.as_ref().map(|s| s.database.as_str()) != Some(live.database.as_str()) {
        format!("it applied to another database than {}", live.database)
    } else if !same_cluster {
        "it applied to another cluster (system identifier)".into()
    } else if !run_dir.join("schema/post.json").is_file() {
        "it has no post snapshot".into()
    } else {
        return None;
    };
    Some(problem)
}

/// The baseline of `verify`: `run` when given (checked), else the newest successful apply of
/// this digest to this same target (system identifier + database) under `evidence_root`.
pub fn baseline(
    evidence_root: &Path,
    run: Option<&Path>,
    pkg: &Package,
    live: &IdentityFacts,
) -> Result<PathBuf, BaselineError> {
    let digest = crate::digest::package_digest(pkg);
    if let Some(run) = run {
        return match baseline_problem(run, &digest, live) {
            None => Ok(run.to_path_buf()),
            Some(why) => Err(BaselineError::NotAnApply {
                run: run.display().to_string(),
                why,
            }),
        };
    }
    let mut runs: Vec<(String, PathBuf)> = std::fs::read_dir(evidence_root.join(&pkg.info.id))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| baseline_problem(p, &digest, live).is_none())
        .filter_map(|p| stored(&p).map(|r| (r.started_at, p)))
        .collect();
    runs.sort();
    runs.pop()
        .map(|(_, p)| p)
        .ok_or_else(|| BaselineError::NotFound {
            digest: digest[..12.min(digest.len())].to_string(),
            database: live.database.clone(),
            system: live
                .system_identifier
                .as_ref()
                .map(|s| format!(", system identifier {s}"))
                .unwrap_or_default(),
            root: evidence_root.display().to_string(),
        })
}

/// Runs the verification read-only against the post snapshot of `run_dir` (see [`baseline`]).
pub fn verify(pkg: &Package, target: &Target, run_dir: &Path) -> Result<VerifyReport, TargetError> {
    let mut client = target.connect("check")?;
    let checks: Vec<CheckResult> = pkg
        .verify
        .iter()
        .map(|c| evaluate_check(&mut client, c))
        .collect();
    let post_path = run_dir.join("schema/post.json");
    let query_error = |message: String| TargetError::Query {
        target: target.to_string(),
        message,
    };
    let text = std::fs::read_to_string(&post_path)
        .map_err(|e| query_error(format!("cannot read {}: {e}", post_path.display())))?;
    let post: Snapshot = serde_json::from_str(&text).map_err(|e| {
        query_error(format!(
            "{} is not a sluice snapshot: {e}",
            post_path.display()
        ))
    })?;
    let mut helper = target.connect("helper").ok();
    let options =
        catalog::SnapshotOptions::new(&pkg.schema_diff.ignore_schemas).helper(helper.as_mut());
    let live = catalog::snapshot(&mut client, options)
        .map_err(|e| target.query_error(&e))?
        .snapshot;
    // a run recorded by an older sluice is compared on what it recorded
    let drift = catalog::diff::diff(&post, &live.covered_as(post.coverage))
        .map_err(|e| query_error(e.to_string()))?;
    let drift = Some(drift);
    let holds = checks.iter().all(|c| c.holds) && drift.as_ref().is_none_or(|d| d.is_empty());
    Ok(VerifyReport {
        target: target.to_string(),
        checks,
        run: Some(run_dir.to_path_buf()),
        drift,
        holds,
    })
}

/// The objects that keep the live schema from being a run's pre snapshot again (the live one
/// taken with a `helper` session sharing the work when there is one): empty when the schema is
/// back where it was before the run.
pub(crate) fn schema_against_pre(
    client: &mut postgres::Client,
    helper: Option<&mut postgres::Client>,
    pkg: &Package,
    run_dir: &Path,
) -> Result<Vec<String>, String> {
    let text =
        std::fs::read_to_string(run_dir.join("schema/pre.json")).map_err(|e| e.to_string())?;
    let pre: Snapshot = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let options = catalog::SnapshotOptions::new(&pkg.schema_diff.ignore_schemas).helper(helper);
    let now = catalog::snapshot(client, options)
        .map_err(|e| crate::target::pg_message(&e))?
        .snapshot;
    Ok(catalog::diff::not_back_to(
        &pre,
        &now.covered_as(pre.coverage),
    ))
}
