//! The structural diff of two snapshots, and its judgement against the scope (SPEC §4 step 14,
//! gate `schema-diff`).
//!
//! The diff is generic over keyed lists, as pg-schema-diff does it: an object whose key is only
//! in the post snapshot is added, only in the pre snapshot removed, in both with different
//! content changed (with the names of the fields that differ). Objects travel as JSON values,
//! so a diff read back from `schema/diff.json` can be judged again.
//!
//! The judgement explains each difference by the scope's operations: every added object must
//! be explained; a changed object fails unless an operation explains the fields that changed;
//! a removed object fails unless removals are allowed and a drop explains it (a rename explains
//! the old key and the new one without being a removal). Explanations that need to read SQL
//! text (which columns a constraint or index mentions, which added object a rename produced)
//! are best effort and say so where they are made.

pub use super::ObjectKind;
use super::{Keyed, Snapshot};
use crate::package::SchemaDiffPolicy;
use crate::sql::{OpKind, Operation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One object that was added, removed or changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectChange {
    pub kind: ObjectKind,
    pub key: String,
    /// The object in the pre snapshot (absent when added).
    pub before: Option<Value>,
    /// The object in the post snapshot (absent when removed).
    pub after: Option<Value>,
    /// For a changed object: the fields whose values differ.
    #[serde(default)]
    pub fields: Vec<String>,
}

impl std::fmt::Display for ObjectChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.key)?;
        if !self.fields.is_empty() {
            write!(f, " ({})", self.fields.join(", "))?;
        }
        Ok(())
    }
}

impl ObjectChange {
    /// What changed in the fields that are lists of items (grants, a policy's roles) or flags
    /// (row-level security), in words: `grants gained "PUBLIC: SELECT (granted by app)"`,
    /// `row_security true → false`. Empty when no such field changed.
    pub fn field_details(&self) -> Vec<String> {
        let (Some(before), Some(after)) = (&self.before, &self.after) else {
            return Vec::new();
        };
        self.fields
            .iter()
            .filter_map(|field| {
                let (b, a) = (before.get(field)?, after.get(field)?);
                match (b, a) {
                    (Value::Array(b), Value::Array(a)) => Some(list_change(field, b, a)),
                    (Value::Bool(b), Value::Bool(a)) => Some(format!("{field} {b} → {a}")),
                    (Value::String(b), Value::String(a)) if field == "owner" => {
                        Some(format!("owner {b} → {a}"))
                    }
                    _ => None,
                }
            })
            .collect()
    }
}

