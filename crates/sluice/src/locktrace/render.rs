//! The lock trace in words, one line per statement, as the review, `sluice rehearse` and the
//! run report show it: "line 16 `ALTER TABLE …` — 2.1 ms; ACCESS EXCLUSIVE on public.t (blocks
//! every read and write) held 41 ms until COMMIT; no rewrite".

use super::{LockSource, LockTrace, StatementTrace, TracedLock};
use crate::sql::locks::LockMode;

/// `0.4 ms`, `12 ms`, `1.3 s`.
pub fn duration(us: u64) -> String {
    match us {
        0..=9_999 => format!("{:.1} ms", us as f64 / 1000.0),
        10_000..=9_999_999 => format!("{} ms", us / 1000),
        _ => format!("{:.1} s", us as f64 / 1_000_000.0),
    }
}

/// `812 B`, `12.5 kB`, `3.4 MB`, `1.2 GB`.
pub fn bytes(n: i64) -> String {
    let f = n as f64;
    match n.unsigned_abs() {
        0..=999 => format!("{n} B"),
        1_000..=999_999 => format!("{:.1} kB", f / 1e3),
        1_000_000..=999_999_999 => format!("{:.1} MB", f / 1e6),
        _ => format!("{:.1} GB", f / 1e9),
    }
}

/// What the statements before this one left held, for reading this one's locks in context.
#[derive(Debug, Default)]
pub struct Earlier {
    /// Per table: the strongest mode held so far, and the line of the statement that took it.
    strongest: std::collections::BTreeMap<String, (LockMode, usize)>,
    /// Relations the migration created in an earlier statement.
    created: std::collections::BTreeSet<String>,
    /// Each statement commits on its own (`transaction = "none"`): nothing is held over.
    autocommit: bool,
}

impl Earlier {
    fn absorb(&mut self, s: &StatementTrace) {
        if self.autocommit {
            return;
        }
        for lock in s.locks.iter().filter(|l| is_relation(l)) {
            if !lock.pre_existing {
                self.created.insert(lock.object.clone());
            }
            if let Some(table) = lock.affected_table() {
                let held = self
                    .strongest
                    .entry(table.to_string())
                    .or_insert((lock.mode, s.line));
                if lock.mode > held.0 {
                    *held = (lock.mode, s.line);
                }
            }
        }
    }

    /// The stronger lock an earlier statement took on this lock's table, if any.
    fn covering(&self, lock: &TracedLock) -> Option<(LockMode, usize)> {
        let table = lock.affected_table()?;
        self.strongest
            .get(table)
            .copied()
            .filter(|(mode, _)| *mode > lock.mode)
    }
}

/// A lock on a relation production's sessions use, and what they wait for while it is held.
fn held_lock(lock: &TracedLock, earlier: &Earlier) -> String {
    let on = match (&lock.object_type, &lock.table) {
        (Some(kind), Some(table)) if kind != "table" => {
            format!("{kind} {} (of {table})", lock.object)
        }
        _ => lock.object.clone(),
    };
    let until = match lock.source {
        LockSource::Probed => "until COMMIT",
        LockSource::Sampled => "(its own transaction)",
        LockSource::Predicted => "(its own transaction; predicted by lint, too fast to sample)",
    };
    let effect = match earlier.covering(lock) {
        // what this mode alone would let through is already blocked by the earlier lock
        Some((mode, line)) => format!("under the {mode} held since line {line}"),
        None => lock.mode.blocks_phrase().to_string(),
    };
    format!(
        "{} on {on} ({effect}) held {} {until}",
        lock.mode,
        duration(lock.held_us)
    )
}

fn is_relation(lock: &TracedLock) -> bool {
    lock.locktype == "relation"
}

/// An index, toast table or sequence lock no stronger than a lock the same statement took on its
/// table: said as a count, not one by one.
fn folded(lock: &TracedLock, all: &[TracedLock]) -> bool {
    let Some(table) = lock.table.as_deref() else {
        return false;
    };
    lock.object_type.as_deref() != Some("table")
        && all
            .iter()
            .any(|t| is_relation(t) && t.object == table && t.mode >= lock.mode)
}

/// Relations the migration created in this statement: nobody else can see them before COMMIT,
/// so their locks block nothing; named once each, toast relations counted.
fn created_here(relations: &[&TracedLock]) -> Option<String> {
    let mut named: Vec<&str> = Vec::new();
    let mut toast = std::collections::BTreeSet::new();
    for lock in relations.iter().filter(|l| !l.pre_existing) {
        if lock.object.starts_with("pg_toast.") {
            toast.insert(lock.object.as_str());
        } else if !named.contains(&lock.object.as_str()) {
            named.push(&lock.object);
        }
    }
    if named.is_empty() && toast.is_empty() {
        return None;
    }
    let mut text = format!("created here: {}", named.join(", "));
    if !toast.is_empty() {
        text.push_str(&format!(" (+{} toast)", toast.len()));
    }
    Some(text)
}

