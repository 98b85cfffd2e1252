//! The approvals gate end to end: keys made by `generate_ed25519`, approvals signed, written,
//! tampered with and evaluated in temporary folders.

use super::*;
use crate::package::{ApprovalPolicy, ReadFile};
use tempfile::TempDir;

const PACKAGE: &str = "demo-package";
const DIGEST: &str = "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111";
const OLD_DIGEST: &str = "bbbbbbbbbbbb2222222222222222222222222222222222222222222222222222";
const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";

/// A package folder with keys for alice, bob, carol and mallory.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        for name in ["alice", "bob", "carol", "mallory"] {
            generate_ed25519(&dir.path().join(name), &format!("{name}@example.com")).expect("key");
        }
        Fixture { dir }
    }

    fn key_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn public_key(&self, name: &str) -> PublicKey {
        PublicKey::read_openssh_file(&self.dir.path().join(format!("{name}.pub")))
            .expect("public key")
    }

    /// `principal namespaces="sluice-approval" key-of-name`.
    fn line(&self, principal: &str, name: &str) -> String {
        allowed_signers_line(principal, &self.public_key(name))
    }

    /// alice, bob and carol, each with their own key.
    fn team(&self) -> String {
        [
            self.line(ALICE, "alice"),
            self.line(BOB, "bob"),
            self.line(CAROL, "carol"),
        ]
        .join("\n")
    }

    fn approvals(&self) -> PathBuf {
        self.dir.path().join("approvals")
    }

    fn approve(&self, signer: &str, key: &str, decision: Decision, note: &str) -> PathBuf {
        self.approve_at(DIGEST, signer, key, decision, note)
    }

    fn approve_at(
        &self,
        digest: &str,
        signer: &str,
        key: &str,
        decision: Decision,
        note: &str,
    ) -> PathBuf {
        sign(PACKAGE, digest, signer, decision, note, &self.key_path(key))
            .expect("sign")
            .write_into(&self.approvals())
            .expect("write")
    }

    fn evaluate(
        &self,
        required: u32,
        allowed_signers: &str,
        operator: Option<&str>,
        operator_may_approve: bool,
    ) -> ApprovalVerdict {
        let policy = ApprovalPolicy {
            required,
            allowed_signers: Some(ReadFile {
                rel: PathBuf::from("allowed_signers"),
                bytes: allowed_signers.as_bytes().to_vec(),
            }),
            operator_may_approve,
            rollback_required: required,
        };
        evaluate(&policy, PACKAGE, DIGEST, operator, &self.approvals())
    }
}

/// Replaces text in a file, checking that it was there.
fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{from:?} not in {text}");
    std::fs::write(path, text.replace(from, to)).expect("write");
}

/// The one refusal's reason, after checking that its kind is the one its words say.
fn only_refusal(verdict: &ApprovalVerdict) -> &str {
    assert_eq!(verdict.refused.len(), 1, "{verdict:#?}");
    let refused = &verdict.refused[0];
    assert_eq!(refused.kind, kind_of(&refused.reason), "{refused:#?}");
    &refused.reason
}

/// The kind a refusal's words name, independently of the code that chose it.
fn kind_of(reason: &str) -> RefusalKind {
    let has = |words: &str| reason.contains(words);
    if reason.starts_with("not checked") {
        RefusalKind::NotChecked
    } else if reason.starts_with("separation of duties") {
        RefusalKind::SeparationOfDuties
    } else if reason.starts_with("stale:") || reason.starts_with("signed for ") {
        RefusalKind::OtherBinding
    } else if reason.starts_with("signed_at") {
        RefusalKind::BadSignedAt
    } else if has("edited or forged") || has("signature is for namespace") {
        RefusalKind::BadSignature
    } else if has("allowed_signers") {
        RefusalKind::SignerNotAllowed
    } else {
        RefusalKind::Unreadable
    }
}

#[test]
fn two_distinct_signers_round_trip_and_hold() {
    let fx = Fixture::new();
    let alice = fx.approve(ALICE, "alice", Decision::Pass, "");
    fx.approve(
        BOB,
        "bob",
        Decision::PassWithNotes,
        "watch the lock wait\nand the \\ backup",
    );
    assert_eq!(
        alice.file_name().and_then(|n| n.to_str()),
        Some("alice@example.com-pass-aaaaaaaaaaaa.approval")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&alice)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let loaded = load_dir(&fx.approvals());
    assert_eq!(loaded.len(), 2);
    let bob = loaded[1].1.as_ref().expect("bob's approval parses");
    assert_eq!(bob.note, "watch the lock wait\nand the \\ backup");
    assert!(bob.signature.starts_with("-----BEGIN SSH SIGNATURE-----"));

    let verdict = fx.evaluate(2, &fx.team(), None, false);
    assert!(verdict.holds, "{verdict:#?}");
    assert!(verdict.refused.is_empty());
    assert_eq!(
        verdict.summary,
        "2 of 2 required approvals: alice@example.com (pass), bob@example.com (pass-with-notes)"
    );
    assert!(verdict.accepted[0].key_fingerprint.starts_with("SHA256:"));
}

