//! Helpers shared by the CLI's integration tests: copies of the reference package to edit, and
//! the real `sluice` binary.
#![allow(dead_code)]

pub mod browser;
pub mod tls;

use assert_cmd::Command;
use sluice::digest::sha256_hex;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

pub const MIGRATION: &str = "sql/phase-alpha-r2.sql";
pub const ROLLBACK: &str = "sql/phase-alpha-r2-rollback.sql";

pub fn sluice() -> Command {
    let mut cmd = Command::cargo_bin("sluice").unwrap();
    cmd.env("NO_COLOR", "1");
    cmd
}

/// A fresh copy of the reference package in a temporary folder.
pub fn reference_copy() -> (TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("phase-alpha");
    std::fs::create_dir_all(&dir).unwrap();
    sluice::reference::write_package(&dir).unwrap();
    (tmp, dir)
}

pub fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap()
}

pub fn write(dir: &Path, rel: &str, text: &str) {
    std::fs::write(dir.join(rel), text).unwrap();
}

/// Edits a file of the package and pins its new sha256 in the manifest.
pub fn edit_pinned(dir: &Path, rel: &str, edit: impl FnOnce(&str) -> String) {
    let old = read(dir, rel);
    let new = edit(&old);
    assert_ne!(old, new, "the edit changed nothing");
    write(dir, rel, &new);
    let manifest =
        read(dir, "sluice.toml").replace(&sha256_hex(old.as_bytes()), &sha256_hex(new.as_bytes()));
    write(dir, "sluice.toml", &manifest);
}

/// Replaces text in the manifest, asserting that it was there.
pub fn edit_manifest(dir: &Path, from: &str, to: &str) {
    let text = read(dir, "sluice.toml");
    assert!(text.contains(from), "manifest has no `{from}`");
    write(dir, "sluice.toml", &text.replacen(from, to, 1));
}

/// The 1-based line of the first occurrence of `needle` in the manifest.
pub fn manifest_line(dir: &Path, needle: &str) -> usize {
    let text = read(dir, "sluice.toml");
    text[..text.find(needle).expect("needle in manifest")]
        .matches('\n')
        .count()
        + 1
}

/// A database of its own with the seed's production state, in the cluster this test binary
/// shares; the target's conninfo. For a case whose changes stay inside its database.
pub fn fixture_target() -> (sluice_testkit::FixtureDb, String) {
    let db = sluice_testkit::fixture_database();
    let conninfo = db.conninfo.clone();
    (db, conninfo)
}

/// A cluster of its own with the seed's production state in `directus`: for a case that
/// changes roles, settings or the server itself.
pub fn own_fixture_target() -> (sluice::cluster::Cluster, String) {
    sluice_testkit::fixture_cluster()
}

/// Where the seed's production state is: a cluster of the test's own (database `directus`) or
/// a database of the shared cluster.
pub trait FixtureTarget {
    /// The server's major version.
    fn major(&self) -> u32;
    /// The database that holds the fixture.
    fn database(&self) -> &str;
    /// A superuser session on that database.
    fn admin(&self) -> postgres::Client;
}

impl FixtureTarget for sluice::cluster::Cluster {
    fn major(&self) -> u32 {
        self.binaries().major
    }
    fn database(&self) -> &str {
        sluice::reference::DATABASE
    }
    fn admin(&self) -> postgres::Client {
        self.connect(sluice::reference::DATABASE).unwrap()
    }
}

impl FixtureTarget for sluice_testkit::FixtureDb {
    fn major(&self) -> u32 {
        self.binaries.major
    }
    fn database(&self) -> &str {
        &self.name
    }
    fn admin(&self) -> postgres::Client {
        // the fixture's role is a superuser
        self.connect()
    }
}

pub const SIGNERS: [&str; 2] = ["alice@example.com", "bob@example.com"];

/// A copy of the reference package ready to apply on a test cluster: server_major pinned to the
/// cluster's, two reviewer keys in allowed_signers, and (unless `rehearsal`) the rehearsal gate
/// turned off so each gate can be tested alone. Call [`approve_all`] after the last edit.
pub struct Ready {
    pub tmp: TempDir,
    pub dir: PathBuf,
    pub keys: PathBuf,
}

pub fn ready_package(fixture: &impl FixtureTarget) -> Ready {
    let (tmp, dir) = reference_copy();
    edit_manifest(
        &dir,
        "server_major = 16",
        &format!("server_major = {}", fixture.major()),
    );
    if fixture.database() != sluice::reference::DATABASE {
        edit_manifest(
            &dir,
            &format!("database = \"{}\"", sluice::reference::DATABASE),
            &format!("database = \"{}\"", fixture.database()),
        );
    }
    edit_manifest(
        &dir,
        "[rehearsal]\nrequired = true",
        "[rehearsal]\nrequired = false",
    );
    let keys = tmp.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let mut signers = String::new();
    for name in SIGNERS {
        let key = sluice::approval::generate_ed25519(&keys.join(name), name).unwrap();
        signers.push_str(&sluice::approval::allowed_signers_line(name, &key));
        signers.push('\n');
    }
    write(&dir, "allowed_signers", &signers);
    Ready { tmp, dir, keys }
}

