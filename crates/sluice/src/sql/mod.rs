//! SQL analysis with PostgreSQL's own parser (`pg_query`): splitting a file into statements with
//! their locations, the single-transaction rules of SPEC §4, the operations a statement performs
//! (SPEC §5), the scope comparison, the table locks statements take, and the hazards.

mod cursor;
pub mod hazards;
pub mod locks;
pub mod names;
pub mod operation;
pub(crate) mod privileges;
pub(crate) mod scope;
pub mod transaction;

use crate::source::{Location, SourceFile};
use pg_query::NodeEnum;

pub use hazards::{Finding, Severity};
pub use operation::{OpKind, Operation};

/// One statement of a SQL file, with where it stands in that file.
#[derive(Debug, Clone)]
pub struct Statement {
    /// Position among the file's statements, from 0.
    pub index: usize,
    /// Byte offset of the statement's first character (after leading whitespace and comments).
    pub start: usize,
    /// The statement's text, without its terminating semicolon.
    pub text: String,
    /// The parse tree.
    pub node: NodeEnum,
}

/// A parsed SQL file.
#[derive(Debug, Clone)]
pub struct SqlFile {
    pub source: SourceFile,
    pub statements: Vec<Statement>,
}

/// Why a SQL file could not be read as statements.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SqlError {
    #[error("{location}: syntax error: {message}")]
    Syntax { location: Location, message: String },
    #[error("{location}: psql meta-command `{command}` is not SQL: sluice sends the statements itself, so psql commands (\\set, \\i, \\gset, …) cannot be used")]
    MetaCommand { location: Location, command: String },
}

impl SqlError {
    pub fn location(&self) -> &Location {
        match self {
            SqlError::Syntax { location, .. } | SqlError::MetaCommand { location, .. } => location,
        }
    }
}

impl Statement {
    /// The statement on one line (whitespace folded, comments kept out by the parser's
    /// location), shortened to 120 characters, for listings.
    pub(crate) fn headline(&self) -> String {
        let folded = self.text.split_whitespace().collect::<Vec<_>>().join(" ");
        if folded.chars().count() > 120 {
            let mut short: String = folded.chars().take(119).collect();
            short.push('…');
            short
        } else {
            folded
        }
    }
}

/// The parser's name of a node's type (`AlterTableStmt`, `CreateSeqStmt`, …).
pub(crate) fn node_type_name(node: &NodeEnum) -> String {
    let debug = format!("{node:?}");
    debug
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or("Unknown")
        .to_string()
}

/// Parses a whole file. A syntax error is located at the offending token where PostgreSQL's
/// message names one, otherwise at the start of the statement that failed.
pub fn parse_file(source: SourceFile) -> Result<SqlFile, SqlError> {
    reject_meta_commands(&source)?;
    let parsed = match pg_query::parse(&source.text, 0) {
        Ok(parsed) => parsed,
        Err(err) => return Err(locate_syntax_error(&source, &err.to_string())),
    };
    let mut statements = Vec::new();
    for raw in parsed.protobuf.stmts {
        let Some(node) = raw.stmt.and_then(|n| n.node) else {
            continue;
        };
        let begin = raw.stmt_location.max(0) as usize;
        let end = if raw.stmt_len == 0 {
            source.text.len()
        } else {
            begin + raw.stmt_len as usize
        };
        let slice = &source.text[begin..end];
        let start = begin + leading_trivia_len(slice);
        let text = source.text[start..end].trim_end().to_string();
        statements.push(Statement {
            index: statements.len(),
            start,
            text,
            node,
        });
    }
    Ok(SqlFile { source, statements })
}

/// Parses a string that must hold exactly one statement (a check's `sql`).
pub(crate) fn parse_one(text: &str) -> Result<NodeEnum, String> {
    let parsed = pg_query::parse(text, 0).map_err(|e| strip_pg_prefix(&e.to_string()))?;
    let mut nodes: Vec<NodeEnum> = parsed
        .protobuf
        .stmts
        .into_iter()
        .filter_map(|s| s.stmt.and_then(|n| n.node))
        .collect();
    match nodes.len() {
        1 => Ok(nodes.remove(0)),
        0 => Err("expected one SQL statement, found none".into()),
        n => Err(format!("expected one SQL statement, found {n}")),
    }
}

/// Why a query cannot be a read-only check, or `None` when it can (a plain SELECT, VALUES,
/// TABLE or SHOW without data-modifying CTEs, `INTO` or row locks).
pub fn read_only_violation(node: &NodeEnum) -> Option<String> {
    match node {
        NodeEnum::SelectStmt(select) => {
            if select.into_clause.is_some() {
                return Some("SELECT … INTO creates a table".into());
            }
            if !select.locking_clause.is_empty() {
                return Some("FOR UPDATE/SHARE takes row locks".into());
            }
            for (child, _, _, _) in node.nodes() {
                if let pg_query::NodeRef::CommonTableExpr(cte) = child {
                    if let Some(q) = cte.ctequery.as_ref().and_then(|q| q.node.as_ref()) {
                        if !matches!(q, NodeEnum::SelectStmt(_)) {
                            return Some(format!("the WITH query `{}` modifies data", cte.ctename));
                        }
                    }
                }
            }
            None
        }
        NodeEnum::VariableShowStmt(_) => None,
        other => Some(format!(
            "a check must be a read-only query (SELECT, VALUES, TABLE or SHOW), not {}",
            node_type_name(other)
        )),
    }
}

