//! `scan-under-lock`: statements that read a whole existing table while holding an exclusive
//! lock: SET NOT NULL, and CHECK / FOREIGN KEY constraints added without NOT VALID, PRIMARY KEY /
//! UNIQUE built in place.

use super::{Finding, HazardContext, HazardRule, Severity};
use crate::sql::names::relation;
use pg_query::protobuf::{AlterTableType, ConstrType};
use pg_query::NodeEnum;

pub const RULE: HazardRule = HazardRule {
    id: "scan-under-lock",
    summary: "a full-table scan while an exclusive lock is held",
    check,
};

fn scan_reason(cmd: &pg_query::protobuf::AlterTableCmd) -> Option<(String, &'static str)> {
    match AlterTableType::try_from(cmd.subtype).ok()? {
        AlterTableType::AtSetNotNull => Some((
            format!(
                "SET NOT NULL on {} scans every row under ACCESS EXCLUSIVE",
                cmd.name
            ),
            "add a CHECK (col IS NOT NULL) NOT VALID constraint, VALIDATE it, then SET NOT NULL",
        )),
        AlterTableType::AtAddConstraint => {
            let Some(NodeEnum::Constraint(con)) = cmd.def.as_ref()?.node.as_ref() else {
                return None;
            };
            match ConstrType::try_from(con.contype).ok()? {
                ConstrType::ConstrCheck | ConstrType::ConstrForeign if !con.skip_validation => Some((
                    "the constraint is validated against every row while the lock is held".into(),
                    "add it NOT VALID, then VALIDATE CONSTRAINT in a later step (a weaker lock)",
                )),
                ConstrType::ConstrPrimary | ConstrType::ConstrUnique if con.indexname.is_empty() => Some((
                    "the index behind the constraint is built while the lock is held".into(),
                    "CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT … USING INDEX",
                )),
                _ => None,
            }
        }
        _ => None,
    }
}

fn check(ctx: &HazardContext) -> Vec<Finding> {
    let mut findings = Vec::new();
    for stmt in ctx.executed() {
        let NodeEnum::AlterTableStmt(alter) = &stmt.node else {
            continue;
        };
        let Some(rv) = alter.relation.as_ref() else {
            continue;
        };
        if ctx
            .created_before(stmt.index)
            .contains(&relation(rv, ctx.search_path))
        {
            continue;
        }
        for c in &alter.cmds {
            if let Some(NodeEnum::AlterTableCmd(cmd)) = c.node.as_ref() {
                if let Some((why, help)) = scan_reason(cmd) {
                    findings.push(ctx.finding(RULE.id, Severity::Warn, stmt, why, Some(help)));
                }
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::super::test_support::ids;

    #[test]
    fn scans() {
        assert!(ids("ALTER TABLE t ALTER COLUMN a SET NOT NULL;").contains(&"scan-under-lock"));
        assert!(ids("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0);").contains(&"scan-under-lock"));
        assert!(
            !ids("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;")
                .contains(&"scan-under-lock")
        );
        assert!(
            !ids("CREATE TABLE t (a int); ALTER TABLE t ALTER COLUMN a SET NOT NULL;")
                .contains(&"scan-under-lock")
        );
    }
}
