//! The cache key scheme: every Redis key polystore writes is derived from a model's identity.
//!
//! ```text
//! <namespace>:<Model>:<fingerprint>:<kind>:<body>
//! ```
//!
//! - `namespace` separates applications (and tests) sharing one server;
//! - `fingerprint` is a stable hash of the model's schema description (table, columns, stored
//!   types, key): after a schema change, old-shaped entries live under other keys and are never
//!   read;
//! - `kind` is `e` (an entry), `u` (a unique-field lookup), `s` (a set index), `z` (a sorted
//!   set), `m` (the index memo of one row); entries and lookups — the keys that expire — carry
//!   the cache's *generation* after the letter (`e0`, `u3`): bumping the generation (after an
//!   invalidation could not be delivered) retires every entry written before at once;
//! - `body` holds the primary key (or the indexed value), each component *escaped*: `%`, `:`,
//!   `{`, `}`, `,` and control characters become `%XX`, and each component starts with a type
//!   letter, so two different keys never render the same text, whatever they contain.
//!
//! Redis Cluster hashes only the part between the first `{` and the next `}` of a key when
//! there is one (a *hash tag*). Component text never contains braces, so the braces polystore
//! adds are the only ones: [`HashTag`] chooses what they enclose.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use crate::schema::{ModelSchema, Scalar};
use crate::value::Value;

/// What the hash tag of a model's keys encloses, i.e. which keys Redis Cluster puts in the
/// same slot. Chosen per model with [`CacheBuilder::hash_tag`](super::CacheBuilder::hash_tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashTag {
    /// Each row's keys (its entry and its index memo) share a slot of their own: rows spread
    /// over the whole cluster. Unique lookups are tagged by the looked-up value, set indexes by
    /// the indexed value.
    #[default]
    Row,
    /// The first `n` primary-key components: with a key `(tenant_id, order_id)` and
    /// `KeyPrefix(1)`, all of a tenant's rows live in one slot.
    KeyPrefix(usize),
    /// Every key of the model in one slot (multi-key commands over the model always work;
    /// the whole model lives on one node).
    Model,
    /// The distribution column of a distributed model (`#[model(distributed_by = tenant_id)]`):
    /// the tag holds that value alone, so every key of one tenant — of every distributed
    /// model — shares a slot. The default for distributed models; for other models it is
    /// [`HashTag::Row`].
    Distribution,
}

/// The version of the key layout and entry format; part of every fingerprint, so a change to
/// either retires all old keys at once.
pub(crate) const FORMAT_VERSION: u8 = 1;

/// A stable 64-bit hash of the model's stored shape: name, table, every field's name, column,
/// stored type (with enum variants), nullability and `generated` flag, and the primary key.
/// The same description always gives the same value, across processes and Rust versions
/// (FNV-1a, not the standard library's randomised hasher).
pub fn fingerprint(schema: &'static ModelSchema) -> u64 {
    static CACHE: OnceLock<RwLock<HashMap<usize, u64>>> = OnceLock::new();
    let map = CACHE.get_or_init(Default::default);
    let id = schema as *const ModelSchema as usize;
    if let Some(fp) = map.read().unwrap_or_else(|p| p.into_inner()).get(&id) {
        return *fp;
    }
    let fp = fnv1a(describe(schema).as_bytes());
    map.write().unwrap_or_else(|p| p.into_inner()).insert(id, fp);
    fp
}

/// The canonical text the fingerprint hashes.
fn describe(schema: &ModelSchema) -> String {
    let mut s = format!("polystore-cache/{FORMAT_VERSION}|{}|{}|pk", schema.name, schema.table);
    for &i in schema.primary_key {
        let _ = write!(s, ",{i}");
    }
    for f in schema.fields {
        let _ = write!(s, "|{}/{}/{}/{}", f.name, f.column, f.ty.describe(), f.generated);
        if let Scalar::Enum(variants) = f.ty.scalar {
            let _ = write!(s, "/{}", variants.join(","));
        }
    }
    s
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Appends `text` with `%`, `:`, `{`, `}`, `,` and control characters escaped as `%XX`.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '%' | ':' | '{' | '}' | ',' => {
                let _ = write!(out, "%{:02X}", c as u32);
            }
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "%{b:02X}");
                }
            }
            c => out.push(c),
        }
    }
}

