//! Snapshots of what users read (issue #15, item 5), through the real binary: `sluice lint`'s
//! text and JSON for the reference package and for a bare SQL file, the review Markdown of the
//! reference package, and the `report.md` of a real apply. Whatever varies between runs,
//! machines and PostgreSQL versions (times, durations, hashes, stamps, paths, ports, versions)
//! is redacted by insta filters ([`report_filters`]); the rest must match the `.snap` files in
//! `snapshots/`. Each hazard's finding has its own snapshot beside the renderer
//! (`src/render/hazard_snapshots.rs`).

mod support;

use std::path::Path;
use support::*;

/// A migration as another tool would write it, with a hazard of each severity: a backfill the
/// DEFAULT hides (error), a blocking index build, a rename and an unbounded DELETE (warnings).
const BARE: &str = "SET lock_timeout = '3s';\n\
ALTER TABLE public.orders ADD COLUMN status text DEFAULT 'new';\n\
UPDATE public.orders SET status = 'legacy' WHERE status IS NULL;\n\
CREATE INDEX ix_orders_status ON public.orders (status);\n\
ALTER TABLE public.orders RENAME COLUMN note TO remark;\n\
DELETE FROM public.order_audit;\n";

/// Runs `sluice ARGS` in `dir`, expects exit `code`, and returns stdout.
fn stdout_in(dir: &Path, args: &[&str], code: i32) -> String {
    let assert = sluice().current_dir(dir).args(args).assert().code(code);
    String::from_utf8(assert.get_output().stdout.clone()).unwrap()
}

/// A folder holding a bare migration file, `migrations/0042_order_status.sql`.
fn bare_file() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("migrations")).unwrap();
    write(tmp.path(), "migrations/0042_order_status.sql", BARE);
    tmp
}

/// `sluice VERSION` in a document, so a release does not change the snapshots.
fn version_filter(settings: &mut insta::Settings) {
    settings.add_filter(
        &format!(r"sluice {}", regex_escape(env!("CARGO_PKG_VERSION"))),
        "sluice [VERSION]",
    );
}

/// A literal as a regex.
fn regex_escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if r"\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[test]
fn lint_text_of_the_reference_package() {
    let (tmp, _dir) = reference_copy();
    let text = stdout_in(tmp.path(), &["lint", "phase-alpha"], 0);
    insta::assert_snapshot!("lint_reference_text", text);
}

#[test]
fn lint_json_of_the_reference_package() {
    let (tmp, _dir) = reference_copy();
    let json = stdout_in(tmp.path(), &["lint", "phase-alpha", "--format", "json"], 0);
    serde_json::from_str::<serde_json::Value>(&json).expect("lint --format json is JSON");
    insta::assert_snapshot!("lint_reference_json", json);
}

#[test]
fn lint_text_of_a_bare_file() {
    let tmp = bare_file();
    let text = stdout_in(tmp.path(), &["lint", "migrations/0042_order_status.sql"], 3);
    insta::assert_snapshot!("lint_bare_file_text", text);
}

#[test]
fn lint_json_of_a_bare_file() {
    let tmp = bare_file();
    let json = stdout_in(
        tmp.path(),
        &[
            "lint",
            "migrations/0042_order_status.sql",
            "--format",
            "json",
        ],
        3,
    );
    serde_json::from_str::<serde_json::Value>(&json).expect("lint --format json is JSON");
    insta::assert_snapshot!("lint_bare_file_json", json);
}

#[test]
fn review_markdown_of_the_reference_package() {
    let (tmp, _dir) = reference_copy();
    let md = stdout_in(tmp.path(), &["review", "phase-alpha", "--format", "md"], 0);
    let mut settings = insta::Settings::clone_current();
    version_filter(&mut settings);
    settings.bind(|| insta::assert_snapshot!("review_reference_md", md));
}

/// What varies in a run's report between runs, machines and PostgreSQL versions 14–18, each
/// replaced by a placeholder naming what it was (insta applies the filters in this order).
/// `tmp` is the test's temporary folder.
fn report_filters(settings: &mut insta::Settings, tmp: &Path) {
    version_filter(settings);
    // paths: the test's folder, the cluster's socket folder and port, the client tools' folder
    settings.add_filter(&regex_escape(&tmp.display().to_string()), "[TMP]");
    settings.add_filter(r"host=\S+", "host=[SOCKET_DIR]");
    settings.add_filter(r"port=\d+", "port=[PORT]");
    settings.add_filter(
        r"pg_dump/pg_restore \S+ from \S+ for server",
        "pg_dump/pg_restore [PG_VERSION] from [PG_BINDIR] for server",
    );
    // the server's version string (`16.13`, `15.18 (Debian 15.18-0+deb12u1)`, `18beta1`; a
    // packager's note is capitalised, unlike the report's own `(database …, role …)`) and
    // major version
    settings.add_filter(
        r"(PostgreSQL|server) \d+(\.\d+)*([a-z]+\d*)?( \([A-Z][^),]*\))?",
        "$1 [PG_VERSION]",
    );
    settings.add_filter(
        r"server_major: \d+ \(expected \d+\)",
        "server_major: [MAJOR] (expected [MAJOR])",
    );
    settings.add_filter(r"server_major = \d+", "server_major = [MAJOR]");
    // times: timestamps (also the fixture's, which a trigger sets to now()), run stamps,
    // durations
    settings.add_filter(
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:?\d{2})?)?",
        "[TIMESTAMP]",
    );
    settings.add_filter(r"\d{8}T\d{6}Z(-\d+)?", "[STAMP]");
    settings.add_filter(r"\d+(\.\d+)? ?(ms|µs|s)\b", "[DURATION]");
    // the dump: its size, rate and table of contents vary with pg_dump's version
    settings.add_filter(r"\d+ bytes in", "[SIZE] bytes in");
    settings.add_filter(r"\(\d+(\.\d+)? (bytes|KiB|MiB|GiB)/s\)", "([RATE])");
    settings.add_filter(
        r"\(\d+ entries, \d+ with data",
        "([N] entries, [N] with data",
    );
    // hashes (the digest covers the manifest, whose server_major the test sets), key
    // fingerprints, the system identifier and the advisory lock key
    settings.add_filter(r"\b[0-9a-f]{64}\b", "[SHA256]");
    settings.add_filter(r"SHA256:[A-Za-z0-9+/]{43}", "[KEY_FINGERPRINT]");
    settings.add_filter(r"\b\d{19}\b", "[SYSTEM_ID]");
    settings.add_filter(r"advisory lock -?\d+", "advisory lock [LOCK_KEY]");
}

#[test]
fn report_md_of_a_run_of_the_reference_package() {
    let (cluster, conninfo) = own_fixture_target();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    apply_cmd(&ready, &conninfo).assert().success();
    let report = read(&last_run(&ready), "report.md");
    let mut settings = insta::Settings::clone_current();
    report_filters(&mut settings, ready.tmp.path());
    settings.bind(|| insta::assert_snapshot!("report_md_of_a_run", report));
}
