//! The single-transaction rules of SPEC §4: sluice owns the transaction, so a migration may open
//! with one `BEGIN;` and close with one `COMMIT;`, which are set aside; any other transaction
//! control is an error in `single` mode.

use super::Statement;
use pg_query::protobuf::TransactionStmtKind;
use pg_query::NodeEnum;

/// How the migration runs (`[migration].transaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionMode {
    /// One transaction owned by sluice (the default).
    Single,
    /// Statement by statement, for changes that cannot run in a transaction: not atomic.
    None,
}

/// The statements sluice will run, after setting aside the file's own BEGIN/COMMIT.
#[derive(Debug, Clone)]
pub struct ExecutionPlan {
    pub statements: Vec<Statement>,
    /// The leading `BEGIN` that was set aside, if any.
    pub stripped_begin: Option<Statement>,
    /// The trailing `COMMIT` that was set aside, if any.
    pub stripped_commit: Option<Statement>,
}

/// The kind of a transaction-control statement, if it is one.
pub(crate) fn transaction_kind(stmt: &Statement) -> Option<TransactionStmtKind> {
    match &stmt.node {
        NodeEnum::TransactionStmt(t) => TransactionStmtKind::try_from(t.kind).ok(),
        _ => None,
    }
}

fn is_plain_begin(stmt: &Statement) -> bool {
    matches!(&stmt.node, NodeEnum::TransactionStmt(t) if t.options.is_empty())
        && matches!(
            transaction_kind(stmt),
            Some(TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart)
        )
}

fn is_plain_commit(stmt: &Statement) -> bool {
    matches!(&stmt.node, NodeEnum::TransactionStmt(t) if !t.chain)
        && transaction_kind(stmt) == Some(TransactionStmtKind::TransStmtCommit)
}

impl ExecutionPlan {
    /// The indices of the statements set aside (the file's own BEGIN and COMMIT).
    pub fn set_aside(&self) -> std::collections::BTreeSet<usize> {
        self.stripped_begin
            .iter()
            .chain(self.stripped_commit.iter())
            .map(|s| s.index)
            .collect()
    }
}

/// Sets aside one leading BEGIN and one trailing COMMIT in single mode. Everything else stays,
/// and is judged by the `transaction-control` hazard.
pub fn plan(statements: &[Statement], mode: TransactionMode) -> ExecutionPlan {
    let mut rest = statements.to_vec();
    let mut stripped_begin = None;
    let mut stripped_commit = None;
    if mode == TransactionMode::Single {
        if rest.first().is_some_and(is_plain_begin) {
            stripped_begin = Some(rest.remove(0));
        }
        if stripped_begin.is_some() && rest.last().is_some_and(is_plain_commit) {
            stripped_commit = rest.pop();
        }
    }
    ExecutionPlan {
        statements: rest,
        stripped_begin,
        stripped_commit,
    }
}
