//! The rehearsal's lock trace as a user meets it: recorded in the sealed rehearsal record and in
//! the rehearsal's evidence, printed by `rehearse`, rendered by `review`, and held against
//! `[rehearsal] lock_budget_ms` by apply's rehearsal gate.
mod support;

use support::*;

fn rehearse(ready: &Ready, conninfo: &str) -> String {
    let mut cmd = sluice();
    cmd.arg("rehearse")
        .arg(&ready.dir)
        .args(["--target", conninfo, "--evidence"])
        .arg(ready.tmp.path().join("rehearsal-evidence"));
    if let Some(bindir) = sluice_testkit::server_bindir() {
        cmd.arg("--pg-bindir").arg(bindir);
    }
    stderr_of(&cmd.assert().success())
}

fn newest_record(ready: &Ready) -> serde_json::Value {
    let mut paths: Vec<_> = std::fs::read_dir(ready.dir.join("rehearsals"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    serde_json::from_str(&std::fs::read_to_string(paths.last().unwrap()).unwrap()).unwrap()
}

fn statement_at(trace: &serde_json::Value, line: u64) -> &serde_json::Value {
    trace["statements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["line"] == line)
        .unwrap_or_else(|| panic!("no statement at line {line}"))
}

fn holds(statement: &serde_json::Value, object: &str, mode: &str) -> bool {
    statement["locks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["object"] == object && l["mode"] == mode)
}

fn set_budget(ready: &Ready, budget_ms: u64) {
    let text = read(&ready.dir, "sluice.toml");
    let start = text.find("[rehearsal]").unwrap();
    let end = text[start..].find("\n\n").map_or(text.len(), |e| start + e);
    let section = format!("[rehearsal]\nrequired = true\nlock_budget_ms = {budget_ms}");
    write(
        &ready.dir,
        "sluice.toml",
        &format!("{}{section}{}", &text[..start], &text[end..]),
    );
}

#[test]
fn the_rehearsal_records_the_trace_and_the_lock_budget_refuses_then_passes() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    set_budget(&ready, 1);
    let stderr = rehearse(&ready, &conninfo);
    assert!(
        stderr.contains("lock trace (apply): 13 statement(s); longest lock blocking reads or writes: ACCESS EXCLUSIVE on public.tac_logical_unit"),
        "{stderr}"
    );
    assert!(
        stderr.contains("lock trace (re-apply): 13 statement(s)"),
        "{stderr}"
    );
    let record = newest_record(&ready);
    let apply = &record["trace"]["apply"];
    assert!(holds(
        statement_at(apply, 16),
        "public.tac_logical_unit",
        "access_exclusive"
    ));
    assert!(holds(
        statement_at(apply, 37),
        "sandbox_tac.logical_unit",
        "access_exclusive"
    ));
    assert!(holds(
        statement_at(apply, 24),
        "public.tac_logical_unit",
        "row_exclusive"
    ));
    assert_eq!(statement_at(apply, 24)["rows"], 86);
    assert!(record["trace"]["re_apply"]["statements"].is_array());
    // each rehearsal apply's evidence holds the trace, hashed like every other file
    let evidence = ready.tmp.path().join("rehearsal-evidence");
    let traces: Vec<_> = walk(&evidence)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "trace.json"))
        .collect();
    assert_eq!(traces.len(), 2, "{traces:?}");
    for trace in &traces {
        let sums = std::fs::read_to_string(trace.with_file_name("SHA256SUMS")).unwrap();
        assert!(sums.contains("  trace.json"), "{sums}");
    }

    // the review reads the passing record: the statements as measured
    let review = sluice()
        .arg("review")
        .arg(&ready.dir)
        .args(["--format", "md"])
        .assert()
        .success();
    let md = String::from_utf8(review.get_output().stdout.clone()).unwrap();
    assert!(
        md.contains(
            "ACCESS EXCLUSIVE on public.tac_logical_unit (blocks every read and write) held"
        ),
        "{md}"
    );
    assert!(md.contains("86 rows"), "{md}");
    assert!(
        md.contains("lint against the trace: 2 confirmed, 0 refuted"),
        "{md}"
    );
    let json = sluice()
        .arg("review")
        .arg(&ready.dir)
        .args(["--format", "json"])
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&json.get_output().stdout).unwrap();
    assert_eq!(
        json["measured"]["trace"]["apply"]["statements"]
            .as_array()
            .map(Vec::len),
        Some(13)
    );
    let page = ready.tmp.path().join("review.html");
    sluice()
        .arg("review")
        .arg(&ready.dir)
        .args(["--format", "html", "-o"])
        .arg(&page)
        .assert()
        .success();
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains(
            "ACCESS EXCLUSIVE on public.tac_logical_unit (blocks every read and write) held"
        ),
        "the trace in the page"
    );

    // a budget of 1 ms: the ADD COLUMN's ACCESS EXCLUSIVE was held longer
    approve_all(&ready);
    let stderr = refused_before(&ready, &conninfo, "rehearsal");
    for needle in [
        "lock budget exceeded in rehearsal",
        "line 16",
        "ACCESS EXCLUSIVE on public.tac_logical_unit",
        "until COMMIT",
        "lock_budget_ms = 1",
    ] {
        assert!(stderr.contains(needle), "want {needle} in:\n{stderr}");
    }

    // a budget of ten minutes: a new digest, so a new rehearsal and new approvals, then apply
    set_budget(&ready, 600_000);
    rehearse(&ready, &conninfo);
    approve_all(&ready);
    let assert = apply_cmd(&ready, &conninfo).assert().success();
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("within lock_budget_ms = 600000"),
        "{stderr}"
    );
    // the production apply is not traced
    let run = run_json(&last_run(&ready));
    assert!(run["migration"].get("trace").is_none());
    assert!(!last_run(&ready).join("trace.json").exists());
}

