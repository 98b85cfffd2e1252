//! Operations: what a statement does, in the notation of SPEC §5 (`add_column S.T.C`, …), derived
//! from the parse tree. The same notation is what `[scope].operations` declares.

use super::names::{dotted, relation, relation_schema, strings, SearchPath};
use pg_query::protobuf::{AlterTableType, ConstrType, ObjectType};
use pg_query::NodeEnum;
use serde::Serialize;
use std::fmt;

/// The kinds of operation, with the word each is written as.
macro_rules! op_kinds {
    ($($variant:ident => $word:literal, $arity:literal;)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum OpKind { $($variant,)* }

        impl OpKind {
            pub const ALL: &'static [OpKind] = &[$(OpKind::$variant,)*];

            pub fn word(self) -> &'static str {
                match self { $(OpKind::$variant => $word,)* }
            }

            /// How many dot-separated parts the object name has (0: no object; -1: free text;
            /// -2: an object of any kind, one to three parts, `*` for every object of a schema).
            pub(crate) fn arity(self) -> i32 {
                match self { $(OpKind::$variant => $arity,)* }
            }
        }
    };
}

op_kinds! {
    AddColumn => "add_column", 3;
    DropColumn => "drop_column", 3;
    AlterColumnType => "alter_column_type", 3;
    SetDefault => "set_default", 3;
    DropDefault => "drop_default", 3;
    SetNotNull => "set_not_null", 3;
    DropNotNull => "drop_not_null", 3;
    AddConstraint => "add_constraint", 3;
    DropConstraint => "drop_constraint", 3;
    ValidateConstraint => "validate_constraint", 3;
    CreateTable => "create_table", 2;
    DropTable => "drop_table", 2;
    RenameTable => "rename_table", 2;
    RenameColumn => "rename_column", 3;
    CreateIndex => "create_index", 2;
    DropIndex => "drop_index", 2;
    CreateSchema => "create_schema", 1;
    DropSchema => "drop_schema", 1;
    CreateView => "create_view", 2;
    CreateFunction => "create_function", 2;
    CreateTrigger => "create_trigger", 3;
    Insert => "insert", 2;
    Update => "update", 2;
    Delete => "delete", 2;
    Truncate => "truncate", 2;
    Grant => "grant", -2;
    Revoke => "revoke", -2;
    Comment => "comment", -2;
    AlterOwner => "alter_owner", -2;
    CreatePolicy => "create_policy", 3;
    AlterPolicy => "alter_policy", 3;
    DropPolicy => "drop_policy", 3;
    EnableRls => "enable_rls", 2;
    DisableRls => "disable_rls", 2;
    ForceRls => "force_rls", 2;
    NoForceRls => "no_force_rls", 2;
    CreateSequence => "create_sequence", 2;
    AlterRole => "alter_role", 1;
    CreateRule => "create_rule", 3;
    DropRule => "drop_rule", 3;
    CreatePublication => "create_publication", 1;
    AlterPublication => "alter_publication", 1;
    DropPublication => "drop_publication", 1;
    CreateEventTrigger => "create_event_trigger", 1;
    AlterEventTrigger => "alter_event_trigger", 1;
    DropEventTrigger => "drop_event_trigger", 1;
    CreateStatistics => "create_statistics", 2;
    AlterStatistics => "alter_statistics", 2;
    DropStatistics => "drop_statistics", 2;
    CreateExtension => "create_extension", 1;
    AlterExtension => "alter_extension", 1;
    DropExtension => "drop_extension", 1;
    Other => "other", -1;
}

/// One operation: a kind and the object it acts on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Operation {
    pub kind: OpKind,
    /// `schema.table[.column]`, `schema.index`, the statement type for `other`, or empty.
    pub object: String,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.object.is_empty() {
            f.write_str(self.kind.word())
        } else {
            write!(f, "{} {}", self.kind.word(), self.object)
        }
    }
}

impl Operation {
    pub fn new(kind: OpKind, object: impl Into<String>) -> Self {
        Operation {
            kind,
            object: object.into(),
        }
    }

