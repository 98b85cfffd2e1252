//! Probes: before/after captures of chosen columns of a table, to measure what a change touched
//! beside its purpose (the seed's §5: a trigger bumping `updated_at` on every backfilled row).
//! A capture streams `key + columns` to CSV in key order and takes per-column statistics in the
//! same snapshot; the comparison merges the two CSV files in one pass, never holding a table in
//! memory.

mod binary;
mod copy_stream;
mod merge;
mod restore;

pub(crate) use restore::{trigger_guard, write_restore_script, TriggerGuard};

use crate::evidence::WriteBehind;
use crate::expect::TextRows;
use crate::package::Probe;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::io::BufWriter;
use std::path::Path;

/// Statistics of one watched column at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnStats {
    pub column: String,
    pub min: Option<String>,
    pub max: Option<String>,
    pub distinct: i64,
    pub nulls: i64,
}

/// One capture of a probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capture {
    pub rows: i64,
    pub columns: Vec<ColumnStats>,
    /// The order the CSV is in.
    #[serde(default = "bytes_order")]
    pub key_order: KeyOrder,
    /// The rows were read with binary COPY and written as CSV by sluice (every column of a
    /// type it formats itself), rather than with a text COPY.
    #[serde(default)]
    pub binary_copy: bool,
    /// SHA-256 of the CSV file, computed as it was written.
    #[serde(default)]
    pub csv_sha256: String,
}

fn bytes_order() -> KeyOrder {
    KeyOrder::Bytes
}

/// How rows differ between two captures, matched by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowDiff {
    pub changed: u64,
    pub added: u64,
    pub removed: u64,
    pub unchanged: u64,
}

/// The probe's report: `probes/ID.summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeSummary {
    pub id: String,
    pub table: String,
    pub key: Vec<String>,
    pub columns: Vec<String>,
    pub pre: Capture,
    pub post: Capture,
    pub rows: RowDiff,
    pub expect_changed: Option<u64>,
    pub holds: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("probe {probe}: {message}")]
    Query { probe: String, message: String },
    #[error("probe {probe}: {message}")]
    Io { probe: String, message: String },
}

pub(crate) use crate::sql::names::{quote_ident, quote_qualified};

/// The order rows are captured in, which the comparison must follow. Integer keys use their
/// own order (the primary key's index, no sort); uuid keys too (their text sorts like their
/// bytes); anything else is sorted by `key::text COLLATE "C"`, which is byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyOrder {
    Numeric,
    Bytes,
}

/// How a capture's rows are sorted in SQL, so that they come in [`KeyOrder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortBy {
    /// The key's own order: the primary key's index, no sort.
    Native,
    /// `key::text COLLATE "C"`: byte order of the text.
    Text,
    /// `key::text::numeric`: integer order for a key that is no longer of an integer type.
    Number,
}

/// The types (`regtype` text) of the probe's key columns, then of its watched columns.
fn column_types(
    tx: &mut postgres::Transaction<'_>,
    probe: &Probe,
) -> Result<Vec<Option<String>>, postgres::Error> {
    let names: Vec<&String> = captured(probe).collect();
    let rows = tx.query(
        "SELECT a.attname::text, a.atttypid::regtype::text FROM pg_attribute a
          WHERE a.attrelid = $1::text::regclass AND a.attname = ANY($2) AND a.attnum > 0 AND NOT a.attisdropped",
        &[&quote_qualified(&probe.table), &names],
    )?;
    let found: std::collections::HashMap<String, String> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(names
        .iter()
        .map(|n| found.get(n.as_str()).cloned())
        .collect())
}

/// Picks the order from the key columns' types: `required` (the order of the capture this one
/// will be compared with) when given, else the cheapest the types allow.
fn key_order(key_types: &[Option<String>], required: Option<KeyOrder>) -> (KeyOrder, SortBy) {
    let all = |set: &[&str]| {
        key_types
            .iter()
            .all(|t| t.as_deref().is_some_and(|t| set.contains(&t)))
    };
    // the order the key's own index gives: integers numerically, uuids like their text's bytes
    let native = if all(&["smallint", "integer", "bigint"]) {
        Some(KeyOrder::Numeric)
    } else if all(&["uuid"]) {
        Some(KeyOrder::Bytes)
    } else {
        None
    };
    let order = required.or(native).unwrap_or(KeyOrder::Bytes);
    let sort = match order {
        _ if native == Some(order) => SortBy::Native,
        KeyOrder::Numeric => SortBy::Number,
        KeyOrder::Bytes => SortBy::Text,
    };
    (order, sort)
}

/// The columns a capture holds, in its CSV's order: the key, then the watched columns.
fn captured(probe: &Probe) -> impl Iterator<Item = &String> {
    probe.key.iter().chain(&probe.columns)
}

