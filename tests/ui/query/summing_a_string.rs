use polystore::prelude::*;

#[derive(Model)]
pub struct User {
    #[model(primary_key)]
    pub id: i64,
    pub name: String,
}

fn main() {
    let _ = User::query().select(User::NAME.sum());
}
