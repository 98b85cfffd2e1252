//! The scope proof: the operations derived from the SQL compared with `[scope].operations` as
//! multisets. An operation in the SQL but not declared is "out of scope"; one declared but not in
//! the SQL is "missing".

use super::Operation;
use serde::Serialize;
use std::collections::BTreeMap;

/// The outcome of comparing derived with declared operations.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScopeComparison {
    /// Indices into the derived list of operations that no declaration covers.
    pub out_of_scope: Vec<usize>,
    /// Indices into the declared list that no derived operation uses.
    pub missing: Vec<usize>,
}

#[cfg(test)]
impl ScopeComparison {
    pub fn holds(&self) -> bool {
        self.out_of_scope.is_empty() && self.missing.is_empty()
    }
}

/// Compares, keeping order: the first derived occurrence matches the first declared one.
pub fn compare(derived: &[Operation], declared: &[Operation]) -> ScopeComparison {
    let mut available: BTreeMap<&Operation, Vec<usize>> = BTreeMap::new();
    for (i, op) in declared.iter().enumerate() {
        available.entry(op).or_default().push(i);
    }
    for list in available.values_mut() {
        list.reverse();
    }
    let mut result = ScopeComparison::default();
    for (i, op) in derived.iter().enumerate() {
        match available.get_mut(op).and_then(Vec::pop) {
            Some(_) => {}
            None => result.out_of_scope.push(i),
        }
    }
    let mut missing: Vec<usize> = available.into_values().flatten().collect();
    missing.sort_unstable();
    result.missing = missing;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(list: &[&str]) -> Vec<Operation> {
        list.iter().map(|s| Operation::parse(s).unwrap()).collect()
    }

    #[test]
    fn multiset_semantics() {
        let derived = ops(&["update public.t", "update public.t", "drop_table public.x"]);
        let declared = ops(&["update public.t", "create_index public.i"]);
        let cmp = compare(&derived, &declared);
        assert_eq!(cmp.out_of_scope, vec![1, 2]);
        assert_eq!(cmp.missing, vec![1]);
        assert!(!cmp.holds());
        assert!(compare(&derived, &derived).holds());
    }
}