    /// Reads the notation `kind object`; the error says what was expected.
    pub fn parse(text: &str) -> Result<Operation, String> {
        let mut words = text.split_whitespace();
        let word = words
            .next()
            .ok_or("expected an operation such as `add_column public.t.c`")?;
        let kind = OpKind::ALL
            .iter()
            .copied()
            .find(|k| k.word() == word)
            .ok_or_else(|| {
                let known: Vec<&str> = OpKind::ALL.iter().map(|k| k.word()).collect();
                format!(
                    "unknown operation `{word}`; expected one of: {}",
                    known.join(", ")
                )
            })?;
        let object: Vec<&str> = words.collect();
        match (kind.arity(), object.as_slice()) {
            (0, []) => Ok(Operation::new(kind, "")),
            (0, _) => Err(format!("`{word}` takes no object")),
            (-1, [stmt]) => Ok(Operation::new(kind, *stmt)),
            (-1, _) => Err("expected `other STATEMENT_TYPE`, e.g. `other CreateCastStmt`".into()),
            (-2, [name]) => {
                let parts: Vec<&str> = name.split('.').collect();
                if (1..=3).contains(&parts.len()) && !parts.iter().any(|p| p.is_empty()) {
                    Ok(Operation::new(kind, *name))
                } else {
                    Err(format!(
                        "`{word}` expects an object: a schema, `schema.object` (`schema.*` for all \
                         of a schema's tables), `schema.table.column`, or a role; got `{name}`"
                    ))
                }
            }
            (-2, _) => Err(format!(
                "`{word}` expects one object after it, e.g. `{word} public.customer`"
            )),
            (n, [name]) => {
                let parts = name.split('.').count() as i32;
                if parts == n && !name.split('.').any(str::is_empty) {
                    Ok(Operation::new(kind, *name))
                } else {
                    Err(format!(
                        "`{word}` expects a schema-qualified name with {n} part(s) ({}), got `{name}`",
                        example_name(n)
                    ))
                }
            }
            (n, _) => Err(format!(
                "`{word}` expects one name ({}) after it",
                example_name(n)
            )),
        }
    }
}

fn example_name(parts: i32) -> &'static str {
    match parts {
        1 => "schema",
        2 => "schema.object",
        _ => "schema.table.column",
    }
}

