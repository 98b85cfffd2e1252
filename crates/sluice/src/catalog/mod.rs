//! Catalog snapshots: the database's user objects as one normalized, sorted, keyed value, read
//! from the system catalogs (not `pg_dump`), and exact row counts. This module owns the model of
//! a schema that the `schema-diff` gate (SPEC §4 step 14) and rollback's comparison rely on;
//! [`diff`] compares two snapshots and judges the difference against the scope.
//!
//! A snapshot is taken with one query per object kind (never one per table), all inside one
//! `REPEATABLE READ READ ONLY` transaction that is rolled back at the end, with the session
//! settings that shape deparsed text pinned (`search_path` empty, so every name outside
//! `pg_catalog` is schema-qualified; ISO dates; UTC), so two snapshots of an unchanged database
//! serialize to the same bytes. Nothing in it holds an OID, a timestamp or a position that
//! a dropped column would shift: columns are keyed and compared by name. The definitions of
//! plain indexes and constraints are written by sluice from the catalog rows, in the server's
//! own text (module `deparse`).
//!
//! Keys follow the notation of SPEC §5: schema `s`, table `s.t`, column `s.t.c`, index `s.ix`,
//! constraint `s.t.name`, trigger `s.t.name`, function `s.f(argtypes)`, view `s.v`, sequence
//! `s.seq`, type `s.type`, extension `name`.

mod deparse;
pub(crate) mod diff;
mod kinds;
mod query;
mod reuse;

pub use deparse::{Definitions, Written};
pub use diff::{diff, judge, DiffVerdict, DuplicateKey, ObjectChange, SchemaDiff};
pub use kinds::{Keyed, ObjectKind, Snapshot};
pub use reuse::Baseline;

use postgres::{Client, IsolationLevel, Row, Transaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

/// A rewrite rule on a table or view, other than a view's `_RETURN` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// `schema.table.rule`
    pub key: String,
    pub schema: String,
    pub table: String,
    pub name: String,
    /// `pg_get_ruledef`.
    pub definition: String,
    /// `origin`, `disabled`, `replica` or `always`.
    pub enabled: String,
}

/// A publication: what a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    /// The publication's name.
    pub key: String,
    pub owner: String,
    pub all_tables: bool,
    /// The operations it publishes: `insert`, `update`, `delete`, `truncate`.
    pub operations: Vec<String>,
    pub via_root: bool,
    /// The tables it names (`schema.table`), sorted; and from PostgreSQL 15 the schemas whose
    /// every table it publishes (`schema.*`).
    pub tables: Vec<String>,
}

/// An event trigger: a function run on DDL of the whole database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTrigger {
    /// The trigger's name.
    pub key: String,
    pub event: String,
    /// `schema.function`.
    pub function: String,
    /// `origin`, `disabled`, `replica` or `always`.
    pub enabled: String,
    /// The command tags it fires on (all when empty).
    pub tags: Vec<String>,
    pub owner: String,
}

/// An extended statistics object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statistics {
    /// `schema.statistics`
    pub key: String,
    pub schema: String,
    pub name: String,
    /// `schema.table` it is on.
    pub table: String,
    /// `pg_get_statisticsobjdef`.
    pub definition: String,
    pub owner: String,
}

/// A role the snapshot's objects name. Roles belong to the cluster, not the database: a role
/// enters and leaves the snapshot with what it owns or is granted (those changes are judged
/// themselves); a change of a listed role's attributes or memberships is a change of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// The role's name.
    pub key: String,
    pub superuser: bool,
    pub inherit: bool,
    pub create_role: bool,
    pub create_db: bool,
    pub login: bool,
    pub replication: bool,
    pub bypass_rls: bool,
    /// The roles it is a member of, sorted.
    pub member_of: Vec<String>,
}

/// A row-level security policy of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// `schema.table.policy`
    pub key: String,
    pub schema: String,
    pub table: String,
    pub name: String,
    /// `ALL`, `SELECT`, `INSERT`, `UPDATE` or `DELETE`.
    pub command: String,
    /// `PERMISSIVE` or `RESTRICTIVE`.
    pub mode: String,
    /// The roles it applies to, sorted (`PUBLIC` for all).
    pub roles: Vec<String>,
    /// `USING (…)`.
    pub using: Option<String>,
    /// `WITH CHECK (…)`.
    pub with_check: Option<String>,
}

