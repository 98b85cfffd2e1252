//! Property tests: no input makes the manifest parser, the SQL analysis, the expectation
//! comparison or the approval/allowed_signers readers panic. CI runs the default number of cases
//! (`PROPTEST_CASES`, 256 here); a long run is `PROPTEST_CASES=20000 cargo test --release -p
//! sluice --test fuzz`.

use proptest::prelude::*;
use sluice::source::SourceFile;
use std::collections::BTreeSet;

const MANIFEST: &str = include_str!("../../../examples/phase-alpha/sluice.toml");
const MIGRATION: &str = include_str!("../../../examples/phase-alpha/sql/phase-alpha-r2.sql");

/// A text edited at random: a range deleted, a random string inserted, or a line duplicated.
fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    (0..base.len(), 0usize..200, any::<String>(), 0u8..3).prop_map(
        move |(at, len, insert, kind)| {
            let at = (0..=at)
                .rev()
                .find(|i| base.is_char_boundary(*i))
                .unwrap_or(0);
            let end = (at + len..=base.len())
                .find(|i| base.is_char_boundary(*i))
                .unwrap_or(base.len());
            match kind {
                0 => format!("{}{}", &base[..at], &base[end..]),
                1 => format!("{}{insert}{}", &base[..at], &base[at..]),
                _ => format!("{}{}{}", &base[..end], &base[at..end], &base[end..]),
            }
        },
    )
}

fn load_manifest(text: &str) {
    let tmp = tempfile::tempdir().unwrap();
    sluice::reference::write_package(tmp.path()).unwrap();
    std::fs::write(tmp.path().join("sluice.toml"), text).unwrap();
    if let Ok(pkg) = sluice::package::Package::load(tmp.path()) {
        let _ = sluice::digest::package_digest(&pkg);
        if let Ok(report) = sluice::lint::lint(&pkg, None) {
            let review = sluice::review::build(&pkg, report);
            let _ = sluice::review::markdown::render(&review);
        }
    }
}

fn analyse_sql(text: &str) {
    let Ok(file) = sluice::sql::parse_file(SourceFile::new("m.sql", text)) else {
        return;
    };
    let path = sluice::sql::names::SearchPath::default();
    for stmt in &file.statements {
        let _ = sluice::sql::operation::derive(&stmt.node, &path);
        let _ = sluice::sql::read_only_violation(&stmt.node);
    }
    let ctx = sluice::sql::hazards::HazardContext {
        source: &file.source,
        role: sluice::sql::hazards::FileRole::Migration,
        statements: &file.statements,
        set_aside: BTreeSet::new(),
        search_path: &path,
        mode: sluice::sql::transaction::TransactionMode::Single,
        lock_timeout_ms: 0,
        probed_tables: BTreeSet::new(),
        added_by_migration: BTreeSet::new(),
        target: None,
        runner: sluice::sql::hazards::Runner::Tool,
    };
    let _ = sluice::sql::hazards::find_all(&ctx);
}

proptest! {
    #[test]
    fn any_manifest_text_is_answered_without_panic(text in any::<String>()) {
        load_manifest(&text);
    }

    #[test]
    fn an_edited_reference_manifest_is_answered_without_panic(text in mutated(MANIFEST)) {
        load_manifest(&text);
    }

    #[test]
    fn any_sql_text_is_analysed_without_panic(text in any::<String>()) {
        analyse_sql(&text);
    }

    #[test]
    fn an_edited_reference_migration_is_analysed_without_panic(text in mutated(MIGRATION)) {
        analyse_sql(&text);
    }

    #[test]
    fn operations_parse_without_panic(text in any::<String>()) {
        let _ = sluice::sql::Operation::parse(&text);
    }

    #[test]
    fn approvals_and_allowed_signers_parse_without_panic(text in any::<String>()) {
        let _ = sluice::approval::Approval::from_toml(&text);
        let _ = sluice::approval::allowed_signers::parse(&text);
    }

    #[test]
    fn expectations_compare_without_panic(rows in proptest::collection::vec(proptest::collection::vec(proptest::option::of(any::<String>()), 0..3), 0..3), want in any::<i64>()) {
        let rows = sluice::expect::TextRows { columns: vec!["a".into(), "b".into()], rows };
        let _ = sluice::expect::Expectation::Scalar(sluice::expect::ExpectValue::Int(want)).compare(&rows);
        let _ = sluice::expect::Expectation::Row(vec![("b".into(), sluice::expect::ExpectValue::Null)]).compare(&rows);
    }
}
