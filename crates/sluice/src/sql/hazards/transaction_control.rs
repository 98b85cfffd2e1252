//! `transaction-control`: BEGIN/COMMIT/ROLLBACK/SAVEPOINT inside a migration that sluice runs in
//! its own transaction would end that transaction early, or split the change.

use super::{Finding, HazardRule, Judge, Runner, Severity};
use crate::sql::transaction::{transaction_kind, TransactionMode};

pub const RULE: HazardRule = HazardRule {
    id: "transaction-control",
    summary: "transaction control other than one leading BEGIN and one trailing COMMIT",
    help: "Keep at most one BEGIN as the first statement and one COMMIT as the last: the runner (sluice, or your migration tool) owns the transaction, and anything else commits, rolls back or splits the change midway.",
    rollback: true,
    check,
};

fn check(ctx: &Judge) -> Vec<Finding> {
    ctx.executed()
        .filter(|s| transaction_kind(s).is_some())
        .map(|s| {
            let severity = match ctx.mode {
                TransactionMode::Single => Severity::Error,
                TransactionMode::None => Severity::Warn,
            };
            match ctx.runner {
                Runner::Package => ctx.finding(
                    RULE.id,
                    severity,
                    s,
                    "sluice owns the migration's transaction: this statement would commit, roll back \
                     or split it, so the expectations could no longer be checked before COMMIT",
                    Some("keep at most one BEGIN as the first statement and one COMMIT as the last; sluice sets those aside"),
                ),
                Runner::Tool => ctx.finding(
                    RULE.id,
                    severity,
                    s,
                    "this statement commits, rolls back or splits the file's transaction midway: \
                     what ran before it stays, whatever fails after it",
                    Some("keep at most one BEGIN as the first statement and one COMMIT as the last, or none when the tool wraps each file"),
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::ids;

    #[test]
    fn leading_begin_and_trailing_commit_are_fine() {
        assert!(ids("BEGIN; SELECT 1; COMMIT;").is_empty());
    }

    #[test]
    fn any_other_transaction_control_is_an_error() {
        assert_eq!(
            ids("BEGIN; SELECT 1; COMMIT; SELECT 2;"),
            vec!["transaction-control"]
        );
        assert_eq!(ids("SELECT 1; SAVEPOINT a; ROLLBACK TO a;").len(), 2);
        assert_eq!(ids("SELECT 1; COMMIT;"), vec!["transaction-control"]);
    }
}
