//! Rollback: the package's rollback file run with the migration's lock discipline — in one
//! transaction, or statement by statement when the package is `transaction = "none"` (so that
//! `DROP INDEX CONCURRENTLY` can undo `CREATE INDEX CONCURRENTLY`). The gated `sluice rollback`
//! verb (SPEC §6) and rehearsal both use it.

use crate::migration::{self, MigrationReport, MigrationRun};
use crate::package::Package;
use crate::sql::{self, transaction};

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("the package has no [rollback] file")]
    NoRollback,
    #[error(transparent)]
    Sql(#[from] sql::SqlError),
}

/// Runs the rollback file in the package's transaction mode: atomically (its own BEGIN/COMMIT
/// set aside, SET LOCAL timeouts, lock-timeout retries), or one statement at a time.
pub(crate) fn run_rollback_sql(
    client: &mut postgres::Client,
    pkg: &Package,
) -> Result<MigrationReport, RollbackError> {
    let source = pkg.rollback_source().ok_or(RollbackError::NoRollback)?;
    let file = sql::parse_file(source)?;
    let mode = pkg.migration.transaction;
    let plan = transaction::plan(&file.statements, mode);
    let run = MigrationRun {
        source: &file.source,
        statements: &plan.statements,
        expect: None,
        lock_timeout_ms: pkg.migration.lock_timeout_ms,
        statement_timeout_ms: pkg.migration.statement_timeout_ms,
        lock_retries: pkg.migration.lock_retries,
        trace: false,
        search_path: &pkg.target.search_path,
    };
    Ok(match mode {
        transaction::TransactionMode::Single => migration::run_single(client, None, &run, &|_| {}),
        transaction::TransactionMode::None => migration::run_autocommit(client, None, &run),
    })
}
