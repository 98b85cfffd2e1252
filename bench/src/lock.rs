//! lock-safety: pgbench clients reading and updating the migrated table while a blocker session
//! holds a conflicting lock; the change applied with sluice (lock_timeout 2 s) and with `psql -f`
//! of the same SQL. The figure is pgbench's worst latency while the change waits.

use crate::apply::{fresh_target, package, prepare_template, sluice_binary};
use crate::harness::{err, report, Bench, Outcome, Result};
use std::time::{Duration, Instant};

const LOAD: &str = "\\set n random(0, 85)
SELECT updated_at FROM public.tac_logical_unit ORDER BY id OFFSET :n LIMIT 1;
UPDATE public.tac_logical_unit SET doc_code = doc_code WHERE id = (SELECT id FROM public.tac_logical_unit ORDER BY id OFFSET :n LIMIT 1);
";

/// Runs the change while the load and the blocker run; pgbench's worst latency in seconds and
/// how long the change itself took.
fn under_load(
    bench: &Bench,
    blocker_s: u64,
    change: &mut std::process::Command,
) -> Result<(f64, f64, bool)> {
    let target = fresh_target(bench)?;
    let logs = tempfile::tempdir_in(bench.scratch.path()).map_err(err("logs"))?;
    let script = logs.path().join("load.sql");
    std::fs::write(&script, LOAD).map_err(err("write"))?;
    let mut blocker =
        postgres::Client::connect(&target, postgres::NoTls).map_err(err("blocker"))?;
    blocker
        .batch_execute("BEGIN; SELECT count(*) FROM public.tac_logical_unit;")
        .map_err(err("blocker lock"))?;
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(blocker_s));
        let _ = blocker.batch_execute("ROLLBACK");
    });
    let mut load = std::process::Command::new(bench.tools.bindir.join("pgbench"))
        .args([
            "-n",
            "-c",
            "4",
            "-T",
            &(blocker_s + 2).to_string(),
            "--log",
            "--log-prefix",
        ])
        .arg(logs.path().join("tx"))
        .arg("-f")
        .arg(&script)
        .args([
            "-h",
            &bench.cluster.socket_dir().display().to_string(),
            "-p",
            &bench.cluster.port().to_string(),
            "-U",
            "workflow_admin",
            "directus",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(err("pgbench"))?;
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let status = change.status().map_err(err("change"))?;
    let change_s = started.elapsed().as_secs_f64();
    load.wait().map_err(err("pgbench"))?;
    let _ = release.join();
    let mut max_us = 0u64;
    for entry in std::fs::read_dir(logs.path())
        .map_err(err("logs"))?
        .flatten()
    {
        if !entry.file_name().to_string_lossy().starts_with("tx") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).map_err(err("log"))?;
        for line in text.lines() {
            if let Some(us) = line
                .split_whitespace()
                .nth(2)
                .and_then(|v| v.parse::<u64>().ok())
            {
                max_us = max_us.max(us);
            }
        }
    }
    Ok((max_us as f64 / 1e6, change_s, status.success()))
}

pub fn run(bench: &Bench) -> Result<Outcome> {
    prepare_template(bench)?;
    let blocker_s = if bench.full { 30 } else { 8 };
    let retries = if bench.full { 3 } else { 1 };
    let dir = package(bench, Some((2000, retries)))?;
    let sluice = sluice_binary()?;
    let target = bench.cluster.conninfo("directus", "workflow_admin");
    let mut ours = std::process::Command::new(&sluice);
    ours.arg("apply")
        .arg(&dir)
        .args([
            "--target",
            &target,
            "--environment",
            "bench",
            "--operator",
            "bench",
            "--yes",
            "--evidence",
        ])
        .arg(bench.scratch.path().join("evidence-lock"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let (sluice_latency, sluice_wait, committed) = under_load(bench, blocker_s, &mut ours)?;
    if committed {
        return Err("sluice committed while the blocker held its lock".into());
    }
    let mut theirs = bench.shell(
        "directus",
        "PGUSER=workflow_admin psql -X -q -v ON_ERROR_STOP=1 -f migration.sql > /dev/null",
    );
    std::fs::write(
        bench.scratch.path().join("migration.sql"),
        sluice::reference::PACKAGE_FILES[1].1,
    )
    .map_err(err("write"))?;
    let (psql_latency, psql_wait, _) = under_load(bench, blocker_s, &mut theirs)?;
    Ok(report(
        "lock-safety",
        sluice_latency,
        psql_latency,
        "sluice ≤ lock_timeout + 0.5 s",
        format!("blocker={blocker_s}s lock_timeout=2s retries={retries} sluice_gave_up_after={sluice_wait:.1}s psql_waited={psql_wait:.1}s max_latency_s: sluice={sluice_latency:.2} psql={psql_latency:.2}"),
    ))
}