/// [`captured`], quoted for SQL.
fn captured_quoted(probe: &Probe) -> Vec<String> {
    captured(probe).map(|c| quote_ident(c)).collect()
}

fn select_sql(probe: &Probe, sort: SortBy) -> String {
    let cols = captured_quoted(probe);
    let order: Vec<String> = probe
        .key
        .iter()
        .map(|k| match sort {
            SortBy::Native => quote_ident(k),
            SortBy::Text => format!("{}::text COLLATE \"C\"", quote_ident(k)),
            SortBy::Number => format!("{}::text::numeric", quote_ident(k)),
        })
        .collect();
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        cols.join(", "),
        quote_qualified(&probe.table),
        order.join(", ")
    )
}

/// The statistics query: per watched column, its values grouped once (the planner may hash
/// them, where `count(DISTINCT …)` always sorts the whole column), and from the groups the
/// rows, the smallest and largest value (by the type's ordering, so booleans and uuids have
/// them too), the distinct non-null values and the nulls. The row count is the first
/// column's.
fn stats_sql(probe: &Probe) -> String {
    let table = quote_qualified(&probe.table);
    if probe.columns.is_empty() {
        return format!("SELECT count(*) FROM {table}");
    }
    let groups: Vec<String> = probe
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "g{i} AS MATERIALIZED (SELECT {} AS x, count(*) AS n FROM {table} GROUP BY 1)",
                quote_ident(c)
            )
        })
        .collect();
    let fields: Vec<String> = (0..probe.columns.len())
        .map(|i| {
            format!(
                "(SELECT x::text FROM g{i} WHERE x IS NOT NULL ORDER BY x LIMIT 1), \
                 (SELECT x::text FROM g{i} WHERE x IS NOT NULL ORDER BY x DESC LIMIT 1), \
                 (SELECT count(x) FROM g{i}), \
                 (SELECT coalesce(sum(n), 0) FROM g{i} WHERE x IS NULL)::bigint"
            )
        })
        .collect();
    format!(
        "WITH {} SELECT (SELECT coalesce(sum(n), 0) FROM g0)::bigint, {}",
        groups.join(", "),
        fields.join(", ")
    )
}

/// The row count and the per-column statistics from the statistics query's row.
fn read_stats(probe: &Probe, rows: &TextRows) -> (i64, Vec<ColumnStats>) {
    let row = rows.rows.first().cloned().unwrap_or_default();
    let num = |i: usize| {
        row.get(i)
            .cloned()
            .flatten()
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let columns = probe
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| ColumnStats {
            column: c.clone(),
            min: row.get(1 + 4 * i).cloned().flatten(),
            max: row.get(2 + 4 * i).cloned().flatten(),
            distinct: num(3 + 4 * i),
            nulls: num(4 + 4 * i),
        })
        .collect();
    (num(0), columns)
}

/// Session settings that shape the text of values (timestamps in UTC, ISO dates), pinned in
/// both sessions of a capture so that captures and statistics read the same whatever the
/// role's or database's own settings are.
const PINNED_SETTINGS: &str = "SET LOCAL TimeZone = 'UTC'; \
     SET LOCAL DateStyle = 'ISO, YMD'; \
     SET LOCAL IntervalStyle = 'postgres'; \
     SET LOCAL extra_float_digits = 1; \
     SET LOCAL bytea_output = 'hex'";

/// The statistics, on a second session that shares the capture's snapshot. It runs beside the
/// row stream, so the server's parallel workers would only compete with it for the same cores.
fn stats_in_snapshot(
    client: &mut postgres::Client,
    snapshot: &str,
    sql: &str,
) -> Result<TextRows, postgres::Error> {
    client.batch_execute(&format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {}; {PINNED_SETTINGS}; \
         SET LOCAL max_parallel_workers_per_gather = 0",
        crate::target::import_snapshot_sql(snapshot)
    ))?;
    let rows = crate::target::text_query(client, sql);
    let end = client.batch_execute("ROLLBACK");
    let rows = rows?;
    end?;
    Ok(rows)
}

/// A capture taken before, that a new capture is compared with while its rows stream.
#[derive(Debug, Clone, Copy)]
pub struct Earlier<'a> {
    /// Its CSV file.
    pub csv: &'a Path,
    /// The order its rows are in; the new capture is taken in the same order. Unknown (an
    /// apply that stopped before its probe summary): the order the key's type gives, as the
    /// earlier capture chose it.
    pub order: Option<KeyOrder>,
}

