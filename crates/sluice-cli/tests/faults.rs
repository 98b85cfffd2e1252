//! Fault injection against real servers (RELIABILITY.md): whatever happens, the target is
//! either exactly as before or exactly as the approved change leaves it, the evidence says which
//! and how far the run got, and a re-run behaves sensibly.
mod support;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};
use support::*;

/// The apply steps at whose boundaries a kill is placed: the library's own table, so a new
/// step is killed at too.
fn apply_steps() -> Vec<&'static str> {
    sluice::gate::STEPS.iter().map(|s| s.name).collect()
}

fn killed_at(ready: &Ready, conninfo: &str, at: &str) -> serde_json::Value {
    let output = apply_cmd(ready, conninfo)
        .env("SLUICE_FAULT_KILL_AT", at)
        .output()
        .unwrap();
    assert_eq!(
        output.status.signal(),
        Some(9),
        "kill at {at} did not fire: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    run_json(&last_run(ready))
}

#[test]
fn kill_9_at_every_step_boundary_of_apply() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    let original = fingerprint(&conninfo);
    for (i, step) in apply_steps().into_iter().enumerate() {
        for end in [false, true] {
            let at = if end {
                format!("{step}:end")
            } else {
                step.to_string()
            };
            let run = killed_at(&ready, &conninfo, &at);
            assert_eq!(
                run["status"], "running",
                "{at}: a killed run must not claim an outcome"
            );
            let committed = run["migration_committed"].as_bool().unwrap();
            let steps = run["steps"].as_array().unwrap();
            let last = steps.last().unwrap();
            assert_eq!(
                last["name"], step,
                "{at}: run.json must name the step it died in"
            );
            let status = last["status"].as_str().unwrap();
            if end {
                assert!(status == "passed" || status == "skipped", "{at}: {status}");
            } else {
                assert_eq!(status, "running", "{at}");
            }
            let migrated = i > 11 || (i == 11 && end);
            assert_eq!(committed, migrated, "{at}: migration_committed");
            if migrated {
                // the change is in: reset the target so the next kill starts from the fixture
                let mut admin = cluster.admin();
                admin.batch_execute(&read(&ready.dir, ROLLBACK)).unwrap();
            } else {
                assert_eq!(
                    original,
                    fingerprint(&conninfo),
                    "{at}: a run killed before COMMIT changed the target"
                );
            }
        }
    }
}

#[test]
fn a_rerun_after_a_kill_before_commit_proceeds_and_after_commit_is_refused_by_preflight() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    killed_at(&ready, &conninfo, "migration-atomic");
    apply_cmd(&ready, &conninfo).assert().success();
    // back to the fixture's schema, then a kill after COMMIT
    let mut admin = cluster.admin();
    admin.batch_execute(&read(&ready.dir, ROLLBACK)).unwrap();
    killed_at(&ready, &conninfo, "verification");
    let before = fingerprint(&conninfo);
    let assert = apply_cmd(&ready, &conninfo).assert().code(3);
    assert!(stderr_of(&assert).contains("error[preflight]"));
    assert_eq!(before, fingerprint(&conninfo));
}

/// A copy whose migration sleeps inside its transaction, to place faults during it.
fn slow_migration(ready: &Ready, seconds: u32) {
    edit_pinned(&ready.dir, MIGRATION, |sql| {
        sql.replacen(
            "-- Step8",
            &format!("SELECT pg_sleep({seconds});\n-- Step8"),
            1,
        )
    });
}

/// Waits until a backend runs a query containing `needle`; its pid.
fn backend_running(conninfo: &str, needle: &str) -> i32 {
    let mut watcher = postgres::Client::connect(conninfo, postgres::NoTls).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = watcher
            .query_opt("SELECT pid FROM pg_stat_activity WHERE query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid() AND state = 'active'", &[&needle])
            .unwrap();
        if let Some(row) = row {
            return row.get(0);
        }
        assert!(Instant::now() < deadline, "no backend ran {needle}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_connection_terminated_during_the_migration_rolls_it_back() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    slow_migration(&ready, 5);
    approve_all(&ready);
    let before = fingerprint(&conninfo);
    let child = apply_process(&ready, &conninfo).spawn().unwrap();
    let pid = backend_running(&conninfo, "pg_sleep(5)");
    let mut killer = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    killer
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("error[migration-atomic]"));
    assert_eq!(before, fingerprint(&conninfo));
    let run = run_json(&last_run(&ready));
    assert_eq!(run["status"], "failed");
    assert_eq!(run["migration_committed"], false);
}

