//! The streamed restore, and when the rehearsal chooses it. pg_dump's and pg_restore's jobs
//! work table by table: when one table holds most of the data, neither can split it, and a
//! dump followed by a restore pays for the two one after the other. Restoring the dump while
//! it is written overlaps them: pg_dump writes a custom-format file that one `pg_restore`
//! reads as it grows (schema and data, in the dump's order), and once both are done a second
//! `pg_restore` builds the indexes and constraints with one job per CPU, from the same file.
//! When the data is spread over many tables, the parallel dump and restore stay faster.

use super::restore::{
    judge_pg_restore, pg_restore, prepare_database, restore_jobs, run_pg_restore, start_cluster,
};
use super::{LiveTarget, RehearseError, RehearseOptions};
use crate::backup::{self, Compression, FollowError, Growing, WrittenCustom};
use crate::cluster::Cluster;
use crate::pipeline::Observer;
use crate::target::Target;
use postgres::Client;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How the rehearsal's data gets into its cluster (`sluice rehearse --restore`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestoreChoice {
    /// Streamed when one table holds most of the data, else after the dump.
    #[default]
    Auto,
    /// Restored while the dump is written.
    Streamed,
    /// Dumped with the package's `[backup]`, then restored with one job per CPU.
    AfterDump,
}

/// The size of the target's table data, from the catalog's page counts (what the last VACUUM
/// or ANALYZE saw; no table is locked or read to learn it).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct DataShape {
    pub(super) database_bytes: u64,
    pub(super) table_bytes: u64,
    pub(super) largest_table_bytes: u64,
}

impl DataShape {
    /// The largest table's share of the table data, in percent.
    fn largest_share(&self) -> u64 {
        (self.largest_table_bytes * 100)
            .checked_div(self.table_bytes)
            .unwrap_or(0)
    }
}

pub(super) fn data_shape(client: &mut Client) -> Result<DataShape, postgres::Error> {
    let row = client.query_one(
        "SELECT pg_catalog.pg_database_size(pg_catalog.current_database()),
                coalesce(sum(s.bytes), 0)::bigint, coalesce(max(s.bytes), 0)::bigint
           FROM (SELECT (c.relpages::bigint + coalesce(t.relpages, 0))
                        * pg_catalog.current_setting('block_size')::bigint AS bytes
                   FROM pg_catalog.pg_class c
                   LEFT JOIN pg_catalog.pg_class t ON t.oid = c.reltoastrelid
                  WHERE c.relkind = 'r'
                    AND c.relnamespace NOT IN (SELECT n.oid FROM pg_catalog.pg_namespace n
                          WHERE n.nspname IN ('pg_catalog', 'information_schema'))) s",
        &[],
    )?;
    let bytes = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
    Ok(DataShape {
        database_bytes: bytes(0),
        table_bytes: bytes(1),
        largest_table_bytes: bytes(2),
    })
}

/// Whether to stream, and why, in words for the record. Streaming wins when the jobs of a
/// parallel dump and restore could not run even one and a half tables' worth side by side:
/// one CPU, or one table holding more than two thirds of the data.
pub(super) fn streams(choice: RestoreChoice, shape: &DataShape, jobs: usize) -> (bool, String) {
    let share = shape.largest_share();
    match choice {
        RestoreChoice::Streamed => (true, "as asked (--restore streamed)".into()),
        RestoreChoice::AfterDump => (false, "as asked (--restore after-dump)".into()),
        RestoreChoice::Auto if jobs <= 1 => {
            (true, "one CPU: no job would run beside another".into())
        }
        RestoreChoice::Auto if share * 3 > 200 => (
            true,
            format!("its largest table holds {share}% of the table data, which no job splits"),
        ),
        RestoreChoice::Auto => (
            false,
            format!("its largest table holds {share}% of the table data: parallel jobs pay"),
        ),
    }
}

/// What the streamed dump and restore left: the cluster with the data restored, and their times.
pub(super) struct Streamed {
    pub(super) cluster: Cluster,
    pub(super) roles_made: String,
    pub(super) dump: WrittenCustom,
    pub(super) dump_took: Duration,
    /// When the first pg_restore started.
    pub(super) restore_started: Instant,
    /// How long the first pg_restore went on after the dump ended, and the second one took.
    pub(super) tail: Duration,
    pub(super) post_data: Duration,
}

/// Where and as whom the stream is restored.
pub(super) struct Destination<'a> {
    pub(super) role: &'a str,
    pub(super) dbname: &'a str,
    /// The dump file, written and read at once.
    pub(super) path: &'a Path,
    pub(super) compression: Compression,
}

