//! Batched loading: one query per relation level, whatever the number of parents. Keys are
//! bound as one array parameter (`IN (SELECT unnest($1))` / `json_each`) through the ordinary
//! query path, so loading works on every store and passes through the execution point.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::{Cardinality, Relation};
use crate::db::Executor;
use crate::error::{Error, Result};
use crate::model::{BoxFuture, Model};
use crate::query::{Node, OrderTerm, Query};
use crate::schema::RelationKind;
use crate::value::Value;

/// Something that loads a relation into a batch of parent rows: a [`Relation`] handle (with
/// its nested relations). Object-safe, so a query can hold several.
pub trait Loader<M>: Send + Sync {
    /// Loads the relation of every row in `parents` with as few queries as the relation needs
    /// (one per level; N:M reads its join rows first).
    fn load<'a>(&'a self, parents: &'a mut [M], db: &'a mut dyn Executor) -> BoxFuture<'a, Result<()>>;
}

/// A hashable form of a key value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Int(i64),
    Text(String),
    Other(String),
}

impl Key {
    fn of(v: &Value) -> Option<Key> {
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

/// Whether the rows a batch load reads need an order: only when it shows, i.e. when several
/// rows end up in one parent's `Vec` (has_many, the join rows of N:M) or one of several is
/// kept (has_one). A `belongs_to` target or an N:M target looked up by key is matched by key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    ByKey,
    Unordered,
}

/// Rows of `T` whose field `field` is one of `keys`, ordered by primary key if `order` says so.
///
/// A single integer key is sorted here rather than by the database: the same order, for less
/// than the server's sort of thousands of rows (and a plan free to return rows as its join
/// produces them). Other keys (text, composite) keep `ORDER BY`, whose collation decides.
async fn rows_where_in<T: Model>(
    db: &mut dyn Executor,
    field: usize,
    keys: Vec<Value>,
    order: Order,
) -> Result<Vec<T>> {
    rows_where_in_mode(db, field, keys, order, crate::soft_delete::Rows::Live).await
}

/// [`rows_where_in`] reading the rows `rows` says (of a soft-delete model: live ones, or all).
///
/// On an executor scoped to a tenant ([`Executor::tenant`]) a distributed `T` is read with
/// the tenant's filter too: a load through a column other than `T`'s distribution column
/// (not colocated) is then single-shard and returns only the tenant's rows.
async fn rows_where_in_mode<T: Model>(
    db: &mut dyn Executor,
    field: usize,
    keys: Vec<Value>,
    order: Order,
    rows: crate::soft_delete::Rows,
) -> Result<Vec<T>> {
    let mut query = Query::<T>::new();
    query.rows = rows;
    query.filter = Some(Node::In { field, values: keys, negated: false });
    let mut query = crate::db::scope_for(&*db, query);
    let sort_here = order == Order::ByKey && integer_key(T::SCHEMA);
    if order == Order::ByKey && !sort_here {
        query.order =
            T::SCHEMA.primary_key.iter().map(|&f| OrderTerm { field: f, descending: false, nulls: None }).collect();
    }
    let mut rows = query.all(db).await?;
    if sort_here {
        let keys: Vec<i64> = rows.iter().map(|row| integer_value(&row.primary_key_value())).collect();
        // The sort itself is not generic: only the swaps it works out touch the rows.
        for (a, b) in sorting_swaps(&keys) {
            rows.swap(a, b);
        }
    }
    Ok(rows)
}

/// An integer key as an `i64` (anything else sorts first).
fn integer_value(value: &Value) -> i64 {
    match *value {
        Value::I16(n) => i64::from(n),
        Value::I32(n) => i64::from(n),
        Value::I64(n) => n,
        _ => i64::MIN,
    }
}

/// The swaps that, applied in order to a list whose items have `keys`, sort it by key (ties
/// in any order).
fn sorting_swaps(keys: &[i64]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_unstable_by_key(|&i| keys[i]);
    // `at[item]` is where the item with original index `item` is now; `item[pos]` the inverse.
    let mut at: Vec<usize> = (0..keys.len()).collect();
    let mut item: Vec<usize> = at.clone();
    let mut swaps = Vec::new();
    for (pos, &wanted) in order.iter().enumerate() {
        let from = at[wanted];
        if from != pos {
            swaps.push((pos, from));
            let displaced = item[pos];
            item.swap(pos, from);
            at[wanted] = pos;
            at[displaced] = from;
        }
    }
    swaps
}

/// Whether the model's primary key is one integer field.
fn integer_key(schema: &crate::schema::ModelSchema) -> bool {
    use crate::schema::Scalar;
    match schema.primary_key {
        [field] => {
            let ty = schema.fields[*field].ty;
            !ty.array && matches!(ty.scalar, Scalar::I16 | Scalar::I32 | Scalar::I64)
        }
        _ => false,
    }
}

/// The distinct non-null values of `key` over `rows`, in first-seen order.
fn distinct_keys<R>(rows: &[R], key: impl Fn(&R) -> Value) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    rows.iter().map(key).filter(|v| Key::of(v).is_some_and(|k| seen.insert(k))).collect()
}

