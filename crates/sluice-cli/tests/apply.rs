//! Every gate of the apply pipeline made to fail for real against a real PostgreSQL: the exit
//! code of its phase, the gate id in the message, and (before COMMIT) a target left exactly as
//! it was — schema and data.
mod support;

use support::*;

#[test]
fn the_reference_package_applies_with_every_gate_holding() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    let assert = apply_cmd(&ready, &conninfo).assert().success();
    let stderr = stderr_of(&assert);
    assert!(stderr.contains("tac_authority_draft=86 tac_authority_enacted=0 tac_authority_runtime=0 tac_authority_null=0 tac_format_v1=86 sandbox_authority_null=76 sandbox_format_v1=76 alias_table_present=1"), "{stderr}");
    assert!(stderr.contains("updated_at: distinct 3 → 1"), "{stderr}");
    assert!(stderr.contains("rows changed 86/86"), "{stderr}");
    let run_dir = last_run(&ready);
    let run = run_json(&run_dir);
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["steps"].as_array().unwrap().len(), 15);
    // the evidence holds the restorable dump, the snapshots and the probe summary
    let dump = std::fs::read_dir(run_dir.join("backup"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let pg_restore = sluice::backup::find_tools(None)
        .unwrap()
        .bindir
        .join("pg_restore");
    let listing = std::process::Command::new(pg_restore)
        .arg("--list")
        .arg(&dump)
        .output()
        .unwrap();
    assert!(listing.status.success());
    for rel in [
        "schema/pre.json",
        "schema/post.json",
        "schema/diff.json",
        "counts/pre.json",
        "counts/post.json",
        "probes/tac-updated-at.pre.csv",
        "probes/tac-updated-at.post.csv",
        "report.md",
        "report.html",
        "log.jsonl",
        "SHA256SUMS",
    ] {
        assert!(run_dir.join(rel).is_file(), "{rel} missing");
    }
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("probes/tac-updated-at.summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["rows"]["changed"], 86);
    assert_eq!(summary["pre"]["columns"][0]["distinct"], 3);
    assert_eq!(summary["post"]["columns"][0]["distinct"], 1);
    let sums = read(&run_dir, "SHA256SUMS");
    assert!(sums.contains(&format!(
        "  backup/{}",
        dump.file_name().unwrap().to_string_lossy()
    )));
    sluice()
        .args(["evidence", "check"])
        .arg(&run_dir)
        .assert()
        .success();
    // a second apply is refused by preflight: the change is already there
    let again = refused(&ready, &conninfo, 3, "preflight");
    assert!(again.contains("P-5"), "{again}");
}

#[test]
fn exclusive_run_refuses_a_second_apply_at_once() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    let mut holder = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    let key = sluice::pipeline::lock_key("dot-iu-cutter-v0.2-phase-alpha");
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&key])
        .unwrap();
    let started = std::time::Instant::now();
    let stderr = refused_before(&ready, &conninfo, "exclusive-run");
    assert!(
        started.elapsed().as_secs() < 10,
        "it waited instead of refusing"
    );
    assert!(stderr.contains("holds the lock"), "{stderr}");
    assert!(stderr.contains("held by pid"), "{stderr}");
}

#[test]
fn target_identity_refuses_another_database() {
    let (cluster, conninfo) = own_fixture_target();
    let ready = ready_package(&cluster);
    edit_manifest(
        &ready.dir,
        "database = \"directus\"",
        "database = \"directus_prod\"",
    );
    approve_all(&ready);
    let stderr = refused_before(&ready, &conninfo, "target-identity");
    assert!(
        stderr.contains("database is directus but must be directus_prod"),
        "{stderr}"
    );
}

#[test]
fn target_identity_refuses_a_rehearsal_cluster_as_a_named_environment() {
    let (cluster, conninfo) = sluice_testkit::fixture_cluster_with(&[("sluice.rehearsal", "on")]);
    let ready = ready_package(&cluster);
    approve_all(&ready);
    let stderr = refused_before(&ready, &conninfo, "target-identity");
    assert!(stderr.contains("sluice.rehearsal = on"), "{stderr}");
}

#[test]
fn sql_integrity_refuses_edited_sql() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    let sql = read(&ready.dir, MIGRATION);
    write(
        &ready.dir,
        MIGRATION,
        &sql.replacen("-- Step1", "-- Step1 (edited after review)", 1),
    );
    approve_all(&ready);
    let stderr = refused_before(&ready, &conninfo, "sql-integrity");
    assert!(stderr.contains("the manifest pins"), "{stderr}");
}

