use polystore::prelude::*;

#[derive(Model)]
pub struct User {
    #[model(primary_key, generatd)]
    pub id: i64,
    #[model(uniqe)]
    pub email: String,
}

fn main() {}