#[test]
fn the_connection_terminated_during_a_check_fails_its_gate() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    edit_manifest(
        &ready.dir,
        "sql = \"SELECT count(*) FROM public.tac_logical_unit\"",
        "sql = \"SELECT count(*) FROM public.tac_logical_unit, pg_sleep(5)\"",
    );
    approve_all(&ready);
    let before = fingerprint(&conninfo);
    let child = apply_process(&ready, &conninfo).spawn().unwrap();
    let pid = backend_running(&conninfo, "pg_sleep(5)");
    let mut killer = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    killer
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("error[preflight]"), "{stderr}");
    assert_eq!(before, fingerprint(&conninfo));
}

#[test]
fn the_server_stopped_immediately_during_the_migration_comes_back_unchanged() {
    let (mut cluster, conninfo) = own_fixture_target();
    let ready = ready_package(&cluster);
    slow_migration(&ready, 5);
    approve_all(&ready);
    let before = fingerprint(&conninfo);
    let child = apply_process(&ready, &conninfo).spawn().unwrap();
    backend_running(&conninfo, "pg_sleep(5)");
    cluster.stop_immediately().unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    cluster.start_again().unwrap();
    assert_eq!(
        before,
        fingerprint(&conninfo),
        "crash recovery must leave the pre-migration state"
    );
    assert_eq!(run_json(&last_run(&ready))["migration_committed"], false);
    // and a re-run proceeds
    edit_pinned(&ready.dir, MIGRATION, |sql| {
        sql.replacen("SELECT pg_sleep(5);\n", "", 1)
    });
    approve_all(&ready);
    apply_cmd(&ready, &conninfo).assert().success();
}

#[test]
fn eight_concurrent_applies_exactly_one_proceeds() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    slow_migration(&ready, 3);
    approve_all(&ready);
    let children: Vec<_> = (0..8)
        .map(|_| apply_process(&ready, &conninfo).spawn().unwrap())
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let ok = outputs
        .iter()
        .filter(|o| o.status.code() == Some(0))
        .count();
    assert_eq!(ok, 1, "exactly one apply proceeds");
    for o in outputs.iter().filter(|o| o.status.code() != Some(0)) {
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains("error[exclusive-run]"), "{stderr}");
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

fn mount_tmpfs(dir: &std::path::Path, options: &str) -> bool {
    std::fs::create_dir_all(dir).unwrap();
    std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

struct Unmount(std::path::PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_evidence_filesystem_fails_the_backup_before_any_change() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root (CI runs as root)");
        return;
    }
    let (cluster, conninfo) = fixture_target();
    // a dump of some hundreds of kilobytes that does not compress away
    let mut admin = cluster.admin();
    admin.batch_execute("CREATE TABLE public.filler AS SELECT g, md5(g::text) || md5((g * 7)::text) AS pad FROM generate_series(1, 20000) g").unwrap();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    let evidence = ready.tmp.path().join("small-evidence");
    if !mount_tmpfs(&evidence, "size=160k,mode=0700") {
        eprintln!("skipped: this machine does not let root mount a tmpfs");
        return;
    }
    let _unmount = Unmount(evidence.clone());
    let before = fingerprint(&conninfo);
    let output = apply_as(&ready, &conninfo, "carol@example.com", &evidence)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    // refused before dumping: the free space cannot hold even a twentieth of the database
    assert!(
        stderr.contains("error[backup-restorable]") && stderr.contains("would not fit"),
        "{stderr}"
    );
    assert_eq!(before, fingerprint(&conninfo));
    let run_dir = std::fs::read_dir(evidence.join("dot-iu-cutter-v0.2-phase-alpha"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(
        std::fs::read_dir(run_dir.join("backup")).unwrap().count(),
        0
    );
    let run = run_json(&run_dir);
    assert_ne!(
        run["status"], "succeeded",
        "a bundle on a full disk must not claim success"
    );
    assert_eq!(run["migration_committed"], false);
}

#[test]
fn an_unwritable_evidence_folder_is_refused_before_anything() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    let mut evidence = ready.tmp.path().join("ro-evidence");
    let _unmount = if is_root() {
        if mount_tmpfs(&evidence, "ro,size=64k") {
            Some(Unmount(evidence.clone()))
        } else {
            // no mount here: a folder under a regular file cannot be created, even by root
            std::fs::write(ready.tmp.path().join("a-file"), b"").unwrap();
            evidence = ready.tmp.path().join("a-file").join("evidence");
            None
        }
    } else {
        std::fs::create_dir_all(&evidence).unwrap();
        std::fs::set_permissions(
            &evidence,
            std::os::unix::fs::PermissionsExt::from_mode(0o500),
        )
        .unwrap();
        None
    };
    let before = fingerprint(&conninfo);
    let output = apply_as(&ready, &conninfo, "carol@example.com", &evidence)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("refused before anything ran") && stderr.contains("cannot write"),
        "{stderr}"
    );
    assert_eq!(before, fingerprint(&conninfo));
}

