mod common;

use sluice::cluster::{find_server, ClusterError};

#[test]
fn a_throwaway_cluster_starts_serves_and_goes_away() {
    let mut cluster = common::cluster();
    let socket_dir = cluster.socket_dir();
    let mut client = cluster.connect("postgres").unwrap();
    let row = client
        .query_one("SELECT current_setting('listen_addresses')", &[])
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "", "no TCP listener");
    let version: String = client.query_one("SHOW server_version", &[]).unwrap().get(0);
    assert!(version.starts_with(&cluster.binaries().major.to_string()));
    drop(client);
    cluster.stop().unwrap();
    drop(cluster);
    assert!(!socket_dir.exists(), "the temporary folder is removed");
}

#[test]
fn the_fixture_builds_the_seeds_production_state() {
    let (_cluster, conninfo) = common::fixture_cluster();
    let mut c = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    let count =
        |c: &mut postgres::Client, sql: &str| -> i64 { c.query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM public.tac_logical_unit"),
        86
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM public.tac_logical_unit WHERE lifecycle_status = 'draft_only'"
        ),
        86
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(DISTINCT updated_at) FROM public.tac_logical_unit"
        ),
        3
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM sandbox_tac.logical_unit"),
        76
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'cutter_governance'"
        ),
        5
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'trg_tac_birth_gate_lu'"
        ),
        1
    );
}

#[test]
fn a_missing_version_is_named() {
    let err = find_server(None, Some(8)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(
        err,
        ClusterError::WrongVersion { want: 8, .. } | ClusterError::NotFound { .. }
    ));
    assert!(
        text.contains("PostgreSQL 8") || text.contains("major version 8"),
        "{text}"
    );
    assert!(text.contains("--pg-bindir"), "{text}");
}
