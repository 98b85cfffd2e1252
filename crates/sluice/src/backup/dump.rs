//! Writing the dump (`backup-restorable`, SPEC §4 step 8): a custom-format file streamed into
//! the evidence folder and hashed as it is written, or a directory-format folder written by
//! parallel `pg_dump` jobs whose files are hashed while `pg_restore` reads them back. Either
//! way every byte is then read back ([`super::readback`]), and a dump that fails is removed so
//! that no half dump is left to be mistaken for a backup.

use super::growing::Growing;
use super::readback::{read_back, ReadBack};
use super::spec::{Compression, DumpFormat, DumpSpec};
use super::{tool_command, BackupError, ClientTools};
use crate::target::Target;
use serde::Serialize;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// One file of a directory-format dump.
#[derive(Debug, Clone, Serialize)]
pub struct DumpFile {
    /// The file's name inside the dump folder.
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// What the backup step produced.
#[derive(Debug, Clone, Serialize)]
pub struct DumpInfo {
    pub path: PathBuf,
    pub format: DumpFormat,
    pub compression: Compression,
    /// The pg_dump jobs that wrote it (1 for the custom format).
    pub jobs: u32,
    /// Bytes written, all files together.
    pub bytes: u64,
    /// The custom-format file's sha256; for a folder, the sha256 of its `SHA  NAME` lines.
    pub sha256: String,
    /// A directory-format dump's files (empty for the custom format).
    pub files: Vec<DumpFile>,
    /// How the dump was read back in full (its `entries`: those of the table of contents).
    pub read_back: ReadBack,
    pub dump_ms: u64,
    pub pg_dump: String,
}

impl DumpInfo {
    /// The dump's files as SHA256SUMS lines' `(relative path, sha256)`, under `rel`, the
    /// dump's own path relative to the evidence folder.
    pub fn sums(&self, rel: &str) -> Vec<(String, String)> {
        match self.format {
            DumpFormat::Custom => vec![(rel.to_string(), self.sha256.clone())],
            DumpFormat::Directory => self
                .files
                .iter()
                .map(|f| (format!("{rel}/{}", f.name), f.sha256.clone()))
                .collect(),
        }
    }

    /// One line for the step's detail: what was written and how it was proven readable.
    pub fn summary(&self, rel: &str) -> String {
        let files = match self.format {
            DumpFormat::Custom => format!("sha256 {}", self.sha256),
            DumpFormat::Directory => format!(
                "{} files (sha256 of each in SHA256SUMS), {} pg_dump jobs",
                self.files.len(),
                self.jobs
            ),
        };
        let caveat = match (self.format, self.compression) {
            (DumpFormat::Directory, Compression::None) => "; uncompressed folder files carry no checksum: a file cut at a row boundary would read back whole (a compression adds that proof)",
            _ => "",
        };
        format!(
            "{rel}: {} format, {}, {} bytes in {:.1} s ({}/s), {files}; pg_restore read every byte back in {:.1} s ({} entries, {} with data, {} process(es)){caveat}",
            self.format.name(),
            self.compression,
            self.bytes,
            self.dump_ms as f64 / 1000.0,
            super::human_bytes(rate(self.bytes, self.dump_ms)),
            self.read_back.ms as f64 / 1000.0,
            self.read_back.entries,
            self.read_back.data_entries,
            self.read_back.processes
        )
    }
}

fn rate(bytes: u64, ms: u64) -> u64 {
    bytes.saturating_mul(1000) / ms.max(1)
}

/// The dump's path for a base path without extension: `BASE.dump` or `BASE.dir`.
pub(crate) fn dump_path(base: &Path, format: DumpFormat) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(match format {
        DumpFormat::Custom => ".dump",
        DumpFormat::Directory => ".dir",
    });
    PathBuf::from(name)
}

/// A dump pg_dump has finished writing, not read back yet.
pub enum Written {
    Custom(WrittenCustom),
    /// How long pg_dump took.
    Directory(u64),
}

