//! Acknowledged deviations (issue #20, the seed's G-7): a preflight check that returns another
//! value than it expects passes "as acknowledged" only when enough distinct reviewers signed an
//! acknowledgement of exactly that value; a verify check or `[migration.expect]` never does.
mod support;

use sluice::approval::{Acknowledgement, Decision};
use support::*;

/// A preflight check the migration does not depend on: `public.app_event has 5 rows`.
const APP_EVENT_CHECK: &str = r#"[[preflight]]
id = "P-11"
title = "public.app_event has 5 rows"
sql = "SELECT count(*) FROM public.app_event"
expect = 5

"#;

/// `sluice approve` by `signer` acknowledging `acknowledge` with `note`.
fn acknowledge(ready: &Ready, signer: &str, acknowledge: &str, note: &str) -> assert_cmd::Command {
    let mut cmd = sluice();
    cmd.arg("approve")
        .arg(&ready.dir)
        .args(["--signer", signer, "--decision", "pass", "--key"])
        .arg(ready.keys.join(signer))
        .args(["--acknowledge", acknowledge, "--note", note]);
    cmd
}

/// The reference package with P-11, on a target whose public.app_event has drifted to 6 rows,
/// approved by both reviewers.
fn drifted() -> (sluice_testkit::FixtureDb, String, Ready) {
    let (cluster, conninfo) = fixture_target();
    let mut admin = cluster.admin();
    admin
        .batch_execute(
            "CREATE TABLE public.app_event (id int PRIMARY KEY);
             INSERT INTO public.app_event SELECT generate_series(1, 6);",
        )
        .unwrap();
    let ready = ready_package(&cluster);
    edit_manifest(
        &ready.dir,
        "[[verify]]",
        &format!("{APP_EVENT_CHECK}[[verify]]"),
    );
    approve_all(&ready);
    (cluster, conninfo, ready)
}

