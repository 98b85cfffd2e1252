//! `table-rewrite`: statements that rewrite a whole table under an ACCESS EXCLUSIVE lock
//! (ALTER COLUMN TYPE, ADD COLUMN with a volatile default or a stored generated column, SET
//! TABLESPACE / LOGGED / ACCESS METHOD, VACUUM FULL, CLUSTER).

use super::{Finding, HazardRule, Judge, Severity};
use crate::sql::names::{relation, strings};
use crate::sql::transaction::TransactionMode;
use pg_query::protobuf::{AlterTableType, ConstrType, Node};
use pg_query::{NodeEnum, NodeRef};

pub const RULE: HazardRule = HazardRule {
    id: "table-rewrite",
    summary: "the statement rewrites every row of an existing table under an exclusive lock",
    help: "The statement rewrites every row under ACCESS EXCLUSIVE: reads and writes wait for the whole rewrite. Add the column without a volatile default, backfill in batches, or change types in steps that PostgreSQL can do without a rewrite.",
    rollback: false,
    check,
};

/// Functions whose result changes per row: a default calling one fills each row, so PostgreSQL
/// rewrites the table instead of storing the default once.
const VOLATILE: &[&str] = &[
    "random",
    "gen_random_uuid",
    "uuid_generate_v4",
    "uuidv4",
    "uuidv7",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "txid_current",
];

fn volatile_call(expr: &Node) -> Option<String> {
    // `nodes()` lists the expression itself first, then everything under it
    expr.node
        .as_ref()?
        .nodes()
        .into_iter()
        .find_map(|(n, ..)| match n {
            NodeRef::FuncCall(f) => {
                let name = strings(&f.funcname).pop()?;
                VOLATILE.contains(&name.as_str()).then_some(name)
            }
            _ => None,
        })
}

/// Why adding a column rewrites the table, and what to do instead.
fn add_column_rewrite(col: &pg_query::protobuf::ColumnDef) -> Option<(String, &'static str)> {
    const VOLATILE_HELP: &str = "add the column without the volatile default, SET DEFAULT for new \
        rows, and backfill the existing rows in batches";
    if let Some(name) = col.raw_default.as_deref().and_then(volatile_call) {
        return Some((
            format!("the default calls volatile {name}()"),
            VOLATILE_HELP,
        ));
    }
    for c in &col.constraints {
        let Some(NodeEnum::Constraint(con)) = c.node.as_ref() else {
            continue;
        };
        let kind = ConstrType::try_from(con.contype).unwrap_or(ConstrType::Undefined);
        match kind {
            ConstrType::ConstrDefault => {
                if let Some(name) = con.raw_expr.as_deref().and_then(volatile_call) {
                    return Some((
                        format!("the default calls volatile {name}()"),
                        VOLATILE_HELP,
                    ));
                }
            }
            ConstrType::ConstrGenerated => {
                return Some((
                    "a stored generated column".into(),
                    "add a plain column, backfill it in batches and keep it current from the \
                     application or a trigger; or schedule a window",
                ))
            }
            ConstrType::ConstrIdentity => {
                return Some((
                    "an identity column".into(),
                    "add a plain column, backfill it in batches from a sequence, then attach the \
                     sequence as its default; or schedule a window",
                ))
            }
            _ => {}
        }
    }
    None
}