/// `grants gained "…", "…"; lost "…"`.
fn list_change(field: &str, before: &[Value], after: &[Value]) -> String {
    let quoted = |items: Vec<&Value>| {
        items
            .iter()
            .map(|v| {
                v.as_str()
                    .map_or_else(|| v.to_string(), |s| format!("\"{s}\""))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let gained: Vec<&Value> = after.iter().filter(|v| !before.contains(v)).collect();
    let lost: Vec<&Value> = before.iter().filter(|v| !after.contains(v)).collect();
    let mut parts = Vec::new();
    if !gained.is_empty() {
        parts.push(format!("gained {}", quoted(gained)));
    }
    if !lost.is_empty() {
        parts.push(format!("lost {}", quoted(lost)));
    }
    format!("{field} {}", parts.join("; "))
}

/// Post snapshot minus pre snapshot. Each list is ordered by kind (in snapshot order), then key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchemaDiff {
    pub added: Vec<ObjectChange>,
    pub removed: Vec<ObjectChange>,
    pub changed: Vec<ObjectChange>,
    /// The parents (partitioned tables, or parents by inheritance) of the tables whose columns
    /// the diff holds, from either snapshot: a column added, dropped or altered on a parent is
    /// added, dropped or altered on each of its partitions too, explained by the same operation.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parents: BTreeMap<String, Vec<String>>,
}

impl SchemaDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Two objects of one kind with the same key in one snapshot: the diff cannot pair them, so
/// it refuses rather than report a difference that is not there (or miss one that is).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {side} snapshot holds two {kind} objects with the key {key}")]
pub struct DuplicateKey {
    pub side: &'static str,
    pub kind: ObjectKind,
    pub key: String,
}

/// Compares two snapshots object by object, by key.
pub fn diff(pre: &Snapshot, post: &Snapshot) -> Result<SchemaDiff, DuplicateKey> {
    let mut out = SchemaDiff::default();
    Snapshot::diff_each(pre, post, &mut out)?;
    out.parents = parents_of_changed_columns(&out, [pre, post]);
    Ok(out)
}

/// The parents of the tables whose columns `diff` holds, read from both snapshots.
fn parents_of_changed_columns(
    diff: &SchemaDiff,
    snapshots: [&Snapshot; 2],
) -> BTreeMap<String, Vec<String>> {
    let tables: BTreeSet<String> = [&diff.added, &diff.removed, &diff.changed]
        .into_iter()
        .flatten()
        .filter(|c| c.kind == ObjectKind::Column)
        .filter_map(|c| {
            let column = c.after.as_ref().or(c.before.as_ref())?;
            let (schema, table) = (column.get("schema")?, column.get("table")?);
            Some(format!("{}.{}", schema.as_str()?, table.as_str()?))
        })
        .collect();
    let mut parents = BTreeMap::new();
    for table in snapshots.iter().flat_map(|s| &s.tables) {
        if !tables.contains(&table.key) {
            continue;
        }
        let of: Vec<String> = table
            .partition_of
            .iter()
            .chain(&table.inherits)
            .cloned()
            .collect();
        if !of.is_empty() {
            parents.insert(table.key.clone(), of);
        }
    }
    parents
}

fn to_value<T: Serialize>(item: &T) -> Value {
    serde_json::to_value(item).expect("a snapshot object serializes")
}

/// The generic diff of one kind's keyed list: a merge walk over the two lists in key order
/// (snapshots keep them sorted; a list that is not gets sorted first).
pub(super) fn keyed_lists<T: Keyed + Serialize + PartialEq>(
    kind: ObjectKind,
    pre: &[T],
    post: &[T],
    out: &mut SchemaDiff,
) -> Result<(), DuplicateKey> {
    let before = in_key_order(pre).map_err(|key| DuplicateKey {
        side: "pre",
        kind,
        key,
    })?;
    let after = in_key_order(post).map_err(|key| DuplicateKey {
        side: "post",
        kind,
        key,
    })?;
    let change = |key: &str, b: Option<&T>, a: Option<&T>| ObjectChange {
        kind,
        key: key.to_string(),
        before: b.map(to_value),
        after: a.map(to_value),
        fields: vec![],
    };
    let (mut i, mut j) = (0, 0);
    loop {
        let side = match (before.get(i), after.get(j)) {
            (Some(b), Some(a)) => b.key().cmp(a.key()),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => break,
        };
        match side {
            std::cmp::Ordering::Less => {
                out.removed
                    .push(change(before[i].key(), Some(before[i]), None));
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.added.push(change(after[j].key(), None, Some(after[j])));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (b, a) = (before[i], after[j]);
                if a != b {
                    let mut changed = change(b.key(), Some(b), Some(a));
                    if let (Some(bv), Some(av)) = (&changed.before, &changed.after) {
                        changed.fields = changed_fields(bv, av);
                    }
                    out.changed.push(changed);
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

/// The list's items in key order: as they are when already sorted (a snapshot's lists are);
/// the key held twice, if one is.
fn in_key_order<T: Keyed>(list: &[T]) -> Result<Vec<&T>, String> {
    let mut items: Vec<&T> = list.iter().collect();
    if !items.windows(2).all(|w| w[0].key() < w[1].key()) {
        items.sort_by(|a, b| a.key().cmp(b.key()));
    }
    match items.windows(2).find(|w| w[0].key() == w[1].key()) {
        Some(twice) => Err(twice[0].key().to_string()),
        None => Ok(items),
    }
}

/// The names of the fields whose values differ (a missing field counts as null).
fn changed_fields(before: &Value, after: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    let mut names: Vec<&String> = a.keys().collect();
    names.extend(b.keys().filter(|k| !a.contains_key(*k)));
    names
        .into_iter()
        .filter(|k| k.as_str() != "key")
        .filter(|k| b.get(*k).unwrap_or(&Value::Null) != a.get(*k).unwrap_or(&Value::Null))
        .cloned()
        .collect()
}

/// The judgement of a diff against the scope.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiffVerdict {
    /// No unexplained addition, no unexplained change, no refused removal.
    pub holds: bool,
    pub unexplained_added: Vec<ObjectChange>,
    pub unexplained_changed: Vec<ObjectChange>,
    /// Removed objects that are not allowed: removals are not allowed by the policy, or no drop
    /// (or rename) operation explains them.
    pub removed_refused: Vec<ObjectChange>,
    /// `(object key, operation)` for every difference an operation explains.
    pub explained: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Side {
    Added,
    Removed,
    Changed,
}

/// Which fields of a changed object an operation explains.
enum Cover {
    Nothing,
    All,
    Fields(&'static [&'static str]),
}

const NOT_NULL_FIELDS: &[&str] = &["not_null", "not_null_not_valid"];

/// A difference, with accessors for the fields the rules read.
struct Item<'a> {
    side: Side,
    change: &'a ObjectChange,
}

impl<'a> Item<'a> {
    fn kind(&self) -> ObjectKind {
        self.change.kind
    }

    fn key(&self) -> &'a str {
        &self.change.key
    }

    /// The object as it is now (as it was, for a removed one).
    fn value(&self) -> Option<&'a Value> {
        match self.side {
            Side::Removed => self.change.before.as_ref(),
            _ => self.change.after.as_ref(),
        }
    }

    fn get(&self, field: &str) -> Option<&'a str> {
        self.value()?.get(field)?.as_str()
    }

    fn schema(&self) -> Option<&'a str> {
        match self.kind() {
            ObjectKind::Schema => Some(self.key()),
            ObjectKind::Comment => self.get("object")?.split('.').next(),
            _ => self.get("schema"),
        }
    }

    /// Whether the security operation's object (`grant`, `revoke`, `alter_owner`, `comment`)
    /// names this object: its key (a function's without the argument types; a comment's, the
    /// object it is on), or `schema.*` for every object of a schema.
    fn named_by(&self, object: &str) -> bool {
        if let Some(schema) = object.strip_suffix(".*") {
            // ALL TABLES / SEQUENCES / FUNCTIONS (ROUTINES, PROCEDURES) IN SCHEMA
            return self.schema() == Some(schema)
                && matches!(
                    self.kind(),
                    ObjectKind::Table
                        | ObjectKind::View
                        | ObjectKind::Sequence
                        | ObjectKind::Function
                );
        }
        let own = match self.kind() {
            ObjectKind::Comment => self.get("object").unwrap_or(""),
            _ => self.key(),
        };
        own == object || own.split_once('(').is_some_and(|(name, _)| name == object)
    }

    /// For a changed role: whether its membership in `group` was granted or revoked.
    fn membership_changed(&self, group: &str) -> bool {
        let has = |value: Option<&Value>| {
            value
                .and_then(|v| v.get("member_of"))
                .and_then(Value::as_array)
                .is_some_and(|groups| groups.iter().any(|g| g.as_str() == Some(group)))
        };
        has(self.change.before.as_ref()) != has(self.change.after.as_ref())
    }

    /// For a comment: the kind and key of the object it is on.
    fn commented(&self) -> Option<(ObjectKind, &'a str)> {
        use ObjectKind as K;
        let kind = match self.get("object_type")? {
            "table" | "foreign table" => K::Table,
            "table column" | "foreign table column" => K::Column,
            "index" => K::Index,
            "table constraint" => K::Constraint,
            "trigger" => K::Trigger,
            "function" | "procedure" | "aggregate" => K::Function,
            "view" | "materialized view" => K::View,
            "sequence" => K::Sequence,
            "type" | "domain" => K::Type,
            "schema" => K::Schema,
            "policy" => K::Policy,
            _ => return None,
        };
        Some((kind, self.get("object")?))
    }

    /// `schema.table` of the table a column, index, constraint or trigger belongs to.
    fn table_key(&self) -> Option<String> {
        match self.kind() {
            ObjectKind::Column
            | ObjectKind::Index
            | ObjectKind::Constraint
            | ObjectKind::Trigger
            | ObjectKind::Policy
            | ObjectKind::Rule => Some(format!("{}.{}", self.schema()?, self.get("table")?)),
            ObjectKind::Statistics => self.get("table").map(str::to_string),
            ObjectKind::Table => Some(self.key().to_string()),
            _ => None,
        }
    }

    /// For a sequence: `schema.table.column` of the column that owns it.
    fn owned_by(&self) -> Option<&'a str> {
        (self.kind() == ObjectKind::Sequence)
            .then(|| self.get("owned_by"))
            .flatten()
    }

    fn owned_by_table(&self) -> Option<&'a str> {
        self.owned_by()
            .and_then(|c| c.rsplit_once('.'))
            .map(|(t, _)| t)
    }

    /// `schema.name` of a function (its key without the argument types).
    fn function_name(&self) -> Option<String> {
        Some(format!("{}.{}", self.schema()?, self.get("name")?))
    }

    /// The part of a definition that names the object's own columns: a foreign key's
    /// referenced columns and an index's table name are left out.
    fn own_columns_text(&self) -> &'a str {
        let def = self.get("definition").unwrap_or("");
        match self.kind() {
            ObjectKind::Constraint => def.split(" REFERENCES ").next().unwrap_or(def),
            ObjectKind::Index => def.split_once(" USING ").map_or(def, |(_, cols)| cols),
            _ => def,
        }
    }

    /// The text a rename shows up in: definitions, the table an index is on, a sequence's
    /// owner column.
    fn rename_text(&self, side: Side) -> String {
        let value = match side {
            Side::Removed => self.change.before.as_ref(),
            _ => self.change.after.as_ref(),
        };
        let Some(value) = value else {
            return String::new();
        };
        ["definition", "table", "owned_by"]
            .iter()
            .filter_map(|f| value.get(*f).and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// An operation's object split as `(table, last part)` for three-part objects.
fn split_last(object: &str) -> (&str, &str) {
    object.rsplit_once('.').unwrap_or(("", object))
}

/// Whether `text` (deparsed SQL) mentions the identifier `name`, quoted or as a whole word.
/// Best effort: it does not tell an identifier from a string literal holding the same word.
pub(crate) fn mentions(text: &str, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    if text.contains(&format!("\"{}\"", name.replace('"', "\"\""))) {
        return true;
    }
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '$' || c == '"';
    let mut from = 0;
    while let Some(pos) = text[from..].find(name) {
        let start = from + pos;
        let end = start + name.len();
        let clear_before = text[..start].chars().next_back().is_none_or(|c| !word(c));
        let clear_after = text[end..].chars().next().is_none_or(|c| !word(c));
        if clear_before && clear_after {
            return true;
        }
        from = end;
    }
    false
}

/// What the rules need to know about the whole diff.
struct Context<'a> {
    items: &'a [Item<'a>],
}

