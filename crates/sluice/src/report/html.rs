//! `report.html`: the run's report as one self-contained page (see [`crate::html`]), with the
//! same content in the same order as `report.md` — outcome, the run's facts, every gate with its
//! status and timing, the migration's attempts and trailing row, the probes before and after,
//! the schema diff — and two pictures computed here as inline SVG: the time each step took, and
//! each probe's distinct values and rows before and after.

use super::{connection_states, status_word, Outcome, EVIDENCE_NOTE};
use crate::expect::TextRows;
use crate::html::chart::{horizontal_bars, Bar};
use crate::html::{
    alarm, callout, code, code_spans, contents, facts, h1, h2, h3, list, nowrap, p, page, pre,
    strong, table, text, Markup,
};
use crate::probe::{ColumnStats, ProbeSummary};
use crate::run_record::{RunRecord, RunStatus, Status, StepRecord};

/// Renders the whole report page.
pub fn render(r: &RunRecord) -> String {
    let title = format!("sluice {} report — {} ({})", r.kind, r.package, r.revision);
    let body = [
        h1(&title),
        sections(r),
        outcome(r),
        run_facts(r),
        gates(r),
        migration(r),
        probes(r),
        schema_diff(r),
        h2("evidence", "Evidence") + p(code_spans(EVIDENCE_NOTE)),
    ];
    page(&title, body.into_iter().collect())
}

/// The table of contents: the sections this run has.
fn sections(r: &RunRecord) -> Markup {
    let mut links = vec![("gates", "Gates")];
    if r.migration.is_some() {
        links.push(("migration", "Migration"));
    }
    if !r.probes.is_empty() {
        links.push(("probes", "Side effects (probes)"));
    }
    if r.schema_diff.is_some() {
        links.push(("schema-diff", "Schema diff"));
    }
    links.push(("evidence", "Evidence"));
    contents(links)
}

fn outcome(r: &RunRecord) -> Markup {
    let outcome = Outcome::of(r);
    let kind = match r.status {
        RunStatus::Succeeded => "ok",
        RunStatus::Failed => "fail",
        RunStatus::Running => "warn",
    };
    let at = outcome
        .gate
        .as_ref()
        .map(|g| text(" at ") + code(g))
        .unwrap_or_default();
    let sentence = strong(text(outcome.word)) + at + text(" — ") + code_spans(&outcome.meaning);
    let failure = r.failure.as_deref().map(pre).unwrap_or_default();
    let acknowledged = super::acknowledged_deviations(r);
    let acknowledged = if acknowledged.is_empty() {
        Markup::default()
    } else {
        callout(
            "warn",
            p(strong(text(
                "Acknowledged deviations (signed by reviewers, bound to this digest):",
            ))) + list(acknowledged.into_iter().map(text)),
        )
    };
    callout(kind, p(sentence) + failure) + acknowledged
}

fn run_facts(r: &RunRecord) -> Markup {
    let mut rows = vec![
        (
            "package",
            code(&r.package) + text(format!(" revision {}", r.revision)),
        ),
        ("digest", code(&r.digest)),
        ("environment", text(&r.environment)),
        ("operator", text(&r.operator)),
        ("target", code(&r.target)),
    ];
    if let Some(s) = &r.server {
        let server = format!(
            "PostgreSQL {} (database {}, role {})",
            s.server_version, s.database, s.role
        );
        rows.push(("server", text(server)));
    }
    let states = connection_states(r);
    rows.extend(states.iter().map(|state| ("connection", text(state))));
    let finished = r.finished_at.as_deref().unwrap_or("—");
    rows.push((
        "started / finished",
        text(format!("{} / {finished}", r.started_at)),
    ));
    let exit = r.exit_code.map_or("—".into(), |c| c.to_string());
    rows.push(("exit code", text(exit)));
    facts(rows)
}