fn reject_meta_commands(source: &SourceFile) -> Result<(), SqlError> {
    let tokens = match scan_tokens(&source.text) {
        Ok(tokens) => tokens,
        Err(err) => {
            return Err(SqlError::Syntax {
                location: source.locate(source.text.len()),
                message: strip_pg_prefix(&err.to_string()),
            })
        }
    };
    for token in tokens {
        let start = token.start.max(0) as usize;
        if source.text[start..].starts_with('\\') {
            let command = source.text[start..]
                .split_whitespace()
                .next()
                .unwrap_or("\\")
                .to_string();
            return Err(SqlError::MetaCommand {
                location: source.locate(start),
                command,
            });
        }
    }
    Ok(())
}

/// Locates a parse error at PostgreSQL's own error cursor; when it gives none, at the token its
/// message names in the statement that fails, or at that statement's start.
fn locate_syntax_error(source: &SourceFile, message: &str) -> SqlError {
    let message = strip_pg_prefix(message);
    if let Some(offset) = cursor::error_offset(&source.text) {
        return SqlError::Syntax {
            location: source.locate(offset),
            message,
        };
    }
    let mut offset = 0;
    if let Ok(pieces) = pg_query::split_with_scanner(&source.text) {
        for piece in pieces {
            let piece_start = piece.as_ptr() as usize - source.text.as_ptr() as usize;
            if pg_query::parse(piece, 0).is_err() {
                offset = piece_start + leading_trivia_len(piece);
                if let Some(near) = near_token(&message) {
                    if let Some(pos) = token_offset(piece, near) {
                        offset = piece_start + pos;
                    }
                }
                break;
            }
        }
    }
    SqlError::Syntax {
        location: source.locate(offset),
        message,
    }
}

/// The token PostgreSQL names in `syntax error at or near "X"`.
fn near_token(message: &str) -> Option<&str> {
    let rest = &message[message.find("at or near \"")? + "at or near \"".len()..];
    rest.rfind('"').map(|end| &rest[..end])
}

fn token_offset(piece: &str, token_text: &str) -> Option<usize> {
    let tokens = scan_tokens(piece).ok()?;
    tokens.iter().find_map(|t| {
        let (s, e) = (t.start as usize, t.end as usize);
        (piece.get(s..e) == Some(token_text)).then_some(s)
    })
}

/// Length of the whitespace and comments before a statement's first token.
fn leading_trivia_len(slice: &str) -> usize {
    let Ok(tokens) = scan_tokens(slice) else {
        return slice.len() - slice.trim_start().len();
    };
    tokens
        .iter()
        .find(|t| {
            let text = slice.get(t.start as usize..t.end as usize).unwrap_or("");
            !(text.starts_with("--") || text.starts_with("/*"))
        })
        .map_or(0, |t| t.start as usize)
}

/// The scanner's tokens. (`pg_query::scan_tokens` builds a slice from a null pointer when the
/// text has no token at all — found by the fuzz tests — so the protobuf path is used.)
fn scan_tokens(text: &str) -> Result<Vec<pg_query::protobuf::ScanToken>, pg_query::Error> {
    pg_query::scan(text).map(|r| r.tokens)
}

fn strip_pg_prefix(message: &str) -> String {
    message
        .trim_start_matches("Invalid statement: ")
        .trim_start_matches("Error scanning: ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_start_after_comments() {
        let src = SourceFile::new("m.sql", "-- Step1\nSELECT 1;\n\n/* two */ SELECT 2;\n");
        let file = parse_file(src).unwrap();
        assert_eq!(file.statements.len(), 2);
        assert_eq!(file.statements[0].text, "SELECT 1");
        assert_eq!(file.source.locate(file.statements[0].start).line, 2);
        assert_eq!(file.statements[1].text, "SELECT 2");
        assert_eq!(file.source.locate(file.statements[1].start).column, 11);
    }

    #[test]
    fn syntax_error_points_at_the_token() {
        let src = SourceFile::new("m.sql", "SELECT 1;\nALTER TABL foo ADD COLUMN x int;\n");
        let err = parse_file(src).unwrap_err();
        assert_eq!(err.location().to_string(), "m.sql:2:7");
        assert!(err.to_string().contains("TABL"), "{err}");
    }

    #[test]
    fn meta_commands_are_refused_with_location() {
        let src = SourceFile::new("m.sql", "SELECT 1;\n  \\set ON_ERROR_STOP 1\n");
        let err = parse_file(src).unwrap_err();
        assert!(matches!(err, SqlError::MetaCommand { ref command, .. } if command == "\\set"));
        assert_eq!(err.location().to_string(), "m.sql:2:3");
        // a backslash inside a string is not a meta-command
        parse_file(SourceFile::new("m.sql", "SELECT E'a\\\\b';")).unwrap();
    }

    #[test]
    fn read_only_queries() {
        let ok = parse_one("WITH a AS (SELECT 1) SELECT * FROM a").unwrap();
        assert!(read_only_violation(&ok).is_none());
        let cte =
            parse_one("WITH d AS (DELETE FROM t RETURNING *) SELECT count(*) FROM d").unwrap();
        assert!(read_only_violation(&cte).unwrap().contains("modifies data"));
        let ddl = parse_one("DROP TABLE t").unwrap();
        assert!(read_only_violation(&ddl).is_some());
        assert!(parse_one("SELECT 1; SELECT 2").is_err());
    }
}
