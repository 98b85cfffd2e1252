//! One function per verb: load, call the library, render, and choose the exit code.

mod apply;
mod approve;
mod demo;
mod lint;

use crate::args::{Cli, Command, EvidenceCommand, ReviewFormat};
use crate::failure::Failure;
use sluice::exit::ExitCode;
use sluice::package::Package;
use sluice::sql::hazards::TargetFacts;
use sluice::target::Target;
use std::path::Path;

/// `--password-command` (or `SLUICE_PASSWORD_COMMAND`), set once when the command line is read.
static PASSWORD_COMMAND: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// The target named by `--target` (or the `PG*` variables when absent), with the password
/// command of the command line.
pub(crate) fn resolve_target(spec: Option<&str>) -> Result<Target, Failure> {
    let command = PASSWORD_COMMAND.get().and_then(|c| c.as_deref());
    Ok(Target::resolve(spec, command)?)
}

pub fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let json = cli.json;
    let _ = PASSWORD_COMMAND.set(cli.password_command.clone());
    match cli.command {
        Command::Init { dir, id } => init(&dir, id, json),
        Command::Lint {
            paths,
            deny,
            target,
            format,
            transaction,
            stdin_filename,
        } => {
            let args = lint::LintArgs {
                paths,
                deny,
                target,
                format,
                transaction,
                stdin_filename,
            };
            lint::lint(&args, json)
        }
        Command::Pin { package } => pin(&package, json),
        Command::Digest { package, explain } => digest(&package, explain, json),
        Command::Review {
            package,
            target,
            format,
            output,
        } => review(&package, target.as_deref(), format, output.as_deref(), json),
        Command::Approve {
            package,
            signer,
            key,
            agent,
            decision,
            note,
            acknowledge,
            print_payload,
            payload,
            signature,
        } => approve::approve(
            &approve::ApproveArgs {
                package,
                signer,
                key,
                agent,
                decision,
                note,
                acknowledge,
                print_payload,
                payload,
                signature,
            },
            json,
        ),
        Command::ApproveRollback {
            package,
            run,
            failed_check,
            signer,
            key,
            agent,
            decision,
            note,
            into,
        } => approve::approve_rollback(
            &approve::ApproveRollbackArgs {
                package,
                run,
                failed_check,
                signer,
                key,
                agent,
                decision,
                note,
                into,
            },
            json,
        ),
        Command::Apply {
            package,
            target,
            environment,
            operator,
            evidence,
            yes,
            pg_dump_bindir,
        } => {
            let args = apply::ApplyArgs {
                package,
                target,
                environment,
                operator,
                evidence,
                yes,
                pg_dump_bindir,
            };
            apply::apply(&args, json)
        }
        Command::Verify {
            package,
            target,
            run,
            evidence,
        } => apply::verify(&package, target.as_deref(), run, &evidence, json),
        Command::Evidence {
            command: EvidenceCommand::Check { run_dir },
        } => evidence_check(&run_dir, json),
        Command::Status {
            package,
            target,
            evidence,
        } => status(package.as_deref(), target.as_deref(), &evidence, json),
        Command::Rehearse {
            package,
            target,
            from_backup,
            pg_bindir,
            pg_dump_bindir,
            evidence,
            restore,
        } => apply::rehearse(
            &package,
            target.as_deref(),
            from_backup.as_deref(),
            sluice::rehearse::RehearseOptions {
                pg_bindir,
                pg_dump_bindir,
                evidence_root: evidence,
                restore: restore.into(),
            },
            json,
        ),
        Command::Rollback {
            package,
            target,
            environment,
            run,
            failed_check,
            operator,
            evidence,
            approvals,
            yes,
        } => {
            let options = sluice::pipeline::RollbackOptions {
                environment,
                operator,
                evidence_root: evidence.unwrap_or_else(|| sluice::evidence::root_of_run(&run)),
                run_dir: run,
                failed_check,
                approvals_dir: approvals,
            };
            apply::rollback(&package, target.as_deref(), options, yes, json)
        }
        Command::Demo { pg_bindir, workdir } => demo::demo(pg_bindir.as_deref(), &workdir, json),
    }
}

pub(crate) fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn init(dir: &Path, id: Option<String>, json: bool) -> Result<ExitCode, Failure> {
    let id = id.unwrap_or_else(|| sluice::scaffold::id_from_dir(dir));
    sluice::scaffold::init(dir, &id).map_err(|e| Failure::new(ExitCode::Usage, e.to_string()))?;
    if json {
        print_json(&serde_json::json!({ "ok": true, "package": dir, "id": id }));
    }
    eprintln!(
        "wrote a starter package `{id}` into {}; next: sluice lint {}",
        dir.display(),
        dir.display()
    );
    Ok(ExitCode::Done)
}

/// What lint's hazards need to know from the target (`--target`), read once.
pub(crate) fn target_facts(target: &Target, purpose: &str) -> Result<TargetFacts, Failure> {
    let mut client = target.connect(purpose)?;
    sluice::target::facts(&mut client).map_err(|e| Failure::from(target.query_error(&e)))
}

