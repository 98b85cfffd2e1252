//! Expectations: what a check, or the migration's trailing statement, must return, and the
//! comparison of PostgreSQL's text output against it (SPEC §2: integers, booleans that match
//! `t`/`f`, strings, and `"NULL"` for SQL NULL).

use serde::Serialize;
use std::fmt;

/// One expected value, compared with a column's text output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ExpectValue {
    Int(i64),
    Bool(bool),
    Text(String),
    #[serde(serialize_with = "serialize_null")]
    Null,
}

fn serialize_null<S: serde::Serializer>(s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("NULL")
}

/// What a query must return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    /// Exactly one row with one column equal to the value.
    Scalar(ExpectValue),
    /// Exactly one row whose named columns equal the given values.
    Row(Vec<(String, ExpectValue)>),
    /// Exactly this many rows.
    Rows(u64),
}

/// A query's result as text, the way psql would show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TextRows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl ExpectValue {
    /// Reads a TOML value; `None` when the TOML type has no meaning as an expectation.
    pub fn from_toml(value: &toml::Value) -> Option<ExpectValue> {
        match value {
            toml::Value::Integer(i) => Some(ExpectValue::Int(*i)),
            toml::Value::Boolean(b) => Some(ExpectValue::Bool(*b)),
            toml::Value::String(s) if s == "NULL" => Some(ExpectValue::Null),
            toml::Value::String(s) => Some(ExpectValue::Text(s.clone())),
            _ => None,
        }
    }

    /// Whether a column's text output (None = SQL NULL) matches.
    pub fn matches(&self, actual: Option<&str>) -> bool {
        match (self, actual) {
            (ExpectValue::Null, None) => true,
            (ExpectValue::Null, Some(_)) | (_, None) => false,
            (ExpectValue::Int(i), Some(a)) => a.trim().parse::<i64>().ok() == Some(*i),
            (ExpectValue::Bool(b), Some(a)) => match a {
                "t" | "true" => *b,
                "f" | "false" => !*b,
                _ => false,
            },
            (ExpectValue::Text(t), Some(a)) => t == a,
        }
    }
}

impl fmt::Display for ExpectValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectValue::Int(i) => write!(f, "{i}"),
            ExpectValue::Bool(b) => write!(f, "{b}"),
            ExpectValue::Text(t) => write!(f, "'{t}'"),
            ExpectValue::Null => f.write_str("NULL"),
        }
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expectation::Scalar(v) => write!(f, "= {v}"),
            Expectation::Row(cols) => {
                let parts: Vec<String> = cols.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "one row: {}", parts.join(", "))
            }
            Expectation::Rows(n) => write!(f, "{n} row(s)"),
        }
    }
}

impl TextRows {
    /// One line per row, `col=value` pairs; how a result is shown in reports.
    pub fn render(&self) -> String {
        if self.rows.is_empty() {
            return "(no rows)".to_string();
        }
        let lines: Vec<String> = self
            .rows
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| format!("{c}={}", v.as_deref().unwrap_or("NULL")))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        lines.join("\n")
    }
}

impl Expectation {
    /// Compares a result with the expectation; `Err` says what differs.
    pub fn compare(&self, actual: &TextRows) -> Result<(), String> {
        match self {
            Expectation::Rows(n) => {
                if actual.rows.len() as u64 == *n {
                    Ok(())
                } else {
                    Err(format!("expected {n} row(s), got {}", actual.rows.len()))
                }
            }
            Expectation::Scalar(v) => {
                let row = single_row(actual)?;
                if row.len() != 1 {
                    return Err(format!("expected one column, got {}", row.len()));
                }
                if v.matches(row[0].as_deref()) {
                    Ok(())
                } else {
                    Err(format!("expected {v}, got {}", show(row[0].as_deref())))
                }
            }
            Expectation::Row(cols) => {
                let row = single_row(actual)?;
                let mut problems = Vec::new();
                for (name, want) in cols {
                    let value = actual
                        .columns
                        .iter()
                        .position(|c| c == name)
                        .and_then(|i| row.get(i));
                    match value {
                        None => problems.push(format!("no column named {name}")),
                        Some(v) if !want.matches(v.as_deref()) => problems.push(format!(
                            "{name}: expected {want}, got {}",
                            show(v.as_deref())
                        )),
                        Some(_) => {}
                    }
                }
                if problems.is_empty() {
                    Ok(())
                } else {
                    Err(problems.join("; "))
                }
            }
        }
    }
}

fn single_row(actual: &TextRows) -> Result<&Vec<Option<String>>, String> {
    match actual.rows.as_slice() {
        [row] => Ok(row),
        rows => Err(format!("expected exactly one row, got {}", rows.len())),
    }
}

fn show(v: Option<&str>) -> String {
    v.map_or("NULL".to_string(), |s| format!("'{s}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(cols: &[&str], data: &[&[Option<&str>]]) -> TextRows {
        TextRows {
            columns: cols.iter().map(|c| c.to_string()).collect(),
            rows: data
                .iter()
                .map(|r| r.iter().map(|v| v.map(str::to_string)).collect())
                .collect(),
        }
    }

    #[test]
    fn scalar_matches_text_output() {
        let e = Expectation::Scalar(ExpectValue::Int(86));
        assert!(e.compare(&rows(&["count"], &[&[Some("86")]])).is_ok());
        let err = e.compare(&rows(&["count"], &[&[Some("85")]])).unwrap_err();
        assert!(err.contains("expected 86, got '85'"), "{err}");
        assert!(e.compare(&rows(&["count"], &[])).is_err());
        assert!(e
            .compare(&rows(&["count"], &[&[Some("86")], &[Some("86")]]))
            .is_err());
    }

    #[test]
    fn booleans_and_null() {
        assert!(ExpectValue::Bool(true).matches(Some("t")));
        assert!(!ExpectValue::Bool(true).matches(Some("f")));
        assert!(ExpectValue::Null.matches(None));
        assert!(!ExpectValue::Text("NULL".into()).matches(None));
        assert!(!ExpectValue::Int(0).matches(None));
    }

    #[test]
    fn row_names_the_differing_column() {
        let e = Expectation::Row(vec![
            ("draft".into(), ExpectValue::Int(86)),
            ("total".into(), ExpectValue::Int(86)),
        ]);
        let err = e
            .compare(&rows(&["draft", "total"], &[&[Some("80"), Some("86")]]))
            .unwrap_err();
        assert_eq!(err, "draft: expected 86, got '80'");
    }
}
