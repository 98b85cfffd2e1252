//! `default-hides-backfill`: a column added WITH a default is filled on every existing row at
//! once, so a later backfill `UPDATE … WHERE col IS NULL` matches nothing. This is the seed's
//! rejected r1 form: the backfill silently never ran (rows changed 0 instead of 86).

use super::{Finding, HazardContext, HazardRule, Judge, Severity};
use crate::sql::names::relation;
use pg_query::protobuf::{AlterTableType, ConstrType, NullTestType};
use pg_query::{NodeEnum, NodeRef};
use std::collections::BTreeMap;

pub const RULE: HazardRule = HazardRule {
    id: "default-hides-backfill",
    summary: "a backfill WHERE col IS NULL after the column was added with a default",
    help: "A column added WITH a default already holds that default in every row, so a later backfill WHERE col IS NULL matches nothing. Add the column without a default, backfill, then SET DEFAULT.",
    rollback: false,
    check,
};

/// Columns an ALTER TABLE adds with a non-NULL default: `schema.table` → column names.
fn columns_added_with_default(node: &NodeEnum, ctx: &HazardContext) -> Vec<(String, String)> {
    let NodeEnum::AlterTableStmt(stmt) = node else {
        return vec![];
    };
    let Some(rv) = stmt.relation.as_ref() else {
        return vec![];
    };
    let table = relation(rv, ctx.search_path);
    stmt.cmds
        .iter()
        .filter_map(|c| match c.node.as_ref() {
            Some(NodeEnum::AlterTableCmd(cmd))
                if cmd.subtype == AlterTableType::AtAddColumn as i32 =>
            {
                match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                    Some(NodeEnum::ColumnDef(col)) if has_non_null_default(col) => {
                        Some((table.clone(), col.colname.clone()))
                    }
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}

fn has_non_null_default(col: &pg_query::protobuf::ColumnDef) -> bool {
    let is_null_const = |n: &pg_query::protobuf::Node| matches!(n.node.as_ref(), Some(NodeEnum::AConst(c)) if c.isnull);
    if let Some(d) = col.raw_default.as_ref() {
        return !is_null_const(d);
    }
    col.constraints.iter().any(|c| match c.node.as_ref() {
        Some(NodeEnum::Constraint(con)) if con.contype == ConstrType::ConstrDefault as i32 => {
            con.raw_expr.as_ref().is_some_and(|e| !is_null_const(e))
        }
        _ => false,
    })
}

/// The columns an UPDATE's WHERE clause tests with `IS NULL`.
fn is_null_columns(stmt: &pg_query::protobuf::UpdateStmt) -> Vec<String> {
    let Some(where_node) = stmt.where_clause.as_ref().and_then(|w| w.node.as_ref()) else {
        return vec![];
    };
    // `nodes()` lists the node itself first, then everything under it
    let mut columns: Vec<String> = where_node
        .nodes()
        .into_iter()
        .filter_map(|(n, ..)| match n {
            NodeRef::NullTest(t) if t.nulltesttype == NullTestType::IsNull as i32 => {
                match t.arg.as_ref().and_then(|a| a.node.as_ref()) {
                    Some(NodeEnum::ColumnRef(c)) => crate::sql::names::strings(&c.fields).pop(),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect();
    // one finding per column, however often the WHERE clause tests it
    columns.sort();
    columns.dedup();
    columns
}

fn check(ctx: &Judge) -> Vec<Finding> {
    let mut defaulted: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut findings = Vec::new();
    for stmt in ctx.executed() {
        for key in columns_added_with_default(&stmt.node, ctx) {
            defaulted.insert(key, stmt.index);
        }
        let NodeEnum::UpdateStmt(update) = &stmt.node else {
            continue;
        };
        let Some(rv) = update.relation.as_ref() else {
            continue;
        };
        let table = relation(rv, ctx.search_path);
        for column in is_null_columns(update) {
            if let Some(added_at) = defaulted.get(&(table.clone(), column.clone())) {
                let added = ctx.source.locate(ctx.statements[*added_at].start);
                findings.push(ctx.finding(
                    RULE.id,
                    Severity::Error,
                    stmt,
                    format!(
                        "{table}.{column} was added with a DEFAULT at line {}, which fills every \
                         existing row; this backfill's `WHERE {column} IS NULL` therefore matches \
                         no row and the backfill never happens",
                        added.line
                    ),
                    Some("add the column without a default, backfill it, then SET DEFAULT"),
                ));
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{findings_for, ids};
    use super::*;

    const R1: &str = "BEGIN;
ALTER TABLE public.tac_logical_unit ADD COLUMN authority text DEFAULT 'draft';
UPDATE public.tac_logical_unit SET authority = CASE lifecycle_status WHEN 'draft_only' THEN 'draft' END
 WHERE authority IS NULL;
COMMIT;";

    const R2: &str = "BEGIN;
ALTER TABLE public.tac_logical_unit ADD COLUMN authority text;
UPDATE public.tac_logical_unit SET authority = 'draft' WHERE authority IS NULL;
ALTER TABLE public.tac_logical_unit ALTER COLUMN authority SET DEFAULT 'draft';
COMMIT;";

    #[test]
    fn catches_the_seeds_r1_form() {
        let found = findings_for(R1);
        assert!(
            found.contains(&("default-hides-backfill", Severity::Error, 3)),
            "{found:?}"
        );
    }

    #[test]
    fn the_r2_order_is_clean() {
        assert!(!ids(R2).contains(&"default-hides-backfill"));
    }

    #[test]
    fn an_explicit_null_default_hides_nothing() {
        let sql = "ALTER TABLE t ADD COLUMN a text DEFAULT NULL; UPDATE t SET a = 'x' WHERE a IS NULL AND id > 0;";
        assert!(!ids(sql).contains(&"default-hides-backfill"));
        let nested = "ALTER TABLE t ADD COLUMN a text DEFAULT 'y'; UPDATE t SET a = 'x' WHERE id > 0 AND (a IS NULL);";
        assert!(ids(nested).contains(&"default-hides-backfill"));
    }

    #[test]
    fn one_finding_per_backfill() {
        let count = |sql: &str| {
            ids(sql)
                .into_iter()
                .filter(|id| *id == "default-hides-backfill")
                .count()
        };
        assert_eq!(count(R1), 1);
        let twice = "ALTER TABLE t ADD COLUMN a text DEFAULT 'y';\nUPDATE t SET a = 'x' WHERE a IS NULL OR (a IS NULL AND id > 0);";
        assert_eq!(count(twice), 1);
    }
}
