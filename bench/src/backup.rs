//! backup-at-scale: a table of N rows (id bigint, two md5 texts, a timestamptz, an int — 10 M
//! rows are 1.34 GB at full scale, 1 M at small) and a one-column change. sluice: `sluice apply`
//! end to end with `[backup] format = "directory"`, one job per CPU, no compression (see
//! [`compression`]), every byte read back. Baseline (the seed's C-01/C-02 alone): `pg_dump -F c -Z 6` + `sha256sum`.

use crate::apply::sluice_binary;
use crate::harness::{err, median, report, seconds, Bench, Outcome, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const DB: &str = "bench_backup";

/// The rows of this scale's table.
fn rows(bench: &Bench) -> u64 {
    if bench.full {
        10_000_000
    } else {
        1_000_000
    }
}

/// The table, built once per benchmark run (shared with rehearse-at-scale): its row count.
pub fn prepare(bench: &Bench) -> Result<u64> {
    let rows = rows(bench);
    let built = bench
        .client("postgres")?
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DB])
        .map_err(err("query"))?
        .is_some();
    if !built {
        build(bench, rows)?;
    }
    Ok(rows)
}

/// `pg_dump --compress`'s value for the benchmark's compression.
pub fn compression_arg() -> String {
    sluice::backup::Compression::parse(&compression())
        .map(|c| c.pg_dump_arg())
        .unwrap_or_else(|_| compression())
}

/// Size of the database, bytes.
fn database_bytes(bench: &Bench) -> Result<u64> {
    let size: i64 = bench
        .client(DB)?
        .query_one("SELECT pg_database_size(current_database())", &[])
        .map_err(err("size"))?
        .get(0);
    Ok(size as u64)
}

fn build(bench: &Bench, rows: u64) -> Result<()> {
    let mut admin = bench.client("postgres")?;
    for sql in [
        format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"),
        format!("CREATE DATABASE {DB}"),
    ] {
        admin.batch_execute(&sql).map_err(err("create database"))?;
    }
    let mut c = bench.client(DB)?;
    c.batch_execute(&format!(
        "CREATE TABLE public.big (id bigint PRIMARY KEY, a text, b text, at timestamptz, n integer);
         INSERT INTO public.big
           SELECT g, md5(g::text), md5((g * 7)::text), now() - g * interval '1 second', (g % 1000)::int
           FROM generate_series(1, {rows}) g;"
    ))
    .map_err(err("build the table"))?;
    c.batch_execute("VACUUM ANALYZE public.big")
        .map_err(err("vacuum"))?;
    Ok(())
}

pub const MIGRATION: &str = "ALTER TABLE public.big ADD COLUMN note text;\n\
SELECT count(*) AS note_columns FROM pg_catalog.pg_attribute\n \
WHERE attrelid = 'public.big'::regclass AND attname = 'note' AND NOT attisdropped;\n";
const ROLLBACK: &str = "ALTER TABLE public.big DROP COLUMN note;\n";

/// The dump's compression: `SLUICE_BENCH_BACKUP_COMPRESS`, by default none — the tools at
/// hand have neither lz4 nor zstd, and gzip, even at level 1, is the cap on one table (pg_dump's
/// jobs work table by table).
fn compression() -> String {
    std::env::var("SLUICE_BENCH_BACKUP_COMPRESS").unwrap_or_else(|_| "none".to_string())
}

/// `[backup]`'s format lines: `SLUICE_BENCH_BACKUP_FORMAT` = `custom`, or by default the
/// directory format with one job per CPU.
fn format_lines() -> &'static str {
    match std::env::var("SLUICE_BENCH_BACKUP_FORMAT").as_deref() {
        Ok("custom") => "format = \"custom\"",
        _ => "format = \"directory\"\njobs = 0",
    }
}

