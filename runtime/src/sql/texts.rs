//! Statement texts kept per model, dialect and shape: a statement whose text depends only on
//! those (a find by key, the column list of a SELECT, a multi-row INSERT of so many rows) is
//! rendered once and then copied, instead of quoting every identifier and numbering every
//! placeholder again on each call.
//!
//! Texts are only kept for dialects that say they can be reused
//! ([`Dialect::texts_reusable`]): the key holds the dialect's *name* (dialects are zero-sized,
//! so their own addresses may coincide), and a dialect that renders differently under a name
//! it shares must never be handed another's text.

use std::hash::{BuildHasherDefault, Hash};
use std::sync::{Arc, RwLock};

use crate::addr::{self, AddrHasher, AddrMap};
use crate::schema::ModelSchema;
use crate::sql::Dialect;

/// A set of kept texts, keyed by model, dialect name and a shape `K`, holding at most `budget`
/// bytes of text in all and no single text longer than `max_entry` bytes (a text that does not
/// fit is rendered every time).
pub(crate) struct KeptTexts<K> {
    kept: RwLock<Kept<K>>,
    budget: usize,
    max_entry: usize,
}

struct Kept<K> {
    texts: AddrMap<(usize, usize, K), Arc<str>>,
    bytes: usize,
}

impl<K: Hash + Eq> KeptTexts<K> {
    /// An empty set with these limits.
    pub(crate) const fn new(budget: usize, max_entry: usize) -> Self {
        KeptTexts {
            kept: RwLock::new(Kept {
                texts: std::collections::HashMap::with_hasher(BuildHasherDefault::<AddrHasher>::new()),
                bytes: 0,
            }),
            budget,
            max_entry,
        }
    }

    /// The text of `shape` for `schema` in `d`: the one kept, or else `render()`'s, kept when
    /// the dialect allows it and the limits leave room.
    pub(crate) fn get(
        &self,
        d: &dyn Dialect,
        schema: &'static ModelSchema,
        shape: K,
        render: impl FnOnce() -> String,
    ) -> Arc<str> {
        if !d.texts_reusable() {
            return Arc::from(render());
        }
        let key = (addr::of(schema), addr::of(d.name()), shape);
        if let Some(text) = self.kept.read().unwrap_or_else(|p| p.into_inner()).texts.get(&key) {
            return text.clone();
        }
        let text: Arc<str> = Arc::from(render());
        if text.len() <= self.max_entry {
            let mut kept = self.kept.write().unwrap_or_else(|p| p.into_inner());
            if kept.bytes + text.len() <= self.budget && !kept.texts.contains_key(&key) {
                kept.bytes += text.len();
                kept.texts.insert(key, text.clone());
            }
        }
        text
    }
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::*;
    use crate::sql::build::tests::NOTE as SCHEMA;
    use crate::sql::postgres::Postgres;

    #[test]
    fn texts_are_kept_within_the_limits() {
        let texts = KeptTexts::<usize>::new(10, 6);
        let renders = std::cell::Cell::new(0);
        let render = |s: &str| {
            renders.set(renders.get() + 1);
            s.to_owned()
        };
        assert_eq!(&*texts.get(&Postgres, &SCHEMA, 1, || render("abcde")), "abcde");
        assert_eq!(&*texts.get(&Postgres, &SCHEMA, 1, || render("other")), "abcde", "kept");
        assert_eq!(renders.get(), 1);
        assert_eq!(&*texts.get(&Postgres, &SCHEMA, 2, || render("1234567")), "1234567");
        assert_eq!(&*texts.get(&Postgres, &SCHEMA, 2, || render("7654321")), "7654321", "too long to keep");
        assert_eq!(&*texts.get(&Postgres, &SCHEMA, 3, || render("xyz")), "xyz");
        assert_eq!(&*texts.get(&Postgres, &SCHEMA, 4, || render("pqrstu")), "pqrstu");
        assert_eq!(&*texts.get(&Postgres, &SCHEMA, 4, || render("again")), "again", "over the budget");
        assert_eq!(&*texts.get(&Postgres, &SCHEMA, 3, || render("new")), "xyz", "kept within the budget");
    }
}