/// The sessions a capture runs on, all in one exported REPEATABLE READ READ ONLY snapshot.
pub struct Sessions<'a> {
    /// Holds the capture's snapshot; streams the rows too when there is no `rows` connection.
    pub work: &'a mut postgres::Client,
    /// Computes the statistics while the rows stream.
    pub stats: Option<&'a mut postgres::Client>,
    /// A connection of the capture's own for the rows, opened for it: it hands them over in
    /// large chunks instead of one message at a time. Used for tables of at least
    /// `rows_from_bytes` on disk, where it pays for its connection.
    pub rows: Option<&'a crate::target::Target>,
    pub rows_from_bytes: i64,
}

/// Tables from this size on (8 MiB, some 100,000 narrow rows) stream over a connection of
/// their own.
pub const OWN_CONNECTION_FROM_BYTES: i64 = 8 << 20;

/// Captures a probe into `out` (a CSV with a header, in key order) and returns its statistics,
/// both from one REPEATABLE READ READ ONLY snapshot.
pub fn capture(
    sessions: Sessions<'_>,
    probe: &Probe,
    out: std::fs::File,
) -> Result<Capture, ProbeError> {
    capture_streaming(sessions, probe, out, None).map(|(capture, _)| capture)
}

/// [`capture`], taken in the order of an `earlier` capture and compared with it as the rows
/// stream: one pass, nothing held in memory, the file written as it is compared.
pub fn capture_compared(
    sessions: Sessions<'_>,
    probe: &Probe,
    out: std::fs::File,
    earlier: Earlier<'_>,
) -> Result<(Capture, RowDiff), ProbeError> {
    capture_streaming(sessions, probe, out, Some(earlier))
        .map(|(capture, diff)| (capture, diff.unwrap_or_default()))
}

fn capture_streaming(
    sessions: Sessions<'_>,
    probe: &Probe,
    out: std::fs::File,
    earlier: Option<Earlier<'_>>,
) -> Result<(Capture, Option<RowDiff>), ProbeError> {
    let query_err = |e: postgres::Error| ProbeError::Query {
        probe: probe.id.clone(),
        message: crate::target::pg_message(&e),
    };
    let mut tx = sessions
        .work
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(query_err)?;
    tx.batch_execute(PINNED_SETTINGS).map_err(query_err)?;
    let types = column_types(&mut tx, probe).map_err(query_err)?;
    let table_bytes: i64 = tx
        .query_one(
            "SELECT pg_catalog.pg_table_size($1::text::regclass)",
            &[&quote_qualified(&probe.table)],
        )
        .map_err(query_err)?
        .get(0);
    let (order, sort) = key_order(&types[..probe.key.len()], earlier.and_then(|e| e.order));
    // compared in the order this capture is taken in: the earlier one's
    let compare_with = earlier.map(|e| (e.csv, order));
    // binary COPY when sluice formats every column's type itself
    let wires: Option<Vec<binary::Wire>> = types
        .iter()
        .map(|t| t.as_deref().and_then(binary::Wire::of))
        .collect();
    let binary_copy = wires.is_some();
    let copy_sql = copy_sql(probe, sort, binary_copy);
    let stats = stats_sql(probe);
    let own_rows = sessions.rows.is_some() && table_bytes >= sessions.rows_from_bytes;
    let exported: Option<String> = if sessions.stats.is_some() || own_rows {
        let row = tx
            .query_one("SELECT pg_export_snapshot()", &[])
            .map_err(query_err)?;
        Some(row.get(0))
    } else {
        None
    };
    let (rows, streamed) = std::thread::scope(|scope| -> Result<_, ProbeError> {
        let stats_job = match (sessions.stats, &exported) {
            (Some(other), Some(id)) => Some(scope.spawn(|| stats_in_snapshot(other, id, &stats))),
            _ => None,
        };
        let own_connection = match (sessions.rows, &exported) {
            (Some(config), Some(id)) if own_rows => {
                copy_stream::open(config, id, PINNED_SETTINGS, &copy_sql).ok()
            }
            _ => None,
        };
        let write = |raw: &mut dyn std::io::Read| write_rows(raw, probe, wires, out, compare_with);
        let streamed = match own_connection {
            Some(mut chunks) => write(&mut chunks),
            // no connection of its own: the rows come over the working session
            None => match tx.copy_out(&copy_sql) {
                Ok(mut raw) => write(&mut raw),
                Err(e) => Err(query_err(e)),
            },
        };
        let rows = match stats_job {
            Some(job) => job
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => crate::target::text_query_tx(&mut tx, &stats),
        };
        Ok((rows.map_err(query_err)?, streamed?))
    })?;
    tx.rollback().map_err(query_err)?;
    let (diff, csv_sha256) = streamed;
    let (rows, columns) = read_stats(probe, &rows);
    let capture = Capture {
        rows,
        columns,
        key_order: order,
        binary_copy,
        csv_sha256,
    };
    Ok((capture, diff))
}

