//! Joins along relations in SQL projections.
//!
//! Each distinct relation path used by a `select` (its items, group keys and orderings) is one
//! `LEFT JOIN` — the same path used twice joins once — on a derived table that renames the
//! related model's columns it needs to `<alias>_<column>`:
//!
//! ```sql
//! SELECT "name", "j1"."j1_title" FROM "tracks"
//! LEFT JOIN (SELECT "id" AS "j1_id", "title" AS "j1_title" FROM "albums") AS "j1"
//!   ON "j1"."j1_id" = "tracks"."album_id"
//! ```
//!
//! The renaming keeps the queried model's columns unambiguous, so its filter, grouping and
//! ordering are written exactly as without joins. PostgreSQL and SQLite both flatten such a
//! derived table into a plain join (the plan is that of `LEFT JOIN "albums"`).
//!
//! Relation aggregates are correlated subqueries: `(SELECT COUNT(*) FROM "tracks" AS "r1"
//! WHERE "r1"."album_id" = "albums"."id")`, which gives 0 / NULL for a row without related
//! rows and needs no grouping of the outer query.

use crate::error::Error;
use crate::query::{JoinColumn, JoinTerm, Query, RelatedAgg, SelectItem};
use crate::schema::{ModelSchema, RelationKind};
use crate::sql::SqlWriter;
use crate::sql::lower::aggregate_in;

/// One joined relation path.
#[derive(Debug)]
struct Alias {
    /// The relations followed from the queried model.
    hops: Vec<usize>,
    /// The model reached.
    schema: &'static ModelSchema,
    /// The field of `schema` matched against the parent's link field.
    key: usize,
    /// The alias the path continues (`None`: the queried model's table).
    parent: Option<usize>,
    /// The parent's field that links to `key`.
    parent_field: usize,
    /// The fields of `schema` the statement reads, `key` first.
    fields: Vec<usize>,
}

/// The joins of one statement.
#[derive(Debug, Default)]
pub(crate) struct Joins {
    aliases: Vec<Alias>,
}

impl Joins {
    /// Plans the joins needed by the items, group keys and orderings of `query`.
    pub(crate) fn plan<M>(root: &'static ModelSchema, query: &Query<M>, items: &[SelectItem]) -> Result<Self, Error> {
        crate::query::check_grouping(root, query, items)?;
        let mut joins = Joins::default();
        let columns = items
            .iter()
            .filter_map(|i| match i {
                SelectItem::Joined(c) => Some(c),
                _ => None,
            })
            .chain(&query.group_join)
            .chain(query.join_order.iter().filter_map(|s| match &s.term {
                JoinTerm::Column(c) => Some(c),
                JoinTerm::Related(_) => None,
            }));
        for col in columns {
            let at = joins.path(root, &col.hops)?;
            joins.need(at, col.field);
        }
        Ok(joins)
    }

    /// The alias of the path `hops` (joined on first use), with every alias before it.
    fn path(&mut self, root: &'static ModelSchema, hops: &[usize]) -> Result<usize, Error> {
        if hops.is_empty() {
            return Err(Error::Config(format!("{}: a joined column needs at least one relation", root.name)));
        }
        if let Some(at) = self.aliases.iter().position(|a| a.hops == hops) {
            return Ok(at);
        }
        let (parent, from) = match hops.len() {
            1 => (None, root),
            n => {
                let p = self.path(root, &hops[..n - 1])?;
                (Some(p), self.aliases[p].schema)
            }
        };
        let hop = hops[hops.len() - 1];
        let rel = from
            .relations
            .get(hop)
            .ok_or_else(|| Error::Config(format!("{}: relation number {hop} does not exist", from.name)))?;
        if !matches!(rel.kind, RelationKind::BelongsTo | RelationKind::HasOne) {
            return Err(Error::Config(format!(
                "{}.{}: only belongs_to / has_one relations can be joined; aggregate a {:?} relation",
                from.name, rel.name, rel.kind
            )));
        }
        let schema = (rel.target)();
        let key = match rel.remote_field {
            None => schema.primary_key[0],
            Some(name) => schema.field_position(name)?,
        };
        if let Some(p) = parent {
            self.need(p, rel.local_field);
        }
        self.aliases.push(Alias {
            hops: hops.to_vec(),
            schema,
            key,
            parent,
            parent_field: rel.local_field,
            fields: vec![key],
        });
        Ok(self.aliases.len() - 1)
    }