impl<M: Model, T: Model + Clone, K: Cardinality> Loader<M> for Relation<M, T, K> {
    fn load<'a>(&'a self, parents: &'a mut [M], db: &'a mut dyn Executor) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let schema = self.schema();
            let target = (schema.target)();
            let keys = distinct_keys(parents, self.parent_key);
            let (mut children, links) = match (schema.kind, keys.is_empty()) {
                (_, true) => (Vec::new(), Vec::new()),
                (RelationKind::ManyToMany, false) => {
                    let links_of = self.links.ok_or_else(|| Error::Config(format!("{self:?}: no join metadata")))?;
                    let links = links_of(&mut *db, keys).await?;
                    let rights = distinct_keys(&links, |(_, r)| r.clone());
                    let key_field = target.primary_key[0];
                    let rows = if rights.is_empty() {
                        Vec::new()
                    } else {
                        rows_where_in::<T>(&mut *db, key_field, rights, Order::Unordered).await?
                    };
                    (rows, links)
                }
                (kind, false) => {
                    let field = match schema.remote_field {
                        Some(name) => target.field_position(name)?,
                        None => target.primary_key[0],
                    };
                    let order = if kind == RelationKind::BelongsTo { Order::Unordered } else { Order::ByKey };
                    // The row a foreign key points at is loaded even when soft-deleted (the
                    // relation's type promises one); rows pointing here are live ones only.
                    let rows = if kind == RelationKind::BelongsTo {
                        crate::soft_delete::Rows::WithDeleted
                    } else {
                        crate::soft_delete::Rows::Live
                    };
                    (rows_where_in_mode::<T>(&mut *db, field, keys, order, rows).await?, Vec::new())
                }
            };
            for nested in &self.nested {
                nested.load(&mut children, &mut *db).await?;
            }
            self.attach(parents, children, links)
        })
    }
}

