//! The body of each step of the apply pipeline, in order.

use super::{ApplyOptions, GateFailure, Run, StepResult, Yield};
use crate::backup;
use crate::catalog::{self, Snapshot};
use crate::checks::{evaluate_check, CheckResult};
use crate::gate::StepId;
use crate::lint;
use crate::migration::{self, MigrationRun};
use crate::package::{Check, Package};
use crate::probe::{Earlier, KeyOrder, RowDiff};
use crate::target::{self, Target};
use std::path::Path;
use std::time::Instant;
use StepResult::{Failed, FailedAfterCommit, FailedAs, FailedPg, Passed, Skipped};

/// The preflight gate's id, which its early run before the backup fails as.
const PREFLIGHT_GATE: &str = "preflight";

/// The migration's gate id, also the rollback trigger of a partly committed migration.
const MIGRATION_GATE: &str = "migration-atomic";

/// The sessions `exclusive-run` opens and hands on: a step that needs the target takes them
/// from that step's result, so it cannot run before it.
struct Sessions {
    /// Holds the package's advisory lock for the whole run; watches the migration's lock waits
    /// (and, in a rehearsal of `transaction = "none"`, samples its locks).
    lock: postgres::Client,
    /// Where the checks, the snapshots and the migration run.
    work: postgres::Client,
    /// A second working session, in the snapshot the working session exports: it takes half
    /// of a catalog snapshot's queries, and computes probe statistics while rows stream.
    aux: Option<postgres::Client>,
    /// The target for the connection each probe capture's rows stream over.
    rows_target: Target,
}

impl Sessions {
    /// The sessions of a probe capture.
    fn probe(&mut self) -> crate::probe::Sessions<'_> {
        crate::probe::Sessions {
            work: &mut self.work,
            stats: self.aux.as_mut(),
            rows: Some(&self.rows_target),
            rows_from_bytes: crate::probe::OWN_CONNECTION_FROM_BYTES,
        }
    }
}

/// A catalog snapshot as taken: the snapshot and what a later one compares against to read
/// again only the tables that changed.
type TakenSnapshot = Result<(Snapshot, Option<catalog::Baseline>), postgres::Error>;

/// What `backup-restorable` hands on: when the dump was done, and the pre schema snapshot it
/// took after pg_dump finished, while the dump was read back.
struct Dumped {
    at: Instant,
    pre: TakenSnapshot,
}

/// What `pre-snapshots` hands on to the steps after COMMIT.
struct Pre {
    snapshot: Snapshot,
    baseline: Option<catalog::Baseline>,
    probes: Vec<crate::probe::Capture>,
}

impl Pre {
    /// How the post snapshot is taken: the tables none of whose catalog rows were written
    /// since this snapshot keep its objects.
    fn post_options<'a>(&'a self, ignore: &'a [String]) -> catalog::SnapshotOptions<'a> {
        let options = catalog::SnapshotOptions::new(ignore);
        match &self.baseline {
            Some(baseline) => options.since(&self.snapshot, baseline),
            None => options,
        }
    }
}

/// What `rollback-run` hands on: the record of the apply rolled back, and its id and run.json
/// sha256 from the bytes it read.
struct Applied {
    stored: crate::run_record::StoredRun,
    run: crate::approval::rollback::ApplyRun,
}

pub(super) fn run_all(
    run: &mut Run,
    pkg: &Package,
    target: &Target,
    opts: &ApplyOptions,
) -> Result<(), GateFailure> {
    // the client tools' versions are asked while the first gates run: client-version only
    // waits for what is left of it
    std::thread::scope(|scope| {
        let probe = pkg
            .backup
            .required
            .then(|| scope.spawn(|| backup::FoundTools::probe(opts.pg_dump_bindir.as_deref())));
        run_steps(run, pkg, target, opts, probe)
    })
}

/// The tools probe started by [`run_all`].
type ToolsProbe<'s> = Option<std::thread::ScopedJoinHandle<'s, backup::FoundTools>>;

fn run_steps(
    run: &mut Run,
    pkg: &Package,
    target: &Target,
    opts: &ApplyOptions,
    mut probe: ToolsProbe<'_>,
) -> Result<(), GateFailure> {
    let digest = run.record.digest.clone();
    let mut s = run.step_yielding(StepId::ExclusiveRun, |run| exclusive_run(run, pkg, target))?;
    let server = run.step_yielding(StepId::TargetIdentity, |run| {
        target_identity(run, pkg, opts, &mut s.work)
    })?;
    run.step(StepId::SqlIntegrity, |_| sql_integrity(pkg))?;
    let scoped = run.step_yielding(StepId::Scope, |_| scope(pkg, &mut s.work))?;
    run.step(StepId::Approvals, |run| approvals(run, pkg, &digest, opts))?;
    run.step(StepId::Rehearsal, |_| rehearsal(pkg, &digest, opts))?;
    let tools = run.step_maybe(StepId::ClientVersion, |run| {
        client_version(run, pkg, target, &server, probe.take())
    })?;
    let (backed_up, dumped) = run.step_handing(StepId::BackupRestorable, |run| {
        let mut dumped = None;
        let result = backup_restorable(run, pkg, target, opts, tools.as_ref(), &mut s, &mut dumped);
        (result, dumped)
    });
    backed_up?;
    let (dumped_at, taken_pre) = dumped.map(|d| (d.at, d.pre)).unzip();
    let pre = run.step_yielding(StepId::PreSnapshots, |run| {
        pre_snapshots(run, pkg, &mut s, taken_pre)
    })?;
    run.step(StepId::Preflight, |run| {
        preflight(run, pkg, opts, &mut s.work)
    })?;
    run.step(StepId::BackupFresh, |_| backup_fresh(pkg, opts, dumped_at))?;
    run.step(StepId::MigrationAtomic, |run| {
        migration_atomic(run, pkg, opts, &scoped.parsed, &mut s)
    })?;
    // After COMMIT every step runs even when one before it failed: each only reads, and the
    // evidence of what the change did (the post snapshot, the post probe captures a rollback's
    // restore script needs) matters most when something is wrong. The first failure counts.
    let (verified, taken_post) = run.step_handing(StepId::Verification, |run| {
        verification(run, pkg, &pre, &mut s)
    });
    let after_commit = [
        verified,
        run.step(StepId::SchemaDiff, |run| {
            schema_diff(run, pkg, (&pre, &scoped.operations), &mut s, taken_post)
        }),
        run.step(StepId::Probes, |run| probes(run, pkg, &mut s, &pre.probes)),
    ];
    after_commit
        .into_iter()
        .collect::<Result<Vec<()>, _>>()
        .map(|_| ())
}