#[test]
fn a_decision_edited_after_signing_is_refused() {
    let fx = Fixture::new();
    let file = fx.approve(ALICE, "alice", Decision::Reject, "no");
    edit(&file, "decision = \"reject\"", "decision = \"pass\"");
    let verdict = fx.evaluate(1, &fx.team(), None, false);
    assert_eq!(
        only_refusal(&verdict),
        "signature does not verify: the file was edited or forged"
    );
    assert!(!verdict.holds);
    assert!(verdict.rejected_by.is_empty());
}

#[test]
fn a_note_edited_after_signing_is_refused() {
    let fx = Fixture::new();
    let file = fx.approve(ALICE, "alice", Decision::PassWithNotes, "only after 22:00");
    edit(&file, "only after 22:00", "any time");
    let verdict = fx.evaluate(1, &fx.team(), None, false);
    assert_eq!(
        only_refusal(&verdict),
        "signature does not verify: the file was edited or forged"
    );
    assert!(verdict.summary.starts_with(
        "0 of 1 required approval; refused: alice@example.com (signature does not verify"
    ));
}

#[test]
fn an_approval_of_another_digest_is_stale() {
    let fx = Fixture::new();
    fx.approve_at(OLD_DIGEST, ALICE, "alice", Decision::Pass, "");
    let verdict = fx.evaluate(1, &fx.team(), None, false);
    assert_eq!(
        only_refusal(&verdict),
        "stale: signed for digest bbbbbbbbbbbb…, the package is now aaaaaaaaaaaa…"
    );
    assert!(!verdict.holds);
}

#[test]
fn a_signer_missing_from_allowed_signers_is_refused() {
    let fx = Fixture::new();
    fx.approve("dave@example.com", "mallory", Decision::Pass, "");
    let verdict = fx.evaluate(1, &fx.team(), None, false);
    assert_eq!(
        only_refusal(&verdict),
        "signer dave@example.com is not in allowed_signers"
    );
}

#[test]
fn a_key_not_listed_for_the_signer_is_refused() {
    let fx = Fixture::new();
    // mallory's own key, and bob's key (listed, but for bob), both claiming to be alice
    for key in ["mallory", "bob"] {
        let approvals = fx.approvals();
        let _ = std::fs::remove_dir_all(&approvals);
        fx.approve(ALICE, key, Decision::Pass, "");
        let verdict = fx.evaluate(1, &fx.team(), None, false);
        let reason = only_refusal(&verdict);
        assert!(
            reason.starts_with(
                "signed with a key allowed_signers does not list for alice@example.com (SHA256:"
            ),
            "{key}: {reason}"
        );
        assert!(!verdict.holds);
    }
}

#[test]
fn a_namespaces_option_without_sluice_approval_is_refused() {
    let fx = Fixture::new();
    fx.approve(ALICE, "alice", Decision::Pass, "");
    let key = fx.public_key("alice").to_openssh().expect("openssh");
    let signers = format!("{ALICE} namespaces=\"git,file\" {key}");
    let verdict = fx.evaluate(1, &signers, None, false);
    assert_eq!(
        only_refusal(&verdict),
        "allowed_signers does not let alice@example.com sign in namespace \"sluice-approval\" (see its namespaces= option)"
    );
}

#[test]
fn a_signature_pasted_from_another_approval_is_refused() {
    let fx = Fixture::new();
    let other_package = sign(
        "other-package",
        DIGEST,
        ALICE,
        Decision::Pass,
        "",
        &fx.key_path("alice"),
    )
    .expect("sign");
    let bobs = sign(
        PACKAGE,
        OLD_DIGEST,
        BOB,
        Decision::Pass,
        "",
        &fx.key_path("bob"),
    )
    .expect("sign");
    for (signature, expected) in [
        (
            other_package.signature,
            "signature does not verify: the file was edited or forged",
        ),
        (
            bobs.signature,
            "signed with a key allowed_signers does not list for alice@example.com",
        ),
    ] {
        let _ = std::fs::remove_dir_all(fx.approvals());
        let forged = Approval {
            package: PACKAGE.into(),
            digest: DIGEST.into(),
            signer: ALICE.into(),
            decision: Decision::Pass,
            note: String::new(),
            signed_at: format_utc(OffsetDateTime::now_utc()),
            acknowledge: Vec::new(),
            signature,
        };
        forged.write_into(&fx.approvals()).expect("write");
        let verdict = fx.evaluate(1, &fx.team(), None, false);
        assert!(only_refusal(&verdict).starts_with(expected), "{verdict:#?}");
        assert!(!verdict.holds);
    }
}

