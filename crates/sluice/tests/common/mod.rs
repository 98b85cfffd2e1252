//! Shared by the library's integration tests: a real throwaway PostgreSQL.
#![allow(dead_code)]

use sluice::cluster::{find_server, Cluster, ClusterOptions};
use std::path::PathBuf;

/// Server binaries from `SLUICE_TEST_PG_BINDIR`, or the machine's.
pub fn cluster() -> Cluster {
    let explicit = std::env::var_os("SLUICE_TEST_PG_BINDIR").map(PathBuf::from);
    let bins = find_server(explicit.as_deref(), None).expect("PostgreSQL server binaries");
    Cluster::start(ClusterOptions::new(bins)).expect("cluster starts")
}

/// A cluster with extra server settings.
pub fn cluster_with(settings: &[(&str, &str)]) -> Cluster {
    let explicit = std::env::var_os("SLUICE_TEST_PG_BINDIR").map(PathBuf::from);
    let bins = find_server(explicit.as_deref(), None).expect("PostgreSQL server binaries");
    let mut options = ClusterOptions::new(bins);
    options.settings = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Cluster::start(options).expect("cluster starts")
}

/// A cluster with the seed's production state loaded; returns the target's conninfo too.
pub fn fixture_cluster() -> (Cluster, String) {
    let cluster = cluster();
    let conninfo = sluice::reference::prepare_target(&cluster).expect("fixture loads");
    (cluster, conninfo)
}
