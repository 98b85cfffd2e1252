//! Signed approvals (SPEC §2 `[approvals]`, §3 `approve`, §4 gate `approvals`). This module owns
//! the approval record a reviewer signs with an SSH key, its file in `PKG/approvals/`, reading
//! those files back, and the `approvals` gate's verdict: which approvals count, which are refused
//! and why, and whether the gate holds. [`allowed_signers`] owns the OpenSSH file that says whose
//! keys may sign.
//!
//! One file per approval, named `<signer>-<decision>-<first 12 of digest>.approval`:
//!
//! ```toml
//! # sluice approval: SSH-signed over every field below. Editing any field breaks the signature.
//! format = "sluice-approval-v1"
//! package = "dot-iu-cutter-v0.2-phase-alpha"
//! digest = "3f1c…64 hex…"
//! signer = "alice@example.com"
//! decision = "pass-with-notes"
//! note = "run it after 22:00"
//! signed_at = "2025-01-31T12:00:00Z"
//! signature = """
//! -----BEGIN SSH SIGNATURE-----
//! …
//! -----END SSH SIGNATURE-----
//! """
//!
//! [[acknowledge]]        # only in an approval that acknowledges a deviation
//! check = "P-8"
//! observed = "87"
//! ```
//!
//! The signature is an OpenSSH SSHSIG (namespace `sluice-approval`, SHA-512) over the canonical
//! message of [`Approval::signed_message`], so `ssh-keygen -Y verify -n sluice-approval` can check
//! it too. Every field except `signature` is in the message.
//!
//! [`keys`] signs with the keys reviewers hold: key files (passphrase-protected or not) and keys
//! held by `ssh-agent`. `payload` reads back a message signed by hand with
//! `ssh-keygen -Y sign -n sluice-approval` ([`Approval::from_payload`]) and attaches its `.sig`.

pub(crate) mod acknowledge;
pub mod allowed_signers;
pub(crate) mod keys;
mod payload;
pub mod rollback;
#[cfg(test)]
mod tests;

pub use acknowledge::{AcknowledgeError, Acknowledged, Acknowledgement};
pub use allowed_signers::{AllowedSigner, AllowedSigners, AllowedSignersError};
pub use keys::{AgentKey, NoPassphrase, Passphrase, SigningKey};

use crate::package::ApprovalPolicy;
use serde::{Deserialize, Serialize};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};
use std::collections::HashSet;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use time::{Date, Month, OffsetDateTime, Time, UtcOffset};

/// The record's version tag, the first line of the signed message.
pub const FORMAT: &str = "sluice-approval-v1";
/// The SSHSIG namespace approvals are signed in.
pub const NAMESPACE: &str = "sluice-approval";
/// The extension of approval files in `PKG/approvals/`.
pub const FILE_EXTENSION: &str = "approval";
/// How far in the future a `signed_at` may lie (clock skew between machines).
const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);
/// The comment written at the top of every approval file.
const FILE_HEADER: &str = "# sluice approval: SSH-signed over every field below. Editing any field breaks the signature.\n";

/// A reviewer's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    Pass,
    PassWithNotes,
    Reject,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Pass => "pass",
            Decision::PassWithNotes => "pass-with-notes",
            Decision::Reject => "reject",
        }
    }

    /// Whether the decision counts towards the required approvals.
    pub fn approves(self) -> bool {
        self != Decision::Reject
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Decision {
    type Err = ApprovalError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [Decision::Pass, Decision::PassWithNotes, Decision::Reject]
            .into_iter()
            .find(|d| d.as_str() == text)
            .ok_or_else(|| ApprovalError::InvalidField {
                field: "decision",
                value: text.to_string(),
                expected: "pass, pass-with-notes or reject",
            })
    }
}

/// One signed approval, as its file holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// The package id.
    pub package: String,
    /// The package digest the approval is bound to, 64 lowercase hex digits.
    pub digest: String,
    /// The principal who signs, as allowed_signers names them, e.g. `alice@example.com`.
    pub signer: String,
    pub decision: Decision,
    pub note: String,
    /// UTC, RFC 3339, whole seconds: `2025-01-31T12:00:00Z`.
    pub signed_at: String,
    /// The preflight results this approval acknowledges (issue #20: a reviewed deviation);
    /// usually none.
    pub acknowledge: Vec<Acknowledgement>,
    /// The armored SSHSIG, `-----BEGIN SSH SIGNATURE-----`….
    pub signature: String,
}