#[test]
fn scope_refuses_an_undeclared_operation() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    edit_pinned(&ready.dir, MIGRATION, |sql| {
        sql.replacen(
            "-- Step8",
            "DROP TABLE cutter_governance.verify_result;\n-- Step8",
            1,
        )
    });
    approve_all(&ready);
    let stderr = refused_before(&ready, &conninfo, "scope");
    assert!(
        stderr.contains("out of scope: drop_table cutter_governance.verify_result"),
        "{stderr}"
    );
}

#[test]
fn approvals_refuses_too_few_or_the_operators_own() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    let stderr = refused_before(&ready, &conninfo, "approvals");
    assert!(stderr.contains("0 of 2"), "{stderr}");
    approve_all(&ready);
    let mut cmd = apply_as(
        &ready,
        &conninfo,
        "alice@example.com",
        &ready.tmp.path().join("evidence"),
    );
    let before = fingerprint(&conninfo);
    let assert = cmd.assert().code(3);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("error[approvals]") && stderr.contains("separation of duties"),
        "{stderr}"
    );
    assert_eq!(before, fingerprint(&conninfo));
}

#[test]
fn approvals_refuses_an_approval_of_another_digest() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    edit_manifest(&ready.dir, "lock_retries = 3", "lock_retries = 2");
    let stderr = refused_before(&ready, &conninfo, "approvals");
    assert!(stderr.contains("stale"), "{stderr}");
    // log.jsonl keeps the verdict: each refused file with its kind
    let log = read(&last_run(&ready), "log.jsonl");
    let verdict: serde_json::Value = log
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|event| event["event"] == "approvals")
        .unwrap_or_else(|| panic!("no approvals event in {log}"))["data"]
        .clone();
    let kinds: Vec<&str> = verdict["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["other_binding", "other_binding"], "{verdict}");
}

#[test]
fn rehearsal_is_required_for_this_digest() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    edit_manifest(
        &ready.dir,
        "[rehearsal]\nrequired = false",
        "[rehearsal]\nrequired = true",
    );
    approve_all(&ready);
    let stderr = refused_before(&ready, &conninfo, "rehearsal");
    assert!(stderr.contains("sluice rehearse"), "{stderr}");
}

#[test]
fn client_version_refuses_when_no_pg_dump_is_there() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    let empty = ready.tmp.path().join("no-tools");
    std::fs::create_dir_all(&empty).unwrap();
    let before = fingerprint(&conninfo);
    let assert = apply_cmd(&ready, &conninfo)
        .arg("--pg-dump-bindir")
        .arg(&empty)
        .assert()
        .code(3);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("error[client-version]") && stderr.contains("no pg_dump/pg_restore found"),
        "{stderr}"
    );
    assert_eq!(before, fingerprint(&conninfo));
}

#[test]
fn backup_restorable_refuses_when_pg_dump_cannot_read_everything() {
    // the seed's own warning: the directus role cannot dump cutter_governance
    let (cluster, conninfo) = own_fixture_target();
    let mut admin = cluster.admin();
    admin
        .batch_execute("CREATE ROLE directus_app LOGIN; GRANT USAGE ON SCHEMA public, sandbox_tac, cutter_governance TO directus_app; GRANT SELECT ON ALL TABLES IN SCHEMA public, sandbox_tac TO directus_app;")
        .unwrap();
    let app = cluster.conninfo("directus", "directus_app");
    let ready = ready_package(&cluster);
    edit_manifest(
        &ready.dir,
        "role = \"workflow_admin\"",
        "role = \"directus_app\"",
    );
    approve_all(&ready);
    let before = fingerprint(&conninfo);
    let stderr = refused(&ready, &app, 3, "backup-restorable");
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert_eq!(before, fingerprint(&conninfo));
}

#[test]
fn preflight_refuses_a_failing_check() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    edit_manifest(&ready.dir, "expect = 86", "expect = 85");
    approve_all(&ready);
    let stderr = refused_before(&ready, &conninfo, "preflight");
    assert!(stderr.contains("P-8: expected 85, got '86'"), "{stderr}");
}

#[test]
fn backup_fresh_refuses_an_old_backup() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    let before = fingerprint(&conninfo);
    let assert = apply_cmd(&ready, &conninfo)
        .env("SLUICE_FAULT_BACKUP_AGE_S", "3601")
        .assert()
        .code(3);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("error[backup-fresh]") && stderr.contains("max_age_minutes = 60"),
        "{stderr}"
    );
    assert_eq!(before, fingerprint(&conninfo));
}

