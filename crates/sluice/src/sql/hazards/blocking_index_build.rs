//! `blocking-index-build`: an index built on a table that existed before the migration, without
//! CONCURRENTLY: CREATE INDEX holds a SHARE lock (every write waits for the whole build), and ADD
//! CONSTRAINT … UNIQUE / PRIMARY KEY / EXCLUDE (or a column added with UNIQUE / PRIMARY KEY)
//! builds its index under ACCESS EXCLUSIVE (reads wait too). `ADD CONSTRAINT … USING INDEX`
//! reuses an index built beforehand and builds nothing.

use super::{Finding, HazardContext, HazardRule, Judge, Runner, Severity};
use crate::sql::names::relation;
use crate::sql::transaction::TransactionMode;
use pg_query::protobuf::{AlterTableCmd, AlterTableType, ConstrType, Node};
use pg_query::NodeEnum;

pub const RULE: HazardRule = HazardRule {
    id: "blocking-index-build",
    summary: "an index built without CONCURRENTLY on an existing table (CREATE INDEX, ADD UNIQUE / PRIMARY KEY)",
    help: "CREATE INDEX without CONCURRENTLY blocks every write to the table for the whole build. Build it with CREATE INDEX CONCURRENTLY in a migration that runs without a transaction (then ADD CONSTRAINT … USING INDEX for a UNIQUE or PRIMARY KEY).",
    rollback: false,
    check,
};

/// The index-backed constraints among `constraints` that build a new index: `(kind, name)`.
fn index_builds(constraints: &[Node]) -> Vec<(ConstrType, String)> {
    constraints
        .iter()
        .filter_map(|c| match c.node.as_ref() {
            Some(NodeEnum::Constraint(con)) if con.indexname.is_empty() => {
                let kind = ConstrType::try_from(con.contype).ok()?;
                matches!(
                    kind,
                    ConstrType::ConstrPrimary
                        | ConstrType::ConstrUnique
                        | ConstrType::ConstrExclusion
                )
                .then(|| (kind, con.conname.clone()))
            }
            _ => None,
        })
        .collect()
}

fn cmd_index_builds(cmd: &AlterTableCmd) -> Vec<(ConstrType, String)> {
    let Some(def) = cmd.def.as_deref() else {
        return vec![];
    };
    match (AlterTableType::try_from(cmd.subtype), def.node.as_ref()) {
        (Ok(AlterTableType::AtAddConstraint), Some(NodeEnum::Constraint(_))) => {
            index_builds(std::slice::from_ref(def))
        }
        (Ok(AlterTableType::AtAddColumn), Some(NodeEnum::ColumnDef(col))) => {
            index_builds(&col.constraints)
        }
        _ => vec![],
    }
}

fn constraint_finding(
    ctx: &HazardContext,
    stmt: &crate::sql::Statement,
    table: &str,
    kind: ConstrType,
    name: &str,
) -> Finding {
    // CONCURRENTLY cannot run inside a transaction block: in single mode it needs a package of
    // its own; with transaction = "none" an earlier statement of this one will do
    let first = match ctx.mode {
        TransactionMode::Single => match ctx.runner {
            Runner::Package => "in a package with transaction = \"none\" run first",
            Runner::Tool => {
                "first, in a migration of its own that your tool runs without a transaction"
            }
        },
        TransactionMode::None => "as an earlier statement",
    };
    let (word, help) = match kind {
        ConstrType::ConstrPrimary => (
            "PRIMARY KEY",
            format!(
                "CREATE UNIQUE INDEX CONCURRENTLY {first}, then ADD CONSTRAINT … PRIMARY KEY USING \
                 INDEX (with its columns already NOT NULL, or SET NOT NULL scans the table)"
            ),
        ),
        ConstrType::ConstrUnique => (
            "UNIQUE",
            format!(
                "CREATE UNIQUE INDEX CONCURRENTLY {first}, then ADD CONSTRAINT … UNIQUE USING \
                 INDEX, which only records the constraint"
            ),
        ),
        _ => (
            "EXCLUDE",
            "an exclusion constraint cannot adopt an index built CONCURRENTLY: schedule a window \
             for it, or enforce the rule another way"
                .to_string(),
        ),
    };
    let named = if name.is_empty() {
        String::new()
    } else {
        format!(" {name}")
    };
    ctx.finding(
        RULE.id,
        Severity::Warn,
        stmt,
        format!(
            "the {word} constraint{named} builds its index while ACCESS EXCLUSIVE is held on \
             {table}: reads and writes wait for the whole build"
        ),
        Some(&help),
    )
}

