//! Rendering of lint reports: for the terminal here; SARIF for code scanning and GitHub
//! Actions annotations in their own modules.

pub mod github;
#[cfg(test)]
mod hazard_snapshots;
pub mod sarif;

use owo_colors::{OwoColorize, Stream};
use sluice::lint::{BareFileLint, LintReport};
use sluice::sql::{Finding, Severity};
use std::fmt::Write;

fn paint(text: &str, f: impl Fn(&str) -> String) -> String {
    text.if_supports_color(Stream::Stdout, |t| f(t)).to_string()
}

fn severity(s: Severity) -> String {
    let word = format!("{s:<5}");
    match s {
        Severity::Error => paint(&word, |t| t.red().bold().to_string()),
        Severity::Warn => paint(&word, |t| t.yellow().bold().to_string()),
        Severity::Info => paint(&word, |t| t.cyan().to_string()),
    }
}

pub fn finding(out: &mut String, f: &Finding) {
    let _ = writeln!(
        out,
        "  {} {}  {}",
        severity(f.severity),
        paint(f.hazard, |t| t.bold().to_string()),
        f.location
    );
    let _ = writeln!(out, "        {}", f.statement);
    let _ = writeln!(out, "        why: {}", f.why);
    if let Some(help) = &f.help {
        let _ = writeln!(out, "        help: {help}");
    }
}

/// A file's operations, one per line in the SPEC §5 notation (pasteable into `[scope]`), with
/// the line:column of their statement.
fn operations(out: &mut String, title: &str, file: &sluice::lint::FileLint) {
    let _ = writeln!(
        out,
        "{title} ({}) in {}:",
        file.operations.len(),
        file.file.display()
    );
    let width = file
        .operations
        .iter()
        .map(|d| d.operation.to_string().len())
        .max()
        .unwrap_or(0);
    for d in &file.operations {
        let _ = writeln!(
            out,
            "  {:<width$}  {}:{}",
            d.operation.to_string(),
            d.location.line,
            d.location.column
        );
    }
}

/// The lint report as the terminal shows it: operations one per line, the scope proof, the
/// hazards, and a verdict line.
pub fn lint(report: &LintReport, passed: bool) -> String {
    let mut out = String::new();
    let m = &report.migration;
    operations(&mut out, "operations", m);
    match &report.scope {
        None => {
            let _ = writeln!(
                out,
                "scope: no [scope] section in sluice.toml (nothing proven)"
            );
        }
        Some(s) if s.holds() => {
            let _ = writeln!(
                out,
                "scope: {} — {} derived = {} declared",
                paint("holds", |t| t.green().to_string()),
                m.operations.len(),
                s.declared.len()
            );
        }
        Some(s) => {
            let _ = writeln!(
                out,
                "scope: {}",
                paint("does not hold", |t| t.red().bold().to_string())
            );
            for d in &s.out_of_scope {
                let _ = writeln!(out, "  out of scope: {}  ({})", d.operation, d.location);
            }
            for (op, loc) in &s.missing {
                let _ = writeln!(
                    out,
                    "  missing:      {}  (declared at {loc}, not in the SQL)",
                    op
                );
            }
        }
    }
    if let Some(r) = &report.rollback {
        operations(&mut out, "rollback operations", r);
    }
    let findings: Vec<&Finding> = report.findings().collect();
    if findings.is_empty() {
        let _ = writeln!(out, "hazards: none");
    } else {
        let _ = writeln!(out, "hazards:");
        for f in findings {
            finding(&mut out, f);
        }
    }
    let verdict = if passed {
        paint("passed", |t| t.green().bold().to_string())
    } else {
        paint("FAILED", |t| t.red().bold().to_string())
    };
    let _ = writeln!(
        out,
        "lint: {verdict} ({} error(s), {} warning(s), {} note(s))",
        report.count(Severity::Error),
        report.count(Severity::Warn),
        report.count(Severity::Info)
    );
    out
}

