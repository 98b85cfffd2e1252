//! `access-exclusive-lock`: most ALTER TABLE subforms, DROP TABLE, TRUNCATE and renames take an
//! ACCESS EXCLUSIVE lock on an existing table, which queues behind every running query and
//! blocks every query that comes after it. sluice bounds the wait with `lock_timeout`; with no
//! timeout this is a warning. The lighter subforms (VALIDATE CONSTRAINT, ADD FOREIGN KEY, SET
//! STATISTICS, …) take the level [`crate::sql::locks`] gives them, and a lock the transaction
//! already holds costs no new wait.

use super::{Finding, HazardRule, Judge, Severity};
use crate::sql::locks::LockMode;

pub const RULE: HazardRule = HazardRule {
    id: "access-exclusive-lock",
    summary: "an ACCESS EXCLUSIVE lock on an existing table",
    help: "While it waits for its ACCESS EXCLUSIVE lock behind a running query, every other query on the table queues behind it. Set a short lock_timeout and retry, and keep the transaction short after the lock is taken.",
    rollback: false,
    check,
};

fn check(ctx: &Judge) -> Vec<Finding> {
    ctx.executed()
        .filter_map(|stmt| {
            let tables: Vec<String> = ctx
                .new_locks(stmt)
                .into_iter()
                .filter(|lock| lock.mode == LockMode::AccessExclusive)
                .map(|lock| lock.table)
                .collect();
            if tables.is_empty() {
                return None;
            }
            let table = tables.join(", ");
            Some(if ctx.lock_timeout_ms > 0 {
                ctx.finding(
                    RULE.id,
                    Severity::Info,
                    stmt,
                    format!(
                        "takes ACCESS EXCLUSIVE on {table} until COMMIT; {}",
                        ctx.lock_timeout_note()
                    ),
                    None,
                )
            } else {
                ctx.finding(
                    RULE.id,
                    Severity::Warn,
                    stmt,
                    format!("takes ACCESS EXCLUSIVE on {table} {}: while it waits for a running query, every other query on {table} waits behind it", ctx.no_lock_timeout()),
                    Some(ctx.lock_timeout_help()),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{findings_for, findings_with, ids};
    use super::*;
    use crate::sql::transaction::TransactionMode;

    #[test]
    fn info_when_bounded_by_lock_timeout() {
        let f = findings_for("ALTER TABLE t ADD COLUMN a int;");
        assert!(f.contains(&("access-exclusive-lock", Severity::Info, 1)));
        let created = findings_for("CREATE TABLE t (a int); ALTER TABLE t ADD COLUMN b int;");
        assert!(!created.iter().any(|f| f.0 == "access-exclusive-lock"));
    }

    #[test]
    fn lighter_subforms_take_no_access_exclusive_lock() {
        for sql in [
            "ALTER TABLE t VALIDATE CONSTRAINT c;",
            "ALTER TABLE child ADD CONSTRAINT fk FOREIGN KEY (pid) REFERENCES parent (id) NOT VALID;",
            "ALTER TABLE t ALTER COLUMN a SET STATISTICS 200;",
            "ALTER TABLE t DISABLE TRIGGER tg;",
        ] {
            assert!(!ids(sql).contains(&"access-exclusive-lock"), "{sql}");
        }
    }

    #[test]
    fn a_lock_already_held_in_the_transaction_is_not_taken_again() {
        let sql =
            "ALTER TABLE t ADD COLUMN a int;\nALTER TABLE t ADD COLUMN b int;\nDROP TABLE t, u;";
        let single: Vec<usize> = findings_with(sql, TransactionMode::Single, None)
            .into_iter()
            .filter(|f| f.0 == RULE.id)
            .map(|f| f.2)
            .collect();
        assert_eq!(single, vec![1, 3]);
        let none = findings_with(sql, TransactionMode::None, None);
        assert_eq!(none.iter().filter(|f| f.0 == RULE.id).count(), 3);
    }
}
