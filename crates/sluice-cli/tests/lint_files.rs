//! `sluice lint` on bare SQL files (any migration tool's, no package), and its output formats
//! (text, json, sarif, github) for files and packages alike (issue #19, item 2).

mod support;

use predicates::prelude::*;
use serde_sarif::sarif::{ResultLevel, Sarif};
use std::path::{Path, PathBuf};
use support::*;

/// A migration as another tool would write it: no BEGIN/COMMIT, an index built without
/// CONCURRENTLY (a warning on line 3) and an UPDATE without WHERE (a warning on line 4).
const ADD_FLAG: &str = "SET lock_timeout = '2s';\n\
ALTER TABLE users ADD COLUMN verified boolean NOT NULL DEFAULT false;\n\
CREATE INDEX ix_users_email ON users (email);\n\
UPDATE users SET verified = true;\n";

/// An error-level hazard: CONCURRENTLY cannot run in the transaction the tool opens.
const CONCURRENT: &str = "CREATE INDEX CONCURRENTLY ix_orders_user ON orders (user_id);\n";

/// A syntax error at line 2, column 7 (`TABL`).
const BROKEN: &str = "SELECT 1;\nALTER TABL users ADD COLUMN x int;\n";

fn migrations(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, sql) in files {
        std::fs::write(dir.join(name), sql).unwrap();
    }
    (tmp, dir)
}

/// `sluice lint` run in `dir`, so paths in findings are relative as a CI job's are.
fn lint_in(dir: &Path) -> assert_cmd::Command {
    let mut cmd = sluice();
    cmd.current_dir(dir).arg("lint");
    cmd
}

fn stdout_of(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(assert.get_output().stdout.clone()).unwrap()
}

#[test]
fn a_bare_file_reports_operations_and_hazards_and_says_scope_is_not_proven() {
    let (_tmp, dir) = migrations(&[("001_add_flag.sql", ADD_FLAG)]);
    let out = lint_in(&dir).arg("001_add_flag.sql").assert().success();
    let stdout = stdout_of(&out);
    for expected in [
        "add_column public.users.verified",
        "create_index public.ix_users_email",
        "update public.users",
        "warn blocking-index-build  001_add_flag.sql:3:1",
        "warn unbounded-dml  001_add_flag.sql:4:1",
        "runs as: one transaction (lock_timeout 2000 ms set by the file)",
        "scope: not proven",
        "lint: passed (1 file(s): 0 error(s), 2 warning(s)",
    ] {
        assert!(stdout.contains(expected), "no `{expected}` in:\n{stdout}");
    }
    // the advice is for the tool that runs the file, not for a sluice package
    assert!(
        stdout.contains("the file's lock_timeout = 2000 ms makes the wait give up")
            && !stdout.contains("sluice gives up")
            && !stdout.contains("[migration]")
            && !stdout.contains("in a package"),
        "{stdout}"
    );
    let no_timeout = ADD_FLAG.replace("SET lock_timeout = '2s';\n", "");
    let (_tmp2, dir2) = migrations(&[("002.sql", &no_timeout)]);
    let out = lint_in(&dir2).arg("002.sql").assert().success();
    let stdout2 = stdout_of(&out);
    assert!(
        stdout2.contains("with no lock_timeout: while it waits")
            && stdout2.contains("help: SET lock_timeout at the top of the file"),
        "{stdout2}"
    );
    // the warnings fail under --deny warn, as a package's do
    lint_in(&dir)
        .args(["--deny", "warn", "001_add_flag.sql"])
        .assert()
        .code(3);
}

