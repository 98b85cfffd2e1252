//! `[rehearsal] lock_budget_ms`: the passing rehearsal's measured locks against the budget. A
//! breach is a lock that makes reads or writes of a pre-existing table wait (directly, or through
//! its index, toast table or sequence), held longer than the budget, in the apply or the
//! re-apply of the rehearsal.

use super::render::{blocks_existing_traffic, duration};
use super::LockTrace;
use crate::sql::locks::LockMode;
use serde::Serialize;

/// One lock held longer than the budget (or, for [`BudgetVerdict::Within`], the longest).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breach {
    /// `apply` or `re-apply`.
    pub run: &'static str,
    pub line: usize,
    pub statement: String,
    pub mode: LockMode,
    pub object: String,
    pub table: String,
    pub held_us: u64,
}

impl Breach {
    fn describe(&self) -> String {
        let on = if self.object == self.table {
            self.object.clone()
        } else {
            format!("{} (of {})", self.object, self.table)
        };
        format!(
            "{}line {} `{}` held {} on {on} ({}) for {} until COMMIT",
            if self.run == "re-apply" {
                "(re-apply) "
            } else {
                ""
            },
            self.line,
            self.statement,
            self.mode,
            self.mode.blocks_phrase(),
            duration(self.held_us)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum BudgetVerdict {
    Within {
        budget_ms: u64,
        longest: Option<Breach>,
    },
    Over {
        budget_ms: u64,
        breaches: Vec<Breach>,
    },
    /// The passing record has no trace (written by an older sluice).
    NoTrace { budget_ms: u64 },
}

impl BudgetVerdict {
    pub fn holds(&self) -> bool {
        matches!(self, BudgetVerdict::Within { .. })
    }

    /// What the rehearsal gate says; `record` names the passing rehearsal.
    pub fn describe(&self, record: &str) -> String {
        match self {
            BudgetVerdict::Within { budget_ms, longest } => match longest {
                Some(b) => format!(
                    "longest lock blocking reads or writes of an existing table: {} on {}, {} (line {}), within lock_budget_ms = {budget_ms}",
                    b.mode, b.object, duration(b.held_us), b.line
                ),
                None => format!(
                    "no lock blocking reads or writes of an existing table, within lock_budget_ms = {budget_ms}"
                ),
            },
            BudgetVerdict::Over { budget_ms, breaches } => {
                let mut text = format!(
                    "lock budget exceeded in rehearsal {record}: {}, more than [rehearsal] lock_budget_ms = {budget_ms}",
                    breaches[0].describe()
                );
                if breaches.len() > 1 {
                    text.push_str(&format!(
                        "; and {} more: {}",
                        breaches.len() - 1,
                        breaches[1..]
                            .iter()
                            .map(|b| format!("{} line {} ({}, {})", b.run, b.line, b.table, duration(b.held_us)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                text
            }
            BudgetVerdict::NoTrace { budget_ms } => format!(
                "the passing rehearsal {record} has no lock trace (recorded by an older sluice): run `sluice rehearse` again to measure it against [rehearsal] lock_budget_ms = {budget_ms}"
            ),
        }
    }
}

/// The traces of a rehearsal against `budget_ms`.
pub fn check(traces: &[(&'static str, &LockTrace)], budget_ms: u64) -> BudgetVerdict {
    if traces.is_empty() {
        return BudgetVerdict::NoTrace { budget_ms };
    }
    let mut all: Vec<Breach> = traces
        .iter()
        .flat_map(|(run, trace)| {
            trace.statements.iter().flat_map(move |s| {
                s.locks
                    .iter()
                    .filter(|l| blocks_existing_traffic(l))
                    .map(move |l| Breach {
                        run,
                        line: s.line,
                        statement: s.text.clone(),
                        mode: l.mode,
                        object: l.object.clone(),
                        table: l.affected_table().unwrap_or(&l.object).to_string(),
                        held_us: l.held_us,
                    })
            })
        })
        .collect();
    // longest first; the first of equals (a table before its indexes) stays first; one per
    // table and run: a weaker lock taken later under a longer one adds nothing to read
    all.sort_by_key(|b| std::cmp::Reverse(b.held_us));
    let mut seen = std::collections::BTreeSet::new();
    all.retain(|b| seen.insert((b.run, b.table.clone())));
    let budget_us = budget_ms.saturating_mul(1000);
    let breaches: Vec<Breach> = all
        .iter()
        .filter(|b| b.held_us > budget_us)
        .cloned()
        .collect();
    if breaches.is_empty() {
        BudgetVerdict::Within {
            budget_ms,
            longest: all.into_iter().next(),
        }
    } else {
        BudgetVerdict::Over {
            budget_ms,
            breaches,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locktrace::fixture::{lock, statement as at, trace};
    use crate::locktrace::StatementTrace;

    fn statement(line: usize, mode: LockMode, held_us: u64, pre_existing: bool) -> StatementTrace {
        let locks = vec![lock("public.t", "table", mode, pre_existing, held_us)];
        at(line, &format!("statement at {line}"), locks)
    }

    #[test]
    fn over_within_and_without_a_trace() {
        let t = trace(vec![
            statement(2, LockMode::AccessExclusive, 400_000, true),
            statement(6, LockMode::Share, 50_000, true),
            statement(7, LockMode::RowExclusive, 900_000, true),
            statement(8, LockMode::AccessExclusive, 900_000, false),
        ]);
        let over = check(&[("apply", &t), ("re-apply", &t)], 100);
        let BudgetVerdict::Over { breaches, .. } = &over else {
            panic!("{over:?}")
        };
        // one per run and table, the longest; ROW EXCLUSIVE and a new table never count
        assert_eq!(breaches.len(), 2, "{breaches:?}");
        assert!(breaches.iter().all(|b| b.line == 2 && b.held_us == 400_000));
        let text = over.describe("r.json");
        assert!(text.contains("line 2 `statement at 2` held ACCESS EXCLUSIVE on public.t (blocks every read and write) for 400 ms until COMMIT, more than [rehearsal] lock_budget_ms = 100"), "{text}");
        assert!(text.contains("and 1 more: re-apply line 2"), "{text}");
        assert!(check(&[("apply", &t)], 500).holds());
        assert_eq!(check(&[], 500), BudgetVerdict::NoTrace { budget_ms: 500 });
    }
}
