//! Table-level locks: the eight modes of PostgreSQL's "Explicit Locking" chapter, and the locks a
//! statement takes on the tables it names, with each ALTER TABLE subform at the level the ALTER
//! TABLE reference page gives it (ACCESS EXCLUSIVE unless stated otherwise). The hazards judge
//! statements by these locks; nothing here reads a catalog, so locks PostgreSQL takes on tables
//! the SQL does not name (e.g. a DROP TABLE on the table its foreign keys reference) are not known.

use super::names::{relation, SearchPath};
use pg_query::protobuf::{AlterTableType, ConstrType, Node};
use pg_query::NodeEnum;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A table-level lock mode, from the weakest to the strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockMode {
    AccessShare,
    RowShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    Exclusive,
    AccessExclusive,
}

impl LockMode {
    /// The mode as PostgreSQL's documentation writes it.
    pub fn name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowShare => "ROW SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::Exclusive => "EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// Every mode, from the weakest to the strongest (the order of [`CONFLICTS`]).
    pub const ALL: [LockMode; 8] = [
        LockMode::AccessShare,
        LockMode::RowShare,
        LockMode::RowExclusive,
        LockMode::ShareUpdateExclusive,
        LockMode::Share,
        LockMode::ShareRowExclusive,
        LockMode::Exclusive,
        LockMode::AccessExclusive,
    ];

    /// The mode `pg_locks.mode` names (`AccessExclusiveLock`, …); None for the row-level and
    /// other names it can also hold (`SIReadLock`).
    pub(crate) fn from_pg(mode: &str) -> Option<LockMode> {
        LockMode::ALL.into_iter().find(|m| m.pg_name() == mode)
    }

    /// The mode as `pg_locks.mode` writes it.
    pub(crate) fn pg_name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "AccessShareLock",
            LockMode::RowShare => "RowShareLock",
            LockMode::RowExclusive => "RowExclusiveLock",
            LockMode::ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            LockMode::Share => "ShareLock",
            LockMode::ShareRowExclusive => "ShareRowExclusiveLock",
            LockMode::Exclusive => "ExclusiveLock",
            LockMode::AccessExclusive => "AccessExclusiveLock",
        }
    }

    /// Whether a session holding `self` makes one asking for `other` wait (PostgreSQL's
    /// conflict table, [`CONFLICTS`]).
    pub fn conflicts_with(self, other: LockMode) -> bool {
        CONFLICTS[self as usize] & (1 << other as u8) != 0
    }

    /// The ordinary statements that wait while this mode is held on their table.
    pub fn blocks(self) -> Vec<&'static str> {
        STATEMENT_CLASSES
            .iter()
            .filter(|(_, asks)| self.conflicts_with(*asks))
            .map(|(statement, _)| *statement)
            .collect()
    }

    /// What holding this mode on a table means for the sessions using it, in a few words.
    pub(crate) fn blocks_phrase(self) -> &'static str {
        match self {
            LockMode::AccessExclusive => "blocks every read and write",
            LockMode::Exclusive => "blocks writes and SELECT … FOR UPDATE; plain reads go on",
            LockMode::ShareRowExclusive | LockMode::Share => "blocks writes; reads go on",
            LockMode::ShareUpdateExclusive => {
                "blocks VACUUM/ANALYZE, index builds and DDL; reads and writes go on"
            }
            LockMode::RowExclusive => "blocks CREATE INDEX and DDL; reads and writes go on",
            LockMode::RowShare => "blocks EXCLUSIVE locks and DDL; reads and writes go on",
            LockMode::AccessShare => "blocks only DDL",
        }
    }

    /// Whether it conflicts with ROW EXCLUSIVE: INSERT, UPDATE and DELETE wait for it.
    pub(crate) fn blocks_writes(self) -> bool {
        self.conflicts_with(LockMode::RowExclusive)
    }

    /// Whether it conflicts with ACCESS SHARE: plain SELECTs wait for it.
    pub(crate) fn blocks_reads(self) -> bool {
        self.conflicts_with(LockMode::AccessShare)
    }
}

