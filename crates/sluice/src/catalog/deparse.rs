//! Definitions of indexes and constraints written by sluice instead of `pg_get_indexdef` and
//! `pg_get_constraintdef`, for their common shapes.
//!
//! In a fresh session those functions cost ~35 µs and ~10 µs an object (system-cache misses,
//! each an index scan of a catalog): at 10,000 tables they were most of a snapshot's server
//! time. For a *plain* object the text is determined by names and flags the snapshot reads
//! anyway — the columns come from the columns query, keyed by table OID and attribute number,
//! every name quoted by the server's own `quote_ident` — and sluice writes it the way
//! PostgreSQL's `ruleutils.c` does:
//!
//! - an index: btree on table columns, no expression, predicate, storage options or
//!   `NULLS NOT DISTINCT`, not a partitioned index, each key column with its type's default
//!   operator class and its own collation: `CREATE [UNIQUE ]INDEX name ON schema.table USING
//!   btree (col[ DESC][ NULLS FIRST|LAST], …)[ INCLUDE (…)]`;
//! - a primary key or unique constraint without INCLUDE columns, `NULLS NOT DISTINCT` or
//!   `WITHOUT OVERLAPS`: `PRIMARY KEY (…)` / `UNIQUE (…)`;
//! - a foreign key without `PERIOD` or `ON DELETE SET NULL (cols)`: `FOREIGN KEY (…) REFERENCES
//!   schema.table(…)[ MATCH FULL][ ON UPDATE …][ ON DELETE …]`;
//!
//! each constraint followed by `[ DEFERRABLE][ INITIALLY DEFERRED][ NOT ENFORCED| NOT VALID]`.
//!
//! Anything else — and any plain object whose facts are not all at hand — gets the server's
//! function in the same transaction, so the text is always the server's own. The catalog tests
//! compare every definition with the server's on each supported version.

use postgres::Transaction;
use std::collections::HashMap;

use super::{Column, Snapshot};

/// `pg_index.indoption` bits (`catalog/pg_index.h`).
const INDOPTION_DESC: i16 = 0x0001;
const INDOPTION_NULLS_FIRST: i16 = 0x0002;

/// What a definition needs to know of a table column.
#[derive(Debug)]
pub(super) struct ColumnFact {
    /// Its position in the snapshot's `columns` (whose `name` is the column's name).
    pub at: usize,
    /// `quote_ident(attname)` when it is not the name itself.
    pub quoted: Option<String>,
    /// `atttypid`.
    pub type_oid: u32,
    /// `attcollation` (0 for a type without collation).
    pub collation: u32,
}

/// A plain index whose definition is left for [`complete`] to write.
#[derive(Debug)]
pub(super) struct PlainIndex {
    /// Its position in the snapshot's `indexes`.
    pub at: usize,
    pub oid: u32,
    pub table_oid: u32,
    /// `CREATE [UNIQUE ]INDEX name ON schema.table USING btree (`, quoted by the server.
    pub head: String,
    /// `indkey`: key columns, then INCLUDE columns.
    pub attnums: Vec<i16>,
    /// `indnkeyatts`.
    pub key_count: usize,
    /// `indclass`, `indcollation`, `indoption`: one per key column.
    pub opclasses: Vec<u32>,
    pub collations: Vec<u32>,
    pub options: Vec<i16>,
}

/// A plain primary key, unique or foreign key constraint whose definition is left for
/// [`complete`] to write.
#[derive(Debug)]
pub(super) struct PlainConstraint {
    /// Its position in the snapshot's `constraints`.
    pub at: usize,
    pub oid: u32,
    /// `p`, `u` or `f`.
    pub contype: String,
    pub table_oid: u32,
    /// `conkey`.
    pub columns: Vec<i16>,
    /// For a foreign key: the referenced table (`confrelid`), its name schema-qualified and
    /// quoted, `confkey`, and `confmatchtype`, `confupdtype`, `confdeltype`.
    pub references: Option<References>,
    pub deferrable: bool,
    pub deferred: bool,
    pub enforced: bool,
    pub validated: bool,
}

#[derive(Debug)]
pub(super) struct References {
    pub table_oid: u32,
    pub table: String,
    pub columns: Vec<i16>,
    pub match_type: String,
    pub on_update: String,
    pub on_delete: String,
}

/// What the queries of one snapshot gathered for the definitions left to write.
#[derive(Debug, Default)]
pub(super) struct Facts {
    pub columns: HashMap<(u32, i16), ColumnFact>,
    pub indexes: Vec<PlainIndex>,
    pub constraints: Vec<PlainConstraint>,
}

/// How many objects of each kind preceded another session's in the merged snapshot.
pub(super) struct Offsets {
    pub columns: usize,
    pub indexes: usize,
    pub constraints: usize,
}