/// Appends one key component: a type letter, then the value's text, escaped. The encoding is
/// injective: different values give different text.
pub fn encode_component(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push('n'),
        Value::Bool(b) => out.push_str(if *b { "b1" } else { "b0" }),
        Value::I16(n) => {
            let _ = write!(out, "i{n}");
        }
        Value::I32(n) => {
            let _ = write!(out, "i{n}");
        }
        Value::I64(n) => {
            let _ = write!(out, "i{n}");
        }
        Value::F32(n) => {
            let _ = write!(out, "f{:?}", f64::from(*n));
        }
        Value::F64(n) => {
            let _ = write!(out, "f{n:?}");
        }
        Value::Text(s) => {
            out.push('s');
            escape_into(out, s);
        }
        Value::Uuid(u) => {
            let _ = write!(out, "u{}", u.hyphenated());
        }
        Value::ObjectId(b) => {
            let _ = write!(out, "o{}", crate::ObjectId::from_bytes(*b).to_hex());
        }
        Value::Decimal(d) => {
            let _ = write!(out, "m{}", d.normalize());
        }
        Value::Array(items) => {
            let mut inner = String::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    inner.push(',');
                }
                encode_component(&mut inner, item);
            }
            out.push('a');
            escape_into(out, &inner);
        }
        other => {
            // Timestamps, dates and JSON: their canonical JSON text.
            let letter = match other {
                Value::TimestampTz(_) => 'z',
                Value::Timestamp(_) => 't',
                Value::Date(_) => 'd',
                _ => 'j',
            };
            out.push(letter);
            escape_into(out, &other.clone().into_json().to_string());
        }
    }
}

/// The components of `values`, joined with `,`.
pub fn encode_components(values: &[Value]) -> String {
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        encode_component(&mut out, v);
    }
    out
}

/// Builds the keys of one cache: a namespace plus per-model hash-tag choices.
#[derive(Debug, Clone)]
pub struct KeyScheme {
    namespace: String,
    tags: HashMap<&'static str, HashTag>,
    /// The generation entries and lookups are read and written under (shared by clones).
    generation: Arc<AtomicU64>,
}

impl KeyScheme {
    /// A scheme for `namespace` (escaped like a key component), every model tagged by row.
    pub fn new(namespace: &str) -> Self {
        let mut ns = String::new();
        escape_into(&mut ns, namespace);
        KeyScheme { namespace: ns, tags: HashMap::new(), generation: Arc::new(AtomicU64::new(0)) }
    }

    /// The generation this process reads and writes entries and lookups under.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Moves to generation `g` if it is newer than the current one; returns whether it was.
    pub(crate) fn adopt(&self, g: u64) -> bool {
        self.generation.fetch_max(g, Ordering::AcqRel) < g
    }

    /// The key holding the namespace's current generation (`<ns>:#gen`; `#` cannot start a
    /// model name, so no model key collides with it).
    pub fn generation_key(&self) -> String {
        format!("{}:#gen", self.namespace)
    }

    /// The key recording the generation of the last fence (`<namespace>:#ixlost`): declared
    /// indexes of a model are only used when they were rebuilt at or after it.
    pub fn index_fence_key(&self) -> String {
        format!("{}:#ixlost", self.namespace)
    }

    /// The key recording the generation at whose start `schema`'s declared indexes were last
    /// rebuilt (`<namespace>:#ixok:<table>`).
    pub fn index_rebuilt_key(&self, schema: &ModelSchema) -> String {
        format!("{}:#ixok:{}", self.namespace, schema.table)
    }

