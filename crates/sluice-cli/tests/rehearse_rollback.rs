//! Rehearsal on a restored copy, and the gated rollback (SPEC §6), against real servers.
mod support;

use support::*;

fn rehearse_cmd(ready: &Ready) -> assert_cmd::Command {
    let mut cmd = sluice();
    cmd.arg("rehearse")
        .arg(&ready.dir)
        .arg("--evidence")
        .arg(ready.tmp.path().join("rehearsal-evidence"));
    if let Some(bindir) = sluice_testkit::server_bindir() {
        cmd.arg("--pg-bindir").arg(bindir);
    }
    cmd
}

fn records(ready: &Ready) -> Vec<serde_json::Value> {
    let mut paths: Vec<_> = std::fs::read_dir(ready.dir.join("rehearsals"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

#[test]
fn rehearse_from_the_target_passes_and_leaves_the_target_untouched() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    edit_manifest(
        &ready.dir,
        "[rehearsal]\nrequired = false",
        "[rehearsal]\nrequired = true",
    );
    let before = fingerprint(&conninfo);
    let assert = rehearse_cmd(&ready)
        .args(["--target", &conninfo])
        .assert()
        .success();
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("forecast: the migration held its locks for"),
        "{stderr}"
    );
    // one dump of the target, read back in full; the copy is not dumped again by its applies
    assert_eq!(
        stderr.matches("backup-restorable  skipped").count(),
        2,
        "{stderr}"
    );
    assert!(
        stderr.contains("rehearsal: this copy was restored from the backup the rehearsal took"),
        "{stderr}"
    );
    assert_eq!(
        before,
        fingerprint(&conninfo),
        "rehearsal changed the target"
    );
    let record = &records(&ready)[0];
    assert_eq!(record["passed"], true);
    let steps: Vec<&str> = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "backup",
            "restore",
            "apply",
            "verify",
            "rollback",
            "schema-equals-pre",
            "re-apply"
        ]
    );
    // … which is the cycle's table, in order
    let table: Vec<&str> = sluice::gate::REHEARSAL_CYCLE
        .iter()
        .map(|s| s.name())
        .collect();
    assert_eq!(steps, table);
    // the copy was analyzed (a dump carries no statistics) and each phase timed
    let restore = record["steps"][1]["detail"].as_str().unwrap();
    for said in [
        "at wal_level minimal (",
        "analyzed (",
        "restarted at wal_level replica (",
    ] {
        assert!(restore.contains(said), "want `{said}` in {restore}");
    }
    // the record now opens the rehearsal gate of apply
    approve_all(&ready);
    let assert = apply_cmd(&ready, &conninfo).assert().success();
    assert!(stderr_of(&assert).contains("passing rehearsal"));
}

/// The rehearsal runs the pipeline twice; each block of step lines has its heading.
/// The rehearsal runs as the production role with its real attributes and privileges (issue
/// #16): a migration that needs a privilege the role lacks fails there, with the server's own
/// "permission denied", as it will in production — not as a superuser that may do anything.
#[test]
fn a_migration_needing_a_privilege_the_production_role_lacks_fails_the_rehearsal() {
    let (cluster, conninfo) = own_fixture_target();
    let mut admin = cluster.admin();
    admin
        .batch_execute(
            "CREATE ROLE app_reader NOLOGIN;
             CREATE TABLE public.audit_log (id int PRIMARY KEY, note text);
             GRANT SELECT ON public.audit_log TO workflow_admin;
             GRANT app_reader TO workflow_admin;
             ALTER ROLE workflow_admin NOSUPERUSER CREATEDB;",
        )
        .unwrap();
    let ready = ready_package(&cluster);
    edit_pinned(&ready.dir, MIGRATION, |sql| {
        sql.replacen(
            "-- Step8",
            "INSERT INTO public.audit_log VALUES (1, 'phase alpha');\n-- Step8",
            1,
        )
    });
    edit_manifest(
        &ready.dir,
        "  \"create_table cutter_governance.canonical_address_alias\",",
        "  \"insert public.audit_log\",\n  \"create_table cutter_governance.canonical_address_alias\",",
    );
    let before = fingerprint(&conninfo);
    let assert = rehearse_cmd(&ready)
        .args(["--target", &conninfo])
        .assert()
        .code(3);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("permission denied for table audit_log"),
        "{stderr}"
    );
    assert_eq!(before, fingerprint(&conninfo), "the target changed");
    let record = records(&ready).pop().unwrap();
    assert_eq!(record["passed"], false);
    let restore = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "restore")
        .unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    for said in [
        "roles as the target has them",
        "workflow_admin (LOGIN, CREATEDB; member of app_reader)",
        "app_reader (NOLOGIN)",
        "privileges restored; applied as workflow_admin",
    ] {
        assert!(restore.contains(said), "want `{said}` in {restore}");
    }
}

