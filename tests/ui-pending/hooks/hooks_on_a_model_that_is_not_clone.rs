use polystore::prelude::*;

#[derive(Model, Debug)]
#[model(hooks)]
pub struct Account {
    #[model(primary_key)]
    pub id: i64,
}

impl Hooks for Account {}

fn main() {}