#[test]
fn the_transaction_flag_says_how_the_tool_runs_each_file() {
    let wrapped = format!("BEGIN;\n{CONCURRENT}COMMIT;\n");
    let (_tmp, dir) = migrations(&[("concurrent.sql", CONCURRENT), ("wrapped.sql", &wrapped)]);
    // default: the tool runs each file in one transaction, where CONCURRENTLY cannot run
    lint_in(&dir)
        .arg("concurrent.sql")
        .assert()
        .code(3)
        .stdout(predicate::str::contains(
            "error non-transactional  concurrent.sql:1:1",
        ))
        .stdout(predicate::str::contains(
            "help: move it to a migration of its own that your tool runs without a transaction",
        ));
    // a tool that sends the statements as they are: fine, statement by statement
    lint_in(&dir)
        .args(["--transaction", "none", "concurrent.sql"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "runs as: statement by statement, no transaction",
        ));
    // …but a file that wraps itself in BEGIN … COMMIT is one transaction all the same
    lint_in(&dir)
        .args(["--transaction", "none", "wrapped.sql"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains(
            "error non-transactional  wrapped.sql:2:1",
        ));
}

#[test]
fn several_files_and_a_folder_of_them_are_linted_in_order() {
    let (_tmp, dir) = migrations(&[
        ("002_concurrent.sql", CONCURRENT),
        ("001_add_flag.sql", ADD_FLAG),
    ]);
    let out = lint_in(&dir)
        .args(["001_add_flag.sql", "002_concurrent.sql"])
        .assert()
        .code(3);
    let stdout = stdout_of(&out);
    let first = stdout.find("operations (4) in 001_add_flag.sql").unwrap();
    let second = stdout.find("operations (1) in 002_concurrent.sql").unwrap();
    assert!(first < second, "{stdout}");
    assert!(
        stdout.contains("lint: FAILED (2 file(s): 1 error(s), 2 warning(s)"),
        "{stdout}"
    );
    // a folder without sluice.toml: its .sql files in name order
    let parent = dir.parent().unwrap();
    let folder = stdout_of(&lint_in(parent).arg("migrations").assert().code(3));
    let first = folder.find("001_add_flag.sql:").unwrap();
    let second = folder.find("002_concurrent.sql:").unwrap();
    assert!(first < second, "{folder}");
    // a folder with neither sluice.toml nor .sql files is a usage error
    std::fs::create_dir_all(parent.join("empty")).unwrap();
    lint_in(parent)
        .arg("empty")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("neither a package"));
}

#[test]
fn stdin_is_linted_with_the_name_given_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    lint_in(tmp.path())
        .arg("-")
        .write_stdin(ADD_FLAG)
        .assert()
        .success()
        .stdout(predicate::str::contains("unbounded-dml  <stdin>:4:1"));
    lint_in(tmp.path())
        .args(["--stdin-filename", "db/V2__flag.sql", "-"])
        .write_stdin(ADD_FLAG)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "unbounded-dml  db/V2__flag.sql:4:1",
        ));
}

#[test]
fn a_syntax_error_is_located_in_its_file_and_the_other_files_are_still_linted() {
    let (_tmp, dir) = migrations(&[("001_add_flag.sql", ADD_FLAG), ("002_broken.sql", BROKEN)]);
    lint_in(&dir)
        .args(["001_add_flag.sql", "002_broken.sql"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "002_broken.sql:2:7: syntax error: syntax error at or near \"TABL\"",
        ))
        .stdout(predicate::str::contains(
            "unbounded-dml  001_add_flag.sql:4:1",
        ))
        .stdout(predicate::str::contains("1 file(s) could not be parsed"));
    // the same in an annotation, where CI shows it on the line
    lint_in(&dir)
        .args(["--format", "github", "002_broken.sql"])
        .assert()
        .code(2)
        .stdout(predicate::str::starts_with(
            "::error file=002_broken.sql,line=2,col=7,title=sluice syntax-error::syntax error",
        ));
    // a file that is not UTF-8 is refused at its first invalid byte
    std::fs::write(dir.join("latin1.sql"), b"SELECT 1;\n-- caf\xe9\n").unwrap();
    lint_in(&dir)
        .arg("latin1.sql")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "latin1.sql:2:7: the file is not valid UTF-8",
        ));
    // a file that cannot be read is a usage error
    lint_in(&dir)
        .arg("nope.sql")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read nope.sql"));
}