    /// Makes alias `at` read `field`.
    fn need(&mut self, at: usize, field: usize) {
        let fields = &mut self.aliases[at].fields;
        if !fields.contains(&field) {
            fields.push(field);
        }
    }

    /// The alias of path number `at`.
    fn name(at: usize) -> String {
        format!("j{}", at + 1)
    }

    /// Writes `"jN"."jN_<column>"`.
    fn write_ref(w: &mut SqlWriter<'_>, at: usize, column: &str) {
        let alias = Self::name(at);
        w.ident(&alias).push(".").ident(&format!("{alias}_{column}"));
    }

    /// Writes the reference to a joined column (planned by [`Joins::plan`]).
    pub(crate) fn column(&self, w: &mut SqlWriter<'_>, col: &JoinColumn) -> Result<(), Error> {
        let at = self
            .aliases
            .iter()
            .position(|a| a.hops == col.hops)
            .ok_or_else(|| Error::Config(format!("joined column {col:?} was not planned")))?;
        Self::write_ref(w, at, self.aliases[at].schema.fields[col.field].column);
        Ok(())
    }

    /// Writes a joined column as an ordering operand (decimals on SQLite get their collation).
    pub(crate) fn order_column(&self, w: &mut SqlWriter<'_>, col: &JoinColumn) -> Result<(), Error> {
        self.column(w, col)?;
        let at = self.aliases.iter().position(|a| a.hops == col.hops).unwrap_or_default();
        w.collate(self.aliases[at].schema.fields[col.field].ty);
        Ok(())
    }

    /// Writes the `LEFT JOIN`s, after `FROM <root table>`.
    pub(crate) fn write_from(&self, w: &mut SqlWriter<'_>, root: &ModelSchema) -> Result<(), Error> {
        for (at, a) in self.aliases.iter().enumerate() {
            let alias = Self::name(at);
            w.push(" LEFT JOIN (SELECT ");
            w.list(&a.fields, |w, &f| {
                let column = a.schema.fields[f].column;
                w.ident(column).push(" AS ").ident(&format!("{alias}_{column}"));
            });
            w.push(" FROM ").table(a.schema.table).push(") AS ").ident(&alias).push(" ON ");
            Self::write_ref(w, at, a.schema.fields[a.key].column);
            w.push(" = ");
            match a.parent {
                None => {
                    w.table(root.table).push(".").ident(root.fields[a.parent_field].column);
                }
                Some(p) => Self::write_ref(w, p, self.aliases[p].schema.fields[a.parent_field].column),
            }
        }
        Ok(())
    }
}

/// ` AND "alias"."stamp" IS NULL` when `schema` is a soft-delete model: its deleted rows do
/// not count in relation aggregates.
fn live_only(w: &mut SqlWriter<'_>, schema: &ModelSchema, alias: &str) {
    if let Some(i) = schema.soft_delete {
        w.push(" AND ").ident(alias).push(".").ident(schema.fields[i].column).push(" IS NULL");
    }
}

