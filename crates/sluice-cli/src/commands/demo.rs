//! `sluice demo`: the reference package end to end on a throwaway PostgreSQL — fixture, two
//! throwaway signing keys, lint, review, two approvals, rehearsal, apply, verify — and the
//! seed's numbers at the end.

use super::apply::finish;
use crate::failure::Failure;
use crate::progress::Terminal;
use sluice::cluster::{find_server, Cluster, ClusterOptions};
use sluice::exit::ExitCode;
use sluice::package::Package;
use sluice::pipeline::{self, ApplyOptions};
use sluice::target::Target;
use std::path::Path;

fn fail(what: &str) -> impl FnOnce(String) -> Failure + '_ {
    move |e| Failure::new(ExitCode::Internal, format!("demo: {what}: {e}"))
}

pub fn demo(pg_bindir: Option<&Path>, workdir: &Path, json: bool) -> Result<ExitCode, Failure> {
    let bins = find_server(pg_bindir, Some(16))
        .or_else(|_| find_server(pg_bindir, None))
        .map_err(|e| Failure::new(ExitCode::Usage, e.to_string()))?;
    eprintln!(
        "1. throwaway PostgreSQL {} from {} ({})",
        bins.version,
        bins.bindir.display(),
        bins.found_by
    );
    let major = bins.major;
    let cluster = Cluster::start(ClusterOptions::new(bins.clone()))
        .map_err(|e| fail("start the cluster")(e.to_string()))?;
    let conninfo = sluice::reference::prepare_target(&cluster)
        .map_err(|e| fail("load the fixture")(e.to_string()))?;
    eprintln!("   fixture loaded: the seed's production state (86 + 76 rows, trigger trg_tac_birth_gate_lu)");

    let (_, stamp) = pipeline::now_utc();
    let root = workdir.join(&stamp);
    sluice::evidence::create_dir_private(&root)
        .map_err(|e| fail("create the work folder")(e.to_string()))?;
    let pkg_dir = root.join("phase-alpha");
    std::fs::create_dir_all(&pkg_dir).map_err(|e| fail("write the package")(e.to_string()))?;
    sluice::reference::write_package(&pkg_dir)
        .map_err(|e| fail("write the package")(e.to_string()))?;
    if major != 16 {
        let manifest = pkg_dir.join("sluice.toml");
        let text = std::fs::read_to_string(&manifest)
            .map_err(|e| fail("read the manifest")(e.to_string()))?;
        std::fs::write(
            &manifest,
            text.replacen("server_major = 16", &format!("server_major = {major}"), 1),
        )
        .map_err(|e| fail("write the manifest")(e.to_string()))?;
        eprintln!("   note: PostgreSQL 16 not found; the demo copy pins server_major = {major} (install 16 with scripts/pg-install 16)");
    }

    eprintln!("2. two throwaway reviewer keys");
    let keys = root.join("keys");
    sluice::evidence::create_dir_private(&keys)
        .map_err(|e| fail("create the key folder")(e.to_string()))?;
    let mut signers = String::from("# throwaway reviewers of `sluice demo`\n");
    for name in ["alice@example.com", "bob@example.com"] {
        let key = sluice::approval::generate_ed25519(&keys.join(name), name)
            .map_err(|e| fail("generate a key")(e.to_string()))?;
        signers.push_str(&sluice::approval::allowed_signers_line(name, &key));
        signers.push('\n');
    }
    std::fs::write(pkg_dir.join("allowed_signers"), signers)
        .map_err(|e| fail("write allowed_signers")(e.to_string()))?;

    let pkg = Package::load(&pkg_dir)?;
    let lint = sluice::lint::lint(&pkg, None)?;
    let scope = lint.scope.as_ref().is_some_and(|s| s.holds());
    eprintln!(
        "3. lint: {} operations, scope {}, {} hazard note(s)",
        lint.migration.operations.len(),
        if scope { "holds" } else { "DOES NOT HOLD" },
        lint.findings().count()
    );
    let review = sluice::review::build(&pkg, lint);
    let review_path = root.join("review.md");
    std::fs::write(&review_path, sluice::review::markdown::render(&review))
        .and_then(|()| {
            std::fs::write(
                root.join("review.html"),
                sluice::review::html::render(&review),
            )
        })
        .map_err(|e| fail("write the review")(e.to_string()))?;
    eprintln!(
        "4. review package: {} (and review.html)",
        review_path.display()
    );

    let digest = sluice::digest::package_digest(&pkg);
    for (name, decision, note) in [
        ("alice@example.com", sluice::approval::Decision::Pass, ""),
        (
            "bob@example.com",
            sluice::approval::Decision::PassWithNotes,
            "updated_at bump accepted as documented in §5",
        ),
    ] {
        let approval = sluice::approval::sign(
            &pkg.info.id,
            &digest,
            name,
            decision,
            note,
            &keys.join(name),
        )
        .map_err(|e| fail("sign")(e.to_string()))?;
        approval
            .write_into(&pkg.dir.join("approvals"))
            .map_err(|e| fail("write an approval")(e.to_string()))?;
        eprintln!("5. approved by {name}: {decision}");
    }

    let target = Target::local(&conninfo)?;
    eprintln!("6. rehearsal on a restored copy of a fresh backup");
    let rehearsal = sluice::rehearse::rehearse(
        &pkg,
        sluice::rehearse::Source::Target(&target),
        &sluice::rehearse::RehearseOptions {
            pg_bindir: Some(bins.bindir.clone()),
            pg_dump_bindir: None,
            evidence_root: root.join("rehearsal-evidence"),
            restore: Default::default(),
        },
        &Terminal::new(),
    )
    .map_err(|e| Failure::new(ExitCode::Refused, format!("rehearsal: {e}")))?;
    eprintln!(
        "   rehearsal {}: {}",
        if rehearsal.record.passed {
            "passed"
        } else {
            "FAILED"
        },
        rehearsal.path.display()
    );
    if !rehearsal.record.passed {
        return Ok(ExitCode::Refused);
    }

    eprintln!("7. apply to environment `demo`");
    let options = ApplyOptions {
        environment: "demo".into(),
        operator: "operator@example.com".into(),
        evidence_root: root.join("evidence"),
        pg_dump_bindir: None,
        rehearsal: false,
    };
    let outcome = pipeline::apply(&pkg, &target, &options, &Terminal::new())
        .map_err(|e| Failure::new(ExitCode::Refused, e.to_string()))?;
    let code = finish(&outcome, json)?;
    if code != ExitCode::Done {
        return Ok(code);
    }

    let report = pipeline::verify::verify(&pkg, &target, &outcome.run_dir)?;
    eprintln!(
        "8. verify: {} check(s) {}, schema drift: {}",
        report.checks.len(),
        if report.checks.iter().all(|c| c.holds) {
            "hold"
        } else {
            "FAIL"
        },
        if report.drift.as_ref().is_some_and(|d| d.is_empty()) {
            "none"
        } else {
            "FOUND"
        }
    );
    seed_numbers(&outcome);
    drop(cluster);
    Ok(if report.holds {
        ExitCode::Done
    } else {
        ExitCode::CommittedButFailed
    })
}

/// The seed's numbers, as the seed's §5 and C-07 state them.
fn seed_numbers(outcome: &pipeline::ApplyOutcome) {
    eprintln!("\nthe seed's numbers:");
    if let Some(row) = outcome
        .record
        .migration
        .as_ref()
        .and_then(|m| m.last_row.as_ref())
    {
        eprintln!("  trailing row: {}", row.render());
    }
    for p in &outcome.record.probes {
        for (pre, post) in p.pre.columns.iter().zip(&p.post.columns) {
            eprintln!(
                "  {}: distinct {} → {}",
                pre.column, pre.distinct, post.distinct
            );
        }
        eprintln!("  rows changed: {}/{}", p.rows.changed, p.pre.rows);
    }
    eprintln!("  evidence: {}", outcome.run_dir.display());
}