/// The operations one statement performs. Read-only statements (SELECT without INTO, SHOW)
/// perform none.
pub fn derive(node: &NodeEnum, path: &SearchPath) -> Vec<Operation> {
    use OpKind::*;
    let op = Operation::new;
    match node {
        NodeEnum::AlterTableStmt(stmt) => {
            let Some(rv) = stmt.relation.as_ref() else {
                return vec![other(node)];
            };
            let table = relation(rv, path);
            stmt.cmds
                .iter()
                .filter_map(|c| match c.node.as_ref() {
                    Some(NodeEnum::AlterTableCmd(cmd)) => Some(alter_table_cmd(&table, cmd)),
                    _ => None,
                })
                .collect()
        }
        NodeEnum::CreateStmt(stmt) => match stmt.relation.as_ref() {
            Some(rv) => vec![op(CreateTable, relation(rv, path))],
            None => vec![other(node)],
        },
        NodeEnum::IndexStmt(stmt) => {
            let schema = stmt.relation.as_ref().map_or_else(
                || path.creation_schema().to_string(),
                |rv| relation_schema(rv, path),
            );
            let name = if stmt.idxname.is_empty() {
                "(unnamed)".to_string()
            } else {
                stmt.idxname.clone()
            };
            vec![op(CreateIndex, format!("{schema}.{name}"))]
        }
        NodeEnum::DropStmt(stmt) => drop_stmt(node, stmt, path),
        NodeEnum::RenameStmt(stmt) => {
            let rename_type =
                ObjectType::try_from(stmt.rename_type).unwrap_or(ObjectType::Undefined);
            match (rename_type, stmt.relation.as_ref()) {
                (ObjectType::ObjectTable, Some(rv)) => vec![op(RenameTable, relation(rv, path))],
                (ObjectType::ObjectColumn, Some(rv)) => {
                    vec![op(
                        RenameColumn,
                        format!("{}.{}", relation(rv, path), stmt.subname),
                    )]
                }
                _ => vec![other(node)],
            }
        }
        NodeEnum::CreateSchemaStmt(stmt) => vec![op(CreateSchema, stmt.schemaname.clone())],
        NodeEnum::ViewStmt(stmt) => match stmt.view.as_ref() {
            Some(rv) => vec![op(CreateView, relation(rv, path))],
            None => vec![other(node)],
        },
        NodeEnum::CreateFunctionStmt(stmt) => {
            vec![op(CreateFunction, dotted(&strings(&stmt.funcname), path))]
        }
        NodeEnum::CreateTrigStmt(stmt) => match stmt.relation.as_ref() {
            Some(rv) => vec![op(
                CreateTrigger,
                format!("{}.{}", relation(rv, path), stmt.trigname),
            )],
            None => vec![other(node)],
        },
        NodeEnum::InsertStmt(stmt) => dml(node, Insert, stmt.relation.as_ref(), path),
        NodeEnum::UpdateStmt(stmt) => dml(node, Update, stmt.relation.as_ref(), path),
        NodeEnum::DeleteStmt(stmt) => dml(node, Delete, stmt.relation.as_ref(), path),
        NodeEnum::TruncateStmt(stmt) => stmt
            .relations
            .iter()
            .filter_map(|n| match n.node.as_ref() {
                Some(NodeEnum::RangeVar(rv)) => Some(op(Truncate, relation(rv, path))),
                _ => None,
            })
            .collect(),
        NodeEnum::GrantStmt(stmt) => super::privileges::grant_ops(stmt, path),
        NodeEnum::GrantRoleStmt(stmt) => super::privileges::grant_role_ops(stmt),
        NodeEnum::CommentStmt(stmt) => vec![op(
            Comment,
            super::privileges::object_name(stmt.objtype, stmt.object.as_deref(), path),
        )],
        NodeEnum::AlterOwnerStmt(stmt) => vec![op(
            AlterOwner,
            match stmt.relation.as_ref() {
                Some(rv) => relation(rv, path),
                None => {
                    super::privileges::object_name(stmt.object_type, stmt.object.as_deref(), path)
                }
            },
        )],
        NodeEnum::CreatePolicyStmt(stmt) => match stmt.table.as_ref() {
            Some(rv) => vec![op(
                CreatePolicy,
                format!("{}.{}", relation(rv, path), stmt.policy_name),
            )],
            None => vec![other(node)],
        },
        NodeEnum::AlterPolicyStmt(stmt) => match stmt.table.as_ref() {
            Some(rv) => vec![op(
                AlterPolicy,
                format!("{}.{}", relation(rv, path), stmt.policy_name),
            )],
            None => vec![other(node)],
        },
        NodeEnum::AlterRoleStmt(stmt) => match stmt.role.as_ref() {
            Some(role) if !role.rolename.is_empty() => vec![op(AlterRole, role.rolename.clone())],
            _ => vec![other(node)],
        },
        NodeEnum::RuleStmt(stmt) => match stmt.relation.as_ref() {
            Some(rv) => vec![op(
                CreateRule,
                format!("{}.{}", relation(rv, path), stmt.rulename),
            )],
            None => vec![other(node)],
        },
        NodeEnum::CreatePublicationStmt(stmt) => vec![op(CreatePublication, stmt.pubname.clone())],
        NodeEnum::CreateExtensionStmt(stmt) => vec![op(CreateExtension, stmt.extname.clone())],
        NodeEnum::AlterExtensionStmt(stmt) => vec![op(AlterExtension, stmt.extname.clone())],
        NodeEnum::AlterPublicationStmt(stmt) => vec![op(AlterPublication, stmt.pubname.clone())],
        NodeEnum::CreateEventTrigStmt(stmt) => {
            vec![op(CreateEventTrigger, stmt.trigname.clone())]
        }
        NodeEnum::AlterEventTrigStmt(stmt) => vec![op(AlterEventTrigger, stmt.trigname.clone())],
        NodeEnum::CreateStatsStmt(stmt) => vec![op(
            CreateStatistics,
            match strings(&stmt.defnames).as_slice() {
                [] => format!("{}.(unnamed)", path.creation_schema()),
                parts => dotted(parts, path),
            },
        )],
        NodeEnum::AlterStatsStmt(stmt) => {
            vec![op(AlterStatistics, dotted(&strings(&stmt.defnames), path))]
        }
        NodeEnum::CreateSeqStmt(stmt) => match stmt.sequence.as_ref() {
            Some(rv) => vec![op(CreateSequence, relation(rv, path))],
            None => vec![other(node)],
        },
        NodeEnum::SelectStmt(s) if s.into_clause.is_none() => {
            if super::read_only_violation(node).is_none() {
                vec![]
            } else {
                vec![other(node)]
            }
        }
        NodeEnum::VariableShowStmt(_) => vec![],
        _ => vec![other(node)],
    }
}

