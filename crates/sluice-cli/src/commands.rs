//! One function per verb: load, call the library, render, and choose the exit code.

use crate::args::{Cli, Command, DenyLevel, ReviewFormat};
use crate::failure::Failure;
use crate::render;
use sluice::package::Package;
use sluice::sql::Severity;
use sluice::target::Target;
use std::path::Path;

pub fn run(cli: Cli) -> Result<u8, Failure> {
    let json = cli.json;
    match cli.command {
        Command::Init { dir, id } => init(&dir, id, json),
        Command::Lint {
            package,
            deny,
            target,
        } => lint(&package, deny, target.as_deref(), json),
        Command::Digest { package, explain } => digest(&package, explain, json),
        Command::Review {
            package,
            target,
            format,
            output,
        } => review(&package, target.as_deref(), format, output.as_deref(), json),
    }
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn init(dir: &Path, id: Option<String>, json: bool) -> Result<u8, Failure> {
    let id = id.unwrap_or_else(|| sluice::scaffold::id_from_dir(dir));
    sluice::scaffold::init(dir, &id).map_err(|e| Failure::new(2, e.to_string()))?;
    if json {
        print_json(&serde_json::json!({ "ok": true, "package": dir, "id": id }));
    }
    eprintln!(
        "wrote a starter package `{id}` into {}; next: sluice lint {}",
        dir.display(),
        dir.display()
    );
    Ok(0)
}

fn lint(dir: &Path, deny: DenyLevel, target: Option<&str>, json: bool) -> Result<u8, Failure> {
    let pkg = Package::load(dir)?;
    let facts = match target {
        Some(spec) => {
            let target = Target::resolve(Some(spec))?;
            let mut client = target.connect()?;
            Some(
                sluice::target::facts(&mut client)
                    .map_err(|e| Failure::from(target.query_error(&e)))?,
            )
        }
        None => None,
    };
    let report = sluice::lint::lint(&pkg, facts.as_ref())?;
    let deny = match deny {
        DenyLevel::Warn => Severity::Warn,
        DenyLevel::Error => Severity::Error,
    };
    let passed = report.passes(deny);
    if json {
        print_json(&serde_json::json!({ "ok": passed, "package": pkg.info.id, "lint": report }));
    } else {
        print!("{}", render::lint(&report, passed));
    }
    Ok(if passed { 0 } else { 3 })
}

fn digest(dir: &Path, explain: bool, json: bool) -> Result<u8, Failure> {
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
    Ok(0)
}

fn review(
    dir: &Path,
    target: Option<&str>,
    format: ReviewFormat,
    output: Option<&Path>,
    json: bool,
) -> Result<u8, Failure> {
    let pkg = Package::load(dir)?;
    let lint = sluice::lint::lint(&pkg, None)?;
    let mut review = sluice::review::build(&pkg, lint);
    if let Some(spec) = target {
        let target = Target::resolve(Some(spec))?;
        review.live = Some(sluice::review::evaluate_live(&pkg, &target)?);
    }
    let text = if format == ReviewFormat::Json || json {
        serde_json::to_string_pretty(&review).map_err(|e| Failure::new(1, e.to_string()))?
    } else {
        sluice::review::markdown::render(&review)
    };
    match output {
        Some(path) => {
            std::fs::write(path, &text)
                .map_err(|e| Failure::new(1, format!("cannot write {}: {e}", path.display())))?;
            eprintln!("wrote the review package to {}", path.display());
        }
        None => print!("{text}{}", if text.ends_with('\n') { "" } else { "\n" }),
    }
    let live_holds = review.live.as_ref().is_none_or(|l| l.holds());
    if !live_holds {
        eprintln!("the target is not ready: identity or preflight does not hold (see §7)");
    }
    Ok(if live_holds { 0 } else { 3 })
}