/// Why a statement rewrites its table, and what helps instead.
fn rewrite_reason(node: &NodeEnum) -> Option<(String, &'static str)> {
    const WINDOW: &str = "schedule a window when the table may be unavailable for the rewrite";
    match node {
        NodeEnum::AlterTableStmt(stmt) => stmt.cmds.iter().find_map(|c| {
            let Some(NodeEnum::AlterTableCmd(cmd)) = c.node.as_ref() else {
                return None;
            };
            match AlterTableType::try_from(cmd.subtype).ok()? {
                AlterTableType::AtAlterColumnType => Some((
                    format!(
                        "changing the type of {} rewrites the table and its indexes (unless the \
                         old type converts without a change of bytes, e.g. varchar(n) to text)",
                        cmd.name
                    ),
                    "add a column of the new type, backfill it in batches and keep it in step \
                     with a trigger, then switch clients over and drop the old column in a later \
                     migration; or schedule a window",
                )),
                AlterTableType::AtAddColumn => match cmd.def.as_ref()?.node.as_ref()? {
                    NodeEnum::ColumnDef(col) => add_column_rewrite(col).map(|(why, help)| {
                        (
                            format!("adding {}: {why} fills every row", col.colname),
                            help,
                        )
                    }),
                    _ => None,
                },
                AlterTableType::AtSetTableSpace => {
                    Some(("SET TABLESPACE copies the table".into(), WINDOW))
                }
                AlterTableType::AtSetLogged | AlterTableType::AtSetUnLogged => {
                    Some(("SET LOGGED/UNLOGGED rewrites the table".into(), WINDOW))
                }
                AlterTableType::AtSetAccessMethod => {
                    Some(("SET ACCESS METHOD rewrites the table".into(), WINDOW))
                }
                _ => None,
            }
        }),
        NodeEnum::VacuumStmt(v)
            if v.options.iter().any(
                |o| matches!(o.node.as_ref(), Some(NodeEnum::DefElem(d)) if d.defname == "full"),
            ) =>
        {
            Some((
                "VACUUM FULL rewrites the table".into(),
                "reclaim space online with an extension such as pg_repack, or schedule a window",
            ))
        }
        NodeEnum::ClusterStmt(_) => Some((
            "CLUSTER rewrites the table".into(),
            "reorder online with an extension such as pg_repack, or schedule a window",
        )),
        _ => None,
    }
}

fn check(ctx: &Judge) -> Vec<Finding> {
    ctx.executed()
        .filter_map(|stmt| {
            let (why, help) = rewrite_reason(&stmt.node)?;
            if let NodeEnum::AlterTableStmt(a) = &stmt.node {
                let table = relation(a.relation.as_ref()?, ctx.search_path);
                if ctx.created_before(stmt.index, &table) {
                    return None;
                }
            }
            // batches only bound the locks when each one commits on its own
            let help = match ctx.mode {
                TransactionMode::Single if help.contains("in batches") => format!(
                    "{help} (the batches in a later package with transaction = \"none\": \
                     inside one transaction every row stays locked until COMMIT)"
                ),
                _ => help.to_string(),
            };
            Some(ctx.finding(
                RULE.id,
                Severity::Warn,
                stmt,
                format!("{why}; readers and writers wait for the whole rewrite"),
                Some(&help),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{full, ids};
    use crate::sql::transaction::TransactionMode;

    #[test]
    fn rewrites() {
        assert!(ids("ALTER TABLE t ALTER COLUMN a TYPE bigint;").contains(&"table-rewrite"));
        assert!(
            ids("ALTER TABLE t ADD COLUMN u uuid DEFAULT gen_random_uuid();")
                .contains(&"table-rewrite")
        );
        assert!(ids("VACUUM FULL t;").contains(&"table-rewrite"));
    }

    #[test]
    fn each_rewrite_has_its_own_help() {
        let help = |sql: &str| {
            full(sql, TransactionMode::Single)
                .into_iter()
                .find(|f| f.hazard == "table-rewrite")
                .and_then(|f| f.help)
                .unwrap_or_else(|| panic!("no table-rewrite help for {sql}"))
        };
        let type_change = help("ALTER TABLE t ALTER COLUMN a TYPE bigint;");
        assert!(!type_change.contains("volatile"), "{type_change}");
        assert!(
            type_change.contains("column of the new type"),
            "{type_change}"
        );
        let volatile = help("ALTER TABLE t ADD COLUMN u uuid DEFAULT gen_random_uuid();");
        assert!(
            volatile.contains("without the volatile default"),
            "{volatile}"
        );
        assert!(help("VACUUM FULL t;").contains("pg_repack"));
        // in one transaction, batches need a package of their own
        assert!(
            type_change.contains("transaction = \"none\""),
            "{type_change}"
        );
        let none = full(
            "ALTER TABLE t ALTER COLUMN a TYPE bigint;",
            TransactionMode::None,
        );
        let none = none.iter().find_map(|f| f.help.clone()).unwrap();
        assert!(!none.contains("transaction = \"none\""), "{none}");
    }

    #[test]
    fn constant_defaults_do_not_rewrite() {
        assert!(
            !ids("ALTER TABLE t ADD COLUMN a text NOT NULL DEFAULT 'x';")
                .contains(&"table-rewrite")
        );
        assert!(
            !ids("ALTER TABLE t ADD COLUMN a timestamptz DEFAULT now();")
                .contains(&"table-rewrite")
        );
    }
}