fn other_lock(lock: &TracedLock) -> String {
    match lock.locktype.as_str() {
        "transactionid" => "transaction id assigned".into(),
        _ => format!(
            "{} on {}{}",
            lock.mode,
            lock.object_type
                .as_deref()
                .map(|k| format!("{k} "))
                .unwrap_or_default(),
            lock.object
        ),
    }
}

/// Every statement of the trace in words, each read after the ones before it.
pub(crate) fn statement_lines(t: &LockTrace) -> Vec<String> {
    let mut earlier = Earlier {
        autocommit: t.autocommit,
        ..Earlier::default()
    };
    t.statements
        .iter()
        .map(|s| {
            let line = statement_line_after(s, &earlier);
            earlier.absorb(s);
            line
        })
        .collect()
}

/// One statement of the trace in words, as if it were the first.
pub fn statement_line(s: &StatementTrace) -> String {
    statement_line_after(s, &Earlier::default())
}

fn statement_line_after(s: &StatementTrace, earlier: &Earlier) -> String {
    let mut parts = vec![duration(s.duration_us)];
    if let Some(rows) = s.rows {
        parts.push(format!("{rows} row{}", if rows == 1 { "" } else { "s" }));
    }
    let relations: Vec<&TracedLock> = s.locks.iter().filter(|l| is_relation(l)).collect();
    let existing: Vec<&TracedLock> = relations
        .iter()
        .copied()
        .filter(|l| l.pre_existing)
        .collect();
    let folded_count = existing.iter().filter(|l| folded(l, &s.locks)).count();
    for lock in existing.iter().filter(|l| !folded(l, &s.locks)) {
        parts.push(held_lock(lock, earlier));
    }
    let made_before: Vec<&TracedLock> = relations
        .iter()
        .copied()
        .filter(|l| !l.pre_existing && earlier.created.contains(&l.object))
        .collect();
    let made_here: Vec<&TracedLock> = relations
        .iter()
        .copied()
        .filter(|l| !l.pre_existing && !earlier.created.contains(&l.object))
        .collect();
    if let Some(created) = created_here(&made_here) {
        parts.push(created);
    }
    if !made_before.is_empty() {
        parts.push(format!(
            "locks on {} relation(s) this migration made earlier (no other session sees them before COMMIT)",
            made_before.len()
        ));
    }
    if relations.is_empty() {
        parts.push("no new lock".into());
    }
    if folded_count > 0 {
        parts.push(format!(
            "+{folded_count} index/toast/sequence lock{}",
            if folded_count == 1 { "" } else { "s" }
        ));
    }
    if s.rewritten.is_empty() {
        parts.push("no rewrite".into());
    } else {
        parts.push(format!(
            "REWRITE of {}",
            s.rewritten
                .iter()
                .map(|r| format!("{} ({})", r.relation, r.object_type))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for scan in &s.seq_scans {
        parts.push(format!("sequential scan of {}", scan.table));
    }
    if s.wal_bytes > 0 {
        parts.push(format!("WAL {}", bytes(s.wal_bytes as i64)));
    }
    if !s.phases.is_empty() {
        parts.push(format!(
            "phases: {}",
            s.phases
                .iter()
                .map(|p| p.phase.as_str())
                .collect::<Vec<_>>()
                .join(" → ")
        ));
    }
    if !s.waited_for.is_empty() {
        parts.push(format!("waited for {}", s.waited_for.join(", ")));
    }
    let others: Vec<String> = s
        .locks
        .iter()
        .filter(|l| !is_relation(l))
        .map(other_lock)
        .collect();
    if !others.is_empty() {
        parts.push(format!("other: {}", others.join(", ")));
    }
    format!("line {} `{}` — {}", s.line, s.text, parts.join("; "))
}

/// The whole run in one line: time, WAL, growth, the tracer's own cost.
pub(crate) fn totals_line(t: &LockTrace) -> String {
    let mut parts = vec![if t.autocommit {
        format!(
            "{} statement(s) in {}, each committed on its own",
            t.statements.len(),
            duration(t.total_us)
        )
    } else {
        format!(
            "{} statement(s) in {} (COMMIT {})",
            t.statements.len(),
            duration(t.total_us),
            duration(t.commit_us)
        )
    }];
    parts.push(format!("WAL {}", bytes(t.wal_bytes as i64)));
    for g in &t.tables {
        parts.push(format!(
            "{}: table {} → {}, indexes {} → {}",
            g.table,
            bytes(g.table_bytes[0]),
            bytes(g.table_bytes[1]),
            bytes(g.index_bytes[0]),
            bytes(g.index_bytes[1])
        ));
    }
    parts.push(format!(
        "tracer: {} probe(s), {} inside the transaction (left out of the hold times), relation map of {} relations {}, finish {}",
        t.tracer.probes,
        duration(t.tracer.probe_us),
        t.tracer.map_relations,
        duration(t.tracer.map_us),
        duration(t.tracer.finish_us)
    ));
    if t.tracer.samples > 0 {
        parts.push(format!(
            "{} lock sample(s) on a second session, {}",
            t.tracer.samples,
            duration(t.tracer.sample_us)
        ));
    }
    parts.join("; ")
}

/// The longest-held lock that blocks reads or writes of a pre-existing table, with its
/// statement.
pub(crate) fn longest_blocking(t: &LockTrace) -> Option<(&StatementTrace, &TracedLock)> {
    t.statements
        .iter()
        .flat_map(|s| s.locks.iter().map(move |l| (s, l)))
        .filter(|(_, l)| blocks_existing_traffic(l))
        // the first of equals: a table's lock before its indexes'
        .reduce(|best, next| {
            if next.1.held_us > best.1.held_us {
                next
            } else {
                best
            }
        })
}

/// A lock on a pre-existing table (or its index, toast table, sequence) that makes reads or
/// writes of it wait.
pub(crate) fn blocks_existing_traffic(lock: &TracedLock) -> bool {
    is_relation(lock)
        && lock.pre_existing
        && lock.affected_table().is_some()
        && (lock.mode.blocks_reads() || lock.mode.blocks_writes())
}

/// `sluice rehearse`'s one-line summary of a trace.
pub fn summary(t: &LockTrace) -> String {
    let longest = match longest_blocking(t) {
        Some((s, l)) => format!(
            "longest lock blocking reads or writes: {} on {} {} (line {})",
            l.mode,
            l.object,
            duration(l.held_us),
            s.line
        ),
        None => "no lock blocking reads or writes of an existing table".into(),
    };
    format!(
        "{} statement(s); {longest}; WAL {}; tracer {}",
        t.statements.len(),
        bytes(t.wal_bytes as i64),
        duration(t.tracer.probe_us)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locktrace::fixture;

    fn lock(
        object: &str,
        kind: &str,
        mode: LockMode,
        table: Option<&str>,
        pre: bool,
    ) -> TracedLock {
        TracedLock {
            table: table.map(str::to_string),
            ..fixture::lock(object, kind, mode, pre, 14_200)
        }
    }

    fn statement(locks: Vec<TracedLock>) -> StatementTrace {
        StatementTrace {
            duration_us: 2_000,
            ..fixture::statement(
                12,
                "ALTER TABLE public.tac_logical_unit ADD COLUMN authority text",
                locks,
            )
        }
    }

    #[test]
    fn a_statement_reads_as_its_locks_and_their_hold() {
        let s = statement(vec![lock(
            "public.tac_logical_unit",
            "table",
            LockMode::AccessExclusive,
            None,
            true,
        )]);
        assert_eq!(
            statement_line(&s),
            "line 12 `ALTER TABLE public.tac_logical_unit ADD COLUMN authority text` — 2.0 ms; ACCESS EXCLUSIVE on public.tac_logical_unit (blocks every read and write) held 14 ms until COMMIT; no rewrite"
        );
    }

    #[test]
    fn rows_created_objects_folded_indexes_and_rewrites() {
        let mut s = statement(vec![
            lock("public.t", "table", LockMode::AccessExclusive, None, true),
            lock(
                "public.t_pkey",
                "index",
                LockMode::AccessExclusive,
                Some("public.t"),
                true,
            ),
            lock(
                "public.ix_new",
                "index",
                LockMode::AccessExclusive,
                None,
                false,
            ),
        ]);
        s.rows = Some(86);
        s.rewritten.push(fixture::rewrite("public.t"));
        let line = statement_line(&s);
        assert!(line.contains("; 86 rows;"), "{line}");
        assert!(line.contains("; created here: public.ix_new;"), "{line}");
        assert!(line.contains("+1 index/toast/sequence lock;"), "{line}");
        assert!(line.contains("REWRITE of public.t (table)"), "{line}");
        let trace = fixture::trace(vec![s]);
        let (_, longest) = longest_blocking(&trace).unwrap();
        assert_eq!(longest.object, "public.t");
        assert!(summary(&trace).contains("ACCESS EXCLUSIVE on public.t 14 ms (line 12)"));
    }

    #[test]
    fn a_weaker_lock_under_an_earlier_stronger_one_says_so() {
        let first = statement(vec![lock(
            "public.t",
            "table",
            LockMode::AccessExclusive,
            None,
            true,
        )]);
        let mut second = statement(vec![lock(
            "public.t",
            "table",
            LockMode::RowExclusive,
            None,
            true,
        )]);
        second.line = 20;
        let trace = fixture::trace(vec![first, second]);
        let lines = statement_lines(&trace);
        assert!(
            lines[1].contains(
                "ROW EXCLUSIVE on public.t (under the ACCESS EXCLUSIVE held since line 12)"
            ),
            "{}",
            lines[1]
        );
        assert!(!lines[1].contains("reads and writes go on"), "{}", lines[1]);
    }
}