/// The COPY of the probe's rows: binary when sluice formats every column, else CSV.
fn copy_sql(probe: &Probe, sort: SortBy, binary: bool) -> String {
    let format = if binary {
        "FORMAT binary"
    } else {
        "FORMAT csv, HEADER"
    };
    format!(
        "COPY ({}) TO STDOUT WITH ({format})",
        select_sql(probe, sort)
    )
}

/// Writes a COPY stream of the probe's rows into `out` as CSV — converting it from binary when
/// `wires` gives every column's type — and compares it on the way with the earlier capture in
/// `compare_with` (its CSV and the order both are in).
fn write_rows(
    raw: &mut dyn std::io::Read,
    probe: &Probe,
    wires: Option<Vec<binary::Wire>>,
    out: std::fs::File,
    compare_with: Option<(&Path, KeyOrder)>,
) -> Result<(Option<RowDiff>, String), ProbeError> {
    let io_err = |e: std::io::Error| ProbeError::Io {
        probe: probe.id.clone(),
        message: e.to_string(),
    };
    let mut writer = BufWriter::with_capacity(1 << 16, WriteBehind::new(out));
    let mut reader: Box<dyn std::io::Read + '_> = match wires {
        Some(wires) => {
            let names = captured(probe).cloned().collect();
            Box::new(binary::CsvFromBinary::new(raw, names, wires))
        }
        None => Box::new(raw),
    };
    let diff = match compare_with {
        None => {
            std::io::copy(&mut reader, &mut writer).map_err(io_err)?;
            None
        }
        Some((csv, order)) => {
            let before = std::fs::File::open(csv).map_err(io_err)?;
            let now = Tee {
                from: &mut reader,
                to: &mut writer,
            };
            let diff =
                merge::compare_readers(before, now, probe.key.len(), order).map_err(|e| {
                    ProbeError::Io {
                        probe: probe.id.clone(),
                        message: format!("comparing with {}: {e}", csv.display()),
                    }
                })?;
            Some(diff)
        }
    };
    drop(reader);
    let file = writer.into_inner().map_err(|e| io_err(e.into_error()))?;
    let sha256 = file.finish().map_err(io_err)?;
    Ok((diff, sha256))
}

/// A reader that writes what it reads to `to`: the rows go to the evidence file as they are
/// compared.
struct Tee<'a, R, W> {
    from: &'a mut R,
    to: &'a mut W,
}

impl<R: std::io::Read, W: std::io::Write> std::io::Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.from.read(buf)?;
        self.to.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Compares two captures of the same probe by merging their key-ordered CSV files.
pub fn compare_files(
    pre: &Path,
    post: &Path,
    key_len: usize,
    order: KeyOrder,
) -> std::io::Result<RowDiff> {
    merge::compare_readers(
        std::fs::File::open(pre)?,
        std::fs::File::open(post)?,
        key_len,
        order,
    )
}

/// Builds the summary and judges it against `expect_changed`.
pub(crate) fn summarize(probe: &Probe, pre: Capture, post: Capture, rows: RowDiff) -> ProbeSummary {
    let holds = probe.expect_changed.is_none_or(|n| n == rows.changed);
    ProbeSummary {
        id: probe.id.clone(),
        table: probe.table.clone(),
        key: probe.key.clone(),
        columns: probe.columns.clone(),
        pre,
        post,
        rows,
        expect_changed: probe.expect_changed,
        holds,
    }
}

impl ProbeSummary {
    /// One line per column, the seed's §5 way: `updated_at: distinct 3 → 1, min … → …`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (pre, post) in self.pre.columns.iter().zip(&self.post.columns) {
            let _ = writeln!(
                out,
                "{}.{}: distinct {} → {}; min {} → {}; max {} → {}; nulls {} → {}",
                self.table,
                pre.column,
                pre.distinct,
                post.distinct,
                pre.min.as_deref().unwrap_or("NULL"),
                post.min.as_deref().unwrap_or("NULL"),
                pre.max.as_deref().unwrap_or("NULL"),
                post.max.as_deref().unwrap_or("NULL"),
                pre.nulls,
                post.nulls
            );
        }
        out.push_str(&self.rows_line());
        out
    }

    /// The rows changed, added and removed, and the expectation's verdict when there is one.
    pub(crate) fn rows_line(&self) -> String {
        format!(
            "rows changed {}/{} (added {}, removed {}){}",
            self.rows.changed,
            self.pre.rows,
            self.rows.added,
            self.rows.removed,
            self.expect_changed
                .map(|n| format!(
                    "; expected {n} changed: {}",
                    if self.holds { "holds" } else { "DOES NOT HOLD" }
                ))
                .unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(
            quote_qualified("public.we\"ird"),
            "\"public\".\"we\"\"ird\""
        );
    }
}
