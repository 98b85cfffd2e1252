//! Hazards: what a careful reviewer would flag in a migration (SPEC §5). Each hazard lives in its
//! own file with its tests, and reports plain [`Finding`]s that only the edges turn into text.

mod access_exclusive_lock;
mod blocking_index_build;
mod data_loss;
mod default_hides_backfill;
mod non_transactional;
mod privilege_change;
mod rename_breaks_clients;
mod scan_under_lock;
mod table_rewrite;
mod transaction_control;
mod trigger_side_effect;
mod unbounded_dml;
mod write_blocking_lock;

use super::locks::{statement_locks, LockMode, TableLock};
use super::names::SearchPath;
use super::transaction::TransactionMode;
use super::Statement;
use crate::source::{Location, SourceFile};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// How serious a finding is. `error` fails lint; `warn` fails it under `--deny warn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warn,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
        })
    }
}

/// One hazard found in one statement.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub hazard: &'static str,
    pub severity: Severity,
    pub location: Location,
    /// The statement's first line.
    pub statement: String,
    pub why: String,
    pub help: Option<String>,
}

/// What the target told us, when lint or review runs with `--target`.
#[derive(Debug, Clone, Default)]
pub struct TargetFacts {
    /// `schema.table` → names of its row-level triggers that fire on UPDATE/INSERT/DELETE.
    pub row_triggers: BTreeMap<String, Vec<String>>,
    /// `schema.table` → names of its row-level security policies.
    pub policies: BTreeMap<String, Vec<String>>,
}

/// Which of the package's files the hazards judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    Migration,
    /// The rollback: undoing the migration is its purpose, so only the rules that still say
    /// something about it run (see [`HazardRule::rollback`]).
    Rollback,
}

/// Who runs the file: advice names what that runner can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// sluice, from a package: it owns the transaction, sets `lock_timeout_ms` and retries.
    Package,
    /// Another migration tool, for a bare file: it does what the file says, nothing more.
    Tool,
}

/// Everything a hazard may look at.
pub struct HazardContext<'a> {
    pub source: &'a SourceFile,
    pub role: FileRole,
    /// Every statement of the file, including a BEGIN/COMMIT that sluice sets aside.
    pub statements: &'a [Statement],
    /// Indices of the statements sluice sets aside (the leading BEGIN, trailing COMMIT).
    pub set_aside: BTreeSet<usize>,
    pub search_path: &'a SearchPath,
    pub mode: TransactionMode,
    pub lock_timeout_ms: u64,
    /// Tables the probes of the package watch.
    pub probed_tables: BTreeSet<String>,
    /// For the rollback: what the migration creates ([`added_objects`]); dropping these loses
    /// only what was written there since the migration.
    pub added_by_migration: BTreeSet<String>,
    pub target: Option<&'a TargetFacts>,
    pub runner: Runner,
}

impl HazardContext<'_> {
    /// Where a statement that cannot run in a transaction block goes.
    pub(crate) fn no_transaction_home(&self) -> &'static str {
        match self.runner {
            Runner::Package => "a package with transaction = \"none\"",
            Runner::Tool => "a migration of its own that your tool runs without a transaction",
        }
    }

    /// What a lock wait comes to with the lock_timeout in force (> 0).
    pub(crate) fn lock_timeout_note(&self) -> String {
        match self.runner {
            Runner::Package => format!(
                "sluice gives up after lock_timeout = {} ms and retries",
                self.lock_timeout_ms
            ),
            Runner::Tool => format!(
                "the file's lock_timeout = {} ms makes the wait give up (the migration fails, retry it)",
                self.lock_timeout_ms
            ),
        }
    }

    /// How a missing lock_timeout is said.
    pub(crate) fn no_lock_timeout(&self) -> &'static str {
        match self.runner {
            Runner::Package => "with lock_timeout_ms = 0",
            Runner::Tool => "with no lock_timeout",
        }
    }

    /// How to get a lock_timeout when there is none.
    pub(crate) fn lock_timeout_help(&self) -> &'static str {
        match self.runner {
            Runner::Package => "set [migration].lock_timeout_ms (the default is 5000)",
            Runner::Tool => "SET lock_timeout at the top of the file (e.g. SET lock_timeout = '5s'), and retry the migration when it times out",
        }
    }

    /// A finding located at a statement.
    pub fn finding(
        &self,
        hazard: &'static str,
        severity: Severity,
        stmt: &Statement,
        why: impl Into<String>,
        help: Option<&str>,
    ) -> Finding {
        Finding {
            hazard,
            severity,
            location: self.source.locate(stmt.start),
            statement: stmt.headline(),
            why: why.into(),
            help: help.map(str::to_string),
        }
    }

    /// The statements that will run.
    pub(crate) fn executed(&self) -> impl Iterator<Item = &Statement> {
        self.statements
            .iter()
            .filter(|s| !self.set_aside.contains(&s.index))
    }
}