/// Why an approval could not be signed, written or a key generated.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("invalid {field} `{value}`: expected {expected}")]
    InvalidField {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("a pass-with-notes approval needs a note saying what the notes are")]
    NoteRequired,
    #[error("cannot read the key file {}: {source}", path.display())]
    KeyUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not an OpenSSH private key ({reason}): expected a file beginning with `-----BEGIN OPENSSH PRIVATE KEY-----`, as `ssh-keygen -t ed25519` writes", path.display())]
    NotAPrivateKey { path: PathBuf, reason: String },
    #[error("{} is a public key: give the private key file (the one without .pub)", path.display())]
    PublicKeyGiven { path: PathBuf },
    #[error("the key file {} is encrypted with a passphrase and it cannot be asked: {reason}", path.display())]
    NoPassphrase { path: PathBuf, reason: String },
    #[error("wrong passphrase for the key file {}: it does not decrypt the key; nothing was signed", path.display())]
    WrongPassphrase { path: PathBuf },
    #[error("cannot decrypt the key file {}: {reason}", path.display())]
    Decrypt { path: PathBuf, reason: String },
    #[error("{} is a FIDO security key ({algorithm}): its private half stays on the device, so sluice cannot sign with the file; `ssh-add` it and use --agent, or sign by hand with `ssh-keygen -Y sign` (README: approving by hand)", path.display())]
    SecurityKeyFile { path: PathBuf, algorithm: String },
    #[error("cannot sign with the key {}: {reason}", path.display())]
    Signing { path: PathBuf, reason: String },
    #[error("cannot read the public key {}: {reason}", path.display())]
    PublicKeyUnreadable { path: PathBuf, reason: String },
    #[error("--agent needs an ssh-agent: SSH_AUTH_SOCK is not set (start one with `eval \"$(ssh-agent)\"` and `ssh-add` your key)")]
    NoAgent,
    #[error("cannot reach ssh-agent at {} (SSH_AUTH_SOCK): {reason}", socket.display())]
    AgentConnect { socket: PathBuf, reason: String },
    #[error("ssh-agent at {}: {reason}", socket.display())]
    Agent { socket: PathBuf, reason: String },
    #[error("ssh-agent at {} does not hold {wanted}; it holds {held}: `ssh-add` the key first", socket.display())]
    AgentLacksKey {
        socket: PathBuf,
        wanted: String,
        held: String,
    },
    #[error("ssh-agent holds several keys allowed_signers lists for {signer}: {keys}; choose one with --key PUBLIC_KEY_FILE")]
    AgentAmbiguous { signer: String, keys: String },
    #[error("ssh-agent at {} refused to sign with {key} (a security key not touched in time, a confirmation declined, or the key was removed); nothing was signed", socket.display())]
    AgentRefused { socket: PathBuf, key: String },
    #[error("{} is not a sluice approval payload: {reason}", path.display())]
    Payload { path: PathBuf, reason: String },
    #[error("{} is not an SSH signature for an approval: {reason}", path.display())]
    SignatureFile { path: PathBuf, reason: String },
    #[error("cannot encode the approval as TOML: {reason}")]
    Encoding { reason: String },
    #[error("cannot create the approvals folder {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} already exists: an approval is never overwritten (remove the file first to replace it)", path.display())]
    AlreadyExists { path: PathBuf },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} already exists: a key file is never overwritten", path.display())]
    KeyExists { path: PathBuf },
    #[error("cannot generate a key: {reason}")]
    KeyGeneration { reason: String },
    #[error("{signer} cannot approve this package: {reason}; nothing was written")]
    NotAllowed { signer: String, reason: String },
    #[error(transparent)]
    Acknowledge(#[from] AcknowledgeError),
}

/// Signs an approval of `package_id` at `digest` with the unencrypted OpenSSH private key in
/// `key_path`, dated now. An encrypted key is an error: [`sign_with`] a [`SigningKey`] made with
/// a [`Passphrase`] to ask for it.
pub fn sign(
    package_id: &str,
    digest: &str,
    signer: &str,
    decision: Decision,
    note: &str,
    key_path: &Path,
) -> Result<Approval, ApprovalError> {
    let mut key = SigningKey::from_file(key_path, &mut NoPassphrase)?;
    sign_with(package_id, digest, signer, decision, note, &mut key)
}

/// Signs an approval of `package_id` at `digest` with `key` (a key file or an agent's key),
/// dated now.
pub(crate) fn sign_with(
    package_id: &str,
    digest: &str,
    signer: &str,
    decision: Decision,
    note: &str,
    key: &mut SigningKey,
) -> Result<Approval, ApprovalError> {
    let approval = unsigned(package_id, digest, signer, decision, note)?;
    approval.signed_by(key)
}

/// The approval with every field but the signature, dated now, its fields checked: what
/// [`Approval::signed_by`] signs, and the payload [`Approval::signed_message`] to sign by hand.
pub fn unsigned(
    package_id: &str,
    digest: &str,
    signer: &str,
    decision: Decision,
    note: &str,
) -> Result<Approval, ApprovalError> {
    unsigned_at(
        package_id,
        digest,
        signer,
        decision,
        note,
        OffsetDateTime::now_utc(),
    )
}