fn gates(r: &RunRecord) -> Markup {
    let rows = r.steps.iter().map(|s| {
        vec![
            text(s.number.to_string()),
            nowrap(code(step_id(s))),
            step_status(s.status),
            nowrap(text(format!("{} ms", s.duration_ms))),
            text(&s.detail),
        ]
    });
    h2("gates", "Gates")
        + table(["step", "gate", "status", "time", "detail"], rows)
        + horizontal_bars("Time per step (ms)", &timing_bars(&r.steps))
}

fn step_id(s: &StepRecord) -> &str {
    s.gate.as_deref().unwrap_or(&s.name)
}

fn step_status(status: Status) -> Markup {
    match status {
        Status::Failed | Status::Running => alarm(status_word(status)),
        Status::Passed | Status::Skipped => text(status_word(status)),
    }
}

/// One bar per step, coloured by its status.
pub(crate) fn timing_bars(steps: &[StepRecord]) -> Vec<Bar> {
    steps
        .iter()
        .map(|s| Bar {
            label: format!("{}. {}", s.number, step_id(s)),
            value: s.duration_ms,
            figure: format!("{} ms", s.duration_ms),
            class: match s.status {
                Status::Passed => "passed",
                Status::Failed => "failed",
                Status::Skipped => "skipped",
                Status::Running => "running",
            },
        })
        .collect()
}

fn migration(r: &RunRecord) -> Markup {
    let Some(m) = &r.migration else {
        return Markup::default();
    };
    let attempts = m.attempts.iter().map(|a| {
        text(format!(
            "attempt {}: {} after {} ms — {}",
            a.number, a.outcome, a.duration_ms, a.detail
        ))
    });
    let trailing = m
        .last_row
        .as_ref()
        .map(|row| p(text("Trailing row (checked before COMMIT):")) + result_rows(row))
        .unwrap_or_default();
    h2("migration", "Migration") + list(attempts) + trailing
}

/// A query result: one row as a column → value table, several as a table with a header.
fn result_rows(rows: &TextRows) -> Markup {
    let value = |v: &Option<String>| code(v.as_deref().unwrap_or("NULL"));
    match rows.rows.as_slice() {
        [] => p(text("(no rows)")),
        [row] => facts(
            rows.columns
                .iter()
                .map(String::as_str)
                .zip(row.iter().map(value)),
        ),
        all => table(
            rows.columns.iter().map(String::as_str),
            all.iter().map(|row| row.iter().map(value).collect()),
        ),
    }
}

fn probes(r: &RunRecord) -> Markup {
    if r.probes.is_empty() {
        return Markup::default();
    }
    h2("probes", "Side effects (probes)") + r.probes.iter().map(probe).collect()
}

fn probe(s: &ProbeSummary) -> Markup {
    let heading = h3(strong(text(&s.id)) + text(" on ") + code(&s.table));
    let rows = s
        .pre
        .columns
        .iter()
        .zip(&s.post.columns)
        .map(|(pre, post)| column_row(&s.table, pre, post));
    let headers = ["column", "distinct", "min", "max", "nulls"];
    let caption = format!(
        "{} on {}: distinct values per column and rows, before and after",
        s.id, s.table
    );
    heading
        + table(headers, rows)
        + p(text(s.rows_line()))
        + horizontal_bars(&caption, &probe_bars(s))
}

fn column_row(table: &str, pre: &ColumnStats, post: &ColumnStats) -> Vec<Markup> {
    let null = |v: &Option<String>| v.as_deref().unwrap_or("NULL").to_string();
    let change = |a: String, b: String| text(format!("{a} → {b}"));
    vec![
        code(format!("{table}.{}", pre.column)),
        change(pre.distinct.to_string(), post.distinct.to_string()),
        change(null(&pre.min), null(&post.min)),
        change(null(&pre.max), null(&post.max)),
        change(pre.nulls.to_string(), post.nulls.to_string()),
    ]
}

