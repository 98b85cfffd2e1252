//! Rehearsal (`sluice rehearse`): a fresh backup of the target (read-only) or a given dump,
//! restored into a throwaway cluster of the target's major version that is marked as a
//! rehearsal cluster, and the whole cycle run there: apply (every gate but approvals and
//! rehearsal), verify, rollback, schema equal to the pre snapshot, apply again. Every step is
//! timed; the migration's lock-holding time is the forecast for production. The outcome is a
//! sealed record in `PKG/rehearsals/`.

mod restore;
mod stream;

pub use stream::RestoreChoice;

use crate::backup::{self, ClientTools, DumpFormat};
use crate::cluster::Cluster;
use crate::gate::CycleStep;
use crate::package::Package;
use crate::pipeline::{self, ApplyOptions, Observer};
use crate::rehearsal::{RehearsalRecord, RehearsalStep, FORMAT};
use crate::roles::TargetRoles;
use crate::target::{self, IdentityFacts, Target};
use restore::{
    analyze, prepare_database, restore_finished_dump, restore_jobs, start_cluster, PRODUCTION_WAL,
};
use std::path::{Path, PathBuf};
use std::time::Instant;
use stream::DataShape;

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
    /// How the target's data gets into the rehearsal cluster.
    pub restore: RestoreChoice,
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

/// What the target told the rehearsal before its backup: the client tools to dump it with,
/// who and what it is, its roles, and how its data is spread.
struct LiveTarget {
    tools: ClientTools,
    identity: IdentityFacts,
    roles: TargetRoles,
    shape: DataShape,
}

/// The rehearsal cluster with the data restored, and what the record says of how.
struct Restored {
    cluster: Cluster,
    dbname: String,
    role: String,
    server_version: String,
    dump_path: PathBuf,
    backup_sha256: String,
    backup_ms: u128,
    /// How the backup was taken, for the backup step's detail (after its path and version).
    backup_how: String,
    /// When the restore began, and how it was done.
    restore_started: Instant,
    restore_how: String,
    roles_made: String,
    /// The client tools the rehearsal found, which its applies use too.
    tools: ClientTools,
}