/// [`unsigned`], dated `at`.
fn unsigned_at(
    package_id: &str,
    digest: &str,
    signer: &str,
    decision: Decision,
    note: &str,
    at: OffsetDateTime,
) -> Result<Approval, ApprovalError> {
    let approval = Approval {
        package: package_id.to_string(),
        digest: digest.to_string(),
        signer: signer.to_string(),
        decision,
        note: note.to_string(),
        signed_at: format_utc(at),
        acknowledge: Vec::new(),
        signature: String::new(),
    };
    approval.check_fields()?;
    Ok(approval)
}

impl Approval {
    /// This unsigned approval acknowledging `acknowledgements` (fields checked).
    pub fn acknowledging(
        mut self,
        acknowledgements: Vec<Acknowledgement>,
    ) -> Result<Approval, ApprovalError> {
        self.acknowledge = acknowledgements;
        self.check_fields()?;
        Ok(self)
    }

    /// This approval (fields checked) with its signature made by `key` over
    /// [`Approval::signed_message`].
    pub fn signed_by(mut self, key: &mut SigningKey) -> Result<Approval, ApprovalError> {
        self.check_fields()?;
        let signature = key
            .sign(NAMESPACE, self.signed_message().as_bytes())?
            .to_pem(LineEnding::LF)
            .map_err(|err| ApprovalError::Encoding {
                reason: format!("cannot armor the signature: {err}"),
            })?;
        self.signature = signature;
        Ok(self)
    }

    /// The exact bytes that are signed: every field but the signature, one `key=value` per line,
    /// values with `\` and newlines escaped so that no value can forge another line; then one
    /// `acknowledge=CHECK=OBSERVED` line per acknowledgement (none for a plain approval, whose
    /// message is what it always was).
    pub fn signed_message(&self) -> String {
        let mut message = format!(
            "{FORMAT}\npackage={}\ndigest={}\nsigner={}\ndecision={}\nsigned_at={}\nnote={}\n",
            escape(&self.package),
            escape(&self.digest),
            escape(&self.signer),
            self.decision,
            escape(&self.signed_at),
            escape(&self.note),
        );
        for ack in &self.acknowledge {
            message.push_str(&format!("acknowledge={}\n", escape(&ack.to_arg())));
        }
        message
    }

    /// `<signer>-<decision>-<first 12 of digest>.approval` (`…-ack-<checks>.approval` when it
    /// acknowledges, so that it sits beside the signer's plain approval), with anything but
    /// letters, digits and `.@+_-` replaced by `_`.
    pub fn file_name(&self) -> String {
        let short_digest: String = self.digest.chars().take(12).collect();
        let acknowledged = match self.acknowledge.as_slice() {
            [] => String::new(),
            acks => {
                let checks: Vec<&str> = acks.iter().map(|a| a.check.as_str()).collect();
                format!("-ack-{}", file_name_safe(&checks.join("_")))
            }
        };
        format!(
            "{}-{}-{}{acknowledged}.{FILE_EXTENSION}",
            file_name_safe(&self.signer),
            self.decision,
            file_name_safe(&short_digest)
        )
    }

    /// Whether the package's allowed_signers lets this approval's signer sign with the key that
    /// signed it: the approvals gate's own signature check, run before the file is written so
    /// that `approve` refuses what the gate would refuse later. Returns the key's fingerprint.
    pub fn check_allowed(&self, policy: &ApprovalPolicy) -> Result<String, ApprovalError> {
        let not_allowed = |reason: String| ApprovalError::NotAllowed {
            signer: self.signer.clone(),
            reason,
        };
        let signers = read_allowed_signers(policy).map_err(not_allowed)?;
        check_signature(self, &signers, OffsetDateTime::now_utc())
            .map_err(|refusal| not_allowed(refusal.reason))
    }

    /// The file's text.
    pub(crate) fn to_toml(&self) -> Result<String, ApprovalError> {
        let body =
            toml::to_string(&ApprovalFile::from(self)).map_err(|err| ApprovalError::Encoding {
                reason: err.to_string(),
            })?;
        Ok(format!("{FILE_HEADER}{body}"))
    }

    /// Reads a file's text; the error says why it is not a sluice approval.
    pub fn from_toml(text: &str) -> Result<Approval, String> {
        let file: ApprovalFile = toml::from_str(text)
            .map_err(|err| format!("not a sluice approval: {}", describe_toml_error(text, &err)))?;
        if file.format != FORMAT {
            return Err(format!(
                "not a sluice approval: format is \"{}\", expected \"{FORMAT}\"",
                file.format
            ));
        }
        if parse_utc(&file.signed_at).is_none() {
            return Err(format!(
                "not a sluice approval: signed_at is `{}`, expected a UTC time like 2025-01-31T12:00:00Z",
                file.signed_at
            ));
        }
        let approval: Approval = file.into();
        // what `sign` checks, a file written by hand must hold too (no `=` in a check id, a
        // note for an acknowledgement, …): the signed message stays unambiguous
        approval
            .check_fields()
            .map_err(|e| format!("not a sluice approval: {e}"))?;
        Ok(approval)
    }