/// What a rule judges with: the [`HazardContext`], and the facts about the whole file that
/// several rules ask for statement by statement, gathered once in one pass over the file (the
/// tables each statement creates, the locks it takes). Asking them of every earlier statement
/// each time made linting quadratic in the number of statements (issue #18).
pub struct Judge<'c, 'a> {
    ctx: &'c HazardContext<'a>,
    /// `schema.table` → the position of the first statement that creates it.
    created_at: BTreeMap<String, usize>,
    /// The locks each statement takes ([`statement_locks`]), by position.
    locks: Vec<Vec<TableLock>>,
    /// In `single` mode, `schema.table` → each time an executed statement takes a lock on it
    /// stronger than any taken before: `(mode, position)`, in statement order (so the modes rise).
    strongest: BTreeMap<String, Vec<(LockMode, usize)>>,
}

impl<'a> std::ops::Deref for Judge<'_, 'a> {
    type Target = HazardContext<'a>;

    fn deref(&self) -> &HazardContext<'a> {
        self.ctx
    }
}

impl<'c, 'a> Judge<'c, 'a> {
    /// Gathers the file's facts in one pass.
    pub fn new(ctx: &'c HazardContext<'a>) -> Self {
        let mut created_at = BTreeMap::new();
        let mut locks = Vec::with_capacity(ctx.statements.len());
        let mut strongest: BTreeMap<String, Vec<(LockMode, usize)>> = BTreeMap::new();
        for (pos, stmt) in ctx.statements.iter().enumerate() {
            for op in super::operation::derive(&stmt.node, ctx.search_path) {
                if op.kind == super::OpKind::CreateTable {
                    created_at.entry(op.object).or_insert(pos);
                }
            }
            let taken = statement_locks(&stmt.node, ctx.search_path);
            if ctx.mode == TransactionMode::Single && !ctx.set_aside.contains(&stmt.index) {
                for lock in &taken {
                    let steps = strongest.entry(lock.table.clone()).or_default();
                    if steps.last().is_none_or(|&(mode, _)| mode < lock.mode) {
                        steps.push((lock.mode, pos));
                    }
                }
            }
            locks.push(taken);
        }
        Judge {
            ctx,
            created_at,
            locks,
            strongest,
        }
    }

    /// Whether a statement before position `index` creates `table`: locks and index builds on
    /// a table created earlier in this migration harm nobody.
    pub(crate) fn created_before(&self, index: usize, table: &str) -> bool {
        self.created_at.get(table).is_some_and(|&at| at < index)
    }

    /// The strongest lock on `table` that earlier statements of the same transaction hold when
    /// statement `index` starts, with the first statement that took it. Only `single` mode keeps
    /// locks across statements (until COMMIT); with `none` each statement releases its own.
    pub(crate) fn held_before(
        &self,
        index: usize,
        table: &str,
    ) -> Option<(LockMode, &'a Statement)> {
        let steps = self.strongest.get(table)?;
        let before = steps.partition_point(|&(_, pos)| pos < index);
        let (mode, pos) = *steps[..before].last()?;
        Some((mode, &self.ctx.statements[pos]))
    }

    /// The locks a statement takes that cost a wait: on tables that existed before the
    /// migration, and stronger than what the transaction already holds on them.
    pub(crate) fn new_locks(&self, stmt: &Statement) -> Vec<TableLock> {
        self.locks[stmt.index]
            .iter()
            .filter(|lock| !self.created_before(stmt.index, &lock.table))
            .filter(|lock| {
                self.held_before(stmt.index, &lock.table)
                    .is_none_or(|(held, _)| held < lock.mode)
            })
            .cloned()
            .collect()
    }
}