#[test]
fn rehearsal_heads_its_two_step_blocks_apply_and_re_apply() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    let assert = rehearse_cmd(&ready)
        .args(["--target", &conninfo])
        .assert()
        .success();
    let stderr = stderr_of(&assert);
    let lines: Vec<&str> = stderr.lines().collect();
    let apply = lines.iter().position(|l| *l == "apply:");
    let again = lines.iter().position(|l| *l == "re-apply:");
    let (Some(apply), Some(again)) = (apply, again) else {
        panic!("no `apply:` and `re-apply:` headings in:\n{stderr}");
    };
    // each heading is followed by its own block, starting at step 1
    for heading in [apply, again] {
        assert!(
            lines[heading + 1]
                .trim_start()
                .starts_with("[ 1] exclusive-run"),
            "{stderr}"
        );
    }
    assert!(apply < again, "{stderr}");
}

#[test]
fn rehearse_from_a_backup_passes() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    let dump = ready.tmp.path().join("prod.dump");
    let status = std::process::Command::new(
        sluice::backup::find_tools(None)
            .unwrap()
            .bindir
            .join("pg_dump"),
    )
    .args(["-Fc", "-f"])
    .arg(&dump)
    .arg(&conninfo)
    .status()
    .unwrap();
    assert!(status.success());
    rehearse_cmd(&ready)
        .arg("--from-backup")
        .arg(&dump)
        .assert()
        .success();
    assert_eq!(records(&ready)[0]["passed"], true);
}

#[test]
fn a_rollback_that_leaves_a_column_behind_fails_the_rehearsal() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    edit_pinned(&ready.dir, ROLLBACK, |sql| {
        sql.replacen("ALTER TABLE public.tac_logical_unit  DROP COLUMN IF EXISTS canonical_address_format_version;", "", 1)
            .replacen("ALTER TABLE public.tac_logical_unit DROP COLUMN IF EXISTS canonical_address_format_version;", "", 1)
    });
    let assert = rehearse_cmd(&ready)
        .args(["--target", &conninfo])
        .assert()
        .code(3);
    let stderr = stderr_of(&assert);
    assert!(stderr.contains("error[rehearsal]"), "{stderr}");
    assert!(
        stderr.contains("left behind")
            && stderr.contains("public.tac_logical_unit.canonical_address_format_version"),
        "{stderr}"
    );
    let record = &records(&ready)[0];
    assert_eq!(record["passed"], false);
    // a failed record does not open the gate
    edit_manifest(
        &ready.dir,
        "[rehearsal]\nrequired = false",
        "[rehearsal]\nrequired = true",
    );
    approve_all(&ready);
    let assert = apply_cmd(&ready, &conninfo).assert().code(3);
    assert!(stderr_of(&assert).contains("error[rehearsal]"));
}

#[test]
fn a_rehearsal_of_another_digest_does_not_count() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    edit_manifest(
        &ready.dir,
        "[rehearsal]\nrequired = false",
        "[rehearsal]\nrequired = true",
    );
    rehearse_cmd(&ready)
        .args(["--target", &conninfo])
        .assert()
        .success();
    edit_manifest(&ready.dir, "lock_retries = 3", "lock_retries = 2");
    approve_all(&ready);
    let before = fingerprint(&conninfo);
    let assert = apply_cmd(&ready, &conninfo).assert().code(3);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("error[rehearsal]") && stderr.contains("for another digest"),
        "{stderr}"
    );
    assert_eq!(before, fingerprint(&conninfo));
}

/// Applies a copy whose V-α-3 fails after COMMIT (exit 5), and both reviewers sign its
/// rollback for V-α-3; returns the run folder.
fn applied_with_failing_verify(ready: &Ready, conninfo: &str) -> std::path::PathBuf {
    let run = applied_unapproved(ready, conninfo);
    approve_rollback_all(ready, &run, "V-α-3");
    run
}

/// The same, with no rollback approval signed yet.
fn applied_unapproved(ready: &Ready, conninfo: &str) -> std::path::PathBuf {
    edit_manifest(&ready.dir, "total = 86 }", "total = 87 }");
    approve_all(ready);
    apply_cmd(ready, conninfo).assert().code(5);
    last_run(ready)
}

fn rollback_cmd(
    ready: &Ready,
    conninfo: &str,
    run: &Path,
    check: &str,
    environment: &str,
) -> assert_cmd::Command {
    rollback_cmd_as(
        ready,
        conninfo,
        run,
        check,
        environment,
        "carol@example.com",
    )
}