    /// Writes the approval into `approvals_dir` (created if missing) as a new file with mode
    /// 0600, and returns its path. An existing file is never overwritten.
    pub fn write_into(&self, approvals_dir: &Path) -> Result<PathBuf, ApprovalError> {
        self.check_fields()?;
        let text = self.to_toml()?;
        std::fs::create_dir_all(approvals_dir).map_err(|source| ApprovalError::CreateDir {
            path: approvals_dir.to_path_buf(),
            source,
        })?;
        persist_new(&approvals_dir.join(self.file_name()), &text, ".approval-")
    }

    /// The checks `sign` makes on its arguments, so that the file name and the signed message
    /// are unambiguous.
    fn check_fields(&self) -> Result<(), ApprovalError> {
        let invalid = |field, value: &str, expected| {
            Err(ApprovalError::InvalidField {
                field,
                value: value.to_string(),
                expected,
            })
        };
        let id_chars = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
        if self.package.is_empty() || !self.package.chars().all(id_chars) {
            return invalid("package id", &self.package, "[a-z0-9._-]+");
        }
        let lowercase_hex = |c: char| matches!(c, '0'..='9' | 'a'..='f');
        if self.digest.len() != 64 || !self.digest.chars().all(lowercase_hex) {
            return invalid(
                "digest",
                &self.digest,
                "64 lowercase hex digits (`sluice digest PKG`)",
            );
        }
        let principal_char =
            |c: char| !c.is_whitespace() && !c.is_control() && !",\"*?!#".contains(c);
        if self.signer.is_empty() || !self.signer.chars().all(principal_char) {
            return invalid(
                "signer",
                &self.signer,
                "a principal as allowed_signers names it, e.g. alice@example.com (no spaces, commas, quotes, wildcards, ! or #)",
            );
        }
        if self.decision == Decision::PassWithNotes && self.note.trim().is_empty() {
            return Err(ApprovalError::NoteRequired);
        }
        acknowledge::check_fields(&self.acknowledge, &self.note, self.decision.approves())?;
        Ok(())
    }
}

/// The file's fields, in the file's order.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalFile {
    format: String,
    package: String,
    digest: String,
    signer: String,
    decision: Decision,
    #[serde(default)]
    note: String,
    signed_at: String,
    signature: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    acknowledge: Vec<Acknowledgement>,
}

impl From<&Approval> for ApprovalFile {
    fn from(a: &Approval) -> Self {
        ApprovalFile {
            format: FORMAT.to_string(),
            package: a.package.clone(),
            digest: a.digest.clone(),
            signer: a.signer.clone(),
            decision: a.decision,
            note: a.note.clone(),
            signed_at: a.signed_at.clone(),
            signature: a.signature.clone(),
            acknowledge: a.acknowledge.clone(),
        }
    }
}

impl From<ApprovalFile> for Approval {
    fn from(f: ApprovalFile) -> Self {
        Approval {
            package: f.package,
            digest: f.digest,
            signer: f.signer,
            decision: f.decision,
            note: f.note,
            signed_at: f.signed_at,
            acknowledge: f.acknowledge,
            signature: f.signature,
        }
    }
}

/// Writes `text` into the new file `path` (mode 0600): through a temporary sibling (whose name
/// starts with `prefix`), synced, then moved into place without ever overwriting an existing
/// file — two reviewers signing at once cannot lose either approval.
pub(crate) fn persist_new(path: &Path, text: &str, prefix: &str) -> Result<PathBuf, ApprovalError> {
    if path.exists() {
        return Err(ApprovalError::AlreadyExists {
            path: path.to_path_buf(),
        });
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let write_error = |source| ApprovalError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut temp = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(write_error)?;
    temp.write_all(text.as_bytes()).map_err(write_error)?;
    set_mode(temp.as_file(), 0o600).map_err(write_error)?;
    temp.as_file().sync_all().map_err(write_error)?;
    temp.persist_noclobber(path)
        .map_err(|err| match err.error.kind() {
            std::io::ErrorKind::AlreadyExists => ApprovalError::AlreadyExists {
                path: path.to_path_buf(),
            },
            _ => write_error(err.error),
        })?;
    Ok(path.to_path_buf())
}

/// Every `*.approval` file of `approvals_dir`, sorted by path, each read or with the reason it
/// cannot be. A missing folder holds no approvals; a folder that cannot be read is one entry
/// with the reason.
pub(crate) fn load_dir(approvals_dir: &Path) -> Vec<(PathBuf, Result<Approval, String>)> {
    let entries = match std::fs::read_dir(approvals_dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(err) => {
            return vec![(
                approvals_dir.to_path_buf(),
                Err(format!("cannot read the approvals folder: {err}")),
            )]
        }
    };
    let mut loaded: Vec<(PathBuf, Result<Approval, String>)> = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) if is_approval_file(&entry.path()) => {
                let path = entry.path();
                let approval = read_approval(&path);
                loaded.push((path, approval));
            }
            Ok(_) => {}
            Err(err) => loaded.push((
                approvals_dir.to_path_buf(),
                Err(format!("cannot list the approvals folder: {err}")),
            )),
        }
    }
    loaded.sort_by(|a, b| a.0.cmp(&b.0));
    loaded
}

