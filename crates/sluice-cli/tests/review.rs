mod support;

use predicates::prelude::*;
use sluice::cluster::{Cluster, ClusterOptions};
use support::*;

fn fixture_target() -> (Cluster, String) {
    let bins = sluice_testkit::server();
    let cluster = Cluster::start(ClusterOptions::new(bins)).expect("cluster starts");
    let conninfo = sluice::reference::prepare_target(&cluster).expect("fixture loads");
    (cluster, conninfo)
}

/// Pins the copy's server_major to the test cluster's, so identity can hold on any version.
fn pin_major(dir: &std::path::Path, cluster: &Cluster) {
    edit_manifest(
        dir,
        "server_major = 16",
        &format!("server_major = {}", cluster.binaries().major),
    );
}

#[test]
fn the_markdown_names_every_check_gate_and_the_digest() {
    let digest = sluice()
        .args(["digest", "../../examples/phase-alpha"])
        .assert()
        .success();
    let digest = String::from_utf8(digest.get_output().stdout.clone())
        .unwrap()
        .trim()
        .to_string();
    let out = sluice()
        .args(["review", "../../examples/phase-alpha", "--format", "md"])
        .assert()
        .success();
    let md = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    for i in 1..=10 {
        assert!(md.contains(&format!("**P-{i}**")), "P-{i} missing");
    }
    for i in 1..=16 {
        assert!(md.contains(&format!("**V-α-{i}**")), "V-α-{i} missing");
    }
    for gate in sluice::gate::ids() {
        assert!(md.contains(&format!("`{gate}`")), "gate {gate} missing");
    }
    assert!(md.contains(&digest));
    for section in [
        "§1 — Execution Scope",
        "§2 — Explicit Non-Scope",
        "§3 — Exact Command Plan",
        "§4 — Safety Gates",
        "§5 — Side-Effect",
        "§6 — Rollback",
        "§7 — Status",
        "§8 — Digest",
    ] {
        assert!(md.contains(section), "{section} missing");
    }
    // seed numbering beside the gates
    for seed in [
        "G-4, P-1",
        "G-3, P-2, C-05",
        "G-1, C-01, C-02",
        "G-11, C-07",
        "V-α-16",
    ] {
        assert!(md.contains(seed), "seed mapping {seed} missing");
    }
    assert!(md.contains("no manifest_envelope table"));
    // the seed's §6: a rollback is co-signed, never the operator's alone
    assert!(
        md.contains("Authority: not automatic. `sluice rollback` needs 2 distinct signed rollback approval(s)")
            && md.contains("the operator's own approval does not count"),
        "no rollback authority rule in:\n{md}"
    );
}

#[test]
fn review_json_is_the_same_review_as_data() {
    let out = sluice()
        .args(["review", "../../examples/phase-alpha", "--format", "json"])
        .assert()
        .success();
    let doc: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(doc["package"]["id"], "dot-iu-cutter-v0.2-phase-alpha");
    assert_eq!(doc["plan"].as_array().unwrap().len(), 15);
    assert_eq!(doc["preflight"].as_array().unwrap().len(), 10);
    assert_eq!(doc["verify"].as_array().unwrap().len(), 16);
}

#[test]
fn review_with_target_shows_identity_and_every_preflight_holding() {
    let (cluster, conninfo) = fixture_target();
    let (_tmp, dir) = reference_copy();
    pin_major(&dir, &cluster);
    let out = sluice()
        .arg("review")
        .arg(&dir)
        .args(["--target", &conninfo])
        .assert()
        .success();
    let md = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let live = &md[md.find("### Live evaluation").expect("live section")..];
    for i in 1..=10 {
        let row = live
            .lines()
            .find(|l| l.starts_with(&format!("| P-{i} |")))
            .unwrap_or_else(|| panic!("no row for P-{i}"));
        assert!(row.ends_with("| yes |"), "P-{i} does not hold: {row}");
    }
    assert!(
        live.contains("| database | `directus` | `directus` | yes |"),
        "{live}"
    );
    assert!(live.contains("Live verdict: **identity and every preflight check hold**"));
}

#[test]
fn review_with_target_reports_what_does_not_hold_and_exits_3() {
    let (_cluster, conninfo) = fixture_target();
    let (_tmp, dir) = reference_copy();
    edit_manifest(&dir, "server_major = 16", "server_major = 99");
    edit_manifest(&dir, "expect = 86", "expect = 85");
    sluice()
        .arg("review")
        .arg(&dir)
        .args(["--target", &conninfo])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("| server_major | `99` |"))
        .stdout(predicate::str::contains("expected 85, got '86'"))
        .stderr(predicate::str::contains("not ready"));
}

