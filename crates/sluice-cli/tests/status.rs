//! `sluice status` against a real server: the runs of the reference package on this target,
//! from the evidence, matched by database and system identifier (issue #19, item 3).

mod support;

use support::*;

#[test]
fn status_lists_the_runs_of_this_target_from_the_evidence() {
    let (cluster, conninfo) = own_fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    let evidence = ready.tmp.path().join("evidence");
    // an approver may not operate: refused at the approvals gate, after the identity was read
    apply_as(&ready, &conninfo, "alice@example.com", &evidence)
        .assert()
        .code(3);
    apply_cmd(&ready, &conninfo).assert().success();
    let digest = String::from_utf8(
        sluice()
            .arg("digest")
            .arg(&ready.dir)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();

    let out = sluice()
        .args(["status", "--json", "--target", &conninfo, "--evidence"])
        .arg(&evidence)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let status = &doc["status"];
    assert_eq!(status["database"], "directus");
    let runs = status["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{status:#}");
    let (refused, applied) = (&runs[0], &runs[1]);
    assert_eq!(refused["kind"], "apply");
    assert_eq!(refused["outcome"], "failed");
    assert_eq!(refused["exit_code"], 3);
    assert_eq!(refused["failed_gate"], "approvals");
    assert_eq!(refused["operator"], "alice@example.com");
    assert_eq!(refused["committed"], false);
    assert_eq!(applied["package"], "dot-iu-cutter-v0.2-phase-alpha");
    assert_eq!(applied["digest"], digest.as_str());
    assert_eq!(applied["environment"], "production");
    assert_eq!(applied["operator"], "carol@example.com");
    assert_eq!(applied["outcome"], "succeeded");
    assert_eq!(applied["committed"], true);
    assert_eq!(applied["rollback"], serde_json::Value::Null);
    assert_eq!(applied["in_ledger"], true);
    assert_eq!(applied["run"], last_run(&ready).to_string_lossy().as_ref());
    assert!(applied["started_at"].as_str().unwrap() >= refused["started_at"].as_str().unwrap());

    // the same, for the package named, as a table
    let out = sluice()
        .arg("status")
        .arg(&ready.dir)
        .args(["--target", &conninfo, "--evidence"])
        .arg(&evidence)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("runs against database directus"),
        "{text}"
    );
    assert!(
        lines[2].contains("failed (exit 3, approvals)") && lines[2].contains("alice@example.com"),
        "{text}"
    );
    assert!(
        lines[3].contains("succeeded")
            && lines[3].contains(&digest[..12])
            && lines[3].contains("production")
            && lines[3].ends_with(" no"),
        "{text}"
    );

    // another database of the same cluster has had nothing applied
    let mut admin = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    admin.batch_execute("CREATE DATABASE elsewhere").unwrap();
    let other = conninfo.replace("dbname=directus", "dbname=elsewhere");
    assert_ne!(
        other, conninfo,
        "the conninfo names no dbname=directus: {conninfo}"
    );
    let out = sluice()
        .args(["status", "--json", "--target", &other, "--evidence"])
        .arg(&evidence)
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"]["runs"], serde_json::json!([]), "{doc:#}");
}
