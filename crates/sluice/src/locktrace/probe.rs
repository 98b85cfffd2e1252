//! The SQL of the lock trace. The probe runs inside the migration's own transaction, between its
//! statements, and takes no lock of its own: `pg_lock_status()` is a set-returning function (no
//! relation is opened), `pg_identify_object_as_address`, `pg_relation_filenode` and
//! `pg_stat_get_xact_numscans` read the syscache or backend-local state, and any catalog they
//! open is closed with its lock released. The relation map and the finish run outside the
//! transaction (before BEGIN, after COMMIT), in autocommit.

use std::collections::BTreeMap;

/// One relation of the database before the migration.
#[derive(Debug, Clone)]
pub struct Rel {
    /// `table`, `index`, `toast table`, `sequence`, … (`pg_identify_object_as_address`'s type).
    pub kind: String,
    /// `schema.name`.
    pub name: String,
    pub filenode: Option<u64>,
    /// The table an index, toast table or owned sequence belongs to.
    pub owner_table: Option<u32>,
    pub table_bytes: Option<i64>,
    pub index_bytes: Option<i64>,
}

/// Every relation of the database (system catalogs left out) by OID.
pub type RelationMap = BTreeMap<u32, Rel>;

const MAP_SQL: &str = "SELECT c.oid::int8, a.type, pg_catalog.array_to_string(a.object_names, '.'),
       pg_catalog.pg_relation_filenode(c.oid)::int8,
       coalesce(i.indrelid, t.oid, d.refobjid)::int8,
       CASE WHEN c.relkind IN ('r', 'm', 'p') THEN pg_catalog.pg_table_size(c.oid) END,
       CASE WHEN c.relkind IN ('r', 'm', 'p') THEN pg_catalog.pg_indexes_size(c.oid) END
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  CROSS JOIN LATERAL pg_catalog.pg_identify_object_as_address(1259, c.oid, 0) AS a
  LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
  LEFT JOIN pg_catalog.pg_class t ON c.relkind = 't' AND t.reltoastrelid = c.oid
  LEFT JOIN pg_catalog.pg_depend d ON c.relkind = 'S' AND d.classid = 1259 AND d.objid = c.oid
        AND d.refclassid = 1259 AND d.deptype IN ('a', 'i')
 WHERE c.relkind IN ('r', 'p', 'm', 'f', 'i', 'I', 't', 'S')
   AND n.nspname <> 'information_schema'
   AND (n.nspname !~ '^pg_' OR n.nspname LIKE 'pg_toast%')";

const WAL_SQL: &str = "SELECT pg_catalog.pg_current_wal_insert_lsn()::text";

/// The locks the session holds (its own virtual transaction id left out), each with the
/// object's type and name when it is a relation or another catalog object, and for a relation
/// its filenode and the transaction's sequential scans of it (both from the syscache and
/// backend-local counters: no catalog is opened). A rewrite locks the table and each index it
/// rebuilds, so the locked relations are the ones whose filenode can have changed.
const LOCKS_SQL: &str = "SELECT l.locktype, l.mode, coalesce(l.relation, l.objid)::int8, a.type,
       pg_catalog.array_to_string(a.object_names, '.'),
       CASE WHEN l.locktype = 'relation' THEN pg_catalog.pg_relation_filenode(l.relation)::int8 END,
       CASE WHEN l.locktype = 'relation' THEN pg_catalog.pg_stat_get_xact_numscans(l.relation) END
  FROM pg_catalog.pg_lock_status() AS l
  LEFT JOIN LATERAL (SELECT * FROM pg_catalog.pg_identify_object_as_address(
           CASE WHEN l.locktype = 'relation' THEN 1259::oid ELSE l.classid END,
           coalesce(l.relation, l.objid), coalesce(l.objsubid, 0)::int4)
         WHERE l.locktype IN ('relation', 'object')) AS a ON true
 WHERE l.pid = pg_catalog.pg_backend_pid() AND l.granted AND l.locktype <> 'virtualxid'";