impl Context<'_> {
    /// Whether a constraint with this key appears anywhere in the diff. An `add_constraint` /
    /// `validate_constraint` / `drop_constraint` whose constraint does not is a NOT NULL
    /// constraint (PostgreSQL 18), which the snapshot models as the column's `not_null`.
    fn has_constraint(&self, key: &str) -> bool {
        self.items
            .iter()
            .any(|i| i.kind() == ObjectKind::Constraint && i.key() == key)
    }

    /// Whether an added primary key with this key names the column: adding a primary key sets
    /// NOT NULL on its columns.
    fn added_primary_key_names(&self, key: &str, column: &str) -> bool {
        self.items.iter().any(|i| {
            i.side == Side::Added
                && i.kind() == ObjectKind::Constraint
                && i.key() == key
                && i.get("type") == Some("primary_key")
                && mentions(i.own_columns_text(), column)
        })
    }
}

/// Whether `op` explains the added object.
fn explains_added(op: &Operation, item: &Item) -> bool {
    use ObjectKind as K;
    use OpKind::*;
    let object = op.object.as_str();
    let (op_table, op_last) = split_last(object);
    let table = item.table_key();
    match (op.kind, item.kind()) {
        (CreateSchema, K::Schema) => item.key() == object,
        (CreateTable, K::Table) => item.key() == object,
        // Columns and constraints of a new table, and the indexes that implement its
        // constraints (primary key, UNIQUE, EXCLUDE): the only indexes CREATE TABLE makes.
        // Other indexes need create_index, its triggers create_trigger.
        (CreateTable, K::Column | K::Constraint) => table.as_deref() == Some(object),
        (CreateTable, K::Index) => {
            table.as_deref() == Some(object) && item.get("constraint").is_some()
        }
        (CreateTable, K::Sequence) => item.owned_by_table() == Some(object),
        (AddColumn, K::Column) => item.key() == object,
        (AddColumn, K::Sequence) => item.owned_by() == Some(object),
        // A constraint written inline with the column (`ADD COLUMN x int UNIQUE`, `REFERENCES`,
        // `CHECK`): best effort, by the column's name in the constraint's definition.
        (AddColumn, K::Constraint) => {
            table.as_deref() == Some(op_table) && mentions(item.own_columns_text(), op_last)
        }
        // … and the index behind such a constraint.
        (AddColumn, K::Index) => {
            table.as_deref() == Some(op_table)
                && item.get("constraint").is_some()
                && mentions(item.own_columns_text(), op_last)
        }
        (CreateIndex, K::Index) => item.key() == object,
        (AddConstraint, K::Constraint) => item.key() == object,
        (AddConstraint, K::Index) => {
            table.as_deref() == Some(op_table) && item.get("constraint") == Some(op_last)
        }
        (CreateView, K::View) => item.key() == object,
        (CreateFunction, K::Function) => item.function_name().as_deref() == Some(object),
        (CreateTrigger, K::Trigger) => item.key() == object,
        (CreatePolicy, K::Policy) => item.key() == object,
        (CreateSequence, K::Sequence) => item.key() == object,
        (Comment, K::Comment) => item.named_by(object),
        (Other, K::DefaultPrivileges) => object == DEFAULT_PRIVILEGES_STMT,
        (CreateRule, K::Rule)
        | (CreatePublication, K::Publication)
        | (CreateEventTrigger, K::EventTrigger)
        | (CreateStatistics, K::Statistics)
        | (CreateExtension, K::Extension) => item.key() == object,
        _ => false,
    }
}

/// The statement type behind `other AlterDefaultPrivilegesStmt`, which explains any change of
/// default privileges.
const DEFAULT_PRIVILEGES_STMT: &str = "AlterDefaultPrivilegesStmt";

/// Whether an explained removal needs `allow_removed`: a comment removed by `COMMENT … IS
/// NULL`, a dropped policy, rule, publication, event trigger or statistics object and reset
/// default privileges lose no data, and a rename loses no object.
fn removal_loses_nothing(op: &Operation) -> bool {
    // `other` explains only default privileges; none of these holds data
    matches!(
        op.kind,
        OpKind::RenameTable
            | OpKind::RenameColumn
            | OpKind::Comment
            | OpKind::DropPolicy
            | OpKind::DropRule
            | OpKind::DropPublication
            | OpKind::DropEventTrigger
            | OpKind::DropStatistics
            | OpKind::Other
    )
}

/// Whether the drop `op` explains the removed object (the policy is applied later).
fn explains_removed(op: &Operation, item: &Item) -> bool {
    use ObjectKind as K;
    use OpKind::*;
    let object = op.object.as_str();
    let (op_table, op_last) = split_last(object);
    let table = item.table_key();
    match (op.kind, item.kind()) {
        (DropSchema, _) => item.schema() == Some(object),
        (DropTable, K::Table) => item.key() == object,
        (DropTable, K::Column | K::Index | K::Constraint | K::Trigger | K::Policy) => {
            table.as_deref() == Some(object)
        }
        (DropPolicy, K::Policy) => item.key() == object,
        (Comment, K::Comment) => item.named_by(object),
        (Other, K::DefaultPrivileges) => object == DEFAULT_PRIVILEGES_STMT,
        (DropRule, K::Rule)
        | (DropPublication, K::Publication)
        | (DropEventTrigger, K::EventTrigger)
        | (DropStatistics, K::Statistics)
        | (DropExtension, K::Extension) => item.key() == object,
        (DropTable, K::Sequence) => item.owned_by_table() == Some(object),
        (DropColumn, K::Column) => item.key() == object,
        (DropColumn, K::Sequence) => item.owned_by() == Some(object),
        // Indexes and constraints on the column go with it: best effort, by name.
        (DropColumn, K::Index | K::Constraint) => {
            table.as_deref() == Some(op_table) && mentions(item.own_columns_text(), op_last)
        }
        (DropIndex, K::Index) => item.key() == object,
        (DropConstraint, K::Constraint) => item.key() == object,
        (DropConstraint, K::Index) => {
            table.as_deref() == Some(op_table) && item.get("constraint") == Some(op_last)
        }
        _ => false,
    }
}