/// The privileges a role's new objects of one type get (`pg_default_acl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultPrivileges {
    /// `role.schema.object_type` (`role.*.object_type` for every schema), e.g.
    /// `app_owner.public.tables`.
    pub key: String,
    pub role: String,
    /// None: in every schema.
    pub schema: Option<String>,
    /// `tables`, `sequences`, `functions`, `types` or `schemas`.
    pub object_type: String,
    /// As an object's [`Table::grants`].
    pub grants: Vec<String>,
}

/// A comment on an object (`COMMENT ON`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// `object_type object`, e.g. `table public.customer`, `column public.customer.email`,
    /// `function public.f(integer)`.
    pub key: String,
    /// As `pg_identify_object_as_address` names it: `table`, `column`, `function`, …
    pub object_type: String,
    /// The object's name in SPEC §5 notation (unquoted, dotted; a function with its argument
    /// types).
    pub object: String,
    pub text: String,
}

/// What a snapshot taken now covers (see [`Snapshot::coverage`]).
pub const COVERAGE: u32 = 1;

/// An installed extension. Its member objects are not in the snapshot; the extension is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    /// The extension's name.
    pub key: String,
    pub version: String,
    pub schema: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    /// The schema's name.
    pub key: String,
    pub owner: String,
    /// The privileges granted on it, one item per grantee and grantor, sorted:
    /// `alice: INSERT, SELECT (granted by owner)`; the owner's default privileges when none
    /// were ever granted or revoked. Not the raw aclitem text, so an order change is no diff.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
}

/// A table: ordinary, partitioned or foreign. Its columns, indexes, constraints and triggers
/// are objects of their own, so that adding a column changes the column list, not the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// `schema.table`
    pub key: String,
    pub schema: String,
    pub name: String,
    /// `table`, `partitioned_table` or `foreign_table`.
    pub kind: String,
    /// `permanent` or `unlogged`.
    pub persistence: String,
    pub owner: String,
    pub access_method: Option<String>,
    pub tablespace: Option<String>,
    /// `reloptions`, e.g. `fillfactor=70`.
    pub options: Vec<String>,
    /// For a partition: the key of its parent.
    pub partition_of: Option<String>,
    /// For a partition: its bound, e.g. `FOR VALUES FROM (1) TO (10)`.
    pub partition_bound: Option<String>,
    /// For a partitioned table: its partition key, e.g. `RANGE (created_at)`.
    pub partition_key: Option<String>,
    /// Parents by plain inheritance (not partitioning), in order.
    pub inherits: Vec<String>,
    pub row_security: bool,
    pub force_row_security: bool,
    /// `default`, `nothing`, `full` or `index`.
    pub replica_identity: String,
    /// The privileges granted on it, one item per grantee and grantor, sorted:
    /// `alice: INSERT, SELECT (granted by owner)`; the owner's default privileges when none
    /// were ever granted or revoked. Not the raw aclitem text, so an order change is no diff.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
}

/// A column of a table, keyed by name (never by position).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// `schema.table.column`
    pub key: String,
    pub schema: String,
    pub table: String,
    pub name: String,
    /// `format_type`, e.g. `character varying(20)`.
    #[serde(rename = "type")]
    pub data_type: String,
    pub not_null: bool,
    /// PostgreSQL 18: the column's NOT NULL constraint exists but is NOT VALID.
    #[serde(default, skip_serializing_if = "is_false")]
    pub not_null_not_valid: bool,
    /// The default expression (not for generated columns).
    pub default: Option<String>,
    /// `always` or `by default` for an identity column.
    pub identity: Option<String>,
    /// For a generated column, as written: `GENERATED ALWAYS AS (expr) STORED` (or `VIRTUAL`).
    pub generated: Option<String>,
    /// The column's collation when it is not its type's default.
    pub collation: Option<String>,
    /// `pglz` or `lz4` when set on the column.
    pub compression: Option<String>,
    /// The storage mode when it is not the type's default: `plain`, `external`, `extended`, `main`.
    pub storage: Option<String>,
    /// The privileges granted on it, one item per grantee and grantor, sorted:
    /// `alice: INSERT, SELECT (granted by owner)`; the owner's default privileges when none
    /// were ever granted or revoked. Not the raw aclitem text, so an order change is no diff.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
}

