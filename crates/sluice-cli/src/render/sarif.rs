//! Lint findings as SARIF 2.1.0, the format code scanning reads (GitHub's
//! `github/codeql-action/upload-sarif`, GitLab, Azure DevOps…), built with `serde-sarif`'s typed
//! model: every rule sluice can cite is described once in the driver (id, summary, help), and
//! each finding is a result with its rule, level and region.

use serde_sarif::sarif::{
    ArtifactLocation, Invocation, Location, Message, MultiformatMessageString, Notification,
    PhysicalLocation, Region, ReportingDescriptor, Result as SarifResult, ResultLevel, Run, Sarif,
    Tool, ToolComponent, SCHEMA_URL,
};
use sluice::lint::RuleDoc;
use sluice::sql::{Finding, Severity};
use std::path::Path;

/// sluice's severities as SARIF levels.
pub fn level(severity: Severity) -> ResultLevel {
    match severity {
        Severity::Error => ResultLevel::Error,
        Severity::Warn => ResultLevel::Warning,
        Severity::Info => ResultLevel::Note,
    }
}

/// One SARIF log with one run: the rules, the findings as results, and `notes` as the run's
/// tool notifications (e.g. that no scope is proven for bare files).
pub fn document(rules: &[RuleDoc], findings: &[Finding], notes: &[String]) -> Sarif {
    let descriptors: Vec<ReportingDescriptor> = rules
        .iter()
        .map(|rule| {
            ReportingDescriptor::builder()
                .id(rule.id)
                .name(rule.id)
                .short_description(
                    MultiformatMessageString::builder()
                        .text(rule.summary)
                        .build(),
                )
                .full_description(
                    MultiformatMessageString::builder()
                        .text(rule.summary)
                        .build(),
                )
                .help(MultiformatMessageString::builder().text(rule.help).build())
                .build()
        })
        .collect();
    let results: Vec<SarifResult> = findings
        .iter()
        .map(|f| {
            let index = rules.iter().position(|r| r.id == f.hazard);
            let mut text = f.why.clone();
            if let Some(help) = &f.help {
                text.push_str("\nhelp: ");
                text.push_str(help);
            }
            let region = Region::builder()
                .start_line(f.location.line as i64)
                .start_column(f.location.column as i64)
                .build();
            let location = Location::builder()
                .physical_location(
                    PhysicalLocation::builder()
                        .artifact_location(
                            ArtifactLocation::builder()
                                .uri(uri(&f.location.file))
                                .build(),
                        )
                        .region(region)
                        .build(),
                )
                .build();
            let result = SarifResult::builder()
                .rule_id(f.hazard)
                .level(level(f.severity))
                .message(Message::builder().text(text).build())
                .locations(vec![location]);
            match index {
                Some(i) => result.rule_index(i as i64).build(),
                None => result.build(),
            }
        })
        .collect();
    let driver = ToolComponent::builder()
        .name("sluice")
        .version(env!("CARGO_PKG_VERSION"))
        .semantic_version(env!("CARGO_PKG_VERSION"))
        .rules(descriptors)
        .build();
    let notifications: Vec<Notification> = notes
        .iter()
        .map(|note| {
            Notification::builder()
                .level(serde_json::json!("note"))
                .message(Message::builder().text(note.clone()).build())
                .build()
        })
        .collect();
    let invocation = Invocation::builder()
        .execution_successful(true)
        .tool_execution_notifications(notifications)
        .build();
    let run = Run::builder()
        .tool(Tool::builder().driver(driver).build())
        // sluice counts columns in characters, not UTF-16 code units (SARIF's default)
        .column_kind(serde_json::json!("unicodeCodePoints"))
        .invocations(vec![invocation])
        .results(results)
        .build();
    Sarif::builder()
        .schema(SCHEMA_URL)
        .version(serde_json::json!("2.1.0"))
        .runs(vec![run])
        .build()
}

/// A path as a SARIF artifact URI: a relative path stays a relative reference (code scanning
/// resolves it against the repository's root, where CI runs), an absolute one becomes a
/// `file://` URI; both percent-encoded.
pub fn uri(path: &Path) -> String {
    let text = path.to_string_lossy().replace('\\', "/");
    let encoded = encode(&text);
    if path.is_absolute() {
        format!("file://{encoded}")
    } else {
        encoded
    }
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::uri;
    use std::path::Path;

    #[test]
    fn paths_become_uris() {
        assert_eq!(
            uri(Path::new("db/migrations/001 add.sql")),
            "db/migrations/001%20add.sql"
        );
        assert_eq!(uri(Path::new("/srv/m.sql")), "file:///srv/m.sql");
        assert_eq!(uri(Path::new("<stdin>")), "%3Cstdin%3E");
    }
}