#[test]
fn one_reject_blocks_even_with_enough_passes() {
    let fx = Fixture::new();
    fx.approve(ALICE, "alice", Decision::Pass, "");
    fx.approve(BOB, "bob", Decision::Pass, "");
    fx.approve(CAROL, "carol", Decision::Reject, "the rollback is untested");
    let verdict = fx.evaluate(2, &fx.team(), None, false);
    assert!(!verdict.holds);
    assert_eq!(verdict.rejected_by, [CAROL]);
    assert_eq!(
        verdict.summary,
        "rejected by carol@example.com (\"the rollback is untested\"); 2 of 2 required approvals: \
         alice@example.com (pass), bob@example.com (pass)"
    );
}

#[test]
fn a_valid_reject_blocks_even_when_no_approval_is_required() {
    let fx = Fixture::new();
    fx.approve(CAROL, "carol", Decision::Reject, "");
    let verdict = fx.evaluate(0, &fx.team(), None, false);
    assert!(!verdict.holds);
    assert_eq!(
        verdict.summary,
        "rejected by carol@example.com; approvals are not required ([approvals] required = 0)"
    );
}

#[test]
fn the_same_signer_twice_counts_once() {
    let fx = Fixture::new();
    fx.approve(ALICE, "alice", Decision::Pass, "");
    fx.approve(ALICE, "alice", Decision::PassWithNotes, "and again");
    let verdict = fx.evaluate(2, &fx.team(), None, false);
    assert_eq!(verdict.accepted.len(), 2);
    assert!(!verdict.holds);
    assert_eq!(
        verdict.summary,
        "1 of 2 required approvals: alice@example.com (pass)"
    );
}

#[test]
fn two_principals_sharing_one_key_count_once() {
    let fx = Fixture::new();
    let signers = fx.line("*@example.com", "alice");
    fx.approve(ALICE, "alice", Decision::Pass, "");
    fx.approve(BOB, "alice", Decision::Pass, "");
    let verdict = fx.evaluate(2, &signers, None, false);
    assert_eq!(verdict.accepted.len(), 2);
    assert!(!verdict.holds);
    assert!(
        verdict.summary.starts_with("1 of 2 required approvals"),
        "{}",
        verdict.summary
    );
}

#[test]
fn the_operator_may_not_approve_their_own_run_unless_allowed() {
    let fx = Fixture::new();
    fx.approve(ALICE, "alice", Decision::Pass, "");
    fx.approve(BOB, "bob", Decision::Pass, "");

    let refused = fx.evaluate(2, &fx.team(), Some("Alice@Example.com"), false);
    assert!(!refused.holds);
    assert_eq!(
        only_refusal(&refused),
        "separation of duties: the operator Alice@Example.com may not approve their own run \
         ([approvals] operator_may_approve = false)"
    );
    assert_eq!(refused.refused[0].signer.as_deref(), Some(ALICE));

    let allowed = fx.evaluate(2, &fx.team(), Some(ALICE), true);
    assert!(allowed.holds, "{allowed:#?}");
}

#[test]
fn a_wildcard_principal_matches() {
    let fx = Fixture::new();
    fx.approve(ALICE, "alice", Decision::Pass, "");
    let verdict = fx.evaluate(1, &fx.line("*@example.com", "alice"), None, false);
    assert!(verdict.holds, "{verdict:#?}");
    let elsewhere = fx.evaluate(1, &fx.line("*@example.org", "alice"), None, false);
    assert_eq!(
        only_refusal(&elsewhere),
        "signer alice@example.com is not in allowed_signers"
    );
}

#[test]
fn a_valid_before_in_the_past_excludes_the_key() {
    let fx = Fixture::new();
    fx.approve(ALICE, "alice", Decision::Pass, "");
    let key = fx.public_key("alice").to_openssh().expect("openssh");
    let verdict = fx.evaluate(
        1,
        &format!("{ALICE} valid-before=\"20200101Z\" {key}"),
        None,
        false,
    );
    assert!(only_refusal(&verdict)
        .starts_with("allowed_signers lists no key for alice@example.com valid at "));
    assert!(!verdict.holds);
}

#[test]
fn a_signed_at_in_the_future_is_refused() {
    let fx = Fixture::new();
    let later = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let mut key = SigningKey::from_file(&fx.key_path("alice"), &mut NoPassphrase).expect("key");
    let approval = unsigned_at(PACKAGE, DIGEST, ALICE, Decision::Pass, "", later)
        .and_then(|a| a.signed_by(&mut key))
        .expect("sign");
    approval.write_into(&fx.approvals()).expect("write");
    let verdict = fx.evaluate(1, &fx.team(), None, false);
    assert_eq!(
        only_refusal(&verdict),
        format!("signed_at {} is in the future", approval.signed_at)
    );
}

