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
    // its rollback drops the table the migration creates: a data-loss note, no warning
    sluice()
        .args(["lint", "--deny", "warn"])
        .arg(&dir)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "0 error(s), 0 warning(s), 1 note(s)",
        ))
        .stdout(predicate::str::contains("info data-loss"));
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

/// The reference package with its migration replaced by `sql`, linted; its stdout.
fn lint_migration(sql: &str) -> String {
    let (_tmp, dir) = reference_copy();
    edit_pinned(&dir, MIGRATION, |_| sql.to_string());
    let out = sluice().arg("lint").arg(&dir).output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// The hazard blocks of a lint output (a hazard line and its indented lines).
fn hazard_blocks(stdout: &str) -> Vec<String> {
    let mut blocks: Vec<String> = Vec::new();
    for line in stdout
        .lines()
        .skip_while(|l| !l.starts_with("hazards:"))
        .skip(1)
    {
        if line.starts_with("        ") {
            if let Some(last) = blocks.last_mut() {
                last.push_str(line);
                last.push('\n');
            }
        } else if line.starts_with("  ") {
            blocks.push(format!("{line}\n"));
        }
    }
    blocks
}

#[test]
fn a_foreign_key_takes_share_row_exclusive_on_both_tables() {
    let stdout = lint_migration(
        "ALTER TABLE sandbox_tac.logical_unit\n    ADD CONSTRAINT fk_unit FOREIGN KEY (id) REFERENCES public.tac_logical_unit (id) NOT VALID;\nSELECT 1;\n",
    );
    assert!(
        stdout.contains(
            "SHARE ROW EXCLUSIVE on sandbox_tac.logical_unit and public.tac_logical_unit"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("ACCESS EXCLUSIVE"), "{stdout}");
}

#[test]
fn validate_constraint_takes_no_access_exclusive_lock() {
    let stdout =
        lint_migration("ALTER TABLE public.tac_logical_unit VALIDATE CONSTRAINT ck;\nSELECT 1;\n");
    assert!(!stdout.contains("access-exclusive-lock"), "{stdout}");
    assert!(!stdout.contains("ACCESS EXCLUSIVE"), "{stdout}");
}

#[test]
fn unique_and_primary_key_constraints_report_their_index_build() {
    let stdout = lint_migration(
        "ALTER TABLE public.tac_logical_unit ADD CONSTRAINT uq_unit UNIQUE (id);\nSELECT 1;\n",
    );
    assert!(
        hazard_blocks(&stdout)
            .iter()
            .any(|b| b.contains("blocking-index-build") && b.contains("phase-alpha-r2.sql:1:1")),
        "{stdout}"
    );
}

#[test]
fn not_valid_then_validate_in_one_transaction_is_called_out() {
    let stdout = lint_migration(
        "ALTER TABLE public.tac_logical_unit ADD COLUMN b int;\n\
         ALTER TABLE public.tac_logical_unit ADD CONSTRAINT ck CHECK (b > 0) NOT VALID;\n\
         ALTER TABLE public.tac_logical_unit VALIDATE CONSTRAINT ck;\nSELECT 1;\n",
    );
    let validate = hazard_blocks(&stdout)
        .into_iter()
        .find(|b| b.contains("scan-under-lock") && b.contains("phase-alpha-r2.sql:3:1"))
        .unwrap_or_else(|| panic!("no scan-under-lock on the VALIDATE:\n{stdout}"));
    assert!(validate.contains("separate migration"), "{validate}");
}

#[test]
fn renames_warn_that_clients_using_the_old_name_break() {
    let stdout = lint_migration(
        "ALTER TABLE public.tac_logical_unit RENAME COLUMN lifecycle_status TO status;\n\
         ALTER TABLE sandbox_tac.logical_unit RENAME TO unit;\nSELECT 1;\n",
    );
    let renames: Vec<String> = hazard_blocks(&stdout)
        .into_iter()
        .filter(|b| b.contains("warn rename-breaks-clients"))
        .collect();
    assert_eq!(renames.len(), 2, "{stdout}");
    assert!(renames[0].contains("lifecycle_status"), "{}", renames[0]);
}

#[test]
fn the_rollbacks_drops_report_data_loss() {
    let out = sluice()
        .args(["lint", "../../examples/phase-alpha"])
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let blocks = hazard_blocks(&stdout);
    assert!(
        blocks.iter().any(|b| b.contains("info data-loss")
            && b.contains("phase-alpha-r2-rollback.sql:12:1")
            && b.contains("the rollback's drop_table cutter_governance.canonical_address_alias")),
        "{stdout}"
    );
    // R-1..R-5 each drop only what the migration added: notes, so --deny warn still passes
    assert_eq!(
        blocks
            .iter()
            .filter(|b| b.contains("info data-loss") && b.contains("rollback.sql"))
            .count(),
        5,
        "{stdout}"
    );
    sluice()
        .args(["lint", "--deny", "warn", "../../examples/phase-alpha"])
        .assert()
        .success();
    // a rollback that drops what the migration did not add is warned about
    let (_tmp, dir) = reference_copy();
    edit_pinned(&dir, ROLLBACK, |sql| {
        sql.replacen(
            "COMMIT;",
            "ALTER TABLE public.tac_logical_unit DROP COLUMN lifecycle_status;\nCOMMIT;",
            1,
        )
    });
    let out = sluice().arg("lint").arg(&dir).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        hazard_blocks(&stdout)
            .iter()
            .any(|b| b.contains("warn data-loss")
                && b.contains("drop_column public.tac_logical_unit.lifecycle_status")
                && b.contains("did not add")),
        "{stdout}"
    );
}

#[test]
fn the_r1_form_reports_default_hides_backfill_once() {
    let (_tmp, dir) = reference_copy();
    edit_pinned(&dir, MIGRATION, |sql| {
        sql.replacen(
            "    ADD COLUMN authority text;",
            "    ADD COLUMN authority text DEFAULT 'draft';",
            1,
        )
    });
    let out = sluice().arg("lint").arg(&dir).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.matches("default-hides-backfill").count(),
        1,
        "{stdout}"
    );
}