#[cfg(test)]
impl Column {
    /// A column with nothing but a name and a type, for unit tests.
    pub(crate) fn plain(schema: &str, table: &str, name: &str, data_type: &str) -> Column {
        Column {
            key: format!("{schema}.{table}.{name}"),
            schema: schema.into(),
            table: table.into(),
            name: name.into(),
            data_type: data_type.into(),
            not_null: false,
            not_null_not_valid: false,
            default: None,
            identity: None,
            generated: None,
            collation: None,
            compression: None,
            storage: None,
            grants: Vec::new(),
        }
    }
}

/// A sequence (including those behind serial and identity columns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    /// `schema.sequence`
    pub key: String,
    pub schema: String,
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub cache: i64,
    pub cycle: bool,
    /// `schema.table.column` of the column that owns it (serial, identity, `OWNED BY`).
    pub owned_by: Option<String>,
    pub owner: String,
    /// The privileges granted on it, one item per grantee and grantor, sorted:
    /// `alice: INSERT, SELECT (granted by owner)`; the owner's default privileges when none
    /// were ever granted or revoked. Not the raw aclitem text, so an order change is no diff.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
}

/// An index, on a table or a materialized view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// `schema.index`
    pub key: String,
    pub schema: String,
    pub name: String,
    /// The name of the indexed relation (in the same schema).
    pub table: String,
    /// `pg_get_indexdef`: method, columns, expressions, INCLUDE, WHERE, NULLS NOT DISTINCT.
    pub definition: String,
    pub unique: bool,
    pub primary: bool,
    /// The name of the primary key, unique or exclusion constraint the index implements.
    pub constraint: Option<String>,
    pub valid: bool,
    pub ready: bool,
    /// For the index of a partition attached to a partitioned index: the parent's key.
    pub parent: Option<String>,
}

/// A table constraint: check, foreign key, primary key, unique, exclusion, constraint trigger.
/// NOT NULL is a column's `not_null`, also on PostgreSQL 18 where it has a constraint row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    /// `schema.table.constraint`
    pub key: String,
    pub schema: String,
    pub table: String,
    pub name: String,
    /// `check`, `foreign_key`, `primary_key`, `unique`, `exclusion` or `trigger`.
    #[serde(rename = "type")]
    pub constraint_type: String,
    /// `pg_get_constraintdef`.
    pub definition: String,
    pub validated: bool,
    /// The key of the index that implements it (primary key, unique, exclusion).
    pub index: Option<String>,
    /// For a constraint inherited by a partition: the parent constraint's key.
    pub parent: Option<String>,
}

/// A user trigger (internal ones, such as those behind foreign keys, are not listed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    /// `schema.table.trigger`
    pub key: String,
    pub schema: String,
    pub table: String,
    pub name: String,
    /// `pg_get_triggerdef`.
    pub definition: String,
    /// `origin` (the default), `disabled`, `replica` or `always`.
    pub enabled: String,
    /// For a trigger cloned onto a partition: the parent trigger's key.
    pub parent: Option<String>,
}

/// A function, procedure, aggregate or window function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Function {
    /// `schema.name(argument types)`
    pub key: String,
    pub schema: String,
    pub name: String,
    /// `function`, `procedure`, `aggregate` or `window`.
    pub kind: String,
    /// `pg_get_function_arguments`: names, modes, types, defaults.
    pub arguments: String,
    /// `pg_get_function_result`.
    pub result: Option<String>,
    pub language: String,
    /// `immutable`, `stable` or `volatile`.
    pub volatility: String,
    pub strict: bool,
    pub security_definer: bool,
    pub leakproof: bool,
    /// `safe`, `restricted` or `unsafe`.
    pub parallel: String,
    /// `SET` clauses, e.g. `search_path=public`.
    pub config: Vec<String>,
    pub owner: String,
    /// SHA-256 of the body (`prosrc`, or the SQL-standard body on PostgreSQL 14+).
    pub body_sha256: String,
    /// The privileges granted on it, one item per grantee and grantor, sorted:
    /// `alice: INSERT, SELECT (granted by owner)`; the owner's default privileges when none
    /// were ever granted or revoked. Not the raw aclitem text, so an order change is no diff.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
}

