//! The evidence bundle (SPEC §7): one folder per run under `EVIDENCE/PACKAGE_ID/STAMP-ENV/`,
//! written as the run goes so that a killed run still says how far it got; files 0600 and
//! folders 0700, created without following symlinks; `SHA256SUMS` over every file; and the
//! hash-chained `ledger.jsonl` at the evidence root, one line per run. [`check`] re-hashes a
//! bundle and walks the chain.

use crate::digest::sha256_hex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

pub const SUMS: &str = "SHA256SUMS";
pub const LEDGER: &str = "ledger.jsonl";
/// The `prev` of the first ledger line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("evidence: {} is a symlink; sluice writes evidence only into real folders it controls", .0.display())]
    Symlink(PathBuf),
    #[error("evidence: {} already exists; a run never overwrites evidence", .0.display())]
    Exists(PathBuf),
    #[error("evidence: cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("evidence: cannot serialize {what}: {message}")]
    Serialize { what: String, message: String },
}

fn serialize_err(what: &str) -> impl FnOnce(serde_json::Error) -> EvidenceError + '_ {
    move |e| EvidenceError::Serialize {
        what: what.to_string(),
        message: e.to_string(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EvidenceError + '_ {
    move |source| EvidenceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` (mode 0700) and any missing parent, refusing symlinks on the way.
pub fn create_dir_private(dir: &Path) -> Result<(), EvidenceError> {
    let mut current = PathBuf::new();
    for component in dir.components() {
        current.push(component);
        if matches!(component, Component::RootDir | Component::Prefix(_)) {
            continue;
        }
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                // Symlinks above the evidence root (e.g. /tmp on some systems) are the
                // machine's; only the folders sluice creates or owns must be real.
                if current.starts_with(dir) || dir == current {
                    return Err(EvidenceError::Symlink(current));
                }
            }
            Ok(_) => {}
            Err(_) => match std::fs::DirBuilder::new().mode(0o700).create(&current) {
                Ok(()) => {}
                // another run created it a moment ago: fine if it is a real folder
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if !std::fs::symlink_metadata(&current).is_ok_and(|m| m.is_dir()) {
                        return Err(EvidenceError::Symlink(current));
                    }
                }
                Err(e) => {
                    return Err(EvidenceError::Io {
                        path: current,
                        source: e,
                    })
                }
            },
        }
    }
    Ok(())
}

/// A file written as a stream (a dump, a probe capture) whose pages are handed to the disk
/// every few MiB as it grows, so that the `fsync` at its end has little left to wait for and the
/// disk works while the stream is still arriving.
pub struct WriteBehind {
    file: File,
    written: u64,
    handed: u64,
    /// Whether the file is kept: a scratch file (read once, then thrown away) is neither handed
    /// to the disk as it grows nor synced at its end.
    durable: bool,
    /// The SHA-256 of what was written, so the file need not be read again to be listed in
    /// SHA256SUMS.
    hasher: Sha256,
}

/// How much is written before it is handed to the disk.
const WRITE_BEHIND: u64 = 16 << 20;

impl WriteBehind {
    pub fn new(file: File) -> Self {
        WriteBehind {
            file,
            written: 0,
            handed: 0,
            durable: true,
            hasher: Sha256::new(),
        }
    }

    /// A scratch file: hashed as it is written, but never forced to the disk.
    pub fn scratch(file: File) -> Self {
        WriteBehind {
            durable: false,
            ..WriteBehind::new(file)
        }
    }

    /// Flushes everything to the disk (`fsync`, unless a scratch file); returns the SHA-256
    /// (hex) of what was written.
    pub fn finish(self) -> std::io::Result<String> {
        if self.durable {
            self.file.sync_all()?;
        }
        Ok(hex::encode(self.hasher.finalize()))
    }

    /// Starts the write-back of what was written since the last time, without waiting for it.
    fn hand_to_disk(&mut self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: a valid open descriptor and a range of it; the call only schedules I/O.
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    self.handed as libc::off64_t,
                    (self.written - self.handed) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
        self.handed = self.written;
    }
}

impl Write for WriteBehind {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        if self.durable && self.written - self.handed >= WRITE_BEHIND {
            self.hand_to_disk();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Opens a new file (mode 0600) that must not exist yet and must not be a symlink.
pub(crate) fn create_file_private(path: &Path) -> Result<File, EvidenceError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(EvidenceError::Symlink(path.to_path_buf()))
        }
        Ok(_) => return Err(EvidenceError::Exists(path.to_path_buf())),
        Err(_) => {}
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err(path))
}

/// Writes a file atomically: a temporary sibling, fsync, rename. Used for files that are
/// rewritten as the run goes (run.json, SHA256SUMS).
pub(crate) fn replace_file_private(path: &Path, bytes: &[u8]) -> Result<(), EvidenceError> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(EvidenceError::Symlink(path.to_path_buf()));
    }
    let tmp = path.with_extension("tmp~");
    let _ = std::fs::remove_file(&tmp);
    let written = create_file_private(&tmp).and_then(|mut file| {
        crate::fault::evidence_write(path).map_err(io_err(&tmp))?;
        file.write_all(bytes).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err(path))
    });
    if written.is_err() {
        // no half-written temporary left beside the file it failed to replace
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Whether an appended log line waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// Synced before the call returns.
    Now,
    /// Synced with the next synced line of the same file: what a killed process wrote is
    /// still there; a power loss can lose this line, never the lines synced before it. For the
    /// line saying a step started, which the step's end line follows, synced.
    Later,
}

/// One run's evidence folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
    dir: PathBuf,
}

/// The evidence root a run folder (`ROOT/PACKAGE_ID/STAMP-ENVIRONMENT`) lives in: where the
/// ledger it was chained into is, and where a rollback of it writes by default.
pub fn root_of_run(run_dir: &Path) -> PathBuf {
    run_dir
        .parent()
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

impl RunDir {
    /// Creates `ROOT/PACKAGE_ID/STAMP-ENVIRONMENT/` and its sub-folders; refuses an existing
    /// folder and any symlink.
    pub fn create(
        root: &Path,
        package_id: &str,
        stamp: &str,
        environment: &str,
    ) -> Result<RunDir, EvidenceError> {
        create_dir_private(root)?;
        let package_dir = root.join(package_id);
        create_dir_private(&package_dir)?;
        let dir = create_run_dir(&package_dir, &format!("{stamp}-{}", safe_name(environment)))?;
        for sub in ["backup", "schema", "counts", "probes", "package"] {
            create_dir_private(&dir.join(sub))?;
        }
        Ok(RunDir {
            root: root.to_path_buf(),
            dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes a new file inside the run folder.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> Result<PathBuf, EvidenceError> {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            create_dir_private(parent)?;
        }
        let mut file = create_file_private(&path)?;
        let written = crate::fault::evidence_write(&path)
            .and_then(|_| file.write_all(bytes))
            .and_then(|_| file.sync_all())
            .map_err(io_err(&path));
        if let Err(e) = written {
            // a partial file would pass for evidence: remove it, the error says what is missing
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(path)
    }

    /// Writes a value as pretty JSON.
    pub(crate) fn write_json<T: Serialize>(
        &self,
        rel: &str,
        value: &T,
    ) -> Result<PathBuf, EvidenceError> {
        let text = serde_json::to_vec_pretty(value).map_err(serialize_err(rel))?;
        self.write(rel, &text)
    }

    /// Opens a new file for streaming into.
    pub(crate) fn create_file(&self, rel: &str) -> Result<(PathBuf, File), EvidenceError> {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            create_dir_private(parent)?;
        }
        let file = create_file_private(&path)?;
        Ok((path, file))
    }

    /// Creates the folders (0700) above `rel`, for a file or folder another program writes.
    pub(crate) fn ensure_parent(&self, rel: &str) -> Result<(), EvidenceError> {
        match self.dir.join(rel).parent() {
            Some(parent) => create_dir_private(parent),
            None => Ok(()),
        }
    }

    /// Rewrites a file that changes during the run.
    pub fn replace(&self, rel: &str, bytes: &[u8]) -> Result<(), EvidenceError> {
        replace_file_private(&self.dir.join(rel), bytes)
    }

    /// Appends one line to a log file (created on first use), synced.
    pub(crate) fn append_line(&self, rel: &str, line: &str) -> Result<(), EvidenceError> {
        self.append_line_with(rel, line, Sync::Now)
    }

    /// [`RunDir::append_line`], synced as `sync` says.
    pub(crate) fn append_line_with(
        &self,
        rel: &str,
        line: &str,
        sync: Sync,
    ) -> Result<(), EvidenceError> {
        let path = self.dir.join(rel);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(EvidenceError::Symlink(path));
        }
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(io_err(&path))?;
        writeln!(file, "{line}").map_err(io_err(&path))?;
        match sync {
            Sync::Now => file.sync_data().map_err(io_err(&path)),
            Sync::Later => Ok(()),
        }
    }

    /// Writes SHA256SUMS over every other file of the folder, sorted by path. The files in
    /// `streamed` (relative path → SHA-256) were hashed as they were written and are not read
    /// again.
    pub(crate) fn write_sums(
        &self,
        streamed: &BTreeMap<String, String>,
    ) -> Result<String, EvidenceError> {
        let mut lines = String::new();
        for rel in files_under(&self.dir).map_err(io_err(&self.dir))? {
            if rel == SUMS || rel.ends_with(".tmp~") {
                continue;
            }
            // a file streamed through `WriteBehind` was hashed as it was written
            let hash = match streamed.get(&rel) {
                Some(hash) => hash.clone(),
                None => hash_file(&self.dir.join(&rel)).map_err(io_err(&self.dir.join(&rel)))?,
            };
            lines.push_str(&format!("{hash}  {rel}\n"));
        }
        self.replace(SUMS, lines.as_bytes())?;
        Ok(sha256_hex(lines.as_bytes()))
    }

    /// Appends this run to the evidence root's ledger, chained to the line before it.
    pub(crate) fn append_to_ledger(
        &self,
        mut entry: LedgerEntry,
    ) -> Result<LedgerEntry, EvidenceError> {
        let ledger = self.root.join(LEDGER);
        if std::fs::symlink_metadata(&ledger).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(EvidenceError::Symlink(ledger));
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&ledger)
            .map_err(io_err(&ledger))?;
        let _lock = FileLock::exclusive(&file).map_err(io_err(&ledger))?;
        let mut existing = String::new();
        let mut handle = &file;
        handle
            .read_to_string(&mut existing)
            .map_err(io_err(&ledger))?;
        entry.prev = existing
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .map_or_else(|| GENESIS.to_string(), |l| sha256_hex(l.as_bytes()));
        entry.run = self
            .dir
            .strip_prefix(&self.root)
            .unwrap_or(&self.dir)
            .to_string_lossy()
            .into_owned();
        let line = serde_json::to_string(&entry).map_err(serialize_err(LEDGER))?;
        writeln!(handle, "{line}").map_err(io_err(&ledger))?;
        file.sync_all().map_err(io_err(&ledger))?;
        Ok(entry)
    }
}

/// An flock held until dropped.
struct FileLock<'a>(&'a File);

impl<'a> FileLock<'a> {
    fn exclusive(file: &'a File) -> std::io::Result<FileLock<'a>> {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor we own for the lock's lifetime.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(FileLock(file))
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: releasing the lock taken in `exclusive`.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Creates `NAME`, or `NAME-2`, `NAME-3`… when other runs started in the same second — the
/// creation itself decides (concurrent runs race on it, and the loser takes the next name). A
/// symlink in the way is refused, never followed or replaced.
fn create_run_dir(parent: &Path, name: &str) -> Result<PathBuf, EvidenceError> {
    for n in 1..1000 {
        let dir = if n == 1 {
            parent.join(name)
        } else {
            parent.join(format!("{name}-{n}"))
        };
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
                    return Err(EvidenceError::Symlink(dir));
                }
            }
            Err(e) => {
                return Err(EvidenceError::Io {
                    path: dir,
                    source: e,
                })
            }
        }
    }
    Err(EvidenceError::Exists(parent.join(name)))
}

/// One line of `ledger.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LedgerEntry {
    /// The run folder, relative to the evidence root.
    pub run: String,
    pub kind: String,
    pub package: String,
    pub digest: String,
    pub environment: String,
    pub status: String,
    pub exit_code: i32,
    pub finished_at: String,
    /// sha256 of the run's SHA256SUMS file.
    pub sha256sums: String,
    /// sha256 of the previous ledger line (all zeros for the first).
    pub prev: String,
}

/// `[a-z0-9._-]` kept, anything else `_`: an environment name as a folder name.
pub(crate) fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Every file under `dir`, as sorted relative paths with `/`.
fn files_under(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else {
                let rel = entry
                    .path()
                    .strip_prefix(dir)
                    .unwrap_or(&entry.path())
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// sha256 of a file, streamed.
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// What `sluice evidence check` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    pub run_dir: PathBuf,
    pub files_checked: usize,
    pub changed: Vec<String>,
    pub missing: Vec<String>,
    /// Files in the folder that SHA256SUMS does not list.
    pub unlisted: Vec<String>,
    /// Files or folders whose mode is wider than 0600 / 0700.
    pub loose_modes: Vec<String>,
    /// Problems of the ledger chain, or of this run's line in it.
    pub ledger: Vec<String>,
}

impl CheckReport {
    pub fn holds(&self) -> bool {
        self.changed.is_empty()
            && self.missing.is_empty()
            && self.unlisted.is_empty()
            && self.loose_modes.is_empty()
            && self.ledger.is_empty()
    }
}

/// Re-hashes a run folder against its SHA256SUMS and walks the ledger chain of its evidence
/// root (two levels up).
pub fn check(run_dir: &Path) -> std::io::Result<CheckReport> {
    let mut report = CheckReport {
        run_dir: run_dir.to_path_buf(),
        ..Default::default()
    };
    let sums_text = std::fs::read_to_string(run_dir.join(SUMS))?;
    let mut listed = std::collections::BTreeSet::new();
    for line in sums_text.lines().filter(|l| !l.trim().is_empty()) {
        let Some((hash, rel)) = line.split_once("  ") else {
            report
                .changed
                .push(format!("{SUMS}: malformed line `{line}`"));
            continue;
        };
        listed.insert(rel.to_string());
        report.files_checked += 1;
        match hash_file(&run_dir.join(rel)) {
            Ok(actual) if actual == hash => {}
            Ok(_) => report.changed.push(rel.to_string()),
            Err(_) => report.missing.push(rel.to_string()),
        }
    }
    // an apply run's rollback-approvals/ is written after the run, on purpose: each file is
    // checked by its own signature, and the rollback that uses one keeps a sealed copy
    let added_later = format!("{}/", crate::approval::rollback::DIR);
    for rel in files_under(run_dir)? {
        if rel != SUMS && !listed.contains(&rel) && !rel.starts_with(&added_later) {
            report.unlisted.push(rel);
        }
    }
    check_modes(run_dir, &mut report)?;
    if let Some(root) = run_dir.parent().and_then(Path::parent) {
        check_ledger(
            root,
            run_dir,
            &sha256_hex(sums_text.as_bytes()),
            &mut report,
        );
    }
    Ok(report)
}

fn check_modes(run_dir: &Path, report: &mut CheckReport) -> std::io::Result<()> {
    let mut stack = vec![run_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if std::fs::metadata(&dir)?.permissions().mode() & 0o077 != 0 {
            report
                .loose_modes
                .push(format!("{} (folder)", dir.display()));
        }
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else if entry.metadata()?.permissions().mode() & 0o077 != 0 {
                report.loose_modes.push(entry.path().display().to_string());
            }
        }
    }
    Ok(())
}

fn check_ledger(root: &Path, run_dir: &Path, sums_hash: &str, report: &mut CheckReport) {
    let Ok(file) = File::open(root.join(LEDGER)) else {
        report
            .ledger
            .push(format!("no {LEDGER} in {}", root.display()));
        return;
    };
    let run_rel = run_dir
        .canonicalize()
        .ok()
        .zip(root.canonicalize().ok())
        .and_then(|(r, root)| {
            r.strip_prefix(root)
                .ok()
                .map(|p| p.to_string_lossy().into_owned())
        });
    let mut prev = GENESIS.to_string();
    let mut found = false;
    for (n, line) in BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .enumerate()
    {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<LedgerEntry>(&line) {
            Ok(entry) => {
                if entry.prev != prev {
                    report.ledger.push(format!("{LEDGER} line {}: the chain is broken (prev does not match the line before)", n + 1));
                }
                if Some(&entry.run) == run_rel.as_ref() {
                    found = true;
                    if entry.sha256sums != sums_hash {
                        report.ledger.push(format!(
                            "{LEDGER} line {}: records a different {SUMS} for this run",
                            n + 1
                        ));
                    }
                }
            }
            Err(e) => report
                .ledger
                .push(format!("{LEDGER} line {}: not a ledger entry ({e})", n + 1)),
        }
        prev = sha256_hex(line.as_bytes());
    }
    if !found {
        report
            .ledger
            .push(format!("{LEDGER} has no line for this run"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> LedgerEntry {
        LedgerEntry {
            run: String::new(),
            kind: "apply".into(),
            package: "p".into(),
            digest: "d".into(),
            environment: "test".into(),
            status: "succeeded".into(),
            exit_code: 0,
            finished_at: "now".into(),
            sha256sums: String::new(),
            prev: String::new(),
        }
    }

    fn finished_run(root: &Path, stamp: &str) -> RunDir {
        let run = RunDir::create(root, "p", stamp, "test").unwrap();
        run.write("report.md", b"# report").unwrap();
        run.write("schema/pre.json", b"{}").unwrap();
        let sums = run.write_sums(&BTreeMap::new()).unwrap();
        run.append_to_ledger(LedgerEntry {
            sha256sums: sums,
            ..entry()
        })
        .unwrap();
        run
    }

    #[test]
    fn modes_are_private_and_a_clean_bundle_checks() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("evidence");
        let run = finished_run(&root, "20261124T000000Z");
        let mode = std::fs::metadata(run.path().join("report.md"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(run.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let report = check(run.path()).unwrap();
        assert!(report.holds(), "{report:?}");
        assert_eq!(report.files_checked, 2);
    }

    #[test]
    fn a_changed_missing_or_added_file_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let run = finished_run(&tmp.path().join("ev"), "20261124T000000Z");
        std::fs::write(run.path().join("report.md"), b"# edited").unwrap();
        std::fs::remove_file(run.path().join("schema/pre.json")).unwrap();
        std::fs::write(run.path().join("extra.txt"), b"x").unwrap();
        let report = check(run.path()).unwrap();
        assert_eq!(report.changed, vec!["report.md"]);
        assert_eq!(report.missing, vec!["schema/pre.json"]);
        assert_eq!(report.unlisted, vec!["extra.txt"]);
        assert!(!report.holds());
    }

    #[test]
    fn the_ledger_chain_detects_an_edited_line() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ev");
        let first = finished_run(&root, "20261124T000000Z");
        let second = finished_run(&root, "20261124T000001Z");
        assert!(check(second.path()).unwrap().holds());
        let ledger = root.join(LEDGER);
        let text = std::fs::read_to_string(&ledger).unwrap();
        std::fs::write(&ledger, text.replacen("\"succeeded\"", "\"failed\"", 1)).unwrap();
        let report = check(second.path()).unwrap();
        assert!(
            report.ledger.iter().any(|p| p.contains("chain is broken")),
            "{report:?}"
        );
        // the whole chain is walked, whichever run is checked
        assert!(!check(first.path()).unwrap().holds());
    }

    #[test]
    fn symlinks_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ev");
        std::fs::create_dir_all(root.join("p")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), root.join("p").join("20261124T000000Z-test"))
            .unwrap();
        let err = RunDir::create(&root, "p", "20261124T000000Z", "test").unwrap_err();
        assert!(
            matches!(err, EvidenceError::Exists(_) | EvidenceError::Symlink(_)),
            "{err}"
        );
        let linked_root = tmp.path().join("linked");
        std::os::unix::fs::symlink(&root, &linked_root).unwrap();
        let err = RunDir::create(&linked_root, "p", "20261124T000009Z", "test").unwrap_err();
        assert!(matches!(err, EvidenceError::Symlink(_)), "{err}");
    }
}
