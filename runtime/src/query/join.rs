//! The untyped side of joins along relations: columns reached through `belongs_to` / `has_one`
//! chains ([`JoinColumn`]) and aggregates over `has_many` / `many_to_many` relations
//! ([`RelatedAgg`]), as select items, group keys and orderings. The typed handles that build
//! them live in [`crate::relation`] (`Track::ALBUM.then(Album::TITLE)`,
//! `Playlist::TRACKS.count()`); the SQL writer lowers them to `LEFT JOIN`s and correlated
//! subqueries, the MongoDB lowering to `$lookup` stages.

use crate::query::calc::SortKey;
use crate::query::{AggFunc, Query};
use crate::schema::{ColumnType, ModelSchema};

/// A column of a model reached from the queried model through relations that hold at most
/// one row each: `hops` are relation positions, each in the schema reached by the previous
/// hop (the first in the queried model's), and `field` is a field position in the last
/// model reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JoinColumn {
    /// The relations followed, from the queried model.
    pub hops: Vec<usize>,
    /// The field of the model reached.
    pub field: usize,
}

impl JoinColumn {
    /// The schemas reached by each hop from `root`, in order.
    pub fn schemas(&self, root: &'static ModelSchema) -> Vec<&'static ModelSchema> {
        path_schemas(root, &self.hops)
    }

    /// The schema of the model the column belongs to.
    pub fn target(&self, root: &'static ModelSchema) -> &'static ModelSchema {
        self.schemas(root).last().copied().unwrap_or(root)
    }
}

/// The schemas reached by following `hops` from `root`.
pub(crate) fn path_schemas(root: &'static ModelSchema, hops: &[usize]) -> Vec<&'static ModelSchema> {
    let mut out = Vec::with_capacity(hops.len());
    let mut at = root;
    for &h in hops {
        at = (at.relations[h].target)();
        out.push(at);
    }
    out
}

/// An aggregate over the rows related to each row of the queried model through a `has_many`
/// or `many_to_many` relation: `COUNT` is 0 and the others are NULL when there are none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelatedAgg {
    /// The relation's position in the queried model's schema.
    pub relation: usize,
    /// The aggregate function.
    pub func: AggFunc,
    /// Its argument, a field of the related model (`None` for `COUNT(*)`).
    pub field: Option<usize>,
    /// The result's type.
    pub ty: ColumnType,
}

/// What a join ordering sorts on.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinTerm {
    /// A column reached through relations.
    Column(JoinColumn),
    /// An aggregate over related rows.
    Related(RelatedAgg),
}

/// An ordering on a [`JoinTerm`], placed after the field, aggregate and expression terms that
/// were added before it (their counts are recorded when it is added).
#[derive(Debug, Clone, PartialEq)]
pub struct JoinSort {
    /// What it sorts on.
    pub term: JoinTerm,
    /// Descending when true. NULL sorts as the smallest value on every store.
    pub descending: bool,
    /// Field terms added before it.
    pub fields: usize,
    /// Aggregate terms added before it.
    pub aggs: usize,
    /// Expression terms added before it.
    pub calcs: usize,
}

impl JoinSort {
    /// An ordering on `term`, after every term `query` already has.
    pub(crate) fn after<M>(query: &Query<M>, term: JoinTerm, descending: bool) -> Self {
        JoinSort {
            term,
            descending,
            fields: query.order.len(),
            aggs: query.agg_order.len(),
            calcs: query.calc_order.len(),
        }
    }
}

/// One term of a `select` query's full ordering.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FullKey<'a> {
    /// A field, aggregate or expression term (see [`sort_keys`](crate::query::sort_keys)).
    Base(SortKey<'a>),
    /// A join term.
    Join(&'a JoinSort),
}

/// The query's orderings of every kind, merged in the order they were added.
pub(crate) fn full_keys<'a>(q: &crate::query::Clauses<'a>) -> Vec<FullKey<'a>> {
    let base = crate::query::sort_keys(q);
    let mut out = Vec::with_capacity(base.len() + q.join_order.len());
    let mut seen = (0, 0, 0);
    let mut joins = q.join_order.iter().peekable();
    // Join sorts are recorded in the order they were added, so their counts never decrease:
    // each goes right after the prefix holding exactly the terms added before it.
    for key in base {
        while let Some(j) = joins.next_if(|j| (j.fields, j.aggs, j.calcs) == seen) {
            out.push(FullKey::Join(j));
        }
        match key {
            SortKey::Field(_) => seen.0 += 1,
            SortKey::Agg(..) => seen.1 += 1,
            SortKey::Calc(..) => seen.2 += 1,
        }
        out.push(FullKey::Base(key));
    }
    out.extend(joins.map(FullKey::Join));
    out
}

