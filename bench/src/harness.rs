//! What every benchmark shares: the throwaway cluster, the client tools, running the baseline's
//! shell commands against it, medians, and the BENCH line.

use sluice::backup::ClientTools;
use sluice::cluster::{Cluster, ClusterOptions};
use std::process::Command;
use std::time::Instant;

pub type Result<T> = std::result::Result<T, String>;

/// An error with what was being done; PostgreSQL's own message for database errors.
pub fn err<E: std::error::Error + 'static>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| match (&e as &dyn std::error::Error).downcast_ref::<postgres::Error>() {
        Some(pg) => format!("{what}: {}", sluice::target::pg_message(pg)),
        None => format!("{what}: {e}"),
    }
}

pub struct Bench {
    pub cluster: Cluster,
    pub tools: ClientTools,
    pub full: bool,
    pub runs: usize,
    pub scratch: tempfile::TempDir,
}

/// One benchmark's result.
pub struct Outcome {
    pub name: &'static str,
    pub sluice: f64,
    pub baseline: f64,
    pub goal: &'static str,
    pub extra: String,
}

impl Bench {
    pub fn start(full: bool) -> Result<Bench> {
        let explicit = std::env::var_os("SLUICE_PG_BINDIR").map(std::path::PathBuf::from);
        // the seed's production version when it is installed, else whatever is found
        let bins = sluice::cluster::find_server(explicit.as_deref(), Some(16))
            .or_else(|_| sluice::cluster::find_server(explicit.as_deref(), None))
            .map_err(err("server binaries"))?;
        let mut options = ClusterOptions::new(bins);
        // the server's default max_locks_per_transaction (issue #18: 10,000 tables must not need
        // it raised), and a bit of memory for sorts
        options.settings = vec![
            ("shared_buffers".into(), "256MB".into()),
            ("work_mem".into(), "64MB".into()),
            ("maintenance_work_mem".into(), "256MB".into()),
            ("max_wal_size".into(), "4GB".into()),
        ];
        let cluster = Cluster::start(options).map_err(err("cluster"))?;
        let tools = sluice::backup::find_tools(None).map_err(err("client tools"))?;
        let scratch = tempfile::Builder::new()
            .prefix("sluice-bench-")
            .tempdir()
            .map_err(err("scratch"))?;
        Ok(Bench {
            cluster,
            tools,
            full,
            // SLUICE_BENCH_RUNS=1 for a quick look; the recorded figures are the median of 3
            runs: std::env::var("SLUICE_BENCH_RUNS")
                .ok()
                .and_then(|n| n.parse().ok())
                .filter(|&n| n > 0)
                .unwrap_or(3),
            scratch,
        })
    }

    pub fn conninfo(&self, db: &str) -> String {
        self.cluster.conninfo(db, self.cluster.superuser())
    }

    pub fn client(&self, db: &str) -> Result<postgres::Client> {
        self.cluster.connect(db).map_err(err("connect"))
    }

    /// A shell command with libpq pointed at the cluster and the client tools on PATH first.
    pub fn shell(&self, db: &str, script: &str) -> Command {
        let mut cmd = Command::new("bash");
        let path = format!(
            "{}:{}",
            self.tools.bindir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.args(["-euo", "pipefail", "-c", script])
            .env("PATH", path)
            .env("PGHOST", self.cluster.socket_dir())
            .env("PGPORT", self.cluster.port().to_string())
            .env("PGUSER", self.cluster.superuser())
            .env("PGDATABASE", db)
            .current_dir(self.scratch.path());
        cmd
    }

    /// Runs a shell script and returns its wall time.
    pub fn timed_shell(&self, db: &str, script: &str) -> Result<f64> {
        let started = Instant::now();
        let out = self.shell(db, script).output().map_err(err("bash"))?;
        if !out.status.success() {
            return Err(format!(
                "baseline script failed: {}\n{script}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(started.elapsed().as_secs_f64())
    }
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    xs[xs.len() / 2]
}

/// Prints the BENCH line and returns the outcome.
pub fn report(
    name: &'static str,
    sluice: f64,
    baseline: f64,
    goal: &'static str,
    extra: String,
) -> Outcome {
    println!(
        "BENCH {name} sluice={sluice:.3} baseline={baseline:.3} ratio={:.3} {extra}",
        sluice / baseline
    );
    Outcome {
        name,
        sluice,
        baseline,
        goal,
        extra,
    }
}

pub fn seconds(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}
