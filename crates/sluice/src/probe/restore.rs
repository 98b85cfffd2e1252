//! What a rollback cannot restore: a psql script that puts a probe's watched columns back to
//! their values in the apply's pre capture — only in rows that still hold the value the
//! migration left (the post capture); a row written again since is left alone and listed by
//! key. User triggers are kept from rewriting the restored values with
//! `session_replication_role = replica` when the role may set it (a superuser), else by
//! disabling the table's enabled user triggers by name inside the script's transaction (what
//! the table's owner may do). sluice writes the script, streaming both captures; a person
//! decides to run it.

use super::{captured_quoted, quote_ident, quote_qualified};
use crate::package::Probe;
use std::fmt::Write as _;
use std::path::Path;

/// How the script keeps user triggers from firing on the restored rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerGuard {
    /// `SET LOCAL session_replication_role = replica` (superuser, or a role granted SET on it).
    ReplicationRole,
    /// `ALTER TABLE … DISABLE TRIGGER` for each of these (the enabled user triggers), enabled
    /// again before COMMIT: works for the table's owner.
    DisableTriggers(Vec<String>),
}

/// Chooses the guard for `table` on this session: the replication role when the role may set
/// it (tried in a transaction that is rolled back), else the table's enabled user triggers.
pub(crate) fn trigger_guard(
    client: &mut postgres::Client,
    table: &str,
) -> Result<TriggerGuard, postgres::Error> {
    client.batch_execute("BEGIN")?;
    let allowed = client
        .batch_execute("SET LOCAL session_replication_role = replica")
        .is_ok();
    client.batch_execute("ROLLBACK")?;
    if allowed {
        return Ok(TriggerGuard::ReplicationRole);
    }
    let rows = client.query(
        "SELECT tgname::text FROM pg_catalog.pg_trigger \
          WHERE tgrelid = $1::text::regclass AND NOT tgisinternal AND tgenabled <> 'D' ORDER BY 1",
        &[&quote_qualified(table)],
    )?;
    Ok(TriggerGuard::DisableTriggers(
        rows.iter().map(|r| r.get(0)).collect(),
    ))
}

/// `t.a = r.a AND …` over the key, or `t.c IS [NOT] DISTINCT FROM r.c` over the columns.
fn each(cols: &[String], template: &str, join: &str) -> String {
    cols.iter()
        .map(|c| template.replace("{}", &quote_ident(c)))
        .collect::<Vec<_>>()
        .join(join)
}

fn head(probe: &Probe, run_dir: &Path, guard: &TriggerGuard) -> String {
    let table = quote_qualified(&probe.table);
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
    let _ = writeln!(
        out,
        "-- in the rows that still hold what the migration left (its post capture). A row written"
    );
    let _ = writeln!(
        out,
        "-- again since is left as it is; the first query lists those rows by key."
    );
    let _ = writeln!(out, "-- The rollback cannot do this (it drops what the migration added; it does not rewind data).");
    let _ = writeln!(
        out,
        "-- Review it, then run it with: psql -v ON_ERROR_STOP=1 -f THIS_FILE"
    );
    let _ = writeln!(out, "\nBEGIN;");
    match guard {
        TriggerGuard::ReplicationRole => {
            let _ = writeln!(
                out,
                "-- user triggers must not rewrite the restored values (needs a superuser)"
            );
            let _ = writeln!(out, "SET LOCAL session_replication_role = replica;");
        }
        TriggerGuard::DisableTriggers(names) => {
            let _ = writeln!(
                out,
                "-- user triggers must not rewrite the restored values: disabled by name for this"
            );
            let _ = writeln!(out, "-- transaction (the table's owner may; session_replication_role needs a superuser)");
            for name in names {
                let _ = writeln!(
                    out,
                    "ALTER TABLE {table} DISABLE TRIGGER {};",
                    quote_ident(name)
                );
            }
        }
    }
    out
}

/// A temporary table shaped like the capture, and the COPY that fills it (the CSV follows).
fn copy_into(probe: &Probe, temp: &str) -> String {
    let all = captured_quoted(probe).join(", ");
    format!(
        "CREATE TEMP TABLE {temp} ON COMMIT DROP AS SELECT {all} FROM {} WITH NO DATA;\nCOPY {temp} ({all}) FROM STDIN WITH (FORMAT csv, HEADER);\n",
        quote_qualified(&probe.table)
    )
}

fn tail(probe: &Probe, guard: &TriggerGuard) -> String {
    let table = quote_qualified(&probe.table);
    let on_pre = each(&probe.key, "t.{} = r.{}", " AND ");
    let on_post = each(&probe.key, "p.{} = r.{}", " AND ");
    let keys = each(&probe.key, "t.{}", ", ");
    let set = each(&probe.columns, "{} = r.{}", ", ");
    let still_post = each(&probe.columns, "t.{} IS NOT DISTINCT FROM p.{}", " AND ");
    let not_post = each(&probe.columns, "t.{} IS DISTINCT FROM p.{}", " OR ");
    let not_pre = each(&probe.columns, "t.{} IS DISTINCT FROM r.{}", " OR ");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "-- rows written again since the migration: left as they are"
    );
    let _ = writeln!(
        out,
        "SELECT {keys}, 'written since the migration: left as it is' AS sluice_restore\n  FROM {table} AS t JOIN sluice_pre AS r ON {on_pre} JOIN sluice_post AS p ON {on_post}\n WHERE ({not_post}) AND ({not_pre});"
    );
    let _ = writeln!(
        out,
        "UPDATE {table} AS t SET {set}\n  FROM sluice_pre AS r JOIN sluice_post AS p ON {on_post}\n WHERE {on_pre} AND ({still_post}) AND ({not_pre});"
    );
    if let TriggerGuard::DisableTriggers(names) = guard {
        for name in names {
            let _ = writeln!(
                out,
                "ALTER TABLE {table} ENABLE TRIGGER {};",
                quote_ident(name)
            );
        }
    }
    let _ = writeln!(out, "COMMIT;");
    out
}

/// Writes the script into `out`, streaming the pre capture `pre_csv` and the post capture
/// `post_csv` (either can be larger than memory should hold).
pub(crate) fn write_restore_script(
    probe: &Probe,
    pre_csv: &Path,
    post_csv: &Path,
    run_dir: &Path,
    guard: &TriggerGuard,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    out.write_all(head(probe, run_dir, guard).as_bytes())?;
    for (temp, csv) in [("sluice_pre", pre_csv), ("sluice_post", post_csv)] {
        out.write_all(copy_into(probe, temp).as_bytes())?;
        let last = copy_tracking_last_byte(&mut std::fs::File::open(csv)?, out)?;
        if last != Some(b'\n') {
            out.write_all(b"\n")?;
        }
        out.write_all(b"\\.\n")?;
    }
    out.write_all(tail(probe, guard).as_bytes())
}

/// Copies `from` into `to`; returns the last byte copied.
fn copy_tracking_last_byte(
    from: &mut impl std::io::Read,
    to: &mut impl std::io::Write,
) -> std::io::Result<Option<u8>> {
    let mut buf = vec![0u8; 1 << 16];
    let mut last = None;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(last);
        }
        to.write_all(&buf[..n])?;
        last = Some(buf[n - 1]);
    }
}
