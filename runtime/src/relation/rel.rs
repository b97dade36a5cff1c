//! [`Rel<T>`]: the value of a relation field, loaded or not.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The value of a relation field: [`Rel::NotLoaded`] until the relation is loaded with
/// [`Query::with`](crate::Query::with), then [`Rel::Loaded`]. Read it with [`Rel::get`], which
/// is `None` when the relation was not loaded — so an unloaded `has_many` is never mistaken
/// for one without rows (`Some(&vec![])`). The value is boxed, so models may refer to each
/// other (`User` has a `Rel<Option<Profile>>`, `Profile` a `Rel<User>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Rel<T> {
    /// The relation was not loaded.
    #[default]
    NotLoaded,
    /// The related value(s).
    Loaded(Box<T>),
}

impl<T> Rel<T> {
    /// A loaded relation holding `value`.
    pub fn loaded(value: T) -> Self {
        Rel::Loaded(Box::new(value))
    }

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
            Rel::Loaded(v) => Some(*v),
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

/// A loaded relation serializes as its value, an unloaded one as `null` (skip it with
/// `#[serde(default, skip_serializing_if = "Rel::is_not_loaded")]`).
impl<T: Serialize> Serialize for Rel<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Rel::Loaded(v) => v.serialize(serializer),
            Rel::NotLoaded => serializer.serialize_none(),
        }
    }
}

/// A present value deserializes as loaded; use `#[serde(default)]` for absent ones.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Rel<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Rel::loaded)
    }
}
