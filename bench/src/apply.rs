//! apply-end-to-end: the reference package on the fixture. sluice apply (without the approvals and
//! rehearsal gates) against the seed's command plan C-01…C-08 as a shell script: pg_dump,
//! sha256sum, the schema dump, the state probe and updated_at CSV, the checksum test, the
//! preflight and verification queries through psql, psql -f of the migration, the post schema
//! dump with diff, the post CSV with diff.

use crate::harness::{err, median, report, seconds, Bench, Outcome, Result};
use sluice::package::{Check, CheckBody};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Drops `directus` and makes it again from the fixture template.
pub fn fresh_target(bench: &Bench) -> Result<String> {
    let mut admin = bench.client("postgres")?;
    admin
        .batch_execute("DROP DATABASE IF EXISTS directus WITH (FORCE)")
        .map_err(err("drop"))?;
    admin
        .batch_execute("CREATE DATABASE directus TEMPLATE directus_template OWNER workflow_admin")
        .map_err(err("copy the template"))?;
    Ok(bench.cluster.conninfo("directus", "workflow_admin"))
}

/// Loads the fixture once and keeps it as a template database.
pub fn prepare_template(bench: &Bench) -> Result<()> {
    let mut admin = bench.client("postgres")?;
    if admin
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = 'directus_template'",
            &[],
        )
        .map_err(err("query"))?
        .is_some()
    {
        return Ok(());
    }
    sluice::reference::prepare_target(&bench.cluster).map_err(err("fixture"))?;
    admin
        .batch_execute("CREATE DATABASE directus_template TEMPLATE directus")
        .map_err(err("template"))?;
    Ok(())
}

/// The reference package, as sluice applies it in the benchmark: no approvals or rehearsal
/// (they are about people, not speed), pinned to the bench server's major.
pub fn package(bench: &Bench, lock_timeout_ms: Option<(u64, u32)>) -> Result<PathBuf> {
    let dir = bench
        .scratch
        .path()
        .join(format!("pkg-{}", lock_timeout_ms.map_or(0, |l| l.0)));
    if dir.exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).map_err(err("package dir"))?;
    sluice::reference::write_package(&dir).map_err(err("write package"))?;
    let path = dir.join("sluice.toml");
    let mut text = std::fs::read_to_string(&path).map_err(err("read manifest"))?;
    text = text
        .replacen(
            "server_major = 16",
            &format!("server_major = {}", bench.cluster.binaries().major),
            1,
        )
        .replacen(
            "[rehearsal]\nrequired = true",
            "[rehearsal]\nrequired = false",
            1,
        )
        .replacen("required = 2", "required = 0", 1);
    if let Some((ms, retries)) = lock_timeout_ms {
        text = text
            .replacen(
                "lock_timeout_ms = 5000",
                &format!("lock_timeout_ms = {ms}"),
                1,
            )
            .replacen("lock_retries = 3", &format!("lock_retries = {retries}"), 1);
    }
    std::fs::write(&path, text).map_err(err("write manifest"))?;
    Ok(dir)
}

pub fn sluice_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(err("self"))?;
    let sluice = exe.with_file_name("sluice");
    if sluice.exists() {
        Ok(sluice)
    } else {
        Err(format!(
            "{} not found: build it with cargo build --release -p sluice-cli",
            sluice.display()
        ))
    }
}

fn checks_sql(checks: &[Check]) -> String {
    checks
        .iter()
        .filter_map(|c| match &c.body {
            CheckBody::Sql { sql, .. } => Some(format!(
                "\\echo {}\n{};\n",
                c.id,
                sql.trim().trim_end_matches(';')
            )),
            CheckBody::CoveredBy { .. } => None,
        })
        .collect()
}