#[test]
fn an_allowed_signers_error_names_the_line() {
    let fx = Fixture::new();
    fx.approve(ALICE, "alice", Decision::Pass, "");
    let signers = format!("{}\nbob@example.com\n", fx.line(ALICE, "alice"));
    let verdict = fx.evaluate(1, &signers, None, false);
    assert!(!verdict.holds);
    assert_eq!(
        verdict.summary,
        "1 approval is required but none can be checked: allowed_signers file allowed_signers, line 2: \
         expected a key (KEYTYPE BASE64) after the principals `bob@example.com`, found nothing; \
         1 approval file not checked"
    );
    assert!(only_refusal(&verdict)
        .starts_with("not checked: allowed_signers file allowed_signers, line 2:"));
}

#[test]
fn no_allowed_signers_file_holds_only_when_nothing_is_required() {
    let fx = Fixture::new();
    let policy = |required| ApprovalPolicy {
        required,
        allowed_signers: None,
        operator_may_approve: false,
        rollback_required: required,
    };
    let needed = evaluate(&policy(1), PACKAGE, DIGEST, None, &fx.approvals());
    assert!(!needed.holds);
    assert_eq!(
        needed.summary,
        "1 approval is required but none can be checked: the package names no allowed_signers file \
         ([approvals] allowed_signers)"
    );
    let not_needed = evaluate(&policy(0), PACKAGE, DIGEST, None, &fx.approvals());
    assert!(not_needed.holds);
    assert_eq!(
        not_needed.summary,
        "approvals are not required ([approvals] required = 0)"
    );
}

#[test]
fn load_dir_reports_files_that_are_not_approvals() {
    let fx = Fixture::new();
    assert!(load_dir(&fx.approvals()).is_empty());
    std::fs::create_dir_all(fx.approvals()).expect("mkdir");
    std::fs::write(fx.approvals().join("README.md"), "not read").expect("write");
    std::fs::write(
        fx.approvals().join("a.approval"),
        "format = \"sluice-approval-v1\"\nsigner = 3\n",
    )
    .expect("write");
    std::fs::write(fx.approvals().join("b.approval"), "format = \"other\"\npackage = \"p\"\ndigest = \"d\"\nsigner = \"s\"\ndecision = \"pass\"\nsigned_at = \"2025-01-31T12:00:00Z\"\nsignature = \"x\"\n").expect("write");
    std::fs::write(fx.approvals().join("c.approval"), "format = \"sluice-approval-v1\"\npackage = \"p\"\ndigest = \"d\"\nsigner = \"s\"\ndecision = \"maybe\"\nsigned_at = \"2025-01-31T12:00:00Z\"\nsignature = \"x\"\n").expect("write");
    let loaded = load_dir(&fx.approvals());
    let reasons: Vec<String> = loaded
        .iter()
        .map(|(_, r)| r.clone().err().unwrap_or_default())
        .collect();
    assert_eq!(loaded.len(), 3, "{reasons:?}");
    assert_eq!(
        reasons[0],
        "not a sluice approval: line 2: invalid type: integer `3`, expected a string"
    );
    assert_eq!(
        reasons[1],
        "not a sluice approval: format is \"other\", expected \"sluice-approval-v1\""
    );
    assert!(
        reasons[2].starts_with("not a sluice approval: line 5: unknown variant `maybe`"),
        "{}",
        reasons[2]
    );
}

#[test]
fn an_existing_approval_is_never_overwritten() {
    let fx = Fixture::new();
    let first = fx.approve(ALICE, "alice", Decision::Pass, "");
    let again = sign(
        PACKAGE,
        DIGEST,
        ALICE,
        Decision::Pass,
        "",
        &fx.key_path("alice"),
    )
    .expect("sign");
    let err = again.write_into(&fx.approvals()).expect_err("must refuse");
    assert_eq!(
        err.to_string(),
        format!("{} already exists: an approval is never overwritten (remove the file first to replace it)", first.display())
    );
}

