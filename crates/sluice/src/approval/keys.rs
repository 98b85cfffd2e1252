//! The keys an approval is signed with, as reviewers hold them: an OpenSSH private key file
//! (passphrase-protected or not), or a key held by `ssh-agent` (ed25519, ecdsa, rsa, and FIDO
//! `sk-` keys whose private half never leaves the security key).
//!
//! A passphrase is asked through a [`Passphrase`] the caller gives (the CLI asks on the terminal
//! or through `SSH_ASKPASS`); it is held in memory that is wiped when dropped, and never put in
//! an error, a log or a file. The decrypted key is wiped when the [`SigningKey`] is dropped.
//!
//! The agent is spoken to with `ssh-agent-client-rs` (the agent protocol's list and sign
//! requests); rsa keys are asked for `rsa-sha2-512` signatures, as SSHSIG wants.

use super::{allowed_signers, ApprovalError};
use crate::package::ApprovalPolicy;
use ssh_agent_client_rs::{Client, Identity};
use ssh_key::{Algorithm, HashAlg, PrivateKey, PublicKey, SshSig};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// Asks for a key file's passphrase.
pub trait Passphrase {
    /// The passphrase of the key in `path`; `attempt` counts from 1 and goes up after each
    /// passphrase that did not decrypt the key. `Ok(None)`: no more attempts (the last wrong
    /// passphrase stands). `Err`: why no passphrase can be had, in words for the user (never the
    /// passphrase itself).
    fn ask(&mut self, path: &Path, attempt: u32) -> Result<Option<Zeroizing<Vec<u8>>>, String>;
}

/// Never asks: an encrypted key is an error. What the library's own [`super::sign`] uses.
pub struct NoPassphrase;

impl Passphrase for NoPassphrase {
    fn ask(&mut self, _path: &Path, _attempt: u32) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
        Err("no way to ask for it was given".into())
    }
}

/// How `--agent` picks the agent's key.
pub enum AgentKey<'a> {
    /// The key in this file: a public key (`KEY.pub`), or a private key file whose public half
    /// is read (an encrypted file's public half is not encrypted).
    File(&'a Path),
    /// The one key the agent holds that allowed_signers lists for this signer in `namespace`
    /// ([`super::NAMESPACE`] for approvals, [`super::rollback::NAMESPACE`] for rollback approvals).
    OfSigner {
        signer: &'a str,
        policy: &'a ApprovalPolicy,
        namespace: &'a str,
    },
}

/// A key ready to sign approvals.
pub struct SigningKey {
    source: Source,
}

enum Source {
    File {
        path: PathBuf,
        key: Box<PrivateKey>,
    },
    Agent {
        socket: PathBuf,
        client: Client,
        identity: Identity<'static>,
        key: PublicKey,
    },
}

impl SigningKey {
    /// Reads an OpenSSH private key file; when it is encrypted, asks `passphrase` until it
    /// decrypts the key or gives up.
    pub fn from_file(path: &Path, passphrase: &mut dyn Passphrase) -> Result<Self, ApprovalError> {
        let key = read_key_file(path)?;
        if is_security_key(key.algorithm()) {
            return Err(ApprovalError::SecurityKeyFile {
                path: path.to_path_buf(),
                algorithm: key.algorithm().to_string(),
            });
        }
        let key = if key.is_encrypted() {
            decrypt(path, &key, passphrase)?
        } else {
            key
        };
        Ok(SigningKey {
            source: Source::File {
                path: path.to_path_buf(),
                key: Box::new(key),
            },
        })
    }

