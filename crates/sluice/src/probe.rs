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

/// Reads the key columns' types and picks the order.
fn key_order(
    tx: &mut postgres::Transaction<'_>,
    probe: &Probe,
) -> Result<(KeyOrder, bool), postgres::Error> {
    let rows = tx.query(
        "SELECT a.atttypid::regtype::text FROM pg_attribute a
          WHERE a.attrelid = $1::text::regclass AND a.attname = ANY($2) AND a.attnum > 0 AND NOT a.attisdropped",
        &[&quote_qualified(&probe.table), &probe.key],
    )?;
    let types: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let all = |set: &[&str]| {
        types.len() == probe.key.len() && types.iter().all(|t| set.contains(&t.as_str()))
    };
    Ok(if all(&["smallint", "integer", "bigint"]) {
        (KeyOrder::Numeric, true)
    } else if all(&["uuid"]) {
        (KeyOrder::Bytes, true)
    } else {
        (KeyOrder::Bytes, false)
    })
}

fn select_sql(probe: &Probe, native_order: bool) -> String {
    let cols: Vec<String> = probe
        .key
        .iter()
        .chain(&probe.columns)
        .map(|c| quote_ident(c))
        .collect();
    let order: Vec<String> = probe
        .key
        .iter()
        .map(|k| {
            if native_order {
                quote_ident(k)
            } else {
                format!("{}::text COLLATE \"C\"", quote_ident(k))
            }
        })
        .collect();
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        cols.join(", "),
        quote_qualified(&probe.table),
        order.join(", ")
    )
}

fn stats_sql(probe: &Probe) -> String {
    let parts: Vec<String> = probe
        .columns
        .iter()
        .map(|c| {
            let q = quote_ident(c);
            format!("min({q})::text, max({q})::text, count(DISTINCT {q}), count(*) FILTER (WHERE {q} IS NULL)")
        })
        .collect();
    format!(
        "SELECT count(*), {} FROM {}",
        parts.join(", "),
        quote_qualified(&probe.table)
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

/// The statistics, on a second session that shares the capture's snapshot.
fn stats_in_snapshot(
    client: &mut postgres::Client,
    snapshot: &str,
    sql: &str,
) -> Result<TextRows, postgres::Error> {
    client.batch_execute(&format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
        snapshot.replace('\'', "")
    ))?;
    let rows = crate::target::text_query(client, sql);
    let end = client.batch_execute("ROLLBACK");
    let rows = rows?;
    end?;
    Ok(rows)
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
    let query_err = |e: postgres::Error| ProbeError::Query {
        probe: probe.id.clone(),
        message: crate::target::pg_message(&e),
    };
    let io_err = |e: std::io::Error| ProbeError::Io {
        probe: probe.id.clone(),
        message: e.to_string(),
    };
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(query_err)?;
    let (order, native) = key_order(&mut tx, probe).map_err(query_err)?;
    let stats = stats_sql(probe);
    let stream = |tx: &mut postgres::Transaction<'_>| -> Result<(), ProbeError> {
        let mut writer = BufWriter::with_capacity(1 << 16, out);
        let mut reader = tx
            .copy_out(&format!(
                "COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER)",
                select_sql(probe, native)
            ))
            .map_err(query_err)?;
        std::io::copy(&mut reader, &mut writer).map_err(io_err)?;
        drop(reader);
        let file = writer.into_inner().map_err(|e| io_err(e.into_error()))?;
        file.sync_all().map_err(io_err)
    };
    let rows = match second {
        Some(other) => {
            let snapshot: String = tx
                .query_one("SELECT pg_export_snapshot()", &[])
                .map_err(query_err)?
                .get(0);
            std::thread::scope(|scope| {
                let stats_job = scope.spawn(|| stats_in_snapshot(other, &snapshot, &stats));
                let streamed = stream(&mut tx);
                let stats = stats_job.join().unwrap_or_else(|_| Ok(TextRows::default()));
                streamed.and_then(|_| stats.map_err(query_err))
            })?
        }
        None => {
            let rows = crate::target::text_query_tx(&mut tx, &stats).map_err(query_err)?;
            stream(&mut tx)?;
            rows
        }
    };
    tx.rollback().map_err(query_err)?;
    let mut capture = read_stats(probe, &rows);
    capture.key_order = order;
    Ok(capture)
}

/// Compares two captures of the same probe by merging their key-ordered CSV files.
pub fn compare_files(
    pre: &Path,
    post: &Path,
    key_len: usize,
    order: KeyOrder,
) -> Result<RowDiff, csv::Error> {
    let mut a = csv::Reader::from_path(pre)?;
    let mut b = csv::Reader::from_path(post)?;
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