#[test]
fn a_pre_placed_symlink_in_the_evidence_path_is_refused() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    let evidence = ready.tmp.path().join("evidence");
    let elsewhere = ready.tmp.path().join("elsewhere");
    std::fs::create_dir_all(&evidence).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, evidence.join("dot-iu-cutter-v0.2-phase-alpha"))
        .unwrap();
    let before = fingerprint(&conninfo);
    let assert = apply_cmd(&ready, &conninfo).assert().code(3);
    let stderr = stderr_of(&assert);
    assert!(stderr.contains("is a symlink"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing was written through the symlink"
    );
    assert_eq!(before, fingerprint(&conninfo));
}

#[test]
fn a_truncated_or_corrupted_dump_is_refused_by_rehearse() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    let dump = ready.tmp.path().join("prod.dump");
    let pg_dump = sluice::backup::find_tools(None)
        .unwrap()
        .bindir
        .join("pg_dump");
    assert!(std::process::Command::new(pg_dump)
        .args(["-Fc", "-f"])
        .arg(&dump)
        .arg(&conninfo)
        .status()
        .unwrap()
        .success());
    let bytes = std::fs::read(&dump).unwrap();
    let truncated = ready.tmp.path().join("truncated.dump");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let mut corrupted = bytes.clone();
    for b in corrupted.iter_mut().skip(200).step_by(97) {
        *b ^= 0x5a;
    }
    let corrupted_path = ready.tmp.path().join("corrupted.dump");
    std::fs::write(&corrupted_path, &corrupted).unwrap();
    for bad in [&truncated, &corrupted_path] {
        let output = sluice()
            .arg("rehearse")
            .arg(&ready.dir)
            .arg("--from-backup")
            .arg(bad)
            .arg("--evidence")
            .arg(ready.tmp.path().join("rev"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{}: {stderr}", bad.display());
        assert!(stderr.contains("error[rehearsal]"), "{stderr}");
        assert!(
            !ready.dir.join("rehearsals").exists()
                || std::fs::read_dir(ready.dir.join("rehearsals"))
                    .unwrap()
                    .all(|e| {
                        let t = std::fs::read_to_string(e.unwrap().path()).unwrap();
                        !t.contains("\"passed\": true")
                    }),
            "a bad dump produced a passing record"
        );
    }
}

#[test]
fn a_pg_dump_older_than_the_server_is_refused_naming_the_version_needed() {
    let (cluster, conninfo) = own_fixture_target();
    let old = std::path::Path::new("/usr/lib/postgresql/15/bin");
    if cluster.binaries().major <= 15 || !old.join("pg_dump").exists() {
        eprintln!("skipped: needs a server newer than PostgreSQL 15 (CI's 16.13 stage runs it)");
        return;
    }
    let ready = ready_package(&cluster);
    approve_all(&ready);
    let before = fingerprint(&conninfo);
    let assert = apply_cmd(&ready, &conninfo)
        .arg("--pg-dump-bindir")
        .arg(old)
        .assert()
        .code(3);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("error[client-version]")
            && stderr.contains(&format!(
                "major version {} or newer",
                cluster.binaries().major
            )),
        "{stderr}"
    );
    assert_eq!(before, fingerprint(&conninfo));
}

