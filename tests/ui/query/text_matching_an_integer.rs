use polystore::prelude::*;

#[derive(Model)]
pub struct User {
    #[model(primary_key)]
    pub id: i64,
    pub age: i32,
}

fn main() {
    // docs/queries.md: text matching on a non-text field does not compile.
    let _ = User::query().filter(User::AGE.starts_with("1"));
}
