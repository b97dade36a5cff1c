//! Which related rows each parent of a batch load receives, worked out on key values alone.
//!
//! A batch load ([`super::load`]) reads the related rows of many parents in one query, then
//! hands each parent its own. The matching (hashing keys, grouping, counting the parents that
//! share a row) does not depend on the models, so it lives here and is compiled once; the
//! generic `Relation::attach` only moves (or clones) rows into place by index, which keeps
//! the code every relation of every application instantiates small.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use crate::schema::RelationKind;
use crate::value::Value;

/// A hashable form of a key value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Key {
    Int(i64),
    Text(String),
    Other(String),
}

impl Key {
    /// The key of `v`; `None` for NULL, which matches nothing.
    pub(super) fn of(v: &Value) -> Option<Key> {
        Some(match v {
            Value::Null => return None,
            Value::I16(n) => Key::Int(i64::from(*n)),
            Value::I32(n) => Key::Int(i64::from(*n)),
            Value::I64(n) => Key::Int(*n),
            Value::Text(s) => Key::Text(s.clone()),
            other => Key::Other(format!("{other:?}")),
        })
    }
}

/// The distinct non-null values among `values`, in first-seen order.
pub(super) fn distinct(values: impl Iterator<Item = Value>) -> Vec<Value> {
    let mut seen = HashSet::new();
    values.filter(|v| Key::of(v).is_some_and(|k| seen.insert(k))).collect()
}

/// One related row handed to a parent: the row's position in the loaded rows, and whether
/// this is the row's last use (then it is moved there, otherwise cloned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pick {
    /// Position in the loaded rows.
    pub(super) child: usize,
    /// No later parent receives this row.
    pub(super) last: bool,
}

/// The related rows of every parent of a batch, as positions in the loaded rows.
#[derive(Debug)]
pub(super) struct Plan {
    /// Every parent's picks, one parent after the other.
    picks: Vec<Pick>,
    /// Where each parent's picks end in `picks`.
    ends: Vec<usize>,
}

impl Plan {
    /// Matches the loaded rows (whose keys are `children`) to the parents (whose keys are
    /// `parents`), the way a relation of `kind` does:
    ///
    /// - a parent receives its rows in the order they were loaded, or for N:M in the order of
    ///   the join rows `links` (`(parent key, row key)` pairs);
    /// - a row reached by several parents (`belongs_to`, N:M) goes to each of them;
    /// - a `has_many` / `has_one` row goes to the first parent with its key only;
    /// - a NULL key matches nothing; of several loaded N:M rows with one key, the last counts.
    pub(super) fn new(kind: RelationKind, parents: &[Value], children: &[Value], links: &[(Value, Value)]) -> Plan {
        if matches!(kind, RelationKind::HasMany | RelationKind::HasOne)
            && let Some(plan) = Plan::from_runs(parents, children)
        {
            return plan;
        }
        let mut groups: HashMap<Key, Vec<usize>> = HashMap::new();
        if kind == RelationKind::ManyToMany {
            let mut by_key: HashMap<Key, usize> = HashMap::new();
            for (i, child) in children.iter().enumerate() {
                if let Some(k) = Key::of(child) {
                    by_key.insert(k, i);
                }
            }
            for (left, right) in links {
                if let (Some(l), Some(&r)) = (Key::of(left), Key::of(right).and_then(|r| by_key.get(&r))) {
                    groups.entry(l).or_default().push(r);
                }
            }
        } else {
            for (i, child) in children.iter().enumerate() {
                if let Some(k) = Key::of(child) {
                    groups.entry(k).or_default().push(i);
                }
            }
        }
        // Rows a belongs_to or N:M parent reaches can be shared with other parents: each
        // parent but the last with a key gets the group too.
        let shared = matches!(kind, RelationKind::BelongsTo | RelationKind::ManyToMany);
        let mut remaining: HashMap<Key, usize> = HashMap::new();
        if shared {
            for k in parents.iter().filter_map(Key::of) {
                *remaining.entry(k).or_default() += 1;
            }
        }
        let mut picks = Vec::new();
        let mut ends = Vec::with_capacity(parents.len());
        let pick = |child| Pick { child, last: false };
        for parent in parents {
            match Key::of(parent) {
                None => {}
                Some(k) if shared => match remaining.entry(k.clone()) {
                    Entry::Occupied(mut left) if *left.get() > 1 => {
                        *left.get_mut() -= 1;
                        picks.extend(groups.get(&k).into_iter().flatten().copied().map(pick));
                    }
                    _ => picks.extend(groups.remove(&k).into_iter().flatten().map(pick)),
                },
                Some(k) => picks.extend(groups.remove(&k).into_iter().flatten().map(pick)),
            }
            ends.push(picks.len());
        }
        let mut used = vec![false; children.len()];
        for p in picks.iter_mut().rev() {
            p.last = !used[p.child];
            used[p.child] = true;
        }
        Plan { picks, ends }
    }