/// Each column's distinct values before and after, then the rows unchanged, changed, added and
/// removed.
pub(crate) fn probe_bars(s: &ProbeSummary) -> Vec<Bar> {
    let count = |label: String, n: u64, class| Bar {
        label,
        value: u128::from(n),
        figure: n.to_string(),
        class,
    };
    let mut bars = Vec::new();
    for (pre, post) in s.pre.columns.iter().zip(&s.post.columns) {
        let distinct = |c: &ColumnStats| c.distinct.max(0).unsigned_abs();
        bars.push(count(
            format!("{} before", pre.column),
            distinct(pre),
            "before",
        ));
        bars.push(count(
            format!("{} after", post.column),
            distinct(post),
            "after",
        ));
    }
    bars.push(count("rows unchanged".into(), s.rows.unchanged, "before"));
    bars.push(count("rows changed".into(), s.rows.changed, "after"));
    bars.push(count("rows added".into(), s.rows.added, "after"));
    bars.push(count("rows removed".into(), s.rows.removed, "after"));
    bars
}

fn schema_diff(r: &RunRecord) -> Markup {
    let Some(d) = &r.schema_diff else {
        return Markup::default();
    };
    let summary = match d.as_object() {
        Some(fields) => facts(
            fields
                .iter()
                .map(|(k, v)| (k.as_str(), text(v.to_string()))),
        ),
        None => p(code(d.to_string())),
    };
    h2("schema-diff", "Schema diff") + summary + p(code_spans("Details in `schema/diff.json`."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Capture, KeyOrder, RowDiff};

    fn step(number: u8, gate: &str, status: Status, ms: u128) -> StepRecord {
        StepRecord {
            number,
            gate: Some(gate.into()),
            name: gate.into(),
            status,
            detail: format!("detail of {gate} <b>"),
            started_at: "2025-01-01T00:00:00Z".into(),
            duration_ms: ms,
        }
    }

    #[test]
    fn each_step_is_a_bar_coloured_by_its_status() {
        let bars = timing_bars(&[
            step(1, "exclusive-run", Status::Passed, 12),
            step(7, "backup-restorable", Status::Failed, 3400),
        ]);
        assert_eq!(bars[0].label, "1. exclusive-run");
        assert_eq!((bars[0].value, bars[0].class), (12, "passed"));
        assert_eq!(bars[1].figure, "3400 ms");
        assert_eq!(bars[1].class, "failed");
    }

    fn capture(distinct: i64) -> Capture {
        Capture {
            rows: 86,
            columns: vec![ColumnStats {
                column: "updated_at".into(),
                min: Some("2024-01-01".into()),
                max: None,
                distinct,
                nulls: 0,
            }],
            key_order: KeyOrder::Numeric,
            binary_copy: true,
            csv_sha256: String::new(),
        }
    }

    #[test]
    fn a_probe_shows_before_and_after() {
        let s = ProbeSummary {
            id: "tlu".into(),
            table: "public.tac_logical_unit".into(),
            key: vec!["id".into()],
            columns: vec!["updated_at".into()],
            pre: capture(3),
            post: capture(1),
            rows: RowDiff {
                changed: 86,
                added: 0,
                removed: 0,
                unchanged: 0,
            },
            expect_changed: Some(86),
            holds: true,
        };
        let bars = probe_bars(&s);
        assert_eq!((bars[0].value, bars[1].value), (3, 1));
        assert_eq!(bars[3].label, "rows changed");
        let html = probe(&s);
        assert!(html.as_str().contains("3 → 1"));
        assert!(html.as_str().contains("2024-01-01 → 2024-01-01"));
        assert!(html.as_str().contains("NULL → NULL"));
        assert!(html.as_str().contains("rows changed 86/86"));
    }

    #[test]
    fn a_one_row_result_reads_column_by_column() {
        let rows = TextRows {
            columns: vec!["draft".into(), "gone".into()],
            rows: vec![vec![Some("86".into()), None]],
        };
        let html = result_rows(&rows);
        assert!(html
            .as_str()
            .contains("<th scope=\"row\">draft</th><td><code>86</code></td>"));
        assert!(html.as_str().contains("<code>NULL</code>"));
    }
}
