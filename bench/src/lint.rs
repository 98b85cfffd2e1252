//! lint-20k: `sluice lint FILE.sql` on 20,000 mixed statements (ADD COLUMN, CREATE INDEX,
//! UPDATE … WHERE, CREATE TABLE) against squawk (PyPI `squawk-cli`, installed by the benchmark
//! into its own virtualenv under `target/bench-venv`). Both read the same file; both find
//! hazards in it, so both exit non-zero — only the time counts. The growth is reported too:
//! sluice's time at 1k, 5k, 10k and 20k statements, which must grow linearly (issue #18).

use crate::harness::{err, median, report, Bench, Outcome, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const SIZES: [usize; 4] = [1_000, 5_000, 10_000, 20_000];

/// `n` statements, four kinds in turn, on a table that exists before the migration.
fn migration(n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        let r = i / 4;
        let stmt = match i % 4 {
            0 => format!("ALTER TABLE public.t ADD COLUMN c{r} integer;"),
            1 => format!("CREATE INDEX i{r} ON public.t (c{r});"),
            2 => format!("UPDATE public.t SET c{r} = id WHERE id > {r};"),
            _ => format!("CREATE TABLE public.n{r} (id bigint PRIMARY KEY, v text);"),
        };
        out.push_str(&stmt);
        out.push('\n');
    }
    out
}

/// The squawk binary of the benchmark's own virtualenv, installed on first use.
fn squawk() -> Result<PathBuf> {
    let venv = Path::new("target/bench-venv/squawk");
    let bin = venv.join("bin/squawk");
    if bin.is_file() {
        return Ok(bin);
    }
    install_step(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
    install_step(Command::new(venv.join("bin/pip")).args(["install", "--quiet", "squawk-cli"]))?;
    Ok(bin)
}

fn install_step(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().map_err(err("install squawk"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "install squawk: {:?} failed: {}",
            cmd,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Wall time of one lint; a crash (a signal, or an exit code a lint never gives) is an error.
fn timed(cmd: &mut Command) -> Result<f64> {
    let started = Instant::now();
    let out = cmd.output().map_err(err("lint"))?;
    let took = started.elapsed().as_secs_f64();
    match out.status.code() {
        Some(0..=3) => Ok(took),
        _ => Err(format!(
            "{:?} failed ({}): {}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

pub fn run(bench: &Bench) -> Result<Outcome> {
    let sluice = crate::apply::sluice_binary()?;
    let squawk = squawk()?;
    let version = Command::new(&squawk)
        .arg("--version")
        .output()
        .map_err(err("squawk --version"))?;
    eprintln!(
        "lint-20k: {}",
        String::from_utf8_lossy(&version.stdout).trim()
    );
    let mut growth: Vec<(usize, f64)> = Vec::new();
    let mut squawk_20k = f64::NAN;
    for n in SIZES {
        let file = bench.scratch.path().join(format!("lint-{n}.sql"));
        std::fs::write(&file, migration(n)).map_err(err("write the migration"))?;
        let times = (0..bench.runs)
            .map(|_| timed(Command::new(&sluice).arg("lint").arg(&file)))
            .collect::<Result<Vec<_>>>()?;
        growth.push((n, median(times)));
        if n == 20_000 {
            let times = (0..bench.runs)
                .map(|_| timed(Command::new(&squawk).arg(&file)))
                .collect::<Result<Vec<_>>>()?;
            squawk_20k = median(times);
        }
    }
    let per_1k = |&(n, secs): &(usize, f64)| secs / (n as f64 / 1000.0);
    let figures: Vec<String> = growth
        .iter()
        .map(|g| format!("sluice_{}k={:.3} ({:.4} s/1k)", g.0 / 1000, g.1, per_1k(g)))
        .collect();
    let sluice_20k = growth.last().map_or(f64::NAN, |g| g.1);
    Ok(report(
        "lint-20k",
        sluice_20k,
        squawk_20k,
        "≤ 0.5, linear",
        figures.join(" "),
    ))
}