fn other(node: &NodeEnum) -> Operation {
    Operation::new(OpKind::Other, super::node_type_name(node))
}

fn dml(
    node: &NodeEnum,
    kind: OpKind,
    rv: Option<&pg_query::protobuf::RangeVar>,
    path: &SearchPath,
) -> Vec<Operation> {
    match rv {
        Some(rv) => vec![Operation::new(kind, relation(rv, path))],
        None => vec![other(node)],
    }
}

fn alter_table_cmd(table: &str, cmd: &pg_query::protobuf::AlterTableCmd) -> Operation {
    use OpKind::*;
    let subtype = AlterTableType::try_from(cmd.subtype).unwrap_or(AlterTableType::Undefined);
    let column = |name: &str| format!("{table}.{name}");
    match subtype {
        AlterTableType::AtAddColumn => {
            let name = match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                Some(NodeEnum::ColumnDef(col)) => col.colname.clone(),
                _ => cmd.name.clone(),
            };
            Operation::new(AddColumn, column(&name))
        }
        AlterTableType::AtDropColumn => Operation::new(DropColumn, column(&cmd.name)),
        AlterTableType::AtAlterColumnType => Operation::new(AlterColumnType, column(&cmd.name)),
        AlterTableType::AtColumnDefault if cmd.def.is_some() => {
            Operation::new(SetDefault, column(&cmd.name))
        }
        AlterTableType::AtColumnDefault => Operation::new(DropDefault, column(&cmd.name)),
        AlterTableType::AtSetNotNull => Operation::new(SetNotNull, column(&cmd.name)),
        AlterTableType::AtDropNotNull => Operation::new(DropNotNull, column(&cmd.name)),
        AlterTableType::AtAddConstraint => {
            let name = match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                Some(NodeEnum::Constraint(c)) if !c.conname.is_empty() => c.conname.clone(),
                Some(NodeEnum::Constraint(c)) => {
                    format!("(unnamed {})", constraint_word(c.contype))
                }
                _ => "(unnamed)".to_string(),
            };
            Operation::new(AddConstraint, column(&name))
        }
        AlterTableType::AtDropConstraint => Operation::new(DropConstraint, column(&cmd.name)),
        AlterTableType::AtValidateConstraint => {
            Operation::new(ValidateConstraint, column(&cmd.name))
        }
        AlterTableType::AtEnableRowSecurity => Operation::new(EnableRls, table.to_string()),
        AlterTableType::AtDisableRowSecurity => Operation::new(DisableRls, table.to_string()),
        AlterTableType::AtForceRowSecurity => Operation::new(ForceRls, table.to_string()),
        AlterTableType::AtNoForceRowSecurity => Operation::new(NoForceRls, table.to_string()),
        AlterTableType::AtChangeOwner => Operation::new(AlterOwner, table.to_string()),
        other => Operation::new(
            Other,
            format!(
                "AlterTableStmt.{}",
                format!("{other:?}").trim_start_matches("At")
            ),
        ),
    }
}

fn constraint_word(contype: i32) -> &'static str {
    match ConstrType::try_from(contype).unwrap_or(ConstrType::Undefined) {
        ConstrType::ConstrCheck => "check",
        ConstrType::ConstrForeign => "foreign key",
        ConstrType::ConstrPrimary => "primary key",
        ConstrType::ConstrUnique => "unique",
        ConstrType::ConstrExclusion => "exclusion",
        _ => "constraint",
    }
}

