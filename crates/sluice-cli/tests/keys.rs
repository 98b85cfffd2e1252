//! Approvals with the keys people have (issue 19, item 4), with the real OpenSSH tools:
//! passphrase-protected key files (the passphrase from SSH_ASKPASS, and typed on a terminal),
//! keys held by a real `ssh-agent` started here (ed25519, ecdsa, rsa), signatures checked by
//! `ssh-keygen -Y verify`, approvals signed by hand with `ssh-keygen -Y sign` imported, and a
//! FIDO (`sk-`) signature made in software read by both sluice and ssh-keygen.
//!
//! Every child that could ask on a terminal runs with `SSH_ASKPASS_REQUIRE=force` or in a new
//! session without one, so the tests never wait on a developer's terminal.

mod support;

use sluice::approval::{ApprovalVerdict, NAMESPACE};
use sluice::package::Package;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{reference_copy, sluice, stderr_of};
use tempfile::TempDir;

const PASSPHRASE: &str = "correct horse battery staple";

/// A copy of the reference package and a folder of keys beside it; HOME for every OpenSSH
/// tool is a 0700 folder of its own.
struct Bench {
    tmp: TempDir,
    dir: PathBuf,
    keys: PathBuf,
    home: PathBuf,
}

impl Bench {
    fn new() -> Bench {
        let (tmp, dir) = reference_copy();
        let keys = tmp.path().join("keys");
        let home = tmp.path().join("home");
        for folder in [&keys, &home] {
            std::fs::create_dir_all(folder).unwrap();
            std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        Bench {
            tmp,
            dir,
            keys,
            home,
        }
    }

    /// An OpenSSH tool with HOME in the bench and no askpass, display or agent of the caller's.
    fn openssh(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("HOME", &self.home)
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("SSH_ASKPASS")
            .env_remove("SSH_ASKPASS_REQUIRE")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::null());
        cmd
    }

    /// `ssh-keygen -t TYPE -N PASSPHRASE -f keys/NAME`; the key file is 0600.
    fn keygen(&self, name: &str, key_type: &str, passphrase: &str) -> PathBuf {
        let path = self.keys.join(name);
        let mut cmd = self.openssh("ssh-keygen");
        cmd.args(["-q", "-t", key_type, "-C", name, "-N", passphrase, "-f"])
            .arg(&path);
        if key_type == "rsa" {
            cmd.args(["-b", "3072"]);
        }
        run(&mut cmd);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// allowed_signers: each principal with the public key of its key file.
    fn allow(&self, signers: &[(&str, &Path)]) {
        let mut text = String::new();
        for (principal, key) in signers {
            let public = std::fs::read_to_string(public_of(key)).unwrap();
            text.push_str(&format!(
                "{principal} namespaces=\"{NAMESPACE}\" {}\n",
                public.trim()
            ));
        }
        std::fs::write(self.dir.join("allowed_signers"), text).unwrap();
    }

    fn approve(&self, signer: &str) -> assert_cmd::Command {
        let mut cmd = sluice();
        cmd.env("HOME", &self.home)
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("SSH_ASKPASS")
            .env_remove("SSH_ASKPASS_REQUIRE")
            .env_remove("DISPLAY")
            .arg("approve")
            .arg(&self.dir)
            .args(["--signer", signer, "--decision", "pass"]);
        cmd
    }

    /// The approvals gate on the package as it is now, with no operator.
    fn verdict(&self) -> ApprovalVerdict {
        let pkg = Package::load(&self.dir).unwrap();
        let digest = sluice::digest::package_digest(&pkg);
        sluice::approval::evaluate(
            &pkg.approvals,
            &pkg.info.id,
            &digest,
            None,
            &self.dir.join("approvals"),
        )
    }

    /// An executable script in the bench.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.tmp.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
        path
    }

    /// Every file under the package's approvals/ folder, as text.
    fn approvals_text(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.join("approvals")) {
            for entry in entries {
                out.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
            }
        }
        out
    }
}