/// Whether a projection groups rows: it has group keys, a `having`, or aggregates among its
/// items or orderings.
pub(crate) fn is_grouped<M>(q: &Query<M>, items: &[crate::query::SelectItem]) -> bool {
    use crate::query::SelectItem;
    !q.group_by.is_empty()
        || !q.group_calc.is_empty()
        || !q.group_join.is_empty()
        || q.having.is_some()
        || !q.agg_order.is_empty()
        || q.calc_order.iter().any(|c| c.node.has_aggregate())
        || items.iter().any(|i| match i {
            SelectItem::Agg { .. } => true,
            SelectItem::Calc(node) => node.has_aggregate(),
            SelectItem::Field(_) | SelectItem::Joined(_) | SelectItem::Related(_) => false,
        })
}

/// The rules every store applies to joins in a grouped projection: a joined column must be
/// one of the group keys, and a relation aggregate (a value per row) cannot be used at all.
pub(crate) fn check_grouping<M>(
    schema: &ModelSchema,
    q: &Query<M>,
    items: &[crate::query::SelectItem],
) -> Result<(), crate::Error> {
    use crate::query::SelectItem;
    if !is_grouped(q, items) {
        return Ok(());
    }
    let terms = items
        .iter()
        .filter_map(|i| match i {
            SelectItem::Joined(c) => Some(JoinTerm::Column(c.clone())),
            SelectItem::Related(a) => Some(JoinTerm::Related(*a)),
            _ => None,
        })
        .chain(q.join_order.iter().map(|s| s.term.clone()));
    for term in terms {
        match term {
            JoinTerm::Column(c) if !q.group_join.contains(&c) => {
                return Err(crate::Error::Config(format!(
                    "{}: a related model's column in a grouped `select` must also be a group key \
                     (`.group_by(..)` the same path)",
                    schema.name
                )));
            }
            JoinTerm::Related(_) => {
                return Err(crate::Error::Config(format!(
                    "{}: a relation aggregate (`count()`, `sum(..)` over a relation) is one value per row \
                     and cannot be combined with `group_by` or other aggregates; select it without grouping",
                    schema.name
                )));
            }
            JoinTerm::Column(_) => {}
        }
    }
    Ok(())
}

/// A related model's column as an operand of expressions over `M`: compare with it
/// (`Track::ALBUM.then(Album::TITLE).calc().eq("Blue")`), compute with it, in a filter, a
/// projection or `having`. Through a missing link it is NULL, so a comparison with it is
/// unknown (the row is not selected, negated or not), as for a NULL field.
impl<M, V: crate::value::FieldType> crate::query::Operand<M> for crate::relation::JoinField<M, V> {
    type Value = V;
    fn into_calc(self) -> crate::query::CalcNode {
        crate::query::CalcNode::Joined { column: self.column().clone(), ty: V::COLUMN }
    }
}

impl<M, V: crate::value::FieldType> crate::relation::JoinField<M, V> {
    /// The column as an expression over `M`, to compare (`.eq(..)`, `.gt(..)`, …) or compute
    /// with (PostgreSQL and SQLite: a correlated subquery along the links; MongoDB:
    /// `Error::Unsupported`, use a relation filter such as `Track::ALBUM.matches(..)`).
    pub fn calc(self) -> crate::query::Calc<M, V> {
        crate::query::Calc::from_node(crate::query::Operand::<M>::into_calc(self))
    }
}
