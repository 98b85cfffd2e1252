//! Probe captures against a real throwaway PostgreSQL: the binary COPY path writes exactly the
//! CSV a text COPY writes, types sluice does not format keep the text COPY, and a capture
//! compared with an earlier one follows the earlier one's key order.

use postgres::Client;
use sluice::cluster::Cluster;
use sluice::package::Probe;
use sluice::probe::{self, Earlier, KeyOrder, Sessions};
use std::io::Read;
use std::path::Path;

fn probe(table: &str, key: &str, columns: &[&str]) -> Probe {
    Probe {
        id: "p".into(),
        table: table.into(),
        key: vec![key.into()],
        columns: columns.iter().map(|c| c.to_string()).collect(),
        expect_changed: None,
    }
}

/// The CSV PostgreSQL itself writes for the probe's rows, with the capture's pinned settings.
fn text_copy(c: &mut Client, select: &str) -> Vec<u8> {
    let mut tx = c.transaction().unwrap();
    tx.batch_execute("SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'")
        .unwrap();
    let mut out = Vec::new();
    tx.copy_out(&format!(
        "COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER)"
    ))
    .unwrap()
    .read_to_end(&mut out)
    .unwrap();
    out
}

/// The async connection a capture's rows stream over, to the same database.
fn rows_config(cluster: &Cluster) -> sluice::target::Target {
    sluice::target::Target::local(&cluster.conninfo("postgres", cluster.superuser())).unwrap()
}

fn capture(cluster: &Cluster, p: &Probe, path: &Path) -> probe::Capture {
    let (mut work, mut stats) = (
        cluster.connect("postgres").unwrap(),
        cluster.connect("postgres").unwrap(),
    );
    let rows = rows_config(cluster);
    let sessions = Sessions {
        work: &mut work,
        stats: Some(&mut stats),
        rows: Some(&rows),
        rows_from_bytes: 0, // a connection of its own even for a small table
    };
    let file = std::fs::File::create(path).unwrap();
    probe::capture(sessions, p, file).unwrap()
}

const EVERY_FORMATTED_TYPE: &str = "
    CREATE TABLE public.wide (
        id bigint PRIMARY KEY, small smallint, medium integer, flag boolean, label text,
        code varchar(20), ident uuid, day date, local_at timestamp, at timestamptz);
    INSERT INTO public.wide VALUES
      (1, 1, 1, true, 'plain', 'x', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2026-11-25',
       '2026-11-25 10:11:12', '2026-11-25 10:11:12.5+02'),
      (2, -32768, -2147483648, false, '', '', '00000000-0000-0000-0000-000000000000',
       '0001-01-01 BC', '0044-03-15 12:00:00.000001', '1999-12-31 23:59:59.999999+00'),
      (3, 32767, 2147483647, NULL, 'a,b \"quoted\" and
    a new line', 'comma,', NULL, 'infinity', '-infinity', 'infinity'),
      (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
      (-9223372036854775808, 0, 0, true, 'ünïcødé ✓', '\\.', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
       '294276-12-31', '4713-11-24 00:00:00 BC', '1970-01-01 00:00:00+00'),
      (9223372036854775807, 7, 7, false, ' spaces ', 'tab\there', NULL, '2000-02-29',
       '2000-02-29 23:59:59', '2024-02-29 00:00:00.12+05:30');";

#[test]
fn a_binary_capture_is_byte_identical_to_postgres_own_csv() {
    let cluster = sluice_testkit::cluster();
    let mut c = cluster.connect("postgres").unwrap();
    c.batch_execute(EVERY_FORMATTED_TYPE).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let columns = [
        "small", "medium", "flag", "label", "code", "ident", "day", "local_at", "at",
    ];
    let p = probe("public.wide", "id", &columns);
    let path = tmp.path().join("wide.csv");
    let captured = capture(&cluster, &p, &path);
    assert!(
        captured.binary_copy,
        "every column's type is formatted by sluice"
    );
    assert_eq!(captured.key_order, KeyOrder::Numeric);
    let ours = std::fs::read(&path).unwrap();
    let theirs = text_copy(
        &mut c,
        &format!(
            "SELECT id, {} FROM public.wide ORDER BY id",
            columns.join(", ")
        ),
    );
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&theirs)
    );
    assert_eq!(captured.rows, 6);

    // compared with itself when the earlier capture's order is unknown (an apply that stopped
    // before its summary): the key's type gives the order, as it gave the earlier one's
    let again = tmp.path().join("again.csv");
    let earlier = Earlier {
        csv: &path,
        order: None,
    };
    let (work, stats) = (
        &mut cluster.connect("postgres").unwrap(),
        &mut cluster.connect("postgres").unwrap(),
    );
    let sessions = Sessions {
        work,
        stats: Some(stats),
        rows: None,
        rows_from_bytes: 0,
    };
    let file = std::fs::File::create(&again).unwrap();
    let (same, rows) = probe::capture_compared(sessions, &p, file, earlier).unwrap();
    assert_eq!(same.key_order, KeyOrder::Numeric);
    assert_eq!(
        (rows.unchanged, rows.changed, rows.added, rows.removed),
        (6, 0, 0, 0)
    );

    // a text key, ordered by its text in byte order; and a single column (`\.` is quoted then)
    let p = probe("public.wide", "code", &[]);
    let path = tmp.path().join("code.csv");
    let captured = capture(&cluster, &p, &path);
    assert!(captured.binary_copy);
    assert_eq!(captured.key_order, KeyOrder::Bytes);
    let theirs = text_copy(
        &mut c,
        "SELECT code FROM public.wide ORDER BY code::text COLLATE \"C\"",
    );
    assert_eq!(
        String::from_utf8_lossy(&std::fs::read(&path).unwrap()),
        String::from_utf8_lossy(&theirs)
    );
}