fn pin(dir: &Path, json: bool) -> Result<ExitCode, Failure> {
    let pins = sluice::pin::pin(dir).map_err(|e| match e {
        sluice::pin::PinError::Package(e) => Failure::from(e),
        other => Failure::new(ExitCode::Internal, other.to_string()),
    })?;
    if json {
        print_json(&serde_json::json!({ "ok": true, "package": dir, "pins": pins }));
    }
    for p in &pins {
        let old = if p.old.is_empty() { "(none)" } else { &p.old };
        let line = if p.changed() {
            format!("{}: {old} → {}", p.file.display(), p.new)
        } else {
            format!("{}: {} (unchanged)", p.file.display(), p.new)
        };
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    let changed = pins.iter().filter(|p| p.changed()).count();
    eprintln!(
        "{}",
        match changed {
            0 => "sluice.toml already pins every file".to_string(),
            n => format!(
                "pinned {n} file(s) in {}",
                dir.join("sluice.toml").display()
            ),
        }
    );
    Ok(ExitCode::Done)
}

fn digest(dir: &Path, explain: bool, json: bool) -> Result<ExitCode, Failure> {
    let pkg = Package::load(dir)?;
    let digest = sluice::digest::package_digest(&pkg);
    if json {
        print_json(&serde_json::json!({ "package": pkg.info.id, "digest": digest }));
    } else if explain {
        print!("{}", sluice::digest::digest_input(&pkg));
        eprintln!("sha256 of the text above: {digest}");
    } else {
        println!("{digest}");
    }
    Ok(ExitCode::Done)
}

fn review(
    dir: &Path,
    target: Option<&str>,
    format: ReviewFormat,
    output: Option<&Path>,
    json: bool,
) -> Result<ExitCode, Failure> {
    let pkg = Package::load(dir)?;
    let target = target.map(|spec| resolve_target(Some(spec))).transpose()?;
    // with --target, the review's lint knows what `lint --target` knows
    let facts = match &target {
        Some(target) => Some(target_facts(target, "review")?),
        None => None,
    };
    let lint = sluice::lint::lint(&pkg, facts.as_ref())?;
    let mut review = sluice::review::build(&pkg, lint);
    if let Some(target) = &target {
        review.live = Some(sluice::review::evaluate_live(&pkg, target)?);
    }
    let text = match format {
        _ if json => review_json(&review)?,
        ReviewFormat::Json => review_json(&review)?,
        ReviewFormat::Md => sluice::review::markdown::render(&review),
        ReviewFormat::Html => sluice::review::html::render(&review),
    };
    match output {
        Some(path) => {
            std::fs::write(path, &text).map_err(|e| {
                Failure::new(
                    ExitCode::Internal,
                    format!("cannot write {}: {e}", path.display()),
                )
            })?;
            eprintln!("wrote the review package to {}", path.display());
        }
        None => print!("{text}{}", if text.ends_with('\n') { "" } else { "\n" }),
    }
    let live_holds = review.live.as_ref().is_none_or(|l| l.holds());
    if !live_holds {
        eprintln!("the target is not ready: identity or preflight does not hold (see §7)");
    }
    Ok(if live_holds {
        ExitCode::Done
    } else {
        ExitCode::Refused
    })
}

fn review_json(review: &sluice::review::Review) -> Result<String, Failure> {
    serde_json::to_string_pretty(review)
        .map_err(|e| Failure::new(ExitCode::Internal, e.to_string()))
}

fn status(
    package: Option<&Path>,
    target: Option<&str>,
    evidence: &[std::path::PathBuf],
    json: bool,
) -> Result<ExitCode, Failure> {
    let package = package.map(Package::load).transpose()?;
    let target = resolve_target(target)?;
    let live = {
        let mut client = target.connect("identity")?;
        sluice::target::identity(&mut client).map_err(|e| Failure::from(target.query_error(&e)))?
    };
    let report = sluice::status::status(
        evidence,
        package.as_ref().map(|p| p.info.id.as_str()),
        &live,
    );
    if json {
        print_json(&serde_json::json!({ "ok": true, "status": report }));
    } else {
        print!("{}", crate::render::status(&report));
    }
    Ok(ExitCode::Done)
}

fn evidence_check(run_dir: &Path, json: bool) -> Result<ExitCode, Failure> {
    let report = sluice::evidence::check(run_dir).map_err(|e| {
        Failure::new(
            ExitCode::Usage,
            format!("{}: not an evidence folder ({e})", run_dir.display()),
        )
    })?;
    if json {
        print_json(&serde_json::json!({ "ok": report.holds(), "check": report }));
    }
    for rel in &report.changed {
        eprintln!("changed: {rel}");
    }
    for rel in &report.missing {
        eprintln!("missing: {rel}");
    }
    for rel in &report.unlisted {
        eprintln!("not in SHA256SUMS: {rel}");
    }
    for p in &report.loose_modes {
        eprintln!("mode wider than 0600/0700: {p}");
    }
    for p in &report.ledger {
        eprintln!("ledger: {p}");
    }
    if report.holds() {
        eprintln!(
            "evidence intact: {} file(s) match SHA256SUMS; the ledger chain holds",
            report.files_checked
        );
        Ok(ExitCode::Done)
    } else {
        eprintln!("evidence NOT intact: {}", run_dir.display());
        Ok(ExitCode::Internal)
    }
}