fn public_of(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_os_string();
    name.push(".pub");
    PathBuf::from(name)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .expect("the OpenSSH tool runs (scripts/setup installs openssh-client)");
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The accepted approvals' signers and key fingerprints, sorted; panics on any refusal.
fn accepted(verdict: &ApprovalVerdict) -> Vec<(String, String)> {
    assert!(verdict.refused.is_empty(), "{verdict:#?}");
    let mut out: Vec<(String, String)> = verdict
        .accepted
        .iter()
        .map(|a| (a.signer.clone(), a.key_fingerprint.clone()))
        .collect();
    out.sort();
    out
}

/// `SHA256:…` of a key file, as ssh-keygen prints it.
fn fingerprint(bench: &Bench, key: &Path) -> String {
    let out = run(bench
        .openssh("ssh-keygen")
        .arg("-l")
        .arg("-f")
        .arg(public_of(key)));
    out.split_whitespace().nth(1).unwrap().to_string()
}

/// A real ssh-agent on a socket of its own, killed when dropped (a failing test too).
struct Agent {
    child: Child,
    socket: PathBuf,
    _dir: TempDir,
}

impl Agent {
    fn start(bench: &Bench) -> Agent {
        // a Unix socket path has at most 107 bytes: keep it short
        let dir = tempfile::Builder::new()
            .prefix("sluice-agent")
            .tempdir_in("/tmp")
            .unwrap();
        let socket = dir.path().join("s");
        let child = bench
            .openssh("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent runs (scripts/setup installs openssh-client)");
        let mut agent = Agent {
            child,
            socket,
            _dir: dir,
        };
        // the socket file appears at bind(), before listen(): wait until it takes connections
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&agent.socket).is_err() {
            if let Ok(Some(status)) = agent.child.try_wait() {
                panic!("ssh-agent exited early: {status}");
            }
            assert!(Instant::now() < deadline, "ssh-agent never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        agent
    }

    fn add(&self, bench: &Bench, key: &Path) {
        run(bench
            .openssh("ssh-add")
            .env("SSH_AUTH_SOCK", &self.socket)
            .arg("-q")
            .arg(key));
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The payload an approval file signs, written from its fields as the README says (not by
/// sluice's own code): `sluice-approval-v1`, then package, digest, signer, decision, signed_at,
/// note as `key=value` lines, `\` and newlines in values escaped.
fn payload_of(approval_file: &Path) -> (String, String) {
    let text = std::fs::read_to_string(approval_file).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    let field = |k: &str| {
        doc.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let escape = |v: String| v.replace('\\', "\\\\").replace('\n', "\\n");
    let payload = format!(
        "sluice-approval-v1\npackage={}\ndigest={}\nsigner={}\ndecision={}\nsigned_at={}\nnote={}\n",
        escape(field("package")),
        field("digest"),
        escape(field("signer")),
        field("decision"),
        field("signed_at"),
        escape(field("note")),
    );
    (payload, field("signature"))
}

/// `ssh-keygen -Y verify` of one approval file against the package's allowed_signers.
fn ssh_keygen_verifies(bench: &Bench, approval_file: &Path, signer: &str) -> String {
    let (payload, signature) = payload_of(approval_file);
    let payload_path = bench.tmp.path().join("verify-payload");
    let sig_path = bench.tmp.path().join("verify-payload.sig");
    std::fs::write(&payload_path, payload).unwrap();
    std::fs::write(&sig_path, signature).unwrap();
    let out = run(bench
        .openssh("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(bench.dir.join("allowed_signers"))
        .args(["-I", signer, "-n", NAMESPACE, "-s"])
        .arg(&sig_path)
        .stdin(std::fs::File::open(&payload_path).unwrap()));
    assert!(
        out.contains(&format!("Good \"{NAMESPACE}\" signature for {signer}")),
        "{out}"
    );
    out
}

fn approval_file(bench: &Bench, signer: &str) -> PathBuf {
    std::fs::read_dir(bench.dir.join("approvals"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{signer}-"))
        })
        .unwrap_or_else(|| panic!("no approval of {signer}"))
}

#[test]
fn a_passphrase_key_signs_with_the_passphrase_from_ssh_askpass() {
    let bench = Bench::new();
    let key = bench.keygen("alice", "ed25519", PASSPHRASE);
    bench.allow(&[("alice@example.com", &key)]);
    let prompt_file = bench.tmp.path().join("prompt");
    let wrong = bench.script("wrong-askpass", "echo 'not the passphrase'");
    let right = bench.script(
        "askpass",
        &format!(
            "printf '%s' \"$1\" > '{}'\nprintf '%s\\n' '{PASSPHRASE}'",
            prompt_file.display()
        ),
    );

    // a wrong passphrase: exit 2, the key file named, nothing written, no secret printed
    let refused = bench
        .approve("alice@example.com")
        .arg("--key")
        .arg(&key)
        .env("SSH_ASKPASS", &wrong)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .assert()
        .code(2);
    let stderr = stderr_of(&refused);
    assert!(
        stderr.contains(&format!(
            "wrong passphrase for the key file {}: it does not decrypt the key; nothing was signed",
            key.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("not the passphrase"), "{stderr}");
    assert!(!bench.dir.join("approvals").exists());

    // the right one: asked with the key file in the prompt, accepted by the approvals gate
    let signed = bench
        .approve("alice@example.com")
        .arg("--key")
        .arg(&key)
        .env("SSH_ASKPASS", &right)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(&prompt_file).unwrap(),
        format!("Enter passphrase for key '{}': ", key.display())
    );
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&signed.get_output().stdout),
        stderr_of(&signed)
    );
    assert!(!output.contains(PASSPHRASE), "{output}");
    assert!(!bench.approvals_text().contains(PASSPHRASE));
    assert_eq!(
        accepted(&bench.verdict()),
        vec![("alice@example.com".to_string(), fingerprint(&bench, &key))]
    );
    // and ssh-keygen agrees
    ssh_keygen_verifies(
        &bench,
        &approval_file(&bench, "alice@example.com"),
        "alice@example.com",
    );
}

/// Without a terminal and without SSH_ASKPASS_REQUIRE, SSH_ASKPASS is used; without either,
/// the error says what to do.
#[test]
fn without_a_terminal_ssh_askpass_is_asked_and_else_the_error_says_why() {
    use std::os::unix::process::CommandExt;
    let bench = Bench::new();
    let key = bench.keygen("alice", "ed25519", PASSPHRASE);
    bench.allow(&[("alice@example.com", &key)]);
    let askpass = bench.script("askpass", &format!("printf '%s\\n' '{PASSPHRASE}'"));
    let no_terminal = |askpass: Option<&Path>| {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("sluice"));
        cmd.env("NO_COLOR", "1")
            .env("HOME", &bench.home)
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("SSH_ASKPASS")
            .env_remove("SSH_ASKPASS_REQUIRE")
            .arg("approve")
            .arg(&bench.dir)
            .args([
                "--signer",
                "alice@example.com",
                "--decision",
                "pass",
                "--key",
            ])
            .arg(&key)
            .stdin(Stdio::null());
        if let Some(program) = askpass {
            cmd.env("SSH_ASKPASS", program);
        }
        // a new session has no controlling terminal: /dev/tty cannot be opened
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.output().unwrap()
    };
    let out = no_terminal(None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "the key file {} is encrypted with a passphrase and it cannot be asked: there is no \
             terminal to ask on and SSH_ASKPASS is not set",
            key.display()
        )),
        "{stderr}"
    );
    let out = no_terminal(Some(&askpass));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(accepted(&bench.verdict()).len(), 1);
}

/// On a terminal the passphrase is asked on /dev/tty with echo off: a pseudo-terminal stands in
/// for the reviewer's, and what it shows holds the prompt but never the passphrase typed.
#[test]
fn on_a_terminal_the_passphrase_is_asked_without_echo() {
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;
    use std::os::unix::process::CommandExt;
    let bench = Bench::new();
    let key = bench.keygen("alice", "ed25519", PASSPHRASE);
    bench.allow(&[("alice@example.com", &key)]);

    let (mut master, slave) = {
        let (mut master, mut slave) = (-1, -1);
        let opened = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
        unsafe { (std::fs::File::from_raw_fd(master), slave) }
    };
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("sluice"));
    cmd.env("NO_COLOR", "1")
        .env("HOME", &bench.home)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("SSH_ASKPASS")
        .env_remove("SSH_ASKPASS_REQUIRE")
        .arg("approve")
        .arg(&bench.dir)
        .args([
            "--signer",
            "alice@example.com",
            "--decision",
            "pass",
            "--key",
        ])
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // the pseudo-terminal becomes the child's controlling terminal, its /dev/tty; the child
    // keeps the slave open (so the master reads nothing but EOF-free output until it exits)
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() == -1 || libc::ioctl(slave, libc::TIOCSCTTY as _, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    unsafe { libc::close(slave) };

    // read what the terminal shows until the prompt, then type the passphrase
    let mut shown = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&shown).contains("Enter passphrase for key") {
        assert!(Instant::now() < deadline, "no prompt: {shown:?}");
        match master.read(&mut buf) {
            Ok(0) | Err(_) => panic!("the terminal closed before the prompt: {shown:?}"),
            Ok(n) => shown.extend_from_slice(&buf[..n]),
        }
    }
    master
        .write_all(format!("{PASSPHRASE}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    // the rest of what the terminal showed (EIO once the child is gone)
    let mut rest = Vec::new();
    let _ = master.read_to_end(&mut rest);
    shown.extend_from_slice(&rest);
    let shown = String::from_utf8_lossy(&shown);
    assert!(
        out.status.success(),
        "{}\nterminal: {shown}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        shown.contains(&format!("Enter passphrase for key '{}': ", key.display())),
        "{shown}"
    );
    assert!(!shown.contains(PASSPHRASE), "echoed: {shown}");
    assert_eq!(accepted(&bench.verdict()).len(), 1);
}

#[test]
fn ssh_agent_signs_with_ed25519_ecdsa_and_rsa_keys() {
    let bench = Bench::new();
    let alice = bench.keygen("alice", "ed25519", PASSPHRASE);
    let bob = bench.keygen("bob", "ecdsa", "");
    let carol = bench.keygen("carol", "rsa", "");
    let mallory = bench.keygen("mallory", "ed25519", "");
    bench.allow(&[
        ("alice@example.com", &alice),
        ("bob@example.com", &bob),
        ("carol@example.com", &carol),
    ]);
    let agent = Agent::start(&bench);
    let askpass = bench.script("askpass", &format!("printf '%s\\n' '{PASSPHRASE}'"));
    // ssh-add asks alice's passphrase through askpass too
    run(bench
        .openssh("ssh-add")
        .env("SSH_AUTH_SOCK", &agent.socket)
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .arg("-q")
        .arg(&alice));
    agent.add(&bench, &bob);
    agent.add(&bench, &carol);
    agent.add(&bench, &mallory);

    // alice and bob: the agent's key that allowed_signers lists for them; carol: by --key
    for (signer, key) in [
        ("alice@example.com", None),
        ("bob@example.com", None),
        ("carol@example.com", Some(public_of(&carol))),
    ] {
        let mut cmd = bench.approve(signer);
        cmd.env("SSH_AUTH_SOCK", &agent.socket).arg("--agent");
        if let Some(key) = key {
            cmd.arg("--key").arg(key);
        }
        cmd.assert().success();
    }
    assert_eq!(
        accepted(&bench.verdict()),
        vec![
            ("alice@example.com".to_string(), fingerprint(&bench, &alice)),
            ("bob@example.com".to_string(), fingerprint(&bench, &bob)),
            ("carol@example.com".to_string(), fingerprint(&bench, &carol)),
        ]
    );
    // carol's rsa signature is rsa-sha2-512, as SSHSIG asks
    let (_, carol_signature) = payload_of(&approval_file(&bench, "carol@example.com"));
    let signature = ssh_key::SshSig::from_pem(carol_signature.trim()).unwrap();
    assert_eq!(signature.algorithm().as_str(), "rsa-sha2-512");
    // every signature the agent made verifies with ssh-keygen
    for signer in ["alice@example.com", "bob@example.com", "carol@example.com"] {
        ssh_keygen_verifies(&bench, &approval_file(&bench, signer), signer);
    }

    // a key of someone else's in the agent, chosen with --key: refused by allowed_signers
    let refused = bench
        .approve("alice@example.com")
        .env("SSH_AUTH_SOCK", &agent.socket)
        .args(["--agent", "--key"])
        .arg(public_of(&mallory))
        .assert()
        .code(2);
    assert!(
        stderr_of(&refused).contains(
            "alice@example.com cannot approve this package: signed with a key allowed_signers does not list for alice@example.com"
        ),
        "{}",
        stderr_of(&refused)
    );
}

#[test]
fn agent_errors_say_which_key_is_missing_or_ambiguous() {
    let bench = Bench::new();
    let alice = bench.keygen("alice", "ed25519", "");
    let alice2 = bench.keygen("alice-laptop", "ecdsa", "");
    bench.allow(&[
        ("alice@example.com", &alice),
        ("alice@example.com", &alice2),
    ]);
    let agent = Agent::start(&bench);
    let approve = || {
        let mut cmd = bench.approve("alice@example.com");
        cmd.env("SSH_AUTH_SOCK", &agent.socket).arg("--agent");
        cmd
    };

    let none = approve().assert().code(2);
    assert!(
        stderr_of(&none).contains(&format!(
            "ssh-agent at {} does not hold any key allowed_signers lists for alice@example.com",
            agent.socket.display()
        )) && stderr_of(&none).contains("it holds no key at all: `ssh-add` the key first"),
        "{}",
        stderr_of(&none)
    );
    agent.add(&bench, &alice);
    agent.add(&bench, &alice2);
    let two = approve().assert().code(2);
    assert!(
        stderr_of(&two)
            .contains("ssh-agent holds several keys allowed_signers lists for alice@example.com")
            && stderr_of(&two).contains("choose one with --key PUBLIC_KEY_FILE"),
        "{}",
        stderr_of(&two)
    );
    // --key picks one: a public key file or the private key file itself
    approve()
        .arg("--key")
        .arg(public_of(&alice2))
        .assert()
        .success();
    assert_eq!(accepted(&bench.verdict()).len(), 1);

    let gone = bench
        .approve("alice@example.com")
        .env("SSH_AUTH_SOCK", bench.tmp.path().join("no-agent"))
        .arg("--agent")
        .assert()
        .code(2);
    assert!(
        stderr_of(&gone).contains("cannot reach ssh-agent at")
            && stderr_of(&gone).contains("(SSH_AUTH_SOCK): No such file or directory"),
        "{}",
        stderr_of(&gone)
    );
    let unset = bench
        .approve("alice@example.com")
        .arg("--agent")
        .assert()
        .code(2);
    assert!(
        stderr_of(&unset).contains("--agent needs an ssh-agent: SSH_AUTH_SOCK is not set"),
        "{}",
        stderr_of(&unset)
    );
}

/// By hand: `--print-payload`, or the payload written with printf as the README shows, signed
/// with `ssh-keygen -Y sign -n sluice-approval`, imported with --payload/--signature; and an
/// approval file written by hand with the armored signature, read by the gate as it is.
#[test]
fn approvals_signed_by_hand_with_ssh_keygen_are_accepted() {
    let bench = Bench::new();
    let alice = bench.keygen("alice", "ed25519", "");
    let bob = bench.keygen("bob", "ecdsa", "");
    let carol = bench.keygen("carol", "rsa", "");
    bench.allow(&[
        ("alice@example.com", &alice),
        ("bob@example.com", &bob),
        ("carol@example.com", &carol),
    ]);
    let pkg = Package::load(&bench.dir).unwrap();
    let digest = sluice::digest::package_digest(&pkg);
    let sign = |key: &Path, payload: &Path| {
        run(bench
            .openssh("ssh-keygen")
            .args(["-Y", "sign", "-n", NAMESPACE, "-f"])
            .arg(key)
            .arg(payload));
    };
    let sig_of = |payload: &Path| {
        let mut name = payload.as_os_str().to_os_string();
        name.push(".sig");
        PathBuf::from(name)
    };

    // alice: the payload sluice prints
    let printed = bench
        .approve("alice@example.com")
        .arg("--print-payload")
        .args(["--note", "looks right\nto me"])
        .assert()
        .success();
    let alice_payload = bench.tmp.path().join("alice-approval.txt");
    std::fs::write(&alice_payload, &printed.get_output().stdout).unwrap();
    assert!(
        !bench.dir.join("approvals").exists(),
        "printing signs nothing"
    );
    sign(&alice, &alice_payload);
    sluice()
        .arg("approve")
        .arg(&bench.dir)
        .arg("--payload")
        .arg(&alice_payload)
        .arg("--signature")
        .arg(sig_of(&alice_payload))
        .assert()
        .success();

    // bob: the payload written by hand, with the current UTC time
    let now = time::OffsetDateTime::now_utc();
    let signed_at = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let bob_payload = bench.tmp.path().join("bob-approval.txt");
    let bob_text = format!(
        "sluice-approval-v1\npackage={}\ndigest={digest}\nsigner=bob@example.com\n\
         decision=pass-with-notes\nsigned_at={signed_at}\nnote=watch the lock wait\n",
        pkg.info.id
    );
    std::fs::write(&bob_payload, &bob_text).unwrap();
    sign(&bob, &bob_payload);
    sluice()
        .arg("approve")
        .arg(&bench.dir)
        .arg("--payload")
        .arg(&bob_payload)
        .arg("--signature")
        .arg(sig_of(&bob_payload))
        .assert()
        .success();

    // carol: no sluice at all, the approval file written by hand
    let carol_payload = bench.tmp.path().join("carol-approval.txt");
    std::fs::write(
        &carol_payload,
        bob_text
            .replace("signer=bob@example.com", "signer=carol@example.com")
            .replace("decision=pass-with-notes", "decision=pass")
            .replace("note=watch the lock wait", "note="),
    )
    .unwrap();
    sign(&carol, &carol_payload);
    let armored = std::fs::read_to_string(sig_of(&carol_payload)).unwrap();
    std::fs::write(
        bench.dir.join("approvals/carol-by-hand.approval"),
        format!(
            "format = \"sluice-approval-v1\"\npackage = \"{}\"\ndigest = \"{digest}\"\n\
             signer = \"carol@example.com\"\ndecision = \"pass\"\nnote = \"\"\n\
             signed_at = \"{signed_at}\"\nsignature = \"\"\"\n{armored}\"\"\"\n",
            pkg.info.id
        ),
    )
    .unwrap();

    assert_eq!(
        accepted(&bench.verdict()),
        vec![
            ("alice@example.com".to_string(), fingerprint(&bench, &alice)),
            ("bob@example.com".to_string(), fingerprint(&bench, &bob)),
            ("carol@example.com".to_string(), fingerprint(&bench, &carol)),
        ]
    );
    let review = sluice().arg("review").arg(&bench.dir).assert().success();
    let md = String::from_utf8_lossy(&review.get_output().stdout).into_owned();
    assert!(md.contains("so far: 3 of 2 required approvals"), "{md}");

    // a payload edited after it was signed: refused, nothing written
    std::fs::write(
        &bob_payload,
        bob_text.replace("decision=pass-with-notes", "decision=pass"),
    )
    .unwrap();
    let edited = sluice()
        .arg("approve")
        .arg(&bench.dir)
        .arg("--payload")
        .arg(&bob_payload)
        .arg("--signature")
        .arg(sig_of(&bob_payload))
        .assert()
        .code(2);
    assert!(
        stderr_of(&edited)
            .contains("bob@example.com cannot approve this package: signature does not verify"),
        "{}",
        stderr_of(&edited)
    );
    // a payload that is not one, and a signature in another namespace
    let bad = bench.tmp.path().join("bad.txt");
    std::fs::write(&bad, "sluice-approval-v1\r\npackage=x\r\n").unwrap();
    let refused = sluice()
        .arg("approve")
        .arg(&bench.dir)
        .arg("--payload")
        .arg(&bad)
        .arg("--signature")
        .arg(sig_of(&alice_payload))
        .assert()
        .code(2);
    assert!(
        stderr_of(&refused).contains(&format!(
            "{} is not a sluice approval payload: it has a carriage return",
            bad.display()
        )),
        "{}",
        stderr_of(&refused)
    );
    let git_sig = bench.tmp.path().join("git-approval.txt");
    std::fs::copy(&alice_payload, &git_sig).unwrap();
    run(bench
        .openssh("ssh-keygen")
        .args(["-Y", "sign", "-n", "git", "-f"])
        .arg(&alice)
        .arg(&git_sig));
    let other_namespace = sluice()
        .arg("approve")
        .arg(&bench.dir)
        .arg("--payload")
        .arg(&git_sig)
        .arg("--signature")
        .arg(sig_of(&git_sig))
        .assert()
        .code(2);
    assert!(
        stderr_of(&other_namespace).contains(
            "it was made in namespace \"git\"; sign with `ssh-keygen -Y sign -n sluice-approval`"
        ),
        "{}",
        stderr_of(&other_namespace)
    );
}

/// A FIDO security key cannot be used here, so its signature is made in software exactly as
/// the key makes it (ed25519 over sha256(application) ‖ flags ‖ counter ‖ sha256(SSHSIG
/// data)): sluice's approvals gate and `ssh-keygen -Y verify` both accept it, and a private
/// `sk-` key file is refused with the way to sign with it.
#[test]
fn fido_sk_signatures_are_accepted_like_ssh_keygen_accepts_them() {
    use ssh_key::private::{KeypairData, SkEd25519 as SkEd25519Private};
    use ssh_key::public::{KeyData, SkEd25519};
    use ssh_key::sha2::{Digest, Sha256};
    use ssh_key::{Algorithm, HashAlg, PrivateKey, PublicKey, Signature, SshSig};

    fn raw_sign<K: ssh_key::SigningKey>(key: &K, data: &[u8]) -> Signature {
        key.try_sign(data).unwrap()
    }

    let bench = Bench::new();
    // the device's ed25519 key, which never leaves it
    let device = PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519).unwrap();
    let application = "ssh:";
    let device_public = *device.public_key().key_data().ed25519().unwrap();
    let public = SkEd25519::new(device_public, application);
    let key = PublicKey::new(KeyData::SkEd25519(public.clone()), "alice's security key");
    let key_file = bench.keys.join("alice-sk.pub");
    std::fs::write(&key_file, key.to_openssh().unwrap() + "\n").unwrap();
    bench.allow(&[("alice@example.com", &bench.keys.join("alice-sk"))]);

    let printed = bench
        .approve("alice@example.com")
        .arg("--print-payload")
        .assert()
        .success();
    let payload = printed.get_output().stdout.clone();
    let data = SshSig::signed_data(NAMESPACE, HashAlg::Sha512, &payload).unwrap();
    let (flags, counter) = (0x01u8, 7u32.to_be_bytes()); // user present, 7th use
    let mut to_sign = Sha256::digest(application).to_vec();
    to_sign.push(flags);
    to_sign.extend_from_slice(&counter);
    to_sign.extend_from_slice(&Sha256::digest(&data));
    let mut signature = raw_sign(&device, &to_sign).as_bytes().to_vec();
    signature.push(flags);
    signature.extend_from_slice(&counter);
    let sshsig = SshSig::new(
        key.key_data().clone(),
        NAMESPACE,
        HashAlg::Sha512,
        Signature::new(Algorithm::SkEd25519, signature).unwrap(),
    )
    .unwrap();
    let payload_path = bench.tmp.path().join("sk-approval.txt");
    let sig_path = bench.tmp.path().join("sk-approval.txt.sig");
    std::fs::write(&payload_path, &payload).unwrap();
    std::fs::write(&sig_path, sshsig.to_pem(ssh_key::LineEnding::LF).unwrap()).unwrap();
    sluice()
        .arg("approve")
        .arg(&bench.dir)
        .arg("--payload")
        .arg(&payload_path)
        .arg("--signature")
        .arg(&sig_path)
        .assert()
        .success();
    let verdict = bench.verdict();
    assert_eq!(
        accepted(&verdict),
        vec![(
            "alice@example.com".to_string(),
            key.fingerprint(HashAlg::Sha256).to_string()
        )]
    );
    let out = ssh_keygen_verifies(
        &bench,
        &approval_file(&bench, "alice@example.com"),
        "alice@example.com",
    );
    assert!(out.contains("ED25519-SK"), "{out}");

    // the private half of an sk key is a handle for the device: sluice says how to sign with it
    let handle = PrivateKey::new(
        KeypairData::SkEd25519(SkEd25519Private::new(public, 0x01, vec![1u8; 32]).unwrap()),
        "alice's security key",
    )
    .unwrap();
    let handle_file = bench.keys.join("alice-sk");
    std::fs::write(
        &handle_file,
        handle
            .to_openssh(ssh_key::LineEnding::LF)
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let refused = bench
        .approve("alice@example.com")
        .arg("--key")
        .arg(&handle_file)
        .assert()
        .code(2);
    assert!(
        stderr_of(&refused).contains(&format!(
            "{} is a FIDO security key (sk-ssh-ed25519@openssh.com): its private half stays on the device",
            handle_file.display()
        )) && stderr_of(&refused).contains("use --agent"),
        "{}",
        stderr_of(&refused)
    );
}