#[test]
fn a_type_sluice_does_not_format_keeps_the_text_copy() {
    let cluster = sluice_testkit::cluster();
    let mut c = cluster.connect("postgres").unwrap();
    c.batch_execute(
        "CREATE TABLE public.money (id integer PRIMARY KEY, amount numeric(12,2), tags text[]);
         INSERT INTO public.money VALUES (1, 10.50, '{a,b}'), (2, NULL, NULL), (3, -0.01, '{}');",
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let p = probe("public.money", "id", &["amount", "tags"]);
    let path = tmp.path().join("money.csv");
    let captured = capture(&cluster, &p, &path);
    assert!(
        !captured.binary_copy,
        "numeric and arrays keep the text COPY"
    );
    let theirs = text_copy(
        &mut c,
        "SELECT id, amount, tags FROM public.money ORDER BY id",
    );
    assert_eq!(std::fs::read(&path).unwrap(), theirs);
    assert_eq!(captured.columns[0].distinct, 2);
    assert_eq!(captured.columns[0].nulls, 1);
    assert_eq!(captured.columns[0].min.as_deref(), Some("-0.01"));
}

#[test]
fn a_capture_compared_with_an_earlier_one_follows_its_key_order() {
    let cluster = sluice_testkit::cluster();
    let mut c = cluster.connect("postgres").unwrap();
    c.batch_execute(
        "CREATE TABLE public.items (id integer PRIMARY KEY, state text);
         INSERT INTO public.items SELECT g, 'new' FROM generate_series(1, 25) g;",
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let p = probe("public.items", "id", &["state"]);
    let pre = tmp.path().join("pre.csv");
    let before = capture(&cluster, &p, &pre);
    assert_eq!(before.key_order, KeyOrder::Numeric);

    // The change turns the key into text (where "10" sorts before "2"), touches 3 rows,
    // removes one and adds one.
    c.batch_execute(
        "ALTER TABLE public.items ALTER COLUMN id TYPE text;
         UPDATE public.items SET state = 'done' WHERE id IN ('2', '10', '25');
         DELETE FROM public.items WHERE id = '7';
         INSERT INTO public.items VALUES ('26', 'new');",
    )
    .unwrap();
    let post = tmp.path().join("post.csv");
    let file = std::fs::File::create(&post).unwrap();
    let earlier = Earlier {
        csv: &pre,
        order: Some(before.key_order),
    };
    // on one session alone this time: rows and statistics both on the working session
    let sessions = Sessions {
        work: &mut c,
        stats: None,
        rows: None,
        rows_from_bytes: 0,
    };
    let (after, rows) = probe::capture_compared(sessions, &p, file, earlier).unwrap();
    assert_eq!(after.key_order, KeyOrder::Numeric);
    assert_eq!(
        (rows.changed, rows.removed, rows.added, rows.unchanged),
        (3, 1, 1, 21)
    );
    // the same counts as comparing the two files afterwards
    assert_eq!(
        probe::compare_files(&pre, &post, 1, KeyOrder::Numeric).unwrap(),
        rows
    );
}

#[test]
fn rows_come_over_the_working_session_when_no_connection_of_their_own_can_be_had() {
    let cluster = sluice_testkit::cluster();
    let mut c = cluster.connect("postgres").unwrap();
    c.batch_execute(EVERY_FORMATTED_TYPE).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let p = probe("public.wide", "id", &["label", "at"]);
    // a connection that cannot be made: nothing listens on port 1
    let unreachable = sluice::target::Target::local(&format!(
        "{} port=1",
        cluster.conninfo("postgres", cluster.superuser())
    ))
    .unwrap();
    let path = tmp.path().join("fallback.csv");
    let sessions = Sessions {
        work: &mut c,
        stats: None,
        rows: Some(&unreachable),
        rows_from_bytes: 0,
    };
    let captured = probe::capture(sessions, &p, std::fs::File::create(&path).unwrap()).unwrap();
    assert_eq!(captured.rows, 6);
    let theirs = text_copy(&mut c, "SELECT id, label, at FROM public.wide ORDER BY id");
    assert_eq!(std::fs::read(&path).unwrap(), theirs);
}
