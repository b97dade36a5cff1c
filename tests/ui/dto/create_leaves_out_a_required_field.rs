use polystore::prelude::*;

#[derive(Model)]
#[model(dto(NewUser, create, exclude(name, nickname)))]
pub struct User {
    #[model(primary_key, generated)]
    pub id: i64,
    pub name: String,
    pub nickname: Option<String>,
}

fn main() {}