#[test]
fn a_column_type_change_has_its_own_help() {
    let stdout = lint_migration(
        "ALTER TABLE public.tac_logical_unit ALTER COLUMN lifecycle_status TYPE varchar(40);\nSELECT 1;\n",
    );
    let rewrite = hazard_blocks(&stdout)
        .into_iter()
        .find(|b| b.contains("table-rewrite"))
        .unwrap_or_else(|| panic!("no table-rewrite:\n{stdout}"));
    assert!(!rewrite.contains("volatile default"), "{rewrite}");
    assert!(rewrite.contains("help: "), "{rewrite}");
}

#[test]
fn review_with_target_reports_the_same_findings_as_lint_with_target() {
    let (_cluster, conninfo) = fixture_target();
    let lint = sluice()
        .args([
            "lint",
            "--json",
            "../../examples/phase-alpha",
            "--target",
            &conninfo,
        ])
        .output()
        .unwrap();
    let lint: serde_json::Value = serde_json::from_slice(&lint.stdout).unwrap();
    let review = sluice()
        .args([
            "review",
            "--format",
            "json",
            "../../examples/phase-alpha",
            "--target",
            &conninfo,
        ])
        .output()
        .unwrap();
    let review: serde_json::Value = serde_json::from_slice(&review.stdout).unwrap();
    let findings = &lint["lint"]["migration"]["findings"];
    assert!(
        findings.to_string().contains("trigger-side-effect"),
        "lint --target found no trigger: {findings}"
    );
    assert_eq!(&review["lint"]["migration"]["findings"], findings);
    assert_eq!(
        &review["lint"]["rollback"]["findings"],
        &lint["lint"]["rollback"]["findings"]
    );
}

/// Issue 14 B.4: in a `transaction = "single"` package the rollback runs in one transaction
/// too, so a CONCURRENTLY there is an error, named in the rollback file.
#[test]
fn concurrently_in_the_rollback_of_a_single_transaction_package_is_an_error() {
    let (_tmp, dir) = reference_copy();
    edit_pinned(&dir, ROLLBACK, |sql| {
        sql.replacen(
            "COMMIT;",
            "DROP INDEX CONCURRENTLY IF EXISTS public.ix_x;\nCOMMIT;",
            1,
        )
    });
    let out = sluice().arg("lint").arg(&dir).assert().code(3);
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.contains("error non-transactional")
            && stdout.contains(&format!("{ROLLBACK}:"))
            && stdout.contains("DROP INDEX CONCURRENTLY"),
        "{stdout}"
    );
}
