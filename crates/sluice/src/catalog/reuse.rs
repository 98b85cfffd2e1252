//! A snapshot taken after an earlier one (apply's post snapshot after its pre snapshot) that
//! reads again only the tables whose catalog rows changed, and takes the columns, indexes and
//! constraints of the others from the earlier snapshot.
//!
//! Every catalog row carries `xmin`, the transaction that wrote that version of it; an update
//! writes a new version. A row version the earlier snapshot could not see has an `xmin` at or
//! after that snapshot's `xmin` horizon (the oldest transaction still running when it was
//! taken), so "written since" is a test on `xmin` alone — `age(xmin)` at most the horizon's
//! age, both taken in the later transaction —, true also of some rows the earlier snapshot did
//! see (only costing a re-read). A table's columns, indexes and constraints are read again
//! when any of these was written since or is gone:
//!
//! - its `pg_class` row, its `pg_attribute`, `pg_attrdef`, `pg_constraint` and `pg_inherits`
//!   rows, the `pg_index` and `pg_class` rows of its indexes and their `pg_inherits` rows (a
//!   dropped index or constraint is seen by its table's count of them);
//! - the same of a table one of its foreign keys references, of the table of a constraint or
//!   index its own are attached to (their names are in its definitions).
//!
//! Tables whose objects hold a deparsed expression (a default, a generated column, a check or
//! exclusion constraint, an expression or partial index, which can name any object) and tables
//! with an index being built or dropped (its flags change in place, without a new row version)
//! are always read again, and so are materialized views. Everything is read again — the
//! earlier snapshot is not used — when a name the definitions print could have changed
//! elsewhere: a schema, type, function or operator that existed was altered, or any collation,
//! operator class or access method was written, or extension membership changed, or the
//! ignored schemas differ. The other kinds (tables, types, views, functions, triggers,
//! sequences, schemas, extensions) are always read whole. The tests compare the result with a
//! full snapshot after migrations of every kind of change.

use postgres::Transaction;
use std::collections::{HashMap, HashSet};

use super::{Column, Constraint, Index, Snapshot, Table};

/// What a snapshot records of its tables, to be the earlier snapshot of another.
#[derive(Debug, Default, Clone)]
pub(super) struct Ledger {
    /// Table OID → (schema, name).
    tables: HashMap<u32, (String, String)>,
    /// Table OID → how many indexes and constraints it has.
    indexes: HashMap<u32, usize>,
    constraints: HashMap<u32, usize>,
    /// Tables always read again (see the module's documentation).
    always: HashSet<u32>,
}

impl Ledger {
    pub fn table(&mut self, oid: u32, table: &Table) {
        self.tables
            .insert(oid, (table.schema.clone(), table.name.clone()));
    }

    pub fn index(&mut self, table: u32) {
        *self.indexes.entry(table).or_default() += 1;
    }

    pub fn constraint(&mut self, table: u32) {
        *self.constraints.entry(table).or_default() += 1;
    }

    /// The table's objects hold something that can change without a row of its own being
    /// written (an expression, an index's flags): a later snapshot always reads it again.
    pub(crate) fn always_read(&mut self, table: u32) {
        self.always.insert(table);
    }

    pub(crate) fn absorb(&mut self, other: Ledger) {
        self.tables.extend(other.tables);
        for (table, n) in other.indexes {
            *self.indexes.entry(table).or_default() += n;
        }
        for (table, n) in other.constraints {
            *self.constraints.entry(table).or_default() += n;
        }
        self.always.extend(other.always);
    }
}

/// An earlier snapshot's bookkeeping: what [`changed_tables`] compares against.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// The earlier snapshot's `xmin` horizon, as a 32-bit transaction id.
    horizon: i64,
    /// The highest OID of pg_namespace, pg_type, pg_proc and pg_operator then: a row at or
    /// below it that was written since is an altered object that existed.
    existed: [i64; 4],
    ignore: Vec<String>,
    ledger: Ledger,
}

