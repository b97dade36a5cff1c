//! Typed application keys and counters on the cache's backend, in the cache's namespace
//! (`<namespace>:app:<name>`): `cache.key::<Settings>("settings")`, `cache.counter("visits")`.
//!
//! Unlike model reads, these report backend failures to the caller: they are application data,
//! and only the caller knows whether a missing value may be recomputed.

use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Cache, Op};
use crate::error::{Error, Result, ValueError};

const HEADER: [u8; 4] = [b'p', b's', super::keys::FORMAT_VERSION, b'V'];

/// A key holding one serde value of type `T` (JSON, with a version header).
#[derive(Debug, Clone)]
pub struct TypedKey<T> {
    cache: Cache,
    key: String,
    _type: PhantomData<fn() -> T>,
}

/// A key holding an integer counter (`INCRBY`).
#[derive(Debug, Clone)]
pub struct Counter {
    cache: Cache,
    key: String,
}

impl Cache {
    /// The application key `name` holding a `T`.
    pub fn key<T: Serialize + DeserializeOwned>(&self, name: &str) -> TypedKey<T> {
        TypedKey { cache: self.clone(), key: self.keys().app(name), _type: PhantomData }
    }

    /// The counter `name`.
    pub fn counter(&self, name: &str) -> Counter {
        Counter { cache: self.clone(), key: self.keys().app(name) }
    }
}

fn decode_error(key: &str, message: impl std::fmt::Display) -> Error {
    Error::Decode { model: "TypedKey", field: "value", source: ValueError::Serde(format!("{key}: {message}")) }
}

impl<T: Serialize + DeserializeOwned> TypedKey<T> {
    /// The full key in the backend.
    pub fn name(&self) -> &str {
        &self.key
    }

    /// The stored value, if any. A value that is not a `T` written by polystore is an
    /// [`Error::Decode`].
    pub async fn get(&self) -> Result<Option<T>> {
        let found = self.cache.timed(self.cache.backend().get_many(std::slice::from_ref(&self.key))).await?;
        let Some(Some(bytes)) = found.into_iter().next() else { return Ok(None) };
        let body = bytes.strip_prefix(&HEADER[..]).ok_or_else(|| decode_error(&self.key, "not a polystore value"))?;
        serde_json::from_slice(body).map(Some).map_err(|e| decode_error(&self.key, e))
    }

    /// Stores `value`, expiring after `ttl` (`None`: kept until deleted).
    pub async fn set(&self, value: &T, ttl: Option<Duration>) -> Result<()> {
        let mut bytes = HEADER.to_vec();
        serde_json::to_writer(&mut bytes, value).map_err(|e| decode_error(&self.key, e))?;
        self.cache.timed(self.cache.backend().apply(vec![Op::Set { key: self.key.clone(), value: bytes, ttl }])).await
    }

    /// Deletes the value.
    pub async fn delete(&self) -> Result<()> {
        self.cache.timed(self.cache.backend().apply(vec![Op::Del(self.key.clone())])).await
    }
}

impl Counter {
    /// The full key in the backend.
    pub fn name(&self) -> &str {
        &self.key
    }

    /// Adds `delta` (may be negative) and returns the new value.
    pub async fn incr_by(&self, delta: i64) -> Result<i64> {
        self.cache.timed(self.cache.backend().incr_by(&self.key, delta)).await
    }

    /// Adds one and returns the new value.
    pub async fn incr(&self) -> Result<i64> {
        self.incr_by(1).await
    }

    /// The current value (0 when never incremented).
    pub async fn get(&self) -> Result<i64> {
        let found = self.cache.timed(self.cache.backend().get_many(std::slice::from_ref(&self.key))).await?;
        match found.into_iter().next().flatten() {
            None => Ok(0),
            Some(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| decode_error(&self.key, "not an integer counter")),
        }
    }

    /// Deletes the counter (back to 0).
    pub async fn reset(&self) -> Result<()> {
        self.cache.timed(self.cache.backend().apply(vec![Op::Del(self.key.clone())])).await
    }
}
