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
//! a dropped column would shift: columns are keyed and compared by name.
//!
//! Keys follow the notation of SPEC §5: schema `s`, table `s.t`, column `s.t.c`, index `s.ix`,
//! constraint `s.t.name`, trigger `s.t.name`, function `s.f(argtypes)`, view `s.v`, sequence
//! `s.seq`, type `s.type`, extension `name`.

pub mod diff;

pub use diff::{diff, judge, DiffVerdict, ObjectChange, ObjectKind, SchemaDiff};

use postgres::{Client, IsolationLevel, Row, Transaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The structure of a database's user objects. Every list is sorted by `key`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// `server_version_num` of the server the snapshot was taken on (e.g. 150010).
    pub server_version_num: u32,
    pub extensions: Vec<Extension>,
    pub schemas: Vec<Schema>,
    pub types: Vec<Type>,
    pub tables: Vec<Table>,
    pub columns: Vec<Column>,
    pub sequences: Vec<Sequence>,
    pub indexes: Vec<Index>,
    pub constraints: Vec<Constraint>,
    pub triggers: Vec<Trigger>,
    pub functions: Vec<Function>,
    pub views: Vec<View>,
}

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
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Something in a snapshot with a stable key.
pub trait Keyed {
    fn key(&self) -> &str;
}

macro_rules! keyed {
    ($($t:ty),*) => {$(
        impl Keyed for $t {
            fn key(&self) -> &str {
                &self.key
            }
        }
    )*};
}
keyed!(
    Extension, Schema, Type, Table, Column, Sequence, Index, Constraint, Trigger, Function, View
);

impl Snapshot {
    /// SHA-256 (hex) of the snapshot's JSON: equal snapshots have equal digests.
    pub fn sha256(&self) -> String {
        let bytes = serde_json::to_vec(self).expect("a snapshot serializes");
        hex::encode(Sha256::digest(bytes))
    }

    /// How many objects the snapshot holds, all kinds together.
    pub fn object_count(&self) -> usize {
        self.extensions.len()
            + self.schemas.len()
            + self.types.len()
            + self.tables.len()
            + self.columns.len()
            + self.sequences.len()
            + self.indexes.len()
            + self.constraints.len()
            + self.triggers.len()
            + self.functions.len()
            + self.views.len()
    }

    /// Sorts every list by key (byte order, independent of the server's collation).
    fn sort(&mut self) {
        fn by_key<T: Keyed>(v: &mut [T]) {
            v.sort_by(|a, b| a.key().cmp(b.key()));
        }
        by_key(&mut self.extensions);
        by_key(&mut self.schemas);
        by_key(&mut self.types);
        by_key(&mut self.tables);
        by_key(&mut self.columns);
        by_key(&mut self.sequences);
        by_key(&mut self.indexes);
        by_key(&mut self.constraints);
        by_key(&mut self.triggers);
        by_key(&mut self.functions);
        by_key(&mut self.views);
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
     SET LOCAL bytea_output = 'hex'";

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

/// The condition that keeps a schema (alias `n`, a `pg_namespace` row) in the snapshot: not a
/// system schema (every `pg_*` name is reserved: pg_catalog, pg_toast, pg_temp_N,
/// pg_toast_temp_N), not information_schema, not in `$1` (the ignored schemas), not created by
/// an extension.
const SCHEMA_KEPT: &str = "n.nspname <> 'information_schema' \
     AND n.nspname !~ '^pg_' \
     AND NOT (n.nspname = ANY ($1::text[])) \
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e \
                     WHERE e.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass \
                       AND e.objid = n.oid AND e.deptype = 'e')";

/// The condition that an object (catalog `catalog`, OID expression `oid`) is not a member of an
/// extension.
fn not_extension_member(catalog: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e \
          WHERE e.classid = 'pg_catalog.{catalog}'::pg_catalog.regclass \
            AND e.objid = {oid} AND e.deptype = 'e')"
    )
}