/// Which fields of the changed object `op` explains.
fn covers_changed(op: &Operation, item: &Item, ctx: &Context) -> Cover {
    use ObjectKind as K;
    use OpKind::*;
    let object = op.object.as_str();
    let (op_table, op_last) = split_last(object);
    let table = item.table_key();
    let on_table = table.as_deref() == Some(op_table);
    let yes = |cond: bool, cover: Cover| if cond { cover } else { Cover::Nothing };
    match (op.kind, item.kind()) {
        (AlterColumnType, K::Column) => yes(item.key() == object, Cover::All),
        (SetDefault | DropDefault, K::Column) => {
            yes(item.key() == object, Cover::Fields(&["default"]))
        }
        (SetNotNull | DropNotNull, K::Column) => {
            yes(item.key() == object, Cover::Fields(NOT_NULL_FIELDS))
        }
        // A NOT NULL constraint by name (PostgreSQL 18), or a primary key that sets NOT NULL.
        (AddConstraint | ValidateConstraint | DropConstraint, K::Column) => {
            let column = item.get("name").unwrap_or("");
            yes(
                on_table
                    && (!ctx.has_constraint(object)
                        || (op.kind == AddConstraint
                            && ctx.added_primary_key_names(object, column))),
                Cover::Fields(NOT_NULL_FIELDS),
            )
        }
        // A new type reaches the indexes and constraints of the table, and an identity
        // column's sequence.
        (AlterColumnType, K::Index | K::Constraint) => yes(on_table, Cover::All),
        (AlterColumnType, K::Sequence) => yes(item.owned_by() == Some(object), Cover::All),
        (ValidateConstraint, K::Constraint) => {
            yes(item.key() == object, Cover::Fields(&["validated"]))
        }
        // Dropped and created again under the same name in the migration.
        (AddConstraint, K::Constraint) => yes(item.key() == object, Cover::All),
        (AddConstraint, K::Index) => yes(
            on_table && item.get("constraint") == Some(op_last),
            Cover::All,
        ),
        (CreateIndex, K::Index) => yes(item.key() == object, Cover::All),
        // CREATE OR REPLACE.
        (CreateView, K::View) => yes(item.key() == object, Cover::All),
        (CreateFunction, K::Function) => {
            yes(item.function_name().as_deref() == Some(object), Cover::All)
        }
        (CreateTrigger, K::Trigger) => yes(item.key() == object, Cover::All),
        // `grant app_reader` (to a role): the member's member_of gains it
        (Grant | Revoke, K::Role) => yes(
            item.membership_changed(object),
            Cover::Fields(&["member_of"]),
        ),
        (Grant | Revoke, _) => yes(item.named_by(object), Cover::Fields(&["grants"])),
        (AlterOwner, _) => yes(item.named_by(object), Cover::Fields(&["owner", "grants"])),
        (Comment, K::Comment) => yes(item.named_by(object), Cover::All),
        (AlterPolicy | CreatePolicy | DropPolicy, K::Policy) => {
            yes(item.key() == object, Cover::All)
        }
        (EnableRls | DisableRls, K::Table) => {
            yes(item.key() == object, Cover::Fields(&["row_security"]))
        }
        (ForceRls | NoForceRls, K::Table) => {
            yes(item.key() == object, Cover::Fields(&["force_row_security"]))
        }
        (Other, K::DefaultPrivileges) => yes(object == DEFAULT_PRIVILEGES_STMT, Cover::All),
        (AlterRole, K::Role) => yes(item.key() == object, Cover::All),
        (CreateRule | DropRule, K::Rule)
        | (AlterPublication | CreatePublication | DropPublication, K::Publication)
        | (AlterEventTrigger | CreateEventTrigger | DropEventTrigger, K::EventTrigger)
        | (AlterStatistics | CreateStatistics | DropStatistics, K::Statistics)
        | (AlterExtension | CreateExtension | DropExtension, K::Extension) => {
            yes(item.key() == object, Cover::All)
        }
        // a dropped table leaves the publications that named it
        (DropTable, K::Publication) => yes(
            item.change
                .before
                .as_ref()
                .and_then(|b| b.get("tables"))
                .and_then(Value::as_array)
                .is_some_and(|t| t.iter().any(|t| t.as_str() == Some(object))),
            Cover::Fields(&["tables"]),
        ),
        _ => Cover::Nothing,
    }
}

/// What explains an object that belongs to another one (a column to its table, a sequence to
/// its column, a partition's index to the parent index): `(kind, key)` of the owners.
fn owners(item: &Item, parents: &BTreeMap<String, Vec<String>>) -> Vec<(ObjectKind, String)> {
    use ObjectKind as K;
    let mut out = Vec::new();
    match item.kind() {
        K::Column | K::Index | K::Constraint | K::Trigger => {
            if let Some(t) = item.table_key() {
                out.extend(parent_columns(item, &t, parents));
                out.push((K::Table, t));
            }
        }
        K::Sequence => {
            if let Some(c) = item.owned_by() {
                out.push((K::Column, c.to_string()));
            }
            if let Some(t) = item.owned_by_table() {
                out.push((K::Table, t.to_string()));
            }
        }
        K::Table => {
            if let Some(p) = item.get("partition_of") {
                out.push((K::Table, p.to_string()));
            }
        }
        K::Policy | K::Rule | K::Statistics => {
            if let Some(t) = item.table_key() {
                out.push((K::Table, t));
            }
        }
        K::Comment => {
            if let Some((kind, key)) = item.commented() {
                out.push((kind, key.to_string()));
            }
        }
        _ => {}
    }
    if matches!(item.kind(), K::Index | K::Constraint | K::Trigger) {
        if let Some(p) = item.get("parent") {
            out.push((item.kind(), p.to_string()));
        }
    }
    out
}

/// For a column of a partition (or of a table that inherits): the same column of its parents.
fn parent_columns(
    item: &Item,
    table: &str,
    parents: &BTreeMap<String, Vec<String>>,
) -> Vec<(ObjectKind, String)> {
    let (Some(name), Some(of)) = (item.get("name"), parents.get(table)) else {
        return Vec::new();
    };
    if item.kind() != ObjectKind::Column {
        return Vec::new();
    }
    of.iter()
        .map(|parent| (ObjectKind::Column, format!("{parent}.{name}")))
        .collect()
}

/// A partition's changed column whose parent's same column changed in the same fields and is
/// explained (a type, default or NOT NULL set on the parent reaches every partition): explained
/// by what explains the parent's, level by level down a partition tree.
fn explain_by_parent_columns(
    items: &[Item],
    parents: &BTreeMap<String, Vec<String>>,
    changed_by: &mut [Vec<usize>],
    changed_ok: &mut [bool],
) {
    let changed_columns: HashMap<&str, usize> = items
        .iter()
        .enumerate()
        .filter(|(_, it)| it.side == Side::Changed && it.kind() == ObjectKind::Column)
        .map(|(i, it)| (it.key(), i))
        .collect();
    loop {
        let mut progress = false;
        for &i in changed_columns.values() {
            if changed_ok[i] {
                continue;
            }
            let item = &items[i];
            let Some(table) = item.table_key() else {
                continue;
            };
            let parent = parent_columns(item, &table, parents)
                .iter()
                .find_map(|(_, parent_key)| changed_columns.get(parent_key.as_str()).copied())
                .filter(|&p| changed_ok[p] && p != i)
                .filter(|&p| {
                    let theirs = &items[p].change.fields;
                    item.change.fields.iter().all(|f| theirs.contains(f))
                });
            if let Some(p) = parent {
                changed_by[i] = changed_by[p].clone();
                changed_ok[i] = true;
                progress = true;
            }
        }
        if !progress {
            break;
        }
    }
}

fn in_ignored_schema(change: &ObjectChange, ignore: &[String]) -> bool {
    if ignore.is_empty() || change.kind == ObjectKind::Extension {
        return false;
    }
    let value = change.after.as_ref().or(change.before.as_ref());
    let schema = match change.kind {
        ObjectKind::Schema => Some(change.key.as_str()),
        _ => value.and_then(|v| v.get("schema")).and_then(Value::as_str),
    };
    schema.is_some_and(|s| ignore.iter().any(|i| i == s))
}

/// A rename the judgement accepted: the old and new name of a table or column.
struct Rename {
    op: usize,
    old: String,
    new: String,
}