#[test]
fn signing_errors_name_the_key_file() {
    let fx = Fixture::new();
    let try_sign = |key: &Path| {
        sign(PACKAGE, DIGEST, ALICE, Decision::Pass, "", key)
            .map(|_| ())
            .expect_err("must fail")
            .to_string()
    };
    let missing = fx.dir.path().join("missing");
    assert!(try_sign(&missing)
        .starts_with(&format!("cannot read the key file {}: ", missing.display())));
    let garbage = fx.dir.path().join("garbage");
    std::fs::write(&garbage, "hello").expect("write");
    assert!(try_sign(&garbage).starts_with(&format!(
        "{} is not an OpenSSH private key (",
        garbage.display()
    )));
    let public = fx.dir.path().join("alice.pub");
    assert_eq!(
        try_sign(&public),
        format!(
            "{} is a public key: give the private key file (the one without .pub)",
            public.display()
        )
    );
    let encrypted = fx.dir.path().join("encrypted");
    std::fs::write(&encrypted, ENCRYPTED_KEY).expect("write");
    assert_eq!(
        try_sign(&encrypted),
        format!(
            "the key file {} is encrypted with a passphrase and it cannot be asked: no way to ask for it was given",
            encrypted.display()
        )
    );
    let binary = fx.dir.path().join("binary");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).expect("write");
    assert!(try_sign(&binary).contains("not an OpenSSH private key (the file is not text)"));
}

#[test]
fn sign_checks_its_arguments() {
    let fx = Fixture::new();
    let key = fx.key_path("alice");
    let err = |package: &str, digest: &str, signer: &str, decision, note: &str| {
        sign(package, digest, signer, decision, note, &key)
            .map(|_| ())
            .expect_err("must fail")
            .to_string()
    };
    assert!(err(PACKAGE, "abc", ALICE, Decision::Pass, "")
        .starts_with("invalid digest `abc`: expected 64 lowercase hex digits"));
    assert!(err(PACKAGE, DIGEST, "alice bob", Decision::Pass, "")
        .starts_with("invalid signer `alice bob`"));
    assert!(err(PACKAGE, DIGEST, "*@example.com", Decision::Pass, "")
        .starts_with("invalid signer `*@example.com`"));
    assert!(
        err("Bad Id", DIGEST, ALICE, Decision::Pass, "").starts_with("invalid package id `Bad Id`")
    );
    assert_eq!(
        err(PACKAGE, DIGEST, ALICE, Decision::PassWithNotes, " "),
        "a pass-with-notes approval needs a note saying what the notes are"
    );
}

#[test]
fn generate_ed25519_never_overwrites_a_key() {
    let fx = Fixture::new();
    let err = generate_ed25519(&fx.key_path("alice"), "again").expect_err("must refuse");
    assert_eq!(
        err.to_string(),
        format!(
            "{} already exists: a key file is never overwritten",
            fx.key_path("alice").display()
        )
    );
    let line = fx.line(ALICE, "alice");
    assert!(
        line.starts_with(
            "alice@example.com namespaces=\"sluice-approval,sluice-rollback\" ssh-ed25519 AAAA"
        ),
        "{line}"
    );
    assert_eq!(line.split_whitespace().count(), 4, "no comment: {line}");
}

#[test]
fn decisions_read_and_print_as_words() {
    for (word, decision) in [
        ("pass", Decision::Pass),
        ("pass-with-notes", Decision::PassWithNotes),
        ("reject", Decision::Reject),
    ] {
        assert_eq!(word.parse::<Decision>().ok(), Some(decision));
        assert_eq!(decision.to_string(), word);
    }
    let err = "maybe"
        .parse::<Decision>()
        .map(|_| ())
        .expect_err("must fail");
    assert_eq!(
        err.to_string(),
        "invalid decision `maybe`: expected pass, pass-with-notes or reject"
    );
}

#[test]
fn the_signed_message_escapes_newlines_so_fields_cannot_be_forged() {
    let approval = Approval {
        package: PACKAGE.into(),
        digest: DIGEST.into(),
        signer: ALICE.into(),
        decision: Decision::Reject,
        note: "a\\nb\nsigned_at=x".into(),
        signed_at: "2025-01-31T12:00:00Z".into(),
        acknowledge: Vec::new(),
        signature: String::new(),
    };
    assert_eq!(
        approval.signed_message(),
        format!(
            "sluice-approval-v1\npackage={PACKAGE}\ndigest={DIGEST}\nsigner={ALICE}\ndecision=reject\n\
             signed_at=2025-01-31T12:00:00Z\nnote=a\\\\nb\\nsigned_at=x\n"
        )
    );
    assert_eq!(
        parse_utc("2025-01-31T12:00:00Z").map(format_utc).as_deref(),
        Some("2025-01-31T12:00:00Z")
    );
    assert_eq!(parse_utc("2025-02-30T12:00:00Z"), None);
}

/// Answers with the given passphrases in turn, then gives up; counts the questions.
struct Typed {
    answers: Vec<&'static str>,
    asked: u32,
}

