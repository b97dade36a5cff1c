use polystore::prelude::*;

#[derive(Model)]
pub struct Membership {
    #[model(primary_key)]
    pub user_id: i64,
    #[model(primary_key)]
    pub group_id: i64,
}

fn main() {}
