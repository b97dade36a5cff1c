use polystore::prelude::*;

#[derive(Model, Debug, Clone)]
pub struct Account {
    #[model(primary_key = true)]
    pub id: i64,
    #[model(unique(yes))]
    pub email: String,
}

fn main() {}
