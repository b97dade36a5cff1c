use polystore::prelude::*;

#[derive(Model)]
pub struct User {
    #[model(primary_key)]
    pub id: i64,
    pub age: i32,
}

fn main() {
    let _ = User::query().filter(User::AGE.eq("eighteen"));
}