/// Both reviewers approve the package as it is now (through the real `sluice approve`).
pub fn approve_all(ready: &Ready) {
    let _ = std::fs::remove_dir_all(ready.dir.join("approvals"));
    for name in SIGNERS {
        sluice()
            .arg("approve")
            .arg(&ready.dir)
            .args(["--signer", name, "--decision", "pass", "--key"])
            .arg(ready.keys.join(name))
            .assert()
            .success();
    }
}

/// `sluice approve-rollback` of the apply run `run_dir` for `check`, signed by `signer` with
/// their test key, into the run's `rollback-approvals/`.
pub fn approve_rollback_cmd(ready: &Ready, run_dir: &Path, check: &str, signer: &str) -> Command {
    let mut cmd = sluice();
    cmd.arg("approve-rollback")
        .arg(&ready.dir)
        .arg("--run")
        .arg(run_dir)
        .args(["--failed-check", check, "--signer", signer])
        .args(["--decision", "pass", "--key"])
        .arg(ready.keys.join(signer));
    cmd
}

/// Both reviewers sign the rollback of `run_dir` for `check` (the package's
/// `rollback_required`, 2 by default), replacing any rollback approval signed before.
pub fn approve_rollback_all(ready: &Ready, run_dir: &Path, check: &str) {
    let _ = std::fs::remove_dir_all(run_dir.join("rollback-approvals"));
    for name in SIGNERS {
        approve_rollback_cmd(ready, run_dir, check, name)
            .assert()
            .success();
    }
}

/// `sluice apply --yes` on the ready package to `production`, with its own evidence folder.
pub fn apply_cmd(ready: &Ready, conninfo: &str) -> Command {
    apply_as(
        ready,
        conninfo,
        "carol@example.com",
        &ready.tmp.path().join("evidence"),
    )
}

/// The same, by another operator or into another evidence folder.
pub fn apply_as(ready: &Ready, conninfo: &str, operator: &str, evidence: &Path) -> Command {
    let mut cmd = sluice();
    cmd.arg("apply")
        .arg(&ready.dir)
        .args([
            "--target",
            conninfo,
            "--environment",
            "production",
            "--operator",
            operator,
            "--yes",
            "--evidence",
        ])
        .arg(evidence);
    cmd
}

pub use sluice_testkit::fingerprint;

/// The stderr of an assert as text.
pub fn stderr_of(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(assert.get_output().stderr.clone()).unwrap()
}

/// The run folder the last apply wrote: by STAMP, then by the `-N` suffix sluice adds when
/// several runs start in the same second (so `-10` comes after `-9`).
pub fn last_run(ready: &Ready) -> PathBuf {
    let root = ready
        .tmp
        .path()
        .join("evidence/dot-iu-cutter-v0.2-phase-alpha");
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    runs.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        (name[..16.min(name.len())].to_string(), name.len(), name)
    });
    runs.pop().unwrap()
}

pub fn run_json(run_dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap()
}

/// `sluice apply` on the ready package as a background process.
pub fn apply_process(ready: &Ready, conninfo: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("sluice"));
    cmd.env("NO_COLOR", "1")
        .arg("apply")
        .arg(&ready.dir)
        .args([
            "--target",
            conninfo,
            "--environment",
            "production",
            "--operator",
            "carol@example.com",
            "--yes",
            "--evidence",
        ])
        .arg(ready.tmp.path().join("evidence"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}

/// Runs apply, expects `code` and `error[gate]`, and returns stderr.
pub fn refused(ready: &Ready, conninfo: &str, code: i32, gate: &str) -> String {
    let assert = apply_cmd(ready, conninfo).assert().code(code);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains(&format!("error[{gate}]")),
        "want error[{gate}] in:\n{stderr}"
    );
    stderr
}

/// The gate refused before the migration: exit 3 and the target unchanged.
pub fn refused_before(ready: &Ready, conninfo: &str, gate: &str) -> String {
    let before = fingerprint(conninfo);
    let stderr = refused(ready, conninfo, 3, gate);
    assert_eq!(
        before,
        fingerprint(conninfo),
        "the target changed although {gate} refused"
    );
    let run = run_json(&last_run(ready));
    assert_eq!(run["failed_gate"], gate);
    assert_eq!(run["migration_committed"], false);
    stderr
}
