//! Running the migration (the `migration-atomic` gate): sluice owns the transaction, sets
//! `lock_timeout`/`statement_timeout` with SET LOCAL before the first statement, runs the
//! statements, compares `[migration.expect]` with the last statement's row, and only then
//! commits. The commit needs an [`ExpectationsHeld`] token that only a successful comparison
//! makes, so "commit without checked expectations" cannot be written. A lock timeout rolls
//! back and retries with backoff; every attempt is recorded.

use crate::expect::{Expectation, TextRows};
use crate::locktrace::{LockTrace, Traced, Tracer};
use crate::source::SourceFile;
use crate::sql::Statement;
use crate::target::{pg_message, PgError};
use serde::Serialize;
use std::time::{Duration, Instant};

/// Proof that the expectations were compared and held; only [`check_expectations`] makes one.
pub struct ExpectationsHeld(());

/// How the migration should run.
pub struct MigrationRun<'a> {
    pub source: &'a SourceFile,
    pub statements: &'a [Statement],
    pub expect: Option<&'a Expectation>,
    pub lock_timeout_ms: u64,
    pub statement_timeout_ms: u64,
    pub lock_retries: u32,
    /// Trace each statement's locks, rewrites, rows and WAL ([`crate::locktrace`]): the
    /// rehearsal's apply only. Same statements, same transaction, same expectations.
    pub trace: bool,
    /// The package's search_path: how the trace names the locks lint predicts.
    pub search_path: &'a crate::sql::names::SearchPath,
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptOutcome {
    /// Expectations held and COMMIT went through (in `none` mode: every statement committed).
    Committed,
    /// A lock was not granted within `lock_timeout`: rolled back, maybe retried.
    LockTimeout,
    /// A statement or the expectations failed: rolled back.
    RolledBack,
    /// `transaction = "none"`: a statement failed after earlier ones committed.
    PartlyCommitted,
    /// `transaction = "none"`: the first statement failed, nothing committed.
    Failed,
}

impl std::fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AttemptOutcome::Committed => "committed",
            AttemptOutcome::LockTimeout => "lock-timeout",
            AttemptOutcome::RolledBack => "rolled-back",
            AttemptOutcome::PartlyCommitted => "partly-committed",
            AttemptOutcome::Failed => "failed",
        })
    }
}

/// One attempt, for the evidence.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub number: u32,
    pub outcome: AttemptOutcome,
    pub detail: String,
    pub duration_ms: u128,
    /// The sessions that blocked it, when its locks waited (lock timeouts).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked_by: Vec<crate::blockers::Blocker>,
    /// How long sluice waits before the next attempt, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u128>,
}

/// The migration's result.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    pub committed: bool,
    pub attempts: Vec<Attempt>,
    /// The last statement's rows (the seed's trailing SELECT).
    pub last_row: Option<TextRows>,
    /// Why it did not commit.
    pub failure: Option<String>,
    /// The server's error behind `failure`, when it was one (SQLSTATE, detail, location).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<PgError>,
    /// How long the committed attempt held its locks (BEGIN to COMMIT), in ms.
    pub lock_holding_ms: Option<u128>,
    /// `transaction = "none"`: each statement that ran, committed on its own or failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub statements: Vec<StatementOutcome>,
    /// `transaction = "none"`: indexes left INVALID by a failed statement (a failed
    /// `CREATE INDEX CONCURRENTLY` leaves its index behind, unusable but maintained).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_indexes: Vec<String>,
    /// The lock trace of the attempt that committed, when [`MigrationRun::trace`] asked for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<LockTrace>,
}

impl MigrationReport {
    fn new() -> MigrationReport {
        MigrationReport {
            committed: false,
            attempts: Vec::new(),
            last_row: None,
            failure: None,
            error: None,
            lock_holding_ms: None,
            statements: Vec::new(),
            invalid_indexes: Vec::new(),
            trace: None,
        }
    }