/// Takes a snapshot of the database `client` is connected to, leaving out the schemas in
/// `ignore_schemas`. Reads only; one query per object kind, in one REPEATABLE READ READ ONLY
/// transaction that is rolled back.
pub fn snapshot(
    client: &mut Client,
    ignore_schemas: &[String],
) -> Result<Snapshot, postgres::Error> {
    let mut tx = read_only(client)?;
    let version: i32 = tx
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::int",
            &[],
        )?
        .get(0);
    let version = version as u32;
    let ignore = ignore_schemas;
    let mut snap = Snapshot {
        server_version_num: version,
        ..Snapshot::default()
    };

    snap.extensions = tx
        .query(
            "SELECT x.extname::text, x.extversion, n.nspname::text \
               FROM pg_catalog.pg_extension x \
               JOIN pg_catalog.pg_namespace n ON n.oid = x.extnamespace",
            &[],
        )?
        .iter()
        .map(|r| Extension {
            key: r.get(0),
            version: r.get(1),
            schema: r.get(2),
        })
        .collect();

    snap.schemas = tx
        .query(
            &format!(
                "SELECT n.nspname::text, pg_catalog.pg_get_userbyid(n.nspowner)::text \
                   FROM pg_catalog.pg_namespace n WHERE {SCHEMA_KEPT}"
            ),
            &[&ignore],
        )?
        .iter()
        .map(|r| Schema {
            key: r.get(0),
            owner: r.get(1),
        })
        .collect();

    snap.types = tx
        .query(&types_sql(), &[&ignore])?
        .iter()
        .map(type_from_row)
        .collect();
    snap.tables = tx
        .query(&tables_sql(), &[&ignore])?
        .iter()
        .map(table_from_row)
        .collect();
    snap.columns = tx
        .query(&columns_sql(version), &[&ignore])?
        .iter()
        .map(column_from_row)
        .collect();
    snap.sequences = tx
        .query(&sequences_sql(), &[&ignore])?
        .iter()
        .map(sequence_from_row)
        .collect();
    snap.indexes = tx
        .query(&indexes_sql(), &[&ignore])?
        .iter()
        .map(index_from_row)
        .collect();
    snap.constraints = tx
        .query(&constraints_sql(), &[&ignore])?
        .iter()
        .map(constraint_from_row)
        .collect();
    snap.triggers = tx
        .query(&triggers_sql(version), &[&ignore])?
        .iter()
        .map(trigger_from_row)
        .collect();
    snap.functions = tx
        .query(&functions_sql(version), &[&ignore])?
        .iter()
        .map(function_from_row)
        .collect();
    snap.views = tx
        .query(&views_sql(), &[&ignore])?
        .iter()
        .map(view_from_row)
        .collect();

    tx.rollback()?;
    snap.sort();
    Ok(snap)
}

/// `schema.name` of a relation, in SQL (aliases `rel` of pg_class).
fn qualified_relname(rel: &str) -> String {
    format!(
        "(SELECT qn.nspname::text || '.' || {rel}.relname::text \
            FROM pg_catalog.pg_namespace qn WHERE qn.oid = {rel}.relnamespace)"
    )
}

fn tables_sql() -> String {
    let parent = qualified_relname("p");
    format!(
        "SELECT n.nspname::text, c.relname::text, c.relkind::text, c.relpersistence::text, \
                pg_catalog.pg_get_userbyid(c.relowner)::text, am.amname::text, ts.spcname::text, \
                coalesce(c.reloptions, '{{}}')::text[], \
                CASE WHEN c.relispartition THEN \
                  (SELECT {parent} FROM pg_catalog.pg_inherits i \
                     JOIN pg_catalog.pg_class p ON p.oid = i.inhparent \
                    WHERE i.inhrelid = c.oid LIMIT 1) END, \
                CASE WHEN c.relispartition THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid) END, \
                CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END, \
                CASE WHEN c.relispartition THEN '{{}}'::text[] ELSE \
                  ARRAY(SELECT {parent} FROM pg_catalog.pg_inherits i \
                          JOIN pg_catalog.pg_class p ON p.oid = i.inhparent \
                         WHERE i.inhrelid = c.oid ORDER BY i.inhseqno) END, \
                c.relrowsecurity, c.relforcerowsecurity, c.relreplident::text \
           FROM pg_catalog.pg_class c \
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
           LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam \
           LEFT JOIN pg_catalog.pg_tablespace ts ON ts.oid = c.reltablespace \
          WHERE c.relkind IN ('r', 'p', 'f') AND {SCHEMA_KEPT} AND {}",
        not_extension_member("pg_class", "c.oid")
    )
}