#[test]
fn a_passing_record_without_a_trace_does_not_satisfy_a_budget() {
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    set_budget(&ready, 600_000);
    rehearse(&ready, &conninfo);
    // the record as an older sluice wrote it: no trace, sealed again
    let dir = ready.dir.join("rehearsals");
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut record: sluice::rehearsal::RehearsalRecord =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    record.trace = None;
    let record = record.seal();
    std::fs::write(&path, serde_json::to_string_pretty(&record).unwrap()).unwrap();
    approve_all(&ready);
    let stderr = refused_before(&ready, &conninfo, "rehearsal");
    assert!(stderr.contains("has no lock trace"), "{stderr}");
    assert!(stderr.contains("run `sluice rehearse` again"), "{stderr}");
}

#[test]
fn a_lock_budget_is_validated_where_it_is_written() {
    let (_tmp, dir) = reference_copy();
    edit_manifest(
        &dir,
        "[rehearsal]\nrequired = true",
        "[rehearsal]\nrequired = true\nlock_budget_ms = -1",
    );
    let line = manifest_line(&dir, "lock_budget_ms");
    let out = sluice().arg("lint").arg(&dir).assert().code(2);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains(&format!("sluice.toml:{line}:")), "{stderr}");
    assert!(
        stderr.contains("rehearsal.lock_budget_ms = -1: expected a whole number"),
        "{stderr}"
    );

    let (_tmp, dir) = reference_copy();
    edit_manifest(
        &dir,
        "[rehearsal]\nrequired = true",
        "[rehearsal]\nrequired = false\nlock_budget_ms = 50",
    );
    let line = manifest_line(&dir, "lock_budget_ms");
    let out = sluice().arg("lint").arg(&dir).assert().code(2);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains(&format!("sluice.toml:{line}:")), "{stderr}");
    assert!(
        stderr.contains("rehearsal.lock_budget_ms = 50 needs required = true"),
        "{stderr}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// `transaction = "none"` through `sluice rehearse`: the sampler on the rehearsal's second
/// session sees the concurrent build's SHARE UPDATE EXCLUSIVE and its phases.
#[test]
fn a_non_atomic_rehearsal_samples_the_concurrent_index_build() {
    let (cluster, conninfo) = own_fixture_target();
    let mut c = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    c.batch_execute(
        "CREATE TABLE public.big (id int PRIMARY KEY, n int);
         INSERT INTO public.big SELECT g, g % 997 FROM generate_series(1, 300000) g;",
    )
    .unwrap();
    let migration = "CREATE INDEX CONCURRENTLY ix_big_n ON public.big (n);\nSELECT count(*) AS indexes FROM pg_catalog.pg_indexes WHERE indexname = 'ix_big_n';\n";
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pkg");
    std::fs::create_dir_all(dir.join("sql")).unwrap();
    std::fs::write(dir.join("sql/migration.sql"), migration).unwrap();
    let manifest = format!(
        r#"[package]
id = "big-index"
revision = "r1"
title = "An index on public.big, built concurrently"
summary = "An index without blocking writes."
non_scope = ["no data change"]

[target]
database = "directus"
server_major = {major}
search_path = "public"

[migration]
file = "sql/migration.sql"
sha256 = "{sha}"
transaction = "none"
lock_timeout_ms = 5000
statement_timeout_ms = 0
lock_retries = 0

[migration.expect]
indexes = 1

[scope]
operations = ["create_index public.ix_big_n"]

[backup]
required = true
max_age_minutes = 60

[schema_diff]
allow_removed = false

[approvals]
required = 0

[rehearsal]
required = true
"#,
        major = cluster.binaries().major,
        sha = sluice::digest::sha256_hex(migration.as_bytes())
    );
    std::fs::write(dir.join("sluice.toml"), manifest).unwrap();
    let mut cmd = sluice();
    cmd.arg("rehearse")
        .arg(&dir)
        .args(["--target", &conninfo, "--evidence"])
        .arg(tmp.path().join("rehearsal-evidence"));
    if let Some(bindir) = sluice_testkit::server_bindir() {
        cmd.arg("--pg-bindir").arg(bindir);
    }
    let stderr = stderr_of(&cmd.assert().success());
    assert!(
        stderr.contains("lock trace (apply): 2 statement(s)"),
        "{stderr}"
    );
    let path = std::fs::read_dir(dir.join("rehearsals"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let apply = &record["trace"]["apply"];
    assert_eq!(apply["autocommit"], true);
    let build = &apply["statements"][0];
    assert!(build["samples"].as_u64().unwrap_or(0) > 0, "{build:#}");
    assert!(
        holds(build, "public.big", "share_update_exclusive"),
        "{build:#}"
    );
    assert!(
        build["phases"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["phase"]
                .as_str()
                .unwrap_or("")
                .starts_with("building index"))),
        "{build:#}"
    );
}
