//! The objects of security statements, in the notation of SPEC §5: what a `GRANT`/`REVOKE`
//! acts on (`grant public.customer`, `grant public.customer.email` for a column privilege,
//! `grant public.*` for `ALL TABLES IN SCHEMA public`, `grant app_reader` for a role
//! membership), and the object a `COMMENT ON`, `ALTER … OWNER TO` or `DROP POLICY` names.

use super::names::{dotted, qualify, relation, strings, SearchPath};
use super::operation::{OpKind, Operation};
use pg_query::protobuf::{GrantStmt, GrantTargetType, ObjectType, RoleSpecType};
use pg_query::{Node, NodeEnum};

/// One operation per object (and per column of a column privilege) of a GRANT or REVOKE.
pub(crate) fn grant_ops(stmt: &GrantStmt, path: &SearchPath) -> Vec<Operation> {
    let kind = if stmt.is_grant {
        OpKind::Grant
    } else {
        OpKind::Revoke
    };
    let target = GrantTargetType::try_from(stmt.targtype).unwrap_or(GrantTargetType::Undefined);
    if target == GrantTargetType::AclTargetAllInSchema {
        return stmt
            .objects
            .iter()
            .filter_map(string_of)
            .map(|schema| Operation::new(kind, format!("{schema}.*")))
            .collect();
    }
    let columns: Vec<String> = stmt
        .privileges
        .iter()
        .filter_map(|p| match p.node.as_ref() {
            Some(NodeEnum::AccessPriv(p)) => Some(strings(&p.cols)),
            _ => None,
        })
        .flatten()
        .collect();
    // a privilege without columns (or ALL, an empty list) is on the whole object
    let whole = stmt.privileges.is_empty()
        || stmt
            .privileges
            .iter()
            .any(|p| matches!(p.node.as_ref(), Some(NodeEnum::AccessPriv(p)) if p.cols.is_empty()));
    let objtype = ObjectType::try_from(stmt.objtype).unwrap_or(ObjectType::Undefined);
    let mut ops = Vec::new();
    for object in &stmt.objects {
        let name = object_name(objtype as i32, Some(object), path);
        for column in &columns {
            ops.push(Operation::new(kind, format!("{name}.{column}")));
        }
        if whole {
            ops.push(Operation::new(kind, name));
        }
    }
    ops
}

/// One operation per role granted or revoked: `grant app_reader`.
pub(crate) fn grant_role_ops(stmt: &pg_query::protobuf::GrantRoleStmt) -> Vec<Operation> {
    let kind = if stmt.is_grant {
        OpKind::Grant
    } else {
        OpKind::Revoke
    };
    stmt.granted_roles
        .iter()
        .filter_map(|r| match r.node.as_ref() {
            Some(NodeEnum::AccessPriv(p)) => Some(p.priv_name.clone()),
            _ => None,
        })
        .map(|role| Operation::new(kind, role))
        .collect()
}

/// Whether a GRANT gives something to PUBLIC (every role, present and future).
pub(crate) fn grants_to_public(stmt: &GrantStmt) -> bool {
    stmt.is_grant
        && stmt.grantees.iter().any(|g| {
            matches!(g.node.as_ref(), Some(NodeEnum::RoleSpec(r))
                if r.roletype == RoleSpecType::RolespecPublic as i32)
        })
}

/// The SPEC §5 name of the object a statement names with `objtype` and `object`: `schema` for
/// a schema or role, `schema.name` for a relation, function (without its arguments) or type,
/// `schema.table.name` for a column, table constraint, trigger or policy.
pub(crate) fn object_name(objtype: i32, object: Option<&Node>, path: &SearchPath) -> String {
    let objtype = ObjectType::try_from(objtype).unwrap_or(ObjectType::Undefined);
    let Some(node) = object.and_then(|o| o.node.as_ref()) else {
        return "?".to_string();
    };
    let parts = match node {
        NodeEnum::RangeVar(rv) => return relation(rv, path),
        NodeEnum::String(s) => return s.sval.clone(),
        NodeEnum::List(list) => strings(&list.items),
        NodeEnum::ObjectWithArgs(f) => strings(&f.objname),
        NodeEnum::TypeName(t) => strings(&t.names),
        _ => return "?".to_string(),
    };
    match objtype {
        ObjectType::ObjectColumn
        | ObjectType::ObjectTabconstraint
        | ObjectType::ObjectTrigger
        | ObjectType::ObjectPolicy
        | ObjectType::ObjectRule => on_table(&parts, path),
        ObjectType::ObjectSchema | ObjectType::ObjectRole | ObjectType::ObjectExtension => {
            parts.last().cloned().unwrap_or_default()
        }
        _ => dotted(&parts, path),
    }
}

