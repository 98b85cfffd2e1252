//! Non-atomic changes (`transaction = "none"`, SPEC §4 and §8) against a real server: a failure
//! after a statement committed exits 5 and says what committed and what was left INVALID; the
//! rollback of such a run is gated, allowed, and runs statement by statement.
mod support;

use sluice::digest::sha256_hex;
use support::*;

const MIGRATION: &str = "\
CREATE INDEX CONCURRENTLY ix_dup_id ON public.dup (id);
CREATE UNIQUE INDEX CONCURRENTLY ux_dup_v ON public.dup (v);
SELECT count(*) AS indexes FROM pg_catalog.pg_indexes WHERE tablename = 'dup';
";

const ROLLBACK: &str = "\
DROP INDEX CONCURRENTLY IF EXISTS public.ux_dup_v;
DROP INDEX CONCURRENTLY IF EXISTS public.ix_dup_id;
";

/// A package of two concurrent index builds on `public.dup`, no approvals or rehearsal needed.
fn package(dir: &std::path::Path, major: u32) {
    std::fs::create_dir_all(dir.join("sql")).unwrap();
    std::fs::write(dir.join("sql/migration.sql"), MIGRATION).unwrap();
    std::fs::write(dir.join("sql/rollback.sql"), ROLLBACK).unwrap();
    let manifest = format!(
        r#"[package]
id = "dup-indexes"
revision = "r1"
title = "Two indexes on public.dup, built concurrently"
summary = "Indexes without blocking writes."
non_scope = ["no data change"]

[target]
server_major = {major}
search_path = "public"

[migration]
file = "sql/migration.sql"
sha256 = "{}"
transaction = "none"
lock_timeout_ms = 5000
statement_timeout_ms = 0
lock_retries = 0

[migration.expect]
indexes = 2

[scope]
operations = ["create_index public.ix_dup_id", "create_index public.ux_dup_v"]

[[verify]]
id = "V-1"
title = "both indexes are valid"
sql = "SELECT count(*) FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid WHERE c.relname IN ('ix_dup_id', 'ux_dup_v') AND i.indisvalid"
expect = 2

[backup]
required = true
max_age_minutes = 60
compress = 1

[schema_diff]
allow_removed = false

[rollback]
file = "sql/rollback.sql"
sha256 = "{}"

[approvals]
required = 0

[rehearsal]
required = false
"#,
        sha256_hex(MIGRATION.as_bytes()),
        sha256_hex(ROLLBACK.as_bytes())
    );
    std::fs::write(dir.join("sluice.toml"), manifest).unwrap();
}

fn indexes(conninfo: &str) -> Vec<(String, bool)> {
    let mut c = postgres::Client::connect(conninfo, postgres::NoTls).unwrap();
    c.query(
        "SELECT c.relname::text, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE i.indrelid = 'public.dup'::regclass ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[test]
fn a_failure_after_a_committed_statement_exits_5_and_the_gated_rollback_undoes_it() {
    let (cluster, conninfo) = own_fixture_target();
    let mut c = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    // duplicates in v: the unique index cannot be built
    c.batch_execute(
        "CREATE TABLE public.dup (id int, v int); INSERT INTO public.dup SELECT g, g % 10 FROM generate_series(1, 100) g",
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pkg");
    package(&dir, cluster.binaries().major);
    // not ./evidence: the rollback runs in tmp, where ./evidence would be its old default
    let evidence = tmp.path().join("apply-evidence");

    let assert = sluice()
        .arg("apply")
        .arg(&dir)
        .args([
            "--target",
            &conninfo,
            "--environment",
            "production",
            "--operator",
            "carol",
            "--yes",
            "--evidence",
        ])
        .arg(&evidence)
        .assert()
        .code(5);
    let stderr = stderr_of(&assert);
    assert!(stderr.contains("error[migration-atomic]"), "{stderr}");
    assert!(
        stderr.contains("statement 2 of 3 failed after statement 1 COMMITTED"),
        "{stderr}"
    );
    assert!(stderr.contains("left INVALID: public.ux_dup_v"), "{stderr}");
    assert_eq!(
        indexes(&conninfo),
        [
            ("ix_dup_id".to_string(), true),
            ("ux_dup_v".to_string(), false)
        ]
    );

    let run_dir = std::fs::read_dir(evidence.join("dup-indexes"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let run = run_json(&run_dir);
    assert_eq!(run["exit_code"], 5);
    assert_eq!(run["migration_committed"], true);
    let statements = run["migration"]["statements"].as_array().unwrap();
    assert_eq!(statements.len(), 2);
    assert_eq!(statements[0]["committed"], true);
    assert!(statements[0]["at"]
        .as_str()
        .unwrap()
        .ends_with("sql/migration.sql:1:1"));
    assert_eq!(statements[1]["committed"], false);
    assert_eq!(
        run["migration"]["invalid_indexes"],
        serde_json::json!(["public.ux_dup_v"])
    );
    assert_eq!(
        run["migration"]["attempts"][0]["outcome"],
        "partly-committed"
    );
    let report = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    assert!(
        report
            .contains("PARTLY COMMITTED (1 statement(s) committed), left INVALID: public.ux_dup_v"),
        "{report}"
    );
    assert!(
        report.contains("--failed-check migration-atomic"),
        "{report}"
    );

    // the rollback: triggered by the failed statement, statement by statement (DROP INDEX
    // CONCURRENTLY cannot run in a transaction), its evidence beside the apply's
    let rollback = |check: &str| {
        sluice()
            .arg("rollback")
            .arg(&dir)
            .args([
                "--target",
                &conninfo,
                "--environment",
                "production",
                "--operator",
                "carol",
                "--yes",
            ])
            .arg("--run")
            .arg(&run_dir)
            .args(["--failed-check", check])
            .current_dir(tmp.path())
            .assert()
    };
    let refused = rollback("V-2");
    let stderr = stderr_of(&refused.code(3));
    assert!(
        stderr.contains("or migration-atomic for a partly committed"),
        "{stderr}"
    );
    let assert = rollback("migration-atomic").success();
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("the migration failed after part of it committed"),
        "{stderr}"
    );
    assert!(indexes(&conninfo).is_empty(), "{:?}", indexes(&conninfo));
    let runs = std::fs::read_dir(evidence.join("dup-indexes"))
        .unwrap()
        .count();
    assert_eq!(
        runs, 3,
        "apply, refused rollback, rollback: all beside the apply's"
    );
    let ledger = std::fs::read_to_string(evidence.join("ledger.jsonl")).unwrap();
    assert_eq!(ledger.lines().count(), 3, "one ledger: {ledger}");
    assert!(!tmp.path().join("evidence").exists());
}

#[test]
fn a_non_atomic_migration_that_succeeds_says_how_it_ran() {
    let (cluster, conninfo) = own_fixture_target();
    let mut c = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    c.batch_execute("CREATE TABLE public.dup (id int, v int); INSERT INTO public.dup SELECT g, g FROM generate_series(1, 100) g")
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pkg");
    package(&dir, cluster.binaries().major);
    let assert = sluice()
        .arg("apply")
        .arg(&dir)
        .args([
            "--target",
            &conninfo,
            "--environment",
            "production",
            "--operator",
            "carol",
            "--yes",
            "--evidence",
        ])
        .arg(tmp.path().join("evidence"))
        .assert()
        .success();
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("3 statement(s) committed one by one (transaction = \"none\": not atomic)"),
        "{stderr}"
    );
    assert!(!stderr.contains("attempt(s)"), "{stderr}");
}