/// pg_dump writes the dump (the read-back is [`check_dump`]). The target is not read after it:
/// what the caller does next with the target (the pre snapshot) may run beside
/// [`check_dump`].
pub(crate) fn write_dump(
    tools: &ClientTools,
    target: &Target,
    spec: &DumpSpec,
    path: &Path,
    progress: &dyn Fn(u64),
) -> Result<Written, BackupError> {
    supports(tools, spec.compression)?;
    written(spec, path, || match spec.format {
        DumpFormat::Custom => {
            write_custom(tools, target, spec.compression, path, progress, None).map(Written::Custom)
        }
        DumpFormat::Directory => {
            write_directory(tools, target, spec, path, progress).map(Written::Directory)
        }
    })
}

/// The second half of [`dump`]: every byte read back through pg_restore, every file hashed;
/// a dump that fails is removed.
pub(crate) fn check_dump(
    tools: &ClientTools,
    spec: &DumpSpec,
    path: &Path,
    written_dump: Written,
) -> Result<DumpInfo, BackupError> {
    written(spec, path, || match written_dump {
        Written::Custom(custom) => check_custom(tools, spec, path, custom),
        Written::Directory(dump_ms) => check_directory(tools, spec, path, dump_ms),
    })
}

/// Writes the dump and checks nothing: for a caller that restores it next (the restore reads
/// every byte, so a read-back first would read it twice) and hashes it meanwhile
/// ([`hash_dump`]), as the rehearsal does. Never the backup gate's proof.
pub(crate) fn dump_to_restore(
    tools: &ClientTools,
    target: &Target,
    spec: &DumpSpec,
    path: &Path,
    progress: &dyn Fn(u64),
) -> Result<(), BackupError> {
    write_dump(tools, target, spec, path, progress).map(|_| ())
}

/// Writes a custom-format dump that `growing`'s follower reads while it is written (the
/// rehearsal's restore streams it), hashed as it is written and not read back: never the
/// backup gate's proof. Stops pg_dump when the follower is gone.
pub(crate) fn dump_followed(
    tools: &ClientTools,
    target: &Target,
    compression: Compression,
    path: &Path,
    growing: &Growing,
    progress: &dyn Fn(u64),
) -> Result<WrittenCustom, BackupError> {
    supports(tools, compression)?;
    let spec = DumpSpec {
        format: DumpFormat::Custom,
        compression,
        ..DumpSpec::DEFAULT
    };
    written(&spec, path, || {
        write_custom(tools, target, compression, path, progress, Some(growing))
    })
}

/// Runs `write` after checking that the tools support the compression; a dump that failed is
/// removed, and the error says whether it could be.
fn written<T>(
    spec: &DumpSpec,
    path: &Path,
    write: impl FnOnce() -> Result<T, BackupError>,
) -> Result<T, BackupError> {
    let dumped = write();
    if let Err(e) = dumped {
        let removed = match spec.format {
            DumpFormat::Custom => std::fs::remove_file(path).is_ok(),
            DumpFormat::Directory => std::fs::remove_dir_all(path).is_ok(),
        };
        return Err(BackupError::Incomplete {
            cause: Box::new(e),
            removed,
        });
    }
    dumped
}