impl Facts {
    /// Adds the facts gathered by another session of the same snapshot, whose objects were
    /// appended after those counted in `offsets`.
    pub(crate) fn absorb(&mut self, other: Facts, offsets: Offsets) {
        self.columns
            .extend(other.columns.into_iter().map(|(key, mut column)| {
                column.at += offsets.columns;
                (key, column)
            }));
        self.indexes
            .extend(other.indexes.into_iter().map(|mut index| {
                index.at += offsets.indexes;
                index
            }));
        self.constraints
            .extend(other.constraints.into_iter().map(|mut constraint| {
                constraint.at += offsets.constraints;
                constraint
            }));
    }
}

/// The columns a definition names: the facts, and the snapshot's columns they point into.
struct Columns<'a> {
    facts: &'a HashMap<(u32, i16), ColumnFact>,
    listed: &'a [Column],
}

impl Columns<'_> {
    fn get(&self, table_oid: u32, attnum: i16) -> Option<(&ColumnFact, &str)> {
        let fact = self.facts.get(&(table_oid, attnum))?;
        let quoted = match &fact.quoted {
            Some(quoted) => quoted.as_str(),
            None => self.listed.get(fact.at)?.name.as_str(),
        };
        Some((fact, quoted))
    }
}

/// How many definitions sluice wrote, and how many of the plain-looking ones it left to the
/// server (a non-default operator class or collation, a column the snapshot does not list).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub by_sluice: usize,
    pub by_server: usize,
}

/// How the definitions of a snapshot's indexes and constraints were written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Definitions {
    pub indexes: Written,
    pub constraints: Written,
}

/// Writes the definitions of the plain indexes and constraints into `snapshot` (at the
/// positions the facts recorded), asking the server in `tx` for those sluice cannot be sure of.
pub(super) fn complete(
    tx: &mut Transaction<'_>,
    snapshot: &mut Snapshot,
    facts: Facts,
) -> Result<Definitions, postgres::Error> {
    let mut written = Definitions::default();
    let columns = Columns {
        facts: &facts.columns,
        listed: &snapshot.columns,
    };
    if !facts.indexes.is_empty() {
        let defaults = default_opclasses(tx)?;
        let mut left = Vec::new();
        for index in &facts.indexes {
            match render_index(index, &columns, &defaults) {
                Some(text) => snapshot.indexes[index.at].definition = text,
                None => left.push((index.at, index.oid)),
            }
        }
        written.indexes = Written {
            by_sluice: facts.indexes.len() - left.len(),
            by_server: left.len(),
        };
        for (at, text) in ask_server(tx, "pg_get_indexdef", &left)? {
            snapshot.indexes[at].definition = text;
        }
    }
    let mut left = Vec::new();
    let mut by_sluice = 0;
    for constraint in &facts.constraints {
        match render_constraint(constraint, &columns) {
            Some(text) => {
                snapshot.constraints[constraint.at].definition = text;
                by_sluice += 1;
            }
            None => left.push((constraint.at, constraint.oid)),
        }
    }
    written.constraints = Written {
        by_sluice,
        by_server: left.len(),
    };
    for (at, text) in ask_server(tx, "pg_get_constraintdef", &left)? {
        snapshot.constraints[at].definition = text;
    }
    Ok(written)
}

/// `function(oid)` for each (position, oid) in `left`, in one query: (position, text).
fn ask_server(
    tx: &mut Transaction<'_>,
    function: &str,
    left: &[(usize, u32)],
) -> Result<Vec<(usize, String)>, postgres::Error> {
    if left.is_empty() {
        return Ok(Vec::new());
    }
    let oids: Vec<u32> = left.iter().map(|(_, oid)| *oid).collect();
    let rows = tx.query(
        &format!(
            "SELECT pg_catalog.{function}(o) FROM pg_catalog.unnest($1::pg_catalog.oid[]) \
               WITH ORDINALITY AS u(o, n) ORDER BY n"
        ),
        &[&oids],
    )?;
    Ok(left
        .iter()
        .zip(rows)
        .map(|((at, _), row)| (*at, row.get(0)))
        .collect())
}

