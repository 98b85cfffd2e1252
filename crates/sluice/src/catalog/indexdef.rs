//! Index definitions written by sluice instead of `pg_get_indexdef`, for the common shape.
//!
//! In a fresh session `pg_get_indexdef` costs ~35 µs an index (half a dozen system-cache
//! misses, each an index scan of a catalog): at 20,000 indexes it is more than half of a
//! snapshot's server time. For a *plain* index — btree on table columns, no expression,
//! predicate, storage options or `NULLS NOT DISTINCT`, not a partitioned index — whose key
//! columns use their type's default operator class and their own collation, the text is
//! determined by names and flags the snapshot reads anyway (the columns come from the columns
//! query, keyed by table OID and attribute number), and sluice writes it the way PostgreSQL's
//! `ruleutils.c` does: `CREATE [UNIQUE ]INDEX name ON schema.table USING btree (col[ DESC]
//! [ NULLS FIRST|LAST], …)[ INCLUDE (…)]`, every name quoted by the server's `quote_ident`.
//!
//! Anything else — and any plain index whose facts are not all at hand — gets
//! `pg_get_indexdef` in the same transaction, so the text is always the server's own. The
//! catalog tests compare every definition with `pg_get_indexdef` on each supported version.

use postgres::Transaction;
use std::collections::HashMap;

use super::Snapshot;

/// `pg_index.indoption` bits (`catalog/pg_index.h`).
const INDOPTION_DESC: i16 = 0x0001;
const INDOPTION_NULLS_FIRST: i16 = 0x0002;

/// What an index definition needs to know of a table column.
#[derive(Debug)]
pub(super) struct ColumnFact {
    /// `quote_ident(attname)`.
    pub quoted: String,
    /// `atttypid`.
    pub type_oid: u32,
    /// `attcollation` (0 for a type without collation).
    pub collation: u32,
}

/// A plain index whose definition is left for [`complete`] to write.
#[derive(Debug)]
pub(super) struct PlainIndex {
    /// The index's key in the snapshot (`schema.index`).
    pub key: String,
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

/// What the queries of one snapshot gathered for the definitions left to write.
#[derive(Debug, Default)]
pub(super) struct Facts {
    pub columns: HashMap<(u32, i16), ColumnFact>,
    pub plain: Vec<PlainIndex>,
}

impl Facts {
    /// Adds the facts gathered by another session of the same snapshot.
    pub fn absorb(&mut self, other: Facts) {
        self.columns.extend(other.columns);
        self.plain.extend(other.plain);
    }
}

/// How the definitions of a snapshot's indexes were written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IndexDefinitions {
    /// Written by sluice from the catalog facts.
    pub by_sluice: usize,
    /// Plain in shape but left to `pg_get_indexdef` (a non-default operator class or
    /// collation, a column the snapshot does not list).
    pub by_server: usize,
}

/// Writes the definitions of the plain indexes into `snapshot` (sorted by key), asking
/// `pg_get_indexdef` in `tx` for those whose text sluice cannot be sure of.
pub(super) fn complete(
    tx: &mut Transaction<'_>,
    snapshot: &mut Snapshot,
    facts: Facts,
) -> Result<IndexDefinitions, postgres::Error> {
    let mut counts = IndexDefinitions::default();
    if facts.plain.is_empty() {
        return Ok(counts);
    }
    let defaults = default_opclasses(tx)?;
    let mut left = Vec::new();
    for index in &facts.plain {
        match render(index, &facts.columns, &defaults) {
            Some(text) => {
                set_definition(snapshot, &index.key, text);
                counts.by_sluice += 1;
            }
            None => left.push(index),
        }
    }
    if !left.is_empty() {
        let oids: Vec<u32> = left.iter().map(|index| index.oid).collect();
        let rows = tx.query(
            "SELECT pg_catalog.pg_get_indexdef(o) FROM pg_catalog.unnest($1::pg_catalog.oid[]) \
               WITH ORDINALITY AS u(o, n) ORDER BY n",
            &[&oids],
        )?;
        for (index, row) in left.iter().zip(rows) {
            set_definition(snapshot, &index.key, row.get(0));
        }
        counts.by_server = left.len();
    }
    Ok(counts)
}

fn set_definition(snapshot: &mut Snapshot, key: &str, text: String) {
    if let Ok(at) = snapshot
        .indexes
        .binary_search_by(|index| index.key.as_str().cmp(key))
    {
        snapshot.indexes[at].definition = text;
    }
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
fn render(
    index: &PlainIndex,
    columns: &HashMap<(u32, i16), ColumnFact>,
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
        let column = columns.get(&(index.table_oid, *attnum))?;
        if n == keys {
            text.push_str(") INCLUDE (");
        } else if n > 0 {
            text.push_str(", ");
        }
        text.push_str(&column.quoted);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn column(quoted: &str, type_oid: u32, collation: u32) -> ColumnFact {
        ColumnFact {
            quoted: quoted.to_string(),
            type_oid,
            collation,
        }
    }

    fn index(attnums: Vec<i16>, key_count: usize, options: Vec<i16>) -> PlainIndex {
        let keys = key_count;
        PlainIndex {
            key: "s.ix".into(),
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
        [
            ((10, 1), column("id", 20, 0)),
            ((10, 2), column("\"Name\"", 25, 100)),
            ((10, 3), column("n", 20, 0)),
        ]
        .into_iter()
        .collect()
    }

    fn defaults() -> HashMap<u32, u32> {
        [(20, 1978), (25, 3126)].into_iter().collect()
    }

    #[test]
    fn key_and_include_columns_with_their_orderings() {
        let plain = index(vec![1, 3, 2], 2, vec![0, 3]);
        assert_eq!(
            render(&plain, &facts(), &defaults()).as_deref(),
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
        assert!(render(&text, &facts(), &defaults()).is_some());
        text.collations = vec![950];
        assert_eq!(render(&text, &facts(), &defaults()), None, "COLLATE \"C\"");
        text.collations = vec![100];
        text.opclasses = vec![4217];
        assert_eq!(
            render(&text, &facts(), &defaults()),
            None,
            "text_pattern_ops"
        );
        let missing = index(vec![9], 1, vec![0]);
        assert_eq!(render(&missing, &facts(), &defaults()), None);
        let mismatched = index(vec![1], 1, vec![]);
        assert_eq!(render(&mismatched, &facts(), &defaults()), None);
    }
}
