//! A broken manifest exits 2 and names the file, line and column, and what was expected.
mod support;

use predicates::prelude::*;
use support::*;

/// Runs `sluice lint` and asserts exit 2 with `sluice.toml:LINE:COL` and the message.
fn refused_at(dir: &std::path::Path, line: usize, col: usize, message: &str) {
    let out = sluice().arg("lint").arg(dir).assert().code(2);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.contains(&format!("sluice.toml:{line}:{col}")),
        "want sluice.toml:{line}:{col} in:\n{stderr}"
    );
    assert!(stderr.contains(message), "want `{message}` in:\n{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn unknown_key() {
    let (_tmp, dir) = reference_copy();
    edit_manifest(
        &dir,
        "lock_retries = 3",
        "lock_retries = 3\nlock_retires = 4",
    );
    let line = manifest_line(&dir, "lock_retires");
    refused_at(&dir, line, 1, "unknown key `lock_retires`");
}

#[test]
fn unknown_section() {
    let (_tmp, dir) = reference_copy();
    edit_manifest(&dir, "[rehearsal]", "[rehersal]");
    let line = manifest_line(&dir, "[rehersal]");
    refused_at(
        &dir,
        line,
        2,
        "unknown table `[rehersal]` (did you mean `[rehearsal]`?)",
    );
}

/// `[migraton]` sorts after `[migration.expect]`'s `migration`, which then lacks `file`: the
/// typo must be named, not the missing key of the table it was meant to be.
#[test]
fn misspelt_table_is_named_not_a_missing_key_elsewhere() {
    let (_tmp, dir) = reference_copy();
    edit_manifest(&dir, "[migration]\n", "[migraton]\n");
    let line = manifest_line(&dir, "[migraton]");
    refused_at(
        &dir,
        line,
        2,
        "unknown table `[migraton]` (did you mean `[migration]`?): expected one of the tables [package], [target], [migration], [scope], [[preflight]]",
    );
    let out = sluice().arg("lint").arg(&dir).assert().code(2);
    assert!(
        !stderr_of(&out).contains("missing key"),
        "{}",
        stderr_of(&out)
    );
    // an array of tables and a plain key are named as what they are
    let (_tmp, dir) = reference_copy();
    edit_manifest(&dir, "[[preflight]]", "[[preflght]]");
    let line = manifest_line(&dir, "[[preflght]]");
    refused_at(
        &dir,
        line,
        3,
        "unknown table `[[preflght]]` (did you mean `[[preflight]]`?)",
    );
    let (_tmp, dir) = reference_copy();
    edit_manifest(&dir, "[package]", "colour = 1\n[package]");
    let line = manifest_line(&dir, "colour = 1");
    refused_at(
        &dir,
        line,
        1,
        "unknown key `colour`: expected one of the tables",
    );
}

#[test]
fn missing_file() {
    let (_tmp, dir) = reference_copy();
    edit_manifest(
        &dir,
        "file = \"sql/phase-alpha-r2.sql\"",
        "file = \"sql/nope.sql\"",
    );
    let line = manifest_line(&dir, "sql/nope.sql");
    refused_at(&dir, line, 8, "file not found: `sql/nope.sql`");
}

#[test]
fn path_escaping_with_dotdot() {
    let (_tmp, dir) = reference_copy();
    edit_manifest(
        &dir,
        "file = \"sql/phase-alpha-r2.sql\"",
        "file = \"../outside.sql\"",
    );
    std::fs::write(dir.parent().unwrap().join("outside.sql"), "SELECT 1;").unwrap();
    let line = manifest_line(&dir, "../outside.sql");
    refused_at(&dir, line, 8, "contains `..`");
}

#[test]
fn absolute_path() {
    let (_tmp, dir) = reference_copy();
    edit_manifest(
        &dir,
        "file = \"sql/phase-alpha-r2.sql\"",
        "file = \"/etc/passwd\"",
    );
    let line = manifest_line(&dir, "/etc/passwd");
    refused_at(&dir, line, 8, "absolute path");
}