fn is_approval_file(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == FILE_EXTENSION)
}

fn read_approval(path: &Path) -> Result<Approval, String> {
    let bytes = std::fs::read(path).map_err(|err| format!("cannot read the file: {err}"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| "not a sluice approval: the file is not UTF-8 text".to_string())?;
    Approval::from_toml(&text)
}

/// What the `approvals` gate found.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalVerdict {
    /// `[approvals].required`.
    pub required: u32,
    /// Approvals whose signature, binding and signer were all checked.
    pub accepted: Vec<AcceptedApproval>,
    /// Approval files that do not count, each with the reason.
    pub refused: Vec<RefusedApproval>,
    /// Signers of accepted `reject` decisions.
    pub rejected_by: Vec<String>,
    pub holds: bool,
    /// One sentence saying why the gate holds or not.
    pub summary: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AcceptedApproval {
    pub file: PathBuf,
    pub signer: String,
    pub decision: Decision,
    pub note: String,
    pub signed_at: String,
    /// The signing key's `SHA256:…` fingerprint.
    pub key_fingerprint: String,
    /// The preflight results it acknowledges.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub acknowledge: Vec<Acknowledgement>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RefusedApproval {
    pub file: PathBuf,
    /// The signer the file names, when it could be read.
    pub signer: Option<String>,
    pub kind: RefusalKind,
    pub reason: String,
}

/// Why an approval file does not count, by kind; [`Refusal`] says it in words too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    /// The file cannot be read, or is not an approval of this format.
    Unreadable,
    /// The allowed_signers file cannot be used, so no signature could be checked.
    NotChecked,
    /// `signed_at` is not a UTC time, or is in the future.
    BadSignedAt,
    /// Not an SSH signature, one for another namespace, or one that does not verify: the file
    /// was edited or forged.
    BadSignature,
    /// allowed_signers lists no key for the signer in the namespace at that time, or not this
    /// key.
    SignerNotAllowed,
    /// Signed for another package, digest, run, environment, failed check or run record.
    OtherBinding,
    /// The operator approving their own run.
    SeparationOfDuties,
}

/// Why an approval file does not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub reason: String,
}

impl Refusal {
    pub(crate) fn new(kind: RefusalKind, reason: impl Into<String>) -> Refusal {
        Refusal {
            kind,
            reason: reason.into(),
        }
    }
}

/// What an approval must match to count.
struct Expected<'a> {
    package_id: &'a str,
    digest: &'a str,
    operator: Option<&'a str>,
    operator_may_approve: bool,
    now: OffsetDateTime,
}

/// The `approvals` gate: reads every approval in `approvals_dir` and decides whether enough
/// distinct allowed signers approved this package at this digest, with no reject, and (unless
/// `operator_may_approve`) without the operator among the approvers.
///
/// Distinct means distinct principals (compared without case) signing with distinct keys: two
/// approvals by one signer, or by two principals sharing a key, count once. A valid `reject`
/// blocks even when `required = 0` (SPEC §4: "none reject").
pub fn evaluate(
    policy: &ApprovalPolicy,
    package_id: &str,
    digest: &str,
    operator: Option<&str>,
    approvals_dir: &Path,
) -> ApprovalVerdict {
    let expected = Expected {
        package_id,
        digest,
        operator,
        operator_may_approve: policy.operator_may_approve,
        now: OffsetDateTime::now_utc(),
    };
    let signers = read_allowed_signers(policy);
    let mut verdict = ApprovalVerdict {
        required: policy.required,
        accepted: Vec::new(),
        refused: Vec::new(),
        rejected_by: Vec::new(),
        holds: false,
        summary: String::new(),
    };
    for (file, loaded) in load_dir(approvals_dir) {
        verdict.judge(file, loaded, &signers, &expected);
    }
    verdict.conclude(signers.as_ref().err().map(String::as_str));
    verdict
}