/// Runs the rehearsal and writes its record (passing or not) into `PKG/rehearsals/`.
pub fn rehearse(
    pkg: &Package,
    source: Source,
    opts: &RehearseOptions,
    observer: &dyn Observer,
) -> Result<RehearsalOutcome, RehearseError> {
    let digest = crate::digest::package_digest(pkg);
    let scratch = tempfile::Builder::new()
        .prefix("sluice-rehearsal-")
        .tempdir()
        .map_err(|e| RehearseError::Other(e.to_string()))?;
    let restored = match source {
        Source::Target(target) => {
            let live = live_target(target, opts)?;
            let (streamed, why) = stream::streams(opts.restore, &live.shape, restore_jobs());
            if streamed {
                streamed_restore(pkg, target, &live, why, opts, scratch.path(), observer)?
            } else {
                let origin = Origin::Live(target, &live);
                restore_after_dump(pkg, origin, opts, scratch.path(), observer)?
            }
        }
        Source::Backup(dump) => {
            restore_after_dump(pkg, Origin::Dump(dump), opts, scratch.path(), observer)?
        }
    };
    let Restored {
        mut cluster,
        dbname,
        role,
        ..
    } = restored;
    let analyzing = Instant::now();
    analyze(&cluster, &dbname)?;
    let analyze_ms = analyzing.elapsed().as_millis();
    // the migration runs at the WAL level a production server has (see restore_settings)
    let restarting = Instant::now();
    cluster.restart_with(&PRODUCTION_WAL)?;
    let restart_ms = restarting.elapsed().as_millis();
    let mut steps = vec![RehearsalStep {
        name: CycleStep::Backup.name().into(),
        passed: true,
        detail: format!(
            "{} ({}{}), sha256 {}",
            restored.dump_path.display(),
            restored.server_version,
            restored.backup_how,
            restored.backup_sha256
        ),
        duration_ms: restored.backup_ms,
    }];
    step(
        &mut steps,
        CycleStep::Restore,
        restored.restore_started,
        true,
        format!(
            "PostgreSQL {} rehearsal cluster from {}; restored {dbname} {}, analyzed ({analyze_ms} ms), then restarted at wal_level replica ({restart_ms} ms); {}",
            cluster.binaries().version,
            cluster.binaries().bindir.display(),
            restored.restore_how,
            restored.roles_made
        ),
    );

    let rehearsal_target = Target::local(&cluster.conninfo(&dbname, &role))?;
    let cycle = run_cycle(
        pkg,
        &rehearsal_target,
        opts,
        &restored.tools,
        observer,
        &mut steps,
    );
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
        server_version: restored.server_version,
        backup_sha256: restored.backup_sha256,
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

/// Where the rehearsal's data comes from, once the live target has been asked about itself.
enum Origin<'a> {
    Live(&'a Target, &'a LiveTarget),
    Dump(&'a Path),
}

/// The dump taken (or given) first, then restored with one job per CPU: the cluster is made
/// while the target is dumped, and the dump hashed while it is restored.
fn restore_after_dump(
    pkg: &Package,
    origin: Origin<'_>,
    opts: &RehearseOptions,
    scratch: &Path,
    observer: &dyn Observer,
) -> Result<Restored, RehearseError> {
    let live = match origin {
        Origin::Live(_, live) => Some(live),
        Origin::Dump(_) => None,
    };
    let tools = match live {
        Some(live) => live.tools.clone(),
        None => backup::find_tools(opts.pg_dump_bindir.as_deref())?,
    };
    let started = Instant::now();
    let (dumped, early_cluster) =
        dump_while_cluster_starts(pkg, origin, opts, &tools, scratch, observer);
    let (dump_path, taken_of) = dumped?;
    let facts = dump_facts(&tools, &dump_path)?;
    let backup_ms = started.elapsed().as_millis();
    let restore_started = Instant::now();
    let cluster = match early_cluster {
        Some(Ok(cluster)) if cluster.binaries().major == facts.major => cluster,
        Some(Err(e)) => return Err(e),
        _ => start_cluster(opts, facts.major)?,
    };
    let role = rehearsal_role(pkg, live, &facts.owners);
    let dbname = rehearsal_database(pkg, taken_of, &facts)?;
    // the restore reads every byte of the dump (a damaged one fails it); its sha256 is taken
    // meanwhile, from the same pages
    let restoring = Instant::now();
    let (restored, hashed) = std::thread::scope(|scope| {
        let hashing = scope.spawn(|| backup::hash_dump(&dump_path));
        let roles = live.map(|live| &live.roles);
        let restored = prepare_database(&cluster, &facts.owners, roles, (&role, &dbname)).and_then(
            |roles_made| {
                restore_finished_dump(&cluster, &tools, &dump_path, roles.is_some(), &dbname)
                    .map(|()| roles_made)
            },
        );
        let hashed = hashing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (restored, hashed)
    });
    let roles_made = restored?;
    let backup_sha256 = hashed?;
    let restore_ms = restoring.elapsed().as_millis();
    let restore_how = format!(
        "with pg_restore {} -j {} at wal_level minimal ({restore_ms} ms)",
        tools.version,
        restore_jobs()
    );
    Ok(Restored {
        cluster,
        dbname,
        role,
        server_version: facts.server_version,
        dump_path,
        backup_sha256,
        backup_ms,
        backup_how: String::new(),
        restore_started,
        restore_how,
        roles_made,
        tools,
    })
}

/// The target dumped in the custom format and restored while the dump is written (see
/// [`stream`]).
fn streamed_restore(
    pkg: &Package,
    target: &Target,
    live: &LiveTarget,
    why: String,
    opts: &RehearseOptions,
    scratch: &Path,
    observer: &dyn Observer,
) -> Result<Restored, RehearseError> {
    let role = rehearsal_role(pkg, Some(live), &[]);
    let dbname = pkg
        .target
        .database
        .clone()
        .unwrap_or_else(|| live.identity.database.clone());
    backup::ensure_room(scratch, live.shape.database_bytes)?;
    let dump_path = backup::dump_path(
        &scratch.join(crate::evidence::safe_name(target.dbname())),
        DumpFormat::Custom,
    );
    let destination = stream::Destination {
        role: &role,
        dbname: &dbname,
        path: &dump_path,
        compression: pkg.backup.dump.compression,
    };
    let streamed = stream::dump_and_restore(target, live, opts, &destination, observer)?;
    let restore_how = format!(
        "with pg_restore {} as the dump was written (schema and data, done {} ms after the dump), then its indexes and constraints with -j {} ({} ms), at wal_level minimal ({} ms)",
        live.tools.version,
        streamed.tail.as_millis(),
        restore_jobs(),
        streamed.post_data.as_millis(),
        streamed.restore_started.elapsed().as_millis()
    );
    Ok(Restored {
        cluster: streamed.cluster,
        dbname,
        role,
        server_version: live.identity.server_version.clone(),
        dump_path,
        backup_sha256: streamed.dump.sha256,
        backup_ms: streamed.dump_took.as_millis(),
        backup_how: format!(", custom format, restored as it was written: {why}"),
        restore_started: streamed.restore_started,
        restore_how,
        roles_made: streamed.roles_made,
        tools: live.tools.clone(),
    })
}

/// The role the rehearsal applies as: `[target].role`, else the one the target is reached as
/// (production's apply runs as it), else (from a dump) the first owner the dump names.
fn rehearsal_role(pkg: &Package, live: Option<&LiveTarget>, owners: &[String]) -> String {
    pkg.target
        .role
        .clone()
        .or_else(|| live.map(|live| live.identity.role.clone()))
        .or_else(|| owners.first().cloned())
        .unwrap_or_else(|| "postgres".into())
}

/// The dump (a fresh one of the target, or the given one), and, for a live target, the
/// throwaway cluster made (initdb, pg_ctl start) while the target is dumped.
#[allow(clippy::type_complexity)]
fn dump_while_cluster_starts(
    pkg: &Package,
    origin: Origin<'_>,
    opts: &RehearseOptions,
    tools: &ClientTools,
    scratch: &Path,
    observer: &dyn Observer,
) -> (
    Result<(PathBuf, Option<String>), RehearseError>,
    Option<Result<Cluster, RehearseError>>,
) {
    std::thread::scope(|scope| match origin {
        Origin::Live(target, live) => {
            let major = live.identity.server_major();
            let starting = scope.spawn(move || start_cluster(opts, major));
            let dumped = fresh_backup(pkg, target, live, tools, scratch, observer);
            let cluster = starting
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (dumped, Some(cluster))
        }
        Origin::Dump(path) => (Ok((path.to_path_buf(), None)), None),
    })
}

/// Asks the target what the rehearsal needs before its backup: the client tools for dumping
/// it (new enough for its server, speaking TLS when the target is reached over TLS), its
/// identity, its roles, and how its data is spread.
fn live_target(target: &Target, opts: &RehearseOptions) -> Result<LiveTarget, RehearseError> {
    let mut client = target.connect("identity")?;
    let identity = target::identity(&mut client).map_err(|e| target.query_error(&e))?;
    let tools = backup::find_tools_for(
        opts.pg_dump_bindir.as_deref(),
        identity.server_major(),
        target.needs_tls(),
    )?;
    backup::check_version(&tools, identity.server_major(), &identity.server_version)?;
    let roles = crate::roles::read(&mut client).map_err(|e| target.query_error(&e))?;
    let shape = stream::data_shape(&mut client).map_err(|e| target.query_error(&e))?;
    Ok(LiveTarget {
        tools,
        identity,
        roles,
        shape,
    })
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

/// A fresh dump of the target with the package's `[backup]`, not read back (the restore reads
/// it): its path, and the database it holds.
fn fresh_backup(
    pkg: &Package,
    target: &Target,
    live: &LiveTarget,
    tools: &ClientTools,
    dir: &Path,
    observer: &dyn Observer,
) -> Result<(PathBuf, Option<String>), RehearseError> {
    let size = live.shape.database_bytes;
    backup::ensure_room(dir, size)?;
    let path = backup::dump_path(
        &dir.join(crate::evidence::safe_name(target.dbname())),
        pkg.backup.dump.format,
    );
    let progress = |bytes: u64| observer.progress("pg_dump", bytes, Some(size));
    backup::dump_to_restore(tools, target, &pkg.backup.dump, &path, &progress)?;
    Ok((path, Some(live.identity.database.clone())))
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
