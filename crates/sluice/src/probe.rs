//! Probes: before/after captures of chosen columns of a table, to measure what a change touched
//! beside its purpose (the seed's §5: a trigger bumping `updated_at` on every backfilled row).
//! A capture streams `key + columns` to CSV in key order and takes per-column statistics in the
//! same snapshot; the comparison merges the two CSV files in one pass, never holding a table in
//! memory.

use crate::expect::TextRows;
use crate::package::Probe;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
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

/// `"name"` with inner quotes doubled: an identifier safe to put in SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `schema.table` quoted part by part.
pub fn quote_qualified(name: &str) -> String {
    name.split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

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

/// Reads the key columns' types and picks the order: `required` (the order of the capture this
/// one will be compared with) when given, else the cheapest the types allow.
fn key_order(
    tx: &mut postgres::Transaction<'_>,
    probe: &Probe,
    required: Option<KeyOrder>,
) -> Result<(KeyOrder, SortBy), postgres::Error> {
    let rows = tx.query(
        "SELECT a.atttypid::regtype::text FROM pg_attribute a
          WHERE a.attrelid = $1::text::regclass AND a.attname = ANY($2) AND a.attnum > 0 AND NOT a.attisdropped",
        &[&quote_qualified(&probe.table), &probe.key],
    )?;
    let types: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let all = |set: &[&str]| {
        types.len() == probe.key.len() && types.iter().all(|t| set.contains(&t.as_str()))
    };
    let integers = all(&["smallint", "integer", "bigint"]);
    let uuids = all(&["uuid"]);
    Ok(match required {
        Some(KeyOrder::Numeric) if integers => (KeyOrder::Numeric, SortBy::Native),
        Some(KeyOrder::Numeric) => (KeyOrder::Numeric, SortBy::Number),
        Some(KeyOrder::Bytes) if uuids => (KeyOrder::Bytes, SortBy::Native),
        Some(KeyOrder::Bytes) => (KeyOrder::Bytes, SortBy::Text),
        None if integers => (KeyOrder::Numeric, SortBy::Native),
        None if uuids => (KeyOrder::Bytes, SortBy::Native),
        None => (KeyOrder::Bytes, SortBy::Text),
    })
}

fn select_sql(probe: &Probe, sort: SortBy) -> String {
    let cols: Vec<String> = probe
        .key
        .iter()
        .chain(&probe.columns)
        .map(|c| quote_ident(c))
        .collect();
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

/// The statistics query: per watched column, its values grouped (the planner may hash them,
/// where `count(DISTINCT …)` always sorts) and the groups summed up into rows, min, max,
/// distinct (non-null groups) and nulls. The row count is the first column's.
fn stats_sql(probe: &Probe) -> String {
    let table = quote_qualified(&probe.table);
    if probe.columns.is_empty() {
        return format!("SELECT count(*) FROM {table}");
    }
    let per_column: Vec<String> = probe
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "(SELECT coalesce(sum(n), 0)::bigint AS rows, min(x)::text AS min, max(x)::text AS max, \
                         count(x) AS distinct_values, \
                         coalesce(sum(n) FILTER (WHERE x IS NULL), 0)::bigint AS nulls \
                    FROM (SELECT {} AS x, count(*) AS n FROM {table} GROUP BY 1) g) s{i}",
                quote_ident(c)
            )
        })
        .collect();
    let fields: Vec<String> = (0..probe.columns.len())
        .map(|i| format!("s{i}.min, s{i}.max, s{i}.distinct_values, s{i}.nulls"))
        .collect();
    format!(
        "SELECT s0.rows, {} FROM {}",
        fields.join(", "),
        per_column.join(" CROSS JOIN ")
    )
}

fn read_stats(probe: &Probe, rows: &TextRows) -> Capture {
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
    Capture {
        rows: num(0),
        columns,
        key_order: KeyOrder::Bytes,
    }
}

