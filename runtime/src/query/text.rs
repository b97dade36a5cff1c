//! Filters that only make sense for some field types: text matching on string fields
//! (`User::EMAIL.ends_with("@example.com")`) and element tests on array fields
//! (`Post::TAGS.contains("rust")`). The marker traits make the wrong field fail to compile.

use crate::model::Field;
use crate::query::expr::{Expr, Node, TextOp};
use crate::value::{FieldType, ToParam};

/// A field type that text matching applies to: `String` and `Option<String>`.
///
/// ```
/// use polystore::prelude::*;
/// #[derive(Model)]
/// struct User { #[model(primary_key)] id: i64, email: String, bio: Option<String>, tags: Vec<String> }
/// let _ = User::query().filter(User::EMAIL.ends_with("@example.com").and(User::BIO.contains_ci("rust")));
/// let _ = User::query().filter(User::TAGS.contains("admin"));
/// ```
///
/// Text matching on another type does not compile:
///
/// ```compile_fail
/// use polystore::prelude::*;
/// #[derive(Model)]
/// struct User { #[model(primary_key)] id: i64, age: i32 }
/// let _ = User::AGE.starts_with("1");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a text field: text matching needs a `String` or `Option<String>` field",
    label = "starts_with / ends_with / contains / like apply to string fields only",
    note = "compare other types with eq / lt / between; test array elements with `contains` on a Vec field"
)]
pub trait TextField {}

impl TextField for String {}
impl TextField for Option<String> {}

/// A field type that [`Field::contains`] applies to, with what it may contain: a string field
/// contains text (`User::EMAIL.contains("@")`), an array field contains an element
/// (`Post::TAGS.contains("rust")`).
#[diagnostic::on_unimplemented(
    message = "a `{Self}` field cannot be tested for containing a `{V}`",
    label = "`contains` needs a String / Option<String> field (with text) or a Vec<T> field (with a T)",
    note = "compare other types with eq / lt / between / is_in"
)]
pub trait Containment<V> {
    /// The filter `field contains value`.
    #[doc(hidden)]
    fn contains_node(field: usize, value: V) -> Node;
}

impl<V: Into<String>> Containment<V> for String {
    fn contains_node(field: usize, value: V) -> Node {
        Node::Text { field, op: TextOp::Contains, text: value.into(), case_insensitive: false }
    }
}

impl<V: Into<String>> Containment<V> for Option<String> {
    fn contains_node(field: usize, value: V) -> Node {
        Node::Text { field, op: TextOp::Contains, text: value.into(), case_insensitive: false }
    }
}

impl<E: FieldType, V: ToParam<E>> Containment<V> for Vec<E> {
    fn contains_node(field: usize, value: V) -> Node {
        match value.to_param() {
            Ok(value) => Node::ArrayContains { field, value },
            Err(e) => Node::Invalid(e),
        }
    }
}

impl<M, T> Field<M, T> {
    fn text(self, op: TextOp, text: impl Into<String>, case_insensitive: bool) -> Expr<M> {
        Expr::from_node(Node::Text { field: self.index(), op, text: text.into(), case_insensitive })
    }

    /// The value starts with `prefix` (taken literally: `%` and `_` are not wildcards).
    pub fn starts_with(self, prefix: impl Into<String>) -> Expr<M>
    where
        T: TextField,
    {
        self.text(TextOp::StartsWith, prefix, false)
    }

    /// The value ends with `suffix` (taken literally).
    pub fn ends_with(self, suffix: impl Into<String>) -> Expr<M>
    where
        T: TextField,
    {
        self.text(TextOp::EndsWith, suffix, false)
    }

    /// A string field contains `value` as a substring (taken literally), or an array field
    /// holds `value` as an element (`$1 = ANY(col)` on PostgreSQL, a `json_each` lookup on
    /// SQLite).
    pub fn contains<V>(self, value: V) -> Expr<M>
    where
        T: Containment<V>,
    {
        Expr::from_node(T::contains_node(self.index(), value))
    }

    /// The value matches the LIKE `pattern`: `%` matches any run of characters, `_` one
    /// character, and `\` makes the next character literal. Case-sensitive on every database.
    pub fn like(self, pattern: impl Into<String>) -> Expr<M>
    where
        T: TextField,
    {
        self.text(TextOp::Like, pattern, false)
    }

    /// [`Field::starts_with`], ignoring case (on SQLite, ASCII letters only).
    pub fn starts_with_ci(self, prefix: impl Into<String>) -> Expr<M>
    where
        T: TextField,
    {
        self.text(TextOp::StartsWith, prefix, true)
    }

    /// [`Field::ends_with`], ignoring case (on SQLite, ASCII letters only).
    pub fn ends_with_ci(self, suffix: impl Into<String>) -> Expr<M>
    where
        T: TextField,
    {
        self.text(TextOp::EndsWith, suffix, true)
    }

    /// The value contains `needle` as a substring, ignoring case (on SQLite, ASCII letters
    /// only).
    pub fn contains_ci(self, needle: impl Into<String>) -> Expr<M>
    where
        T: TextField,
    {
        self.text(TextOp::Contains, needle, true)
    }

    /// [`Field::like`], ignoring case: `ILIKE` on PostgreSQL, `LIKE` on SQLite (ASCII letters
    /// only).
    pub fn ilike(self, pattern: impl Into<String>) -> Expr<M>
    where
        T: TextField,
    {
        self.text(TextOp::Like, pattern, true)
    }
}
