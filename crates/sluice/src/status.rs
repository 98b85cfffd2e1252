//! `sluice status`: what was applied to a target, read from evidence. The runs of every
//! evidence root given (their ledgers, and run folders a killed run left out of the ledger),
//! kept when they ran against this target — the same database on the same cluster (system
//! identifier) — with each apply's rollback, if one was run.

use crate::pipeline::REHEARSAL_ENVIRONMENT;
use crate::run_record::{RunStatus, StoredRun};
use crate::target::IdentityFacts;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One apply or rollback run against the target.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// The run folder.
    pub run: PathBuf,
    /// `apply` or `rollback`.
    pub kind: String,
    pub package: String,
    pub digest: String,
    pub environment: String,
    pub operator: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `succeeded`, `failed`, or `running` (still going, or killed: the run.json says how far).
    pub outcome: RunStatus,
    pub exit_code: Option<i32>,
    pub failed_gate: Option<String>,
    /// Whether the migration (or the rollback) committed.
    pub committed: bool,
    /// For an apply: the newest rollback run of it, when one was run.
    pub rollback: Option<RollbackRef>,
    /// Whether the run has its line in the evidence root's ledger (a killed run has none).
    pub in_ledger: bool,
}

/// A rollback of an apply run.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackRef {
    pub run: PathBuf,
    pub outcome: RunStatus,
}

impl RunSummary {
    /// Whether a rollback of this apply succeeded.
    pub fn rolled_back(&self) -> bool {
        self.rollback
            .as_ref()
            .is_some_and(|r| r.outcome == RunStatus::Succeeded)
    }
}

/// The runs against one target, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub database: String,
    pub system_identifier: Option<String>,
    pub evidence: Vec<PathBuf>,
    pub runs: Vec<RunSummary>,
}

/// The apply and rollback runs under `roots` that ran against the target `live` (same
/// database; same system identifier when both are known), of `package` when given.
pub fn status(roots: &[PathBuf], package: Option<&str>, live: &IdentityFacts) -> StatusReport {
    let mut runs: Vec<(StoredRun, RunSummary)> = Vec::new();
    for root in roots {
        let ledgered = ledger_runs(root);
        for dir in run_dirs(root) {
            let Some(stored) = read_run(&dir) else {
                continue;
            };
            if !matches!(stored.kind.as_str(), "apply" | "rollback")
                || stored.environment == REHEARSAL_ENVIRONMENT
                || package.is_some_and(|p| p != stored.package)
                || !same_target(&stored, live)
            {
                continue;
            }
            let rel = dir.strip_prefix(root).unwrap_or(&dir).to_path_buf();
            let summary = RunSummary {
                in_ledger: ledgered.contains(&rel),
                run: dir,
                kind: stored.kind.clone(),
                package: stored.package.clone(),
                digest: stored.digest.clone(),
                environment: stored.environment.clone(),
                operator: stored.operator.clone(),
                started_at: stored.started_at.clone(),
                finished_at: stored.finished_at.clone(),
                outcome: stored.status,
                exit_code: stored.exit_code,
                failed_gate: stored.failed_gate.clone(),
                committed: stored.migration_committed,
                rollback: None,
            };
            runs.push((stored, summary));
        }
    }
    runs.sort_by(|a, b| (&a.1.started_at, &a.1.run).cmp(&(&b.1.started_at, &b.1.run)));
    // each rollback names the apply folder it rolls back; the newest one counts
    let rollbacks: Vec<(String, String, RollbackRef)> = runs
        .iter()
        .filter_map(|(stored, summary)| {
            let target = stored.rolls_back.as_deref()?;
            let name = Path::new(target)
                .file_name()?
                .to_string_lossy()
                .into_owned();
            Some((
                stored.package.clone(),
                name,
                RollbackRef {
                    run: summary.run.clone(),
                    outcome: summary.outcome,
                },
            ))
        })
        .collect();
    let mut summaries: Vec<RunSummary> = runs.into_iter().map(|(_, s)| s).collect();
    for summary in summaries.iter_mut().filter(|s| s.kind == "apply") {
        let name = summary
            .run
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        summary.rollback = rollbacks
            .iter()
            .filter(|(pkg, folder, _)| *pkg == summary.package && Some(folder) == name.as_ref())
            .map(|(_, _, r)| r.clone())
            .next_back();
    }
    StatusReport {
        database: live.database.clone(),
        system_identifier: live.system_identifier.clone(),
        evidence: roots.to_vec(),
        runs: summaries,
    }
}