/// Session settings that shape the text of values (timestamps in UTC, ISO dates), pinned in
/// both sessions of a capture so that captures and statistics read the same whatever the
/// role's or database's own settings are.
const PINNED_SETTINGS: &str = "SET LOCAL TimeZone = 'UTC'; \
     SET LOCAL DateStyle = 'ISO, YMD'; \
     SET LOCAL IntervalStyle = 'postgres'; \
     SET LOCAL extra_float_digits = 1; \
     SET LOCAL bytea_output = 'hex'";

/// The statistics, on a second session that shares the capture's snapshot.
fn stats_in_snapshot(
    client: &mut postgres::Client,
    snapshot: &str,
    sql: &str,
) -> Result<TextRows, postgres::Error> {
    client.batch_execute(&format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'; {PINNED_SETTINGS}",
        snapshot.replace('\'', "")
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
    /// The order its rows are in; the new capture is taken in the same order.
    pub order: KeyOrder,
}

/// Captures a probe into `out` (a CSV with a header, in key order) and returns its statistics,
/// both from one REPEATABLE READ READ ONLY snapshot. With a second session the statistics are
/// computed on it, in the same snapshot, while the rows stream.
pub fn capture(
    client: &mut postgres::Client,
    second: Option<&mut postgres::Client>,
    probe: &Probe,
    out: std::fs::File,
) -> Result<Capture, ProbeError> {
    capture_streaming(client, second, probe, out, None).map(|(capture, _)| capture)
}

/// [`capture`], taken in the order of an `earlier` capture and compared with it as the rows
/// stream: one pass, nothing held in memory, the file written as it is compared.
pub fn capture_compared(
    client: &mut postgres::Client,
    second: Option<&mut postgres::Client>,
    probe: &Probe,
    out: std::fs::File,
    earlier: Earlier<'_>,
) -> Result<(Capture, RowDiff), ProbeError> {
    capture_streaming(client, second, probe, out, Some(earlier))
        .map(|(capture, diff)| (capture, diff.unwrap_or_default()))
}

fn capture_streaming(
    client: &mut postgres::Client,
    second: Option<&mut postgres::Client>,
    probe: &Probe,
    out: std::fs::File,
    earlier: Option<Earlier<'_>>,
) -> Result<(Capture, Option<RowDiff>), ProbeError> {
    let query_err = |e: postgres::Error| ProbeError::Query {
        probe: probe.id.clone(),
        message: crate::target::pg_message(&e),
    };
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(query_err)?;
    tx.batch_execute(PINNED_SETTINGS).map_err(query_err)?;
    let (order, sort) = key_order(&mut tx, probe, earlier.map(|e| e.order)).map_err(query_err)?;
    let stats = stats_sql(probe);
    let stream = |tx: &mut postgres::Transaction<'_>| stream_rows(tx, probe, sort, out, earlier);
    let (rows, diff) = match second {
        Some(other) => {
            let snapshot: String = tx
                .query_one("SELECT pg_export_snapshot()", &[])
                .map_err(query_err)?
                .get(0);
            std::thread::scope(|scope| {
                let stats_job = scope.spawn(|| stats_in_snapshot(other, &snapshot, &stats));
                let streamed = stream(&mut tx);
                let stats = stats_job
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                streamed.and_then(|diff| Ok((stats.map_err(query_err)?, diff)))
            })?
        }
        None => {
            let rows = crate::target::text_query_tx(&mut tx, &stats).map_err(query_err)?;
            (rows, stream(&mut tx)?)
        }
    };
    tx.rollback().map_err(query_err)?;
    let mut capture = read_stats(probe, &rows);
    capture.key_order = order;
    Ok((capture, diff))
}

/// Streams the probe's rows into `out` with COPY, comparing them with `earlier` on the way.
fn stream_rows(
    tx: &mut postgres::Transaction<'_>,
    probe: &Probe,
    sort: SortBy,
    out: std::fs::File,
    earlier: Option<Earlier<'_>>,
) -> Result<Option<RowDiff>, ProbeError> {
    let io_err = |e: std::io::Error| ProbeError::Io {
        probe: probe.id.clone(),
        message: e.to_string(),
    };
    let mut writer = BufWriter::with_capacity(1 << 16, out);
    let mut reader = tx
        .copy_out(&format!(
            "COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER)",
            select_sql(probe, sort)
        ))
        .map_err(|e| ProbeError::Query {
            probe: probe.id.clone(),
            message: crate::target::pg_message(&e),
        })?;
    let diff = match earlier {
        None => {
            std::io::copy(&mut reader, &mut writer).map_err(io_err)?;
            None
        }
        Some(earlier) => {
            let before = std::fs::File::open(earlier.csv).map_err(io_err)?;
            let now = Tee {
                from: &mut reader,
                to: &mut writer,
            };
            let diff =
                compare_readers(before, now, probe.key.len(), earlier.order).map_err(|e| {
                    ProbeError::Io {
                        probe: probe.id.clone(),
                        message: format!("comparing with {}: {e}", earlier.csv.display()),
                    }
                })?;
            Some(diff)
        }
    };
    drop(reader);
    let file = writer.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.sync_all().map_err(io_err)?;
    Ok(diff)
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
) -> Result<RowDiff, csv::Error> {
    compare_readers(
        std::fs::File::open(pre)?,
        std::fs::File::open(post)?,
        key_len,
        order,
    )
}

/// Merges two key-ordered CSV streams (each with a header) in one pass.
fn compare_readers<A: std::io::Read, B: std::io::Read>(
    pre: A,
    post: B,
    key_len: usize,
    order: KeyOrder,
) -> Result<RowDiff, csv::Error> {
    let mut a = csv::ReaderBuilder::new()
        .buffer_capacity(1 << 16)
        .from_reader(pre);
    let mut b = csv::ReaderBuilder::new()
        .buffer_capacity(1 << 16)
        .from_reader(post);
    let mut ra = csv::ByteRecord::new();
    let mut rb = csv::ByteRecord::new();
    let mut has_a = a.read_byte_record(&mut ra)?;
    let mut has_b = b.read_byte_record(&mut rb)?;
    let mut diff = RowDiff::default();
    while has_a || has_b {
        let order = match (has_a, has_b) {
            (true, true) => compare_keys(&ra, &rb, key_len, order),
            (true, false) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match order {
            Ordering::Less => {
                diff.removed += 1;
                has_a = a.read_byte_record(&mut ra)?;
            }
            Ordering::Greater => {
                diff.added += 1;
                has_b = b.read_byte_record(&mut rb)?;
            }
            Ordering::Equal => {
                if ra == rb {
                    diff.unchanged += 1;
                } else {
                    diff.changed += 1;
                }
                has_a = a.read_byte_record(&mut ra)?;
                has_b = b.read_byte_record(&mut rb)?;
            }
        }
    }
    Ok(diff)
}

/// Key order as PostgreSQL sorted the capture.
fn compare_keys(
    a: &csv::ByteRecord,
    b: &csv::ByteRecord,
    key_len: usize,
    order: KeyOrder,
) -> Ordering {
    (0..key_len)
        .map(|i| {
            let (x, y) = (a.get(i).unwrap_or_default(), b.get(i).unwrap_or_default());
            match order {
                KeyOrder::Bytes => x.cmp(y),
                KeyOrder::Numeric => parse_int(x).cmp(&parse_int(y)).then(x.cmp(y)),
            }
        })
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(Ordering::Equal)
}

fn parse_int(field: &[u8]) -> i64 {
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(i64::MIN)
}

/// Builds the summary and judges it against `expect_changed`.
pub fn summarize(probe: &Probe, pre: Capture, post: Capture, rows: RowDiff) -> ProbeSummary {
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
        let _ = write!(
            out,
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
        );
        out
    }
}

/// A psql script that puts the watched columns back to their values in a pre capture: the CSV is
/// loaded into a temporary table shaped like the probed columns (so NULL and empty text stay
/// apart), and only rows whose values differ are updated, with user triggers off
/// (`session_replication_role = replica`, superuser) so a trigger like `updated_at := now()`
/// cannot overwrite what is restored. sluice writes it; a person decides to run it.
pub fn restore_script(probe: &Probe, pre_csv: &str, run_dir: &Path) -> String {
    let table = quote_qualified(&probe.table);
    let all: Vec<String> = probe
        .key
        .iter()
        .chain(&probe.columns)
        .map(|c| quote_ident(c))
        .collect();
    let set: Vec<String> = probe
        .columns
        .iter()
        .map(|c| format!("{q} = r.{q}", q = quote_ident(c)))
        .collect();
    let on: Vec<String> = probe
        .key
        .iter()
        .map(|k| format!("t.{q} = r.{q}", q = quote_ident(k)))
        .collect();
    let differs: Vec<String> = probe
        .columns
        .iter()
        .map(|c| format!("t.{q} IS DISTINCT FROM r.{q}", q = quote_ident(c)))
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "-- sluice restore script for probe {} on {}",
        probe.id, probe.table
    );
    let _ = writeln!(
        out,
        "-- Puts {} back to the values captured before the migration of run",
        probe.columns.join(", ")
    );
    let _ = writeln!(out, "--   {}", run_dir.display());
    let _ = writeln!(out, "-- The rollback cannot do this (it drops what the migration added; it does not rewind data).");
    let _ = writeln!(
        out,
        "-- Review it, then run it with: psql -v ON_ERROR_STOP=1 -f THIS_FILE"
    );
    let _ = writeln!(out, "-- session_replication_role = replica keeps user triggers from rewriting the restored values; it needs a superuser.\n");
    let _ = writeln!(out, "BEGIN;");
    let _ = writeln!(out, "SET LOCAL session_replication_role = replica;");
    let _ = writeln!(
        out,
        "CREATE TEMP TABLE sluice_restore ON COMMIT DROP AS SELECT {} FROM {table} WITH NO DATA;",
        all.join(", ")
    );
    let _ = writeln!(
        out,
        "COPY sluice_restore ({}) FROM STDIN WITH (FORMAT csv, HEADER);",
        all.join(", ")
    );
    out.push_str(pre_csv);
    if !pre_csv.ends_with('\n') {
        out.push('\n');
    }
    let _ = writeln!(out, "\\.");
    let _ = writeln!(
        out,
        "UPDATE {table} AS t SET {} FROM sluice_restore AS r WHERE {} AND ({});",
        set.join(", "),
        on.join(" AND "),
        differs.join(" OR ")
    );
    let _ = writeln!(out, "COMMIT;");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_file(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn merge_counts_changed_added_removed() {
        let tmp = tempfile::tempdir().unwrap();
        // keys in byte order, as ORDER BY id::text COLLATE "C" gives them: 1, 10, 2, 3
        let pre = csv_file(tmp.path(), "pre.csv", "id,u\n1,a\n10,b\n2,c\n3,d\n");
        let post = csv_file(tmp.path(), "post.csv", "id,u\n1,a\n10,x\n3,d\n4,e\n");
        let want = RowDiff {
            changed: 1,
            added: 1,
            removed: 1,
            unchanged: 2,
        };
        assert_eq!(
            compare_files(&pre, &post, 1, KeyOrder::Bytes).unwrap(),
            want
        );
        // the same rows in integer order, as ORDER BY id gives them
        let pre = csv_file(tmp.path(), "pre-n.csv", "id,u\n1,a\n2,c\n3,d\n10,b\n");
        let post = csv_file(tmp.path(), "post-n.csv", "id,u\n1,a\n3,d\n4,e\n10,x\n");
        assert_eq!(
            compare_files(&pre, &post, 1, KeyOrder::Numeric).unwrap(),
            want
        );
        // byte order would misread the integer order
        assert_ne!(
            compare_files(&pre, &post, 1, KeyOrder::Bytes).unwrap(),
            want
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(
            quote_qualified("public.we\"ird"),
            "\"public\".\"we\"\"ird\""
        );
    }
}
