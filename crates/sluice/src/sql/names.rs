//! Object names as the parser gives them, resolved to `schema.name` through the package's
//! `search_path` (SPEC §5: unqualified names resolve through `target.search_path`), and names
//! quoted for SQL that sluice writes itself.

use pg_query::protobuf::{Node, RangeVar};
use pg_query::NodeEnum;

/// `"name"` with inner quotes doubled: an identifier safe to put in SQL.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `schema.table` quoted part by part.
pub(crate) fn quote_qualified(name: &str) -> String {
    name.split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

/// The schemas unqualified names resolve to, first one wins (`$user` is skipped: sluice cannot
/// know which role will run the change when it only reads files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPath(Vec<String>);

impl SearchPath {
    pub fn parse(text: &str) -> SearchPath {
        let schemas: Vec<String> = text
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .filter(|s| !s.is_empty() && s != "$user")
            .collect();
        SearchPath(schemas)
    }

    /// The schema an unqualified name is created in.
    pub(crate) fn creation_schema(&self) -> &str {
        self.0.first().map(String::as_str).unwrap_or("public")
    }
}

impl Default for SearchPath {
    fn default() -> Self {
        SearchPath(vec!["public".to_string()])
    }
}

/// `schema.relation` of a RangeVar.
pub fn relation(rv: &RangeVar, path: &SearchPath) -> String {
    qualify(&rv.schemaname, &rv.relname, path)
}

/// The schema a RangeVar lives in.
pub(crate) fn relation_schema(rv: &RangeVar, path: &SearchPath) -> String {
    if rv.schemaname.is_empty() {
        path.creation_schema().to_string()
    } else {
        rv.schemaname.clone()
    }
}

pub(crate) fn qualify(schema: &str, name: &str, path: &SearchPath) -> String {
    if schema.is_empty() {
        format!("{}.{name}", path.creation_schema())
    } else {
        format!("{schema}.{name}")
    }
}

/// The strings of a list of `String` nodes (a dotted name as the parser splits it).
pub fn strings(nodes: &[Node]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| match n.node.as_ref() {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect()
}

/// A dotted name (`[schema, name]` or `[name]`) resolved to `schema.name`.
pub(crate) fn dotted(parts: &[String], path: &SearchPath) -> String {
    match parts {
        [name] => qualify("", name, path),
        [.., schema, name] => format!("{schema}.{name}"),
        [] => String::from("?"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_skips_user() {
        let p = SearchPath::parse("\"$user\", app, public");
        assert_eq!(p.creation_schema(), "app");
        assert_eq!(qualify("", "t", &p), "app.t");
        assert_eq!(qualify("s", "t", &p), "s.t");
        assert_eq!(SearchPath::parse("").creation_schema(), "public");
    }
}