/// A view or a materialized view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// `schema.view`
    pub key: String,
    pub schema: String,
    pub name: String,
    pub materialized: bool,
    /// `pg_get_viewdef`, pretty-printed.
    pub definition: String,
    pub options: Vec<String>,
    pub owner: String,
    /// The privileges granted on it, one item per grantee and grantor, sorted:
    /// `alice: INSERT, SELECT (granted by owner)`; the owner's default privileges when none
    /// were ever granted or revoked. Not the raw aclitem text, so an order change is no diff.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
}

/// A user-defined type: enum, domain, composite or range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Type {
    /// `schema.type`
    pub key: String,
    pub schema: String,
    pub name: String,
    /// `enum`, `domain`, `composite` or `range`.
    pub kind: String,
    pub owner: String,
    /// Enum labels in their sort order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Domain: the base type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_type: Option<String>,
    /// Domain: NOT NULL.
    #[serde(default, skip_serializing_if = "is_false")]
    pub not_null: bool,
    /// Domain: the default expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Domain: `name: definition` of each constraint, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    /// Composite: `name type` of each attribute, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    /// Range: the subtype.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtype: Option<String>,
    /// The privileges granted on it, one item per grantee and grantor, sorted:
    /// `alice: INSERT, SELECT (granted by owner)`; the owner's default privileges when none
    /// were ever granted or revoked. Not the raw aclitem text, so an order change is no diff.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Snapshot {
    /// This snapshot as one of `coverage` would have seen it: compared with a snapshot an
    /// older sluice wrote (a run applied before an upgrade), what that one could not read is
    /// left out of this one, so that it is no difference (no false drift, and a rollback's
    /// schema-equals-pre judges what the run's pre snapshot holds).
    pub(crate) fn covered_as(&self, coverage: u32) -> Snapshot {
        let mut out = self.clone();
        if coverage >= 1 {
            return out;
        }
        out.coverage = coverage;
        out.schemas.iter_mut().for_each(|o| o.grants.clear());
        out.tables.iter_mut().for_each(|o| o.grants.clear());
        out.columns.iter_mut().for_each(|o| o.grants.clear());
        out.sequences.iter_mut().for_each(|o| o.grants.clear());
        out.functions.iter_mut().for_each(|o| o.grants.clear());
        out.views.iter_mut().for_each(|o| o.grants.clear());
        out.types.iter_mut().for_each(|o| o.grants.clear());
        out.clear_kinds_newer_than(coverage);
        out
    }

    /// SHA-256 (hex) of the snapshot's JSON: equal snapshots have equal digests.
    pub fn sha256(&self) -> String {
        let bytes = serde_json::to_vec(self).expect("a snapshot serializes");
        hex::encode(Sha256::digest(bytes))
    }
}

/// Session settings that shape deparsed text (`pg_get_expr`, `format_type`, …): pinned so that
/// the text does not depend on the role's or database's own settings. With an empty
/// `search_path`, every name outside `pg_catalog` is printed schema-qualified.
const PINNED_SETTINGS: &str = "SET LOCAL search_path = ''; \
     SET LOCAL DateStyle = 'ISO, YMD'; \
     SET LOCAL IntervalStyle = 'postgres'; \
     SET LOCAL TimeZone = 'UTC'; \
     SET LOCAL extra_float_digits = 3; \
     SET LOCAL bytea_output = 'hex'; \
     SET LOCAL jit = off";

/// With two sessions sharing the work, the server's own parallel workers would only compete
/// with them for the same cores.
const NO_PARALLEL_WORKERS: &str = "SET LOCAL max_parallel_workers_per_gather = 0";

/// Opens the read-only snapshot transaction; dropping it rolls back.
fn read_only(client: &mut Client) -> Result<Transaction<'_>, postgres::Error> {
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    tx.batch_execute(PINNED_SETTINGS)?;
    Ok(tx)
}

