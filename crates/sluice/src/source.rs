//! Source text and locations: the one place where byte offsets (from the TOML parser and from
//! PostgreSQL's parser) become the `file:line:col` a person reads.

use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;

/// A text file sluice read, kept whole so that any byte offset into it can be located.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as it should be shown to the user.
    pub path: PathBuf,
    /// The file's text.
    pub text: String,
    /// The byte offset where each line starts, found on the first [`SourceFile::locate`], so
    /// that locating is a binary search, not a count of every newline before the offset (which
    /// made linting a file of many statements quadratic, issue #18).
    line_starts: OnceLock<LineStarts>,
}

/// Where the lines of a text start, and the length of the text they were found in.
#[derive(Debug, Clone)]
struct LineStarts {
    text_len: usize,
    starts: Vec<usize>,
}

/// A 1-based line and column (in characters) inside a named file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        SourceFile {
            path: path.into(),
            text: text.into(),
            line_starts: OnceLock::new(),
        }
    }

    /// Locates a byte offset. Offsets past the end point just after the last character, and an
    /// offset inside a multi-byte character points at that character.
    pub fn locate(&self, offset: usize) -> Location {
        let offset = floor_char_boundary(&self.text, offset.min(self.text.len()));
        let (line, line_start) = self.line_of(offset);
        let column = self.text[line_start..offset].chars().count() + 1;
        Location {
            file: self.path.clone(),
            line,
            column,
        }
    }

    /// The 1-based line that holds `offset` (a char boundary), and the offset where it starts.
    fn line_of(&self, offset: usize) -> (usize, usize) {
        let index = self.line_starts.get_or_init(|| LineStarts {
            text_len: self.text.len(),
            starts: std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
        });
        if index.text_len != self.text.len() {
            // the text was changed after it was first located: count afresh
            let before = &self.text[..offset];
            return (
                before.matches('\n').count() + 1,
                before.rfind('\n').map_or(0, |i| i + 1),
            );
        }
        // the lines that start at or before the offset
        let line = index.starts.partition_point(|&start| start <= offset);
        (line, index.starts[line - 1])
    }

    /// The text of the line that holds `offset`, without its newline.
    pub(crate) fn line_text(&self, offset: usize) -> &str {
        let offset = floor_char_boundary(&self.text, offset.min(self.text.len()));
        let start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |i| offset + i);
        self.text[start..end].trim_end_matches('\r')
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_lines_and_columns_in_characters() {
        let src = SourceFile::new("a.sql", "ab\nαβγ x\n");
        assert_eq!(src.locate(0).to_string(), "a.sql:1:1");
        assert_eq!(src.locate(3).to_string(), "a.sql:2:1");
        // 'x' is after three two-byte characters and a space.
        let x = src.text.find('x').unwrap();
        assert_eq!(src.locate(x).to_string(), "a.sql:2:5");
        assert_eq!(src.line_text(x), "αβγ x");
        assert_eq!(src.locate(10_000).line, 3);
    }

    #[test]
    fn every_offset_is_located_as_counting_newlines_would() {
        let src = SourceFile::new("a.sql", "\nab\n\nαβγ x\r\n  é\n");
        for offset in 0..=src.text.len() + 2 {
            let at = floor_char_boundary(&src.text, offset.min(src.text.len()));
            let before = &src.text[..at];
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let expected = (
                before.matches('\n').count() + 1,
                src.text[line_start..at].chars().count() + 1,
            );
            let got = src.locate(offset);
            assert_eq!((got.line, got.column), expected, "offset {offset}");
        }
    }
}
