//! The catalog's kinds of object, in one table: a row per kind gives the [`Snapshot`] list that
//! holds it, the object's type, the diff's [`ObjectKind`], the word reports use, and the snapshot
//! [`COVERAGE`](super::COVERAGE) that first read it. The snapshot's fields, the diff's kinds and
//! every piece of code that goes over all kinds (count, merge of two sessions' shares, sort,
//! the old-snapshot view, the diff walk) are made from this table, so a new kind is a row here,
//! its struct, and its query in `query.rs` (whose plan a test checks against [`ObjectKind::ALL`]).

use super::diff::{keyed_lists, DuplicateKey, SchemaDiff};
use super::*;

/// Something in a snapshot with a stable key.
pub trait Keyed {
    fn key(&self) -> &str;
}

/// Makes the snapshot, the kinds and the per-kind code from the table below.
macro_rules! catalog_kinds {
    ($(
        $(#[$meta:meta])*
        $field:ident: $object:ident => $kind:ident, $word:literal, since $since:literal;
    )*) => {
        /// The structure of a database's user objects. Every list is sorted by `key`.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Snapshot {
            /// `server_version_num` of the server the snapshot was taken on (e.g. 150010).
            pub server_version_num: u32,
            /// What the snapshot covers: [`COVERAGE`] for one taken now; 0 for one an older
            /// sluice wrote, before grants, policies, comments, roles, rules, publications,
            /// event triggers and extended statistics were read (compare it with
            /// [`Snapshot::covered_as`]).
            #[serde(default)]
            pub coverage: u32,
            $($(#[$meta])* pub $field: Vec<$object>,)*
        }

        /// The kinds of object a snapshot holds, in snapshot order.
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(rename_all = "snake_case")]
        pub enum ObjectKind {
            $($kind,)*
        }

        impl ObjectKind {
            /// Every kind, in snapshot order.
            pub const ALL: &'static [ObjectKind] = &[$(ObjectKind::$kind,)*];

            /// The kind in words, as reports print it.
            pub fn word(self) -> &'static str {
                match self {
                    $(ObjectKind::$kind => $word,)*
                }
            }

            /// The name of the snapshot's list of this kind (its field in the JSON).
            pub fn field(self) -> &'static str {
                match self {
                    $(ObjectKind::$kind => stringify!($field),)*
                }
            }

            /// The snapshot coverage that first read this kind.
            pub fn since(self) -> u32 {
                match self {
                    $(ObjectKind::$kind => $since,)*
                }
            }
        }

        $(impl Keyed for $object {
            fn key(&self) -> &str {
                &self.key
            }
        })*

        impl Snapshot {
            /// How many objects the snapshot holds, all kinds together.
            pub fn object_count(&self) -> usize {
                0 $(+ self.$field.len())*
            }

            /// Adds the objects of `other` (another share of the same snapshot).
            pub(super) fn absorb(&mut self, other: Snapshot) {
                $(self.$field.extend(other.$field);)*
            }

            /// Sorts every list by key.
            fn sort_each(&mut self) {
                $(sort_by_key(&mut self.$field);)*
            }

            /// Empties the lists of the kinds a snapshot of `coverage` did not read.
            pub(super) fn clear_kinds_newer_than(&mut self, coverage: u32) {
                $(if ObjectKind::$kind.since() > coverage {
                    self.$field.clear();
                })*
            }

            /// The diff of every kind's list, in snapshot order.
            pub(super) fn diff_each(
                pre: &Snapshot,
                post: &Snapshot,
                out: &mut SchemaDiff,
            ) -> Result<(), DuplicateKey> {
                $(keyed_lists(ObjectKind::$kind, &pre.$field, &post.$field, out)?;)*
                Ok(())
            }
        }
    };
}