#[test]
fn review_against_an_unreachable_target_names_it_without_its_password() {
    let (_tmp, dir) = reference_copy();
    let out = sluice()
        .arg("review")
        .arg(&dir)
        .args([
            "--target",
            "postgresql://workflow_admin:s3cret-pw@127.0.0.1:1/directus",
        ])
        .assert()
        .code(3);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("error[target-identity]"), "{stderr}");
    assert!(
        stderr.contains("host=127.0.0.1 port=1 dbname=directus user=workflow_admin"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret-pw"), "password leaked: {stderr}");
}

#[test]
fn digest_ignores_layout_and_comments_but_not_meaning() {
    let (_tmp, dir) = reference_copy();
    let digest = |dir: &std::path::Path| {
        let out = sluice().arg("digest").arg(dir).assert().success();
        String::from_utf8(out.get_output().stdout.clone())
            .unwrap()
            .trim()
            .to_string()
    };
    let original = digest(&dir);
    assert_eq!(original.len(), 64);
    edit_manifest(&dir, "[package]\n", "# a new comment\n[package]   \n\n");
    assert_eq!(
        digest(&dir),
        original,
        "comments and blank lines changed the digest"
    );
    edit_manifest(&dir, "lock_retries = 3", "lock_retries = 4");
    let changed = digest(&dir);
    assert_ne!(
        changed, original,
        "a manifest value did not change the digest"
    );
    edit_pinned(&dir, MIGRATION, |sql| {
        sql.replacen("-- Step1", "-- Step 1", 1)
    });
    assert_ne!(
        digest(&dir),
        changed,
        "the migration's bytes did not change the digest"
    );
    let before_signers = digest(&dir);
    write(
        &dir,
        "allowed_signers",
        &format!("{}# another line\n", read(&dir, "allowed_signers")),
    );
    assert_ne!(
        digest(&dir),
        before_signers,
        "allowed_signers is not in the digest"
    );
    std::fs::create_dir_all(dir.join("approvals")).unwrap();
    write(&dir, "approvals/x.sig", "anything");
    assert_eq!(digest(&dir), digest(&dir));
}

#[test]
fn lint_with_target_reports_the_trigger_that_bumps_updated_at() {
    let (_cluster, conninfo) = fixture_target();
    let (_tmp, dir) = reference_copy();
    // with the probe on the table the trigger writes to, it is a note
    let out = sluice()
        .arg("lint")
        .arg(&dir)
        .args(["--target", &conninfo])
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.contains("trigger-side-effect")
            && stdout.contains("trg_tac_birth_gate_lu")
            && stdout.contains("a probe measures it"),
        "{stdout}"
    );
    // without the probe it is a warning that asks for one
    let text = read(&dir, "sluice.toml");
    let start = text.find("[[probe]]").unwrap();
    let end =
        start + text[start..].find("expect_changed = 86").unwrap() + "expect_changed = 86".len();
    write(
        &dir,
        "sluice.toml",
        &format!("{}{}", &text[..start], &text[end..]),
    );
    sluice()
        .arg("lint")
        .args(["--deny", "warn", "--target", &conninfo])
        .arg(&dir)
        .assert()
        .code(3)
        .stdout(predicate::str::contains("add a [[probe]] on this table"));
}

#[test]
fn review_shows_the_approvals_verified_so_far() {
    let (cluster, _conninfo) = support::fixture_target();
    let ready = ready_package(&cluster);
    let before = sluice().arg("review").arg(&ready.dir).assert().success();
    let md = String::from_utf8(before.get_output().stdout.clone()).unwrap();
    assert!(md.contains("so far: 0 of 2"), "{md}");
    approve_all(&ready);
    let after = sluice().arg("review").arg(&ready.dir).assert().success();
    let md = String::from_utf8(after.get_output().stdout.clone()).unwrap();
    assert!(
        md.contains(
            "so far: 2 of 2 required approvals: alice@example.com (pass), bob@example.com (pass)"
        ),
        "{md}"
    );
}

/// `approve` refuses what the approvals gate would refuse later, and writes nothing: a signer
/// allowed_signers does not list, and a listed signer signing with another person's key.
#[test]
fn approve_refuses_a_signer_not_allowed_or_a_key_not_theirs() {
    let (tmp, dir) = reference_copy();
    let keys = tmp.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let mut signers = String::new();
    for name in SIGNERS {
        let key = sluice::approval::generate_ed25519(&keys.join(name), name).unwrap();
        signers.push_str(&sluice::approval::allowed_signers_line(name, &key));
        signers.push('\n');
    }
    write(&dir, "allowed_signers", &signers);
    sluice::approval::generate_ed25519(&keys.join("mallory"), "mallory@x").unwrap();
    let approve = |signer: &str, key: &str| {
        let mut cmd = sluice();
        cmd.arg("approve")
            .arg(&dir)
            .args(["--signer", signer, "--decision", "pass", "--key"])
            .arg(keys.join(key));
        cmd
    };
    for (signer, key, why) in [
        (
            "mallory@x",
            "mallory",
            "signer mallory@x is not in allowed_signers",
        ),
        (
            "alice@example.com",
            "mallory",
            "signed with a key allowed_signers does not list for alice@example.com",
        ),
        (
            "alice@example.com",
            "bob@example.com",
            "signed with a key allowed_signers does not list for alice@example.com",
        ),
    ] {
        let assert = approve(signer, key).assert().code(2);
        let stderr = stderr_of(&assert);
        assert!(
            stderr.contains(&format!("{signer} cannot approve this package"))
                && stderr.contains(why)
                && stderr.contains("nothing was written"),
            "{signer} with {key}'s key: {stderr}"
        );
        assert!(
            !dir.join("approvals").exists(),
            "{signer} with {key}'s key wrote into approvals/"
        );
    }
    // the signer's own key still signs
    approve("alice@example.com", "alice@example.com")
        .assert()
        .success();
    assert_eq!(std::fs::read_dir(dir.join("approvals")).unwrap().count(), 1);
}