/// Refuses a compression method the tools were not built with, in pg_dump's own words: asked
/// of `pg_dump --compress` against a socket folder that does not exist, which it checks
/// before connecting. Never a silent fallback to another method.
fn supports(tools: &ClientTools, compression: Compression) -> Result<(), BackupError> {
    if matches!(compression, Compression::Gzip(_) | Compression::None) {
        return Ok(());
    }
    let out = crate::target::child_command(tools.bindir.join("pg_dump"))
        .args(["--schema-only", "--no-password", "--format=custom"])
        .arg(format!("--compress={}", compression.pg_dump_arg()))
        .env("PGHOST", "/nonexistent/sluice-compression-probe")
        .env("PGCONNECT_TIMEOUT", "2")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| BackupError::Dump(format!("cannot start pg_dump: {e}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    match stderr.lines().find(|l| l.contains("compress")) {
        None => Ok(()),
        Some(line) => Err(BackupError::Unsupported(format!(
            "[backup] compress = \"{compression}\", but {} ({}) cannot: {}; choose another method (gzip is always available) or pass --pg-dump-bindir with tools built with {}",
            tools.bindir.join("pg_dump").display(),
            tools.version,
            line.trim_start_matches("pg_dump: error: ").trim(),
            compression.method()
        ))),
    }
}

fn pg_dump_name(tools: &ClientTools) -> String {
    format!(
        "{} ({})",
        tools.bindir.join("pg_dump").display(),
        tools.version
    )
}

fn start_pg_dump(
    tools: &ClientTools,
    target: &Target,
    args: &[String],
) -> Result<(Child, crate::target::ToolEnv), BackupError> {
    let env = target
        .tool_env()
        .map_err(|e| BackupError::Dump(e.to_string()))?;
    let mut cmd = tool_command(tools, "pg_dump", &env);
    cmd.args(args)
        .arg("--no-password")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: umask is async-signal-safe; the files pg_dump creates are evidence: 0600
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| {
        BackupError::Dump(format!(
            "cannot start {}: {e}",
            tools.bindir.join("pg_dump").display()
        ))
    })?;
    // the passfile and its folder live as long as the environment: until pg_dump is done
    Ok((child, env))
}

/// What writing a custom-format dump gave: its size, the sha256 of its bytes (hashed as they
/// were written), and how long pg_dump took.
pub struct WrittenCustom {
    pub(crate) bytes: u64,
    pub(crate) sha256: String,
    pub(crate) dump_ms: u64,
}

fn check_custom(
    tools: &ClientTools,
    spec: &DumpSpec,
    path: &Path,
    written: WrittenCustom,
) -> Result<DumpInfo, BackupError> {
    let read_back = read_back(tools, path, DumpFormat::Custom, 1)?;
    Ok(DumpInfo {
        path: path.to_path_buf(),
        format: DumpFormat::Custom,
        compression: spec.compression,
        jobs: 1,
        bytes: written.bytes,
        sha256: written.sha256,
        files: Vec::new(),
        read_back,
        dump_ms: written.dump_ms,
        pg_dump: pg_dump_name(tools),
    })
}

fn write_custom(
    tools: &ClientTools,
    target: &Target,
    compression: Compression,
    path: &Path,
    progress: &dyn Fn(u64),
    followed_by: Option<&Growing>,
) -> Result<WrittenCustom, BackupError> {
    let file =
        crate::evidence::create_file_private(path).map_err(|e| BackupError::Dump(e.to_string()))?;
    let started = Instant::now();
    let args = [
        "--format=custom".to_string(),
        format!("--compress={}", compression.pg_dump_arg()),
    ];
    let (mut child, _env) = start_pg_dump(tools, target, &args)?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| BackupError::Dump("no stdout".into()))?;
    let io = |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    // a dump restored as it is written lives in the rehearsal's scratch folder, not evidence
    let mut file = match followed_by {
        Some(_) => crate::evidence::WriteBehind::scratch(file),
        None => crate::evidence::WriteBehind::new(file),
    };
    loop {
        let n = stdout.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).map_err(io)?;
        bytes += n as u64;
        progress(bytes);
        if followed_by.is_some_and(|growing| !growing.grew_to(bytes)) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(BackupError::Dump(
                "stopped: the restore reading the dump as it was written failed".into(),
            ));
        }
    }
    let sha256 = file.finish().map_err(io)?;
    finish_pg_dump(child, path)?;
    let dump_ms = started.elapsed().as_millis() as u64;
    if bytes == 0 {
        return Err(BackupError::Empty);
    }
    crate::fault::damage_dump(path);
    Ok(WrittenCustom {
        bytes,
        sha256,
        dump_ms,
    })
}