/// Catalogs of at least this many relations share a snapshot's work with the helper session.
/// Zero: even the reference fixture's (8 tables) is taken faster in two sessions than in one
/// on a 2-core machine (the apply's pre snapshot, 30 → 15 ms), the snapshot import included.
pub const SHARE_FROM_RELATIONS: i64 = 0;

/// How a snapshot is taken — the one value every caller fills in, from
/// [`SnapshotOptions::new`]: which schemas are left out, whether a helper session shares the
/// work, and what the snapshot builds on.
pub struct SnapshotOptions<'a> {
    ignore_schemas: &'a [String],
    helper: Option<&'a mut Client>,
    share_from: i64,
    earlier: Earlier<'a>,
}

impl<'a> SnapshotOptions<'a> {
    /// A whole snapshot on one session, leaving out `ignore_schemas`.
    pub fn new(ignore_schemas: &'a [String]) -> Self {
        SnapshotOptions {
            ignore_schemas,
            helper: None,
            share_from: SHARE_FROM_RELATIONS,
            earlier: Earlier::None,
        }
    }

    /// Shares the work with a `helper` session when one is given and the catalog holds at
    /// least [`SHARE_FROM_RELATIONS`] relations: the helper imports the exported snapshot of
    /// the main session's transaction, so both read the same moment, and the two take the
    /// kinds' queries in turn, costliest first. The result is the same as on one session; a
    /// server that cannot export a snapshot gets the one-session snapshot.
    pub fn helper(mut self, helper: Option<&'a mut Client>) -> Self {
        self.helper = helper;
        self
    }

    /// Shares from `relations` relations instead (the tests share always, with 0).
    pub fn share_from(mut self, relations: i64) -> Self {
        self.share_from = relations;
        self
    }

    /// Also records the [`Baseline`] a later snapshot [`since`](Self::since) compares against.
    pub fn record_baseline(mut self) -> Self {
        self.earlier = Earlier::Record;
        self
    }

    /// Builds on `earlier` (taken with its `baseline`): the columns, indexes and constraints of
    /// tables none of whose rows were written since are taken from it (module `reuse` says
    /// when, and when everything is read again). The result equals a whole snapshot's.
    pub fn since(mut self, earlier: &'a Snapshot, baseline: &'a Baseline) -> Self {
        self.earlier = Earlier::Since(earlier, baseline);
        self
    }
}

/// Takes a snapshot of the database `client` is connected to, as `options` say. Reads only;
/// one query per object kind, in one REPEATABLE READ READ ONLY transaction that is rolled
/// back.
pub fn snapshot(
    client: &mut Client,
    options: SnapshotOptions<'_>,
) -> Result<Taken, postgres::Error> {
    let SnapshotOptions {
        ignore_schemas,
        mut helper,
        share_from,
        earlier,
    } = options;
    if let Earlier::Since(..) = earlier {
        let built_on = take(
            client,
            helper.as_deref_mut(),
            ignore_schemas,
            share_from,
            earlier,
        )?;
        if let Some(taken) = built_on {
            return Ok(taken);
        }
        return take_whole(client, helper, ignore_schemas, share_from, Earlier::None);
    }
    take_whole(client, helper, ignore_schemas, share_from, earlier)
}

/// What a snapshot is taken in relation to.
#[derive(Clone, Copy)]
enum Earlier<'a> {
    /// Nothing: read everything.
    None,
    /// Nothing, and record a [`Baseline`] for a later snapshot.
    Record,
    /// An earlier snapshot and its baseline.
    Since(&'a Snapshot, &'a Baseline),
}

/// What one snapshot produced.
#[derive(Debug)]
pub struct Taken {
    pub snapshot: Snapshot,
    /// How index and constraint definitions were written (the tests check that sluice wrote
    /// them, and that they are the server's text).
    pub definitions: Definitions,
    /// With [`SnapshotOptions::record_baseline`]: what a later snapshot compares against.
    pub baseline: Option<Baseline>,
    /// With [`SnapshotOptions::since`]: how many tables' objects came from the earlier
    /// snapshot (`None`: everything was read).
    pub reused: Option<usize>,
}