fn table_from_row(r: &Row) -> Table {
    let schema: String = r.get(0);
    let name: String = r.get(1);
    let kind: String = r.get(2);
    let persistence: String = r.get(3);
    let replident: String = r.get(14);
    Table {
        key: format!("{schema}.{name}"),
        kind: match kind.as_str() {
            "r" => "table",
            "p" => "partitioned_table",
            "f" => "foreign_table",
            other => other,
        }
        .to_string(),
        persistence: match persistence.as_str() {
            "p" => "permanent",
            "u" => "unlogged",
            "t" => "temporary",
            other => other,
        }
        .to_string(),
        owner: r.get(4),
        access_method: r.get(5),
        tablespace: r.get(6),
        options: r.get(7),
        partition_of: r.get(8),
        partition_bound: r.get(9),
        partition_key: r.get(10),
        inherits: r.get(11),
        row_security: r.get(12),
        force_row_security: r.get(13),
        replica_identity: match replident.as_str() {
            "d" => "default",
            "n" => "nothing",
            "f" => "full",
            "i" => "index",
            other => other,
        }
        .to_string(),
        schema,
        name,
    }
}

fn columns_sql(version: u32) -> String {
    // pg_attribute.attcompression exists from PostgreSQL 14.
    let compression = if version >= 140000 {
        "CASE a.attcompression WHEN 'p' THEN 'pglz' WHEN 'l' THEN 'lz4' END"
    } else {
        "NULL::text"
    };
    // PostgreSQL 18 records NOT NULL as pg_constraint rows (contype 'n') that can be NOT VALID;
    // attnotnull stays true for those.
    let not_null_not_valid = if version >= 180000 {
        "EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k \
                  WHERE k.conrelid = a.attrelid AND k.contype = 'n' \
                    AND k.conkey[1] = a.attnum AND NOT k.convalidated)"
    } else {
        "false"
    };
    format!(
        "SELECT n.nspname::text, c.relname::text, a.attname::text, \
                pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, {not_null_not_valid}, \
                CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END, \
                CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END, \
                CASE a.attgenerated \
                  WHEN 's' THEN 'GENERATED ALWAYS AS (' || pg_catalog.pg_get_expr(d.adbin, d.adrelid) || ') STORED' \
                  WHEN 'v' THEN 'GENERATED ALWAYS AS (' || pg_catalog.pg_get_expr(d.adbin, d.adrelid) || ') VIRTUAL' END, \
                CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN \
                  pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname) END, \
                {compression}, \
                CASE WHEN a.attstorage <> t.typstorage THEN \
                  CASE a.attstorage WHEN 'p' THEN 'plain' WHEN 'e' THEN 'external' \
                                    WHEN 'x' THEN 'extended' WHEN 'm' THEN 'main' END END \
           FROM pg_catalog.pg_attribute a \
           JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
           JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
           LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
           LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation \
           LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace \
          WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f') \
            AND {SCHEMA_KEPT} AND {}",
        not_extension_member("pg_class", "c.oid")
    )
}

fn column_from_row(r: &Row) -> Column {
    let schema: String = r.get(0);
    let table: String = r.get(1);
    let name: String = r.get(2);
    Column {
        key: format!("{schema}.{table}.{name}"),
        data_type: r.get(3),
        not_null: r.get(4),
        not_null_not_valid: r.get(5),
        default: r.get(6),
        identity: r.get(7),
        generated: r.get(8),
        collation: r.get(9),
        compression: r.get(10),
        storage: r.get(11),
        schema,
        table,
        name,
    }
}

fn sequences_sql() -> String {
    format!(
        "SELECT n.nspname::text, c.relname::text, pg_catalog.format_type(s.seqtypid, NULL), \
                s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle, \
                (SELECT tn.nspname::text || '.' || tc.relname::text || '.' || ta.attname::text \
                   FROM pg_catalog.pg_depend d \
                   JOIN pg_catalog.pg_class tc ON tc.oid = d.refobjid \
                   JOIN pg_catalog.pg_namespace tn ON tn.oid = tc.relnamespace \
                   JOIN pg_catalog.pg_attribute ta ON ta.attrelid = d.refobjid AND ta.attnum = d.refobjsubid \
                  WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid \
                    AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                    AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i') \
                  ORDER BY 1 LIMIT 1), \
                pg_catalog.pg_get_userbyid(c.relowner)::text \
           FROM pg_catalog.pg_sequence s \
           JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid \
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
          WHERE {SCHEMA_KEPT} AND {}",
        not_extension_member("pg_class", "c.oid")
    )
}

