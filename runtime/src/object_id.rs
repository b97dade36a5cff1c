//! [`ObjectId`]: MongoDB's 12-byte identifier as a field type on every store — a BSON ObjectId
//! on MongoDB, its 24-character hex text on PostgreSQL and SQLite. New ids are made on the
//! client, as MongoDB drivers do: 4 bytes of seconds since the epoch, 5 random bytes per process,
//! a 3-byte counter, so ids made later sort later.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::ValueError;
use crate::schema::{ColumnType, Scalar};
use crate::value::{FieldType, Value};

/// A MongoDB ObjectId. `ObjectId::new()` makes a fresh one; `"65f…".parse()` reads the hex form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId([u8; 12]);

impl ObjectId {
    /// A new, unique id (time-ordered across calls).
    pub fn new() -> ObjectId {
        static PROCESS: OnceLock<[u8; 5]> = OnceLock::new();
        static COUNTER: OnceLock<AtomicU32> = OnceLock::new();
        let process = PROCESS.get_or_init(|| {
            let r = uuid::Uuid::new_v4();
            let b = r.as_bytes();
            [b[0], b[1], b[2], b[3], b[4]]
        });
        let counter = COUNTER.get_or_init(|| {
            AtomicU32::new(u32::from_be_bytes(*uuid::Uuid::new_v4().as_bytes().first_chunk().unwrap_or(&[0; 4])))
        });
        let secs = chrono::Utc::now().timestamp().clamp(0, i64::from(u32::MAX)) as u32;
        let n = counter.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&secs.to_be_bytes());
        bytes[4..9].copy_from_slice(process);
        bytes[9..].copy_from_slice(&n.to_be_bytes()[1..]);
        ObjectId(bytes)
    }

    /// The id with these bytes.
    pub const fn from_bytes(bytes: [u8; 12]) -> ObjectId {
        ObjectId(bytes)
    }

    /// The 12 bytes.
    pub const fn bytes(&self) -> [u8; 12] {
        self.0
    }

    /// The 24-character lowercase hex form (how SQL stores keep it).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Default for ObjectId {
    fn default() -> Self {
        ObjectId::new()
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({})", self.to_hex())
    }
}

impl FromStr for ObjectId {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<ObjectId, ValueError> {
        let bad = || ValueError::parse(s, "ObjectId", "expected 24 hexadecimal characters");
        if s.len() != 24 || !s.is_ascii() {
            return Err(bad());
        }
        let mut bytes = [0u8; 12];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(ObjectId(bytes))
    }
}

impl serde::Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for ObjectId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl FieldType for ObjectId {
    const COLUMN: ColumnType = ColumnType::scalar(Scalar::ObjectId);

    fn to_value(&self) -> Result<Value, ValueError> {
        Ok(Value::ObjectId(self.0))
    }

    fn from_value(value: Value) -> Result<Self, ValueError> {
        match value {
            Value::ObjectId(b) => Ok(ObjectId(b)),
            Value::Text(s) => s.parse(),
            Value::Null => Err(ValueError::UnexpectedNull),
            other => Err(ValueError::TypeMismatch { expected: "ObjectId", found: other.kind() }),
        }
    }
}

/// `value` with ObjectIds as their hex text (how SQL stores bind them), arrays element-wise.
#[cfg(feature = "postgres")]
pub(crate) fn as_hex(value: Value) -> Value {
    match value {
        Value::ObjectId(b) => Value::Text(ObjectId(b).to_hex()),
        Value::Array(items) => Value::Array(items.into_iter().map(as_hex).collect()),
        other => other,
    }
}

/// Hex text read from a SQL store, as an ObjectId value (text that is not one is left as text
/// and fails to decode, naming the field).
pub(crate) fn from_hex(value: Value) -> Value {
    match value {
        Value::Text(s) => s.parse::<ObjectId>().map(|id| Value::ObjectId(id.0)).unwrap_or(Value::Text(s)),
        Value::Array(items) => Value::Array(items.into_iter().map(from_hex).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_new_ids_are_distinct_and_ordered() {
        let a = ObjectId::new();
        let b = ObjectId::new();
        assert_ne!(a, b);
        assert!(a < b, "same second, increasing counter");
        assert_eq!(a.to_hex().parse::<ObjectId>().unwrap(), a);
        assert_eq!("65f0c0ffee00112233445566".parse::<ObjectId>().unwrap().to_hex(), "65f0c0ffee00112233445566");
        assert!("xyz".parse::<ObjectId>().is_err());
        assert!("65f0c0ffee0011223344556g".parse::<ObjectId>().is_err());
    }
}
