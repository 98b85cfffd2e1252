//! Hostile and broken input against a real server: checks that try to write, a migration whose
//! last statement returns the wrong number of rows, oversized files, and secrets that must never
//! leave the process that was given them.
mod support;

use std::time::{Duration, Instant};
use support::*;

#[test]
fn checks_that_try_to_write_are_stopped_by_the_read_only_transaction() {
    let (cluster, conninfo) = fixture_target();
    let mut admin = cluster.admin();
    admin
        .batch_execute(
            "CREATE SEQUENCE public.probe_seq;
             CREATE FUNCTION public.sneaky() RETURNS int LANGUAGE plpgsql AS $$ BEGIN CREATE TABLE public.sneaky_side_table (x int); RETURN 1; END $$;
             CREATE FUNCTION public.sneaky_set_role() RETURNS int LANGUAGE plpgsql AS $$ BEGIN UPDATE public.tac_logical_unit SET doc_code = 'x'; RETURN 1; END $$;",
        )
        .unwrap();
    for (sql, why) in [
        (
            "SELECT nextval('public.probe_seq')",
            "read-only transaction",
        ),
        ("SELECT public.sneaky()", "read-only transaction"),
        ("SELECT public.sneaky_set_role()", "read-only transaction"),
    ] {
        let ready = ready_package(&cluster);
        edit_manifest(
            &ready.dir,
            "sql = \"SELECT count(*) FROM public.tac_logical_unit\"",
            &format!("sql = \"{sql}\""),
        );
        edit_manifest(&ready.dir, "expect = 86", "expect = 1");
        approve_all(&ready);
        let before = fingerprint(&conninfo);
        let assert = apply_cmd(&ready, &conninfo).assert().code(3);
        let stderr = stderr_of(&assert);
        assert!(
            stderr.contains("error[preflight]") && stderr.contains(why),
            "{sql}: {stderr}"
        );
        assert_eq!(before, fingerprint(&conninfo), "{sql} wrote");
    }
    let called: bool = admin
        .query_one("SELECT is_called FROM public.probe_seq", &[])
        .unwrap()
        .get(0);
    assert!(!called, "nextval advanced the sequence");
}

#[test]
fn a_trailing_statement_with_no_row_or_several_rows_rolls_back() {
    let (cluster, conninfo) = fixture_target();
    for (edit, want) in [
        (
            "AS alias_table_present\nWHERE false;",
            "expected exactly one row, got 0",
        ),
        (
            "AS alias_table_present\nFROM generate_series(1, 2);",
            "expected exactly one row, got 2",
        ),
    ] {
        let ready = ready_package(&cluster);
        edit_pinned(&ready.dir, MIGRATION, |sql| {
            sql.replacen("AS alias_table_present;", edit, 1)
        });
        approve_all(&ready);
        let before = fingerprint(&conninfo);
        let assert = apply_cmd(&ready, &conninfo).assert().code(4);
        let stderr = stderr_of(&assert);
        assert!(
            stderr.contains("error[migration-atomic]") && stderr.contains(want),
            "{stderr}"
        );
        assert_eq!(before, fingerprint(&conninfo));
    }
}

#[test]
fn an_oversized_migration_file_is_refused() {
    let (_tmp, dir) = reference_copy();
    let mut sql = read(&dir, MIGRATION);
    sql.push_str(
        &"-- padding padding padding padding padding padding padding padding\n".repeat(300_000),
    );
    edit_pinned(&dir, MIGRATION, |_| sql.clone());
    sluice()
        .arg("lint")
        .arg(&dir)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("the limit is 16777216"));
}

const SECRET: &str = "S3cret-Pw-never-shown";

/// A cluster where `secret_admin` must give a password (scram) on the socket.
fn password_target() -> (sluice::cluster::Cluster, String) {
    let bins = sluice_testkit::server();
    let mut options = sluice::cluster::ClusterOptions::new(bins);
    options.hba_lines = vec!["local all secret_admin scram-sha-256".into()];
    let cluster = sluice::cluster::Cluster::start(options).unwrap();
    sluice::reference::prepare_target(&cluster).unwrap();
    let mut admin = cluster.admin();
    admin
        .batch_execute(&format!(
            "CREATE ROLE secret_admin LOGIN SUPERUSER PASSWORD '{SECRET}'"
        ))
        .unwrap();
    admin
        .batch_execute("CREATE TABLE public.filler AS SELECT g, md5(g::text) || md5((g * 7)::text) AS pad FROM generate_series(1, 300000) g")
        .unwrap();
    let base = cluster.conninfo("directus", "secret_admin");
    (cluster, base)
}

/// Every file under a folder, read as bytes.
fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Watches /proc for pg_dump processes until `done`; returns every argv and environment seen.
fn watch_pg_dump(
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<Vec<u8>>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !done.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
            for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                if comm.trim() == "pg_dump" {
                    let mut both = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                    both.extend(std::fs::read(entry.path().join("environ")).unwrap_or_default());
                    if !both.is_empty() {
                        seen.push(both);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        seen
    })
}

#[test]
fn a_password_never_leaves_the_process_it_was_given_to() {
    let (cluster, base) = password_target();
    for (how, target, env) in [
        (
            "key/value --target",
            format!("{base} password={SECRET}"),
            None,
        ),
        (
            "URL --target",
            format!(
                "postgresql://secret_admin:{SECRET}@localhost/directus?host={}&port={}",
                cluster.socket_dir().display(),
                cluster.port()
            ),
            None,
        ),
        ("PGPASSWORD", base.clone(), Some(SECRET)),
    ] {
        let ready = ready_package(&cluster);
        edit_manifest(
            &ready.dir,
            "role = \"workflow_admin\"",
            "role = \"secret_admin\"",
        );
        approve_all(&ready);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = watch_pg_dump(done.clone());
        let mut cmd = apply_as(
            &ready,
            &target,
            "carol@example.com",
            &ready.tmp.path().join("evidence"),
        );
        cmd.arg("--json");
        if let Some(pw) = env {
            cmd.env("PGPASSWORD", pw);
        }
        let output = cmd.output().unwrap();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let seen = watcher.join().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{how}: {stderr}");
        assert!(
            !contains(&output.stdout, SECRET) && !contains(&output.stderr, SECRET),
            "{how}: the password is in the output"
        );
        for (path, bytes) in files(&ready.tmp.path().join("evidence")) {
            assert!(
                !contains(&bytes, SECRET),
                "{how}: the password is in {}",
                path.display()
            );
        }
        assert!(
            !seen.is_empty(),
            "{how}: pg_dump was never seen running (too fast to watch?)"
        );
        for proc_text in &seen {
            assert!(
                !contains(proc_text, SECRET),
                "{how}: the password is in pg_dump's command line or environment: {}",
                String::from_utf8_lossy(proc_text).replace('\0', " | ")
            );
        }
        // back to the fixture's schema for the next way of giving the password
        let mut admin = cluster.admin();
        admin.batch_execute(&read(&ready.dir, ROLLBACK)).unwrap();
        // and a wrong password is refused without echoing it
        let wrong = target.replace(SECRET, "wrong-pw-123");
        let mut cmd = sluice();
        cmd.arg("review").arg(&ready.dir).args(["--target", &wrong]);
        if env.is_some() {
            cmd.env("PGPASSWORD", "wrong-pw-123");
        }
        let output = cmd.output().unwrap();
        assert_eq!(output.status.code(), Some(3));
        assert!(
            !contains(&output.stderr, "wrong-pw-123"),
            "{how}: a wrong password was echoed"
        );
    }
}
