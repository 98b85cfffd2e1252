//! The lint report of a package: the migration parsed with PostgreSQL's parser, the operations
//! it performs, the scope proof, and the hazards; the rollback parsed and held to the same
//! transaction rules, and told what data it destroys. This is what `sluice lint` prints and what the scope gate decides on.
//!
//! Bare SQL files (any migration tool's, no package) are linted too ([`lint_bare_file`]):
//! operations and hazards, but no scope proof, since nothing declares one. Every rule a report
//! can cite, hazards and lint's own checks alike, is listed once by [`rules`].

use crate::package::{Package, PinnedFile};
use crate::source::{Location, SourceFile};
use crate::sql::hazards::{self, FileRole, Finding, HazardContext, Severity, TargetFacts};
use crate::sql::names::SearchPath;
use crate::sql::transaction::{self, ExecutionPlan, TransactionMode};
use crate::sql::{self, operation, scope, Operation, SqlError, SqlFile};
use serde::Serialize;
use std::collections::BTreeSet;

/// An operation and the statement it comes from.
#[derive(Debug, Clone, Serialize)]
pub struct DerivedOperation {
    pub operation: Operation,
    pub location: Location,
    pub statement: String,
}

/// The scope proof, when the package declares `[scope]`.
#[derive(Debug, Clone, Serialize)]
pub struct ScopeResult {
    pub declared: Vec<Operation>,
    /// Positions in the migration's operation list that no declaration covers.
    pub out_of_scope_positions: Vec<usize>,
    pub out_of_scope: Vec<DerivedOperation>,
    pub missing: Vec<(Operation, Location)>,
}

impl ScopeResult {
    pub fn holds(&self) -> bool {
        self.out_of_scope.is_empty() && self.missing.is_empty()
    }
}

/// Lint of one SQL file.
#[derive(Debug, Clone, Serialize)]
pub struct FileLint {
    pub file: std::path::PathBuf,
    pub operations: Vec<DerivedOperation>,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LintReport {
    pub migration: FileLint,
    pub scope: Option<ScopeResult>,
    pub rollback: Option<FileLint>,
    /// The statement whose row `[migration.expect]` checks.
    pub last_statement: Option<String>,
}

impl LintReport {
    /// Every finding, migration first.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.migration
            .findings
            .iter()
            .chain(self.rollback.iter().flat_map(|r| r.findings.iter()))
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.findings().filter(|f| f.severity == severity).count()
    }

    /// Whether lint passes: the scope holds and no finding is at or above the denied severity.
    pub fn passes(&self, deny: Severity) -> bool {
        self.scope.as_ref().is_none_or(ScopeResult::holds)
            && self.findings().all(|f| f.severity < deny)
    }
}

/// The migration parsed and planned: what the pipeline runs.
#[derive(Debug, Clone)]
pub struct ParsedMigration {
    pub file: SqlFile,
    pub plan: ExecutionPlan,
}

/// Parses the package's migration and sets aside its BEGIN/COMMIT.
pub(crate) fn parse_migration(pkg: &Package) -> Result<ParsedMigration, SqlError> {
    let file = sql::parse_file(pkg.migration_source())?;
    let plan = transaction::plan(&file.statements, pkg.migration.transaction);
    Ok(ParsedMigration { file, plan })
}

/// Lints a package. `facts` come from the target when lint runs with `--target`.
pub fn lint(pkg: &Package, facts: Option<&TargetFacts>) -> Result<LintReport, SqlError> {
    lint_parsed(pkg, &parse_migration(pkg)?, facts)
}

