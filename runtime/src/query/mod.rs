//! The store-neutral query representation: typed expressions over field handles, and
//! [`Query<M>`], which the SQL writer (and later the MongoDB lowering) turn into statements.
//!
//! Everything here is plain data under a typed shell: `Expr<M>` and `Query<M>` make mistakes
//! fail to compile, and the untyped [`Node`] tree underneath is what the writers walk.

mod expr;

pub use expr::{CmpOp, Expr, Node, Order, OrderTerm};

use std::marker::PhantomData;

use crate::model::Model;

/// A query over model `M`: a filter, an ordering and a window. Build it with
/// `M::query()` (from [`crate::ModelExt`]) and run it with `all`, `first` or `count`.
#[derive(Debug, Clone)]
pub struct Query<M> {
    pub(crate) filter: Option<Node>,
    pub(crate) order: Vec<OrderTerm>,
    pub(crate) limit: Option<u64>,
    pub(crate) offset: Option<u64>,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model> Default for Query<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Model> Query<M> {
    /// A query that matches every row.
    pub fn new() -> Self {
        Query { filter: None, order: Vec::new(), limit: None, offset: None, _model: PhantomData }
    }

    /// Keeps the rows matching `expr`; several calls are combined with AND.
    pub fn filter(mut self, expr: Expr<M>) -> Self {
        let node = expr.into_node();
        self.filter = Some(match self.filter.take() {
            None => node,
            Some(prev) => Node::And(vec![prev, node]),
        });
        self
    }

    /// Adds an ordering term; earlier terms take precedence.
    pub fn order_by(mut self, order: Order<M>) -> Self {
        self.order.push(order.into_term());
        self
    }

    /// Returns at most `n` rows.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Skips the first `n` rows.
    pub fn offset(mut self, n: u64) -> Self {
        self.offset = Some(n);
        self
    }

    /// The filter tree, if any.
    pub fn filter_node(&self) -> Option<&Node> {
        self.filter.as_ref()
    }

    /// The ordering terms.
    pub fn order_terms(&self) -> &[OrderTerm] {
        &self.order
    }
}
