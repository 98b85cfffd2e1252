//! The backup gate (`backup-restorable`) against a real server: a directory-format dump written
//! by parallel jobs, every file hashed into SHA256SUMS and read back by parallel pg_restore
//! processes; a dump that lost its data refused although its table of contents still reads;
//! a compression the client tools lack refused, never silently replaced.
mod support;

use std::os::unix::fs::PermissionsExt;
use support::*;

/// The reference package with `[backup]` as given instead of the seed's `compress = 6`.
fn ready_with_backup(cluster: &sluice::cluster::Cluster, backup: &str) -> Ready {
    let ready = ready_package(cluster);
    edit_manifest(&ready.dir, "compress = 6", backup);
    approve_all(&ready);
    ready
}

fn dump_of(run_dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(run_dir.join("backup"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

#[test]
fn a_directory_dump_is_written_in_parallel_hashed_file_by_file_and_read_back() {
    let (cluster, conninfo) = own_fixture_target();
    let ready = ready_with_backup(
        &cluster,
        "compress = \"gzip:1\"\nformat = \"directory\"\njobs = 2",
    );
    let assert = apply_cmd(&ready, &conninfo).assert().success();
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("directory format, gzip:1")
            && stderr.contains("pg_restore read every byte back")
            && stderr.contains("2 process(es)"),
        "{stderr}"
    );
    let run_dir = last_run(&ready);
    let dump = dump_of(&run_dir);
    assert!(
        dump.is_dir() && dump.extension().unwrap() == "dir",
        "{dump:?}"
    );
    let sums = read(&run_dir, "SHA256SUMS");
    let names: Vec<String> = std::fs::read_dir(&dump)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "toc.dat"), "{names:?}");
    assert!(
        names.iter().filter(|n| n.ends_with(".dat.gz")).count() >= 2,
        "{names:?}"
    );
    let rel_dir = format!("backup/{}", dump.file_name().unwrap().to_string_lossy());
    for name in &names {
        let file = dump.join(name);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name} is {mode:o}");
        let sha = sluice::evidence::hash_file(&file).unwrap();
        assert!(
            sums.contains(&format!("{sha}  {rel_dir}/{name}\n")),
            "{name} not in SHA256SUMS:\n{sums}"
        );
    }
    let run = run_json(&run_dir);
    assert_eq!(run["backup"]["format"], "directory");
    assert_eq!(run["backup"]["jobs"], 2);
    assert_eq!(run["backup"]["read_back"]["processes"], 2);
    assert_eq!(
        run["backup"]["files"].as_array().unwrap().len(),
        names.len()
    );
    sluice()
        .args(["evidence", "check"])
        .arg(&run_dir)
        .assert()
        .success();
    // a file of the dump changed afterwards is caught by the evidence check
    let data = dump.join(names.iter().find(|n| n.ends_with(".dat.gz")).unwrap());
    std::fs::write(&data, b"not the dump").unwrap();
    sluice()
        .args(["evidence", "check"])
        .arg(&run_dir)
        .assert()
        .failure();
}

#[test]
fn backup_restorable_refuses_a_dump_that_lost_its_data_though_its_listing_reads() {
    for backup in [
        "compress = 1",
        "compress = 1\nformat = \"directory\"\njobs = 2",
        // no checksum in an uncompressed folder: a row cut in the middle is still caught
        "compress = \"none\"\nformat = \"directory\"\njobs = 2",
    ] {
        let (cluster, conninfo) = own_fixture_target();
        let ready = ready_with_backup(&cluster, backup);
        let before = fingerprint(&conninfo);
        let assert = apply_cmd(&ready, &conninfo)
            .env("SLUICE_FAULT_DUMP_DAMAGE", "1")
            .assert()
            .code(3);
        let stderr = stderr_of(&assert);
        assert!(
            stderr.contains("error[backup-restorable]")
                && stderr.contains("pg_restore cannot read every byte of the dump back")
                && stderr.contains("the incomplete dump was removed"),
            "{backup}: {stderr}"
        );
        assert_eq!(before, fingerprint(&conninfo), "{backup}");
        let run_dir = last_run(&ready);
        let run = run_json(&run_dir);
        assert_eq!(run["failed_gate"], "backup-restorable");
        assert_eq!(
            std::fs::read_dir(run_dir.join("backup")).unwrap().count(),
            0,
            "{backup}: the damaged dump was left behind"
        );
    }
}

/// Whether the client tools were built with zstd, asked of pg_dump as sluice does not:
/// by its version and its own refusal text, against no server.
fn tools_have_zstd() -> bool {
    let tools = sluice::backup::find_tools(None).unwrap();
    if tools.major < 16 {
        return false;
    }
    let out = std::process::Command::new(tools.bindir.join("pg_dump"))
        .args(["--compress=zstd", "--schema-only", "--format=custom"])
        .env("PGHOST", "/nonexistent/zstd-probe")
        .output()
        .unwrap();
    !String::from_utf8_lossy(&out.stderr).contains("does not support compression")
}

#[test]
fn a_compression_the_tools_lack_is_refused_not_replaced() {
    let (cluster, conninfo) = own_fixture_target();
    let ready = ready_with_backup(&cluster, "compress = \"zstd\"");
    if tools_have_zstd() {
        let assert = apply_cmd(&ready, &conninfo).assert().success();
        assert!(stderr_of(&assert).contains("custom format, zstd"));
        return;
    }
    let stderr = refused_before(&ready, &conninfo, "backup-restorable");
    assert!(
        stderr.contains("compress = \"zstd\"")
            && stderr.contains("gzip is always available")
            && !stderr.contains("gzip:6"),
        "{stderr}"
    );
}