fn rollback_cmd_as(
    ready: &Ready,
    conninfo: &str,
    run: &Path,
    check: &str,
    environment: &str,
    operator: &str,
) -> assert_cmd::Command {
    let mut cmd = sluice();
    cmd.arg("rollback")
        .arg(&ready.dir)
        .args([
            "--target",
            conninfo,
            "--environment",
            environment,
            "--failed-check",
            check,
            "--operator",
            operator,
            "--yes",
            "--run",
        ])
        .arg(run)
        .arg("--evidence")
        .arg(ready.tmp.path().join("evidence"));
    cmd
}

use std::path::Path;

#[test]
fn rollback_is_refused_without_a_failed_check() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    let run = applied_with_failing_verify(&ready, &conninfo);
    let before = fingerprint(&conninfo);
    let assert = rollback_cmd(&ready, &conninfo, &run, "V-α-1", "production")
        .assert()
        .code(3);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("error[failed-check]") && stderr.contains("V-α-1 holds"),
        "{stderr}"
    );
    let assert = rollback_cmd(&ready, &conninfo, &run, "P-8", "production")
        .assert()
        .code(3);
    assert!(stderr_of(&assert).contains("not a verify check"));
    assert_eq!(before, fingerprint(&conninfo));
}

#[test]
fn rollback_without_a_terminal_or_yes_is_refused_with_exit_3() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    let run = applied_with_failing_verify(&ready, &conninfo);
    let before = fingerprint(&conninfo);
    let runs_before = std::fs::read_dir(run.parent().unwrap()).unwrap().count();
    // the same command as rollback_cmd, without --yes (assert_cmd gives it no terminal)
    let assert = sluice()
        .arg("rollback")
        .arg(&ready.dir)
        .args(["--target", &conninfo, "--environment", "production"])
        .args(["--failed-check", "V-α-3", "--operator", "carol@example.com"])
        .arg("--run")
        .arg(&run)
        .arg("--evidence")
        .arg(ready.tmp.path().join("evidence"))
        .assert()
        .code(3);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("no terminal") && stderr.contains("--yes"),
        "{stderr}"
    );
    assert_eq!(before, fingerprint(&conninfo));
    let runs_after = std::fs::read_dir(run.parent().unwrap()).unwrap().count();
    assert_eq!(
        runs_before, runs_after,
        "a refused rollback wrote a run folder"
    );
}

/// `sluice rollback` of `run` for V-α-3, reaching the target through `via`, refused before it
/// changed anything: exit 3, `error[GATE]`, the target (`conninfo`) unchanged. Returns stderr.
fn rollback_refused(
    ready: &Ready,
    (conninfo, via): (&str, &str),
    run: &Path,
    environment: &str,
    gate: &str,
) -> String {
    let before = fingerprint(conninfo);
    let assert = rollback_cmd(ready, via, run, "V-α-3", environment)
        .assert()
        .code(3);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains(&format!("error[{gate}]")),
        "want error[{gate}] in:\n{stderr}"
    );
    assert_eq!(
        before,
        fingerprint(conninfo),
        "{gate} refused but the target changed"
    );
    stderr
}

#[test]
fn rollback_is_refused_on_another_environment() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    let run = applied_with_failing_verify(&ready, &conninfo);
    let stderr = rollback_refused(
        &ready,
        (&conninfo, &conninfo),
        &run,
        "staging",
        "rollback-run",
    );
    assert!(stderr.contains("not staging"), "{stderr}");
}

#[test]
fn rollback_is_refused_with_a_tampered_rollback_file() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    let run = applied_with_failing_verify(&ready, &conninfo);
    let sql = read(&ready.dir, ROLLBACK);
    write(
        &ready.dir,
        ROLLBACK,
        &sql.replacen(
            "COMMIT;",
            "DROP TABLE public.tac_logical_unit CASCADE;\nCOMMIT;",
            1,
        ),
    );
    let before = fingerprint(&conninfo);
    let assert = rollback_cmd(&ready, &conninfo, &run, "V-α-3", "production")
        .assert()
        .code(3);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("error[sql-integrity]") && stderr.contains("phase-alpha-r2-rollback.sql"),
        "{stderr}"
    );
    assert_eq!(before, fingerprint(&conninfo));
}

