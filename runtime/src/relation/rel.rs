//! [`Rel<T>`]: the value of a relation field, loaded or not.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::RelBox;

/// The value of a relation field: [`Rel::NotLoaded`] until the relation is loaded with
/// [`Query::with`](crate::Query::with), then [`Rel::Loaded`]. Read it with [`Rel::get`], which
/// is `None` when the relation was not loaded — so an unloaded `has_many` is never mistaken
/// for one without rows (`Some(&vec![])`). The value is boxed in a [`RelBox`], so models may
/// refer to each other (`User` has a `Rel<Option<Profile>>`, `Profile` a `Rel<User>`), and
/// chains of any length compile without raising `#![recursion_limit]`; a loaded value must be
/// `Send + Sync` (every model is), so a `Rel<T>` is always `Send` and `Sync`.
///
/// [`Rel::default()`] is `NotLoaded`, so a model that derives `Default` can be written
/// `Post { title: "..".into(), ..Default::default() }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Rel<T> {
    /// The relation was not loaded.
    #[default]
    NotLoaded,
    /// The related value(s); [`RelBox`] dereferences to them.
    Loaded(RelBox<T>),
}

impl<T: Send + Sync> Rel<T> {
    /// A loaded relation holding `value`.
    pub fn loaded(value: T) -> Self {
        Rel::Loaded(RelBox::new(value))
    }
}

impl<T> Rel<T> {
    /// The loaded value, or `None` when the relation was not loaded.
    pub fn get(&self) -> Option<&T> {
        match self {
            Rel::Loaded(v) => Some(v),
            Rel::NotLoaded => None,
        }
    }

    /// The loaded value, mutably.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        match self {
            Rel::Loaded(v) => Some(v),
            Rel::NotLoaded => None,
        }
    }

    /// The loaded value, or `None` when the relation was not loaded.
    pub fn into_loaded(self) -> Option<T> {
        match self {
            Rel::Loaded(v) => Some(v.into_inner()),
            Rel::NotLoaded => None,
        }
    }

    /// Whether the relation was loaded.
    pub fn is_loaded(&self) -> bool {
        matches!(self, Rel::Loaded(_))
    }

    /// Whether the relation was not loaded (for `#[serde(skip_serializing_if = ...)]`).
    pub fn is_not_loaded(&self) -> bool {
        !self.is_loaded()
    }
}

/// A loaded relation serializes as its value, an unloaded one as `null` (leave it out of the
/// output with `#[serde(skip_serializing_if = "Rel::is_not_loaded")]`).
impl<T: Serialize> Serialize for Rel<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Rel::Loaded(v) => T::serialize(v, serializer),
            Rel::NotLoaded => serializer.serialize_none(),
        }
    }
}

/// A present value deserializes as loaded; `null` or a missing key as [`Rel::NotLoaded`] — so
/// a model with relation fields reads back what it wrote without `#[serde(default)]` on each
/// relation field. (`Loaded(None)` of a `Rel<Option<T>>` is written as `null` too, and reads
/// back as not loaded.)
impl<'de, T: Deserialize<'de> + Send + Sync> Deserialize<'de> for Rel<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Through `deserialize_option`: serde's derive turns a missing field into `visit_none`
        // for types that deserialize this way, as it does for `Option`.
        struct RelVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Send + Sync> Visitor<'de> for RelVisitor<T> {
            type Value = Rel<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a related value, or null when not loaded")
            }
            fn visit_none<E: de::Error>(self) -> Result<Rel<T>, E> {
                Ok(Rel::NotLoaded)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Rel<T>, E> {
                Ok(Rel::NotLoaded)
            }
            fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Rel<T>, D::Error> {
                T::deserialize(deserializer).map(Rel::loaded)
            }
        }
        deserializer.deserialize_option(RelVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::Rel;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Post {
        id: i64,
        author: Rel<String>,
        tags: Rel<Vec<String>>,
    }

    #[test]
    fn relation_fields_need_no_serde_attributes_to_round_trip() {
        let unloaded = Post { id: 1, author: Rel::default(), tags: Rel::NotLoaded };
        let json = serde_json::to_string(&unloaded).unwrap();
        assert_eq!(json, r#"{"id":1,"author":null,"tags":null}"#);
        assert_eq!(serde_json::from_str::<Post>(&json).unwrap(), unloaded);
        let missing: Post = serde_json::from_str(r#"{"id":1}"#).expect("missing relation keys are not loaded");
        assert_eq!(missing, unloaded);
        let loaded: Post = serde_json::from_str(r#"{"id":1,"author":"ada","tags":[]}"#).unwrap();
        assert_eq!((loaded.author.get().map(String::as_str), loaded.tags.get()), (Some("ada"), Some(&vec![])));
        assert!(serde_json::from_str::<Post>(r#"{"id":1,"author":3}"#).is_err());
    }
}