/// The same database on the same cluster. A run that never read the server's identity (it
/// stopped before) cannot be placed, and is left out.
fn same_target(run: &StoredRun, live: &IdentityFacts) -> bool {
    let Some(server) = &run.server else {
        return false;
    };
    let same_cluster = match (&server.system_identifier, &live.system_identifier) {
        (Some(a), Some(b)) => a == b,
        // not readable by one of the roles: the database name must do
        _ => true,
    };
    server.database == live.database && same_cluster
}

/// The run folders a ledger lists, relative to its root.
fn ledger_runs(root: &Path) -> BTreeSet<PathBuf> {
    let Ok(text) = std::fs::read_to_string(root.join(crate::evidence::LEDGER)) else {
        return BTreeSet::new();
    };
    text.lines()
        .filter_map(|line| serde_json::from_str::<crate::evidence::LedgerEntry>(line).ok())
        .map(|entry| PathBuf::from(entry.run))
        .collect()
}

/// `ROOT/PACKAGE_ID/RUN` folders.
fn run_dirs(root: &Path) -> Vec<PathBuf> {
    let dirs = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect()
    };
    dirs(root).iter().flat_map(|pkg| dirs(pkg)).collect()
}

fn read_run(dir: &Path) -> Option<StoredRun> {
    let text = std::fs::read_to_string(dir.join("run.json")).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(system: &str) -> IdentityFacts {
        IdentityFacts {
            database: "app".into(),
            role: "owner".into(),
            server_version: "16.4".into(),
            server_version_num: 160004,
            system_identifier: Some(system.into()),
            rehearsal_cluster: false,
        }
    }

    /// Writes `ROOT/pkg/NAME/run.json`.
    fn run(root: &Path, name: &str, fields: serde_json::Value) -> PathBuf {
        let dir = root.join("pkg").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut doc = serde_json::json!({
            "kind": "apply", "package": "pkg", "digest": "d1", "environment": "production",
            "operator": "carol", "started_at": name, "status": "succeeded", "exit_code": 0,
            "migration_committed": true, "steps": [],
            "server": { "database": "app", "role": "owner", "server_version": "16.4",
                        "server_version_num": 160004, "system_identifier": "42",
                        "rehearsal_cluster": false },
        });
        for (k, v) in fields.as_object().unwrap() {
            doc[k] = v.clone();
        }
        std::fs::write(dir.join("run.json"), doc.to_string()).unwrap();
        dir
    }

    #[test]
    fn rollbacks_other_targets_and_killed_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("evidence");
        let applied = run(&root, "20261201T100000Z-production", serde_json::json!({}));
        run(
            &root,
            "20261201T110000Z-production-rollback",
            serde_json::json!({ "kind": "rollback", "rolls_back": "./evidence/pkg/20261201T100000Z-production" }),
        );
        run(
            &root,
            "20261202T100000Z-production",
            serde_json::json!({ "status": "running", "exit_code": null }),
        );
        // another cluster, a rehearsal, another database: not this target's
        run(
            &root,
            "20261203T100000Z-production",
            serde_json::json!({ "server": { "database": "app", "role": "o", "server_version": "16", "server_version_num": 160000, "system_identifier": "7", "rehearsal_cluster": false } }),
        );
        run(
            &root,
            "20261204T100000Z-rehearsal",
            serde_json::json!({ "environment": "rehearsal" }),
        );
        run(
            &root,
            "20261205T100000Z-production",
            serde_json::json!({ "server": { "database": "other", "role": "o", "server_version": "16", "server_version_num": 160000, "system_identifier": "42", "rehearsal_cluster": false } }),
        );
        let entry = crate::evidence::LedgerEntry {
            run: "pkg/20261201T100000Z-production".into(),
            kind: "apply".into(),
            package: "pkg".into(),
            digest: "d1".into(),
            environment: "production".into(),
            status: "succeeded".into(),
            exit_code: 0,
            finished_at: "x".into(),
            sha256sums: "s".into(),
            prev: crate::evidence::GENESIS.into(),
        };
        std::fs::write(
            root.join(crate::evidence::LEDGER),
            serde_json::to_string(&entry).unwrap() + "\n",
        )
        .unwrap();

        let report = status(std::slice::from_ref(&root), None, &live("42"));
        let names: Vec<String> = report
            .runs
            .iter()
            .map(|r| r.run.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "20261201T100000Z-production",
                "20261201T110000Z-production-rollback",
                "20261202T100000Z-production"
            ]
        );
        assert_eq!(report.runs[0].run, applied);
        assert!(report.runs[0].rolled_back());
        assert!(report.runs[0].in_ledger);
        assert!(!report.runs[2].rolled_back());
        assert!(!report.runs[2].in_ledger);
        assert_eq!(report.runs[2].outcome, RunStatus::Running);
        assert!(
            status(std::slice::from_ref(&root), Some("another"), &live("42"))
                .runs
                .is_empty()
        );
    }
}
