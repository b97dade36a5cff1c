use polystore::prelude::*;

#[derive(Model)]
pub struct User {
    #[model(primary_key)]
    pub id: i64,
    pub country: String,
}

#[derive(Model)]
pub struct Post {
    #[model(primary_key)]
    pub id: i64,
}

fn main() {
    let _ = User::query().group_by(User::COUNTRY).order_by(count_all::<Post>().desc()).select(User::COUNTRY);
}
