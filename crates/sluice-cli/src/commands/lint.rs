//! `sluice lint`: a package (a folder with sluice.toml), or bare SQL files of any migration
//! tool (files, a folder of them, `-` for stdin), rendered as text, JSON, SARIF or GitHub
//! annotations.

use super::{print_json, resolve_target, target_facts};
use crate::args::{DenyLevel, LintFormat, TransactionArg};
use crate::failure::Failure;
use crate::render;
use sluice::exit::ExitCode;
use sluice::lint::{BareFileLint, FileOptions};
use sluice::package::Package;
use sluice::source::SourceFile;
use sluice::sql::hazards::TargetFacts;
use sluice::sql::transaction::TransactionMode;
use sluice::sql::{Finding, Severity, SqlError};
use std::path::{Path, PathBuf};

/// `sluice lint`'s raw arguments.
pub struct LintArgs {
    pub paths: Vec<PathBuf>,
    pub deny: DenyLevel,
    pub target: Option<String>,
    pub format: LintFormat,
    pub transaction: Option<TransactionArg>,
    pub stdin_filename: Option<PathBuf>,
}

/// What the paths name.
enum Input {
    Package(PathBuf),
    Files(Vec<Source>),
}

/// One bare file to lint.
enum Source {
    File(PathBuf),
    Stdin,
}

/// What bare files are told about scope.
const NO_SCOPE: &str =
    "scope not proven: bare SQL files declare no scope (a package's [scope] does)";

pub fn lint(args: &LintArgs, json: bool) -> Result<ExitCode, Failure> {
    let format = match (json, args.format) {
        (true, LintFormat::Text | LintFormat::Json) => LintFormat::Json,
        (true, other) => {
            return Err(Failure::new(
                ExitCode::Usage,
                format!(
                    "--json and --format {} ask for two documents on stdout: give one",
                    format_name(other)
                ),
            ))
        }
        (false, format) => format,
    };
    let deny = match args.deny {
        DenyLevel::Warn => Severity::Warn,
        DenyLevel::Error => Severity::Error,
    };
    let input = classify(&args.paths)?;
    if matches!(input, Input::Package(_)) && args.transaction.is_some() {
        return Err(Failure::new(
            ExitCode::Usage,
            "--transaction is for bare SQL files: a package says it in sluice.toml ([migration] transaction)",
        ));
    }
    let facts = match &args.target {
        Some(spec) => Some(target_facts(&resolve_target(Some(spec))?, "lint")?),
        None => None,
    };
    match input {
        Input::Package(dir) => package(&dir, facts.as_ref(), deny, format),
        Input::Files(sources) => {
            let options = FileOptions {
                runner: match args.transaction {
                    Some(TransactionArg::None) => TransactionMode::None,
                    Some(TransactionArg::Single) | None => TransactionMode::Single,
                },
                ..FileOptions::default()
            };
            let stdin_name = args
                .stdin_filename
                .clone()
                .unwrap_or_else(|| PathBuf::from("<stdin>"));
            files(
                &sources,
                &stdin_name,
                &options,
                facts.as_ref(),
                deny,
                format,
            )
        }
    }
}

fn format_name(format: LintFormat) -> &'static str {
    match format {
        LintFormat::Text => "text",
        LintFormat::Json => "json",
        LintFormat::Sarif => "sarif",
        LintFormat::Github => "github",
    }
}

/// A folder with sluice.toml is a package, linted alone; anything else is bare SQL: a file,
/// `-`, or a folder's `*.sql` files in name order.
fn classify(paths: &[PathBuf]) -> Result<Input, Failure> {
    let usage = |message: String| Failure::new(ExitCode::Usage, message);
    if let [only] = paths {
        if only.is_dir() && only.join("sluice.toml").is_file() {
            return Ok(Input::Package(only.clone()));
        }
    }
    let mut sources = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            if sources.iter().any(|s| matches!(s, Source::Stdin)) {
                return Err(usage("`-` (stdin) can be named once".into()));
            }
            sources.push(Source::Stdin);
        } else if path.is_dir() {
            if path.join("sluice.toml").is_file() {
                return Err(usage(format!(
                    "{} is a package: lint it alone (`sluice lint {}`)",
                    path.display(),
                    path.display()
                )));
            }
            let mut sql: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "sql"))
                .collect();
            if sql.is_empty() {
                return Err(usage(format!(
                    "{} is neither a package (no sluice.toml) nor a folder of .sql files",
                    path.display()
                )));
            }
            sql.sort();
            sources.extend(sql.into_iter().map(Source::File));
        } else {
            sources.push(Source::File(path.clone()));
        }
    }
    Ok(Input::Files(sources))
}

