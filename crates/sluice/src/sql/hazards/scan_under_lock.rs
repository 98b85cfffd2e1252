//! `scan-under-lock`: statements that read a whole existing table while holding a lock that
//! blocks writes or reads: SET NOT NULL, CHECK / FOREIGN KEY constraints added without NOT VALID,
//! and VALIDATE CONSTRAINT inside a transaction that already holds such a lock on the table.
//! The advice depends on the transaction mode: in `single` mode every lock is held until COMMIT,
//! so NOT VALID then VALIDATE in the same migration gains nothing.

use super::{Finding, HazardContext, HazardRule, Judge, Severity};
use crate::sql::locks::{alter_table_cmd_lock, LockMode};
use crate::sql::names::relation;
use crate::sql::transaction::TransactionMode;
use pg_query::protobuf::{AlterTableCmd, AlterTableType, ConstrType};
use pg_query::NodeEnum;

pub const RULE: HazardRule = HazardRule {
    id: "scan-under-lock",
    summary: "a full-table scan while a lock that blocks reads or writes is held",
    help: "SET NOT NULL and a constraint added without NOT VALID scan the whole table while holding a lock that blocks writes. Add the constraint NOT VALID, then VALIDATE CONSTRAINT in a later migration (a valid CHECK (col IS NOT NULL) makes SET NOT NULL skip its scan).",
    rollback: false,
    check,
};

/// What a lock makes wait, for messages.
fn blocked(mode: LockMode) -> &'static str {
    if mode.blocks_reads() {
        "reads and writes wait"
    } else {
        "writes wait"
    }
}

fn not_valid_help(mode: TransactionMode) -> &'static str {
    match mode {
        TransactionMode::Single => {
            "add it NOT VALID here and VALIDATE CONSTRAINT in a separate migration (its own \
             package, run after this one commits), where VALIDATE takes only SHARE UPDATE \
             EXCLUSIVE; a VALIDATE in this same transaction gains nothing, since the lock taken \
             here is held until COMMIT"
        }
        TransactionMode::None => {
            "add it NOT VALID, then VALIDATE CONSTRAINT as a later statement: with transaction = \
             \"none\" the lock is released in between, and VALIDATE takes only SHARE UPDATE EXCLUSIVE"
        }
    }
}

fn set_not_null_help(mode: TransactionMode) -> &'static str {
    match mode {
        TransactionMode::Single => {
            "in a separate migration run before this one (transaction = \"none\"), add CHECK (col \
             IS NOT NULL) NOT VALID and then VALIDATE it; SET NOT NULL here then finds the valid \
             constraint and skips the scan (PostgreSQL 12+). Doing those steps inside this \
             transaction gains nothing: ACCESS EXCLUSIVE is held until COMMIT"
        }
        TransactionMode::None => {
            "first add CHECK (col IS NOT NULL) NOT VALID and VALIDATE CONSTRAINT it as separate \
             statements; SET NOT NULL then finds the valid constraint and skips the scan \
             (PostgreSQL 12+)"
        }
    }
}

const VALIDATE_HELP: &str = "VALIDATE it in a separate migration (its own package, run after this \
    one commits), where it takes only SHARE UPDATE EXCLUSIVE, which blocks neither reads nor writes";

/// ` NAME` for a constraint's name, nothing when it has none.
fn named(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!(" {name}")
    }
}

/// Why and what helps, when a subcommand scans the table under a blocking lock. `mode` is the
/// lock the table is under during the scan (this statement's, or a stronger one already held).
fn scan_reason(
    ctx: &HazardContext,
    table: &str,
    cmd: &AlterTableCmd,
    mode: LockMode,
    held: Option<(LockMode, usize)>,
) -> Option<(String, &'static str)> {
    let since = |line: usize| format!(" (held by this transaction since line {line})");
    let held_note = held
        .filter(|(held, _)| *held >= mode)
        .map(|(_, line)| since(line))
        .unwrap_or_default();
    match AlterTableType::try_from(cmd.subtype).ok()? {
        AlterTableType::AtSetNotNull => Some((
            format!(
                "SET NOT NULL on {} scans every row of {table} under {mode}{held_note}: {}",
                cmd.name,
                blocked(mode)
            ),
            set_not_null_help(ctx.mode),
        )),
        AlterTableType::AtAddConstraint => {
            let Some(NodeEnum::Constraint(con)) = cmd.def.as_ref()?.node.as_ref() else {
                return None;
            };
            if con.skip_validation {
                return None;
            }
            match ConstrType::try_from(con.contype).ok()? {
                ConstrType::ConstrCheck => Some((
                    format!(
                        "the CHECK constraint{} is checked against every row of {table} while \
                         {mode} is held on it{held_note}: {}",
                        named(&con.conname),
                        blocked(mode)
                    ),
                    not_valid_help(ctx.mode),
                )),
                ConstrType::ConstrForeign => {
                    let referenced = relation(con.pktable.as_ref()?, ctx.search_path);
                    let locks = if mode == LockMode::ShareRowExclusive {
                        format!("{mode} is held on {table}{held_note} and on {referenced}")
                    } else {
                        format!(
                            "{mode} is held on {table}{held_note} and {} on {referenced}",
                            LockMode::ShareRowExclusive
                        )
                    };
                    Some((
                        format!(
                            "the foreign key{} is checked against every row of {table} while \
                             {locks}: {} on both",
                            named(&con.conname),
                            blocked(mode)
                        ),
                        not_valid_help(ctx.mode),
                    ))
                }
                _ => None,
            }
        }
        AlterTableType::AtValidateConstraint => {
            let (held, line) = held?;
            held.blocks_writes().then(|| {
                (
                    format!(
                        "VALIDATE CONSTRAINT {} scans every row of {table}, and this transaction \
                         already holds {held} on it since line {line} (until COMMIT): {} for the \
                         scan; NOT VALID then VALIDATE gains nothing inside one transaction",
                        cmd.name,
                        blocked(held)
                    ),
                    VALIDATE_HELP,
                )
            })
        }
        _ => None,
    }
}