/// The probe: the session's locks, then the WAL insert position.
pub fn probe_sql() -> String {
    format!("{LOCKS_SQL};\n{WAL_SQL}")
}

/// A lock as `pg_locks` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeenLock {
    pub locktype: String,
    pub mode: String,
    pub oid: Option<u32>,
    pub object_type: Option<String>,
    pub name: Option<String>,
}

impl SeenLock {
    /// What makes two rows the same lock.
    pub fn key(&self) -> (String, Option<u32>, String) {
        (self.locktype.clone(), self.oid, self.mode.clone())
    }
}

/// What the probe reads of one watched relation.
#[derive(Debug, Clone, Copy)]
pub struct Watched {
    pub oid: u32,
    pub filenode: Option<u64>,
    pub seq_scans: i64,
}

fn text(row: &postgres::SimpleQueryRow, i: usize) -> Option<String> {
    row.get(i).map(str::to_string)
}

fn number<T: std::str::FromStr>(row: &postgres::SimpleQueryRow, i: usize) -> Option<T> {
    row.get(i).and_then(|v| v.parse().ok())
}

fn rows(messages: Vec<postgres::SimpleQueryMessage>) -> Vec<postgres::SimpleQueryRow> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .collect()
}

/// What the tracer reads before BEGIN: every relation, the WAL insert position, and the
/// isolation level the migration's transaction will start with.
pub struct Before {
    pub map: RelationMap,
    pub lsn: u64,
    pub isolation: String,
}

/// [`Before`], in autocommit, in one round trip.
pub fn before(client: &mut postgres::Client) -> Result<Before, postgres::Error> {
    let sql = format!(
        "{MAP_SQL};\nSELECT pg_catalog.pg_current_wal_insert_lsn()::text, \
         pg_catalog.current_setting('default_transaction_isolation')"
    );
    let mut before = Before {
        map: RelationMap::new(),
        lsn: 0,
        isolation: String::new(),
    };
    for row in rows(client.simple_query(&sql)?) {
        if row.len() == 2 {
            before.lsn = row.get(0).and_then(parse_lsn).unwrap_or(0);
            before.isolation = text(&row, 1).unwrap_or_default();
            continue;
        }
        let Some(oid) = number::<u32>(&row, 0) else {
            continue;
        };
        before.map.insert(
            oid,
            Rel {
                kind: text(&row, 1).unwrap_or_default(),
                name: text(&row, 2).unwrap_or_default(),
                filenode: number(&row, 3),
                owner_table: number(&row, 4),
                table_bytes: number(&row, 5),
                index_bytes: number(&row, 6),
            },
        );
    }
    Ok(before)
}

/// `pg_current_wal_insert_lsn()` as a byte position.
pub(crate) fn wal_position(client: &mut postgres::Client) -> Result<u64, postgres::Error> {
    let messages = client.simple_query(WAL_SQL)?;
    Ok(rows(messages)
        .first()
        .and_then(|r| r.get(0))
        .and_then(parse_lsn)
        .unwrap_or(0))
}

/// `16/B374D848` → its byte position.
pub(crate) fn parse_lsn(lsn: &str) -> Option<u64> {
    let (high, low) = lsn.split_once('/')?;
    let high = u64::from_str_radix(high, 16).ok()?;
    let low = u64::from_str_radix(low, 16).ok()?;
    Some((high << 32) | low)
}

