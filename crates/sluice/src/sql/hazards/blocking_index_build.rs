//! `blocking-index-build`: CREATE INDEX without CONCURRENTLY on a table that existed before the
//! migration blocks every write to it for the whole build.

use super::{Finding, HazardContext, HazardRule, Severity};
use crate::sql::names::relation;
use pg_query::NodeEnum;

pub const RULE: HazardRule = HazardRule {
    id: "blocking-index-build",
    summary: "CREATE INDEX without CONCURRENTLY on an existing table",
    check,
};

fn check(ctx: &HazardContext) -> Vec<Finding> {
    ctx.executed()
        .filter_map(|stmt| {
            let NodeEnum::IndexStmt(index) = &stmt.node else {
                return None;
            };
            if index.concurrent {
                return None;
            }
            let table = relation(index.relation.as_ref()?, ctx.search_path);
            if ctx.created_before(stmt.index).contains(&table) {
                return None;
            }
            Some(ctx.finding(
                RULE.id,
                Severity::Warn,
                stmt,
                format!("building this index takes a SHARE lock on {table}: every INSERT, UPDATE and DELETE waits for the whole build"),
                Some("build it with CREATE INDEX CONCURRENTLY in a package with transaction = \"none\""),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::ids;

    #[test]
    fn only_on_existing_tables() {
        assert!(ids("CREATE INDEX ix ON t (a);").contains(&"blocking-index-build"));
        assert!(
            !ids("CREATE TABLE s.n (a int); CREATE INDEX ix ON s.n (a);")
                .contains(&"blocking-index-build")
        );
    }
}
