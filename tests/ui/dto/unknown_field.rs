use polystore::prelude::*;

#[derive(Model)]
#[model(dto(UserPublic, exclude(pasword_hash)), dto(UserCard, only(id, nmae)))]
pub struct User {
    #[model(primary_key)]
    pub id: i64,
    pub name: String,
    pub password_hash: String,
}

fn main() {}