#[test]
fn under_load_sluice_gives_up_on_a_held_lock_without_stalling_the_clients() {
    let (cluster, conninfo) = own_fixture_target();
    let ready = ready_package(&cluster);
    edit_manifest(
        &ready.dir,
        "lock_timeout_ms = 5000",
        "lock_timeout_ms = 500",
    );
    edit_manifest(&ready.dir, "lock_retries = 3", "lock_retries = 2");
    approve_all(&ready);
    let bindir = sluice::backup::find_tools(None).unwrap().bindir;
    let pgbench = ["pgbench"]
        .iter()
        .map(|b| bindir.join(b))
        .find(|p| p.exists());
    let Some(pgbench) = pgbench.or_else(|| {
        Some(std::path::PathBuf::from(
            "/usr/lib/postgresql/15/bin/pgbench",
        ))
        .filter(|p| p.exists())
    }) else {
        panic!("pgbench is needed for this test (Debian's postgresql package has it)");
    };
    // a session that holds a lock the migration's ALTER TABLE conflicts with, for the whole test
    let mut blocker = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    blocker
        .batch_execute("BEGIN; SELECT count(*) FROM public.tac_logical_unit;")
        .unwrap();
    let script = ready.tmp.path().join("load.sql");
    std::fs::write(
        &script,
        "\\set n random(0, 85)\nSELECT updated_at FROM public.tac_logical_unit ORDER BY id OFFSET :n LIMIT 1;\nUPDATE public.tac_logical_unit SET doc_code = doc_code WHERE id = (SELECT id FROM public.tac_logical_unit ORDER BY id OFFSET :n LIMIT 1);\n",
    )
    .unwrap();
    let logs = ready.tmp.path().join("pgbench");
    std::fs::create_dir_all(&logs).unwrap();
    let mut load = std::process::Command::new(pgbench)
        .args(["-n", "-c", "4", "-T", "8", "--log", "--log-prefix"])
        .arg(logs.join("tx"))
        .arg("-f")
        .arg(&script)
        .args([
            "-h",
            &cluster.socket_dir().display().to_string(),
            "-p",
            &cluster.port().to_string(),
            "-U",
            "workflow_admin",
            "directus",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let assert = apply_cmd(&ready, &conninfo).assert().code(4);
    let stderr = stderr_of(&assert);
    assert!(stderr.contains("gave up after 3 attempt(s)"), "{stderr}");
    let load_status = load.wait().unwrap();
    assert!(load_status.success(), "pgbench failed");
    blocker.batch_execute("ROLLBACK").unwrap();
    // sluice's wait is bounded: lock_timeout × (retries + 1) + backoff (200 + 400 ms), plus slack
    let run = run_json(&last_run(&ready));
    let migration = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "migration-atomic")
        .unwrap()
        .clone();
    let waited = migration["duration_ms"].as_u64().unwrap();
    assert!(
        waited <= 500 * 3 + 600 + 700,
        "the migration step took {waited} ms"
    );
    // no client waited behind sluice's queued lock for much longer than lock_timeout
    let mut max_us = 0u64;
    let mut transactions = 0;
    for entry in std::fs::read_dir(&logs).unwrap() {
        for line in std::fs::read_to_string(entry.unwrap().path())
            .unwrap()
            .lines()
        {
            let latency: u64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
            max_us = max_us.max(latency);
            transactions += 1;
        }
    }
    assert!(
        transactions > 100,
        "pgbench ran only {transactions} transactions"
    );
    assert!(
        max_us <= 1_000_000,
        "a client waited {max_us} µs (lock_timeout is 500 ms)"
    );
    eprintln!(
        "pgbench: {transactions} transactions, max latency {} ms while sluice waited {waited} ms",
        max_us / 1000
    );
}

/// The rollback's steps, from the library's table.
fn rollback_steps() -> Vec<&'static str> {
    sluice::gate::ROLLBACK_STEPS
        .iter()
        .map(|s| s.name)
        .collect()
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
fn kill_9_at_every_step_boundary_of_rollback() {
    let (cluster, conninfo) = fixture_target();
    let pre_schema = schema_only(&conninfo);
    let ready = ready_package(&cluster);
    edit_manifest(&ready.dir, "total = 86 }", "total = 87 }");
    approve_all(&ready);
    apply_cmd(&ready, &conninfo).assert().code(5);
    let run = last_run(&ready);
    approve_rollback_all(&ready, &run, "V-α-3");
    let post_schema = schema_only(&conninfo);
    let rollback = |at: &str| {
        let mut cmd = sluice();
        cmd.arg("rollback")
            .arg(&ready.dir)
            .args([
                "--target",
                &conninfo,
                "--environment",
                "production",
                "--failed-check",
                "V-α-3",
                "--operator",
                "carol@example.com",
                "--yes",
                "--run",
            ])
            .arg(&run)
            .arg("--evidence")
            .arg(ready.tmp.path().join("rollback-evidence"))
            .env("SLUICE_FAULT_KILL_AT", at);
        cmd.output().unwrap()
    };
    for (i, step) in rollback_steps().into_iter().enumerate() {
        for end in [false, true] {
            let at = if end {
                format!("{step}:end")
            } else {
                step.to_string()
            };
            let root = ready
                .tmp
                .path()
                .join("rollback-evidence/dot-iu-cutter-v0.2-phase-alpha");
            let listing = || -> Vec<std::path::PathBuf> {
                std::fs::read_dir(&root)
                    .map(|rd| rd.map(|e| e.unwrap().path()).collect())
                    .unwrap_or_default()
            };
            let before = listing();
            let output = rollback(&at);
            assert_eq!(
                output.status.signal(),
                Some(9),
                "kill at {at} did not fire: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let created: Vec<_> = listing()
                .into_iter()
                .filter(|d| !before.contains(d))
                .collect();
            assert_eq!(created.len(), 1, "{at}: one new rollback folder");
            let record = run_json(&created[0]);
            assert_eq!(record["kind"], "rollback");
            assert_eq!(record["status"], "running", "{at}");
            assert_eq!(
                record["steps"].as_array().unwrap().last().unwrap()["name"],
                step,
                "{at}"
            );
            let atomic = rollback_steps()
                .iter()
                .position(|s| *s == "rollback-atomic")
                .unwrap();
            let rolled_back = i > atomic || (i == atomic && end);
            if rolled_back {
                assert_eq!(
                    pre_schema,
                    schema_only(&conninfo),
                    "{at}: the rollback committed but the schema is not the pre schema"
                );
                // put the change back for the next kill
                let mut admin = cluster.admin();
                admin.batch_execute(&read(&ready.dir, MIGRATION)).unwrap();
            } else {
                assert_eq!(
                    post_schema,
                    schema_only(&conninfo),
                    "{at}: a rollback killed before COMMIT changed the schema"
                );
            }
        }
    }
}

#[test]
fn a_dump_that_fills_the_disk_is_removed_and_the_bundle_says_so() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root (CI runs as root)");
        return;
    }
    let (cluster, conninfo) = fixture_target();
    // some megabytes of md5 text: a dump far larger than a twentieth of the database
    let mut admin = cluster.admin();
    admin.batch_execute("CREATE TABLE public.filler AS SELECT g, md5(g::text) || md5((g * 7)::text) AS pad FROM generate_series(1, 60000) g").unwrap();
    let size: i64 = admin
        .query_one("SELECT pg_database_size(current_database())", &[])
        .unwrap()
        .get(0);
    let ready = ready_package(&cluster);
    approve_all(&ready);
    let evidence = ready.tmp.path().join("small-evidence");
    let kib = size / 20 / 1024 + 96;
    if !mount_tmpfs(&evidence, &format!("size={kib}k,mode=0700")) {
        eprintln!("skipped: this machine does not let root mount a tmpfs");
        return;
    }
    let _unmount = Unmount(evidence.clone());
    let before = fingerprint(&conninfo);
    let output = apply_as(&ready, &conninfo, "carol@example.com", &evidence)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("error[backup-restorable]"), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(
        stderr.contains("(the incomplete dump was removed)"),
        "{stderr}"
    );
    assert_eq!(before, fingerprint(&conninfo));
    let run_dir = std::fs::read_dir(evidence.join("dot-iu-cutter-v0.2-phase-alpha"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // a consistent bundle: no half dump, no temporary files, a record and a report that say
    // what failed, sums that check
    assert_eq!(
        std::fs::read_dir(run_dir.join("backup")).unwrap().count(),
        0
    );
    let run = run_json(&run_dir);
    assert_eq!(run["status"], "failed");
    assert_eq!(run["failed_gate"], "backup-restorable");
    let report = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    assert!(report.contains("No space left on device"), "{report}");
    assert!(!files_named_tmp(&run_dir), "a temporary file was left");
    sluice()
        .args(["evidence", "check"])
        .arg(&run_dir)
        .assert()
        .success();
}

fn files_named_tmp(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let path = e.unwrap().path();
        path.to_string_lossy().ends_with("tmp~") || (path.is_dir() && files_named_tmp(&path))
    })
}

#[test]
fn an_evidence_write_that_fails_fails_the_run_with_exit_1() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    // the migration commits; then SHA256SUMS cannot be written
    let output = apply_cmd(&ready, &conninfo)
        .env("SLUICE_FAULT_EVIDENCE_FULL", "SHA256SUMS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error[evidence]"), "{stderr}");
    assert!(stderr.contains("the migration COMMITTED"), "{stderr}");
    assert!(stderr.contains("SHA256SUMS"), "{stderr}");
    let run_dir = last_run(&ready);
    let run = run_json(&run_dir);
    assert_eq!(run["exit_code"], 1);
    assert_eq!(run["failed_gate"], "evidence");
    assert!(!files_named_tmp(&run_dir), "a temporary file was left");
    let ledger = std::fs::read_to_string(ready.tmp.path().join("evidence/ledger.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(ledger.lines().last().unwrap()).unwrap();
    assert_eq!(last["exit_code"], 1, "the ledger does not record a success");

    // report.md: a partial report is not left to pass for one
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    let output = apply_cmd(&ready, &conninfo)
        .env("SLUICE_FAULT_EVIDENCE_FULL", "report.md")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("report.md"), "{stderr}");
    assert!(!last_run(&ready).join("report.md").exists());
}