#[test]
fn a_real_rollback_returns_the_schema_and_its_restore_script_returns_the_data() {
    let (cluster, conninfo) = fixture_target();
    let original = fingerprint(&conninfo);
    let mut client = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    let updated_at = |c: &mut postgres::Client| -> Vec<String> {
        c.query(
            "SELECT id::text || '=' || updated_at::text FROM public.tac_logical_unit ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let values_before = updated_at(&mut client);
    let ready = ready_package(&cluster);
    let run = applied_with_failing_verify(&ready, &conninfo);
    assert_ne!(
        updated_at(&mut client),
        values_before,
        "the trigger bumped updated_at"
    );

    let assert = rollback_cmd(&ready, &conninfo, &run, "V-α-3", "production")
        .assert()
        .success();
    let stderr = stderr_of(&assert);
    assert!(stderr.contains("cannot restore 86 changed"), "{stderr}");
    let rollback_dir = last_run(&ready);
    assert!(
        rollback_dir
            .to_string_lossy()
            .ends_with("-production-rollback"),
        "{}",
        rollback_dir.display()
    );
    assert_eq!(run_json(&rollback_dir)["kind"], "rollback");
    assert_rollback_evidence_holds_the_approvals(&rollback_dir, &run);
    let report = read(&rollback_dir, "report.html");
    assert!(report.contains("sluice rollback report"), "{report}");
    assert!(read(&rollback_dir, "SHA256SUMS").contains("  report.html\n"));
    sluice()
        .args(["evidence", "check"])
        .arg(&rollback_dir)
        .assert()
        .success();
    // the schema is back; the data is not (the 86 updated_at values)
    assert_ne!(original, fingerprint(&conninfo));

    // the application writes one row after the rollback: the script must leave it alone
    let written: String = client
        .query_one(
            "UPDATE public.tac_logical_unit SET updated_at = '2031-02-03 04:05:06+00' \
              WHERE id = (SELECT min(id) FROM public.tac_logical_unit) RETURNING id::text",
            &[],
        )
        .unwrap()
        .get(0);
    let after_app_write = updated_at(&mut client);
    let script = rollback_dir.join("restore/tac-updated-at.restore.sql");
    let out = run_psql(&script, &conninfo);
    assert!(
        out.contains(&format!(
            "{written} | written since the migration: left as it is"
        )),
        "{out}"
    );
    let now = updated_at(&mut client);
    for ((now, before), app) in now.iter().zip(&values_before).zip(&after_app_write) {
        if now.starts_with(&format!("{written}=")) {
            assert_eq!(now, app, "the row the application wrote was reset");
        } else {
            assert_eq!(
                now, before,
                "the restore script did not bring updated_at back"
            );
        }
    }
}

/// Runs a script with psql, asserting success; its standard output.
fn run_psql(script: &Path, conninfo: &str) -> String {
    let psql = sluice::backup::find_tools(None)
        .unwrap()
        .bindir
        .join("psql");
    let out = std::process::Command::new(psql)
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(script)
        .arg(conninfo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_restore_script_works_for_a_table_owner_who_is_not_superuser() {
    let (cluster, conninfo) = own_fixture_target();
    let mut admin = cluster.connect("postgres").unwrap();
    let mut client = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    let values = |c: &mut postgres::Client| -> Vec<String> {
        c.query(
            "SELECT id::text || '=' || updated_at::text FROM public.tac_logical_unit ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let before = values(&mut client);
    // the owner of every fixture object, as on a managed server: no superuser
    admin
        .batch_execute("ALTER ROLE workflow_admin NOSUPERUSER")
        .unwrap();
    let ready = ready_package(&cluster);
    let run = applied_with_failing_verify(&ready, &conninfo);
    let assert = rollback_cmd(&ready, &conninfo, &run, "V-α-3", "production")
        .assert()
        .success();
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("disabled inside its transaction, as the owner may"),
        "{stderr}"
    );
    let script = last_run(&ready).join("restore/tac-updated-at.restore.sql");
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(
        !text.contains("session_replication_role = replica;"),
        "{text}"
    );
    run_psql(&script, &conninfo);
    assert_eq!(
        values(&mut client),
        before,
        "updated_at is back, written by the owner"
    );
    // the triggers are enabled again
    let disabled: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.tac_logical_unit'::regclass AND NOT tgisinternal AND tgenabled = 'D'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(disabled, 0);
}

fn schema_only(conninfo: &str) -> String {
    let mut client = postgres::Client::connect(conninfo, postgres::NoTls).unwrap();
    serde_json::to_string(
        &sluice::catalog::snapshot(&mut client, sluice::catalog::SnapshotOptions::new(&[]))
            .unwrap()
            .snapshot,
    )
    .unwrap()
}

#[test]
fn a_rollback_that_leaves_a_column_behind_exits_6_at_schema_equals_pre() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    edit_pinned(&ready.dir, ROLLBACK, |sql| {
        sql.replacen("ALTER TABLE public.tac_logical_unit  DROP COLUMN IF EXISTS canonical_address_format_version;", "", 1)
            .replacen("ALTER TABLE public.tac_logical_unit DROP COLUMN IF EXISTS canonical_address_format_version;", "", 1)
    });
    let run = applied_with_failing_verify(&ready, &conninfo);
    let assert = rollback_cmd(&ready, &conninfo, &run, "V-α-3", "production")
        .assert()
        .code(6);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("error[schema-equals-pre]")
            && stderr.contains("public.tac_logical_unit.canonical_address_format_version"),
        "{stderr}"
    );
}

#[test]
fn a_rollback_statement_that_fails_rolls_the_rollback_back_and_exits_6() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    edit_pinned(&ready.dir, ROLLBACK, |sql| {
        sql.replacen("COMMIT;", "DROP TABLE public.no_such_table;\nCOMMIT;", 1)
    });
    let run = applied_with_failing_verify(&ready, &conninfo);
    let after_apply = schema_only(&conninfo);
    let assert = rollback_cmd(&ready, &conninfo, &run, "V-α-3", "production")
        .assert()
        .code(6);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("error[rollback-atomic]") && stderr.contains("no_such_table"),
        "{stderr}"
    );
    assert_eq!(
        after_apply,
        schema_only(&conninfo),
        "a failed rollback left part of itself behind"
    );
}

/// A package from `sluice init` names no `[target].database` (it is commented out): the
/// rehearsal restores into the target's own database, current_database(), and passes.
#[test]
fn an_initd_package_without_a_target_database_can_be_rehearsed() {
    let (_cluster, conninfo) = fixture_target();
    let before = fingerprint(&conninfo);
    let stderr = rehearse_a_starter_package(&conninfo);
    let database: String = postgres::Client::connect(&conninfo, postgres::NoTls)
        .unwrap()
        .query_one("SELECT current_database()::text", &[])
        .unwrap()
        .get(0);
    assert!(
        stderr.contains(&format!("restored {database} with pg_restore")),
        "{stderr}"
    );
    assert_eq!(
        before,
        fingerprint(&conninfo),
        "rehearsal changed the target"
    );
}

/// Many applications live in the database called `postgres`; a fresh rehearsal cluster has
/// one already (empty), which the rehearsal makes again for the restore instead of failing
/// with "database postgres already exists".
#[test]
fn a_target_database_called_postgres_can_be_rehearsed() {
    let (cluster, _conninfo) = own_fixture_target();
    let conninfo = cluster.conninfo("postgres", cluster.superuser());
    let stderr = rehearse_a_starter_package(&conninfo);
    assert!(
        stderr.contains("restored postgres with pg_restore"),
        "{stderr}"
    );
}

/// `sluice init` (no `[target].database`), then `sluice rehearse` of it against `conninfo`,
/// which must pass; its stderr.
fn rehearse_a_starter_package(conninfo: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("starter");
    sluice().arg("init").arg(&dir).assert().success();
    assert!(read(&dir, "sluice.toml").contains("# database = "));
    let mut cmd = sluice();
    cmd.arg("rehearse")
        .arg(&dir)
        .args(["--target", conninfo, "--evidence"])
        .arg(tmp.path().join("evidence"));
    if let Some(bindir) = sluice_testkit::server_bindir() {
        cmd.arg("--pg-bindir").arg(bindir);
    }
    let assert = cmd.assert();
    let stderr = stderr_of(&assert);
    assert!(
        assert.get_output().status.success() && stderr.contains("rehearsal passed"),
        "{stderr}"
    );
    stderr
}

/// The rollback's evidence holds a copy of each approval it counted (both reviewers'), byte
/// for byte, 0600, recorded in its run.json with signer, decision and sha256.
fn assert_rollback_evidence_holds_the_approvals(rollback_dir: &Path, apply_run: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let record = run_json(rollback_dir);
    let used = record["rollback_approvals"].as_array().unwrap();
    let mut signers: Vec<&str> = used.iter().map(|u| u["signer"].as_str().unwrap()).collect();
    signers.sort();
    assert_eq!(signers, SIGNERS);
    for u in used {
        assert_eq!(u["decision"], "pass");
        let rel = u["file"].as_str().unwrap();
        assert!(rel.starts_with("rollback-approvals/"), "{rel}");
        let copy = std::fs::read(rollback_dir.join(rel)).unwrap();
        assert_eq!(
            sluice::digest::sha256_hex(&copy),
            u["sha256"].as_str().unwrap()
        );
        let name = Path::new(rel).file_name().unwrap();
        assert_eq!(
            copy,
            std::fs::read(apply_run.join("rollback-approvals").join(name)).unwrap()
        );
        let mode = std::fs::metadata(rollback_dir.join(rel))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(read(rollback_dir, "SHA256SUMS").contains(rel));
    }
    let dir_mode = std::fs::metadata(apply_run.join("rollback-approvals"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    // the apply's own bundle still checks: rollback approvals are added to it on purpose
    sluice()
        .args(["evidence", "check"])
        .arg(apply_run)
        .assert()
        .success();
}

/// A copy of the apply run folder at `parent/name`, its run.json edited by `edit`.
fn copied_run(
    run: &Path,
    parent: &Path,
    name: &str,
    edit: impl Fn(&str) -> String,
) -> std::path::PathBuf {
    let to = parent.join(name);
    std::fs::create_dir_all(&to).unwrap();
    let text = std::fs::read_to_string(run.join("run.json")).unwrap();
    std::fs::write(to.join("run.json"), edit(&text)).unwrap();
    to
}

/// Signs the rollback of `signed_for` for `check` by both reviewers, into `run`'s folder.
fn approve_into(ready: &Ready, signed_for: &Path, check: &str, run: &Path) {
    let _ = std::fs::remove_dir_all(run.join("rollback-approvals"));
    for name in SIGNERS {
        approve_rollback_cmd(ready, signed_for, check, name)
            .arg("--into")
            .arg(run.join("rollback-approvals"))
            .assert()
            .success();
    }
}

#[test]
fn a_rollback_needs_enough_signed_approvals_of_this_very_rollback() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    let run = applied_unapproved(&ready, &conninfo);
    let before = fingerprint(&conninfo);
    let refused = |operator: &str, why: &str| {
        let assert = rollback_cmd_as(&ready, &conninfo, &run, "V-α-3", "production", operator)
            .assert()
            .code(3);
        let stderr = stderr_of(&assert);
        assert!(
            stderr.contains("error[approvals]") && stderr.contains(why),
            "want error[approvals] and `{why}` in:\n{stderr}"
        );
        assert_eq!(
            before,
            fingerprint(&conninfo),
            "refused ({why}) but the target changed"
        );
        let record = run_json(&last_run(&ready));
        assert_eq!(record["kind"], "rollback");
        assert_eq!(record["failed_gate"], "approvals");
    };

    // approve-rollback refuses a signer allowed_signers does not list, or a key not theirs
    let mallory = ready.keys.join("mallory");
    sluice::approval::generate_ed25519(&mallory, "mallory").unwrap();
    let assert = sluice()
        .arg("approve-rollback")
        .arg(&ready.dir)
        .arg("--run")
        .arg(&run)
        .args(["--failed-check", "V-α-3", "--signer", "mallory@example.com"])
        .args(["--decision", "pass", "--key"])
        .arg(&mallory)
        .assert()
        .code(2);
    assert!(stderr_of(&assert).contains("not in allowed_signers"));
    let assert = sluice()
        .arg("approve-rollback")
        .arg(&ready.dir)
        .arg("--run")
        .arg(&run)
        .args(["--failed-check", "V-α-3", "--signer", "alice@example.com"])
        .args(["--decision", "pass", "--key"])
        .arg(ready.keys.join("bob@example.com"))
        .assert()
        .code(2);
    assert!(
        stderr_of(&assert).contains("does not list"),
        "{}",
        stderr_of(&assert)
    );
    assert!(!run.join("rollback-approvals").exists());

    // none at all
    refused("carol@example.com", "0 of 2 required rollback approval(s)");

    // another run: a copy of the run under another name
    let other = copied_run(&run, ready.tmp.path(), "20990101T000000Z-production", |t| {
        t.to_string()
    });
    approve_into(&ready, &other, "V-α-3", &run);
    refused(
        "carol@example.com",
        "signed for run 20990101T000000Z-production, not",
    );

    // the same run id, but another run.json (edited since the approvals were signed)
    let run_name = run.file_name().unwrap().to_str().unwrap().to_string();
    let edited = copied_run(&run, &ready.tmp.path().join("elsewhere"), &run_name, |t| {
        format!("{t}\n")
    });
    approve_into(&ready, &edited, "V-α-3", &run);
    refused("carol@example.com", "signed for a run.json with sha256");

    // another environment
    let staging = copied_run(&run, &ready.tmp.path().join("staging"), &run_name, |t| {
        t.replacen(
            "\"environment\": \"production\"",
            "\"environment\": \"staging\"",
            1,
        )
    });
    approve_into(&ready, &staging, "V-α-3", &run);
    refused(
        "carol@example.com",
        "signed for environment staging, not production",
    );

    // another check
    approve_into(&ready, &run, "V-α-1", &run);
    refused(
        "carol@example.com",
        "signed for failed check V-α-1, not V-α-3",
    );

    // an edited signature file: alice's note changed after she signed
    approve_rollback_all(&ready, &run, "V-α-3");
    let approvals = run.join("rollback-approvals");
    let alice = std::fs::read_dir(&approvals)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("alice"))
        .unwrap();
    let text = std::fs::read_to_string(&alice).unwrap();
    std::fs::write(
        &alice,
        text.replacen("note = \"\"", "note = \"fine by me\"", 1),
    )
    .unwrap();
    refused(
        "carol@example.com",
        "signature does not verify: the file was edited or forged",
    );

    // signed by the operator: alice runs the rollback she approved
    approve_rollback_all(&ready, &run, "V-α-3");
    refused(
        "alice@example.com",
        "separation of duties: the operator alice@example.com",
    );

    // a reject blocks, whatever else was signed
    sluice()
        .arg("approve-rollback")
        .arg(&ready.dir)
        .arg("--run")
        .arg(&run)
        .args(["--failed-check", "V-α-3", "--signer", "bob@example.com"])
        .args([
            "--decision",
            "reject",
            "--note",
            "restore from backup instead",
            "--key",
        ])
        .arg(ready.keys.join("bob@example.com"))
        .assert()
        .success();
    refused(
        "carol@example.com",
        "rollback rejected by bob@example.com (\"restore from backup instead\")",
    );

    // enough valid ones: the rollback runs, and its evidence holds them
    approve_rollback_all(&ready, &run, "V-α-3");
    rollback_cmd(&ready, &conninfo, &run, "V-α-3", "production")
        .assert()
        .success();
    let rollback_dir = last_run(&ready);
    assert_eq!(run_json(&rollback_dir)["status"], "succeeded");
    assert_rollback_evidence_holds_the_approvals(&rollback_dir, &run);
}

#[test]
fn rollback_exclusive_run_refuses_while_another_run_holds_the_lock() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    let run = applied_with_failing_verify(&ready, &conninfo);
    let mut holder = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    let key = sluice::pipeline::lock_key("dot-iu-cutter-v0.2-phase-alpha");
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&key])
        .unwrap();
    let stderr = rollback_refused(
        &ready,
        (&conninfo, &conninfo),
        &run,
        "production",
        "exclusive-run",
    );
    assert!(stderr.contains("holds the lock"), "{stderr}");
    assert_eq!(run_json(&last_run(&ready))["failed_gate"], "exclusive-run");
}

