//! Approvals made by hand with `ssh-keygen -Y sign`: the payload file (exactly the bytes of
//! [`Approval::signed_message`]) read back into an approval, and the `.sig` file beside it
//! attached as its signature.
//!
//! The payload, one `key=value` per line, each line ending in `\n` (no `\r`), in this order:
//!
//! ```text
//! sluice-approval-v1
//! package=<package id>
//! digest=<64 lowercase hex digits>
//! signer=<principal as allowed_signers names it>
//! decision=<pass | pass-with-notes | reject>
//! signed_at=<UTC, YYYY-MM-DDTHH:MM:SSZ>
//! note=<text; `\` written `\\`, a newline written `\n`>
//! acknowledge=<CHECK=OBSERVED, escaped like note; zero or more lines>
//! ```

use super::{parse_utc, Acknowledgement, Approval, ApprovalError, Decision, FORMAT, NAMESPACE};
use ssh_key::SshSig;
use std::path::Path;

/// The fields of the payload, in order.
const KEYS: [&str; 6] = [
    "package",
    "digest",
    "signer",
    "decision",
    "signed_at",
    "note",
];

impl Approval {
    /// Reads a payload file's bytes (`path` names it in errors) into an unsigned approval. The
    /// payload must be exactly what [`Approval::signed_message`] writes for the approval it
    /// describes, byte for byte, since those bytes are what the signature covers.
    pub fn from_payload(path: &Path, bytes: &[u8]) -> Result<Approval, ApprovalError> {
        let fail = |reason: String| ApprovalError::Payload {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| fail("it is not UTF-8 text".into()))?;
        if text.contains('\r') {
            return Err(fail(
                "it has a carriage return (\\r): lines end in \\n alone".into(),
            ));
        }
        let Some(body) = text.strip_suffix('\n') else {
            return Err(fail("its last line does not end in a newline".into()));
        };
        let lines: Vec<&str> = body.split('\n').collect();
        if lines[0] != FORMAT {
            return Err(fail(format!(
                "line 1 is `{}`, expected `{FORMAT}`",
                lines[0]
            )));
        }
        if lines.len() < KEYS.len() + 1 {
            return Err(fail(format!(
                "it has {} lines, expected {} or more: {FORMAT}, then {}, then any acknowledge=…",
                lines.len(),
                KEYS.len() + 1,
                KEYS.map(|k| format!("{k}=…")).join(", ")
            )));
        }
        let (fields, acknowledgements) = lines[1..].split_at(KEYS.len());
        let mut values = Vec::with_capacity(KEYS.len());
        for (index, (line, key)) in fields.iter().zip(KEYS).enumerate() {
            let value = line
                .strip_prefix(key)
                .and_then(|rest| rest.strip_prefix('='))
                .ok_or_else(|| {
                    fail(format!(
                        "line {} is `{line}`, expected `{key}=…`",
                        index + 2
                    ))
                })?;
            let value = unescape(value).ok_or_else(|| {
                fail(format!(
                    "line {}: a `\\` must be followed by `\\` or `n`",
                    index + 2
                ))
            })?;
            values.push(value);
        }
        let [package, digest, signer, decision, signed_at, note] =
            <[String; 6]>::try_from(values).map_err(|_| fail("internal: field count".into()))?;
        let decision: Decision = decision
            .parse()
            .map_err(|err: ApprovalError| fail(format!("line 5: {err}")))?;
        if parse_utc(&signed_at).is_none() {
            return Err(fail(format!(
                "line 6: signed_at `{signed_at}` is not a UTC time like 2025-01-31T12:00:00Z \
                 (`date -u +%Y-%m-%dT%H:%M:%SZ`)"
            )));
        }
        let first_line = KEYS.len() + 2;
        let acknowledge = acknowledgements
            .iter()
            .enumerate()
            .map(|(index, line)| read_acknowledgement(line, first_line + index).map_err(&fail))
            .collect::<Result<Vec<_>, _>>()?;
        let approval = Approval {
            package,
            digest,
            signer,
            decision,
            note,
            signed_at,
            acknowledge,
            signature: String::new(),
        };
        approval.check_fields()?;
        if approval.signed_message().as_bytes() != bytes {
            return Err(fail(
                "it is not in canonical form (a value escaped otherwise than sluice writes it)"
                    .into(),
            ));
        }
        Ok(approval)
    }

    /// This approval with the armored SSHSIG of `signature_path` (`ssh-keygen -Y sign`'s
    /// `.sig`) as its signature, after checking that it is an SSH signature in the approvals
    /// namespace. Whether it verifies, and by whose key, is the approvals gate's check.
    pub fn with_signature_file(
        mut self,
        signature_path: &Path,
        bytes: &[u8],
    ) -> Result<Approval, ApprovalError> {
        let fail = |reason: String| ApprovalError::SignatureFile {
            path: signature_path.to_path_buf(),
            reason,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| fail("it is not text".into()))?;
        let signature = SshSig::from_pem(text.trim()).map_err(|err| {
            fail(format!(
                "expected `-----BEGIN SSH SIGNATURE-----` … as `ssh-keygen -Y sign` writes ({err})"
            ))
        })?;
        if signature.namespace() != NAMESPACE {
            return Err(fail(format!(
                "it was made in namespace \"{}\"; sign with `ssh-keygen -Y sign -n {NAMESPACE}`",
                signature.namespace()
            )));
        }
        self.signature = format!("{}\n", text.trim());
        Ok(self)
    }
}

/// `acknowledge=CHECK=OBSERVED` on line `number`.
fn read_acknowledgement(line: &str, number: usize) -> Result<Acknowledgement, String> {
    let expected = || format!("line {number} is `{line}`, expected `acknowledge=CHECK=OBSERVED`");
    let value = line.strip_prefix("acknowledge=").ok_or_else(expected)?;
    let value = unescape(value)
        .ok_or_else(|| format!("line {number}: a `\\` must be followed by `\\` or `n`"))?;
    let (check, observed) = value.split_once('=').ok_or_else(expected)?;
    Ok(Acknowledgement {
        check: check.to_string(),
        observed: observed.to_string(),
    })
}

/// Undoes [`super::escape`]: `\\` → `\`, `\n` → newline; any other `\` is an error.
fn unescape(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            _ => return None,
        }
    }
    Some(out)
}