    /// The plan of a `has_many` / `has_one` load whose rows arrived grouped by key, as the
    /// loader asks for them (ordered by the foreign key, by the database or after loading):
    /// each key's rows are one run, so a parent's rows are a range, found with one map entry
    /// per key instead of a list per key. `None` when a key's rows are not one run (rows
    /// loaded in another order): [`Plan::new`] then groups them one by one. Same result as
    /// that general path: rows in load order, all to the first parent with the key, NULL
    /// matching nothing, every row moved.
    fn from_runs(parents: &[Value], children: &[Value]) -> Option<Plan> {
        let mut runs: HashMap<Key, (usize, usize)> = HashMap::with_capacity(parents.len().min(children.len()));
        let mut i = 0;
        while i < children.len() {
            let Some(key) = Key::of(&children[i]) else {
                i += 1;
                continue;
            };
            // Equal values have equal keys; compared as values, a text key is not copied per
            // row. (Values that differ but share a key, an `I32` and an `I64` of one number,
            // start a second run of that key, and the general path takes over.)
            let mut end = i + 1;
            while end < children.len() && children[end] == children[i] {
                end += 1;
            }
            if runs.insert(key, (i, end)).is_some() {
                return None;
            }
            i = end;
        }
        let mut picks = Vec::with_capacity(children.len());
        let mut ends = Vec::with_capacity(parents.len());
        for parent in parents {
            if let Some((start, end)) = Key::of(parent).and_then(|k| runs.remove(&k)) {
                picks.extend((start..end).map(|child| Pick { child, last: true }));
            }
            ends.push(picks.len());
        }
        Some(Plan { picks, ends })
    }

    /// The picks of parent number `parent` (a plain method, not an iterator adapter: the
    /// generic caller would instantiate the adapter's code in its own crate).
    pub(super) fn parent(&self, parent: usize) -> &[Pick] {
        let start = if parent == 0 { 0 } else { self.ends[parent - 1] };
        &self.picks[start..self.ends[parent]]
    }
}

#[cfg(test)]
mod tests {
    use super::{Pick, Plan};
    use crate::schema::RelationKind;
    use crate::value::Value;

    /// Each parent's rows as `(row, moved)` pairs.
    fn rows(plan: &Plan) -> Vec<Vec<(usize, bool)>> {
        (0..plan.ends.len())
            .map(|i| plan.parent(i).iter().map(|&Pick { child, last }| (child, last)).collect())
            .collect()
    }

    fn ints(keys: &[Option<i64>]) -> Vec<Value> {
        keys.iter().map(|k| k.map_or(Value::Null, Value::I64)).collect()
    }

    /// has_many: rows in load order, all to the first parent with the key; NULL keys match
    /// nothing; every row is moved, never cloned.
    #[test]
    fn has_many_groups_rows_in_load_order_for_the_first_parent() {
        let parents = ints(&[Some(1), Some(2), None, Some(1), Some(3)]);
        let children = ints(&[Some(2), Some(1), None, Some(2), Some(1), Some(9)]);
        let plan = Plan::new(RelationKind::HasMany, &parents, &children, &[]);
        assert_eq!(rows(&plan), vec![vec![(1, true), (4, true)], vec![(0, true), (3, true)], vec![], vec![], vec![]]);
    }

    /// belongs_to: every parent with the key gets the row; the last of them takes it, the
    /// others get clones. Keys of different integer widths match.
    #[test]
    fn belongs_to_shares_a_row_and_moves_it_to_the_last_parent() {
        let parents = vec![Value::I32(7), Value::I64(8), Value::Null, Value::I16(7), Value::I64(7)];
        let children = ints(&[Some(8), Some(7)]);
        let plan = Plan::new(RelationKind::BelongsTo, &parents, &children, &[]);
        assert_eq!(rows(&plan), vec![vec![(1, false)], vec![(0, true)], vec![], vec![(1, false)], vec![(1, true)]]);
    }

