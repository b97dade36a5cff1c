use polystore::prelude::*;

#[derive(Model)]
pub struct Counter {
    #[model(primary_key)]
    pub id: i64,
    #[model(default = "zero")]
    pub hits: i32,
    #[model(default = 1)]
    pub active: bool,
    #[model(default = 2.5)]
    pub label: Option<String>,
    #[model(default = 1)]
    pub ratio: f64,
}

fn main() {}
