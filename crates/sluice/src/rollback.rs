//! Rollback: the package's rollback file run in one transaction with the migration's lock
//! discipline. The gated `sluice rollback` verb (SPEC §6) and rehearsal both use it.

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

/// Runs the rollback file atomically (its own BEGIN/COMMIT set aside, SET LOCAL timeouts,
/// lock-timeout retries).
pub fn run_rollback_sql(
    client: &mut postgres::Client,
    pkg: &Package,
) -> Result<MigrationReport, RollbackError> {
    let source = pkg.rollback_source().ok_or(RollbackError::NoRollback)?;
    let file = sql::parse_file(source)?;
    let plan = transaction::plan(&file.statements, transaction::TransactionMode::Single);
    let run = MigrationRun {
        source: &file.source,
        statements: &plan.statements,
        expect: None,
        lock_timeout_ms: pkg.migration.lock_timeout_ms,
        statement_timeout_ms: pkg.migration.statement_timeout_ms,
        lock_retries: pkg.migration.lock_retries,
    };
    Ok(migration::run_single(client, &run, &|_| {}))
}