    /// Connects to the agent at `socket` (`SSH_AUTH_SOCK`) and picks the key it holds that
    /// `choice` names.
    pub fn from_agent(socket: &Path, choice: AgentKey<'_>) -> Result<Self, ApprovalError> {
        let agent_error = |reason: String| ApprovalError::Agent {
            socket: socket.to_path_buf(),
            reason,
        };
        let wanted: Vec<PublicKey> = match choice {
            AgentKey::File(path) => vec![read_public_half(path)?],
            AgentKey::OfSigner {
                signer,
                policy,
                namespace,
            } => signer_keys(signer, policy, namespace)?,
        };
        let stream = std::os::unix::net::UnixStream::connect(socket).map_err(|err| {
            ApprovalError::AgentConnect {
                socket: socket.to_path_buf(),
                reason: err.to_string(),
            }
        })?;
        let mut client = Client::with_read_write(Box::new(stream));
        let identities = client
            .list_all_identities()
            .map_err(|err| agent_error(format!("cannot list its keys: {err}")))?;
        let held: Vec<(Identity<'static>, PublicKey)> = identities
            .into_iter()
            .map(|identity| {
                let key_data: &ssh_key::public::KeyData = (&identity).into();
                let comment = match &identity {
                    Identity::PublicKey(key) => key.comment().to_string(),
                    Identity::Certificate(cert) => cert.comment().to_string(),
                };
                let key = PublicKey::new(key_data.clone(), comment);
                (identity, key)
            })
            .collect();
        // a key and a certificate of that key, both held, are one key
        let mut matching: Vec<(Identity<'static>, PublicKey)> = Vec::new();
        for (identity, key) in &held {
            let listed = wanted.iter().any(|w| w.key_data() == key.key_data());
            if listed && !matching.iter().any(|(_, m)| m.key_data() == key.key_data()) {
                matching.push((identity.clone(), key.clone()));
            }
        }
        let described = |keys: &[PublicKey]| {
            if keys.is_empty() {
                "no key at all".to_string()
            } else {
                keys.iter().map(describe).collect::<Vec<_>>().join(", ")
            }
        };
        let held_keys: Vec<PublicKey> = held.iter().map(|(_, key)| key.clone()).collect();
        if matching.is_empty() {
            let wanted = match choice {
                AgentKey::File(path) => {
                    format!("the key of {} ({})", path.display(), described(&wanted))
                }
                AgentKey::OfSigner { signer, .. } => format!(
                    "any key allowed_signers lists for {signer} ({})",
                    described(&wanted)
                ),
            };
            return Err(ApprovalError::AgentLacksKey {
                socket: socket.to_path_buf(),
                wanted,
                held: described(&held_keys),
            });
        }
        if let (AgentKey::OfSigner { signer, .. }, 2..) = (&choice, matching.len()) {
            return Err(ApprovalError::AgentAmbiguous {
                signer: signer.to_string(),
                keys: described(&matching.into_iter().map(|(_, k)| k).collect::<Vec<_>>()),
            });
        }
        let (identity, key) = matching.remove(0);
        Ok(SigningKey {
            source: Source::Agent {
                socket: socket.to_path_buf(),
                client,
                identity,
                key,
            },
        })
    }

    /// Whether it is a FIDO security key's (`sk-…`), which signs only when touched.
    pub fn is_security_key(&self) -> bool {
        is_security_key(self.public_key().algorithm())
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        match &self.source {
            Source::File { key, .. } => key.public_key(),
            Source::Agent { key, .. } => key,
        }
    }

    /// `the key file PATH` or `ssh-agent's key SHA256:… (comment)`, for messages.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::File { path, .. } => format!("the key file {}", path.display()),
            Source::Agent { key, .. } => format!("ssh-agent's key {}", describe(key)),
        }
    }

    /// An SSHSIG over `msg` in `namespace`, SHA-512, checked against the public key before it is
    /// returned (an agent could answer with anything).
    pub(crate) fn sign(&mut self, namespace: &str, msg: &[u8]) -> Result<SshSig, ApprovalError> {
        let signature = match &mut self.source {
            Source::File { path, key } => {
                key.sign(namespace, HashAlg::Sha512, msg)
                    .map_err(|err| ApprovalError::Signing {
                        path: path.clone(),
                        reason: err.to_string(),
                    })?
            }
            Source::Agent {
                socket,
                client,
                identity,
                key,
            } => agent_sign(socket, client, identity, key, namespace, msg)?,
        };
        if let Err(err) = self.public_key().verify(namespace, msg, &signature) {
            let reason = format!("the signature made does not verify ({err})");
            return Err(match &self.source {
                Source::File { path, .. } => ApprovalError::Signing {
                    path: path.clone(),
                    reason,
                },
                Source::Agent { socket, .. } => ApprovalError::Agent {
                    socket: socket.clone(),
                    reason,
                },
            });
        }
        Ok(signature)
    }
}

fn agent_sign(
    socket: &Path,
    client: &mut Client,
    identity: &Identity<'static>,
    key: &PublicKey,
    namespace: &str,
    msg: &[u8],
) -> Result<SshSig, ApprovalError> {
    let agent_error = |reason: String| ApprovalError::Agent {
        socket: socket.to_path_buf(),
        reason,
    };
    let data = SshSig::signed_data(namespace, HashAlg::Sha512, msg)
        .map_err(|err| agent_error(format!("cannot encode the data to sign: {err}")))?;
    let signature = client
        .sign_with_ref(identity, &data)
        .map_err(|err| match err {
            ssh_agent_client_rs::Error::RemoteFailure => ApprovalError::AgentRefused {
                socket: socket.to_path_buf(),
                key: describe(key),
            },
            other => agent_error(format!("signing failed: {other}")),
        })?;
    if matches!(key.algorithm(), Algorithm::Rsa { .. })
        && signature.algorithm()
            != (Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            })
    {
        return Err(agent_error(format!(
            "it signed with {} where rsa-sha2-512 was asked (SSHSIG's rsa signatures are \
             rsa-sha2-512; an agent this old cannot sign approvals with an rsa key)",
            signature.algorithm()
        )));
    }
    SshSig::new(
        key.key_data().clone(),
        namespace,
        HashAlg::Sha512,
        signature,
    )
    .map_err(|err| agent_error(format!("cannot make an SSH signature of its answer: {err}")))
}