/// The pre catalog snapshot on the working session, shared with the second session when
/// there is one; its baseline is kept for the post snapshot.
fn pre_snapshot(s: &mut Sessions, ignore: &[String]) -> TakenSnapshot {
    let options = catalog::SnapshotOptions::new(ignore)
        .helper(s.aux.as_mut())
        .record_baseline();
    let taken = catalog::snapshot(&mut s.work, options)?;
    Ok((taken.snapshot, taken.baseline))
}

/// The post catalog snapshot on the working session, shared with the second session.
fn post_snapshot(
    s: &mut Sessions,
    pre: &Pre,
    ignore: &[String],
) -> Result<Snapshot, postgres::Error> {
    let options = pre.post_options(ignore).helper(s.aux.as_mut());
    catalog::snapshot(&mut s.work, options).map(|taken| taken.snapshot)
}

/// The advisory lock key of a package: the first 8 bytes of sha256("sluice:" + id).
pub fn lock_key(package_id: &str) -> i64 {
    let hash = crate::digest::sha256_hex(format!("sluice:{package_id}").as_bytes());
    i64::from_str_radix(&hash[..15], 16).unwrap_or(0)
}

fn exclusive_run(
    run: &mut Run,
    pkg: &Package,
    target: &Target,
) -> Result<(String, Sessions), String> {
    // the three sessions are opened at once: each connection is a round trip or more
    let (lock, work, helper) = std::thread::scope(|scope| {
        let lock = scope.spawn(|| target.connect("lock"));
        let helper = scope.spawn(|| target.connect("helper"));
        let work = target.connect("work");
        let join = |t: std::thread::ScopedJoinHandle<'_, _>| {
            t.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        };
        (join(lock), work, join(helper))
    });
    let (mut lock, work) = match (lock, work) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Err(e.to_string()),
    };
    let key = lock_key(&pkg.info.id);
    let got = lock
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .map(|r| r.get::<_, bool>(0));
    match got {
        Ok(true) => {
            run.log("lock", serde_json::json!({ "advisory_lock_key": key }));
            let detail = format!(
                "session advisory lock {key} held for package {}",
                pkg.info.id
            );
            let sessions = Sessions {
                lock,
                work,
                // a third session, when one can be had, shares the catalog snapshots' queries
                // and computes probe statistics beside the row stream
                aux: helper.ok(),
                rows_target: target.clone(),
            };
            Ok((detail, sessions))
        }
        Ok(false) => {
            let holder = lock
                .query_opt(
                    "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, '')
                       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                      WHERE l.locktype = 'advisory' AND l.granted
                        AND l.classid = ($1::bigint >> 32)::oid AND l.objid = ($1::bigint & 4294967295)::oid AND l.objsubid = 1",
                    &[&key],
                )
                .ok()
                .flatten()
                .map(|r| format!(" (held by pid {} {} as {})", r.get::<_, i32>(0), r.get::<_, String>(1), r.get::<_, String>(2)))
                .unwrap_or_default();
            Err(format!("another sluice run of package {} holds the lock on this target{holder}; refused, not queued", pkg.info.id))
        }
        Err(e) => Err(target::pg_message(&e)),
    }
}

fn target_identity(
    run: &mut Run,
    pkg: &Package,
    opts: &ApplyOptions,
    work: &mut postgres::Client,
) -> Result<(String, target::IdentityFacts), String> {
    let facts = match target::identity(work) {
        Ok(f) => f,
        Err(e) => return Err(target::pg_message(&e)),
    };
    run.record.server = Some(facts.clone());
    let items = target::compare_identity(&pkg.target, &facts, opts.rehearsal);
    let shown: Vec<String> = items
        .iter()
        .map(|i| format!("{}: {} (expected {})", i.key, i.actual, i.expected))
        .collect();
    let failed: Vec<String> = items
        .iter()
        .filter(|i| !i.holds)
        .map(|i| format!("{} is {} but must be {}", i.key, i.actual, i.expected))
        .collect();
    if failed.is_empty() {
        let detail = format!("{}; server {}", shown.join("; "), facts.server_version);
        Ok((detail, facts))
    } else {
        Err(format!(
            "target is not the one the package names: {}",
            failed.join("; ")
        ))
    }
}

fn sql_integrity(pkg: &Package) -> StepResult {
    let mut files = vec![(
        &pkg.migration.file.rel,
        &pkg.migration.file.bytes,
        &pkg.migration.file.sha256,
    )];
    if let Some(r) = &pkg.rollback {
        files.push((&r.rel, &r.bytes, &r.sha256));
    }
    let mut ok = Vec::new();
    for (rel, bytes, pinned) in files {
        let actual = crate::digest::sha256_hex(bytes);
        if &actual != pinned {
            return Failed(format!(
                "{}: sha256 is {actual}, the manifest pins {pinned}",
                rel.display()
            ));
        }
        ok.push(format!("{} {}", rel.display(), &actual[..16]));
    }
    Passed(format!("sha256 matches: {}", ok.join(", ")))
}

/// What the scope gate hands on: the migration as parsed and planned, and the operations it
/// derived (the schema diff is judged against them).
struct Scoped {
    parsed: lint::ParsedMigration,
    operations: Vec<crate::sql::Operation>,
}

