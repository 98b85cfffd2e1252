//! The HTML review and report.html in a real browser: headless Chromium reads them from
//! `file://`; the text it shows has the gate ids and the figures of the package and of the run,
//! the Markdown's headings in the Markdown's order, and a screenshot is made (kept in
//! `TARGET/html-screenshots/`). Also: report.html is evidence like report.md (0600, in
//! SHA256SUMS, checked by `sluice evidence check`, a failed write fails the run).
mod support;

use sluice::digest::sha256_hex;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use support::browser::{keep_screenshot, visible_text, Chromium};
use support::*;

const REFERENCE: &str = "../../examples/phase-alpha";

fn stdout_of(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(assert.get_output().stdout.clone()).unwrap()
}

/// The Markdown's headings (`#`, `##`, `###`) as a reader sees them: no `#`, backquotes or
/// stars.
fn markdown_headings(md: &str) -> Vec<String> {
    md.lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            let plain = l.trim_start_matches('#').replace(['`', '*'], "");
            plain.split_whitespace().collect::<Vec<_>>().join(" ")
        })
        .collect()
}

/// Every string of `wanted` is in `text`, each after the one before it.
fn in_order(text: &str, wanted: &[String]) {
    let mut from = 0;
    for want in wanted {
        match text[from..].find(want.as_str()) {
            Some(at) => from += at + want.len(),
            None => panic!(
                "`{want}` is not on the page after the headings before it; the page reads:\n{text}"
            ),
        }
    }
}

fn contains_all<'a>(text: &str, wanted: impl IntoIterator<Item = &'a str>) {
    for want in wanted {
        assert!(text.contains(want), "`{want}` is not on the page:\n{text}");
    }
}

/// The page loads nothing: no script, no external stylesheet, image, font or link.
fn stands_alone(html: &str) {
    for outside in [
        "<script", "<link", "src=", "http://", "https://", "url(", "@import",
    ] {
        assert!(!html.contains(outside), "the page has `{outside}`");
    }
}

/// A screenshot of `page`, non-empty, kept under the target folder as `name`.
fn screenshot(chromium: &Chromium, page: &Path, name: &str) {
    let png = page.with_file_name(name);
    let bytes = chromium.screenshot(page, &png);
    assert!(bytes.len() > 10_000, "a {} byte screenshot", bytes.len());
    let kept = keep_screenshot(&png, name);
    std::fs::copy(page, kept.with_extension("html")).unwrap();
}

#[test]
fn the_reference_review_reads_in_a_browser() {
    let chromium = Chromium::find();
    let digest = sluice().args(["digest", REFERENCE]).assert().success();
    let digest = stdout_of(&digest).trim().to_string();
    let md = sluice()
        .args(["review", REFERENCE, "--format", "md"])
        .assert()
        .success();
    let tmp = tempfile::tempdir().unwrap();
    let page = tmp.path().join("review.html");
    sluice()
        .args(["review", REFERENCE, "--format", "html", "-o"])
        .arg(&page)
        .assert()
        .success();
    stands_alone(&std::fs::read_to_string(&page).unwrap());

    let text = visible_text(&chromium.dump_dom(&page));
    in_order(&text, &markdown_headings(&stdout_of(&md)));
    contains_all(
        &text,
        [digest.as_str(), "REVIEW ONLY.", "0 of 2 required approvals"],
    );
    contains_all(&text, sluice::gate::ids());
    let checks: Vec<String> = (1..=10)
        .map(|i| format!("P-{i} —"))
        .chain((1..=16).map(|i| format!("V-α-{i} —")))
        .collect();
    contains_all(&text, checks.iter().map(String::as_str));
    screenshot(&chromium, &page, "review.png");
}

/// The figures run.json holds, as the page must show them: each step's gate and time, and the
/// trailing row's columns and values.
fn run_figures(run: &serde_json::Value) -> Vec<String> {
    let mut figures = vec![run["digest"].as_str().unwrap().to_string()];
    for step in run["steps"].as_array().unwrap() {
        let id = step["gate"].as_str().or(step["name"].as_str()).unwrap();
        figures.push(format!("{} {id} ", step["number"]));
        figures.push(format!("{} ms", step["duration_ms"]));
    }
    let row = &run["migration"]["last_row"];
    let columns = row["columns"].as_array().unwrap();
    for (column, value) in columns.iter().zip(row["rows"][0].as_array().unwrap()) {
        figures.push(format!(
            "{} {}",
            column.as_str().unwrap(),
            value.as_str().unwrap_or("NULL")
        ));
    }
    figures
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_runs_report_html_reads_in_a_browser_and_is_evidence() {
    let chromium = Chromium::find();
    let (cluster, conninfo) = fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    apply_cmd(&ready, &conninfo).assert().success();
    let run_dir = last_run(&ready);
    let page = run_dir.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    stands_alone(&html);
    assert_eq!(mode_of(&page), 0o600);
    let sums = read(&run_dir, "SHA256SUMS");
    assert!(sums.contains(&format!("{}  report.html\n", sha256_hex(html.as_bytes()))));

    let text = visible_text(&chromium.dump_dom(&page));
    in_order(&text, &markdown_headings(&read(&run_dir, "report.md")));
    let figures = run_figures(&run_json(&run_dir));
    contains_all(&text, figures.iter().map(String::as_str));
    contains_all(
        &text,
        [
            "SUCCEEDED — every gate held",
            "tac_authority_draft 86",
            "public.tac_logical_unit.updated_at 3 → 1",
            "rows changed 86/86 (added 0, removed 0); expected 86 changed: holds",
            "Time per step (ms)",
        ],
    );
    // the timing chart: a bar per step
    let steps = run_json(&run_dir)["steps"].as_array().unwrap().len();
    assert!(html.matches("<rect class=\"bar ").count() >= steps);
    screenshot(&chromium, &page, "report.png");
    an_edited_report_html_is_named(&run_dir, &html);
    a_refused_run_says_so(&chromium, &ready, &conninfo);
    a_report_html_that_cannot_be_written_fails_the_run(&ready, &conninfo);
}

fn an_edited_report_html_is_named(run_dir: &Path, html: &str) {
    std::fs::write(
        run_dir.join("report.html"),
        html.replace("SUCCEEDED", "FAILED"),
    )
    .unwrap();
    let assert = sluice()
        .args(["evidence", "check"])
        .arg(run_dir)
        .assert()
        .code(1);
    assert!(stderr_of(&assert).contains("changed: report.html"));
    std::fs::write(run_dir.join("report.html"), html).unwrap();
}

/// A second apply is refused by preflight (the change is there): its page says where and why.
fn a_refused_run_says_so(chromium: &Chromium, ready: &Ready, conninfo: &str) {
    refused(ready, conninfo, 3, "preflight");
    let page = last_run(ready).join("report.html");
    let text = visible_text(&chromium.dump_dom(&page));
    contains_all(
        &text,
        [
            "FAILED at preflight — the migration did not commit: the target is unchanged",
            "P-5",
            "exit code 3",
        ],
    );
    screenshot(chromium, &page, "report-refused.png");
}

fn a_report_html_that_cannot_be_written_fails_the_run(ready: &Ready, conninfo: &str) {
    let output = apply_cmd(ready, conninfo)
        .env("SLUICE_FAULT_EVIDENCE_FULL", "report.html")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error[evidence]") && stderr.contains("report.html"),
        "{stderr}"
    );
    let run_dir = last_run(ready);
    assert!(
        !run_dir.join("report.html").exists(),
        "a partial report.html was left"
    );
    assert!(run_dir.join("report.md").is_file());
}
