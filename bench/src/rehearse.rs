//! rehearse-at-scale: `sluice rehearse` of the backup benchmark's one-column package on the
//! same large table (it dumps, restores into a throwaway cluster set up for a restore, and runs
//! apply → verify → rollback → schema equal → re-apply there) against the hand procedure: the
//! same dump (`pg_dump -F d -j N`, the package's compression), `initdb` + `pg_ctl start` of a
//! fresh cluster (sluice's throwaway-cluster settings, fsync off — kinder to the hand procedure
//! than a default server), `pg_restore -j N`, and the migration with `psql -f`. sluice chooses
//! how it restores (one table holds all the data here: it restores the dump while it is
//! written); a second line reports the same rehearsal forced to restore after the dump.

use crate::apply::sluice_binary;
use crate::backup::{self, DB, MIGRATION};
use crate::harness::{err, median, report, seconds, Bench, Outcome, Result};
use sluice::cluster::{Cluster, ClusterOptions};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// `sluice rehearse`, restoring as `restore` says (`auto`, `streamed`, `after-dump`).
fn rehearse(bench: &Bench, sluice: &Path, pkg: &Path, restore: &str) -> Result<f64> {
    let started = Instant::now();
    let out = Command::new(sluice)
        .arg("rehearse")
        .arg(pkg)
        .arg("--target")
        .arg(bench.conninfo(DB))
        .args(["--restore", restore])
        .arg("--evidence")
        .arg(bench.scratch.path().join("evidence-rehearse"))
        .output()
        .map_err(err("sluice"))?;
    let took = seconds(started);
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        if line.contains("ms)") && !line.contains("[") {
            eprintln!("rehearse-at-scale: {}", line.trim());
            if let Some((_, run_dir)) = line.split_once("evidence ") {
                print_slow_steps(Path::new(run_dir.trim()));
            }
        }
    }
    if !out.status.success() {
        return Err(format!(
            "sluice rehearse failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(took)
}

/// The steps of a rehearsal apply that took 20 ms or more, from its run.json: where the time
/// goes beside the restore.
fn print_slow_steps(run_dir: &Path) {
    let Ok(text) = std::fs::read_to_string(run_dir.join("run.json")) else {
        return;
    };
    let Ok(record) = serde_json::from_str::<serde_json::Value>(&text) else {
        return;
    };
    let steps = record["steps"].as_array().cloned().unwrap_or_default();
    let slow: Vec<String> = steps
        .iter()
        .filter(|s| s["duration_ms"].as_u64().unwrap_or(0) >= 20)
        .map(|s| {
            format!(
                "{} {} ms",
                s["name"].as_str().unwrap_or("?"),
                s["duration_ms"]
            )
        })
        .collect();
    eprintln!(
        "rehearse-at-scale:   steps of 20 ms or more: {}",
        slow.join(", ")
    );
}

/// The hand procedure, timed from the dump to the migration's end.
fn by_hand(bench: &Bench, jobs: usize) -> Result<f64> {
    let dump = bench.scratch.path().join("hand.dir");
    let _ = std::fs::remove_dir_all(&dump);
    std::fs::write(bench.scratch.path().join("migration.sql"), MIGRATION)
        .map_err(err("write the migration"))?;
    let started = Instant::now();
    bench.timed_shell(
        DB,
        &format!(
            "pg_dump -F d -j {jobs} --compress={} -f hand.dir",
            backup::compression_arg()
        ),
    )?;
    let mut cluster = Cluster::start(ClusterOptions::new(bench.cluster.binaries().clone()))
        .map_err(err("fresh cluster"))?;
    let path = format!(
        "{}:{}",
        bench.tools.bindir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = format!(
        "createdb {DB}
         # pg_restore 18 into an older server: its SET transaction_timeout fails, nothing else may
         pg_restore -j {jobs} -d {DB} hand.dir 2> restore.err \\
           || ! grep -v -e transaction_timeout -e 'errors ignored on restore' restore.err | grep -q .
         psql -X -v ON_ERROR_STOP=1 -q -d {DB} -f migration.sql > /dev/null"
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env("PATH", path)
        .env("PGHOST", cluster.socket_dir())
        .env("PGPORT", cluster.port().to_string())
        .env("PGUSER", cluster.superuser())
        .current_dir(bench.scratch.path())
        .output()
        .map_err(err("bash"))?;
    let took = seconds(started);
    cluster.stop().map_err(err("stop"))?;
    std::fs::remove_dir_all(&dump).map_err(err("remove the dump"))?;
    if !out.status.success() {
        return Err(format!(
            "hand procedure failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(took)
}

/// The goal line (`sluice rehearse` as it chooses: here, one table holding all the data, the
/// streamed restore), and beside it, for the record, the same rehearsal forced to restore after
/// the dump (`--restore after-dump`) against the same hand runs.
pub fn run(bench: &Bench) -> Result<Vec<Outcome>> {
    let rows = backup::prepare(bench)?;
    let pkg = backup::package(bench)?;
    let sluice = sluice_binary()?;
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (mut ours, mut after_dump, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..bench.runs {
        ours.push(rehearse(bench, &sluice, &pkg, "auto")?);
        theirs.push(by_hand(bench, jobs)?);
        after_dump.push(rehearse(bench, &sluice, &pkg, "after-dump")?);
    }
    let figures = format!(
        "rows={rows} jobs={jobs} compress={} sluice_does=dump,restore,apply,verify,rollback,schema-equal,re-apply hand_does=dump,initdb,restore,migration",
        backup::compression_arg()
    );
    let theirs = median(theirs);
    Ok(vec![
        report(
            "rehearse-at-scale",
            median(ours),
            theirs,
            "≤ 1.0",
            format!("restore=auto {figures}"),
        ),
        report(
            "rehearse-at-scale-after-dump",
            median(after_dump),
            theirs,
            "report",
            format!("restore=after-dump {figures}"),
        ),
    ])
}
