//! ORDER BY for SQL queries: field terms, and aggregate, expression, joined-column and
//! relation-aggregate terms interleaved in the order they were added.

use crate::error::Error;
use crate::query::{Clauses, JoinTerm, Nulls, OrderTerm, SelectItem};
use crate::schema::ModelSchema;
use crate::sql::SqlWriter;
use crate::sql::calc::write_order;
use crate::sql::lower::aggregate;
use crate::sql::lower::join::{Joins, related_aggregate};

/// ORDER BY with aggregate and expression terms interleaved: those sort with NULL as the
/// smallest value on both dialects (`NULLS FIRST` ascending, `NULLS LAST` descending).
///
/// An expression that is also selected is named by its position, as PostgreSQL does not match
/// an expression with parameters against the same one in the SELECT list of a grouped query.
pub(crate) fn full_order(
    w: &mut SqlWriter<'_>,
    schema: &ModelSchema,
    query: &Clauses<'_>,
    items: &[SelectItem],
    joins: &Joins,
) -> Result<(), Error> {
    use crate::query::FullKey;
    use crate::query::OrderKey as SortKey;
    let keys = crate::query::full_keys(query);
    if keys.is_empty() {
        return Ok(());
    }
    w.push(" ORDER BY ");
    for (i, key) in keys.into_iter().enumerate() {
        w.push(if i == 0 { "" } else { ", " });
        let descending = match key {
            FullKey::Base(SortKey::Field(term)) => {
                order_term(w, schema, term);
                continue;
            }
            FullKey::Base(SortKey::Agg(_, a)) => {
                aggregate(w, schema, a.func, a.field);
                w.collate(a.ty);
                a.descending
            }
            FullKey::Base(SortKey::Calc(_, c)) => match selected(w, items, &c.node) {
                Some(i) => {
                    w.push(&(i + 1).to_string());
                    c.descending
                }
                None => {
                    write_order(w, schema, &c.node, c.descending)?;
                    continue;
                }
            },
            FullKey::Join(j) => {
                join_term(w, schema, items, joins, &j.term)?;
                j.descending
            }
        };
        w.push(if descending { " DESC NULLS LAST" } else { " ASC NULLS FIRST" });
    }
    Ok(())
}

/// A joined column or relation aggregate as an ordering operand: by its position when it is
/// selected, else written out.
fn join_term(
    w: &mut SqlWriter<'_>,
    schema: &ModelSchema,
    items: &[SelectItem],
    joins: &Joins,
    term: &JoinTerm,
) -> Result<(), Error> {
    match term {
        JoinTerm::Column(col) => joins.order_column(w, col)?,
        JoinTerm::Related(agg) => match items.iter().position(|i| matches!(i, SelectItem::Related(a) if a == agg)) {
            Some(i) => {
                w.push(&(i + 1).to_string());
            }
            None => {
                related_aggregate(w, schema, agg)?;
                w.collate(agg.ty);
            }
        },
    }
    Ok(())
}

/// The position of `node` in the SELECT list, on PostgreSQL (SQLite matches expressions
/// itself, and keeps the decimal collation on the expression).
pub(crate) fn selected(w: &SqlWriter<'_>, items: &[SelectItem], node: &crate::query::CalcNode) -> Option<usize> {
    if w.dialect().name() == "sqlite" {
        return None;
    }
    items.iter().position(|i| matches!(i, SelectItem::Calc(n) if n == node))
}

pub(crate) fn order_by(w: &mut SqlWriter<'_>, schema: &ModelSchema, order: &[OrderTerm]) {
    if order.is_empty() {
        return;
    }
    w.push(" ORDER BY ");
    w.list(order, |w, term| order_term(w, schema, term));
}

fn order_term(w: &mut SqlWriter<'_>, schema: &ModelSchema, term: &OrderTerm) {
    let f = &schema.fields[term.field];
    w.operand(f.column, f.ty);
    w.push(if term.descending { " DESC" } else { " ASC" });
    match term.nulls {
        Some(Nulls::First) => w.push(" NULLS FIRST"),
        Some(Nulls::Last) => w.push(" NULLS LAST"),
        None => w,
    };
}