#[test]
fn rollback_target_identity_refuses_another_database() {
    let (cluster, conninfo) = own_fixture_target();
    let ready = ready_package(&cluster);
    let run = applied_with_failing_verify(&ready, &conninfo);
    let elsewhere = conninfo.replace("dbname=directus", "dbname=postgres");
    assert_ne!(elsewhere, conninfo);
    let stderr = rollback_refused(
        &ready,
        (&conninfo, &elsewhere),
        &run,
        "production",
        "target-identity",
    );
    assert!(
        stderr.contains("database is postgres but must be directus"),
        "{stderr}"
    );
}

/// One test per rollback step that makes it fail for real (the restore script only records):
/// a step added to `gate::ROLLBACK_STEPS` without its failing test fails
/// `every_rollback_step_has_a_test_that_makes_it_fail`.
const ROLLBACK_FAILING_CASES: &[(&str, fn())] = &[
    (
        "sql-integrity",
        rollback_is_refused_with_a_tampered_rollback_file,
    ),
    ("rollback-run", rollback_is_refused_on_another_environment),
    ("failed-check", rollback_is_refused_without_a_failed_check),
    (
        "approvals",
        a_rollback_needs_enough_signed_approvals_of_this_very_rollback,
    ),
    (
        "exclusive-run",
        rollback_exclusive_run_refuses_while_another_run_holds_the_lock,
    ),
    (
        "target-identity",
        rollback_target_identity_refuses_another_database,
    ),
    (
        "rollback-atomic",
        a_rollback_statement_that_fails_rolls_the_rollback_back_and_exits_6,
    ),
    (
        "schema-equals-pre",
        a_rollback_that_leaves_a_column_behind_exits_6_at_schema_equals_pre,
    ),
];

