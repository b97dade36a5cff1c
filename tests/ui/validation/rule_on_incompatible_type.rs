use polystore::prelude::*;
use validator::Validate;

#[derive(Model, Validate)]
pub struct Person {
    #[model(primary_key)]
    pub id: i64,
    #[validate(length(min = 1))]
    pub age: i32,
    #[validate(range(min = 1, max = 9))]
    pub name: String,
    #[validate(email)]
    pub score: f64,
}

fn main() {}
