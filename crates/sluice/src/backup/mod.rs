//! Backups with PostgreSQL's own tools: choosing a `pg_dump`/`pg_restore` at least as new as the
//! server (the `client-version` gate), the room check, and reading a dump's table of contents.
//! What the package asks for is in [`spec`], writing the dump in [`dump`], proving every byte
//! readable in [`readback`]; a dump read while it is written (the rehearsal's streamed restore)
//! in [`growing`]. The password reaches the tools through a 0600 passfile, never the
//! command line.

mod dump;
mod growing;
mod readback;
mod spec;

pub(crate) use dump::{
    check_dump, dump_followed, dump_path, dump_to_restore, hash_dump, write_dump, DumpInfo,
    WrittenCustom,
};
pub(crate) use growing::{FollowError, Growing};
pub use readback::ReadBack;
pub use spec::{Compression, DumpFormat, DumpSpec};

use crate::target::ToolEnv;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `pg_dump` and `pg_restore` from one folder, with their version.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClientTools {
    pub bindir: PathBuf,
    pub version: String,
    pub major: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no pg_dump/pg_restore found (looked in {0}); install the PostgreSQL client tools or pass --pg-dump-bindir DIR")]
    NoTools(String),
    #[error("{0}")]
    TooOld(String),
    #[error("{0}")]
    NoTls(String),
    #[error("pg_dump failed: {0}")]
    Dump(String),
    #[error("the dump is empty (0 bytes)")]
    Empty,
    #[error("pg_restore --list cannot read the dump: {0}")]
    NotRestorable(String),
    #[error("pg_restore cannot read every byte of the dump back: {0}")]
    NotReadable(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    NoRoom(String),
    #[error("{cause}{}", if *removed { " (the incomplete dump was removed)" } else { "" })]
    Incomplete {
        cause: Box<BackupError>,
        removed: bool,
    },
    #[error("backup I/O on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads `pg_dump --version` of a folder holding both tools.
fn inspect(bindir: &Path) -> Option<ClientTools> {
    if !bindir.join("pg_dump").is_file() || !bindir.join("pg_restore").is_file() {
        return None;
    }
    if is_debian_wrapper(&bindir.join("pg_dump")) {
        return None;
    }
    let (version, major) = crate::cluster::program_version(&bindir.join("pg_dump"))?;
    Some(ClientTools {
        bindir: bindir.to_path_buf(),
        version,
        major,
    })
}

/// Debian's `/usr/bin/pg_dump` is a link to `pg_wrapper`, a Perl script that runs the newest
/// `/usr/lib/postgresql/*/bin/pg_dump` — a folder looked at anyway. Asking the wrapper its
/// version costs a Perl start (about 0.1 s of CPU) for nothing.
fn is_debian_wrapper(program: &Path) -> bool {
    std::fs::canonicalize(program)
        .is_ok_and(|real| real.file_name().is_some_and(|n| n == "pg_wrapper"))
}

/// Every folder that may hold client tools: the explicit one only when given, else
/// `SLUICE_PG_DUMP_BINDIR` and the server binary candidates (SLUICE_PG_BINDIR, pg_config,
/// /usr/lib/postgresql/*, PATH).
fn candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(dir) = explicit {
        return vec![dir.to_path_buf()];
    }
    let configured = std::env::var_os("SLUICE_PG_DUMP_BINDIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let mut seen = std::collections::HashSet::new();
    configured
        .into_iter()
        .chain(crate::cluster::candidates(None).into_iter().map(|(d, _)| d))
        // one folder reached twice (PATH and pg_config, a symlink) is looked at once
        .filter(|d| seen.insert(std::fs::canonicalize(d).unwrap_or_else(|_| d.clone())))
        .collect()
}

/// Every folder's client tools, newest first (the explicit or configured folder first among
/// equals), and the folders looked in.
/// The client tools of every candidate folder, newest first, and the folders looked at.
#[derive(Debug, Clone)]
pub struct FoundTools {
    tools: Vec<ClientTools>,
    dirs: Vec<PathBuf>,
}

impl FoundTools {
    /// Asks each candidate folder's `pg_dump --version`, all at once: one process start's time
    /// instead of one per folder. The apply pipeline starts this when the run starts, so that
    /// `client-version` does not wait for it.
    pub fn probe(explicit: Option<&Path>) -> FoundTools {
        let dirs = candidates(explicit);
        let found: Vec<Option<ClientTools>> = std::thread::scope(|scope| {
            let probes: Vec<_> = dirs
                .iter()
                .map(|d| scope.spawn(move || inspect(d)))
                .collect();
            probes
                .into_iter()
                .map(|p| {
                    p.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        let mut tools: Vec<ClientTools> = found.into_iter().flatten().collect();
        // stable: the first found stays first among equals
        tools.sort_by_key(|t| std::cmp::Reverse(version_key(&t.version)));
        FoundTools { tools, dirs }
    }

    /// The newest tools found; the `client-version` gate then compares with the server.
    pub fn newest(self) -> Result<ClientTools, BackupError> {
        let shown = shown(&self.dirs);
        self.tools
            .into_iter()
            .next()
            .ok_or(BackupError::NoTools(shown))
    }

    /// The tools for a target: the newest found, or — when the target is reached over TLS —
    /// the newest whose libpq speaks TLS and is not older than the server. A TLS target is
    /// never handed to a tool that would talk to it in cleartext.
    pub(crate) fn for_target(
        self,
        server_major: u32,
        needs_tls: bool,
    ) -> Result<ClientTools, BackupError> {
        let newest = self
            .tools
            .first()
            .cloned()
            .ok_or_else(|| BackupError::NoTools(shown(&self.dirs)))?;
        if !needs_tls {
            return Ok(newest);
        }
        let recent: Vec<&ClientTools> = self
            .tools
            .iter()
            .filter(|t| t.major >= server_major)
            .collect();
        if let Some(found) = recent.iter().find(|t| speaks_tls(t)) {
            return Ok((*found).clone());
        }
        if recent.is_empty() {
            return Ok(newest); // the version check says what is missing
        }
        Err(BackupError::NoTls(format!(
            "the target is reached over TLS, but no pg_dump/pg_restore of major version {server_major} or newer speaks TLS (without TLS, {} would connect in cleartext or not at all); looked at {}; install client tools built with OpenSSL (Debian's postgresql-client-{server_major}) and pass --pg-dump-bindir DIR",
            recent[0].bindir.join("pg_dump").display(),
            recent
                .iter()
                .map(|t| format!("{} ({})", t.bindir.display(), t.version))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

fn shown(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The newest client tools found; the `client-version` gate then compares with the server.
pub fn find_tools(explicit: Option<&Path>) -> Result<ClientTools, BackupError> {
    FoundTools::probe(explicit).newest()
}

/// [`FoundTools::for_target`] of a fresh probe.
pub fn find_tools_for(
    explicit: Option<&Path>,
    server_major: u32,
    needs_tls: bool,
) -> Result<ClientTools, BackupError> {
    FoundTools::probe(explicit).for_target(server_major, needs_tls)
}

/// `16.13` → (16, 13), for comparing versions numerically.
fn version_key(version: &str) -> (u32, u32) {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok());
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The `client-version` gate: tools at least as new as the server's major version.
pub(crate) fn check_version(
    tools: &ClientTools,
    server_major: u32,
    server_version: &str,
) -> Result<(), BackupError> {
    if tools.major >= server_major {
        return Ok(());
    }
    Err(BackupError::TooOld(format!(
        "{} is version {}, older than the server ({server_version}); pg_dump/pg_restore of major version {server_major} or newer are needed (`scripts/pg-install {server_major}` or Debian's postgresql-client-{server_major}, then --pg-dump-bindir DIR)",
        tools.bindir.join("pg_dump").display(),
        tools.version
    )))
}

/// A command for a client tool with the target's environment and nothing else of libpq's.
pub fn tool_command(tools: &ClientTools, name: &str, env: &ToolEnv) -> Command {
    let mut cmd = crate::target::child_command(tools.bindir.join(name));
    env.apply(&mut cmd);
    cmd.stdin(Stdio::null());
    cmd
}

/// Whether the tools' libpq was built with TLS: one without it refuses `sslmode=require`
/// before connecting ("SSL support is not compiled in"), which is what is asked here, against a
/// socket folder that does not exist so that nothing is reached.
pub(crate) fn speaks_tls(tools: &ClientTools) -> bool {
    let out = crate::target::child_command(tools.bindir.join("pg_dump"))
        .args(["--schema-only", "--no-password"])
        .env("PGHOST", "/nonexistent/sluice-tls-probe")
        .env("PGSSLMODE", "require")
        .env("PGCONNECT_TIMEOUT", "2")
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(out) => !String::from_utf8_lossy(&out.stderr).contains("SSL support is not compiled in"),
        Err(_) => false,
    }
}

/// A compressed dump holds no index data, yet one smaller than a twentieth
/// of `pg_database_size` is rare: with less free space than that the dump clearly cannot fit.
const DUMP_FLOOR_RATIO: u64 = 20;

/// Free bytes for an unprivileged writer on the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a zeroed statvfs the call fills in
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// Refuses before dumping when the folder `dir` clearly cannot hold a dump of a database of
/// `database_bytes` (`pg_database_size`), instead of filling the disk and leaving half a dump.
pub(crate) fn ensure_room(dir: &Path, database_bytes: u64) -> Result<(), BackupError> {
    let free = free_bytes(dir).map_err(|source| BackupError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let floor = database_bytes / DUMP_FLOOR_RATIO;
    if free < floor {
        return Err(BackupError::NoRoom(format!(
            "{} has {} free; the database is {} (pg_database_size) and even a dump of a twentieth of that ({}) would not fit — free space or choose another --evidence folder",
            dir.display(),
            human_bytes(free),
            human_bytes(database_bytes),
            human_bytes(floor)
        )));
    }
    Ok(())
}

/// `1.5 GiB`, `160 KiB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// The text of `pg_restore --list` of a dump that pg_restore reads, archive header included.
pub(crate) fn restore_listing(tools: &ClientTools, dump: &Path) -> Result<String, BackupError> {
    let out = crate::target::child_command(tools.bindir.join("pg_restore"))
        .arg("--list")
        .arg(dump)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| BackupError::NotRestorable(e.to_string()))?;
    if !out.status.success() {
        return Err(BackupError::NotRestorable(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !text.contains("; Archive created at") {
        return Err(BackupError::NotRestorable(
            "no archive header in the listing".into(),
        ));
    }
    Ok(text)
}