/// The earlier snapshot's horizon and highest OIDs, read in its transaction.
pub(super) fn baseline(
    tx: &mut Transaction<'_>,
    ignore: &[String],
    ledger: Ledger,
) -> Result<Baseline, postgres::Error> {
    let row = tx.query_one(
        "SELECT pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text::int8 \
                % 4294967296, \
                (SELECT pg_catalog.max(oid)::int8 FROM pg_catalog.pg_namespace), \
                (SELECT pg_catalog.max(oid)::int8 FROM pg_catalog.pg_type), \
                (SELECT pg_catalog.max(oid)::int8 FROM pg_catalog.pg_proc), \
                (SELECT pg_catalog.max(oid)::int8 FROM pg_catalog.pg_operator)",
        &[],
    )?;
    Ok(Baseline {
        horizon: row.get(0),
        existed: [row.get(1), row.get(2), row.get(3), row.get(4)],
        ignore: ignore.to_vec(),
        ledger,
    })
}

/// `alias`'s row version was written at or after the horizon: its `age` (transactions between
/// its `xmin` and now, modulo 2³²; the frozen and bootstrap ids are oldest of all) is at most
/// the horizon's, `$1`, taken in the same transaction (now is fixed within it).
fn written_since(alias: &str) -> String {
    format!("pg_catalog.age({alias}.xmin) <= $1")
}

/// The horizon's age now, or `None` when it cannot serve (older than 2³¹ transactions).
fn horizon_age(
    tx: &mut Transaction<'_>,
    baseline: &Baseline,
) -> Result<Option<i32>, postgres::Error> {
    let age: i32 = tx
        .query_one(
            "SELECT pg_catalog.age($1::text::pg_catalog.xid)",
            &[&baseline.horizon.to_string()],
        )?
        .get(0);
    Ok(Some(age).filter(|age| *age >= 0))
}

/// Whether something the definitions print could have changed outside the tables' own rows
/// (then the earlier snapshot is not used at all).
fn names_changed(
    tx: &mut Transaction<'_>,
    baseline: &Baseline,
    age: i32,
) -> Result<bool, postgres::Error> {
    let altered = |catalog: &str, n: usize| {
        format!(
            "EXISTS (SELECT 1 FROM pg_catalog.{catalog} x WHERE x.oid::int8 <= ${n} AND {})",
            written_since("x")
        )
    };
    let written = |catalog: &str| {
        format!(
            "EXISTS (SELECT 1 FROM pg_catalog.{catalog} x WHERE {})",
            written_since("x")
        )
    };
    let sql = format!(
        "SELECT {} OR {} OR {} OR {} OR {} OR {} OR {} OR \
                EXISTS (SELECT 1 FROM pg_catalog.pg_depend x \
                         WHERE x.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass \
                           AND x.deptype = 'e' AND {})",
        altered("pg_namespace", 2),
        altered("pg_type", 3),
        altered("pg_proc", 4),
        altered("pg_operator", 5),
        written("pg_collation"),
        written("pg_opclass"),
        written("pg_am"),
        written_since("x"),
    );
    let [namespace, types, procs, operators] = baseline.existed;
    Ok(tx
        .query_one(&sql, &[&age, &namespace, &types, &procs, &operators])?
        .get(0))
}

