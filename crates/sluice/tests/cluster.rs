use sluice::cluster::{find_server, Cluster, ClusterError, ClusterOptions};

#[test]
fn a_throwaway_cluster_starts_serves_and_goes_away() {
    let mut cluster = sluice_testkit::cluster();
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
    let fixture = sluice_testkit::fixture_database();
    let conninfo = fixture.conninfo.clone();
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

/// Root with the server binaries in a folder only root may enter (a clone in root's 0700 home):
/// the server, which runs as an unprivileged OS user, still starts (from a readable copy), and
/// the folder is left as it was.
#[test]
fn root_starts_a_cluster_from_binaries_in_a_0700_folder() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: the server runs as this user, nothing to cross");
        return;
    }
    let bins = sluice_testkit::server();
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let install = bins.bindir.parent().unwrap();
    let entry = home.path().join("clone/.pg/entry");
    std::fs::create_dir_all(entry.parent().unwrap()).unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(install)
        .arg(&entry)
        .status()
        .unwrap();
    assert!(status.success());
    let mut moved = bins.clone();
    moved.bindir = entry.join(bins.bindir.file_name().unwrap());
    let cluster = Cluster::start(ClusterOptions::new(moved)).expect("starts from a 0700 home");
    let mut client = cluster.connect("postgres").unwrap();
    let one: i32 = client.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
    let mode = std::fs::metadata(home.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "the user's folder is not chmod-ed");
}
