//! The raw shape of `sluice.toml` as serde reads it: every table refuses unknown keys, and every
//! value that is validated later keeps its span so that its error can point at it.

use serde::Deserialize;
use serde_spanned::Spanned;

pub type S<T> = Spanned<T>;

/// The top-level tables of `sluice.toml`, in the order of [`RawManifest`]'s fields (a unit test
/// holds the two together). Checked before serde reads the manifest: serde visits tables in
/// sorted order, so a misspelt table (`[migraton]`) would otherwise be reported as a missing key
/// of a table that sorts before it.
pub const TABLES: [&str; 12] = [
    "package",
    "target",
    "migration",
    "scope",
    "preflight",
    "verify",
    "probe",
    "backup",
    "schema_diff",
    "rollback",
    "approvals",
    "rehearsal",
];

/// The tables of [`TABLES`] that are arrays of tables (`[[preflight]]`).
pub const ARRAY_TABLES: [&str; 3] = ["preflight", "verify", "probe"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawManifest {
    pub package: S<RawPackage>,
    #[serde(default)]
    pub target: Option<RawTarget>,
    pub migration: S<RawMigration>,
    #[serde(default)]
    pub scope: Option<RawScope>,
    #[serde(default)]
    pub preflight: Vec<S<RawCheck>>,
    #[serde(default)]
    pub verify: Vec<S<RawCheck>>,
    #[serde(default)]
    pub probe: Vec<S<RawProbe>>,
    #[serde(default)]
    pub backup: Option<S<RawBackup>>,
    #[serde(default)]
    pub schema_diff: Option<RawSchemaDiff>,
    #[serde(default)]
    pub rollback: Option<S<RawRollback>>,
    #[serde(default)]
    pub approvals: Option<S<RawApprovals>>,
    #[serde(default)]
    pub rehearsal: Option<RawRehearsal>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPackage {
    pub id: S<String>,
    pub revision: S<String>,
    pub title: S<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub non_scope: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub database: Option<S<String>>,
    pub role: Option<S<String>>,
    pub server_major: Option<S<i64>>,
    pub system_identifier: Option<S<String>>,
    pub search_path: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMigration {
    pub file: S<String>,
    pub sha256: S<String>,
    pub transaction: Option<S<String>>,
    pub lock_timeout_ms: Option<S<i64>>,
    pub statement_timeout_ms: Option<S<i64>>,
    pub lock_retries: Option<S<i64>>,
    pub expect: Option<S<toml::Table>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScope {
    pub operations: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub id: S<String>,
    pub title: S<String>,
    pub sql: Option<S<String>>,
    pub expect: Option<S<toml::Value>>,
    pub expect_rows: Option<S<i64>>,
    pub covered_by: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    pub id: S<String>,
    pub table: S<String>,
    pub key: S<Vec<String>>,
    pub columns: S<Vec<String>>,
    pub expect_changed: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackup {
    pub required: Option<bool>,
    pub reason: Option<String>,
    pub max_age_minutes: Option<S<i64>>,
    pub compress: Option<S<RawCompress>>,
    pub format: Option<S<String>>,
    pub jobs: Option<S<i64>>,
}

/// `compress = 6` (a gzip level, as the seed's `-Z 6`) or `compress = "zstd:3"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawCompress {
    Level(i64),
    Method(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchemaDiff {
    pub allow_removed: Option<bool>,
    #[serde(default)]
    pub ignore_schemas: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRollback {
    pub file: S<String>,
    pub sha256: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApprovals {
    pub required: Option<S<i64>>,
    pub allowed_signers: Option<S<String>>,
    pub operator_may_approve: Option<bool>,
    pub rollback_required: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRehearsal {
    pub required: Option<bool>,
    pub lock_budget_ms: Option<S<i64>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_the_manifests_fields() {
        let err = toml::from_str::<RawManifest>("zzz = 1").unwrap_err();
        let expected: Vec<String> = TABLES.iter().map(|t| format!("`{t}`")).collect();
        assert!(
            err.message()
                .contains(&format!("expected one of {}", expected.join(", "))),
            "{}",
            err.message()
        );
    }
}
