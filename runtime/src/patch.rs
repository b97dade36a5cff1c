//! Partial updates: write only the fields a patch sets (what `dto(.., update)` structs call).

use crate::db::Executor;
use crate::driver::{Driver as _, Operation, dispatch};
use crate::error::Result;
use crate::model::Model;
use crate::value::Value;

/// Writes `sets` (field position, value) to the row of `M` with primary key `key` and returns
/// the row as stored; [`Error::NotFound`] when no row has the key.
pub async fn update_fields<M: Model, E: Executor>(mut db: E, key: M::Key, sets: Vec<(usize, Value)>) -> Result<M> {
    let key = M::key_values(&key)?;
    if M::HAS_HOOKS {
        return crate::hooks::patch(db, key, sets).await;
    }
    let db = &mut db;
    let op = Operation::write("update", M::SCHEMA, None).with_key(&key);
    dispatch!(db, op, D => D::update_fields::<M, _>(db, key, sets).await)
}

/// serde support for `Option<Option<T>>` patch fields: a missing field is `None` (leave
/// unchanged), an explicit `null` is `Some(None)` (set NULL).
pub mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Reads a present value (even `null`) as `Some(..)`; use with `#[serde(default)]`.
    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(deserializer).map(Some)
    }

    /// Writes `Some(None)` as `null` and `Some(Some(v))` as `v` (skip `None` with
    /// `skip_serializing_if`).
    pub fn serialize<S, T>(value: &Option<Option<T>>, serializer: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        T: Serialize,
    {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }
}