#[test]
fn json_lists_each_file_with_its_findings() {
    let (_tmp, dir) = migrations(&[("001_add_flag.sql", ADD_FLAG), ("002_broken.sql", BROKEN)]);
    let out = lint_in(&dir)
        .args(["--format", "json", "001_add_flag.sql", "002_broken.sql"])
        .assert()
        .code(2);
    let doc: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(doc["ok"], false);
    assert!(doc["scope"].as_str().unwrap().contains("not proven"));
    let file = &doc["files"][0];
    assert_eq!(file["file"], "001_add_flag.sql");
    assert_eq!(file["transaction"], "single");
    assert_eq!(file["lock_timeout_ms"], 2000);
    let hazards: Vec<&str> = file["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["hazard"].as_str().unwrap())
        .collect();
    assert!(hazards.contains(&"unbounded-dml"), "{hazards:?}");
    let broken = &doc["unparsable"][0];
    assert_eq!(broken["file"], "002_broken.sql");
    assert_eq!(broken["error"]["kind"], "syntax-error");
    assert_eq!(broken["error"]["location"]["line"], 2);
    assert_eq!(broken["error"]["location"]["column"], 7);
    // --json is --format json
    let out = lint_in(&dir)
        .args(["--json", "001_add_flag.sql"])
        .assert()
        .success();
    let same: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(same["files"][0]["findings"], file["findings"]);
    // …and asking for two documents is a usage error
    lint_in(&dir)
        .args(["--json", "--format", "sarif", "001_add_flag.sql"])
        .assert()
        .code(2);
}

/// The SARIF log read back with serde-sarif's own types.
fn sarif_of(assert: &assert_cmd::assert::Assert) -> Sarif {
    serde_json::from_slice(&assert.get_output().stdout).expect("a SARIF 2.1.0 log")
}

/// Each result as (rule id, level, uri, line, column), with its rule looked up in the driver.
fn results(sarif: &Sarif) -> Vec<(String, ResultLevel, String, i64, i64)> {
    assert_eq!(sarif.version, serde_json::json!("2.1.0"));
    assert_eq!(sarif.runs.len(), 1);
    let run = &sarif.runs[0];
    let rules = run.tool.driver.rules.as_ref().expect("rule metadata");
    run.results
        .as_ref()
        .expect("results")
        .iter()
        .map(|r| {
            let id = r.rule_id.clone().expect("ruleId");
            let rule = &rules[r.rule_index.expect("ruleIndex") as usize];
            assert_eq!(rule.id, id, "ruleIndex points at another rule");
            assert!(rule
                .short_description
                .as_ref()
                .is_some_and(|d| !d.text.is_empty()));
            assert!(rule.help.as_ref().is_some_and(|h| !h.text.is_empty()));
            let physical = r.locations.as_ref().unwrap()[0]
                .physical_location
                .as_ref()
                .unwrap();
            let region = physical.region.as_ref().unwrap();
            (
                id,
                r.level.expect("level"),
                physical
                    .artifact_location
                    .as_ref()
                    .unwrap()
                    .uri
                    .clone()
                    .unwrap(),
                region.start_line.unwrap(),
                region.start_column.unwrap(),
            )
        })
        .collect()
}

#[test]
fn sarif_for_bare_files_has_rules_levels_and_regions() {
    let (_tmp, dir) = migrations(&[
        ("001_add_flag.sql", ADD_FLAG),
        ("002_concurrent.sql", CONCURRENT),
    ]);
    let out = lint_in(&dir)
        .args([
            "--format",
            "sarif",
            "001_add_flag.sql",
            "002_concurrent.sql",
        ])
        .assert()
        .code(3);
    let sarif = sarif_of(&out);
    let results = results(&sarif);
    let level_of = |rule: &str| {
        results
            .iter()
            .find(|r| r.0 == rule)
            .unwrap_or_else(|| panic!("no {rule} in {results:?}"))
    };
    assert_eq!(
        level_of("blocking-index-build"),
        &(
            "blocking-index-build".into(),
            ResultLevel::Warning,
            "001_add_flag.sql".into(),
            3,
            1
        )
    );
    assert_eq!(level_of("unbounded-dml").1, ResultLevel::Warning);
    assert_eq!(level_of("access-exclusive-lock").1, ResultLevel::Note);
    assert_eq!(
        level_of("non-transactional"),
        &(
            "non-transactional".into(),
            ResultLevel::Error,
            "002_concurrent.sql".into(),
            1,
            1
        )
    );
    // every hazard is described, whether found or not; columns are counted in characters
    let run = &sarif.runs[0];
    let rules: Vec<&str> = run
        .tool
        .driver
        .rules
        .as_ref()
        .unwrap()
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    for id in [
        "data-loss",
        "table-rewrite",
        "scan-under-lock",
        "default-hides-backfill",
        "syntax-error",
        "scope",
    ] {
        assert!(rules.contains(&id), "no rule {id} in {rules:?}");
    }
    assert_eq!(
        run.column_kind,
        Some(serde_json::json!("unicodeCodePoints"))
    );
    assert_eq!(run.tool.driver.name, "sluice");
}

#[test]
fn sarif_and_github_for_a_package_include_scope_failures() {
    let (_tmp, dir) = reference_copy();
    edit_pinned(&dir, MIGRATION, |sql| {
        let at = sql.rfind("COMMIT;").unwrap();
        format!(
            "{}DROP TABLE cutter_governance.verify_result;\n\n{}",
            &sql[..at],
            &sql[at..]
        )
    });
    let line = read(&dir, MIGRATION)
        .lines()
        .position(|l| l.starts_with("DROP TABLE cutter_governance.verify_result"))
        .unwrap() as i64
        + 1;
    let out = sluice()
        .args(["lint", "--format", "sarif"])
        .arg(&dir)
        .assert()
        .code(3);
    let results = results(&sarif_of(&out));
    let migration = format!("{}/{MIGRATION}", dir.display());
    let at_drop: Vec<_> = results.iter().filter(|r| r.3 == line).collect();
    assert!(
        at_drop.iter().any(|r| r.0 == "scope"
            && r.1 == ResultLevel::Error
            && r.2 == format!("file://{migration}")),
        "{results:?}"
    );
    assert!(at_drop.iter().any(|r| r.0 == "data-loss"), "{results:?}");
    // the rollback's notes are there too, as notes
    assert!(results
        .iter()
        .any(|r| r.0 == "data-loss" && r.1 == ResultLevel::Note && r.2.ends_with("rollback.sql")));

    let out = sluice()
        .args(["lint", "--format", "github"])
        .arg(&dir)
        .assert()
        .code(3);
    let stdout = stdout_of(&out);
    let scope_line = format!(
        "::error file={},line={line},col=1,title=sluice scope::out of scope%3A",
        migration.replace(':', "%3A").replace(',', "%2C")
    );
    // properties escape `:`, the message does not
    let scope_line = scope_line.replace("out of scope%3A", "out of scope:");
    assert!(
        stdout.lines().any(|l| l.starts_with(&scope_line)),
        "no `{scope_line}` in:\n{stdout}"
    );
    assert!(stdout.lines().all(|l| l.starts_with("::")), "{stdout}");
}

#[test]
fn github_annotations_are_one_per_finding_with_the_runners_escapes() {
    let (_tmp, dir) = migrations(&[("001_add_flag.sql", ADD_FLAG)]);
    let out = lint_in(&dir)
        .args(["--format", "github", "001_add_flag.sql"])
        .assert()
        .success();
    let stdout = stdout_of(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].starts_with(
        "::notice file=001_add_flag.sql,line=2,col=1,title=sluice access-exclusive-lock::"
    ));
    assert!(lines[1].starts_with(
        "::warning file=001_add_flag.sql,line=3,col=1,title=sluice blocking-index-build::"
    ));
    // a finding's help is on a second line of the annotation, escaped as %0A
    assert!(lines[2].contains("%0Ahelp: "), "{}", lines[2]);
}

#[test]
fn the_reference_package_in_sarif_is_clean_of_errors() {
    let out = sluice()
        .args(["lint", "--format", "sarif", "../../examples/phase-alpha"])
        .assert()
        .success();
    let results = results(&sarif_of(&out));
    assert!(
        results.iter().all(|r| r.1 != ResultLevel::Error),
        "{results:?}"
    );
    assert!(results
        .iter()
        .any(|r| r.2 == "../../examples/phase-alpha/sql/phase-alpha-r2.sql"));
}

#[test]
fn transaction_is_refused_for_a_package() {
    sluice()
        .args([
            "lint",
            "--transaction",
            "none",
            "../../examples/phase-alpha",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("sluice.toml"));
}
