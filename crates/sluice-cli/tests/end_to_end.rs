//! The demo, verify's drift report, evidence tampering, and a kill -9 in the middle of a run.
mod support;

use support::*;

#[test]
fn the_demo_runs_the_reference_package_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = sluice();
    cmd.arg("demo")
        .arg("--workdir")
        .arg(tmp.path().join("demo"));
    if let Some(bindir) = sluice_testkit::server_bindir() {
        cmd.arg("--pg-bindir").arg(bindir);
    }
    let assert = cmd.assert().success();
    let stderr = stderr_of(&assert);
    for want in [
        "tac_authority_draft=86 tac_authority_enacted=0 tac_authority_runtime=0 tac_authority_null=0 tac_format_v1=86 sandbox_authority_null=76 sandbox_format_v1=76 alias_table_present=1",
        "updated_at: distinct 3 → 1",
        "rows changed: 86/86",
        "rehearsal passed",
        "2 of 2 required approvals",
        "8. verify: 16 check(s) hold, schema drift: none",
    ] {
        assert!(stderr.contains(want), "missing `{want}` in:\n{stderr}");
    }
    let stamp = std::fs::read_dir(tmp.path().join("demo"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let review = std::fs::read_to_string(stamp.join("review.html")).unwrap();
    assert!(review.contains("§8 — Digest</h2>"), "{review}");
}

#[test]
fn verify_reports_drift_object_by_object() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    apply_cmd(&ready, &conninfo).assert().success();
    let verify = |ready: &Ready| {
        let mut cmd = sluice();
        cmd.arg("verify")
            .arg(&ready.dir)
            .args(["--target", &conninfo, "--evidence"])
            .arg(ready.tmp.path().join("evidence"));
        cmd
    };
    let assert = verify(&ready).assert().success();
    assert!(stderr_of(&assert).contains("schema: no drift"));
    let mut admin = cluster.admin();
    admin.batch_execute("DROP INDEX cutter_governance.ix_alias_kind; ALTER TABLE public.tac_logical_unit ALTER COLUMN authority SET DEFAULT 'enacted';").unwrap();
    let assert = verify(&ready).assert().code(5);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("removed Index cutter_governance.ix_alias_kind"),
        "{stderr}"
    );
    assert!(
        stderr.contains("changed Column public.tac_logical_unit.authority (default)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("V-α-2") && stderr.contains("FAILS"),
        "{stderr}"
    );
}

#[test]
fn verify_needs_a_baseline_applied_to_this_same_target() {
    let (cluster, conninfo) = own_fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    apply_cmd(&ready, &conninfo).assert().success();
    let applied = last_run(&ready);
    let verify = |conninfo: &str, evidence: &std::path::Path| {
        let mut cmd = sluice();
        cmd.arg("verify")
            .arg(&ready.dir)
            .args(["--target", conninfo, "--evidence"])
            .arg(evidence);
        cmd
    };
    // no evidence here: an error, not a pass
    let elsewhere = tempfile::tempdir().unwrap();
    let assert = verify(&conninfo, elsewhere.path()).assert().code(2);
    let stderr = stderr_of(&assert);
    assert!(stderr.contains("no successful apply of digest"), "{stderr}");
    assert!(
        !stderr.contains("holds"),
        "no check reported as holding: {stderr}"
    );

    // another cluster with a database of the same name: the run is not its baseline
    let (_other, other_conninfo) = own_fixture_target();
    let assert = verify(&other_conninfo, &ready.tmp.path().join("evidence"))
        .assert()
        .code(2);
    assert!(stderr_of(&assert).contains("no successful apply"));
    let assert = verify(&other_conninfo, elsewhere.path())
        .arg("--run")
        .arg(&applied)
        .assert()
        .code(2);
    let stderr = stderr_of(&assert);
    assert!(stderr.contains("it applied to another cluster"), "{stderr}");

    // a rehearsal's run is never a baseline, even when named
    let mut record = run_json(&applied);
    record["kind"] = serde_json::json!("rehearsal-apply");
    let copy = ready.tmp.path().join("rehearsal-like");
    std::fs::create_dir_all(copy.join("schema")).unwrap();
    std::fs::copy(
        applied.join("schema/post.json"),
        copy.join("schema/post.json"),
    )
    .unwrap();
    std::fs::write(copy.join("run.json"), record.to_string()).unwrap();
    let assert = verify(&conninfo, elsewhere.path())
        .arg("--run")
        .arg(&copy)
        .assert()
        .code(2);
    assert!(stderr_of(&assert).contains("it is a rehearsal-apply run"));
}