/// A one-column package with the backup as a large database needs it.
pub fn package(bench: &Bench) -> Result<PathBuf> {
    let dir = bench.scratch.path().join("pkg-backup");
    std::fs::create_dir_all(dir.join("sql")).map_err(err("package dir"))?;
    let write = |rel: &str, text: &str| {
        std::fs::write(dir.join(rel), text).map_err(err("write the package"))
    };
    write("sql/migration.sql", MIGRATION)?;
    write("sql/rollback.sql", ROLLBACK)?;
    let sha = |text: &str| sluice::digest::sha256_hex(text.as_bytes());
    write(
        "sluice.toml",
        &format!(
            r#"[package]
id = "bench-backup-at-scale"
revision = "r1"
title = "Add public.big.note"
summary = "One nullable column on a large table."
non_scope = ["no data change"]

[target]
search_path = "public"

[migration]
file = "sql/migration.sql"
sha256 = "{}"
transaction = "single"
lock_timeout_ms = 5000
lock_retries = 3

[migration.expect]
note_columns = 1

[scope]
operations = ["add_column public.big.note"]

[[preflight]]
id = "P-1"
title = "no note column yet"
sql = "SELECT count(*) FROM pg_catalog.pg_attribute WHERE attrelid = 'public.big'::regclass AND attname = 'note' AND NOT attisdropped"
expect = 0

[[verify]]
id = "V-1"
title = "the column is there"
sql = "SELECT count(*) FROM pg_catalog.pg_attribute WHERE attrelid = 'public.big'::regclass AND attname = 'note' AND NOT attisdropped"
expect = 1

[backup]
required = true
max_age_minutes = 60
{}
compress = "{}"

[rollback]
file = "sql/rollback.sql"
sha256 = "{}"

[approvals]
required = 0

[rehearsal]
required = false
"#,
            sha(MIGRATION),
            format_lines(),
            compression(),
            sha(ROLLBACK)
        ),
    )?;
    Ok(dir)
}

fn apply(bench: &Bench, sluice: &Path, pkg: &Path, evidence: &Path) -> Result<f64> {
    let started = Instant::now();
    let out = std::process::Command::new(sluice)
        .arg("apply")
        .arg(pkg)
        .arg("--target")
        .arg(bench.conninfo(DB))
        .args(["--environment", "bench", "--operator", "bench", "--yes"])
        .arg("--evidence")
        .arg(evidence)
        .output()
        .map_err(err("sluice"))?;
    let took = seconds(started);
    // where sluice's time goes: the backup step's own line (dump, read-back)
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        if line.contains("backup-restorable") || line.contains("migration-atomic") {
            eprintln!("backup-at-scale: {}", line.trim());
        }
    }
    if !out.status.success() {
        return Err(format!(
            "sluice apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // undo the change for the next run (a dropped column costs nothing to the next dump)
    bench
        .client(DB)?
        .batch_execute(ROLLBACK)
        .map_err(err("undo"))?;
    std::fs::remove_dir_all(evidence).map_err(err("remove the evidence"))?;
    Ok(took)
}

pub fn run(bench: &Bench) -> Result<Outcome> {
    let rows = prepare(bench)?;
    let size = database_bytes(bench)?;
    let pkg = package(bench)?;
    let sluice = sluice_binary()?;
    let baseline =
        "pg_dump -F c -Z 6 -f seed.dump && sha256sum seed.dump > seed.sha256 && rm seed.dump";
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..bench.runs {
        let evidence = bench.scratch.path().join(format!("evidence-backup-{i}"));
        ours.push(apply(bench, &sluice, &pkg, &evidence)?);
        theirs.push(bench.timed_shell(DB, baseline)?);
    }
    let (ours, theirs) = (median(ours), median(theirs));
    let mb = size as f64 / 1_000_000.0;
    let per_100gb_min = ours / size as f64 * 100e9 / 60.0;
    Ok(report(
        "backup-at-scale",
        ours,
        theirs,
        "≤ 0.35",
        format!(
            "{} compress={} rows={rows} database={mb:.0}MB sluice_MBps={:.1} seed_MBps={:.1} sluice_100GB_min={per_100gb_min:.0} jobs={}",
            format_lines().replace('\n', " "),
            compression(),
            mb / ours,
            mb / theirs,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ),
    ))
}
