//! A typed aggregation pipeline builder: `$match` from an [`Expr<M>`], `$sort` from
//! [`Order<M>`], `$group` with typed [`Accumulator`]s, `$project`, `$unwind`, `$skip`,
//! `$limit`, `$count`, `$facet`, and [`Pipeline::stage`] as the raw escape hatch. Results
//! decode into the model ([`Pipeline::models`]), into any serde type ([`Pipeline::all`]), or
//! stay documents ([`Pipeline::documents`]).
//!
//! ```no_run
//! use polystore::prelude::*;
//! use polystore::mongo::{Accumulator, MongoStore, Pipeline};
//!
//! #[derive(Model, Debug)]
//! struct User { #[model(primary_key)] id: i64, country: String, age: i32 }
//!
//! #[derive(serde::Deserialize)]
//! struct PerCountry { _id: String, users: i32, mean_age: f64 }
//!
//! # async fn run(mongo: &MongoStore) -> polystore::Result<()> {
//! let rows: Vec<PerCountry> = Pipeline::<User>::new()
//!     .filter(User::AGE.ge(18))
//!     .group(User::COUNTRY, [("users", Accumulator::count()), ("mean_age", Accumulator::avg(User::AGE))])
//!     .stage(polystore::mongo::driver::bson::doc! { "$sort": { "_id": 1 } })
//!     .all(mongo)
//!     .await?;
//! # Ok(()) }
//! ```

use std::marker::PhantomData;

use mongodb::bson::{Bson, Document, doc};
use serde::de::DeserializeOwned;

use crate::db::Executor;
use crate::error::{Error, Result};
use crate::model::{Field, Model};
use crate::mongo::bson::field_path;
use crate::mongo::crud::decode;
use crate::mongo::exec;
use crate::mongo::filter::{count_bson, filter, sort};
use crate::query::{Expr, Order};