/// The session's locks, what the probe reads of each locked relation, and the WAL position,
/// inside the transaction: one round trip.
pub fn locks(
    tx: &mut postgres::Transaction<'_>,
) -> Result<(Vec<SeenLock>, Vec<Watched>, u64), postgres::Error> {
    let messages = tx.simple_query(&probe_sql())?;
    let mut seen = Vec::new();
    let mut watched: Vec<Watched> = Vec::new();
    let mut lsn = 0;
    for row in rows(messages) {
        if row.len() == 1 {
            lsn = row.get(0).and_then(parse_lsn).unwrap_or(0);
            continue;
        }
        let lock = SeenLock {
            locktype: text(&row, 0).unwrap_or_default(),
            mode: text(&row, 1).unwrap_or_default(),
            oid: number(&row, 2),
            object_type: text(&row, 3),
            name: text(&row, 4).filter(|n| !n.is_empty()),
        };
        if let Some(oid) = lock.oid.filter(|_| lock.locktype == "relation") {
            if !watched.iter().any(|w| w.oid == oid) {
                watched.push(Watched {
                    oid,
                    filenode: number(&row, 5),
                    seq_scans: number(&row, 6).unwrap_or(0),
                });
            }
        }
        seen.push(lock);
    }
    seen.sort();
    Ok((seen, watched, lsn))
}

/// The filenode and sequential scans of each watched relation, outside a transaction
/// (`transaction = "none"`, after the statement committed). The OIDs are numbers, written into
/// the SQL as digits only.
pub fn watch(
    tx: &mut impl postgres::GenericClient,
    oids: &[u32],
) -> Result<Vec<Watched>, postgres::Error> {
    if oids.is_empty() {
        return Ok(Vec::new());
    }
    let list = oid_list(oids);
    let sql = format!(
        "SELECT w.oid::int8, pg_catalog.pg_relation_filenode(w.oid)::int8, \
         pg_catalog.pg_stat_get_xact_numscans(w.oid) \
         FROM pg_catalog.unnest('{{{list}}}'::pg_catalog.oid[]) AS w(oid)"
    );
    Ok(rows(tx.simple_query(&sql)?)
        .iter()
        .filter_map(|row| {
            Some(Watched {
                oid: number(row, 0)?,
                filenode: number(row, 1),
                seq_scans: number(row, 2).unwrap_or(0),
            })
        })
        .collect())
}

/// `16384,16391`: OIDs are numbers, so the list is digits and commas only.
fn oid_list(oids: &[u32]) -> String {
    oids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The type and name of relations, now that the statement that made them committed.
pub fn names(
    client: &mut postgres::Client,
    oids: &[u32],
) -> Result<BTreeMap<u32, (String, String)>, postgres::Error> {
    if oids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let list = oid_list(oids);
    let sql = format!(
        "SELECT w.oid::int8, a.type, pg_catalog.array_to_string(a.object_names, '.') \
         FROM pg_catalog.unnest('{{{list}}}'::pg_catalog.oid[]) AS w(oid) \
         CROSS JOIN LATERAL pg_catalog.pg_identify_object_as_address(1259, w.oid, 0) AS a \
         WHERE a.type IS NOT NULL"
    );
    Ok(rows(client.simple_query(&sql)?)
        .iter()
        .filter_map(|row| Some((number(row, 0)?, (text(row, 1)?, text(row, 2)?))))
        .collect())
}

/// The sizes of tables after COMMIT, in autocommit: (table bytes, index bytes) by OID; a
/// table dropped by the migration has none (the size functions give NULL for it).
pub(crate) fn sizes(
    client: &mut postgres::Client,
    oids: &[u32],
) -> Result<BTreeMap<u32, (i64, i64)>, postgres::Error> {
    if oids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let list = oid_list(oids);
    let sql = format!(
        "SELECT w.oid::int8, pg_catalog.pg_table_size(w.oid), pg_catalog.pg_indexes_size(w.oid) \
         FROM pg_catalog.unnest('{{{list}}}'::pg_catalog.oid[]) AS w(oid)"
    );
    Ok(rows(client.simple_query(&sql)?)
        .iter()
        .filter_map(|row| Some((number(row, 0)?, (number(row, 1)?, number(row, 2)?))))
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_lsn_is_a_byte_position() {
        assert_eq!(super::parse_lsn("0/16B3748"), Some(0x16B3748));
        assert_eq!(
            super::parse_lsn("16/B374D848"),
            Some((0x16 << 32) | 0xB374D848)
        );
        assert_eq!(super::parse_lsn("nonsense"), None);
    }
}
