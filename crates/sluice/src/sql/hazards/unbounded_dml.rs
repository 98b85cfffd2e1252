//! `unbounded-dml`: UPDATE or DELETE without WHERE touches every row of the table.

use super::{Finding, HazardRule, Judge, Runner, Severity};
use pg_query::NodeEnum;

pub const RULE: HazardRule = HazardRule {
    id: "unbounded-dml",
    summary: "UPDATE or DELETE without a WHERE clause",
    help: "UPDATE or DELETE without WHERE touches every row, in one transaction that locks them all until COMMIT. Say WHERE on purpose, and batch large backfills.",
    rollback: false,
    check,
};

fn check(ctx: &Judge) -> Vec<Finding> {
    ctx.executed()
        .filter(|stmt| match &stmt.node {
            NodeEnum::UpdateStmt(u) => u.where_clause.is_none(),
            NodeEnum::DeleteStmt(d) => d.where_clause.is_none(),
            _ => false,
        })
        .map(|stmt| {
            ctx.finding(
                RULE.id,
                Severity::Warn,
                stmt,
                "no WHERE clause: every row of the table is changed and locked until COMMIT",
                Some(match ctx.runner {
                    Runner::Package => "state the rows meant (even `WHERE true` makes the intent explicit) and check the count in [migration.expect]",
                    Runner::Tool => "state the rows meant (even `WHERE true` makes the intent explicit) and check how many rows it changed before the migration commits",
                }),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::ids;

    #[test]
    fn where_less_dml() {
        assert!(ids("UPDATE t SET a = 1;").contains(&"unbounded-dml"));
        assert!(ids("DELETE FROM t;").contains(&"unbounded-dml"));
        assert!(!ids("UPDATE t SET a = 1 WHERE a IS NULL;").contains(&"unbounded-dml"));
    }
}
