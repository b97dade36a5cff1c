//! Batched loading: one query per relation level, whatever the number of parents. Keys are
//! bound as one array parameter (`IN (SELECT unnest($1))` / `json_each`) through the ordinary
//! query path, so loading works on every store and passes through the execution point.

use super::group::{Plan, distinct};
use super::{Cardinality, LinksOf, Relation};
use crate::db::Executor;
use crate::error::{Error, Result};
use crate::model::{BoxFuture, Model};
use crate::query::{Node, OrderTerm, Query};
use crate::schema::{RelationKind, RelationSchema};
use crate::soft_delete::Rows;
use crate::value::Value;

/// Something that loads a relation into a batch of parent rows: a [`Relation`] handle (with
/// its nested relations). Object-safe, so a query can hold several.
pub trait Loader<M>: Send + Sync {
    /// Loads the relation of every row in `parents` with as few queries as the relation needs
    /// (one per level; N:M reads its join rows first).
    fn load<'a>(&'a self, parents: &'a mut [M], db: &'a mut dyn Executor) -> BoxFuture<'a, Result<()>>;
}

/// Whether the rows a batch load reads need an order: only when it shows, i.e. when several
/// rows end up in one parent's `Vec` (has_many, the join rows of N:M) or one of several is
/// kept (has_one). A `belongs_to` target or an N:M target looked up by key is matched by key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    ByKey,
    Unordered,
}

/// What a batch load reads: the rows of the target whose field `field` is one of `keys`.
struct Fetch {
    /// The target's field the keys are matched against.
    field: usize,
    /// The distinct keys.
    keys: Vec<Value>,
    /// Whether the rows need an order.
    order: Order,
    /// Of a soft-delete model: live rows, or all.
    rows: Rows,
}

/// The query for the rows of `T` that `fetch` describes, ordered by primary key if
/// `fetch.order` says so; and whether the caller sorts the rows ([`sort_by_key`]) instead.
///
/// A single integer key is sorted here rather than by the database: the same order, for less
/// than the server's sort of thousands of rows (and a plan free to return rows as its join
/// produces them). Other keys (text, composite) keep `ORDER BY`, whose collation decides.
///
/// On an executor scoped to a tenant ([`Executor::tenant`]) a distributed `T` is read with
/// the tenant's filter too: a load through a column other than `T`'s distribution column
/// (not colocated) is then single-shard and returns only the tenant's rows.
///
/// The query has no relations to load (`with`): the caller reads it with
/// [`Query::fetch_all`], as [`Query::all`] reads its rows. (Not an `async fn` itself: one
/// coroutine fewer per related model.)
fn fetch_query<T: Model>(db: &dyn Executor, fetch: Fetch) -> (Query<T>, bool) {
    let Fetch { field, keys, order, rows } = fetch;
    let mut query = Query::<T>::new();
    query.rows = rows;
    query.filter = Some(Node::In { field, values: keys, negated: false });
    let mut query = crate::db::scope_for(db, query);
    let sort_here = order == Order::ByKey && integer_key(T::SCHEMA);
    if order == Order::ByKey && !sort_here {
        query.order = primary_key_order(T::SCHEMA);
    }
    (query, sort_here)
}

/// Sorts rows of a model with a single integer primary key by that key.
fn sort_by_key<T: Model>(rows: &mut [T]) {
    let mut keys = Vec::with_capacity(rows.len());
    for row in rows.iter() {
        keys.push(integer_value(&row.primary_key_value()));
    }
    // The sort itself is not generic: only the swaps it works out touch the rows.
    for (a, b) in sorting_swaps(&keys) {
        rows.swap(a, b);
    }
}