impl<M: Model, T: Model + Clone, K: Cardinality> Relation<M, T, K> {
    /// Puts each parent's related rows into its relation field.
    fn attach(&self, parents: &mut [M], children: Vec<T>, links: Vec<(Value, Value)>) -> Result<()> {
        let kind = self.schema().kind;
        let mut groups: HashMap<Key, Vec<T>> = HashMap::new();
        if kind == RelationKind::ManyToMany {
            let by_key: HashMap<Key, T> =
                children.into_iter().filter_map(|c| Key::of(&(self.child_key)(&c)).map(|k| (k, c))).collect();
            for (left, right) in links {
                if let (Some(l), Some(r)) = (Key::of(&left), Key::of(&right).and_then(|r| by_key.get(&r))) {
                    groups.entry(l).or_default().push(r.clone());
                }
            }
        } else {
            for child in children {
                if let Some(k) = Key::of(&(self.child_key)(&child)) {
                    groups.entry(k).or_default().push(child);
                }
            }
        }
        // A belongs_to target can be shared by several parents: clone for all but the last.
        let shared = matches!(kind, RelationKind::BelongsTo | RelationKind::ManyToMany);
        let mut remaining: HashMap<Key, usize> = HashMap::new();
        if shared {
            for p in parents.iter() {
                if let Some(k) = Key::of(&(self.parent_key)(p)) {
                    *remaining.entry(k).or_default() += 1;
                }
            }
        }
        for parent in parents.iter_mut() {
            let rows = match Key::of(&(self.parent_key)(parent)) {
                None => Vec::new(),
                Some(k) if shared => match remaining.entry(k.clone()) {
                    Entry::Occupied(mut left) if *left.get() > 1 => {
                        *left.get_mut() -= 1;
                        groups.get(&k).cloned().unwrap_or_default()
                    }
                    _ => groups.remove(&k).unwrap_or_default(),
                },
                Some(k) => groups.remove(&k).unwrap_or_default(),
            };
            let value = K::assemble(rows).map_err(|why| Error::Config(format!("{self:?}: {why}")))?;
            *(self.slot)(parent) = super::Rel::loaded(value);
        }
        Ok(())
    }
}

/// The `(left, right)` key pairs of join model `J` whose field `left` is one of `keys`: how an
/// N:M relation finds its links (called by generated code).
pub fn load_links<'a, J: Model>(
    db: &'a mut dyn Executor,
    left: &'static str,
    right: &'static str,
    keys: Vec<Value>,
) -> BoxFuture<'a, Result<Vec<(Value, Value)>>> {
    Box::pin(async move {
        let (l, r) = (J::SCHEMA.field_position(left)?, J::SCHEMA.field_position(right)?);
        let rows = rows_where_in::<J>(db, l, keys, Order::ByKey).await?;
        let mut pairs = Vec::with_capacity(rows.len());
        for row in rows {
            let mut values = row.to_values()?;
            let right_value = std::mem::replace(&mut values[r], Value::Null);
            pairs.push((std::mem::replace(&mut values[l], Value::Null), right_value));
        }
        Ok(pairs)
    })
}

/// Runs every loader of a query on the rows it returned.
pub(crate) async fn load_all<M>(
    rows: &mut [M],
    loaders: &[std::sync::Arc<dyn Loader<M>>],
    db: &mut dyn Executor,
) -> Result<()> {
    for loader in loaders {
        loader.load(rows, &mut *db).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::sorting_swaps;

    /// The swaps sort every list (duplicates, sorted, reversed, random) and move items, never
    /// copy them: the result is a permutation of the input.
    #[test]
    fn sorting_swaps_sort_and_permute() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut lists: Vec<Vec<i64>> = vec![vec![], vec![5], (0..50).collect(), (0..50).rev().collect(), vec![3; 9]];
        for len in 0..300 {
            lists.push((0..len).map(|_| (next() % 17) as i64 - 8).collect());
            lists.push((0..len).map(|_| next() as i64).collect());
        }
        for keys in lists {
            let mut items: Vec<(i64, usize)> = keys.iter().copied().zip(0..).collect();
            for (a, b) in sorting_swaps(&keys) {
                items.swap(a, b);
            }
            assert!(items.windows(2).all(|w| w[0].0 <= w[1].0), "not sorted: {keys:?} -> {items:?}");
            let mut seen: Vec<usize> = items.iter().map(|&(_, i)| i).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..keys.len()).collect::<Vec<_>>(), "not a permutation of {keys:?}");
            assert!(items.iter().all(|&(k, i)| keys[i] == k), "an item lost its key: {keys:?}");
        }
    }
}
