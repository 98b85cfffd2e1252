//! `transaction = "none"`: each statement commits on its own, so its locks are gone before the
//! next one starts and cannot be read between statements. A second session samples the working
//! session's `pg_locks` every [`SAMPLE_EVERY`] while the statement runs, with the phases of a
//! `CREATE INDEX CONCURRENTLY` from `pg_stat_progress_create_index`. A lock shorter than the
//! interval can be missed: a statement whose sampling saw no lock on a relation gets the locks
//! lint predicts for it ([`LockSource::Predicted`](super::LockSource::Predicted)), so a budget is
//! never passed by a lock nobody saw.

use super::Phase;
use postgres::{Client, SimpleQueryMessage};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the sampler reads the working session's locks.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// What the samples of one statement saw.
#[derive(Debug, Default)]
pub struct Samples {
    pub count: u32,
    /// Granted locks.
    pub locks: BTreeSet<super::probe::SeenLock>,
    /// Locks the session waited for, in words.
    pub waited_for: BTreeSet<String>,
    pub phases: Vec<Phase>,
    /// Time spent sampling (on the other session; not inside the statement).
    pub spent: Duration,
}

fn sample_sql(pid: i32) -> String {
    format!(
        "SELECT l.locktype, l.mode, l.granted::text, coalesce(l.relation, l.objid)::int8, a.type,
                pg_catalog.array_to_string(a.object_names, '.'), l.virtualxid, l.transactionid::text
           FROM pg_catalog.pg_lock_status() AS l
           LEFT JOIN LATERAL (SELECT * FROM pg_catalog.pg_identify_object_as_address(
                    CASE WHEN l.locktype = 'relation' THEN 1259::oid ELSE l.classid END,
                    coalesce(l.relation, l.objid), coalesce(l.objsubid, 0)::int4)
                  WHERE l.locktype IN ('relation', 'object')) AS a ON true
          WHERE l.pid = {pid} AND (l.locktype <> 'virtualxid' OR NOT l.granted);
         SELECT phase, lockers_total::text, lockers_done::text, blocks_total::text, blocks_done::text
           FROM pg_catalog.pg_stat_progress_create_index WHERE pid = {pid}"
    )
}

/// Runs `statement` while `sampler` reads the locks of backend `pid`.
pub fn during<T>(sampler: &mut Client, pid: i32, statement: impl FnOnce() -> T) -> (T, Samples) {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let sampling = scope.spawn(|| sample_until(sampler, pid, &done));
        let result = statement();
        done.store(true, Ordering::Release);
        let samples = sampling.join().unwrap_or_default();
        (result, samples)
    })
}

fn sample_until(sampler: &mut Client, pid: i32, done: &AtomicBool) -> Samples {
    let sql = sample_sql(pid);
    let mut samples = Samples::default();
    while !done.load(Ordering::Acquire) {
        let started = Instant::now();
        match sampler.simple_query(&sql) {
            Ok(messages) => absorb(&mut samples, messages),
            Err(_) => break, // the sampler is a help; the statement's own result decides
        }
        samples.count += 1;
        let took = started.elapsed();
        samples.spent += took;
        if let Some(rest) = SAMPLE_EVERY.checked_sub(took) {
            std::thread::sleep(rest);
        }
    }
    samples
}

fn absorb(samples: &mut Samples, messages: Vec<SimpleQueryMessage>) {
    for message in messages {
        let SimpleQueryMessage::Row(row) = message else {
            continue;
        };
        let get = |i: usize| row.get(i).map(str::to_string);
        if row.len() == 5 {
            let phase = get(0).unwrap_or_default();
            let pair = |a: usize, b: usize| -> Option<(i64, i64)> {
                Some((row.get(a)?.parse().ok()?, row.get(b)?.parse().ok()?))
            };
            note_phase(samples, phase, pair(2, 1), pair(4, 3));
            continue;
        }
        let (locktype, mode) = (get(0).unwrap_or_default(), get(1).unwrap_or_default());
        let oid = row.get(3).and_then(|v| v.parse().ok());
        if get(2).as_deref() == Some("true") {
            samples.locks.insert(super::probe::SeenLock {
                locktype,
                mode,
                oid,
                object_type: get(4),
                name: get(5).filter(|n| !n.is_empty()),
            });
        } else {
            let what = get(5)
                .filter(|n| !n.is_empty())
                .or_else(|| get(6).map(|v| format!("virtual transaction {v}")))
                .or_else(|| get(7).map(|x| format!("transaction {x}")))
                .unwrap_or(locktype);
            samples.waited_for.insert(format!("{mode} on {what}"));
        }
    }
}