/// [`lint`] of a migration already parsed ([`parse_migration`]).
pub(crate) fn lint_parsed(
    pkg: &Package,
    parsed: &ParsedMigration,
    facts: Option<&TargetFacts>,
) -> Result<LintReport, SqlError> {
    let mut migration = lint_file(pkg, parsed, facts, FileRole::Migration, BTreeSet::new());
    migration.findings.extend(expectation_finding(pkg, parsed));
    migration
        .findings
        .extend(pin_finding(pkg, &pkg.migration.file));
    let scope = pkg.scope.as_ref().map(|declared| {
        let declared_ops: Vec<Operation> = declared.iter().map(|s| s.value.clone()).collect();
        let derived: Vec<Operation> = migration
            .operations
            .iter()
            .map(|d| d.operation.clone())
            .collect();
        let cmp = scope::compare(&derived, &declared_ops);
        ScopeResult {
            out_of_scope_positions: cmp.out_of_scope.clone(),
            out_of_scope: cmp
                .out_of_scope
                .iter()
                .map(|&i| migration.operations[i].clone())
                .collect(),
            missing: cmp
                .missing
                .iter()
                .map(|&i| (declared_ops[i].clone(), pkg.locate(&declared[i].span)))
                .collect(),
            declared: declared_ops,
        }
    });
    let rollback = match pkg.rollback_source() {
        Some(source) => {
            let file = sql::parse_file(source)?;
            let plan = transaction::plan(&file.statements, pkg.migration.transaction);
            let parsed = ParsedMigration { file, plan };
            let added = hazards::added_objects(migration.operations.iter().map(|d| &d.operation));
            let mut lint = lint_file(pkg, &parsed, None, FileRole::Rollback, added);
            lint.findings
                .extend(pkg.rollback.as_ref().and_then(|r| pin_finding(pkg, r)));
            Some(lint)
        }
        None => None,
    };
    Ok(LintReport {
        last_statement: parsed.plan.statements.last().map(|s| s.headline()),
        migration,
        scope,
        rollback,
    })
}

/// Operations and hazards of one file. The rollback is judged by the rules that apply to it
/// (the transaction rules and `data-loss`): dropping what the migration added is its purpose,
/// but what was written there since is lost all the same.
fn lint_file(
    pkg: &Package,
    parsed: &ParsedMigration,
    facts: Option<&TargetFacts>,
    role: FileRole,
    added_by_migration: BTreeSet<String>,
) -> FileLint {
    let path = &pkg.target.search_path;
    let operations = parsed
        .plan
        .statements
        .iter()
        .flat_map(|stmt| {
            operation::derive(&stmt.node, path)
                .into_iter()
                .map(|op| DerivedOperation {
                    operation: op,
                    location: parsed.file.source.locate(stmt.start),
                    statement: stmt.headline(),
                })
        })
        .collect();
    let set_aside = parsed.plan.set_aside();
    let ctx = HazardContext {
        source: &parsed.file.source,
        role,
        statements: &parsed.file.statements,
        set_aside,
        search_path: path,
        mode: pkg.migration.transaction,
        lock_timeout_ms: pkg.migration.lock_timeout_ms,
        probed_tables: pkg.probes.iter().map(|p| p.table.clone()).collect(),
        added_by_migration,
        target: facts,
        runner: hazards::Runner::Package,
    };
    let findings = hazards::find_all(&ctx);
    FileLint {
        file: parsed.file.source.path.clone(),
        operations,
        findings,
    }
}

/// `[migration.expect]` needs a last statement that returns a row.
fn expectation_finding(pkg: &Package, parsed: &ParsedMigration) -> Option<Finding> {
    pkg.migration.expect.as_ref()?;
    let last = parsed.plan.statements.last()?;
    let returns_rows = matches!(last.node, pg_query::NodeEnum::SelectStmt(_))
        || matches!(&last.node, pg_query::NodeEnum::UpdateStmt(u) if u.returning_clause.is_some())
        || matches!(&last.node, pg_query::NodeEnum::InsertStmt(i) if i.returning_clause.is_some())
        || matches!(&last.node, pg_query::NodeEnum::DeleteStmt(d) if d.returning_clause.is_some());
    (!returns_rows).then(|| Finding {
        hazard: MIGRATION_EXPECT.id,
        severity: Severity::Error,
        location: parsed.file.source.locate(last.start),
        statement: last.headline(),
        why: "[migration.expect] checks the row of the migration's last statement, but this statement returns no rows".into(),
        help: Some("end the migration with a SELECT that returns the one row to check".into()),
    })
}

