//! `trigger-side-effect` (with `--target`): DML on a table that has row triggers changes more
//! than the statement says — the seed's `trg_tac_birth_gate_lu` bumps `updated_at` on every row
//! the backfill touches. A probe on that table measures it.

use super::{Finding, HazardRule, Judge, Runner, Severity};
use crate::sql::operation::{derive, OpKind};

pub const RULE: HazardRule = HazardRule {
    id: "trigger-side-effect",
    summary: "DML on a table with row triggers (needs --target)",
    help: "Row triggers on the table fire for every row the statement touches, and may change columns the migration does not name (e.g. updated_at). Measure it: a [[probe]] on the columns the trigger sets.",
    rollback: false,
    check,
};

fn check(ctx: &Judge) -> Vec<Finding> {
    let Some(facts) = ctx.target else {
        return vec![];
    };
    let mut findings = Vec::new();
    for stmt in ctx.executed() {
        for op in derive(&stmt.node, ctx.search_path) {
            if !matches!(op.kind, OpKind::Update | OpKind::Insert | OpKind::Delete) {
                continue;
            }
            let Some(triggers) = facts.row_triggers.get(&op.object) else {
                continue;
            };
            let probed = ctx.probed_tables.contains(&op.object);
            let why = format!(
                "{} fires row trigger(s) {} on {}: they may change columns the statement does not name",
                op,
                triggers.join(", "),
                op.object
            );
            findings.push(if probed {
                ctx.finding(
                    RULE.id,
                    Severity::Info,
                    stmt,
                    format!("{why}; a probe measures it"),
                    None,
                )
            } else {
                ctx.finding(
                    RULE.id,
                    Severity::Warn,
                    stmt,
                    why,
                    Some(match ctx.runner {
                        Runner::Package => {
                            "add a [[probe]] on this table watching the columns the trigger sets"
                        }
                        Runner::Tool => {
                            "compare the columns the trigger sets before and after the migration"
                        }
                    }),
                )
            });
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::super::test_support::findings_with;
    use super::super::{Severity, TargetFacts};
    use crate::sql::transaction::TransactionMode;

    #[test]
    fn warns_only_with_target_facts() {
        let sql = "UPDATE public.t SET a = 1 WHERE a IS NULL;";
        let mut facts = TargetFacts::default();
        facts
            .row_triggers
            .insert("public.t".into(), vec!["trg".into()]);
        let found = findings_with(sql, TransactionMode::Single, Some(&facts));
        assert!(found.contains(&("trigger-side-effect", Severity::Warn, 1)));
        let without = findings_with(sql, TransactionMode::Single, None);
        assert!(!without.iter().any(|f| f.0 == "trigger-side-effect"));
    }
}