#[test]
fn migration_atomic_rolls_back_when_the_trailing_row_does_not_match() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    edit_manifest(
        &ready.dir,
        "tac_authority_draft = 86",
        "tac_authority_draft = 85",
    );
    approve_all(&ready);
    let before = fingerprint(&conninfo);
    let stderr = refused(&ready, &conninfo, 4, "migration-atomic");
    assert!(
        stderr.contains("tac_authority_draft: expected 85, got '86'"),
        "{stderr}"
    );
    assert_eq!(
        before,
        fingerprint(&conninfo),
        "a rolled-back migration changed the target"
    );
    assert_eq!(run_json(&last_run(&ready))["migration_committed"], false);
}

#[test]
fn migration_atomic_rolls_back_a_failing_statement_and_names_its_line() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    edit_pinned(&ready.dir, MIGRATION, |sql| {
        sql.replacen("(alias_kind);", "(alias_kindd);", 1)
    });
    approve_all(&ready);
    let before = fingerprint(&conninfo);
    let stderr = refused(&ready, &conninfo, 4, "migration-atomic");
    // PostgreSQL gives no position for this error: the statement's own line is named
    assert!(stderr.contains("phase-alpha-r2.sql:67:1"), "{stderr}");
    assert!(
        stderr.contains("alias_kindd") && stderr.contains("42703"),
        "{stderr}"
    );
    assert_eq!(before, fingerprint(&conninfo));
    // the refusal as data: run.json and --json carry gate, kind and SQLSTATE
    let run = run_json(&last_run(&ready));
    assert_eq!(run["error"]["gate"], "migration-atomic");
    assert_eq!(run["error"]["kind"], "server-error");
    assert_eq!(run["error"]["sqlstate"], "42703");
    assert!(run["error"]["pg"]["location"]
        .as_str()
        .unwrap()
        .ends_with("phase-alpha-r2.sql:67:1"));
    let out = apply_cmd(&ready, &conninfo).arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["gate"], "migration-atomic");
    assert_eq!(doc["error"]["kind"], "server-error");
    assert_eq!(doc["error"]["sqlstate"], "42703");
    // a usage error has the same object
    let out = sluice()
        .args(["lint", "/nonexistent/pkg", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["kind"], "usage", "{doc}");
    assert!(doc["error"]["message"].is_string());
}

#[test]
fn migration_atomic_retries_lock_timeouts_then_gives_up() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    edit_manifest(
        &ready.dir,
        "lock_timeout_ms = 5000",
        "lock_timeout_ms = 200",
    );
    edit_manifest(&ready.dir, "lock_retries = 3", "lock_retries = 2");
    approve_all(&ready);
    let mut blocker = postgres::Client::connect(
        &format!("{conninfo} application_name=nightly-report"),
        postgres::NoTls,
    )
    .unwrap();
    blocker
        .batch_execute("BEGIN; LOCK TABLE sandbox_tac.logical_unit IN ACCESS SHARE MODE;")
        .unwrap();
    let blocker_pid: i32 = blocker
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let before = fingerprint(&conninfo);
    let started = std::time::Instant::now();
    let stderr = refused(&ready, &conninfo, 4, "migration-atomic");
    assert!(started.elapsed().as_secs() < 30);
    assert!(
        stderr.contains("gave up after 3 attempt(s)") && stderr.contains("55P03"),
        "{stderr}"
    );
    // each attempt is on the terminal, naming the blocker
    for n in 1..=3 {
        assert!(
            stderr.contains(&format!("attempt {n}: lock-timeout")),
            "{stderr}"
        );
    }
    assert!(stderr.contains("retrying in 200 ms"), "{stderr}");
    let named = format!(
        "blocked by pid {blocker_pid} (nightly-report as workflow_admin, idle in transaction)"
    );
    assert!(stderr.contains(&named), "{stderr}");
    let log = read(&last_run(&ready), "log.jsonl");
    assert_eq!(log.matches("\"migration.attempt\"").count(), 3, "{log}");
    let run = run_json(&last_run(&ready));
    let blocked_by = &run["migration"]["attempts"][0]["blocked_by"][0];
    assert_eq!(blocked_by["pid"], blocker_pid, "{run}");
    assert_eq!(blocked_by["application"], "nightly-report");
    assert_eq!(run["error"]["kind"], "lock-timeout");
    assert_eq!(run["error"]["sqlstate"], "55P03");
    blocker.batch_execute("ROLLBACK").unwrap();
    assert_eq!(before, fingerprint(&conninfo));
}

