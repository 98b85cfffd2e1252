//! Lint findings as GitHub Actions workflow commands (`::error file=…,line=…,col=…,title=…::…`),
//! which the runner turns into annotations on the pull request's diff. One command per finding,
//! escaped as the runner requires: `%`, CR and LF everywhere, and `:` and `,` in properties too.

use sluice::sql::{Finding, Severity};
use std::fmt::Write;

/// The workflow command of each finding, one per line.
pub fn annotations(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let command = match f.severity {
            Severity::Error => "error",
            Severity::Warn => "warning",
            Severity::Info => "notice",
        };
        let mut message = f.why.clone();
        if let Some(help) = &f.help {
            message.push_str("\nhelp: ");
            message.push_str(help);
        }
        let _ = writeln!(
            out,
            "::{command} file={},line={},col={},title={}::{}",
            property(&f.location.file.to_string_lossy().replace('\\', "/")),
            f.location.line,
            f.location.column,
            property(&format!("sluice {}", f.hazard)),
            data(&message)
        );
    }
    out
}

/// A command's message (GitHub's `escapeData`).
pub fn data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A command's property value (GitHub's `escapeProperty`).
pub fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_the_runner_reads_them() {
        assert_eq!(
            data("100% done\r\nnext: a, b"),
            "100%25 done%0D%0Anext: a, b"
        );
        assert_eq!(property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
    }
}
