//! The review package: everything a reviewer needs to approve a change, built from the package
//! alone (and, with `--target`, from a read-only look at the target). [`Review`] is plain data;
//! `--format json` serializes it, and [`markdown`] and [`html`] render it in the seed document's
//! order (§1 scope … §8 digest).

pub mod html;
pub mod markdown;

pub(crate) use crate::checks::{evaluate_check, CheckResult};
use crate::digest;
use crate::gate;
use crate::gate::StepId;
use crate::lint::LintReport;
use crate::package::{Check, Package};
use crate::target::{self, IdentityFacts, IdentityItem, Target, TargetError};
use serde::Serialize;

/// One step of the exact command plan, made concrete for this package.
#[derive(Debug, Clone, Serialize)]
pub struct PlanStep {
    pub number: u8,
    pub gate: Option<&'static str>,
    pub name: &'static str,
    pub seed: &'static str,
    pub holds_when: &'static str,
    pub exit_code_on_failure: Option<i32>,
    /// What sluice does at this step for this package.
    pub action: Vec<String>,
}

/// Identity and preflight evaluated on a target, read-only.
#[derive(Debug, Clone, Serialize)]
pub struct LiveEvaluation {
    pub target: String,
    pub facts: IdentityFacts,
    pub identity: Vec<IdentityItem>,
    pub preflight: Vec<CheckResult>,
    /// How the target was reached (TLS state of the session).
    pub connection: crate::target::ConnectionRecord,
}

impl LiveEvaluation {
    pub fn holds(&self) -> bool {
        self.identity.iter().all(|i| i.holds) && self.preflight.iter().all(|c| c.holds)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Review {
    pub package: crate::package::PackageInfo,
    pub digest: String,
    pub target: crate::package::TargetSpec,
    pub migration: crate::package::Migration,
    pub migration_sql: String,
    pub rollback_sql: Option<String>,
    pub rollback: Option<crate::package::PinnedFile>,
    pub lint: LintReport,
    pub plan: Vec<PlanStep>,
    pub preflight: Vec<Check>,
    pub verify: Vec<Check>,
    pub probes: Vec<crate::package::Probe>,
    pub backup: crate::package::BackupPolicy,
    pub schema_diff: crate::package::SchemaDiffPolicy,
    pub approvals: crate::package::ApprovalPolicy,
    /// The approvals in `approvals/`, verified as the apply's approvals gate would (without an
    /// operator: separation of duties is judged at apply).
    pub approvals_present: crate::approval::ApprovalVerdict,
    pub rehearsal: crate::package::RehearsalPolicy,
    /// What the passing rehearsal of this digest measured (its lock trace), when there is one:
    /// read from `rehearsals/`, nothing is run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured: Option<Measured>,
    pub live: Option<LiveEvaluation>,
}

/// The passing rehearsal's measurements, for the review.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// The record's file name in `rehearsals/`.
    pub record: String,
    pub rehearsed_at: String,
    pub server_version: String,
    pub trace: crate::rehearsal::RehearsalTrace,
    /// The trace against `[rehearsal] lock_budget_ms`, when one is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<crate::locktrace::budget::BudgetVerdict>,
    /// Lint's hazards against the apply's trace, and the locks lint did not predict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lint_against_trace: Option<crate::locktrace::compare::Comparison>,
}

impl Measured {
    /// The passing record of `digest` in the package's `rehearsals/`, when it holds a trace;
    /// `lint` (the review's own) is held against it.
    fn read(pkg: &Package, digest: &str, lint: &LintReport) -> Option<Measured> {
        let verdict = crate::rehearsal::find_passing(&pkg.dir.join("rehearsals"), digest);
        let path = verdict.record.filter(|_| verdict.holds)?;
        let record = crate::rehearsal::read_record(&path)?;
        let trace = record.trace?;
        let budget = (pkg.rehearsal.lock_budget_ms > 0)
            .then(|| crate::locktrace::budget::check(&trace.runs(), pkg.rehearsal.lock_budget_ms));
        let lint_against_trace = trace
            .apply
            .as_ref()
            .and_then(|t| crate::locktrace::compare::for_package(pkg, &lint.migration.findings, t));
        Some(Measured {
            lint_against_trace,
            record: path.file_name()?.to_string_lossy().into_owned(),
            rehearsed_at: record.rehearsed_at,
            server_version: record.server_version,
            trace,
            budget,
        })
    }

