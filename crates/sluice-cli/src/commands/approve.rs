//! `sluice approve`: sign an approval with a key file or an agent's key, print the payload to
//! sign by hand, or import a payload signed with `ssh-keygen -Y sign`; then check it as the
//! approvals gate will, and write it.

use super::print_json;
use crate::args::{DecisionArg, RollbackDecisionArg};
use crate::failure::Failure;
use crate::passphrase::Asker;
use sluice::approval::{Acknowledgement, AgentKey, Approval, ApprovalError, Decision, SigningKey};
use sluice::exit::ExitCode;
use sluice::package::Package;
use std::path::{Path, PathBuf};

pub struct ApproveArgs {
    pub package: PathBuf,
    pub signer: Option<String>,
    pub key: Option<PathBuf>,
    pub agent: bool,
    pub decision: Option<DecisionArg>,
    pub note: String,
    pub acknowledge: Vec<String>,
    pub print_payload: bool,
    pub payload: Option<PathBuf>,
    pub signature: Option<PathBuf>,
}

/// Every approval error is the user's to fix (a key, a passphrase, an agent, a file): exit 2.
pub(super) fn usage(err: ApprovalError) -> Failure {
    Failure::new(ExitCode::Usage, err.to_string())
}

pub fn approve(args: &ApproveArgs, json: bool) -> Result<ExitCode, Failure> {
    let pkg = Package::load(&args.package)?;
    let digest = sluice::digest::package_digest(&pkg);
    let approval = match (&args.payload, &args.signature) {
        (Some(payload), Some(signature)) => imported(&pkg, &digest, payload, signature)?,
        _ => {
            let (signer, decision) = signer_and_decision(args)?;
            let acknowledgements = args
                .acknowledge
                .iter()
                .map(|given| Acknowledgement::parse(given, &pkg))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| usage(e.into()))?;
            let unsigned =
                sluice::approval::unsigned(&pkg.info.id, &digest, signer, decision, &args.note)
                    .and_then(|a| a.acknowledging(acknowledgements))
                    .map_err(usage)?;
            if args.print_payload {
                print!("{}", unsigned.signed_message());
                eprintln!(
                    "the payload above is what {signer} signs: save it (e.g. > approval.txt), sign it with \
                     `ssh-keygen -Y sign -n {} -f KEY approval.txt`, and import it with \
                     `sluice approve {} --payload approval.txt --signature approval.txt.sig`",
                    sluice::approval::NAMESPACE,
                    args.package.display()
                );
                return Ok(ExitCode::Done);
            }
            let mut key = signing_key(
                (args.agent, args.key.as_deref()),
                &pkg,
                signer,
                sluice::approval::NAMESPACE,
            )?;
            if key.is_security_key() {
                eprintln!("touch your security key to sign with {}", key.describe());
            }
            unsigned.signed_by(&mut key).map_err(usage)?
        }
    };
    // a signer or key the approvals gate would refuse is a wrong argument: exit 2, no file
    let fingerprint = approval.check_allowed(&pkg.approvals).map_err(usage)?;
    let path = approval
        .write_into(&pkg.dir.join("approvals"))
        .map_err(|e| Failure::new(ExitCode::Internal, e.to_string()))?;
    if json {
        print_json(&serde_json::json!({
            "ok": true,
            "approval": path,
            "digest": digest,
            "signer": approval.signer,
            "decision": approval.decision.to_string(),
            "key_fingerprint": fingerprint,
            "acknowledge": approval.acknowledge,
        }));
    }
    for ack in &approval.acknowledge {
        eprintln!(
            "{} acknowledges {} = {}: the preflight check passes as acknowledged only if it returns exactly that, and only with [approvals] required signers acknowledging it",
            approval.signer, ack.check, ack.observed
        );
    }
    eprintln!(
        "{} signed `{}` for {} at digest {digest} with key {fingerprint}: {}",
        approval.signer,
        approval.decision,
        pkg.info.id,
        path.display()
    );
    Ok(ExitCode::Done)
}

fn signer_and_decision(args: &ApproveArgs) -> Result<(&str, Decision), Failure> {
    let missing = |what: &str| {
        Failure::new(
            ExitCode::Usage,
            format!("approve needs {what} (or --payload and --signature)"),
        )
    };
    let signer = args
        .signer
        .as_deref()
        .ok_or_else(|| missing("--signer NAME"))?;
    let decision = match args.decision.ok_or_else(|| missing("--decision"))? {
        DecisionArg::Pass => Decision::Pass,
        DecisionArg::PassWithNotes => Decision::PassWithNotes,
        DecisionArg::Reject => Decision::Reject,
    };
    Ok((signer, decision))
}