fn scope(pkg: &Package, work: &mut postgres::Client) -> Result<(String, Scoped), String> {
    let parsed = match lint::parse_migration(pkg) {
        Ok(p) => p,
        Err(e) => return Err(e.to_string()),
    };
    // what the live target says (its row triggers, its tables' policies) sharpens the hazards:
    // disabling row-level security on a table that has policies is an error
    let facts = target::facts(work).ok();
    let report = match lint::lint_parsed(pkg, &parsed, facts.as_ref()) {
        Ok(r) => r,
        Err(e) => return Err(e.to_string()),
    };
    let operations = report
        .migration
        .operations
        .iter()
        .map(|d| d.operation.clone())
        .collect();
    let errors: Vec<String> = report
        .findings()
        .filter(|f| f.severity == crate::sql::Severity::Error)
        .map(|f| format!("{} at {}", f.hazard, f.location))
        .collect();
    let mut problems = Vec::new();
    if let Some(s) = &report.scope {
        problems.extend(
            s.out_of_scope
                .iter()
                .map(|d| format!("out of scope: {} ({})", d.operation, d.location)),
        );
        problems.extend(s.missing.iter().map(|(op, _)| format!("missing: {op}")));
    }
    problems.extend(errors.into_iter().map(|e| format!("lint error: {e}")));
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let detail = match &report.scope {
        Some(s) => format!(
            "{} operation(s) derived = {} declared",
            report.migration.operations.len(),
            s.declared.len()
        ),
        None => "no [scope] section: nothing to prove".into(),
    };
    Ok((detail, Scoped { parsed, operations }))
}

fn approvals(run: &mut Run, pkg: &Package, digest: &str, opts: &ApplyOptions) -> StepResult {
    if opts.rehearsal {
        return Skipped("rehearsal run: approvals are for the real target".into());
    }
    let verdict = crate::approval::evaluate(
        &pkg.approvals,
        &pkg.info.id,
        digest,
        Some(&opts.operator),
        &pkg.dir.join("approvals"),
    );
    // every file counted or refused, with the refusal's kind, for log.jsonl's readers
    run.log("approvals", serde_json::json!(verdict));
    if verdict.holds {
        Passed(verdict.summary)
    } else {
        Failed(verdict.summary)
    }
}

fn rehearsal(pkg: &Package, digest: &str, opts: &ApplyOptions) -> StepResult {
    if opts.rehearsal {
        return Skipped("this is the rehearsal".into());
    }
    if !pkg.rehearsal.required {
        return Skipped("[rehearsal] required = false".into());
    }
    let verdict = crate::rehearsal::find_passing(&pkg.dir.join("rehearsals"), digest);
    if !verdict.holds {
        return Failed(verdict.detail);
    }
    let budget_ms = pkg.rehearsal.lock_budget_ms;
    let Some(path) = verdict.record.as_deref().filter(|_| budget_ms > 0) else {
        return Passed(verdict.detail);
    };
    let record = crate::rehearsal::read_record(path);
    let traces = record
        .as_ref()
        .and_then(|r| r.trace.as_ref())
        .map(|t| t.runs())
        .unwrap_or_default();
    let budget = crate::locktrace::budget::check(&traces, budget_ms);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    if budget.holds() {
        Passed(format!("{}; {}", verdict.detail, budget.describe(&name)))
    } else {
        Failed(budget.describe(&name))
    }
}

fn client_version(
    run: &mut Run,
    pkg: &Package,
    target: &Target,
    server: &target::IdentityFacts,
    probe: ToolsProbe<'_>,
) -> Yield<backup::ClientTools> {
    let Some(probe) = probe.filter(|_| pkg.backup.required) else {
        return Yield::Skipped("no backup is taken ([backup] required = false)".into());
    };
    let needs_tls = target.needs_tls();
    let found = probe
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let tools = match found.for_target(server.server_major(), needs_tls) {
        Ok(t) => t,
        Err(e) => return Yield::Failed(e.to_string()),
    };
    run.record.client_tools = Some(tools.clone());
    if let Err(e) = backup::check_version(&tools, server.server_major(), &server.server_version) {
        return Yield::Failed(e.to_string());
    }
    let detail = format!(
        "pg_dump/pg_restore {} from {} for server {}{}",
        tools.version,
        tools.bindir.display(),
        server.server_version,
        if needs_tls { ", over TLS" } else { "" }
    );
    Yield::Passed(detail, tools)
}