/// The tables to read again (OIDs), or `None` when the earlier snapshot cannot be used.
pub(super) fn changed_tables(
    tx: &mut Transaction<'_>,
    ignore: &[String],
    baseline: &Baseline,
) -> Result<Option<Vec<u32>>, postgres::Error> {
    if baseline.ignore != ignore {
        return Ok(None);
    }
    let Some(age) = horizon_age(tx, baseline)? else {
        return Ok(None);
    };
    if names_changed(tx, baseline, age)? {
        return Ok(None);
    }
    let since = written_since;
    // pg_class is read once: tables (and materialized views, always read again) directly,
    // indexes for their tables
    let sql = format!(
        "WITH class AS ( \
           SELECT c.oid, c.relkind FROM pg_catalog.pg_class c WHERE {c} OR c.relkind = 'm'), \
         direct AS ( \
           SELECT oid FROM class WHERE relkind NOT IN ('i', 'I') \
           UNION SELECT a.attrelid FROM pg_catalog.pg_attribute a WHERE {a} \
           UNION SELECT d.adrelid FROM pg_catalog.pg_attrdef d WHERE {d} \
           UNION SELECT k.conrelid FROM pg_catalog.pg_constraint k WHERE {k} \
           UNION SELECT h.inhrelid FROM pg_catalog.pg_inherits h WHERE {h} \
           UNION SELECT i.indrelid FROM pg_catalog.pg_index i \
                  WHERE {i} OR NOT i.indisvalid OR NOT i.indisready \
                     OR i.indexrelid IN (SELECT oid FROM class) \
           UNION SELECT i.indrelid FROM pg_catalog.pg_inherits h \
                   JOIN pg_catalog.pg_index i ON i.indexrelid = h.inhrelid WHERE {h}) \
         SELECT oid FROM direct \
         UNION SELECT k.conrelid FROM pg_catalog.pg_constraint k \
                WHERE k.confrelid IN (SELECT oid FROM direct) \
                   OR k.conparentid IN (SELECT p.oid FROM pg_catalog.pg_constraint p \
                                         WHERE p.conrelid IN (SELECT oid FROM direct)) \
         UNION SELECT i.indrelid FROM pg_catalog.pg_inherits h \
                 JOIN pg_catalog.pg_index i ON i.indexrelid = h.inhrelid \
                WHERE h.inhparent IN (SELECT p.indexrelid FROM pg_catalog.pg_index p \
                                       WHERE p.indrelid IN (SELECT oid FROM direct))",
        c = since("c"),
        a = since("a"),
        d = since("d"),
        k = since("k"),
        h = since("h"),
        i = since("i"),
    );
    let mut changed: HashSet<u32> = tx.query(&sql, &[&age])?.iter().map(|r| r.get(0)).collect();
    let ledger = &baseline.ledger;
    changed.extend(ledger.always.iter().copied());
    let counted = [
        (
            "SELECT i.indrelid, pg_catalog.count(*) FROM pg_catalog.pg_index i GROUP BY 1",
            &ledger.indexes,
        ),
        (
            "SELECT k.conrelid, pg_catalog.count(*) FROM pg_catalog.pg_constraint k \
              WHERE k.contype <> 'n' AND k.conrelid <> 0 GROUP BY 1",
            &ledger.constraints,
        ),
    ];
    for (sql, before) in counted {
        let now: HashMap<u32, i64> = tx
            .query(sql, &[])?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        for table in ledger.tables.keys() {
            let then = before.get(table).copied().unwrap_or(0);
            if now.get(table).copied().unwrap_or(0) != then as i64 {
                changed.insert(*table);
            }
        }
    }
    let mut changed: Vec<u32> = changed.into_iter().collect();
    changed.sort_unstable();
    Ok(Some(changed))
}

/// Adds to `now` (the later snapshot, whose per-table kinds were read only for `changed`) the
/// columns, indexes and constraints of every other table from `then`, the earlier snapshot.
/// Returns how many tables were taken over, or `None` when a table that did not change is not
/// where the earlier snapshot had it (then the caller reads everything).
pub(super) fn take_over(
    now: &mut Snapshot,
    now_ledger: &Ledger,
    changed: &[u32],
    then: &Snapshot,
    baseline: &Baseline,
) -> Option<usize> {
    let changed: HashSet<u32> = changed.iter().copied().collect();
    let mut kept: HashSet<(&str, &str)> = HashSet::new();
    for (oid, (schema, name)) in &now_ledger.tables {
        if changed.contains(oid) {
            continue;
        }
        match baseline.ledger.tables.get(oid) {
            Some((was_schema, was_name)) if was_schema == schema && was_name == name => {
                kept.insert((schema.as_str(), name.as_str()));
            }
            // a table the earlier snapshot did not list, or listed under another name,
            // without any row of it written since: not a state this can explain
            _ => return None,
        }
    }
    let of = |schema: &str, table: &str| kept.contains(&(schema, table));
    now.columns.extend(
        then.columns
            .iter()
            .filter(|c: &&Column| of(&c.schema, &c.table))
            .cloned(),
    );
    now.indexes.extend(
        then.indexes
            .iter()
            .filter(|i: &&Index| of(&i.schema, &i.table))
            .cloned(),
    );
    now.constraints.extend(
        then.constraints
            .iter()
            .filter(|k: &&Constraint| of(&k.schema, &k.table))
            .cloned(),
    );
    Some(kept.len())
}