#[test]
fn symlink_out_of_the_package() {
    let (tmp, dir) = reference_copy();
    let outside = tmp.path().join("outside.sql");
    std::fs::write(&outside, read(&dir, MIGRATION)).unwrap();
    std::fs::remove_file(dir.join(MIGRATION)).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join(MIGRATION)).unwrap();
    let line = manifest_line(&dir, "file = \"sql/phase-alpha-r2.sql\"");
    refused_at(&dir, line, 8, "leads outside the package folder");
}

#[test]
fn bad_sha256_length() {
    let (_tmp, dir) = reference_copy();
    let text = read(&dir, "sluice.toml");
    let sha_line = text
        .lines()
        .find(|l| l.starts_with("sha256 = "))
        .unwrap()
        .to_string();
    edit_manifest(&dir, &sha_line, "sha256 = \"65533e05\"");
    let line = manifest_line(&dir, "sha256 = \"65533e05\"");
    refused_at(&dir, line, 10, "64 hexadecimal characters, got 8");
}

#[test]
fn toml_syntax_error() {
    let (_tmp, dir) = reference_copy();
    edit_manifest(&dir, "revision = \"r2\"", "revision = r2\"");
    let line = manifest_line(&dir, "revision = r2");
    refused_at(&dir, line, 12, "");
}

#[test]
fn wrong_type() {
    let (_tmp, dir) = reference_copy();
    edit_manifest(&dir, "lock_timeout_ms = 5000", "lock_timeout_ms = \"5s\"");
    let line = manifest_line(&dir, "lock_timeout_ms = \"5s\"");
    refused_at(&dir, line, 19, "invalid type");
}

#[test]
fn unknown_scope_operation() {
    let (_tmp, dir) = reference_copy();
    edit_manifest(
        &dir,
        "\"update public.tac_logical_unit\"",
        "\"upsert public.tac_logical_unit\"",
    );
    let line = manifest_line(&dir, "upsert public");
    refused_at(&dir, line, 4, "unknown operation `upsert`");
}

#[test]
fn a_check_that_writes_is_refused_before_anything_runs() {
    let (_tmp, dir) = reference_copy();
    edit_manifest(
        &dir,
        "sql = \"SELECT count(*) FROM public.tac_logical_unit\"",
        "sql = \"WITH d AS (DELETE FROM public.tac_logical_unit RETURNING 1) SELECT count(*) FROM d\"",
    );
    let line = manifest_line(&dir, "WITH d AS (DELETE");
    refused_at(&dir, line, 8, "modifies data");
    edit_manifest(
        &dir,
        "WITH d AS (DELETE FROM public.tac_logical_unit RETURNING 1) SELECT count(*) FROM d",
        "SET ROLE postgres",
    );
    refused_at(&dir, line, 8, "read-only query");
}

#[test]
fn two_statements_in_a_check() {
    let (_tmp, dir) = reference_copy();
    edit_manifest(
        &dir,
        "sql = \"SELECT count(*) FROM public.tac_logical_unit\"",
        "sql = \"SELECT 1; COMMIT\"",
    );
    let line = manifest_line(&dir, "SELECT 1; COMMIT");
    refused_at(&dir, line, 8, "expected one SQL statement, found 2");
}

#[test]
fn a_bad_expectation_type() {
    let (_tmp, dir) = reference_copy();
    edit_manifest(&dir, "expect = 86", "expect = 86.5");
    let line = manifest_line(&dir, "expect = 86.5");
    refused_at(&dir, line, 10, "expected an integer, boolean, string");
}

#[test]
fn covered_by_names_a_real_gate() {
    let (_tmp, dir) = reference_copy();
    edit_manifest(
        &dir,
        "covered_by = \"sql-integrity\"",
        "covered_by = \"sql-integrety\"",
    );
    let line = manifest_line(&dir, "sql-integrety");
    refused_at(&dir, line, 15, "is not a gate");
}