fn backup_restorable(
    run: &mut Run,
    pkg: &Package,
    target: &Target,
    opts: &ApplyOptions,
    tools: Option<&backup::ClientTools>,
    s: &mut Sessions,
    dumped: &mut Option<Dumped>,
) -> StepResult {
    if let Some(refused) = early_preflight(run, pkg, opts, &mut s.work) {
        return refused;
    }
    if !pkg.backup.required {
        return Skipped(format!(
            "not required: {}",
            pkg.backup.reason.as_deref().unwrap_or("")
        ));
    }
    if opts.rehearsal {
        // the copy was restored from the dump the rehearsal took of the target and read back
        // in full: a dump of the copy would prove nothing more, at the cost of a second dump
        return Skipped(
            "rehearsal: this copy was restored from the backup the rehearsal took of the target and read back in full".into(),
        );
    }
    // client-version is skipped only when no backup is required, which returned above
    let Some(tools) = tools else {
        return Failed("no client tools: client-version did not find them".into());
    };
    let spec = &pkg.backup.dump;
    let base = format!(
        "backup/{}-{}",
        crate::evidence::safe_name(target.dbname()),
        run.stamp
    );
    let size = s.work.query_one(
        "SELECT pg_catalog.pg_database_size(pg_catalog.current_database())",
        &[],
    );
    let size = match size {
        Ok(row) => row.get::<_, i64>(0).max(0) as u64,
        Err(e) => return Failed(format!("pg_database_size: {}", target::pg_message(&e))),
    };
    if let Err(e) = backup::ensure_room(run.dir.path(), size) {
        return Failed(e.to_string());
    }
    let path = backup::dump_path(&run.dir.path().join(&base), spec.format);
    let rel = backup::dump_path(Path::new(&base), spec.format)
        .display()
        .to_string();
    if let Err(e) = run.dir.ensure_parent(&rel) {
        return Failed(e.to_string());
    }
    let observer = run.observer;
    let progress = |bytes: u64| observer.progress("pg_dump", bytes, Some(size));
    let written = match backup::write_dump(tools, target, spec, &path, &progress) {
        Ok(written) => written,
        Err(e) => return Failed(e.to_string()),
    };
    // pg_dump is done with the target: the pre schema snapshot (step 9) is taken on the working
    // sessions while pg_restore reads the dump back (it reads files only)
    let ignore = &pkg.schema_diff.ignore_schemas;
    let (checked, pre) = std::thread::scope(|scope| {
        let taking = scope.spawn(|| pre_snapshot(s, ignore));
        let checked = backup::check_dump(tools, spec, &path, written);
        let pre = taking
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (checked, pre)
    });
    let info = match checked {
        Ok(info) => info,
        Err(e) => return Failed(e.to_string()),
    };
    *dumped = Some(Dumped {
        at: Instant::now(),
        pre,
    });
    for (file, sha256) in info.sums(&rel) {
        let line = format!("{sha256}  {file}");
        run.streamed.insert(file, sha256);
        if let Err(e) = run.dir.append_line(crate::evidence::SUMS, &line) {
            return Failed(e.to_string());
        }
    }
    let detail = info.summary(&rel);
    run.record.backup = Some(info);
    Passed(detail)
}

fn pre_snapshots(
    run: &mut Run,
    pkg: &Package,
    s: &mut Sessions,
    taken: Option<TakenSnapshot>,
) -> Result<(String, Pre), String> {
    let ignore = &pkg.schema_diff.ignore_schemas;
    let taken = match taken {
        Some(taken) => taken,
        None => pre_snapshot(s, ignore),
    };
    let (snapshot, baseline) = match taken {
        Ok(taken) => taken,
        Err(e) => return Err(format!("schema snapshot: {}", target::pg_message(&e))),
    };
    let counts = match catalog::row_counts(&mut s.work, ignore) {
        Ok(c) => c,
        Err(e) => return Err(format!("row counts: {}", target::pg_message(&e))),
    };
    if let Err(e) = run
        .dir
        .write_json("schema/pre.json", &snapshot)
        .and_then(|_| run.dir.write_json("counts/pre.json", &counts))
    {
        return Err(e.to_string());
    }
    let mut probes = Vec::new();
    for probe in &pkg.probes {
        probes.push(capture_probe_as(
            run,
            s,
            probe,
            &format!("probes/{}.pre.csv", probe.id),
        )?);
    }
    let detail = format!(
        "schema/pre.json, counts/pre.json ({} tables), {} probe capture(s)",
        counts.len(),
        pkg.probes.len()
    );
    Ok((
        detail,
        Pre {
            snapshot,
            baseline,
            probes,
        },
    ))
}

fn run_checks(client: &mut postgres::Client, checks: &[Check]) -> Vec<CheckResult> {
    checks.iter().map(|c| evaluate_check(client, c)).collect()
}

fn verdict(results: &[CheckResult]) -> StepResult {
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.holds)
        .map(|r| format!("{}: {}", r.id, r.detail.clone().unwrap_or_default()))
        .collect();
    if !failed.is_empty() {
        return Failed(format!(
            "{} check(s) failed: {}",
            failed.len(),
            failed.join("; ")
        ));
    }
    let ids: Vec<&str> = results.iter().map(|r| r.id.as_str()).collect();
    let acknowledged: Vec<String> = results
        .iter()
        .filter_map(|r| r.acknowledged.as_ref().map(|a| a.describe(&r.id)))
        .collect();
    let held = format!("{} check(s) hold: {}", results.len(), ids.join(", "));
    if acknowledged.is_empty() {
        Passed(held)
    } else {
        Passed(format!(
            "ACKNOWLEDGED DEVIATION: {}; {held}",
            acknowledged.join("; ")
        ))
    }
}

/// The preflight checks, run read-only; a failed one passes when enough signers acknowledged
/// exactly its observed result (`sluice approve --acknowledge`).
fn preflight_checks(
    run: &mut Run,
    pkg: &Package,
    opts: &ApplyOptions,
    work: &mut postgres::Client,
) -> Vec<CheckResult> {
    let mut results = run_checks(work, &pkg.preflight);
    if results.iter().all(|r| r.holds) {
        return results;
    }
    let verdict = crate::approval::evaluate(
        &pkg.approvals,
        &pkg.info.id,
        &run.record.digest,
        Some(&opts.operator),
        &pkg.dir.join("approvals"),
    );
    crate::approval::acknowledge::apply(&mut results, &verdict);
    results
}

fn preflight(
    run: &mut Run,
    pkg: &Package,
    opts: &ApplyOptions,
    work: &mut postgres::Client,
) -> StepResult {
    let results = preflight_checks(run, pkg, opts, work);
    let acknowledged: Vec<&CheckResult> = results
        .iter()
        .filter(|r| r.acknowledged.is_some())
        .collect();
    if !acknowledged.is_empty() {
        run.log("preflight.acknowledged", serde_json::json!(acknowledged));
    }
    run.record.preflight = results.clone();
    match verdict(&results) {
        Failed(why) => Failed(format!("{why}{}", already_applied(run, pkg, opts))),
        held => held,
    }
}

/// The preflight checks once before the backup (SPEC §4): a package that cannot apply is
/// refused before a dump that can take hours. The run at step 10 is the one that counts.
fn early_preflight(
    run: &mut Run,
    pkg: &Package,
    opts: &ApplyOptions,
    work: &mut postgres::Client,
) -> Option<StepResult> {
    let results = preflight_checks(run, pkg, opts, work);
    run.log("preflight.before-backup", serde_json::json!(results));
    match verdict(&results) {
        Failed(why) => Some(FailedAs(
            PREFLIGHT_GATE,
            format!(
                "before the backup: {why}{}; nothing was dumped",
                already_applied(run, pkg, opts)
            ),
        )),
        _ => None,
    }
}