/// The tables, columns and schemas a list of operations creates (`create_table`, `add_column`,
/// `create_schema` objects), for [`HazardContext::added_by_migration`].
pub(crate) fn added_objects<'o>(
    ops: impl IntoIterator<Item = &'o super::Operation>,
) -> BTreeSet<String> {
    use super::OpKind::{AddColumn, CreateSchema, CreateTable};
    ops.into_iter()
        .filter(|op| matches!(op.kind, CreateTable | AddColumn | CreateSchema))
        .map(|op| op.object.clone())
        .collect()
}

/// A hazard's id, what it is about, and the function that finds it.
pub struct HazardRule {
    pub id: &'static str,
    pub summary: &'static str,
    /// What the hazard costs and the usual way around it, for reports that describe each rule
    /// once (SARIF's rule metadata); a finding's own help fits its statement.
    pub help: &'static str,
    /// Whether the rule also judges the rollback file.
    pub rollback: bool,
    pub check: fn(&Judge) -> Vec<Finding>,
}

/// Every hazard sluice knows, in the order their findings are listed.
pub const RULES: &[HazardRule] = &[
    transaction_control::RULE,
    non_transactional::RULE,
    default_hides_backfill::RULE,
    data_loss::RULE,
    table_rewrite::RULE,
    scan_under_lock::RULE,
    blocking_index_build::RULE,
    unbounded_dml::RULE,
    rename_breaks_clients::RULE,
    access_exclusive_lock::RULE,
    write_blocking_lock::RULE,
    trigger_side_effect::RULE,
    privilege_change::RULE,
];

/// Runs every rule that judges the context's file; findings come out in statement order.
pub fn find_all(ctx: &HazardContext) -> Vec<Finding> {
    let judge = Judge::new(ctx);
    let mut findings: Vec<Finding> = RULES
        .iter()
        .filter(|rule| ctx.role == FileRole::Migration || rule.rollback)
        .flat_map(|rule| (rule.check)(&judge))
        .collect();
    findings.sort_by(|a, b| {
        (a.location.line, a.location.column)
            .cmp(&(b.location.line, b.location.column))
            .then(b.severity.cmp(&a.severity))
    });
    findings
}

/// A SQL text judged as a package's file: the package's defaults (search path `public`,
/// `lock_timeout_ms = 5000`, no probes), as the hazards' tests and the CLI's snapshots of them
/// judge their cases.
pub struct SqlText<'a> {
    pub path: &'a str,
    pub sql: &'a str,
    pub role: FileRole,
    pub mode: TransactionMode,
    pub added_by_migration: &'a BTreeSet<String>,
    pub target: Option<&'a TargetFacts>,
}