/// Bare files as the terminal shows them: per file, how it is judged to run, its operations and
/// hazards; then that no scope is proven, and a verdict line. Files that could not be parsed
/// are counted (their errors go to stderr).
pub fn bare_files(files: &[BareFileLint], unparsable: usize, passed: bool) -> String {
    let mut out = String::new();
    for file in files {
        operations(&mut out, "operations", &file.lint);
        let timeout = match file.lock_timeout_ms {
            0 => "no lock_timeout set by the file".to_string(),
            ms => format!("lock_timeout {ms} ms set by the file"),
        };
        let _ = writeln!(
            out,
            "runs as: {} ({timeout})",
            match file.transaction {
                sluice::sql::transaction::TransactionMode::Single => "one transaction",
                sluice::sql::transaction::TransactionMode::None =>
                    "statement by statement, no transaction",
            }
        );
        if file.lint.findings.is_empty() {
            let _ = writeln!(out, "hazards: none");
        } else {
            let _ = writeln!(out, "hazards:");
            for f in &file.lint.findings {
                finding(&mut out, f);
            }
        }
    }
    let _ = writeln!(
        out,
        "scope: not proven (bare SQL files declare no scope; a package's [scope] does)"
    );
    let all = || files.iter().flat_map(|f| f.lint.findings.iter());
    let count = |s: Severity| all().filter(|f| f.severity == s).count();
    let verdict = if passed {
        paint("passed", |t| t.green().bold().to_string())
    } else {
        paint("FAILED", |t| t.red().bold().to_string())
    };
    let total = files.len() + unparsable;
    let unparsable = match unparsable {
        0 => String::new(),
        n => format!(", {n} file(s) could not be parsed"),
    };
    let _ = writeln!(
        out,
        "lint: {verdict} ({} file(s): {} error(s), {} warning(s), {} note(s){unparsable})",
        total,
        count(Severity::Error),
        count(Severity::Warn),
        count(Severity::Info)
    );
    out
}

/// The runs against a target as a table, oldest first.
pub fn status(report: &sluice::status::StatusReport) -> String {
    use sluice::pipeline::record::RunStatus;
    let mut out = String::new();
    let system = report
        .system_identifier
        .as_ref()
        .map(|s| format!(" (system identifier {s})"))
        .unwrap_or_default();
    let roots: Vec<String> = report
        .evidence
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let _ = writeln!(
        out,
        "runs against database {}{system}, from {}:",
        report.database,
        roots.join(", ")
    );
    if report.runs.is_empty() {
        let _ = writeln!(
            out,
            "  none: no apply or rollback of this target is in this evidence"
        );
        return out;
    }
    let rows: Vec<[String; 8]> = report
        .runs
        .iter()
        .map(|r| {
            let outcome = match r.outcome {
                RunStatus::Succeeded => "succeeded".to_string(),
                RunStatus::Failed => format!(
                    "failed (exit {}{})",
                    r.exit_code.map_or("?".into(), |c| c.to_string()),
                    r.failed_gate
                        .as_ref()
                        .map(|g| format!(", {g}"))
                        .unwrap_or_default()
                ),
                RunStatus::Running => "running or killed".to_string(),
            };
            let outcome = if r.in_ledger {
                outcome
            } else {
                format!("{outcome}, not in the ledger")
            };
            let rolled_back = match (&r.kind[..], &r.rollback) {
                ("apply", None) => "no".to_string(),
                ("apply", Some(rb)) => match rb.outcome {
                    RunStatus::Succeeded => "yes".to_string(),
                    RunStatus::Failed => "rollback failed".to_string(),
                    RunStatus::Running => "rollback running or killed".to_string(),
                },
                _ => "-".to_string(),
            };
            [
                r.started_at.clone(),
                r.kind.clone(),
                r.package.clone(),
                r.digest.chars().take(12).collect(),
                r.environment.clone(),
                r.operator.clone(),
                outcome,
                rolled_back,
            ]
        })
        .collect();
    let header = [
        "STARTED",
        "KIND",
        "PACKAGE",
        "DIGEST",
        "ENVIRONMENT",
        "OPERATOR",
        "OUTCOME",
        "ROLLED BACK",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::from(" ");
        for (cell, w) in cells.iter().zip(&widths) {
            let _ = write!(text, " {cell:<w$}");
        }
        text.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
    }
    out
}
