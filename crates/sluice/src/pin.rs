//! `sluice pin`: writes the sha256 of the migration and rollback files into `sluice.toml`
//! (SPEC §3). Only those two values change: the manifest is edited with `toml_edit`, so its
//! comments, order and layout stay byte for byte, and a pin that is already right is not
//! rewritten. The files are found the way loading the package finds them (inside the package
//! folder only), so pinning cannot be pointed at a file the package could not use.

use crate::package::{Package, PackageError, Problem, MANIFEST};
use crate::source::SourceFile;
use std::io::Write;
use std::path::{Path, PathBuf};
use toml_edit::DocumentMut;

/// The manifest tables whose `file` is pinned by their `sha256`.
const PINNED_TABLES: [&str; 2] = ["migration", "rollback"];

/// One pinned file: what `sluice.toml` said and what it says now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pin {
    /// `migration` or `rollback`.
    pub table: &'static str,
    /// The file, as the manifest names it.
    pub file: PathBuf,
    /// The value `sha256` held (as written, even when it was not a sha256).
    pub old: String,
    /// The sha256 of the file's bytes, now in `sha256`.
    pub new: String,
}

impl Pin {
    pub fn changed(&self) -> bool {
        self.old != self.new
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Pins the migration and rollback files of the package in `dir` and returns each pin, changed
/// or not. `sluice.toml` is rewritten (atomically, its mode kept) only when a value changed.
pub fn pin(dir: &Path) -> Result<Vec<Pin>, PinError> {
    let (pkg, mut doc) = load(dir)?;
    let files = std::iter::once(&pkg.migration.file).chain(pkg.rollback.as_ref());
    let mut pins = Vec::new();
    for (table, file) in PINNED_TABLES.into_iter().zip(files) {
        let new = crate::digest::sha256_hex(&file.bytes);
        let old = set_sha256(&mut doc, table, &new).unwrap_or_default();
        pins.push(Pin {
            table,
            file: file.rel.clone(),
            old,
            new,
        });
    }
    if pins.iter().any(Pin::changed) {
        write_manifest(&dir.join(MANIFEST), &doc.to_string())?;
    }
    Ok(pins)
}

/// The package and its manifest as an editable document. A pin that is not 64 hex digits (a
/// placeholder such as `""` or `"…"`) stops the package from loading, so the package is then
/// loaded with zeros in its place: pinning is how such a value gets its first real one.
fn load(dir: &Path) -> Result<(Package, DocumentMut), PackageError> {
    let err = match Package::load(dir) {
        Ok(pkg) => {
            let doc = editable(&pkg.manifest)?;
            return Ok((pkg, doc));
        }
        Err(err) => err,
    };
    let Some(doc) = std::fs::read_to_string(dir.join(MANIFEST))
        .ok()
        .and_then(|text| text.parse::<DocumentMut>().ok())
    else {
        return Err(err);
    };
    let mut placeholder = doc.clone();
    let malformed: Vec<&str> = PINNED_TABLES
        .into_iter()
        .filter(|t| sha256_value(&doc, t).is_some_and(|v| !is_sha256(&v)))
        .collect();
    if malformed.is_empty() {
        return Err(err);
    }
    for table in malformed {
        set_sha256(&mut placeholder, table, &"0".repeat(64));
    }
    let pkg = Package::load_with_manifest(dir, placeholder.to_string())?;
    Ok((pkg, doc))
}

/// The loaded manifest's text as a `toml_edit` document.
fn editable(manifest: &SourceFile) -> Result<DocumentMut, PackageError> {
    manifest.text.parse::<DocumentMut>().map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        PackageError::Invalid {
            problems: vec![Problem {
                location: manifest.locate(at),
                message: format!("cannot edit the manifest: {}", e.message()),
            }],
        }
    })
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// `[table].sha256` as written, when it is a string.
fn sha256_value(doc: &DocumentMut, table: &str) -> Option<String> {
    doc.get(table)?.get("sha256")?.as_str().map(str::to_string)
}

/// Sets `[table].sha256` to `value`, keeping the whitespace and comment around the old value;
/// returns the old value. Nothing is set when the table or its `sha256` is not there.
fn set_sha256(doc: &mut DocumentMut, table: &str, value: &str) -> Option<String> {
    let slot = doc.get_mut(table)?.get_mut("sha256")?.as_value_mut()?;
    let old = slot.as_str().map(str::to_string).unwrap_or_default();
    if old != value {
        let decor = slot.decor().clone();
        *slot = toml_edit::Value::from(value);
        *slot.decor_mut() = decor;
    }
    Some(old)
}

/// Replaces the manifest through a temporary file in its folder, keeping its mode.
fn write_manifest(path: &Path, text: &str) -> Result<(), PinError> {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let error = |source| PinError::Write {
        path: path.clone(),
        source,
    };
    let folder = path.parent().unwrap_or(Path::new("."));
    let mode = std::fs::metadata(&path).map_err(error)?.permissions();
    let mut temp = tempfile::Builder::new()
        .prefix(".sluice.toml-")
        .tempfile_in(folder)
        .map_err(error)?;
    temp.write_all(text.as_bytes()).map_err(error)?;
    temp.as_file().sync_all().map_err(error)?;
    std::fs::set_permissions(temp.path(), mode).map_err(error)?;
    temp.persist(&path).map_err(|e| error(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_value_changes() {
        let text = "[migration] # the change\nfile = \"m.sql\"\nsha256 = \"abc\"   # pinned\n";
        let mut doc: DocumentMut = text.parse().unwrap();
        assert_eq!(
            set_sha256(&mut doc, "migration", "def").as_deref(),
            Some("abc")
        );
        assert_eq!(
            doc.to_string(),
            "[migration] # the change\nfile = \"m.sql\"\nsha256 = \"def\"   # pinned\n"
        );
        assert_eq!(set_sha256(&mut doc, "rollback", "def"), None);
    }
}