/// PostgreSQL's lock conflict table ("Explicit Locking", Table 13.2; `LockConflicts[]` in
/// lock.c): row = the mode held, bit n set = it conflicts with the mode of discriminant n
/// (0 ACCESS SHARE … 7 ACCESS EXCLUSIVE).
pub const CONFLICTS: [u8; 8] = [
    0b1000_0000, // ACCESS SHARE            — AE
    0b1100_0000, // ROW SHARE               — E, AE
    0b1111_0000, // ROW EXCLUSIVE           — S, SRE, E, AE
    0b1111_1000, // SHARE UPDATE EXCLUSIVE  — SUE, S, SRE, E, AE
    0b1110_1100, // SHARE                   — RE, SUE, SRE, E, AE
    0b1111_1100, // SHARE ROW EXCLUSIVE     — RE, SUE, S, SRE, E, AE
    0b1111_1110, // EXCLUSIVE               — all but ACCESS SHARE
    0b1111_1111, // ACCESS EXCLUSIVE        — all
];

/// The lock each ordinary statement asks for on its table (the "acquired by" lists of the
/// same chapter).
pub const STATEMENT_CLASSES: [(&str, LockMode); 6] = [
    ("SELECT", LockMode::AccessShare),
    ("SELECT … FOR UPDATE/SHARE", LockMode::RowShare),
    ("INSERT/UPDATE/DELETE/MERGE", LockMode::RowExclusive),
    (
        "VACUUM/ANALYZE/CREATE INDEX CONCURRENTLY",
        LockMode::ShareUpdateExclusive,
    ),
    ("CREATE INDEX", LockMode::Share),
    (
        "DDL (ALTER TABLE, DROP, TRUNCATE)",
        LockMode::AccessExclusive,
    ),
];

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A lock a statement takes on one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLock {
    /// `schema.table`.
    pub table: String,
    pub mode: LockMode,
    /// The table is locked because a foreign key references it, not because it is altered.
    pub referenced: bool,
}

/// The locks a statement takes on the tables it names, strongest per table, in the order the
/// tables appear (the altered table first). Statements that only read or write rows, and those
/// this module does not model, take none here.
pub fn statement_locks(node: &NodeEnum, path: &SearchPath) -> Vec<TableLock> {
    let mut locks = Locks::default();
    match node {
        NodeEnum::AlterTableStmt(stmt) => {
            let Some(rv) = stmt.relation.as_ref() else {
                return vec![];
            };
            let table = relation(rv, path);
            for c in &stmt.cmds {
                let Some(NodeEnum::AlterTableCmd(cmd)) = c.node.as_ref() else {
                    continue;
                };
                locks.take(&table, alter_table_cmd_lock(cmd), false);
                for referenced in cmd_referenced_tables(cmd, path) {
                    locks.take(&referenced, LockMode::ShareRowExclusive, true);
                }
                if let Some(partition) = attached_partition(cmd, path) {
                    locks.take(&partition, LockMode::AccessExclusive, false);
                }
            }
        }
        NodeEnum::RenameStmt(stmt) => {
            if let Some(rv) = stmt.relation.as_ref() {
                locks.take(&relation(rv, path), LockMode::AccessExclusive, false);
            }
        }
        NodeEnum::DropStmt(_) | NodeEnum::TruncateStmt(_) => {
            for op in super::operation::derive(node, path) {
                if matches!(op.kind, super::OpKind::DropTable | super::OpKind::Truncate) {
                    locks.take(&op.object, LockMode::AccessExclusive, false);
                }
            }
        }
        NodeEnum::IndexStmt(stmt) => {
            if let Some(rv) = stmt.relation.as_ref() {
                let mode = if stmt.concurrent {
                    LockMode::ShareUpdateExclusive
                } else {
                    LockMode::Share
                };
                locks.take(&relation(rv, path), mode, false);
            }
        }
        NodeEnum::CreateTrigStmt(stmt) => {
            if let Some(rv) = stmt.relation.as_ref() {
                locks.take(&relation(rv, path), LockMode::ShareRowExclusive, false);
            }
        }
        NodeEnum::CreateStmt(stmt) => {
            for element in &stmt.table_elts {
                let constraints: &[Node] = match element.node.as_ref() {
                    Some(NodeEnum::ColumnDef(col)) => &col.constraints,
                    Some(NodeEnum::Constraint(_)) => std::slice::from_ref(element),
                    _ => &[],
                };
                for referenced in referenced_tables(constraints, path) {
                    locks.take(&referenced, LockMode::ShareRowExclusive, true);
                }
            }
        }
        _ => {}
    }
    locks.0
}

