//! `data-loss`: statements that destroy stored data (DROP TABLE/SCHEMA/COLUMN, TRUNCATE,
//! DELETE). A rollback cannot bring the data back; only the backup can.

use super::{Finding, HazardContext, HazardRule, Severity};
use crate::sql::operation::{derive, OpKind};

pub const RULE: HazardRule = HazardRule {
    id: "data-loss",
    summary: "DROP TABLE/SCHEMA/COLUMN, TRUNCATE or DELETE destroys data",
    check,
};

fn check(ctx: &HazardContext) -> Vec<Finding> {
    let mut findings = Vec::new();
    for stmt in ctx.executed() {
        let created = ctx.created_before(stmt.index);
        let destroyed: Vec<String> = derive(&stmt.node, ctx.search_path)
            .into_iter()
            .filter(|op| {
                matches!(
                    op.kind,
                    OpKind::DropTable
                        | OpKind::DropSchema
                        | OpKind::DropColumn
                        | OpKind::Truncate
                        | OpKind::Delete
                )
            })
            .filter(|op| !created.contains(&op.object))
            .map(|op| op.to_string())
            .collect();
        if !destroyed.is_empty() {
            findings.push(ctx.finding(
                RULE.id,
                Severity::Warn,
                stmt,
                format!(
                    "{} destroys stored data; a rollback cannot bring it back, only the backup can",
                    destroyed.join(", ")
                ),
                Some(
                    "make sure the backup gate is on and that the data is really no longer needed",
                ),
            ));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::super::test_support::ids;

    #[test]
    fn drops_and_deletes() {
        assert!(ids("DROP TABLE public.x;").contains(&"data-loss"));
        assert!(ids("ALTER TABLE t DROP COLUMN c;").contains(&"data-loss"));
        assert!(ids("DELETE FROM t WHERE id = 1;").contains(&"data-loss"));
        assert!(ids("TRUNCATE t;").contains(&"data-loss"));
        assert!(!ids("DROP INDEX ix;").contains(&"data-loss"));
        assert!(!ids("CREATE TABLE n (a int); DROP TABLE n;").contains(&"data-loss"));
    }
}
