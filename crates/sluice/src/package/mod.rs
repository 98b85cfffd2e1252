//! The package: a folder with `sluice.toml` and the files it names (SPEC §2). Loading reads the
//! manifest with spans, refuses unknown keys, validates every value, resolves every file inside
//! the folder (no `..`, no absolute path, no symlink out) and reads it, so that everything after
//! loading works on a [`Package`] that is known to be whole.

mod manifest;
mod validate;

pub(crate) use validate::{not_utf8, MAX_FILE_BYTES};

use crate::expect::{ExpectValue, Expectation};
use crate::source::{Location, SourceFile};
use crate::sql::names::SearchPath;
use crate::sql::transaction::TransactionMode;
use crate::sql::Operation;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// The manifest's file name inside a package folder.
pub const MANIFEST: &str = "sluice.toml";

/// A loaded, validated package.
#[derive(Debug, Clone)]
pub struct Package {
    /// The package folder, canonicalized.
    pub dir: PathBuf,
    /// The package folder as the user named it, for messages.
    pub display_dir: PathBuf,
    /// The manifest's text, for locating errors found after loading.
    pub manifest: SourceFile,
    pub info: PackageInfo,
    pub target: TargetSpec,
    pub migration: Migration,
    /// `None` when the manifest has no `[scope]` section.
    pub scope: Option<Vec<Spanned<Operation>>>,
    pub preflight: Vec<Check>,
    pub verify: Vec<Check>,
    pub probes: Vec<Probe>,
    pub backup: BackupPolicy,
    pub schema_diff: SchemaDiffPolicy,
    pub rollback: Option<PinnedFile>,
    pub approvals: ApprovalPolicy,
    pub rehearsal: RehearsalPolicy,
}

/// A value and where the manifest says it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spanned<T> {
    pub value: T,
    #[serde(skip)]
    pub span: std::ops::Range<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PackageInfo {
    pub id: String,
    pub revision: String,
    pub title: String,
    pub summary: Option<String>,
    pub non_scope: Vec<String>,
}

/// `[target]`: what the target-identity gate enforces. Every key is optional.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetSpec {
    pub database: Option<String>,
    pub role: Option<String>,
    pub server_major: Option<u32>,
    pub system_identifier: Option<String>,
    #[serde(skip)]
    pub search_path: SearchPath,
    #[serde(rename = "search_path")]
    pub search_path_text: String,
}

/// A file of the package whose bytes are pinned by a sha256 in the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct PinnedFile {
    /// The path as written in the manifest, relative to the package folder.
    pub rel: PathBuf,
    /// The pinned sha256, lowercase hex.
    pub sha256: String,
    #[serde(skip)]
    pub bytes: Vec<u8>,
    #[serde(skip)]
    pub sha256_span: std::ops::Range<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Migration {
    pub file: PinnedFile,
    pub transaction: TransactionMode,
    pub lock_timeout_ms: u64,
    pub statement_timeout_ms: u64,
    pub lock_retries: u32,
    /// `[migration.expect]`: the one row of the last statement, checked before COMMIT.
    pub expect: Option<Expectation>,
}

/// A read-only check (`[[preflight]]` or `[[verify]]`).
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: String,
    pub title: String,
    pub body: CheckBody,
    #[serde(skip)]
    pub span: std::ops::Range<usize>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckBody {
    /// A query and what it must return.
    Sql { sql: String, expect: Expectation },
    /// The check is what a gate of the pipeline proves (e.g. P-1 by `target-identity`).
    CoveredBy { gate: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub id: String,
    /// `schema.table`.
    pub table: String,
    pub key: Vec<String>,
    pub columns: Vec<String>,
    pub expect_changed: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupPolicy {
    pub required: bool,
    pub reason: Option<String>,
    pub max_age_minutes: u64,
    /// How the dump is written: format, compression, jobs.
    pub dump: crate::backup::DumpSpec,
}

#[derive(Debug, Clone, Serialize)]
pub struct SchemaDiffPolicy {
    pub allow_removed: bool,
    pub ignore_schemas: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApprovalPolicy {
    pub required: u32,
    /// The OpenSSH allowed_signers file, when the manifest names one.
    pub allowed_signers: Option<ReadFile>,
    pub operator_may_approve: bool,
    /// Signed rollback approvals `sluice rollback` needs (`[approvals] rollback_required`,
    /// default: `required`).
    pub rollback_required: u32,
}

/// A file of the package that is read but not pinned by a hash of its own (it is in the digest).
#[derive(Debug, Clone, Serialize)]
pub struct ReadFile {
    pub rel: PathBuf,
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RehearsalPolicy {
    pub required: bool,
    /// `[rehearsal] lock_budget_ms`: the longest a statement may hold a lock that blocks reads
    /// or writes of a pre-existing table, as the passing rehearsal measured it; 0 = no budget.
    pub lock_budget_ms: u64,
}

/// One problem in a package, located.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub location: Location,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Why a package could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{}: cannot read the package: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<Problem> },
}

impl Package {
    /// Loads the package in `dir`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Package, PackageError> {
        let dir = dir.as_ref();
        let manifest_path = dir.join(MANIFEST);
        let canonical = canonical_dir(dir)?;
        let bytes = std::fs::read(&manifest_path).map_err(|source| PackageError::Unreadable {
            path: manifest_path.clone(),
            source,
        })?;
        let source = match String::from_utf8(bytes) {
            Ok(text) => SourceFile::new(manifest_path, text),
            Err(err) => {
                return Err(PackageError::Invalid {
                    problems: vec![validate::not_utf8(&manifest_path, err.as_bytes())],
                })
            }
        };
        validate::package(canonical, dir.to_path_buf(), source)
    }

    /// Loads the package in `dir` as if its manifest held `text` (`sluice pin` reads the files
    /// of a manifest whose malformed pins it has replaced).
    pub(crate) fn load_with_manifest(dir: &Path, text: String) -> Result<Package, PackageError> {
        let source = SourceFile::new(dir.join(MANIFEST), text);
        validate::package(canonical_dir(dir)?, dir.to_path_buf(), source)
    }

    /// The migration's text (the file is checked to be UTF-8 when the package loads).
    pub(crate) fn migration_text(&self) -> &str {
        std::str::from_utf8(&self.migration.file.bytes).unwrap_or_default()
    }

    /// The migration as a source file, named by its path inside the package.
    pub(crate) fn migration_source(&self) -> SourceFile {
        SourceFile::new(
            self.display_dir.join(&self.migration.file.rel),
            self.migration_text().to_string(),
        )
    }

    /// The rollback as a source file, when there is one.
    pub(crate) fn rollback_source(&self) -> Option<SourceFile> {
        self.rollback.as_ref().map(|r| {
            SourceFile::new(
                self.display_dir.join(&r.rel),
                String::from_utf8_lossy(&r.bytes).into_owned(),
            )
        })
    }

    /// Locates a span of the manifest.
    pub fn locate(&self, span: &std::ops::Range<usize>) -> Location {
        self.manifest.locate(span.start)
    }
}

fn canonical_dir(dir: &Path) -> Result<PathBuf, PackageError> {
    dir.canonicalize()
        .map_err(|source| PackageError::Unreadable {
            path: dir.to_path_buf(),
            source,
        })
}
