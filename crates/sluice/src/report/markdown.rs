//! `report.md`: the human report of a run — outcome, every gate with its status and timing, the
//! migration's trailing row, and the seed's §5 side-effect measurement.

use super::{acknowledged_deviations, connection_states, status_word, Outcome, EVIDENCE_NOTE};
use crate::run_record::{RunRecord, Status};
use std::fmt::Write;

pub fn render(r: &RunRecord) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# sluice {} report — {} ({})\n",
        r.kind, r.package, r.revision
    );
    let outcome = Outcome::of(r);
    let at = outcome
        .gate
        .as_ref()
        .map(|g| format!(" at `{g}`"))
        .unwrap_or_default();
    let outcome = format!("**{}**{at} — {}", outcome.word, outcome.meaning);
    let _ = writeln!(out, "{outcome}\n");
    if let Some(f) = &r.failure {
        let _ = writeln!(out, "> {}\n", f.replace('\n', "\n> "));
    }
    let acknowledged = acknowledged_deviations(r);
    if !acknowledged.is_empty() {
        let _ = writeln!(
            out,
            "**Acknowledged deviations** (signed by reviewers, bound to this digest):\n"
        );
        for line in acknowledged {
            let _ = writeln!(out, "- {line}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| package | `{}` revision {} |", r.package, r.revision);
    let _ = writeln!(out, "| digest | `{}` |", r.digest);
    let _ = writeln!(out, "| environment | {} |", r.environment);
    let _ = writeln!(out, "| operator | {} |", r.operator);
    let _ = writeln!(out, "| target | `{}` |", r.target);
    if let Some(s) = &r.server {
        let _ = writeln!(
            out,
            "| server | PostgreSQL {} (database {}, role {}) |",
            s.server_version, s.database, s.role
        );
    }
    for state in connection_states(r) {
        let _ = writeln!(out, "| connection | {state} |");
    }
    let _ = writeln!(
        out,
        "| started / finished | {} / {} |",
        r.started_at,
        r.finished_at.as_deref().unwrap_or("—")
    );
    let _ = writeln!(
        out,
        "| exit code | {} |\n",
        r.exit_code.map_or("—".into(), |c| c.to_string())
    );

    let _ = writeln!(
        out,
        "## Gates\n\n| step | gate | status | time | detail |\n|---|---|---|---|---|"
    );
    for s in &r.steps {
        let status = match s.status {
            Status::Failed | Status::Running => format!("**{}**", status_word(s.status)),
            Status::Passed | Status::Skipped => status_word(s.status).to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} ms | {} |",
            s.number,
            s.gate.as_deref().unwrap_or(&s.name),
            status,
            s.duration_ms,
            s.detail.replace('|', "\\|").replace('\n', " ")
        );
    }
    let _ = writeln!(out);

    if let Some(m) = &r.migration {
        let _ = writeln!(out, "## Migration\n");
        for a in &m.attempts {
            let _ = writeln!(
                out,
                "- attempt {}: {} after {} ms — {}",
                a.number, a.outcome, a.duration_ms, a.detail
            );
        }
        if let Some(row) = &m.last_row {
            let _ = writeln!(
                out,
                "\nTrailing row (checked before COMMIT):\n\n```\n{}\n```\n",
                row.render()
            );
        }
    }
    if !r.probes.is_empty() {
        let _ = writeln!(out, "## Side effects (probes)\n");
        for p in &r.probes {
            let _ = writeln!(
                out,
                "**{}** on `{}`:\n\n```\n{}\n```\n",
                p.id,
                p.table,
                p.render()
            );
        }
    }
    if let Some(d) = &r.schema_diff {
        let _ = writeln!(
            out,
            "## Schema diff\n\n`{d}` — details in `schema/diff.json`.\n"
        );
    }
    let _ = writeln!(out, "## Evidence\n\n{EVIDENCE_NOTE}");
    out
}