fn sequence_from_row(r: &Row) -> Sequence {
    let schema: String = r.get(0);
    let name: String = r.get(1);
    Sequence {
        key: format!("{schema}.{name}"),
        data_type: r.get(2),
        start: r.get(3),
        increment: r.get(4),
        min: r.get(5),
        max: r.get(6),
        cache: r.get(7),
        cycle: r.get(8),
        owned_by: r.get(9),
        owner: r.get(10),
        schema,
        name,
    }
}

fn indexes_sql() -> String {
    let parent = qualified_relname("p");
    format!(
        "SELECT n.nspname::text, ic.relname::text, c.relname::text, \
                pg_catalog.pg_get_indexdef(i.indexrelid), i.indisunique, i.indisprimary, \
                (SELECT k.conname::text FROM pg_catalog.pg_constraint k \
                  WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid \
                    AND k.contype IN ('p', 'u', 'x') ORDER BY 1 LIMIT 1), \
                i.indisvalid, i.indisready, \
                (SELECT {parent} FROM pg_catalog.pg_inherits h \
                   JOIN pg_catalog.pg_class p ON p.oid = h.inhparent \
                  WHERE h.inhrelid = i.indexrelid LIMIT 1) \
           FROM pg_catalog.pg_index i \
           JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
           JOIN pg_catalog.pg_class c ON c.oid = i.indrelid \
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind IN ('r', 'p', 'f', 'm') AND {SCHEMA_KEPT} AND {}",
        not_extension_member("pg_class", "c.oid")
    )
}

fn index_from_row(r: &Row) -> Index {
    let schema: String = r.get(0);
    let name: String = r.get(1);
    Index {
        key: format!("{schema}.{name}"),
        table: r.get(2),
        definition: r.get(3),
        unique: r.get(4),
        primary: r.get(5),
        constraint: r.get(6),
        valid: r.get(7),
        ready: r.get(8),
        parent: r.get(9),
        schema,
        name,
    }
}

fn constraints_sql() -> String {
    let index = qualified_relname("x");
    format!(
        "SELECT n.nspname::text, c.relname::text, k.conname::text, k.contype::text, \
                pg_catalog.pg_get_constraintdef(k.oid), k.convalidated, \
                CASE WHEN k.contype IN ('p', 'u', 'x') AND k.conindid <> 0 THEN \
                  (SELECT {index} FROM pg_catalog.pg_class x WHERE x.oid = k.conindid) END, \
                CASE WHEN k.conparentid <> 0 THEN \
                  (SELECT pn.nspname::text || '.' || pc.relname::text || '.' || pk.conname::text \
                     FROM pg_catalog.pg_constraint pk \
                     JOIN pg_catalog.pg_class pc ON pc.oid = pk.conrelid \
                     JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace \
                    WHERE pk.oid = k.conparentid) END \
           FROM pg_catalog.pg_constraint k \
           JOIN pg_catalog.pg_class c ON c.oid = k.conrelid \
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
          WHERE k.contype <> 'n' AND {SCHEMA_KEPT} AND {}",
        not_extension_member("pg_class", "c.oid")
    )
}

fn constraint_from_row(r: &Row) -> Constraint {
    let schema: String = r.get(0);
    let table: String = r.get(1);
    let name: String = r.get(2);
    let contype: String = r.get(3);
    Constraint {
        key: format!("{schema}.{table}.{name}"),
        constraint_type: match contype.as_str() {
            "c" => "check",
            "f" => "foreign_key",
            "p" => "primary_key",
            "u" => "unique",
            "x" => "exclusion",
            "t" => "trigger",
            other => other,
        }
        .to_string(),
        definition: r.get(4),
        validated: r.get(5),
        index: r.get(6),
        parent: r.get(7),
        schema,
        table,
        name,
    }
}