fn check(ctx: &Judge) -> Vec<Finding> {
    let mut findings = Vec::new();
    for stmt in ctx.executed() {
        match &stmt.node {
            NodeEnum::IndexStmt(index) if !index.concurrent => {
                let Some(rv) = index.relation.as_ref() else {
                    continue;
                };
                let table = relation(rv, ctx.search_path);
                if ctx.created_before(stmt.index, &table) {
                    continue;
                }
                findings.push(ctx.finding(
                    RULE.id,
                    Severity::Warn,
                    stmt,
                    format!("building this index takes a SHARE lock on {table}: every INSERT, UPDATE and DELETE waits for the whole build"),
                    Some(&match ctx.mode {
                        TransactionMode::Single => format!("build it with CREATE INDEX CONCURRENTLY in {}", ctx.no_transaction_home()),
                        TransactionMode::None => "build it with CREATE INDEX CONCURRENTLY (these statements run one by one, so it can)".to_string(),
                    }),
                ));
            }
            NodeEnum::AlterTableStmt(alter) => {
                let Some(rv) = alter.relation.as_ref() else {
                    continue;
                };
                let table = relation(rv, ctx.search_path);
                if ctx.created_before(stmt.index, &table) {
                    continue;
                }
                for c in &alter.cmds {
                    let Some(NodeEnum::AlterTableCmd(cmd)) = c.node.as_ref() else {
                        continue;
                    };
                    for (kind, name) in cmd_index_builds(cmd) {
                        findings.push(constraint_finding(ctx, stmt, &table, kind, &name));
                    }
                }
            }
            _ => {}
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{findings_for, full, ids};
    use super::*;

    #[test]
    fn only_on_existing_tables() {
        assert!(ids("CREATE INDEX ix ON t (a);").contains(&"blocking-index-build"));
        assert!(
            !ids("CREATE TABLE s.n (a int); CREATE INDEX ix ON s.n (a);")
                .contains(&"blocking-index-build")
        );
    }

    #[test]
    fn the_advice_fits_the_transaction_mode() {
        let help = |sql: &str, mode| {
            full(sql, mode)
                .into_iter()
                .find(|f| f.hazard == RULE.id)
                .and_then(|f| f.help)
                .unwrap()
        };
        let unique = "ALTER TABLE t ADD CONSTRAINT u UNIQUE (a);";
        assert!(help(unique, TransactionMode::Single).contains("in a package with transaction"));
        assert!(help(unique, TransactionMode::None).contains("as an earlier statement"));
        let index = "CREATE INDEX ix ON t (a);";
        assert!(help(index, TransactionMode::Single).contains("in a package with transaction"));
        assert!(!help(index, TransactionMode::None).contains("in a package with transaction"));
    }

    #[test]
    fn unique_and_primary_key_constraints_build_their_index() {
        for sql in [
            "ALTER TABLE t ADD CONSTRAINT u UNIQUE (a);",
            "ALTER TABLE t ADD PRIMARY KEY (a);",
            "ALTER TABLE t ADD COLUMN b int UNIQUE;",
            "ALTER TABLE t ADD CONSTRAINT x EXCLUDE USING gist (r WITH &&);",
        ] {
            assert!(
                findings_for(sql).contains(&("blocking-index-build", Severity::Warn, 1)),
                "{sql}"
            );
        }
        for sql in [
            "ALTER TABLE t ADD CONSTRAINT u UNIQUE USING INDEX ix;",
            "ALTER TABLE t ADD CONSTRAINT pk PRIMARY KEY USING INDEX ix;",
            "CREATE TABLE n (a int); ALTER TABLE n ADD PRIMARY KEY (a);",
        ] {
            assert!(!ids(sql).contains(&"blocking-index-build"), "{sql}");
        }
    }
}
