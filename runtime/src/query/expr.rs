//! Typed filter expressions (`User::AGE.ge(18)`) and orderings (`User::NAME.asc()`).

use std::marker::PhantomData;

use crate::error::ValueError;
use crate::model::Field;
use crate::query::AggFunc;
use crate::schema::ColumnType;
use crate::value::{ToParam, Value};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The SQL spelling.
    pub fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// The kind of a text match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextOp {
    /// The value starts with the text.
    StartsWith,
    /// The value ends with the text.
    EndsWith,
    /// The value contains the text.
    Contains,
    /// The value matches a LIKE pattern: `%` any run, `_` one character, `\` escapes.
    Like,
}

/// The untyped expression tree under [`Expr`]. Fields are positions in the model's schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `field op value`. Comparing with NULL means IS NULL / IS NOT NULL for `Eq` / `Ne`.
    Compare {
        /// The field's position.
        field: usize,
        /// The operator.
        op: CmpOp,
        /// The value, always bound as a parameter.
        value: Value,
    },
    /// `field IS [NOT] NULL`.
    IsNull {
        /// The field's position.
        field: usize,
        /// IS NOT NULL when true.
        negated: bool,
    },
    /// `field [NOT] IN (values)`; an empty list matches nothing (or everything when negated).
    In {
        /// The field's position.
        field: usize,
        /// The values, each bound.
        values: Vec<Value>,
        /// NOT IN when true.
        negated: bool,
    },
    /// `field [NOT] BETWEEN low AND high` (both ends included).
    Between {
        /// The field's position.
        field: usize,
        /// The lower bound, bound as a parameter.
        low: Value,
        /// The upper bound, bound as a parameter.
        high: Value,
        /// NOT BETWEEN when true.
        negated: bool,
    },
    /// A text match on a string field (`LIKE` / `ILIKE` / `GLOB`, by dialect).
    Text {
        /// The field's position.
        field: usize,
        /// What kind of match.
        op: TextOp,
        /// The user's text (for [`TextOp::Like`], a LIKE pattern); escaped by the writer.
        text: String,
        /// Ignore case (ASCII-only on SQLite).
        case_insensitive: bool,
    },
    /// An array field holds `value` as one of its elements.
    ArrayContains {
        /// The field's position.
        field: usize,
        /// The element, bound as a parameter of the element type.
        value: Value,
    },
    /// `aggregate op value`, in a HAVING clause.
    Aggregate {
        /// The aggregate function.
        func: AggFunc,
        /// Its argument (`None` for `*`).
        field: Option<usize>,
        /// The operator.
        op: CmpOp,
        /// The value, always bound as a parameter.
        value: Value,
        /// The type the value is bound as (the aggregate's result type).
        ty: ColumnType,
    },
    /// A related row exists (matching `node` when given): `EXISTS (SELECT 1 FROM related …)`.
    Related {
        /// The relation's position in the filtered model's `relations`.
        relation: usize,
        /// The condition on the related rows, if any.
        node: Option<Box<Node>>,
    },
    /// `field [NOT] IN (SELECT column FROM other WHERE ..)`: the NULLs the subquery yields are
    /// ignored (so NOT IN is not emptied by one NULL).
    InQuery {
        /// The field's position.
        field: usize,
        /// The subquery (yielding a field of the same type).
        query: Box<crate::query::Subquery>,
        /// NOT IN when true.
        negated: bool,
    },
    /// `EXISTS (SELECT 1 FROM other WHERE other.column = outer.field AND ..)`: some row of the
    /// subquery is linked to the filtered row (true or false, never unknown).
    Exists {
        /// The filtered model's field the subquery's rows link to.
        outer: usize,
        /// The subquery; its column is the linking field.
        query: Box<crate::query::Subquery>,
    },
    /// `lhs op rhs` over two expressions (`Line::PRICE * Line::QUANTITY > 100`); unknown (not
    /// selected) when either side is NULL.
    Calc {
        /// The left side.
        lhs: crate::query::CalcNode,
        /// The operator.
        op: CmpOp,
        /// The right side.
        rhs: crate::query::CalcNode,
    },
    /// All of the children hold (true when empty).
    And(Vec<Node>),
    /// Any of the children holds (false when empty).
    Or(Vec<Node>),
    /// The child does not hold.
    Not(Box<Node>),
    /// A value could not be encoded; running the query reports the error.
    Invalid(ValueError),
}

/// A boolean expression over the fields of model `M`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr<M> {
    node: Node,
    _model: PhantomData<fn() -> M>,
}

impl<M> Expr<M> {
    pub(crate) fn from_node(node: Node) -> Self {
        Expr { node, _model: PhantomData }
    }

    /// The untyped tree.
    pub fn into_node(self) -> Node {
        self.node
    }

    /// Both this and `other` hold.
    pub fn and(self, other: Expr<M>) -> Expr<M> {
        Expr::from_node(match self.node {
            Node::And(mut items) => {
                items.push(other.node);
                Node::And(items)
            }
            node => Node::And(vec![node, other.node]),
        })
    }

    /// This or `other` holds.
    pub fn or(self, other: Expr<M>) -> Expr<M> {
        Expr::from_node(match self.node {
            Node::Or(mut items) => {
                items.push(other.node);
                Node::Or(items)
            }
            node => Node::Or(vec![node, other.node]),
        })
    }