/// `; already applied to this target in run X` when the evidence root holds a successful apply
/// of this digest to this same target (system identifier + database) that no rollback undid —
/// found by the lookup `sluice status` makes.
fn already_applied(run: &Run, pkg: &Package, opts: &ApplyOptions) -> String {
    let Some(live) = run.record.server.as_ref() else {
        return String::new();
    };
    let digest = crate::digest::package_digest(pkg);
    let report = crate::status::status(
        std::slice::from_ref(&opts.evidence_root),
        Some(&pkg.info.id),
        live,
    );
    let applied = report.runs.iter().rev().find(|r| {
        r.kind == "apply"
            && r.digest == digest
            && r.outcome == crate::run_record::RunStatus::Succeeded
            && !r.rolled_back()
    });
    match applied {
        Some(r) => format!(
            "; this package (same digest) was already applied to this target in run {} (operator {}, finished {}; `sluice status` lists the runs)",
            r.run.display(),
            r.operator,
            r.finished_at.as_deref().unwrap_or("unknown")
        ),
        None => String::new(),
    }
}

fn backup_fresh(pkg: &Package, opts: &ApplyOptions, dumped_at: Option<Instant>) -> StepResult {
    let Some(done) = dumped_at else {
        return Skipped(if opts.rehearsal {
            "rehearsal: this copy was restored from the backup the rehearsal has just taken".into()
        } else {
            "no backup was taken".into()
        });
    };
    let age = done.elapsed() + crate::fault::backup_age_offset();
    let max = std::time::Duration::from_secs(pkg.backup.max_age_minutes * 60);
    if age <= max {
        Passed(format!(
            "backup is {:.1} s old (max {} min)",
            age.as_secs_f64(),
            pkg.backup.max_age_minutes
        ))
    } else {
        Failed(format!(
            "backup is {:.0} s old, more than max_age_minutes = {}; take a new one (re-run)",
            age.as_secs_f64(),
            pkg.backup.max_age_minutes
        ))
    }
}

fn migration_atomic(
    run: &mut Run,
    pkg: &Package,
    opts: &ApplyOptions,
    parsed: &lint::ParsedMigration,
    s: &mut Sessions,
) -> StepResult {
    let spec = MigrationRun {
        source: &parsed.file.source,
        statements: &parsed.plan.statements,
        expect: pkg.migration.expect.as_ref(),
        lock_timeout_ms: pkg.migration.lock_timeout_ms,
        statement_timeout_ms: pkg.migration.statement_timeout_ms,
        lock_retries: pkg.migration.lock_retries,
        // the rehearsal measures what each statement locks; a production apply is untraced
        trace: opts.rehearsal,
        search_path: &pkg.target.search_path,
    };
    let log_attempt = |a: &migration::Attempt| {
        run.observer.attempt(a);
        run.log("migration.attempt", serde_json::json!(a));
    };
    let report = match pkg.migration.transaction {
        crate::sql::transaction::TransactionMode::Single => {
            migration::run_single(&mut s.work, Some(&mut s.lock), &spec, &log_attempt)
        }
        crate::sql::transaction::TransactionMode::None => {
            let r = migration::run_autocommit(&mut s.work, Some(&mut s.lock), &spec);
            log_attempt(&r.attempts[0]);
            r
        }
    };
    run.record.migration_committed = report.committed;
    let row = report
        .last_row
        .as_ref()
        .map(|r| r.render())
        .unwrap_or_default();
    let attempts = report.attempts.len();
    let (failure, committed, pg) = (
        report.failure.clone(),
        report.committed,
        report.error.clone(),
    );
    let statements = report.statements.len();
    if let Some(trace) = &report.trace {
        if let Err(e) = run.dir.write_json("trace.json", trace) {
            return Failed(e.to_string());
        }
    }
    run.record.migration = Some(report);
    let none = pkg.migration.transaction == crate::sql::transaction::TransactionMode::None;
    match failure {
        None if none => Passed(format!(
            "{statements} statement(s) committed one by one (transaction = \"none\": not atomic); last row: {row}"
        )),
        None => Passed(format!(
            "committed after {attempts} attempt(s); last row: {row}"
        )),
        Some(f) if committed => FailedAfterCommit(f, pg),
        Some(f) => match pg {
            Some(pg) => FailedPg(f, pg),
            None => Failed(f),
        },
    }
}