#[test]
fn verification_fails_after_commit_with_exit_5() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    edit_manifest(&ready.dir, "total = 86 }", "total = 87 }");
    approve_all(&ready);
    let stderr = refused(&ready, &conninfo, 5, "verification");
    assert!(stderr.contains("V-α-3"), "{stderr}");
    let run = run_json(&last_run(&ready));
    assert_eq!(run["migration_committed"], true);
    let report = read(&last_run(&ready), "report.md");
    assert!(
        report.contains("COMMITTED; `sluice rollback` is available"),
        "{report}"
    );
}

/// Applies the reference package with a call to `public.sneaky()` slipped into its migration
/// (`setup` defines it, before the package is made ready); returns sluice's stderr, after
/// checking it stopped at schema-diff with exit 5.
fn refused_for_what_sneaky_does(setup: &str) -> String {
    let (cluster, conninfo) = own_fixture_target();
    let mut admin = cluster.admin();
    admin.batch_execute(setup).unwrap();
    let ready = ready_package(&cluster);
    edit_pinned(&ready.dir, MIGRATION, |sql| {
        sql.replacen("-- Step8", "SELECT public.sneaky();\n-- Step8", 1)
    });
    approve_all(&ready);
    refused(&ready, &conninfo, 5, "schema-diff")
}

#[test]
fn schema_diff_fails_on_an_object_no_operation_explains() {
    let stderr = refused_for_what_sneaky_does(
        "CREATE FUNCTION public.sneaky() RETURNS int LANGUAGE plpgsql AS $$ BEGIN CREATE TABLE public.sneaky_side_table (x int); RETURN 1; END $$;",
    );
    assert!(stderr.contains("public.sneaky_side_table"), "{stderr}");
}

/// The post snapshot reads again only the tables whose catalog rows changed (the fixture's
/// tables all have defaults, so they are always read; this one has none): a column renamed
/// behind the scope's back on a table the migration does not touch must still be seen.
#[test]
fn schema_diff_fails_on_a_hidden_change_to_a_table_the_migration_does_not_touch() {
    let stderr = refused_for_what_sneaky_does(
        "CREATE TABLE public.side (id int PRIMARY KEY, label text);
         CREATE FUNCTION public.sneaky() RETURNS int LANGUAGE plpgsql AS $$ BEGIN ALTER TABLE public.side RENAME COLUMN label TO title; RETURN 1; END $$;",
    );
    assert!(stderr.contains("public.side.label"), "{stderr}");
}

/// Security changes made behind the scope's back (issue #16): a pre-existing function the
/// migration calls grants to PUBLIC, drops a policy, disables row-level security, comments an
/// object. Each is a post-commit finding of `schema-diff` (exit 5) that names the change.
#[test]
fn schema_diff_names_a_grant_to_public_made_by_a_function_the_migration_calls() {
    let stderr = refused_for_what_sneaky_does(
        "CREATE FUNCTION public.sneaky() RETURNS int LANGUAGE plpgsql AS $$ BEGIN GRANT ALL ON public.tac_section_type TO PUBLIC; RETURN 1; END $$;",
    );
    assert!(
        stderr.contains("public.tac_section_type (grants)")
            && stderr.contains("grants gained \"PUBLIC: "),
        "{stderr}"
    );
}

#[test]
fn schema_diff_names_a_role_made_superuser_by_a_security_definer_function() {
    let stderr = refused_for_what_sneaky_does(
        "CREATE ROLE tac_reader NOLOGIN;
         GRANT SELECT ON public.tac_section_type TO tac_reader;
         CREATE FUNCTION public.sneaky() RETURNS int LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN
             ALTER ROLE tac_reader SUPERUSER; RETURN 1; END $$;",
    );
    assert!(
        stderr.contains("changed: Role tac_reader (superuser) — superuser false → true"),
        "{stderr}"
    );
}

