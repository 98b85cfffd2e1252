mod support;

use predicates::prelude::*;
use sluice::digest::sha256_hex;
use support::*;

const OPERATIONS: &[&str] = &[
    "add_column public.tac_logical_unit.canonical_address_format_version",
    "add_column public.tac_logical_unit.authority",
    "update public.tac_logical_unit",
    "set_default public.tac_logical_unit.authority",
    "add_column sandbox_tac.logical_unit.canonical_address_format_version",
    "add_column sandbox_tac.logical_unit.authority",
    "set_default sandbox_tac.logical_unit.authority",
    "create_table cutter_governance.canonical_address_alias",
    "create_index cutter_governance.ix_alias_text",
    "create_index cutter_governance.ix_alias_target_unit_id",
    "create_index cutter_governance.ix_alias_kind",
    "create_index cutter_governance.ix_alias_validity_window",
];

#[test]
fn the_reference_package_lints_clean_and_lists_every_operation() {
    let out = sluice()
        .args(["lint", "../../examples/phase-alpha"])
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    for op in OPERATIONS {
        assert!(stdout.contains(op), "missing {op} in:\n{stdout}");
    }
    assert!(stdout.contains("scope: holds"), "{stdout}");
    assert!(stdout.contains("lint: passed"), "{stdout}");
    // in the seed's SQL order, one per line
    let positions: Vec<usize> = OPERATIONS
        .iter()
        .map(|op| stdout.find(op).unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "operations out of order"
    );
}

#[test]
fn the_seeds_rejected_r1_form_reports_default_hides_backfill() {
    let (_tmp, dir) = reference_copy();
    edit_pinned(&dir, MIGRATION, |sql| {
        sql.replacen(
            "    ADD COLUMN authority text;",
            "    ADD COLUMN authority text DEFAULT 'draft';",
            1,
        )
    });
    sluice()
        .arg("lint")
        .arg(&dir)
        .assert()
        .code(3)
        .stdout(predicate::str::contains("default-hides-backfill"))
        .stdout(predicate::str::contains("phase-alpha-r2.sql:24:1"))
        .stdout(predicate::str::contains("matches no row"));
}

#[test]
fn an_extra_drop_table_fails_scope_and_reports_data_loss() {
    let (_tmp, dir) = reference_copy();
    edit_pinned(&dir, MIGRATION, |sql| {
        let at = sql.rfind("COMMIT;").unwrap();
        format!(
            "{}DROP TABLE cutter_governance.verify_result;\n\n{}",
            &sql[..at],
            &sql[at..]
        )
    });
    sluice()
        .arg("lint")
        .arg(&dir)
        .assert()
        .code(3)
        .stdout(predicate::str::contains("scope: does not hold"))
        .stdout(predicate::str::contains(
            "out of scope: drop_table cutter_governance.verify_result",
        ))
        .stdout(predicate::str::contains("data-loss"));
}

#[test]
fn a_declared_operation_missing_from_the_sql_fails_scope() {
    let (_tmp, dir) = reference_copy();
    edit_manifest(
        &dir,
        "operations = [\n",
        "operations = [\n  \"create_schema extra\",\n",
    );
    sluice()
        .arg("lint")
        .arg(&dir)
        .assert()
        .code(3)
        .stdout(predicate::str::contains(
            "missing:      create_schema extra",
        ));
}

#[test]
fn deny_warn_makes_warnings_fail() {
    let (_tmp, dir) = reference_copy();
    edit_pinned(&dir, MIGRATION, |sql| {
        sql.replacen(" WHERE authority IS NULL;", ";", 1)
    });
    // unbounded UPDATE is a warning: passes by default, fails with --deny warn
    sluice()
        .arg("lint")
        .arg(&dir)
        .assert()
        .success()
        .stdout(predicate::str::contains("unbounded-dml"));
    sluice()
        .args(["lint", "--deny", "warn"])
        .arg(&dir)
        .assert()
        .code(3);
}

#[test]
fn transaction_control_and_concurrently_are_errors_in_single_mode() {
    let (_tmp, dir) = reference_copy();
    edit_pinned(&dir, MIGRATION, |sql| {
        sql.replacen("-- Step8", "COMMIT;\nBEGIN;\n-- Step8", 1)
            .replacen(
                "CREATE INDEX ix_alias_kind",
                "CREATE INDEX CONCURRENTLY ix_alias_kind",
                1,
            )
    });
    sluice()
        .arg("lint")
        .arg(&dir)
        .assert()
        .code(3)
        .stdout(predicate::str::contains("transaction-control"))
        .stdout(predicate::str::contains("non-transactional"));
}

#[test]
fn a_psql_meta_command_is_refused_with_its_location() {
    let (_tmp, dir) = reference_copy();
    edit_pinned(&dir, MIGRATION, |sql| {
        sql.replacen("BEGIN;\n", "BEGIN;\n\\set ON_ERROR_STOP 1\n", 1)
    });
    sluice()
        .arg("lint")
        .arg(&dir)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("phase-alpha-r2.sql:2:1"))
        .stderr(predicate::str::contains("\\set"));
}