/// The policy's allowed_signers file, parsed, or why it cannot be used.
fn read_allowed_signers(policy: &ApprovalPolicy) -> Result<AllowedSigners, String> {
    let Some(file) = &policy.allowed_signers else {
        return Err(
            "the package names no allowed_signers file ([approvals] allowed_signers)".into(),
        );
    };
    let name = file.rel.display();
    let text = std::str::from_utf8(&file.bytes)
        .map_err(|_| format!("allowed_signers file {name} is not UTF-8 text"))?;
    allowed_signers::parse(text).map_err(|err| format!("allowed_signers file {name}, {err}"))
}

impl ApprovalVerdict {
    fn judge(
        &mut self,
        file: PathBuf,
        loaded: Result<Approval, String>,
        signers: &Result<AllowedSigners, String>,
        expected: &Expected,
    ) {
        let approval = match loaded {
            Ok(approval) => approval,
            Err(reason) => {
                return self.refuse(file, None, Refusal::new(RefusalKind::Unreadable, reason))
            }
        };
        let checked = match signers {
            Ok(signers) => check(&approval, signers, expected),
            Err(problem) => Err(Refusal::new(
                RefusalKind::NotChecked,
                format!("not checked: {problem}"),
            )),
        };
        match checked {
            Ok(key_fingerprint) => self.accepted.push(AcceptedApproval {
                file,
                signer: approval.signer,
                decision: approval.decision,
                note: approval.note,
                signed_at: approval.signed_at,
                key_fingerprint,
                acknowledge: approval.acknowledge,
            }),
            Err(reason) => self.refuse(file, Some(approval.signer), reason),
        }
    }

    fn refuse(&mut self, file: PathBuf, signer: Option<String>, refusal: Refusal) {
        self.refused.push(RefusedApproval {
            file,
            signer,
            kind: refusal.kind,
            reason: refusal.reason,
        });
    }

    /// Fills `rejected_by`, `holds` and `summary` from the judged approvals.
    fn conclude(&mut self, signers_problem: Option<&str>) {
        for approval in &self.accepted {
            if approval.decision == Decision::Reject && !self.rejected_by.contains(&approval.signer)
            {
                self.rejected_by.push(approval.signer.clone());
            }
        }
        let approvers = self.counted_approvers();
        let enough = match (self.required, signers_problem) {
            (0, _) => true,
            (_, Some(_)) => false,
            (required, None) => approvers.len() >= required as usize,
        };
        let holds = self.rejected_by.is_empty() && enough;
        let summary = self.summarize(&approvers, signers_problem);
        self.holds = holds;
        self.summary = summary;
    }

    /// The accepted pass and pass-with-notes approvals that count: the first of each signer
    /// (without case) whose key has not counted already.
    fn counted_approvers(&self) -> Vec<&AcceptedApproval> {
        distinct_signers(
            self.accepted.iter().filter(|a| a.decision.approves()),
            |a| (&a.signer, &a.key_fingerprint),
        )
    }

    /// Rejections first, then how many approvals count, then what was refused.
    fn summarize(&self, approvers: &[&AcceptedApproval], signers_problem: Option<&str>) -> String {
        let mut parts: Vec<String> = self
            .accepted
            .iter()
            .filter(|a| a.decision == Decision::Reject)
            .map(|a| match a.note.trim() {
                "" => format!("rejected by {}", a.signer),
                note => format!("rejected by {} (\"{note}\")", a.signer),
            })
            .collect();
        parts.push(self.summarize_count(approvers, signers_problem));
        if !self.refused.is_empty() {
            parts.push(self.summarize_refused(signers_problem.is_some()));
        }
        parts.join("; ")
    }

    /// `1 of 2 required approvals: alice@example.com (pass)`.
    fn summarize_count(
        &self,
        approvers: &[&AcceptedApproval],
        signers_problem: Option<&str>,
    ) -> String {
        let required = self.required as usize;
        if required == 0 {
            return "approvals are not required ([approvals] required = 0)".to_string();
        }
        if let Some(problem) = signers_problem {
            let needed = count(required, "approval is", "approvals are");
            return format!("{needed} required but none can be checked: {problem}");
        }
        let names: Vec<String> = approvers
            .iter()
            .map(|a| format!("{} ({})", a.signer, a.decision))
            .collect();
        let list = if names.is_empty() {
            String::new()
        } else {
            format!(": {}", names.join(", "))
        };
        let of = count(required, "required approval", "required approvals");
        format!("{} of {of}{list}", approvers.len())
    }

    fn summarize_refused(&self, none_checked: bool) -> String {
        if none_checked {
            return format!(
                "{} not checked",
                count(self.refused.len(), "approval file", "approval files")
            );
        }
        let items: Vec<String> = self
            .refused
            .iter()
            .map(|r| {
                let who = r.signer.clone().unwrap_or_else(|| {
                    r.file.file_name().map_or_else(
                        || r.file.display().to_string(),
                        |n| n.to_string_lossy().into_owned(),
                    )
                });
                format!("{who} ({})", r.reason)
            })
            .collect();
        format!("refused: {}", items.join(", "))
    }
}