/// A file whose bytes no longer hash to the sha256 the manifest pins: the `sql-integrity` gate
/// would refuse the package, so lint says so first, at the pin.
fn pin_finding(pkg: &Package, file: &PinnedFile) -> Option<Finding> {
    let actual = crate::digest::sha256_hex(&file.bytes);
    (actual != file.sha256).then(|| Finding {
        hazard: SQL_INTEGRITY.id,
        severity: Severity::Error,
        location: pkg.locate(&file.sha256_span),
        statement: pkg.manifest.line_text(file.sha256_span.start).trim().to_string(),
        why: format!(
            "{} has sha256 {actual}, but sluice.toml pins {}: the file changed after it was pinned, and apply's sql-integrity gate refuses it",
            file.rel.display(),
            file.sha256
        ),
        help: Some(format!(
            "review the change, then `sluice pin {}` writes the new sha256 (or restore the file)",
            pkg.display_dir.display()
        )),
    })
}

/// A rule as reports describe it once (SARIF's rule metadata): its id, what it is about, and
/// the usual way around it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RuleDoc {
    pub id: &'static str,
    pub summary: &'static str,
    pub help: &'static str,
}

/// A package file whose bytes differ from the sha256 `sluice.toml` pins.
pub const SQL_INTEGRITY: RuleDoc = RuleDoc {
    id: "sql-integrity",
    summary: "a file of the package no longer hashes to the sha256 that sluice.toml pins",
    help: "Review the change, then `sluice pin PKG` writes the new sha256 (or restore the file): apply's sql-integrity gate refuses a package whose files changed after they were pinned.",
};

/// `[migration.expect]` on a migration whose last statement returns no row.
pub const MIGRATION_EXPECT: RuleDoc = RuleDoc {
    id: "migration-expect",
    summary: "[migration.expect] needs a last statement that returns one row",
    help: "End the migration with a SELECT (or a statement with RETURNING) whose one row [migration.expect] checks before COMMIT.",
};

/// An operation of the SQL that `[scope]` does not declare, or one it declares that the SQL
/// does not perform.
pub const SCOPE: RuleDoc = RuleDoc {
    id: "scope",
    summary: "the operations derived from the SQL differ from [scope].operations",
    help: "Every operation the migration performs must be declared in [scope].operations, and every declared one performed: `sluice lint PKG` prints the derived operations in the notation to paste.",
};

/// A file PostgreSQL's parser refuses.
pub const SYNTAX_ERROR: RuleDoc = RuleDoc {
    id: "syntax-error",
    summary: "PostgreSQL's parser cannot parse the file",
    help: "The file is not valid PostgreSQL SQL at the position shown: PostgreSQL would refuse it the same way, so nothing else in the file can be judged.",
};

/// A psql meta-command in a file that is not run by psql.
pub const META_COMMAND: RuleDoc = RuleDoc {
    id: "psql-meta-command",
    summary: "a psql meta-command (\\set, \\i, …) in a file of SQL statements",
    help: "Meta-commands are psql's, not PostgreSQL's: a runner that sends the statements itself (sluice, or most migration tools) cannot run them. Remove it, or write its effect in SQL.",
};

/// Every rule a lint report can cite: the hazards, in their order, then lint's own checks.
pub fn rules() -> Vec<RuleDoc> {
    hazards::RULES
        .iter()
        .map(|rule| RuleDoc {
            id: rule.id,
            summary: rule.summary,
            help: rule.help,
        })
        .chain([
            SQL_INTEGRITY,
            MIGRATION_EXPECT,
            SCOPE,
            SYNTAX_ERROR,
            META_COMMAND,
        ])
        .collect()
}

