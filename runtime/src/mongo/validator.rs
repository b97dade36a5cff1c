//! The `$jsonSchema` validator generated from a model: a `bsonType` per field (from its
//! [`ColumnType`]), `required` for every non-nullable field, `["<type>", "null"]` for
//! nullable ones, and the allowed values of enums. Applied when `create_all` creates the
//! collection; [`MongoStore::update_validator`](crate::mongo::MongoStore::update_validator)
//! replaces it with `collMod`. JSON and embedded fields are not constrained further.

use mongodb::bson::{Bson, Document, doc};

use crate::schema::{Check, ColumnType, FieldSchema, ModelSchema, Scalar};

/// The BSON type name a scalar is stored as (`None` for JSON, which may be any type).
fn bson_type(scalar: Scalar) -> Option<&'static str> {
    Some(match scalar {
        Scalar::Bool => "bool",
        Scalar::I16 | Scalar::I32 => "int",
        Scalar::I64 => "long",
        Scalar::F32 | Scalar::F64 => "double",
        Scalar::Text | Scalar::Enum(_) => "string",
        Scalar::TimestampTz | Scalar::Timestamp | Scalar::Date => "date",
        Scalar::Uuid => "binData",
        Scalar::ObjectId => "objectId",
        Scalar::Decimal => "decimal",
        Scalar::Json => return None,
    })
}

/// The schema of one field's value.
fn property(ty: ColumnType) -> Document {
    let element = |scalar: Scalar| {
        let mut d = Document::new();
        if let Some(t) = bson_type(scalar) {
            d.insert("bsonType", t);
        }
        if let Scalar::Enum(variants) = scalar {
            d.insert("enum", variants.iter().map(|v| Bson::String((*v).to_owned())).collect::<Vec<_>>());
        }
        d
    };
    let mut d = if ty.array {
        doc! { "bsonType": "array", "items": element(ty.scalar) }
    } else {
        element(ty.scalar)
    };
    if ty.nullable {
        if let Some(Bson::String(t)) = d.get("bsonType").cloned() {
            d.insert("bsonType", vec![Bson::String(t), Bson::String("null".into())]);
        }
        if let Ok(values) = d.get_array_mut("enum") {
            values.push(Bson::Null);
        }
    }
    d
}

/// Adds the field's `#[validate]` rules that `$jsonSchema` can express: `minLength` /
/// `maxLength` (text), `minItems` / `maxItems` (lists), `minimum` / `maximum` (numbers, with
/// `exclusiveMinimum` / `exclusiveMaximum`), and `pattern`s for the loose `email` / `url`
/// shapes and `contains` (several patterns go under `allOf`; `does_not_contain` under `not`).
fn with_checks(mut d: Document, field: &FieldSchema) -> Document {
    let mut patterns: Vec<String> = Vec::new();
    let mut forbidden: Vec<String> = Vec::new();
    for check in field.checks {
        match check {
            Check::Length { min, max } => {
                let (lo, hi) = if field.ty.array { ("minItems", "maxItems") } else { ("minLength", "maxLength") };
                if let Some(n) = min {
                    d.insert(lo, *n as i64);
                }
                if let Some(n) = max {
                    d.insert(hi, *n as i64);
                }
            }
            Check::Range { min, max, exclusive_min, exclusive_max } => {
                if let Some(x) = min {
                    d.insert("minimum", *x);
                    if *exclusive_min {
                        d.insert("exclusiveMinimum", true);
                    }
                }
                if let Some(x) = max {
                    d.insert("maximum", *x);
                    if *exclusive_max {
                        d.insert("exclusiveMaximum", true);
                    }
                }
            }
            Check::Email => patterns.push("^[^@\\s]+@[^@\\s]+$".to_owned()),
            Check::Url => patterns.push("^[A-Za-z][A-Za-z0-9+.-]*://.".to_owned()),
            Check::Contains(p) => patterns.push(regex_escape(p)),
            Check::DoesNotContain(p) => forbidden.push(regex_escape(p)),
            Check::Required => {
                if let Some(Bson::Array(types)) = d.get("bsonType").cloned() {
                    let kept: Vec<Bson> = types.into_iter().filter(|t| t.as_str() != Some("null")).collect();
                    d.insert("bsonType", kept.into_iter().next().unwrap_or(Bson::Null));
                }
            }
        }
    }
    match patterns.len() {
        0 => {}
        1 => {
            d.insert("pattern", patterns.remove(0));
        }
        _ => {
            d.insert("allOf", patterns.into_iter().map(|p| Bson::Document(doc! { "pattern": p })).collect::<Vec<_>>());
        }
    }
    if !forbidden.is_empty() {
        let any = forbidden.into_iter().map(|p| Bson::Document(doc! { "pattern": p })).collect::<Vec<_>>();
        d.insert("not", doc! { "anyOf": any });
    }
    d
}

/// `text` as a regular expression matching itself.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The validator document `{ "$jsonSchema": { ... } }` for `schema`.
pub fn json_schema(schema: &ModelSchema) -> Document {
    let mut properties = Document::new();
    let mut required: Vec<Bson> = Vec::new();
    let mut key_properties = Document::new();
    let mut key_required: Vec<Bson> = Vec::new();
    for (i, f) in schema.fields.iter().enumerate() {
        let (props, req) =
            if schema.is_key(i) { (&mut key_properties, &mut key_required) } else { (&mut properties, &mut required) };
        props.insert(f.column, with_checks(property(f.ty), f));
        if !f.ty.nullable || f.checks.contains(&Check::Required) {
            req.push(Bson::String(f.column.to_owned()));
        }
    }
    match schema.primary_key.len() {
        0 => {}
        1 => {
            if let Some((_, id)) = key_properties.into_iter().next() {
                properties.insert("_id", id);
            }
        }
        _ => {
            properties
                .insert("_id", doc! { "bsonType": "object", "required": key_required, "properties": key_properties });
        }
    }
    required.insert(0, Bson::String("_id".to_owned()));
    doc! { "$jsonSchema": { "bsonType": "object", "required": required, "properties": properties } }
}