/// The default btree operator class of each type that has exactly one of its own in
/// `pg_catalog` (`GetDefaultOpClass` returns an exact match first; those classes take no
/// options, so `pg_get_indexdef` prints no class for a column that uses it).
fn default_opclasses(tx: &mut Transaction<'_>) -> Result<HashMap<u32, u32>, postgres::Error> {
    let rows = tx.query(
        "SELECT c.opcintype, pg_catalog.min(c.oid) FROM pg_catalog.pg_opclass c \
           JOIN pg_catalog.pg_am am ON am.oid = c.opcmethod \
          WHERE am.amname = 'btree' AND c.opcdefault \
          GROUP BY c.opcintype \
         HAVING pg_catalog.count(*) = 1 \
            AND pg_catalog.bool_and(c.opcnamespace = 'pg_catalog'::pg_catalog.regnamespace)",
        &[],
    )?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The definition of `index` as `pg_get_indexdef` prints it, or `None` when a key column is
/// not plain (another operator class or collation) or a column's facts are missing.
fn render_index(
    index: &PlainIndex,
    columns: &Columns<'_>,
    defaults: &HashMap<u32, u32>,
) -> Option<String> {
    let keys = index.key_count;
    if keys == 0
        || index.head.is_empty()
        || keys > index.attnums.len()
        || index.opclasses.len() != keys
        || index.collations.len() != keys
        || index.options.len() != keys
    {
        return None;
    }
    let mut text = index.head.clone();
    for (n, attnum) in index.attnums.iter().enumerate() {
        let (column, quoted) = columns.get(index.table_oid, *attnum)?;
        if n == keys {
            text.push_str(") INCLUDE (");
        } else if n > 0 {
            text.push_str(", ");
        }
        text.push_str(quoted);
        if n < keys {
            let collation = index.collations[n];
            if collation != 0 && collation != column.collation {
                return None;
            }
            if defaults.get(&column.type_oid) != Some(&index.opclasses[n]) {
                return None;
            }
            text.push_str(sort_order(index.options[n]));
        }
    }
    text.push(')');
    Some(text)
}

/// A btree key column's ordering as `ruleutils.c` prints it: DESC implies NULLS FIRST.
fn sort_order(option: i16) -> &'static str {
    let desc = option & INDOPTION_DESC != 0;
    let nulls_first = option & INDOPTION_NULLS_FIRST != 0;
    match (desc, nulls_first) {
        (false, false) => "",
        (false, true) => " NULLS FIRST",
        (true, true) => " DESC",
        (true, false) => " DESC NULLS LAST",
    }
}

/// The definition of `constraint` as `pg_get_constraintdef` prints it, or `None` when a
/// column's facts are missing (a table the snapshot does not list) or a code is unknown.
fn render_constraint(constraint: &PlainConstraint, columns: &Columns<'_>) -> Option<String> {
    let mut text = String::with_capacity(64);
    match (constraint.contype.as_str(), &constraint.references) {
        ("p", None) => text.push_str("PRIMARY KEY ("),
        ("u", None) => text.push_str("UNIQUE ("),
        ("f", Some(_)) => text.push_str("FOREIGN KEY ("),
        _ => return None,
    }
    column_list(
        &mut text,
        constraint.table_oid,
        &constraint.columns,
        columns,
    )?;
    text.push(')');
    if let Some(references) = &constraint.references {
        text.push_str(" REFERENCES ");
        text.push_str(&references.table);
        text.push('(');
        column_list(
            &mut text,
            references.table_oid,
            &references.columns,
            columns,
        )?;
        text.push(')');
        text.push_str(match references.match_type.as_str() {
            "s" => "",
            "f" => " MATCH FULL",
            "p" => " MATCH PARTIAL",
            _ => return None,
        });
        for (clause, action) in [
            (" ON UPDATE ", &references.on_update),
            (" ON DELETE ", &references.on_delete),
        ] {
            let action = match action.as_str() {
                "a" => continue,
                "r" => "RESTRICT",
                "c" => "CASCADE",
                "n" => "SET NULL",
                "d" => "SET DEFAULT",
                _ => return None,
            };
            text.push_str(clause);
            text.push_str(action);
        }
    }
    if constraint.deferrable {
        text.push_str(" DEFERRABLE");
    }
    if constraint.deferred {
        text.push_str(" INITIALLY DEFERRED");
    }
    if !constraint.enforced {
        text.push_str(" NOT ENFORCED");
    } else if !constraint.validated {
        text.push_str(" NOT VALID");
    }
    Some(text)
}

