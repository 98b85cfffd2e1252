//! The test kit both crates' integration tests share:
//! - [`server`]: the PostgreSQL server binaries the tests use (`SLUICE_TEST_PG_BINDIR`, else the
//!   machine's), and [`server_bindir`] to hand the same folder to the `sluice` binary;
//! - [`cluster`] / [`cluster_with`]: a throwaway cluster of the test's own, for a test that
//!   changes cluster-level state (roles, settings, advisory locks, a stopped server);
//! - [`fixture_database`]: a database of its own with the seed's production state, in the one
//!   cluster this test binary shares (started at the first call, thrown away when the binary
//!   exits): a copy of a fixture loaded once, so a case costs a `CREATE DATABASE … TEMPLATE`
//!   instead of `initdb`, a server start and the fixture's load;
//! - [`fingerprint`]: a target's schema and rows as one string, equal when it was not changed.

use sluice::cluster::{find_server, Cluster, ClusterOptions, ServerBinaries};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The server binaries the tests use: `SLUICE_TEST_PG_BINDIR`, else the machine's.
pub fn server() -> ServerBinaries {
    find_server(server_bindir().as_deref(), None).expect("PostgreSQL server binaries")
}

/// `SLUICE_TEST_PG_BINDIR`, when set: the folder to hand to `sluice --pg-bindir` too.
pub fn server_bindir() -> Option<PathBuf> {
    std::env::var_os("SLUICE_TEST_PG_BINDIR").map(PathBuf::from)
}

/// A throwaway cluster of the test's own.
pub fn cluster() -> Cluster {
    cluster_with(&[])
}

/// A throwaway cluster of the test's own, with extra server settings.
pub fn cluster_with(settings: &[(&str, &str)]) -> Cluster {
    let mut options = ClusterOptions::new(server());
    options.settings = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Cluster::start(options).expect("cluster starts")
}

/// A throwaway cluster of the test's own with the seed's production state loaded in
/// `directus`; the target's conninfo.
pub fn fixture_cluster() -> (Cluster, String) {
    fixture_cluster_with(&[])
}

/// The same, with extra server settings (e.g. the rehearsal marker).
pub fn fixture_cluster_with(settings: &[(&str, &str)]) -> (Cluster, String) {
    let cluster = cluster_with(settings);
    let conninfo = sluice::reference::prepare_target(&cluster).expect("fixture loads");
    (cluster, conninfo)
}

/// A database of the shared cluster with the seed's production state, dropped with this value.
pub struct FixtureDb {
    /// The database's name.
    pub name: String,
    /// The conninfo of the fixture's role on it, as `sluice --target` takes it.
    pub conninfo: String,
    /// The same cluster as the bootstrap superuser, on the `postgres` database.
    pub admin_conninfo: String,
    /// The shared cluster's server binaries.
    pub binaries: ServerBinaries,
}

impl FixtureDb {
    /// A session of the fixture's role on this database.
    pub fn connect(&self) -> postgres::Client {
        postgres::Client::connect(&self.conninfo, postgres::NoTls).expect("fixture database")
    }
}

impl Drop for FixtureDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&self.admin_conninfo, postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// The cluster this test binary shares, and how to reach it. The cluster itself sits in
/// [`SHARED_CLUSTER`], from which the exit handler takes it to stop it and remove its folder.
struct Shared {
    binaries: ServerBinaries,
    /// conninfo of the bootstrap superuser on `postgres`.
    admin: String,
    /// conninfo of the fixture's role on the pristine fixture database.
    fixture: String,
}

static SHARED: OnceLock<Shared> = OnceLock::new();
static SHARED_CLUSTER: Mutex<Option<Cluster>> = Mutex::new(None);
static CASES: AtomicUsize = AtomicUsize::new(0);

/// Stops the shared cluster and removes its folder when the test binary exits.
extern "C" fn discard_shared_cluster() {
    if let Ok(mut held) = SHARED_CLUSTER.lock() {
        drop(held.take());
    }
}

fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        let cluster = cluster();
        let fixture = sluice::reference::prepare_target(&cluster).expect("fixture loads");
        let shared = Shared {
            binaries: cluster.binaries().clone(),
            admin: cluster.conninfo("postgres", cluster.superuser()),
            fixture,
        };
        *SHARED_CLUSTER.lock().expect("shared cluster") = Some(cluster);
        // SAFETY: registers a plain function with no arguments, once
        unsafe {
            libc::atexit(discard_shared_cluster);
        }
        shared
    })
}

/// A fresh database with the seed's production state, in the cluster this test binary shares.
/// For a case whose changes stay inside its database: roles, settings and advisory locks are
/// the cluster's, and a case that changes them takes a [`fixture_cluster`] of its own.
pub fn fixture_database() -> FixtureDb {
    let shared = shared();
    let name = format!(
        "case_{}_{}",
        std::process::id(),
        CASES.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin =
        postgres::Client::connect(&shared.admin, postgres::NoTls).expect("shared cluster");
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {name} TEMPLATE {} OWNER {}",
            sluice::reference::DATABASE,
            sluice::reference::ROLE
        ))
        .expect("a copy of the fixture database");
    FixtureDb {
        conninfo: shared.fixture.replace(
            &format!("dbname={}", sluice::reference::DATABASE),
            &format!("dbname={name}"),
        ),
        name,
        admin_conninfo: shared.admin.clone(),
        binaries: shared.binaries.clone(),
    }
}

/// The target's schema (catalog snapshot) and every table's rows, as one string: equal
/// strings mean an unchanged target.
pub fn fingerprint(conninfo: &str) -> String {
    let mut client = postgres::Client::connect(conninfo, postgres::NoTls).unwrap();
    let schema = sluice::catalog::snapshot(&mut client, sluice::catalog::SnapshotOptions::new(&[]))
        .unwrap()
        .snapshot;
    let mut out = serde_json::to_string(&schema).unwrap();
    let tables: Vec<String> = client
        .query(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for table in tables {
        let row = client
            .query_one(&format!("SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {table} t"), &[])
            .unwrap();
        out.push_str(&format!("\n{table} {}", row.get::<_, String>(0)));
    }
    out
}
