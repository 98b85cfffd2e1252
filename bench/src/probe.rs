//! probe: a table of N rows `(id bigint, updated_at timestamptz, payload text)` and a change that
//! touches 10% of them. sluice: pre capture + post capture compared as it streams, each in a child
//! process whose peak memory is measured. Baseline (the seed's C-04/C-08/§5): COPY … ORDER BY id
//! to CSV before and after, `diff | wc -l`, and the min/max/distinct queries.

use crate::harness::{err, median, report, Bench, Outcome, Result};
use sluice::package::Probe;
use sluice::probe::{Earlier, KeyOrder, Sessions};
use std::path::Path;
use std::time::Instant;

const DB: &str = "bench_probe";

fn probe() -> Probe {
    Probe {
        id: "bench".into(),
        table: "public.big".into(),
        key: vec!["id".into()],
        columns: vec!["updated_at".into()],
        expect_changed: None,
    }
}

/// `sluice-bench probe-child CONNINFO OUT_CSV [PRE_CSV PRE_ORDER]`: one capture (printing its key
/// order), or one capture compared with a pre capture as it streams (printing the changed rows),
/// in its own process so that its peak memory can be read.
pub fn child(args: &[String]) -> i32 {
    let run = || -> Result<()> {
        let rows = sluice::target::Target::local(&args[0]).map_err(err("conninfo"))?;
        let mut client = rows.connect("work").map_err(err("connect"))?;
        let mut aux = rows.connect("helper").map_err(err("connect"))?;
        let sessions = Sessions {
            work: &mut client,
            stats: Some(&mut aux),
            rows: Some(&rows),
            rows_from_bytes: sluice::probe::OWN_CONNECTION_FROM_BYTES,
        };
        let file = std::fs::File::create(&args[1]).map_err(err("create"))?;
        match (args.get(2), args.get(3)) {
            (Some(pre), Some(order)) => {
                let order = if order == "numeric" {
                    KeyOrder::Numeric
                } else {
                    KeyOrder::Bytes
                };
                let earlier = Earlier {
                    csv: Path::new(pre),
                    order: Some(order),
                };
                let (_, diff) = sluice::probe::capture_compared(sessions, &probe(), file, earlier)
                    .map_err(err("capture"))?;
                println!("{}", diff.changed);
            }
            _ => {
                let capture =
                    sluice::probe::capture(sessions, &probe(), file).map_err(err("capture"))?;
                let order = match capture.key_order {
                    KeyOrder::Numeric => "numeric",
                    KeyOrder::Bytes => "bytes",
                };
                println!("{order}");
            }
        }
        // the peak of this process's own memory (VmHWM), after exec: what sluice itself used
        let status = std::fs::read_to_string("/proc/self/status").map_err(err("status"))?;
        let peak = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .unwrap_or("0 kB")
            .trim()
            .trim_end_matches(" kB")
            .trim()
            .to_string();
        println!("peak_kib={peak}");
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// Runs a child and returns (seconds, its own peak memory in KiB, its first output line).
fn timed_child(args: &[&str]) -> Result<(f64, i64, String)> {
    let started = Instant::now();
    let out = std::process::Command::new(std::env::current_exe().map_err(err("self"))?)
        .arg("probe-child")
        .args(args)
        .output()
        .map_err(err("child"))?;
    let elapsed = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "probe child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let peak = stdout
        .lines()
        .find_map(|l| l.strip_prefix("peak_kib="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let first = stdout
        .lines()
        .find(|l| !l.starts_with("peak_kib="))
        .unwrap_or("")
        .trim()
        .to_string();
    Ok((elapsed, peak, first))
}

pub fn run(bench: &Bench) -> Result<Outcome> {
    let rows: i64 = if bench.full { 10_000_000 } else { 1_000_000 };
    eprintln!("probe: building {rows} rows…");
    let mut admin = bench.client("postgres")?;
    admin
        .batch_execute(&format!("CREATE DATABASE {DB}"))
        .map_err(err("create database"))?;
    let mut c = bench.client(DB)?;
    c.batch_execute(&format!(
        "CREATE TABLE public.big (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL, payload text);
         INSERT INTO public.big SELECT g, timestamptz '2026-01-01' + (g % 1000) * interval '1 minute', md5(g::text) FROM generate_series(1, {rows}) g;"
    ))
    .map_err(err("build the table"))?;
    c.batch_execute("VACUUM ANALYZE public.big")
        .map_err(err("vacuum"))?;
    let change =
        "UPDATE public.big SET updated_at = updated_at + interval '1 second' WHERE id % 10 = 0";
    let undo =
        "UPDATE public.big SET updated_at = updated_at - interval '1 second' WHERE id % 10 = 0";
    let conninfo = bench.conninfo(DB);
    let dir = bench.scratch.path();
    let (pre, post) = (dir.join("pre.csv"), dir.join("post.csv"));
    let (mut ours, mut theirs, mut changed, mut peak_kib) =
        (Vec::new(), Vec::new(), String::new(), 0);
    for _ in 0..bench.runs {
        let (t1, rss1, order) = timed_child(&[&conninfo, pre.to_str().unwrap_or_default()])?;
        c.batch_execute(change).map_err(err("change"))?;
        let (t2, rss2, out) = timed_child(&[
            &conninfo,
            post.to_str().unwrap_or_default(),
            pre.to_str().unwrap_or_default(),
            &order,
        ])?;
        c.batch_execute(undo).map_err(err("undo"))?;
        ours.push(t1 + t2);
        peak_kib = peak_kib.max(rss1).max(rss2);
        changed = out;

        let stats = "psql -XtAc \"SELECT min(updated_at), max(updated_at), count(DISTINCT updated_at) FROM public.big\" > /dev/null";
        let copy = |file: &str| {
            format!("psql -XtAc \"COPY (SELECT id, updated_at FROM public.big ORDER BY id) TO STDOUT WITH CSV HEADER\" > {file}")
        };
        let b1 = bench.timed_shell(DB, &format!("{} && {stats}", copy("base_pre.csv")))?;
        c.batch_execute(change).map_err(err("change"))?;
        let b2 = bench.timed_shell(DB, &format!("{} && {stats} && {{ diff base_pre.csv base_post.csv || test $? -eq 1; }} | wc -l > changed.txt", copy("base_post.csv")))?;
        c.batch_execute(undo).map_err(err("undo"))?;
        theirs.push(b1 + b2);
    }
    let expected = rows / 10;
    if changed != expected.to_string() {
        return Err(format!(
            "sluice counted {changed} changed rows, not {expected}"
        ));
    }
    Ok(report(
        "probe",
        median(ours),
        median(theirs),
        "≤ 0.5, peak ≤ 256 MiB (full)",
        format!(
            "rows={rows} changed={changed} peak_rss_mib={:.1}",
            peak_kib as f64 / 1024.0
        ),
    ))
}