/// A file that cannot be parsed, as a finding at the parser's position, for reports that
/// list everything as findings (SARIF, GitHub annotations).
pub fn error_finding(err: &SqlError) -> Finding {
    let (rule, statement) = match err {
        SqlError::Syntax { .. } => (SYNTAX_ERROR, String::new()),
        SqlError::MetaCommand { command, .. } => (META_COMMAND, command.clone()),
    };
    let why = match err {
        SqlError::Syntax { message, .. } => format!("syntax error: {message}"),
        SqlError::MetaCommand { command, .. } => {
            format!("psql meta-command `{command}` is not SQL")
        }
    };
    Finding {
        hazard: rule.id,
        severity: Severity::Error,
        location: err.location().clone(),
        statement,
        why,
        help: Some(rule.help.to_string()),
    }
}

impl LintReport {
    /// The scope proof's failures as findings (errors), for reports that list everything as
    /// findings: each operation out of scope at its statement, each missing one at its
    /// declaration in `sluice.toml`.
    pub fn scope_findings(&self) -> Vec<Finding> {
        let Some(scope) = &self.scope else {
            return Vec::new();
        };
        let out = scope.out_of_scope.iter().map(|d| Finding {
            hazard: SCOPE.id,
            severity: Severity::Error,
            location: d.location.clone(),
            statement: d.statement.clone(),
            why: format!(
                "out of scope: `{}` is performed here but not declared in [scope].operations",
                d.operation
            ),
            help: Some(format!(
                "declare \"{}\" in [scope].operations, or remove the statement",
                d.operation
            )),
        });
        let missing = scope.missing.iter().map(|(op, location)| Finding {
            hazard: SCOPE.id,
            severity: Severity::Error,
            location: location.clone(),
            statement: op.to_string(),
            why: format!(
                "missing: `{op}` is declared in [scope].operations but the SQL does not perform it"
            ),
            help: Some("remove the declaration, or add the statement it declares".into()),
        });
        out.chain(missing).collect()
    }
}

/// How bare files are linted (`sluice lint FILE.sql…`).
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// How the migration tool runs each file. `Single`: in one transaction of its own (Flyway,
    /// Rails, Django, dbmate, … and sluice), or the file opens one itself. `None`: the tool
    /// sends the statements as they are, in autocommit (golang-migrate, `psql -f`), so a file
    /// that opens with BEGIN and closes with COMMIT still runs as one transaction, and any
    /// other file statement by statement.
    pub runner: TransactionMode,
    /// How unqualified names resolve (default `public`).
    pub search_path: SearchPath,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            runner: TransactionMode::Single,
            search_path: SearchPath::default(),
        }
    }
}

/// The lint of a bare file: its operations and hazards. No scope is proven: a bare file
/// declares none.
#[derive(Debug, Clone, Serialize)]
pub struct BareFileLint {
    #[serde(flatten)]
    pub lint: FileLint,
    /// How the file was judged to run ([`FileOptions::runner`] and the file's own BEGIN/COMMIT).
    pub transaction: TransactionMode,
    /// The `lock_timeout` the file sets itself (`SET [LOCAL] lock_timeout`), in ms; 0 when it
    /// sets none (PostgreSQL's default: wait for ever).
    pub lock_timeout_ms: u64,
}

/// Reads a bare SQL file (or stdin) shown as `name`: at most [`MAX_FILE_BYTES`] (a package's
/// limit too), and UTF-8, or the error names the first invalid byte's line and column.
///
/// [`MAX_FILE_BYTES`]: crate::package::MAX_FILE_BYTES
pub fn read_source(
    name: &std::path::Path,
    reader: impl std::io::Read,
) -> Result<SourceFile, String> {
    use std::io::Read;
    let limit = crate::package::MAX_FILE_BYTES;
    let mut bytes = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", name.display()))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "{}: more than {limit} bytes: the limit is {limit}",
            name.display()
        ));
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(SourceFile::new(name, text)),
        Err(e) => Err(crate::package::not_utf8(name, e.as_bytes()).to_string()),
    }
}