/// Waits for pg_dump; its stderr is the error when it fails.
fn finish_pg_dump(child: Child, path: &Path) -> Result<(), BackupError> {
    let out = child.wait_with_output().map_err(|source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BackupError::Dump(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Runs `pg_dump --format=directory` into `path`; returns how long it took.
fn write_directory(
    tools: &ClientTools,
    target: &Target,
    spec: &DumpSpec,
    path: &Path,
    progress: &dyn Fn(u64),
) -> Result<u64, BackupError> {
    if path.exists() {
        return Err(BackupError::Dump(format!("{} exists", path.display())));
    }
    crate::evidence::create_dir_private(path).map_err(|e| BackupError::Dump(e.to_string()))?;
    let jobs = spec.effective_jobs();
    let started = Instant::now();
    let args = [
        "--format=directory".to_string(),
        format!("--jobs={jobs}"),
        format!("--compress={}", spec.compression.pg_dump_arg()),
        "--file".to_string(),
        path.display().to_string(),
    ];
    let (mut child, _env) = start_pg_dump(tools, target, &args)?;
    // pg_dump writes only errors to stderr: read it aside so that it can never fill the pipe
    let stderr = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut s) = stderr {
            let _ = s.read_to_string(&mut text);
        }
        text
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {
                progress(folder_bytes(path));
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(source) => {
                return Err(BackupError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    };
    let errors = errors.join().unwrap_or_default();
    if !status.success() {
        return Err(BackupError::Dump(errors.trim().to_string()));
    }
    let dump_ms = started.elapsed().as_millis() as u64;
    crate::fault::damage_dump(path);
    Ok(dump_ms)
}

fn check_directory(
    tools: &ClientTools,
    spec: &DumpSpec,
    path: &Path,
    dump_ms: u64,
) -> Result<DumpInfo, BackupError> {
    let jobs = spec.effective_jobs();
    // hash the files while pg_restore reads them back: both read the same pages, once from disk
    let (files, read_back) = std::thread::scope(|scope| {
        let hashing = scope.spawn(|| hash_folder(path, jobs));
        let read = read_back(tools, path, DumpFormat::Directory, jobs);
        let files = hashing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (files, read)
    });
    let (files, read_back) = (files?, read_back?);
    let bytes = files.iter().map(|f| f.bytes).sum();
    if bytes == 0 {
        return Err(BackupError::Empty);
    }
    Ok(DumpInfo {
        path: path.to_path_buf(),
        format: DumpFormat::Directory,
        compression: spec.compression,
        jobs,
        bytes,
        sha256: folder_digest(&files),
        files,
        read_back,
        dump_ms,
        pg_dump: pg_dump_name(tools),
    })
}

/// A folder dump's one sha256: that of its files' `SHA  NAME` lines, sorted by name.
fn folder_digest(files: &[DumpFile]) -> String {
    let listing: String = files
        .iter()
        .map(|f| format!("{}  {}\n", f.sha256, f.name))
        .collect();
    crate::digest::sha256_hex(listing.as_bytes())
}

/// The sha256 of a dump given by path: a custom-format file's own, a folder's
/// [`folder_digest`] (what [`DumpInfo::sha256`] holds for a dump sluice wrote).
pub(crate) fn hash_dump(path: &Path) -> Result<String, BackupError> {
    if path.is_dir() {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        Ok(folder_digest(&hash_folder(path, threads)?))
    } else {
        crate::evidence::hash_file(path).map_err(|source| BackupError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// The bytes written so far into a dump folder (for progress; errors count as nothing yet).
fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Every file of a dump folder with its size and sha256, by name; `threads` hash at once.
fn hash_folder(dir: &Path, threads: u32) -> Result<Vec<DumpFile>, BackupError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Io { path, source }
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    names.sort();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let hashed: Vec<Result<Vec<(usize, DumpFile)>, BackupError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(name) = names.get(i) else {
                            return Ok(done);
                        };
                        let file = dir.join(name);
                        let sha256 = crate::evidence::hash_file(&file).map_err(io(&file))?;
                        let bytes = std::fs::metadata(&file).map_err(io(&file))?.len();
                        done.push((
                            i,
                            DumpFile {
                                name: name.clone(),
                                bytes,
                                sha256,
                            },
                        ));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut files = Vec::with_capacity(names.len());
    for part in hashed {
        files.extend(part?);
    }
    files.sort_by_key(|(i, _)| *i);
    Ok(files.into_iter().map(|(_, f)| f).collect())
}