/// Judges a diff (SPEC §4 step 14): every added object explained by a scope operation, no
/// changed object unless explained, no removed object unless `policy.allow_removed` and a drop
/// explains it. Objects in `policy.ignore_schemas` are not judged.
pub fn judge(
    diff: &SchemaDiff,
    operations: &[Operation],
    policy: &SchemaDiffPolicy,
) -> DiffVerdict {
    let items: Vec<Item> = [
        (Side::Added, &diff.added),
        (Side::Removed, &diff.removed),
        (Side::Changed, &diff.changed),
    ]
    .into_iter()
    .flat_map(|(side, list)| list.iter().map(move |change| Item { side, change }))
    .filter(|item| !in_ignored_schema(item.change, &policy.ignore_schemas))
    // a role enters and leaves the snapshot with what it owns or is granted, judged there
    .filter(|item| item.kind() != ObjectKind::Role || item.side == Side::Changed)
    .collect();
    let ctx = Context { items: &items };
    // For added and removed items: the index of the operation that explains them.
    let mut by: Vec<Option<usize>> = vec![None; items.len()];
    // For changed items: the operations that explain some of their fields, and whether all are.
    let mut changed_by: Vec<Vec<usize>> = vec![Vec::new(); items.len()];
    let mut changed_ok: Vec<bool> = vec![false; items.len()];

    // 1. Direct explanations.
    for (i, item) in items.iter().enumerate() {
        match item.side {
            Side::Added => {
                by[i] = first_explaining(operations, item, |op| explains_added(op, item));
            }
            Side::Removed => {
                by[i] = first_explaining(operations, item, |op| explains_removed(op, item));
            }
            Side::Changed => {
                let mut covered: Vec<&str> = Vec::new();
                let mut all = false;
                for (o, op) in operations.iter().enumerate() {
                    match covers_changed(op, item, &ctx) {
                        Cover::Nothing => continue,
                        Cover::All => all = true,
                        Cover::Fields(fields) => covered.extend_from_slice(fields),
                    }
                    changed_by[i].push(o);
                }
                changed_ok[i] = !changed_by[i].is_empty()
                    && (all
                        || item
                            .change
                            .fields
                            .iter()
                            .all(|f| covered.contains(&f.as_str())));
            }
        }
    }

    // 2. Renames: the old key is removed, one added object of the same kind in the same schema
    //    (table) or table (column) is the new one. Best effort: an added object with the same
    //    content (for a table: the same columns) is preferred; otherwise a sole candidate.
    let mut renames: Vec<Rename> = Vec::new();
    for (o, op) in operations.iter().enumerate() {
        let kind = match op.kind {
            OpKind::RenameTable => ObjectKind::Table,
            OpKind::RenameColumn => ObjectKind::Column,
            _ => continue,
        };
        let Some(old) = items
            .iter()
            .position(|it| it.side == Side::Removed && it.kind() == kind && it.key() == op.object)
        else {
            continue;
        };
        let scope_of = |it: &Item| match kind {
            ObjectKind::Table => it.schema().map(str::to_string),
            _ => it.table_key(),
        };
        let old_scope = scope_of(&items[old]);
        let candidates: Vec<usize> = (0..items.len())
            .filter(|&j| {
                let it = &items[j];
                it.side == Side::Added
                    && it.kind() == kind
                    && by[j].is_none()
                    && scope_of(it) == old_scope
            })
            .collect();
        let same = |j: usize| match kind {
            ObjectKind::Table => {
                table_shape(&items, items[old].key(), Side::Removed)
                    == table_shape(&items, items[j].key(), Side::Added)
            }
            _ => without_name(items[old].value()) == without_name(items[j].value()),
        };
        let new = candidates
            .iter()
            .copied()
            .find(|&j| same(j))
            .or_else(|| (candidates.len() == 1).then(|| candidates[0]));
        by[old] = Some(o);
        if let Some(new) = new {
            by[new] = Some(o);
            let name = |i: usize| items[i].get("name").unwrap_or("").to_string();
            renames.push(Rename {
                op: o,
                old: name(old),
                new: name(new),
            });
        }
    }
    // … and a changed object whose definition (index's table, sequence's owner) names the old
    // name before and the new one after: best effort, by name.
    for (i, item) in items.iter().enumerate() {
        if item.side != Side::Changed || changed_ok[i] {
            continue;
        }
        let only_text = item
            .change
            .fields
            .iter()
            .all(|f| matches!(f.as_str(), "definition" | "table" | "owned_by"));
        if !only_text {
            continue;
        }
        let (before, after) = (
            item.rename_text(Side::Removed),
            item.rename_text(Side::Added),
        );
        if let Some(r) = renames
            .iter()
            .find(|r| mentions(&before, &r.old) && mentions(&after, &r.new))
        {
            changed_by[i].push(r.op);
            changed_ok[i] = true;
        }
    }

    // … and a partition's column changed as its parent's was
    explain_by_parent_columns(&items, &diff.parents, &mut changed_by, &mut changed_ok);

    // 3. Belonging: an object whose owner is explained on the same side is explained by the
    //    same operation (a new table's columns, a dropped column's sequence, a partition's
    //    index). A new table's triggers and plain indexes still need their own operation; a
    //    renamed table's do not.
    let index: HashMap<(Side, ObjectKind, &str), usize> = items
        .iter()
        .enumerate()
        .filter(|(_, it)| it.side != Side::Changed)
        .map(|(i, it)| ((it.side, it.kind(), it.key()), i))
        .collect();
    loop {
        let mut progress = false;
        for (i, item) in items.iter().enumerate() {
            if item.side == Side::Changed || by[i].is_some() {
                continue;
            }
            for (kind, key) in owners(item, &diff.parents) {
                let Some(&owner) = index.get(&(item.side, kind, key.as_str())) else {
                    continue;
                };
                let Some(o) = by[owner] else { continue };
                let rename = matches!(
                    operations[o].kind,
                    OpKind::RenameTable | OpKind::RenameColumn
                );
                let needs_own_op = match item.kind() {
                    ObjectKind::Trigger
                    | ObjectKind::Policy
                    | ObjectKind::Rule
                    | ObjectKind::Statistics => true,
                    ObjectKind::Index => item.get("constraint").is_none(),
                    _ => false,
                };
                if item.side == Side::Added && kind == ObjectKind::Table && needs_own_op && !rename
                {
                    continue;
                }
                by[i] = Some(o);
                progress = true;
                break;
            }
        }
        if !progress {
            break;
        }
    }

    // 4. The verdict.
    let mut verdict = DiffVerdict::default();
    for (i, item) in items.iter().enumerate() {
        let key = item.key().to_string();
        match item.side {
            Side::Added => match by[i] {
                Some(o) => verdict.explained.push((key, operations[o].to_string())),
                None => verdict.unexplained_added.push(item.change.clone()),
            },
            Side::Removed => {
                let accepted = by[i]
                    .filter(|&o| removal_loses_nothing(&operations[o]) || policy.allow_removed);
                match accepted {
                    Some(o) => verdict.explained.push((key, operations[o].to_string())),
                    None => verdict.removed_refused.push(item.change.clone()),
                }
            }
            Side::Changed => {
                if changed_ok[i] {
                    for &o in &changed_by[i] {
                        verdict
                            .explained
                            .push((key.clone(), operations[o].to_string()));
                    }
                } else {
                    verdict.unexplained_changed.push(item.change.clone());
                }
            }
        }
    }
    verdict.holds = verdict.unexplained_added.is_empty()
        && verdict.unexplained_changed.is_empty()
        && verdict.removed_refused.is_empty();
    verdict
}

/// The operation that explains an object, preferring one that names it exactly (so that a
/// new table's index is credited to its create_index rather than to a drop of the table).
fn first_explaining(
    operations: &[Operation],
    item: &Item,
    explains: impl Fn(&Operation) -> bool,
) -> Option<usize> {
    let names_it = |op: &Operation| {
        op.object == item.key() || item.function_name().is_some_and(|f| op.object == f)
    };
    operations
        .iter()
        .position(|op| names_it(op) && explains(op))
        .or_else(|| operations.iter().position(explains))
}

/// An object's content without its own name, to recognize it under a new one.
fn without_name(value: Option<&Value>) -> Option<Value> {
    let mut v = value?.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("key");
        map.remove("name");
    }
    Some(v)
}