/// How a file runs under a runner: a `None` runner still runs a file wrapped in its own
/// BEGIN … COMMIT as one transaction.
pub(crate) fn judged_mode(
    statements: &[sql::Statement],
    runner: TransactionMode,
) -> TransactionMode {
    match runner {
        TransactionMode::Single => TransactionMode::Single,
        TransactionMode::None => {
            let plan = transaction::plan(statements, TransactionMode::Single);
            if plan.stripped_begin.is_some() && plan.stripped_commit.is_some() {
                TransactionMode::Single
            } else {
                TransactionMode::None
            }
        }
    }
}

/// Lints one SQL file outside any package. `facts` come from the target with `--target`.
pub fn lint_bare_file(
    source: SourceFile,
    options: &FileOptions,
    facts: Option<&TargetFacts>,
) -> Result<BareFileLint, SqlError> {
    let file = sql::parse_file(source)?;
    let mode = judged_mode(&file.statements, options.runner);
    let plan = transaction::plan(&file.statements, mode);
    let lock_timeout_ms = file_lock_timeout_ms(&plan.statements);
    let path = &options.search_path;
    let operations = plan
        .statements
        .iter()
        .flat_map(|stmt| {
            operation::derive(&stmt.node, path)
                .into_iter()
                .map(|op| DerivedOperation {
                    operation: op,
                    location: file.source.locate(stmt.start),
                    statement: stmt.headline(),
                })
        })
        .collect();
    let set_aside = plan.set_aside();
    let ctx = HazardContext {
        source: &file.source,
        role: FileRole::Migration,
        statements: &file.statements,
        set_aside,
        search_path: path,
        mode,
        lock_timeout_ms,
        probed_tables: BTreeSet::new(),
        added_by_migration: BTreeSet::new(),
        target: facts,
        runner: hazards::Runner::Tool,
    };
    let findings = hazards::find_all(&ctx);
    Ok(BareFileLint {
        lint: FileLint {
            file: file.source.path.clone(),
            operations,
            findings,
        },
        transaction: mode,
        lock_timeout_ms,
    })
}

/// The `lock_timeout` a file sets for itself, in ms: the first `SET [LOCAL] lock_timeout`
/// among its statements (a file sets it at its top, before what it guards); 0 when none.
fn file_lock_timeout_ms(statements: &[sql::Statement]) -> u64 {
    use pg_query::protobuf::a_const::Val;
    statements
        .iter()
        .find_map(|stmt| match &stmt.node {
            pg_query::NodeEnum::VariableSetStmt(set) if set.name == "lock_timeout" => {
                let value = match set.args.first().and_then(|a| a.node.as_ref()) {
                    Some(pg_query::NodeEnum::AConst(c)) => match &c.val {
                        Some(Val::Ival(i)) => i.ival.to_string(),
                        Some(Val::Sval(s)) => s.sval.clone(),
                        _ => String::new(),
                    },
                    // SET lock_timeout TO DEFAULT, RESET
                    _ => String::new(),
                };
                Some(duration_ms(&value).unwrap_or(0))
            }
            _ => None,
        })
        .unwrap_or(0)
}

