//! Opaque pagination cursors: the sort-key values of a row as JSON, base64url-encoded, plus
//! a digest over those values and the query's ordering. A cursor from a query with another
//! ordering, or an altered one, is rejected with [`Error::InvalidCursor`]. The digest detects
//! mistakes and casual tampering; it is not a signature.

use std::fmt;

use crate::error::Error;
use crate::schema::ColumnType;
use crate::value::{Value, json_to_value};

/// An opaque position in a paginated query, handed out in [`Page`](crate::query::Page) and
/// passed back in a [`PageRequest`](crate::query::PageRequest). Safe to put in a URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor(String);

impl Cursor {
    /// Wraps a cursor string received from a client (it is checked when used).
    pub fn new(s: impl Into<String>) -> Self {
        Cursor(s.into())
    }

    /// The cursor's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Encodes `values` (the sort keys of a row) for the ordering described by `signature`.
    pub(crate) fn encode(signature: &str, values: Vec<Value>) -> Cursor {
        let payload = serde_json::Value::Array(values.into_iter().map(Value::into_json).collect()).to_string();
        let digest = fnv1a64(signature.as_bytes(), payload.as_bytes());
        Cursor(format!("{}.{digest:016x}", base64url_encode(payload.as_bytes())))
    }

    /// Decodes the sort-key values, checking the digest against `signature` and the values
    /// against the types of the sort keys.
    pub(crate) fn decode(&self, signature: &str, types: &[ColumnType]) -> Result<Vec<Value>, Error> {
        let invalid = |why: &str| Error::InvalidCursor(why.to_owned());
        let (body, digest) = self.0.rsplit_once('.').ok_or_else(|| invalid("not a polystore cursor"))?;
        let payload = base64url_decode(body).ok_or_else(|| invalid("not a polystore cursor (bad encoding)"))?;
        let digest = u64::from_str_radix(digest, 16).map_err(|_| invalid("not a polystore cursor (bad digest)"))?;
        if digest != fnv1a64(signature.as_bytes(), &payload) {
            return Err(invalid("the cursor was made for a query with another ordering, or was altered"));
        }
        let json: serde_json::Value =
            serde_json::from_slice(&payload).map_err(|_| invalid("not a polystore cursor (bad payload)"))?;
        let serde_json::Value::Array(items) = json else { return Err(invalid("not a polystore cursor (bad payload)")) };
        if items.len() != types.len() {
            return Err(invalid("the cursor does not match the query's ordering"));
        }
        items
            .into_iter()
            .zip(types)
            .map(|(j, ty)| json_to_value(j, *ty).map_err(|e| Error::InvalidCursor(format!("bad sort-key value: {e}"))))
            .collect()
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Cursor {
    fn from(s: String) -> Self {
        Cursor(s)
    }
}

impl From<&str> for Cursor {
    fn from(s: &str) -> Self {
        Cursor(s.to_owned())
    }
}

/// FNV-1a (64-bit) over `a`, a separator, and `b`.
fn fnv1a64(a: &[u8], b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in a.iter().chain(&[0u8]).chain(b) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding.
fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Decodes base64url without padding; `None` on any invalid input.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = ALPHABET.iter().position(|&a| a == c)? as u32;
            n |= v << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips_every_length() {
        for len in 0..20 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 200) as u8).collect();
            let text = base64url_encode(&bytes);
            assert!(!text.contains('=') && !text.contains('+') && !text.contains('/'));
            assert_eq!(base64url_decode(&text).as_deref(), Some(&bytes[..]));
        }
        assert_eq!(base64url_encode(b"hello"), "aGVsbG8");
    }

    #[test]
    fn cursor_round_trips_and_rejects_other_orderings_and_tampering() {
        use crate::schema::Scalar;
        let types = [ColumnType::scalar(Scalar::Text).nullable(), ColumnType::scalar(Scalar::I64)];
        let c = Cursor::encode("users|name:a|id:a", vec![Value::Text("ada".into()), Value::I64(7)]);
        assert_eq!(c.decode("users|name:a|id:a", &types).unwrap(), vec![Value::Text("ada".into()), Value::I64(7)]);
        assert!(matches!(c.decode("users|name:d|id:d", &types), Err(Error::InvalidCursor(_))));
        let mut tampered = c.as_str().to_owned();
        tampered.replace_range(0..1, "X");
        assert!(matches!(Cursor::new(tampered).decode("users|name:a|id:a", &types), Err(Error::InvalidCursor(_))));
        assert!(matches!(Cursor::new("garbage").decode("x", &types), Err(Error::InvalidCursor(_))));
        let null = Cursor::encode("s", vec![Value::Null, Value::I64(1)]);
        assert_eq!(null.decode("s", &types).unwrap(), vec![Value::Null, Value::I64(1)]);
    }
}