    /// The lines the review shows: per run, a heading line, one line per statement, the totals.
    pub fn lines(&self) -> Vec<(String, Vec<String>)> {
        self.trace
            .runs()
            .into_iter()
            .map(|(run, trace)| {
                let mut lines = crate::locktrace::render::statement_lines(trace);
                lines.push(crate::locktrace::render::totals_line(trace));
                (
                    format!(
                        "Measured in the rehearsal's {run} (`{}`, PostgreSQL {}, {}), statement by statement:",
                        self.record, self.server_version, self.rehearsed_at
                    ),
                    lines,
                )
            })
            .collect()
    }
}

/// Builds the review of a package.
/// Who may roll the change back (SPEC §6, the seed's "Custodian co-sign"): the rule the
/// rollback pipeline's `approvals` gate enforces, in one sentence for the review.
pub(crate) fn rollback_authority(approvals: &crate::package::ApprovalPolicy) -> String {
    let n = approvals.rollback_required;
    if n == 0 {
        return "Authority: `[approvals] rollback_required = 0` — no co-signature; the operator alone decides, by typed confirmation.".to_string();
    }
    let operator = if approvals.operator_may_approve {
        "the operator's own approval counts (`operator_may_approve = true`)"
    } else {
        "the operator's own approval does not count"
    };
    format!(
        "Authority: not automatic. `sluice rollback` needs {n} distinct signed rollback approval(s) with decision pass (`sluice approve-rollback`, SSH namespace `sluice-rollback`, signers from `allowed_signers`), each bound to this digest, that very apply run (its run.json's sha256), its environment and the failed check; {operator}; a signed reject blocks. Then the operator confirms."
    )
}

/// The acknowledged deviations signed so far, one line each: `P-8 = 87: acknowledged by
/// alice@example.com ("one unit added by …"); 1 of 2 signers needed`. Empty when none.
pub fn acknowledgements(verdict: &crate::approval::ApprovalVerdict) -> Vec<String> {
    let mut acknowledged: Vec<&crate::approval::Acknowledgement> = verdict
        .accepted
        .iter()
        .flat_map(|a| &a.acknowledge)
        .collect();
    acknowledged.sort_by(|a, b| (&a.check, &a.observed).cmp(&(&b.check, &b.observed)));
    acknowledged.dedup();
    let required = crate::approval::acknowledge::required_signers(verdict);
    acknowledged
        .into_iter()
        .map(|ack| {
            let by = verdict.acknowledgers(&ack.check, &ack.observed);
            let names: Vec<String> = by
                .iter()
                .map(|a| format!("{} (\"{}\")", a.signer, a.note.replace('\n', " ")))
                .collect();
            let standing = if by.len() >= required as usize {
                "enough: the preflight passes AS ACKNOWLEDGED if the check returns exactly this"
                    .to_string()
            } else {
                format!(
                    "{} of {required} signer(s) needed: not enough yet",
                    by.len()
                )
            };
            format!(
                "{} = {}: acknowledged by {}; {standing}",
                ack.check,
                ack.observed,
                names.join(", ")
            )
        })
        .collect()
}

pub fn build(pkg: &Package, lint: LintReport) -> Review {
    let digest = digest::package_digest(pkg);
    let approvals_dir = pkg.dir.join("approvals");
    let approvals_present =
        crate::approval::evaluate(&pkg.approvals, &pkg.info.id, &digest, None, &approvals_dir);
    let measured = Measured::read(pkg, &digest, &lint);
    Review {
        package: pkg.info.clone(),
        digest,
        target: pkg.target.clone(),
        migration: pkg.migration.clone(),
        migration_sql: pkg.migration_text().to_string(),
        rollback_sql: pkg
            .rollback
            .as_ref()
            .map(|r| String::from_utf8_lossy(&r.bytes).into_owned()),
        rollback: pkg.rollback.clone(),
        plan: plan(pkg, &lint),
        lint,
        preflight: pkg.preflight.clone(),
        verify: pkg.verify.clone(),
        probes: pkg.probes.clone(),
        backup: pkg.backup.clone(),
        schema_diff: pkg.schema_diff.clone(),
        approvals: pkg.approvals.clone(),
        approvals_present,
        rehearsal: pkg.rehearsal.clone(),
        measured,
        live: None,
    }
}

fn ids(checks: &[Check]) -> String {
    checks
        .iter()
        .map(|c| c.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The exact command plan: the gate table, with what each step does for this package.
fn plan(pkg: &Package, lint: &LintReport) -> Vec<PlanStep> {
    gate::STEPS
        .iter()
        .map(|step| PlanStep {
            number: step.number,
            gate: step.gate,
            name: step.name,
            seed: step.seed,
            holds_when: step.holds_when,
            exit_code_on_failure: step.gate.map(|_| step.phase.exit_code()),
            action: action(step.id, pkg, lint),
        })
        .collect()
}

fn action(step: StepId, pkg: &Package, lint: &LintReport) -> Vec<String> {
    let m = &pkg.migration;
    let db = pkg.target.database.as_deref().unwrap_or("DATABASE");
    match step {
        StepId::ExclusiveRun => vec![format!(
            "pg_try_advisory_lock on the key derived from package id `{}`; refuse at once if another run holds it",
            pkg.info.id
        )],
        StepId::TargetIdentity => {
            let t = &pkg.target;
            let mut keys: Vec<String> = Vec::new();
            if let Some(v) = &t.database { keys.push(format!("current_database() = {v}")); }
            if let Some(v) = &t.role { keys.push(format!("current_user = {v}")); }
            if let Some(v) = t.server_major { keys.push(format!("server_version_num / 10000 = {v}")); }
            if let Some(v) = &t.system_identifier { keys.push(format!("system_identifier = {v}")); }
            keys.push("current_setting('sluice.rehearsal') is not 'on'".into());
            keys
        }
        StepId::SqlIntegrity => {
            let mut lines = vec![format!("sha256({}) = {}", m.file.rel.display(), m.file.sha256)];
            if let Some(r) = &pkg.rollback {
                lines.push(format!("sha256({}) = {}", r.rel.display(), r.sha256));
            }
            lines
        }
        StepId::Scope => match &lint.scope {
            Some(s) => vec![format!(
                "{} derived operation(s) compared with {} declared, as multisets",
                lint.migration.operations.len(),
                s.declared.len()
            )],
            None => vec!["no [scope] section: the gate passes without a proof (not recommended)".into()],
        },
        StepId::Approvals => vec![format!(
            "{} distinct signer(s) from {}, SSH signatures (namespace sluice-approval) over this digest; operator may approve: {}",
            pkg.approvals.required,
            pkg.approvals.allowed_signers.as_ref().map_or("(no allowed_signers)".into(), |f| f.rel.display().to_string()),
            pkg.approvals.operator_may_approve
        )],
        StepId::Rehearsal => match (pkg.rehearsal.required, pkg.rehearsal.lock_budget_ms) {
            (false, _) => vec!["not required by this package".into()],
            (true, 0) => vec!["a passing record in rehearsals/ for this digest".into()],
            (true, budget) => vec![
                "a passing record in rehearsals/ for this digest".into(),
                format!("lock budget: no statement of the rehearsal held a lock blocking reads or writes of an existing table longer than {budget} ms"),
            ],
        },
        StepId::ClientVersion => vec![format!(
            "pg_dump and pg_restore of major version ≥ the server's{}",
            pkg.target.server_major.map(|m| format!(" ({m})")).unwrap_or_default()
        )],
        StepId::BackupRestorable => {
            if pkg.backup.required {
                let spec = &pkg.backup.dump;
                let (format, ext) = match spec.format {
                    crate::backup::DumpFormat::Custom => ("-Fc".to_string(), "dump"),
                    crate::backup::DumpFormat::Directory => {
                        let jobs = match spec.jobs {
                            0 => "one per CPU".to_string(),
                            n => n.to_string(),
                        };
                        (format!("-Fd -j {jobs}"), "dir")
                    }
                };
                vec![
                    format!("pg_dump {format} --compress={} -f EVIDENCE/{}/STAMP-ENV/backup/{db}-STAMP.{ext}", spec.compression, pkg.info.id),
                    "non-empty; pg_restore reads every byte of it back (-f /dev/null, not only --list); the sha256 of every file appended to SHA256SUMS".into(),
                ]
            } else {
                vec![format!("no backup: {}", pkg.backup.reason.as_deref().unwrap_or(""))]
            }
        }
        StepId::PreSnapshots => {
            let mut lines = vec![
                "schema/pre.json: tables, columns, indexes, constraints, triggers, functions, views, sequences, schemas from the catalogs".into(),
                "counts/pre.json: exact row count of every table".into(),
            ];
            for p in &pkg.probes {
                lines.push(format!(
                    "probes/{}.pre.csv: SELECT {}, {} FROM {} ORDER BY {}",
                    p.id, p.key.join(", "), p.columns.join(", "), p.table, p.key.join(", ")
                ));
            }
            lines
        }
        StepId::Preflight => vec![format!("read-only: {}", ids(&pkg.preflight))],
        StepId::BackupFresh => vec![format!("backup age ≤ {} minutes when the migration starts", pkg.backup.max_age_minutes)],
        StepId::MigrationAtomic => {
            let mut lines = vec![
                "BEGIN".to_string(),
                format!("SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {}", m.lock_timeout_ms, m.statement_timeout_ms),
                format!("the statements of {} in file order ({} operation(s); its own BEGIN/COMMIT set aside)",
                    m.file.rel.display(),
                    lint.migration.operations.len()),
            ];
            if let Some(expect) = &m.expect {
                lines.push(format!("last statement's row must be: {expect}"));
            }
            lines.push("COMMIT only when it matches; otherwise ROLLBACK".into());
            lines.push(format!("lock timeout: ROLLBACK and retry up to {} time(s) with backoff", m.lock_retries));
            lines
        }
        StepId::Verification => vec![format!("read-only: {}", ids(&pkg.verify))],
        StepId::SchemaDiff => vec![format!(
            "schema/post.json − schema/pre.json → schema/diff.json; removed or changed objects {}; ignored schemas: {}",
            if pkg.schema_diff.allow_removed { "allowed" } else { "fail" },
            if pkg.schema_diff.ignore_schemas.is_empty() { "none".into() } else { pkg.schema_diff.ignore_schemas.join(", ") }
        )],
        StepId::Probes => pkg
            .probes
            .iter()
            .map(|p| format!(
                "{}: {} ({}) min/max/distinct before and after, rows changed/added/removed{}",
                p.id, p.table, p.columns.join(", "),
                p.expect_changed.map(|n| format!("; expect {n} changed")).unwrap_or_default()
            ))
            .collect(),
        // the rollback's own steps are not in the apply plan
        StepId::RollbackRun
        | StepId::FailedCheck
        | StepId::RollbackAtomic
        | StepId::SchemaEqualsPre
        | StepId::RestoreScript => vec![],
    }
}

/// Evaluates identity and every preflight check on the target, each check in its own READ
/// ONLY transaction.
pub fn evaluate_live(pkg: &Package, target: &Target) -> Result<LiveEvaluation, TargetError> {
    let mut client = target.connect("review")?;
    let facts = target::identity(&mut client).map_err(|e| target.query_error(&e))?;
    let identity = target::compare_identity(&pkg.target, &facts, false);
    let mut preflight: Vec<CheckResult> = pkg
        .preflight
        .iter()
        .map(|check| evaluate_check(&mut client, check))
        .collect();
    if preflight.iter().any(|c| !c.holds) {
        // which acknowledged deviations the apply would use on this target, as of now
        let verdict = crate::approval::evaluate(
            &pkg.approvals,
            &pkg.info.id,
            &digest::package_digest(pkg),
            None,
            &pkg.dir.join("approvals"),
        );
        crate::approval::acknowledge::apply(&mut preflight, &verdict);
    }
    Ok(LiveEvaluation {
        target: target.to_string(),
        facts,
        identity,
        preflight,
        connection: target.connection_record(),
    })
}
