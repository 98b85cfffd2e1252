//! The package digest: SHA-256 over a canonical form of the manifest and the bytes of every file
//! it names. Approvals and rehearsal records are bound to it, so any edit that changes meaning
//! changes it, and nothing that does not (whitespace, comments, key order) does.
//!
//! The hashed input is, in this order:
//!
//! ```text
//! sluice-digest-v1\n
//! manifest <byte length>\n<canonical manifest>\n
//! file <path relative to the package> <byte length> <sha256 of the bytes>\n   (one per named file)
//! ```
//!
//! The canonical manifest is the parsed TOML written back with keys sorted, one value form per
//! type, no comments and no layout. The named files are the migration, the rollback and the
//! allowed_signers file, in that order. The `approvals/` and `rehearsals/` folders are not in it:
//! they are about the digest, not part of it.

use crate::package::Package;
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// The digest's version tag; a change of the canonical form changes it.
pub const VERSION: &str = "sluice-digest-v1";

/// SHA-256 of bytes, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The digest of a loaded package, lowercase hex.
pub fn package_digest(pkg: &Package) -> String {
    hex::encode(Sha256::digest(digest_input(pkg).as_bytes()))
}

/// The exact text that is hashed, for `sluice digest --explain`.
pub fn digest_input(pkg: &Package) -> String {
    let table: toml::Table = toml::from_str(&pkg.manifest.text).unwrap_or_default();
    let mut canonical = String::new();
    write_table(&mut canonical, &table);
    let mut input = format!("{VERSION}\nmanifest {}\n{canonical}\n", canonical.len());
    let mut files: Vec<(&std::path::Path, &[u8])> =
        vec![(&pkg.migration.file.rel, &pkg.migration.file.bytes)];
    if let Some(rollback) = &pkg.rollback {
        files.push((&rollback.rel, &rollback.bytes));
    }
    if let Some(signers) = &pkg.approvals.allowed_signers {
        files.push((&signers.rel, &signers.bytes));
    }
    for (rel, bytes) in files {
        let _ = writeln!(
            input,
            "file {} {} {}",
            rel.to_string_lossy().replace('\\', "/"),
            bytes.len(),
            sha256_hex(bytes)
        );
    }
    input
}

fn write_table(out: &mut String, table: &toml::Table) {
    let mut keys: Vec<&String> = table.keys().collect();
    keys.sort();
    out.push('{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, &table[key]);
    }
    out.push('}');
}

fn write_value(out: &mut String, value: &toml::Value) {
    match value {
        toml::Value::String(s) => write_string(out, s),
        toml::Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        toml::Value::Float(f) => {
            let _ = write!(out, "{f:?}");
        }
        toml::Value::Boolean(b) => {
            let _ = write!(out, "{b}");
        }
        toml::Value::Datetime(d) => {
            out.push_str("datetime:");
            write_string(out, &d.to_string());
        }
        toml::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        toml::Value::Table(t) => write_table(out, t),
    }
}

/// A JSON-style string literal: quotes, backslashes and control characters escaped.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