#[test]
fn every_rollback_step_has_a_test_that_makes_it_fail() {
    let covered: Vec<&str> = ROLLBACK_FAILING_CASES.iter().map(|(id, _)| *id).collect();
    let steps: Vec<&str> = sluice::gate::ROLLBACK_STEPS
        .iter()
        .filter(|s| s.gate.is_some() && s.name != "restore-script")
        .map(|s| s.name)
        .collect();
    assert_eq!(
        covered, steps,
        "each rollback step needs a failing case in ROLLBACK_FAILING_CASES"
    );
}

/// The first apply's evidence folder of a rehearsal record.
fn first_apply_dir(record: &serde_json::Value) -> std::path::PathBuf {
    let detail = record["steps"][2]["detail"].as_str().unwrap();
    let (_, dir) = detail.split_once("evidence ").unwrap();
    std::path::PathBuf::from(dir.trim())
}

/// Issue #18: the streamed restore (the dump read by pg_restore as it is written, then the
/// post-data section with parallel jobs) gives the rehearsal the same copy as a dump followed
/// by a parallel restore: same catalog (partitions, triggers, policies, grants, comments,
/// sequences) and same row counts, as seen by the rehearsal's own pre snapshot.
#[test]
fn a_streamed_restore_gives_the_same_copy_as_a_restore_after_the_dump() {
    let (cluster, conninfo) = own_fixture_target();
    cluster
        .admin()
        .batch_execute(
            "CREATE ROLE app_reader NOLOGIN;
             CREATE TABLE public.events (id bigint GENERATED ALWAYS AS IDENTITY, at date NOT NULL,
                                         note text) PARTITION BY RANGE (at);
             CREATE TABLE public.events_2026 PARTITION OF public.events
                 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
             CREATE TABLE public.events_2027 PARTITION OF public.events
                 FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
             CREATE INDEX ON public.events (at);
             INSERT INTO public.events (at, note)
                 SELECT date '2026-06-01' + g % 400, repeat('x', g % 50) FROM generate_series(1, 5000) g;
             CREATE FUNCTION public.events_touch() RETURNS trigger LANGUAGE plpgsql
                 AS $$ BEGIN NEW.note := coalesce(NEW.note, ''); RETURN NEW; END $$;
             CREATE TRIGGER events_touch BEFORE INSERT ON public.events_2026
                 FOR EACH ROW EXECUTE FUNCTION public.events_touch();
             ALTER TABLE public.events_2026 ENABLE ROW LEVEL SECURITY;
             CREATE POLICY recent ON public.events_2026 TO app_reader USING (at > date '2026-03-01');
             GRANT SELECT ON public.events TO app_reader;
             COMMENT ON TABLE public.events IS 'partitioned, with a trigger and a policy';
             CREATE SEQUENCE public.ticket_no START 1;
             SELECT setval('public.ticket_no', 4242);",
        )
        .unwrap();
    let before = fingerprint(&conninfo);
    let mut seen = Vec::new();
    for way in ["streamed", "after-dump"] {
        let ready = ready_package(&cluster);
        let assert = rehearse_cmd(&ready)
            .args(["--target", &conninfo, "--restore", way])
            .assert()
            .success();
        let stderr = stderr_of(&assert);
        let record = records(&ready).pop().unwrap();
        assert_eq!(record["passed"], true, "{stderr}");
        let restore = record["steps"][1]["detail"].as_str().unwrap();
        let backup = record["steps"][0]["detail"].as_str().unwrap();
        let said = match way {
            "streamed" => "as the dump was written (schema and data, done ",
            _ => " -j ",
        };
        assert!(restore.contains(said), "want `{said}` in {restore}");
        assert!(restore.contains("at wal_level minimal ("), "{restore}");
        if way == "streamed" {
            assert!(
                backup.contains("restored as it was written: as asked (--restore streamed)"),
                "{backup}"
            );
        }
        let run = first_apply_dir(&record);
        let read = |rel: &str| std::fs::read_to_string(run.join(rel)).unwrap();
        seen.push((read("schema/pre.json"), read("counts/pre.json")));
        // nothing of the rehearsal is left behind: its folder is gone with its cluster
        assert!(
            !std::path::Path::new(backup.split(" (").next().unwrap()).exists(),
            "{backup}"
        );
    }
    assert_eq!(before, fingerprint(&conninfo), "the target changed");
    assert!(seen[0].0.contains("events_2026"), "{}", seen[0].0);
    assert!(seen[0].0.contains("recent"), "the policy is in the copy");
    assert_eq!(seen[0].0, seen[1].0, "the two copies' catalogs differ");
    assert_eq!(seen[0].1, seen[1].1, "the two copies' row counts differ");
}

/// A streamed rehearsal whose cluster cannot be made stops the dump at once and says why.
#[test]
fn a_streamed_rehearsal_whose_cluster_cannot_start_stops_the_dump() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    let missing = ready.tmp.path().join("no-server-here");
    let assert = sluice()
        .arg("rehearse")
        .arg(&ready.dir)
        .args(["--target", &conninfo, "--restore", "streamed"])
        .arg("--pg-bindir")
        .arg(&missing)
        .arg("--evidence")
        .arg(ready.tmp.path().join("rehearsal-evidence"))
        .timeout(std::time::Duration::from_secs(120))
        .assert()
        .code(3);
    let stderr = stderr_of(&assert);
    assert!(stderr.contains("error[rehearsal]"), "{stderr}");
    assert!(stderr.contains("no-server-here"), "{stderr}");
    assert!(!stderr.contains("stopped: the restore"), "{stderr}");
}