/// The first approval of each signer (principals compared without case) whose key has not
/// counted already: `signer_and_key` gives an approval's principal and key fingerprint. Two
/// approvals by one signer, or by two principals sharing a key, count once.
pub(crate) fn distinct_signers<'a, T>(
    approvals: impl Iterator<Item = &'a T>,
    signer_and_key: impl Fn(&T) -> (&str, &str),
) -> Vec<&'a T> {
    let mut signers = HashSet::new();
    let mut keys = HashSet::new();
    approvals
        .filter(|a| {
            let (signer, key) = signer_and_key(a);
            let new = !signers.contains(&signer.to_lowercase()) && !keys.contains(key);
            if new {
                signers.insert(signer.to_lowercase());
                keys.insert(key.to_string());
            }
            new
        })
        .collect()
}

/// Whether an approval counts: returns its key's fingerprint, or why it does not count.
fn check(
    approval: &Approval,
    signers: &AllowedSigners,
    expected: &Expected,
) -> Result<String, Refusal> {
    let key_fingerprint = check_signature(approval, signers, expected.now)?;
    check_binding(approval, expected)?;
    check_separation_of_duties(approval, expected)?;
    Ok(key_fingerprint)
}

/// The signature is an SSHSIG in our namespace, by a key allowed_signers lists for the signer at
/// `signed_at`, over this very record.
fn check_signature(
    approval: &Approval,
    signers: &AllowedSigners,
    now: OffsetDateTime,
) -> Result<String, Refusal> {
    verify_signed(
        Signed {
            signer: &approval.signer,
            signed_at: &approval.signed_at,
            signature: &approval.signature,
            message: approval.signed_message().as_bytes(),
            namespace: NAMESPACE,
        },
        signers,
        now,
    )
}

/// A signed record, as the signature check needs it.
struct Signed<'a> {
    signer: &'a str,
    signed_at: &'a str,
    /// The armored SSHSIG.
    signature: &'a str,
    /// The exact bytes signed.
    message: &'a [u8],
    namespace: &'a str,
}

/// The signature is an SSHSIG in `namespace`, by a key allowed_signers lists for the signer in
/// that namespace at `signed_at`, over `message`. Returns the key's `SHA256:…` fingerprint, or
/// why the signature does not count.
fn verify_signed(
    signed: Signed<'_>,
    signers: &AllowedSigners,
    now: OffsetDateTime,
) -> Result<String, Refusal> {
    use RefusalKind::{BadSignature, BadSignedAt, SignerNotAllowed};
    let namespace = signed.namespace;
    let signed_at = parse_utc(signed.signed_at).ok_or_else(|| {
        Refusal::new(
            BadSignedAt,
            format!(
                "signed_at `{}` is not a UTC time like 2025-01-31T12:00:00Z",
                signed.signed_at
            ),
        )
    })?;
    if signed_at > now + CLOCK_SKEW {
        return Err(Refusal::new(
            BadSignedAt,
            format!("signed_at {} is in the future", signed.signed_at),
        ));
    }
    let signature = SshSig::from_pem(signed.signature).map_err(|err| {
        Refusal::new(
            BadSignature,
            format!("the signature is not an SSH signature ({err}): the file was edited or forged"),
        )
    })?;
    if signature.namespace() != namespace {
        return Err(Refusal::new(
            BadSignature,
            format!(
                "the signature is for namespace \"{}\", not \"{namespace}\"",
                signature.namespace()
            ),
        ));
    }
    let keys = signers.keys_for(signed.signer, namespace, signed_at);
    if keys.is_empty() {
        return Err(Refusal::new(
            SignerNotAllowed,
            signers.explain_no_key(signed.signer, namespace, signed_at),
        ));
    }
    let fingerprint = signature
        .public_key()
        .fingerprint(HashAlg::Sha256)
        .to_string();
    let key = keys
        .into_iter()
        .find(|key| key.key_data() == signature.public_key())
        .ok_or_else(|| {
            Refusal::new(
                SignerNotAllowed,
                format!(
                    "signed with a key allowed_signers does not list for {} ({fingerprint})",
                    signed.signer
                ),
            )
        })?;
    key.verify(namespace, signed.message, &signature)
        .map_err(|_| {
            Refusal::new(
                BadSignature,
                "signature does not verify: the file was edited or forged",
            )
        })?;
    Ok(fingerprint)
}

