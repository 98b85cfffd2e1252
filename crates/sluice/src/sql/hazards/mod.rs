//! Hazards: what a careful reviewer would flag in a migration (SPEC §5). Each hazard lives in its
//! own file with its tests, and reports plain [`Finding`]s that only the edges turn into text.

mod access_exclusive_lock;
mod blocking_index_build;
mod data_loss;
mod default_hides_backfill;
mod non_transactional;
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
    pub fn no_transaction_home(&self) -> &'static str {
        match self.runner {
            Runner::Package => "a package with transaction = \"none\"",
            Runner::Tool => "a migration of its own that your tool runs without a transaction",
        }
    }

    /// What a lock wait comes to with the lock_timeout in force (> 0).
    pub fn lock_timeout_note(&self) -> String {
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
    pub fn no_lock_timeout(&self) -> &'static str {
        match self.runner {
            Runner::Package => "with lock_timeout_ms = 0",
            Runner::Tool => "with no lock_timeout",
        }
    }

    /// How to get a lock_timeout when there is none.
    pub fn lock_timeout_help(&self) -> &'static str {
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

    /// Tables created earlier in this migration: locks and index builds on them harm nobody.
    pub fn created_before(&self, index: usize) -> BTreeSet<String> {
        self.statements[..index]
            .iter()
            .flat_map(|s| super::operation::derive(&s.node, self.search_path))
            .filter(|op| op.kind == super::OpKind::CreateTable)
            .map(|op| op.object)
            .collect()
    }

    /// The statements that will run.
    pub fn executed(&self) -> impl Iterator<Item = &Statement> {
        self.statements
            .iter()
            .filter(|s| !self.set_aside.contains(&s.index))
    }

    /// The strongest lock on `table` that earlier statements of the same transaction hold when
    /// statement `index` starts, with the first statement that took it. Only `single` mode keeps
    /// locks across statements (until COMMIT); with `none` each statement releases its own.
    pub fn held_before(&self, index: usize, table: &str) -> Option<(LockMode, &Statement)> {
        if self.mode != TransactionMode::Single {
            return None;
        }
        let mut held: Option<(LockMode, &Statement)> = None;
        for stmt in self.executed().take_while(|s| s.index < index) {
            for lock in statement_locks(&stmt.node, self.search_path) {
                if lock.table == table && held.is_none_or(|(mode, _)| mode < lock.mode) {
                    held = Some((lock.mode, stmt));
                }
            }
        }
        held
    }

    /// The locks a statement takes that cost a wait: on tables that existed before the
    /// migration, and stronger than what the transaction already holds on them.
    pub fn new_locks(&self, stmt: &Statement) -> Vec<TableLock> {
        let created = self.created_before(stmt.index);
        statement_locks(&stmt.node, self.search_path)
            .into_iter()
            .filter(|lock| !created.contains(&lock.table))
            .filter(|lock| {
                self.held_before(stmt.index, &lock.table)
                    .is_none_or(|(held, _)| held < lock.mode)
            })
            .collect()
    }
}

/// The tables, columns and schemas a list of operations creates (`create_table`, `add_column`,
/// `create_schema` objects), for [`HazardContext::added_by_migration`].
pub fn added_objects<'o>(ops: impl IntoIterator<Item = &'o super::Operation>) -> BTreeSet<String> {
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
    pub check: fn(&HazardContext) -> Vec<Finding>,
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
];

/// Runs every rule that judges the context's file; findings come out in statement order.
pub fn find_all(ctx: &HazardContext) -> Vec<Finding> {
    let mut findings: Vec<Finding> = RULES
        .iter()
        .filter(|rule| ctx.role == FileRole::Migration || rule.rollback)
        .flat_map(|rule| (rule.check)(ctx))
        .collect();
    findings.sort_by(|a, b| {
        (a.location.line, a.location.column)
            .cmp(&(b.location.line, b.location.column))
            .then(b.severity.cmp(&a.severity))
    });
    findings
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::sql::{parse_file, transaction};

    /// Runs every rule over a SQL text in single mode and returns `(hazard, severity, line)`.
    pub fn findings_for(sql: &str) -> Vec<(&'static str, Severity, usize)> {
        findings_with(sql, TransactionMode::Single, None)
    }

    pub fn findings_with(
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
        let file = parse_file(SourceFile::new("m.sql", sql)).expect("test SQL parses");
        let plan = transaction::plan(&file.statements, mode);
        let set_aside = plan
            .stripped_begin
            .iter()
            .chain(plan.stripped_commit.iter())
            .map(|s| s.index)
            .collect();
        let path = SearchPath::default();
        let ctx = HazardContext {
            source: &file.source,
            role,
            statements: &file.statements,
            set_aside,
            search_path: &path,
            mode,
            lock_timeout_ms: 5000,
            probed_tables: BTreeSet::new(),
            added_by_migration: added_by_migration.clone(),
            target,
            runner: Runner::Package,
        };
        find_all(&ctx)
    }

    pub fn ids(sql: &str) -> Vec<&'static str> {
        findings_for(sql).into_iter().map(|f| f.0).collect()
    }
}