    /// N:M: rows in join-row order, a row shared by parents and repeated by duplicate links;
    /// links to a row that was not loaded, or from a NULL key, are skipped.
    #[test]
    fn many_to_many_follows_the_links() {
        let parents = ints(&[Some(1), Some(2), Some(3)]);
        let children = vec![Value::Text("a".into()), Value::Text("b".into())];
        let link = |l: i64, r: &str| (Value::I64(l), Value::Text(r.into()));
        let links = vec![
            link(1, "b"),
            link(2, "a"),
            link(1, "a"),
            link(2, "zz"),
            (Value::Null, Value::Text("a".into())),
            link(2, "a"),
        ];
        let plan = Plan::new(RelationKind::ManyToMany, &parents, &children, &links);
        assert_eq!(rows(&plan), vec![vec![(1, true), (0, false)], vec![(0, false), (0, true)], vec![]]);
    }

    /// N:M: of two loaded rows with one key the last is used (and the first never is).
    #[test]
    fn many_to_many_uses_the_last_row_of_a_key() {
        let parents = ints(&[Some(1)]);
        let children = ints(&[Some(5), Some(5)]);
        let plan = Plan::new(RelationKind::ManyToMany, &parents, &children, &[(Value::I64(1), Value::I64(5))]);
        assert_eq!(rows(&plan), vec![vec![(1, true)]]);
    }

    /// The plan of rows that arrived grouped by key (the usual case, taken without a list per
    /// key) equals the general one, and rows that did not arrive grouped still get it: over
    /// random parents and children (NULLs, repeated parents, keys of other integer widths),
    /// both in key order and shuffled, for has_many and has_one.
    #[test]
    fn grouped_rows_get_the_same_plan_as_rows_in_any_order() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let key = |k: u64| match k {
            0 => Value::Null,
            k if k % 3 == 0 => Value::I32(k as i32),
            k => Value::I64(k as i64),
        };
        let mut grouped = 0;
        for round in 0..400 {
            let span = 1 + next(20);
            let parents: Vec<Value> = (0..next(30)).map(|_| key(next(span))).collect();
            let mut children: Vec<u64> = (0..next(60)).map(|_| next(span)).collect();
            if round % 2 == 0 {
                children.sort_unstable();
            }
            let children: Vec<Value> = children.into_iter().map(key).collect();
            for kind in [RelationKind::HasMany, RelationKind::HasOne] {
                let plan = Plan::new(kind, &parents, &children, &[]);
                let general = {
                    // The same rows followed by a key no parent has, in two runs: `new` must
                    // take the general path, and the parents' picks are the same.
                    let mut split = children.clone();
                    split.extend([Value::I64(1_000_000), Value::I64(2_000_000), Value::I64(1_000_000)]);
                    assert!(Plan::from_runs(&parents, &split).is_none());
                    Plan::new(kind, &parents, &split, &[])
                };
                assert_eq!(rows(&plan), rows(&general), "round {round}: {parents:?} / {children:?}");
                grouped += usize::from(Plan::from_runs(&parents, &children).is_some());
            }
        }
        assert!(grouped >= 400, "the grouped path ran for every sorted round: {grouped}");
        // One key written in two integer widths, next to each other: both rows reach the parent.
        let parents = vec![Value::I64(3)];
        let children = vec![Value::I32(3), Value::I64(3), Value::I16(3)];
        let plan = Plan::new(RelationKind::HasMany, &parents, &children, &[]);
        assert_eq!(rows(&plan), vec![vec![(0, true), (1, true), (2, true)]]);
    }

    /// has_one with the same parent twice: the first occurrence gets the row.
    #[test]
    fn has_one_gives_a_repeated_parent_its_row_once() {
        let parents = ints(&[Some(4), Some(4)]);
        let children = ints(&[Some(4)]);
        let plan = Plan::new(RelationKind::HasOne, &parents, &children, &[]);
        assert_eq!(rows(&plan), vec![vec![(0, true)], vec![]]);
    }
}