    /// How many statements committed (`transaction = "none"`).
    pub(crate) fn statements_committed(&self) -> usize {
        self.statements.iter().filter(|s| s.committed).count()
    }
}

/// One statement of a `transaction = "none"` migration, for the evidence.
#[derive(Debug, Clone, Serialize)]
pub struct StatementOutcome {
    /// 1-based, among the statements that run.
    pub number: usize,
    /// `file:line:col` of its first character.
    pub at: String,
    /// Its first line, for the reader.
    pub text: String,
    pub committed: bool,
    pub duration_ms: u128,
}

/// When an attempt began (BEGIN), when its COMMIT ended, and how long the COMMIT took.
struct Committed {
    begun: Instant,
    done: Instant,
    took: Duration,
}

enum AttemptError {
    LockTimeout(String, Box<PgError>),
    /// A statement, the COMMIT or the expectations failed; the server's error when it was one.
    Failed(String, Option<Box<PgError>>),
}

/// Compares the last row with the expectation; the token is the only way to COMMIT.
pub(crate) fn check_expectations(
    expect: Option<&Expectation>,
    last: Option<&TextRows>,
) -> Result<ExpectationsHeld, String> {
    match (expect, last) {
        (None, _) => Ok(ExpectationsHeld(())),
        (Some(e), Some(rows)) => e.compare(rows).map(|_| ExpectationsHeld(())),
        (Some(_), None) => {
            Err("[migration.expect] is set but the migration has no statements".into())
        }
    }
}

/// Commits a transaction whose expectations held.
fn commit(tx: postgres::Transaction<'_>, _held: ExpectationsHeld) -> Result<(), postgres::Error> {
    tx.commit()
}

/// Runs `attempt` while `watcher` (when there is one) asks who blocks the working session.
fn watched<T>(
    client: &mut postgres::Client,
    watcher: Option<&mut postgres::Client>,
    lock_timeout_ms: u64,
    attempt: impl FnOnce(&mut postgres::Client) -> T,
) -> (T, Vec<crate::blockers::Blocker>) {
    let pid = client
        .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
        .map(|r| r.get::<_, i32>(0));
    let (Some(watcher), Ok(pid)) = (watcher, pid) else {
        return (attempt(client), Vec::new());
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let seen = scope.spawn(|| crate::blockers::watch(watcher, pid, lock_timeout_ms, &done));
        let result = attempt(client);
        done.store(true, std::sync::atomic::Ordering::Release);
        (result, seen.join().unwrap_or_default())
    })
}

