//! `WITH RECURSIVE` for traversals of a self-relation ([`crate::relation::Traversal`]).
//!
//! ```sql
//! WITH RECURSIVE "tree"("k", "depth") AS (
//!   SELECT "id", 1 FROM "employees" WHERE "reports_to" = $1
//!   UNION ALL
//!   SELECT "x"."id", "tree"."depth" + 1 FROM "employees" AS "x"
//!   JOIN "tree" ON "x"."reports_to" = "tree"."k" WHERE "tree"."depth" < $2)
//! SELECT "employees"."id", … FROM "employees"
//! JOIN (SELECT "k", MIN("depth") AS "depth" FROM "tree" GROUP BY "k") AS "reached"
//!   ON "employees"."id" = "reached"."k"
//! ORDER BY "reached"."depth", "employees"."id"
//! ```
//!
//! Downwards the walk starts at the rows pointing to the start key and follows the key
//! columns; upwards it starts at the start row's parent key and follows the parent links.
//! Each row is reported once, at the smallest depth it was reached (a cycle in the data
//! revisits rows until the depth limit, and is cut there).

use crate::relation::{Direction, TreeLinks};
use crate::schema::{ColumnType, ModelSchema, Scalar};
use crate::sql::{Dialect, SqlWriter, Statement};
use crate::value::Value;

/// The statement of a traversal from `start`, at most `max_depth` links deep.
#[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
pub(crate) fn traversal(
    d: &dyn Dialect,
    schema: &ModelSchema,
    links: TreeLinks,
    direction: Direction,
    start: Value,
    max_depth: u32,
) -> Statement {
    let (parent, child) = crate::relation::tree_columns(schema, links);
    // Downwards: reach a row's key from its link to the row before. Upwards: the reverse.
    let (reach, from) = match direction {
        Direction::Down => (parent, child),
        Direction::Up => (child, parent),
    };
    let key_ty = schema.fields[links.parent].ty;
    let mut w = SqlWriter::new(d);
    w.push("WITH RECURSIVE \"tree\"(\"k\", \"depth\") AS (SELECT ").ident(reach).push(", 1 FROM ");
    w.table(schema.table).push(" WHERE ").ident(from).push(" = ").param(start, key_ty);
    w.push(" UNION ALL SELECT \"x\".").ident(reach).push(", \"tree\".\"depth\" + 1 FROM ").table(schema.table);
    w.push(" AS \"x\" JOIN \"tree\" ON \"x\".").ident(from).push(" = \"tree\".\"k\" WHERE \"tree\".\"depth\" < ");
    w.param(Value::I64(i64::from(max_depth)), ColumnType::scalar(Scalar::I64));
    w.push(") SELECT ");
    w.list(schema.fields, |w, f| {
        w.table(schema.table).push(".").ident(f.column);
    });
    w.push(" FROM ").table(schema.table);
    w.push(" JOIN (SELECT \"k\", MIN(\"depth\") AS \"depth\" FROM \"tree\" GROUP BY \"k\") AS \"reached\" ON ");
    w.table(schema.table).push(".").ident(parent).push(" = \"reached\".\"k\" ORDER BY \"reached\".\"depth\", ");
    w.table(schema.table).push(".").ident(parent);
    w.finish()
}