fn check(ctx: &Judge) -> Vec<Finding> {
    let mut findings = Vec::new();
    for stmt in ctx.executed() {
        let NodeEnum::AlterTableStmt(alter) = &stmt.node else {
            continue;
        };
        let Some(rv) = alter.relation.as_ref() else {
            continue;
        };
        let table = relation(rv, ctx.search_path);
        if ctx.created_before(stmt.index, &table) {
            continue;
        }
        let held = ctx
            .held_before(stmt.index, &table)
            .map(|(mode, by)| (mode, ctx.source.locate(by.start).line));
        let cmds: Vec<&AlterTableCmd> = alter
            .cmds
            .iter()
            .filter_map(|c| match c.node.as_ref() {
                Some(NodeEnum::AlterTableCmd(cmd)) => Some(cmd.as_ref()),
                _ => None,
            })
            .collect();
        // the statement locks the table at its strongest subcommand's level
        let own = cmds.iter().map(|cmd| alter_table_cmd_lock(cmd)).max();
        let Some(own) = own else {
            continue;
        };
        let mode = held.map_or(own, |(h, _)| h.max(own));
        for cmd in cmds {
            if let Some((why, help)) = scan_reason(ctx, &table, cmd, mode, held) {
                findings.push(ctx.finding(RULE.id, Severity::Warn, stmt, why, Some(help)));
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{findings_with, full, ids};
    use super::*;

    #[test]
    fn scans() {
        assert!(ids("ALTER TABLE t ALTER COLUMN a SET NOT NULL;").contains(&"scan-under-lock"));
        assert!(ids("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0);").contains(&"scan-under-lock"));
        assert!(
            !ids("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;")
                .contains(&"scan-under-lock")
        );
        assert!(
            !ids("CREATE TABLE t (a int); ALTER TABLE t ALTER COLUMN a SET NOT NULL;")
                .contains(&"scan-under-lock")
        );
    }

    fn scan(sql: &str, mode: TransactionMode) -> Finding {
        full(sql, mode)
            .into_iter()
            .find(|f| f.hazard == RULE.id)
            .unwrap_or_else(|| panic!("no scan-under-lock for {sql}"))
    }

    #[test]
    fn a_foreign_key_scan_names_both_tables_and_their_locks() {
        let f = scan(
            "ALTER TABLE child ADD CONSTRAINT fk FOREIGN KEY (pid) REFERENCES parent (id);",
            TransactionMode::Single,
        );
        assert!(
            f.why.contains("foreign key fk is checked")
                && f.why
                    .contains("SHARE ROW EXCLUSIVE is held on public.child and on public.parent")
                && f.why.contains("writes wait on both"),
            "{}",
            f.why
        );
    }

    #[test]
    fn not_valid_advice_fits_the_transaction_mode() {
        let sql = "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0);";
        let single = scan(sql, TransactionMode::Single).help.unwrap();
        assert!(single.contains("separate migration"), "{single}");
        let none = scan(sql, TransactionMode::None).help.unwrap();
        assert!(
            none.contains("later statement") && !none.contains("separate migration"),
            "{none}"
        );
        let not_null = scan(
            "ALTER TABLE t ALTER a SET NOT NULL;",
            TransactionMode::Single,
        );
        assert!(
            not_null.help.unwrap().contains("separate migration"),
            "{}",
            not_null.why
        );
    }

    #[test]
    fn validate_under_a_lock_this_transaction_holds_gains_nothing() {
        let sql = "ALTER TABLE t ADD COLUMN b int;\n\
                   ALTER TABLE t ADD CONSTRAINT c CHECK (b > 0) NOT VALID;\n\
                   ALTER TABLE t VALIDATE CONSTRAINT c;";
        let single = findings_with(sql, TransactionMode::Single, None);
        assert!(
            single.contains(&("scan-under-lock", Severity::Warn, 3)),
            "{single:?}"
        );
        let f = scan(sql, TransactionMode::Single);
        assert!(
            f.why
                .contains("already holds ACCESS EXCLUSIVE on it since line 1"),
            "{}",
            f.why
        );
        assert!(f.help.unwrap().contains("separate migration"));
        // each statement its own transaction: VALIDATE takes only SHARE UPDATE EXCLUSIVE
        let none = findings_with(sql, TransactionMode::None, None);
        assert!(!none.iter().any(|f| f.0 == RULE.id), "{none:?}");
        // alone, VALIDATE blocks nobody
        assert!(!ids("ALTER TABLE t VALIDATE CONSTRAINT c;").contains(&"scan-under-lock"));
    }

    #[test]
    fn a_check_on_a_table_this_transaction_already_locked_says_so() {
        let f = scan(
            "ALTER TABLE t ADD COLUMN b int;\nALTER TABLE t ADD CONSTRAINT c CHECK (b > 0);",
            TransactionMode::Single,
        );
        assert!(
            f.why.contains("held by this transaction since line 1"),
            "{}",
            f.why
        );
        assert!(f.help.unwrap().contains("separate migration"));
    }
}