/// The verify checks; hands on the post schema snapshot (step 14) when a second session took
/// it while the checks ran on the working one (after COMMIT both only read the committed state).
fn verification(
    run: &mut Run,
    pkg: &Package,
    pre: &Pre,
    s: &mut Sessions,
) -> (StepResult, Option<Result<Snapshot, postgres::Error>>) {
    let ignore = &pkg.schema_diff.ignore_schemas;
    let Sessions { work, aux, .. } = s;
    let (mut results, post) = std::thread::scope(|scope| {
        let post = aux.as_mut().map(|helper| {
            scope.spawn(move || {
                catalog::snapshot(helper, pre.post_options(ignore)).map(|taken| taken.snapshot)
            })
        });
        let results = run_checks(work, &pkg.verify);
        let post = post.map(|thread| {
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        (results, post)
    });
    if results.iter().any(|r| !r.holds) {
        let verdict = crate::approval::evaluate(
            &pkg.approvals,
            &pkg.info.id,
            &run.record.digest,
            None,
            &pkg.dir.join("approvals"),
        );
        crate::approval::acknowledge::refuse_after_commit(&mut results, &verdict);
    }
    run.record.verification = results.clone();
    (verdict(&results), post)
}

fn schema_diff(
    run: &mut Run,
    pkg: &Package,
    (pre, operations): (&Pre, &[crate::sql::Operation]),
    s: &mut Sessions,
    taken_post: Option<Result<Snapshot, postgres::Error>>,
) -> StepResult {
    let ignore = &pkg.schema_diff.ignore_schemas;
    let taken = match taken_post {
        Some(taken) => taken,
        None => post_snapshot(s, pre, ignore),
    };
    let post = match taken {
        Ok(snapshot) => snapshot,
        Err(e) => return Failed(format!("schema snapshot: {}", target::pg_message(&e))),
    };
    let counts = match catalog::row_counts(&mut s.work, ignore) {
        Ok(c) => c,
        Err(e) => return Failed(format!("row counts: {}", target::pg_message(&e))),
    };
    let diff = match catalog::diff::diff(&pre.snapshot, &post) {
        Ok(diff) => diff,
        Err(e) => return Failed(e.to_string()),
    };
    let judged = catalog::diff::judge(&diff, operations, &pkg.schema_diff);
    let written = run
        .dir
        .write_json("schema/post.json", &post)
        .and_then(|_| {
            run.dir.write_json(
                "schema/diff.json",
                &serde_json::json!({ "diff": diff, "verdict": judged }),
            )
        })
        .and_then(|_| run.dir.write_json("counts/post.json", &counts));
    if let Err(e) = written {
        return Failed(e.to_string());
    }
    run.record.schema_diff = serde_json::to_value(serde_json::json!({
        "added": diff.added.len(), "removed": diff.removed.len(), "changed": diff.changed.len(), "holds": judged.holds,
    }))
    .ok();
    let summary = format!(
        "added {}, removed {}, changed {}",
        diff.added.len(),
        diff.removed.len(),
        diff.changed.len()
    );
    if judged.holds {
        return Passed(format!(
            "{summary}; every added object explained by the scope"
        ));
    }
    let mut problems = Vec::new();
    problems.extend(
        judged
            .unexplained_added
            .iter()
            .map(|o| format!("added but not in scope: {:?} {}", o.kind, o.key)),
    );
    problems.extend(judged.unexplained_changed.iter().map(|o| {
        let details = o.field_details();
        let details = if details.is_empty() {
            String::new()
        } else {
            format!(" — {}", details.join("; "))
        };
        format!(
            "changed: {:?} {} ({}){details}",
            o.kind,
            o.key,
            o.fields.join(", ")
        )
    }));
    problems.extend(
        judged
            .removed_refused
            .iter()
            .map(|o| format!("removed: {:?} {}", o.kind, o.key)),
    );
    Failed(format!("{summary}; {}", problems.join("; ")))
}

fn probes(
    run: &mut Run,
    pkg: &Package,
    s: &mut Sessions,
    pre_probes: &[crate::probe::Capture],
) -> StepResult {
    if pkg.probes.is_empty() {
        return Skipped("no probes".into());
    }
    let mut lines = Vec::new();
    let mut failed = Vec::new();
    for (i, probe) in pkg.probes.iter().enumerate() {
        let pre_csv = run.dir.path().join(format!("probes/{}.pre.csv", probe.id));
        let earlier = Earlier {
            csv: &pre_csv,
            order: Some(pre_probes[i].key_order),
        };
        let rel = format!("probes/{}.post.csv", probe.id);
        let (post, rows) = match capture_probe_compared(run, s, probe, &rel, earlier) {
            Ok(compared) => compared,
            Err(e) => return Failed(e),
        };
        let summary = crate::probe::summarize(probe, pre_probes[i].clone(), post, rows);
        if let Err(e) = run
            .dir
            .write_json(&format!("probes/{}.summary.json", probe.id), &summary)
        {
            return Failed(e.to_string());
        }
        lines.push(format!(
            "{}: {}",
            probe.id,
            summary.render().replace('\n', "; ")
        ));
        if !summary.holds {
            failed.push(probe.id.clone());
        }
        run.record.probes.push(summary);
    }
    if failed.is_empty() {
        Passed(lines.join(" | "))
    } else {
        Failed(format!(
            "probe expectation failed for {}: {}",
            failed.join(", "),
            lines.join(" | ")
        ))
    }
}

/// The rollback's steps ([`crate::gate::ROLLBACK_STEPS`]), in order.
pub(super) fn run_rollback(
    run: &mut Run,
    pkg: &Package,
    target: &Target,
    opts: &super::RollbackOptions,
) -> Result<(), GateFailure> {
    let digest = run.record.digest.clone();
    let apply_options = ApplyOptions {
        environment: opts.environment.clone(),
        operator: opts.operator.clone(),
        evidence_root: opts.evidence_root.clone(),
        pg_dump_bindir: None,
        rehearsal: false,
    };
    run.step(StepId::SqlIntegrity, |_| sql_integrity(pkg))?;
    let applied = run.step_yielding(StepId::RollbackRun, |_| rollback_run(pkg, &digest, opts))?;
    run.step(StepId::FailedCheck, |_| {
        failed_check(pkg, target, opts, &applied.stored)
    })?;
    run.step(StepId::Approvals, |run| {
        rollback_approvals(run, pkg, &digest, opts, &applied.run)
    })?;
    let mut s = run.step_yielding(StepId::ExclusiveRun, |run| exclusive_run(run, pkg, target))?;
    run.step_yielding(StepId::TargetIdentity, |run| {
        target_identity(run, pkg, &apply_options, &mut s.work)
    })?;
    run.step(StepId::RollbackAtomic, |run| {
        rollback_atomic(run, pkg, &mut s.work)
    })?;
    run.step(StepId::SchemaEqualsPre, |_| {
        schema_equals_pre(pkg, opts, &mut s)
    })?;
    run.step(StepId::RestoreScript, |run| {
        restore_script(run, pkg, opts, &mut s)
    })?;
    Ok(())
}

fn rollback_run(
    pkg: &Package,
    digest: &str,
    opts: &super::RollbackOptions,
) -> Result<(String, Applied), String> {
    if pkg.rollback.is_none() {
        return Err("the package has no [rollback] file".into());
    }
    let path = opts.run_dir.join("run.json");
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let stored: crate::run_record::StoredRun = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not a sluice run record: {e}", path.display()))?;
    // the run id is the folder's name, as approve-rollback binds it
    let id = std::fs::canonicalize(&opts.run_dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
    let Some(id) = id else {
        return Err(format!("{} is not a run folder", opts.run_dir.display()));
    };
    let run =
        crate::approval::rollback::run_from_bytes(&path, id, &bytes).map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    if stored.kind != "apply" {
        problems.push(format!("the run is a {}, not an apply", stored.kind));
    }
    if !stored.migration_committed {
        problems.push("its migration never committed: there is nothing to roll back".to_string());
    }
    if stored.digest != digest {
        problems.push(format!(
            "it applied digest {}, the package is now {}",
            &stored.digest[..12.min(stored.digest.len())],
            &digest[..12]
        ));
    }
    if stored.package != pkg.info.id {
        problems.push(format!("it applied package {}", stored.package));
    }
    if stored.environment != opts.environment {
        problems.push(format!(
            "it ran on environment {}, not {}",
            stored.environment, opts.environment
        ));
    }
    if problems.is_empty() {
        let detail = format!(
            "{}: a completed apply of this digest on {}",
            opts.run_dir.display(),
            stored.environment
        );
        Ok((detail, Applied { stored, run }))
    } else {
        Err(format!(
            "{} cannot be rolled back from here: {}",
            opts.run_dir.display(),
            problems.join("; ")
        ))
    }
}

/// The rollback's `approvals` gate: enough signed rollback approvals of this very rollback; the
/// ones it counts are copied into the rollback's evidence and recorded in its run.json.
fn rollback_approvals(
    run: &mut Run,
    pkg: &Package,
    digest: &str,
    opts: &super::RollbackOptions,
    applied: &crate::approval::rollback::ApplyRun,
) -> StepResult {
    use crate::approval::rollback;
    let dir = opts.approvals_dir();
    let expected = rollback::Expected {
        package_id: &pkg.info.id,
        digest,
        run: applied,
        environment: &opts.environment,
        failed_check: &opts.failed_check,
        operator: &opts.operator,
    };
    let verdict = rollback::evaluate(&pkg.approvals, &expected, &dir);
    run.log("rollback.approvals", serde_json::json!(verdict));
    if !verdict.holds {
        return Failed(verdict.summary);
    }
    for used in verdict.counted() {
        let name = used
            .file
            .file_name()
            .map_or_else(|| "approval".into(), |n| n.to_string_lossy().into_owned());
        let rel = format!("{}/{name}", rollback::DIR);
        if let Err(e) = run.dir.write(&rel, &used.bytes) {
            return Failed(format!(
                "cannot copy {} into the evidence: {e}",
                used.file.display()
            ));
        }
        run.record
            .rollback_approvals
            .push(crate::run_record::RollbackApprovalUsed {
                signer: used.signer.clone(),
                decision: used.decision.to_string(),
                note: used.note.clone(),
                signed_at: used.signed_at.clone(),
                key_fingerprint: used.key_fingerprint.clone(),
                file: rel,
                sha256: used.sha256.clone(),
            });
    }
    Passed(verdict.summary)
}

fn failed_check(
    pkg: &Package,
    target: &Target,
    opts: &super::RollbackOptions,
    applied: &crate::run_record::StoredRun,
) -> StepResult {
    // a non-atomic migration that failed after part of it committed: the failed statement is
    // the trigger
    if opts.failed_check == MIGRATION_GATE {
        let partly =
            applied.migration_committed && applied.failed_gate.as_deref() == Some(MIGRATION_GATE);
        return if partly {
            Passed(format!(
                "the migration failed after part of it committed: {}",
                applied.failure.as_deref().unwrap_or("")
            ))
        } else {
            Failed(format!(
                "{MIGRATION_GATE} is a rollback trigger only for a run whose non-atomic migration failed after part of it committed; this run's migration did not"
            ))
        };
    }
    let Some(check) = pkg.verify.iter().find(|c| c.id == opts.failed_check) else {
        let ids: Vec<&str> = pkg.verify.iter().map(|c| c.id.as_str()).collect();
        return Failed(format!(
            "{} is not a verify check of this package (its verify checks: {}; or {MIGRATION_GATE} for a partly committed non-atomic migration)",
            opts.failed_check,
            ids.join(", ")
        ));
    };
    let recorded = applied
        .verification
        .iter()
        .any(|v| v.id == check.id && !v.holds);
    if recorded {
        return Passed(format!("{} is recorded as failed in the run", check.id));
    }
    let mut client = match target.connect("check") {
        Ok(c) => c,
        Err(e) => return Failed(e.to_string()),
    };
    let now = evaluate_check(&mut client, check);
    if now.holds {
        Failed(format!(
            "{} holds (it did not fail in the run, and it holds now): no rollback trigger",
            check.id
        ))
    } else {
        Passed(format!(
            "{} fails now: {}",
            check.id,
            now.detail.unwrap_or_default()
        ))
    }
}

fn rollback_atomic(run: &mut Run, pkg: &Package, work: &mut postgres::Client) -> StepResult {
    let report = match crate::rollback::run_rollback_sql(work, pkg) {
        Ok(r) => r,
        Err(e) => return Failed(e.to_string()),
    };
    for a in &report.attempts {
        run.log("rollback.attempt", serde_json::json!(a));
    }
    let committed = report.committed;
    let detail = report.failure.clone().unwrap_or_else(|| {
        format!(
            "rollback committed after {} attempt(s)",
            report.attempts.len()
        )
    });
    run.record.migration_committed = committed;
    run.record.migration = Some(report);
    if committed {
        Passed(detail)
    } else {
        Failed(detail)
    }
}

fn schema_equals_pre(pkg: &Package, opts: &super::RollbackOptions, s: &mut Sessions) -> StepResult {
    match super::verify::schema_against_pre(&mut s.work, s.aux.as_mut(), pkg, &opts.run_dir) {
        Ok(diff) if diff.is_empty() => Passed("the schema equals the run's pre snapshot".into()),
        Ok(diff) => Failed(format!(
            "the schema differs from the run's pre snapshot: {}",
            diff.join("; ")
        )),
        Err(e) => Failed(e),
    }
}

fn restore_script(
    run: &mut Run,
    pkg: &Package,
    opts: &super::RollbackOptions,
    s: &mut Sessions,
) -> StepResult {
    let mut lines = Vec::new();
    for probe in &pkg.probes {
        let pre_path = opts.run_dir.join(format!("probes/{}.pre.csv", probe.id));
        if let Err(e) = std::fs::metadata(&pre_path) {
            lines.push(format!("{}: no pre capture in the run ({e})", probe.id));
            continue;
        }
        // what the table holds now, after the rollback, against what it held before the apply
        let now_rel = format!("probes/{}.after-rollback.csv", probe.id);
        // compared while it streams, in the order the pre capture was taken in
        let earlier = Earlier {
            csv: &pre_path,
            order: pre_order(&opts.run_dir, probe),
        };
        let rows = match capture_probe_compared(run, s, probe, &now_rel, earlier) {
            Ok((_, rows)) => rows,
            Err(e) => return Failed(e),
        };
        if rows.changed == 0 && rows.removed == 0 {
            lines.push(format!(
                "{}: {} is as it was before the apply",
                probe.id, probe.table
            ));
            continue;
        }
        let post_path = opts.run_dir.join(format!("probes/{}.post.csv", probe.id));
        if !post_path.is_file() {
            lines.push(format!(
                "cannot restore {} changed and {} removed row(s) of {}: the run has no post capture to tell the migration's writes from later ones, so no restore script is written",
                rows.changed, rows.removed, probe.table
            ));
            continue;
        }
        let guard = match crate::probe::trigger_guard(&mut s.work, &probe.table) {
            Ok(g) => g,
            Err(e) => return Failed(format!("{}: {}", probe.table, target::pg_message(&e))),
        };
        let rel = format!("restore/{}.restore.sql", probe.id);
        let captures = (pre_path.as_path(), post_path.as_path());
        if let Err(e) = write_restore_script(run, probe, captures, &opts.run_dir, &guard, &rel) {
            return Failed(e);
        }
        lines.push(format!(
            "cannot restore {} changed and {} removed row(s) of {} ({}): restore script {rel} written, not run (it restores only rows still at their post-migration value; {})",
            rows.changed,
            rows.removed,
            probe.table,
            probe.columns.join(", "),
            match guard {
                crate::probe::TriggerGuard::ReplicationRole => "user triggers off with session_replication_role".to_string(),
                crate::probe::TriggerGuard::DisableTriggers(ref t) if t.is_empty() => "the table has no user trigger".to_string(),
                crate::probe::TriggerGuard::DisableTriggers(ref t) => format!("triggers {} disabled inside its transaction, as the owner may", t.join(", ")),
            }
        ));
    }
    if lines.is_empty() {
        Passed("no probes: nothing beyond the schema is measured".into())
    } else {
        Passed(lines.join("; "))
    }
}

/// Writes the restore script of a probe into the evidence file `rel`, streaming its pre capture.
fn write_restore_script(
    run: &mut Run,
    probe: &crate::package::Probe,
    (pre_csv, post_csv): (&std::path::Path, &std::path::Path),
    apply_dir: &std::path::Path,
    guard: &crate::probe::TriggerGuard,
    rel: &str,
) -> Result<(), String> {
    let (path, file) = run.dir.create_file(rel).map_err(|e| e.to_string())?;
    let mut out = std::io::BufWriter::new(crate::evidence::WriteBehind::new(file));
    let sha256 =
        crate::probe::write_restore_script(probe, pre_csv, post_csv, apply_dir, guard, &mut out)
            .and_then(|_| out.into_inner().map_err(|e| e.into_error()))
            .and_then(|file| file.finish())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    run.streamed.insert(rel.to_string(), sha256);
    Ok(())
}

/// The order of an apply's pre capture, from its probe summary (none when the apply stopped
/// before writing it: the capture then follows the key's type, as the pre capture did).
fn pre_order(apply_dir: &std::path::Path, probe: &crate::package::Probe) -> Option<KeyOrder> {
    let path = apply_dir.join(format!("probes/{}.summary.json", probe.id));
    let text = std::fs::read_to_string(path).ok()?;
    let summary: crate::probe::ProbeSummary = serde_json::from_str(&text).ok()?;
    Some(summary.pre.key_order)
}

/// Captures a probe into the evidence file `rel`.
fn capture_probe_as(
    run: &mut Run,
    s: &mut Sessions,
    probe: &crate::package::Probe,
    rel: &str,
) -> Result<crate::probe::Capture, String> {
    let (_, file) = run.dir.create_file(rel).map_err(|e| e.to_string())?;
    let capture = crate::probe::capture(s.probe(), probe, file).map_err(|e| e.to_string())?;
    run.streamed
        .insert(rel.to_string(), capture.csv_sha256.clone());
    Ok(capture)
}

/// Captures a probe into the evidence file `rel`, compared with an `earlier` capture as it
/// streams.
fn capture_probe_compared(
    run: &mut Run,
    s: &mut Sessions,
    probe: &crate::package::Probe,
    rel: &str,
    earlier: Earlier<'_>,
) -> Result<(crate::probe::Capture, RowDiff), String> {
    let (_, file) = run.dir.create_file(rel).map_err(|e| e.to_string())?;
    let (capture, rows) = crate::probe::capture_compared(s.probe(), probe, file, earlier)
        .map_err(|e| e.to_string())?;
    run.streamed
        .insert(rel.to_string(), capture.csv_sha256.clone());
    Ok((capture, rows))
}