/// Dumps `target` into `dest.path` while the rehearsal cluster is made and a pg_restore reads
/// the dump as it grows; then restores its post-data section with one job per CPU.
pub(super) fn dump_and_restore(
    target: &Target,
    live: &LiveTarget,
    opts: &RehearseOptions,
    dest: &Destination<'_>,
    observer: &dyn Observer,
) -> Result<Streamed, RehearseError> {
    let growing = Growing::default();
    let started = Instant::now();
    let progress =
        |bytes: u64| observer.progress("pg_dump", bytes, Some(live.shape.database_bytes));
    let (dumped, dump_took, restored) = std::thread::scope(|scope| {
        let restoring = scope.spawn(|| restore_as_written(live, opts, dest, &growing));
        let dumped = {
            let _ended = growing.end_on_drop();
            let dumped = backup::dump_followed(
                &live.tools,
                target,
                dest.compression,
                dest.path,
                &growing,
                &progress,
            );
            growing.end(dumped.is_ok());
            dumped
        };
        let dump_took = started.elapsed();
        let restored = restoring
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (dumped, dump_took, restored)
    });
    // the first to fail is the cause: a restore that failed stopped the dump
    let (dump, as_written) = match (dumped, restored) {
        (Ok(dump), Ok(as_written)) => (dump, as_written),
        (Err(e), Ok(_)) => return Err(e.into()),
        (Err(e), Err(_)) if !growing.follower_quit() => return Err(e.into()),
        (_, Err(e)) => return Err(e),
    };
    let tail = as_written
        .finished
        .saturating_duration_since(started + dump_took);
    let post_started = Instant::now();
    let mut command = pg_restore(&as_written.cluster, &live.tools, dest.dbname, true);
    command
        .arg("--section=post-data")
        .arg(format!("--jobs={}", restore_jobs()))
        .arg(dest.path);
    run_pg_restore(command)?;
    Ok(Streamed {
        restore_started: as_written.started,
        cluster: as_written.cluster,
        roles_made: as_written.roles_made,
        dump,
        dump_took,
        tail,
        post_data: post_started.elapsed(),
    })
}

/// The cluster once the dump's schema and data are restored from the stream.
struct AsWritten {
    cluster: Cluster,
    roles_made: String,
    /// When its pg_restore started and ended.
    started: Instant,
    finished: Instant,
}

/// Makes the rehearsal cluster, its roles and its database, then restores the dump's schema
/// and data as the dump is written. A failure here stops the dump.
fn restore_as_written(
    live: &LiveTarget,
    opts: &RehearseOptions,
    dest: &Destination<'_>,
    growing: &Growing,
) -> Result<AsWritten, RehearseError> {
    let restored = make_and_restore(live, opts, dest, growing);
    if restored.is_err() {
        growing.abandon();
    }
    restored
}

fn make_and_restore(
    live: &LiveTarget,
    opts: &RehearseOptions,
    dest: &Destination<'_>,
    growing: &Growing,
) -> Result<AsWritten, RehearseError> {
    let cluster = start_cluster(opts, live.identity.server_major())?;
    let roles_made = prepare_database(&cluster, &[], Some(&live.roles), (dest.role, dest.dbname))?;
    let started = Instant::now();
    let mut command = pg_restore(&cluster, &live.tools, dest.dbname, true);
    let mut child = command
        .args(["--section=pre-data", "--section=data"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RehearseError::Other(format!("cannot run pg_restore: {e}")))?;
    // read beside the feeding: a pg_restore blocked on a full stderr pipe would stop reading
    let stderr = child.stderr.take();
    let reading = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut stderr) = stderr {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    });
    let fed = match child.stdin.take() {
        // stdin is closed when the follower is done with it: pg_restore sees the dump's end
        Some(mut stdin) => growing.follow(dest.path, &mut stdin),
        None => Err(FollowError::Sink(std::io::ErrorKind::BrokenPipe.into())),
    };
    let status = child
        .wait()
        .map_err(|e| RehearseError::Other(format!("waiting for pg_restore: {e}")))?;
    let stderr = reading.join().unwrap_or_default();
    judge_pg_restore(status, &stderr)?;
    fed.map_err(|e| RehearseError::Other(format!("restoring the dump as it was written: {e}")))?;
    Ok(AsWritten {
        cluster,
        roles_made,
        started,
        finished: Instant::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(table: u64, largest: u64) -> DataShape {
        DataShape {
            database_bytes: table,
            table_bytes: table,
            largest_table_bytes: largest,
        }
    }

    #[test]
    fn one_table_holding_most_of_the_data_is_streamed() {
        let (streamed, why) = streams(RestoreChoice::Auto, &shape(1000, 700), 8);
        assert!(streamed, "{why}");
        assert!(why.contains("70%"), "{why}");
        let (streamed, why) = streams(RestoreChoice::Auto, &shape(1000, 600), 8);
        assert!(!streamed, "{why}");
        assert!(why.contains("60%"), "{why}");
    }

    #[test]
    fn one_cpu_streams_and_an_empty_catalog_does_not() {
        assert!(streams(RestoreChoice::Auto, &shape(1000, 10), 1).0);
        // never analyzed: nothing known, the parallel way
        assert!(!streams(RestoreChoice::Auto, &shape(0, 0), 2).0);
    }

    #[test]
    fn the_operator_s_choice_holds() {
        assert!(streams(RestoreChoice::Streamed, &shape(1000, 1), 8).0);
        assert!(!streams(RestoreChoice::AfterDump, &shape(1000, 1000), 1).0);
    }
}