/// One accumulator of a `$group` stage, over a field of model `M`.
#[derive(Debug, Clone)]
pub struct Accumulator<M> {
    expr: Document,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model> Accumulator<M> {
    fn over<T>(op: &str, field: Field<M, T>) -> Self {
        let mut expr = Document::new();
        expr.insert(op, format!("${}", field_path(M::SCHEMA, field.index())));
        Accumulator { expr, _model: PhantomData }
    }

    /// The number of documents in the group (`{ $sum: 1 }`).
    pub fn count() -> Self {
        Accumulator { expr: doc! { "$sum": 1 }, _model: PhantomData }
    }

    /// `$sum` of a field (NULL and missing values count as nothing).
    pub fn sum<T: crate::query::Summable>(field: Field<M, T>) -> Self {
        Self::over("$sum", field)
    }

    /// `$avg` of a field (`null` when the group has no values).
    pub fn avg<T: crate::query::Summable>(field: Field<M, T>) -> Self {
        Self::over("$avg", field)
    }

    /// `$min` of a field.
    pub fn min<T: crate::query::Ordered>(field: Field<M, T>) -> Self {
        Self::over("$min", field)
    }

    /// `$max` of a field.
    pub fn max<T: crate::query::Ordered>(field: Field<M, T>) -> Self {
        Self::over("$max", field)
    }

    /// The field's value in the group's first document (`$first`, in the pipeline's order).
    pub fn first<T>(field: Field<M, T>) -> Self {
        Self::over("$first", field)
    }

    /// The field's value in the group's last document (`$last`).
    pub fn last<T>(field: Field<M, T>) -> Self {
        Self::over("$last", field)
    }

    /// Every value of the field, as an array (`$push`).
    pub fn push<T>(field: Field<M, T>) -> Self {
        Self::over("$push", field)
    }

    /// The distinct values of the field, as an array (`$addToSet`).
    pub fn add_to_set<T>(field: Field<M, T>) -> Self {
        Self::over("$addToSet", field)
    }
}

/// A raw stage, for [`Pipeline::stage`].
pub type Stage = Document;

/// An aggregation pipeline over the collection of model `M`.
#[derive(Debug, Clone)]
pub struct Pipeline<M> {
    stages: Vec<Document>,
    error: Option<String>,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model> Default for Pipeline<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Model> Pipeline<M> {
    /// An empty pipeline (every document of the collection).
    pub fn new() -> Self {
        Pipeline { stages: Vec::new(), error: None, _model: PhantomData }
    }

    fn push(mut self, stage: Result<Document>) -> Self {
        match stage {
            Ok(s) => self.stages.push(s),
            Err(e) => self.error = self.error.or(Some(e.to_string())),
        }
        self
    }

    /// `$match` on a typed filter, lowered like a query's (values stay values, SQL NULL rules).
    pub fn filter(self, expr: Expr<M>) -> Self {
        let stage = filter(M::SCHEMA, Some(&expr.into_node())).map(|f| doc! { "$match": f });
        self.push(stage)
    }

    /// `$sort` by typed orderings (earlier terms first). NULLs go where MongoDB puts them
    /// (first ascending); [`Order::nulls_last`] / [`Order::nulls_first`] are honoured with a
    /// computed flag.
    pub fn sort(mut self, order: impl IntoIterator<Item = Order<M>>) -> Self {
        let terms: Vec<_> = order.into_iter().map(Order::into_term).collect();
        let (sort, flags) = sort(M::SCHEMA, &terms);
        if let Some(flags) = flags {
            self.stages.push(doc! { "$addFields": flags });
        }
        self.stages.push(doc! { "$sort": sort });
        self
    }

    /// `$skip`.
    pub fn skip(mut self, n: u64) -> Self {
        self.stages.push(doc! { "$skip": count_bson(n) });
        self
    }

    /// `$limit`.
    pub fn limit(mut self, n: u64) -> Self {
        self.stages.push(doc! { "$limit": count_bson(n) });
        self
    }

    /// `$group` by `key` (documents whose key is null or missing form one group, `_id: null`,
    /// as SQL's GROUP BY does), with the named accumulators as output fields.
    pub fn group<T, const N: usize>(mut self, key: Field<M, T>, accumulators: [(&str, Accumulator<M>); N]) -> Self {
        let path = format!("${}", field_path(M::SCHEMA, key.index()));
        let mut group = doc! { "_id": { "$ifNull": [path, Bson::Null] } };
        for (name, acc) in accumulators {
            group.insert(name, acc.expr);
        }
        self.stages.push(doc! { "$group": group });
        self
    }

    /// `$group` of every document into one (`_id: null`).
    pub fn group_all<const N: usize>(mut self, accumulators: [(&str, Accumulator<M>); N]) -> Self {
        let mut group = doc! { "_id": Bson::Null };
        for (name, acc) in accumulators {
            group.insert(name, acc.expr);
        }
        self.stages.push(doc! { "$group": group });
        self
    }

    /// `$project` onto the given fields (by their stored key; a single primary key is `_id`).
    pub fn project<T>(mut self, fields: impl IntoIterator<Item = Field<M, T>>) -> Self {
        let mut p = Document::new();
        for f in fields {
            p.insert(field_path(M::SCHEMA, f.index()), 1);
        }
        self.stages.push(doc! { "$project": p });
        self
    }

    /// `$unwind` an array field: one output document per element (documents with an empty or
    /// missing array are dropped, as MongoDB does).
    pub fn unwind<T>(mut self, field: Field<M, Vec<T>>) -> Self {
        self.stages.push(doc! { "$unwind": format!("${}", field_path(M::SCHEMA, field.index())) });
        self
    }

    /// `$lookup` of a declared relation: the related documents, as an array under the
    /// relation's name (`posts`, `author`, `tags`). `belongs_to` matches the foreign key to the
    /// target's `_id`, `has_one` / `has_many` the key to the target's foreign key, and
    /// `many_to_many` goes through the join collection (two lookups, the links removed).
    pub fn lookup<T, K>(mut self, relation: crate::relation::Relation<M, T, K>) -> Self
    where
        T: Model,
        K: crate::relation::Cardinality,
    {
        use crate::schema::RelationKind;
        let rel = relation.schema();
        let target = (rel.target)();
        let local = field_path(M::SCHEMA, rel.local_field).to_string();
        let position = |schema: &crate::schema::ModelSchema, name: &str| {
            schema.field_position(name).ok().map(|i| field_path(schema, i).to_string())
        };
        match (rel.kind, &rel.through) {
            (RelationKind::ManyToMany, Some(through)) => {
                let join = (through.schema)();
                let (Some(left), Some(right)) = (position(join, through.left), position(join, through.right)) else {
                    self.error = self.error.or(Some(format!("{relation:?}: join fields not found")));
                    return self;
                };
                let links = format!("__{}_links", rel.name);
                self.stages.push(doc! { "$lookup": {
                    "from": join.table, "localField": &local, "foreignField": left, "as": &links,
                } });
                // The right keys as a flat array (a `localField` through an array of embedded
                // documents is not understood by every server), then one lookup by `_id`.
                let ids = format!("{links}_ids");
                self.stages.push(doc! { "$set": { &ids: {
                    "$map": { "input": format!("${links}"), "as": "l", "in": format!("$$l.{right}") }
                } } });
                self.stages.push(doc! { "$lookup": {
                    "from": target.table, "localField": &ids, "foreignField": "_id", "as": rel.name,
                } });
                self.stages.push(doc! { "$unset": [links, ids] });
            }
            _ => {
                let foreign = match rel.remote_field {
                    None => Some("_id".to_owned()),
                    Some(name) => position(target, name),
                };
                let Some(foreign) = foreign else {
                    self.error = self.error.or(Some(format!("{relation:?}: foreign key not found")));
                    return self;
                };
                self.stages.push(doc! { "$lookup": {
                    "from": target.table, "localField": local, "foreignField": foreign, "as": rel.name,
                } });
            }
        }
        self
    }

    /// `$count` into the field `name`.
    pub fn count(mut self, name: &str) -> Self {
        self.stages.push(doc! { "$count": name });
        self
    }

    /// `$facet`: several sub-pipelines over the same input, each result under its name.
    pub fn facet<const N: usize>(mut self, facets: [(&str, Pipeline<M>); N]) -> Self {
        let mut f = Document::new();
        for (name, p) in facets {
            if let Some(e) = p.error {
                self.error = self.error.or(Some(e));
            }
            f.insert(name, p.stages);
        }
        self.stages.push(doc! { "$facet": f });
        self
    }

    /// Appends a raw stage: the escape hatch for stages the builder does not cover. The
    /// document is the caller's; it is sent as is.
    pub fn stage(mut self, stage: Stage) -> Self {
        self.stages.push(stage);
        self
    }

    /// The stages built so far.
    pub fn stages(&self) -> &[Document] {
        &self.stages
    }

    async fn run<E: Executor>(
        self,
        mut db: E,
        each: impl FnMut(&mongodb::bson::RawDocument) -> Result<()> + Send,
    ) -> Result<()> {
        if let Some(e) = self.error {
            return Err(Error::Config(format!("{}: invalid pipeline: {e}", M::SCHEMA.name)));
        }
        let Some(mut conn) = crate::mongo::conn(&mut db) else {
            return Err(Error::Unsupported { store: "sql", what: "MongoDB aggregation pipelines".into() });
        };
        let cmd = doc! { "aggregate": M::SCHEMA.table, "pipeline": self.stages, "cursor": {} };
        exec::cursor(&mut conn, "aggregate", Some(M::SCHEMA), cmd, each).await
    }

    /// The result documents.
    pub async fn documents<E: Executor>(self, db: E) -> Result<Vec<Document>> {
        let mut out = Vec::new();
        self.run(db, |d| {
            out.push(Document::try_from(d).map_err(|e| Error::Driver(Box::new(e)))?);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// The results deserialized into `T` (any serde type shaped like the output documents).
    pub async fn all<T: DeserializeOwned + Send, E: Executor>(self, db: E) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let name = M::SCHEMA.name;
        self.run(db, |d| {
            let item = mongodb::bson::from_slice(d.as_bytes()).map_err(|e| Error::Decode {
                model: name,
                field: "<pipeline result>",
                source: crate::error::ValueError::Serde(e.to_string()),
            })?;
            out.push(item);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// The results decoded as models (for pipelines whose output keeps the model's shape:
    /// `$match`, `$sort`, `$skip`, `$limit`, …).
    pub async fn models<E: Executor>(self, db: E) -> Result<Vec<M>> {
        let mut out = Vec::new();
        self.run(db, |d| {
            out.push(decode::<M>(d)?);
            Ok(())
        })
        .await?;
        Ok(out)
    }
}