#[test]
fn a_preflight_deviation_passes_only_when_enough_reviewers_acknowledged_exactly_it() {
    let (_cluster, conninfo, ready) = drifted();

    // nobody acknowledged: refused, and the message says how it could be acknowledged
    let stderr = refused_before(&ready, &conninfo, "preflight");
    assert!(stderr.contains("P-11: expected 5, got '6'"), "{stderr}");
    assert!(stderr.contains("--acknowledge P-11=6"), "{stderr}");

    // another value, and too few signers of the observed one
    acknowledge(&ready, "alice@example.com", "P-11=7", "one event added")
        .assert()
        .success();
    acknowledge(
        &ready,
        "bob@example.com",
        "P-11=6",
        "one event added by the nightly job",
    )
    .assert()
    .success();
    let stderr = refused_before(&ready, &conninfo, "preflight");
    assert!(
        stderr.contains("1 of 2 required acknowledgement(s) of P-11=6: bob@example.com"),
        "{stderr}"
    );
    assert!(stderr.contains("7 (alice@example.com)"), "{stderr}");

    // the live look of `review --target` shows the same: not ready
    sluice()
        .arg("review")
        .arg(&ready.dir)
        .args(["--target", &conninfo])
        .assert()
        .code(3);

    // enough signers of exactly the observed value: the check passes, loudly
    let alice_wrong = std::fs::read_dir(ready.dir.join("approvals"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("alice") && p.to_string_lossy().contains("-ack-"))
        .unwrap();
    std::fs::remove_file(alice_wrong).unwrap();
    acknowledge(
        &ready,
        "alice@example.com",
        "P-11=6",
        "checked with the app team",
    )
    .assert()
    .success();
    let review = sluice()
        .arg("review")
        .arg(&ready.dir)
        .args(["--target", &conninfo])
        .assert()
        .success();
    let md = String::from_utf8(review.get_output().stdout.clone()).unwrap();
    assert!(md.contains("P-11 = 6: acknowledged by"), "{md}");
    assert!(
        md.contains("P-11 passes AS ACKNOWLEDGED: observed 6"),
        "{md}"
    );

    let assert = apply_cmd(&ready, &conninfo).assert().success();
    let stderr = stderr_of(&assert);
    assert!(stderr.contains("ACKNOWLEDGED DEVIATION"), "{stderr}");
    let run = last_run(&ready);
    let record = run_json(&run);
    let p11 = record["preflight"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "P-11")
        .unwrap();
    assert_eq!(p11["holds"], true);
    assert_eq!(p11["acknowledged"]["observed"], "6");
    let signers: Vec<&str> = p11["acknowledged"]["signers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["signer"].as_str().unwrap())
        .collect();
    assert_eq!(signers.len(), 2, "{signers:?}");
    let report = read(&run, "report.md");
    assert!(report.contains("**Acknowledged deviations**"), "{report}");
    assert!(
        report.contains("P-11 passes AS ACKNOWLEDGED: observed 6 (expected 5, got '6')"),
        "{report}"
    );
    assert!(report.contains("checked with the app team"), "{report}");
}

#[test]
fn an_acknowledgement_needs_a_note_a_preflight_check_and_an_approving_decision() {
    let (_cluster, _conninfo, ready) = drifted();
    let refused = |args: &[&str], why: &str| {
        let assert = sluice()
            .arg("approve")
            .arg(&ready.dir)
            .args(["--signer", "alice@example.com", "--key"])
            .arg(ready.keys.join("alice@example.com"))
            .args(args)
            .assert()
            .code(2);
        let stderr = stderr_of(&assert);
        assert!(stderr.contains(why), "want `{why}` in:\n{stderr}");
    };
    refused(
        &["--decision", "pass", "--acknowledge", "P-11=6"],
        "needs --note",
    );
    refused(
        &[
            "--decision",
            "reject",
            "--note",
            "n",
            "--acknowledge",
            "P-11=6",
        ],
        "approving decision",
    );
    // a pass with a note, acknowledging what cannot be acknowledged
    for (acknowledge, why) in [
        ("V-α-3=87", "V-α-3 is a verify check; it runs after COMMIT"),
        (
            "migration.expect=87",
            "the expectation checked before COMMIT is the atomic guarantee",
        ),
        ("P-99=1", "expected CHECK=OBSERVED"),
        ("P-1=1", "covered by gate"),
    ] {
        refused(
            &[
                "--decision",
                "pass",
                "--note",
                "n",
                "--acknowledge",
                acknowledge,
            ],
            why,
        );
    }
}

/// The seed's own case: P-8 expects 86 and the table has 87. Acknowledged, the preflight
/// passes; the migration's expectation still holds the line before COMMIT.
#[test]
fn an_acknowledged_p8_cannot_make_the_migration_expectation_pass() {
    let (cluster, conninfo) = fixture_target();
    let mut admin = cluster.admin();
    admin
        .batch_execute(
            "INSERT INTO public.tac_logical_unit (id, unit_uid, canonical_address, doc_code, parent_id, section_type, ordinal, title)
             SELECT 9999, gen_random_uuid(), 'tac:zz-extra', 'zz-extra', NULL, 'document', 1, 'added the night before'",
        )
        .unwrap();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    let stderr = refused_before(&ready, &conninfo, "preflight");
    assert!(stderr.contains("P-8: expected 86, got '87'"), "{stderr}");
    for signer in SIGNERS {
        acknowledge(
            &ready,
            signer,
            "P-8=87",
            "one unit added by the application",
        )
        .assert()
        .success();
    }
    let before = fingerprint(&conninfo);
    let stderr = refused(&ready, &conninfo, 4, "migration-atomic");
    assert!(
        stderr.contains("tac_authority_draft: expected 86, got '87'"),
        "{stderr}"
    );
    assert_eq!(before, fingerprint(&conninfo), "the target changed");
    let record = run_json(&last_run(&ready));
    let steps = record["steps"].as_array().unwrap();
    let preflight = steps.iter().find(|s| s["gate"] == "preflight").unwrap();
    assert_eq!(preflight["status"], "passed");
    assert!(
        preflight["detail"]
            .as_str()
            .unwrap()
            .contains("P-8 passes AS ACKNOWLEDGED: observed 87"),
        "{preflight}"
    );
}

/// An acknowledgement of a verify check (signed through the library, since `approve` refuses
/// it) never counts: the check fails after COMMIT and the message says why.
#[test]
fn an_acknowledgement_cannot_make_a_verify_check_pass() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    edit_manifest(&ready.dir, "total = 86 }", "total = 87 }");
    approve_all(&ready);
    let pkg = sluice::package::Package::load(&ready.dir).unwrap();
    let digest = sluice::digest::package_digest(&pkg);
    for signer in SIGNERS {
        let approval = sluice::approval::unsigned(
            &pkg.info.id,
            &digest,
            signer,
            Decision::Pass,
            "the total is fine",
        )
        .and_then(|a| {
            a.acknowledging(vec![Acknowledgement {
                check: "V-α-3".into(),
                observed: "draft=86 enacted=0 runtime=0 authority_null=0 total=86".into(),
            }])
        })
        .unwrap();
        let mut key = sluice::approval::SigningKey::from_file(
            &ready.keys.join(signer),
            &mut sluice::approval::NoPassphrase,
        )
        .unwrap();
        let approval = approval.signed_by(&mut key).unwrap();
        approval.write_into(&ready.dir.join("approvals")).unwrap();
    }
    let stderr = refused(&ready, &conninfo, 5, "verification");
    assert!(
        stderr.contains("the acknowledgement of V-α-3 by")
            && stderr.contains("cannot be acknowledged"),
        "{stderr}"
    );
    assert_eq!(run_json(&last_run(&ready))["migration_committed"], true);
}