/// Phases in the order seen, each once, with the highest counts seen in it.
fn note_phase(
    samples: &mut Samples,
    phase: String,
    lockers: Option<(i64, i64)>,
    blocks: Option<(i64, i64)>,
) {
    let max = |a: Option<(i64, i64)>, b: Option<(i64, i64)>| match (a, b) {
        (Some(a), Some(b)) => Some((a.0.max(b.0), a.1.max(b.1))),
        (a, b) => a.or(b),
    };
    match samples.phases.last_mut() {
        Some(last) if last.phase == phase => {
            last.lockers = max(last.lockers, lockers.filter(|l| l.1 > 0));
            last.blocks = max(last.blocks, blocks.filter(|b| b.1 > 0));
        }
        _ => samples.phases.push(Phase {
            phase,
            lockers: lockers.filter(|l| l.1 > 0),
            blocks: blocks.filter(|b| b.1 > 0),
        }),
    }
}

impl super::Tracer {
    /// `transaction = "none"`: runs one statement in autocommit while `sampler` (when there is
    /// one) samples its locks, then reads on the working session, now outside any transaction,
    /// the WAL position and the filenodes of the relations it locked. Returns the rows of the
    /// last statement.
    pub(crate) fn autocommit_statement(
        &mut self,
        client: &mut Client,
        sampler: Option<(&mut Client, i32)>,
        source: &crate::source::SourceFile,
        stmt: &crate::sql::Statement,
        is_last: bool,
    ) -> Result<Option<crate::expect::TextRows>, super::Traced> {
        use super::{micros, LockSource, Pending, Traced};
        let started = Instant::now();
        let (result, samples) = match sampler {
            Some((sampler, pid)) => during(sampler, pid, || client.simple_query(&stmt.text)),
            None => (client.simple_query(&stmt.text), Samples::default()),
        };
        let duration = started.elapsed();
        let messages = result.map_err(Traced::Statement)?;
        let rows = super::touches_rows(&stmt.node).then(|| super::command_rows(&messages));
        let last = is_last.then(|| crate::target::collect_text_rows(messages));
        let probing = Instant::now();
        let mut locks: Vec<(super::SeenLock, LockSource)> = samples
            .locks
            .iter()
            .map(|lock| (lock.clone(), LockSource::Sampled))
            .collect();
        let unnamed: Vec<u32> = locks
            .iter()
            .filter(|(l, _)| l.locktype == "relation" && l.name.is_none())
            .filter_map(|(l, _)| l.oid)
            .collect();
        let named = super::probe::names(client, &unnamed).map_err(Traced::Probe)?;
        for (lock, _) in locks.iter_mut() {
            if let Some((kind, name)) = lock
                .oid
                .and_then(|o| named.get(&o))
                .filter(|_| lock.name.is_none())
            {
                lock.object_type = Some(kind.clone());
                lock.name = Some(name.clone());
            }
        }
        if !locks.iter().any(|(l, _)| l.locktype == "relation") {
            locks.extend(
                self.predicted(stmt)
                    .into_iter()
                    .map(|l| (l, LockSource::Predicted)),
            );
        }
        self.held = locks.iter().map(|(l, _)| l.key()).collect();
        let wal = super::probe::wal_position(client).map_err(Traced::Probe)?;
        let watched = super::probe::watch(client, &self.watch_set()).map_err(Traced::Probe)?;
        self.cost.probes += 1;
        self.cost.probe_us += micros(probing.elapsed());
        self.cost.samples += samples.count;
        self.cost.sample_us += micros(samples.spent);
        let mut trace = self.next_statement(source, stmt, duration, rows.flatten(), wal);
        trace.phases = samples.phases;
        trace.waited_for = samples.waited_for.into_iter().collect();
        trace.samples = Some(samples.count);
        self.observe(&watched, &mut trace);
        // sequential scans are counted per transaction; in autocommit each probe is its own
        trace.seq_scans.clear();
        self.pending.push(Pending {
            trace,
            started,
            locks,
            probe: Duration::ZERO,
            held_us: Some(micros(duration)),
        });
        Ok(last)
    }

    /// The locks lint predicts for a statement, as if read from `pg_locks`.
    fn predicted(&self, stmt: &crate::sql::Statement) -> Vec<super::SeenLock> {
        crate::sql::locks::statement_locks(&stmt.node, &self.search_path)
            .into_iter()
            .map(|lock| super::SeenLock {
                locktype: "relation".into(),
                mode: lock.mode.pg_name().into(),
                oid: self
                    .map
                    .iter()
                    .find(|(_, r)| r.name == lock.table)
                    .map(|(oid, _)| *oid),
                object_type: Some("table".into()),
                name: Some(lock.table),
            })
            .collect()
    }
}