/// Whether the algorithm is a FIDO security key's (`sk-ssh-ed25519@openssh.com`,
/// `sk-ecdsa-sha2-nistp256@openssh.com`).
pub(crate) fn is_security_key(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::SkEd25519 | Algorithm::SkEcdsaSha2NistP256
    )
}

/// `SHA256:… (comment)`, or the fingerprint alone.
fn describe(key: &PublicKey) -> String {
    let fingerprint = key.fingerprint(HashAlg::Sha256);
    match key.comment().trim() {
        "" => format!("{} {fingerprint}", key.algorithm()),
        comment => format!("{} {fingerprint} ({comment})", key.algorithm()),
    }
}

/// Decrypts `key` with passphrases from `passphrase` until one fits.
fn decrypt(
    path: &Path,
    key: &PrivateKey,
    passphrase: &mut dyn Passphrase,
) -> Result<PrivateKey, ApprovalError> {
    let mut attempt = 1;
    loop {
        let given = match passphrase.ask(path, attempt) {
            Ok(Some(given)) => given,
            Ok(None) => {
                return Err(ApprovalError::WrongPassphrase {
                    path: path.to_path_buf(),
                })
            }
            Err(reason) => {
                return Err(ApprovalError::NoPassphrase {
                    path: path.to_path_buf(),
                    reason,
                })
            }
        };
        match key.decrypt(given.as_slice()) {
            Ok(decrypted) => return Ok(decrypted),
            // the check integers did not match (or the AEAD tag did not verify): wrong passphrase
            Err(ssh_key::Error::Crypto) => attempt += 1,
            Err(err) => {
                return Err(ApprovalError::Decrypt {
                    path: path.to_path_buf(),
                    reason: err.to_string(),
                })
            }
        }
    }
}

/// Reads an OpenSSH private key file (encrypted or not), with an error naming the path for
/// anything else.
fn read_key_file(path: &Path) -> Result<PrivateKey, ApprovalError> {
    let bytes =
        Zeroizing::new(
            std::fs::read(path).map_err(|source| ApprovalError::KeyUnreadable {
                path: path.to_path_buf(),
                source,
            })?,
        );
    let not_a_key = |reason: String| ApprovalError::NotAPrivateKey {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| not_a_key("the file is not text".into()))?;
    if PublicKey::from_openssh(text.trim()).is_ok() {
        return Err(ApprovalError::PublicKeyGiven {
            path: path.to_path_buf(),
        });
    }
    PrivateKey::from_openssh(text).map_err(|err| not_a_key(err.to_string()))
}

/// The public key in `path`: an OpenSSH public key line, or the public half of an OpenSSH
/// private key file (readable without its passphrase).
fn read_public_half(path: &Path) -> Result<PublicKey, ApprovalError> {
    let unreadable = |reason: String| ApprovalError::PublicKeyUnreadable {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|err| unreadable(err.to_string()))?);
    let text =
        std::str::from_utf8(&bytes).map_err(|_| unreadable("the file is not text".into()))?;
    if let Ok(key) = PublicKey::from_openssh(text.trim()) {
        return Ok(key);
    }
    PrivateKey::from_openssh(text)
        .map(|key| key.public_key().clone())
        .map_err(|_| {
            unreadable(
                "expected an OpenSSH public key line (`ssh-ed25519 AAAA… comment`, as in KEY.pub) \
                 or an OpenSSH private key file"
                    .into(),
            )
        })
}

/// The keys allowed_signers lists for `signer` in `namespace` now.
fn signer_keys(
    signer: &str,
    policy: &ApprovalPolicy,
    namespace: &str,
) -> Result<Vec<PublicKey>, ApprovalError> {
    let not_allowed = |reason: String| ApprovalError::NotAllowed {
        signer: signer.to_string(),
        reason,
    };
    let signers: allowed_signers::AllowedSigners =
        super::read_allowed_signers(policy).map_err(not_allowed)?;
    let now = OffsetDateTime::now_utc();
    let keys: Vec<PublicKey> = signers
        .keys_for(signer, namespace, now)
        .into_iter()
        .cloned()
        .collect();
    if keys.is_empty() {
        return Err(not_allowed(signers.explain_no_key(signer, namespace, now)));
    }
    Ok(keys)
}
