//! The lint report of a package: the migration parsed with PostgreSQL's parser, the operations
//! it performs, the scope proof, and the hazards; the rollback parsed and held to the same
//! transaction rules, and told what data it destroys. This is what `sluice lint` prints and what the scope gate decides on.

use crate::package::{Package, PinnedFile};
use crate::source::Location;
use crate::sql::hazards::{self, FileRole, Finding, HazardContext, Severity, TargetFacts};
use crate::sql::transaction::{self, ExecutionPlan};
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
pub fn parse_migration(pkg: &Package) -> Result<ParsedMigration, SqlError> {
    let file = sql::parse_file(pkg.migration_source())?;
    let plan = transaction::plan(&file.statements, pkg.migration.transaction);
    Ok(ParsedMigration { file, plan })
}

/// Lints a package. `facts` come from the target when lint runs with `--target`.
pub fn lint(pkg: &Package, facts: Option<&TargetFacts>) -> Result<LintReport, SqlError> {
    lint_parsed(pkg, &parse_migration(pkg)?, facts)
}

/// [`lint`] of a migration already parsed ([`parse_migration`]).
pub fn lint_parsed(
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
    let set_aside: BTreeSet<usize> = parsed
        .plan
        .stripped_begin
        .iter()
        .chain(parsed.plan.stripped_commit.iter())
        .map(|s| s.index)
        .collect();
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
        hazard: "migration-expect",
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
        hazard: "sql-integrity",
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
