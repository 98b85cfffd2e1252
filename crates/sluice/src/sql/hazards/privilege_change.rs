//! `privilege-change`: statements that change who may do what — GRANT and REVOKE, role
//! memberships, ownership, row-level security and its policies. A reviewer reads each one as a
//! security change. Two are errors: a GRANT to PUBLIC (every role, present and future, gets the
//! privilege) and disabling row-level security on a table that has policies (they silently stop
//! applying: every role with table privileges sees every row).

use super::{Finding, HazardRule, Judge, Runner, Severity};
use crate::sql::operation::{derive, OpKind, Operation};
use pg_query::NodeEnum;

pub const RULE: HazardRule = HazardRule {
    id: "privilege-change",
    summary: "GRANT/REVOKE, ownership, row-level security or a policy changes who may read or write",
    help: "A change of privileges, ownership, row-level security or policies is a security change: name each one in the scope, say who gains or loses what in the review, and prefer a named role to PUBLIC.",
    rollback: false,
    check,
};

fn check(ctx: &Judge) -> Vec<Finding> {
    let mut findings = Vec::new();
    for stmt in ctx.executed() {
        let ops: Vec<Operation> = derive(&stmt.node, ctx.search_path)
            .into_iter()
            .filter(|op| is_security(op.kind))
            .collect();
        if ops.is_empty() {
            continue;
        }
        let list = ops
            .iter()
            .map(Operation::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        if let NodeEnum::GrantStmt(grant) = &stmt.node {
            if crate::sql::privileges::grants_to_public(grant) {
                findings.push(ctx.finding(
                    RULE.id,
                    Severity::Error,
                    stmt,
                    format!("{list} grants to PUBLIC: every role, present and future, gets the privilege"),
                    Some("grant to a named role that holds exactly the clients that need it"),
                ));
                continue;
            }
        }
        let unprotected: Vec<(&str, &[String])> = ops
            .iter()
            .filter(|op| op.kind == OpKind::DisableRls)
            .filter_map(|op| {
                let policies = ctx.target.and_then(|t| t.policies.get(&op.object))?;
                Some((op.object.as_str(), policies.as_slice()))
            })
            .collect();
        if let Some((table, policies)) = unprotected.first() {
            findings.push(ctx.finding(
                RULE.id,
                Severity::Error,
                stmt,
                format!(
                    "{list}: {table} has row-level security policies ({}) that stop applying; every role with privileges on it sees and writes every row",
                    policies.join(", ")
                ),
                Some("drop the policies deliberately first if they are no longer wanted, or keep row-level security on"),
            ));
            continue;
        }
        findings.push(ctx.finding(
            RULE.id,
            Severity::Warn,
            stmt,
            format!("{list} changes who may read or write; a security change to review as such"),
            Some(match ctx.runner {
                Runner::Package => {
                    "declare each object in the scope, and say in the review who gains or loses what"
                }
                Runner::Tool => {
                    "say in the review who gains or loses what, and compare the privileges before and after it ran"
                }
            }),
        ));
    }
    findings
}

fn is_security(kind: OpKind) -> bool {
    use OpKind::*;
    matches!(
        kind,
        Grant
            | Revoke
            | AlterOwner
            | CreatePolicy
            | AlterPolicy
            | DropPolicy
            | EnableRls
            | DisableRls
            | ForceRls
            | NoForceRls
    )
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{Severity, TargetFacts};
    use crate::sql::transaction::TransactionMode;

    #[test]
    fn security_statements_are_warnings_and_public_grants_errors() {
        let found = findings_for(
            "BEGIN;
GRANT SELECT ON public.t TO reader;
GRANT SELECT ON public.t TO PUBLIC;
REVOKE ALL ON public.t FROM PUBLIC;
CREATE POLICY p ON public.t USING (true);
ALTER TABLE public.t ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.t OWNER TO app;
COMMENT ON TABLE public.t IS 'not a security change';
COMMIT;",
        );
        let ours: Vec<(Severity, usize)> = found
            .iter()
            .filter(|(id, _, _)| *id == "privilege-change")
            .map(|(_, severity, line)| (*severity, *line))
            .collect();
        assert_eq!(
            ours,
            [
                (Severity::Warn, 2),
                (Severity::Error, 3),
                (Severity::Warn, 4),
                (Severity::Warn, 5),
                (Severity::Warn, 6),
                (Severity::Warn, 7),
            ]
        );
    }

    #[test]
    fn disabling_row_security_on_a_table_with_policies_is_an_error() {
        let sql = "ALTER TABLE public.t DISABLE ROW LEVEL SECURITY;";
        let mut facts = TargetFacts::default();
        let severity = |facts: &TargetFacts| {
            findings_with(sql, TransactionMode::Single, Some(facts))
                .into_iter()
                .find(|(id, _, _)| *id == "privilege-change")
                .map(|(_, s, _)| s)
        };
        assert_eq!(severity(&facts), Some(Severity::Warn));
        facts
            .policies
            .insert("public.t".into(), vec!["own_rows".into()]);
        assert_eq!(severity(&facts), Some(Severity::Error));
    }
}