fn package(
    dir: &Path,
    facts: Option<&TargetFacts>,
    deny: Severity,
    format: LintFormat,
) -> Result<ExitCode, Failure> {
    let pkg = Package::load(dir)?;
    let report = match sluice::lint::lint(&pkg, facts) {
        Ok(report) => report,
        // SARIF and annotations carry the parse error as a result, so CI shows it in place
        Err(err) if matches!(format, LintFormat::Sarif | LintFormat::Github) => {
            print_findings(format, &[sluice::lint::error_finding(&err)], &[]);
            return Err(Failure::from(err));
        }
        Err(err) => return Err(Failure::from(err)),
    };
    let passed = report.passes(deny);
    match format {
        LintFormat::Json => {
            print_json(&serde_json::json!({ "ok": passed, "package": pkg.info.id, "lint": report }))
        }
        LintFormat::Text => print!("{}", render::lint(&report, passed)),
        LintFormat::Sarif | LintFormat::Github => {
            let mut findings: Vec<Finding> = report.findings().cloned().collect();
            findings.extend(report.scope_findings());
            print_findings(format, &findings, &[]);
            eprint!("{}", verdict(&findings, passed));
        }
    }
    Ok(if passed {
        ExitCode::Done
    } else {
        ExitCode::Refused
    })
}

/// Lints every file; one that cannot be read stops lint (exit 2), one that cannot be parsed is
/// reported and the others still linted (exit 2 at the end).
fn files(
    sources: &[Source],
    stdin_name: &Path,
    options: &FileOptions,
    facts: Option<&TargetFacts>,
    deny: Severity,
    format: LintFormat,
) -> Result<ExitCode, Failure> {
    let mut texts = Vec::new();
    for source in sources {
        texts.push(read(source, stdin_name)?);
    }
    let mut linted: Vec<BareFileLint> = Vec::new();
    let mut errors: Vec<SqlError> = Vec::new();
    for text in texts {
        match sluice::lint::lint_bare_file(text, options, facts) {
            Ok(lint) => linted.push(lint),
            Err(err) => errors.push(err),
        }
    }
    let passed = errors.is_empty()
        && linted
            .iter()
            .flat_map(|f| f.lint.findings.iter())
            .all(|f| f.severity < deny);
    match format {
        LintFormat::Text => {
            for err in &errors {
                Failure::from(err.clone()).print(false);
            }
            print!("{}", render::bare_files(&linted, errors.len(), passed));
        }
        LintFormat::Json => {
            let unparsable: Vec<serde_json::Value> = errors
                .iter()
                .map(|err| {
                    let finding = sluice::lint::error_finding(err);
                    serde_json::json!({
                        "file": finding.location.file,
                        "error": { "kind": finding.hazard, "location": finding.location, "message": err.to_string() },
                    })
                })
                .collect();
            print_json(&serde_json::json!({
                "ok": passed,
                "scope": NO_SCOPE,
                "files": linted,
                "unparsable": unparsable,
            }));
        }
        LintFormat::Sarif | LintFormat::Github => {
            let mut findings: Vec<Finding> =
                errors.iter().map(sluice::lint::error_finding).collect();
            findings.extend(linted.iter().flat_map(|f| f.lint.findings.iter().cloned()));
            print_findings(format, &findings, &[NO_SCOPE.to_string()]);
            eprint!("{}", verdict(&findings, passed));
            eprintln!("{NO_SCOPE}");
        }
    }
    Ok(if !errors.is_empty() {
        ExitCode::Usage
    } else if passed {
        ExitCode::Done
    } else {
        ExitCode::Refused
    })
}

/// A file's text (or stdin's), shown under its path (or `stdin_name`).
fn read(source: &Source, stdin_name: &Path) -> Result<SourceFile, Failure> {
    let text = match source {
        Source::File(path) => std::fs::File::open(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|file| sluice::lint::read_source(path, file)),
        Source::Stdin => sluice::lint::read_source(stdin_name, std::io::stdin().lock()),
    };
    text.map_err(|message| Failure::new(ExitCode::Usage, message))
}

/// Findings as a SARIF document or as GitHub annotations, on stdout.
fn print_findings(format: LintFormat, findings: &[Finding], notes: &[String]) {
    match format {
        LintFormat::Sarif => {
            let doc = render::sarif::document(&sluice::lint::rules(), findings, notes);
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        LintFormat::Github => print!("{}", render::github::annotations(findings)),
        LintFormat::Text | LintFormat::Json => {}
    }
}

/// The verdict line, for stderr when stdout holds a document.
fn verdict(findings: &[Finding], passed: bool) -> String {
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    format!(
        "lint: {} ({} error(s), {} warning(s), {} note(s))\n",
        if passed { "passed" } else { "FAILED" },
        count(Severity::Error),
        count(Severity::Warn),
        count(Severity::Info)
    )
}