/// Writes a relation aggregate as a correlated subquery over the related rows of the outer
/// row (of `root`'s table): `has_many` reads the related table, `many_to_many` the join table
/// joined to the related one.
pub(crate) fn related_aggregate(w: &mut SqlWriter<'_>, root: &ModelSchema, agg: &RelatedAgg) -> Result<(), Error> {
    let rel = root
        .relations
        .get(agg.relation)
        .ok_or_else(|| Error::Config(format!("{}: relation number {} does not exist", root.name, agg.relation)))?;
    let target = (rel.target)();
    let local = root.fields[rel.local_field].column;
    let outer = |w: &mut SqlWriter<'_>| {
        w.table(root.table).push(".").ident(local);
    };
    let rows = w.push_scope();
    w.push("(SELECT ");
    match (rel.kind, &rel.through) {
        (RelationKind::ManyToMany, Some(through)) => {
            let join = (through.schema)();
            let left = join.fields[join.field_position(through.left)?].column;
            let right = join.fields[join.field_position(through.right)?].column;
            let links = w.push_scope();
            aggregate_in(w, target, Some(&rows), agg.func, agg.field);
            w.push(" FROM ").table(join.table).push(" AS ").ident(&links).push(" JOIN ").table(target.table);
            w.push(" AS ").ident(&rows).push(" ON ").ident(&rows).push(".");
            w.ident(target.fields[target.primary_key[0]].column).push(" = ").ident(&links).push(".").ident(right);
            w.push(" WHERE ").ident(&links).push(".").ident(left).push(" = ");
            outer(w);
            live_only(w, target, &rows);
            w.pop_scope();
        }
        (RelationKind::HasMany, _) => {
            let remote = rel.remote_field.map(|n| target.field_position(n)).transpose()?;
            let remote = target.fields[remote.unwrap_or(target.primary_key[0])].column;
            aggregate_in(w, target, Some(&rows), agg.func, agg.field);
            w.push(" FROM ").table(target.table).push(" AS ").ident(&rows).push(" WHERE ");
            w.ident(&rows).push(".").ident(remote).push(" = ");
            outer(w);
            live_only(w, target, &rows);
        }
        (kind, _) => {
            w.pop_scope();
            return Err(Error::Config(format!(
                "{}.{}: only has_many / many_to_many relations can be aggregated, not {kind:?}",
                root.name, rel.name
            )));
        }
    }
    w.push(")");
    w.pop_scope();
    Ok(())
}

/// A column reached through `belongs_to` / `has_one` relations as a value of the outer row (of
/// `root`, named by its table or the enclosing subquery's alias): the correlated subquery
/// `(SELECT "rN"."col" FROM first AS "r1" JOIN .. AS "rN" ON .. WHERE "r1"."key" = outer."fk" LIMIT 1)`,
/// NULL when a link is missing — what an expression, a filter or `having` compares.
pub(crate) fn joined_value(w: &mut SqlWriter<'_>, root: &ModelSchema, col: &JoinColumn) -> Result<(), Error> {
    if col.hops.is_empty() {
        return Err(Error::Config(format!("{}: a joined column needs at least one relation", root.name)));
    }
    let mut outer = String::new();
    match w.scope() {
        Some(alias) => w.dialect().quote_ident(&mut outer, alias),
        None => w.dialect().quote_table(&mut outer, root.table),
    }
    // Each hop: (the link's column in the model it starts from, the target, the target's column).
    let mut hops = Vec::with_capacity(col.hops.len());
    let mut at: &ModelSchema = root;
    for &h in &col.hops {
        let rel = &at.relations[h];
        let target = (rel.target)();
        let remote = match rel.remote_field {
            Some(name) => target.field_position(name)?,
            None => target.primary_key[0],
        };
        hops.push((at.fields[rel.local_field].column, target, target.fields[remote].column));
        at = target;
    }
    let aliases: Vec<String> = hops.iter().map(|_| w.push_scope()).collect();
    let last = aliases.last().map(String::as_str).unwrap_or_default();
    w.push("(SELECT ").ident(last).push(".").ident(at.fields[col.field].column).push(" FROM ");
    for (i, (local, target, remote)) in hops.iter().enumerate() {
        if i > 0 {
            w.push(" JOIN ");
        }
        w.table(target.table).push(" AS ").ident(&aliases[i]);
        if i > 0 {
            w.push(" ON ").ident(&aliases[i]).push(".").ident(remote).push(" = ");
            w.ident(&aliases[i - 1]).push(".").ident(local);
        }
    }
    let (local, _, remote) = hops[0];
    w.push(" WHERE ").ident(&aliases[0]).push(".").ident(remote).push(" = ").push(&outer).push(".").ident(local);
    w.push(" LIMIT 1)");
    for _ in &aliases {
        w.pop_scope();
    }
    Ok(())
}