/// Runs the migration in one transaction, retrying lock timeouts. With a `watcher` session,
/// a lock timeout names the sessions that blocked it.
pub fn run_single(
    client: &mut postgres::Client,
    mut watcher: Option<&mut postgres::Client>,
    run: &MigrationRun,
    on_attempt: &dyn Fn(&Attempt),
) -> MigrationReport {
    let mut report = MigrationReport::new();
    let mut tracer = None;
    if run.trace {
        match Tracer::start(client, false, run.search_path) {
            Ok(t) => tracer = Some(t),
            Err(e) => return tracer_failed(report, "before BEGIN", &e),
        }
    }
    for number in 1..=run.lock_retries + 1 {
        if let Some(t) = tracer.as_mut().filter(|_| number > 1) {
            if let Err(e) = t.reset(client) {
                return tracer_failed(report, "before a retry", &e);
            }
        }
        let started = Instant::now();
        let (result, blocked_by) =
            watched(client, watcher.as_deref_mut(), run.lock_timeout_ms, |c| {
                attempt(c, run, &mut report, tracer.as_mut())
            });
        let duration_ms = started.elapsed().as_millis();
        let (outcome, detail, retry) = match result {
            Ok(commit) => {
                if let Some(t) = tracer.take() {
                    match t.finish(commit.begun, commit.done, commit.took, client) {
                        Ok(trace) => report.trace = Some(trace),
                        Err(e) => {
                            report.failure = Some(format!(
                                "the lock trace after COMMIT failed (the tracer, not the migration, which committed): {}",
                                pg_message(&e)
                            ));
                        }
                    }
                }
                // BEGIN to the end of COMMIT: not the watcher thread's wind-down after it
                report.lock_holding_ms = Some(commit.done.duration_since(commit.begun).as_millis());
                report.error = None;
                (
                    AttemptOutcome::Committed,
                    "expectations held; COMMIT".to_string(),
                    false,
                )
            }
            Err(AttemptError::LockTimeout(d, pg)) => {
                report.error = Some(*pg);
                (AttemptOutcome::LockTimeout, d, number <= run.lock_retries)
            }
            Err(AttemptError::Failed(d, pg)) => {
                report.error = pg.map(|e| *e);
                (AttemptOutcome::RolledBack, d, false)
            }
        };
        let detail = match blocked_by.as_slice() {
            [] => detail,
            sessions => format!(
                "{detail}; blocked by {}",
                sessions
                    .iter()
                    .map(|b| b.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        let attempt = Attempt {
            number,
            outcome,
            detail: detail.clone(),
            duration_ms,
            blocked_by,
            retry_in_ms: retry.then(|| backoff(number).as_millis()),
        };
        on_attempt(&attempt);
        report.attempts.push(attempt);
        if outcome == AttemptOutcome::Committed {
            report.committed = true;
            return report;
        }
        if !retry {
            report.failure = Some(if outcome == AttemptOutcome::LockTimeout {
                format!("gave up after {number} attempt(s): {detail}")
            } else {
                detail
            });
            return report;
        }
        std::thread::sleep(backoff(number));
    }
    report
}

/// 200 ms, 400 ms, 800 ms, … capped at 5 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((200u64 << (attempt - 1).min(5)).min(5000))
}

fn attempt(
    client: &mut postgres::Client,
    run: &MigrationRun,
    report: &mut MigrationReport,
    mut tracer: Option<&mut Tracer>,
) -> Result<Committed, AttemptError> {
    let failed = |e: postgres::Error| {
        let pg = PgError::from_error(&e);
        AttemptError::Failed(pg.to_string(), Some(Box::new(pg)))
    };
    let begun = Instant::now();
    let mut tx = client.transaction().map_err(failed)?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {}",
        run.lock_timeout_ms, run.statement_timeout_ms
    ))
    .map_err(failed)?;
    if let Some(t) = tracer.as_deref_mut() {
        t.scan_baseline(&mut tx).map_err(|e| {
            let pg = PgError::from_error(&e);
            AttemptError::Failed(
                format!("the lock trace's probe before the first statement failed (the tracer, not the migration): {pg}; ROLLBACK"),
                Some(Box::new(pg)),
            )
        })?;
    }
    let mut last = None;
    for (i, stmt) in run.statements.iter().enumerate() {
        let is_last = i + 1 == run.statements.len();
        let result = match tracer.as_deref_mut() {
            None if is_last => crate::target::text_query_tx(&mut tx, &stmt.text).map(Some),
            None => tx.batch_execute(&stmt.text).map(|_| None),
            Some(t) => match t.statement(&mut tx, run.source, stmt, is_last) {
                Ok(rows) => Ok(rows),
                Err(Traced::Statement(e)) => Err(e),
                Err(Traced::Probe(e)) => return Err(probe_error(run.source, stmt, &e)),
            },
        };
        match result {
            Ok(rows) => last = rows,
            Err(err) => return Err(statement_error(run.source, stmt, &err)),
        }
    }
    report.last_row = last.clone();
    let held = check_expectations(run.expect, last.as_ref()).map_err(|why| {
        AttemptError::Failed(
            format!("[migration.expect] does not match the last statement's row: {why}; ROLLBACK"),
            None,
        )
    })?;
    let committing = Instant::now();
    commit(tx, held).map_err(failed)?;
    Ok(Committed {
        begun,
        done: Instant::now(),
        took: committing.elapsed(),
    })
}

