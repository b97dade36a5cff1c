use polystore::prelude::*;

#[derive(Model, Debug, Clone)]
#[model(hooks)]
pub struct Account {
    #[model(primary_key)]
    pub id: i64,
}

fn main() {}