/// [`take`] without an earlier snapshot to build on, which always completes.
fn take_whole(
    client: &mut Client,
    helper: Option<&mut Client>,
    ignore_schemas: &[String],
    share_from: i64,
    earlier: Earlier<'_>,
) -> Result<Taken, postgres::Error> {
    debug_assert!(!matches!(earlier, Earlier::Since(..)));
    Ok(take(client, helper, ignore_schemas, share_from, earlier)?
        .expect("only a snapshot built on an earlier one can be refused"))
}

/// Takes one snapshot; `None` when the earlier snapshot it was to build on does not fit what
/// the catalogs hold (the caller then reads everything).
fn take(
    client: &mut Client,
    helper: Option<&mut Client>,
    ignore_schemas: &[String],
    share_from: i64,
    earlier: Earlier<'_>,
) -> Result<Option<Taken>, postgres::Error> {
    let mut tx = read_only(client)?;
    let version: i32 = tx
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::int",
            &[],
        )?
        .get(0);
    let helper = match helper {
        Some(helper) if share_from <= 0 => Some(helper),
        Some(helper) => {
            let relations: i64 = tx
                .query_one("SELECT count(*) FROM pg_catalog.pg_class", &[])?
                .get(0);
            Some(helper).filter(|_| relations >= share_from)
        }
        None => None,
    };
    let ctx = query::Context {
        version: version as u32,
        ignore: ignore_schemas,
        only: None,
    };
    let (changed, part) = match helper {
        None => work_share(&mut tx, ignore_schemas, earlier, &ctx, &AtomicUsize::new(0))?,
        Some(helper) => {
            tx.batch_execute(NO_PARALLEL_WORKERS)?;
            let exported = match tx.query_one("SELECT pg_catalog.pg_export_snapshot()", &[]) {
                Ok(row) => row.get::<_, String>(0),
                Err(_) => {
                    tx.rollback()?;
                    return take(client, None, ignore_schemas, share_from, earlier);
                }
            };
            let mut other = read_only_in(helper, &exported)?;
            let (changed, part) = take_shared(&mut tx, &mut other, ignore_schemas, earlier, &ctx)?;
            other.rollback()?;
            (changed, part)
        }
    };
    let mut snap = part.snapshot;
    let definitions = deparse::complete(&mut tx, &mut snap, part.facts)?;
    let reused = match (earlier, &changed) {
        (Earlier::Since(then, baseline), Some(changed)) => {
            match reuse::take_over(&mut snap, &part.ledger, changed, then, baseline) {
                Some(reused) => Some(reused),
                None => return Ok(None),
            }
        }
        _ => None,
    };
    let baseline = match earlier {
        Earlier::Record => Some(reuse::baseline(&mut tx, ignore_schemas, part.ledger)?),
        _ => None,
    };
    snap.roles = query::roles(&mut tx, &snap)?;
    snap.coverage = COVERAGE;
    tx.rollback()?;
    snap.server_version_num = version as u32;
    snap.sort();
    Ok(Some(Taken {
        snapshot: snap,
        definitions,
        baseline,
        reused,
    }))
}