/// A PostgreSQL duration setting in ms (`5000`, `'5s'`, `'1min'`, `'500 ms'`): a bare
/// number is in ms, as lock_timeout's unit is.
fn duration_ms(value: &str) -> Option<u64> {
    let value = value.trim();
    let digits = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let number: u64 = value[..digits].parse().ok()?;
    let factor = match value[digits..].trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

#[cfg(test)]
mod bare_file_tests {
    use super::*;

    fn lint_text(sql: &str, runner: TransactionMode) -> BareFileLint {
        let options = FileOptions {
            runner,
            ..FileOptions::default()
        };
        lint_bare_file(SourceFile::new("m.sql", sql), &options, None).unwrap()
    }

    fn hazards(lint: &BareFileLint) -> Vec<&'static str> {
        lint.lint.findings.iter().map(|f| f.hazard).collect()
    }

    #[test]
    fn a_runner_without_transaction_still_runs_a_wrapped_file_as_one() {
        let wrapped = "BEGIN;\nCREATE INDEX CONCURRENTLY ix ON t (a);\nCOMMIT;\n";
        let bare = "CREATE INDEX CONCURRENTLY ix ON t (a);\n";
        // the tool wraps every file: CONCURRENTLY cannot run
        let single = lint_text(bare, TransactionMode::Single);
        assert_eq!(single.transaction, TransactionMode::Single);
        assert!(single
            .lint
            .findings
            .iter()
            .any(|f| f.hazard == "non-transactional" && f.severity == Severity::Error));
        // the tool sends the file as it is: the file's own BEGIN … COMMIT decides
        let none = lint_text(bare, TransactionMode::None);
        assert_eq!(none.transaction, TransactionMode::None);
        assert!(!none
            .lint
            .findings
            .iter()
            .any(|f| f.severity == Severity::Error));
        let own = lint_text(wrapped, TransactionMode::None);
        assert_eq!(own.transaction, TransactionMode::Single);
        assert!(own
            .lint
            .findings
            .iter()
            .any(|f| f.hazard == "non-transactional" && f.severity == Severity::Error));
    }

    #[test]
    fn operations_and_hazards_without_a_package() {
        let lint = lint_text(
            "ALTER TABLE t ADD COLUMN c int;\nUPDATE t SET c = 1;\n",
            TransactionMode::Single,
        );
        let ops: Vec<String> = lint
            .lint
            .operations
            .iter()
            .map(|d| d.operation.to_string())
            .collect();
        assert_eq!(ops, ["add_column public.t.c", "update public.t"]);
        assert!(
            hazards(&lint).contains(&"unbounded-dml"),
            "{:?}",
            hazards(&lint)
        );
        assert_eq!(
            lint.lint.findings[0].location.file,
            std::path::PathBuf::from("m.sql")
        );
    }

    #[test]
    fn the_files_own_lock_timeout_is_read() {
        let sql = "SET lock_timeout = '2s';\nALTER TABLE t ADD COLUMN c int;\n";
        let lint = lint_text(sql, TransactionMode::Single);
        assert_eq!(lint.lock_timeout_ms, 2000);
        let lock = lint
            .lint
            .findings
            .iter()
            .find(|f| f.hazard == "access-exclusive-lock")
            .unwrap();
        assert_eq!(lock.severity, Severity::Info);
        // without it, PostgreSQL waits for ever: the lock queue is a warning
        let lint = lint_text("ALTER TABLE t ADD COLUMN c int;\n", TransactionMode::Single);
        assert_eq!(lint.lock_timeout_ms, 0);
        let lock = lint
            .lint
            .findings
            .iter()
            .find(|f| f.hazard == "access-exclusive-lock")
            .unwrap();
        assert_eq!(lock.severity, Severity::Warn);
        assert_eq!(duration_ms("1min"), Some(60_000));
        assert_eq!(duration_ms("500 ms"), Some(500));
        assert_eq!(duration_ms("3000"), Some(3000));
        assert_eq!(duration_ms("soon"), None);
    }

    #[test]
    fn a_file_that_is_not_utf8_is_refused_at_its_first_invalid_byte() {
        let name = std::path::Path::new("m.sql");
        let err = read_source(name, &b"SELECT 1;\n-- caf\xe9\n"[..]).unwrap_err();
        assert!(
            err.starts_with("m.sql:2:7: the file is not valid UTF-8"),
            "{err}"
        );
        assert_eq!(
            read_source(name, &b"SELECT 1;"[..]).unwrap().text,
            "SELECT 1;"
        );
    }

    #[test]
    fn every_rule_a_report_cites_is_listed_once() {
        let rules = rules();
        let mut ids: Vec<&str> = rules.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), rules.len());
        assert!(rules
            .iter()
            .all(|r| !r.summary.is_empty() && !r.help.is_empty()));
        let err = sql::parse_file(SourceFile::new("m.sql", "SELEC 1;")).unwrap_err();
        assert!(ids.contains(&error_finding(&err).hazard));
    }
}