/// `a, b, c`: the quoted names of `attnums` of table `table_oid`.
fn column_list(
    text: &mut String,
    table_oid: u32,
    attnums: &[i16],
    columns: &Columns<'_>,
) -> Option<()> {
    if attnums.is_empty() {
        return None;
    }
    for (n, attnum) in attnums.iter().enumerate() {
        if n > 0 {
            text.push_str(", ");
        }
        text.push_str(columns.get(table_oid, *attnum)?.1);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(quoted: &str, type_oid: u32, collation: u32) -> ColumnFact {
        ColumnFact {
            at: 0,
            quoted: Some(quoted.to_string()),
            type_oid,
            collation,
        }
    }

    fn index(attnums: Vec<i16>, key_count: usize, options: Vec<i16>) -> PlainIndex {
        let keys = key_count;
        PlainIndex {
            at: 0,
            oid: 1,
            table_oid: 10,
            head: "CREATE INDEX ix ON s.t USING btree (".into(),
            attnums,
            key_count,
            opclasses: vec![1978; keys],
            collations: vec![0; keys],
            options,
        }
    }

    fn facts() -> HashMap<(u32, i16), ColumnFact> {
        let mut facts: HashMap<(u32, i16), ColumnFact> = [
            ((10, 1), column("id", 20, 0)),
            ((10, 2), column("\"Name\"", 25, 100)),
            ((10, 3), column("n", 20, 0)),
            ((11, 1), column("id", 20, 0)),
        ]
        .into_iter()
        .collect();
        // a name that needs no quotes is read from the snapshot's column
        facts.get_mut(&(10, 3)).unwrap().quoted = None;
        facts.get_mut(&(10, 3)).unwrap().at = 1;
        facts
    }

    fn listed() -> Vec<Column> {
        ["id", "n"]
            .iter()
            .map(|name| Column::plain("s", "t", name, "bigint"))
            .collect()
    }

    fn columns<'a>(
        facts: &'a HashMap<(u32, i16), ColumnFact>,
        listed: &'a [Column],
    ) -> Columns<'a> {
        Columns { facts, listed }
    }

    fn defaults() -> HashMap<u32, u32> {
        [(20, 1978), (25, 3126)].into_iter().collect()
    }

    #[test]
    fn key_and_include_columns_with_their_orderings() {
        let plain = index(vec![1, 3, 2], 2, vec![0, 3]);
        assert_eq!(
            render_index(&plain, &columns(&facts(), &listed()), &defaults()).as_deref(),
            Some("CREATE INDEX ix ON s.t USING btree (id, n DESC) INCLUDE (\"Name\")")
        );
        let orders: Vec<&str> = (0..4).map(sort_order).collect();
        assert_eq!(orders, ["", " DESC NULLS LAST", " NULLS FIRST", " DESC"]);
    }

    #[test]
    fn another_operator_class_collation_or_a_missing_column_is_left_to_the_server() {
        let mut text = index(vec![2], 1, vec![0]);
        text.opclasses = vec![3126];
        text.collations = vec![100];
        assert!(render_index(&text, &columns(&facts(), &listed()), &defaults()).is_some());
        text.collations = vec![950];
        assert_eq!(
            render_index(&text, &columns(&facts(), &listed()), &defaults()),
            None,
            "COLLATE \"C\""
        );
        text.collations = vec![100];
        text.opclasses = vec![4217];
        assert_eq!(
            render_index(&text, &columns(&facts(), &listed()), &defaults()),
            None,
            "pattern ops"
        );
        let missing = index(vec![9], 1, vec![0]);
        assert_eq!(
            render_index(&missing, &columns(&facts(), &listed()), &defaults()),
            None
        );
        let mismatched = index(vec![1], 1, vec![]);
        assert_eq!(
            render_index(&mismatched, &columns(&facts(), &listed()), &defaults()),
            None
        );
    }

    fn foreign_key(on_update: &str, on_delete: &str) -> PlainConstraint {
        PlainConstraint {
            at: 0,
            oid: 2,
            contype: "f".into(),
            table_oid: 10,
            columns: vec![3, 1],
            references: Some(References {
                table_oid: 11,
                table: "s.\"Parent\"".into(),
                columns: vec![1, 1],
                match_type: "f".into(),
                on_update: on_update.into(),
                on_delete: on_delete.into(),
            }),
            deferrable: true,
            deferred: true,
            enforced: true,
            validated: false,
        }
    }

    #[test]
    fn constraints_with_their_actions_and_states() {
        assert_eq!(
            render_constraint(&foreign_key("a", "n"), &columns(&facts(), &listed())).as_deref(),
            Some(
                "FOREIGN KEY (n, id) REFERENCES s.\"Parent\"(id, id) MATCH FULL \
                 ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED NOT VALID"
            )
        );
        let mut key = foreign_key("c", "r");
        key.references = None;
        key.contype = "p".into();
        key.deferrable = false;
        key.deferred = false;
        key.enforced = false;
        assert_eq!(
            render_constraint(&key, &columns(&facts(), &listed())).as_deref(),
            Some("PRIMARY KEY (n, id) NOT ENFORCED")
        );
        let mut unknown = foreign_key("x", "a");
        assert_eq!(
            render_constraint(&unknown, &columns(&facts(), &listed())),
            None
        );
        unknown.references.as_mut().unwrap().table_oid = 99;
        assert_eq!(
            render_constraint(&unknown, &columns(&facts(), &listed())),
            None
        );
    }
}
