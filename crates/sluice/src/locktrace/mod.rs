//! The lock trace of a rehearsal's migration: after each statement, inside the migration's own
//! transaction, what the session newly holds (from `pg_locks`, with PostgreSQL's conflict table
//! saying what each mode blocks), whether a relation was rewritten (its filenode changed),
//! sequential scans, rows, WAL, the statement's time and how long each lock is then held until
//! COMMIT; after COMMIT, the growth of the touched tables. Measured on the restored copy, so
//! what a reviewer reads is what the statement did to production's data, not a guess.
//!
//! Only the rehearsal traces ([`crate::migration::MigrationRun::trace`]); a production apply
//! runs the untraced path. The trace runs the same statements in the same transaction with the
//! same expectations; its probe takes no lock ([`probe`]) and its own time is measured, reported,
//! and left out of every hold time.

pub(crate) mod budget;
pub mod compare;
mod probe;
pub mod render;
mod sample;

use crate::expect::TextRows;
use crate::source::SourceFile;
use crate::sql::locks::LockMode;
use crate::sql::names::SearchPath;
use crate::sql::Statement;
use pg_query::NodeEnum;
pub use probe::probe_sql;
use probe::{RelationMap, SeenLock};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How a lock came to be in the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockSource {
    /// Read from `pg_locks` between statements, inside the transaction.
    Probed,
    /// `transaction = "none"`: seen by the sampler while the statement ran.
    Sampled,
    /// `transaction = "none"`: the statement was too fast for the sampler to see a lock on a
    /// relation; these are the locks lint predicts for it, held for its whole duration.
    Predicted,
}

/// The trace of one migration run (the attempt that committed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockTrace {
    /// `transaction = "none"`: each statement ran and committed on its own; its locks were
    /// sampled while it ran and were held for its duration.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub autocommit: bool,
    /// Whether sequential scans were counted: the transaction's counters are read before the
    /// first statement (READ COMMITTED only: under REPEATABLE READ or SERIALIZABLE that read
    /// would take the transaction's snapshot before the migration's first statement does), and
    /// never in autocommit.
    #[serde(default)]
    pub scans_measured: bool,
    pub statements: Vec<StatementTrace>,
    /// BEGIN to the end of COMMIT, µs.
    pub total_us: u64,
    pub commit_us: u64,
    /// WAL the transaction wrote (`pg_current_wal_insert_lsn` before BEGIN and after COMMIT;
    /// other sessions of the throwaway cluster, e.g. autovacuum, may add a little).
    pub wal_bytes: u64,
    /// Size before and after of each pre-existing table the migration locked.
    pub tables: Vec<TableGrowth>,
    pub tracer: TracerCost,
}

/// What one statement did, measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementTrace {
    /// 1-based, among the migration's statements.
    pub number: usize,
    pub line: usize,
    pub column: usize,
    /// The statement on one line, shortened.
    pub text: String,
    pub duration_us: u64,
    /// Rows the statement touched (its command tag), for statements that touch rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    pub wal_bytes: u64,
    /// The locks the session holds after it and did not hold before it.
    pub locks: Vec<TracedLock>,
    /// Relations whose storage it replaced (a rewrite: the filenode changed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rewritten: Vec<Rewrite>,
    /// Sequential scans it made of pre-existing tables (`pg_stat_get_xact_numscans`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seq_scans: Vec<SeqScan>,
    /// `transaction = "none"`: the phases of a `CREATE INDEX CONCURRENTLY`, as sampled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<Phase>,
    /// `transaction = "none"`: locks the statement waited for, as sampled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waited_for: Vec<String>,
    /// `transaction = "none"`: how many times the sampler looked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<u32>,
}

/// A phase of `pg_stat_progress_create_index`, with the highest (done, total) counts seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockers: Option<(i64, i64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<(i64, i64)>,
}

