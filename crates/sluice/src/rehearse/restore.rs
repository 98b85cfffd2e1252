//! The rehearsal cluster and what goes into it: a throwaway cluster set up for a restore, the
//! roles and the empty database made before the dump is restored, `pg_restore` run against it
//! and judged, then the ANALYZE a dump cannot carry and the WAL level production has.

use super::{RehearseError, RehearseOptions};
use crate::backup::ClientTools;
use crate::cluster::{find_server, Cluster, ClusterOptions};
use crate::roles::{Role, TargetRoles};
use crate::sql::names::quote_ident;
use crate::target;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

/// The rehearsal cluster's bootstrap superuser: a name no target is expected to have.
pub(super) const REHEARSAL_SUPERUSER: &str = "sluice_rehearsal_admin";

/// A throwaway cluster of `major`, set up for a restore.
pub(super) fn start_cluster(opts: &RehearseOptions, major: u32) -> Result<Cluster, RehearseError> {
    let bins = find_server(opts.pg_bindir.as_deref(), Some(major))?;
    let mut options = ClusterOptions::new(bins);
    // not `postgres`: a target's own role of that name (a managed server's admin, often no
    // superuser) is made as the target has it, and the rehearsal applies as that role
    options.superuser = REHEARSAL_SUPERUSER.into();
    options.settings.extend(restore_settings());
    Ok(Cluster::start(options)?)
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
pub(super) fn analyze(cluster: &Cluster, dbname: &str) -> Result<(), RehearseError> {
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
pub(super) const PRODUCTION_WAL: [(&str, &str); 2] =
    [("wal_level", "replica"), ("max_wal_senders", "10")];

/// pg_restore jobs: one per CPU of this machine.
pub(super) fn restore_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Makes the roles the restore needs and the (empty) database it restores into; returns what
/// the record says of the roles. With the target's roles (a rehearsal of a live target) every
/// role is made as the target has it — `NOLOGIN` but for `role`, the one the rehearsal applies
/// as, with its real attributes and memberships — and the database gets the target's owner: a
/// migration that needs a privilege the production role lacks fails here as it will in
/// production. Without them (`--from-backup`) the dump's `owners` are made and `role` a
/// superuser.
pub(super) fn prepare_database(
    cluster: &Cluster,
    owners: &[String],
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
        Some(target) => as_the_target_has_them(target, owners, role, cluster.superuser()),
        None => superuser_rehearsal(owners, role, cluster.superuser()),
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
    Ok(described)
}

/// `pg_restore` into `dbname` of the cluster, as its superuser; the dump's privileges are
/// restored only when the target's roles were made (see [`prepare_database`]).
pub(super) fn pg_restore(
    cluster: &Cluster,
    tools: &ClientTools,
    dbname: &str,
    privileges: bool,
) -> Command {
    let mut command = crate::target::child_command(tools.bindir.join("pg_restore"));
    if !privileges {
        command.arg("--no-privileges");
    }
    command
        .arg(format!("--host={}", cluster.socket_dir().display()))
        .arg(format!("--port={}", cluster.port()))
        .arg(format!("--username={}", cluster.superuser()))
        .arg(format!("--dbname={dbname}"));
    command
}

/// Runs a pg_restore that reads nothing on stdin, and judges how it ended.
pub(super) fn run_pg_restore(mut command: Command) -> Result<(), RehearseError> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| RehearseError::Other(format!("cannot run pg_restore: {e}")))?;
    judge_pg_restore(out.status, &String::from_utf8_lossy(&out.stderr))
}

/// A pg_restore that failed fails the restore, unless its only errors are benign ones.
pub(super) fn judge_pg_restore(status: ExitStatus, stderr: &str) -> Result<(), RehearseError> {
    if status.success() {
        return Ok(());
    }
    restore_errors_are_benign(stderr).map_err(|e| {
        let why = if e.is_empty() {
            format!("{} and wrote nothing on stderr", ended(status))
        } else {
            e
        };
        RehearseError::Other(format!("pg_restore failed: {why}"))
    })
}

/// Restores a finished dump with one job per CPU.
pub(super) fn restore_finished_dump(
    cluster: &Cluster,
    tools: &ClientTools,
    dump: &Path,
    privileges: bool,
    dbname: &str,
) -> Result<(), RehearseError> {
    let mut command = pg_restore(cluster, tools, dbname, privileges);
    command.arg(format!("--jobs={}", restore_jobs())).arg(dump);
    run_pg_restore(command)
}

/// The statements that make the target's roles (and any other owner the dump names), what the
/// record says of them, and the database's owner.
fn as_the_target_has_them(
    target: &TargetRoles,
    owners: &[String],
    role: &str,
    superuser: &str,
) -> (Vec<String>, String, String) {
    let mut roles: Vec<Role> = target.roles.clone();
    for name in owners.iter().map(String::as_str).chain([role]) {
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
    owners: &[String],
    role: &str,
    superuser: &str,
) -> (Vec<String>, String, String) {
    let mut names: Vec<&str> = owners.iter().map(String::as_str).collect();
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