impl Passphrase for Typed {
    fn ask(
        &mut self,
        _path: &Path,
        attempt: u32,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, String> {
        self.asked += 1;
        assert_eq!(attempt, self.asked);
        Ok(self
            .answers
            .get(attempt as usize - 1)
            .map(|a| zeroize::Zeroizing::new(a.as_bytes().to_vec())))
    }
}

#[test]
fn an_encrypted_key_is_decrypted_with_its_passphrase_and_signs() {
    let fx = Fixture::new();
    let path = fx.dir.path().join("encrypted");
    std::fs::write(&path, ENCRYPTED_KEY).expect("write");
    let mut typed = Typed {
        answers: vec!["wrong", "secret"],
        asked: 0,
    };
    let mut key = SigningKey::from_file(&path, &mut typed).expect("decrypts on the 2nd try");
    assert_eq!(typed.asked, 2);
    assert_eq!(key.describe(), format!("the key file {}", path.display()));
    let approval = sign_with(PACKAGE, DIGEST, ALICE, Decision::Pass, "", &mut key).expect("sign");
    approval.write_into(&fx.approvals()).expect("write");
    let verdict = fx.evaluate(
        1,
        &allowed_signers_line(ALICE, key.public_key()),
        None,
        false,
    );
    assert!(verdict.holds, "{verdict:#?}");

    let mut wrong = Typed {
        answers: vec!["wrong", "also wrong"],
        asked: 0,
    };
    let err = SigningKey::from_file(&path, &mut wrong)
        .map(|_| ())
        .expect_err("must fail");
    assert_eq!(wrong.asked, 3, "asked until it gave up");
    let message = err.to_string();
    assert_eq!(
        message,
        format!(
            "wrong passphrase for the key file {}: it does not decrypt the key; nothing was signed",
            path.display()
        )
    );
    assert!(!message.contains("wrong\"") && !message.contains("also wrong"));
}

#[test]
fn a_payload_reads_back_into_the_approval_it_signs() {
    let approval = unsigned_at(
        PACKAGE,
        DIGEST,
        ALICE,
        Decision::PassWithNotes,
        "two\nlines\\and a backslash",
        OffsetDateTime::UNIX_EPOCH,
    )
    .expect("fields");
    let payload = approval.signed_message();
    let path = Path::new("approval.txt");
    assert_eq!(
        Approval::from_payload(path, payload.as_bytes()).expect("reads"),
        approval
    );
    let err = |text: &str| {
        Approval::from_payload(path, text.as_bytes())
            .map(|_| ())
            .expect_err("must fail")
            .to_string()
    };
    assert_eq!(
        err(payload.trim_end()),
        "approval.txt is not a sluice approval payload: its last line does not end in a newline"
    );
    assert_eq!(
        err(&payload.replace('\n', "\r\n")),
        "approval.txt is not a sluice approval payload: it has a carriage return (\\r): lines end in \\n alone"
    );
    assert_eq!(
        err(&payload.replace("signer=", "signer =")),
        "approval.txt is not a sluice approval payload: line 4 is `signer =alice@example.com`, expected `signer=…`"
    );
    assert_eq!(
        err(&payload.replace("decision=pass-with-notes", "decision=maybe")),
        "approval.txt is not a sluice approval payload: line 5: invalid decision `maybe`: expected pass, pass-with-notes or reject"
    );
    assert!(err(&payload.replace("note=", "note=\\x"))
        .ends_with("line 7: a `\\` must be followed by `\\` or `n`"));
    assert!(
        err(&payload.replace("1970-01-01T00:00:00Z", "1970-01-01 00:00"))
            .contains("line 6: signed_at `1970-01-01 00:00` is not a UTC time")
    );
    assert!(err("sluice-approval-v1\npackage=x\n").contains("it has 2 lines, expected 7"));
    assert!(
        err(&payload.replace("sluice-approval-v1", "sluice-approval-v2"))
            .contains("line 1 is `sluice-approval-v2`")
    );
    assert_eq!(
        err(&payload.replace("digest=aaaa", "digest=AAAA")),
        "invalid digest `AAAAaaaaaaaa1111111111111111111111111111111111111111111111111111`: expected 64 lowercase hex digits (`sluice digest PKG`)"
    );
}

#[test]
fn a_signature_file_must_be_an_sshsig_in_the_approvals_namespace() {
    let fx = Fixture::new();
    let approval = unsigned(PACKAGE, DIGEST, ALICE, Decision::Pass, "").expect("fields");
    let sig = Path::new("approval.txt.sig");
    let err = |bytes: &[u8]| {
        approval
            .clone()
            .with_signature_file(sig, bytes)
            .map(|_| ())
            .expect_err("must fail")
            .to_string()
    };
    assert!(err(b"hello").starts_with(
        "approval.txt.sig is not an SSH signature for an approval: expected `-----BEGIN SSH SIGNATURE-----`"
    ));
    let key = PrivateKey::read_openssh_file(&fx.key_path("alice")).expect("key");
    let git = key
        .sign("git", HashAlg::Sha512, approval.signed_message().as_bytes())
        .and_then(|s| s.to_pem(LineEnding::LF))
        .expect("sign");
    assert_eq!(
        err(git.as_bytes()),
        "approval.txt.sig is not an SSH signature for an approval: it was made in namespace \"git\"; sign with `ssh-keygen -Y sign -n sluice-approval`"
    );
    let ours = key
        .sign(
            NAMESPACE,
            HashAlg::Sha512,
            approval.signed_message().as_bytes(),
        )
        .and_then(|s| s.to_pem(LineEnding::LF))
        .expect("sign");
    let signed = approval
        .clone()
        .with_signature_file(sig, ours.as_bytes())
        .expect("attached");
    signed.write_into(&fx.approvals()).expect("write");
    assert!(fx.evaluate(1, &fx.team(), None, false).holds);
}

#[test]
fn a_security_key_file_is_refused_with_the_way_to_sign_with_it() {
    let fx = Fixture::new();
    let alice = PrivateKey::read_openssh_file(&fx.key_path("alice")).expect("key");
    let public = ssh_key::public::SkEd25519::new(
        *alice.public_key().key_data().ed25519().expect("ed25519"),
        "ssh:",
    );
    let handle = PrivateKey::new(
        ssh_key::private::KeypairData::SkEd25519(
            ssh_key::private::SkEd25519::new(public, 0x01, vec![7u8; 16]).expect("handle"),
        ),
        "yubikey",
    )
    .expect("key");
    let path = fx.dir.path().join("id_ed25519_sk");
    std::fs::write(
        &path,
        handle
            .to_openssh(LineEnding::LF)
            .expect("encode")
            .as_bytes(),
    )
    .expect("write");
    let err = sign(PACKAGE, DIGEST, ALICE, Decision::Pass, "", &path)
        .map(|_| ())
        .expect_err("must fail")
        .to_string();
    assert!(err.starts_with(&format!(
        "{} is a FIDO security key (sk-ssh-ed25519@openssh.com): its private half stays on the device",
        path.display()
    )), "{err}");
}

/// An ed25519 key encrypted with the passphrase `secret` by `ssh-keygen -N secret`.
const ENCRYPTED_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABAZvsRTQn
aTE19WqeyoskWiAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIOOjFwRyKTO6kou2
4fy3moAZUe12/YiQTC2fy9p7SK9SAAAAkJqW1Fy1sf48TAdym2dq+/5Z4Vvhj5TjxQIDTM
IVywidPp1C22f0QcsDBdZFVy4Njj01ZPC28869V56pDq3C2xhLKX8B7KMylFkm0Jj2QAyN
vJ1qL5R5SIdbV4+p4Y6MqzstC8XhefX+9s2gR8Pv6HmCDNEuZVkNw7BG1F92EZHSFkGJQb
R6nBmFz+7KLwGavg==
-----END OPENSSH PRIVATE KEY-----
";

impl Fixture {
    /// An approval by `signer` acknowledging `check = observed`, written.
    fn acknowledge(&self, signer: &str, key: &str, check: &str, observed: &str) -> PathBuf {
        let mut signing = SigningKey::from_file(&self.key_path(key), &mut NoPassphrase).unwrap();
        unsigned(PACKAGE, DIGEST, signer, Decision::Pass, "drift explained")
            .and_then(|a| {
                a.acknowledging(vec![Acknowledgement {
                    check: check.into(),
                    observed: observed.into(),
                }])
            })
            .and_then(|a| a.signed_by(&mut signing))
            .expect("sign")
            .write_into(&self.approvals())
            .expect("write")
    }
}

/// A failed `P-8` result that returned `observed`.
fn failed(observed: &str) -> crate::checks::CheckResult {
    crate::checks::CheckResult {
        id: "P-8".into(),
        holds: false,
        output: format!("count={observed}"),
        detail: Some(format!("expected 86, got '{observed}'")),
        observed: Some(observed.into()),
        acknowledged: None,
    }
}

#[test]
fn an_acknowledgement_is_signed_beside_the_plain_approval_and_reads_back() {
    let fx = Fixture::new();
    fx.approve(ALICE, "alice", Decision::Pass, "");
    let file = fx.acknowledge(ALICE, "alice", "P-8", "87");
    assert_eq!(
        file.file_name().and_then(|n| n.to_str()),
        Some("alice@example.com-pass-aaaaaaaaaaaa-ack-P-8.approval")
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("[[acknowledge]]\ncheck = \"P-8\"\nobserved = \"87\""),
        "{text}"
    );
    let read = Approval::from_toml(&text).unwrap();
    assert!(read
        .signed_message()
        .ends_with("note=drift explained\nacknowledge=P-8=87\n"));
    // the payload signed by hand reads back with its acknowledgement
    let payload = read.signed_message();
    let back = Approval::from_payload(Path::new("p.txt"), payload.as_bytes()).unwrap();
    assert_eq!(back.acknowledge, read.acknowledge);
    let verdict = fx.evaluate(1, &fx.team(), None, false);
    assert!(verdict.holds, "{verdict:#?}");
    assert_eq!(verdict.accepted.len(), 2);
    // the value is under the signature: 87 edited to 88 does not verify
    edit(&file, "observed = \"87\"", "observed = \"88\"");
    let verdict = fx.evaluate(1, &fx.team(), None, false);
    assert!(only_refusal(&verdict).contains("signature does not verify"));
}

#[test]
fn a_deviation_passes_with_enough_distinct_signers_of_exactly_its_value() {
    let fx = Fixture::new();
    fx.acknowledge(ALICE, "alice", "P-8", "87");
    let mut results = vec![failed("87")];
    acknowledge::apply(&mut results, &fx.evaluate(2, &fx.team(), None, false));
    assert!(!results[0].holds);
    let detail = results[0].detail.clone().unwrap();
    assert!(
        detail.contains("1 of 2 required acknowledgement(s) of P-8=87: alice@example.com"),
        "{detail}"
    );

    // bob acknowledges another value: still one of two
    fx.acknowledge(BOB, "bob", "P-8", "88");
    let mut results = vec![failed("87")];
    acknowledge::apply(&mut results, &fx.evaluate(2, &fx.team(), None, false));
    assert!(!results[0].holds);
    assert!(results[0]
        .detail
        .clone()
        .unwrap()
        .contains("88 (bob@example.com)"));

    // carol acknowledges 87: two distinct signers, it passes
    fx.acknowledge(CAROL, "carol", "P-8", "87");
    let mut results = vec![failed("87")];
    acknowledge::apply(&mut results, &fx.evaluate(2, &fx.team(), None, false));
    assert!(results[0].holds);
    let acknowledged = results[0].acknowledged.clone().unwrap();
    assert_eq!(acknowledged.observed, "87");
    let signers: Vec<&str> = acknowledged
        .signers
        .iter()
        .map(|s| s.signer.as_str())
        .collect();
    assert_eq!(signers, [ALICE, CAROL]);

    // the same acknowledgements do not pass 88, nor a value with only bob
    let mut results = vec![failed("89")];
    acknowledge::apply(&mut results, &fx.evaluate(2, &fx.team(), None, false));
    assert!(!results[0].holds);
    assert!(results[0]
        .detail
        .clone()
        .unwrap()
        .contains("--acknowledge P-8=89"));
}

#[test]
fn one_signer_twice_or_the_operator_is_not_enough() {
    let fx = Fixture::new();
    fx.acknowledge(ALICE, "alice", "P-8", "87");
    // alice again, under another principal sharing her key, does not count twice
    let shared = format!("{}\n{}", fx.team(), fx.line("alice2@example.com", "alice"));
    fx.acknowledge("alice2@example.com", "alice", "P-8", "87");
    let mut results = vec![failed("87")];
    acknowledge::apply(&mut results, &fx.evaluate(2, &shared, None, false));
    assert!(!results[0].holds, "{results:#?}");
    // the operator's own acknowledgement is refused with their approval
    fx.acknowledge(BOB, "bob", "P-8", "87");
    let mut results = vec![failed("87")];
    acknowledge::apply(&mut results, &fx.evaluate(2, &shared, Some(BOB), false));
    assert!(!results[0].holds, "{results:#?}");
    let mut results = vec![failed("87")];
    acknowledge::apply(&mut results, &fx.evaluate(2, &shared, Some(CAROL), false));
    assert!(results[0].holds, "{results:#?}");
}

#[test]
fn an_acknowledgement_needs_a_note_an_approving_decision_and_one_entry_per_check() {
    let ack = |check: &str| Acknowledgement {
        check: check.into(),
        observed: "1".into(),
    };
    let err = unsigned(PACKAGE, DIGEST, ALICE, Decision::Pass, "")
        .and_then(|a| a.acknowledging(vec![ack("P-8")]))
        .unwrap_err();
    assert!(err.to_string().contains("needs --note"), "{err}");
    let err = unsigned(PACKAGE, DIGEST, ALICE, Decision::Reject, "no")
        .and_then(|a| a.acknowledging(vec![ack("P-8")]))
        .unwrap_err();
    assert!(err.to_string().contains("approving decision"), "{err}");
    let err = unsigned(PACKAGE, DIGEST, ALICE, Decision::Pass, "n")
        .and_then(|a| a.acknowledging(vec![ack("P-8"), ack("P-8")]))
        .unwrap_err();
    assert!(err.to_string().contains("given twice"), "{err}");
}
