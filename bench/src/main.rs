//! `sluice-bench`: sluice against the hand-run procedure it replaces, each measured in the same
//! run on the same throwaway cluster (see bench/run.sh). One line per benchmark:
//! `BENCH <name> sluice=<s> baseline=<s> ratio=<sluice/baseline> <extra figures>`, then a table.

mod apply;
mod backup;
mod harness;
mod lint;
mod lock;
mod locktrace;
mod probe;
mod rehearse;
mod schema;

use harness::{Bench, Result};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("probe-child") {
        std::process::exit(probe::child(&args[2..]));
    }
    let full = args.iter().any(|a| a == "full") || args.iter().any(|a| a == "--scale=full");
    let only: Vec<String> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with("--") && *a != "small" && *a != "full")
        .cloned()
        .collect();
    match run(full, &only) {
        Ok(results) => print_table(&results),
        Err(e) => {
            eprintln!("sluice-bench: {e}");
            std::process::exit(1);
        }
    }
}

fn run(full: bool, only: &[String]) -> Result<Vec<harness::Outcome>> {
    let bench = Bench::start(full)?;
    eprintln!(
        "scale {}; PostgreSQL {} ({}); client tools {} ({})",
        if full { "full" } else { "small" },
        bench.cluster.binaries().version,
        bench.cluster.binaries().bindir.display(),
        bench.tools.version,
        bench.tools.bindir.display()
    );
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let mut results = Vec::new();
    if wanted("schema-snapshot-diff") {
        results.push(schema::run(&bench)?);
    }
    if wanted("probe") {
        results.push(probe::run(&bench)?);
    }
    if wanted("apply-end-to-end") {
        results.push(apply::run(&bench)?);
    }
    if wanted("lock-safety") {
        results.push(lock::run(&bench)?);
    }
    if wanted("backup-at-scale") {
        results.push(backup::run(&bench)?);
    }
    if wanted("rehearse-at-scale") {
        results.extend(rehearse::run(&bench)?);
    }
    if wanted("lint-20k") {
        results.push(lint::run(&bench)?);
    }
    if wanted("lock-trace-overhead") {
        results.extend(locktrace::run(&bench)?);
    }
    Ok(results)
}

fn print_table(results: &[harness::Outcome]) {
    println!();
    println!("| benchmark | sluice | baseline | ratio | goal | figures |");
    println!("|---|---|---|---|---|---|");
    for r in results {
        println!(
            "| {} | {:.3} s | {:.3} s | {:.3} | {} | {} |",
            r.name,
            r.sluice,
            r.baseline,
            r.sluice / r.baseline,
            r.goal,
            r.extra
        );
    }
}