#[test]
fn schema_diff_names_a_dropped_policy_disabled_row_security_and_a_new_comment() {
    let stderr = refused_for_what_sneaky_does(
        "ALTER TABLE public.tac_section_type ENABLE ROW LEVEL SECURITY;
         CREATE POLICY active_only ON public.tac_section_type USING (is_active);
         CREATE FUNCTION public.sneaky() RETURNS int LANGUAGE plpgsql AS $$ BEGIN
             DROP POLICY active_only ON public.tac_section_type;
             ALTER TABLE public.tac_section_type DISABLE ROW LEVEL SECURITY;
             COMMENT ON TABLE public.tac_section_type IS 'no longer protected';
             RETURN 1; END $$;",
    );
    for finding in [
        "removed: Policy public.tac_section_type.active_only",
        "row_security true → false",
        "added but not in scope: Comment table public.tac_section_type",
    ] {
        assert!(stderr.contains(finding), "want `{finding}` in:\n{stderr}");
    }
}

/// Disabling row-level security on a table that has policies is a lint error the scope gate
/// sees with the live target's facts, declared or not.
#[test]
fn scope_refuses_disabling_row_security_on_a_table_with_policies() {
    let (cluster, conninfo) = fixture_target();
    let mut admin = cluster.admin();
    admin
        .batch_execute(
            "ALTER TABLE public.tac_section_type ENABLE ROW LEVEL SECURITY;
             CREATE POLICY active_only ON public.tac_section_type USING (is_active);",
        )
        .unwrap();
    let ready = ready_package(&cluster);
    edit_pinned(&ready.dir, MIGRATION, |sql| {
        sql.replacen(
            "-- Step8",
            "ALTER TABLE public.tac_section_type DISABLE ROW LEVEL SECURITY;\n-- Step8",
            1,
        )
    });
    edit_manifest(
        &ready.dir,
        "  \"create_table cutter_governance.canonical_address_alias\",",
        "  \"disable_rls public.tac_section_type\",\n  \"create_table cutter_governance.canonical_address_alias\",",
    );
    approve_all(&ready);
    let stderr = refused_before(&ready, &conninfo, "scope");
    assert!(stderr.contains("lint error: privilege-change"), "{stderr}");
}

/// The same kinds of change written in the migration: undeclared, the scope gate refuses them
/// by name; declared in `[scope]`, they apply and the schema diff explains each one.
#[test]
fn security_changes_in_the_migration_need_their_scope_and_then_apply() {
    let (cluster, conninfo) = own_fixture_target();
    let mut admin = cluster.admin();
    admin.batch_execute("CREATE ROLE tac_reader").unwrap();
    let ready = ready_package(&cluster);
    edit_pinned(&ready.dir, MIGRATION, |sql| {
        sql.replacen(
            "-- Step8",
            "GRANT SELECT ON public.tac_section_type TO tac_reader;
COMMENT ON TABLE public.tac_section_type IS 'the section_type vocabulary';
ALTER TABLE public.tac_section_type ENABLE ROW LEVEL SECURITY;
CREATE POLICY active_only ON public.tac_section_type TO tac_reader USING (is_active);
-- Step8",
            1,
        )
    });
    approve_all(&ready);
    let stderr = refused_before(&ready, &conninfo, "scope");
    for op in [
        "grant public.tac_section_type",
        "comment public.tac_section_type",
        "enable_rls public.tac_section_type",
        "create_policy public.tac_section_type.active_only",
    ] {
        assert!(stderr.contains(op), "want `{op}` in:\n{stderr}");
    }
    edit_manifest(
        &ready.dir,
        "  \"create_table cutter_governance.canonical_address_alias\",",
        "  \"grant public.tac_section_type\",
  \"comment public.tac_section_type\",
  \"enable_rls public.tac_section_type\",
  \"create_policy public.tac_section_type.active_only\",
  \"create_table cutter_governance.canonical_address_alias\",",
    );
    approve_all(&ready);
    apply_cmd(&ready, &conninfo).assert().success();
    let diff = read(&last_run(&ready), "schema/diff.json");
    for explained in [
        "grant public.tac_section_type",
        "create_policy public.tac_section_type.active_only",
        "comment public.tac_section_type",
    ] {
        assert!(diff.contains(explained), "want `{explained}` in {diff}");
    }
}

#[test]
fn probes_fail_when_rows_changed_differs_from_the_expectation() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    edit_manifest(&ready.dir, "expect_changed = 86", "expect_changed = 0");
    approve_all(&ready);
    let stderr = refused(&ready, &conninfo, 5, "probes");
    assert!(stderr.contains("rows changed 86/86"), "{stderr}");
}

