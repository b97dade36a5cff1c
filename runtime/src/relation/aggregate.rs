//! Aggregates over a `has_many` / `many_to_many` relation, one value per row of the queried
//! model: `Playlist::TRACKS.count()`, `Customer::INVOICES.sum(Invoice::TOTAL)`. A row without
//! related rows gets a count of 0 and a NULL (`None`) sum, average, minimum or maximum.
//! Selected like a field, ordered on after `select` (top-N), lowered to a correlated
//! subquery on SQL and a `$lookup` on MongoDB.

use std::marker::PhantomData;

use rust_decimal::Decimal;

use crate::error::{Error, ValueError};
use crate::model::{Field, Model};
use crate::query::{AggFunc, Columns, JoinTerm, Ordered, RelatedAgg, SelectItem, Selection, Summable};
use crate::relation::path::{JoinOrder, ToMany};
use crate::relation::{Cardinality, Relation};
use crate::schema::{ColumnType, Scalar};
use crate::value::{FieldType, Value};

/// An aggregate over the rows related to each row of `M`, whose value is a `T`: select it,
/// or order on it after `select` with `.desc()` / `.asc()`.
pub struct RelAgg<M, T> {
    agg: RelatedAgg,
    _marker: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Clone for RelAgg<M, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M, T> Copy for RelAgg<M, T> {}

impl<M, T> std::fmt::Debug for RelAgg<M, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.agg.fmt(f)
    }
}

impl<M, T> RelAgg<M, T> {
    fn new(relation: usize, func: AggFunc, field: Option<usize>, ty: ColumnType) -> Self {
        RelAgg { agg: RelatedAgg { relation, func, field, ty }, _marker: PhantomData }
    }

    /// The untyped aggregate.
    pub fn aggregate(&self) -> RelatedAgg {
        self.agg
    }

    /// Ascending order on the aggregate; NULL (no related values) sorts first.
    pub fn asc(self) -> JoinOrder<M> {
        JoinOrder::new(JoinTerm::Related(self.agg), false)
    }

    /// Descending order on the aggregate; NULL (no related values) sorts last: the top-N.
    pub fn desc(self) -> JoinOrder<M> {
        JoinOrder::new(JoinTerm::Related(self.agg), true)
    }

    /// A decimal average, selected as its exact sum and count and divided in Rust so that
    /// every store gives the same digits (as [`Agg`](crate::query::Agg) does).
    fn is_decimal_avg(&self) -> bool {
        self.agg.func == AggFunc::Avg && self.agg.ty.scalar == Scalar::Decimal
    }
}

impl<M: Model, T: FieldType> Selection<M> for RelAgg<M, T> {
    type Output = T;
    fn items(&self, out: &mut Vec<SelectItem>) {
        if self.is_decimal_avg() {
            out.push(SelectItem::Related(RelatedAgg { func: AggFunc::Sum, ..self.agg }));
            let count = ColumnType::scalar(Scalar::I64);
            out.push(SelectItem::Related(RelatedAgg { func: AggFunc::Count, ty: count, ..self.agg }));
        } else {
            out.push(SelectItem::Related(self.agg));
        }
    }
    fn decode(&self, cols: &mut Columns<'_>) -> Result<T, Error> {
        if !self.is_decimal_avg() {
            return cols.next(self.agg.ty, "<relation aggregate>");
        }
        let sum: Option<Decimal> = cols.next(self.agg.ty, "<relation aggregate>")?;
        let count: i64 = cols.next(ColumnType::scalar(Scalar::I64), "<relation aggregate>")?;
        let avg = match sum {
            Some(sum) if count > 0 => match sum.checked_div(Decimal::from(count)) {
                Some(avg) => Value::Decimal(avg.normalize()),
                None => Value::Null,
            },
            _ => Value::Null,
        };
        T::from_value(avg).map_err(|source: ValueError| Error::Decode {
            model: M::SCHEMA.name,
            field: "<relation aggregate>",
            source,
        })
    }
}

/// A field of the related model `T`, as the argument of a relation aggregate.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a field of the related model `{T}`",
    label = "aggregate a field of the relation's target model",
    note = "e.g. `Customer::INVOICES.sum(Invoice::TOTAL)`: the field belongs to the model the relation points to"
)]
pub trait RelatedField<T> {
    /// The field's Rust type.
    type Value;
    /// The field's position in `T`'s schema.
    fn position(&self) -> usize;
}

impl<T, V> RelatedField<T> for Field<T, V> {
    type Value = V;
    fn position(&self) -> usize {
        self.index()
    }
}

impl<M, T: Send + Sync + 'static, K: Cardinality> Relation<M, T, K> {
    /// The number of related rows of each row (0 when there are none):
    /// `Playlist::query().select((Playlist::NAME, Playlist::TRACKS.count()))`.
    pub fn count(&self) -> RelAgg<M, i64>
    where
        K: ToMany,
    {
        RelAgg::new(self.index, AggFunc::Count, None, ColumnType::scalar(Scalar::I64))
    }

    /// The sum of `field` over the related rows of each row; `None` when there are no
    /// non-NULL values. Exact for `Decimal` on every store; types as in
    /// [`Summable`](crate::query::Summable).
    pub fn sum<F: RelatedField<T>>(&self, field: F) -> RelAgg<M, Option<<F::Value as Summable>::Sum>>
    where
        K: ToMany,
        F::Value: Summable,
    {
        let ty = <<F::Value as Summable>::Sum as FieldType>::COLUMN.nullable();
        RelAgg::new(self.index, AggFunc::Sum, Some(field.position()), ty)
    }

    /// The average of `field` over the related rows; `None` when there are no non-NULL
    /// values (decimals: the exact sum divided by the count in Rust).
    pub fn avg<F: RelatedField<T>>(&self, field: F) -> RelAgg<M, Option<<F::Value as Summable>::Avg>>
    where
        K: ToMany,
        F::Value: Summable,
    {
        let ty = <<F::Value as Summable>::Avg as FieldType>::COLUMN.nullable();
        RelAgg::new(self.index, AggFunc::Avg, Some(field.position()), ty)
    }

    /// The smallest value of `field` over the related rows; `None` when there are none.
    pub fn min<F: RelatedField<T>>(&self, field: F) -> RelAgg<M, Option<<F::Value as Ordered>::Inner>>
    where
        K: ToMany,
        F::Value: Ordered,
    {
        let ty = <<F::Value as Ordered>::Inner as FieldType>::COLUMN.nullable();
        RelAgg::new(self.index, AggFunc::Min, Some(field.position()), ty)
    }

    /// The largest value of `field` over the related rows; `None` when there are none.
    pub fn max<F: RelatedField<T>>(&self, field: F) -> RelAgg<M, Option<<F::Value as Ordered>::Inner>>
    where
        K: ToMany,
        F::Value: Ordered,
    {
        let ty = <<F::Value as Ordered>::Inner as FieldType>::COLUMN.nullable();
        RelAgg::new(self.index, AggFunc::Max, Some(field.position()), ty)
    }
}