/// The kinds every session takes in turn: all of them, or after an earlier snapshot those
/// always read whole (the working session reads the per-table kinds itself).
fn shared_kinds(earlier: Earlier<'_>) -> &'static [ObjectKind] {
    match earlier {
        Earlier::Since(..) => &query::WHOLE,
        _ => &query::PLAN,
    }
}

/// The working session's share: after an earlier snapshot, first the tables that changed and
/// their objects; then kinds of [`shared_kinds`] in turn, until none is left.
fn work_share(
    tx: &mut Transaction<'_>,
    ignore_schemas: &[String],
    earlier: Earlier<'_>,
    ctx: &query::Context<'_>,
    next: &AtomicUsize,
) -> Result<(Option<Vec<u32>>, query::Part), postgres::Error> {
    let shared = shared_kinds(earlier);
    let Earlier::Since(_, baseline) = earlier else {
        return Ok((None, take_kinds(tx, shared, next, ctx)?));
    };
    let changed = reuse::changed_tables(tx, ignore_schemas, baseline)?;
    let per_table = query::Context {
        only: changed.as_deref(),
        ..*ctx
    };
    let mut part = take_kinds(tx, &query::PER_TABLE, &AtomicUsize::new(0), &per_table)?;
    part.absorb(take_kinds(tx, shared, next, ctx)?);
    Ok((changed, part))
}

/// The kinds' queries on two sessions in one snapshot, taken in turn costliest first. After an
/// earlier snapshot, the helper starts on the whole kinds at once while the working session
/// finds the tables that changed, then reads their objects, then joins in.
fn take_shared(
    tx: &mut Transaction<'_>,
    other: &mut Transaction<'_>,
    ignore_schemas: &[String],
    earlier: Earlier<'_>,
    ctx: &query::Context<'_>,
) -> Result<(Option<Vec<u32>>, query::Part), postgres::Error> {
    let next = AtomicUsize::new(0);
    let (mine, theirs) = std::thread::scope(|scope| {
        let theirs = scope.spawn(|| take_kinds(other, shared_kinds(earlier), &next, ctx));
        let mine = work_share(tx, ignore_schemas, earlier, ctx, &next);
        let theirs = theirs
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (mine, theirs)
    });
    let (changed, mut part) = mine?;
    part.absorb(theirs?);
    Ok((changed, part))
}

/// Runs the queries of `kinds` in order, taking the next untaken one each time, until none
/// is left.
fn take_kinds(
    tx: &mut Transaction<'_>,
    kinds: &[ObjectKind],
    next: &AtomicUsize,
    ctx: &query::Context<'_>,
) -> Result<query::Part, postgres::Error> {
    let mut part = query::Part::default();
    while let Some(kind) = kinds.get(next.fetch_add(1, AtomicOrdering::Relaxed)) {
        query::fetch(tx, *kind, ctx, &mut part)?;
    }
    Ok(part)
}

/// A read-only transaction on `client` in the snapshot another session exported.
fn read_only_in<'c>(
    client: &'c mut Client,
    exported: &str,
) -> Result<Transaction<'c>, postgres::Error> {
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    tx.batch_execute(&format!(
        "{}; {PINNED_SETTINGS}; {NO_PARALLEL_WORKERS}",
        crate::target::import_snapshot_sql(exported)
    ))?;
    Ok(tx)
}

/// How many tables one row-count query counts (one `UNION ALL` arm each).
const COUNT_BATCH: usize = 100;

/// Exact `count(*)` of every ordinary and partitioned table (a partitioned table's count
/// includes its partitions'), keyed `schema.table`, leaving out `ignore_schemas`. Reads only, in
/// one REPEATABLE READ READ ONLY transaction, so all counts are of the same moment; a batch's
/// locks are released after it (a savepoint rolled back), so that any number of tables fits
/// the server's default `max_locks_per_transaction`.
pub fn row_counts(
    client: &mut Client,
    ignore_schemas: &[String],
) -> Result<BTreeMap<String, i64>, postgres::Error> {
    let mut tx = read_only(client)?;
    let tables: Vec<(String, String)> = tx
        .query(
            &format!(
                "{}SELECT ns.nspname::text || '.' || c.relname::text, \
                        pg_catalog.format('%I.%I', ns.nspname, c.relname) \
                   FROM pg_catalog.pg_class c \
                   JOIN ns ON ns.oid = c.relnamespace \
                  WHERE c.relkind IN ('r', 'p') AND c.oid NOT IN (SELECT objid FROM ext)",
                query::kept("pg_class")
            ),
            &[&ignore_schemas],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut counts = BTreeMap::new();
    for batch in tables.chunks(COUNT_BATCH) {
        let sql = batch
            .iter()
            .enumerate()
            .map(|(i, (_, quoted))| format!("SELECT {i}, count(*) FROM {quoted}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        // the batch's ACCESS SHARE locks (tables and the indexes the planner opens) are
        // released when its savepoint is rolled back; the snapshot stays the transaction's
        let mut savepoint = tx.savepoint("row_counts")?;
        for row in savepoint.query(&sql, &[])? {
            let i: i32 = row.get(0);
            let n: i64 = row.get(1);
            counts.insert(batch[i as usize].0.clone(), n);
        }
        savepoint.rollback()?;
    }
    tx.rollback()?;
    Ok(counts)
}