/// A lock the statement took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TracedLock {
    /// `relation`, `object`, `transactionid`, … (`pg_locks.locktype`).
    pub locktype: String,
    /// `schema.name` of a relation, the name of another object; empty for a transaction id.
    pub object: String,
    /// `table`, `index`, `sequence`, `schema`, … when the object has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_type: Option<String>,
    pub mode: LockMode,
    /// The ordinary statements that wait while this mode is held on the object's table
    /// (PostgreSQL's conflict table, [`LockMode::blocks`]).
    #[serde(default)]
    pub blocks: Vec<String>,
    /// The relation existed before the migration (production's sessions use it).
    pub pre_existing: bool,
    /// The table of an index, toast table or owned sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// From the start of the statement that took it to the end of COMMIT, the tracer's own
    /// time left out, µs: an upper bound.
    pub held_us: u64,
    pub source: LockSource,
}

impl TracedLock {
    /// The table whose sessions wait for this lock: the object itself, or the table of an index,
    /// toast table or sequence.
    pub(crate) fn affected_table(&self) -> Option<&str> {
        match self.object_type.as_deref() {
            Some("table") | Some("partitioned table") | Some("materialized view") => {
                Some(&self.object)
            }
            _ => self.table.as_deref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rewrite {
    pub relation: String,
    pub object_type: String,
    pub filenode_before: u64,
    pub filenode_after: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeqScan {
    pub table: String,
    pub scans: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableGrowth {
    pub table: String,
    pub table_bytes: [i64; 2],
    pub index_bytes: [i64; 2],
}

/// What the tracing itself cost; only `probe_us` is inside the transaction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TracerCost {
    pub probes: u32,
    pub probe_us: u64,
    /// The relation map before BEGIN.
    pub map_us: u64,
    pub map_relations: usize,
    /// WAL and sizes after COMMIT.
    pub finish_us: u64,
    /// `transaction = "none"`: samples taken, and their time (on the other session).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub samples: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sample_us: u64,
}

fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

/// Why a traced statement failed: the statement itself, or the probe after it.
pub enum Traced {
    Statement(postgres::Error),
    Probe(postgres::Error),
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

/// One statement as the probe left it, until COMMIT gives the hold times.
struct Pending {
    trace: StatementTrace,
    started: Instant,
    /// The locks first seen after it.
    locks: Vec<(SeenLock, LockSource)>,
    /// How long the probe after it took (zero in autocommit, where no probe is inside a lock).
    probe: Duration,
    /// `transaction = "none"`: every lock was held for the statement's duration.
    held_us: Option<u64>,
}

/// Traces one run of the migration: [`Tracer::start`] before BEGIN, [`Tracer::statement`] for
/// each statement inside the transaction, [`Tracer::finish`] after COMMIT.
pub struct Tracer {
    autocommit: bool,
    scans_measured: bool,
    search_path: SearchPath,
    map: RelationMap,
    wal_start: u64,
    cost: TracerCost,
    held: BTreeSet<(String, Option<u32>, String)>,
    filenodes: BTreeMap<u32, Option<u64>>,
    scans: BTreeMap<u32, i64>,
    wal_last: u64,
    pending: Vec<Pending>,
}

impl Tracer {
    /// Reads the relation map and the WAL position, in autocommit before BEGIN (or, for
    /// `transaction = "none"`, before the first statement). `search_path` qualifies the names
    /// of the locks lint predicts for a statement too fast to sample.
    pub fn start(
        client: &mut postgres::Client,
        autocommit: bool,
        search_path: &SearchPath,
    ) -> Result<Tracer, postgres::Error> {
        let started = Instant::now();
        let probe::Before {
            map,
            lsn: wal_start,
            isolation,
        } = probe::before(client)?;
        let cost = TracerCost {
            map_us: micros(started.elapsed()),
            map_relations: map.len(),
            ..TracerCost::default()
        };
        let filenodes = map.iter().map(|(oid, r)| (*oid, r.filenode)).collect();
        Ok(Tracer {
            autocommit,
            scans_measured: !autocommit && isolation == "read committed",
            search_path: search_path.clone(),
            map,
            wal_start,
            cost,
            held: BTreeSet::new(),
            filenodes,
            scans: BTreeMap::new(),
            wal_last: wal_start,
            pending: Vec::new(),
        })
    }

    /// Forgets a rolled-back attempt; the next starts from the map again.
    pub fn reset(&mut self, client: &mut postgres::Client) -> Result<(), postgres::Error> {
        self.wal_start = probe::wal_position(client)?;
        self.wal_last = self.wal_start;
        self.held.clear();
        self.filenodes = self.map.iter().map(|(oid, r)| (*oid, r.filenode)).collect();
        self.scans.clear();
        self.pending.clear();
        self.cost.probes = 0;
        self.cost.probe_us = 0;
        Ok(())
    }

    /// Reads the transaction's sequential-scan counters of every table before the first
    /// statement, in READ COMMITTED (each statement takes its own snapshot, so this read changes
    /// nothing the migration sees). The counters also hold scans of the session's earlier
    /// transactions not yet flushed to the statistics (the pre snapshot's row counts), so a
    /// scan is a difference from here, never a count from zero.
    pub(crate) fn scan_baseline(
        &mut self,
        tx: &mut postgres::Transaction<'_>,
    ) -> Result<(), postgres::Error> {
        if !self.scans_measured {
            return Ok(());
        }
        let started = Instant::now();
        let tables: Vec<u32> = self
            .map
            .iter()
            .filter(|(_, r)| r.kind == "table")
            .map(|(oid, _)| *oid)
            .collect();
        for w in probe::watch(tx, &tables)? {
            self.scans.insert(w.oid, w.seq_scans);
        }
        self.cost.probe_us += micros(started.elapsed());
        Ok(())
    }

    /// Runs one statement in `tx` (the same simple-protocol Query the untraced path sends),
    /// then probes. Returns the rows of the last statement.
    pub fn statement(
        &mut self,
        tx: &mut postgres::Transaction<'_>,
        source: &SourceFile,
        stmt: &Statement,
        is_last: bool,
    ) -> Result<Option<TextRows>, Traced> {
        let started = Instant::now();
        let messages = tx.simple_query(&stmt.text).map_err(Traced::Statement)?;
        let duration = started.elapsed();
        let rows = touches_rows(&stmt.node).then(|| command_rows(&messages));
        let last = is_last.then(|| crate::target::collect_text_rows(messages));
        let probe_started = Instant::now();
        let (seen, watched, wal) = probe::locks(tx).map_err(Traced::Probe)?;
        let new: Vec<SeenLock> = seen
            .into_iter()
            .filter(|l| self.held.insert(l.key()))
            .collect();
        let probe = probe_started.elapsed();
        self.cost.probes += 1;
        self.cost.probe_us += micros(probe);
        let mut trace = self.next_statement(source, stmt, duration, rows.flatten(), wal);
        self.observe(&watched, &mut trace);
        self.pending.push(Pending {
            trace,
            started,
            locks: new.into_iter().map(|l| (l, LockSource::Probed)).collect(),
            probe,
            held_us: None,
        });
        Ok(last)
    }

    /// The trace of the statement that just ran, before its locks: where it is, how long it
    /// took, its rows and the WAL written since the previous one.
    fn next_statement(
        &mut self,
        source: &SourceFile,
        stmt: &Statement,
        duration: Duration,
        rows: Option<u64>,
        wal: u64,
    ) -> StatementTrace {
        let location = source.locate(stmt.start);
        let trace = StatementTrace {
            number: self.pending.len() + 1,
            line: location.line,
            column: location.column,
            text: stmt.headline(),
            duration_us: micros(duration),
            rows,
            wal_bytes: wal.saturating_sub(self.wal_last),
            locks: Vec::new(),
            rewritten: Vec::new(),
            seq_scans: Vec::new(),
            phases: Vec::new(),
            waited_for: Vec::new(),
            samples: None,
        };
        self.wal_last = wal.max(self.wal_last);
        trace
    }

    /// Pre-existing relations locked so far, and the indexes, toast tables and sequences of the
    /// tables among them: the relations whose rewrite or scan the next probe looks for.
    fn watch_set(&self) -> Vec<u32> {
        let locked: BTreeSet<u32> = self
            .held
            .iter()
            .filter(|(locktype, oid, _)| locktype == "relation" && oid.is_some())
            .filter_map(|(_, oid, _)| *oid)
            .filter(|oid| self.map.contains_key(oid))
            .collect();
        self.map
            .iter()
            .filter(|(oid, rel)| {
                locked.contains(oid) || rel.owner_table.is_some_and(|t| locked.contains(&t))
            })
            .map(|(oid, _)| *oid)
            .collect()
    }

    fn observe(&mut self, watched: &[probe::Watched], trace: &mut StatementTrace) {
        for w in watched {
            let Some(rel) = self.map.get(&w.oid) else {
                continue;
            };
            let before = self.filenodes.get(&w.oid).copied().flatten();
            if let (Some(before), Some(after)) = (before, w.filenode) {
                if before != after {
                    trace.rewritten.push(Rewrite {
                        relation: rel.name.clone(),
                        object_type: rel.kind.clone(),
                        filenode_before: before,
                        filenode_after: after,
                    });
                }
            }
            self.filenodes.insert(w.oid, w.filenode);
            let Some(scans_before) = self.scans.insert(w.oid, w.seq_scans) else {
                continue; // no baseline: not counted (see scan_baseline)
            };
            if self.scans_measured && rel.kind == "table" && w.seq_scans > scans_before {
                trace.seq_scans.push(SeqScan {
                    table: rel.name.clone(),
                    scans: w.seq_scans - scans_before,
                });
            }
        }
        // tables first, then their indexes and toast, each by name: the same order every run
        trace.rewritten.sort_by(|a, b| {
            (a.object_type != "table", &a.relation).cmp(&(b.object_type != "table", &b.relation))
        });
        trace.seq_scans.sort_by(|a, b| a.table.cmp(&b.table));
    }

    /// After COMMIT: the hold times, the WAL written and the growth of the touched tables.
    pub fn finish(
        self,
        begun: Instant,
        committed: Instant,
        commit: Duration,
        client: &mut postgres::Client,
    ) -> Result<LockTrace, postgres::Error> {
        let finishing = Instant::now();
        let wal_end = probe::wal_position(client)?;
        let touched: Vec<u32> = self
            .pending
            .iter()
            .flat_map(|p| p.locks.iter().map(|(l, _)| l))
            .filter(|l| l.locktype == "relation")
            .filter_map(|l| l.oid)
            .filter(|oid| self.map.get(oid).is_some_and(|r| r.kind == "table"))
            .collect::<BTreeSet<u32>>()
            .into_iter()
            .collect();
        let after = probe::sizes(client, &touched)?;
        let tables = touched
            .iter()
            .filter_map(|oid| {
                let rel = &self.map[oid];
                let (table_after, index_after) = after.get(oid).copied().unwrap_or((0, 0));
                Some(TableGrowth {
                    table: rel.name.clone(),
                    table_bytes: [rel.table_bytes?, table_after],
                    index_bytes: [rel.index_bytes?, index_after],
                })
            })
            .collect();
        let mut cost = self.cost.clone();
        cost.finish_us = micros(finishing.elapsed());
        // the probes from a statement's own to the last one ran while its locks were held
        let mut probing = Duration::ZERO;
        let mut statements: Vec<StatementTrace> = self
            .pending
            .iter()
            .rev()
            .map(|p| {
                probing += p.probe;
                self.completed(p, committed, probing)
            })
            .collect();
        statements.reverse();
        Ok(LockTrace {
            autocommit: self.autocommit,
            scans_measured: self.scans_measured,
            statements,
            total_us: micros(committed.saturating_duration_since(begun)),
            commit_us: micros(commit),
            wal_bytes: wal_end.saturating_sub(self.wal_start),
            tables,
            tracer: cost,
        })
    }

    /// A statement's trace with each of its locks' hold time: from the statement's start to the
    /// end of COMMIT, less the probes run meanwhile.
    fn completed(
        &self,
        pending: &Pending,
        committed: Instant,
        probing: Duration,
    ) -> StatementTrace {
        let held_us = pending.held_us.unwrap_or_else(|| {
            micros(committed.saturating_duration_since(pending.started))
                .saturating_sub(micros(probing))
        });
        let mut trace = pending.trace.clone();
        trace.locks = pending
            .locks
            .iter()
            .filter_map(|(l, source)| self.traced(l, held_us, *source))
            .collect();
        trace.locks.sort_by(|a, b| {
            (b.pre_existing, b.mode, &a.object).cmp(&(a.pre_existing, a.mode, &b.object))
        });
        trace
    }

    fn traced(&self, seen: &SeenLock, held_us: u64, source: LockSource) -> Option<TracedLock> {
        let mode = LockMode::from_pg(&seen.mode)?;
        let known = seen
            .oid
            .filter(|_| seen.locktype == "relation")
            .and_then(|oid| self.map.get(&oid));
        let table = known
            .and_then(|r| r.owner_table)
            .and_then(|t| self.map.get(&t))
            .map(|t| t.name.clone());
        Some(TracedLock {
            locktype: seen.locktype.clone(),
            object: seen
                .name
                .clone()
                .or_else(|| known.map(|r| r.name.clone()))
                .or_else(|| seen.oid.map(|o| format!("oid {o}")))
                .unwrap_or_default(),
            object_type: seen
                .object_type
                .clone()
                .or_else(|| known.map(|r| r.kind.clone())),
            mode,
            // the statement classes are about tables; an xid or object lock is not one
            blocks: if seen.locktype == "relation" {
                mode.blocks().into_iter().map(str::to_string).collect()
            } else {
                Vec::new()
            },
            pre_existing: known.is_some(),
            table,
            held_us,
            source,
        })
    }
}

/// Statements whose command tag counts the rows they touched.
fn touches_rows(node: &NodeEnum) -> bool {
    matches!(
        node,
        NodeEnum::InsertStmt(_)
            | NodeEnum::UpdateStmt(_)
            | NodeEnum::DeleteStmt(_)
            | NodeEnum::MergeStmt(_)
            | NodeEnum::SelectStmt(_)
            | NodeEnum::CreateTableAsStmt(_)
            | NodeEnum::CopyStmt(_)
    )
}

fn command_rows(messages: &[postgres::SimpleQueryMessage]) -> Option<u64> {
    messages.iter().rev().find_map(|m| match m {
        postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
        _ => None,
    })
}

/// Hand-built traces for the unit tests of this module's parts.
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;

    /// A probed lock on the relation `object` (a `kind`: `table`, `index`, …).
    pub fn lock(
        object: &str,
        kind: &str,
        mode: LockMode,
        pre_existing: bool,
        held_us: u64,
    ) -> TracedLock {
        TracedLock {
            locktype: "relation".into(),
            object: object.into(),
            object_type: Some(kind.into()),
            mode,
            blocks: vec![],
            pre_existing,
            table: None,
            held_us,
            source: LockSource::Probed,
        }
    }

    /// The statement at `line` that took `locks`, 1 ms long, touching no rows.
    pub fn statement(line: usize, text: &str, locks: Vec<TracedLock>) -> StatementTrace {
        StatementTrace {
            number: 1,
            line,
            column: 1,
            text: text.into(),
            duration_us: 1_000,
            rows: None,
            wal_bytes: 0,
            locks,
            rewritten: vec![],
            seq_scans: vec![],
            phases: vec![],
            waited_for: vec![],
            samples: None,
        }
    }

    /// A single-transaction trace of `statements`, scans counted.
    pub fn trace(statements: Vec<StatementTrace>) -> LockTrace {
        LockTrace {
            autocommit: false,
            scans_measured: true,
            statements,
            total_us: 0,
            commit_us: 0,
            wal_bytes: 0,
            tables: vec![],
            tracer: TracerCost::default(),
        }
    }

    /// A rewrite of the table `relation`.
    pub fn rewrite(relation: &str) -> Rewrite {
        Rewrite {
            relation: relation.into(),
            object_type: "table".into(),
            filenode_before: 1,
            filenode_after: 2,
        }
    }
}
