//! schema-snapshot-diff: a catalog of N tables (8 columns, 2 indexes and a foreign key each) and a
//! change that adds 10 columns and 2 tables. sluice: pre snapshot + post snapshot (reading again
//! only the tables whose catalog rows changed) + structural diff, on two sessions as `sluice
//! apply` takes them. Baseline (the seed's C-03 / V-α-16): `pg_dump --schema-only` before and after + `diff`.

use crate::harness::{err, median, report, seconds, Bench, Outcome, Result};
use sluice::catalog::{self, ObjectKind, SnapshotOptions};
use std::time::Instant;

const DB: &str = "bench_schema";

fn build(bench: &Bench, tables: usize) -> Result<()> {
    let mut admin = bench.client("postgres")?;
    admin
        .batch_execute(&format!("CREATE DATABASE {DB}"))
        .map_err(err("create database"))?;
    let mut c = bench.client(DB)?;
    c.batch_execute("CREATE SCHEMA app; CREATE TABLE app.parent (id bigint PRIMARY KEY)")
        .map_err(err("build the catalog"))?;
    // alone in its query: a DO that commits cannot run inside an implicit transaction block
    c.batch_execute(&format!(
        "DO $$ BEGIN FOR i IN 1..{tables} LOOP
           EXECUTE format('CREATE TABLE app.t_%s (id bigint PRIMARY KEY, parent_id bigint REFERENCES app.parent(id),
                 c1 integer, c2 text, c3 timestamptz, c4 numeric, c5 boolean, c6 text)', i);
           EXECUTE format('CREATE INDEX ix_t_%s_c1 ON app.t_%s (c1)', i, i);
           -- creating takes locks on every new table: commit by the hundred, so that the
           -- server's default max_locks_per_transaction is enough
           IF i % 100 = 0 THEN COMMIT; END IF;
         END LOOP; END $$;"
    ))
    .map_err(err("build the catalog"))?;
    // a production catalog is vacuumed and its rows' hint bits are set: measure that state, not
    // the first reads after ten thousand tables were created in one transaction
    c.batch_execute("VACUUM ANALYZE")
        .map_err(err("vacuum the catalog"))
}

const CHANGE: &str = "DO $$ BEGIN FOR i IN 1..10 LOOP
       EXECUTE format('ALTER TABLE app.t_%s ADD COLUMN extra text', i);
     END LOOP; END $$;
     CREATE TABLE app.added_one (a integer, b text);
     CREATE TABLE app.added_two (a integer, b text);";

const UNDO: &str = "DO $$ BEGIN FOR i IN 1..10 LOOP
       EXECUTE format('ALTER TABLE app.t_%s DROP COLUMN extra', i);
     END LOOP; END $$;
     DROP TABLE app.added_one; DROP TABLE app.added_two;";

/// The top-level objects the diff names: added tables, and added columns of tables that existed.
fn named_objects(diff: &catalog::SchemaDiff) -> usize {
    let tables: Vec<&str> = diff
        .added
        .iter()
        .filter(|o| o.kind == ObjectKind::Table)
        .map(|o| o.key.as_str())
        .collect();
    let columns = diff
        .added
        .iter()
        .filter(|o| o.kind == ObjectKind::Column)
        .filter(|o| !tables.iter().any(|t| o.key.starts_with(&format!("{t}."))))
        .count();
    tables.len() + columns
}

pub fn run(bench: &Bench) -> Result<Outcome> {
    let tables = if bench.full { 10_000 } else { 1_000 };
    eprintln!("schema-snapshot-diff: building {tables} tables…");
    build(bench, tables)?;
    let mut c = bench.client(DB)?;
    let (mut ours, mut theirs, mut named, mut objects) = (Vec::new(), Vec::new(), 0, 0);
    for _ in 0..bench.runs {
        // fresh sessions, as `sluice apply` opens them: the working one and the second one
        // that shares the snapshot's queries (their catalog caches start cold)
        let started = Instant::now();
        let (mut work, mut helper) = (bench.client(DB)?, bench.client(DB)?);
        let options = SnapshotOptions::new(&[])
            .helper(Some(&mut helper))
            .record_baseline();
        let taken = catalog::snapshot(&mut work, options).map_err(err("pre snapshot"))?;
        let (pre, baseline) = (taken.snapshot, taken.baseline.ok_or("no baseline")?);
        let mut elapsed = seconds(started);
        c.batch_execute(CHANGE).map_err(err("change"))?;
        let started = Instant::now();
        let options = SnapshotOptions::new(&[])
            .helper(Some(&mut helper))
            .since(&pre, &baseline);
        let post = catalog::snapshot(&mut work, options)
            .map_err(err("post snapshot"))?
            .snapshot;
        let diff = catalog::diff(&pre, &post).map_err(err("diff"))?;
        elapsed += seconds(started);
        named = named_objects(&diff);
        objects = pre.object_count();
        ours.push(elapsed);
        // not timed: the post snapshot that kept the unchanged tables' objects is the whole one
        let options = SnapshotOptions::new(&[]).helper(Some(&mut helper));
        let whole = catalog::snapshot(&mut work, options)
            .map_err(err("whole snapshot"))?
            .snapshot;
        if whole != post {
            return Err("the post snapshot differs from a whole snapshot".to_string());
        }
        c.batch_execute(UNDO).map_err(err("undo"))?;

        let pre_t = bench.timed_shell(
            DB,
            "pg_dump --schema-only --no-owner --no-privileges > pre.sql",
        )?;
        c.batch_execute(CHANGE).map_err(err("change"))?;
        let post_t = bench.timed_shell(DB, "pg_dump --schema-only --no-owner --no-privileges > post.sql && { diff pre.sql post.sql > schema.diff || test $? -eq 1; }")?;
        theirs.push(pre_t + post_t);
        c.batch_execute(UNDO).map_err(err("undo"))?;
    }
    if named != 12 {
        return Err(format!("the diff named {named} objects, not the 12 added"));
    }
    Ok(report(
        "schema-snapshot-diff",
        median(ours),
        median(theirs),
        "≤ 0.25 (full)",
        format!("tables={tables} objects={objects} named_added={named}"),
    ))
}