#[test]
fn evidence_check_names_a_changed_file_and_a_broken_chain() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    apply_cmd(&ready, &conninfo).assert().success();
    let run = last_run(&ready);
    sluice()
        .args(["evidence", "check"])
        .arg(&run)
        .assert()
        .success();
    let report = read(&run, "report.md");
    write(
        &run,
        "report.md",
        &report.replace("SUCCEEDED", "SUCCEEDED (edited)"),
    );
    let assert = sluice()
        .args(["evidence", "check"])
        .arg(&run)
        .assert()
        .code(1);
    assert!(stderr_of(&assert).contains("changed: report.md"));
    write(&run, "report.md", &report);
    let ledger = ready.tmp.path().join("evidence/ledger.jsonl");
    let text = std::fs::read_to_string(&ledger).unwrap();
    std::fs::write(&ledger, format!("{{\"forged\":true}}\n{text}")).unwrap();
    let assert = sluice()
        .args(["evidence", "check"])
        .arg(&run)
        .assert()
        .code(1);
    assert!(
        stderr_of(&assert).contains("ledger"),
        "{}",
        stderr_of(&assert)
    );
}

#[test]
fn a_kill_during_the_migration_leaves_the_target_unchanged_and_run_json_says_how_far() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    let before = fingerprint(&conninfo);
    let output = apply_cmd(&ready, &conninfo)
        .env("SLUICE_FAULT_KILL_AT", "migration-atomic")
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        output.status.signal(),
        Some(9),
        "the fault hook did not fire: {output:?}"
    );
    assert_eq!(
        before,
        fingerprint(&conninfo),
        "a killed apply changed the target"
    );
    let run = run_json(&last_run(&ready));
    assert_eq!(run["status"], "running");
    assert_eq!(run["migration_committed"], false);
    let last = run["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["name"], "migration-atomic");
    assert_eq!(last["status"], "running");
    // the change is not in: a new run proceeds and succeeds
    apply_cmd(&ready, &conninfo).assert().success();
}

#[test]
fn json_output_is_one_document_on_every_verb() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    let doc = |args: &[&str]| -> serde_json::Value {
        let out = sluice().arg("--json").args(args).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    };
    let dir = ready.dir.to_str().unwrap();
    assert_eq!(doc(&["digest", dir])["digest"].as_str().unwrap().len(), 64);
    assert_eq!(doc(&["lint", dir])["ok"], true);
    assert_eq!(doc(&["pin", dir])["pins"].as_array().unwrap().len(), 2);
    assert!(doc(&["review", dir, "--target", &conninfo])["live"]["identity"].is_array());
    let refused = doc(&[
        "apply",
        dir,
        "--target",
        &conninfo,
        "--environment",
        "production",
        "--operator",
        "carol",
        "--yes",
        "--evidence",
        ready.tmp.path().join("ev").to_str().unwrap(),
    ]);
    assert_eq!(refused["exit_code"], 3);
    assert_eq!(refused["run"]["failed_gate"], "approvals");
    approve_all(&ready);
    let applied = doc(&[
        "apply",
        dir,
        "--target",
        &conninfo,
        "--environment",
        "production",
        "--operator",
        "carol",
        "--yes",
        "--evidence",
        ready.tmp.path().join("ev").to_str().unwrap(),
    ]);
    assert_eq!(applied["ok"], true);
    assert_eq!(applied["run"]["steps"].as_array().unwrap().len(), 15);
    let verified = doc(&[
        "verify",
        dir,
        "--target",
        &conninfo,
        "--evidence",
        ready.tmp.path().join("ev").to_str().unwrap(),
    ]);
    assert_eq!(verified["ok"], true);
    let run = applied["evidence"].as_str().unwrap();
    assert_eq!(doc(&["evidence", "check", run])["ok"], true);
}