#[test]
fn apply_without_a_terminal_or_yes_is_refused_before_anything() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    let before = fingerprint(&conninfo);
    sluice()
        .arg("apply")
        .arg(&ready.dir)
        .args([
            "--target",
            &conninfo,
            "--environment",
            "production",
            "--operator",
            "carol@example.com",
        ])
        .arg("--evidence")
        .arg(ready.tmp.path().join("evidence"))
        .assert()
        // SPEC §8: not confirming is a refusal before the migration started (exit 3), not a
        // usage error
        .code(3)
        .stderr(predicates::str::contains("--yes"));
    assert_eq!(before, fingerprint(&conninfo));
    assert!(!ready.tmp.path().join("evidence").exists());
}

#[test]
fn an_empty_malformed_or_reserved_environment_name_is_refused_with_exit_2() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    let before = fingerprint(&conninfo);
    let evidence = ready.tmp.path().join("evidence");
    for (name, why) in [
        ("", "is empty"),
        ("rehearsal", "reserved for `sluice rehearse`"),
        ("Rehearsal", "reserved for `sluice rehearse`"),
        ("prod/../x", "has `/` at character 5"),
        ("-rf", "has `-` at character 1"),
    ] {
        for verb in ["apply", "rollback"] {
            let mut cmd = sluice();
            cmd.arg(verb)
                .arg(&ready.dir)
                .args(["--target", &conninfo, &format!("--environment={name}")])
                .args(["--operator", "carol@example.com", "--yes", "--evidence"])
                .arg(&evidence);
            if verb == "rollback" {
                cmd.args(["--run", "nowhere", "--failed-check", "V-α-3"]);
            }
            let assert = cmd.assert().code(2);
            let stderr = stderr_of(&assert);
            assert!(
                stderr.contains("--environment") && stderr.contains(why),
                "{verb} --environment {name:?}: {stderr}"
            );
        }
    }
    assert_eq!(before, fingerprint(&conninfo));
    assert!(!evidence.exists(), "a refused environment wrote evidence");
}

#[test]
fn an_already_applied_package_is_refused_before_the_backup_naming_the_run() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    apply_cmd(&ready, &conninfo).assert().success();
    let first = last_run(&ready);
    let before = fingerprint(&conninfo);
    let stderr = refused(&ready, &conninfo, 3, "preflight");
    assert!(stderr.contains("before the backup"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "already applied to this target in run {} (operator ",
            first.display()
        )) && stderr.contains("`sluice status` lists the runs"),
        "{stderr}"
    );
    let second = last_run(&ready);
    assert_ne!(first, second);
    assert_eq!(
        std::fs::read_dir(second.join("backup")).unwrap().count(),
        0,
        "no dump was taken"
    );
    assert_eq!(before, fingerprint(&conninfo));
}

/// Each step of the apply pipeline, with the test above that makes it fail for real (a step
/// that only records fails through its own evidence: the probes' expectation). A new step
/// without its failing test fails `every_step_has_a_test_that_makes_it_fail`.
const FAILING_CASES: &[(&str, fn())] = &[
    (
        "exclusive-run",
        exclusive_run_refuses_a_second_apply_at_once,
    ),
    ("target-identity", target_identity_refuses_another_database),
    ("sql-integrity", sql_integrity_refuses_edited_sql),
    ("scope", scope_refuses_an_undeclared_operation),
    ("approvals", approvals_refuses_too_few_or_the_operators_own),
    ("rehearsal", rehearsal_is_required_for_this_digest),
    (
        "client-version",
        client_version_refuses_when_no_pg_dump_is_there,
    ),
    (
        "backup-restorable",
        backup_restorable_refuses_when_pg_dump_cannot_read_everything,
    ),
    ("preflight", preflight_refuses_a_failing_check),
    ("backup-fresh", backup_fresh_refuses_an_old_backup),
    (
        "migration-atomic",
        migration_atomic_rolls_back_a_failing_statement_and_names_its_line,
    ),
    ("verification", verification_fails_after_commit_with_exit_5),
    (
        "schema-diff",
        schema_diff_fails_on_an_object_no_operation_explains,
    ),
    (
        "probes",
        probes_fail_when_rows_changed_differs_from_the_expectation,
    ),
];

#[test]
fn every_step_has_a_test_that_makes_it_fail() {
    let covered: Vec<&str> = FAILING_CASES.iter().map(|(id, _)| *id).collect();
    let steps: Vec<&str> = sluice::gate::STEPS
        .iter()
        // the pre snapshots only record; a failure there is an internal error of the run
        .filter(|s| s.name != "pre-snapshots")
        .map(|s| s.name)
        .collect();
    assert_eq!(
        covered, steps,
        "each apply step needs a failing case in FAILING_CASES"
    );
}