/// The approval is for this package at its current digest.
fn check_binding(approval: &Approval, expected: &Expected) -> Result<(), Refusal> {
    let other = |reason: String| Err(Refusal::new(RefusalKind::OtherBinding, reason));
    if approval.package != expected.package_id {
        return other(format!(
            "signed for package {}, not {}",
            approval.package, expected.package_id
        ));
    }
    if approval.digest != expected.digest {
        return other(format!(
            "stale: signed for digest {}…, the package is now {}…",
            short_digest(&approval.digest),
            short_digest(expected.digest)
        ));
    }
    Ok(())
}

/// The operator of the run may not approve it, unless the policy allows it.
fn check_separation_of_duties(approval: &Approval, expected: &Expected) -> Result<(), Refusal> {
    match expected.operator {
        Some(operator)
            if approval.decision.approves()
                && !expected.operator_may_approve
                && operator.eq_ignore_ascii_case(&approval.signer) =>
        {
            Err(Refusal::new(
                RefusalKind::SeparationOfDuties,
                format!(
                    "separation of duties: the operator {operator} may not approve their own run \
                     ([approvals] operator_may_approve = false)"
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Writes a new unencrypted OpenSSH ed25519 private key at `path` (mode 0600) and its public key
/// at `path.pub`, and returns the public key. Existing files are never overwritten.
pub fn generate_ed25519(path: &Path, comment: &str) -> Result<PublicKey, ApprovalError> {
    let generation_error = |err: ssh_key::Error| ApprovalError::KeyGeneration {
        reason: err.to_string(),
    };
    let mut key =
        PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519).map_err(generation_error)?;
    key.set_comment(comment);
    let private_text = key.to_openssh(LineEnding::LF).map_err(generation_error)?;
    let public_text = key.public_key().to_openssh().map_err(generation_error)?;
    let public_path = public_key_path(path);
    for existing in [path, public_path.as_path()] {
        if existing.exists() {
            return Err(ApprovalError::KeyExists {
                path: existing.to_path_buf(),
            });
        }
    }
    write_new_file(path, private_text.as_bytes(), 0o600)?;
    write_new_file(&public_path, format!("{public_text}\n").as_bytes(), 0o644)?;
    Ok(key.public_key().clone())
}

/// An allowed_signers line that lets `principal` sign approvals and rollback approvals with
/// `key`: `alice@example.com namespaces="sluice-approval,sluice-rollback" ssh-ed25519 AAAA…`.
pub fn allowed_signers_line(principal: &str, key: &PublicKey) -> String {
    let mut key = key.clone();
    key.set_comment("");
    let key_text = key
        .to_openssh()
        .unwrap_or_else(|err| format!("<key cannot be encoded: {err}>"));
    format!(
        "{principal} namespaces=\"{NAMESPACE},{}\" {key_text}",
        rollback::NAMESPACE
    )
}

/// `KEY.pub` beside `KEY`.
fn public_key_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".pub");
    PathBuf::from(name)
}

fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ApprovalError> {
    let write_error = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::AlreadyExists => ApprovalError::KeyExists {
            path: path.to_path_buf(),
        },
        _ => ApprovalError::Write {
            path: path.to_path_buf(),
            source,
        },
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let mut file = options.open(path).map_err(write_error)?;
    set_mode(&file, mode).map_err(write_error)?;
    file.write_all(bytes).map_err(write_error)?;
    file.sync_all().map_err(write_error)
}

/// Sets a file's Unix mode, whatever the umask made of it (elsewhere, does nothing).
fn set_mode(file: &std::fs::File, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (file, mode);
    Ok(())
}

/// A TOML error in one line: the message and, when known, the line it is on.
fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim();
    match err.span() {
        Some(span) => {
            let line = text
                .get(..span.start)
                .map_or(0, |before| before.matches('\n').count())
                + 1;
            format!("line {line}: {message}")
        }
        None => message.to_string(),
    }
}

/// `1 approval`, `2 approvals`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\n', "\\n")
}

fn file_name_safe(text: &str) -> String {
    let safe: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".@+_-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    match safe.strip_prefix('.') {
        Some(rest) => format!("_{rest}"),
        None => safe,
    }
}

fn short_digest(digest: &str) -> String {
    digest.chars().take(12).collect()
}

/// `2025-01-31T12:00:00Z`.
fn format_utc(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Exactly the form [`format_utc`] writes.
fn parse_utc(text: &str) -> Option<OffsetDateTime> {
    let bytes = text.as_bytes();
    let separators = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'Z'),
    ];
    if bytes.len() != 20 || separators.iter().any(|&(i, c)| bytes[i] != c) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| {
        text.get(range)
            .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u16>().ok())
    };
    let month = Month::try_from(number(5..7)? as u8).ok()?;
    let date =
        Date::from_calendar_date(i32::from(number(0..4)?), month, number(8..10)? as u8).ok()?;
    let time = Time::from_hms(
        number(11..13)? as u8,
        number(14..16)? as u8,
        number(17..19)? as u8,
    )
    .ok()?;
    Some(date.with_time(time).assume_utc())
}
