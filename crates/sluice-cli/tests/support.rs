//! Helpers shared by the CLI's integration tests: copies of the reference package to edit, and
//! the real `sluice` binary.
#![allow(dead_code)]

use assert_cmd::Command;
use sluice::digest::sha256_hex;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

pub const MIGRATION: &str = "sql/phase-alpha-r2.sql";
pub const ROLLBACK: &str = "sql/phase-alpha-r2-rollback.sql";

pub fn sluice() -> Command {
    let mut cmd = Command::cargo_bin("sluice").unwrap();
    cmd.env("NO_COLOR", "1");
    cmd
}

/// A fresh copy of the reference package in a temporary folder.
pub fn reference_copy() -> (TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("phase-alpha");
    std::fs::create_dir_all(&dir).unwrap();
    sluice::reference::write_package(&dir).unwrap();
    (tmp, dir)
}

pub fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap()
}

pub fn write(dir: &Path, rel: &str, text: &str) {
    std::fs::write(dir.join(rel), text).unwrap();
}

/// Edits a file of the package and pins its new sha256 in the manifest.
pub fn edit_pinned(dir: &Path, rel: &str, edit: impl FnOnce(&str) -> String) {
    let old = read(dir, rel);
    let new = edit(&old);
    assert_ne!(old, new, "the edit changed nothing");
    write(dir, rel, &new);
    let manifest =
        read(dir, "sluice.toml").replace(&sha256_hex(old.as_bytes()), &sha256_hex(new.as_bytes()));
    write(dir, "sluice.toml", &manifest);
}

/// Replaces text in the manifest, asserting that it was there.
pub fn edit_manifest(dir: &Path, from: &str, to: &str) {
    let text = read(dir, "sluice.toml");
    assert!(text.contains(from), "manifest has no `{from}`");
    write(dir, "sluice.toml", &text.replacen(from, to, 1));
}

/// The 1-based line of the first occurrence of `needle` in the manifest.
pub fn manifest_line(dir: &Path, needle: &str) -> usize {
    let text = read(dir, "sluice.toml");
    text[..text.find(needle).expect("needle in manifest")]
        .matches('\n')
        .count()
        + 1
}
