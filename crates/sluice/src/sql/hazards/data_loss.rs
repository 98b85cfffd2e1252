//! `data-loss`: statements that destroy stored data (DROP TABLE/SCHEMA/COLUMN, TRUNCATE,
//! DELETE). A rollback cannot bring the data back; only the backup can. The rollback file is
//! judged too: what it drops holds what the migration wrote and what clients wrote since, which
//! the backup (taken before the migration) does not have.

use super::{FileRole, Finding, HazardRule, Judge, Runner, Severity};
use crate::sql::operation::{derive, OpKind, Operation};

pub const RULE: HazardRule = HazardRule {
    id: "data-loss",
    summary: "DROP TABLE/SCHEMA/COLUMN, TRUNCATE or DELETE destroys data",
    help: "Dropping or truncating destroys data that a rollback cannot bring back. Make sure a backup exists, that no client still reads it, and prefer a deprecation period before the drop.",
    rollback: true,
    check,
};

fn check(ctx: &Judge) -> Vec<Finding> {
    let mut findings = Vec::new();
    for stmt in ctx.executed() {
        let destroyed: Vec<Operation> = derive(&stmt.node, ctx.search_path)
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
            .filter(|op| !ctx.created_before(stmt.index, &op.object))
            .collect();
        if destroyed.is_empty() {
            continue;
        }
        let list = |ops: &[&Operation]| {
            ops.iter()
                .map(|op| op.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if ctx.role == FileRole::Migration {
            findings.push(ctx.finding(
                RULE.id,
                Severity::Warn,
                stmt,
                format!(
                    "{} destroys stored data; {}",
                    list(&destroyed.iter().collect::<Vec<_>>()),
                    match ctx.runner {
                        Runner::Package => "a rollback cannot bring it back, only the backup can",
                        Runner::Tool => "only a backup taken before it can bring it back",
                    }
                ),
                Some(match ctx.runner {
                    Runner::Package => {
                        "make sure the backup gate is on and that the data is really no longer needed"
                    }
                    Runner::Tool => {
                        "take a backup first, and make sure the data is really no longer needed"
                    }
                }),
            ));
            continue;
        }
        // the rollback: dropping what the migration added is its purpose, but what was written
        // there since is lost; dropping anything older loses data the migration never touched
        let (added, older): (Vec<&Operation>, Vec<&Operation>) = destroyed
            .iter()
            .partition(|op| ctx.added_by_migration.contains(&op.object));
        findings.push(if older.is_empty() {
            ctx.finding(
                RULE.id,
                Severity::Info,
                stmt,
                format!(
                    "the rollback's {} drops what the migration added, with every value written \
                     there since it committed; the backup, taken before the migration, holds none of it",
                    list(&added)
                ),
                Some("before rolling back, export what must be kept"),
            )
        } else {
            ctx.finding(
                RULE.id,
                Severity::Warn,
                stmt,
                format!(
                    "the rollback's {} destroys data the migration did not add; only the backup \
                     brings it back",
                    list(&older)
                ),
                Some("a rollback should drop only what the migration added: check that this drop is meant"),
            )
        });
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{ids, rollback};
    use super::*;

    #[test]
    fn drops_and_deletes() {
        assert!(ids("DROP TABLE public.x;").contains(&"data-loss"));
        assert!(ids("ALTER TABLE t DROP COLUMN c;").contains(&"data-loss"));
        assert!(ids("DELETE FROM t WHERE id = 1;").contains(&"data-loss"));
        assert!(ids("TRUNCATE t;").contains(&"data-loss"));
        assert!(!ids("DROP INDEX ix;").contains(&"data-loss"));
        assert!(!ids("CREATE TABLE n (a int); DROP TABLE n;").contains(&"data-loss"));
    }

    #[test]
    fn the_rollbacks_drops_are_data_loss_too() {
        let sql = "BEGIN;\nDROP TABLE IF EXISTS s.alias;\nALTER TABLE t DROP COLUMN IF EXISTS a;\nALTER TABLE t DROP COLUMN b;\nCOMMIT;";
        let found = rollback(sql, &["s.alias", "public.t.a"]);
        let lost: Vec<(&str, Severity, usize)> = found
            .iter()
            .map(|f| (f.hazard, f.severity, f.location.line))
            .collect();
        // what the migration added: a note; a column it did not add: a warning
        assert_eq!(
            lost,
            vec![
                ("data-loss", Severity::Info, 2),
                ("data-loss", Severity::Info, 3),
                ("data-loss", Severity::Warn, 4)
            ]
        );
        assert!(
            found[1]
                .why
                .contains("the rollback's drop_column public.t.a"),
            "{}",
            found[1].why
        );
        assert!(found[2].why.contains("did not add"), "{}", found[2].why);
    }

    #[test]
    fn the_rollback_is_judged_only_by_the_rules_for_it() {
        let found = rollback(
            "ALTER TABLE t ALTER COLUMN a SET NOT NULL;\nUPDATE t SET a = 1;",
            &[],
        );
        assert!(found.is_empty(), "{found:?}");
    }
}
