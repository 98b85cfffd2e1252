//! `access-exclusive-lock`: ALTER TABLE, DROP, TRUNCATE and renames on existing tables take an
//! ACCESS EXCLUSIVE lock, which queues behind every running query and blocks every query that
//! comes after it. sluice bounds the wait with `lock_timeout`; with no timeout this is a warning.

use super::{Finding, HazardContext, HazardRule, Severity};
use crate::sql::names::relation;
use crate::sql::operation::{derive, OpKind};
use pg_query::NodeEnum;

pub const RULE: HazardRule = HazardRule {
    id: "access-exclusive-lock",
    summary: "an ACCESS EXCLUSIVE lock on an existing table",
    check,
};

fn locked_table(stmt: &crate::sql::Statement, ctx: &HazardContext) -> Option<String> {
    match &stmt.node {
        NodeEnum::AlterTableStmt(a) => Some(relation(a.relation.as_ref()?, ctx.search_path)),
        NodeEnum::RenameStmt(r) => Some(relation(r.relation.as_ref()?, ctx.search_path)),
        NodeEnum::DropStmt(_) | NodeEnum::TruncateStmt(_) => derive(&stmt.node, ctx.search_path)
            .into_iter()
            .find(|op| matches!(op.kind, OpKind::DropTable | OpKind::Truncate))
            .map(|op| op.object),
        _ => None,
    }
}

fn check(ctx: &HazardContext) -> Vec<Finding> {
    ctx.executed()
        .filter_map(|stmt| {
            let table = locked_table(stmt, ctx)?;
            if ctx.created_before(stmt.index).contains(&table) {
                return None;
            }
            Some(if ctx.lock_timeout_ms > 0 {
                ctx.finding(
                    RULE.id,
                    Severity::Info,
                    stmt,
                    format!(
                        "takes ACCESS EXCLUSIVE on {table} until COMMIT; sluice gives up after lock_timeout = {} ms and retries",
                        ctx.lock_timeout_ms
                    ),
                    None,
                )
            } else {
                ctx.finding(
                    RULE.id,
                    Severity::Warn,
                    stmt,
                    format!("takes ACCESS EXCLUSIVE on {table} with lock_timeout_ms = 0: while it waits for a running query, every other query on {table} waits behind it"),
                    Some("set [migration].lock_timeout_ms (the default is 5000)"),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::findings_for;
    use super::*;

    #[test]
    fn info_when_bounded_by_lock_timeout() {
        let f = findings_for("ALTER TABLE t ADD COLUMN a int;");
        assert!(f.contains(&("access-exclusive-lock", Severity::Info, 1)));
        let created = findings_for("CREATE TABLE t (a int); ALTER TABLE t ADD COLUMN b int;");
        assert!(!created.iter().any(|f| f.0 == "access-exclusive-lock"));
    }
}