fn drop_stmt(
    node: &NodeEnum,
    stmt: &pg_query::protobuf::DropStmt,
    path: &SearchPath,
) -> Vec<Operation> {
    let kind = match ObjectType::try_from(stmt.remove_type).unwrap_or(ObjectType::Undefined) {
        ObjectType::ObjectTable => OpKind::DropTable,
        ObjectType::ObjectIndex => OpKind::DropIndex,
        ObjectType::ObjectSchema => OpKind::DropSchema,
        ObjectType::ObjectPolicy => OpKind::DropPolicy,
        ObjectType::ObjectRule => OpKind::DropRule,
        ObjectType::ObjectPublication => OpKind::DropPublication,
        ObjectType::ObjectEventTrigger => OpKind::DropEventTrigger,
        ObjectType::ObjectStatisticExt => OpKind::DropStatistics,
        ObjectType::ObjectExtension => OpKind::DropExtension,
        _ => return vec![other(node)],
    };
    stmt.objects
        .iter()
        .map(|obj| {
            let parts = match obj.node.as_ref() {
                Some(NodeEnum::List(list)) => strings(&list.items),
                Some(NodeEnum::String(s)) => vec![s.sval.clone()],
                _ => vec![],
            };
            let name = match kind {
                OpKind::DropSchema
                | OpKind::DropPublication
                | OpKind::DropEventTrigger
                | OpKind::DropExtension => parts.last().cloned().unwrap_or_default(),
                OpKind::DropPolicy | OpKind::DropRule => super::privileges::on_table(&parts, path),
                _ => dotted(&parts, path),
            };
            Operation::new(kind, name)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The operations of one statement, in notation.
    pub(crate) fn ops(sql: &str) -> Vec<String> {
        let node = crate::sql::parse_one(sql).unwrap();
        derive(&node, &SearchPath::default())
            .iter()
            .map(|o| o.to_string())
            .collect()
    }

    #[test]
    fn alter_table_commands() {
        assert_eq!(
            ops("ALTER TABLE t ADD COLUMN a text NOT NULL DEFAULT 'x', ALTER COLUMN b SET DEFAULT 1, ALTER COLUMN b DROP DEFAULT, ALTER c SET NOT NULL, DROP COLUMN d"),
            vec![
                "add_column public.t.a",
                "set_default public.t.b",
                "drop_default public.t.b",
                "set_not_null public.t.c",
                "drop_column public.t.d"
            ]
        );
        assert_eq!(
            ops("ALTER TABLE s.t ADD CONSTRAINT ck CHECK (a > 0) NOT VALID"),
            vec!["add_constraint s.t.ck"]
        );
        assert_eq!(
            ops("ALTER TABLE s.t VALIDATE CONSTRAINT ck"),
            vec!["validate_constraint s.t.ck"]
        );
    }

    #[test]
    fn create_and_drop() {
        assert_eq!(ops("CREATE INDEX ix ON s.t (a)"), vec!["create_index s.ix"]);
        assert_eq!(ops("CREATE TABLE s.t (a int)"), vec!["create_table s.t"]);
        assert_eq!(
            ops("DROP TABLE a, s.b"),
            vec!["drop_table public.a", "drop_table s.b"]
        );
        assert_eq!(ops("DROP SCHEMA x CASCADE"), vec!["drop_schema x"]);
        assert_eq!(ops("CREATE SEQUENCE q"), vec!["create_sequence public.q"]);
        assert_eq!(ops("SELECT 1"), Vec::<String>::new());
        assert_eq!(
            ops("ALTER TABLE t RENAME COLUMN a TO b"),
            vec!["rename_column public.t.a"]
        );
        assert_eq!(ops("GRANT SELECT ON t TO r"), vec!["grant public.t"]);
    }

    #[test]
    fn extensions_are_named_operations() {
        assert_eq!(
            ops("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public"),
            vec!["create_extension pg_trgm"]
        );
        assert_eq!(
            ops("ALTER EXTENSION hstore UPDATE"),
            vec!["alter_extension hstore"]
        );
        assert_eq!(
            ops("DROP EXTENSION citext, hstore"),
            vec!["drop_extension citext", "drop_extension hstore"]
        );
    }

    #[test]
    fn notation_round_trips_and_errors_explain() {
        let op = Operation::parse("add_column public.t.c").unwrap();
        assert_eq!(op.to_string(), "add_column public.t.c");
        assert!(Operation::parse("add_column t.c")
            .unwrap_err()
            .contains("3 part"));
        assert!(Operation::parse("frobnicate x")
            .unwrap_err()
            .contains("unknown operation"));
        assert_eq!(
            Operation::parse("grant public.t").unwrap().to_string(),
            "grant public.t"
        );
        assert_eq!(
            Operation::parse("other CreateCastStmt")
                .unwrap()
                .to_string(),
            "other CreateCastStmt"
        );
    }
}
