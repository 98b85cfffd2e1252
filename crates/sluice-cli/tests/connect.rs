//! Reaching a target the way libpq does (SPEC §10), against real servers the tests start: a
//! TLS-only server with a CA and certificates made here, a plain TCP server without TLS, the
//! passfile, service files, a password command, client certificates.
mod support;

use support::tls::{plain_tcp_server, tls_server, TlsServer, CERT_USER, PASSWORD};
use support::*;

/// `sluice review PKG --target T --format json` with `envs`: the exit code and the document.
fn review_json(
    ready: &Ready,
    target: &str,
    envs: &[(&str, &str)],
) -> (i32, serde_json::Value, String) {
    let mut cmd = sluice();
    cmd.arg("review")
        .arg(&ready.dir)
        .args(["--target", target, "--format", "json"])
        .env_remove("PGPASSWORD");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), doc, stderr)
}

/// Every session of a live review or a run, as recorded.
fn sessions(connection: &serde_json::Value) -> Vec<serde_json::Value> {
    connection["sessions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Apply to `target` with `envs`, expecting the gate `gate` to refuse before the migration
/// (exit 3) and the target to be unchanged; stderr.
fn apply_refused(
    server: &TlsServer,
    ready: &Ready,
    target: &str,
    envs: &[(&str, &str)],
    gate: &str,
) -> String {
    let before = fingerprint(&server.socket_conninfo);
    let mut cmd = apply_cmd(ready, target);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let assert = cmd.assert().code(3);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains(&format!("error[{gate}]")),
        "want error[{gate}]:\n{stderr}"
    );
    assert_eq!(
        before,
        fingerprint(&server.socket_conninfo),
        "the target changed"
    );
    stderr
}

/// Whether client tools that speak TLS and are new enough for the server exist here (Debian's
/// 15 with a 15 server; none for 16+ on this image: PyPI's pg_dump 18 has no TLS).
fn tls_tools_for(major: u32) -> bool {
    sluice::backup::find_tools_for(None, major, true).is_ok()
}

#[test]
fn apply_and_rehearse_over_require_on_a_tls_only_server() {
    let server = tls_server();
    let ready = ready_package(&server.cluster);
    approve_all(&ready);
    let target = server.conninfo("sslmode=require");
    let major = server.cluster.binaries().major;
    if !tls_tools_for(major) {
        // never handed to a tool that would talk in cleartext: refused before anything
        let stderr = apply_refused(
            &server,
            &ready,
            &target,
            &[("PGPASSWORD", PASSWORD)],
            "client-version",
        );
        assert!(stderr.contains("speaks TLS"), "{stderr}");
        eprintln!("no TLS-capable pg_dump >= {major} here: checked the refusal instead");
        return;
    }
    // both ways into the rehearsal cluster: the dump restored as it is written, and after it
    for restore in ["streamed", "after-dump"] {
        let mut rehearse = sluice();
        rehearse
            .arg("rehearse")
            .arg(&ready.dir)
            .args(["--target", &target, "--restore", restore, "--evidence"])
            .arg(ready.tmp.path().join("rehearsal-evidence"))
            .env("PGPASSWORD", PASSWORD);
        if let Some(bindir) = sluice_testkit::server_bindir() {
            rehearse.arg("--pg-bindir").arg(bindir);
        }
        let assert = rehearse.assert().success();
        let said = match restore {
            "streamed" => "restored as it was written",
            _ => "restored directus with pg_restore",
        };
        assert!(
            stderr_of(&assert).contains(said),
            "{restore}: want `{said}`"
        );
    }
    let assert = apply_cmd(&ready, &target)
        .env("PGPASSWORD", PASSWORD)
        .assert()
        .success();
    assert!(stderr_of(&assert).contains("rows changed 86/86"));
    let run = run_json(&last_run(&ready));
    let sessions = sessions(&run["connection"]);
    assert!(sessions.len() >= 2, "{sessions:?}");
    for s in &sessions {
        assert_eq!(s["ssl"], true, "{s}");
        assert_eq!(s["sslmode"], "require");
        assert_eq!(s["verified"], "none");
        assert!(s["protocol"].as_str().unwrap().starts_with("TLSv1."), "{s}");
    }
    // the backup went over TLS too: the server rejects cleartext TCP, so pg_dump could not
    // have read the database any other way
    let client_version = &run["steps"][6];
    assert_eq!(client_version["name"], "client-version");
    assert!(
        client_version["detail"]
            .as_str()
            .unwrap()
            .ends_with("over TLS"),
        "{client_version}"
    );
    assert!(run["backup"]["bytes"].as_u64().unwrap() > 0);
    let report = std::fs::read_to_string(last_run(&ready).join("report.md")).unwrap();
    assert!(report.contains("| connection | TLS TLSv1."), "{report}");
    assert!(
        report.contains("certificate not verified; sslmode=require"),
        "{report}"
    );
}

#[test]
fn verify_full_checks_the_chain_and_the_host_name() {
    let server = tls_server();
    let ready = ready_package(&server.cluster);
    approve_all(&ready);
    let ca = server.file("ca.crt").display().to_string();
    let pw = [("PGPASSWORD", PASSWORD)];

    let good = server.conninfo(&format!("sslmode=verify-full sslrootcert={ca}"));
    let (code, doc, stderr) = review_json(&ready, &good, &pw);
    assert_eq!(code, 0, "{stderr}");
    let s = &sessions(&doc["live"]["connection"])[0];
    assert_eq!(s["ssl"], true);
    assert_eq!(s["verified"], "chain-and-host-name");

    let other_ca = server.file("other-ca.crt").display().to_string();
    let wrong_ca = server.conninfo(&format!("sslmode=verify-full sslrootcert={other_ca}"));
    let stderr = apply_refused(&server, &ready, &wrong_ca, &pw, "exclusive-run");
    assert!(
        stderr.contains(&format!("not trusted by sslrootcert \"{other_ca}\"")),
        "{stderr}"
    );

    // the certificate names localhost only
    let by_address = format!(
        "host=127.0.0.1 port={} dbname=directus user=workflow_admin sslmode=verify-full sslrootcert={ca}",
        server.port()
    );
    let stderr = apply_refused(&server, &ready, &by_address, &pw, "exclusive-run");
    assert!(
        stderr.contains("does not name the host \"127.0.0.1\""),
        "{stderr}"
    );

    // a CRL that revokes the server's certificate
    let crl = server.file("revoked.crl").display().to_string();
    let revoked = format!("{good} sslcrl={crl}");
    let stderr = apply_refused(&server, &ready, &revoked, &pw, "exclusive-run");
    assert!(stderr.contains("certificate revoked"), "{stderr}");

    // verify-ca checks the chain only: the address is fine
    let chain_only = by_address.replace("verify-full", "verify-ca");
    let (code, doc, stderr) = review_json(&ready, &chain_only, &pw);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(sessions(&doc["live"]["connection"])[0]["verified"], "chain");
}

#[test]
fn require_never_falls_back_to_cleartext_and_prefer_says_it_did() {
    let (cluster, socket_conninfo) = plain_tcp_server();
    let ready = ready_package(&cluster);
    approve_all(&ready);
    let tcp = format!(
        "host=127.0.0.1 port={} dbname=directus user=workflow_admin",
        cluster.port()
    );
    let before = fingerprint(&socket_conninfo);
    let assert = apply_cmd(&ready, &tcp)
        .env("PGSSLMODE", "require")
        .assert()
        .code(3);
    let stderr = stderr_of(&assert);
    assert!(stderr.contains("error[exclusive-run]"), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("tls") || stderr.contains("SSL"),
        "{stderr}"
    );
    assert_eq!(before, fingerprint(&socket_conninfo));
    let run = run_json(&last_run(&ready));
    assert!(
        sessions(&run["connection"]).is_empty(),
        "no session was opened"
    );

    let assert = apply_cmd(&ready, &tcp)
        .env("PGSSLMODE", "prefer")
        .assert()
        .success();
    let stderr = stderr_of(&assert);
    assert!(stderr.contains("rows changed 86/86"), "{stderr}");
    let run = run_json(&last_run(&ready));
    let sessions = sessions(&run["connection"]);
    assert!(!sessions.is_empty());
    assert!(
        sessions
            .iter()
            .all(|s| s["ssl"] == false && s["sslmode"] == "prefer"),
        "{sessions:?}"
    );
    assert!(run["connection"]["settings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "sslmode=prefer (from PGSSLMODE)"));
    let report = std::fs::read_to_string(last_run(&ready).join("report.md")).unwrap();
    assert!(
        report.contains("| connection | cleartext (not encrypted); sslmode=prefer |"),
        "{report}"
    );
}

#[test]
fn a_client_certificate_logs_in_the_cert_role() {
    let server = tls_server();
    let ready = ready_package(&server.cluster);
    let (ca, crt, key) = (
        server.file("ca.crt"),
        server.file("client.crt"),
        server.file("client.key"),
    );
    let target = format!(
        "host=localhost port={} dbname=directus user={CERT_USER} sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
        server.port(),
        ca.display(),
        crt.display(),
        key.display()
    );
    // the package pins role workflow_admin: identity does not hold for certuser (exit 3), but
    // the session was opened with the certificate and reads the target
    let (code, doc, stderr) = review_json(&ready, &target, &[]);
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(doc["live"]["facts"]["role"], CERT_USER, "{stderr}");
    assert_eq!(
        sessions(&doc["live"]["connection"])[0]["verified"],
        "chain-and-host-name"
    );

    // without the certificate the server refuses the role
    let without = target.split(" sslcert=").next().unwrap().to_string();
    let (code, _, stderr) = review_json(&ready, &without, &[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");

    // a key others may read is refused before connecting, as libpq does
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, stderr) = review_json(&ready, &target, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("has group or world access"), "{stderr}");
}

#[test]
fn the_passfile_is_used_and_ignored_when_others_may_read_it() {
    use std::os::unix::fs::PermissionsExt;
    let server = tls_server();
    let ready = ready_package(&server.cluster);
    let home = tempfile::tempdir().unwrap();
    let pgpass = home.path().join(".pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "# first a line that does not match\nlocalhost:{}:otherdb:workflow_admin:wrong\nlocalhost:{}:*:workflow_admin:{PASSWORD}\n",
            server.port(),
            server.port()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let target = server.conninfo("sslmode=require");
    let home_env = home.path().to_str().unwrap();
    let (code, doc, stderr) = review_json(&ready, &target, &[("HOME", home_env)]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(doc["live"]["facts"]["role"], "workflow_admin");

    // PGPASSFILE names another file; `*` and an escaped `:` in the password
    let other = home.path().join("elsewhere");
    std::fs::write(&other, "*:*:*:*:wrong\\:one\n").unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut admin = server.cluster.connect("postgres").unwrap();
    admin
        .batch_execute("ALTER ROLE workflow_admin PASSWORD 'wrong:one'")
        .unwrap();
    let (code, _, stderr) = review_json(
        &ready,
        &target,
        &[("HOME", home_env), ("PGPASSFILE", other.to_str().unwrap())],
    );
    assert_eq!(code, 0, "{stderr}");
    admin
        .batch_execute(&format!("ALTER ROLE workflow_admin PASSWORD '{PASSWORD}'"))
        .unwrap();

    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, stderr) = review_json(&ready, &target, &[("HOME", home_env)]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("has group or world access (mode 0644)"),
        "{stderr}"
    );
    assert!(stderr.contains("none was found"), "{stderr}");
}

#[test]
fn a_service_supplies_the_target_and_explicit_keywords_override_it() {
    let server = tls_server();
    let ready = ready_package(&server.cluster);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("services.conf");
    std::fs::write(
        &file,
        format!(
            "[prod]\nhost=localhost\nport={}\ndbname=directus\nuser=workflow_admin\nsslmode=verify-full\nsslrootcert={}\n",
            server.port(),
            server.file("ca.crt").display()
        ),
    )
    .unwrap();
    let env = [
        ("PGSERVICEFILE", file.to_str().unwrap()),
        ("PGPASSWORD", PASSWORD),
    ];
    let (code, doc, stderr) = review_json(&ready, "service=prod", &env);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        sessions(&doc["live"]["connection"])[0]["verified"],
        "chain-and-host-name"
    );

    // PGSERVICE, with only the database given on the command line
    let mut with_var = env.to_vec();
    with_var.push(("PGSERVICE", "prod"));
    let (code, _, stderr) = review_json(&ready, "dbname=directus", &with_var);
    assert_eq!(code, 0, "{stderr}");

    // an explicit host beats the service's: 127.0.0.1 is not in the certificate
    let (code, _, stderr) = review_json(&ready, "service=prod host=127.0.0.1", &env);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("does not name the host \"127.0.0.1\""),
        "{stderr}"
    );

    let (code, _, stderr) = review_json(&ready, "service=staging", &env);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("service \"staging\" not found"), "{stderr}");
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_password_command_supplies_the_password_and_is_never_recorded() {
    let server = tls_server();
    let ready = ready_package(&server.cluster);
    approve_all(&ready);
    let token = "iam-token-0b7e9c41d2";
    let mut admin = server.cluster.connect("postgres").unwrap();
    admin
        .batch_execute(&format!("ALTER ROLE workflow_admin PASSWORD '{token}'"))
        .unwrap();
    let calls = ready.tmp.path().join("calls");
    let script = ready.tmp.path().join("token.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho call >> {}\necho {token}\n",
            calls.display()
        ),
    )
    .unwrap();
    let command = format!("sh {}", script.display());
    let target = server.conninfo("sslmode=require");

    let tls_tools = tls_tools_for(server.cluster.binaries().major);
    let assert = apply_cmd(&ready, &target)
        .env_remove("PGPASSWORD")
        .env("SLUICE_PASSWORD_COMMAND", &command)
        .assert()
        .code(if tls_tools { 0 } else { 3 });
    let out = assert.get_output();
    for stream in [&out.stdout, &out.stderr] {
        assert!(!String::from_utf8_lossy(stream).contains(token));
    }
    // run once per connection: the lock, work and helper sessions at least (and pg_dump's)
    let runs = std::fs::read_to_string(&calls).unwrap().lines().count();
    assert!(runs >= 3, "the password command ran {runs} times");
    for file in files_under(&ready.tmp.path().join("evidence")) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "{} holds the token",
            file.display()
        );
    }
    // the flag does the same (the review's preflight no longer holds once applied: exit 3
    // with the live section read over the session the token opened)
    let out = sluice()
        .arg("review")
        .arg(&ready.dir)
        .args([
            "--target",
            &target,
            "--format",
            "json",
            "--password-command",
            &command,
        ])
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["live"]["facts"]["role"], "workflow_admin", "{stderr}");
    assert!(!stderr.contains(token) && !String::from_utf8_lossy(&out.stdout).contains(token));

    // a client tool gets the token through a 0600 passfile only, never its environment
    let t = sluice::target::Target::resolve(Some(&target), Some(&command)).unwrap();
    t.connect("test").unwrap();
    let env = t.tool_env().unwrap();
    assert!(
        env.vars.iter().all(|(_, v)| !v.contains(token)),
        "{:?}",
        env.vars
    );
    let passfile = &env.vars.iter().find(|(k, _)| *k == "PGPASSFILE").unwrap().1;
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(passfile).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(passfile).unwrap().contains(token));
    assert!(env
        .vars
        .iter()
        .any(|(k, v)| *k == "PGSSLMODE" && v == "require"));
}

