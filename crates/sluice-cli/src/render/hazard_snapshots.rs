//! Snapshots of every hazard's finding as `sluice lint` prints it (issue #15, item 5): one
//! snapshot per rule of [`RULES`], each from a small SQL input that triggers it, rendered by
//! [`super::finding`] as a package's migration (sluice runs it) and as a bare SQL file (another
//! tool runs it), whose advice differs. A rule without a case here fails the suite.

use sluice::lint::{lint_bare_file, FileOptions};
use sluice::source::SourceFile;
use sluice::sql::hazards::{findings_of_text, FileRole, SqlText, TargetFacts, RULES};
use sluice::sql::transaction::TransactionMode;
use sluice::sql::Finding;
use std::collections::BTreeSet;
use std::fmt::Write;

/// A SQL input that triggers one hazard.
struct Case {
    hazard: &'static str,
    sql: &'static str,
    /// Row triggers the target reports (`--target`), as `(schema.table, trigger)`.
    triggers: &'static [(&'static str, &'static str)],
    /// For rules that also judge the rollback: a rollback file, with what the migration adds.
    rollback: Option<(&'static str, &'static [&'static str])>,
}

const fn case(hazard: &'static str, sql: &'static str) -> Case {
    Case {
        hazard,
        sql,
        triggers: &[],
        rollback: None,
    }
}

const CASES: &[Case] = &[
    case("transaction-control", "SELECT 1;\nCOMMIT;\n"),
    case(
        "non-transactional",
        "CREATE INDEX CONCURRENTLY ix ON public.t (a);\n",
    ),
    case(
        "default-hides-backfill",
        "BEGIN;\nALTER TABLE public.tac_logical_unit ADD COLUMN authority text DEFAULT 'draft';\nUPDATE public.tac_logical_unit SET authority = CASE lifecycle_status WHEN 'draft_only' THEN 'draft' END\n WHERE authority IS NULL;\nCOMMIT;\n",
    ),
    Case {
        rollback: Some((
            "BEGIN;\nDROP TABLE IF EXISTS public.alias;\nALTER TABLE public.t DROP COLUMN b;\nCOMMIT;\n",
            &["public.alias"],
        )),
        ..case("data-loss", "ALTER TABLE public.t DROP COLUMN c;\n")
    },
    case(
        "table-rewrite",
        "ALTER TABLE public.t ALTER COLUMN a TYPE bigint;\n",
    ),
    case(
        "scan-under-lock",
        "ALTER TABLE public.t ALTER COLUMN a SET NOT NULL;\n",
    ),
    case("blocking-index-build", "CREATE INDEX ix ON public.t (a);\n"),
    case("unbounded-dml", "UPDATE public.t SET a = 1;\n"),
    case(
        "rename-breaks-clients",
        "ALTER TABLE public.t RENAME COLUMN a TO b;\n",
    ),
    case(
        "access-exclusive-lock",
        "ALTER TABLE public.t ADD COLUMN a int;\n",
    ),
    case(
        "write-blocking-lock",
        "ALTER TABLE public.child ADD CONSTRAINT fk FOREIGN KEY (pid) REFERENCES public.parent (id) NOT VALID;\n",
    ),
    Case {
        triggers: &[("public.t", "trg_audit")],
        ..case(
            "trigger-side-effect",
            "UPDATE public.t SET a = 1 WHERE a IS NULL;\n",
        )
    },
    case(
        "privilege-change",
        "BEGIN;\nGRANT SELECT ON public.t TO reader;\nGRANT SELECT ON public.t TO PUBLIC;\nCOMMIT;\n",
    ),
];

/// The findings of a package's file, judged as `sluice::lint::lint` judges a package in
/// `single` mode with the default lock_timeout_ms = 5000.
fn in_package(
    path: &str,
    sql: &str,
    role: FileRole,
    added: &[&str],
    facts: Option<&TargetFacts>,
) -> Vec<Finding> {
    let added: BTreeSet<String> = added.iter().map(|a| a.to_string()).collect();
    let text = SqlText {
        path,
        sql,
        role,
        mode: TransactionMode::Single,
        added_by_migration: &added,
        target: facts,
    };
    findings_of_text(&text).expect("case SQL parses")
}

/// The case's findings of its own hazard, rendered as lint prints them, under a title.
fn section(out: &mut String, title: &str, hazard: &str, findings: &[Finding]) {
    let _ = writeln!(out, "--- {title}");
    let mine: Vec<&Finding> = findings.iter().filter(|f| f.hazard == hazard).collect();
    assert!(!mine.is_empty(), "{hazard}: no finding {title}");
    for f in mine {
        super::finding(out, f);
    }
}

fn render(case: &Case) -> String {
    let mut facts = TargetFacts::default();
    for (table, trigger) in case.triggers {
        facts
            .row_triggers
            .entry(table.to_string())
            .or_default()
            .push(trigger.to_string());
    }
    let facts = (!case.triggers.is_empty()).then_some(&facts);
    let mut out = String::new();
    let _ = writeln!(out, "--- SQL");
    out.push_str(case.sql);
    for (table, trigger) in case.triggers {
        let _ = writeln!(out, "--- the target has row trigger {trigger} on {table}");
    }
    section(
        &mut out,
        "in a package's migration (sluice runs it, lock_timeout_ms = 5000)",
        case.hazard,
        &in_package(
            "sql/migration.sql",
            case.sql,
            FileRole::Migration,
            &[],
            facts,
        ),
    );
    let bare = lint_bare_file(
        SourceFile::new("migration.sql", case.sql),
        &FileOptions::default(),
        facts,
    )
    .expect("case SQL parses");
    section(
        &mut out,
        "in a bare SQL file (another tool runs it in one transaction)",
        case.hazard,
        &bare.lint.findings,
    );
    if let Some((sql, added)) = case.rollback {
        let _ = writeln!(
            out,
            "--- rollback SQL (the migration adds {})",
            added.join(", ")
        );
        out.push_str(sql);
        section(
            &mut out,
            "in a package's rollback",
            case.hazard,
            &in_package("sql/rollback.sql", sql, FileRole::Rollback, added, None),
        );
    }
    out
}

#[test]
fn every_hazard_has_a_snapshot_case() {
    let rules: BTreeSet<&str> = RULES.iter().map(|r| r.id).collect();
    let cases: BTreeSet<&str> = CASES.iter().map(|c| c.hazard).collect();
    assert_eq!(CASES.len(), cases.len(), "a hazard has two cases");
    let missing: Vec<&&str> = rules.difference(&cases).collect();
    assert!(
        missing.is_empty(),
        "hazards without a snapshot case in {}: {missing:?}",
        file!()
    );
    let unknown: Vec<&&str> = cases.difference(&rules).collect();
    assert!(unknown.is_empty(), "cases for no hazard: {unknown:?}");
}

#[test]
fn every_hazards_finding_renders_as_in_the_snapshot() {
    owo_colors::set_override(false);
    for case in CASES {
        insta::assert_snapshot!(case.hazard, render(case));
    }
}