/// The findings of every rule over `text`.
pub fn findings_of_text(text: &SqlText<'_>) -> Result<Vec<Finding>, crate::sql::SqlError> {
    let file = crate::sql::parse_file(SourceFile::new(text.path, text.sql))?;
    let plan = crate::sql::transaction::plan(&file.statements, text.mode);
    let path = SearchPath::default();
    let ctx = HazardContext {
        source: &file.source,
        role: text.role,
        statements: &file.statements,
        set_aside: plan.set_aside(),
        search_path: &path,
        mode: text.mode,
        lock_timeout_ms: 5000,
        probed_tables: BTreeSet::new(),
        added_by_migration: text.added_by_migration.clone(),
        target: text.target,
        runner: Runner::Package,
    };
    Ok(find_all(&ctx))
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// Runs every rule over a SQL text in single mode and returns `(hazard, severity, line)`.
    pub(crate) fn findings_for(sql: &str) -> Vec<(&'static str, Severity, usize)> {
        findings_with(sql, TransactionMode::Single, None)
    }

    pub(crate) fn findings_with(
        sql: &str,
        mode: TransactionMode,
        target: Option<&TargetFacts>,
    ) -> Vec<(&'static str, Severity, usize)> {
        judge(sql, FileRole::Migration, mode, target, &BTreeSet::new())
            .into_iter()
            .map(|f| (f.hazard, f.severity, f.location.line))
            .collect()
    }

    /// The whole findings of a migration, to read their why and help.
    pub fn full(sql: &str, mode: TransactionMode) -> Vec<Finding> {
        judge(sql, FileRole::Migration, mode, None, &BTreeSet::new())
    }

    /// The findings of a rollback file, for a migration that creates `added`.
    pub fn rollback(sql: &str, added: &[&str]) -> Vec<Finding> {
        let added = added.iter().map(|a| a.to_string()).collect();
        judge(
            sql,
            FileRole::Rollback,
            TransactionMode::Single,
            None,
            &added,
        )
    }

    /// Runs the rules of a file role over a SQL text.
    pub fn judge(
        sql: &str,
        role: FileRole,
        mode: TransactionMode,
        target: Option<&TargetFacts>,
        added_by_migration: &BTreeSet<String>,
    ) -> Vec<Finding> {
        let text = SqlText {
            path: "m.sql",
            sql,
            role,
            mode,
            added_by_migration,
            target,
        };
        findings_of_text(&text).expect("test SQL parses")
    }

    pub fn ids(sql: &str) -> Vec<&'static str> {
        findings_for(sql).into_iter().map(|f| f.0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::full;
    use super::*;

    /// A migration of `rounds` rounds of six statements, one per line, on a table `public.t`
    /// that exists before it: ADD COLUMN, CREATE INDEX, UPDATE … WHERE, CREATE TABLE, an ALTER
    /// of the table just created, and SET NOT NULL (a scan under the lock the first ADD COLUMN
    /// took).
    fn mixed(rounds: usize) -> String {
        (0..rounds)
            .map(|r| {
                format!(
                    "ALTER TABLE public.t ADD COLUMN c{r} int;\n\
                     CREATE INDEX i{r} ON public.t (c{r});\n\
                     UPDATE public.t SET c{r} = id WHERE id > {r};\n\
                     CREATE TABLE public.n{r} (id int);\n\
                     ALTER TABLE public.n{r} ADD COLUMN x int;\n\
                     ALTER TABLE public.t ALTER COLUMN c{r} SET NOT NULL;\n"
                )
            })
            .collect()
    }

    /// What [`mixed`] must yield, `(hazard, severity, line, why)`, worked out statement by
    /// statement: the tables created in the migration never count, and in `single` mode the
    /// ACCESS EXCLUSIVE lock the first ADD COLUMN takes is held until COMMIT.
    fn expected(
        rounds: usize,
        mode: TransactionMode,
    ) -> Vec<(&'static str, Severity, usize, String)> {
        let mut out = Vec::new();
        for r in 0..rounds {
            let line = 6 * r + 1;
            let single = mode == TransactionMode::Single;
            if r == 0 || !single {
                out.push((
                    "access-exclusive-lock",
                    Severity::Info,
                    line,
                    "takes ACCESS EXCLUSIVE on public.t until COMMIT; sluice gives up after lock_timeout = 5000 ms and retries".to_string(),
                ));
            }
            out.push((
                "blocking-index-build",
                Severity::Warn,
                line + 1,
                "building this index takes a SHARE lock on public.t: every INSERT, UPDATE and DELETE waits for the whole build".to_string(),
            ));
            let held = if single {
                " (held by this transaction since line 1)"
            } else {
                ""
            };
            out.push((
                "scan-under-lock",
                Severity::Warn,
                line + 5,
                format!("SET NOT NULL on c{r} scans every row of public.t under ACCESS EXCLUSIVE{held}: reads and writes wait"),
            ));
            // a warning comes before a note on the same line
            if !single {
                out.push((
                    "access-exclusive-lock",
                    Severity::Info,
                    line + 5,
                    "takes ACCESS EXCLUSIVE on public.t until COMMIT; sluice gives up after lock_timeout = 5000 ms and retries".to_string(),
                ));
            }
        }
        out
    }

    fn found(sql: &str, mode: TransactionMode) -> Vec<(&'static str, Severity, usize, String)> {
        full(sql, mode)
            .into_iter()
            .map(|f| (f.hazard, f.severity, f.location.line, f.why))
            .collect()
    }

    #[test]
    fn a_mixed_migration_yields_the_findings_worked_out_by_hand() {
        for mode in [TransactionMode::Single, TransactionMode::None] {
            for rounds in [1, 3, 300] {
                assert_eq!(
                    found(&mixed(rounds), mode),
                    expected(rounds, mode),
                    "{rounds} rounds, {mode:?}"
                );
            }
        }
    }

    /// At the scale of the `lint-20k` benchmark (20,004 statements) the one-pass facts still
    /// give every finding worked out by hand; how long it takes is the benchmark's to measure.
    #[test]
    fn twenty_thousand_statements_give_the_same_findings() {
        let findings = found(&mixed(3334), TransactionMode::Single);
        assert_eq!(findings.len(), 1 + 2 * 3334);
        assert_eq!(findings, expected(3334, TransactionMode::Single));
    }
}
