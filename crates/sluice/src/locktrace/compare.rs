//! Lint meets measurement: each static hazard of the migration against what the rehearsal's
//! trace measured at the same statement (confirmed, refuted, or not measurable by a trace), and
//! every lock the trace saw on an existing table that lint's lock model did not predict, as a
//! finding of its own (`unpredicted-lock`).

use super::{LockSource, LockTrace, StatementTrace};
use crate::sql::hazards::Finding;
use crate::sql::locks::{LockMode, TableLock};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Confirmed,
    Refuted,
    NotMeasurable,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Confirmed => "confirmed",
            Verdict::Refuted => "REFUTED",
            Verdict::NotMeasurable => "not measurable by a trace",
        }
    }
}

/// One hazard of lint, judged by the trace.
#[derive(Debug, Clone, Serialize)]
pub struct HazardCheck {
    pub hazard: String,
    pub line: usize,
    pub statement: String,
    pub measured: String,
    pub verdict: Verdict,
}

/// A lock the trace saw that lint did not predict (`unpredicted-lock`).
#[derive(Debug, Clone, Serialize)]
pub struct UnpredictedLock {
    pub line: usize,
    pub statement: String,
    pub object: String,
    pub table: String,
    pub mode: LockMode,
    pub held_us: u64,
}

impl UnpredictedLock {
    pub fn describe(&self) -> String {
        format!(
            "unpredicted-lock: line {} `{}` took {} on {} ({}), which lint did not predict; held {}",
            self.line,
            self.statement,
            self.mode,
            self.object,
            self.mode.blocks_phrase(),
            super::render::duration(self.held_us)
        )
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Comparison {
    pub checks: Vec<HazardCheck>,
    pub unpredicted: Vec<UnpredictedLock>,
}

impl Comparison {
    /// "2 confirmed, 1 REFUTED, 3 not measurable by a trace; 1 unpredicted lock".
    pub fn summary(&self) -> String {
        let count = |v: Verdict| self.checks.iter().filter(|c| c.verdict == v).count();
        format!(
            "lint against the trace: {} confirmed, {} refuted, {} not measurable; {} unpredicted lock(s)",
            count(Verdict::Confirmed),
            count(Verdict::Refuted),
            count(Verdict::NotMeasurable),
            self.unpredicted.len()
        )
    }

    /// One line per hazard and per unpredicted lock.
    pub fn lines(&self) -> Vec<String> {
        self.checks
            .iter()
            .map(|c| {
                format!(
                    "`{}` at line {} `{}`: measured {} → {}",
                    c.hazard,
                    c.line,
                    c.statement,
                    c.measured,
                    c.verdict.word()
                )
            })
            .chain(self.unpredicted.iter().map(UnpredictedLock::describe))
            .collect()
    }
}

/// The strongest new lock the statement took on an existing table, if any.
fn strongest_on_existing(s: &StatementTrace) -> Option<LockMode> {
    s.locks
        .iter()
        .filter(|l| l.locktype == "relation" && l.pre_existing && l.affected_table().is_some())
        .map(|l| l.mode)
        .max()
}

fn judged(finding: &Finding, s: &StatementTrace, scans_measured: bool) -> (String, Verdict) {
    use Verdict::*;
    let strongest = strongest_on_existing(s);
    let strongest_text = || {
        strongest.map_or("no new lock on an existing table".to_string(), |m| {
            format!("{m}")
        })
    };
    match finding.hazard {
        "table-rewrite" if s.rewritten.is_empty() => ("no relfilenode changed".into(), Refuted),
        "table-rewrite" => (
            format!(
                "rewrite of {}",
                s.rewritten
                    .iter()
                    .map(|r| r.relation.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Confirmed,
        ),
        "access-exclusive-lock" => match strongest {
            Some(LockMode::AccessExclusive) => ("ACCESS EXCLUSIVE".into(), Confirmed),
            _ => (strongest_text(), Refuted),
        },
        "write-blocking-lock" => match strongest {
            Some(m) if m.blocks_writes() => (format!("{m}"), Confirmed),
            _ => (strongest_text(), Refuted),
        },
        "blocking-index-build" => match strongest {
            Some(m) if m >= LockMode::Share => (format!("{m}"), Confirmed),
            _ => (strongest_text(), Refuted),
        },
        "scan-under-lock" if !scans_measured => (
            "scans are counted only in a READ COMMITTED transaction".into(),
            NotMeasurable,
        ),
        "scan-under-lock" if s.seq_scans.is_empty() => ("no sequential scan".into(), Refuted),
        "scan-under-lock" => ("a sequential scan".into(), Confirmed),
        "unbounded-dml" | "default-hides-backfill" | "data-loss" => match s.rows {
            Some(0) if finding.hazard == "default-hides-backfill" => ("0 rows".into(), Confirmed),
            Some(n) if finding.hazard == "default-hides-backfill" => (format!("{n} rows"), Refuted),
            Some(0) if finding.hazard == "unbounded-dml" => ("0 rows".into(), Refuted),
            Some(n) => (format!("{n} rows"), Confirmed),
            None => (super::render::duration(s.duration_us), NotMeasurable),
        },
        _ => (
            format!(
                "the statement took {}",
                super::render::duration(s.duration_us)
            ),
            NotMeasurable,
        ),
    }
}

/// Each finding of the migration at a traced statement, judged; and the unpredicted locks.
/// `predicted` is lint's lock model per statement, by (line, column).
pub fn compare(
    findings: &[Finding],
    predicted: &BTreeMap<(usize, usize), Vec<TableLock>>,
    trace: &LockTrace,
) -> Comparison {
    let at = |line: usize, column: usize| {
        trace
            .statements
            .iter()
            .find(|s| s.line == line && s.column == column)
    };
    let checks = findings
        .iter()
        .filter_map(|f| {
            let s = at(f.location.line, f.location.column)?;
            let (measured, verdict) = judged(f, s, trace.scans_measured);
            Some(HazardCheck {
                hazard: f.hazard.to_string(),
                line: s.line,
                statement: s.text.clone(),
                measured,
                verdict,
            })
        })
        .collect();
    let unpredicted = trace
        .statements
        .iter()
        .flat_map(|s| {
            let none = Vec::new();
            let model = predicted.get(&(s.line, s.column)).unwrap_or(&none).clone();
            s.locks
                .iter()
                .filter(|l| {
                    l.locktype == "relation"
                        && l.pre_existing
                        && l.source != LockSource::Predicted
                        && l.mode >= LockMode::ShareUpdateExclusive
                })
                .filter_map(move |l| {
                    let table = l.affected_table()?.to_string();
                    let covered = model.iter().any(|p| p.table == table && p.mode >= l.mode);
                    (!covered).then(|| UnpredictedLock {
                        line: s.line,
                        statement: s.text.clone(),
                        object: l.object.clone(),
                        table,
                        mode: l.mode,
                        held_us: l.held_us,
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect();
    Comparison {
        checks,
        unpredicted,
    }
}

/// [`compare`] for a package: its lint `findings` (the caller's lint report) against the trace,
/// with lint's lock model of each of its statements.
pub fn for_package(
    pkg: &crate::package::Package,
    findings: &[Finding],
    trace: &LockTrace,
) -> Option<Comparison> {
    let parsed = crate::lint::parse_migration(pkg).ok()?;
    let path = &pkg.target.search_path;
    let predicted = parsed
        .plan
        .statements
        .iter()
        .map(|stmt| {
            let at = parsed.file.source.locate(stmt.start);
            (
                (at.line, at.column),
                crate::sql::locks::statement_locks(&stmt.node, path),
            )
        })
        .collect();
    Some(compare(findings, &predicted, trace))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locktrace::fixture;
    use crate::source::Location;

    fn finding(hazard: &'static str) -> Finding {
        Finding {
            hazard,
            severity: crate::sql::hazards::Severity::Warn,
            location: Location {
                file: "m.sql".into(),
                line: 3,
                column: 1,
            },
            statement: String::new(),
            why: String::new(),
            help: None,
        }
    }

    fn statement(mode: LockMode, rows: Option<u64>, rewritten: bool) -> StatementTrace {
        let locks = vec![fixture::lock("public.t", "table", mode, true, 5_000)];
        StatementTrace {
            rows,
            rewritten: if rewritten {
                vec![fixture::rewrite("public.t")]
            } else {
                vec![]
            },
            ..fixture::statement(3, "ALTER TABLE public.t …", locks)
        }
    }

    fn trace(s: StatementTrace) -> LockTrace {
        fixture::trace(vec![s])
    }

    fn verdict(hazard: &'static str, s: StatementTrace) -> (Verdict, String) {
        let c = compare(&[finding(hazard)], &BTreeMap::new(), &trace(s));
        (c.checks[0].verdict, c.checks[0].measured.clone())
    }

    #[test]
    fn hazards_are_confirmed_or_refuted_by_what_was_measured() {
        use LockMode::*;
        assert_eq!(
            verdict("table-rewrite", statement(AccessExclusive, None, true)).0,
            Verdict::Confirmed
        );
        assert_eq!(
            verdict("table-rewrite", statement(AccessExclusive, None, false)).0,
            Verdict::Refuted
        );
        let (v, measured) = verdict(
            "access-exclusive-lock",
            statement(ShareUpdateExclusive, None, false),
        );
        assert_eq!(
            (v, measured.as_str()),
            (Verdict::Refuted, "SHARE UPDATE EXCLUSIVE")
        );
        assert_eq!(
            verdict(
                "default-hides-backfill",
                statement(RowExclusive, Some(0), false)
            )
            .0,
            Verdict::Confirmed
        );
        assert_eq!(
            verdict("unbounded-dml", statement(RowExclusive, Some(86), false)).0,
            Verdict::Confirmed
        );
        assert_eq!(
            verdict(
                "rename-breaks-clients",
                statement(AccessExclusive, None, false)
            )
            .0,
            Verdict::NotMeasurable
        );
    }

    #[test]
    fn a_lock_lint_did_not_predict_is_a_finding_of_its_own() {
        let c = compare(
            &[],
            &BTreeMap::new(),
            &trace(statement(LockMode::AccessExclusive, None, false)),
        );
        assert_eq!(c.unpredicted.len(), 1);
        assert!(c.unpredicted[0]
            .describe()
            .starts_with("unpredicted-lock: line 3"));
        // predicted at that mode or stronger: nothing to report; ROW EXCLUSIVE never is
        let predicted = BTreeMap::from([(
            (3, 1),
            vec![TableLock {
                table: "public.t".into(),
                mode: LockMode::AccessExclusive,
                referenced: false,
            }],
        )]);
        let c = compare(
            &[],
            &predicted,
            &trace(statement(LockMode::AccessExclusive, None, false)),
        );
        assert!(c.unpredicted.is_empty());
        let c = compare(
            &[],
            &BTreeMap::new(),
            &trace(statement(LockMode::RowExclusive, None, false)),
        );
        assert!(c.unpredicted.is_empty());
    }
}