/// The key file of --key (its passphrase asked when it has one), or the agent's key (the one
/// allowed_signers lists for the signer in `namespace`, unless --key names it).
pub(super) fn signing_key(
    (agent, key): (bool, Option<&Path>),
    pkg: &Package,
    signer: &str,
    namespace: &str,
) -> Result<SigningKey, Failure> {
    if agent {
        let socket = std::env::var_os("SSH_AUTH_SOCK")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| usage(ApprovalError::NoAgent))?;
        let choice = match key {
            Some(file) => AgentKey::File(file),
            None => AgentKey::OfSigner {
                signer,
                policy: &pkg.approvals,
                namespace,
            },
        };
        return SigningKey::from_agent(Path::new(&socket), choice).map_err(usage);
    }
    let Some(file) = key else {
        return Err(Failure::new(
            ExitCode::Usage,
            "needs --key KEYFILE or --agent",
        ));
    };
    SigningKey::from_file(file, &mut Asker::from_env()).map_err(usage)
}

/// The approval a payload signed by hand describes, with its signature; refused unless it is
/// for this package at its current digest.
fn imported(
    pkg: &Package,
    digest: &str,
    payload: &Path,
    signature: &Path,
) -> Result<Approval, Failure> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| {
            Failure::new(
                ExitCode::Usage,
                format!("cannot read {}: {e}", path.display()),
            )
        })
    };
    let (payload_bytes, signature_bytes) = (read(payload)?, read(signature)?);
    let approval = Approval::from_payload(payload, &payload_bytes)
        .and_then(|a| a.with_signature_file(signature, &signature_bytes))
        .map_err(usage)?;
    if approval.package != pkg.info.id || approval.digest != digest {
        return Err(Failure::new(
            ExitCode::Usage,
            format!(
                "{} approves {} at digest {}, but {} is {} at digest {digest}: print a new payload \
                 with --print-payload and sign that",
                payload.display(),
                approval.package,
                approval.digest,
                pkg.dir.display(),
                pkg.info.id
            ),
        ));
    }
    for ack in &approval.acknowledge {
        Acknowledgement::parse(&ack.to_arg(), pkg).map_err(|e| usage(e.into()))?;
    }
    Ok(approval)
}

pub struct ApproveRollbackArgs {
    pub package: PathBuf,
    pub run: PathBuf,
    pub failed_check: String,
    pub signer: String,
    pub key: Option<PathBuf>,
    pub agent: bool,
    pub decision: RollbackDecisionArg,
    pub note: String,
    pub into: Option<PathBuf>,
}

/// `sluice approve-rollback`: sign a rollback approval of one apply run, check it as the
/// rollback's approvals gate will, and write it (0600) into the run's `rollback-approvals/` or
/// `--into`.
pub fn approve_rollback(args: &ApproveRollbackArgs, json: bool) -> Result<ExitCode, Failure> {
    use sluice::approval::rollback::{self, RollbackDecision};
    let pkg = Package::load(&args.package)?;
    let digest = sluice::digest::package_digest(&pkg);
    let wrong = |e: rollback::RollbackApprovalError| Failure::new(ExitCode::Usage, e.to_string());
    let run = rollback::read_run(&args.run).map_err(wrong)?;
    rollback::check_rollbackable(&pkg, &digest, &run, &args.run, &args.failed_check)
        .map_err(wrong)?;
    let decision = match args.decision {
        RollbackDecisionArg::Pass => RollbackDecision::Pass,
        RollbackDecisionArg::Reject => RollbackDecision::Reject,
    };
    let unsigned = rollback::unsigned(
        &pkg,
        &digest,
        &run,
        &args.failed_check,
        &args.signer,
        decision,
        &args.note,
    )
    .map_err(usage)?;
    let mut key = signing_key(
        (args.agent, args.key.as_deref()),
        &pkg,
        &args.signer,
        rollback::NAMESPACE,
    )?;
    if key.is_security_key() {
        eprintln!("touch your security key to sign with {}", key.describe());
    }
    let approval = unsigned.signed_by(&mut key).map_err(usage)?;
    // a signer or key the rollback's approvals gate would refuse is a wrong argument: exit 2
    let fingerprint = approval.check_allowed(&pkg.approvals).map_err(usage)?;
    let dir = args
        .into
        .clone()
        .unwrap_or_else(|| args.run.join(rollback::DIR));
    let path = approval
        .write_into(&dir)
        .map_err(|e| Failure::new(ExitCode::Internal, e.to_string()))?;
    if json {
        print_json(&serde_json::json!({
            "ok": true,
            "rollback_approval": path,
            "digest": digest,
            "run": run.id,
            "run_sha256": run.run_sha256,
            "environment": run.environment,
            "failed_check": args.failed_check,
            "signer": approval.signer,
            "decision": approval.decision.to_string(),
            "key_fingerprint": fingerprint,
        }));
    }
    eprintln!(
        "{} signed `{}` for the rollback of run {} ({}, failed check {}) of {} at digest {digest} with key {fingerprint}: {}",
        approval.signer,
        approval.decision,
        run.id,
        run.environment,
        args.failed_check,
        pkg.info.id,
        path.display()
    );
    Ok(ExitCode::Done)
}