#[test]
fn an_unknown_keyword_names_itself_and_tls_over_a_socket_is_refused() {
    let (_tmp, dir) = reference_copy();
    let assert = sluice()
        .arg("lint")
        .arg(&dir)
        .args(["--target", "host=localhost sslmod=require"])
        .assert()
        .code(2);
    assert!(stderr_of(&assert).contains("unknown connection keyword \"sslmod\""));
    let assert = sluice()
        .arg("lint")
        .arg(&dir)
        .args(["--target", "postgresql://h/db?sslrootcrt=/x"])
        .assert()
        .code(2);
    assert!(stderr_of(&assert).contains("\"sslrootcrt\""));
    let assert = sluice()
        .arg("lint")
        .arg(&dir)
        .args(["--target", "host=/tmp dbname=x"])
        .env("PGSSLMODE", "require")
        .assert()
        .code(2);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("sslmode=require (from PGSSLMODE)"),
        "{stderr}"
    );
    assert!(stderr.contains("Unix-domain socket"), "{stderr}");
    let assert = sluice()
        .arg("lint")
        .arg(&dir)
        .args(["--target", "host=db sslmode=verify"])
        .assert()
        .code(2);
    assert!(stderr_of(&assert).contains("invalid sslmode value \"verify\""));
}

#[test]
fn an_encrypted_client_key_opens_sessions_and_reaches_the_tools_decrypted_in_a_private_file() {
    use std::os::unix::fs::PermissionsExt;
    let server = tls_server();
    let ready = ready_package(&server.cluster);
    let pem = std::fs::read(server.file("client.key")).unwrap();
    let encrypted = openssl::pkey::PKey::private_key_from_pem(&pem)
        .unwrap()
        .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"key-pass-5e1")
        .unwrap();
    let key = server.file("encrypted.key");
    std::fs::write(&key, encrypted).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let base = format!(
        "host=localhost port={} dbname=directus user={CERT_USER} sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
        server.port(),
        server.file("ca.crt").display(),
        server.file("client.crt").display(),
        key.display()
    );
    let (code, _, stderr) = review_json(&ready, &base, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("is encrypted: give its passphrase with sslpassword"),
        "{stderr}"
    );

    let target = format!("{base} sslpassword=key-pass-5e1");
    let (code, doc, stderr) = review_json(&ready, &target, &[]);
    assert_eq!(code, 3, "identity names workflow_admin: {stderr}");
    assert_eq!(doc["live"]["facts"]["role"], CERT_USER, "{stderr}");
    assert!(!stderr.contains("key-pass-5e1"));

    // pg_dump gets the key decrypted in a 0600 file, never the passphrase
    let t = sluice::target::Target::resolve(Some(&target), None).unwrap();
    t.connect("test").unwrap();
    let env = t.tool_env().unwrap();
    assert!(env.vars.iter().all(|(_, v)| !v.contains("key-pass-5e1")));
    let tool_key = &env.vars.iter().find(|(k, _)| *k == "PGSSLKEY").unwrap().1;
    assert_ne!(tool_key, &key.display().to_string());
    let mode = std::fs::metadata(tool_key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let major = server.cluster.binaries().major;
    if let Ok(tools) = sluice::backup::find_tools_for(None, major, true) {
        if tools.major >= major {
            let out = sluice::backup::tool_command(&tools, "pg_dump", &env)
                .args(["--schema-only", "--no-password"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains("tac_logical_unit"));
        }
    }
}