/// The lock trace's probe failed inside the transaction (a cancel, a timeout, a lost
/// connection): the attempt rolls back, and the message says it was the tracer.
fn probe_error(source: &SourceFile, stmt: &Statement, err: &postgres::Error) -> AttemptError {
    let location = source.locate(stmt.start).to_string();
    let pg = PgError::from_error(err);
    AttemptError::Failed(
        format!("{location}: the lock trace's probe after this statement failed (the tracer, not the migration): {pg}; ROLLBACK"),
        Some(Box::new(pg)),
    )
}

/// The lock trace could not start: nothing ran.
fn tracer_failed(
    mut report: MigrationReport,
    when: &str,
    err: &postgres::Error,
) -> MigrationReport {
    report.failure = Some(format!(
        "the lock trace's relation map {when} failed (the tracer; the migration did not run): {}",
        pg_message(err)
    ));
    report.error = Some(PgError::from_error(err));
    report
}

/// The error of one statement, located in the migration file (PostgreSQL's error position
/// mapped back to file:line:col).
fn statement_error(source: &SourceFile, stmt: &Statement, err: &postgres::Error) -> AttemptError {
    let mut offset = stmt.start;
    if let Some(postgres::error::ErrorPosition::Original(pos)) =
        err.as_db_error().and_then(|d| d.position())
    {
        let chars = (*pos as usize).saturating_sub(1);
        offset += stmt.text.char_indices().nth(chars).map_or(0, |(b, _)| b);
    }
    let location = source.locate(offset).to_string();
    let pg = PgError::from_error(err).at(location.clone());
    let message = format!("{location}: {pg}");
    if pg.is_lock_timeout() {
        AttemptError::LockTimeout(message, Box::new(pg))
    } else {
        AttemptError::Failed(message, Some(Box::new(pg)))
    }
}

/// Every index left INVALID in the database, `schema.name`.
const INVALID_INDEXES_SQL: &str =
    "SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_index i \
     JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE NOT i.indisvalid ORDER BY 1";

fn invalid_indexes(client: &mut postgres::Client) -> Vec<String> {
    crate::target::text_query(client, INVALID_INDEXES_SQL)
        .map(|rows| {
            rows.rows
                .into_iter()
                .filter_map(|r| r.into_iter().next().flatten())
                .collect()
        })
        .unwrap_or_default()
}

