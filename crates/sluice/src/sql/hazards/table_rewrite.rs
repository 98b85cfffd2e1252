//! `table-rewrite`: statements that rewrite a whole table under an ACCESS EXCLUSIVE lock
//! (ALTER COLUMN TYPE, ADD COLUMN with a volatile default or a stored generated column, SET
//! TABLESPACE / LOGGED / ACCESS METHOD, VACUUM FULL, CLUSTER).

use super::{Finding, HazardContext, HazardRule, Severity};
use crate::sql::names::{relation, strings};
use pg_query::protobuf::{AlterTableType, ConstrType, Node};
use pg_query::{NodeEnum, NodeRef};

pub const RULE: HazardRule = HazardRule {
    id: "table-rewrite",
    summary: "the statement rewrites every row of an existing table under an exclusive lock",
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
    let node = expr.node.as_ref()?;
    let mut all = node.nodes();
    all.push((node.to_ref(), 0, pg_query::Context::None, false));
    all.into_iter().find_map(|(n, ..)| match n {
        NodeRef::FuncCall(f) => {
            let name = strings(&f.funcname).pop()?;
            VOLATILE.contains(&name.as_str()).then_some(name)
        }
        _ => None,
    })
}

fn add_column_rewrite(col: &pg_query::protobuf::ColumnDef) -> Option<String> {
    if let Some(name) = col.raw_default.as_deref().and_then(volatile_call) {
        return Some(format!("the default calls volatile {name}()"));
    }
    for c in &col.constraints {
        let Some(NodeEnum::Constraint(con)) = c.node.as_ref() else {
            continue;
        };
        let kind = ConstrType::try_from(con.contype).unwrap_or(ConstrType::Undefined);
        match kind {
            ConstrType::ConstrDefault => {
                if let Some(name) = con.raw_expr.as_deref().and_then(volatile_call) {
                    return Some(format!("the default calls volatile {name}()"));
                }
            }
            ConstrType::ConstrGenerated => return Some("a stored generated column".into()),
            ConstrType::ConstrIdentity => return Some("an identity column".into()),
            _ => {}
        }
    }
    None
}

fn rewrite_reason(node: &NodeEnum) -> Option<String> {
    match node {
        NodeEnum::AlterTableStmt(stmt) => stmt.cmds.iter().find_map(|c| {
            let Some(NodeEnum::AlterTableCmd(cmd)) = c.node.as_ref() else {
                return None;
            };
            match AlterTableType::try_from(cmd.subtype).ok()? {
                AlterTableType::AtAlterColumnType => Some(format!(
                    "changing the type of {} rewrites the table and its indexes",
                    cmd.name
                )),
                AlterTableType::AtAddColumn => match cmd.def.as_ref()?.node.as_ref()? {
                    NodeEnum::ColumnDef(col) => add_column_rewrite(col)
                        .map(|why| format!("adding {}: {why} fills every row", col.colname)),
                    _ => None,
                },
                AlterTableType::AtSetTableSpace => Some("SET TABLESPACE copies the table".into()),
                AlterTableType::AtSetLogged | AlterTableType::AtSetUnLogged => {
                    Some("SET LOGGED/UNLOGGED rewrites the table".into())
                }
                AlterTableType::AtSetAccessMethod => {
                    Some("SET ACCESS METHOD rewrites the table".into())
                }
                _ => None,
            }
        }),
        NodeEnum::VacuumStmt(v)
            if v.options.iter().any(
                |o| matches!(o.node.as_ref(), Some(NodeEnum::DefElem(d)) if d.defname == "full"),
            ) =>
        {
            Some("VACUUM FULL rewrites the table".into())
        }
        NodeEnum::ClusterStmt(_) => Some("CLUSTER rewrites the table".into()),
        _ => None,
    }
}

fn check(ctx: &HazardContext) -> Vec<Finding> {
    ctx.executed()
        .filter_map(|stmt| {
            let why = rewrite_reason(&stmt.node)?;
            if let NodeEnum::AlterTableStmt(a) = &stmt.node {
                let table = relation(a.relation.as_ref()?, ctx.search_path);
                if ctx.created_before(stmt.index).contains(&table) {
                    return None;
                }
            }
            Some(ctx.finding(
                RULE.id,
                Severity::Warn,
                stmt,
                format!("{why}; readers and writers wait for the whole rewrite"),
                Some("add the column without the volatile default and backfill in batches, or schedule a window"),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::ids;

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