fn triggers_sql(version: u32) -> String {
    // pg_trigger.tgparentid exists from PostgreSQL 13.
    let parent = if version >= 130000 {
        "CASE WHEN t.tgparentid <> 0 THEN \
           (SELECT pn.nspname::text || '.' || pc.relname::text || '.' || pt.tgname::text \
              FROM pg_catalog.pg_trigger pt \
              JOIN pg_catalog.pg_class pc ON pc.oid = pt.tgrelid \
              JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace \
             WHERE pt.oid = t.tgparentid) END"
    } else {
        "NULL::text"
    };
    format!(
        "SELECT n.nspname::text, c.relname::text, t.tgname::text, \
                pg_catalog.pg_get_triggerdef(t.oid), t.tgenabled::text, {parent} \
           FROM pg_catalog.pg_trigger t \
           JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid \
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
          WHERE NOT t.tgisinternal AND {SCHEMA_KEPT} AND {}",
        not_extension_member("pg_class", "c.oid")
    )
}

fn trigger_from_row(r: &Row) -> Trigger {
    let schema: String = r.get(0);
    let table: String = r.get(1);
    let name: String = r.get(2);
    let enabled: String = r.get(4);
    Trigger {
        key: format!("{schema}.{table}.{name}"),
        definition: r.get(3),
        enabled: match enabled.as_str() {
            "O" => "origin",
            "D" => "disabled",
            "R" => "replica",
            "A" => "always",
            other => other,
        }
        .to_string(),
        parent: r.get(5),
        schema,
        table,
        name,
    }
}

fn functions_sql(version: u32) -> String {
    // PostgreSQL 14 added SQL-standard bodies (BEGIN ATOMIC …), kept in prosqlbody with an
    // empty prosrc.
    let body = if version >= 140000 {
        "CASE WHEN p.prosqlbody IS NOT NULL THEN pg_catalog.pg_get_function_sqlbody(p.oid) \
              ELSE p.prosrc END"
    } else {
        "p.prosrc"
    };
    format!(
        "SELECT n.nspname::text, p.proname::text, pg_catalog.oidvectortypes(p.proargtypes), \
                p.prokind::text, pg_catalog.pg_get_function_arguments(p.oid), \
                pg_catalog.pg_get_function_result(p.oid), l.lanname::text, p.provolatile::text, \
                p.proisstrict, p.prosecdef, p.proleakproof, p.proparallel::text, \
                coalesce(p.proconfig, '{{}}')::text[], pg_catalog.pg_get_userbyid(p.proowner)::text, \
                {body} \
           FROM pg_catalog.pg_proc p \
           JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
           JOIN pg_catalog.pg_language l ON l.oid = p.prolang \
          WHERE {SCHEMA_KEPT} AND {}",
        not_extension_member("pg_proc", "p.oid")
    )
}

fn function_from_row(r: &Row) -> Function {
    let schema: String = r.get(0);
    let name: String = r.get(1);
    let args: String = r.get(2);
    let kind: String = r.get(3);
    let volatility: String = r.get(7);
    let parallel: String = r.get(11);
    let body: Option<String> = r.get(14);
    Function {
        key: format!("{schema}.{name}({args})"),
        kind: match kind.as_str() {
            "f" => "function",
            "p" => "procedure",
            "a" => "aggregate",
            "w" => "window",
            other => other,
        }
        .to_string(),
        arguments: r.get(4),
        result: r.get(5),
        language: r.get(6),
        volatility: match volatility.as_str() {
            "i" => "immutable",
            "s" => "stable",
            "v" => "volatile",
            other => other,
        }
        .to_string(),
        strict: r.get(8),
        security_definer: r.get(9),
        leakproof: r.get(10),
        parallel: match parallel.as_str() {
            "s" => "safe",
            "r" => "restricted",
            "u" => "unsafe",
            other => other,
        }
        .to_string(),
        config: r.get(12),
        owner: r.get(13),
        body_sha256: hex::encode(Sha256::digest(body.unwrap_or_default().as_bytes())),
        schema,
        name,
    }
}

fn views_sql() -> String {
    format!(
        "SELECT n.nspname::text, c.relname::text, c.relkind = 'm', \
                pg_catalog.pg_get_viewdef(c.oid, true), coalesce(c.reloptions, '{{}}')::text[], \
                pg_catalog.pg_get_userbyid(c.relowner)::text \
           FROM pg_catalog.pg_class c \
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind IN ('v', 'm') AND {SCHEMA_KEPT} AND {}",
        not_extension_member("pg_class", "c.oid")
    )
}