/// The columns of a table among the diff's objects on one side, without their table's name.
fn table_shape(items: &[Item], table: &str, side: Side) -> Vec<Value> {
    let mut shape: Vec<Value> = items
        .iter()
        .filter(|it| {
            it.side == side
                && it.kind() == ObjectKind::Column
                && it.table_key().as_deref() == Some(table)
        })
        .filter_map(|it| {
            let mut v = it.value()?.clone();
            if let Some(map) = v.as_object_mut() {
                map.remove("key");
                map.remove("table");
            }
            Some(v)
        })
        .collect();
    shape.sort_by_key(|v| v.to_string());
    shape
}

/// What keeps `now` from being `pre` again, one line per object: added objects left behind,
/// removed objects not restored, changed objects with their fields (the rollback's
/// schema-equals-pre, in the rollback pipeline and in the rehearsal).
pub(crate) fn not_back_to(pre: &Snapshot, now: &Snapshot) -> Vec<String> {
    let diff = match diff(pre, now) {
        Ok(diff) => diff,
        Err(e) => return vec![e.to_string()],
    };
    let mut out: Vec<String> = diff
        .added
        .iter()
        .map(|o| format!("left behind: {:?} {}", o.kind, o.key))
        .collect();
    out.extend(
        diff.removed
            .iter()
            .map(|o| format!("not restored: {:?} {}", o.kind, o.key)),
    );
    out.extend(
        diff.changed
            .iter()
            .map(|o| format!("changed: {:?} {} ({})", o.kind, o.key, o.fields.join(", "))),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, Constraint, Index, Schema, Sequence, Table, Trigger};

    fn table(schema: &str, name: &str) -> Table {
        Table {
            key: format!("{schema}.{name}"),
            schema: schema.into(),
            name: name.into(),
            kind: "table".into(),
            persistence: "permanent".into(),
            owner: "app".into(),
            access_method: Some("heap".into()),
            tablespace: None,
            options: vec![],
            partition_of: None,
            partition_bound: None,
            partition_key: None,
            inherits: vec![],
            row_security: false,
            force_row_security: false,
            replica_identity: "default".into(),
            grants: Vec::new(),
        }
    }

    fn column(schema: &str, table: &str, name: &str, ty: &str) -> Column {
        Column::plain(schema, table, name, ty)
    }

    fn index(schema: &str, table: &str, name: &str, cols: &str, constraint: Option<&str>) -> Index {
        Index {
            key: format!("{schema}.{name}"),
            schema: schema.into(),
            name: name.into(),
            table: table.into(),
            definition: format!(
                "CREATE {}INDEX {name} ON {schema}.{table} USING btree ({cols})",
                if constraint.is_some() { "UNIQUE " } else { "" }
            ),
            unique: constraint.is_some(),
            primary: false,
            constraint: constraint.map(str::to_string),
            valid: true,
            ready: true,
            parent: None,
        }
    }

    fn constraint(schema: &str, table: &str, name: &str, ty: &str, def: &str) -> Constraint {
        Constraint {
            key: format!("{schema}.{table}.{name}"),
            schema: schema.into(),
            table: table.into(),
            name: name.into(),
            constraint_type: ty.into(),
            definition: def.into(),
            validated: true,
            index: None,
            parent: None,
        }
    }

    fn trigger(schema: &str, table: &str, name: &str) -> Trigger {
        Trigger {
            key: format!("{schema}.{table}.{name}"),
            schema: schema.into(),
            table: table.into(),
            name: name.into(),
            definition: format!("CREATE TRIGGER {name} BEFORE UPDATE ON {schema}.{table} FOR EACH ROW EXECUTE FUNCTION f()"),
            enabled: "origin".into(),
            parent: None,
        }
    }

    fn sequence(schema: &str, name: &str, owned_by: Option<&str>) -> Sequence {
        Sequence {
            key: format!("{schema}.{name}"),
            schema: schema.into(),
            name: name.into(),
            data_type: "bigint".into(),
            start: 1,
            increment: 1,
            min: 1,
            max: i64::MAX,
            cache: 1,
            cycle: false,
            owned_by: owned_by.map(str::to_string),
            owner: "app".into(),
            grants: Vec::new(),
        }
    }

    /// s.t (id, a) with its primary key and an index on a.
    #[test]
    fn two_objects_with_one_key_are_refused_not_paired() {
        let mut twice = base();
        twice.tables.push(table("s", "t"));
        let err = diff(&twice, &base()).unwrap_err();
        assert_eq!(
            (err.side, err.kind, err.key.as_str()),
            ("pre", ObjectKind::Table, "s.t")
        );
        let err = diff(&base(), &twice).unwrap_err();
        assert_eq!(err.side, "post");
        assert_eq!(
            err.to_string(),
            "the post snapshot holds two table objects with the key s.t"
        );
        // and the rollback's comparison says so rather than call the schema back
        assert_eq!(not_back_to(&base(), &twice), [err.to_string()]);
    }

    fn base() -> Snapshot {
        let mut s = Snapshot {
            server_version_num: 150000,
            schemas: vec![Schema {
                key: "s".into(),
                owner: "app".into(),
                grants: Vec::new(),
            }],
            tables: vec![table("s", "t")],
            columns: vec![
                column("s", "t", "a", "text"),
                column("s", "t", "id", "bigint"),
            ],
            indexes: vec![
                index("s", "t", "t_a_idx", "a", None),
                index("s", "t", "t_pkey", "id", Some("t_pkey")),
            ],
            constraints: vec![constraint(
                "s",
                "t",
                "t_pkey",
                "primary_key",
                "PRIMARY KEY (id)",
            )],
            ..Snapshot::default()
        };
        s.columns[1].not_null = true;
        s
    }

    fn ops(list: &[&str]) -> Vec<Operation> {
        list.iter().map(|o| Operation::parse(o).unwrap()).collect()
    }

    fn policy(allow_removed: bool) -> SchemaDiffPolicy {
        SchemaDiffPolicy {
            allow_removed,
            ignore_schemas: vec![],
        }
    }

    fn keys(list: &[ObjectChange]) -> Vec<String> {
        list.iter()
            .map(|c| format!("{} {}", c.kind, c.key))
            .collect()
    }

    /// `s.p` partitioned into `s.p_1` and `s.p_2` (and `s.p_1` into `s.p_1a`), each with `id`.
    fn partitioned() -> Snapshot {
        let mut s = base();
        s.tables.push(table("s", "p"));
        for (child, parent) in [("p_1", "p"), ("p_2", "p"), ("p_1a", "p_1")] {
            let mut t = table("s", child);
            t.partition_of = Some(format!("s.{parent}"));
            s.tables.push(t);
        }
        for t in ["p", "p_1", "p_2", "p_1a"] {
            s.columns.push(column("s", t, "id", "bigint"));
        }
        s.sort();
        s
    }

    #[test]
    fn a_column_added_altered_or_dropped_on_a_parent_is_so_on_its_partitions() {
        let pre = partitioned();
        let mut post = partitioned();
        for t in ["p", "p_1", "p_2", "p_1a"] {
            post.columns.push(column("s", t, "status", "text"));
        }
        post.sort();
        let d = diff(&pre, &post).unwrap();
        assert_eq!(d.added.len(), 4);
        assert_eq!(d.parents["s.p_1a"], ["s.p_1"]);
        let v = judge(&d, &ops(&["add_column s.p.status"]), &policy(false));
        assert!(v.holds, "{v:?}");
        assert_eq!(v.explained.len(), 4);
        // a partition's column is not explained by another column, nor by nothing
        assert!(!judge(&d, &ops(&["add_column s.p.other"]), &policy(false)).holds);
        let only_child = judge(&d, &ops(&["add_column s.p_1.status"]), &policy(false));
        assert!(!only_child.holds);
        assert_eq!(
            keys(&only_child.unexplained_added),
            ["column s.p.status", "column s.p_2.status"]
        );

        // the type, on the parent and so on every partition
        let mut retyped = post.clone();
        retyped
            .columns
            .iter_mut()
            .filter(|c| c.name == "status")
            .for_each(|c| c.data_type = "character varying(20)".into());
        let d = diff(&post, &retyped).unwrap();
        assert_eq!(d.changed.len(), 4);
        assert!(judge(&d, &ops(&["alter_column_type s.p.status"]), &policy(false)).holds);
        assert!(
            !judge(
                &d,
                &ops(&["alter_column_type s.p_2.status"]),
                &policy(false)
            )
            .holds
        );

        // dropped on the parent, gone from every partition
        let d = diff(&post, &pre).unwrap();
        assert_eq!(d.removed.len(), 4);
        assert!(judge(&d, &ops(&["drop_column s.p.status"]), &policy(true)).holds);
        // the diff read back from diff.json is judged the same
        let back: SchemaDiff = serde_json::from_value(serde_json::to_value(&d).unwrap()).unwrap();
        assert!(judge(&back, &ops(&["drop_column s.p.status"]), &policy(true)).holds);
        // and a diff without partitions writes no `parents`
        let plain = serde_json::to_value(diff(&base(), &base()).unwrap()).unwrap();
        assert!(plain.get("parents").is_none());
    }

    #[test]
    fn equal_snapshots_diff_empty() {
        let d = diff(&base(), &base()).unwrap();
        assert!(d.is_empty());
        let v = judge(&d, &[], &policy(false));
        assert!(v.holds);
        assert!(v.explained.is_empty());
    }

    #[test]
    fn lists_out_of_key_order_diff_like_sorted_ones() {
        let pre = base();
        let mut post = base();
        post.columns[0].default = Some("'x'::text".into());
        post.columns.push(column("s", "t", "added", "integer"));
        let sorted = diff(&pre, &post).unwrap();
        let (mut pre_rev, mut post_rev) = (pre.clone(), post.clone());
        pre_rev.columns.reverse();
        post_rev.columns.reverse();
        post_rev.indexes.reverse();
        assert_eq!(diff(&pre_rev, &post_rev).unwrap(), sorted);
        assert_eq!(sorted.added.len(), 1);
        assert_eq!(sorted.changed.len(), 1);
    }

    #[test]
    fn a_changed_field_is_named_and_the_rest_is_not() {
        let pre = base();
        let mut post = base();
        post.columns[0].default = Some("'x'::text".into());
        let d = diff(&pre, &post).unwrap();
        assert!(d.added.is_empty() && d.removed.is_empty());
        assert_eq!(keys(&d.changed), vec!["column s.t.a"]);
        assert_eq!(d.changed[0].fields, vec!["default"]);
        assert_eq!(
            d.changed[0].before.as_ref().unwrap()["default"],
            Value::Null
        );
        assert_eq!(d.changed[0].after.as_ref().unwrap()["default"], "'x'::text");

        assert!(!judge(&d, &[], &policy(true)).holds);
        let v = judge(&d, &ops(&["set_default s.t.a"]), &policy(false));
        assert!(v.holds, "{v:?}");
        assert_eq!(
            v.explained,
            vec![("s.t.a".to_string(), "set_default s.t.a".to_string())]
        );
        // An operation on another column, or of the wrong kind, explains nothing.
        assert!(!judge(&d, &ops(&["set_default s.t.id"]), &policy(false)).holds);
        assert!(!judge(&d, &ops(&["set_not_null s.t.a"]), &policy(false)).holds);
        // A type change explains any change of the column.
        assert!(judge(&d, &ops(&["alter_column_type s.t.a"]), &policy(false)).holds);
    }

    #[test]
    fn a_set_default_does_not_explain_a_type_change_too() {
        let pre = base();
        let mut post = base();
        post.columns[0].default = Some("'x'::text".into());
        post.columns[0].data_type = "character varying(10)".into();
        let d = diff(&pre, &post).unwrap();
        assert_eq!(d.changed[0].fields, vec!["type", "default"]);
        let v = judge(&d, &ops(&["set_default s.t.a"]), &policy(false));
        assert!(!v.holds);
        assert_eq!(keys(&v.unexplained_changed), vec!["column s.t.a"]);
    }

    #[test]
    fn a_new_table_explains_its_columns_constraints_indexes_and_sequences_not_triggers() {
        let pre = base();
        let mut post = base();
        post.tables.push(table("s", "n"));
        post.columns.push(column("s", "n", "id", "bigint"));
        post.columns.push(column("s", "n", "x", "text"));
        post.constraints.push(constraint(
            "s",
            "n",
            "n_pkey",
            "primary_key",
            "PRIMARY KEY (id)",
        ));
        post.indexes
            .push(index("s", "n", "n_pkey", "id", Some("n_pkey")));
        post.indexes.push(index("s", "n", "ix_x", "x", None));
        post.sequences
            .push(sequence("s", "n_id_seq", Some("s.n.id")));
        post.triggers.push(trigger("s", "n", "trg"));
        let d = diff(&pre, &post).unwrap();
        assert_eq!(d.added.len(), 8);
        assert!(d.removed.is_empty() && d.changed.is_empty());

        // The table's own index (behind its primary key) comes with it; a plain index does not.
        let v = judge(
            &d,
            &ops(&["create_table s.n", "create_trigger s.n.trg"]),
            &policy(false),
        );
        assert_eq!(keys(&v.unexplained_added), vec!["index s.ix_x"]);

        let v = judge(
            &d,
            &ops(&["create_table s.n", "create_index s.ix_x"]),
            &policy(false),
        );
        assert!(!v.holds);
        assert_eq!(keys(&v.unexplained_added), vec!["trigger s.n.trg"]);
        assert!(v
            .explained
            .contains(&("s.n_id_seq".to_string(), "create_table s.n".to_string())));
        assert!(v
            .explained
            .contains(&("s.ix_x".to_string(), "create_index s.ix_x".to_string())));

        let v = judge(
            &d,
            &ops(&[
                "create_table s.n",
                "create_index s.ix_x",
                "create_trigger s.n.trg",
            ]),
            &policy(false),
        );
        assert!(v.holds, "{v:?}");
        assert_eq!(v.explained.len(), 8);
    }

    #[test]
    fn a_new_column_explains_its_inline_constraint_index_and_sequence() {
        let pre = base();
        let mut post = base();
        post.columns.push(column("s", "t", "code", "text"));
        post.columns.push(column("s", "t", "n", "integer"));
        post.constraints.push(constraint(
            "s",
            "t",
            "t_code_key",
            "unique",
            "UNIQUE (code)",
        ));
        post.indexes
            .push(index("s", "t", "t_code_key", "code", Some("t_code_key")));
        post.sequences.push(sequence("s", "t_n_seq", Some("s.t.n")));
        let d = diff(&pre, &post).unwrap();
        let v = judge(
            &d,
            &ops(&["add_column s.t.code", "add_column s.t.n"]),
            &policy(false),
        );
        assert!(v.holds, "{v:?}");
        // Without the column that the constraint names, the constraint is not explained.
        let v = judge(&d, &ops(&["add_column s.t.n"]), &policy(false));
        assert_eq!(
            keys(&v.unexplained_added),
            vec![
                "column s.t.code",
                "index s.t_code_key",
                "constraint s.t.t_code_key"
            ]
        );
    }

    #[test]
    fn an_added_constraint_explains_its_index_and_a_primary_keys_not_null() {
        let mut pre = base();
        pre.constraints.clear();
        pre.indexes.retain(|i| i.name != "t_pkey");
        pre.columns[1].not_null = false;
        let d = diff(&pre, &base()).unwrap();
        assert_eq!(
            keys(&d.added),
            vec!["index s.t_pkey", "constraint s.t.t_pkey"]
        );
        assert_eq!(keys(&d.changed), vec!["column s.t.id"]);
        let v = judge(&d, &ops(&["add_constraint s.t.t_pkey"]), &policy(false));
        assert!(v.holds, "{v:?}");
        assert!(!judge(&d, &ops(&["add_constraint s.t.other"]), &policy(false)).holds);
    }

    #[test]
    fn a_missing_create_index_is_named() {
        let pre = base();
        let mut post = base();
        post.indexes.push(index("s", "t", "ix_new", "a, id", None));
        let d = diff(&pre, &post).unwrap();
        let v = judge(&d, &ops(&["create_index s.ix_other"]), &policy(false));
        assert!(!v.holds);
        assert_eq!(keys(&v.unexplained_added), vec!["index s.ix_new"]);
    }

    #[test]
    fn removals_need_the_policy_and_a_drop() {
        let pre = base();
        let mut post = base();
        post.columns.retain(|c| c.name != "a");
        post.indexes.retain(|i| i.name != "t_a_idx");
        let d = diff(&pre, &post).unwrap();
        assert_eq!(keys(&d.removed), vec!["column s.t.a", "index s.t_a_idx"]);
        let drop = ops(&["drop_column s.t.a"]);
        let v = judge(&d, &drop, &policy(false));
        assert!(!v.holds);
        assert_eq!(v.removed_refused.len(), 2);
        assert!(!judge(&d, &[], &policy(true)).holds);
        assert!(!judge(&d, &ops(&["drop_column s.t.id"]), &policy(true)).holds);
        let v = judge(&d, &drop, &policy(true));
        assert!(v.holds, "{v:?}");
        assert!(v
            .explained
            .contains(&("s.t_a_idx".to_string(), "drop_column s.t.a".to_string())));
    }

    #[test]
    fn a_dropped_table_takes_its_children_along() {
        let pre = {
            let mut s = base();
            s.triggers.push(trigger("s", "t", "trg"));
            s.sequences.push(sequence("s", "t_id_seq", Some("s.t.id")));
            s
        };
        let post = Snapshot {
            server_version_num: 150000,
            schemas: pre.schemas.clone(),
            ..Snapshot::default()
        };
        let d = diff(&pre, &post).unwrap();
        assert_eq!(d.removed.len(), 8);
        let v = judge(&d, &ops(&["drop_table s.t"]), &policy(true));
        assert!(v.holds, "{v:?}");
        let v = judge(&d, &ops(&["drop_index s.t_a_idx"]), &policy(true));
        assert_eq!(v.removed_refused.len(), 7);
    }

    #[test]
    fn renames_explain_the_old_key_and_the_new_one() {
        let pre = base();
        let mut post = base();
        post.columns[0] = column("s", "t", "b", "text");
        post.indexes[0].definition = "CREATE INDEX t_a_idx ON s.t USING btree (b)".into();
        let d = diff(&pre, &post).unwrap();
        assert_eq!(keys(&d.added), vec!["column s.t.b"]);
        assert_eq!(keys(&d.removed), vec!["column s.t.a"]);
        assert_eq!(keys(&d.changed), vec!["index s.t_a_idx"]);
        let v = judge(&d, &ops(&["rename_column s.t.a"]), &policy(false));
        assert!(v.holds, "{v:?}");
        assert!(!judge(&d, &ops(&["rename_column s.t.id"]), &policy(false)).holds);
    }

    #[test]
    fn a_renamed_table_carries_its_children() {
        let pre = {
            let mut s = base();
            s.triggers.push(trigger("s", "t", "trg"));
            s
        };
        let mut post = pre.clone();
        post.tables[0] = table("s", "u");
        for c in &mut post.columns {
            *c = column("s", "u", &c.name.clone(), &c.data_type.clone());
        }
        post.columns[1].not_null = true;
        for i in &mut post.indexes {
            i.table = "u".into();
            i.definition = i.definition.replace("s.t ", "s.u ");
        }
        post.constraints[0] = constraint("s", "u", "t_pkey", "primary_key", "PRIMARY KEY (id)");
        post.triggers[0] = trigger("s", "u", "trg");
        let d = diff(&pre, &post).unwrap();
        assert_eq!(d.changed.len(), 2, "{:?}", keys(&d.changed));
        let v = judge(&d, &ops(&["rename_table s.t"]), &policy(false));
        assert!(v.holds, "{v:?}");
        assert!(!judge(&d, &ops(&["create_table s.u"]), &policy(false)).holds);
    }

    #[test]
    fn ignored_schemas_are_not_judged() {
        let pre = base();
        let mut post = base();
        post.tables.push(table("other", "x"));
        let d = diff(&pre, &post).unwrap();
        assert!(!judge(&d, &[], &policy(false)).holds);
        let p = SchemaDiffPolicy {
            allow_removed: false,
            ignore_schemas: vec!["other".into()],
        };
        assert!(judge(&d, &[], &p).holds);
    }

    #[test]
    fn a_diff_round_trips_through_json() {
        let mut post = base();
        post.columns[0].default = Some("'x'::text".into());
        post.tables.push(table("s", "n"));
        let d = diff(&base(), &post).unwrap();
        let text = serde_json::to_string(&d).unwrap();
        assert!(text.contains("\"kind\":\"column\""), "{text}");
        let back: SchemaDiff = serde_json::from_str(&text).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn mentions_finds_whole_identifiers_only() {
        assert!(mentions("UNIQUE (code)", "code"));
        assert!(mentions("CHECK ((a > 0))", "a"));
        assert!(!mentions("CHECK ((ab > 0))", "a"));
        assert!(mentions("UNIQUE (\"Mixed Case\")", "Mixed Case"));
        assert!(!mentions("UNIQUE (\"a b\")", "a"));
        assert!(mentions("public.t.c", "t"));
        assert!(!mentions("", ""));
    }

    /// A run recorded before grants, comments and roles were read: its snapshot (coverage 0,
    /// none of those fields) is compared with a live one on what it recorded.
    #[test]
    fn a_snapshot_an_older_sluice_wrote_is_compared_on_what_it_holds() {
        let table = |grants: Vec<String>| Table {
            grants,
            ..table("s", "t")
        };
        let old: Snapshot = serde_json::from_str(
            &serde_json::to_string(&Snapshot {
                tables: vec![table(vec![])],
                ..Snapshot::default()
            })
            .unwrap()
            .replace(",\"coverage\":0", ""),
        )
        .unwrap();
        assert_eq!(old.coverage, 0);
        let live = Snapshot {
            coverage: crate::catalog::COVERAGE,
            tables: vec![table(vec!["app: SELECT (granted by app)".into()])],
            comments: vec![crate::catalog::Comment {
                key: "table s.t".into(),
                object_type: "table".into(),
                object: "s.t".into(),
                text: "t".into(),
            }],
            ..Snapshot::default()
        };
        assert!(!diff(&old, &live).unwrap().is_empty());
        assert!(diff(&old, &live.covered_as(old.coverage))
            .unwrap()
            .is_empty());
        assert_eq!(live.covered_as(crate::catalog::COVERAGE), live);
    }
}