    /// This does not hold.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Expr<M> {
        Expr::from_node(Node::Not(Box::new(self.node)))
    }

    /// All of `exprs` hold.
    pub fn all(exprs: impl IntoIterator<Item = Expr<M>>) -> Expr<M> {
        Expr::from_node(Node::And(exprs.into_iter().map(|e| e.node).collect()))
    }

    /// Any of `exprs` holds.
    pub fn any(exprs: impl IntoIterator<Item = Expr<M>>) -> Expr<M> {
        Expr::from_node(Node::Or(exprs.into_iter().map(|e| e.node).collect()))
    }
}

impl<M, T> Field<M, T> {
    fn compare<V: ToParam<T>>(self, op: CmpOp, value: V) -> Expr<M> {
        Expr::from_node(match value.to_param() {
            Ok(value) => Node::Compare { field: self.index(), op, value },
            Err(e) => Node::Invalid(e),
        })
    }

    /// `field = value` (`IS NULL` when the value is `None`).
    pub fn eq<V: ToParam<T>>(self, value: V) -> Expr<M> {
        self.compare(CmpOp::Eq, value)
    }

    /// `field <> value` (`IS NOT NULL` when the value is `None`).
    pub fn ne<V: ToParam<T>>(self, value: V) -> Expr<M> {
        self.compare(CmpOp::Ne, value)
    }

    /// `field < value`.
    pub fn lt<V: ToParam<T>>(self, value: V) -> Expr<M> {
        self.compare(CmpOp::Lt, value)
    }

    /// `field <= value`.
    pub fn le<V: ToParam<T>>(self, value: V) -> Expr<M> {
        self.compare(CmpOp::Le, value)
    }

    /// `field > value`.
    pub fn gt<V: ToParam<T>>(self, value: V) -> Expr<M> {
        self.compare(CmpOp::Gt, value)
    }

    /// `field >= value`.
    pub fn ge<V: ToParam<T>>(self, value: V) -> Expr<M> {
        self.compare(CmpOp::Ge, value)
    }

    /// `field IN (values)`: values of the field's type, or a subquery — a one-column
    /// projection of a field of the same type,
    /// `Customer::ID.is_in(Invoice::query().filter(..).select(Invoice::CUSTOMER_ID))`.
    pub fn is_in(self, values: impl crate::query::InValues<T>) -> Expr<M> {
        Expr::from_node(values.membership(self.index(), false))
    }

    /// `field NOT IN (values)` (values or a subquery, as [`Field::is_in`]). A row whose value
    /// is NULL is not selected; NULLs among the values are ignored.
    pub fn not_in(self, values: impl crate::query::InValues<T>) -> Expr<M> {
        Expr::from_node(values.membership(self.index(), true))
    }

    /// `field BETWEEN low AND high`: both ends included.
    pub fn between<V: ToParam<T>, W: ToParam<T>>(self, low: V, high: W) -> Expr<M> {
        self.range(low, high, false)
    }

    /// `field NOT BETWEEN low AND high`.
    pub fn not_between<V: ToParam<T>, W: ToParam<T>>(self, low: V, high: W) -> Expr<M> {
        self.range(low, high, true)
    }

    fn range<V: ToParam<T>, W: ToParam<T>>(self, low: V, high: W, negated: bool) -> Expr<M> {
        Expr::from_node(match (low.to_param(), high.to_param()) {
            (Ok(low), Ok(high)) => Node::Between { field: self.index(), low, high, negated },
            (Err(e), _) | (_, Err(e)) => Node::Invalid(e),
        })
    }

    /// `field IS NULL`.
    pub fn is_null(self) -> Expr<M> {
        Expr::from_node(Node::IsNull { field: self.index(), negated: false })
    }

    /// `field IS NOT NULL`.
    pub fn is_not_null(self) -> Expr<M> {
        Expr::from_node(Node::IsNull { field: self.index(), negated: true })
    }

    /// Ascending order on this field (NULLs where the database puts them: last on
    /// PostgreSQL, first on SQLite; say which with [`Order::nulls_first`] / [`Order::nulls_last`]).
    pub fn asc(self) -> Order<M> {
        Order { term: OrderTerm { field: self.index(), descending: false, nulls: None }, _model: PhantomData }
    }

    /// Descending order on this field.
    pub fn desc(self) -> Order<M> {
        Order { term: OrderTerm { field: self.index(), descending: true, nulls: None }, _model: PhantomData }
    }
}

/// Where NULLs go in an ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Nulls {
    /// Before every value.
    First,
    /// After every value.
    Last,
}

/// One untyped ordering term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderTerm {
    /// The field's position.
    pub field: usize,
    /// Descending when true.
    pub descending: bool,
    /// Where NULLs go; `None` leaves it to the database.
    pub nulls: Option<Nulls>,
}

impl OrderTerm {
    /// The reverse ordering (for paging backwards): the direction and the NULL placement
    /// flip, so `nulls` must be resolved first.
    pub fn reversed(self) -> OrderTerm {
        OrderTerm {
            field: self.field,
            descending: !self.descending,
            nulls: self.nulls.map(|n| match n {
                Nulls::First => Nulls::Last,
                Nulls::Last => Nulls::First,
            }),
        }
    }
}

/// An ordering on a field of model `M`.
#[derive(Debug, Clone, Copy)]
pub struct Order<M> {
    term: OrderTerm,
    _model: PhantomData<fn() -> M>,
}

impl<M> Order<M> {
    /// Puts NULLs before every value (`NULLS FIRST`).
    pub fn nulls_first(mut self) -> Order<M> {
        self.term.nulls = Some(Nulls::First);
        self
    }

    /// Puts NULLs after every value (`NULLS LAST`).
    pub fn nulls_last(mut self) -> Order<M> {
        self.term.nulls = Some(Nulls::Last);
        self
    }

    /// The untyped term.
    pub fn into_term(self) -> OrderTerm {
        self.term
    }
}
