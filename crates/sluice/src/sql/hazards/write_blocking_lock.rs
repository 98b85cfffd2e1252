//! `write-blocking-lock`: statements that lock an existing table in a mode that lets reads go on
//! but makes every INSERT, UPDATE and DELETE wait (SHARE ROW EXCLUSIVE or EXCLUSIVE): adding a
//! foreign key (on the table AND on the table it references), CREATE TRIGGER, ENABLE/DISABLE
//! TRIGGER. Like ACCESS EXCLUSIVE, the lock queues behind running transactions and everything
//! queues behind it, so sluice bounds the wait with `lock_timeout`. (CREATE INDEX's SHARE lock is
//! `blocking-index-build`'s.)

use super::{Finding, HazardRule, Judge, Severity};
use pg_query::NodeEnum;

pub const RULE: HazardRule = HazardRule {
    id: "write-blocking-lock",
    summary: "a lock that blocks writes (not reads) on an existing table",
    help: "The lock blocks writes (not reads) to the table until COMMIT. Set a short lock_timeout, keep the transaction short, and run it when writes are light.",
    rollback: false,
    check,
};

fn check(ctx: &Judge) -> Vec<Finding> {
    ctx.executed()
        .filter(|stmt| !matches!(stmt.node, NodeEnum::IndexStmt(_)))
        .filter_map(|stmt| {
            let locks: Vec<_> = ctx
                .new_locks(stmt)
                .into_iter()
                .filter(|l| l.mode.blocks_writes() && !l.mode.blocks_reads())
                .collect();
            let mode = locks.iter().map(|l| l.mode).max()?;
            let tables: Vec<&str> = locks.iter().map(|l| l.table.as_str()).collect();
            let what = if locks.iter().all(|l| l.mode == mode) {
                format!("{mode} on {}", tables.join(" and "))
            } else {
                locks
                    .iter()
                    .map(|l| format!("{} on {}", l.mode, l.table))
                    .collect::<Vec<_>>()
                    .join(" and ")
            };
            let referenced: Vec<&str> = locks
                .iter()
                .filter(|l| l.referenced)
                .map(|l| l.table.as_str())
                .collect();
            let why_referenced = if referenced.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} because the foreign key references it)",
                    referenced.join(", ")
                )
            };
            Some(if ctx.lock_timeout_ms > 0 {
                ctx.finding(
                    RULE.id,
                    Severity::Info,
                    stmt,
                    format!(
                        "takes {what}{why_referenced} until COMMIT: reads go on, INSERT, UPDATE \
                         and DELETE wait; {}",
                        ctx.lock_timeout_note()
                    ),
                    None,
                )
            } else {
                ctx.finding(
                    RULE.id,
                    Severity::Warn,
                    stmt,
                    format!(
                        "takes {what}{why_referenced} {}: while it waits for \
                         a running transaction, every write to {} waits behind it",
                        ctx.no_lock_timeout(),
                        tables.join(" and ")
                    ),
                    Some(ctx.lock_timeout_help()),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{findings_for, full};
    use super::*;
    use crate::sql::transaction::TransactionMode;

    #[test]
    fn a_foreign_key_names_both_tables() {
        let sql = "ALTER TABLE child ADD CONSTRAINT fk FOREIGN KEY (pid) REFERENCES parent (id) NOT VALID;";
        let found = full(sql, TransactionMode::Single);
        let lock = found
            .iter()
            .find(|f| f.hazard == RULE.id)
            .expect("a lock finding");
        assert_eq!(lock.severity, Severity::Info);
        assert!(
            lock.why
                .contains("SHARE ROW EXCLUSIVE on public.child and public.parent"),
            "{}",
            lock.why
        );
        assert!(
            !found.iter().any(|f| f.hazard == "access-exclusive-lock"),
            "{found:?}"
        );
    }

    #[test]
    fn a_table_created_here_is_left_out() {
        let found = full(
            "CREATE TABLE child (pid int);\nALTER TABLE child ADD FOREIGN KEY (pid) REFERENCES parent NOT VALID;",
            TransactionMode::Single,
        );
        let lock = found
            .iter()
            .find(|f| f.hazard == RULE.id)
            .expect("a lock finding");
        assert!(
            lock.why.contains("SHARE ROW EXCLUSIVE on public.parent ("),
            "{}",
            lock.why
        );
        assert!(!lock.why.contains("public.child"), "{}", lock.why);
    }

    #[test]
    fn triggers_block_writes() {
        assert!(
            findings_for("ALTER TABLE t DISABLE TRIGGER tg;").contains(&(
                "write-blocking-lock",
                Severity::Info,
                1
            ))
        );
    }
}
