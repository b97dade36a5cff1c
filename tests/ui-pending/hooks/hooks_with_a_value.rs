use polystore::prelude::*;

fn normalise(_: &mut Account) {}

#[derive(Model, Debug, Clone)]
#[model(hooks = normalise)]
pub struct Account {
    #[model(primary_key)]
    pub id: i64,
}

fn main() {}