/// The seed's command plan as a script, run against a fresh copy of the fixture.
fn seed_script(pkg: &sluice::package::Package, dir: &Path) -> Result<String> {
    std::fs::write(dir.join("preflight.sql"), checks_sql(&pkg.preflight)).map_err(err("write"))?;
    std::fs::write(dir.join("verify_alpha.sql"), checks_sql(&pkg.verify)).map_err(err("write"))?;
    std::fs::write(dir.join("r2_phase_alpha.sql"), &pkg.migration.file.bytes)
        .map_err(err("write"))?;
    std::fs::write(
        dir.join("state_probe.sql"),
        "SELECT count(*) FROM public.tac_logical_unit; SELECT count(*) FROM sandbox_tac.logical_unit;
         SELECT count(*) FROM pg_tables WHERE schemaname = 'cutter_governance';
         SELECT to_regclass('cutter_governance.canonical_address_alias');
         SELECT count(*) FROM information_schema.columns WHERE column_name IN ('authority', 'canonical_address_format_version');
         SELECT max(updated_at) FROM public.tac_logical_unit;",
    )
    .map_err(err("write"))?;
    Ok(format!(
        r#"DEST=run_$RANDOM$RANDOM; mkdir -p $DEST/schema; STAMP=$(date -u +%Y%m%dT%H%M%SZ)
export PGUSER=workflow_admin PGDATABASE=directus
# C-01 fresh backup, C-02 checksum and freshness stamp
pg_dump -F c -Z 6 -f $DEST/phase_alpha_prod_$STAMP.dump
pg_restore --list $DEST/phase_alpha_prod_$STAMP.dump > /dev/null
sha256sum $DEST/phase_alpha_prod_$STAMP.dump >> $DEST/SHA256SUMS
date -u +%s > $DEST/backup_epoch.txt
# C-03 pre schema snapshot
pg_dump --schema-only --no-owner --no-privileges > $DEST/schema/predll_schema_prod_$STAMP.sql
sha256sum $DEST/schema/predll_schema_prod_$STAMP.sql >> $DEST/SHA256SUMS
# C-04 state probe and updated_at capture
psql -X -f state_probe.sql > $DEST/state_pre.txt
psql -XtAc "COPY (SELECT id, updated_at FROM public.tac_logical_unit ORDER BY id) TO STDOUT WITH CSV HEADER" > $DEST/schema/prod_pre_updated_at_$STAMP.csv
# C-05 checksum of the frozen DDL
test "$(sha256sum r2_phase_alpha.sql | cut -d' ' -f1)" = "{sha}"
# C-06 preflight
psql -X -v ON_ERROR_STOP=1 -tA -f preflight.sql > $DEST/preflight.txt
# C-07 the migration
psql -X -v ON_ERROR_STOP=1 --echo-errors -f r2_phase_alpha.sql > $DEST/migration.txt
# C-08 verification, post schema dump and diff, post updated_at capture and diff
psql -X -v ON_ERROR_STOP=1 -tA -f verify_alpha.sql > $DEST/verify.txt
pg_dump --schema-only --no-owner --no-privileges > $DEST/schema/postddl_schema_prod_$STAMP.sql
{{ diff $DEST/schema/predll_schema_prod_$STAMP.sql $DEST/schema/postddl_schema_prod_$STAMP.sql > $DEST/schema.diff || test $? -eq 1; }}
psql -XtAc "COPY (SELECT id, updated_at FROM public.tac_logical_unit ORDER BY id) TO STDOUT WITH CSV HEADER" > $DEST/schema/prod_post_updated_at_$STAMP.csv
{{ diff $DEST/schema/prod_pre_updated_at_$STAMP.csv $DEST/schema/prod_post_updated_at_$STAMP.csv || test $? -eq 1; }} | grep -c '^>' > $DEST/rows_changed.txt
"#,
        sha = pkg.migration.file.sha256
    ))
}

/// With SLUICE_BENCH_KEEP=DIR, the first run's evidence is copied there (the step timings in its
/// run.json say where sluice's time goes).
fn keep_evidence(bench: &Bench, run: usize) -> Result<()> {
    let Some(keep) = std::env::var_os("SLUICE_BENCH_KEEP").filter(|_| run == 0) else {
        return Ok(());
    };
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(bench.scratch.path().join("evidence-0"))
        .arg(keep)
        .output()
        .map_err(err("cp"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "SLUICE_BENCH_KEEP: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

pub fn run(bench: &Bench) -> Result<Outcome> {
    prepare_template(bench)?;
    let dir = package(bench, None)?;
    let pkg = sluice::package::Package::load(&dir).map_err(err("package"))?;
    let script = seed_script(&pkg, bench.scratch.path())?;
    let sluice = sluice_binary()?;
    let (mut ours, mut theirs, mut checks) = (Vec::new(), Vec::new(), 0);
    for i in 0..bench.runs {
        let target = fresh_target(bench)?;
        let started = Instant::now();
        let out = std::process::Command::new(&sluice)
            .arg("apply")
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
            .arg(bench.scratch.path().join(format!("evidence-{i}")))
            .output()
            .map_err(err("sluice"))?;
        ours.push(seconds(started));
        if !out.status.success() {
            return Err(format!(
                "sluice apply failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        checks = pkg.preflight.len() + pkg.verify.len();
        keep_evidence(bench, i)?;
        fresh_target(bench)?;
        theirs.push(bench.timed_shell("directus", &script)?);
    }
    Ok(report(
        "apply-end-to-end",
        median(ours),
        median(theirs),
        "≤ 1.0",
        format!("gates=15 checks={checks} sluice_adds=identity,scope,lock,catalog-diff,row-counts,probe-stats,evidence-hashes"),
    ))
}