#[derive(Default)]
struct Locks(Vec<TableLock>);

impl Locks {
    fn take(&mut self, table: &str, mode: LockMode, referenced: bool) {
        match self.0.iter_mut().find(|l| l.table == table) {
            Some(held) if held.mode < mode => {
                held.mode = mode;
                held.referenced &= referenced;
            }
            Some(held) => held.referenced &= referenced,
            None => self.0.push(TableLock {
                table: table.to_string(),
                mode,
                referenced,
            }),
        }
    }
}

/// The lock one ALTER TABLE subcommand takes on the altered table (PostgreSQL's
/// `AlterTableGetLockLevel`, as the ALTER TABLE page documents each subform).
pub(crate) fn alter_table_cmd_lock(cmd: &pg_query::protobuf::AlterTableCmd) -> LockMode {
    use AlterTableType::*;
    let subtype = AlterTableType::try_from(cmd.subtype).unwrap_or(Undefined);
    match subtype {
        AtValidateConstraint
        | AtSetStatistics
        | AtSetOptions
        | AtResetOptions
        | AtClusterOn
        | AtDropCluster
        | AtAttachPartition
        | AtDetachPartitionFinalize => LockMode::ShareUpdateExclusive,
        AtDetachPartition if detach_concurrently(cmd) => LockMode::ShareUpdateExclusive,
        AtEnableTrig | AtEnableAlwaysTrig | AtEnableReplicaTrig | AtDisableTrig
        | AtEnableTrigAll | AtDisableTrigAll | AtEnableTrigUser | AtDisableTrigUser => {
            LockMode::ShareRowExclusive
        }
        AtAddConstraint => match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
            Some(NodeEnum::Constraint(con)) if con.contype == ConstrType::ConstrForeign as i32 => {
                LockMode::ShareRowExclusive
            }
            _ => LockMode::AccessExclusive,
        },
        AtSetRelOptions | AtResetRelOptions => reloptions_lock(cmd),
        _ => LockMode::AccessExclusive,
    }
}

/// Storage parameters whose change takes only SHARE UPDATE EXCLUSIVE; any other (e.g.
/// `user_catalog_table`) takes ACCESS EXCLUSIVE.
const SHARE_UPDATE_EXCLUSIVE_RELOPTIONS: &[&str] = &[
    "fillfactor",
    "toast_tuple_target",
    "parallel_workers",
    "vacuum_index_cleanup",
    "vacuum_truncate",
    "log_autovacuum_min_duration",
];

fn reloptions_lock(cmd: &pg_query::protobuf::AlterTableCmd) -> LockMode {
    let Some(NodeEnum::List(list)) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) else {
        return LockMode::AccessExclusive;
    };
    let light = list.items.iter().all(|item| match item.node.as_ref() {
        Some(NodeEnum::DefElem(d)) => {
            d.defname.starts_with("autovacuum_")
                || SHARE_UPDATE_EXCLUSIVE_RELOPTIONS.contains(&d.defname.as_str())
        }
        _ => false,
    });
    if light && !list.items.is_empty() {
        LockMode::ShareUpdateExclusive
    } else {
        LockMode::AccessExclusive
    }
}

fn detach_concurrently(cmd: &pg_query::protobuf::AlterTableCmd) -> bool {
    matches!(
        cmd.def.as_ref().and_then(|d| d.node.as_ref()),
        Some(NodeEnum::PartitionCmd(p)) if p.concurrent
    )
}

/// The partition an ATTACH or (plain) DETACH PARTITION locks ACCESS EXCLUSIVE.
fn attached_partition(
    cmd: &pg_query::protobuf::AlterTableCmd,
    path: &SearchPath,
) -> Option<String> {
    let subtype = AlterTableType::try_from(cmd.subtype).ok()?;
    if !(subtype == AlterTableType::AtAttachPartition
        || subtype == AlterTableType::AtDetachPartition && !detach_concurrently(cmd))
    {
        return None;
    }
    match cmd.def.as_ref()?.node.as_ref()? {
        NodeEnum::PartitionCmd(p) => p.name.as_ref().map(|rv| relation(rv, path)),
        _ => None,
    }
}

