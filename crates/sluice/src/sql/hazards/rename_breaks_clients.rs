//! `rename-breaks-clients`: `ALTER TABLE … RENAME TO` and `RENAME COLUMN` (and the same on views)
//! change a name clients write in their queries. Every client still using the old name fails
//! from the moment the change commits, and a rollback of the schema does not fix clients that
//! were already moved to the new one.

use super::{Finding, HazardContext, HazardRule, Judge, Severity};
use crate::sql::names::relation;
use pg_query::protobuf::ObjectType;
use pg_query::NodeEnum;

pub const RULE: HazardRule = HazardRule {
    id: "rename-breaks-clients",
    summary: "renaming a table, view or column breaks clients that still use the old name",
    help: "Clients that still use the old name fail the moment the rename commits. Add the new name beside the old one (a view or a new column), move the clients, then drop the old one.",
    rollback: false,
    check,
};

/// What a rename statement renames, as `(old name, new name)`, when clients can name it.
fn renamed(stmt: &pg_query::protobuf::RenameStmt, ctx: &HazardContext) -> Option<(String, String)> {
    let table = relation(stmt.relation.as_ref()?, ctx.search_path);
    match ObjectType::try_from(stmt.rename_type).ok()? {
        ObjectType::ObjectTable
        | ObjectType::ObjectView
        | ObjectType::ObjectMatview
        | ObjectType::ObjectForeignTable => Some((table, stmt.newname.clone())),
        ObjectType::ObjectColumn => Some((
            format!("{table}.{}", stmt.subname),
            format!("{table}.{}", stmt.newname),
        )),
        _ => None,
    }
}

fn check(ctx: &Judge) -> Vec<Finding> {
    ctx.executed()
        .filter_map(|stmt| {
            let NodeEnum::RenameStmt(rename) = &stmt.node else {
                return None;
            };
            let table = relation(rename.relation.as_ref()?, ctx.search_path);
            if ctx.created_before(stmt.index, &table) {
                return None;
            }
            let (old, new) = renamed(rename, ctx)?;
            Some(ctx.finding(
                RULE.id,
                Severity::Warn,
                stmt,
                format!(
                    "renames {old} to {new}: every client query and function body that still \
                     names {old} fails from COMMIT on (views follow the rename)"
                ),
                Some(
                    "ship clients that no longer use the old name first (or keep it reachable, \
                     e.g. a view under the old name) and rename in a later migration",
                ),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{findings_for, full};
    use super::*;
    use crate::sql::transaction::TransactionMode;

    #[test]
    fn renames_of_existing_tables_and_columns_warn() {
        let column = findings_for("ALTER TABLE t RENAME COLUMN a TO b;");
        assert!(
            column.contains(&("rename-breaks-clients", Severity::Warn, 1)),
            "{column:?}"
        );
        let table = findings_for("ALTER TABLE s.t RENAME TO u;");
        assert!(
            table.contains(&("rename-breaks-clients", Severity::Warn, 1)),
            "{table:?}"
        );
        let why = &full(
            "ALTER TABLE t RENAME COLUMN a TO b;",
            TransactionMode::Single,
        )
        .into_iter()
        .find(|f| f.hazard == RULE.id)
        .unwrap()
        .why;
        assert!(why.contains("public.t.a to public.t.b"), "{why}");
    }

    #[test]
    fn a_table_created_in_the_migration_has_no_clients_yet() {
        let found = findings_for("CREATE TABLE n (a int);\nALTER TABLE n RENAME COLUMN a TO b;");
        assert!(!found.iter().any(|f| f.0 == RULE.id), "{found:?}");
        let index = findings_for("ALTER INDEX ix RENAME TO iy;");
        assert!(!index.iter().any(|f| f.0 == RULE.id), "{index:?}");
    }
}