/// `ORDER BY` the primary key, ascending.
fn primary_key_order(schema: &crate::schema::ModelSchema) -> Vec<OrderTerm> {
    schema.primary_key.iter().map(|&f| OrderTerm { field: f, descending: false, nulls: None }).collect()
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

/// What a batch load of one relation reads, worked out from the parents' keys (not generic:
/// the generic loader only decodes the rows and puts them in place).
struct Children {
    /// The related rows to read; `None` when there are none (no parent has a key, no links).
    fetch: Option<Fetch>,
    /// For N:M: the join rows' `(parent key, related key)` pairs, in key order.
    links: Vec<(Value, Value)>,
}

/// The [`Children`] of a load of relation `schema` (`relation` names it in errors) for parents
/// whose keys are `parent_keys`; for N:M it reads the join rows with `links_of`.
///
/// Boxed so that its body is compiled in this crate once, not in every crate that loads
/// relations (see `exec::fetch_rows`).
fn children<'a>(
    relation: &'a (dyn std::fmt::Debug + Sync),
    schema: &'static RelationSchema,
    links_of: Option<LinksOf>,
    parent_keys: &'a [Value],
    db: &'a mut dyn Executor,
) -> BoxFuture<'a, Result<Children>> {
    Box::pin(async move {
        let target = (schema.target)();
        let keys = distinct(parent_keys.iter().cloned());
        if keys.is_empty() {
            return Ok(Children { fetch: None, links: Vec::new() });
        }
        if schema.kind == RelationKind::ManyToMany {
            let links_of = links_of.ok_or_else(|| Error::Config(format!("{relation:?}: no join metadata")))?;
            let links = links_of(&mut *db, keys).await?;
            let rights = distinct(links.iter().map(|(_, r)| r.clone()));
            let fetch = (!rights.is_empty()).then(|| Fetch {
                field: target.primary_key[0],
                keys: rights,
                order: Order::Unordered,
                rows: Rows::Live,
            });
            return Ok(Children { fetch, links });
        }
        let field = match schema.remote_field {
            Some(name) => target.field_position(name)?,
            None => target.primary_key[0],
        };
        let belongs_to = schema.kind == RelationKind::BelongsTo;
        let fetch = Fetch {
            field,
            keys,
            order: if belongs_to { Order::Unordered } else { Order::ByKey },
            // The row a foreign key points at is loaded even when soft-deleted (the
            // relation's type promises one); rows pointing here are live ones only.
            rows: if belongs_to { Rows::WithDeleted } else { Rows::Live },
        };
        Ok(Children { fetch: Some(fetch), links: Vec::new() })
    })
}

impl<M: Model, T: Model + Clone, K: Cardinality> Loader<M> for Relation<M, T, K> {
    fn load<'a>(&'a self, parents: &'a mut [M], db: &'a mut dyn Executor) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut parent_keys = Vec::with_capacity(parents.len());
            for parent in parents.iter() {
                parent_keys.push((self.parent_key)(parent));
            }
            let Children { fetch, links } = children(self, self.schema(), self.links, &parent_keys, &mut *db).await?;
            let mut rows = Vec::new();
            if let Some(fetch) = fetch {
                let (query, sort_here) = fetch_query::<T>(&*db, fetch);
                rows = query.fetch_all(&mut *db).await?;
                if sort_here {
                    sort_by_key(&mut rows);
                }
            }
            for nested in &self.nested {
                nested.load(&mut rows, &mut *db).await?;
            }
            self.attach(parents, &parent_keys, rows, &links)
        })
    }
}

impl<M: Model, T: Model + Clone, K: Cardinality> Relation<M, T, K> {
    /// Puts each parent's related rows into its relation field (`parent_keys`: the parents'
    /// keys, in order). Which rows go where is worked out by [`Plan`] on keys alone; only
    /// the moves are generic.
    fn attach(&self, parents: &mut [M], parent_keys: &[Value], rows: Vec<T>, links: &[(Value, Value)]) -> Result<()> {
        let mut row_keys = Vec::with_capacity(rows.len());
        for row in &rows {
            row_keys.push((self.child_key)(row));
        }
        let plan = Plan::new(self.schema().kind, parent_keys, &row_keys, links);
        let mut slots: Vec<Option<T>> = Vec::with_capacity(rows.len());
        for row in rows {
            slots.push(Some(row));
        }
        // Indexes and plain pushes rather than iterator adapters: each adapter would be one
        // more function compiled for every relation.
        #[allow(clippy::needless_range_loop)]
        for i in 0..parents.len() {
            let picks = plan.parent(i);
            let mut mine = Vec::with_capacity(picks.len());
            for pick in picks {
                let slot = &mut slots[pick.child];
                if let Some(row) = if pick.last { slot.take() } else { slot.clone() } {
                    mine.push(row);
                }
            }
            let value = K::assemble(mine).map_err(|why| Error::Config(format!("{self:?}: {why}")))?;
            *(self.slot)(&mut parents[i]) = super::Rel::loaded(value);
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
        let fetch = Fetch { field: l, keys, order: Order::ByKey, rows: Rows::Live };
        let (query, sort_here) = fetch_query::<J>(&*db, fetch);
        let mut rows = query.fetch_all(db).await?;
        if sort_here {
            sort_by_key(&mut rows);
        }
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
