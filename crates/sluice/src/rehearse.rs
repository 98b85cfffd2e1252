//! Rehearsal (`sluice rehearse`): a fresh backup of the target (read-only) or a given dump,
//! restored into a throwaway cluster of the target's major version that is marked as a
//! rehearsal cluster, and the whole cycle run there: apply (every gate but approvals and
//! rehearsal), verify, rollback, schema equal to the pre snapshot, apply again. Every step is
//! timed; the migration's lock-holding time is the forecast for production. The outcome is a
//! sealed record in `PKG/rehearsals/`.

use crate::backup::{self, ClientTools};
use crate::cluster::{find_server, Cluster, ClusterOptions};
use crate::gate::CycleStep;
use crate::package::Package;
use crate::pipeline::{self, ApplyOptions, Observer};
use crate::rehearsal::{RehearsalRecord, RehearsalStep, FORMAT};
use crate::roles::{Role, TargetRoles};
use crate::sql::names::quote_ident;
use crate::target::{self, Target};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the rehearsal's data comes from.
pub enum Source<'a> {
    /// Take a fresh backup of this target (read-only).
    Target(&'a Target),
    /// Use this custom-format dump.
    Backup(&'a Path),
}

pub struct RehearseOptions {
    /// Server binaries for the rehearsal cluster (must be the target's major version).
    pub pg_bindir: Option<PathBuf>,
    pub pg_dump_bindir: Option<PathBuf>,
    /// Where the rehearsal's own apply runs write their evidence.
    pub evidence_root: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum RehearseError {
    #[error(transparent)]
    Target(#[from] target::TargetError),
    #[error(transparent)]
    Backup(#[from] backup::BackupError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("{0}")]
    Other(String),
}

pub struct RehearsalOutcome {
    pub record: RehearsalRecord,
    /// The record file in `PKG/rehearsals/`.
    pub path: PathBuf,
}

/// What a dump says about where it came from.
struct DumpFacts {
    server_version: String,
    major: u32,
    dbname: String,
    owners: Vec<String>,
}

fn dump_facts(tools: &ClientTools, dump: &Path) -> Result<DumpFacts, RehearseError> {
    let text = backup::restore_listing(tools, dump)?;
    // pg_restore's header keys change case between versions (`dbname:` today)
    let header = |key: &str| {
        text.lines()
            .find(|l| {
                l.get(..key.len())
                    .is_some_and(|start| start.eq_ignore_ascii_case(key))
            })
            .map(|l| l[key.len()..].trim().to_string())
    };
    let server_version = header(";     Dumped from database version:").unwrap_or_default();
    let major = server_version
        .split(['.', ' '])
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let mut owners: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .filter(|o| o != "-")
        .collect();
    owners.sort();
    owners.dedup();
    Ok(DumpFacts {
        server_version,
        major,
        dbname: header(";     Dbname:").unwrap_or_default(),
        owners,
    })
}

fn step(
    steps: &mut Vec<RehearsalStep>,
    id: CycleStep,
    started: Instant,
    passed: bool,
    detail: String,
) {
    steps.push(RehearsalStep {
        name: id.name().into(),
        passed,
        detail,
        duration_ms: started.elapsed().as_millis(),
    });
}

/// Runs the rehearsal and writes its record (passing or not) into `PKG/rehearsals/`.
pub fn rehearse(
    pkg: &Package,
    source: Source,
    opts: &RehearseOptions,
    observer: &dyn Observer,
) -> Result<RehearsalOutcome, RehearseError> {
    let digest = crate::digest::package_digest(pkg);
    let (tools, server_major, target_roles) = match source {
        Source::Target(t) => {
            let (tools, major, roles) = tools_for(t, opts)?;
            (tools, Some(major), Some(roles))
        }
        Source::Backup(_) => (
            backup::find_tools(opts.pg_dump_bindir.as_deref())?,
            None,
            None,
        ),
    };
    let scratch = tempfile::Builder::new()
        .prefix("sluice-rehearsal-")
        .tempdir()
        .map_err(|e| RehearseError::Other(e.to_string()))?;
    let mut steps = Vec::new();

    let started = Instant::now();
    let (dumped, early_cluster) = dump_while_cluster_starts(
        pkg,
        source,
        opts,
        &tools,
        server_major,
        scratch.path(),
        observer,
    );
    let (dump_path, taken_of) = dumped?;
    let facts = dump_facts(&tools, &dump_path)?;
    let backup_ms = started.elapsed().as_millis();

    let started = Instant::now();
    let mut cluster = match early_cluster {
        Some(Ok(cluster)) if cluster.binaries().major == facts.major => cluster,
        Some(Err(e)) => return Err(e),
        _ => start_cluster(opts, facts.major)?,
    };
    let role = pkg.target.role.clone().unwrap_or_else(|| {
        facts
            .owners
            .first()
            .cloned()
            .unwrap_or_else(|| "postgres".into())
    });
    let dbname = rehearsal_database(pkg, taken_of, &facts)?;
    // the restore reads every byte of the dump (a damaged one fails it); its sha256 is taken
    // meanwhile, from the same pages
    let restoring = Instant::now();
    let (restored, hashed) = std::thread::scope(|scope| {
        let hashing = scope.spawn(|| backup::hash_dump(&dump_path));
        let restored = restore(
            &cluster,
            &tools,
            &dump_path,
            &facts,
            target_roles.as_ref(),
            (&role, &dbname),
        );
        let hashed = hashing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (restored, hashed)
    });
    let roles_made = restored?;
    let backup_sha256 = hashed?;
    let restore_ms = restoring.elapsed().as_millis();
    let analyzing = Instant::now();
    analyze(&cluster, &dbname)?;
    let analyze_ms = analyzing.elapsed().as_millis();
    // the migration runs at the WAL level a production server has (see restore_settings)
    let restarting = Instant::now();
    cluster.restart_with(&PRODUCTION_WAL)?;
    let restart_ms = restarting.elapsed().as_millis();
    steps.push(RehearsalStep {
        name: CycleStep::Backup.name().into(),
        passed: true,
        detail: format!(
            "{} ({}), sha256 {backup_sha256}",
            dump_path.display(),
            facts.server_version
        ),
        duration_ms: backup_ms,
    });
    step(
        &mut steps,
        CycleStep::Restore,
        started,
        true,
        format!(
            "PostgreSQL {} rehearsal cluster from {}; restored {dbname} with pg_restore {} -j {} at wal_level minimal ({restore_ms} ms), analyzed ({analyze_ms} ms), then restarted at wal_level replica ({restart_ms} ms); {roles_made}",
            cluster.binaries().version,
            cluster.binaries().bindir.display(),
            tools.version,
            restore_jobs()
        ),
    );

    let rehearsal_target = Target::local(&cluster.conninfo(&dbname, &role))?;
    let cycle = run_cycle(pkg, &rehearsal_target, opts, &tools, observer, &mut steps);
    let passed = cycle.is_ok() && steps.iter().all(|s| s.passed);
    if let Err(e) = &cycle {
        steps.push(RehearsalStep {
            name: CycleStep::Cycle.name().into(),
            passed: false,
            detail: e.clone(),
            duration_ms: 0,
        });
    }
    let record = RehearsalRecord {
        format: FORMAT.into(),
        package: pkg.info.id.clone(),
        digest: digest.clone(),
        passed,
        rehearsed_at: pipeline::now_utc().0,
        server_version: facts.server_version,
        backup_sha256,
        lock_holding_ms: cycle.as_ref().ok().and_then(|c| c.lock_ms),
        trace: cycle.ok().map(|c| c.trace).filter(|t| !t.runs().is_empty()),
        steps,
        content_sha256: String::new(),
    }
    .seal();
    let path = write_record(pkg, &record)?;
    drop(cluster);
    Ok(RehearsalOutcome { record, path })
}

/// The dump (a fresh one of the target, or the given one), and, when the target's major
/// version is known before the dump, the throwaway cluster made (initdb, pg_ctl start) while
/// the target is dumped.
#[allow(clippy::type_complexity)]
fn dump_while_cluster_starts(
    pkg: &Package,
    source: Source,
    opts: &RehearseOptions,
    tools: &ClientTools,
    server_major: Option<u32>,
    scratch: &Path,
    observer: &dyn Observer,
) -> (
    Result<(PathBuf, Option<String>), RehearseError>,
    Option<Result<Cluster, RehearseError>>,
) {
    std::thread::scope(|scope| {
        let starting = server_major.map(|major| scope.spawn(move || start_cluster(opts, major)));
        let dumped = match source {
            Source::Target(t) => fresh_backup(pkg, t, tools, scratch, observer),
            Source::Backup(p) => Ok((p.to_path_buf(), None)),
        };
        let cluster = starting.map(|thread| {
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        (dumped, cluster)
    })
}

/// The rehearsal cluster's bootstrap superuser: a name no target is expected to have.
const REHEARSAL_SUPERUSER: &str = "sluice_rehearsal_admin";

/// A throwaway cluster of `major`, set up for a restore.
fn start_cluster(opts: &RehearseOptions, major: u32) -> Result<Cluster, RehearseError> {
    let bins = find_server(opts.pg_bindir.as_deref(), Some(major))?;
    let mut options = ClusterOptions::new(bins);
    // not `postgres`: a target's own role of that name (a managed server's admin, often no
    // superuser) is made as the target has it, and the rehearsal applies as that role
    options.superuser = REHEARSAL_SUPERUSER.into();
    options.settings.extend(restore_settings());
    Ok(Cluster::start(options)?)
}

/// The client tools for dumping `target` (new enough for its server, speaking TLS when the
/// target is reached over TLS), the server's major version, and its roles.
fn tools_for(
    target: &Target,
    opts: &RehearseOptions,
) -> Result<(ClientTools, u32, TargetRoles), RehearseError> {
    let mut client = target.connect("identity")?;
    let facts = target::identity(&mut client).map_err(|e| target.query_error(&e))?;
    let tools = backup::find_tools_for(
        opts.pg_dump_bindir.as_deref(),
        facts.server_major(),
        target.needs_tls(),
    )?;
    backup::check_version(&tools, facts.server_major(), &facts.server_version)?;
    let roles = crate::roles::read(&mut client).map_err(|e| target.query_error(&e))?;
    Ok((tools, facts.server_major(), roles))
}

/// The database the rehearsal restores into and applies to: `[target].database`, else the one
/// the backup was taken of (the target's `current_database()`, or the dump's own header).
fn rehearsal_database(
    pkg: &Package,
    taken_of: Option<String>,
    facts: &DumpFacts,
) -> Result<String, RehearseError> {
    pkg.target
        .database
        .clone()
        .or(taken_of)
        .or_else(|| Some(facts.dbname.clone()))
        .filter(|name| !name.is_empty())
        .ok_or_else(|| {
            RehearseError::Other(
                "the dump does not say which database it holds: name it in [target].database"
                    .into(),
            )
        })
}

/// A fresh dump of the target, not read back (the restore reads it): its path, and the
/// database it holds.
fn fresh_backup(
    pkg: &Package,
    target: &Target,
    tools: &ClientTools,
    dir: &Path,
    observer: &dyn Observer,
) -> Result<(PathBuf, Option<String>), RehearseError> {
    let mut client = target.connect("size")?;
    let row = client
        .query_one(
            "SELECT pg_catalog.current_database()::text, pg_catalog.pg_database_size(pg_catalog.current_database())",
            &[],
        )
        .map_err(|e| target.query_error(&e))?;
    let (database, size): (String, i64) = (row.get(0), row.get(1));
    drop(client);
    backup::ensure_room(dir, size.max(0) as u64)?;
    let path = backup::dump_path(
        &dir.join(crate::evidence::safe_name(target.dbname())),
        pkg.backup.dump.format,
    );
    let progress = |bytes: u64| observer.progress("pg_dump", bytes, Some(size.max(0) as u64));
    backup::dump_to_restore(tools, target, &pkg.backup.dump, &path, &progress)?;
    Ok((path, Some(database)))
}

/// The rehearsal cluster is thrown away: it is set up for a fast restore — no fsync and no
/// waiting for the WAL flush at COMMIT (every throwaway cluster has those), and `wal_level =
/// minimal`, at which the restore's COPY into the tables it just created and its index builds
/// write no WAL; no autovacuum (see [`analyze`]). A larger `max_wal_size` made the restore slower (new WAL segments written and
/// zero-filled instead of recycled ones). `maintenance_work_mem` is the server's default.
fn restore_settings() -> Vec<(String, String)> {
    [
        ("sluice.rehearsal", "on"),
        ("autovacuum", "off"),
        ("wal_level", "minimal"),
        ("max_wal_senders", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Gathers the planner's statistics of the restored database, which a dump does not carry:
/// production's tables have them, and a migration's statements (an `UPDATE … WHERE`, a
/// validation) are planned with them. Autovacuum is off in the rehearsal cluster, so that it
/// neither races the restore nor runs beside the measured migration; this is its ANALYZE.
fn analyze(cluster: &Cluster, dbname: &str) -> Result<(), RehearseError> {
    let failed = |why: String| RehearseError::Other(format!("analyzing the restored copy: {why}"));
    let mut client = cluster.connect(dbname).map_err(|e| failed(e.to_string()))?;
    client
        .batch_execute("ANALYZE")
        .map_err(|e| failed(target::pg_message(&e)))
}

/// The WAL settings the cluster is restarted with once restored, before the migration runs:
/// those of a production server (`replica`, PostgreSQL's default), so that what the migration
/// writes to the WAL, and how long it takes, is what it would be in production (at `minimal`
/// an index built on a table created in the same transaction writes no WAL at all).
const PRODUCTION_WAL: [(&str, &str); 2] = [("wal_level", "replica"), ("max_wal_senders", "10")];

/// pg_restore jobs: one per CPU of this machine.
fn restore_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Restores the dump into `dbname` of the cluster, after making the roles it needs; returns
/// what the record says of them. With the target's roles (a rehearsal of a live target) every
/// role is made as the target has it — `NOLOGIN` but for `role`, the one the rehearsal applies
/// as, with its real attributes and memberships — the database gets the target's owner, and the
/// dump's privileges are restored: a migration that needs a privilege the production role lacks
/// fails here as it will in production. Without them (`--from-backup`) the dump's owners are
/// made, `role` a superuser, and privileges are not restored.
fn restore(
    cluster: &Cluster,
    tools: &ClientTools,
    dump: &Path,
    facts: &DumpFacts,
    target_roles: Option<&TargetRoles>,
    (role, dbname): (&str, &str),
) -> Result<String, RehearseError> {
    let sql_err = |e: postgres::Error| {
        RehearseError::Other(format!(
            "preparing the rehearsal cluster: {}",
            target::pg_message(&e)
        ))
    };
    // from template1: the target's database may be one a fresh cluster already has (empty,
    // e.g. `postgres`); it is made again with the owner the rehearsal needs
    let mut admin = cluster
        .connect("template1")
        .map_err(|e| RehearseError::Other(format!("preparing the rehearsal cluster: {e}")))?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {}", quote_ident(dbname)))
        .map_err(sql_err)?;
    let (statements, described, owner) = match target_roles {
        Some(target) => as_the_target_has_them(target, facts, role, cluster.superuser()),
        None => superuser_rehearsal(facts, role, cluster.superuser()),
    };
    for sql in statements {
        admin.batch_execute(&sql).map_err(sql_err)?;
    }
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {} OWNER {}",
            quote_ident(dbname),
            quote_ident(&owner)
        ))
        .map_err(sql_err)?;
    let mut command = crate::target::child_command(tools.bindir.join("pg_restore"));
    command.arg(format!("--jobs={}", restore_jobs()));
    if target_roles.is_none() {
        command.arg("--no-privileges");
    }
    let out = command
        .arg(format!("--host={}", cluster.socket_dir().display()))
        .arg(format!("--port={}", cluster.port()))
        .arg(format!("--username={}", cluster.superuser()))
        .arg(format!("--dbname={dbname}"))
        .arg(dump)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| RehearseError::Other(format!("cannot run pg_restore: {e}")))?;
    if !out.status.success() {
        restore_errors_are_benign(&String::from_utf8_lossy(&out.stderr)).map_err(|e| {
            let why = if e.is_empty() {
                format!("{} and wrote nothing on stderr", ended(out.status))
            } else {
                e
            };
            RehearseError::Other(format!("pg_restore failed: {why}"))
        })?;
    }
    Ok(described)
}

/// The statements that make the target's roles (and any other owner the dump names), what the
/// record says of them, and the database's owner.
fn as_the_target_has_them(
    target: &TargetRoles,
    facts: &DumpFacts,
    role: &str,
    superuser: &str,
) -> (Vec<String>, String, String) {
    let mut roles: Vec<Role> = target.roles.clone();
    for name in facts.owners.iter().map(String::as_str).chain([role]) {
        if !roles.iter().any(|r| r.name == name) {
            roles.push(Role::plain(name));
        }
    }
    let made: Vec<&Role> = roles.iter().filter(|r| r.name != superuser).collect();
    let mut statements: Vec<String> = made.iter().map(|r| r.create_sql(r.name == role)).collect();
    statements.extend(made.iter().flat_map(|r| r.membership_sql()));
    let described: Vec<String> = made.iter().map(|r| r.describe(r.name == role)).collect();
    let described = format!(
        "roles as the target has them: {}; privileges restored; applied as {role}",
        described.join(", ")
    );
    (statements, described, target.database_owner.clone())
}

/// Without the target's roles: the dump's owners, and `role` a superuser.
fn superuser_rehearsal(
    facts: &DumpFacts,
    role: &str,
    superuser: &str,
) -> (Vec<String>, String, String) {
    let mut names: Vec<&str> = facts.owners.iter().map(String::as_str).collect();
    names.push(role);
    names.sort();
    names.dedup();
    let statements = names
        .iter()
        .filter(|name| **name != superuser)
        .map(|name| {
            Role {
                superuser: *name == role,
                ..Role::plain(name)
            }
            .create_sql(true)
        })
        .collect();
    let described = format!(
        "roles {} made (the target's roles are not known from a dump); privileges not restored; applied as {role}, a superuser",
        names.join(", ")
    );
    (statements, described, role.to_string())
}

/// pg_restore newer than the server (the only pg_restore at hand may be) sends `SET` for
/// settings the older server does not have (e.g. `transaction_timeout` from 17 on a 16 server):
/// those errors are harmless. Any other error fails the restore.
/// How a process ended, in words: `exited with status 1`, `was killed by signal 11 (SIGSEGV)`.
fn ended(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}{}", signal_name(signal)),
        (None, None) => format!("ended with {status}"),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGKILL => " (SIGKILL: out of memory, or killed)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGBUS => " (SIGBUS)",
        libc::SIGTERM => " (SIGTERM)",
        _ => "",
    }
}

fn restore_errors_are_benign(stderr: &str) -> Result<(), String> {
    let mut errors = stderr.split("pg_restore: error: ").skip(1).peekable();
    if errors.peek().is_none() {
        return Err(stderr.trim().to_string());
    }
    for error in errors {
        let benign = error.contains("unrecognized configuration parameter")
            && error.contains("Command was: SET ");
        if !benign {
            return Err(error.trim().to_string());
        }
    }
    Ok(())
}

/// What the cycle measured: the first apply's lock-holding time and both applies' traces.
struct Cycle {
    lock_ms: Option<u128>,
    trace: crate::rehearsal::RehearsalTrace,
}

/// apply → verify → rollback → schema equals pre → apply again.
fn run_cycle(
    pkg: &Package,
    target: &Target,
    opts: &RehearseOptions,
    tools: &ClientTools,
    observer: &dyn Observer,
    steps: &mut Vec<RehearsalStep>,
) -> Result<Cycle, String> {
    let options = ApplyOptions {
        environment: pipeline::REHEARSAL_ENVIRONMENT.into(),
        operator: "sluice-rehearsal".into(),
        evidence_root: opts.evidence_root.clone(),
        // the tools this rehearsal found, not a search again in each apply
        pg_dump_bindir: Some(tools.bindir.clone()),
        rehearsal: true,
    };
    let started = Instant::now();
    observer.phase(CycleStep::Apply.name());
    let first = pipeline::apply(pkg, target, &options, observer).map_err(|e| e.to_string())?;
    let lock_ms = first
        .record
        .migration
        .as_ref()
        .and_then(|m| m.lock_holding_ms);
    let mut cycle = Cycle {
        lock_ms,
        trace: crate::rehearsal::RehearsalTrace {
            apply: first
                .record
                .migration
                .as_ref()
                .and_then(|m| m.trace.clone()),
            re_apply: None,
        },
    };
    let ok = first.exit_code == 0;
    step(steps, CycleStep::Apply, started, ok, apply_detail(&first));
    if !ok {
        return Ok(cycle);
    }

    let started = Instant::now();
    let verified =
        pipeline::verify::verify(pkg, target, &first.run_dir).map_err(|e| e.to_string())?;
    step(
        steps,
        CycleStep::Verify,
        started,
        verified.holds,
        format!(
            "{} check(s); drift: {}",
            verified.checks.len(),
            verified
                .drift
                .as_ref()
                .map_or("not compared".into(), |d| if d.is_empty() {
                    "none".to_string()
                } else {
                    "FOUND".to_string()
                })
        ),
    );

    if pkg.rollback.is_none() {
        step(
            steps,
            CycleStep::Rollback,
            Instant::now(),
            true,
            "no rollback file: rollback and re-apply not rehearsed".into(),
        );
        return Ok(cycle);
    }
    let started = Instant::now();
    let mut client = target.connect("rehearsal").map_err(|e| e.to_string())?;
    let rolled = crate::rollback::run_rollback_sql(&mut client, pkg).map_err(|e| e.to_string())?;
    step(
        steps,
        CycleStep::Rollback,
        started,
        rolled.committed,
        rolled
            .failure
            .clone()
            .unwrap_or_else(|| "rollback committed".into()),
    );
    if !rolled.committed {
        return Ok(cycle);
    }

    let started = Instant::now();
    let equal = pipeline::verify::schema_against_pre(&mut client, None, pkg, &first.run_dir)?;
    step(
        steps,
        CycleStep::SchemaEqualsPre,
        started,
        equal.is_empty(),
        if equal.is_empty() {
            "the schema equals the pre snapshot".into()
        } else {
            format!(
                "the rollback left the schema different from before: {}",
                equal.join("; ")
            )
        },
    );
    if !equal.is_empty() {
        return Ok(cycle);
    }

    let started = Instant::now();
    observer.phase(CycleStep::ReApply.name());
    let again = pipeline::apply(pkg, target, &options, observer).map_err(|e| e.to_string())?;
    step(
        steps,
        CycleStep::ReApply,
        started,
        again.exit_code == 0,
        apply_detail(&again),
    );
    cycle.trace.re_apply = again
        .record
        .migration
        .as_ref()
        .and_then(|m| m.trace.clone());
    Ok(cycle)
}

fn apply_detail(outcome: &pipeline::ApplyOutcome) -> String {
    match &outcome.failure {
        None => format!("every gate held; evidence {}", outcome.run_dir.display()),
        Some(f) => format!("{} failed (exit {}): {}", f.gate, f.exit_code, f.message),
    }
}

fn write_record(pkg: &Package, record: &RehearsalRecord) -> Result<PathBuf, RehearseError> {
    let dir = pkg.dir.join("rehearsals");
    std::fs::create_dir_all(&dir)
        .map_err(|e| RehearseError::Other(format!("{}: {e}", dir.display())))?;
    let stamp = pipeline::now_utc().1;
    let path = dir.join(format!("{stamp}-{}.json", &record.digest[..12]));
    let text = serde_json::to_vec_pretty(record).unwrap_or_default();
    std::fs::write(&path, text)
        .map_err(|e| RehearseError::Other(format!("{}: {e}", path.display())))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::{ended, restore_errors_are_benign};

    #[test]
    fn a_silent_failure_says_how_the_process_ended() {
        use std::os::unix::process::ExitStatusExt;
        let crashed = std::process::ExitStatus::from_raw(libc::SIGSEGV);
        assert_eq!(ended(crashed), "was killed by signal 11 (SIGSEGV)");
        let failed = std::process::ExitStatus::from_raw(1 << 8);
        assert_eq!(ended(failed), "exited with status 1");
        assert_eq!(restore_errors_are_benign("").unwrap_err(), "");
    }

    #[test]
    fn only_unknown_settings_are_forgiven() {
        let newer = "pg_restore: error: could not execute query: ERROR:  unrecognized configuration parameter \"transaction_timeout\"\nCommand was: SET transaction_timeout = 0;\npg_restore: warning: errors ignored on restore: 1\n";
        assert!(restore_errors_are_benign(newer).is_ok());
        let real = format!("{newer}pg_restore: error: could not execute query: ERROR:  role \"x\" does not exist\nCommand was: ALTER TABLE t OWNER TO x;\n");
        assert!(restore_errors_are_benign(&real)
            .unwrap_err()
            .contains("role"));
        assert!(
            restore_errors_are_benign("pg_restore: [archiver] input file is too short").is_err()
        );
    }
}
