//! `sluice apply` and `sluice verify`.

use crate::failure::Failure;
use crate::progress::Terminal;
use sluice::exit::ExitCode;
use sluice::package::Package;
use sluice::pipeline::{self, ApplyOptions};
use sluice::target::Target;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

pub struct ApplyArgs {
    pub package: PathBuf,
    pub target: Option<String>,
    pub environment: String,
    pub operator: String,
    pub evidence: PathBuf,
    pub yes: bool,
    pub pg_dump_bindir: Option<PathBuf>,
}

/// Asks the operator to type the package id; refuses without a terminal unless --yes. Not
/// confirming is a refusal before anything started, with the target unchanged: exit 3 (SPEC §8).
pub fn confirm(
    package_id: &str,
    environment: &str,
    target: &Target,
    yes: bool,
) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            ExitCode::Refused,
            "no terminal to confirm on: nothing was done; pass --yes to go on without confirmation",
        ));
    }
    eprint!("apply {package_id} to {environment} ({target})?\ntype the package id to confirm: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(Failure::from)?;
    if answer.trim() == package_id {
        Ok(())
    } else {
        Err(Failure::new(
            ExitCode::Refused,
            "not confirmed: nothing was done",
        ))
    }
}

/// `--environment NAME`, checked before anything else is read (exit 2 when it cannot be one).
fn check_environment(name: &str) -> Result<(), Failure> {
    pipeline::check_environment(name)
        .map_err(|e| Failure::new(ExitCode::Usage, format!("invalid --environment: {e}")))
}

pub fn apply(args: &ApplyArgs, json: bool) -> Result<ExitCode, Failure> {
    check_environment(&args.environment)?;
    let pkg = Package::load(&args.package)?;
    let target = super::resolve_target(args.target.as_deref())?;
    confirm(&pkg.info.id, &args.environment, &target, args.yes)?;
    let options = ApplyOptions {
        environment: args.environment.clone(),
        operator: args.operator.clone(),
        evidence_root: args.evidence.clone(),
        pg_dump_bindir: args.pg_dump_bindir.clone(),
        rehearsal: false,
    };
    eprintln!(
        "sluice apply {} → {} ({})",
        pkg.info.id, args.environment, target
    );
    let outcome = pipeline::apply(&pkg, &target, &options, &Terminal::new()).map_err(|e| {
        Failure::new(
            ExitCode::Refused,
            format!("refused before anything ran: {e}"),
        )
    })?;
    finish(&outcome, json)
}

/// Prints the end of a run and turns it into the exit code.
pub fn finish(outcome: &pipeline::ApplyOutcome, json: bool) -> Result<ExitCode, Failure> {
    if json {
        crate::commands::print_json(&serde_json::json!({
            "ok": outcome.exit_code == 0,
            "exit_code": outcome.exit_code,
            "error": outcome.failure,
            "evidence": outcome.run_dir,
            "run": outcome.record,
        }));
    }
    if let Some(m) = outcome
        .record
        .migration
        .as_ref()
        .and_then(|m| m.last_row.as_ref())
    {
        eprintln!("trailing row: {}", m.render());
    }
    for p in &outcome.record.probes {
        eprintln!("probe {}:\n  {}", p.id, p.render().replace('\n', "\n  "));
    }
    eprintln!("evidence: {}", outcome.run_dir.display());
    match &outcome.failure {
        None => {
            eprintln!("done: every gate held");
            Ok(ExitCode::Done)
        }
        Some(f) => {
            let code = ExitCode::from_code(f.exit_code).unwrap_or(ExitCode::Internal);
            let failure = Failure::gate(f.gate.clone(), code, f.message.clone());
            failure.print(false);
            Ok(code)
        }
    }
}

pub fn verify(
    dir: &Path,
    target: Option<&str>,
    run: Option<PathBuf>,
    evidence: &Path,
    json: bool,
) -> Result<ExitCode, Failure> {
    let pkg = Package::load(dir)?;
    let target = super::resolve_target(target)?;
    let live = {
        let mut client = target.connect("identity")?;
        sluice::target::identity(&mut client).map_err(|e| Failure::from(target.query_error(&e)))?
    };
    let run = pipeline::verify::baseline(evidence, run.as_deref(), &pkg, &live)
        .map_err(|e| Failure::new(ExitCode::Usage, e.to_string()))?;
    let report = pipeline::verify::verify(&pkg, &target, &run)?;
    if json {
        crate::commands::print_json(&serde_json::json!({ "ok": report.holds, "verify": report }));
    }
    for c in &report.checks {
        eprintln!(
            "  {:<8} {}{}",
            c.id,
            if c.holds { "holds" } else { "FAILS" },
            c.detail
                .as_ref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        );
    }
    match (&report.run, &report.drift) {
        (Some(run), Some(drift)) if drift.is_empty() => {
            eprintln!("schema: no drift since {}", run.display())
        }
        (Some(run), Some(drift)) => {
            eprintln!("schema drift since {}:", run.display());
            for o in &drift.added {
                eprintln!("  added   {:?} {}", o.kind, o.key);
            }
            for o in &drift.removed {
                eprintln!("  removed {:?} {}", o.kind, o.key);
            }
            for o in &drift.changed {
                eprintln!("  changed {:?} {} ({})", o.kind, o.key, o.fields.join(", "));
            }
        }
        _ => eprintln!(
            "schema: no applied run found in {} to compare with (pass --run)",
            evidence.display()
        ),
    }
    Ok(if report.holds {
        ExitCode::Done
    } else {
        ExitCode::CommittedButFailed
    })
}