fn view_from_row(r: &Row) -> View {
    let schema: String = r.get(0);
    let name: String = r.get(1);
    View {
        key: format!("{schema}.{name}"),
        materialized: r.get(2),
        definition: r.get(3),
        options: r.get(4),
        owner: r.get(5),
        schema,
        name,
    }
}

fn types_sql() -> String {
    format!(
        "SELECT n.nspname::text, t.typname::text, t.typtype::text, \
                pg_catalog.pg_get_userbyid(t.typowner)::text, \
                CASE WHEN t.typtype = 'e' THEN \
                  ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e \
                         WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) \
                  ELSE '{{}}'::text[] END, \
                CASE WHEN t.typtype = 'd' THEN pg_catalog.format_type(t.typbasetype, t.typtypmod) END, \
                t.typtype = 'd' AND t.typnotnull, \
                CASE WHEN t.typtype = 'd' THEN pg_catalog.pg_get_expr(t.typdefaultbin, 0) END, \
                CASE WHEN t.typtype = 'd' THEN \
                  ARRAY(SELECT k.conname::text || ': ' || pg_catalog.pg_get_constraintdef(k.oid) \
                          FROM pg_catalog.pg_constraint k \
                         WHERE k.contypid = t.oid AND k.contype <> 'n' ORDER BY k.conname) \
                  ELSE '{{}}'::text[] END, \
                CASE WHEN t.typtype = 'c' THEN \
                  ARRAY(SELECT pg_catalog.quote_ident(a.attname) || ' ' \
                               || pg_catalog.format_type(a.atttypid, a.atttypmod) \
                          FROM pg_catalog.pg_attribute a \
                         WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped \
                         ORDER BY a.attnum) \
                  ELSE '{{}}'::text[] END, \
                CASE WHEN t.typtype = 'r' THEN \
                  (SELECT pg_catalog.format_type(r.rngsubtype, NULL) FROM pg_catalog.pg_range r \
                    WHERE r.rngtypid = t.oid) END \
           FROM pg_catalog.pg_type t \
           JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
          WHERE (t.typtype IN ('e', 'd', 'r') \
                 OR (t.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_catalog.pg_class tc \
                                                  WHERE tc.oid = t.typrelid AND tc.relkind = 'c'))) \
            AND {SCHEMA_KEPT} AND {}",
        not_extension_member("pg_type", "t.oid")
    )
}

fn type_from_row(r: &Row) -> Type {
    let schema: String = r.get(0);
    let name: String = r.get(1);
    let kind: String = r.get(2);
    Type {
        key: format!("{schema}.{name}"),
        kind: match kind.as_str() {
            "e" => "enum",
            "d" => "domain",
            "c" => "composite",
            "r" => "range",
            other => other,
        }
        .to_string(),
        owner: r.get(3),
        labels: r.get(4),
        base_type: r.get(5),
        not_null: r.get(6),
        default: r.get(7),
        constraints: r.get(8),
        attributes: r.get(9),
        subtype: r.get(10),
        schema,
        name,
    }
}

/// How many tables one row-count query counts (one `UNION ALL` arm each).
const COUNT_BATCH: usize = 100;

/// Exact `count(*)` of every ordinary and partitioned table (a partitioned table's count
/// includes its partitions'), keyed `schema.table`, leaving out `ignore_schemas`. Reads only, in
/// one REPEATABLE READ READ ONLY transaction, so all counts are of the same moment.
pub fn row_counts(
    client: &mut Client,
    ignore_schemas: &[String],
) -> Result<BTreeMap<String, i64>, postgres::Error> {
    let mut tx = read_only(client)?;
    let tables: Vec<(String, String)> = tx
        .query(
            &format!(
                "SELECT n.nspname::text || '.' || c.relname::text, \
                        pg_catalog.format('%I.%I', n.nspname, c.relname) \
                   FROM pg_catalog.pg_class c \
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                  WHERE c.relkind IN ('r', 'p') AND {SCHEMA_KEPT} AND {}",
                not_extension_member("pg_class", "c.oid")
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
        for row in tx.query(&sql, &[])? {
            let i: i32 = row.get(0);
            let n: i64 = row.get(1);
            counts.insert(batch[i as usize].0.clone(), n);
        }
    }
    tx.rollback()?;
    Ok(counts)
}