/// Tables the foreign keys of an ALTER TABLE subcommand reference (ADD CONSTRAINT … FOREIGN KEY,
/// ADD COLUMN … REFERENCES): each takes SHARE ROW EXCLUSIVE.
fn cmd_referenced_tables(
    cmd: &pg_query::protobuf::AlterTableCmd,
    path: &SearchPath,
) -> Vec<String> {
    let Some(def) = cmd.def.as_deref() else {
        return vec![];
    };
    match def.node.as_ref() {
        Some(NodeEnum::Constraint(_)) => referenced_tables(std::slice::from_ref(def), path),
        Some(NodeEnum::ColumnDef(col)) if cmd.subtype == AlterTableType::AtAddColumn as i32 => {
            referenced_tables(&col.constraints, path)
        }
        _ => vec![],
    }
}

fn referenced_tables(constraints: &[Node], path: &SearchPath) -> Vec<String> {
    constraints
        .iter()
        .filter_map(|c| match c.node.as_ref() {
            Some(NodeEnum::Constraint(con)) if con.contype == ConstrType::ConstrForeign as i32 => {
                con.pktable.as_ref().map(|rv| relation(rv, path))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locks(sql: &str) -> Vec<(String, LockMode)> {
        let node = crate::sql::parse_one(sql).unwrap();
        statement_locks(&node, &SearchPath::default())
            .into_iter()
            .map(|l| (l.table, l.mode))
            .collect()
    }

    fn on(table: &str, mode: LockMode) -> (String, LockMode) {
        (table.to_string(), mode)
    }

    /// The "Conflicts with" list of each mode, as the "Explicit Locking" chapter writes it.
    const DOCUMENTED: [(LockMode, &[LockMode]); 8] = {
        use LockMode::*;
        [
            (AccessShare, &[AccessExclusive]),
            (RowShare, &[Exclusive, AccessExclusive]),
            (
                RowExclusive,
                &[Share, ShareRowExclusive, Exclusive, AccessExclusive],
            ),
            (
                ShareUpdateExclusive,
                &[
                    ShareUpdateExclusive,
                    Share,
                    ShareRowExclusive,
                    Exclusive,
                    AccessExclusive,
                ],
            ),
            (
                Share,
                &[
                    RowExclusive,
                    ShareUpdateExclusive,
                    ShareRowExclusive,
                    Exclusive,
                    AccessExclusive,
                ],
            ),
            (
                ShareRowExclusive,
                &[
                    RowExclusive,
                    ShareUpdateExclusive,
                    Share,
                    ShareRowExclusive,
                    Exclusive,
                    AccessExclusive,
                ],
            ),
            (
                Exclusive,
                &[
                    RowShare,
                    RowExclusive,
                    ShareUpdateExclusive,
                    Share,
                    ShareRowExclusive,
                    Exclusive,
                    AccessExclusive,
                ],
            ),
            (AccessExclusive, &LockMode::ALL),
        ]
    };

    #[test]
    fn the_conflict_table_is_the_documented_one_and_symmetric() {
        for (held, listed) in DOCUMENTED {
            for asked in LockMode::ALL {
                assert_eq!(
                    held.conflicts_with(asked),
                    listed.contains(&asked),
                    "{held} against {asked}"
                );
                assert_eq!(held.conflicts_with(asked), asked.conflicts_with(held));
            }
        }
    }

    #[test]
    fn the_statements_each_mode_blocks() {
        use LockMode::*;
        assert_eq!(AccessExclusive.blocks().len(), STATEMENT_CLASSES.len());
        assert_eq!(
            RowExclusive.blocks(),
            ["CREATE INDEX", "DDL (ALTER TABLE, DROP, TRUNCATE)"]
        );
        let sue = ShareUpdateExclusive.blocks();
        assert!(!sue.contains(&"SELECT") && !sue.contains(&"INSERT/UPDATE/DELETE/MERGE"));
        // blocks_reads / blocks_writes are what they were before the table: AE, and SHARE or up
        for mode in LockMode::ALL {
            assert_eq!(mode.blocks_reads(), mode == AccessExclusive, "{mode}");
            assert_eq!(mode.blocks_writes(), mode >= Share, "{mode}");
            assert_eq!(LockMode::from_pg(mode.pg_name()), Some(mode));
        }
        assert_eq!(LockMode::from_pg("SIReadLock"), None);
    }

    // Each expectation below was read from pg_locks on PostgreSQL 15 inside an open transaction.
    #[test]
    fn a_foreign_key_takes_share_row_exclusive_on_both_tables() {
        use LockMode::*;
        assert_eq!(
            locks("ALTER TABLE child ADD CONSTRAINT fk FOREIGN KEY (pid) REFERENCES s.parent (id)"),
            vec![
                on("public.child", ShareRowExclusive),
                on("s.parent", ShareRowExclusive)
            ]
        );
        assert_eq!(
            locks(
                "ALTER TABLE child ADD CONSTRAINT fk FOREIGN KEY (pid) REFERENCES parent NOT VALID"
            ),
            vec![
                on("public.child", ShareRowExclusive),
                on("public.parent", ShareRowExclusive)
            ]
        );
        // with another subcommand the altered table takes the stronger lock
        assert_eq!(
            locks("ALTER TABLE child ADD COLUMN pid int REFERENCES parent"),
            vec![
                on("public.child", AccessExclusive),
                on("public.parent", ShareRowExclusive)
            ]
        );
        assert_eq!(
            locks(
                "CREATE TABLE n (id int, pid int REFERENCES parent, FOREIGN KEY (id) REFERENCES o)"
            ),
            vec![
                on("public.parent", ShareRowExclusive),
                on("public.o", ShareRowExclusive)
            ]
        );
    }

    #[test]
    fn validate_constraint_takes_share_update_exclusive() {
        assert_eq!(
            locks("ALTER TABLE t VALIDATE CONSTRAINT c"),
            vec![on("public.t", LockMode::ShareUpdateExclusive)]
        );
    }

    #[test]
    fn subforms_at_their_documented_level() {
        use LockMode::*;
        for (sql, mode) in [
            ("ALTER TABLE t ADD CONSTRAINT u UNIQUE (a)", AccessExclusive),
            (
                "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID",
                AccessExclusive,
            ),
            (
                "ALTER TABLE t ALTER COLUMN a SET DEFAULT 1",
                AccessExclusive,
            ),
            ("ALTER TABLE t RENAME COLUMN a TO b", AccessExclusive),
            ("ALTER TABLE t RENAME TO u", AccessExclusive),
            (
                "ALTER TABLE t ALTER COLUMN a SET STATISTICS 100",
                ShareUpdateExclusive,
            ),
            (
                "ALTER TABLE t ALTER COLUMN a SET (n_distinct = 5)",
                ShareUpdateExclusive,
            ),
            ("ALTER TABLE t SET (fillfactor = 70)", ShareUpdateExclusive),
            (
                "ALTER TABLE t SET (autovacuum_enabled = false)",
                ShareUpdateExclusive,
            ),
            (
                "ALTER TABLE t SET (user_catalog_table = true)",
                AccessExclusive,
            ),
            ("ALTER TABLE t CLUSTER ON ix", ShareUpdateExclusive),
            ("ALTER TABLE t DISABLE TRIGGER tg", ShareRowExclusive),
            (
                "CREATE TRIGGER tg BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f()",
                ShareRowExclusive,
            ),
            ("CREATE INDEX ix ON t (a)", Share),
            (
                "CREATE INDEX CONCURRENTLY ix ON t (a)",
                ShareUpdateExclusive,
            ),
            ("TRUNCATE t", AccessExclusive),
        ] {
            assert_eq!(locks(sql), vec![on("public.t", mode)], "{sql}");
        }
        assert!(locks("UPDATE t SET a = 1").is_empty());
    }

    #[test]
    fn what_each_mode_blocks() {
        assert!(!LockMode::ShareUpdateExclusive.blocks_writes());
        assert!(LockMode::Share.blocks_writes() && !LockMode::Share.blocks_reads());
        assert!(LockMode::ShareRowExclusive.blocks_writes());
        assert!(LockMode::AccessExclusive.blocks_reads());
    }
}