pub fn rehearse(
    dir: &Path,
    target: Option<&str>,
    from_backup: Option<&Path>,
    options: sluice::rehearse::RehearseOptions,
    json: bool,
) -> Result<ExitCode, Failure> {
    let pkg = Package::load(dir)?;
    let target = match from_backup {
        Some(_) => None,
        None => Some(super::resolve_target(target)?),
    };
    let source = match (&target, from_backup) {
        (Some(t), _) => sluice::rehearse::Source::Target(t),
        (None, Some(p)) => sluice::rehearse::Source::Backup(p),
        (None, None) => {
            return Err(Failure::new(
                ExitCode::Usage,
                "give --target or --from-backup",
            ))
        }
    };
    eprintln!("sluice rehearse {}", pkg.info.id);
    let outcome = sluice::rehearse::rehearse(&pkg, source, &options, &Terminal::new())
        .map_err(|e| Failure::gate("rehearsal", ExitCode::Refused, e.to_string()))?;
    let r = &outcome.record;
    if json {
        crate::commands::print_json(
            &serde_json::json!({ "ok": r.passed, "record": outcome.path, "rehearsal": r }),
        );
    }
    for s in &r.steps {
        eprintln!(
            "  {:<18} {} ({} ms) {}",
            s.name,
            if s.passed { "passed" } else { "FAILED" },
            s.duration_ms,
            s.detail
        );
    }
    if let Some(ms) = r.lock_holding_ms {
        let probes = r
            .trace
            .as_ref()
            .and_then(|t| t.apply.as_ref())
            .filter(|t| !t.autocommit)
            .map(|t| {
                format!(
                    ", {} of it the lock trace's probes",
                    sluice::locktrace::render::duration(t.tracer.probe_us)
                )
            })
            .unwrap_or_default();
        eprintln!(
            "forecast: the migration held its locks for {ms} ms in the rehearsal (PostgreSQL {}{probes})",
            r.server_version
        );
    }
    for (run, trace) in r.trace.as_ref().map(|t| t.runs()).unwrap_or_default() {
        eprintln!(
            "lock trace ({run}): {}",
            sluice::locktrace::render::summary(trace)
        );
    }
    let apply_trace = r.trace.as_ref().and_then(|t| t.apply.as_ref());
    let against_lint = apply_trace.and_then(|t| {
        let lint = sluice::lint::lint(&pkg, None).ok()?;
        sluice::locktrace::compare::for_package(&pkg, &lint.migration.findings, t)
    });
    if let Some(c) = against_lint {
        eprintln!("{}", c.summary());
        let worth_reading = c
            .checks
            .iter()
            .filter(|k| k.verdict == sluice::locktrace::compare::Verdict::Refuted);
        for check in worth_reading {
            eprintln!(
                "  `{}` at line {}: measured {} → REFUTED",
                check.hazard, check.line, check.measured
            );
        }
        for lock in &c.unpredicted {
            eprintln!("  {}", lock.describe());
        }
    }
    eprintln!("record: {}", outcome.path.display());
    if r.passed {
        eprintln!("rehearsal passed");
        Ok(ExitCode::Done)
    } else {
        Failure::gate(
            "rehearsal",
            ExitCode::Refused,
            "the rehearsal failed: see the steps above; the record is written",
        )
        .print(false);
        Ok(ExitCode::Refused)
    }
}

pub fn rollback(
    dir: &Path,
    target: Option<&str>,
    options: sluice::pipeline::RollbackOptions,
    yes: bool,
    json: bool,
) -> Result<ExitCode, Failure> {
    check_environment(&options.environment)?;
    let pkg = Package::load(dir)?;
    let target = super::resolve_target(target)?;
    confirm(&pkg.info.id, &options.environment, &target, yes)?;
    eprintln!(
        "sluice rollback {} on {} ({}), run {}",
        pkg.info.id,
        options.environment,
        target,
        options.run_dir.display()
    );
    let outcome = pipeline::rollback(&pkg, &target, &options, &Terminal::new()).map_err(|e| {
        Failure::new(
            ExitCode::Refused,
            format!("refused before anything ran: {e}"),
        )
    })?;
    finish(&outcome, json)
}
