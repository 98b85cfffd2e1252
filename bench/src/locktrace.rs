//! lock-trace-overhead (issue #17): the traced migration (what `sluice rehearse` runs) against
//! the same migration untraced (what `sluice apply` runs), on fresh copies of the same
//! database: the reference migration on the fixture, and a change of a table of 1M rows (100k at
//! small scale). The figure is the whole `migration::run_single`, the tracer's relation map
//! before BEGIN and its finish after COMMIT included.

use crate::harness::{err, median, report, Bench, Outcome, Result};
use sluice::migration::{self, MigrationRun};
use sluice::source::SourceFile;
use sluice::sql::names::SearchPath;
use sluice::sql::transaction::{self, TransactionMode};
use std::time::Instant;

const BIG_CHANGE: &str = "ALTER TABLE public.big ADD COLUMN flag boolean NOT NULL DEFAULT false;
UPDATE public.big SET n = n + 1 WHERE id % 10 = 0;
CREATE INDEX big_n ON public.big (n);
ALTER TABLE public.big ALTER COLUMN n TYPE bigint;
SELECT count(*) FROM public.big WHERE flag;";

/// One run of `sql` on `conninfo`; its wall time and, when traced, the probes' share.
fn timed(conninfo: &str, sql: &str, trace: bool) -> Result<(f64, f64)> {
    let file = sluice::sql::parse_file(SourceFile::new("m.sql", sql)).map_err(err("parse"))?;
    let plan = transaction::plan(&file.statements, TransactionMode::Single);
    let path = SearchPath::default();
    let spec = MigrationRun {
        source: &file.source,
        statements: &plan.statements,
        expect: None,
        lock_timeout_ms: 5000,
        statement_timeout_ms: 600_000,
        lock_retries: 0,
        trace,
        search_path: &path,
    };
    let mut client =
        postgres::Client::connect(conninfo, postgres::NoTls).map_err(err("connect"))?;
    let started = Instant::now();
    let report = migration::run_single(&mut client, None, &spec, &|_| {});
    let took = started.elapsed().as_secs_f64();
    if !report.committed || report.failure.is_some() {
        return Err(format!("migration failed: {:?}", report.failure));
    }
    let probes = report.trace.map_or(0.0, |t| t.tracer.probe_us as f64 / 1e6);
    Ok((took, probes))
}

/// Copies `template` to a fresh database and returns its conninfo.
fn fresh(bench: &Bench, template: &str, name: &str, owner: &str) -> Result<String> {
    let mut admin = bench.client("postgres")?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .map_err(err("drop"))?;
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {name} TEMPLATE {template} OWNER {owner}"
        ))
        .map_err(err("copy"))?;
    Ok(bench.cluster.conninfo(name, owner))
}

fn big_template(bench: &Bench, rows: u64) -> Result<()> {
    let mut admin = bench.client("postgres")?;
    admin
        .batch_execute("DROP DATABASE IF EXISTS big_template WITH (FORCE)")
        .map_err(err("drop"))?;
    admin
        .batch_execute("CREATE DATABASE big_template")
        .map_err(err("create"))?;
    let mut c = bench.client("big_template")?;
    c.batch_execute(&format!(
        "CREATE TABLE public.big (id bigint PRIMARY KEY, n int NOT NULL, note text);
         INSERT INTO public.big SELECT g, g % 1000, md5(g::text) FROM generate_series(1, {rows}) g;"
    ))
    .map_err(err("load"))?;
    c.batch_execute("VACUUM ANALYZE public.big")
        .map_err(err("vacuum"))?;
    Ok(())
}

/// Alternates untraced and traced runs on fresh copies; medians of each.
fn compare(
    bench: &Bench,
    runs: usize,
    template: &str,
    owner: &str,
    sql: &str,
) -> Result<(f64, f64, f64)> {
    let (mut traced, mut untraced, mut probes) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let db = fresh(bench, template, "trace_run", owner)?;
        untraced.push(timed(&db, sql, false)?.0);
        let db = fresh(bench, template, "trace_run", owner)?;
        let (took, probe) = timed(&db, sql, true)?;
        traced.push(took);
        probes.push(probe);
    }
    Ok((median(traced), median(untraced), median(probes)))
}

pub fn run(bench: &Bench) -> Result<Vec<Outcome>> {
    crate::apply::prepare_template(bench)?;
    let reference = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/phase-alpha/sql/phase-alpha-r2.sql"),
    )
    .map_err(err("reference migration"))?;
    let runs = bench.runs.max(3) * 3;
    let (traced, untraced, probes) = compare(
        bench,
        runs,
        "directus_template",
        sluice::reference::ROLE,
        &reference,
    )?;
    let first = report(
        "lock-trace-overhead-reference",
        traced,
        untraced,
        "report",
        format!(
            "statements=13 probes_inside_transaction={:.1}ms runs={runs}",
            probes * 1000.0
        ),
    );
    let rows: u64 = if bench.full { 1_000_000 } else { 100_000 };
    big_template(bench, rows)?;
    let runs = bench.runs.max(3);
    let owner = bench.cluster.superuser().to_string();
    let (traced, untraced, probes) = compare(bench, runs, "big_template", &owner, BIG_CHANGE)?;
    let second = report(
        "lock-trace-overhead-1m",
        traced,
        untraced,
        "report",
        format!(
            "rows={rows} statements=5 probes_inside_transaction={:.1}ms runs={runs}",
            probes * 1000.0
        ),
    );
    Ok(vec![first, second])
}