    /// Uses `tag` for the keys of the model named `model`.
    pub fn set_hash_tag(&mut self, model: &'static str, tag: HashTag) {
        self.tags.insert(model, tag);
    }

    /// The hash tag of `schema`'s keys: the one set with [`KeyScheme::set_hash_tag`], else
    /// [`HashTag::Distribution`] for a distributed model and [`HashTag::Row`] for others.
    pub fn hash_tag(&self, schema: &ModelSchema) -> HashTag {
        match self.tags.get(schema.name) {
            Some(&HashTag::Distribution) | None if schema.distribution_key_position().is_some() => {
                HashTag::Distribution
            }
            Some(&HashTag::Distribution) | None => HashTag::Row,
            Some(&tag) => tag,
        }
    }

    /// The (escaped) namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `<ns>:<Model>:<fp>:<kind>:`, or `{<ns>:<Model>}:<fp>:<kind>:` when the whole model
    /// shares one slot.
    fn head(&self, schema: &'static ModelSchema, kind: &str) -> String {
        let fp = fingerprint(schema) & 0xffff_ffff_ffff;
        if self.hash_tag(schema) == HashTag::Model {
            format!("{{{}:{}}}:{fp:012x}:{kind}:", self.namespace, schema.name)
        } else {
            format!("{}:{}:{fp:012x}:{kind}:", self.namespace, schema.name)
        }
    }

    /// `body` wrapped in a hash tag unless the model is tagged as a whole.
    fn tagged(&self, schema: &'static ModelSchema, kind: &str, body: &str) -> String {
        let mut key = self.head(schema, kind);
        if self.hash_tag(schema) == HashTag::Model {
            key.push_str(body);
        } else {
            let _ = write!(key, "{{{body}}}");
        }
        key
    }

    /// Tags the entry-like keys (entry, memo) of a row with primary key `key`.
    fn row_key(&self, schema: &'static ModelSchema, kind: &str, key: &[Value]) -> String {
        match self.hash_tag(schema) {
            HashTag::KeyPrefix(n) if n > 0 && n < key.len() => {
                let mut k = self.head(schema, kind);
                let _ = write!(k, "{{{}}},{}", encode_components(&key[..n]), encode_components(&key[n..]));
                k
            }
            HashTag::Distribution => match schema.distribution_key_position().and_then(|p| key.get(p)) {
                Some(value) => {
                    let mut k = self.head(schema, kind);
                    push_distribution_tag(&mut k, value);
                    let _ = write!(k, ",{}", encode_components(key));
                    k
                }
                None => self.tagged(schema, kind, &encode_components(key)),
            },
            _ => self.tagged(schema, kind, &encode_components(key)),
        }
    }

    /// The key of the cached row with primary-key values `key` (in key order), in the current
    /// generation.
    pub fn entry(&self, schema: &'static ModelSchema, key: &[Value]) -> String {
        self.row_key(schema, &format!("e{}", self.generation()), key)
    }

    /// The key of a row's index memo (the set-indexed values last recorded for it).
    pub fn memo(&self, schema: &'static ModelSchema, key: &[Value]) -> String {
        self.row_key(schema, "m", key)
    }

    /// The lookup key mapping `value` of unique field `field` to a primary key, in the current
    /// generation.
    pub fn unique(&self, schema: &'static ModelSchema, field: usize, value: &Value) -> String {
        self.tagged_value(schema, &format!("u{}", self.generation()), field, value)
    }

    /// The set holding the primary keys of rows whose `field` is `value`.
    pub fn set_index(&self, schema: &'static ModelSchema, field: usize, value: &Value) -> String {
        self.tagged_value(schema, "s", field, value)
    }