/// `schema.table.name` of something named on a table (`[table, name]` or
/// `[schema, table, name]`).
pub(crate) fn on_table(parts: &[String], path: &SearchPath) -> String {
    match parts {
        [table, name] => format!("{}.{name}", qualify("", table, path)),
        [.., schema, table, name] => format!("{schema}.{table}.{name}"),
        _ => "?".to_string(),
    }
}

fn string_of(node: &Node) -> Option<String> {
    match node.node.as_ref() {
        Some(NodeEnum::String(s)) => Some(s.sval.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::sql::operation::tests::ops;

    #[test]
    fn grants_name_their_objects() {
        assert_eq!(
            ops("GRANT SELECT, INSERT ON customer, app.orders TO reader"),
            ["grant public.customer", "grant app.orders"]
        );
        assert_eq!(
            ops("GRANT SELECT (email, name), UPDATE ON public.customer TO reader"),
            [
                "grant public.customer.email",
                "grant public.customer.name",
                "grant public.customer"
            ]
        );
        assert_eq!(
            ops("REVOKE UPDATE (email) ON public.customer FROM reader"),
            ["revoke public.customer.email"]
        );
        assert_eq!(
            ops("GRANT SELECT ON ALL TABLES IN SCHEMA app TO reader"),
            ["grant app.*"]
        );
        assert_eq!(ops("GRANT USAGE ON SCHEMA app TO reader"), ["grant app"]);
        assert_eq!(
            ops("GRANT EXECUTE ON FUNCTION app.f(int) TO PUBLIC"),
            ["grant app.f"]
        );
        assert_eq!(
            ops("GRANT USAGE ON TYPE app.mood TO reader"),
            ["grant app.mood"]
        );
        assert_eq!(ops("GRANT reader TO alice"), ["grant reader"]);
        assert_eq!(ops("REVOKE reader FROM alice"), ["revoke reader"]);
    }

    #[test]
    fn comments_owners_policies_and_row_security_name_their_objects() {
        assert_eq!(
            ops("COMMENT ON TABLE customer IS 'x'"),
            ["comment public.customer"]
        );
        assert_eq!(
            ops("COMMENT ON COLUMN customer.email IS 'x'"),
            ["comment public.customer.email"]
        );
        assert_eq!(
            ops("COMMENT ON FUNCTION app.f(int) IS NULL"),
            ["comment app.f"]
        );
        assert_eq!(ops("COMMENT ON SCHEMA app IS 'x'"), ["comment app"]);
        assert_eq!(
            ops("COMMENT ON CONSTRAINT c_pk ON app.t IS 'x'"),
            ["comment app.t.c_pk"]
        );
        assert_eq!(
            ops("ALTER TABLE app.t OWNER TO app_owner"),
            ["alter_owner app.t"]
        );
        assert_eq!(
            ops("ALTER FUNCTION app.f(int) OWNER TO app_owner"),
            ["alter_owner app.f"]
        );
        assert_eq!(
            ops("CREATE POLICY p ON customer USING (true)"),
            ["create_policy public.customer.p"]
        );
        assert_eq!(
            ops("ALTER POLICY p ON app.t USING (false)"),
            ["alter_policy app.t.p"]
        );
        assert_eq!(ops("DROP POLICY p ON app.t"), ["drop_policy app.t.p"]);
        assert_eq!(ops("DROP POLICY p ON t"), ["drop_policy public.t.p"]);
        assert_eq!(
            ops("ALTER TABLE app.t ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY"),
            ["enable_rls app.t", "force_rls app.t"]
        );
        assert_eq!(
            ops("ALTER TABLE app.t DISABLE ROW LEVEL SECURITY, NO FORCE ROW LEVEL SECURITY"),
            ["disable_rls app.t", "no_force_rls app.t"]
        );
        assert_eq!(ops("CREATE SEQUENCE app.s"), ["create_sequence app.s"]);
    }

    #[test]
    fn the_notation_reads_objects_of_any_depth() {
        use crate::sql::operation::Operation;
        for text in [
            "grant public.customer",
            "grant public.customer.email",
            "grant public.*",
            "grant reader",
            "comment app.f",
            "create_policy app.t.p",
            "enable_rls app.t",
        ] {
            assert_eq!(Operation::parse(text).unwrap().to_string(), text);
        }
        let err = Operation::parse("grant").unwrap_err();
        assert!(err.contains("expects one object"), "{err}");
        let err = Operation::parse("grant a.b.c.d").unwrap_err();
        assert!(err.contains("expects an object"), "{err}");
        let err = Operation::parse("create_policy app.t").unwrap_err();
        assert!(err.contains("3 part(s)"), "{err}");
    }
}