/// `transaction = "none"`: statements one at a time in autocommit; not atomic. Each statement's
/// outcome is recorded; a failure after one committed names what committed and any index it
/// left INVALID. Expectations are checked after the last statement, when nothing can be rolled
/// back any more.
///
/// With [`MigrationRun::trace`], `sampler` (a second session) samples each statement's locks
/// while it runs ([`crate::locktrace`]).
pub fn run_autocommit(
    client: &mut postgres::Client,
    mut sampler: Option<&mut postgres::Client>,
    run: &MigrationRun,
) -> MigrationReport {
    let started = Instant::now();
    let mut report = MigrationReport::new();
    let setup = format!(
        "SET lock_timeout = {}; SET statement_timeout = {}",
        run.lock_timeout_ms, run.statement_timeout_ms
    );
    if let Err(e) = client.batch_execute(&setup) {
        report.failure = Some(pg_message(&e));
        return report;
    }
    let mut tracer = None;
    let mut pid = 0;
    if run.trace {
        let started = Tracer::start(client, true, run.search_path).and_then(|t| {
            let row = client.query_one("SELECT pg_catalog.pg_backend_pid()", &[])?;
            Ok((t, row.get::<_, i32>(0)))
        });
        match started {
            Ok((t, p)) => (tracer, pid) = (Some(t), p),
            Err(e) => return tracer_failed(report, "before the first statement", &e),
        }
    }
    let mut trace_failed = None;
    let invalid_before = invalid_indexes(client);
    let total = run.statements.len();
    for (i, stmt) in run.statements.iter().enumerate() {
        let began = Instant::now();
        let is_last = i + 1 == total;
        let result = match tracer.as_mut() {
            None if is_last => crate::target::text_query(client, &stmt.text).map(Some),
            None => client.batch_execute(&stmt.text).map(|_| None),
            Some(t) => {
                let sampling = sampler.as_deref_mut().map(|s| (s, pid));
                match t.autocommit_statement(client, sampling, run.source, stmt, is_last) {
                    Ok(rows) => Ok(rows),
                    Err(Traced::Statement(e)) => Err(e),
                    Err(Traced::Probe(e)) => {
                        // the statement committed; the trace stops here and the run says so
                        trace_failed = Some((i + 1, PgError::from_error(&e)));
                        tracer = None;
                        Ok(None)
                    }
                }
            }
        };
        let mut outcome = StatementOutcome {
            number: i + 1,
            at: run.source.locate(stmt.start).to_string(),
            text: stmt.text.lines().next().unwrap_or("").to_string(),
            committed: result.is_ok(),
            duration_ms: began.elapsed().as_millis(),
        };
        outcome.text.truncate(200);
        report.statements.push(outcome);
        match result {
            Ok(rows) => {
                report.committed = true;
                if rows.is_some() {
                    report.last_row = rows;
                }
            }
            Err(err) => {
                let (m, pg) = match statement_error(run.source, stmt, &err) {
                    AttemptError::LockTimeout(m, pg) => (m, Some(*pg)),
                    AttemptError::Failed(m, pg) => (m, pg.map(|e| *e)),
                };
                report.error = pg;
                report.failure = Some(partial_failure(&m, i, total));
                break;
            }
        }
    }
    if report.failure.is_some() {
        report.invalid_indexes = invalid_indexes(client)
            .into_iter()
            .filter(|name| !invalid_before.contains(name))
            .collect();
        if let Some(f) = report
            .failure
            .as_mut()
            .filter(|_| !report.invalid_indexes.is_empty())
        {
            f.push_str(&format!(
                "; left INVALID: {} (drop it, e.g. with the rollback)",
                report.invalid_indexes.join(", ")
            ));
        }
    } else if let Err(why) = check_expectations(run.expect, report.last_row.as_ref()) {
        report.failure = Some(format!(
            "[migration.expect] does not match: {why} (all {total} statements already committed: transaction = \"none\")"
        ));
    } else if let Some((number, pg)) = trace_failed {
        report.failure = Some(format!(
            "the lock trace's probe after statement {number} failed (the tracer, not the migration; every statement committed): {pg}"
        ));
    } else if let Some(t) = tracer {
        match t.finish(started, Instant::now(), Duration::ZERO, client) {
            Ok(trace) => report.trace = Some(trace),
            Err(e) => {
                report.failure = Some(format!(
                    "the lock trace after the last statement failed (the tracer, not the migration; every statement committed): {}",
                    pg_message(&e)
                ))
            }
        }
    }
    report.attempts.push(Attempt {
        number: 1,
        outcome: if report.failure.is_none() {
            AttemptOutcome::Committed
        } else if report.committed {
            AttemptOutcome::PartlyCommitted
        } else {
            AttemptOutcome::Failed
        },
        detail: report.failure.clone().unwrap_or_else(|| {
            format!("{total} statement(s), each committed on its own (transaction = \"none\")")
        }),
        duration_ms: started.elapsed().as_millis(),
        blocked_by: Vec::new(),
        retry_in_ms: None,
    });
    report
}

/// What a failed statement of a non-atomic migration means for the target.
fn partial_failure(message: &str, index: usize, total: usize) -> String {
    match index {
        0 => format!("statement 1 of {total} failed, nothing committed: {message}"),
        1 => format!(
            "statement 2 of {total} failed after statement 1 COMMITTED (transaction = \"none\" is not atomic): {message}"
        ),
        n => format!(
            "statement {} of {total} failed after statements 1–{n} COMMITTED (transaction = \"none\" is not atomic): {message}",
            n + 1
        ),
    }
}