    /// A key of `field`'s value `value`: tagged by the value, or — when `field` is a
    /// distributed model's distribution column, so the key belongs to one tenant's rows — by
    /// the tenant, exactly as that tenant's entries are (one slot per tenant).
    fn tagged_value(&self, schema: &'static ModelSchema, kind: &str, field: usize, value: &Value) -> String {
        let mut key = self.head(schema, kind);
        escape_into(&mut key, schema.fields[field].column);
        key.push(':');
        match self.hash_tag(schema) {
            HashTag::Model => encode_component(&mut key, value),
            HashTag::Distribution if schema.distribution.is_some_and(|d| d.column == field) => {
                push_distribution_tag(&mut key, value);
            }
            _ => {
                key.push('{');
                encode_component(&mut key, value);
                key.push('}');
            }
        }
        key
    }

    /// The sorted set of primary keys scored by `field`. One per field, shared by every row of
    /// the model (of a distributed model: by every tenant), so it keeps a hash tag of its own.
    pub fn sorted_set(&self, schema: &'static ModelSchema, field: usize) -> String {
        let mut key = self.head(schema, "z");
        escape_into(&mut key, schema.fields[field].column);
        key
    }

    /// An application key (typed values, counters) named `name`.
    pub fn app(&self, name: &str) -> String {
        let mut key = format!("{}:app:", self.namespace);
        escape_into(&mut key, name);
        key
    }
}

/// Appends the hash tag of the tenant whose distribution value is `value`: `{<component>}`,
/// the same text for every key of that tenant (entries, memos, set indexes and lookups of the
/// distribution column), whatever the model.
fn push_distribution_tag(out: &mut String, value: &Value) {
    out.push('{');
    encode_component(out, value);
    out.push('}');
}

/// The Redis Cluster slot of `key`: CRC16 (XMODEM) of its hash tag, or of the whole key,
/// modulo 16384 — what `CLUSTER KEYSLOT` answers.
pub fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = match bytes.iter().position(|&b| b == b'{') {
        Some(open) => match bytes[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    crc16(hashed) % 16384
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_matches_redis_reference_values() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("foo{}{bar}"), slot("foo{}{bar}"));
        assert_ne!(slot("foo{}{bar}"), slot("bar"));
    }

    /// Random keys of mixed types and tricky text: equal text only for equal keys.
    #[test]
    fn encoding_is_injective_over_random_mixed_keys() {
        let pieces = ["", ":", "{", "}", ",", "%", "%2C", "s", "i1", "é", "🦀", "\u{0}", "a,sb"];
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut seen: HashMap<String, Vec<Value>> = HashMap::new();
        for _ in 0..20_000 {
            let len = 1 + (next() % 3) as usize;
            let key: Vec<Value> = (0..len)
                .map(|_| match next() % 6 {
                    0 => Value::Null,
                    1 => Value::I64((next() % 7) as i64 - 3),
                    2 => Value::Bool(next() % 2 == 0),
                    3 => Value::Uuid(uuid::Uuid::from_u128(u128::from(next() % 3))),
                    4 => Value::Array(vec![Value::Text(pieces[(next() % 13) as usize].into())]),
                    _ => Value::Text((0..next() % 3).map(|_| pieces[(next() % 13) as usize]).collect()),
                })
                .collect();
            let text = encode_components(&key);
            assert!(!text.contains('{') && !text.contains('}'), "{text}");
            if let Some(prev) = seen.insert(text.clone(), key.clone()) {
                assert_eq!(prev, key, "{prev:?} and {key:?} both encode as {text}");
            }
        }
        assert!(seen.len() > 5_000);
    }

    #[test]
    fn components_escape_separators_and_braces() {
        let s = encode_components(&[Value::Text("a:b{c},d%".into()), Value::Text(String::new()), Value::I64(-3)]);
        assert_eq!(s, "sa%3Ab%7Bc%7D%2Cd%25,s,i-3");
        assert!(!s.contains('{') && !s.contains('}'));
        assert_ne!(encode_components(&[Value::Text("1".into())]), encode_components(&[Value::I64(1)]));
        assert_ne!(
            encode_components(&[Value::Text("a,sb".into())]),
            encode_components(&[Value::Text("a".into()), Value::Text("b".into())])
        );
    }
}
