//! The reference package (`examples/phase-alpha/`, the seed's change) and its fixture, built
//! into the library so that `sluice demo` and the tests can use them from anywhere.

use crate::cluster::Cluster;
use std::path::Path;

/// The package's files, by path inside the package folder.
pub const PACKAGE_FILES: &[(&str, &str)] = &[
    (
        "sluice.toml",
        include_str!("../../../examples/phase-alpha/sluice.toml"),
    ),
    (
        "sql/phase-alpha-r2.sql",
        include_str!("../../../examples/phase-alpha/sql/phase-alpha-r2.sql"),
    ),
    (
        "sql/phase-alpha-r2-rollback.sql",
        include_str!("../../../examples/phase-alpha/sql/phase-alpha-r2-rollback.sql"),
    ),
    (
        "allowed_signers",
        include_str!("../../../examples/phase-alpha/allowed_signers"),
    ),
    (
        "README.md",
        include_str!("../../../examples/phase-alpha/README.md"),
    ),
];

/// SQL that builds the seed's production state from nothing, run as `workflow_admin` in
/// `directus`.
pub const FIXTURE_SQL: &str =
    include_str!("../../../examples/phase-alpha/fixture/production-state.sql");

/// The role and database the seed's production target has.
pub const ROLE: &str = "workflow_admin";
pub const DATABASE: &str = "directus";

/// Writes the reference package into `dir` (which must exist).
pub fn write_package(dir: &Path) -> std::io::Result<()> {
    for (rel, text) in PACKAGE_FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
    }
    Ok(())
}

/// Creates the seed's role and database in a throwaway cluster, loads the fixture, and returns
/// the connection string of the prepared target.
pub fn prepare_target(cluster: &Cluster) -> Result<String, crate::target::TargetError> {
    let mut admin = cluster.connect("postgres")?;
    let sql = |client: &mut postgres::Client, text: &str| {
        client
            .batch_execute(text)
            .map_err(|e| crate::target::TargetError::Query {
                target: "the throwaway cluster".into(),
                message: crate::target::pg_message(&e),
            })
    };
    sql(&mut admin, &format!("CREATE ROLE {ROLE} LOGIN SUPERUSER"))?;
    sql(
        &mut admin,
        &format!("CREATE DATABASE {DATABASE} OWNER {ROLE}"),
    )?;
    let conninfo = cluster.conninfo(DATABASE, ROLE);
    let mut client = crate::target::Target::local(&conninfo)?.connect("fixture")?;
    sql(&mut client, FIXTURE_SQL)?;
    Ok(conninfo)
}
