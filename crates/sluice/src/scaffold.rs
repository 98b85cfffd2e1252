//! The starter package of `sluice init`: a small, complete, commented package that lints clean
//! and shows every section of the manifest, with the sha256 pins computed for its own files.

use crate::digest::sha256_hex;
use std::path::Path;

const MIGRATION: &str = include_str!("scaffold/migration.sql");
const ROLLBACK: &str = include_str!("scaffold/rollback.sql");
const MANIFEST: &str = include_str!("scaffold/sluice.toml");
const ALLOWED_SIGNERS: &str = include_str!("scaffold/allowed_signers");

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("{} already exists and is not empty: sluice init only writes into a new or empty folder", .0.display())]
    NotEmpty(std::path::PathBuf),
    #[error("cannot write the package into {}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes the starter package into `dir` (created when missing; refused when not empty).
pub fn init(dir: &Path, id: &str) -> Result<(), ScaffoldError> {
    let io = |source| ScaffoldError::Io {
        path: dir.to_path_buf(),
        source,
    };
    if dir.exists() && std::fs::read_dir(dir).map_err(io)?.next().is_some() {
        return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
    }
    std::fs::create_dir_all(dir.join("sql")).map_err(io)?;
    let manifest = MANIFEST
        .replace("{{ID}}", id)
        .replace("{{MIGRATION_SHA256}}", &sha256_hex(MIGRATION.as_bytes()))
        .replace("{{ROLLBACK_SHA256}}", &sha256_hex(ROLLBACK.as_bytes()));
    for (rel, text) in [
        ("sluice.toml", manifest.as_str()),
        ("sql/migration.sql", MIGRATION),
        ("sql/rollback.sql", ROLLBACK),
        ("allowed_signers", ALLOWED_SIGNERS),
    ] {
        std::fs::write(dir.join(rel), text).map_err(io)?;
    }
    Ok(())
}

/// A package id from a folder name: lowercase, anything outside `[a-z0-9._-]` made `-`.
pub fn id_from_dir(dir: &Path) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let id: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if id.trim_matches('-').is_empty() {
        "my-change".into()
    } else {
        id
    }
}