#[test]
fn a_migration_that_is_not_utf8() {
    let (_tmp, dir) = reference_copy();
    let mut bytes = read(&dir, MIGRATION).into_bytes();
    bytes.splice(0..0, b"-- caf\xe9\n".iter().copied());
    let old = read(&dir, MIGRATION);
    std::fs::write(dir.join(MIGRATION), &bytes).unwrap();
    let manifest = read(&dir, "sluice.toml").replace(
        &sluice::digest::sha256_hex(old.as_bytes()),
        &sluice::digest::sha256_hex(&bytes),
    );
    write(&dir, "sluice.toml", &manifest);
    sluice()
        .arg("lint")
        .arg(&dir)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("phase-alpha-r2.sql:1:7"))
        .stderr(predicate::str::contains("not valid UTF-8"));
}

#[test]
fn every_problem_is_listed_not_just_the_first() {
    let (_tmp, dir) = reference_copy();
    edit_manifest(
        &dir,
        "id = \"dot-iu-cutter-v0.2-phase-alpha\"",
        "id = \"Dot IU\"",
    );
    edit_manifest(&dir, "lock_retries = 3", "lock_retries = 1000");
    sluice()
        .arg("lint")
        .arg(&dir)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expected [a-z0-9._-]+"))
        .stderr(predicate::str::contains("lock_retries = 1000"));
}

#[test]
fn a_missing_package_folder() {
    sluice()
        .args(["lint", "/nonexistent/package"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/package"));
}

#[test]
fn a_backup_format_compression_or_jobs_it_cannot_use() {
    let (_tmp, dir) = reference_copy();
    edit_manifest(&dir, "compress = 6", "compress = 6\nformat = \"tape\"");
    let line = manifest_line(&dir, "format = \"tape\"");
    refused_at(&dir, line, 10, "expected \"custom\" or \"directory\"");

    let (_tmp, dir) = reference_copy();
    edit_manifest(&dir, "compress = 6", "compress = \"brotli\"");
    let line = manifest_line(&dir, "compress = \"brotli\"");
    refused_at(&dir, line, 12, "expected a gzip level 0..9");

    let (_tmp, dir) = reference_copy();
    edit_manifest(&dir, "compress = 6", "compress = \"zstd:40\"");
    let line = manifest_line(&dir, "compress = \"zstd:40\"");
    refused_at(&dir, line, 12, "zstd level 40: expected 1..=22");

    let (_tmp, dir) = reference_copy();
    edit_manifest(&dir, "compress = 6", "compress = 6\njobs = 4");
    let line = manifest_line(&dir, "jobs = 4");
    refused_at(&dir, line, 8, "parallel jobs need format = \"directory\"");
}

#[test]
fn a_rollback_required_that_cannot_be_a_count() {
    let (_tmp, dir) = reference_copy();
    edit_manifest(
        &dir,
        "operator_may_approve = false",
        "operator_may_approve = false\nrollback_required = -1",
    );
    let line = manifest_line(&dir, "rollback_required = -1");
    refused_at(
        &dir,
        line,
        21,
        "approvals.rollback_required = -1: expected a whole number from 0 to 100",
    );

    let (_tmp, dir) = reference_copy();
    edit_manifest(
        &dir,
        "operator_may_approve = false",
        "operator_may_approve = false\nrollback_required = \"two\"",
    );
    let line = manifest_line(&dir, "rollback_required = \"two\"");
    refused_at(&dir, line, 21, "expected");

    // valid, and the default is `required`
    let (_tmp, dir) = reference_copy();
    assert_eq!(
        sluice::package::Package::load(&dir)
            .unwrap()
            .approvals
            .rollback_required,
        2
    );
    edit_manifest(
        &dir,
        "operator_may_approve = false",
        "operator_may_approve = false\nrollback_required = 1",
    );
    let pkg = sluice::package::Package::load(&dir).unwrap();
    assert_eq!(pkg.approvals.rollback_required, 1);
    assert_eq!(pkg.approvals.required, 2);
}

#[test]
fn a_check_id_with_an_equals_sign_is_refused() {
    let (_tmp, dir) = reference_copy();
    edit_manifest(&dir, "id = \"P-8\"", "id = \"P=8\"");
    let line = manifest_line(&dir, "id = \"P=8\"");
    refused_at(
        &dir,
        line,
        6,
        "check id `P=8` has a `=`: expected an id without one",
    );
}