catalog_kinds! {
    extensions: Extension => Extension, "extension", since 0;
    schemas: Schema => Schema, "schema", since 0;
    types: Type => Type, "type", since 0;
    tables: Table => Table, "table", since 0;
    columns: Column => Column, "column", since 0;
    sequences: Sequence => Sequence, "sequence", since 0;
    indexes: Index => Index, "index", since 0;
    constraints: Constraint => Constraint, "constraint", since 0;
    triggers: Trigger => Trigger, "trigger", since 0;
    functions: Function => Function, "function", since 0;
    views: View => View, "view", since 0;
    /// Row-level security policies.
    #[serde(default)]
    policies: Policy => Policy, "policy", since 1;
    /// `ALTER DEFAULT PRIVILEGES`: what objects a role creates will grant.
    #[serde(default)]
    default_privileges: DefaultPrivileges => DefaultPrivileges, "default privileges", since 1;
    /// `COMMENT ON` of every object kind the snapshot has.
    #[serde(default)]
    comments: Comment => Comment, "comment", since 1;
    /// The roles that own, are granted or grant anything above (or that a policy or default
    /// privileges name), with their attributes and memberships.
    #[serde(default)]
    roles: Role => Role, "role", since 1;
    /// Rewrite rules other than a view's own (`CREATE RULE`).
    #[serde(default)]
    rules: Rule => Rule, "rule", since 1;
    /// Logical replication publications.
    #[serde(default)]
    publications: Publication => Publication, "publication", since 1;
    /// Event triggers (database-wide).
    #[serde(default)]
    event_triggers: EventTrigger => EventTrigger, "event trigger", since 1;
    /// Extended statistics objects (`CREATE STATISTICS`).
    #[serde(default)]
    statistics: Statistics => Statistics, "statistics", since 1;
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

impl Snapshot {
    /// Sorts every list by key (byte order, independent of the server's collation); the
    /// columns, the longest list, on a thread of their own.
    pub(super) fn sort(&mut self) {
        let mut columns = std::mem::take(&mut self.columns);
        std::thread::scope(|scope| {
            scope.spawn(|| sort_by_key(&mut columns));
            self.sort_each();
        });
        self.columns = columns;
    }
}

/// Sorts `list` by key, moving each object once: the comparisons sort positions, not the
/// objects, which are large. The sort is a merge of runs, so a list that is mostly in order
/// already (objects taken over from an earlier snapshot) costs little more than a pass.
fn sort_by_key<T: Keyed>(list: &mut Vec<T>) {
    let mut order: Vec<usize> = (0..list.len()).collect();
    order.sort_by(|&a, &b| list[a].key().cmp(list[b].key()));
    let mut slots: Vec<Option<T>> = std::mem::take(list).into_iter().map(Some).collect();
    list.extend(order.into_iter().filter_map(|at| slots[at].take()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_field_and_word() {
        let fields: Vec<String> = match serde_json::to_value(Snapshot::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            other => panic!("a snapshot serializes to an object: {other:?}"),
        };
        let mut expected = vec!["server_version_num", "coverage"];
        expected.extend(ObjectKind::ALL.iter().map(|k| k.field()));
        let (mut fields, mut expected) = (fields, expected);
        fields.sort_unstable();
        expected.sort_unstable();
        assert_eq!(fields, expected);
        let mut words: Vec<&str> = ObjectKind::ALL.iter().map(|k| k.word()).collect();
        words.sort_unstable();
        words.dedup();
        assert_eq!(words.len(), ObjectKind::ALL.len(), "a word used twice");
    }

    #[test]
    fn a_snapshot_an_older_sluice_wrote_reads_without_the_newer_kinds() {
        let mut old = serde_json::to_value(Snapshot::default()).unwrap();
        let map = old.as_object_mut().unwrap();
        map.remove("coverage");
        for kind in ObjectKind::ALL.iter().filter(|k| k.since() > 0) {
            map.remove(kind.field());
        }
        let read: Snapshot = serde_json::from_value(old).expect("an old snapshot reads");
        assert_eq!(read.coverage, 0);
        // a list of the first coverage may not be left out
        for kind in ObjectKind::ALL.iter().filter(|k| k.since() == 0) {
            let mut broken = serde_json::to_value(Snapshot::default()).unwrap();
            broken.as_object_mut().unwrap().remove(kind.field());
            assert!(
                serde_json::from_value::<Snapshot>(broken).is_err(),
                "{kind} may be left out"
            );
        }
    }
}