#[test]
fn a_syntax_error_names_file_line_and_column() {
    let (_tmp, dir) = reference_copy();
    edit_pinned(&dir, MIGRATION, |sql| {
        sql.replacen(
            "CREATE TABLE cutter_governance",
            "CREATE TABEL cutter_governance",
            1,
        )
    });
    sluice()
        .arg("lint")
        .arg(&dir)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("phase-alpha-r2.sql:50:8"))
        .stderr(predicate::str::contains("syntax error"));
}

/// A missing `)` is reported where PostgreSQL's cursor is: at the `;` on line 70 of the file
/// (not at the file's or the statement's start), counted from the file's own lines.
#[test]
fn a_syntax_error_at_a_semicolon_is_located_at_postgresqls_cursor() {
    let (_tmp, dir) = reference_copy();
    let needle = "alias (valid_from, valid_to);";
    edit_pinned(&dir, MIGRATION, |sql| {
        sql.replacen(needle, "alias (valid_from, valid_to;", 1)
    });
    let sql = read(&dir, MIGRATION);
    let at = sql.find("valid_to;").unwrap() + "valid_to".len();
    let line = sql[..at].matches('\n').count() + 1;
    let column = at - sql[..at].rfind('\n').unwrap();
    assert_eq!((line, column), (70, 71), "the edit moved");
    sluice()
        .arg("lint")
        .arg(&dir)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "phase-alpha-r2.sql:{line}:{column}: syntax error"
        )))
        .stderr(predicate::str::contains("at or near \";\""));
}

#[test]
fn lint_json_is_one_document() {
    let out = sluice()
        .args(["lint", "--json", "../../examples/phase-alpha"])
        .assert()
        .success();
    let doc: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(doc["ok"], true);
    assert_eq!(
        doc["lint"]["migration"]["operations"]
            .as_array()
            .unwrap()
            .len(),
        12
    );
}

#[test]
fn init_writes_a_starter_that_lints_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("my-change");
    sluice().arg("init").arg(&dir).assert().success();
    sluice()
        .args(["lint", "--deny", "warn"])
        .arg(&dir)
        .assert()
        .success()
        .stdout(predicate::str::contains("hazards: none"));
    sluice().arg("review").arg(&dir).assert().success();
    // refuses to overwrite
    sluice()
        .arg("init")
        .arg(&dir)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not empty"));
}

/// SPEC §3: lint checks the package's pins, and `sluice pin` writes them again, changing
/// nothing else of sluice.toml.
#[test]
fn lint_fails_on_a_stale_pin_and_pin_fixes_it_keeping_the_rest_byte_for_byte() {
    let (_tmp, dir) = reference_copy();
    let manifest = read(&dir, "sluice.toml");
    let old_sha = sha256_hex(read(&dir, MIGRATION).as_bytes());
    let sql = format!("{}-- a late edit\n", read(&dir, MIGRATION));
    write(&dir, MIGRATION, &sql);
    let new_sha = sha256_hex(sql.as_bytes());
    let line = manifest_line(&dir, &old_sha);
    let lint = sluice().arg("lint").arg(&dir).assert().code(3);
    let out = String::from_utf8(lint.get_output().stdout.clone()).unwrap();
    assert!(
        out.contains("error sql-integrity")
            && out.contains(&format!("sluice.toml:{line}:"))
            && out.contains(&format!("{MIGRATION} has sha256 {new_sha}"))
            && out.contains(&format!("pins {old_sha}"))
            && out.contains("lint: FAILED"),
        "{out}"
    );

    let pin = sluice().arg("pin").arg(&dir).assert().success();
    let out = String::from_utf8(pin.get_output().stdout.clone()).unwrap();
    assert!(
        out.contains(&format!("{MIGRATION}: {old_sha} → {new_sha}"))
            && out.contains(&format!("{ROLLBACK}: ")),
        "{out}"
    );
    // every comment and every other byte of the manifest is as it was
    assert_eq!(
        read(&dir, "sluice.toml"),
        manifest.replacen(&old_sha, &new_sha, 1)
    );
    sluice()
        .arg("lint")
        .arg(&dir)
        .assert()
        .success()
        .stdout(predicate::str::contains("lint: passed"));

    // idempotent: a second pin changes nothing
    let again = sluice().arg("pin").arg(&dir).assert().success();
    let out = String::from_utf8(again.get_output().stdout.clone()).unwrap();
    assert!(!out.contains('→') && out.contains("(unchanged)"), "{out}");
    assert_eq!(
        read(&dir, "sluice.toml"),
        manifest.replacen(&old_sha, &new_sha, 1)
    );

    // the rollback is pinned too
    let rollback = format!("{}-- later\n", read(&dir, ROLLBACK));
    write(&dir, ROLLBACK, &rollback);
    sluice()
        .arg("lint")
        .arg(&dir)
        .assert()
        .code(3)
        .stdout(predicate::str::contains(format!(
            "{ROLLBACK} has sha256 {}",
            sha256_hex(rollback.as_bytes())
        )));
    sluice().arg("pin").arg(&dir).assert().success();
    sluice().arg("lint").arg(&dir).assert().success();
}
