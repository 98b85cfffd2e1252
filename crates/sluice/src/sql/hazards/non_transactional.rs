//! `non-transactional`: statements PostgreSQL refuses to run inside a transaction block
//! (CONCURRENTLY, VACUUM, CREATE DATABASE, …). In `single` mode they would fail the migration.

use super::{Finding, HazardRule, Judge, Runner, Severity};
use crate::sql::transaction::TransactionMode;
use pg_query::NodeEnum;

pub const RULE: HazardRule = HazardRule {
    id: "non-transactional",
    summary: "a statement that cannot run inside a transaction block",
    help: "PostgreSQL refuses these statements inside a transaction block. Run them in a migration of their own that runs without a transaction (a package with transaction = \"none\", or your tool's no-transaction mode), and check for an INVALID object if it fails midway.",
    rollback: true,
    check,
};

/// What makes a statement non-transactional, if anything.
fn reason(node: &NodeEnum) -> Option<&'static str> {
    match node {
        NodeEnum::IndexStmt(s) if s.concurrent => Some("CREATE INDEX CONCURRENTLY"),
        NodeEnum::DropStmt(s) if s.concurrent => Some("DROP INDEX CONCURRENTLY"),
        NodeEnum::ReindexStmt(s)
            if s.params.iter().any(|p| {
                matches!(p.node.as_ref(), Some(NodeEnum::DefElem(d)) if d.defname == "concurrently")
            }) =>
        {
            Some("REINDEX CONCURRENTLY")
        }
        NodeEnum::VacuumStmt(_) => Some("VACUUM"),
        NodeEnum::CreatedbStmt(_) => Some("CREATE DATABASE"),
        NodeEnum::DropdbStmt(_) => Some("DROP DATABASE"),
        NodeEnum::AlterSystemStmt(_) => Some("ALTER SYSTEM"),
        NodeEnum::CreateTableSpaceStmt(_) => Some("CREATE TABLESPACE"),
        NodeEnum::DropTableSpaceStmt(_) => Some("DROP TABLESPACE"),
        NodeEnum::CreateSubscriptionStmt(_) => Some("CREATE SUBSCRIPTION"),
        _ => None,
    }
}

fn check(ctx: &Judge) -> Vec<Finding> {
    ctx.executed()
        .filter_map(|s| reason(&s.node).map(|what| (s, what)))
        .map(|(s, what)| match ctx.mode {
            TransactionMode::Single => ctx.finding(
                RULE.id,
                Severity::Error,
                s,
                match ctx.runner {
                    Runner::Package => format!("{what} cannot run inside a transaction block, and transaction = \"single\" runs the whole migration in one"),
                    Runner::Tool => format!("{what} cannot run inside a transaction block, and this file runs in one (its own BEGIN … COMMIT, or --transaction single: the tool's)"),
                },
                Some(match ctx.runner {
                    Runner::Package => "move it to its own package with transaction = \"none\"",
                    Runner::Tool => "move it to a migration of its own that your tool runs without a transaction",
                }),
            ),
            TransactionMode::None => ctx.finding(
                RULE.id,
                Severity::Info,
                s,
                format!("{what} runs outside a transaction: if it fails midway it can leave an invalid object behind"),
                None,
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{findings_with, ids};
    use super::*;

    #[test]
    fn concurrently_is_an_error_in_single_mode() {
        assert!(ids("CREATE INDEX CONCURRENTLY ix ON t (a);").contains(&"non-transactional"));
        let none = findings_with(
            "CREATE INDEX CONCURRENTLY ix ON t (a);",
            TransactionMode::None,
            None,
        );
        assert!(none.contains(&("non-transactional", Severity::Info, 1)));
        assert!(!ids("CREATE INDEX ix ON t (a);").contains(&"non-transactional"));
    }
}
